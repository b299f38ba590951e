//! What a capture reports about itself: lifecycle state, position, lag and counters.

use serde::Serialize;
use tokio::sync::watch;

use crate::kafka::offsets::StoredPosition;

/// Lifecycle states, shared with apply. The pipeline itself reports STARTING, RUNNING,
/// RETRYING, STOPPING and how a run ended; the controller adds PAUSED.
pub use rowferry_shared::lifecycle::State;

/// A snapshot of a capture's status.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureStatus {
    /// Lifecycle state.
    pub state: State,
    /// The last error, for RETRYING and FAILED.
    pub error: Option<String>,
    /// `mysql` or `mariadb`, once connected.
    pub flavor: Option<String>,
    /// The source's `@@version`.
    pub server_version: Option<String>,
    /// `binlog` (FULL row metadata) or `information_schema` (weaker: a table altered between
    /// a change and its capture is decoded with its newer definition).
    pub metadata_source: Option<String>,
    /// The last committed position.
    pub committed: Option<StoredPosition>,
    /// Seconds between the source commit of the last event read and now; 0 when caught up
    /// (the source's heartbeats say it has nothing newer).
    pub lag_seconds: Option<f64>,
    /// Row change records committed to Kafka.
    pub records_committed: u64,
    /// Kafka transactions committed.
    pub kafka_transactions: u64,
    /// Source transactions fully delivered.
    pub source_transactions: u64,
    /// Bytes of the change records committed (keys and values).
    pub bytes_committed: u64,
    /// Change records committed, per source table and operation.
    #[serde(skip)]
    pub tables: rowferry_shared::control::TableCounts,
    /// The initial snapshot, while it runs and after it finished in this process.
    pub snapshot: Option<SnapshotStatus>,
}

/// How far the initial snapshot is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotStatus {
    /// When the snapshot began (ms since the epoch; earlier runs included).
    pub started_ms: i64,
    /// Still reading.
    pub running: bool,
    /// Rows delivered.
    pub rows: u64,
    /// Rows expected: delivered counts of finished tables, the source's estimates of others.
    pub estimated_rows: u64,
    /// This run's rate.
    pub rows_per_second: f64,
    /// Seconds left at that rate.
    pub eta_seconds: Option<f64>,
    /// Per table.
    pub tables: Vec<TableSnapshotStatus>,
    /// An incremental snapshot (streaming goes on), not the initial one.
    pub incremental: bool,
    /// Paused by request (incremental only).
    pub paused: bool,
}

/// One table of the snapshot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableSnapshotStatus {
    /// `db.table`.
    pub table: String,
    /// Rows delivered.
    pub rows: u64,
    /// The source's estimate when the snapshot began.
    pub estimated_rows: u64,
    /// Every row delivered.
    pub done: bool,
}

impl Default for CaptureStatus {
    fn default() -> Self {
        Self {
            state: State::Stopped,
            error: None,
            flavor: None,
            server_version: None,
            metadata_source: None,
            committed: None,
            lag_seconds: None,
            records_committed: 0,
            kafka_transactions: 0,
            source_transactions: 0,
            bytes_committed: 0,
            tables: Default::default(),
            snapshot: None,
        }
    }
}

/// The sending half: the pipeline updates it, readers watch it.
pub type StatusSender = watch::Sender<CaptureStatus>;
/// The receiving half.
pub type StatusReceiver = watch::Receiver<CaptureStatus>;

/// A new status channel, starting at STOPPED.
pub fn channel() -> (StatusSender, StatusReceiver) {
    watch::channel(CaptureStatus::default())
}

impl SnapshotStatus {
    /// The status of a snapshot's `tables` read since `started_ms`; the rate is of the rows
    /// read in `seconds` (this process's share), the ETA from it.
    pub fn of(
        tables: &[crate::snapshot::progress::TableProgress],
        started_ms: i64,
        rows_read: u64,
        seconds: f64,
        incremental: bool,
        paused: bool,
    ) -> Self {
        let rows: u64 = tables.iter().map(|t| t.rows).sum();
        // Finished tables count what they delivered; the others the source's estimate.
        let estimated: u64 = tables
            .iter()
            .map(|t| {
                if t.done {
                    t.rows
                } else {
                    t.estimated_rows.max(t.rows)
                }
            })
            .sum();
        let rate = rows_read as f64 / seconds.max(0.001);
        Self {
            started_ms,
            running: tables.iter().any(|t| !t.done),
            rows,
            estimated_rows: estimated,
            rows_per_second: rate,
            eta_seconds: (rate > 0.0).then(|| estimated.saturating_sub(rows) as f64 / rate),
            tables: tables
                .iter()
                .map(|t| TableSnapshotStatus {
                    table: t.id().to_string(),
                    rows: t.rows,
                    estimated_rows: t.estimated_rows,
                    done: t.done,
                })
                .collect(),
            incremental,
            paused,
        }
    }
}
