//! Capture configuration: a TOML file, every key overridable by environment variables
//! (`ROWFERRY_CAPTURE_<SECTION>__<KEY>`, e.g. `ROWFERRY_CAPTURE_SOURCE__SERVER_ID=7`).
//!
//! Passwords come from the file, a named environment variable or a file of their own, and never
//! appear in `Debug` output, logs or status.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rowferry_shared::codec::BigintUnsignedMode;
use serde::Deserialize;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ROWFERRY_CAPTURE_";

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
    Password(#[from] rowferry_shared::config::PasswordError),
}

use rowferry_shared::config::ConnectionUrl;
pub use rowferry_shared::config::Secret;

/// Everything `rowferry-capture` is told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Logical name of this capture: the default topic prefix, part of the Kafka transactional
    /// id and the key of its stored position. Two instances with one name fence each other.
    pub name: String,
    /// The source server.
    pub source: SourceConfig,
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// What the records look like.
    #[serde(default)]
    pub output: OutputConfig,
    /// How many changes go into one Kafka transaction.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Which tables and columns are captured.
    #[serde(default)]
    pub filter: FilterConfig,
    /// How the initial snapshot reads the tables.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
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

/// Where to read the binlog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `mysql://user@host:port` of an account with REPLICATION SLAVE, REPLICATION CLIENT and
    /// SELECT. A password in the URL works but prefer `password_file` or `password_env`.
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
    /// Replica `server_id` this capture registers with; unique among the source's replicas.
    pub server_id: u32,
    /// Where to start when no position is stored: `snapshot` (read every included table at a
    /// consistent point, then stream from that point; Debezium's `initial`), `earliest`,
    /// `latest`, `file:pos` (`mariadb-bin.000003:4`) or `gtid:<set>` (`gtid:0-1-100`,
    /// `gtid:uuid:1-42`).
    #[serde(default = "default_start")]
    pub start: String,
    /// Start here even if a position is stored (same forms as `start`); the stored position is
    /// replaced at the first commit. Meant for one run (`rowferry-capture --seek …`).
    #[serde(default)]
    pub seek: Option<String>,
    /// How often the source sends a heartbeat when it has nothing new, in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// Delay before reconnecting after a lost connection, doubling up to 30 s.
    #[serde(default = "default_retry_ms")]
    pub retry_initial_ms: u64,
}

fn default_start() -> String {
    "snapshot".into()
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_retry_ms() -> u64 {
    500
}

/// The Kafka side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`.
    pub bootstrap_servers: String,
    /// Compacted topic holding each capture's committed position.
    #[serde(default = "default_offsets_topic")]
    pub offsets_topic: String,
    /// Kafka transaction timeout, milliseconds (the broker caps it at
    /// `transaction.max.timeout.ms`).
    #[serde(default = "default_txn_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// Largest record the capture sends, in bytes; keep it at or below the topics'
    /// `max.message.bytes`.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Extra librdkafka producer settings (`security.protocol`, `sasl.*`, `compression.type`…).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn default_offsets_topic() -> String {
    rowferry_shared::config::DEFAULT_CAPTURE_OFFSETS_TOPIC.into()
}
fn default_txn_timeout_ms() -> u64 {
    60_000
}
fn default_max_record_bytes() -> usize {
    1_000_000
}

/// Record format choices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `debezium-json` or `protobuf`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Debezium JSON only: include the `schema` part (JsonConverter `schemas.enable`).
    #[serde(default = "yes")]
    pub schemas: bool,
    /// Topic prefix; the capture name when empty.
    #[serde(default)]
    pub topic_prefix: Option<String>,
    /// Send a tombstone (null value) after each delete, so compaction can drop the key.
    #[serde(default = "yes")]
    pub tombstones: bool,
    /// What to do with a record larger than `kafka.max_record_bytes`: `fail` (stop, naming
    /// table and key), `truncate` (shorten the largest text/blob columns, marking them), or
    /// `dead-letter` (send a key-only record to `dead_letter_topic`).
    #[serde(default = "default_large_policy")]
    pub large_record_policy: String,
    /// Topic for `dead-letter`; `<prefix>.dead-letter` when empty.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Debezium's `bigint.unsigned.handling.mode`: `long` (int64; values above 2^63-1 wrap,
    /// Debezium's default) or `precise` (Connect Decimal, exact).
    #[serde(default)]
    pub bigint_unsigned_handling: BigintUnsignedMode,
    /// Debezium's `column.propagate.source.type` for every column: field schemas carry the
    /// SQL type, length and scale as parameters.
    #[serde(default)]
    pub propagate_source_types: bool,
}

