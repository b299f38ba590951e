//! Support for rowferry's integration tests: where the local stack is, and names that keep
//! tests apart.
//!
//! Every test runs against the real servers that `deploy/local/stack up` starts (MariaDB source
//! and target, Apache Kafka). The connection settings come from the environment that
//! `deploy/local/stack env` prints; `make test` sets it. Tests share the servers, so each one
//! works in its own database and topics, named by [`unique_name`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// Connection settings of the local stack, read from the environment.
#[derive(Debug, Clone)]
pub struct Stack {
    /// `mysql://` URL of an account on the source that may create databases and write.
    pub source_admin_url: String,
    /// `mysql://` URL of the least-privilege replication account on the source.
    pub source_repl_url: String,
    /// `mysql://` URL of an account on the target with full rights.
    pub target_url: String,
    /// Kafka bootstrap servers (`host:port`).
    pub kafka_bootstrap: String,
}

impl Stack {
    /// Reads the settings that `deploy/local/stack env` exports.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            source_admin_url: var("ROWFERRY_SOURCE_ADMIN_URL")?,
            source_repl_url: var("ROWFERRY_SOURCE_REPL_URL")?,
            target_url: var("ROWFERRY_TARGET_URL")?,
            kafka_bootstrap: var("ROWFERRY_KAFKA_BOOTSTRAP")?,
        })
    }

    /// Options for a connection to the source as the admin account.
    pub fn source_admin_opts(&self) -> Result<mysql_async::Opts> {
        mysql_async::Opts::from_url(&self.source_admin_url).with_context(|| {
            format!(
                "ROWFERRY_SOURCE_ADMIN_URL is not a mysql:// URL: {}",
                self.source_admin_url
            )
        })
    }

    /// Options for a connection to the source as the replication account.
    pub fn source_repl_opts(&self) -> Result<mysql_async::Opts> {
        mysql_async::Opts::from_url(&self.source_repl_url).with_context(|| {
            format!(
                "ROWFERRY_SOURCE_REPL_URL is not a mysql:// URL: {}",
                self.source_repl_url
            )
        })
    }
}

fn var(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => bail!(
            "{name} is not set: run the tests with `make test`, or start the stack and load its \
             settings first: deploy/local/stack up && eval \"$(deploy/local/stack env)\""
        ),
    }
}

/// A name no other test (in this run or an earlier one) uses: `{prefix}_{pid}_{n}_{millis}`.
///
/// Valid as a MySQL database name and a Kafka topic name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000_000)
        .unwrap_or_default();
    format!("{prefix}_{}_{n}_{millis}", std::process::id())
}

/// A replica `server_id` for a test's binlog connection.
///
/// The source drops an older replica connection when a new one registers with the same id, so
/// concurrent tests must not share one; ids stay clear of the stack's own (1 and 2).
pub fn unique_server_id() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    1_000_000 + pid * 100 + n % 100
}

/// A small deterministic generator (seeded from the clock) for kill delays, batch sizes and
/// row choices in crash and load tests.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number below `below` (0 when `below` is 0).
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

pub mod apply;
pub mod bench;
pub mod capture;
pub mod control;
pub mod debezium;
pub mod http;
pub mod kafka;
pub mod otlp;
pub mod pipeline;
