//! What the benchmarks (`make bench`) share: the mixed-type table and its 1M-change fill,
//! process figures from /proc, and the release binaries.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// The benchmark table (after `CREATE TABLE db.`).
pub const ORDERS: &str = "orders (
    id BIGINT UNSIGNED PRIMARY KEY,
    customer INT NOT NULL,
    amount DECIMAL(12,2) NOT NULL,
    ratio DOUBLE,
    status ENUM('new','paid','shipped') NOT NULL,
    note VARCHAR(40),
    created DATETIME(6) NOT NULL,
    updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)";

/// Writes `rows` row changes into `db.orders`: per 10,000, 8,000 inserts then updates of
/// 2,000 of them (before and after images).
pub async fn fill_orders(admin: &mut Conn, db: &str, rows: u64) -> Result<()> {
    let per_statement = 10_000u64;
    let mut done = 0u64;
    while done < rows {
        let n = per_statement.min(rows - done);
        let inserts = n * 4 / 5;
        admin
            .query_drop(insert_orders_sql(db, done, inserts))
            .await?;
        admin
            .query_drop(format!(
                "UPDATE `{db}`.orders SET status = 'paid', amount = amount + 1
                 WHERE id > {done} AND id <= {done} + {}",
                n - inserts
            ))
            .await?;
        done += n;
    }
    Ok(())
}

/// Inserts `rows` rows into `db.orders` (ids 1..=rows), 100,000 per transaction: a table to
/// snapshot.
pub async fn insert_orders(admin: &mut Conn, db: &str, rows: u64) -> Result<()> {
    let per_statement = 100_000u64;
    let mut done = 0u64;
    while done < rows {
        let n = per_statement.min(rows - done);
        admin.query_drop(insert_orders_sql(db, done, n)).await?;
        done += n;
    }
    Ok(())
}

/// One statement inserting `n` rows into `db.orders`, ids `after + 1 ..= after + n`.
fn insert_orders_sql(db: &str, after: u64, n: u64) -> String {
    format!(
        "INSERT INTO `{db}`.orders (id, customer, amount, ratio, status, note, created)
         SELECT {after} + seq, seq % 5000, (seq % 100000) / 100, seq / 7,
                ELT(1 + seq % 3, 'new', 'paid', 'shipped'), CONCAT('order ', seq),
                TIMESTAMP('2026-01-01') + INTERVAL seq SECOND
         FROM `{db}`.seq_1_to_{n}"
    )
}

/// The benchmark setting `name` from the environment, `default` when unset or unparsable.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts a release service binary with `--config config`, stderr into `log`
/// (`ROWFERRY_BENCH_LOG` sets `RUST_LOG`, `warn` by default).
pub fn spawn_release(
    binary: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> Result<tokio::process::Child> {
    Ok(crate::control::service_command(binary)
        .arg("--config")
        .arg(config)
        .env(
            "RUST_LOG",
            std::env::var("ROWFERRY_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()?)
}

/// Waits until the capture `name`'s stored position passes `end`; returns the Kafka
/// timestamp (ms since the epoch) of the first position record that did.
pub async fn wait_captured(
    stack: &crate::Stack,
    name: &str,
    end: &rowferry_shared::position::BinlogFilePosition,
) -> Result<i64> {
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let offsets =
            crate::kafka::read_committed(&stack.kafka_bootstrap, &format!("{name}.offsets"))?;
        let past_end = |record: &crate::kafka::Record| {
            record.json().is_ok_and(|p| {
                p["partial"].is_null()
                    && rowferry_shared::position::BinlogFilePosition::new(
                        p["file"].as_str().unwrap_or_default(),
                        p["pos"].as_u64().unwrap_or(0),
                    )
                    .compare(end)
                    .is_ok_and(|o| o.is_ge())
            })
        };
        if let Some(first) = offsets.iter().find(|r| past_end(r)) {
            return first
                .timestamp_ms
                .context("position record without timestamp");
        }
        if started.elapsed() > std::time::Duration::from_secs(1800) {
            bail!("capture did not catch up within 30 minutes");
        }
    }
}

/// The process's peak resident set (VmHWM), KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// User + system CPU seconds the process has used (from /proc/<pid>/stat, 100 ticks/s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A release binary next to the running benchmark.
pub fn release_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no parent")?;
    let binary = dir.join(name);
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release -p {name}",
            binary.display()
        );
    }
    Ok(binary)
}
