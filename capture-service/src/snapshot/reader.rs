//! Reading one table inside a consistent snapshot, in key order, a chunk at a time.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Statement};
use rowferry_shared::event::{ColumnType, Row};
use rowferry_shared::position::Flavor;

use super::SnapshotError;
use super::progress::{KeyValue, SnapshotPoint, key_of};
use super::tables::SnapshotTable;
use super::values::from_wire;
use crate::source::{self, SourceError, SourceFacts, text};

fn query_error(sql: &str) -> impl FnOnce(mysql_async::Error) -> SnapshotError + '_ {
    move |source| {
        SnapshotError::Source(SourceError::Query {
            query: sql.to_owned(),
            source,
        })
    }
}

async fn run(conn: &mut Conn, sql: &str) -> Result<(), SnapshotError> {
    conn.query_drop(sql).await.map_err(query_error(sql))
}

/// Opens a read-only consistent snapshot on `conn` and returns its binlog point.
///
/// MariaDB reports the binlog position of the snapshot itself (`binlog_snapshot_file` /
/// `_position`), so no lock is taken. MySQL has no such status: the point is read under a
/// brief `FLUSH TABLES WITH READ LOCK` (needs RELOAD), released as soon as the snapshot exists.
pub async fn open(conn: &mut Conn, facts: &SourceFacts) -> Result<SnapshotPoint, SnapshotError> {
    // TIMESTAMP values come back in UTC, as the binlog has them.
    run(conn, "SET SESSION time_zone = '+00:00'").await?;
    run(
        conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await?;
    match facts.flavor {
        Flavor::MariaDb => {
            run(
                conn,
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            )
            .await?;
            let rows: Vec<(String, String)> = conn
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(query_error("SHOW STATUS LIKE 'binlog_snapshot_%'"))?;
            let value = |name: &str| {
                rows.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let (Some(file), Some(pos)) = (
                value("Binlog_snapshot_file"),
                value("Binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok()),
            ) else {
                return Err(source::refused(
                    "the source reports no binlog_snapshot_file/position for a consistent snapshot",
                    "enable log_bin on the source",
                )
                .into());
            };
            let at = rowferry_shared::position::BinlogFilePosition::new(file.clone(), pos);
            let gtids = if facts.gtids {
                Some(source::mariadb_gtid_at(conn, &at).await?.to_string())
            } else {
                None
            };
            Ok(SnapshotPoint { file, pos, gtids })
        }
        Flavor::MySql => {
            run(conn, "FLUSH TABLES WITH READ LOCK").await?;
            let opened = async {
                run(
                    conn,
                    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
                )
                .await?;
                let row = source::binlog_status(conn).await?.ok_or_else(|| {
                    source::refused("binary logging is off on the source", "enable log_bin")
                })?;
                let gtids = Some(text(&row, 4).replace(['\n', ' '], "")).filter(|g| !g.is_empty());
                let pos = text(&row, 1).parse().map_err(|_| {
                    SnapshotError::Worker(format!(
                        "the source reported binlog position {:?}, not a number",
                        text(&row, 1)
                    ))
                })?;
                Ok::<_, SnapshotError>(SnapshotPoint {
                    file: text(&row, 0),
                    pos,
                    gtids: if facts.gtids { gtids } else { None },
                })
            }
            .await;
            run(conn, "UNLOCK TABLES").await?;
            opened
        }
    }
}

/// Ends the snapshot transaction.
pub async fn close(conn: &mut Conn) -> Result<(), SnapshotError> {
    run(conn, "COMMIT").await
}

/// Reads a table in key order from a position, one chunk per call.
pub struct ChunkReader {
    table: Arc<SnapshotTable>,
    chunk_rows: usize,
    last_key: Option<Vec<KeyValue>>,
    /// Rows read so far: where the next chunk of a table without a key starts (within one
    /// consistent snapshot the scan order does not change).
    offset: usize,
    first: Option<Statement>,
    next: Option<Statement>,
    finished: bool,
}

/// One chunk of rows.
pub struct Chunk {
    /// The rows, in key order.
    pub rows: Vec<Row>,
    /// The key of the last row (what the next chunk starts after).
    pub last_key: Option<Vec<KeyValue>>,
    /// No rows follow.
    pub last: bool,
}

impl ChunkReader {
    /// A reader of `table` that starts after `last_key` (from the first row when `None`).
    pub fn new(
        table: Arc<SnapshotTable>,
        chunk_rows: usize,
        last_key: Option<Vec<KeyValue>>,
    ) -> Self {
        Self {
            table,
            chunk_rows: chunk_rows.max(1),
            last_key,
            offset: 0,
            first: None,
            next: None,
            finished: false,
        }
    }

    /// `SELECT … WHERE key > (?, …) ORDER BY key LIMIT n+1`, the row-comparison spelled out
    /// as `a > ? OR (a = ? AND b > ?)` so that every server uses the key's index range.
    fn chunk_sql(&self, after: bool) -> String {
        let table = &self.table;
        let id = table.schema.id.quoted();
        let order = table.key_names.join(",");
        let mut sql = format!("SELECT {} FROM {id}", table.select_list);
        if after {
            // A DECIMAL key compared with a string parameter would be compared as doubles.
            let types = table.key_types();
            let param = |i: usize| match types.get(i) {
                Some(ColumnType::Decimal { precision, scale }) => {
                    format!("CAST(? AS DECIMAL({precision},{scale}))")
                }
                _ => "?".to_owned(),
            };
            let mut alternatives = Vec::new();
            for i in 0..table.key_names.len() {
                let mut terms: Vec<String> = table.key_names[..i]
                    .iter()
                    .enumerate()
                    .map(|(j, name)| format!("{name} = {}", param(j)))
                    .collect();
                terms.push(format!("{} > {}", table.key_names[i], param(i)));
                alternatives.push(format!("({})", terms.join(" AND ")));
            }
            sql.push_str(&format!(" WHERE {}", alternatives.join(" OR ")));
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT {}", self.chunk_rows + 1));
        sql
    }

    fn params(&self) -> Vec<mysql_async::Value> {
        let Some(last) = &self.last_key else {
            return Vec::new();
        };
        let mut params = Vec::new();
        for i in 0..last.len() {
            for value in &last[..=i] {
                params.push(value.to_param());
            }
        }
        params
    }

    /// The next chunk; `None` once the table is read. A table without a usable key is read in
    /// chunks by position in the scan (`LIMIT … OFFSET …`), which only holds within one
    /// consistent snapshot: such a table cannot resume inside itself.
    pub async fn next(&mut self, conn: &mut Conn) -> Result<Option<Chunk>, SnapshotError> {
        if self.finished {
            return Ok(None);
        }
        let after = self.last_key.is_some();
        let keyed = !self.table.key_names.is_empty();
        let sql = if keyed {
            self.chunk_sql(after)
        } else {
            format!(
                "SELECT {} FROM {}",
                self.table.select_list,
                self.table.schema.id.quoted()
            )
        };
        let slot = if after {
            &mut self.next
        } else {
            &mut self.first
        };
        let statement = match slot {
            Some(statement) => statement.clone(),
            None => {
                let statement = conn.prep(&sql).await.map_err(query_error(&sql))?;
                *slot = Some(statement.clone());
                statement
            }
        };
        let limit = self.chunk_rows;
        let mut result = conn
            .exec_iter(statement, self.params())
            .await
            .map_err(query_error(&sql))?;
        let mut rows: Vec<Row> = Vec::with_capacity(self.chunk_rows.min(65_536));
        let mut more = false;
        let columns = &self.table.schema.columns;
        while let Some(row) = result.next().await.map_err(query_error(&sql))? {
            if rows.len() >= limit {
                // The extra row only says that another chunk follows.
                more = true;
                continue;
            }
            let values = row.unwrap_raw();
            let mut converted = Vec::with_capacity(values.len());
            for (value, column) in values.into_iter().zip(columns) {
                let value = value.unwrap_or(mysql_async::Value::NULL);
                converted.push(from_wire(value, &column.name, &column.column_type).map_err(
                    |e| SnapshotError::Value {
                        table: self.table.schema.id.to_string(),
                        source: e,
                    },
                )?);
            }
            rows.push(converted);
        }
        drop(result);
        if keyed && let Some(last) = rows.last() {
            let key = key_of(last, &self.table.schema).ok_or_else(|| SnapshotError::KeyValue {
                table: self.table.schema.id.to_string(),
            })?;
            self.last_key = Some(key);
        }
        self.offset += rows.len();
        self.finished = !more;
        Ok(Some(Chunk {
            rows,
            last_key: self.last_key.clone(),
            last: !more,
        }))
    }
}
