//! Telemetry both services share: structured logs, OpenTelemetry traces exported over OTLP,
//! W3C trace context carried in Kafka headers, and the Prometheus metrics endpoint.

mod config;
mod init;
mod log_format;
pub mod metrics_endpoint;
mod otlp;
pub mod propagation;
pub mod root_sampling;
mod selection;

pub use config::{LogConfig, LogFormat, MetricsConfig};
pub use init::{Telemetry, TelemetryError, init};
pub use propagation::{TraceHeaders, tracing_enabled};
