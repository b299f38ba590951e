//! Capture's Prometheus metrics. Counts the status already keeps are copied from it at each
//! scrape (nothing extra on the streaming path); latencies and sizes are recorded per Kafka
//! commit.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use rowferry_shared::lifecycle::{ControlView, State};
use rowferry_shared::telemetry::metrics_endpoint::{Probe, Watched, set_rows_by_op, set_state};

use tokio::sync::watch;

use crate::status::{CaptureStatus, StatusReceiver};

/// States reported by `rowferry_capture_state`.
const STATES: &[State] = &[
    State::Stopped,
    State::Starting,
    State::Snapshotting,
    State::Running,
    State::Paused,
    State::Retrying,
    State::Stopping,
    State::Failed,
];

/// Gives every metric its help text (once, after the recorder is installed).
pub fn describe() {
    describe_counter!(
        "rowferry_capture_records_total",
        "Change records committed to Kafka (snapshot reads included)."
    );
    describe_counter!(
        "rowferry_capture_rows_total",
        "Row changes committed to Kafka, by operation (c, u, d, r)."
    );
    describe_counter!(
        "rowferry_capture_bytes_total",
        "Bytes of the change records committed (keys and values)."
    );
    describe_counter!(
        "rowferry_capture_source_transactions_total",
        "Source transactions read to their end."
    );
    describe_counter!(
        "rowferry_capture_kafka_transactions_total",
        "Kafka transactions committed."
    );
    describe_histogram!(
        "rowferry_capture_kafka_commit_duration_seconds",
        "Time to commit a Kafka transaction (flush of its records included)."
    );
    describe_histogram!(
        "rowferry_capture_kafka_transaction_records",
        "Change records per committed Kafka transaction."
    );
    describe_counter!(
        "rowferry_capture_errors_total",
        "Errors that interrupted the capture, by kind and whether it retried or failed."
    );
    describe_counter!(
        "rowferry_capture_dead_letter_records_total",
        "Records too large for Kafka whose key went to the dead-letter topic."
    );
    describe_gauge!(
        "rowferry_capture_lag_seconds",
        "Seconds between the source commit of the last event read and now (0 when caught up)."
    );
    describe_gauge!(
        "rowferry_capture_snapshot_rows",
        "Rows the current or last snapshot delivered."
    );
    describe_gauge!(
        "rowferry_capture_snapshot_rows_estimated",
        "Rows the current or last snapshot is expected to deliver."
    );
    describe_gauge!(
        "rowferry_capture_snapshot_tables_remaining",
        "Tables the running snapshot has not finished."
    );
    describe_gauge!(
        "rowferry_capture_state",
        "1 for the capture's lifecycle state, 0 for the others."
    );
    // Series exist from the start (at 0), so rates and alerts work before the first event.
    for kind in ERROR_KINDS {
        for outcome in ["retried", "failed"] {
            counter!("rowferry_capture_errors_total", "kind" => *kind, "outcome" => outcome)
                .absolute(0);
        }
    }
    counter!("rowferry_capture_dead_letter_records_total").absolute(0);
    for name in [
        "rowferry_capture_snapshot_rows",
        "rowferry_capture_snapshot_rows_estimated",
        "rowferry_capture_snapshot_tables_remaining",
    ] {
        gauge!(name).set(0.0);
    }
}

/// The `kind` labels of `rowferry_capture_errors_total` (see `CaptureError::kind`).
const ERROR_KINDS: &[&str] = &[
    "config", "filter", "source", "kafka", "decode", "codec", "position", "snapshot",
];

/// One committed Kafka transaction.
pub(crate) fn kafka_commit(records: usize, duration: Duration) {
    histogram!("rowferry_capture_kafka_commit_duration_seconds").record(duration.as_secs_f64());
    if records > 0 {
        histogram!("rowferry_capture_kafka_transaction_records").record(records as f64);
    }
}

/// An error that interrupted the run.
pub(crate) fn error(kind: &'static str, retried: bool) {
    let outcome = if retried { "retried" } else { "failed" };
    counter!("rowferry_capture_errors_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// A record sent to the dead-letter topic.
pub(crate) fn dead_lettered() {
    counter!("rowferry_capture_dead_letter_records_total").increment(1);
}

/// Reads the capture's status for the endpoint.
pub struct CaptureProbe(Watched<CaptureStatus>);

impl CaptureProbe {
    /// A probe of the pipeline's status and the controller's view (which adds PAUSED).
    pub fn new(status: StatusReceiver, control: watch::Receiver<ControlView>) -> Self {
        Self(Watched::new(status, control, |s| s.state))
    }
}

impl Probe for CaptureProbe {
    fn refresh(&self) {
        let status = self.0.status();
        counter!("rowferry_capture_records_total").absolute(status.records_committed);
        counter!("rowferry_capture_bytes_total").absolute(status.bytes_committed);
        counter!("rowferry_capture_source_transactions_total").absolute(status.source_transactions);
        counter!("rowferry_capture_kafka_transactions_total").absolute(status.kafka_transactions);
        set_rows_by_op("rowferry_capture_rows_total", &status.tables);
        gauge!("rowferry_capture_lag_seconds").set(status.lag_seconds.unwrap_or(0.0));
        if let Some(snapshot) = &status.snapshot {
            gauge!("rowferry_capture_snapshot_rows").set(snapshot.rows as f64);
            gauge!("rowferry_capture_snapshot_rows_estimated").set(snapshot.estimated_rows as f64);
            let remaining = snapshot.tables.iter().filter(|t| !t.done).count();
            gauge!("rowferry_capture_snapshot_tables_remaining").set(remaining as f64);
        }
        set_state("rowferry_capture_state", STATES, self.0.state());
    }

    fn ready(&self) -> Result<(), String> {
        match self.0.state() {
            State::Running | State::Paused | State::Snapshotting => Ok(()),
            other => Err(format!("the capture is {}", other.as_str())),
        }
    }
}
