//! Exactly once across stops and takeovers: a clean restart continues with no gap and no
//! duplicate, a split source transaction resumes inside itself, and a second instance with the
//! same name fences the first.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_capture::status::State;
use rowferry_tests::capture::{
    InProcess, assert_exactly_once, binlog_end, capture_toml, config, count_by, create_database,
};
use rowferry_tests::{Stack, unique_name, unique_server_id};

/// Inserts rows `from..to` of `seq`, `per_txn` rows per transaction.
async fn insert_seq(admin: &mut Conn, db: &str, from: u64, to: u64, per_txn: u64) -> Result<()> {
    let mut n = from;
    while n < to {
        let last = (n + per_txn).min(to);
        let values: Vec<String> = (n..last).map(|i| format!("({i}, 'row {i}')")).collect();
        admin
            .query_drop(format!(
                "INSERT INTO `{db}`.seq (n, note) VALUES {}",
                values.join(",")
            ))
            .await?;
        n = last;
    }
    Ok(())
}

async fn setup(stack: &Stack, prefix: &str) -> Result<(Conn, String)> {
    create_database(
        stack,
        prefix,
        &["seq (n BIGINT PRIMARY KEY, note VARCHAR(40))"],
    )
    .await
}

fn counts(stack: &Stack, topic: &str) -> Result<std::collections::BTreeMap<u64, usize>> {
    count_by(stack, topic, "n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_restart_continues_without_gap_or_duplicate() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = setup(&stack, "cap_restart").await?;
    let name = unique_name("caprestart");
    let start = binlog_end(&mut admin).await?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    );

    let mut first = InProcess::start(config(&toml)?);
    insert_seq(&mut admin, &db, 0, 100, 7).await?;
    first.wait_caught_up(&mut admin).await?;
    first.stop().await?;

    // Changes made while no capture runs are picked up after the restart.
    insert_seq(&mut admin, &db, 100, 200, 9).await?;
    let mut second = InProcess::start(config(&toml)?);
    insert_seq(&mut admin, &db, 200, 300, 1).await?;
    second.wait_caught_up(&mut admin).await?;
    second.stop().await?;

    assert_exactly_once(&counts(&stack, &format!("{name}.{db}.seq"))?, 0..300)
}

