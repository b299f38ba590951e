//! What an apply reports about itself: lifecycle state, per-partition progress and counters.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::watch;

/// Lifecycle states, shared with capture. The pipeline itself reports STARTING, RUNNING,
/// RETRYING, STOPPING and how a run ended; the controller adds PAUSED.
pub use rowferry_shared::lifecycle::State;

/// One assigned partition's progress.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PartitionStatus {
    /// Next offset to apply, as stored in the target (`None` before the first commit).
    pub next_offset: Option<i64>,
    /// Source commit time of the last applied change, ms since the epoch.
    pub source_ts_ms: Option<i64>,
    /// The partition's end (last stable offset) as librdkafka last reported it, every second.
    pub high_watermark: Option<i64>,
    /// Records not yet applied, as of the same report (`None` before the first commit).
    pub lag: Option<i64>,
    /// Since when (ms since the epoch) the partition has had records to apply.
    pub behind_since_ms: Option<i64>,
}

impl PartitionStatus {
    /// Takes a new end and lag as of `now_ms`; whether anything changed.
    pub fn set_lag(&mut self, end: i64, lag: Option<i64>, now_ms: i64) -> bool {
        let behind = lag.is_some_and(|l| l > 0);
        let behind_since_ms = match (behind, self.behind_since_ms) {
            (false, _) => None,
            (true, Some(since)) => Some(since),
            (true, None) => Some(now_ms),
        };
        let changed = self.high_watermark != Some(end)
            || self.lag != lag
            || self.behind_since_ms != behind_since_ms;
        self.high_watermark = Some(end);
        self.lag = lag;
        self.behind_since_ms = behind_since_ms;
        changed
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A snapshot of an apply's status.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyStatus {
    /// Lifecycle state.
    pub state: State,
    /// The last error, for RETRYING and FAILED.
    pub error: Option<String>,
    /// Assigned partitions, keyed `topic/partition`.
    pub partitions: BTreeMap<String, PartitionStatus>,
    /// Change records applied (tombstones and dead-lettered records excluded).
    pub records_applied: u64,
    /// Tombstones skipped.
    pub tombstones_skipped: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Target transactions committed.
    pub target_transactions: u64,
    /// Bytes of the change records applied (keys and values).
    pub bytes_applied: u64,
    /// Changes applied, per target table and operation.
    #[serde(skip)]
    pub tables: rowferry_shared::control::TableCounts,
    /// Source position (GTID or `file:pos`) of the last change applied, of any partition.
    pub source_position: Option<String>,
    /// Seconds between the source commit of the last applied change and its target commit.
    pub lag_seconds: Option<f64>,
}

impl Default for ApplyStatus {
    fn default() -> Self {
        Self {
            state: State::Stopped,
            error: None,
            partitions: BTreeMap::new(),
            records_applied: 0,
            tombstones_skipped: 0,
            dead_lettered: 0,
            target_transactions: 0,
            bytes_applied: 0,
            tables: Default::default(),
            source_position: None,
            lag_seconds: None,
        }
    }
}

/// The sending half: the pipeline updates it, readers watch it.
pub type StatusSender = watch::Sender<ApplyStatus>;
/// The receiving half.
pub type StatusReceiver = watch::Receiver<ApplyStatus>;

/// A new status channel, starting at STOPPED.
pub fn channel() -> (StatusSender, StatusReceiver) {
    watch::channel(ApplyStatus::default())
}

/// The status map key of a partition.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The topic and partition of a status map key.
pub fn split_partition_key(key: &str) -> Option<(&str, i32)> {
    let (topic, partition) = key.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}
