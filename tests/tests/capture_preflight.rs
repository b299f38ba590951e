//! Bad input gets a clear error naming the cause and the fix: a source without ROW binlogs or
//! FULL row images, missing privileges, a server_id clash, a purged binlog; an unreachable
//! source or broker is retried with backoff, not a silent exit. Without FULL row metadata the
//! capture still works, from information_schema, and says so.
//!
//! Some tests change the source's global settings or purge binlogs; every test of this file
//! holds [`GLOBALS`] so that none sees another's change (test files run one after another).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_capture::status::State;
use rowferry_tests::capture::{InProcess, binlog_end, capture_toml, config};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name, unique_server_id};
use serde_json::json;
use tokio::sync::Mutex;

static GLOBALS: Mutex<()> = Mutex::const_new(());

/// Starts a capture that must fail, and returns its error text.
async fn failure_of(toml: &str) -> Result<String> {
    let mut capture = InProcess::start(config(toml)?);
    let status = capture
        .wait_state(State::Failed, Duration::from_secs(60))
        .await?;
    let result = capture.join(Duration::from_secs(10)).await?;
    ensure!(result.is_err(), "a refused capture must end with an error");
    Ok(status.error.unwrap_or_default())
}

async fn admin(stack: &Stack) -> Result<Conn> {
    Ok(Conn::new(stack.source_admin_opts()?).await?)
}

fn toml_for(stack: &Stack, db: &str, start: &str) -> String {
    capture_toml(
        stack,
        &unique_name("cappre"),
        db,
        start,
        unique_server_id(),
        "",
    )
}

/// Sets a global variable and returns its old value; callers put it back with [`restore`] in
/// every path.
async fn set_global(admin: &mut Conn, name: &str, value: &str) -> Result<String> {
    let old: String = admin
        .query_first(format!("SELECT @@GLOBAL.{name}"))
        .await?
        .context("no such variable")?;
    admin
        .query_drop(format!("SET GLOBAL {name} = {}", literal(value)))
        .await?;
    Ok(old)
}

async fn restore(admin: &mut Conn, name: &str, old: &str) -> Result<()> {
    admin
        .query_drop(format!("SET GLOBAL {name} = {}", literal(old)))
        .await?;
    Ok(())
}

/// A SQL literal for a variable value: numbers bare, everything else quoted.
fn literal(value: &str) -> String {
    if value.parse::<i64>().is_ok() {
        value.to_owned()
    } else {
        format!("'{value}'")
    }
}

