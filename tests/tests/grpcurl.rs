//! A black-box check of the control API with grpcurl, which knows nothing of rowferry's protos
//! and learns them from server reflection: list, describe, and calls with JSON in and out.
//!
//! `make test` installs grpcurl and passes its path in `ROWFERRY_GRPCURL`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rowferry_tests::capture::{binlog_end, capture_binary, capture_toml, create_database};
use rowferry_tests::control::{connect, free_port, start_with_control, terminate};
use rowferry_tests::{Stack, unique_name, unique_server_id};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `grpcurl -plaintext <flags> 127.0.0.1:<port> <rest>`.
async fn grpcurl(port: u16, flags: &[&str], rest: &[&str]) -> Result<Run> {
    let binary = std::env::var("ROWFERRY_GRPCURL").unwrap_or_else(|_| "grpcurl".into());
    let output = tokio::process::Command::new(&binary)
        .arg("-plaintext")
        .args(flags)
        .arg(format!("127.0.0.1:{port}"))
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {binary}: run `make test`, which installs grpcurl"))?;
    Ok(Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_uses_the_control_api_through_reflection() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = create_database(&stack, "grpcurl", &["t (id INT PRIMARY KEY)"]).await?;
    let start = binlog_end(&mut admin).await?;
    let name = unique_name("grpcurl");
    let port = free_port()?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    );
    let (mut capture, _log) =
        start_with_control(&capture_binary()?, &name, "capture", &toml, port, "")?;
    connect(port, || Ok(())).await?;

    let listed = grpcurl(port, &[], &["list"]).await?;
    ensure!(listed.ok, "{}", listed.stderr);
    for service in [
        "rowferry.capture.v1.CaptureControl",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        ensure!(
            listed.stdout.contains(service),
            "{service} not listed: {}",
            listed.stdout
        );
    }
    let described = grpcurl(
        port,
        &[],
        &["describe", "rowferry.capture.v1.CaptureControl"],
    )
    .await?;
    ensure!(
        described.ok
            && described
                .stdout
                .contains("rpc Seek ( .rowferry.capture.v1.SeekRequest )")
            && described
                .stdout
                .contains("returns ( stream .rowferry.capture.v1.WatchStatusResponse )"),
        "{}{}",
        described.stdout,
        described.stderr
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = grpcurl(port, &[], &["rowferry.capture.v1.CaptureControl/GetStatus"]).await?;
        ensure!(status.ok, "{}", status.stderr);
        let json: serde_json::Value = serde_json::from_str(&status.stdout)?;
        if json["status"]["state"] == "STATE_RUNNING" {
            ensure!(json["status"]["name"] == name.as_str(), "{json}");
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not running: {json}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let paused = grpcurl(
        port,
        &["-d", r#"{"timeout": "10s"}"#],
        &["rowferry.capture.v1.CaptureControl/Pause"],
    )
    .await?;
    ensure!(
        paused.ok && paused.stdout.contains("STATE_PAUSED"),
        "{}{}",
        paused.stdout,
        paused.stderr
    );
    let seek = grpcurl(
        port,
        &[
            "-d",
            r#"{"boundary": "BOUNDARY_LATEST", "validate_only": true}"#,
        ],
        &["rowferry.capture.v1.CaptureControl/Seek"],
    )
    .await?;
    ensure!(
        seek.ok && seek.stdout.contains(&start.file),
        "{}{}",
        seek.stdout,
        seek.stderr
    );
    let refused = grpcurl(
        port,
        &["-d", "{}"],
        &["rowferry.capture.v1.CaptureControl/Seek"],
    )
    .await?;
    ensure!(
        !refused.ok && refused.stderr.contains("InvalidArgument"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    let resumed = grpcurl(port, &[], &["rowferry.capture.v1.CaptureControl/Resume"]).await?;
    ensure!(resumed.ok, "{}", resumed.stderr);
    let health = grpcurl(
        port,
        &["-d", r#"{"service": "rowferry.capture.v1.CaptureControl"}"#],
        &["grpc.health.v1.Health/Check"],
    )
    .await?;
    ensure!(
        health.ok && health.stdout.contains("SERVING"),
        "{}{}",
        health.stdout,
        health.stderr
    );

    terminate(&mut capture, "capture").await?;
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&name));
    Ok(())
}
