//! Apply configuration: a TOML file, every key overridable by environment variables
//! (`ROWFERRY_APPLY_<SECTION>__<KEY>`, e.g. `ROWFERRY_APPLY_TARGET__URL=mysql://…`).
//!
//! Passwords come from the file, a named environment variable or a file of their own, and never
//! appear in `Debug` output, logs or status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rowferry_shared::config::{ConnectionUrl, PasswordError, Secret};
use serde::Deserialize;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ROWFERRY_APPLY_";

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be parsed into the configuration.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// The password could not be read.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Everything `rowferry-apply` is told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Logical name of this apply: the default consumer group (whose offsets the target
    /// stores) and dead-letter topic prefix. Instances with one group share the work and
    /// fence each other.
    pub name: String,
    /// The Kafka side.
    pub kafka: KafkaConfig,
    /// The target database.
    pub target: TargetConfig,
    /// How changes are written.
    #[serde(default)]
    pub apply: ApplyOptions,
    /// How many changes go into one target transaction.
    #[serde(default)]
    pub batch: BatchConfig,
    /// gRPC control endpoint.
    #[serde(default)]
    pub control: rowferry_shared::config::ControlConfig,
    /// Log lines.
    #[serde(default)]
    pub log: rowferry_shared::telemetry::LogConfig,
    /// Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`).
    #[serde(default)]
    pub metrics: rowferry_shared::telemetry::MetricsConfig,
}

/// Value format of records without a `content-type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FormatFallback {
    /// JSON if the value starts with `{`, protobuf otherwise.
    Auto,
    /// Debezium JSON, with or without schema.
    DebeziumJson,
    /// `rowferry.event.v1.ChangeEvent`.
    Protobuf,
}

/// Where a partition without a stored offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAt {
    /// The oldest record still in the partition.
    Earliest,
    /// Only records written from now on.
    Latest,
}

/// Where the changes come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub bootstrap_servers: String,
    /// Topics to consume (`demo.shop.orders`).
    #[serde(default)]
    pub topics: Vec<String>,
    /// …or a regular expression over topic names (`demo\.shop\..*`), matched whole;
    /// new matching topics are picked up as they appear.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Consumer group; the apply name when empty.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where a partition with no offset stored in the target starts.
    #[serde(default = "default_start")]
    pub start: StartAt,
    /// Format of records that have no `content-type` header (Debezium's own connector writes
    /// none).
    #[serde(default = "default_format")]
    pub format: FormatFallback,
    /// Topic that receives poison records under `apply.poison_policy = "dead-letter"`;
    /// `<name>.dead-letter` when empty.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka consumer/producer settings (`security.protocol`, `sasl.*`…).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_start() -> StartAt {
    StartAt::Earliest
}
fn default_format() -> FormatFallback {
    FormatFallback::Auto
}

/// Where the changes go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `mysql://user@host:port` of an account that may write the target tables (and create
    /// or alter them with `create_tables`/`evolve`, and create the offsets table).
    pub url: ConnectionUrl,
    /// The password, if not in the URL.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Write every table into this database instead of the source's database name.
    #[serde(default)]
    pub database: Option<String>,
    /// Database of the offsets table (created if missing).
    #[serde(default = "default_offsets_database")]
    pub offsets_database: String,
    /// The offsets table (created if missing).
    #[serde(default = "default_offsets_table")]
    pub offsets_table: String,
    /// Keep foreign-key checks on in the apply sessions. Off by default, as on replicas:
    /// partitions apply in parallel, so a child row may arrive before its parent.
    #[serde(default)]
    pub foreign_key_checks: bool,
    /// First delay after a transient error (deadlock, lost connection), doubling up to
    /// `retry_max_ms`, in milliseconds.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

fn default_offsets_database() -> String {
    "rowferry".into()
}
fn default_offsets_table() -> String {
    "rowferry_offsets".into()
}
fn default_retry_initial_ms() -> u64 {
    200
}
fn default_retry_max_ms() -> u64 {
    30_000
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// `INSERT … ON DUPLICATE KEY UPDATE`: replays are harmless.
    Upsert,
    /// Plain `INSERT` for creates and snapshot reads (a duplicate key is an error),
    /// `UPDATE` by key for updates.
    Insert,
}

/// What deletes do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteMode {
    /// Delete the row in the target.
    Apply,
    /// Keep it (an archive target).
    Ignore,
}

/// What happens to a record that cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoisonPolicy {
    /// Stop; the status says FAILED with the record's topic, partition, offset and reason.
    Fail,
    /// Send it to the dead-letter topic with the reason in headers, then go on.
    DeadLetter,
}

