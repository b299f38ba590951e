//! The source MariaDB is a real binlog source, and mysql_async reads it: row events arrive with
//! the column names of the FULL row metadata and the values that were written, from a file
//! position and from a GTID position.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use mysql_async::binlog::events::{EventData, OptionalMetadataField, RowsEventData};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Value};
use rowferry_tests::{Stack, unique_name, unique_server_id};

/// MariaDB's own GTID event (type 162), which mysql_common leaves undecoded.
const MARIADB_GTID_EVENT: u8 = 162;

/// One row change as the binlog carried it, with the column names from the TABLE_MAP metadata.
#[derive(Debug)]
struct RowChange {
    kind: &'static str,
    columns: Vec<String>,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
}

async fn create_items_table(admin: &mut Conn, db: &str) -> Result<()> {
    admin.query_drop(format!("CREATE DATABASE `{db}`")).await?;
    admin
        .query_drop(format!(
            "CREATE TABLE `{db}`.items (
                id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
                name VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL,
                price DECIMAL(12,4) NULL,
                seen_at DATETIME(6) NULL,
                note VARCHAR(32) CHARACTER SET latin1 NULL
            )"
        ))
        .await?;
    Ok(())
}

/// Column names of a TABLE_MAP event, from its optional (FULL) metadata.
fn column_names(tme: &mysql_async::binlog::events::TableMapEvent<'_>) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for field in tme.iter_optional_meta() {
        if let OptionalMetadataField::ColumnName(column_names) = field? {
            for name in column_names.iter_names() {
                names.push(name?.name().into_owned());
            }
        }
    }
    Ok(names)
}

fn plain_values(row: &mysql_async::binlog::row::BinlogRow) -> Result<Vec<Value>> {
    (0..row.len())
        .map(|i| match row.as_ref(i) {
            Some(BinlogValue::Value(value)) => Ok(value.clone()),
            other => bail!("column {i}: unexpected binlog value {other:?}"),
        })
        .collect()
}

/// An unsigned column's value: mysql_common gives `UInt` only above `i64::MAX`, `Int` below.
fn unsigned(value: &Value) -> Option<u64> {
    match *value {
        Value::UInt(n) => Some(n),
        Value::Int(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

/// Reads the stream until `want` row changes of `db`.`table` arrived (or 30 s passed).
async fn read_row_changes(
    stream: &mut BinlogStream,
    db: &str,
    table: &str,
    want: usize,
) -> Result<Vec<RowChange>> {
    let mut changes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while changes.len() < want {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .with_context(|| {
                format!(
                    "only {} of {want} row changes arrived in 30 s: {changes:#?}",
                    changes.len()
                )
            })?
            .context("the binlog stream ended")??;
        let Some(EventData::RowsEvent(rows_event)) = event.read_data()? else {
            continue;
        };
        let tme = stream
            .get_tme(rows_event.table_id())
            .context("row event without a preceding TABLE_MAP")?;
        if tme.database_name() != db || tme.table_name() != table {
            continue;
        }
        let kind = match rows_event {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => "write",
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => "update",
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => "delete",
            RowsEventData::PartialUpdateRowsEvent(_) => "partial-update",
        };
        let columns = column_names(tme)?;
        for row in rows_event.rows(tme) {
            let (before, after) = row?;
            changes.push(RowChange {
                kind,
                columns: columns.clone(),
                before: before.as_ref().map(plain_values).transpose()?,
                after: after.as_ref().map(plain_values).transpose()?,
            });
        }
    }
    Ok(changes)
}

#[tokio::test]
async fn row_events_from_a_file_position_carry_column_names_and_values() -> Result<()> {
    let stack = Stack::from_env()?;
    let db = unique_name("stack_binlog_file");
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    create_items_table(&mut admin, &db).await?;

    // Start reading where the binlog is now, as the least-privilege replication account.
    let mut repl = Conn::new(stack.source_repl_opts()?).await?;
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = repl
            .query_first("SHOW MASTER STATUS")
            .await?
            .context("binary logging is off")?;
        (row.get(0).context("File")?, row.get(1).context("Position")?)
    };
    repl.query_drop("SET @mariadb_slave_capability=4").await?;
    let mut stream = repl
        .get_binlog_stream(
            BinlogStreamRequest::new(unique_server_id())
                .with_filename(file.as_bytes())
                .with_pos(pos),
        )
        .await?;

    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items VALUES
                (18446744073709551615, 'café ☕', 12345678.1234, '2024-02-29 12:34:56.789012', 'naïve'),
                (2, 'second', NULL, NULL, NULL)"
        ))
        .await?;
    admin
        .query_drop(format!(
            "UPDATE `{db}`.items SET price = -0.0001 WHERE id = 2"
        ))
        .await?;
    admin
        .query_drop(format!("DELETE FROM `{db}`.items WHERE id = 2"))
        .await?;

    let changes = read_row_changes(&mut stream, &db, "items", 4).await?;
    let kinds: Vec<_> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, ["write", "write", "update", "delete"]);
    for change in &changes {
        assert_eq!(change.columns, ["id", "name", "price", "seen_at", "note"]);
    }

    let first = changes[0]
        .after
        .as_ref()
        .context("insert without after image")?;
    assert_eq!(first[0], Value::UInt(u64::MAX), "BIGINT UNSIGNED max");
    assert_eq!(
        first[1],
        Value::Bytes("café ☕".as_bytes().to_vec()),
        "utf8mb4 text"
    );
    assert_eq!(
        first[2],
        Value::Bytes(b"12345678.1234".to_vec()),
        "DECIMAL(12,4)"
    );
    assert_eq!(
        first[3],
        Value::Date(2024, 2, 29, 12, 34, 56, 789_012),
        "DATETIME(6)"
    );
    assert_eq!(
        first[4],
        Value::Bytes(b"na\xefve".to_vec()),
        "latin1 text arrives as latin1 bytes"
    );

    let update = &changes[2];
    assert_eq!(
        update.before.as_ref().context("update before")?[2],
        Value::NULL
    );
    assert_eq!(
        update.after.as_ref().context("update after")?[2],
        Value::Bytes(b"-0.0001".to_vec())
    );
    let delete = &changes[3];
    assert!(delete.after.is_none());
    assert_eq!(
        unsigned(&delete.before.as_ref().context("delete before")?[0]),
        Some(2)
    );

    drop(stream);
    admin.query_drop(format!("DROP DATABASE `{db}`")).await?;
    Ok(())
}

