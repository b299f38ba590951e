//! Apply under faults and foreign input: records written the way Debezium's own connector
//! writes them, poison records under each policy, a constraint the target enforces and the
//! source does not, and a consumer-group rebalance in the middle of a load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use mysql_async::prelude::Queryable;
use rowferry_apply::status::State;
use rowferry_tests::apply::{
    self, COUNTERS, InProcess, apply_toml, counters_load, create_counting_target, create_topics,
    wait_counted,
};
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::debezium::{self, Customer, Produced, TABLE};
use rowferry_tests::kafka::read_committed;
use rowferry_tests::{Stack, unique_name};

const SERVER: &str = "dbserver1";

fn customer(id: i32, balance: &'static str) -> Customer {
    Customer {
        id,
        first_name: Some("test"),
        birth_days: None,
        balance_base64: Some(balance),
        created: None,
        flag: None,
    }
}

fn create(db: &str, c: &Customer, pos: u64) -> Produced {
    (
        Some(debezium::key(SERVER, db, c.id)),
        Some(debezium::value(SERVER, db, "c", None, Some(c), pos)),
        vec![],
    )
}

/// A target database with the customers table (plus `extra` clauses), a topic of one
/// partition, and an apply configuration reading it.
async fn setup(
    stack: &Stack,
    extra_ddl: &str,
    apply_extra: &str,
) -> Result<(String, String, mysql_async::Conn, String)> {
    let db = unique_name("dbz");
    let table = TABLE.replacen(
        "flag BIT(1))",
        &format!("flag BIT(1){extra_ddl}) DEFAULT CHARSET=utf8mb4"),
        1,
    );
    let mut target = apply::create_target_tables(stack, &db, &[&table]).await?;
    target.query_drop("SET time_zone = '+00:00'").await?;
    let topic = format!("{SERVER}.{db}.customers");
    create_topics(stack, std::slice::from_ref(&topic), 1).await?;
    let name = unique_name("dbzapply");
    let toml = apply_toml(stack, &name, &topic.replace('.', "\\."), apply_extra);
    Ok((db, topic, target, toml))
}

type CustomerRow = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u8>,
);

async fn customers(target: &mut mysql_async::Conn, db: &str) -> Result<Vec<CustomerRow>> {
    Ok(target
        .query(format!(
            "SELECT id, first_name, CAST(birth AS CHAR), CAST(balance AS CHAR), \
             CAST(created AS CHAR), flag + 0 FROM `{db}`.customers ORDER BY id"
        ))
        .await?)
}

async fn wait_rows(
    apply: &mut InProcess,
    target: &mut mysql_async::Conn,
    db: &str,
    ids: &[i32],
) -> Result<Vec<CustomerRow>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = customers(target, db).await?;
        if rows.iter().map(|r| r.0).collect::<Vec<_>>() == ids {
            return Ok(rows);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "target has {rows:?}, want ids {ids:?}; status {:?}",
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
async fn records_of_debeziums_own_connector_are_applied() -> Result<()> {
    let stack = Stack::from_env()?;
    let (db, topic, mut target, toml) = setup(&stack, "", "").await?;
    let anne = Customer {
        id: 2,
        first_name: Some("Anne 'Kretchmar' \\ ✓"),
        birth_days: Some(10_957),
        balance_base64: Some("MDk="),
        created: Some("2024-01-02T03:04:05.123456Z"),
        flag: Some(true),
    };
    let anne_marie = Customer {
        first_name: Some("Anne Marie"),
        balance_base64: Some("/4A="),
        ..anne.clone()
    };
    let empty = Customer {
        id: 3,
        first_name: None,
        birth_days: None,
        balance_base64: None,
        created: None,
        flag: None,
    };
    let sally = customer(1, "AfQ=");
    let sally_moved = Customer {
        id: 10,
        ..sally.clone()
    };
    let key = |id| Some(debezium::key(SERVER, &db, id));
    let value = |op, before: Option<&Customer>, after: Option<&Customer>, pos| {
        Some(debezium::value(SERVER, &db, op, before, after, pos))
    };
    let records: Vec<Produced> = vec![
        (key(1), value("r", None, Some(&sally), 100), vec![]),
        (key(2), value("c", None, Some(&anne), 200), vec![]),
        (key(3), value("c", None, Some(&empty), 300), vec![]),
        (
            key(2),
            value("u", Some(&anne), Some(&anne_marie), 400),
            vec![],
        ),
        (key(3), value("d", Some(&empty), None, 500), vec![]),
        (key(3), None, vec![]),
        // A primary-key change, the way Debezium writes it: delete, tombstone, create.
        (
            key(1),
            value("d", Some(&sally), None, 600),
            vec![("__debezium.newkey", debezium::key(SERVER, &db, 10))],
        ),
        (key(1), None, vec![]),
        (
            key(10),
            value("c", None, Some(&sally_moved), 600),
            vec![("__debezium.oldkey", debezium::key(SERVER, &db, 1))],
        ),
    ];
    debezium::produce(&stack.kafka_bootstrap, &topic, &records).await?;
    let mut apply = InProcess::start(apply::config(&toml)?);
    let rows = wait_rows(&mut apply, &mut target, &db, &[2, 10]).await?;
    let status = apply.status.borrow().clone();
    apply.stop().await?;
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        vec![
            (
                2,
                s("Anne Marie"),
                s("2000-01-01"),
                s("-1.28"),
                s("2024-01-02 03:04:05.123456"),
                Some(1)
            ),
            (10, s("test"), None, s("5.00"), None, None),
        ]
    );
    ensure!(status.tombstones_skipped == 2, "{status:?}");
    ensure!(status.records_applied == 7, "{status:?}");
    Ok(())
}

