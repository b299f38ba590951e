//! The span of one source transaction: it starts with the transaction's first captured row
//! and ends when the Kafka transaction holding its last record commits. Every record of the
//! transaction carries its W3C trace context, so apply continues the same trace.

use opentelemetry::trace::SpanKind;
use rowferry_shared::event::TableId;
use rowferry_shared::telemetry::TraceHeaders;
use rowferry_shared::telemetry::propagation::{self, TRACEPARENT, TRACESTATE};
use rowferry_shared::telemetry::root_sampling;

/// A traced source transaction (made only while traces are exported, and kept only when
/// sampled).
pub(crate) struct TransactionSpan {
    span: tracing::Span,
    headers: TraceHeaders,
    /// Distinct tables (`db.table`) and topics, in first-seen order.
    tables: Vec<TableId>,
    topics: Vec<String>,
    rows: u64,
    /// Its Kafka transaction committed; a span dropped without it was abandoned.
    committed: bool,
}

/// Where the transaction starts in the binlog.
pub(crate) struct Origin<'a> {
    pub flavor: &'a str,
    pub gtid: Option<String>,
    pub file: &'a str,
    pub pos: u64,
}

impl TransactionSpan {
    /// Opens the span of a transaction, or `None` when the sampler leaves it out: then its
    /// records carry no trace context and nothing more is spent on it.
    pub fn start(origin: Origin<'_>) -> Option<Self> {
        // Decided before the span is made: an unsampled transaction costs a random id and a
        // sampler call, nothing more.
        if !root_sampling::sample_root("publish", SpanKind::Producer) {
            return None;
        }
        let span = tracing::info_span!(
            target: "rowferry_capture::transaction",
            "source transaction",
            otel.name = "publish",
            otel.kind = "producer",
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            messaging.system = tracing::field::Empty,
            messaging.operation.type = tracing::field::Empty,
            messaging.operation.name = tracing::field::Empty,
            messaging.destination.name = tracing::field::Empty,
            messaging.batch.message_count = tracing::field::Empty,
            db.system.name = tracing::field::Empty,
            db.namespace = tracing::field::Empty,
            rowferry.tables = tracing::field::Empty,
            rowferry.source.gtid = tracing::field::Empty,
            rowferry.binlog.file = tracing::field::Empty,
            rowferry.binlog.position = tracing::field::Empty,
            rowferry.binlog.end_position = tracing::field::Empty,
            rowferry.source.commit_ts_ms = tracing::field::Empty,
            rowferry.rows = tracing::field::Empty,
        );
        let headers = propagation::sampled_headers_of(&span);
        root_sampling::forget_root();
        let headers = headers?;
        span.record("messaging.system", "kafka");
        span.record("messaging.operation.type", "send");
        span.record("messaging.operation.name", "send");
        span.record("db.system.name", origin.flavor);
        if let Some(gtid) = &origin.gtid {
            span.record("rowferry.source.gtid", gtid.as_str());
        }
        span.record("rowferry.binlog.file", origin.file);
        span.record("rowferry.binlog.position", origin.pos);
        Some(Self {
            span,
            headers,
            tables: Vec::new(),
            topics: Vec::new(),
            rows: 0,
            committed: false,
        })
    }

    /// Counts one record of `table` sent to `topic`.
    pub fn note(&mut self, table: &TableId, topic: &str) {
        self.rows += 1;
        if self.tables.last() != Some(table) && !self.tables.contains(table) {
            self.tables.push(table.clone());
        }
        if self.topics.last().map(String::as_str) != Some(topic)
            && !self.topics.iter().any(|t| t == topic)
        {
            self.topics.push(topic.to_owned());
        }
    }

    /// The headers each record of the transaction carries.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once((TRACEPARENT, self.headers.traceparent.as_str())).chain(
            self.headers
                .tracestate
                .as_deref()
                .map(|state| (TRACESTATE, state)),
        )
    }

    /// Records what the whole transaction was, once its end is read.
    pub fn finish(&self, end_pos: u64, commit_ts_ms: i64) {
        let span = &self.span;
        span.record("rowferry.rows", self.rows);
        span.record("messaging.batch.message_count", self.rows);
        span.record("rowferry.binlog.end_position", end_pos);
        if commit_ts_ms > 0 {
            span.record("rowferry.source.commit_ts_ms", commit_ts_ms);
        }
        let tables: Vec<String> = self.tables.iter().map(ToString::to_string).collect();
        span.record("rowferry.tables", tables.join(",").as_str());
        let mut databases: Vec<&str> = self.tables.iter().map(|t| t.db.as_str()).collect();
        databases.sort_unstable();
        databases.dedup();
        if databases.len() == 1 {
            span.record("db.namespace", databases[0]);
        }
        if let [topic] = self.topics.as_slice() {
            span.record("messaging.destination.name", topic.as_str());
        }
    }

    /// Its records are committed in Kafka: the span ends well.
    pub fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for TransactionSpan {
    fn drop(&mut self) {
        if !self.committed {
            self.span.record("otel.status_code", "ERROR");
            self.span.record(
                "otel.status_description",
                "not committed to Kafka: the run was interrupted and reads the transaction again",
            );
        }
    }
}