fn default_format() -> String {
    "debezium-json".into()
}
fn default_large_policy() -> String {
    "fail".into()
}
fn yes() -> bool {
    true
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            format: default_format(),
            schemas: true,
            topic_prefix: None,
            tombstones: true,
            large_record_policy: default_large_policy(),
            dead_letter_topic: None,
            bigint_unsigned_handling: BigintUnsignedMode::default(),
            propagate_source_types: false,
        }
    }
}

/// Kafka transaction sizing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Commit once this many records are in the transaction (at a source transaction end).
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// Commit once this many bytes are in the transaction (at a source transaction end).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Commit at most this long after the transaction's first record, in milliseconds.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// A source transaction with more row changes than this is split across Kafka
    /// transactions (restart resumes exactly inside it).
    #[serde(default = "default_split_rows")]
    pub split_transaction_rows: usize,
    /// …or more than this many bytes of records in one Kafka transaction, so that a
    /// transaction of very large rows still commits well within the transaction timeout.
    #[serde(default = "default_split_bytes")]
    pub split_transaction_bytes: usize,
    /// Commit a position-only transaction when nothing else was committed for this long, so
    /// the stored position and the lag stay fresh on quiet tables, in milliseconds.
    #[serde(default = "default_position_heartbeat_ms")]
    pub position_heartbeat_ms: u64,
}

fn default_max_records() -> usize {
    20_000
}
fn default_max_bytes() -> usize {
    16 << 20
}
fn default_linger_ms() -> u64 {
    20
}
fn default_split_rows() -> usize {
    100_000
}
fn default_split_bytes() -> usize {
    64 << 20
}
fn default_position_heartbeat_ms() -> u64 {
    5_000
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_bytes: default_max_bytes(),
            linger_ms: default_linger_ms(),
            split_transaction_rows: default_split_rows(),
            split_transaction_bytes: default_split_bytes(),
            position_heartbeat_ms: default_position_heartbeat_ms(),
        }
    }
}

/// The initial snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Tables read at the same time, each on its own connection and consistent snapshot.
    #[serde(default = "default_parallel_tables")]
    pub parallel_tables: usize,
    /// Rows per primary-key chunk (one SELECT each; bounds the memory a table takes).
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
    /// Commit the snapshot's Kafka transaction (and its progress) at least this often, in
    /// milliseconds; a restart resumes after the last commit.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
}

fn default_parallel_tables() -> usize {
    2
}
fn default_chunk_rows() -> usize {
    8_192
}
fn default_commit_interval_ms() -> u64 {
    1_000
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            parallel_tables: default_parallel_tables(),
            chunk_rows: default_chunk_rows(),
            commit_interval_ms: default_commit_interval_ms(),
        }
    }
}

/// Include/exclude lists: regular expressions matched against the whole name, as Debezium's
/// `*.include.list` options are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Databases to capture (`inventory`, `shop_.*`); all when empty.
    #[serde(default)]
    pub include_databases: Vec<String>,
    /// Databases never captured.
    #[serde(default)]
    pub exclude_databases: Vec<String>,
    /// Tables to capture as `db.table` patterns; all (of included databases) when empty.
    #[serde(default)]
    pub include_tables: Vec<String>,
    /// Tables never captured, as `db.table` patterns.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Columns left out of every record, as `db.table.column` patterns.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
}

/// Where the metrics endpoint listens unless `metrics.listen` says otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The default listen address of the gRPC control endpoint.
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50051";

