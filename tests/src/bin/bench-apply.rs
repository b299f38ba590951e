//! `make bench`: rowferry-apply's catch-up throughput, its memory, the target's own ceiling,
//! and end-to-end latency under a steady load.
//!
//! 1. Writes 1,000,000 row changes into a mixed-type source table (`ROWFERRY_BENCH_ROWS`
//!    changes it), lets the release `rowferry-capture` publish them (format
//!    `ROWFERRY_BENCH_FORMAT`, topic of `ROWFERRY_BENCH_PARTITIONS` partitions, 4 by default),
//!    then starts the release `rowferry-apply` on that backlog and stops the clock at the
//!    target commit that made the target table equal to the source (`CHECKSUM TABLE`), read
//!    from the offsets table's `updated_at`. Peak RSS and CPU from /proc.
//! 2. Ceiling: the same final rows loaded into an identical target table by a plain client
//!    (multi-row INSERTs of 1,000 rows, one connection per partition).
//! 3. Latency: 5,000 rows/s (50-row transactions every 10 ms) for 30 s into a second table;
//!    a poller on the target records, for every row, the time from the source commit to the
//!    row's visibility in the target. p50/p99.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::apply::{apply_toml, create_topics, target_conn};
use rowferry_tests::bench::{
    ORDERS, cpu_seconds, env_number, fill_orders, peak_rss_kib, release_binary,
    spawn_release as spawn, wait_captured,
};
use rowferry_tests::capture::{binlog_end, capture_toml};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name, unique_server_id};

const LATENCY: &str = "latency (id BIGINT PRIMARY KEY, t0_us BIGINT NOT NULL, pad VARCHAR(100))";

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

async fn checksum(conn: &mut Conn, table: &str) -> Result<Option<u64>> {
    let row: Option<(String, Option<u64>)> =
        conn.query_first(format!("CHECKSUM TABLE {table}")).await?;
    Ok(row.and_then(|r| r.1))
}

