//! The `[log]` and `[metrics]` sections, the same for both services.

use serde::Deserialize;

/// How log lines look (`[log]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (one line per event), `pretty` (several indented lines per event, for a
    /// terminal) or `json` (one JSON object per line, for log collectors).
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
    /// One line per event.
    #[default]
    Text,
    /// Several lines per event, fields and span context indented.
    Pretty,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sections {
        #[serde(default)]
        log: LogConfig,
        #[serde(default)]
        metrics: MetricsConfig,
    }

    fn parse(text: &str) -> Result<Sections, String> {
        crate::config::from_toml(text)
    }

    #[test]
    fn formats_levels_and_listen_addresses_parse() {
        let defaults = parse("").expect("empty config");
        assert_eq!(defaults.log.format, LogFormat::Text);
        assert_eq!(defaults.metrics.listen("127.0.0.1:9464"), "127.0.0.1:9464");
        for (text, format) in [
            ("[log]\nformat = \"json\"", LogFormat::Json),
            ("[log]\nformat = \"pretty\"", LogFormat::Pretty),
        ] {
            assert_eq!(parse(text).map(|s| s.log.format), Ok(format));
        }
        let off = parse("[metrics]\nlisten = \"\"").expect("metrics off");
        assert_eq!(off.metrics.listen("127.0.0.1:9464"), "");
        let error = parse("[log]\nformat = \"xml\"").err().unwrap_or_default();
        assert!(error.contains("xml") && error.contains("json"), "{error}");
    }

    #[test]
    fn a_bad_filter_names_the_key_and_the_fix() {
        let log = LogConfig {
            format: LogFormat::Text,
            level: "info,rowferry_capture=loud".into(),
        };
        let (key, reason) = log.check().err().unwrap_or_default();
        assert_eq!(key, "log.level");
        assert!(reason.contains("use a level"), "{reason}");
        assert!(LogConfig::default().check().is_ok());
    }
}
