//! The rowferry-apply binary controlled over gRPC as an orchestrator would: it starts STOPPED
//! (`autostart = false`), refuses what the state does not allow, starts, pauses under a
//! steady load (nothing reaches the target while paused; partitions and lag stay visible),
//! resumes, stops and starts again, and exits 0 on SIGTERM — with every change applied
//! exactly once (trigger-counted).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::apply::v1 as pb;
use rowferry_shared::pb::apply::v1::apply_control_client::ApplyControlClient;
use rowferry_shared::pb::control::v1::State;
use rowferry_tests::apply::{
    COUNTERS, apply_binary, apply_toml, counters_load, create_counting_target, create_topics,
    wait_counted,
};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::control::{connect, free_port, health_becomes, refusal, terminate};
use rowferry_tests::{Stack, unique_name};
use tonic::transport::Channel;

type Client = ApplyControlClient<Channel>;
const SERVICE: &str = "rowferry.apply.v1.ApplyControl";

async fn status(client: &mut Client) -> Result<pb::ApplyStatus> {
    client
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .status
        .context("no status in the response")
}

async fn wait_state(client: &mut Client, state: State) -> Result<pb::ApplyStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(client).await?;
        if s.state == state as i32 {
            return Ok(s);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not {state:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Changes that reached the target table (the trigger-kept `applied` counts, summed).
async fn applied_total(target: &mut mysql_async::Conn, db: &str) -> Result<u64> {
    let total: Option<u64> = target
        .query_first(format!(
            "SELECT CAST(COALESCE(SUM(applied), 0) AS UNSIGNED) FROM `{db}`.counters"
        ))
        .await?;
    Ok(total.unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_is_started_paused_resumed_and_stopped_over_grpc_exactly_once() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "applyproc", &[COUNTERS]).await?;
    let mut target = create_counting_target(&stack, &db).await?;
    let name = unique_name("applyproc");
    let topic = format!("{name}.{db}.counters");
    create_topics(&stack, std::slice::from_ref(&topic), 2).await?;
    let start = binlog_end(&mut source).await?;
    let capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        "[output]\nformat = \"protobuf\"\n",
    )?;

    let port = free_port()?;
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("apply.toml");
    let toml = apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\.counters"),
        "[batch]\nmax_rows = 200\nlinger_ms = 20\n",
    )
    .replace(
        "grpc_listen = \"\"",
        &format!("grpc_listen = \"127.0.0.1:{port}\"\nautostart = false"),
    );
    std::fs::write(&config_path, toml)?;
    let log_path = dir.join("apply.log");
    let mut child = rowferry_tests::control::service_command(apply_binary()?)
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .kill_on_drop(true)
        .spawn()?;
    let logs = || format!("see {}", log_path.display());

    let channel = connect(port, || Ok(())).await.with_context(logs)?;
    let mut client = Client::new(channel.clone());

    // autostart = false: STOPPED, NOT_SERVING, and nothing to pause yet.
    let stopped = status(&mut client).await?;
    ensure!(stopped.state == State::Stopped as i32, "{stopped:?}");
    ensure!(
        health_becomes(&channel, SERVICE, false).await?,
        "SERVING while stopped"
    );
    let refused = refusal(client.pause(pb::PauseRequest { timeout: None }).await)?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused.message().contains("the apply is STOPPED"),
        "{refused:?}"
    );

    let stop_load = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(counters_load(
        stack.clone(),
        db.clone(),
        stop_load.clone(),
        7,
    ));

    // WatchStatus from here: the first update at once, then STARTING → RUNNING.
    let mut watch = client
        .watch_status(pb::WatchStatusRequest {})
        .await?
        .into_inner();
    let first = watch
        .message()
        .await?
        .and_then(|u| u.status)
        .context("no update")?;
    ensure!(first.state == State::Stopped as i32, "{first:?}");
    client.start(pb::StartRequest {}).await?;
    let watched_running = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(update) = watch.message().await? {
            if update
                .status
                .is_some_and(|s| s.state == State::Running as i32)
            {
                return Ok::<bool, anyhow::Error>(true);
            }
        }
        Ok(false)
    })
    .await
    .context("WatchStatus never reported RUNNING")??;
    ensure!(watched_running, "WatchStatus ended before RUNNING");
    drop(watch);
    let running = wait_state(&mut client, State::Running).await?;
    ensure!(
        running.group_id == name.replace(['.', '-'], "_"),
        "{running:?}"
    );
    ensure!(
        health_becomes(&channel, SERVICE, true).await?,
        "not SERVING while running"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Paused under load: the target does not move, the partitions stay in the status.
    let paused = client
        .pause(pb::PauseRequest { timeout: None })
        .await?
        .into_inner()
        .status
        .context("no status")?;
    ensure!(paused.state == State::Paused as i32, "{paused:?}");
    ensure!(
        health_becomes(&channel, SERVICE, true).await?,
        "not SERVING while paused"
    );
    let at_pause = applied_total(&mut target, &db).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = applied_total(&mut target, &db).await?;
    ensure!(at_pause > 0, "nothing applied before the pause; {}", logs());
    ensure!(
        later == at_pause,
        "{} changes applied while paused",
        later - at_pause
    );
    let paused = status(&mut client).await?;
    ensure!(
        paused.partitions.len() == 2
            && paused
                .partitions
                .iter()
                .all(|p| p.topic == topic && p.offset >= 0),
        "{paused:?}"
    );
    let refused = refusal(client.start(pb::StartRequest {}).await)?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition && refused.message().contains("PAUSED"),
        "{refused:?}"
    );

    client.resume(pb::ResumeRequest {}).await?;
    wait_state(&mut client, State::Running).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Stopped and started again while the load goes on.
    let stopped = client
        .stop(pb::StopRequest { timeout: None })
        .await?
        .into_inner()
        .status
        .context("no status")?;
    ensure!(stopped.state == State::Stopped as i32, "{stopped:?}");
    ensure!(
        health_becomes(&channel, SERVICE, false).await?,
        "SERVING while stopped"
    );
    client.start(pb::StartRequest {}).await?;
    wait_state(&mut client, State::Running).await?;

    stop_load.store(true, Ordering::Relaxed);
    load.await??;
    let rows = wait_counted(
        &mut source,
        &mut target,
        &db,
        Duration::from_secs(120),
        || {
            ensure!(child.try_wait()?.is_none(), "apply exited; {}", logs());
            Ok(())
        },
    )
    .await
    .with_context(logs)?;
    ensure!(rows > 0);

    // Caught up: every partition's lag reaches 0 against its end offset.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(&mut client).await?;
        let caught_up = s.partitions.len() == 2
            && s.partitions
                .iter()
                .all(|p| p.lag == 0 && p.high_watermark >= p.offset && p.offset > 0);
        if caught_up && s.records_applied > 0 && s.transactions_committed > 0 {
            // Counters: the changes of this process, per table and operation.
            let counters = s.counters.context("no counters")?;
            ensure!(
                counters.events == s.records_applied
                    && counters.transactions == s.transactions_committed
                    && counters.bytes > 0,
                "{counters:?}"
            );
            ensure!(s.tables.len() == 1, "{:?}", s.tables);
            let t = &s.tables[0];
            ensure!(
                t.database == db
                    && t.table == "counters"
                    && t.inserts + t.updates + t.deletes == s.records_applied
                    && t.inserts >= rows as u64
                    && t.updates > 0,
                "{t:?} vs {rows} rows"
            );
            ensure!(!s.source_position.is_empty(), "{s:?}");
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "lag never reached 0: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    terminate(&mut child, "apply").await.with_context(logs)?;
    capture.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A rebalance while paused: a second instance joins, the paused one gets its new share of
/// partitions assigned (and keeps them paused); after Resume every change is applied exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_assigned_while_paused_are_applied_after_resume() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "applyreb", &[COUNTERS]).await?;
    let mut target = create_counting_target(&stack, &db).await?;
    let name = unique_name("applyreb");
    create_topics(&stack, &[format!("{name}.{db}.counters")], 4).await?;
    let start = binlog_end(&mut source).await?;
    let capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        "[output]\nformat = \"protobuf\"\n",
    )?;
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let mut children = Vec::new();
    let mut ports = Vec::new();
    for instance in 0..2 {
        let port = free_port()?;
        let config = dir.join(format!("apply-{instance}.toml"));
        std::fs::write(
            &config,
            apply_toml(
                &stack,
                &name,
                &format!("{name}\\.{db}\\.counters"),
                "[batch]\nmax_rows = 200\nlinger_ms = 20\n",
            )
            .replace(
                "grpc_listen = \"\"",
                &format!("grpc_listen = \"127.0.0.1:{port}\""),
            ),
        )?;
        ports.push((port, config));
    }
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(counters_load(
        stack.clone(),
        db.clone(),
        stop_load.clone(),
        23,
    ));
    let spawn =
        |config: &std::path::Path, log: &std::path::Path| -> Result<tokio::process::Child> {
            Ok(rowferry_tests::control::service_command(apply_binary()?)
                .arg("--config")
                .arg(config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log)?)
                .kill_on_drop(true)
                .spawn()?)
        };
    let first_log = dir.join("apply-0.log");
    children.push(spawn(&ports[0].1, &first_log)?);
    let mut first = Client::new(connect(ports[0].0, || Ok(())).await?);
    wait_state(&mut first, State::Running).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.pause(pb::PauseRequest { timeout: None }).await?;

    // The second instance joins: the paused one is given its share again, paused.
    children.push(spawn(&ports[1].1, &dir.join("apply-1.log"))?);
    let mut second = Client::new(connect(ports[1].0, || Ok(())).await?);
    wait_state(&mut second, State::Running).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&mut second).await?;
        if s.partitions.len() == 2 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the second instance never got half of the partitions: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.resume(pb::ResumeRequest {}).await?;
    wait_state(&mut first, State::Running).await?;

    stop_load.store(true, Ordering::Relaxed);
    load.await??;
    wait_counted(
        &mut source,
        &mut target,
        &db,
        Duration::from_secs(120),
        || Ok(()),
    )
    .await
    .with_context(|| format!("see {}", first_log.display()))?;
    for child in &mut children {
        terminate(child, "apply").await?;
    }
    capture.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
