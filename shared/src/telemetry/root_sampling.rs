//! Sampling decided before a root span is made. Capture starts a trace per source
//! transaction; at a 1 % ratio, making 99 spans only for the SDK to drop them cost several
//! µs per transaction. The same sampler the SDK uses decides first on a fresh trace id, and a
//! sampled span then gets exactly that id (through the provider's id generator), so the
//! SDK, asking its sampler again, decides the same.

use std::cell::Cell;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SamplingDecision, ShouldSample};

thread_local! {
    /// The trace id the next root span made on this thread takes.
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

static SAMPLER: OnceLock<Box<dyn ShouldSample>> = OnceLock::new();

/// The provider's id generator: random ids, except for a root span decided on beforehand.
#[derive(Debug, Default)]
pub(crate) struct DecidedIds(RandomIdGenerator);

impl IdGenerator for DecidedIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// Keeps a copy of the provider's sampler for [`sample_root`].
pub(crate) fn install(sampler: Box<dyn ShouldSample>) {
    let _ = SAMPLER.set(sampler);
}

/// Whether a new trace rooted in a span `name` of `kind` is sampled; when it is, the next
/// root span made on this thread carries the trace id the decision was made on (call
/// [`forget_root`] once it is made). `false` while traces are not exported.
pub fn sample_root(name: &str, kind: SpanKind) -> bool {
    let Some(sampler) = SAMPLER.get() else {
        return false;
    };
    let trace_id = RandomIdGenerator::default().new_trace_id();
    let decision = sampler
        .should_sample(None, trace_id, name, &kind, &[], &[])
        .decision;
    let sampled = decision == SamplingDecision::RecordAndSample;
    if sampled {
        NEXT_TRACE_ID.with(|next| next.set(Some(trace_id)));
    }
    sampled
}

/// Drops a decided trace id that no span took.
pub fn forget_root() {
    NEXT_TRACE_ID.with(|next| next.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::Sampler;

    #[test]
    fn a_sampled_root_takes_the_trace_id_it_was_decided_on() {
        install(Box::new(Sampler::TraceIdRatioBased(0.5)));
        let ids = DecidedIds::default();
        let ratio = Sampler::TraceIdRatioBased(0.5);
        let mut sampled = 0;
        for _ in 0..200 {
            if sample_root("publish", SpanKind::Producer) {
                sampled += 1;
                let trace_id = ids.new_trace_id();
                // The SDK, asking the same sampler about the id the span got, agrees.
                let again =
                    ratio.should_sample(None, trace_id, "publish", &SpanKind::Producer, &[], &[]);
                assert_eq!(again.decision, SamplingDecision::RecordAndSample);
            }
            forget_root();
            assert_ne!(ids.new_trace_id(), ids.new_trace_id(), "random otherwise");
        }
        assert!(
            (50..150).contains(&sampled),
            "{sampled} of 200 sampled at 0.5"
        );
    }
}
