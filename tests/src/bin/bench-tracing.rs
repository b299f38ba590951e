//! `make bench-tracing`: the cost of tracing. Capture and apply throughput with traces off,
//! sampled at 1 % and at 100 %, exported over OTLP/gRPC to a receiver in this process.
//!
//! The source gets 300,000 inserts in transactions of 10 rows (`ROWFERRY_BENCH_ROWS`,
//! `ROWFERRY_BENCH_TXN_ROWS`): tracing costs per source transaction (a span, a header on each
//! record), so small transactions show it. Each round runs the release `rowferry-capture` from
//! the position before them until its stored position passes the end (clock stopped at that
//! position record's Kafka timestamp), then the release `rowferry-apply` (batch mode) on the
//! topic until the target holds every row. Modes alternate within a round; a warm-up run
//! then three rounds (`ROWFERRY_BENCH_ROUNDS`), medians printed as a table row per mode:
//! throughput, and CPU time per event (user + system of the service until it caught up),
//! which the machine's noise (services, MariaDB and the broker share two cores) moves far less
//! than throughput.
//! Processes stop with SIGTERM, so the spans still queued are exported and counted.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::apply::{apply_toml, target_conn};
use rowferry_tests::bench::{ORDERS, cpu_seconds, env_number, release_binary, wait_captured};
use rowferry_tests::capture::{binlog_end, capture_toml};
use rowferry_tests::control::{service_command, terminate};
use rowferry_tests::kafka::delete_topics;
use rowferry_tests::otlp::OtlpReceiver;
use rowferry_tests::{Stack, unique_name, unique_server_id};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Tracing settings of one mode.
struct Mode {
    label: &'static str,
    /// `None`: no `OTEL_*` variable at all.
    ratio: Option<&'static str>,
}

const MODES: &[Mode] = &[
    Mode {
        label: "off",
        ratio: None,
    },
    Mode {
        label: "1 %",
        ratio: Some("0.01"),
    },
    Mode {
        label: "100 %",
        ratio: Some("1.0"),
    },
];

fn spawn(
    binary: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
    mode: &Mode,
    otlp_port: u16,
) -> Result<tokio::process::Child> {
    let mut command = service_command(binary);
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true);
    if let Some(ratio) = mode.ratio {
        command
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp_port}"),
            )
            .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env("OTEL_TRACES_SAMPLER_ARG", ratio);
    }
    Ok(command.spawn()?)
}

/// What one run measured.
struct Run {
    /// Wall-clock seconds until caught up.
    seconds: f64,
    /// CPU seconds (user + system) the service used until then.
    cpu: f64,
}

