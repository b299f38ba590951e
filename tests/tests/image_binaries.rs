//! The binaries the container images ship, run as the deployments run them. `make test` builds
//! them with deploy/docker/build-release, the script the Dockerfile's build stage runs (same
//! profile, features, lock file and target), and names their directory in
//! `ROWFERRY_IMAGE_BINARIES`. They are started with the compose deployment's configuration files
//! (hosts, ports and passwords overridden by environment variables, as in a container) and
//! replicate the demo shop of deploy/demo from the local MariaDB to the local target.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::apply::{target_conn, wait_equal};
use rowferry_tests::control::{connect, free_port, service_command, terminate};
use rowferry_tests::{Stack, unique_name, unique_server_id};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of the images' build.
fn image_binary(name: &str) -> Result<PathBuf> {
    let dir = std::env::var_os("ROWFERRY_IMAGE_BINARIES").context(
        "ROWFERRY_IMAGE_BINARIES is not set: run `make test`, which builds the images' binaries \
         with deploy/docker/build-release <dir> and sets it to <dir>",
    )?;
    let binary = Path::new(&dir).join(name);
    ensure!(
        binary.exists(),
        "{} is missing: run deploy/docker/build-release {}",
        binary.display(),
        Path::new(&dir).display()
    );
    Ok(binary)
}