/// `domain-server-seq` as MariaDB prints a single GTID.
fn parse_gtid(gtid: &str) -> Result<(u32, u32, u64)> {
    let mut parts = gtid.split('-');
    let (Some(domain), Some(server), Some(seq), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a MariaDB GTID: {gtid:?}");
    };
    Ok((domain.parse()?, server.parse()?, seq.parse()?))
}

#[tokio::test]
async fn a_gtid_position_resumes_right_after_that_transaction() -> Result<()> {
    let stack = Stack::from_env()?;
    let db = unique_name("stack_binlog_gtid");
    let mut admin = Conn::new(stack.source_admin_opts()?).await?;
    create_items_table(&mut admin, &db).await?;
    // `last_gtid` is this session's own last transaction, whatever other tests commit meanwhile.
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items (id, name) VALUES (1, 'before')"
        ))
        .await?;
    let start: String = admin
        .query_first("SELECT @@last_gtid")
        .await?
        .context("no GTID")?;
    admin
        .query_drop(format!(
            "INSERT INTO `{db}`.items (id, name) VALUES (2, 'after')"
        ))
        .await?;
    let (domain, server, start_seq) = parse_gtid(&start)?;

    // MariaDB GTID streaming: announce the capability, name the last GTID already seen, and
    // request with no file name; the first transaction sent is the one after `start`.
    let mut repl = Conn::new(stack.source_repl_opts()?).await?;
    repl.query_drop("SET @mariadb_slave_capability=4").await?;
    repl.exec_drop("SET @slave_connect_state=?", (start.as_str(),))
        .await?;
    repl.query_drop("SET @slave_gtid_strict_mode=1").await?;
    let mut stream = repl
        .get_binlog_stream(BinlogStreamRequest::new(unique_server_id()))
        .await?;

    // With strict mode one domain has no gaps: the first GTID sent is start + 1 (our second
    // insert, or another test's transaction that committed in between).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .context("no GTID event in 30 s")?
            .context("the binlog stream ended")??;
        ensure!(
            !matches!(event.read_data()?, Some(EventData::RowsEvent(_))),
            "row event before any GTID event"
        );
        if event.header().event_type_raw() == MARIADB_GTID_EVENT {
            // Layout: seq_no (u64 LE), domain_id (u32 LE), flags (u8); the server id is in the header.
            let data = event.data();
            ensure!(data.len() >= 13, "short GTID event: {data:?}");
            let seq_no = u64::from_le_bytes(data[0..8].try_into()?);
            let domain = u32::from_le_bytes(data[8..12].try_into()?);
            break (domain, event.header().server_id(), seq_no);
        }
    };
    assert_eq!(
        first,
        (domain, server, start_seq + 1),
        "resume right after {start}"
    );

    // Row 1 was written at or before `start`: the first change of the table must be row 2.
    let changes = read_row_changes(&mut stream, &db, "items", 1).await?;
    assert_eq!(changes[0].kind, "write");
    let after = changes[0].after.as_ref().context("after image")?;
    assert_eq!(unsigned(&after[0]), Some(2));
    assert_eq!(after[1], Value::Bytes(b"after".to_vec()));

    drop(stream);
    admin.query_drop(format!("DROP DATABASE `{db}`")).await?;
    Ok(())
}
