//! Crash safety: `kill -9` the capture process at random points of a steady write load (and
//! once in the middle of a source transaction that is split across Kafka transactions), restart
//! it every time, then count with a read_committed consumer: every source row exactly once.
//!
//! `ROWFERRY_CRASH_KILLS` sets the number of kills (20 by default; `make soak-capture` runs 200).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::capture::{
    InProcess, assert_exactly_once, binlog_end, capture_binary, capture_toml, config, count_by,
    create_database,
};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Lcg, Stack, unique_name, unique_server_id};

async fn insert_range(conn: &mut Conn, db: &str, from: u64, to: u64) -> Result<()> {
    let values: Vec<String> = (from..to).map(|i| format!("({i},'r{i}')")).collect();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.seq (n, note) VALUES {}",
        values.join(",")
    ))
    .await?;
    Ok(())
}

/// Writes transactions of 1–5 rows continuously, with a 2000-row transaction every 40th,
/// until `stop`; holds off while `pause` is set.
async fn write_load(
    stack: Stack,
    db: String,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    seed: u64,
) -> Result<()> {
    let mut conn = Conn::new(stack.source_admin_opts()?).await?;
    let mut rng = Lcg(seed);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if pause.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        i += 1;
        let rows = if i.is_multiple_of(40) {
            2000
        } else {
            1 + rng.next(5)
        };
        let from = next.load(Ordering::Relaxed);
        insert_range(&mut conn, &db, from, from + rows).await?;
        next.store(from + rows, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Every position the capture committed, oldest first, from its offsets topic.
fn stored_positions(stack: &Stack, name: &str) -> Result<Vec<serde_json::Value>> {
    read_committed(&stack.kafka_bootstrap, &format!("{name}.offsets"))?
        .iter()
        .map(|r| r.json())
        .collect()
}

/// Where a position record points: `(file, pos)`, or with `partial` where the split source
/// transaction it is inside of starts.
fn at(position: &serde_json::Value, partial: bool) -> Option<(String, u64)> {
    let place = if partial {
        &position["partial"]
    } else {
        position
    };
    Some((place["file"].as_str()?.to_owned(), place["pos"].as_u64()?))
}

/// The source's binlog end now, as `(file, pos)`.
async fn binlog_place(admin: &mut Conn) -> Result<(String, u64)> {
    let end = binlog_end(admin).await?;
    Ok((end.file, end.pos))
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_loses_and_duplicates_nothing() -> Result<()> {
    let stack = Stack::from_env()?;
    let kills: u32 = std::env::var("ROWFERRY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let binary = capture_binary()?;
    let name = unique_name("capcrash");
    let (mut admin, db) = create_database(
        &stack,
        "cap_crash",
        &["seq (n BIGINT PRIMARY KEY, note VARCHAR(20))"],
    )
    .await?;
    let start = binlog_end(&mut admin).await?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    )
    .replace(
        "linger_ms = 20\n",
        "linger_ms = 20\nsplit_transaction_rows = 300\n",
    );
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("capture.toml");
    std::fs::write(&config_path, &toml)?;
    let log_path = dir.join("capture.log");

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    eprintln!(
        "crash test: {kills} kills, seed {seed}, logs in {}",
        log_path.display()
    );
    let mut rng = Lcg(seed);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(
        stack.clone(),
        db.clone(),
        next.clone(),
        stop.clone(),
        pause.clone(),
        seed ^ 1,
    ));

    let spawn = || -> Result<tokio::process::Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        Ok(rowferry_tests::control::service_command(&binary)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?)
    };

    for kill in 0..kills {
        let mut child = spawn()?;
        if kill == kills / 2 {
            // One kill lands inside a split transaction: a 3000-row transaction (10 Kafka
            // transactions of 300), killed while the last stored position is partial and inside
            // it (the load's 2000-row transactions are split too). A fast capture may commit all
            // ten parts between two looks at the offsets topic: then another such transaction
            // is written, up to five.
            let mut big = Conn::new(stack.source_admin_opts()?).await?;
            pause.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut attempt = 0;
            'split: loop {
                let before = binlog_place(&mut admin).await?;
                let from = 1_000_000_000 + u64::from(kill) * 100_000 + attempt * 10_000;
                insert_range(&mut big, &db, from, from + 3000).await?;
                let after = binlog_place(&mut admin).await?;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let positions = stored_positions(&stack, &name)?;
                    let last = positions.last();
                    if last
                        .and_then(|p| at(p, true))
                        .is_some_and(|split| split >= before)
                    {
                        break 'split;
                    }
                    if last
                        .and_then(|p| at(p, false))
                        .is_some_and(|reached| reached >= after)
                        && !last.is_some_and(|p| p["partial"].is_object())
                    {
                        attempt += 1;
                        eprintln!("crash test: split transaction {attempt} finished unseen");
                        ensure!(
                            attempt < 5,
                            "5 split transactions, none seen half-committed"
                        );
                        continue 'split;
                    }
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "no split commit observed in 60 s: {} positions stored, the last {:?}",
                        positions.len(),
                        last
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            pause.store(false, Ordering::Relaxed);
        } else {
            // Startup (fencing the previous incarnation, reading the stored position) takes
            // about a second; most kills land while streaming, some before.
            tokio::time::sleep(Duration::from_millis(800 + rng.next(1700))).await;
        }
        child.start_kill()?;
        let status = child.wait().await?;
        ensure!(
            !status.success(),
            "capture exited by itself before kill {kill}: {status}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    load.await??;

    // A last, clean run catches up; then count.
    let end = binlog_end(&mut admin).await?;
    let mut capture = InProcess::start(config(&toml)?);
    capture
        .wait_committed(&end, Duration::from_secs(600))
        .await?;
    capture.stop().await?;

    let written: u64 = admin
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.seq"))
        .await?
        .context("count")?;
    let counts = count_by(&stack, &format!("{name}.{db}.seq"), "n")?;
    let ids: Vec<u64> = admin.query(format!("SELECT n FROM `{db}`.seq")).await?;
    ensure!(ids.len() as u64 == written);
    assert_exactly_once(&counts, ids)?;
    eprintln!("crash test: {written} rows, {kills} kills, every row exactly once");
    Ok(())
}