/// With the global `name` set to `value`, a capture is refused with an error containing every
/// one of `expected`; the setting is put back whatever happens.
async fn refused_while(name: &str, value: &str, expected: &[&str]) -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let mut admin = admin(&stack).await?;
    let old = set_global(&mut admin, name, value).await?;
    let error = failure_of(&toml_for(&stack, "none", "latest")).await;
    restore(&mut admin, name, &old).await?;
    let error = error?;
    ensure!(expected.iter().all(|e| error.contains(e)), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_binlogs_are_refused_with_the_fix() -> Result<()> {
    refused_while(
        "binlog_format",
        "STATEMENT",
        &["binlog_format is STATEMENT", "binlog_format=ROW"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_row_images_are_refused_with_the_fix() -> Result<()> {
    refused_while(
        "binlog_row_image",
        "MINIMAL",
        &["binlog_row_image is MINIMAL", "binlog_row_image=FULL"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_privileges_are_named() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let mut admin = admin(&stack).await?;
    let user = unique_name("weak");
    admin
        .query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await?;
    admin
        .query_drop(format!("GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'"))
        .await?;
    let url = format!("mysql://{user}:pw@127.0.0.1:3306");
    let toml = toml_for(&stack, "none", "latest").replace(&stack.source_repl_url, &url);
    let error = failure_of(&toml).await;
    admin.query_drop(format!("DROP USER '{user}'@'%'")).await?;
    let error = error?;
    ensure!(
        error.contains("lacks REPLICATION CLIENT, SELECT")
            && error.contains("GRANT REPLICATION CLIENT, SELECT ON *.*"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sources_own_server_id_is_refused() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let toml = capture_toml(&stack, &unique_name("cappre"), "none", "latest", 1, "");
    let error = failure_of(&toml).await?;
    ensure!(
        error.contains("server_id 1 is the source's own server_id"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purged_binlog_is_refused_with_the_fix() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let mut admin = admin(&stack).await?;
    let old = binlog_end(&mut admin).await?;
    // The server keeps a file that a replica still reads or crash recovery still needs (until
    // its binlog checkpoint): flush and purge until it is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        admin.query_drop("FLUSH BINARY LOGS").await?;
        let current = binlog_end(&mut admin).await?;
        admin
            .query_drop(format!("PURGE BINARY LOGS TO '{}'", current.file))
            .await?;
        let files: Vec<String> = admin
            .query("SHOW BINARY LOGS")
            .await?
            .into_iter()
            .map(|row: mysql_async::Row| row.get::<String, _>(0).unwrap_or_default())
            .collect();
        if !files.contains(&old.file) {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} could not be purged",
            old.file
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let error = failure_of(&toml_for(&stack, "none", &format!("{}:4", old.file))).await?;
    ensure!(
        error.contains(&format!("binlog file {} is not on the source", old.file))
            && error.contains("purged")
            && error.contains("earliest"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_source_is_retried_not_fatal() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let toml = toml_for(&stack, "none", "latest").replace("127.0.0.1:3306", "127.0.0.1:3399");
    let mut capture = InProcess::start(config(&toml)?);
    let status = capture
        .wait_state(State::Retrying, Duration::from_secs(60))
        .await?;
    let error = status.error.unwrap_or_default();
    ensure!(
        error.contains("cannot connect to the source at 127.0.0.1:3399"),
        "{error}"
    );
    // Still retrying a while later, then a clean stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = capture.status.borrow().state;
    ensure!(
        matches!(state, State::Retrying | State::Starting),
        "{state:?}"
    );
    capture.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_retried_not_fatal() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let toml = toml_for(&stack, "none", "latest")
        .replace(&stack.kafka_bootstrap, "127.0.0.1:9")
        .replace(
            "transaction_timeout_ms = 20000",
            "transaction_timeout_ms = 10000",
        );
    let mut capture = InProcess::start(config(&toml)?);
    let status = capture
        .wait_state(State::Retrying, Duration::from_secs(60))
        .await?;
    let error = status.error.unwrap_or_default();
    ensure!(error.contains("Kafka at 127.0.0.1:9"), "{error}");
    capture.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn without_full_row_metadata_information_schema_fills_in() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let mut admin = admin(&stack).await?;
    let old = set_global(&mut admin, "binlog_row_metadata", "MINIMAL").await?;
    let result = async {
        let db = unique_name("cap_minimal");
        let name = unique_name("capmin");
        admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
        admin
            .query_drop(format!(
                "CREATE TABLE `{db}`.t (id BIGINT UNSIGNED PRIMARY KEY, label VARCHAR(10), \
                 kind ENUM('a','b'))"
            ))
            .await?;
        let start = binlog_end(&mut admin).await?;
        let toml = capture_toml(
            &stack,
            &name,
            &db,
            &start.to_string(),
            unique_server_id(),
            "",
        );
        let mut capture = InProcess::start(config(&toml)?);
        admin
            .query_drop(format!(
                "INSERT INTO `{db}`.t VALUES (18446744073709551615, 'max', 'b')"
            ))
            .await?;
        let status = capture.wait_caught_up(&mut admin).await?;
        capture.stop().await?;
        ensure!(
            status.metadata_source.as_deref() == Some("information_schema"),
            "status must say the weaker mode: {status:?}"
        );
        let records = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.t"))?;
        ensure!(records.len() == 1, "{} records", records.len());
        let after = &records[0].json()?["payload"]["after"];
        // Debezium writes BIGINT UNSIGNED as int64: the maximum wraps to -1.
        ensure!(
            *after == json!({"id": -1, "label": "max", "kind": "b"}),
            "{after}"
        );
        Ok(())
    }
    .await;
    restore(&mut admin, "binlog_row_metadata", &old).await?;
    result
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_compressed_binlog_events_are_decoded() -> Result<()> {
    let _guard = GLOBALS.lock().await;
    let stack = Stack::from_env()?;
    let mut admin = admin(&stack).await?;
    let old_min = set_global(&mut admin, "log_bin_compress_min_len", "10").await?;
    let old_compress = match set_global(&mut admin, "log_bin_compress", "ON").await {
        Ok(old) => old,
        Err(e) => {
            restore(&mut admin, "log_bin_compress_min_len", &old_min).await?;
            return Err(e);
        }
    };
    let result = async {
        let db = unique_name("cap_compressed");
        let name = unique_name("capzip");
        // A new session sees the global setting.
        let mut writer = Conn::new(stack.source_admin_opts()?).await?;
        writer.query_drop(format!("CREATE DATABASE `{db}`")).await?;
        writer
            .query_drop(format!(
                "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, body TEXT)"
            ))
            .await?;
        let start = binlog_end(&mut writer).await?;
        let toml = capture_toml(
            &stack,
            &name,
            &db,
            &start.to_string(),
            unique_server_id(),
            "",
        );
        let mut capture = InProcess::start(config(&toml)?);
        writer
            .query_drop(format!(
                "INSERT INTO `{db}`.t VALUES (1, REPEAT('compress me ', 200)), (2, 'short')"
            ))
            .await?;
        writer
            .query_drop(format!("UPDATE `{db}`.t SET body = 'changed' WHERE id = 1"))
            .await?;
        writer
            .query_drop(format!("DELETE FROM `{db}`.t WHERE id = 2"))
            .await?;
        // The source really wrote compressed events.
        let events: Vec<mysql_async::Row> = writer
            .query(format!(
                "SHOW BINLOG EVENTS IN '{}' FROM {}",
                start.file, start.pos
            ))
            .await?;
        let kinds: Vec<String> = events
            .iter()
            .filter_map(|e| e.get::<String, _>(2))
            .collect();
        ensure!(
            kinds.iter().any(|k| k.starts_with("Write_rows_compressed")),
            "no compressed events written: {kinds:?}"
        );
        capture.wait_caught_up(&mut writer).await?;
        capture.stop().await?;
        let records = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.t"))?;
        let ops: Vec<String> = records
            .iter()
            .map(|r| {
                r.json()
                    .map(|v| v["payload"]["op"].as_str().unwrap_or("?").to_owned())
                    .unwrap_or_else(|_| "tombstone".into())
            })
            .collect();
        ensure!(ops == ["c", "c", "u", "d", "tombstone"], "{ops:?}");
        let first = records[0].json()?;
        ensure!(
            first["payload"]["after"]["body"] == json!("compress me ".repeat(200)),
            "compressed row image decoded"
        );
        ensure!(records[2].json()?["payload"]["after"]["body"] == json!("changed"));
        Ok(())
    }
    .await;
    restore(&mut admin, "log_bin_compress_min_len", &old_min).await?;
    restore(&mut admin, "log_bin_compress", &old_compress).await?;
    result
}
