//! Running rowferry-capture in tests: in-process (the library's pipeline task) for behaviour
//! tests, as a child process for crash tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_capture::config::CaptureConfig;
use rowferry_capture::pipeline::{self, CaptureError};
use rowferry_capture::status::{self, CaptureStatus, State};
use rowferry_shared::position::BinlogFilePosition;

use crate::Stack;

/// The binlog end of the source now (`SHOW MASTER STATUS`), as capture reads it.
pub async fn binlog_end(admin: &mut Conn) -> Result<BinlogFilePosition> {
    Ok(rowferry_capture::source::binlog_end(admin).await?)
}

/// Capture configuration for a test: its own name, topic prefix, offsets topic and server id,
/// capturing only `db`, starting at `start`. `extra` is appended TOML (sections allowed).
pub fn capture_toml(
    stack: &Stack,
    name: &str,
    db: &str,
    start: &str,
    server_id: u32,
    extra: &str,
) -> String {
    format!(
        r#"
name = "{name}"
[source]
url = "{url}"
server_id = {server_id}
start = "{start}"
heartbeat_interval_ms = 500
retry_initial_ms = 200
[kafka]
bootstrap_servers = "{bootstrap}"
offsets_topic = "{name}.offsets"
transaction_timeout_ms = 20000
[batch]
linger_ms = 20
position_heartbeat_ms = 500
[filter]
include_databases = ["{db}"]
[control]
grpc_listen = ""
{extra}
"#,
        url = stack.source_repl_url,
        bootstrap = stack.kafka_bootstrap,
    )
}

/// Starts an in-process capture named `name` of database `db` at `start` (`extra`: more
/// TOML, as for [`capture_toml`]).
pub fn start_at(
    stack: &Stack,
    name: &str,
    db: &str,
    start: &BinlogFilePosition,
    extra: &str,
) -> Result<InProcess> {
    let toml = capture_toml(
        stack,
        name,
        db,
        &format!("{}:{}", start.file, start.pos),
        crate::unique_server_id(),
        extra,
    );
    Ok(InProcess::start(config(&toml)?))
}

/// Parses a test configuration, with environment overrides ignored.
pub fn config(toml: &str) -> Result<CaptureConfig> {
    CaptureConfig::from_toml(toml).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A capture pipeline running in this process.
pub type InProcess = crate::pipeline::InProcess<CaptureStatus, CaptureError>;

impl InProcess {
    /// Starts the pipeline.
    pub fn start(config: CaptureConfig) -> Self {
        Self::spawn("capture", status::channel(), |tx, cancel| {
            pipeline::run(config, tx, cancel)
        })
    }

    /// Waits until the committed position reaches `target` (a file position on the source),
    /// failing early if the pipeline fails.
    pub async fn wait_committed(
        &mut self,
        target: &BinlogFilePosition,
        timeout: Duration,
    ) -> Result<CaptureStatus> {
        self.wait_until(&format!("a commit up to {target}"), timeout, |status| {
            status.committed.as_ref().is_some_and(|committed| {
                committed.partial.is_none()
                    && BinlogFilePosition::new(committed.file.clone(), committed.pos)
                        .compare(target)
                        .is_ok_and(|o| o.is_ge())
            })
        })
        .await
    }

    /// Waits (up to 60 s) until everything the source has written so far is committed.
    pub async fn wait_caught_up(&mut self, admin: &mut Conn) -> Result<CaptureStatus> {
        let end = binlog_end(admin).await?;
        self.wait_committed(&end, Duration::from_secs(60)).await
    }

    /// Waits for the pipeline to reach `state`.
    pub async fn wait_state(&mut self, state: State, timeout: Duration) -> Result<CaptureStatus> {
        self.wait_until(&format!("state {state:?}"), timeout, |status| {
            status.state == state
        })
        .await
    }
}

/// The `rowferry-capture` binary next to the test executables (built by `cargo test
/// --workspace`, which builds every member's binaries).
pub fn capture_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no parent directory")?;
    let binary = dir.join("rowferry-capture");
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (cargo build -p rowferry-capture, or cargo test --workspace)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A database of the test's own on the source (named from `prefix`), with `tables` created in
/// it (each a `name (columns…)` clause), and an admin connection to it.
pub async fn create_database(
    stack: &Stack,
    prefix: &str,
    tables: &[&str],
) -> Result<(Conn, String)> {
    let db = crate::unique_name(prefix);
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    for table in tables {
        admin
            .query_drop(format!("CREATE TABLE `{db}`.{table}"))
            .await?;
    }
    Ok((admin, db))
}

/// How many committed create records of `topic` carry each value of the integer column
/// `column` in their `after` image (Debezium JSON).
pub fn count_by(stack: &Stack, topic: &str, column: &str) -> Result<BTreeMap<u64, usize>> {
    let mut counts = BTreeMap::new();
    for record in crate::kafka::read_committed(&stack.kafka_bootstrap, topic)? {
        let value = record.json()?;
        let n = value["payload"]["after"][column]
            .as_u64()
            .with_context(|| format!("record without after.{column}: {value}"))?;
        *counts.entry(n).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Fails unless every value in `expected` was counted exactly once and nothing else was.
pub fn assert_exactly_once(
    counts: &BTreeMap<u64, usize>,
    expected: impl IntoIterator<Item = u64>,
) -> Result<()> {
    let expected: Vec<u64> = expected.into_iter().collect();
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|n| !counts.contains_key(n))
        .take(10)
        .collect();
    let twice: Vec<(u64, usize)> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, c)| (*n, *c))
        .take(10)
        .collect();
    if !missing.is_empty() || !twice.is_empty() || counts.len() != expected.len() {
        bail!(
            "{} records for {} rows; first missing {missing:?}; first duplicated {twice:?}",
            counts.len(),
            expected.len()
        );
    }
    Ok(())
}