/// Writes a 1000-row transaction, kills the capture as soon as part of it is committed, then
/// restarts inside it: every row exactly once. `split` is the `[batch]` setting that makes it split.
async fn split_and_resume(prefix: &str, split: &str) -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = setup(&stack, prefix).await?;
    let name = unique_name(prefix);
    let start = binlog_end(&mut admin).await?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    )
    .replace("[batch]\n", &format!("[batch]\n{split}\n"));
    let mut capture = InProcess::start(config(&toml)?);
    insert_seq(&mut admin, &db, 0, 1000, 1000).await?;
    // Stop as soon as part of the transaction is committed.
    capture
        .wait_until("a partial commit", Duration::from_secs(60), |status| {
            status
                .committed
                .as_ref()
                .is_some_and(|c| c.partial.is_some())
        })
        .await?;
    // A graceful stop would finish the transaction first: crash instead.
    capture.kill().await;

    let mut capture = InProcess::start(config(&toml)?);
    insert_seq(&mut admin, &db, 1000, 1010, 1).await?;
    capture.wait_caught_up(&mut admin).await?;
    capture.stop().await?;
    assert_exactly_once(&counts(&stack, &format!("{name}.{db}.seq"))?, 0..1010)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_transaction_resumes_exactly_inside_itself() -> Result<()> {
    // Split every 100 rows: the 1000-row transaction becomes 10 Kafka transactions.
    split_and_resume("cap_split", "split_transaction_rows = 100").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_split_by_bytes_resumes_exactly_too() -> Result<()> {
    // Records with their schema are about 1 kB: a split every ~100 rows.
    split_and_resume("cap_splitb", "split_transaction_bytes = 100000").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_with_the_same_name_fences_the_first() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = setup(&stack, "cap_fence").await?;
    let name = unique_name("capfence");
    let start = binlog_end(&mut admin).await?;
    let first_toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    );
    let second_toml = capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    );

    let mut first = InProcess::start(config(&first_toml)?);
    insert_seq(&mut admin, &db, 0, 50, 5).await?;
    first.wait_caught_up(&mut admin).await?;

    let mut second = InProcess::start(config(&second_toml)?);
    second
        .wait_state(State::Running, Duration::from_secs(60))
        .await?;
    insert_seq(&mut admin, &db, 50, 150, 5).await?;
    // The first instance learns it was fenced at its next produce or commit, and stops.
    let status = first
        .wait_state(State::Failed, Duration::from_secs(60))
        .await?;
    let error = status.error.unwrap_or_default();
    ensure!(
        error.contains("fenced"),
        "first instance failed with {error:?}"
    );
    let result = first.join(Duration::from_secs(10)).await?;
    ensure!(
        result.is_err(),
        "the fenced instance must stop with an error"
    );

    second.wait_caught_up(&mut admin).await?;
    second.stop().await?;
    assert_exactly_once(&counts(&stack, &format!("{name}.{db}.seq"))?, 0..150)
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_replays_from_the_given_position_once() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = setup(&stack, "cap_seek").await?;
    let name = unique_name("capseek");
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
    insert_seq(&mut admin, &db, 0, 50, 5).await?;
    let middle = binlog_end(&mut admin).await?;
    insert_seq(&mut admin, &db, 50, 100, 5).await?;
    capture.wait_caught_up(&mut admin).await?;
    capture.stop().await?;

    // Seek back to the middle: rows 50..100 are sent again, then new rows once.
    let mut seeking = config(&toml)?;
    seeking.source.seek = Some(middle.to_string());
    let mut capture = InProcess::start(seeking);
    insert_seq(&mut admin, &db, 100, 120, 5).await?;
    capture.wait_caught_up(&mut admin).await?;
    capture.stop().await?;

    // A plain restart afterwards resumes from the stored position: nothing more is repeated.
    let mut capture = InProcess::start(config(&toml)?);
    insert_seq(&mut admin, &db, 120, 130, 5).await?;
    capture.wait_caught_up(&mut admin).await?;
    capture.stop().await?;

    let counts = counts(&stack, &format!("{name}.{db}.seq"))?;
    for n in 0..130 {
        let expected = if (50..100).contains(&n) { 2 } else { 1 };
        ensure!(
            counts.get(&n) == Some(&expected),
            "row {n}: {:?} records, expected {expected}",
            counts.get(&n)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_crosses_binlog_rotations_and_starts_from_a_gtid() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut admin, db) = setup(&stack, "cap_rotate").await?;
    let name = unique_name("caprotate");
    // Start from the source's current GTID position instead of a file position.
    let gtid: String = admin
        .query_first("SELECT @@gtid_binlog_pos")
        .await?
        .context("no gtid_binlog_pos")?;
    let toml = capture_toml(
        &stack,
        &name,
        &db,
        &format!("gtid:{gtid}"),
        unique_server_id(),
        "",
    );
    let mut capture = InProcess::start(config(&toml)?);
    insert_seq(&mut admin, &db, 0, 30, 3).await?;
    admin.query_drop("FLUSH BINARY LOGS").await?;
    insert_seq(&mut admin, &db, 30, 60, 3).await?;
    admin.query_drop("FLUSH BINARY LOGS").await?;
    insert_seq(&mut admin, &db, 60, 90, 3).await?;
    let end = binlog_end(&mut admin).await?;
    let status = capture
        .wait_committed(&end, Duration::from_secs(60))
        .await?;
    capture.stop().await?;
    let committed = status.committed.context("nothing committed")?;
    ensure!(
        committed.file == end.file,
        "position follows the rotation: {committed:?}"
    );
    assert_exactly_once(&counts(&stack, &format!("{name}.{db}.seq"))?, 0..90)
}
