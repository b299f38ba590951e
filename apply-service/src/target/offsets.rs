//! The offsets table: where each partition's next offset lives in the target, written in the
//! same transaction as the rows it covers.
//!
//! The update is conditional on the offset this worker last saw, so an instance that lost its
//! partition in a rebalance (a zombie) finds its update matching no row and rolls back
//! instead of writing the rows a second time.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::event::quote_identifier;

use super::{TargetError, exec};
use crate::sql_value::push_string;

/// The offsets table of one consumer group.
#[derive(Debug, Clone)]
pub struct OffsetsTable {
    database: String,
    table: String,
    group: String,
}

/// One partition's stored progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    /// The next offset to apply.
    pub next_offset: i64,
}

impl OffsetsTable {
    /// The table `database.table`, rows of `group`.
    pub fn new(database: &str, table: &str, group: &str) -> Self {
        Self {
            database: database.to_owned(),
            table: table.to_owned(),
            group: group.to_owned(),
        }
    }

    fn quoted(&self) -> String {
        format!(
            "{}.{}",
            quote_identifier(&self.database),
            quote_identifier(&self.table)
        )
    }

    /// The table, quoted (for messages).
    pub fn name(&self) -> String {
        self.quoted()
    }

    /// The statement that sets a partition's next offset whatever it was (a seek), forgetting
    /// the source position stored with the old one.
    pub fn set_sql(&self, topic: &str, partition: i32, next: i64) -> String {
        let mut sql = format!(
            "INSERT INTO {} (consumer_group, topic, kafka_partition, next_offset, source_ts_ms, \
             source_position) VALUES (",
            self.quoted()
        );
        push_string(&mut sql, &self.group);
        sql.push_str(", ");
        push_string(&mut sql, topic);
        sql.push_str(&format!(
            ", {partition}, {next}, NULL, NULL) ON DUPLICATE KEY UPDATE next_offset = {next}, \
             source_ts_ms = NULL, source_position = NULL"
        ));
        sql
    }

    /// Creates the database and table if missing.
    pub async fn ensure(&self, conn: &mut Conn) -> Result<(), TargetError> {
        let context = format!(
            "creating the offsets table {} (the target account needs CREATE there, or create \
             it beforehand)",
            self.quoted()
        );
        exec(
            conn,
            &format!(
                "CREATE DATABASE IF NOT EXISTS {}",
                quote_identifier(&self.database)
            ),
            &context,
        )
        .await?;
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
               consumer_group VARCHAR(255) NOT NULL, \
               topic VARCHAR(249) NOT NULL, \
               kafka_partition INT NOT NULL, \
               next_offset BIGINT NOT NULL, \
               source_position VARCHAR(512) NULL, \
               source_ts_ms BIGINT NULL, \
               updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
                 ON UPDATE CURRENT_TIMESTAMP(6), \
               PRIMARY KEY (consumer_group, topic, kafka_partition)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            self.quoted()
        );
        exec(conn, &sql, &context).await
    }

    /// The stored offset of each of `partitions` that has one.
    pub async fn read(
        &self,
        conn: &mut Conn,
        topic: &str,
        partition: i32,
    ) -> Result<Option<StoredOffset>, TargetError> {
        let mut sql = format!(
            "SELECT next_offset FROM {} WHERE consumer_group = ",
            self.quoted()
        );
        push_string(&mut sql, &self.group);
        sql.push_str(" AND topic = ");
        push_string(&mut sql, topic);
        sql.push_str(&format!(" AND kafka_partition = {partition}"));
        let row: Option<i64> = conn
            .query_first(sql)
            .await
            .map_err(|e| TargetError::sql(format!("reading {}", self.quoted()), e))?;
        Ok(row.map(|next_offset| StoredOffset { next_offset }))
    }

    /// The statement that moves `topic`/`partition` from `previous` to `next`: an UPDATE
    /// matching the previous offset, or an INSERT when none was stored (a concurrent insert
    /// then fails on the primary key). It must change exactly one row.
    pub fn advance_sql(
        &self,
        topic: &str,
        partition: i32,
        previous: Option<i64>,
        next: i64,
        source_position: Option<&str>,
        source_ts_ms: Option<i64>,
    ) -> String {
        let mut sql = String::with_capacity(256);
        let position = |sql: &mut String| match source_position {
            Some(p) => push_string(sql, p),
            None => sql.push_str("NULL"),
        };
        let ts = source_ts_ms.map_or_else(|| "NULL".to_owned(), |t| t.to_string());
        // A batch of tombstones only keeps the last known source position.
        match previous {
            Some(previous) => {
                sql.push_str(&format!(
                    "UPDATE {} SET next_offset = {next}, \
                     source_ts_ms = COALESCE({ts}, source_ts_ms), source_position = COALESCE(",
                    self.quoted()
                ));
                position(&mut sql);
                sql.push_str(", source_position)");
                sql.push_str(" WHERE consumer_group = ");
                push_string(&mut sql, &self.group);
                sql.push_str(" AND topic = ");
                push_string(&mut sql, topic);
                sql.push_str(&format!(
                    " AND kafka_partition = {partition} AND next_offset = {previous}"
                ));
            }
            None => {
                sql.push_str(&format!(
                    "INSERT INTO {} (consumer_group, topic, kafka_partition, next_offset, \
                     source_ts_ms, source_position) VALUES (",
                    self.quoted()
                ));
                push_string(&mut sql, &self.group);
                sql.push_str(", ");
                push_string(&mut sql, topic);
                sql.push_str(&format!(", {partition}, {next}, {ts}, "));
                position(&mut sql);
                sql.push(')');
            }
        }
        sql
    }
}
