//! Which tables a snapshot reads, and how each is described and selected.

use std::sync::Arc;

use mysql_async::Conn;
use rowferry_shared::event::{
    ColumnSchema, ColumnType, RowKey, TableId, TableSchema, quote_identifier,
};

use super::SnapshotError;
use crate::filter::{Filter, FilterError};
use crate::source::{self, query_rows, sql_string, text};

/// Schemas that hold no user data.
const SYSTEM_SCHEMAS: &str = "'mysql','information_schema','performance_schema','sys'";

/// The base tables the filter includes, in name order, with the source's row estimates.
pub async fn list(conn: &mut Conn, filter: &Filter) -> Result<Vec<(TableId, u64)>, SnapshotError> {
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
         ORDER BY TABLE_SCHEMA, TABLE_NAME"
    );
    let rows = query_rows(conn, &sql).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id = TableId::new(text(row, 0), text(row, 1));
            let estimate = text(row, 2).parse().unwrap_or(0);
            (id, estimate)
        })
        .filter(|(id, _)| filter.includes_table(id))
        .collect())
}

/// One table as a snapshot reads it.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    /// The captured columns and the key, as the records carry them.
    pub schema: Arc<TableSchema>,
    /// `{prefix}.{db}.{table}`.
    pub topic: String,
    /// `` `a`,`b` ``: the captured columns.
    pub select_list: String,
    /// Quoted key column names, in key order (empty: no usable key, read in one pass).
    pub key_names: Vec<String>,
    /// Collation of each key column holding character data.
    pub key_collations: Vec<Option<String>>,
}

impl SnapshotTable {
    /// The types of the key columns, in key order.
    pub fn key_types(&self) -> Vec<&ColumnType> {
        self.schema
            .key
            .columns()
            .iter()
            .filter_map(|&i| self.schema.columns.get(i).map(|c| &c.column_type))
            .collect()
    }
}

/// Reads a table's definition and key from information_schema.
pub async fn describe(
    conn: &mut Conn,
    id: &TableId,
    filter: &Filter,
    topic_prefix: &str,
) -> Result<SnapshotTable, SnapshotError> {
    let sql = format!(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{}' \
         ORDER BY ORDINAL_POSITION",
        sql_string(&id.db),
        sql_string(&id.table)
    );
    let rows = query_rows(conn, &sql).await?;
    if rows.is_empty() {
        return Err(SnapshotError::Vanished {
            table: id.to_string(),
        });
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut collations = Vec::with_capacity(rows.len());
    for row in &rows {
        let (name, sql_type) = (text(row, 0), text(row, 1));
        let column_type =
            ColumnType::from_sql(&sql_type).ok_or_else(|| SnapshotError::UnsupportedType {
                table: id.to_string(),
                column: name.clone(),
                column_type: sql_type.clone(),
            })?;
        let charset = Some(text(row, 3)).filter(|c| !c.is_empty());
        // A character column of charset `binary` is a binary string (as the binlog reports it).
        let charset = charset.filter(|c| c != "binary" && column_type.is_character());
        collations.push(Some(text(row, 4)).filter(|c| !c.is_empty()));
        columns.push(ColumnSchema {
            name,
            column_type,
            nullable: text(row, 2) == "YES",
            charset,
        });
    }
    let full = TableSchema {
        id: id.clone(),
        columns,
        key: RowKey::None,
    };
    let excluded = filter.excluded_columns(&full);
    let keep: Vec<usize> = (0..full.columns.len())
        .filter(|i| !excluded.contains(i))
        .collect();
    let key = source::table_key(conn, id).await?;
    let mut key_indexes = Vec::new();
    if let Some((_, names)) = &key {
        for name in names {
            let Some(full_index) = full.columns.iter().position(|c| &c.name == name) else {
                continue;
            };
            if excluded.contains(&full_index) {
                return Err(FilterError::KeyColumn {
                    table: id.to_string(),
                    column: name.clone(),
                }
                .into());
            }
            if let Some(kept) = keep.iter().position(|&i| i == full_index) {
                key_indexes.push((kept, full_index));
            }
        }
    }
    let columns: Vec<ColumnSchema> = keep.iter().map(|&i| full.columns[i].clone()).collect();
    let select_list = columns
        .iter()
        .map(|c| quote_identifier(&c.name))
        .collect::<Vec<_>>()
        .join(",");
    let key_names = key_indexes
        .iter()
        .map(|&(kept, _)| quote_identifier(&columns[kept].name))
        .collect();
    let key_collations = key_indexes
        .iter()
        .map(|&(kept, full_index)| {
            columns[kept]
                .column_type
                .is_character()
                .then(|| collations[full_index].clone())
                .flatten()
        })
        .collect();
    let kept_key: Vec<usize> = key_indexes.iter().map(|&(kept, _)| kept).collect();
    let row_key = match key {
        Some((true, _)) if !kept_key.is_empty() => RowKey::Primary(kept_key),
        Some((false, _)) if !kept_key.is_empty() => RowKey::Unique(kept_key),
        _ => RowKey::None,
    };
    Ok(SnapshotTable {
        topic: format!("{topic_prefix}.{}.{}", id.db, id.table),
        schema: Arc::new(TableSchema {
            id: id.clone(),
            columns,
            key: row_key,
        }),
        select_list,
        key_names,
        key_collations,
    })
}
