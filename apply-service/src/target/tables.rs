//! Target table definitions: read from information_schema, checked against the records,
//! created or widened from the records' schema when configured to.

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::codec::{ColumnKind, DecodedChange, DecodedColumn};
use rowferry_shared::event::{
    ColumnSchema, ColumnType, LobSize, RowKey, TableId, TableSchema, quote_identifier,
};

use super::TargetError;
use crate::sql_value::push_string;

/// A target table as apply writes it.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// Columns and primary key (or the first UNIQUE key over NOT NULL columns).
    pub schema: TableSchema,
    /// Whether a UNIQUE key other than the row key exists: then changes of different rows may
    /// collide on it, and a batch must keep their order.
    pub other_unique_keys: bool,
    by_name: HashMap<String, usize>,
    quoted: String,
}

impl TargetTable {
    /// A table with `schema`; `other_unique_keys` when a UNIQUE key besides the row key exists.
    pub fn new(schema: TableSchema, other_unique_keys: bool) -> Self {
        let by_name = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let quoted = schema.id.quoted();
        Self {
            schema,
            other_unique_keys,
            by_name,
            quoted,
        }
    }

    /// The table as a quoted identifier.
    pub fn quoted(&self) -> &str {
        &self.quoted
    }

    /// The index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The row key's column names.
    pub fn key_names(&self) -> Vec<&str> {
        self.schema
            .key
            .columns()
            .iter()
            .map(|i| self.schema.columns[*i].name.as_str())
            .collect()
    }
}

/// Reads `table` from the target; `None` if it does not exist.
pub async fn load(conn: &mut Conn, table: &TableId) -> Result<Option<TargetTable>, TargetError> {
    let mut filter = String::from(" WHERE TABLE_SCHEMA = ");
    push_string(&mut filter, &table.db);
    filter.push_str(" AND TABLE_NAME = ");
    push_string(&mut filter, &table.table);
    let mut aliased = String::from(" WHERE s.TABLE_SCHEMA = ");
    push_string(&mut aliased, &table.db);
    aliased.push_str(" AND s.TABLE_NAME = ");
    push_string(&mut aliased, &table.table);
    let context = format!("reading the definition of {table}");
    let columns: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS{filter} \
             ORDER BY ORDINAL_POSITION"
        ))
        .await
        .map_err(|e| TargetError::sql(context.clone(), e))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let columns: Vec<ColumnSchema> = columns
        .into_iter()
        .map(|(name, column_type, nullable)| ColumnSchema {
            // A type rowferry does not know (MariaDB's INET6, UUID) takes its values as text.
            column_type: ColumnType::from_sql(&column_type).unwrap_or(ColumnType::Text {
                size: LobSize::Long,
            }),
            name,
            nullable: nullable == "YES",
            charset: None,
        })
        .collect();
    let keys: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT s.INDEX_NAME, s.COLUMN_NAME, c.IS_NULLABLE FROM information_schema.STATISTICS s \
             JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA \
               AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME\
             {} AND s.NON_UNIQUE = 0 \
             ORDER BY s.INDEX_NAME = 'PRIMARY' DESC, s.INDEX_NAME, s.SEQ_IN_INDEX",
            aliased
        ))
        .await
        .map_err(|e| TargetError::sql(context, e))?;
    let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (index, column, nullable) in keys {
        match indexes.last_mut() {
            Some((name, cols, any_null)) if *name == index => {
                cols.push(column);
                *any_null |= nullable == "YES";
            }
            _ => indexes.push((index, vec![column], nullable == "YES")),
        }
    }
    let chosen = indexes
        .iter()
        .position(|(name, _, any_null)| name == "PRIMARY" || !any_null);
    let key = match chosen {
        Some(i) => {
            let positions = indexes[i]
                .1
                .iter()
                .filter_map(|name| columns.iter().position(|c| &c.name == name))
                .collect();
            if indexes[i].0 == "PRIMARY" {
                RowKey::Primary(positions)
            } else {
                RowKey::Unique(positions)
            }
        }
        None => RowKey::None,
    };
    let other_unique_keys = indexes.len() > usize::from(chosen.is_some());
    Ok(Some(TargetTable::new(
        TableSchema {
            id: table.clone(),
            columns,
            key,
        },
        other_unique_keys,
    )))
}

