//! What an apply reports about itself: lifecycle state, per-partition progress and counters.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::watch;

/// Lifecycle states (the brief's state machine; PAUSED arrives with the control plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not running.
    Stopped,
    /// Connecting to the target and Kafka, joining the consumer group.
    Starting,
    /// Applying.
    Running,
    /// Waiting to retry after a transient error (the error is kept).
    Retrying,
    /// Finishing the batches in flight before stopping.
    Stopping,
    /// Stopped by an error that retrying cannot fix (the error is kept).
    Failed,
}

/// One assigned partition's progress.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PartitionStatus {
    /// Next offset to apply, as stored in the target (`None` before the first commit).
    pub next_offset: Option<i64>,
    /// Source commit time of the last applied change, ms since the epoch.
    pub source_ts_ms: Option<i64>,
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
