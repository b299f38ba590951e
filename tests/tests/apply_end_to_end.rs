//! capture → Kafka → apply, end to end: a source schema with every column type family, keyed,
//! composite-keyed, keyless and secondary-unique tables, and a workload of inserts, updates,
//! deletes, primary-key changes, multi-table transactions and repeated updates of one row.
//! The target must end equal to the source, row by row and (where the table definitions are
//! the same) by `CHECKSUM TABLE`, in each value format.

use std::time::Duration;

use anyhow::Result;
use mysql_async::prelude::Queryable;
use rowferry_tests::capture::{self, binlog_end, create_database};
use rowferry_tests::{Stack, apply, unique_name};

const TABLES: &[&str] = &[
    "all_types (id INT PRIMARY KEY, ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, \
     i INT, bi BIGINT, bu BIGINT UNSIGNED, d1 DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, \
     dbl DOUBLE, b1 BIT(1), b12 BIT(12), dt DATE, tm TIME(6), dtm DATETIME(6), \
     ts TIMESTAMP(3) NULL DEFAULT NULL, y YEAR, c CHAR(10), vc VARCHAR(255), tt TINYTEXT, \
     tx TEXT, bn BINARY(4), vb VARBINARY(16), bl BLOB, e ENUM('a','b','c d'), \
     st SET('x','y','z'), j JSON) DEFAULT CHARSET=utf8mb4",
    "parent (id INT PRIMARY KEY, name VARCHAR(50)) DEFAULT CHARSET=utf8mb4",
    "child (id INT PRIMARY KEY, parent_id INT NOT NULL, qty INT NOT NULL, KEY (parent_id)) \
     DEFAULT CHARSET=utf8mb4",
    "pair (a INT, b VARCHAR(20), v INT, PRIMARY KEY (a, b)) DEFAULT CHARSET=utf8mb4",
    "nokey (a INT, b VARCHAR(20)) DEFAULT CHARSET=utf8mb4",
    "uniq (id INT PRIMARY KEY, email VARCHAR(50) NOT NULL, UNIQUE KEY (email)) \
     DEFAULT CHARSET=utf8mb4",
];

const COMPARE: &[(&str, &str)] = &[
    ("all_types", "id"),
    ("parent", "id"),
    ("child", "id"),
    ("pair", "a, b"),
    ("nokey", "a, b"),
    ("uniq", "id"),
];

