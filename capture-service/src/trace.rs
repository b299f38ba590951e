//! The span of one source transaction: it starts with the transaction's first captured row
//! and ends when the Kafka transaction holding its last record commits. Every record of the
//! transaction carries its W3C trace context, so apply continues the same trace.

use rowferry_shared::event::TableId;
use rowferry_shared::telemetry::TraceHeaders;
use rowferry_shared::telemetry::propagation::{self, TRACEPARENT, TRACESTATE};

/// A traced source transaction (made only while traces are exported).
pub(crate) struct TransactionSpan {
    span: tracing::Span,
    headers: Option<TraceHeaders>,
    /// Distinct tables (`db.table`) and topics, in first-seen order.
    tables: Vec<TableId>,
    topics: Vec<String>,
    rows: u64,
}

/// Where the transaction starts in the binlog.
pub(crate) struct Origin<'a> {
    pub flavor: &'a str,
    pub gtid: Option<String>,
    pub file: &'a str,
    pub pos: u64,
}

impl TransactionSpan {
    /// Opens the span of a transaction.
    pub fn start(origin: Origin<'_>) -> Self {
        let span = tracing::info_span!(
            target: "rowferry_capture::transaction",
            "source transaction",
            otel.name = "publish",
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.operation.type = "send",
            messaging.operation.name = "send",
            messaging.destination.name = tracing::field::Empty,
            messaging.batch.message_count = tracing::field::Empty,
            db.system.name = origin.flavor,
            db.namespace = tracing::field::Empty,
            rowferry.tables = tracing::field::Empty,
            rowferry.source.gtid = origin.gtid,
            rowferry.binlog.file = origin.file,
            rowferry.binlog.position = origin.pos,
            rowferry.binlog.end_position = tracing::field::Empty,
            rowferry.source.commit_ts_ms = tracing::field::Empty,
            rowferry.rows = tracing::field::Empty,
        );
        let headers = propagation::headers_of(&span);
        Self {
            span,
            headers,
            tables: Vec::new(),
            topics: Vec::new(),
            rows: 0,
        }
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
        self.headers.iter().flat_map(|h| {
            std::iter::once((TRACEPARENT, h.traceparent.as_str()))
                .chain(h.tracestate.as_deref().map(|s| (TRACESTATE, s)))
        })
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
}