/// What is wrong between a record and its target table.
pub fn check(table: &TargetTable, change: &DecodedChange) -> Result<(), TargetError> {
    let missing: Vec<&str> = change
        .columns
        .iter()
        .filter(|c| table.column_index(&c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(TargetError::Schema(format!(
            "target table {} has no column {} that records of {} carry; add the column, or set \
             apply.evolve = true to let rowferry add it",
            table.schema.id,
            missing.join(", "),
            change.table
        )));
    }
    let target_key = table.key_names();
    if !change.key_columns.is_empty() {
        let mut record_key: Vec<&str> = change.key_columns.iter().map(String::as_str).collect();
        let mut sorted_target = target_key.clone();
        record_key.sort_unstable();
        sorted_target.sort_unstable();
        if record_key != sorted_target {
            return Err(TargetError::Schema(format!(
                "target table {} is keyed by ({}) but records of {} by ({}); give the target \
                 table the same primary key",
                table.schema.id,
                target_key.join(", "),
                change.table,
                change.key_columns.join(", ")
            )));
        }
    }
    Ok(())
}

/// The columns of `change` that `table` lacks.
pub fn missing_columns<'a>(
    table: &TargetTable,
    change: &'a DecodedChange,
) -> Vec<&'a DecodedColumn> {
    change
        .columns
        .iter()
        .filter(|c| table.column_index(&c.name).is_none())
        .collect()
}

/// The SQL type a new column gets: the record's own SQL type when it says one (protobuf
/// records, Debezium's propagated source types), else the widest type of its kind.
pub fn column_ddl_type(column: &DecodedColumn, in_key: bool) -> String {
    if let Some(column_type) = column.sql_type.as_deref().and_then(exact_type) {
        return column_type.to_string();
    }
    match column.kind {
        ColumnKind::Integer => "bigint",
        ColumnKind::Float => "float",
        ColumnKind::Double => "double",
        ColumnKind::Decimal => "decimal(65,30)",
        ColumnKind::Text | ColumnKind::Other if in_key => "varchar(255)",
        ColumnKind::Text | ColumnKind::Other => "longtext",
        ColumnKind::Bytes if in_key => "varbinary(255)",
        ColumnKind::Bytes => "longblob",
        ColumnKind::Date => "date",
        ColumnKind::Time => "time(6)",
        ColumnKind::DateTime => "datetime(6)",
        ColumnKind::Timestamp => "timestamp(6)",
        ColumnKind::Year => "year",
        ColumnKind::Enum => "varchar(255)",
        ColumnKind::Set => "varchar(1024)",
        ColumnKind::Bit => "bit(64)",
        ColumnKind::Json => "json",
        ColumnKind::Geometry => "geometry",
        ColumnKind::Vector => "varbinary(65532)",
    }
    .to_owned()
}

/// The record's SQL type when it is complete: parsed (and printed back, so nothing but a
/// type reaches the DDL), and with its length, precision or members when the type needs them
/// (Debezium's propagated `__debezium.source.column.type` is a bare name like `DECIMAL`).
fn exact_type(sql: &str) -> Option<ColumnType> {
    let column_type = ColumnType::from_sql(sql)?;
    let needs_arguments = matches!(
        column_type,
        ColumnType::Decimal { .. }
            | ColumnType::Char { .. }
            | ColumnType::VarChar { .. }
            | ColumnType::Binary { .. }
            | ColumnType::VarBinary { .. }
            | ColumnType::Enum { .. }
            | ColumnType::Set { .. }
            | ColumnType::Bit { .. }
            | ColumnType::Time { .. }
            | ColumnType::DateTime { .. }
            | ColumnType::Timestamp { .. }
            | ColumnType::Vector { .. }
    );
    (!needs_arguments || sql.contains('(')).then_some(column_type)
}

fn column_ddl(column: &DecodedColumn, in_key: bool) -> String {
    let nullability = if column.optional && !in_key {
        "NULL"
    } else {
        "NOT NULL"
    };
    format!(
        "{} {} {nullability}",
        quote_identifier(&column.name),
        column_ddl_type(column, in_key)
    )
}

/// `CREATE TABLE IF NOT EXISTS` for `table` with the columns and key of `change`.
pub fn create_sql(table: &TableId, change: &DecodedChange) -> String {
    let mut parts: Vec<String> = change
        .columns
        .iter()
        .map(|c| column_ddl(c, change.key_columns.contains(&c.name)))
        .collect();
    if !change.key_columns.is_empty() {
        let key: Vec<String> = change
            .key_columns
            .iter()
            .map(|k| quote_identifier(k))
            .collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        table.quoted(),
        parts.join(", ")
    )
}

/// `ALTER TABLE … ADD COLUMN` for each missing column (always nullable: existing rows have
/// no value).
pub fn add_columns_sql(table: &TableId, missing: &[&DecodedColumn]) -> String {
    let adds: Vec<String> = missing
        .iter()
        .map(|c| {
            format!(
                "ADD COLUMN {} {} NULL",
                quote_identifier(&c.name),
                column_ddl_type(c, false)
            )
        })
        .collect();
    format!("ALTER TABLE {} {}", table.quoted(), adds.join(", "))
}
