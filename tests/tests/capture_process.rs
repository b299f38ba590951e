//! The rowferry-capture binary as an operator runs it: a TOML file, the gRPC control endpoint
//! (GetStatus, health), SIGTERM for a graceful stop with exit code 0, and a bad configuration
//! refused with the key named.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::pb::capture::v1 as pb;
use rowferry_shared::pb::capture::v1::capture_control_client::CaptureControlClient;
use rowferry_shared::position::BinlogFilePosition;
use rowferry_tests::capture::{binlog_end, capture_binary, capture_toml};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name, unique_server_id};

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

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
    let mut child = tokio::process::Command::new(capture_binary()?)
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;

    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
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
        if s.state == pb::State::Running as i32 {
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
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "rowferry.capture.v1.CaptureControl".into(),
        })
        .await?
        .into_inner();
    ensure!(
        serving.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    admin
        .query_drop(format!("INSERT INTO `{db}`.t VALUES (1),(2),(3)"))
        .await?;
    let end = binlog_end(&mut admin).await?;
    loop {
        let s = status(&mut client).await?;
        let reached = s.committed.as_ref().is_some_and(|p| {
            BinlogFilePosition::new(p.file.clone(), p.pos)
                .compare(&end)
                .is_ok_and(|o| o.is_ge())
        });
        if reached {
            ensure!(s.records_committed >= 3, "{s:?}");
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not committed: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: finish, commit, exit 0.
    let pid = child.id().context("no pid")?;
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    ensure!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .context("capture did not exit within 30 s of SIGTERM")??;
    ensure!(exit.success(), "exit status {exit}");
    let records = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.t"))?;
    ensure!(records.len() == 3, "{} records", records.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_configuration_is_refused_naming_the_key() -> Result<()> {
    let dir = std::env::temp_dir().join(unique_name("capbadcfg"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("capture.toml");
    std::fs::write(
        &path,
        "name = \"x\"\n[source]\nurl = \"mysql://u@127.0.0.1:3306\"\nserver_id = 0\n[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n",
    )?;
    let output = tokio::process::Command::new(capture_binary()?)
        .arg("--config")
        .arg(&path)
        .output()
        .await?;
    ensure!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        stderr.contains("source.server_id") && stderr.contains("1 or more"),
        "{stderr}"
    );
    Ok(())
}
