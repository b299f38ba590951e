//! Row changes in, Debezium records out: inserts, updates, deletes, multi-row statements,
//! transactions over several tables, key changes, keyless tables and DDL between changes.

use std::time::Duration;

use anyhow::{Context, Result};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_tests::capture::{InProcess, binlog_end, capture_toml, config};
use rowferry_tests::kafka::{Record, read_committed};
use rowferry_tests::{Stack, unique_name, unique_server_id};
use serde_json::{Value, json};

fn payload(record: &Record) -> Result<Value> {
    Ok(record.json()?["payload"].clone())
}

fn ops(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| match r.json() {
            Ok(v) => v["payload"]["op"].as_str().unwrap_or("?").to_owned(),
            Err(_) => "tombstone".to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn inserts_updates_deletes_and_transactions_become_debezium_records() -> Result<()> {
    let stack = Stack::from_env()?;
    let db = unique_name("cap_changes");
    let name = unique_name("capchg");
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    admin
        .query_drop(format!(
            "CREATE TABLE `{db}`.items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, qty INT)"
        ))
        .await?;
    admin
        .query_drop(format!(
            "CREATE TABLE `{db}`.audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, note TEXT)"
        ))
        .await?;
    admin
        .query_drop(format!("CREATE TABLE `{db}`.nokey (a INT, b VARCHAR(5))"))
        .await?;
    admin
        .query_drop(format!(
            "CREATE TABLE `{db}`.unique_only (code VARCHAR(8) NOT NULL, n INT, UNIQUE KEY (code))"
        ))
        .await?;
    let start = binlog_end(&mut admin).await?;
    let mut capture = InProcess::start(config(&capture_toml(
        &stack,
        &name,
        &db,
        &start.to_string(),
        unique_server_id(),
        "",
    ))?);

    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items VALUES (1,'one',10),(2,'two',20),(3,'three',30)"
        ))
        .await?;
    admin
        .query_drop(format!(
            "UPDATE `{db}`.items SET qty = qty + 1 WHERE id <= 2"
        ))
        .await?;
    admin
        .query_drop(format!("DELETE FROM `{db}`.items WHERE id = 3"))
        .await?;
    // One transaction over two tables.
    admin
        .query_drop(format!(
            "START TRANSACTION; \
             INSERT INTO `{db}`.items VALUES (4,'four',40); \
             INSERT INTO `{db}`.audit (note) VALUES ('added four'); \
             COMMIT"
        ))
        .await?;
    // Primary-key change.
    admin
        .query_drop(format!("UPDATE `{db}`.items SET id = 5 WHERE id = 4"))
        .await?;
    // A table without any key.
    admin
        .query_drop(format!("INSERT INTO `{db}`.nokey VALUES (1,'x'),(1,'x')"))
        .await?;
    // No primary key but a UNIQUE NOT NULL key: it becomes the record key.
    admin
        .query_drop(format!("INSERT INTO `{db}`.unique_only VALUES ('k1', 1)"))
        .await?;
    // DDL between changes: the records after it carry the new column, not before.
    admin
        .query_drop(format!(
            "ALTER TABLE `{db}`.items ADD COLUMN color VARCHAR(10) DEFAULT 'red'"
        ))
        .await?;
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items (id, name, qty) VALUES (6,'six',60)"
        ))
        .await?;
    admin
        .query_drop(format!("ALTER TABLE `{db}`.items DROP COLUMN qty"))
        .await?;
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items (id, name) VALUES (7,'seven')"
        ))
        .await?;
    let end = binlog_end(&mut admin).await?;
    capture
        .wait_committed(&end, Duration::from_secs(60))
        .await?;
    capture.stop().await?;

    let items = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.items"))?;
    assert_eq!(
        ops(&items),
        [
            "c",
            "c",
            "c", // multi-row insert
            "u",
            "u", // multi-row update
            "d",
            "tombstone", // delete + tombstone
            "c",         // in the two-table transaction
            "d",
            "tombstone",
            "c", // key change: delete old key, tombstone, create new key
            "c",
            "c" // around the DDL
        ]
    );
    let first = payload(&items[0])?;
    assert_eq!(first["after"], json!({"id": 1, "name": "one", "qty": 10}));
    assert_eq!(first["before"], Value::Null);
    assert_eq!(first["source"]["db"], json!(db));
    assert_eq!(first["source"]["table"], json!("items"));
    assert_eq!(first["source"]["connector"], json!("mysql"));
    assert_eq!(first["source"]["name"], json!(name));
    assert!(
        first["source"]["gtid"]
            .as_str()
            .is_some_and(|g| g.split('-').count() == 3)
    );
    assert_eq!(items[0].key_json()?["payload"], json!({"id": 1}));
    assert_eq!(
        items[0].header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        items[0]
            .header("rowferry.source.position")
            .is_some_and(|p| p.contains(':'))
    );
    // Rows of one statement: same transaction, consecutive order numbers.
    let orders: Vec<_> = items[..3]
        .iter()
        .map(|r| payload(r).map(|p| p["transaction"]["total_order"].clone()))
        .collect::<Result<_>>()?;
    assert_eq!(orders, [json!(1), json!(2), json!(3)]);
    assert_eq!(payload(&items[1])?["source"]["row"], json!(1));

    let update = payload(&items[3])?;
    assert_eq!(update["before"]["qty"], json!(10));
    assert_eq!(update["after"]["qty"], json!(11));
    let delete = payload(&items[5])?;
    assert_eq!(delete["before"]["id"], json!(3));
    assert_eq!(delete["after"], Value::Null);
    assert_eq!(
        items[6].key_json()?["payload"],
        json!({"id": 3}),
        "tombstone keeps the key"
    );

    // The two-table transaction shares one transaction id, with per-table order numbers.
    let audit = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.audit"))?;
    assert_eq!(audit.len(), 1);
    let (item4, audit1) = (payload(&items[7])?, payload(&audit[0])?);
    assert_eq!(item4["transaction"]["id"], audit1["transaction"]["id"]);
    assert_eq!(item4["transaction"]["total_order"], json!(1));
    assert_eq!(audit1["transaction"]["total_order"], json!(2));
    assert_eq!(audit1["transaction"]["data_collection_order"], json!(1));
    assert_eq!(audit1["after"]["note"], json!("added four"));

    // Key change, Debezium style.
    assert_eq!(payload(&items[8])?["before"]["id"], json!(4));
    assert_eq!(items[8].key_json()?["payload"], json!({"id": 4}));
    assert!(
        items[8]
            .header("__debezium.newkey")
            .is_some_and(|k| k.contains("\"id\":5"))
    );
    assert_eq!(items[10].key_json()?["payload"], json!({"id": 5}));
    assert!(
        items[10]
            .header("__debezium.oldkey")
            .is_some_and(|k| k.contains("\"id\":4"))
    );

    // DDL: the column appears, then the other one disappears.
    assert_eq!(
        payload(&items[11])?["after"],
        json!({"id": 6, "name": "six", "qty": 60, "color": "red"})
    );
    assert_eq!(
        payload(&items[12])?["after"],
        json!({"id": 7, "name": "seven", "color": "red"})
    );

    // Keyless table: null keys, both identical rows delivered.
    let nokey = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.nokey"))?;
    assert_eq!(nokey.len(), 2);
    assert!(nokey.iter().all(|r| r.key.is_none()));
    for record in &nokey {
        assert_eq!(payload(record)?["after"], json!({"a": 1, "b": "x"}));
    }

    let unique = read_committed(&stack.kafka_bootstrap, &format!("{name}.{db}.unique_only"))?;
    assert_eq!(unique.len(), 1);
    assert_eq!(unique[0].key_json()?["payload"], json!({"code": "k1"}));

    // The offsets topic holds the position the capture reached.
    let offsets = read_committed(&stack.kafka_bootstrap, &format!("{name}.offsets"))?;
    let last = offsets.last().context("no position stored")?;
    assert_eq!(last.key.as_deref(), Some(name.as_bytes()));
    let position = last.json()?;
    assert_eq!(position["file"], json!(end.file));
    Ok(())
}
