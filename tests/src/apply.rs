//! Running rowferry-apply in tests, and comparing the target with the source.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rowferry_apply::config::ApplyConfig;
use rowferry_apply::pipeline::{self, ApplyError};
use rowferry_apply::status::{self, ApplyStatus};

use crate::Stack;

/// Apply configuration for a test: its own name (consumer group) and offsets table, reading
/// topics matching `pattern`. `extra` is appended TOML (sections allowed).
pub fn apply_toml(stack: &Stack, name: &str, pattern: &str, extra: &str) -> String {
    format!(
        r#"
name = "{name}"
[kafka]
bootstrap_servers = "{bootstrap}"
topic_pattern = '{pattern}'
[kafka.properties]
"topic.metadata.refresh.interval.ms" = "1000"
[target]
url = "{url}"
offsets_table = "offsets_{name}"
retry_initial_ms = 100
retry_max_ms = 2000
[control]
grpc_listen = ""
{extra}
"#,
        bootstrap = stack.kafka_bootstrap,
        url = stack.target_url,
        name = name.replace(['.', '-'], "_"),
    )
}

/// Parses a test configuration, with environment overrides ignored.
pub fn config(toml: &str) -> Result<ApplyConfig> {
    ApplyConfig::from_toml(toml).map_err(|e| anyhow::anyhow!("{e}"))
}

/// An apply pipeline running in this process.
pub type InProcess = crate::pipeline::InProcess<ApplyStatus, ApplyError>;

impl InProcess {
    /// Starts the pipeline.
    pub fn start(config: ApplyConfig) -> Self {
        Self::spawn("apply", status::channel(), |tx, cancel| {
            pipeline::run(config, tx, cancel)
        })
    }
}

/// The `rowferry-apply` binary next to the test executables.
pub fn apply_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no parent directory")?;
    let binary = dir.join("rowferry-apply");
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (cargo build -p rowferry-apply, or cargo test --workspace)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A connection to the target.
pub async fn target_conn(stack: &Stack) -> Result<Conn> {
    let opts = mysql_async::Opts::from_url(&stack.target_url).with_context(|| {
        format!(
            "ROWFERRY_TARGET_URL is not a mysql:// URL: {}",
            stack.target_url
        )
    })?;
    Ok(Conn::new(opts).await?)
}

/// Creates database `db` on the target with `tables` (each a `name (columns…)` clause).
pub async fn create_target_tables(stack: &Stack, db: &str, tables: &[&str]) -> Result<Conn> {
    let mut target = target_conn(stack).await?;
    target
        .query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
        .await?;
    for table in tables {
        target
            .query_drop(format!("CREATE TABLE `{db}`.{table}"))
            .await?;
    }
    Ok(target)
}

/// Creates `topics` with `partitions` partitions each (before capture writes to them, so
/// the records spread over partitions by key).
pub async fn create_topics(stack: &Stack, topics: &[String], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await? {
        if let Err((topic, code)) = result {
            bail!("cannot create topic {topic}: {code}");
        }
    }
    Ok(())
}

/// Every row of `db.table` ordered by `order_by`, as the server prints it.
pub async fn rows(conn: &mut Conn, db: &str, table: &str, order_by: &str) -> Result<Vec<Row>> {
    Ok(conn
        .query(format!(
            "SELECT * FROM `{db}`.`{table}` ORDER BY {order_by}"
        ))
        .await?)
}

/// `CHECKSUM TABLE db.table`.
pub async fn checksum(conn: &mut Conn, db: &str, table: &str) -> Result<Option<u64>> {
    let row: Option<(String, Option<u64>)> = conn
        .query_first(format!("CHECKSUM TABLE `{db}`.`{table}`"))
        .await?;
    Ok(row.and_then(|(_, sum)| sum))
}

/// Where the target differs from the source for one table, or `None` when every row is
/// equal (column by column, as the servers print them) and the table checksums agree.
pub async fn difference(
    source: &mut Conn,
    target: &mut Conn,
    db: &str,
    table: &str,
    order_by: &str,
    with_checksum: bool,
) -> Result<Option<String>> {
    let want = rows(source, db, table, order_by).await?;
    let got = match rows(target, db, table, order_by).await {
        Ok(got) => got,
        Err(e) => return Ok(Some(format!("{table}: cannot read the target: {e}"))),
    };
    if want.len() != got.len() {
        return Ok(Some(format!(
            "{table}: {} rows in the source, {} in the target",
            want.len(),
            got.len()
        )));
    }
    for (w, g) in want.iter().zip(&got) {
        let (w, g) = (w.clone().unwrap(), g.clone().unwrap());
        if w != g {
            return Ok(Some(format!(
                "{table}: source row {w:?} is {g:?} in the target"
            )));
        }
    }
    if with_checksum {
        let (a, b) = (
            checksum(source, db, table).await?,
            checksum(target, db, table).await?,
        );
        if a != b {
            return Ok(Some(format!(
                "{table}: CHECKSUM TABLE {a:?} in the source, {b:?} in the target"
            )));
        }
    }
    Ok(None)
}

