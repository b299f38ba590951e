//! The `[log]` and `[metrics]` sections, the same for both services.

use serde::Deserialize;

/// How log lines look (`[log]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (one human-readable line per event) or `json` (one JSON object per line, for
    /// log collectors).
    #[serde(default)]
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax (`info`, `warn,rowferry_capture=debug`); `RUST_LOG`, when
    /// set, wins.
    #[serde(default = "default_level")]
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

impl LogConfig {
    /// Checks the filter; the error names the key and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map(|_| ())
            .map_err(|e| {
                (
                    "log.level",
                    format!(
                        "is not a valid filter ({e}); use a level (`info`) or directives like \
                         `warn,rowferry_capture=debug`"
                    ),
                )
            })
    }
}

/// The Prometheus endpoint (`[metrics]`): `/metrics`, `/healthz` and `/readyz` over HTTP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address (`127.0.0.1:9464`); empty disables the endpoint; unset: the service's
    /// default.
    #[serde(default)]
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The listen address, `default` when unset; empty when disabled.
    pub fn listen<'a>(&'a self, default: &'a str) -> &'a str {
        self.listen.as_deref().unwrap_or(default)
    }
}