/// Write options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyOptions {
    /// `upsert` or `insert`.
    #[serde(default = "default_mode")]
    pub mode: WriteMode,
    /// `apply` or `ignore`.
    #[serde(default = "default_deletes")]
    pub deletes: DeleteMode,
    /// Apply each source transaction atomically (for topics that carry whole source
    /// transactions in one partition): a target transaction never ends inside one.
    #[serde(default)]
    pub transactional: bool,
    /// Create missing target tables from the records' schema.
    #[serde(default)]
    pub create_tables: bool,
    /// Add columns that records carry and the target table lacks (`ALTER TABLE … ADD COLUMN`).
    #[serde(default)]
    pub evolve: bool,
    /// `fail` or `dead-letter`.
    #[serde(default = "default_poison")]
    pub poison_policy: PoisonPolicy,
}

fn default_mode() -> WriteMode {
    WriteMode::Upsert
}
fn default_deletes() -> DeleteMode {
    DeleteMode::Apply
}
fn default_poison() -> PoisonPolicy {
    PoisonPolicy::Fail
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            deletes: default_deletes(),
            transactional: false,
            create_tables: false,
            evolve: false,
            poison_policy: default_poison(),
        }
    }
}

/// Target transaction sizing, per partition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Commit once this many records are in the transaction.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Commit once this many record bytes are in the transaction.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Wait at most this long for more records before committing a partial batch, in
    /// milliseconds. Records already waiting are always taken without delay.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// Rows per multi-row statement.
    #[serde(default = "default_statement_rows")]
    pub statement_rows: usize,
}

fn default_max_rows() -> usize {
    5_000
}
fn default_max_bytes() -> usize {
    4 << 20
}
fn default_linger_ms() -> u64 {
    5
}
fn default_statement_rows() -> usize {
    1_000
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            linger_ms: default_linger_ms(),
            statement_rows: default_statement_rows(),
        }
    }
}

/// Where the metrics endpoint listens unless `metrics.listen` says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9465";

/// The default listen address of the gRPC control endpoint.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50052";