/// Waits until every table of `tables` (name, ORDER BY) is equal in source and target,
/// failing with the last difference after `timeout`.
pub async fn wait_equal(
    source: &mut Conn,
    target: &mut Conn,
    db: &str,
    tables: &[(&str, &str)],
    with_checksum: bool,
    timeout: Duration,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut last = None;
        for (table, order_by) in tables {
            if let Some(diff) =
                difference(source, target, db, table, order_by, with_checksum).await?
            {
                last = Some(diff);
                break;
            }
        }
        match last {
            None => return Ok(()),
            Some(diff) if tokio::time::Instant::now() > deadline => {
                bail!("target still differs from the source after {timeout:?}: {diff}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// The counting table of crash and rebalance tests, as created on the source.
pub const COUNTERS: &str = "counters (id BIGINT PRIMARY KEY, n INT NOT NULL, \
                            u VARCHAR(40) NOT NULL, pad VARCHAR(100), UNIQUE KEY (u))";

/// Creates `db.counters` on the target with an extra column `applied` that triggers
/// increment on every insert and update reaching it. The source counts its own changes of a
/// row in `n` (0 at insert, +1 per update), so a row applied exactly once ends with
/// `applied = n + 1`. The second UNIQUE key keeps apply from coalescing changes.
pub async fn create_counting_target(stack: &Stack, db: &str) -> Result<Conn> {
    let mut target = target_conn(stack).await?;
    target.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    target
        .query_drop(format!(
            "CREATE TABLE `{db}`.counters (id BIGINT PRIMARY KEY, n INT NOT NULL, \
             u VARCHAR(40) NOT NULL, pad VARCHAR(100), applied INT NOT NULL DEFAULT 0, \
             UNIQUE KEY (u))"
        ))
        .await?;
    target
        .query_drop(format!(
            "CREATE TRIGGER `{db}`.count_insert BEFORE INSERT ON `{db}`.counters FOR EACH ROW \
             SET NEW.applied = 1"
        ))
        .await?;
    target
        .query_drop(format!(
            "CREATE TRIGGER `{db}`.count_update BEFORE UPDATE ON `{db}`.counters FOR EACH ROW \
             SET NEW.applied = OLD.applied + 1"
        ))
        .await?;
    Ok(target)
}

/// Writes transactions of a few inserts, updates of random earlier rows and the odd delete
/// into `db.counters` until `stop`; returns how many transactions it wrote.
pub async fn counters_load(
    stack: Stack,
    db: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seed: u64,
) -> Result<u64> {
    let mut conn = Conn::new(stack.source_admin_opts()?).await?;
    conn.query_drop(format!("USE `{db}`")).await?;
    let mut rng = crate::Lcg(seed);
    let mut next_id = 1u64;
    let mut transactions = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut statements = vec!["BEGIN".to_owned()];
        let inserts = 1 + rng.next(20);
        let values: Vec<String> = (next_id..next_id + inserts)
            .map(|id| format!("({id}, 0, 'u{id}', 'row {id}')"))
            .collect();
        statements.push(format!("INSERT INTO counters VALUES {}", values.join(",")));
        next_id += inserts;
        for _ in 0..rng.next(20) {
            let id = 1 + rng.next(next_id - 1);
            statements.push(format!(
                "UPDATE counters SET n = n + 1, pad = CONCAT('updated ', n + 1) WHERE id = {id}"
            ));
        }
        if rng.next(5) == 0 {
            let id = 1 + rng.next(next_id - 1);
            statements.push(format!("DELETE FROM counters WHERE id = {id}"));
        }
        statements.push("COMMIT".to_owned());
        conn.query_drop(statements.join(";")).await?;
        transactions += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(transactions)
}

/// Waits until `db.counters` in the target equals the source (id, n, u, pad) and checks that
/// every row was applied exactly once (`applied = n + 1`). `alive` is asked between polls
/// and fails the wait early (e.g. when an apply process exited). Returns the row count.
pub async fn wait_counted(
    source: &mut Conn,
    target: &mut Conn,
    db: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<usize> {
    type SourceRow = (u64, u32, String, Option<String>);
    type TargetRow = (u64, u32, String, Option<String>, u32);
    let deadline = tokio::time::Instant::now() + timeout;
    let want: Vec<SourceRow> = source
        .query(format!(
            "SELECT id, n, u, pad FROM `{db}`.counters ORDER BY id"
        ))
        .await?;
    loop {
        let got: Vec<TargetRow> = target
            .query(format!(
                "SELECT id, n, u, pad, applied FROM `{db}`.counters ORDER BY id"
            ))
            .await?;
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| (g.0, g.1, &g.2, &g.3) == (w.0, w.1, &w.2, &w.3));
        if same {
            let wrong: Vec<&TargetRow> = got.iter().filter(|g| g.4 != g.1 + 1).take(5).collect();
            if !wrong.is_empty() {
                bail!(
                    "changes applied a wrong number of times (id, n, u, pad, applied): {wrong:?}"
                );
            }
            return Ok(got.len());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "target differs from the source after {timeout:?}: {} rows vs {}",
                got.len(),
                want.len()
            );
        }
        alive()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