fn read(relative: &str) -> Result<String> {
    let path = repository().join(relative);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// `mysql://user@host:port` of a connection's options: the deployments keep the password apart
/// (in a mounted secret file).
fn url_without_password(opts: &mysql_async::Opts, user: &str) -> String {
    format!(
        "mysql://{user}@{}:{}",
        opts.ip_or_hostname(),
        opts.tcp_port()
    )
}

/// `url` without its password, and the password.
fn split_password(url: &str) -> Result<(String, String)> {
    let opts = mysql_async::Opts::from_url(url).with_context(|| format!("not a URL: {url}"))?;
    Ok((
        url_without_password(&opts, opts.user().unwrap_or_default()),
        opts.pass().unwrap_or_default().to_owned(),
    ))
}

/// Creates account `user` on the source with the GRANT statements of
/// deploy/compose/initdb/source-accounts.sh (given to `'rowferry'@'%'` there); returns its URL
/// without password, and the password.
async fn compose_capture_account(admin: &mut Conn, user: &str) -> Result<(String, String)> {
    let script = read("deploy/compose/initdb/source-accounts.sh")?;
    let grants: Vec<&str> = script
        .lines()
        .filter(|line| line.starts_with("GRANT "))
        .collect();
    ensure!(!grants.is_empty(), "no GRANT in source-accounts.sh");
    let password = format!("{user}-secret");
    for host in ["127.0.0.1", "localhost"] {
        let account = format!("'{user}'@'{host}'");
        admin
            .query_drop(format!("CREATE USER {account} IDENTIFIED BY '{password}'"))
            .await?;
        for grant in &grants {
            let grant = grant.replace("'rowferry'@'%'", &account);
            admin
                .query_drop(&grant)
                .await
                .with_context(|| grant.clone())?;
        }
    }
    Ok((url_without_password(admin.opts(), user), password))
}

/// Runs the demo shop's SQL file `relative` in database `db`.
async fn run_sql(conn: &mut Conn, db: &str, relative: &str) -> Result<()> {
    conn.query_drop(format!("USE `{db}`")).await?;
    conn.query_drop(read(relative)?)
        .await
        .with_context(|| format!("running {relative}"))
}

/// Starts an image binary on the compose configuration file `config` with the environment
/// `env` (the deployment's overrides), its stderr into `log`.
fn start(
    binary: &str,
    config: &str,
    env: &[(String, String)],
    log: &Path,
) -> Result<tokio::process::Child> {
    let log = std::fs::File::create(log)?;
    Ok(service_command(image_binary(binary)?)
        .arg("--config")
        .arg(repository().join(config))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// The two services under test: name, process, control port.
type Services<'a> = [(&'static str, &'a mut tokio::process::Child, u16); 2];

/// Runs deploy/demo/load.sql `rounds` times on the source's `db`, then waits (up to 2 min) until
/// the target's shop tables equal the source's, row by row and by `CHECKSUM TABLE`; fails at
/// once when a service exits or its pipeline fails meanwhile.
async fn load_and_compare(
    source: &mut Conn,
    target: &mut Conn,
    db: &str,
    rounds: u32,
    services: &mut Services<'_>,
) -> Result<()> {
    source.query_drop(format!("USE `{db}`")).await?;
    let load = read("deploy/demo/load.sql")?;
    for _ in 0..rounds {
        source.query_drop(&load).await?;
    }
    let tables = [("customers", "id"), ("products", "id"), ("orders", "id")];
    tokio::select! {
        equal = wait_equal(source, target, db, &tables, true, Duration::from_secs(120)) => equal,
        failed = first_failure(services) => Err(failed),
    }
}

/// Whether a service process still runs.
fn running(name: &str, child: &mut tokio::process::Child) -> Result<()> {
    match child.try_wait()? {
        None => Ok(()),
        Some(status) => anyhow::bail!("{name} exited: {status}"),
    }
}

/// Waits until one of `services` exits or reports FAILED (a service with a control endpoint
/// stays up when its pipeline fails), and says which and why.
async fn first_failure(services: &mut Services<'_>) -> anyhow::Error {
    loop {
        for (name, child, port) in services.iter_mut() {
            if let Err(exited) = running(name, child) {
                return exited;
            }
            if let Ok(status) = ctl(*port, &["--json", "status"]).await
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(status.trim())
                && json["state"] == "STATE_FAILED"
            {
                return anyhow::anyhow!("{name} failed: {}", json["error"]);
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `rowferryctl args` of the images against a control port: its stdout, or an error with its
/// output when it exits non-zero.
async fn ctl(port: u16, args: &[&str]) -> Result<String> {
    let output = tokio::process::Command::new(image_binary("rowferryctl")?)
        .args(["--addr", &format!("http://127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "rowferryctl {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

#[tokio::test]
async fn the_image_binaries_replicate_the_demo_shop_with_the_compose_configuration() -> Result<()> {
    let stack = Stack::from_env()?;
    let name = unique_name("image");
    let db = name.clone();
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;

    // The demo shop as the compose databases' init scripts make it: schema and rows on the
    // source, the empty schema on the target.
    let mut source = Conn::new(stack.source_admin_opts()?).await?;
    source.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    run_sql(&mut source, &db, "deploy/demo/shop-schema.sql").await?;
    run_sql(&mut source, &db, "deploy/demo/shop-data.sql").await?;
    let mut target = target_conn(&stack).await?;
    target.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    run_sql(&mut target, &db, "deploy/demo/shop-schema.sql").await?;

    // The capture's account with the grants of the compose source's init script.
    let (source_url, source_password) = compose_capture_account(&mut source, &name).await?;
    let (target_url, target_password) = split_password(&stack.target_url)?;
    let source_secret = dir.join("source-password");
    let target_secret = dir.join("target-password");
    std::fs::write(&source_secret, format!("{source_password}\n"))?;
    std::fs::write(&target_secret, format!("{target_password}\n"))?;
    let (capture_port, apply_port) = (free_port()?, free_port()?);
    let env = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let capture_env = env(&[
        ("ROWFERRY_CAPTURE_NAME", name.clone()),
        ("ROWFERRY_CAPTURE_SOURCE__URL", source_url),
        (
            "ROWFERRY_CAPTURE_SOURCE__PASSWORD_FILE",
            source_secret.display().to_string(),
        ),
        (
            "ROWFERRY_CAPTURE_SOURCE__SERVER_ID",
            unique_server_id().to_string(),
        ),
        (
            "ROWFERRY_CAPTURE_KAFKA__BOOTSTRAP_SERVERS",
            stack.kafka_bootstrap.clone(),
        ),
        (
            "ROWFERRY_CAPTURE_FILTER__INCLUDE_DATABASES",
            format!("[\"{db}\"]"),
        ),
        (
            "ROWFERRY_CAPTURE_CONTROL__GRPC_LISTEN",
            format!("127.0.0.1:{capture_port}"),
        ),
    ]);
    let apply_env = env(&[
        ("ROWFERRY_APPLY_NAME", format!("{name}-apply")),
        (
            "ROWFERRY_APPLY_KAFKA__BOOTSTRAP_SERVERS",
            stack.kafka_bootstrap.clone(),
        ),
        (
            "ROWFERRY_APPLY_KAFKA__TOPIC_PATTERN",
            format!("{name}\\.{db}\\..*"),
        ),
        ("ROWFERRY_APPLY_TARGET__URL", target_url),
        (
            "ROWFERRY_APPLY_TARGET__PASSWORD_FILE",
            target_secret.display().to_string(),
        ),
        (
            "ROWFERRY_APPLY_CONTROL__GRPC_LISTEN",
            format!("127.0.0.1:{apply_port}"),
        ),
    ]);
    let capture_log = dir.join("capture.log");
    let apply_log = dir.join("apply.log");
    let mut capture = start(
        "rowferry-capture",
        "deploy/compose/capture.toml",
        &capture_env,
        &capture_log,
    )?;
    let mut apply = start(
        "rowferry-apply",
        "deploy/compose/apply.toml",
        &apply_env,
        &apply_log,
    )?;
    let logs = || format!("see {} and {}", capture_log.display(), apply_log.display());
    connect(capture_port, || running("rowferry-capture", &mut capture))
        .await
        .with_context(logs)?;
    connect(apply_port, || running("rowferry-apply", &mut apply))
        .await
        .with_context(logs)?;

    let mut services = [
        ("rowferry-capture", &mut capture, capture_port),
        ("rowferry-apply", &mut apply, apply_port),
    ];
    // The compose demo's write load while the initial snapshot and the stream run.
    load_and_compare(&mut source, &mut target, &db, 30, &mut services)
        .await
        .with_context(logs)?;

    // The image's health check passes on both; a second round of load arrives too.
    for (service, port) in [
        ("rowferry.capture.v1.CaptureControl", capture_port),
        ("rowferry.apply.v1.ApplyControl", apply_port),
    ] {
        let health = ctl(port, &["health"]).await?;
        ensure!(health.contains(&format!("{service}: SERVING")), "{health}");
    }
    load_and_compare(&mut source, &mut target, &db, 10, &mut services)
        .await
        .with_context(logs)?;

    // A container stop: SIGTERM, then exit 0.
    for (name, child, _) in services {
        terminate(child, name).await?;
    }
    for host in ["127.0.0.1", "localhost"] {
        source
            .query_drop(format!("DROP USER '{name}'@'{host}'"))
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every configuration file the deployments ship is a valid configuration.
#[test]
fn the_shipped_configuration_files_are_valid() -> Result<()> {
    for file in [
        "deploy/compose/capture.toml",
        "deploy/k8s/base/capture.toml",
    ] {
        rowferry_tests::capture::config(&read(file)?).with_context(|| file.to_owned())?;
    }
    for file in ["deploy/compose/apply.toml", "deploy/k8s/base/apply.toml"] {
        rowferry_tests::apply::config(&read(file)?).with_context(|| file.to_owned())?;
    }
    Ok(())
}
