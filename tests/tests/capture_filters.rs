//! Filters and large rows: included/excluded tables and columns, a stored position that keeps
//! moving while only excluded tables change, and the large-record policies.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_capture::status::State;
use rowferry_tests::capture::{InProcess, binlog_end, capture_toml, config, create_database};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name, unique_server_id};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn excluded_tables_and_columns_stay_out_and_the_position_keeps_moving() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = create_database(
        &stack,
        "cap_filter",
        &[
            "users (id INT PRIMARY KEY, email VARCHAR(40), password_hash VARCHAR(60))",
            "audit_log (id INT PRIMARY KEY, note VARCHAR(20))",
        ],
    )
    .await?;
    let name = unique_name("capfilter");
    let start = binlog_end(&mut admin).await?;
    let extra = format!(
        "exclude_tables = [\"{db}\\\\.audit_.*\"]\nexclude_columns = [\"{db}\\\\.users\\\\.password_hash\"]\n"
    );
    // `extra` lands in the [filter] section that capture_toml ends with... after [control];
    // put it into [filter] explicitly.
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    )
    .replace("[control]", &format!("{extra}[control]"));
    let mut capture = InProcess::start(config(&toml)?);
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.users VALUES (1, 'a@example.com', 'secret')"
        ))
        .await?;
    admin
        .query_drop(format!("INSERT INTO `{db}`.audit_log VALUES (1, 'x')"))
        .await?;
    capture.wait_caught_up(&mut admin).await?;

    // Only excluded tables change now: the stored position still follows the binlog.
    for i in 2..50 {
        admin
            .query_drop(format!("INSERT INTO `{db}`.audit_log VALUES ({i}, 'busy')"))
            .await?;
    }
    let quiet_end = binlog_end(&mut admin).await?;
    let status = capture
        .wait_committed(&quiet_end, Duration::from_secs(30))
        .await?;
    ensure!(
        status.lag_seconds.is_some_and(|l| l < 5.0),
        "lag stays fresh: {status:?}"
    );
    capture.stop().await?;

    let users = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.users"))?;
    ensure!(users.len() == 1, "{} user records", users.len());
    let payload = users[0].json()?["payload"].clone();
    ensure!(
        payload["after"] == json!({"id": 1, "email": "a@example.com"}),
        "excluded column must not appear: {}",
        payload["after"]
    );
    let audit = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.audit_log"))?;
    ensure!(
        audit.is_empty(),
        "excluded table produced {} records",
        audit.len()
    );
    Ok(())
}

async fn large_row(policy: &str) -> Result<(Stack, String, String, InProcess, Conn)> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = create_database(
        &stack,
        "cap_large",
        &["docs (id INT PRIMARY KEY, body MEDIUMTEXT)"],
    )
    .await?;
    let name = unique_name("caplarge");
    let start = binlog_end(&mut admin).await?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    )
    .replace(
        "transaction_timeout_ms = 20000",
        "transaction_timeout_ms = 20000\nmax_record_bytes = 4096",
    )
    .replace(
        "[control]",
        &format!("[output]\nlarge_record_policy = \"{policy}\"\n[control]"),
    );
    let capture = InProcess::start(config(&toml)?);
    admin
        .query_drop(format!("INSERT INTO `{db}`.docs VALUES (1, 'small')"))
        .await?;
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.docs VALUES (2, REPEAT('x', 20000))"
        ))
        .await?;
    admin
        .query_drop(format!("INSERT INTO `{db}`.docs VALUES (3, 'after')"))
        .await?;
    Ok((stack, db, name, capture, admin))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_too_large_row_fails_naming_table_and_key_by_default() -> Result<()> {
    let (_stack, db, _name, mut capture, _admin) = large_row("fail").await?;
    let status = capture
        .wait_state(State::Failed, Duration::from_secs(60))
        .await?;
    let error = status.error.unwrap_or_default();
    ensure!(
        error.contains(&format!("{db}.docs"))
            && error.contains("\"id\":2")
            && error.contains("large_record_policy"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_too_large_row_can_go_to_the_dead_letter_topic() -> Result<()> {
    let (stack, db, name, mut capture, mut admin) = large_row("dead-letter").await?;
    capture.wait_caught_up(&mut admin).await?;
    capture.stop().await?;
    let docs = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.docs"))?;
    let ids: Vec<_> = docs
        .iter()
        .map(|r| r.json().map(|v| v["payload"]["after"]["id"].clone()))
        .collect::<Result<_>>()?;
    ensure!(ids == [json!(1), json!(3)], "{ids:?}");
    let dead = read_committed(&stack.kafka_bootstrap, &format!("{name}.dead-letter"))?;
    ensure!(dead.len() == 1, "{} dead letters", dead.len());
    ensure!(dead[0].value.is_none(), "key only");
    ensure!(dead[0].key_json()?["payload"] == json!({"id": 2}));
    ensure!(dead[0].header("rowferry.table").as_deref() == Some(format!("{db}.docs").as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_too_large_row_can_be_truncated_with_a_marker() -> Result<()> {
    let (stack, db, name, mut capture, mut admin) = large_row("truncate").await?;
    capture.wait_caught_up(&mut admin).await?;
    capture.stop().await?;
    let docs = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.docs"))?;
    ensure!(docs.len() == 3, "{} records", docs.len());
    let record = &docs[1];
    ensure!(record.value.as_ref().is_some_and(|v| v.len() <= 4096));
    let body = record.json()?["payload"]["after"]["body"]
        .as_str()
        .context("body")?
        .to_owned();
    ensure!(
        body.starts_with("xxx") && body.ends_with("[truncated by rowferry]"),
        "{body}"
    );
    Ok(())
}
