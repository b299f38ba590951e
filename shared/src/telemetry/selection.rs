//! Which spans and events the process records at all: the log filter's, and, while traces
//! are exported, rowferry's spans at INFO and above and every warning and error (they become
//! span events).
//!
//! One global filter rather than one per layer for both: with the log filter and the trace
//! filter each on its own layer, tracing-subscriber now and then left a freshly created span
//! enabled for neither (a traced control call went missing from both the log and the trace
//! in about one run of three under load). The log layer takes everything selected (with
//! `log.level = "error"` and traces on, warnings are logged too); the trace layer keeps a
//! static filter of its own, so library spans stay out of traces.

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The global filter.
pub(crate) struct Selection {
    /// The log filter (`RUST_LOG` or `log.level`).
    pub logs: EnvFilter,
    /// Traces are exported.
    pub traces: bool,
}

/// Spans of rowferry's own code at INFO and above, and WARN/ERROR events; library spans
/// (mysql_async's per query, h2's…) and chatty events stay out of traces.
pub(crate) fn traced(metadata: &Metadata<'_>) -> bool {
    if metadata.is_span() {
        metadata.target().starts_with("rowferry") && *metadata.level() <= Level::INFO
    } else {
        *metadata.level() <= Level::WARN
    }
}

impl<S> Layer<S> for Selection
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.traces && traced(metadata) {
            return Interest::always();
        }
        <EnvFilter as Layer<S>>::register_callsite(&self.logs, metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        (self.traces && traced(metadata))
            || <EnvFilter as Layer<S>>::enabled(&self.logs, metadata, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let logs = <EnvFilter as Layer<S>>::max_level_hint(&self.logs);
        if self.traces {
            logs.map(|level| level.max(LevelFilter::INFO))
        } else {
            logs
        }
    }

    // The log filter's span-scoped directives (`[span{field=value}]=debug`) follow spans.
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_new_span(&self.logs, attrs, id, cx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_record(&self.logs, id, values, cx);
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_enter(&self.logs, id, cx);
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_exit(&self.logs, id, cx);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_close(&self.logs, id, cx);
    }

    fn event_enabled(&self, event: &Event<'_>, cx: Context<'_, S>) -> bool {
        (self.traces && traced(event.metadata()))
            || <EnvFilter as Layer<S>>::event_enabled(&self.logs, event, cx)
    }
}
