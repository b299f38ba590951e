//! Crash safety of apply: `kill -9` the apply process at random points of a steady write load
//! (capture running throughout), restart it every time, and prove at the end that the target
//! equals the source and that no change was applied twice.
//!
//! The proof of "not twice": the target table has an extra column `applied` that triggers
//! increment on every insert and update that reaches it, and the source counts its own changes
//! in `n` (0 at insert, +1 per update). The table has a second UNIQUE key, so apply keeps every
//! change (no coalescing) and each row must end with `applied = n + 1` exactly; a batch
//! replayed after a crash would leave it higher, a lost one lower.
//!
//! `ROWFERRY_APPLY_CRASH_KILLS` sets the number of kills (20 by default; `make soak-apply` runs
//! 200).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rowferry_tests::apply::{
    COUNTERS, apply_binary, apply_toml, counters_load, create_counting_target, create_topics,
    wait_counted,
};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::control::terminate;
use rowferry_tests::{Lcg, Stack, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_random_points_applies_every_change_exactly_once() -> Result<()> {
    let stack = Stack::from_env()?;
    let kills: u32 = std::env::var("ROWFERRY_APPLY_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (mut source, db) = create_database(&stack, "applycrash", &[COUNTERS]).await?;
    let mut target = create_counting_target(&stack, &db).await?;

    let name = unique_name("applycrash");
    create_topics(&stack, &[format!("{name}.{db}.counters")], 4).await?;
    let start = binlog_end(&mut source).await?;
    let capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        "[output]\nformat = \"protobuf\"\n",
    )?;

    let dir = std::env::temp_dir().join(unique_name("applycrash"));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("apply.toml");
    // Static membership: a restarted instance takes its predecessor's place in the group at
    // once instead of waiting for its session to time out.
    let toml = apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\.counters"),
        "[batch]\nmax_rows = 500\nlinger_ms = 20\n",
    )
    .replace(
        "[kafka.properties]",
        &format!("[kafka.properties]\n\"group.instance.id\" = \"{name}-1\""),
    );
    std::fs::write(&config_path, toml)?;
    let log_path = dir.join("apply.log");
    let binary = apply_binary()?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    eprintln!(
        "apply crash test: {kills} kills, seed {seed}, logs in {}",
        log_path.display()
    );
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

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(counters_load(
        stack.clone(),
        db.clone(),
        stop.clone(),
        seed ^ 1,
    ));
    let mut rng = Lcg(seed);
    for kill in 0..kills {
        let mut child = spawn()?;
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1500))).await;
        ensure!(
            child.try_wait()?.is_none(),
            "apply exited by itself before kill {kill}; see {}",
            log_path.display()
        );
        child.start_kill()?;
        child.wait().await?;
    }
    stop.store(true, Ordering::Relaxed);
    let transactions = load.await??;

    // A last instance catches up, then stops gracefully.
    let mut child = spawn()?;
    let rows = wait_counted(
        &mut source,
        &mut target,
        &db,
        Duration::from_secs(120),
        || {
            ensure!(
                child.try_wait()?.is_none(),
                "apply exited; see {}",
                log_path.display()
            );
            Ok(())
        },
    )
    .await
    .with_context(|| format!("see {}", log_path.display()))?;
    terminate(&mut child, "apply").await?;
    capture.stop().await?;
    eprintln!(
        "apply crash test: {kills} kills, {transactions} source transactions, {rows} rows, every change applied exactly once"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