/// Valid records 1 and 3 around an undecodable record at offset 1.
fn with_garbage(db: &str) -> Vec<Produced> {
    vec![
        create(db, &customer(1, "AfQ="), 100),
        (
            Some(debezium::key(SERVER, db, 2)),
            Some(b"\x00\x01 this is not a change record".to_vec()),
            vec![],
        ),
        create(db, &customer(3, "Arw="), 300),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_record_stops_apply_with_its_offset_under_fail() -> Result<()> {
    let stack = Stack::from_env()?;
    let (db, topic, mut target, toml) = setup(&stack, "", "").await?;
    debezium::produce(&stack.kafka_bootstrap, &topic, &with_garbage(&db)).await?;
    let mut apply = InProcess::start(apply::config(&toml)?);
    let status = apply
        .wait_until("FAILED", Duration::from_secs(60), |s| {
            s.state == State::Failed
        })
        .await?;
    let error = status.error.clone().unwrap_or_default();
    ensure!(
        error.contains(&format!("{topic}/0 offset 1")) && error.contains("dead-letter"),
        "the error names the record and the way out: {error}"
    );
    let result = apply.join(Duration::from_secs(30)).await?;
    ensure!(result.is_err(), "apply must end with the error");
    let rows = customers(&mut target, &db).await?;
    ensure!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>() == [1],
        "{rows:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_record_goes_to_the_dead_letter_topic_and_apply_goes_on() -> Result<()> {
    let stack = Stack::from_env()?;
    let dlq = unique_name("dlq");
    let (db, topic, mut target, toml) =
        setup(&stack, "", "[apply]\npoison_policy = \"dead-letter\"\n").await?;
    let toml = toml.replace(
        "[kafka.properties]",
        &format!("dead_letter_topic = \"{dlq}\"\n[kafka.properties]"),
    );
    debezium::produce(&stack.kafka_bootstrap, &topic, &with_garbage(&db)).await?;
    let mut apply = InProcess::start(apply::config(&toml)?);
    wait_rows(&mut apply, &mut target, &db, &[1, 3]).await?;
    let status = apply.status.borrow().clone();
    apply.stop().await?;
    ensure!(status.dead_lettered == 1, "{status:?}");
    let dead = read_committed(&stack.kafka_bootstrap, &dlq)?;
    ensure!(dead.len() == 1, "{dead:?}");
    ensure!(dead[0].header("rowferry.dlq.offset").as_deref() == Some("1"));
    ensure!(dead[0].header("rowferry.dlq.topic").as_deref() == Some(topic.as_str()));
    let reason = dead[0].header("rowferry.dlq.reason").unwrap_or_default();
    ensure!(reason.contains("decode"), "{reason}");
    ensure!(
        dead[0].value.as_deref() == Some(&b"\x00\x01 this is not a change record"[..]),
        "the record travels unchanged"
    );
    Ok(())
}

/// Records 1, 2 and 3 in one batch; the target's CHECK refuses record 2's negative balance.
fn with_violation(db: &str) -> Vec<Produced> {
    vec![
        create(db, &customer(1, "AfQ="), 100),
        create(db, &customer(2, "nA=="), 200),
        create(db, &customer(3, "Arw="), 300),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_constraint_violation_is_isolated_to_its_record() -> Result<()> {
    let stack = Stack::from_env()?;
    let check = ", CONSTRAINT positive CHECK (balance >= 0)";
    // Under `fail`: the records before it are applied, then apply stops naming it.
    let (db, topic, mut target, toml) = setup(&stack, check, "").await?;
    debezium::produce(&stack.kafka_bootstrap, &topic, &with_violation(&db)).await?;
    let mut apply = InProcess::start(apply::config(&toml)?);
    let status = apply
        .wait_until("FAILED", Duration::from_secs(60), |s| {
            s.state == State::Failed
        })
        .await?;
    let error = status.error.clone().unwrap_or_default();
    ensure!(
        error.contains("offset 1") && error.contains("positive"),
        "the error names the record and the constraint: {error}"
    );
    let _ = apply.join(Duration::from_secs(30)).await?;
    let rows = customers(&mut target, &db).await?;
    ensure!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>() == [1],
        "{rows:?}"
    );

    // Under `dead-letter`: only that record is diverted.
    let dlq = unique_name("dlq");
    let (db, topic, mut target, toml) =
        setup(&stack, check, "[apply]\npoison_policy = \"dead-letter\"\n").await?;
    let toml = toml.replace(
        "[kafka.properties]",
        &format!("dead_letter_topic = \"{dlq}\"\n[kafka.properties]"),
    );
    debezium::produce(&stack.kafka_bootstrap, &topic, &with_violation(&db)).await?;
    let mut apply = InProcess::start(apply::config(&toml)?);
    wait_rows(&mut apply, &mut target, &db, &[1, 3]).await?;
    apply.stop().await?;
    let dead = read_committed(&stack.kafka_bootstrap, &dlq)?;
    ensure!(
        dead.len() == 1 && dead[0].header("rowferry.dlq.offset").as_deref() == Some("1"),
        "{dead:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_instance_joins_mid_load_and_the_first_leaves() -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "rebalance", &[COUNTERS]).await?;
    let mut target = create_counting_target(&stack, &db).await?;
    let name = unique_name("rebalance");
    create_topics(&stack, &[format!("{name}.{db}.counters")], 4).await?;
    let start = binlog_end(&mut source).await?;
    let capture = capture::start_at(&stack, &name, &db, &start, "")?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(counters_load(stack.clone(), db.clone(), stop.clone(), 7));
    let toml = apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\.counters"),
        "[batch]\nmax_rows = 200\n",
    );
    let mut first = InProcess::start(apply::config(&toml)?);
    first
        .wait_until("4 partitions", Duration::from_secs(60), |s| {
            s.partitions.len() == 4
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut second = InProcess::start(apply::config(&toml)?);
    second
        .wait_until("a share of the partitions", Duration::from_secs(60), |s| {
            !s.partitions.is_empty() && s.target_transactions > 0
        })
        .await?;
    ensure!(
        first.status.borrow().partitions.len() < 4,
        "the first instance gave partitions away: {:?}",
        first.status.borrow().partitions
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.stop().await?;
    second
        .wait_until("all 4 partitions", Duration::from_secs(60), |s| {
            s.partitions.len() == 4
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let transactions = load.await??;
    let rows = wait_counted(
        &mut source,
        &mut target,
        &db,
        Duration::from_secs(90),
        || Ok(()),
    )
    .await
    .with_context(|| format!("second instance: {:?}", second.status.borrow()))?;
    second.stop().await?;
    capture.stop().await?;
    ensure!(transactions > 10 && rows > 0);
    Ok(())
}
