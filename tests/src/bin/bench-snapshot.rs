//! `make bench`: initial snapshot throughput of a 2,000,000-row mixed-type table
//! (`ROWFERRY_BENCH_ROWS` changes it), in format `ROWFERRY_BENCH_FORMAT` (protobuf by default),
//! into a topic of `ROWFERRY_BENCH_PARTITIONS` partitions (4 by default).
//!
//! 1. Capture alone: the release `rowferry-capture` with `start = "snapshot"`, from its start to
//!    the commit that completes the snapshot (gRPC status); rows/s and peak RSS.
//! 2. Capture + apply: a second capture and the release `rowferry-apply` started together on
//!    the same table, from their start to the target table equal to the source (row count and
//!    CHECKSUM TABLE); rows/s and both peak RSS.
//!
//! Prints table rows for `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::capture::v1::GetStatusRequest;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_tests::apply::{apply_toml, create_topics, target_conn};
use rowferry_tests::bench::{
    ORDERS, env_number, insert_orders, peak_rss_kib, release_binary, spawn_release as spawn,
};
use rowferry_tests::capture::capture_toml;
use rowferry_tests::control::{connect, free_port};
use rowferry_tests::kafka::delete_topics;
use rowferry_tests::{Stack, unique_name, unique_server_id};

/// Writes the capture's configuration (snapshot start, gRPC on `port`) and starts it.
fn start_capture(
    stack: &Stack,
    dir: &std::path::Path,
    name: &str,
    db: &str,
    format: &str,
    port: u16,
) -> Result<tokio::process::Child> {
    let toml = capture_toml(
        stack,
        name,
        db,
        "snapshot",
        unique_server_id(),
        &format!("[output]\nformat = \"{format}\"\n"),
    )
    .replace(
        "grpc_listen = \"\"",
        &format!("grpc_listen = \"127.0.0.1:{port}\""),
    );
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml)?;
    spawn(
        &release_binary("rowferry-capture")?,
        &config,
        &dir.join(format!("{name}.log")),
    )
}

/// Samples the peak RSS of `pids` until `done` says the run is over.
struct Peaks(Vec<(u32, u64)>);

impl Peaks {
    fn sample(&mut self) {
        for (pid, peak) in &mut self.0 {
            *peak = (*peak).max(peak_rss_kib(*pid).unwrap_or(0));
        }
    }
    fn mb(&self, i: usize) -> f64 {
        self.0.get(i).map_or(0.0, |(_, kib)| *kib as f64 / 1024.0)
    }
}

async fn snapshot_done(port: u16) -> Result<bool> {
    let channel = connect(port, || Ok(())).await?;
    let mut client = CaptureControlClient::new(channel);
    let status = client
        .get_status(GetStatusRequest {})
        .await?
        .into_inner()
        .status
        .context("no status")?;
    Ok(status.snapshot.is_some_and(|s| !s.running))
}

#[tokio::main]
async fn main() -> Result<()> {
    let stack = Stack::from_env()?;
    let rows: u64 = env_number("ROWFERRY_BENCH_ROWS", 2_000_000);
    let format = std::env::var("ROWFERRY_BENCH_FORMAT").unwrap_or_else(|_| "protobuf".into());
    let partitions: i32 = env_number("ROWFERRY_BENCH_PARTITIONS", 4);
    let db = unique_name("benchsnap");
    let mut source = Conn::new(stack.source_admin_opts()?).await?;
    source.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    source
        .query_drop(format!("CREATE TABLE `{db}`.{ORDERS}"))
        .await?;
    let fill = Instant::now();
    insert_orders(&mut source, &db, rows).await?;
    eprintln!(
        "bench-snapshot: {rows} rows written in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let want: Option<(String, u64)> = source
        .query_first(format!("CHECKSUM TABLE `{db}`.orders"))
        .await?;
    let want = want.map(|(_, sum)| sum);
    let dir = std::env::temp_dir().join(&db);
    std::fs::create_dir_all(&dir)?;

    // 1. Capture alone.
    let name = unique_name("benchsnap");
    create_topics(&stack, &[format!("{name}.{db}.orders")], partitions).await?;
    let port = free_port()?;
    let started = Instant::now();
    let mut capture = start_capture(&stack, &dir, &name, &db, &format, port)?;
    let mut peaks = Peaks(vec![(capture.id().context("no pid")?, 0)]);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peaks.sample();
        if let Some(exit) = capture.try_wait()? {
            bail!("capture exited: {exit}; see {}", dir.display());
        }
        if snapshot_done(port).await? {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the snapshot did not finish within 30 minutes");
        }
    }
    let alone = started.elapsed().as_secs_f64();
    peaks.sample();
    let capture_alone_mb = peaks.mb(0);
    capture.start_kill()?;
    let _ = capture.wait().await;

    // 2. Capture and apply together, until the target equals the source.
    let mut target = target_conn(&stack).await?;
    target.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    target
        .query_drop(format!("CREATE TABLE `{db}`.{ORDERS}"))
        .await?;
    let name2 = unique_name("benchsnap");
    create_topics(&stack, &[format!("{name2}.{db}.orders")], partitions).await?;
    let port2 = free_port()?;
    let apply_config = dir.join("apply.toml");
    std::fs::write(
        &apply_config,
        apply_toml(&stack, &name2, &format!("{name2}\\.{db}\\..*"), ""),
    )?;
    let started = Instant::now();
    let mut capture = start_capture(&stack, &dir, &name2, &db, &format, port2)?;
    let mut apply = spawn(
        &release_binary("rowferry-apply")?,
        &apply_config,
        &dir.join("apply.log"),
    )?;
    let mut peaks = Peaks(vec![
        (capture.id().context("no pid")?, 0),
        (apply.id().context("no pid")?, 0),
    ]);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peaks.sample();
        if let Some(exit) = apply.try_wait()? {
            bail!("apply exited: {exit}; see {}", dir.display());
        }
        let have: u64 = target
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.orders"))
            .await?
            .unwrap_or(0);
        if have == rows {
            let sum: Option<(String, u64)> = target
                .query_first(format!("CHECKSUM TABLE `{db}`.orders"))
                .await?;
            if sum.map(|(_, s)| s) == want {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the target did not match within 30 minutes");
        }
    }
    let together = started.elapsed().as_secs_f64();
    peaks.sample();
    println!(
        "| {format} | {rows} | {partitions} | capture alone | {alone:.1} s | {:.0} rows/s | {capture_alone_mb:.1} MB | |",
        rows as f64 / alone
    );
    println!(
        "| {format} | {rows} | {partitions} | capture + apply into the target | {together:.1} s | {:.0} rows/s | {:.1} MB | {:.1} MB |",
        rows as f64 / together,
        peaks.mb(0),
        peaks.mb(1)
    );
    apply.start_kill()?;
    let _ = apply.wait().await;
    capture.start_kill()?;
    let _ = capture.wait().await;
    let mut topics = Vec::new();
    for n in [&name, &name2] {
        topics.push(format!("{n}.{db}.orders"));
        topics.push(format!("{n}.offsets"));
    }
    delete_topics(&stack.kafka_bootstrap, &topics).await?;
    source.query_drop(format!("DROP DATABASE `{db}`")).await?;
    target.query_drop(format!("DROP DATABASE `{db}`")).await?;
    target
        .query_drop(format!(
            "DROP TABLE IF EXISTS rowferry.`offsets_{}`",
            name2.replace(['.', '-'], "_")
        ))
        .await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