const WORKLOAD: &[&str] = &[
    "INSERT INTO all_types VALUES \
     (1, -128, 65535, -8388608, -2147483648, -9223372036854775808, 18446744073709551615, \
      '12345678901234567890123456789012345.123456789012345678901234567890', -99999999.99, \
      3.4028234e38, -1.7976931348623157e308, b'1', b'101010101010', '1000-01-01', \
      '-838:59:59.000000', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', 1901, \
      'fixed', 'it''s a \\\\ \"test\" ✓ 日本', 'tiny', REPEAT('long text ', 500), \
      X'00FF0A0D', X'000102', X'DEADBEEF00', 'c d', 'x,z', '{\"a\": [1, 2.5, \"x\"], \"b\": null}'), \
     (2, 127, 0, 8388607, 2147483647, 9223372036854775807, 0, -0.000000000000000000000000000001, \
      0.00, -1.17549435e-38, 2.2250738585072014e-308, b'0', b'0', '2024-02-29', \
      '00:00:00.000001', '1970-01-01 00:00:00.000000', '1970-01-01 00:00:01.000', 2155, \
      '', '', '', '', X'00000000', X'', X'', 'a', '', '[]'), \
     (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "INSERT INTO all_types (id, vc, d2, f, dbl, tm, dtm) VALUES \
     (4, 'four', 1.5, 0.1, 0.1, '12:34:56.5', '2020-06-15 08:00:00.25')",
    "UPDATE all_types SET vc = 'updated', d2 = d2 + 1, f = 1.5, ts = '2001-09-09 01:46:40.123' WHERE id = 4",
    "UPDATE all_types SET id = 100, vc = 'moved' WHERE id = 2",
    "DELETE FROM all_types WHERE id = 3",
    "BEGIN",
    "INSERT INTO parent VALUES (1, 'one'), (2, 'two')",
    "INSERT INTO child VALUES (10, 1, 1), (11, 1, 2), (20, 2, 3)",
    "UPDATE parent SET name = 'uno' WHERE id = 1",
    "COMMIT",
    "BEGIN",
    "DELETE FROM child WHERE parent_id = 1",
    "DELETE FROM parent WHERE id = 1",
    "INSERT INTO parent VALUES (3, 'three')",
    "UPDATE child SET parent_id = 3 WHERE id = 20",
    "COMMIT",
    "INSERT INTO pair VALUES (1, 'a', 1), (1, 'b', 2), (2, 'a', 3)",
    "UPDATE pair SET v = v * 10 WHERE a = 1",
    "UPDATE pair SET b = 'z' WHERE a = 2",
    "DELETE FROM pair WHERE a = 1 AND b = 'a'",
    "INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, 'y'), (3, NULL)",
    "UPDATE nokey SET b = 'w' WHERE a = 2",
    "DELETE FROM nokey WHERE a = 1 LIMIT 1",
    "INSERT INTO uniq VALUES (1, 'a@x'), (2, 'b@x')",
    // Swapping unique values needs the order kept: applied out of order, the target would
    // refuse (or upsert the wrong row).
    "UPDATE uniq SET email = 'tmp@x' WHERE id = 1",
    "UPDATE uniq SET email = 'a@x' WHERE id = 2",
    "UPDATE uniq SET email = 'b@x' WHERE id = 1",
];

async fn end_to_end(format: &str, schemas: bool, create_tables: bool) -> Result<()> {
    let stack = Stack::from_env()?;
    let (mut source, db) = create_database(&stack, "e2e", TABLES).await?;
    let mut target = if create_tables {
        apply::target_conn(&stack).await?
    } else {
        apply::create_target_tables(&stack, &db, TABLES).await?
    };
    let start = binlog_end(&mut source).await?;
    source.query_drop(format!("USE `{db}`")).await?;
    for statement in WORKLOAD {
        source.query_drop(*statement).await?;
    }
    // Many changes of one row in a short time: coalesced in a batch, still the last wins.
    for _ in 0..50 {
        source
            .query_drop("UPDATE child SET qty = qty + 1 WHERE id = 20")
            .await?;
    }
    let name = unique_name("e2e");
    let capture = capture::start_at(
        &stack,
        &name,
        &db,
        &start,
        &format!("[output]\nformat = \"{format}\"\nschemas = {schemas}\n"),
    )?;
    let apply = apply::InProcess::start(apply::config(&apply::apply_toml(
        &stack,
        &name,
        &format!("{name}\\.{db}\\..*"),
        &format!("[apply]\ncreate_tables = {create_tables}\n"),
    ))?);
    let result = apply::wait_equal(
        &mut source,
        &mut target,
        &db,
        COMPARE,
        !create_tables,
        Duration::from_secs(90),
    )
    .await;
    let status = apply.status.borrow().clone();
    apply.stop().await?;
    capture.stop().await?;
    result.map_err(|e| e.context(format!("apply status: {status:?}")))?;
    anyhow::ensure!(status.records_applied > 0, "{status:?}");
    anyhow::ensure!(
        status.tombstones_skipped > 0,
        "deletes produce tombstones: {status:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debezium_json_with_schemas_into_existing_tables() -> Result<()> {
    end_to_end("debezium-json", true, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debezium_json_without_schemas_into_existing_tables() -> Result<()> {
    end_to_end("debezium-json", false, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protobuf_into_tables_it_creates() -> Result<()> {
    end_to_end("protobuf", true, true).await
}