/// One capture run from `start` to `end`: until the position passed `end`.
async fn capture_run(
    stack: &Stack,
    db: &str,
    name: &str,
    start: &str,
    end: &rowferry_shared::position::BinlogFilePosition,
    mode: &Mode,
    otlp_port: u16,
) -> Result<Run> {
    let toml = capture_toml(
        stack,
        name,
        db,
        start,
        unique_server_id(),
        "[output]\nformat = \"protobuf\"\n",
    )
    .replace("linger_ms = 20", "linger_ms = 100")
    .replace(
        "position_heartbeat_ms = 500",
        "position_heartbeat_ms = 5000",
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("capture.toml");
    std::fs::write(&config, toml)?;
    let started_ms = now_ms();
    let mut child = spawn(
        &release_binary("rowferry-capture")?,
        &config,
        &dir.join("capture.log"),
        mode,
        otlp_port,
    )?;
    let done_ms = wait_captured(stack, name, end).await?;
    let cpu = child.id().and_then(cpu_seconds).unwrap_or(f64::NAN);
    // SIGTERM: the spans still queued are exported before the process exits.
    terminate(&mut child, "rowferry-capture").await?;
    Ok(Run {
        seconds: ((done_ms - started_ms).max(1) as f64) / 1000.0,
        cpu,
    })
}

/// One apply run of the capture `name`'s topic into an emptied target table: until the
/// target holds `rows` rows.
async fn apply_run(
    stack: &Stack,
    target: &mut Conn,
    db: &str,
    name: &str,
    rows: u64,
    mode: &Mode,
    otlp_port: u16,
) -> Result<Run> {
    target
        .query_drop(format!("TRUNCATE TABLE `{db}`.orders"))
        .await?;
    let toml = apply_toml(stack, name, &format!("{name}\\.{db}\\.orders"), "");
    let dir = std::env::temp_dir().join(name);
    let config = dir.join("apply.toml");
    std::fs::write(&config, toml)?;
    let started = Instant::now();
    let mut child = spawn(
        &release_binary("rowferry-apply")?,
        &config,
        &dir.join("apply.log"),
        mode,
        otlp_port,
    )?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let count: Option<u64> = target
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.orders"))
            .await?;
        if count == Some(rows) {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("apply exited early: {status}; see {}", dir.display());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("apply did not catch up within 30 minutes");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = child.id().and_then(cpu_seconds).unwrap_or(f64::NAN);
    terminate(&mut child, "rowferry-apply").await?;
    Ok(Run { seconds, cpu })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<()> {
    let stack = Stack::from_env()?;
    let rows: u64 = env_number("ROWFERRY_BENCH_ROWS", 300_000);
    let per_txn: u64 = env_number("ROWFERRY_BENCH_TXN_ROWS", 10u64).max(1);
    let rounds: u64 = env_number("ROWFERRY_BENCH_ROUNDS", 3u64).max(1);
    let receiver = OtlpReceiver::start().await?;
    let db = unique_name("benchtrace");
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    admin
        .query_drop(format!("CREATE TABLE `{db}`.{ORDERS}"))
        .await?;
    let mut target = target_conn(&stack).await?;
    target.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    target
        .query_drop(format!("CREATE TABLE `{db}`.{ORDERS}"))
        .await?;
    let start = binlog_end(&mut admin).await?;
    let fill = Instant::now();
    // One autocommitted INSERT of `per_txn` rows per transaction, looped on the server.
    admin
        .query_drop(format!(
            "BEGIN NOT ATOMIC
               FOR t IN 0 .. {last} DO
                 INSERT INTO `{db}`.orders (id, customer, amount, ratio, status, note, created)
                 SELECT t * {per_txn} + seq, seq % 5000, (seq % 100000) / 100, seq / 7,
                        ELT(1 + seq % 3, 'new', 'paid', 'shipped'), CONCAT('order ', seq),
                        TIMESTAMP('2026-01-01') + INTERVAL seq SECOND
                 FROM `{db}`.seq_1_to_{per_txn};
               END FOR;
             END",
            last = rows / per_txn - 1
        ))
        .await?;
    let rows = rows / per_txn * per_txn;
    let end = binlog_end(&mut admin).await?;
    eprintln!(
        "bench: {rows} inserts in {} transactions written in {:.1} s",
        rows / per_txn,
        fill.elapsed().as_secs_f64()
    );
    // Per mode: events/s and CPU µs per event, of capture and of apply.
    let mut figures = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; MODES.len()];
    // Round 0 warms the caches (page cache, broker, target buffer pool) and is not counted.
    for round in 0..=rounds {
        for (i, mode) in MODES.iter().enumerate() {
            if round == 0 && i > 0 {
                continue;
            }
            let name = unique_name("benchtrace");
            let spans_before = receiver.spans().len();
            let c = capture_run(
                &stack,
                &db,
                &name,
                &start.to_string(),
                &end,
                mode,
                receiver.grpc_port,
            )
            .await
            .with_context(|| format!("capture, tracing {}", mode.label))?;
            let a = apply_run(
                &stack,
                &mut target,
                &db,
                &name,
                rows,
                mode,
                receiver.grpc_port,
            )
            .await
            .with_context(|| format!("apply, tracing {}", mode.label))?;
            let per_event = |cpu: f64| cpu * 1e6 / rows as f64;
            eprintln!(
                "bench: round {round}, tracing {}: capture {:.0} events/s ({:.2} µs CPU each), \
                 apply {:.0} changes/s ({:.2} µs CPU each), {} spans",
                mode.label,
                rows as f64 / c.seconds,
                per_event(c.cpu),
                rows as f64 / a.seconds,
                per_event(a.cpu),
                receiver.spans().len() - spans_before
            );
            if round > 0 {
                let [cr, cc, ar, ac] = &mut figures[i];
                cr.push(rows as f64 / c.seconds);
                cc.push(per_event(c.cpu));
                ar.push(rows as f64 / a.seconds);
                ac.push(per_event(a.cpu));
            }
            delete_topics(
                &stack.kafka_bootstrap,
                &[format!("{name}.{db}.orders"), format!("{name}.offsets")],
            )
            .await?;
        }
    }
    let medians: Vec<[f64; 4]> = figures
        .iter_mut()
        .map(|[cr, cc, ar, ac]| [median(cr), median(cc), median(ar), median(ac)])
        .collect();
    let base = medians[0];
    for (mode, [cr, cc, ar, ac]) in MODES.iter().zip(&medians) {
        println!(
            "| {} | {rows} in {per_txn}-row transactions | {cr:.0} events/s | {cc:.2} µs ({:+.1} %) | {ar:.0} changes/s | {ac:.2} µs ({:+.1} %) |",
            mode.label,
            (cc / base[1] - 1.0) * 100.0,
            (ac / base[3] - 1.0) * 100.0,
        );
    }
    Ok(())
}