/// Loads the source's final rows into `db.ceiling` with `connections` plain clients.
async fn ceiling(
    stack: &Stack,
    source: &mut Conn,
    db: &str,
    connections: usize,
) -> Result<(u64, f64)> {
    let rows: Vec<mysql_async::Row> = source
        .query(format!("SELECT * FROM `{db}`.orders ORDER BY id"))
        .await?;
    let mut statements: Vec<String> = Vec::new();
    for chunk in rows.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|row| {
                let cells: Vec<String> = row
                    .clone()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_sql(false))
                    .collect();
                format!("({})", cells.join(","))
            })
            .collect();
        statements.push(format!(
            "INSERT INTO `{db}`.ceiling VALUES {}",
            values.join(",")
        ));
    }
    let count = rows.len() as u64;
    drop(rows);
    let mut target = target_conn(stack).await?;
    target
        .query_drop(format!("CREATE TABLE `{db}`.ceiling LIKE `{db}`.orders"))
        .await?;
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); connections.max(1)];
    for (i, statement) in statements.into_iter().enumerate() {
        shares[i % connections.max(1)].push(statement);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in shares {
        let stack = stack.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = target_conn(&stack).await?;
            for statement in share {
                conn.query_drop(statement).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((count, started.elapsed().as_secs_f64()))
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// 5,000 rows/s for `seconds`; returns every row's latency in µs.
async fn latency(stack: &Stack, db: &str, seconds: u64) -> Result<Vec<i64>> {
    let writer = {
        let stack = stack.clone();
        let db = db.to_owned();
        tokio::spawn(async move {
            let mut conn = Conn::new(stack.source_admin_opts()?).await?;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut id = 0i64;
            for _ in 0..seconds * 100 {
                tick.tick().await;
                let t0 = now_us();
                let values: Vec<String> = (0..50)
                    .map(|k| format!("({}, {t0}, 'latency row padding')", id + k))
                    .collect();
                id += 50;
                conn.query_drop(format!(
                    "INSERT INTO `{db}`.latency VALUES {}",
                    values.join(",")
                ))
                .await?;
            }
            anyhow::Ok(id)
        })
    };
    let mut target = target_conn(stack).await?;
    let mut seen = -1i64;
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    loop {
        let rows: Vec<(i64, i64)> = target
            .query(format!(
                "SELECT id, t0_us FROM `{db}`.latency WHERE id > {seen} ORDER BY id"
            ))
            .await?;
        let now = now_us();
        for (id, t0) in rows {
            latencies.push(now - t0);
            seen = seen.max(id);
        }
        if writer.is_finished() && seen + 1 >= (seconds * 5000) as i64 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "latency rows did not all arrive: {} of {}",
                seen + 1,
                seconds * 5000
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    writer.await??;
    latencies.sort_unstable();
    Ok(latencies)
}

#[tokio::main]
async fn main() -> Result<()> {
    let stack = Stack::from_env()?;
    let rows: u64 = env_number("ROWFERRY_BENCH_ROWS", 1_000_000);
    let format = std::env::var("ROWFERRY_BENCH_FORMAT").unwrap_or_else(|_| "protobuf".into());
    let partitions: i32 = env_number("ROWFERRY_BENCH_PARTITIONS", 4);
    let capture_bin = release_binary("rowferry-capture")?;
    let apply_bin = release_binary("rowferry-apply")?;
    let db = unique_name("benchapply");
    let name = unique_name("benchapply");
    let mut source = Conn::new(stack.source_admin_opts()?).await?;
    source.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    let mut target = target_conn(&stack).await?;
    target.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    for table in [ORDERS, LATENCY] {
        source
            .query_drop(format!("CREATE TABLE `{db}`.{table}"))
            .await?;
        target
            .query_drop(format!("CREATE TABLE `{db}`.{table}"))
            .await?;
    }
    let topics = [
        format!("{name}.{db}.orders"),
        format!("{name}.{db}.latency"),
    ];
    create_topics(&stack, &topics[..1], partitions).await?;
    create_topics(&stack, &topics[1..], 1).await?;
    let start = binlog_end(&mut source).await?;
    fill_orders(&mut source, &db, rows).await?;
    let end = binlog_end(&mut source).await?;

    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let capture_config = dir.join("capture.toml");
    std::fs::write(
        &capture_config,
        capture_toml(
            &stack,
            &name,
            &db,
            &start.to_string(),
            unique_server_id(),
            &format!("[output]\nformat = \"{format}\"\n"),
        )
        .replace(
            "position_heartbeat_ms = 500",
            "position_heartbeat_ms = 1000",
        ),
    )?;
    let mut capture = spawn(&capture_bin, &capture_config, &dir.join("capture.log"))?;
    wait_captured(&stack, &name, &end).await?;
    eprintln!("bench-apply: {rows} changes published in {format}; starting apply");

    let apply_config = dir.join("apply.toml");
    let offsets_table = format!("offsets_{}", name.replace(['.', '-'], "_"));
    std::fs::write(
        &apply_config,
        apply_toml(&stack, &name, &format!("{name}\\.{db}\\..*"), ""),
    )?;
    let started_us = now_us();
    let started = Instant::now();
    let mut apply = spawn(&apply_bin, &apply_config, &dir.join("apply.log"))?;
    let pid = apply.id().context("no pid")?;
    let want = checksum(&mut source, &format!("`{db}`.orders")).await?;
    let want_rows: u64 = source
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.orders"))
        .await?
        .unwrap_or(0);
    let mut peak = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
        if let Some(status) = apply.try_wait()? {
            bail!(
                "apply exited: {status}; see {}",
                dir.join("apply.log").display()
            );
        }
        let have: u64 = target
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.orders"))
            .await?
            .unwrap_or(0);
        if have == want_rows && checksum(&mut target, &format!("`{db}`.orders")).await? == want {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("apply did not catch up within 30 minutes");
        }
    }
    let last_commit_us: Option<i64> = target
        .query_first(format!(
            "SELECT CAST(UNIX_TIMESTAMP(MAX(updated_at)) * 1000000 AS SIGNED) FROM rowferry.`{offsets_table}` \
             WHERE topic = '{}'",
            topics[0]
        ))
        .await?
        .flatten();
    let secs = (last_commit_us.context("no offsets stored")? - started_us) as f64 / 1e6;
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    let cpu = cpu_seconds(pid).unwrap_or(0.0);

    let (ceiling_rows, ceiling_secs) =
        ceiling(&stack, &mut source, &db, partitions as usize).await?;
    let latencies = latency(&stack, &db, 30).await?;
    if std::env::var("ROWFERRY_BENCH_BREAKDOWN").is_ok() {
        // Source commit → Kafka record timestamp (the capture's produce time).
        let mut produce: Vec<i64> = Vec::new();
        for record in read_committed(&stack.kafka_bootstrap, &topics[1])? {
            let change = rowferry_shared::codec::decode_protobuf_change(
                record.key.as_deref(),
                record.value.as_deref().unwrap_or_default(),
            );
            if let (Ok(change), Some(ts)) = (change, record.timestamp_ms)
                && let Some(rowferry_shared::event::Value::Int(t0)) =
                    change.change.after().and_then(|row| row.get(1).cloned())
            {
                produce.push(ts * 1000 - t0);
            }
        }
        produce.sort_unstable();
        eprintln!(
            "bench-apply: source commit to Kafka record timestamp p50 {:.1} ms p99 {:.1} ms ({} records)",
            percentile(&produce, 0.5),
            percentile(&produce, 0.99),
            produce.len()
        );
    }
    peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    let apply_rate = rows as f64 / secs;
    let ceiling_rate = ceiling_rows as f64 / ceiling_secs;
    println!(
        "| {format} | {rows} | {partitions} | {secs:.1} s | {apply_rate:.0} changes/s | {ceiling_rate:.0} rows/s | {:.0} % | {:.1} MB | {:.0} % | {:.1} ms | {:.1} ms |",
        100.0 * apply_rate / ceiling_rate,
        peak as f64 / 1024.0,
        100.0 * cpu / secs,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );

    apply.start_kill()?;
    let _ = apply.wait().await;
    capture.start_kill()?;
    let _ = capture.wait().await;
    source.query_drop(format!("DROP DATABASE `{db}`")).await?;
    target.query_drop(format!("DROP DATABASE `{db}`")).await?;
    target
        .query_drop(format!("DROP TABLE rowferry.`{offsets_table}`"))
        .await?;
    let kafka: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_bootstrap)
            .create()?;
    let all = [
        topics[0].clone(),
        topics[1].clone(),
        format!("{name}.offsets"),
    ];
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    kafka
        .delete_topics(&all, &rdkafka::admin::AdminOptions::new())
        .await?;
    if std::env::var("ROWFERRY_BENCH_KEEP").is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("bench-apply: logs kept in {}", dir.display());
    }
    Ok(())
}
