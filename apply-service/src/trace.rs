//! The spans of one target commit, continuing the traces the records were produced in: in
//! transactional mode a child span of each source transaction's producer span; in batch
//! mode one span for the batch with a link to each producer span (a batch mixes many source
//! transactions and may hold only part of one).

use opentelemetry::trace::SpanContext;
use rowferry_shared::telemetry::propagation::{parent_context, span_context_of};
use rowferry_shared::telemetry::tracing_enabled;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::record::{Record, TraceParent};

/// Links per batch span at most (the SDK's default link limit).
const MAX_LINKS: usize = 128;

/// Where the records come from.
pub(crate) struct Batch<'a> {
    pub records: &'a [Record],
    pub topic: &'a str,
    pub partition: i32,
    pub group: &'a str,
    pub transactional: bool,
}

/// The open spans of one target commit; they end when dropped.
#[derive(Default)]
pub(crate) struct CommitSpans {
    spans: Vec<tracing::Span>,
}

/// The distinct producer contexts of `records`, in order, with their record counts and
/// first offsets.
fn producers(records: &[Record]) -> Vec<(SpanContext, usize, i64)> {
    let mut found: Vec<(SpanContext, usize, i64)> = Vec::new();
    let mut last: Option<&TraceParent> = None;
    for record in records {
        let Some(trace) = record.trace.as_deref() else {
            continue;
        };
        if last == Some(trace)
            && let Some(entry) = found.last_mut()
        {
            entry.1 += 1;
            continue;
        }
        last = Some(trace);
        let Some(context) = span_context_of(&trace.traceparent, trace.tracestate.as_deref()) else {
            continue;
        };
        match found.iter_mut().find(|(c, _, _)| *c == context) {
            Some(entry) => entry.1 += 1,
            None => found.push((context, 1, record.offset)),
        }
    }
    found
}

fn process_span(batch: &Batch<'_>, records: usize, first_offset: i64) -> tracing::Span {
    tracing::info_span!(
        target: "rowferry_apply::commit",
        "target commit",
        otel.name = %format!("process {}", batch.topic),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = batch.topic,
        messaging.destination.partition.id = %batch.partition,
        messaging.consumer.group.name = batch.group,
        messaging.kafka.offset = first_offset,
        messaging.batch.message_count = records,
        rowferry.commit.changes = tracing::field::Empty,
        rowferry.commit.statements = tracing::field::Empty,
    )
}

impl CommitSpans {
    /// Opens the spans of a commit of `batch` (nothing while traces are not exported).
    pub fn start(batch: &Batch<'_>) -> Self {
        if !tracing_enabled() || batch.records.is_empty() {
            return Self::default();
        }
        let producers = producers(batch.records);
        let spans = if batch.transactional {
            producers
                .iter()
                .map(|(context, records, first_offset)| {
                    let span = process_span(batch, *records, *first_offset);
                    let _ = span.set_parent(parent_context(context));
                    span
                })
                .collect()
        } else {
            let span = process_span(batch, batch.records.len(), batch.records[0].offset);
            for (context, _, _) in producers.iter().take(MAX_LINKS) {
                span.add_link(context.clone());
            }
            vec![span]
        };
        Self { spans }
    }

    /// The commit succeeded with `changes` changes in `statements` statements (the whole
    /// target transaction's, which may hold several source transactions).
    pub fn committed(&self, changes: usize, statements: usize) {
        for span in &self.spans {
            span.record("rowferry.commit.changes", changes);
            span.record("rowferry.commit.statements", statements);
        }
    }

    /// The commit failed for good.
    pub fn failed(&self, reason: &str) {
        for span in &self.spans {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", reason);
        }
    }
}
