//! The rowferry-capture binary as an operator runs it: a TOML file, the gRPC control endpoint
//! (the lifecycle RPCs, refusals, WatchStatus, health following the state), SIGTERM for a
//! graceful stop with exit code 0, and a bad configuration refused with the key named.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::capture::v1 as pb;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_shared::pb::control::v1::State;
use rowferry_shared::position::BinlogFilePosition;
use rowferry_tests::capture::{binlog_end, capture_binary, capture_toml};
use rowferry_tests::control::{free_port, health_becomes, terminate};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name, unique_server_id};

async fn status(
    client: &mut CaptureControlClient<tonic::transport::Channel>,
) -> Result<pb::CaptureStatus> {
    client
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner()
        .status
        .context("no status in the response")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_reports_status_over_grpc_and_stops_cleanly_on_sigterm() -> Result<()> {
    let stack = Stack::from_env()?;
    let db = unique_name("cap_proc");
    let name = unique_name("capproc");
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    admin
        .query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await?;
    let start = binlog_end(&mut admin).await?;
    let port = free_port()?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    )
    .replace(
        "grpc_listen = \"\"",
        &format!("grpc_listen = \"127.0.0.1:{port}\""),
    );
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("capture.toml");
    std::fs::write(&config_path, toml)?;
    let mut child = rowferry_tests::control::service_command(capture_binary()?)
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;

    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut client = loop {
        match CaptureControlClient::connect(endpoint.clone()).await {
            Ok(client) => break client,
            Err(e) => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no control endpoint: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    loop {
        let s = status(&mut client).await?;
        if s.state == State::Running as i32 {
            ensure!(
                s.name == name && s.flavor == "mariadb" && s.metadata_source == "binlog",
                "{s:?}"
            );
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "not running: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?
        .connect()
        .await?;
    ensure!(
        health_becomes(&channel, "rowferry.capture.v1.CaptureControl", true).await?,
        "not SERVING while running"
    );

    // Every state change from here on, as WatchStatus reports it.
    let mut watch = client
        .watch_status(pb::WatchStatusRequest {})
        .await?
        .into_inner();
    let watched = tokio::spawn(async move {
        let mut states = Vec::new();
        while let Ok(Some(update)) = watch.message().await {
            let state = update.status.map(|s| s.state).unwrap_or_default();
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
        states
    });

    insert(&mut admin, &db, "(1),(2),(3)").await?;
    wait_committed(&mut client, &mut admin, deadline).await?;

    let refused = client
        .start(pb::StartRequest {})
        .await
        .err()
        .context("a second Start was accepted")?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused.message().contains("RUNNING")
            && refused.message().contains("already started"),
        "{refused:?}"
    );

    // Paused: nothing more is published, the health stays SERVING.
    let paused = client
        .pause(pb::PauseRequest { timeout: None })
        .await?
        .into_inner()
        .status
        .context("no status")?;
    ensure!(paused.state == State::Paused as i32, "{paused:?}");
    ensure!(
        health_becomes(&channel, "rowferry.capture.v1.CaptureControl", true).await?,
        "not SERVING while paused"
    );
    insert(&mut admin, &db, "(4),(5)").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let topic = format!("{name}.{db}.t");
    let while_paused = read_committed(&stack.kafka_bootstrap, &topic)?.len();
    ensure!(while_paused == 3, "{while_paused} records while paused");
    client.resume(pb::ResumeRequest {}).await?;
    wait_committed(&mut client, &mut admin, deadline).await?;

    // Stopped: NOT_SERVING, pause refused naming the state; a Start continues exactly.
    let stopped = client
        .stop(pb::StopRequest { timeout: None })
        .await?
        .into_inner()
        .status
        .context("no status")?;
    ensure!(stopped.state == State::Stopped as i32, "{stopped:?}");
    ensure!(
        health_becomes(&channel, "rowferry.capture.v1.CaptureControl", false).await?,
        "SERVING while stopped"
    );
    let refused = client
        .pause(pb::PauseRequest { timeout: None })
        .await
        .err()
        .context("Pause accepted while stopped")?;
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition && refused.message().contains("STOPPED"),
        "{refused:?}"
    );
    let invalid = client
        .stop(pb::StopRequest {
            timeout: Some(rowferry_shared::pb::wkt::Duration {
                seconds: -1,
                nanos: 0,
            }),
        })
        .await
        .err()
        .context("a negative timeout was accepted")?;
    ensure!(
        invalid.code() == tonic::Code::InvalidArgument && invalid.message().contains("timeout"),
        "{invalid:?}"
    );
    insert(&mut admin, &db, "(6),(7)").await?;
    // WatchStatus sends at most every 100 ms: stay STOPPED long enough to be seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.start(pb::StartRequest {}).await?;
    wait_committed(&mut client, &mut admin, deadline).await?;
    ensure!(
        health_becomes(&channel, "rowferry.capture.v1.CaptureControl", true).await?,
        "not SERVING after Start"
    );

    // Counters: every record of this process, per table and operation.
    let counted = status(&mut client).await?;
    let counters = counted.counters.context("no counters")?;
    ensure!(
        counters.events == 7 && counted.records_committed == 7 && counters.bytes > 0,
        "{counters:?}"
    );
    ensure!(
        counted.tables.len() == 1
            && counted.tables[0].database == db
            && counted.tables[0].table == "t"
            && counted.tables[0].inserts == 7
            && counted.tables[0].updates + counted.tables[0].deletes == 0,
        "{:?}",
        counted.tables
    );

    // SIGTERM: finish, commit, exit 0.
    terminate(&mut child, "capture").await?;
    let records = read_committed(&stack.kafka_bootstrap, &topic)?;
    ensure!(records.len() == 7, "{} records, 7 expected", records.len());
    let states = watched.await?;
    let expected = [
        State::Running,
        State::Paused,
        State::Running,
        State::Stopping,
        State::Stopped,
        State::Starting,
        State::Running,
    ]
    .map(|s| s as i32);
    // Short states (STOPPING, STARTING) may fall between two updates; the others may not.
    let mut wanted = expected.iter().peekable();
    for state in &states {
        while wanted.peek().is_some_and(|w| {
            *w != state && (**w == State::Stopping as i32 || **w == State::Starting as i32)
        }) {
            wanted.next();
        }
        if wanted.peek() == Some(&state) {
            wanted.next();
        }
    }
    ensure!(
        wanted.all(|w| *w == State::Stopping as i32 || *w == State::Starting as i32),
        "WatchStatus saw {states:?}, expected {expected:?} in order"
    );
    Ok(())
}

async fn insert(admin: &mut Conn, db: &str, rows: &str) -> Result<()> {
    admin
        .query_drop(format!("INSERT INTO `{db}`.t VALUES {rows}"))
        .await?;
    Ok(())
}

/// Waits until the capture has committed everything the source has written.
async fn wait_committed(
    client: &mut CaptureControlClient<tonic::transport::Channel>,
    admin: &mut Conn,
    deadline: tokio::time::Instant,
) -> Result<()> {
    let end = binlog_end(admin).await?;
    loop {
        let s = status(client).await?;
        let reached = s.committed.as_ref().is_some_and(|p| {
            BinlogFilePosition::new(p.file.clone(), p.pos)
                .compare(&end)
                .is_ok_and(|o| o.is_ge())
        });
        if reached && s.state == State::Running as i32 {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not committed: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