impl ApplyConfig {
    /// Reads `path` (if any) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: ApplyConfig =
            rowferry_shared::config::load(path, ENV_PREFIX).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (tests and embedded configs).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: ApplyConfig =
            rowferry_shared::config::from_toml(text).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !rowferry_shared::config::is_valid_name(&self.name) {
            return invalid(
                "name",
                "must be non-empty and use only letters, digits, `.`, `_` and `-`",
            );
        }
        if let Err((key, reason)) = self.control.check(DEFAULT_GRPC_LISTEN) {
            return invalid(key, &reason);
        }
        if let Err((key, reason)) = self.log.check() {
            return invalid(key, &reason);
        }
        match (&self.kafka.topics.is_empty(), &self.kafka.topic_pattern) {
            (true, None) => {
                return invalid(
                    "kafka.topics",
                    "name the topics to apply (`topics = [\"demo.shop.orders\"]`) or set \
                     `topic_pattern` (`topic_pattern = 'demo\\.shop\\..*'`)",
                );
            }
            (false, Some(_)) => {
                return invalid(
                    "kafka.topic_pattern",
                    "set either `topics` or `topic_pattern`, not both",
                );
            }
            (_, Some(pattern)) => {
                if let Err(e) = regex::Regex::new(pattern) {
                    return invalid(
                        "kafka.topic_pattern",
                        &format!("not a regular expression: {e}"),
                    );
                }
            }
            _ => {}
        }
        let consumes = |topic: &str| match &self.kafka.topic_pattern {
            Some(pattern) => {
                regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(topic))
            }
            None => self.kafka.topics.iter().any(|t| t == topic),
        };
        let positions = rowferry_shared::config::DEFAULT_CAPTURE_OFFSETS_TOPIC;
        if consumes(positions) {
            return invalid(
                "kafka.topic_pattern",
                &format!(
                    "it matches {positions}, the capture's topic of stored positions, whose \
                     records are not change events; match the table topics only, e.g. \
                     '<capture name>\\.<database>\\..*'"
                ),
            );
        }
        let dead_letter = self.dead_letter_topic();
        if consumes(&dead_letter) {
            return invalid(
                "kafka.dead_letter_topic",
                &format!(
                    "{dead_letter} is among the topics this apply consumes, so poison records \
                     would come back forever; choose a dead-letter topic outside them"
                ),
            );
        }
        for (key, value) in &self.kafka.properties {
            let incremental = (key == "partition.assignment.strategy"
                && value.contains("cooperative"))
                || (key == "group.protocol" && value == "consumer");
            if incremental {
                return invalid(
                    "kafka.properties",
                    &format!(
                        "{key} = {value:?} asks for incremental rebalancing, which apply does \
                         not support yet; leave it at the default (eager: range,roundrobin)"
                    ),
                );
            }
        }
        if self.batch.max_rows == 0 || self.batch.statement_rows == 0 {
            return invalid("batch", "max_rows and statement_rows must be 1 or more");
        }
        for (key, name) in [
            ("target.offsets_database", &self.target.offsets_database),
            ("target.offsets_table", &self.target.offsets_table),
        ] {
            if name.is_empty() {
                return invalid(key, "must not be empty");
            }
        }
        Ok(())
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        self.kafka.group_id.as_deref().unwrap_or(&self.name)
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> String {
        self.kafka
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dead-letter", self.name))
    }

    /// The target password from whichever place it was given, if any.
    pub fn target_password(&self) -> Result<Option<Secret>, ConfigError> {
        Ok(rowferry_shared::config::read_password(
            self.target.password.as_ref(),
            self.target.password_file.as_deref(),
            self.target.password_env.as_deref(),
            "target.password_env",
        )?)
    }

    /// The linger.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.batch.linger_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "demo-apply"
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"
        topics = ["demo.shop.orders"]
        [target]
        url = "mysql://rowferry@127.0.0.1:3307"
        password = "s3cret"
    "#;

    #[test]
    fn minimal_config_gets_defaults() -> anyhow::Result<()> {
        let config = ApplyConfig::from_toml(MINIMAL)?;
        assert_eq!(config.group_id(), "demo-apply");
        assert_eq!(config.apply.mode, WriteMode::Upsert);
        assert_eq!(config.apply.deletes, DeleteMode::Apply);
        assert_eq!(config.apply.poison_policy, PoisonPolicy::Fail);
        assert_eq!(config.kafka.format, FormatFallback::Auto);
        assert_eq!(config.dead_letter_topic(), "demo-apply.dead-letter");
        assert!(!config.target.foreign_key_checks);
        Ok(())
    }

    #[test]
    fn the_example_configuration_is_valid() -> anyhow::Result<()> {
        let example = include_str!("../apply.example.toml").replace(
            "password_env = \"ROWFERRY_TARGET_PASSWORD\"",
            "password = \"x\"",
        );
        let config = ApplyConfig::from_toml(&example)?;
        assert_eq!(
            config.kafka.topic_pattern.as_deref(),
            Some("demo\\.shop\\..*")
        );
        Ok(())
    }

    #[test]
    fn passwords_never_print() -> anyhow::Result<()> {
        let config = ApplyConfig::from_toml(MINIMAL)?;
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        Ok(())
    }

    #[test]
    // figment's own error type is large; it is only returned inside this test.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("apply.toml", MINIMAL)?;
            jail.set_env("ROWFERRY_APPLY_APPLY__MODE", "insert");
            jail.set_env("ROWFERRY_APPLY_TARGET__PASSWORD_ENV", "MY_TARGET_PASSWORD");
            jail.set_env("MY_TARGET_PASSWORD", "from-env");
            let config =
                ApplyConfig::load(Some(Path::new("apply.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.apply.mode, WriteMode::Insert);
            // The inline password wins over the environment variable.
            let password = config.target_password().map_err(|e| e.to_string())?;
            assert_eq!(password.as_ref().map(Secret::expose), Some("s3cret"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let error = |text: &str| {
            ApplyConfig::from_toml(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let no_topics = MINIMAL.replace("topics = [\"demo.shop.orders\"]", "");
        assert!(
            error(&no_topics).contains("topic_pattern"),
            "{}",
            error(&no_topics)
        );
        let both = MINIMAL.replace(
            "topics = [\"demo.shop.orders\"]",
            "topics = [\"a\"]\ntopic_pattern = \"b.*\"",
        );
        assert!(error(&both).contains("not both"));
        let mode = format!("{MINIMAL}\n[apply]\nmode = \"merge\"\n");
        assert!(error(&mode).contains("upsert"), "{}", error(&mode));
        let unknown = format!("{MINIMAL}\n[apply]\nmodes = \"upsert\"\n");
        assert!(error(&unknown).contains("modes"), "{}", error(&unknown));
        let loop_back = MINIMAL.replace(
            "topics = [\"demo.shop.orders\"]",
            "topic_pattern = 'demo-apply\\..*'",
        );
        assert!(
            error(&loop_back).contains("dead-letter"),
            "{}",
            error(&loop_back)
        );
        let positions = MINIMAL.replace(
            "topics = [\"demo.shop.orders\"]",
            "topic_pattern = 'rowferry\\..*'",
        );
        assert!(
            error(&positions).contains("rowferry.capture.offsets"),
            "{}",
            error(&positions)
        );
        let cooperative = format!(
            "{MINIMAL}\n[kafka.properties]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n"
        );
        assert!(
            error(&cooperative).contains("eager"),
            "{}",
            error(&cooperative)
        );
    }
}
