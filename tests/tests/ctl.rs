//! `rowferryctl` driven as a user would, against a running capture and apply: its output, its
//! JSON, and exit codes scripts can trust (0 done, 2 usage, 3 unreachable, 4 refused in this
//! state, 5 invalid request).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::prelude::Queryable;
use rowferry_tests::apply::{apply_binary, apply_toml};
use rowferry_tests::capture::{binlog_end, capture_binary, capture_toml, create_database};
use rowferry_tests::control::{
    connect, free_port, start_with_control, terminate, workspace_binary,
};
use rowferry_tests::{Stack, unique_name, unique_server_id};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn ctl(port: u16, args: &[&str]) -> Result<Run> {
    let output = tokio::process::Command::new(workspace_binary("rowferryctl")?)
        .arg("--addr")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    Ok(Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn check(run: &Run, code: i32, text: &str) -> Result<()> {
    ensure!(
        run.code == code && (run.stdout.contains(text) || run.stderr.contains(text)),
        "expected exit {code} and {text:?}; got exit {}:\n{}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    Ok(())
}

/// Runs `rowferryctl args` until it exits with `code` saying `text` (the health follows the
/// pipeline state asynchronously), at most 5 s.
async fn eventually(port: u16, args: &[&str], code: i32, text: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let run = ctl(port, args).await?;
        if check(&run, code, text).is_ok() || tokio::time::Instant::now() >= deadline {
            return check(&run, code, text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `rowferryctl status --json` reports `state`.
async fn wait_state(port: u16, state: &str) -> Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = ctl(port, &["--json", "status"]).await?;
        if run.code == 0 {
            let json: serde_json::Value = serde_json::from_str(run.stdout.trim())
                .with_context(|| format!("not JSON: {}", run.stdout))?;
            if json["state"] == state {
                return Ok(json);
            }
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "never {state}: {} {}",
            run.stdout,
            run.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rowferryctl_controls_capture_and_apply_with_trustworthy_exit_codes() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = create_database(&stack, "ctl", &["t (id INT PRIMARY KEY)"]).await?;
    let start = binlog_end(&mut admin).await?;
    let name = unique_name("ctl");
    let capture_port = free_port()?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    );
    let (mut capture, capture_log) = start_with_control(
        &capture_binary()?,
        &name,
        "capture",
        &toml,
        capture_port,
        "",
    )?;
    connect(capture_port, || Ok(()))
        .await
        .with_context(|| format!("see {}", capture_log.display()))?;

    // Bad usage and an unreachable service.
    check(
        &ctl(capture_port, &["frobnicate"]).await?,
        2,
        "unrecognized",
    )?;
    check(&ctl(capture_port, &["seek"]).await?, 2, "required")?;
    check(&ctl(free_port()?, &["status"]).await?, 3, "cannot reach")?;

    // Status, human and JSON (proto3 JSON mapping: enum names, camelCase fields).
    let running = wait_state(capture_port, "STATE_RUNNING").await?;
    ensure!(running["name"] == name.as_str(), "{running}");
    ensure!(
        running["build"]["service"] == "rowferry-capture",
        "{running}"
    );
    check(
        &ctl(capture_port, &["status"]).await?,
        0,
        &format!("capture {name}: RUNNING"),
    )?;
    eventually(
        capture_port,
        &["health"],
        0,
        "rowferry.capture.v1.CaptureControl: SERVING",
    )
    .await?;
    check(&ctl(free_port()?, &["health"]).await?, 3, "cannot reach")?;

    // Incremental snapshots: usage, refusals, a table re-read to its end.
    check(&ctl(capture_port, &["snapshot"]).await?, 2, "give tables")?;
    check(
        &ctl(capture_port, &["snapshot", "--pause"]).await?,
        4,
        "no incremental snapshot is running",
    )?;
    check(
        &ctl(capture_port, &["snapshot", &format!("{db}.missing")]).await?,
        5,
        "does not exist",
    )?;
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.t SELECT seq FROM `{db}`.seq_1_to_50"
        ))
        .await?;
    check(
        &ctl(
            capture_port,
            &["snapshot", &format!("{db}.t"), "--chunk-rows", "20"],
        )
        .await?,
        0,
        "capture",
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = ctl(capture_port, &["status"]).await?;
        if run.stdout.contains("incremental snapshot done: 50 of") {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no finished incremental snapshot in the status: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Lifecycle with refusals.
    check(&ctl(capture_port, &["pause"]).await?, 0, "PAUSED")?;
    check(&ctl(capture_port, &["pause"]).await?, 4, "already paused")?;
    check(&ctl(capture_port, &["resume"]).await?, 0, "RUNNING")?;
    check(
        &ctl(capture_port, &["seek", "--latest"]).await?,
        4,
        "stop or pause it first",
    )?;
    check(
        &ctl(capture_port, &["stop", "--wait", "20"]).await?,
        0,
        "STOPPED",
    )?;
    check(&ctl(capture_port, &["stop"]).await?, 4, "already stopped")?;
    // Stopped: not ready, but the process is live (a liveness probe must not restart it).
    eventually(
        capture_port,
        &["health"],
        1,
        "rowferry.capture.v1.CaptureControl: NOT_SERVING",
    )
    .await?;
    check(
        &ctl(capture_port, &["health", "--live"]).await?,
        0,
        "process: SERVING",
    )?;

    // Seek: invalid, validated, stored.
    check(
        &ctl(capture_port, &["seek", "--gtid", "not a gtid"]).await?,
        5,
        "gtid_set",
    )?;
    check(
        &ctl(capture_port, &["seek", "--binlog", "nocolon"]).await?,
        2,
        "file:pos",
    )?;
    check(
        &ctl(capture_port, &["seek", "--offset", "t:0:1"]).await?,
        2,
        "for apply",
    )?;
    let end = binlog_end(&mut admin).await?;
    check(
        &ctl(capture_port, &["seek", "--latest", "--validate-only"]).await?,
        0,
        &format!("would read from {}", end.file),
    )?;
    let sought = ctl(
        capture_port,
        &["--json", "seek", "--binlog", &end.to_string()],
    )
    .await?;
    check(&sought, 0, "position")?;
    let json: serde_json::Value = serde_json::from_str(sought.stdout.trim())?;
    ensure!(json["position"]["file"] == end.file.as_str(), "{json}");
    check(&ctl(capture_port, &["start"]).await?, 0, "capture")?;
    wait_state(capture_port, "STATE_RUNNING").await?;

    // Watch: one JSON document per update.
    let watched = ctl(capture_port, &["--json", "watch", "--count", "2"]).await?;
    check(&watched, 0, "STATE_RUNNING")?;
    ensure!(
        watched.stdout.lines().count() == 2
            && watched
                .stdout
                .lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{}",
        watched.stdout
    );

    // Apply is recognised by its health service; its own seek targets.
    let apply_port = free_port()?;
    let toml = apply_toml(&stack, &name, &format!("{name}\\.{db}\\..*"), "");
    let (mut apply, apply_log) = start_with_control(
        &apply_binary()?,
        &name,
        "apply",
        &toml,
        apply_port,
        "autostart = false",
    )?;
    connect(apply_port, || Ok(()))
        .await
        .with_context(|| format!("see {}", apply_log.display()))?;
    check(&ctl(apply_port, &["status"]).await?, 0, "STOPPED")?;
    eventually(
        apply_port,
        &["--json", "health"],
        1,
        r#"{"service":"rowferry.apply.v1.ApplyControl","status":"NOT_SERVING"}"#,
    )
    .await?;
    check(
        &ctl(apply_port, &["health", "--live"]).await?,
        0,
        "process: SERVING",
    )?;
    let json: serde_json::Value =
        serde_json::from_str(ctl(apply_port, &["--json", "status"]).await?.stdout.trim())?;
    ensure!(json["build"]["service"] == "rowferry-apply", "{json}");
    check(
        &ctl(apply_port, &["pause"]).await?,
        4,
        "the apply is STOPPED",
    )?;
    check(
        &ctl(apply_port, &["seek", "--binlog", "f:4"]).await?,
        2,
        "for capture",
    )?;
    check(
        &ctl(apply_port, &["seek", "--offset", "nosuchtopic:0:0"]).await?,
        5,
        "is not a partition apply consumes",
    )?;

    for child in [&mut capture, &mut apply] {
        terminate(child, "capture or apply").await?;
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&name));
    Ok(())
}
