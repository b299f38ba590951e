//! The target goes down in the middle of a load and comes back: apply reports RETRYING with
//! the cause, retries with backoff, and ends exact (every change once). In a test binary of
//! its own because it stops the shared target server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::prelude::Queryable;
use rowferry_apply::status::State;
use rowferry_tests::apply::{
    self, COUNTERS, InProcess, apply_toml, counters_load, create_counting_target, create_topics,
    target_conn, wait_counted,
};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::{Stack, unique_name};

/// `deploy/local/stack up`: starts whatever of the stack is down.
fn stack_up() -> Result<()> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").context("run through cargo test")?;
    let script = std::path::Path::new(&dir).join("../deploy/local/stack");
    let status = std::process::Command::new(script).arg("up").status()?;
    ensure!(status.success(), "deploy/local/stack up failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_target_goes_down_and_comes_back() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "targetdown", &[COUNTERS]).await?;
    create_counting_target(&stack, &db).await?;
    let name = unique_name("targetdown");
    create_topics(&stack, &[format!("{name}.{db}.counters")], 2).await?;
    let start = binlog_end(&mut source).await?;
    let capture = capture::start_at(&stack, &name, &db, &start, "")?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(counters_load(stack.clone(), db.clone(), stop.clone(), 11));
    let mut apply = InProcess::start(apply::config(&apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\.counters"),
        "",
    ))?);
    apply
        .wait_until("applying", Duration::from_secs(60), |s| {
            s.target_transactions > 5
        })
        .await?;

    let mut admin = target_conn(&stack).await?;
    let _ = admin.query_drop("SHUTDOWN").await;
    drop(admin);
    let outage = apply
        .wait_until("RETRYING", Duration::from_secs(30), |s| {
            s.state == State::Retrying
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Bring the target back whatever happened above.
    stack_up()?;
    let retrying = outage?;
    ensure!(
        retrying.error.as_deref().is_some_and(|e| !e.is_empty()),
        "RETRYING keeps the cause: {retrying:?}"
    );
    apply
        .wait_until("RUNNING again", Duration::from_secs(60), |s| {
            s.state == State::Running
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    load.await??;
    let mut target = target_conn(&stack).await?;
    let rows = wait_counted(
        &mut source,
        &mut target,
        &db,
        Duration::from_secs(90),
        || Ok(()),
    )
    .await
    .with_context(|| format!("apply: {:?}", apply.status.borrow()))?;
    apply.stop().await?;
    capture.stop().await?;
    ensure!(rows > 0);
    Ok(())
}
