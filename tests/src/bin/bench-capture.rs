//! `make bench`: catch-up throughput and peak memory of rowferry-capture.
//!
//! Fills the source binlog with row changes of a mixed-type table (1,000,000 by default;
//! `ROWFERRY_BENCH_ROWS` changes it), then starts the release `rowferry-capture` at the
//! position before them and measures until its stored position passes the last one: events/s,
//! MB/s of record bytes written, and the process's peak RSS (VmHWM). Prints a table row for
//! `docs/benchmarks.md`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::bench::{
    ORDERS, cpu_seconds, env_number, fill_orders, peak_rss_kib, release_binary,
};
use rowferry_tests::capture::{binlog_end, capture_toml};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name, unique_server_id};

#[tokio::main]
async fn main() -> Result<()> {
    let stack = Stack::from_env()?;
    let rows: u64 = env_number("ROWFERRY_BENCH_ROWS", 1_000_000);
    let format = std::env::var("ROWFERRY_BENCH_FORMAT").unwrap_or_else(|_| "debezium-json".into());
    let schemas = std::env::var("ROWFERRY_BENCH_SCHEMAS")
        .map(|v| v != "false")
        .unwrap_or(true);
    let binary = release_binary("rowferry-capture")?;
    let db = unique_name("bench");
    let name = unique_name("bench");
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    admin
        .query_drop(format!("CREATE TABLE `{db}`.{ORDERS}"))
        .await?;
    let start = binlog_end(&mut admin).await?;
    let fill = Instant::now();
    fill_orders(&mut admin, &db, rows).await?;
    let end = binlog_end(&mut admin).await?;
    eprintln!(
        "bench: {rows} row changes written in {:.1} s ({start} .. {end})",
        fill.elapsed().as_secs_f64()
    );

    let extra = format!("[output]\nformat = \"{format}\"\nschemas = {schemas}\n");
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        &extra,
    )
    .replace("linger_ms = 20", "linger_ms = 100")
    .replace(
        "position_heartbeat_ms = 500",
        "position_heartbeat_ms = 5000",
    );
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("capture.toml");
    std::fs::write(&config_path, toml)?;
    let log = std::fs::File::create(dir.join("capture.log"))?;

    let started = Instant::now();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut child = rowferry_tests::control::service_command(&binary)
        .arg("--config")
        .arg(&config_path)
        .env(
            "RUST_LOG",
            std::env::var("ROWFERRY_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("no pid")?;
    let mut peak = 0;
    // Polled slowly so that the bench itself takes little CPU; the end time is the timestamp
    // of the position record that covers the last change.
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            bail!(
                "capture exited early: {status}; see {}",
                dir.join("capture.log").display()
            );
        }
        let offsets = read_committed(&stack.kafka_bootstrap, &format!("{name}.offsets"))?;
        if let Some(last) = offsets.last() {
            let position = last.json()?;
            let file = position["file"].as_str().unwrap_or_default().to_owned();
            let pos = position["pos"].as_u64().unwrap_or(0);
            let at = rowferry_shared::position::BinlogFilePosition::new(file, pos);
            if position["partial"].is_null() && at.compare(&end).is_ok_and(|o| o.is_ge()) {
                let first_done = offsets
                    .iter()
                    .find(|r| {
                        r.json().is_ok_and(|p| {
                            p["partial"].is_null()
                                && rowferry_shared::position::BinlogFilePosition::new(
                                    p["file"].as_str().unwrap_or_default(),
                                    p["pos"].as_u64().unwrap_or(0),
                                )
                                .compare(&end)
                                .is_ok_and(|o| o.is_ge())
                        })
                    })
                    .and_then(|r| r.timestamp_ms)
                    .context("position record without timestamp")?;
                break Duration::from_millis((first_done - started_ms).max(1) as u64);
            }
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("capture did not catch up within 30 minutes");
        }
    };
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    let cpu = cpu_seconds(pid).unwrap_or(0.0);
    child.start_kill()?;
    let _ = child.wait().await;

    let records = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.orders"))?;
    let bytes: usize = records
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
        .sum();
    if records.len() as u64 != rows {
        bail!("{} records for {rows} row changes", records.len());
    }
    let secs = elapsed.as_secs_f64();
    println!(
        "| {format}{} | {rows} | {secs:.1} s | {:.0} events/s | {:.1} MB/s | {:.0} B | {:.1} MB | {:.0} % |",
        if format == "debezium-json" && !schemas {
            " (no schemas)"
        } else {
            ""
        },
        rows as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes as f64 / rows as f64,
        peak as f64 / 1024.0,
        100.0 * cpu / secs
    );
    // A run writes up to 4.5 GB into Kafka: give the disk back.
    admin.query_drop(format!("DROP DATABASE `{db}`")).await?;
    let kafka: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_bootstrap)
            .create()?;
    let topics = [format!("{name}.{db}.orders"), format!("{name}.offsets")];
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    kafka
        .delete_topics(&topics, &rdkafka::admin::AdminOptions::new())
        .await?;
    Ok(())
}
