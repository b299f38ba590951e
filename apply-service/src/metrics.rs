//! Apply's Prometheus metrics. Counts the status already keeps are copied from it at each
//! scrape; latencies and batch sizes are recorded per target commit and statement.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use rowferry_shared::lifecycle::{ControlView, State};
use rowferry_shared::telemetry::metrics_endpoint::{Probe, Watched, set_rows_by_op, set_state};
use tokio::sync::watch;

use crate::status::{ApplyStatus, StatusReceiver, now_ms};

/// States reported by `rowferry_apply_state`.
const STATES: &[State] = &[
    State::Stopped,
    State::Starting,
    State::Running,
    State::Paused,
    State::Retrying,
    State::Stopping,
    State::Failed,
];

/// Gives every metric its help text (once, after the recorder is installed).
pub fn describe() {
    describe_counter!(
        "rowferry_apply_records_total",
        "Change records applied to the target (tombstones and dead-lettered records excluded)."
    );
    describe_counter!(
        "rowferry_apply_rows_total",
        "Row changes applied, by operation (c, u, d, r)."
    );
    describe_counter!(
        "rowferry_apply_bytes_total",
        "Bytes of the change records applied (keys and values)."
    );
    describe_counter!(
        "rowferry_apply_target_transactions_total",
        "Target transactions committed."
    );
    describe_counter!(
        "rowferry_apply_tombstones_total",
        "Tombstone records skipped."
    );
    describe_counter!(
        "rowferry_apply_dead_letter_records_total",
        "Records sent to the dead-letter topic."
    );
    describe_counter!(
        "rowferry_apply_errors_total",
        "Errors by kind: target (retried), fenced, poison (a record the target or decoder refuses), fatal."
    );
    describe_histogram!(
        "rowferry_apply_commit_duration_seconds",
        "Time of one target transaction: offset update, statements and COMMIT."
    );
    describe_histogram!(
        "rowferry_apply_statement_duration_seconds",
        "Time of one statement sent to the target."
    );
    describe_histogram!(
        "rowferry_apply_batch_changes",
        "Changes per target transaction."
    );
    describe_gauge!(
        "rowferry_apply_lag_records",
        "Records in the assigned partitions not yet applied (from librdkafka's last stable offsets)."
    );
    describe_gauge!(
        "rowferry_apply_lag_seconds",
        "Seconds since the source commit of the last change applied on a partition that still \
         has records to apply (0 when caught up): an upper bound of the replication lag."
    );
    describe_gauge!(
        "rowferry_apply_assigned_partitions",
        "Partitions assigned to this instance."
    );
    describe_gauge!(
        "rowferry_apply_state",
        "1 for the apply's lifecycle state, 0 for the others."
    );
    // Series exist from the start (at 0), so rates and alerts work before the first error.
    for kind in ["target", "fenced", "poison", "fatal"] {
        counter!("rowferry_apply_errors_total", "kind" => kind).absolute(0);
    }
}

/// One committed target transaction.
pub(crate) fn target_commit(changes: usize, duration: Duration) {
    histogram!("rowferry_apply_commit_duration_seconds").record(duration.as_secs_f64());
    histogram!("rowferry_apply_batch_changes").record(changes as f64);
}

/// One statement executed.
pub(crate) fn statement(duration: Duration) {
    histogram!("rowferry_apply_statement_duration_seconds").record(duration.as_secs_f64());
}

/// An error of `kind` (`target`, `fenced`, `poison`, `fatal`).
pub(crate) fn error(kind: &'static str) {
    counter!("rowferry_apply_errors_total", "kind" => kind).increment(1);
}

/// The replication lag in seconds as of `now_ms`: over the partitions with records to
/// apply, the longest time since the later of the source commit of the last change applied
/// there and the moment it fell behind (so an idle hour before new changes does not count);
/// 0 when every partition is caught up.
pub fn lag_seconds(status: &ApplyStatus, now_ms: i64) -> f64 {
    status
        .partitions
        .values()
        .filter(|p| p.lag.is_some_and(|lag| lag > 0))
        .map(|p| {
            let since = p.behind_since_ms.unwrap_or(now_ms);
            let from = p.source_ts_ms.map_or(since, |ts| ts.max(since));
            ((now_ms - from).max(0) as f64) / 1000.0
        })
        .fold(0.0, f64::max)
}

/// Reads the apply's status for the endpoint.
pub struct ApplyProbe(Watched<ApplyStatus>);

impl ApplyProbe {
    /// A probe of the pipeline's status and the controller's view (which adds PAUSED).
    pub fn new(status: StatusReceiver, control: watch::Receiver<ControlView>) -> Self {
        Self(Watched::new(status, control, |s| s.state))
    }
}

impl Probe for ApplyProbe {
    fn refresh(&self) {
        let status = self.0.status();
        counter!("rowferry_apply_records_total").absolute(status.records_applied);
        counter!("rowferry_apply_bytes_total").absolute(status.bytes_applied);
        counter!("rowferry_apply_target_transactions_total").absolute(status.target_transactions);
        counter!("rowferry_apply_tombstones_total").absolute(status.tombstones_skipped);
        counter!("rowferry_apply_dead_letter_records_total").absolute(status.dead_lettered);
        set_rows_by_op("rowferry_apply_rows_total", &status.tables);
        let lag: i64 = status.partitions.values().filter_map(|p| p.lag).sum();
        gauge!("rowferry_apply_lag_records").set(lag.max(0) as f64);
        gauge!("rowferry_apply_lag_seconds").set(lag_seconds(&status, now_ms()));
        gauge!("rowferry_apply_assigned_partitions").set(status.partitions.len() as f64);
        set_state("rowferry_apply_state", STATES, self.0.state());
    }

    fn ready(&self) -> Result<(), String> {
        match self.0.state() {
            State::Running | State::Paused => Ok(()),
            other => Err(format!("the apply is {}", other.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PartitionStatus;

    #[test]
    fn lag_counts_from_the_later_of_the_last_change_and_falling_behind() {
        let mut status = ApplyStatus::default();
        assert_eq!(lag_seconds(&status, 100_000), 0.0);
        let partition = |lag, ts: Option<i64>, since: Option<i64>| PartitionStatus {
            next_offset: Some(5),
            source_ts_ms: ts,
            high_watermark: Some(5 + lag),
            lag: Some(lag),
            behind_since_ms: since,
        };
        status
            .partitions
            .insert("t/0".into(), partition(0, Some(1_000), None));
        assert_eq!(lag_seconds(&status, 100_000), 0.0, "caught up");
        // Behind for a while, applying as it goes: the age of the last change applied.
        status
            .partitions
            .insert("t/1".into(), partition(3, Some(90_000), Some(80_000)));
        assert_eq!(lag_seconds(&status, 100_000), 10.0);
        // Idle for an hour, then new changes: counted from when it fell behind.
        status
            .partitions
            .insert("t/2".into(), partition(1, Some(1_000), Some(99_000)));
        assert_eq!(lag_seconds(&status, 100_000), 10.0);
        // Restarted, nothing applied yet: from when it was seen behind.
        status
            .partitions
            .insert("t/3".into(), partition(7, None, Some(70_000)));
        assert_eq!(lag_seconds(&status, 100_000), 30.0);
    }
}