impl CaptureConfig {
    /// Reads `path` (if any) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: CaptureConfig =
            rowferry_shared::config::load(path, ENV_PREFIX).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (tests and embedded configs).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: CaptureConfig =
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
                "must be non-empty and use only letters, digits, `.`, `_` and `-` (it is part of topic names)",
            );
        }
        if self.source.server_id == 0 {
            return invalid(
                "source.server_id",
                "must be 1 or more and differ from every server and replica of the source",
            );
        }
        if !matches!(self.output.format.as_str(), "debezium-json" | "protobuf") {
            return invalid("output.format", "must be `debezium-json` or `protobuf`");
        }
        if let Err((key, reason)) = self.control.check(DEFAULT_GRPC_LISTEN) {
            return invalid(key, &reason);
        }
        if let Err((key, reason)) = self.log.check() {
            return invalid(key, &reason);
        }
        if !matches!(
            self.output.large_record_policy.as_str(),
            "fail" | "truncate" | "dead-letter"
        ) {
            return invalid(
                "output.large_record_policy",
                "must be `fail`, `truncate` or `dead-letter`",
            );
        }
        if self.batch.max_records == 0 || self.batch.split_transaction_rows == 0 {
            return invalid(
                "batch",
                "max_records and split_transaction_rows must be 1 or more",
            );
        }
        if self.snapshot.parallel_tables == 0 || self.snapshot.chunk_rows == 0 {
            return invalid(
                "snapshot",
                "parallel_tables and chunk_rows must be 1 or more",
            );
        }
        if self.kafka.max_record_bytes < 1024 {
            return invalid("kafka.max_record_bytes", "must be at least 1024");
        }
        Ok(())
    }

    /// The topic prefix.
    pub fn topic_prefix(&self) -> &str {
        self.output.topic_prefix.as_deref().unwrap_or(&self.name)
    }

    /// The source password from whichever place it was given, if any.
    pub fn source_password(&self) -> Result<Option<Secret>, ConfigError> {
        Ok(rowferry_shared::config::read_password(
            self.source.password.as_ref(),
            self.source.password_file.as_deref(),
            self.source.password_env.as_deref(),
            "source.password_env",
        )?)
    }

    /// Heartbeat period.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.source.heartbeat_interval_ms.max(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "demo"
        [source]
        url = "mysql://rowferry_repl@127.0.0.1:3306"
        password = "s3cret"
        server_id = 501
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let config = CaptureConfig::from_toml(MINIMAL).map_err(|e| e.to_string());
        let config = config.as_ref().map_err(|e| e.as_str());
        assert!(config.is_ok(), "{config:?}");
        if let Ok(config) = config {
            assert_eq!(config.topic_prefix(), "demo");
            assert_eq!(config.output.format, "debezium-json");
            assert_eq!(config.source.start, "snapshot");
            assert_eq!(config.kafka.offsets_topic, "rowferry.capture.offsets");
        }
    }

    #[test]
    fn passwords_never_print() {
        let config = CaptureConfig::from_toml(MINIMAL).ok();
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("***"));
    }

    #[test]
    // figment's own error type is large; it is only returned inside this test.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file_and_passwords_come_from_files() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("password.txt", "from-file\n")?;
            let file = MINIMAL.replace("password = \"s3cret\"", "password_file = \"password.txt\"");
            jail.create_file("capture.toml", &file)?;
            jail.set_env("ROWFERRY_CAPTURE_SOURCE__SERVER_ID", "777");
            jail.set_env("ROWFERRY_CAPTURE_OUTPUT__FORMAT", "protobuf");
            let config =
                CaptureConfig::load(Some(Path::new("capture.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.source.server_id, 777);
            assert_eq!(config.output.format, "protobuf");
            let password = config.source_password().map_err(|e| e.to_string())?;
            assert_eq!(password.as_ref().map(Secret::expose), Some("from-file"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        let bad = MINIMAL.replace("server_id = 501", "server_id = 0");
        let err = CaptureConfig::from_toml(&bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("source.server_id")),
            "{err:?}"
        );
        let bad = format!("{MINIMAL}\n[output]\nformat = \"avro\"\n");
        let err = CaptureConfig::from_toml(&bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("debezium-json")),
            "{err:?}"
        );
        let bad = MINIMAL.replace("server_id", "serverid");
        let err = CaptureConfig::from_toml(&bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("serverid")),
            "{err:?}"
        );
        let bad = format!("{MINIMAL}\n[control]\ngrpc_listen = \"\"\nautostart = false\n");
        let err = CaptureConfig::from_toml(&bad).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("control.autostart") && e.contains("grpc_listen")),
            "{err:?}"
        );
    }
}
