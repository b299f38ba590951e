//! Target tables and write modes, live: tables created from the records and widened when the
//! source gains a column (`create_tables`, `evolve`); a target table that lacks a column is
//! refused with the fix; `insert` mode with `deletes = "ignore"` keeps deleted rows.

use std::time::Duration;

use anyhow::{Result, ensure};
use mysql_async::prelude::Queryable;
use rowferry_apply::status::State;
use rowferry_tests::apply::{self, InProcess, apply_toml, target_conn};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::{Stack, unique_name};

type Row = (i64, Option<String>, Option<String>);

async fn wait_rows(
    apply: &mut InProcess,
    target: &mut mysql_async::Conn,
    sql: &str,
    want: &[Row],
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<Row> = target.query(sql).await.unwrap_or_default();
        if got == want {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "target has {got:?}, want {want:?}; apply {:?}",
            apply.status.borrow()
        );
        ensure!(
            apply.status.borrow().state != State::Failed,
            "apply failed: {:?}",
            apply.status.borrow().error
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_are_created_and_gain_the_columns_the_source_adds() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(
        &stack,
        "evolve",
        &["t (id BIGINT PRIMARY KEY, a VARCHAR(20))"],
    )
    .await?;
    let start = binlog_end(&mut source).await?;
    source
        .query_drop(format!(
            "INSERT INTO `{db}`.t VALUES (1, 'one'), (2, 'two')"
        ))
        .await?;
    let name = unique_name("evolve");
    let capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        "[output]\nformat = \"protobuf\"\n",
    )?;
    let mut apply = InProcess::start(apply::config(&apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\..*"),
        "[apply]\ncreate_tables = true\nevolve = true\n",
    ))?);
    let mut target = target_conn(&stack).await?;
    let before = format!("SELECT id, a, NULL FROM `{db}`.t ORDER BY id");
    let s = |v: &str| Some(v.to_owned());
    wait_rows(
        &mut apply,
        &mut target,
        &before,
        &[(1, s("one"), None), (2, s("two"), None)],
    )
    .await?;
    source
        .query_drop(format!("ALTER TABLE `{db}`.t ADD COLUMN b VARCHAR(20)"))
        .await?;
    source
        .query_drop(format!(
            "INSERT INTO `{db}`.t VALUES (3, 'three', 'new'); UPDATE `{db}`.t SET b = 'set' WHERE id = 1"
        ))
        .await?;
    let after = format!("SELECT id, a, b FROM `{db}`.t ORDER BY id");
    wait_rows(
        &mut apply,
        &mut target,
        &after,
        &[
            (1, s("one"), s("set")),
            (2, s("two"), None),
            (3, s("three"), s("new")),
        ],
    )
    .await?;
    let column_type: Option<String> = target
        .query_first(format!(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't' AND COLUMN_NAME = 'b'"
        ))
        .await?;
    ensure!(
        column_type.as_deref() == Some("varchar(20)"),
        "{column_type:?}"
    );
    apply.stop().await?;
    capture.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_table_without_a_column_is_refused_with_the_fix() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(
        &stack,
        "mismatch",
        &["t (id BIGINT PRIMARY KEY, a VARCHAR(20))"],
    )
    .await?;
    apply::create_target_tables(&stack, &db, &["t (id BIGINT PRIMARY KEY)"]).await?;
    let start = binlog_end(&mut source).await?;
    source
        .query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 'one')"))
        .await?;
    let name = unique_name("mismatch");
    let capture = capture::start_at(&stack, &name, &db, &start, "")?;
    let mut apply = InProcess::start(apply::config(&apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\..*"),
        "",
    ))?);
    let status = apply
        .wait_until("FAILED", Duration::from_secs(60), |s| {
            s.state == State::Failed
        })
        .await?;
    let error = status.error.unwrap_or_default();
    ensure!(
        error.contains("has no column a") && error.contains("apply.evolve"),
        "the error names the column and the fix: {error}"
    );
    capture.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insert_mode_with_ignored_deletes_keeps_deleted_rows() -> Result<()> {
    let stack = Stack::from_env()?;
    let table = "t (id BIGINT PRIMARY KEY, a VARCHAR(20), b VARCHAR(20))";
    let (mut source, db) = create_database(&stack, "archive", &[table]).await?;
    let mut target = apply::create_target_tables(&stack, &db, &[table]).await?;
    let start = binlog_end(&mut source).await?;
    source
        .query_drop(format!(
            "INSERT INTO `{db}`.t VALUES (1, 'one', NULL), (2, 'two', NULL), (3, 'three', NULL);
             UPDATE `{db}`.t SET b = 'changed' WHERE id = 2;
             DELETE FROM `{db}`.t WHERE id IN (1, 3);
             INSERT INTO `{db}`.t VALUES (4, 'four', NULL)"
        ))
        .await?;
    let name = unique_name("archive");
    let capture = capture::start_at(&stack, &name, &db, &start, "")?;
    let mut apply = InProcess::start(apply::config(&apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\..*"),
        "[apply]\nmode = \"insert\"\ndeletes = \"ignore\"\n",
    ))?);
    let s = |v: &str| Some(v.to_owned());
    wait_rows(
        &mut apply,
        &mut target,
        &format!("SELECT id, a, b FROM `{db}`.t ORDER BY id"),
        &[
            (1, s("one"), None),
            (2, s("two"), s("changed")),
            (3, s("three"), None),
            (4, s("four"), None),
        ],
    )
    .await?;
    apply.stop().await?;
    capture.stop().await?;
    Ok(())
}
