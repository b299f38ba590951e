//! Driving a service binary over its gRPC control endpoint: a free port, a channel to it, the
//! health service.

use std::time::Duration;

use anyhow::{Result, ensure};
use tonic::transport::{Channel, Endpoint};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A channel to `127.0.0.1:port`, retried for up to 60 s while the process starts; `alive`
/// fails the wait early (e.g. when the process exited).
pub async fn connect(port: u16, mut alive: impl FnMut() -> Result<()>) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no control endpoint on port {port}: {e}"
                );
                alive()?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Whether the health of `service` becomes SERVING (`serving`) or NOT_SERVING within 2 s
/// (it follows the pipeline state asynchronously).
pub async fn health_becomes(channel: &Channel, service: &str, serving: bool) -> Result<bool> {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for _ in 0..40 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        let is_serving =
            status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        if is_serving == serving {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(false)
}

/// The gRPC status of a refused call (an accepted one is an error).
pub fn refusal<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> Result<tonic::Status> {
    match result {
        Err(status) => Ok(status),
        Ok(response) => anyhow::bail!("accepted: {response:?}"),
    }
}

/// A binary of the workspace next to the test executables (built by `cargo test
/// --workspace`, which builds every member's binaries).
pub fn workspace_binary(name: &str) -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("test executable has no parent directory"))?;
    let binary = dir.join(name);
    ensure!(
        binary.exists(),
        "{} is missing: build it first (cargo build --workspace, or cargo test --workspace)",
        binary.display()
    );
    Ok(binary)
}

/// Sends SIGTERM to a service process and expects it to exit 0 within 30 s; `what` names it
/// in the error.
pub async fn terminate(child: &mut tokio::process::Child, what: &str) -> Result<()> {
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("{what} has no pid (it exited already)"))?;
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| anyhow::anyhow!("{what} did not exit within 30 s of SIGTERM"))??;
    ensure!(exit.success(), "{what} exited {exit} after SIGTERM");
    Ok(())
}

/// A command running a service binary, kept to itself: its metrics endpoint on an ephemeral
/// port (tests run services side by side; the defaults would clash) and no trace export
/// unless the test sets `OTEL_*` again.
pub fn service_command(binary: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
        .env("ROWFERRY_CAPTURE_METRICS__LISTEN", "127.0.0.1:0")
        .env("ROWFERRY_APPLY_METRICS__LISTEN", "127.0.0.1:0");
    command
}

/// Starts a service binary with `--config config`, its stderr appended to `log`.
pub fn spawn_service(
    binary: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) -> Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(service_command(binary)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// Writes a service's test configuration (control endpoint off) with the endpoint on
/// 127.0.0.1:`port` plus `control_extra` lines (`autostart = false`) into
/// `<tmp>/<name>/<service>.toml`, and starts `binary` on it, stderr into `<service>.log`
/// beside it (returned).
pub fn start_with_control(
    binary: &std::path::Path,
    name: &str,
    service: &str,
    toml: &str,
    port: u16,
    control_extra: &str,
) -> Result<(tokio::process::Child, std::path::PathBuf)> {
    let toml = toml.replace(
        "grpc_listen = \"\"",
        &format!("grpc_listen = \"127.0.0.1:{port}\"\n{control_extra}"),
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join(format!("{service}.toml"));
    std::fs::write(&config, toml)?;
    let log = dir.join(format!("{service}.log"));
    let child = spawn_service(binary, &config, &log)?;
    Ok((child, log))
}
