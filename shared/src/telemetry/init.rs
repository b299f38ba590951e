//! Installs the process's tracing subscriber: log lines to stderr and, when the environment
//! asks for it, spans exported over OTLP.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterFn, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::config::{LogConfig, LogFormat};
use super::log_format::TracedLines;
use super::selection::{Selection, traced};
use super::{otlp, propagation};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An `OTEL_*` variable asks for something unsupported.
    #[error("{variable} {reason}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// What is wrong and what to use instead.
        reason: String,
    },
    /// The exporter could not be built.
    #[error(
        "cannot build the OTLP trace exporter: {0}; check OTEL_EXPORTER_OTLP_ENDPOINT \
         (e.g. http://127.0.0.1:4317 for gRPC, http://127.0.0.1:4318 for http/protobuf)"
    )]
    Exporter(String),
    /// `RUST_LOG` or `log.level` is not a filter.
    #[error("{source_name} is not a valid log filter ({detail}); use a level such as `info`")]
    Filter {
        /// `RUST_LOG` or `log.level`.
        source_name: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// A subscriber was already installed.
    #[error("cannot install the log subscriber: {0}")]
    Install(String),
}

/// The installed telemetry; [`Telemetry::shutdown`] flushes the spans still queued.
#[must_use = "shut telemetry down at exit so queued spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still queued and stops the exporter.
    pub fn shutdown(mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans at exit failed: {error}");
        }
    }
}

/// Installs the subscriber for `service` (`rowferry-capture`, `rowferry-apply`).
pub fn init(
    service: &'static str,
    version: &'static str,
    log: &LogConfig,
) -> Result<Telemetry, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(directives).map_err(|e| TelemetryError::Filter {
                source_name: "RUST_LOG",
                detail: e.to_string(),
            })?
        }
        _ => EnvFilter::try_new(&log.level).map_err(|e| TelemetryError::Filter {
            source_name: "log.level",
            detail: e.to_string(),
        })?,
    };
    let protocol = otlp::protocol_from_env(|name| std::env::var(name).ok())?;
    let provider = match protocol {
        Some(protocol) => Some(otlp::provider(protocol, otlp::resource(service, version))?),
        None => None,
    };
    // What `log` records (rdkafka logs every poll at trace level) may pass: the log filter's
    // levels, WARN at least (the OpenTelemetry layer takes WARN and ERROR events).
    let log_records = filter
        .max_level_hint()
        .unwrap_or(LevelFilter::TRACE)
        .max(LevelFilter::WARN);
    let trace_ids = provider.is_some();
    let lines = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(TracedLines {
                inner: tracing_subscriber::fmt::format(),
                json: false,
                trace_ids,
            })
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(TracedLines {
                inner: tracing_subscriber::fmt::format().pretty(),
                json: false,
                trace_ids,
            })
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(TracedLines {
                inner: tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
                json: true,
                trace_ids,
            })
            .boxed(),
    };
    // Library spans the log filter enables (mysql_async makes one per query, SQL text
    // included) stay out of traces: the only per-layer filter, a static one.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(FilterFn::new(traced))
    });
    let selection = Selection {
        logs: filter,
        traces: provider.is_some(),
    };
    tracing_subscriber::registry()
        .with(selection)
        .with(traces)
        .with(lines)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    // The `log` bridge builds and dispatches every record up to the `log` crate's level, only
    // for the filter to drop most (rdkafka logs each poll at trace level: 15 % more CPU in
    // apply when that level was TRACE). Hold `log` to what can pass.
    log::set_max_level(match log_records {
        level if level >= LevelFilter::TRACE => log::LevelFilter::Trace,
        level if level >= LevelFilter::DEBUG => log::LevelFilter::Debug,
        level if level >= LevelFilter::INFO => log::LevelFilter::Info,
        _ => log::LevelFilter::Warn,
    });
    if let Some(protocol) = protocol {
        propagation::set_enabled();
        tracing::info!(?protocol, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}
