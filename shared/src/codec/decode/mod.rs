//! Decoding: Kafka record bytes back into rowferry's event model, for the apply service.
//!
//! Three inputs, one result ([`DecodedChange`]): the column names in order, the typed values of
//! the row images, the operation, the key's column names, and where the change was read.
//!
//! - [`decode_debezium_json`]: Debezium's envelope with its Connect schema
//!   (`{"schema":…,"payload":…}`). Each value is read through its field schema (`type`,
//!   `name`, `parameters`), so records written by Debezium itself decode as well as ours.
//! - [`decode_debezium_payload`]: the payload alone (`schemas.enable=false`), typed by a
//!   [`TableSchema`] the caller supplies (apply reads the target table's column types).
//! - [`decode_protobuf_change`] (and [`ProtobufDecoder`] for a stream of records):
//!   `rowferry.event.v1.ChangeEvent`, whose values are exact.
//!
//! Debezium JSON is lossy where Debezium is (see the `debezium` encoder module); the decoder
//! returns what the record says and leaves the repair to apply, which knows the target column:
//! - with the Connect schema, integers come back as [`Value::Int`] (the schema has no
//!   signedness), and BIGINT UNSIGNED above `i64::MAX` in Debezium's default `long` mode comes
//!   back negative; apply reinterprets it with the target column type (`v as u64`). Given a
//!   `TableSchema` ([`decode_debezium_payload`]) or a propagated source type of
//!   `BIGINT UNSIGNED`, unsigned columns come back as exact [`Value::UInt`];
//! - zero or impossible DATE/DATETIME values come back as null (nullable columns) or as the
//!   epoch (`1970-01-01`, NOT NULL columns);
//! - YEAR 0000 comes back as 1900 (Debezium's reading of the binlog byte);
//! - an empty JSON value comes back as null (nullable) or `{}` (NOT NULL);
//! - BINARY(n) values come back right-padded with zero bytes to n, as MySQL returns them.
//!
//! Tombstones (a record with a null or empty value) carry no change: every decoder returns
//! [`DecodeError::Tombstone`] for them, which [`DecodeError::is_tombstone`] recognizes, so the
//! caller can skip them without matching text.

mod json;
mod protobuf;
mod text;

#[cfg(test)]
mod tests;

pub use json::{DebeziumJsonDecoder, decode_debezium_json, decode_debezium_payload};
pub use protobuf::{ProtobufDecoder, decode_protobuf_change};

use std::sync::Arc;

use crate::event::{RowChange, SourceInfo, TableId, TransactionInfo};

/// One change record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedChange {
    /// The source table (`source.db`, `source.table`).
    pub table: TableId,
    /// The operation and its row images; each row has one value per entry of `columns`, in
    /// that order.
    pub change: RowChange,
    /// The columns of the row images, in order.
    pub columns: Arc<[DecodedColumn]>,
    /// The names of the columns that identify the row, in key order: from the record key when
    /// one was given, else from what the value knows of the key (protobuf's schema, the
    /// caller's `TableSchema`); empty for tables without a key.
    pub key_columns: Arc<[String]>,
    /// Where the change was read. From Debezium JSON, `flavor` is MariaDB when the GTID has
    /// MariaDB's `domain-server-sequence` form and MySQL otherwise (Debezium always writes
    /// `connector: mysql`); `ts_us` is `source.ts_us`, or `source.ts_ms` × 1000 without it.
    pub source: SourceInfo,
    /// The record's place in its source transaction (none for snapshot reads).
    pub transaction: Option<TransactionInfo>,
    /// When the event was built, microseconds since the epoch (`ts_us`, or `ts_ms` × 1000).
    pub ts_us: i64,
}

impl DecodedChange {
    /// The positions of the key columns in `columns` (and in each row), in key order, or
    /// `None` when a key column is not among the row's columns.
    pub fn key_indexes(&self) -> Option<Vec<usize>> {
        self.key_columns
            .iter()
            .map(|key| self.columns.iter().position(|c| &c.name == key))
            .collect()
    }
}

/// One column of a decoded row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedColumn {
    /// Column name.
    pub name: String,
    /// What kind of values the column holds.
    pub kind: ColumnKind,
    /// Whether the record allows NULL in the column (Connect `optional`, protobuf `nullable`).
    pub optional: bool,
    /// The SQL type when the record or the caller says it: protobuf's `sql_type`, the
    /// `TableSchema`'s type, or Debezium's propagated `__debezium.source.column.type`.
    pub sql_type: Option<String>,
}

/// The kind of values a column holds: which [`Value`](crate::event::Value) variants its
/// rows carry (besides `Null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// Integers: `Int`, or `UInt` for unsigned values that a signed integer cannot hold.
    Integer,
    /// `Float`.
    Float,
    /// `Double`.
    Double,
    /// `Decimal` text (also BIGINT UNSIGNED in Debezium's `precise` mode).
    Decimal,
    /// `Text`.
    Text,
    /// `Bytes`.
    Bytes,
    /// `Date`.
    Date,
    /// `Time`.
    Time,
    /// `DateTime`.
    DateTime,
    /// `Timestamp`.
    Timestamp,
    /// `Year`.
    Year,
    /// `Enum`.
    Enum,
    /// `Set`.
    Set,
    /// `Bit`.
    Bit,
    /// `Json`.
    Json,
    /// `Bytes`: a 4-byte little-endian SRID, then WKB.
    Geometry,
    /// `Bytes`: little-endian `f32` elements.
    Vector,
    /// A type the decoder does not know (an unrecognized protobuf `sql_type`); values come as
    /// the record typed them.
    Other,
}

/// Why a record could not be decoded.
///
/// Every error but [`DecodeError::Tombstone`] is definite: the same bytes fail the same way on
/// every retry.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record value is null or empty: a tombstone, which carries no change.
    #[error("the record value is empty or null (a tombstone); it carries no change, skip it")]
    Tombstone,
    /// The key or value is not JSON.
    #[error("the record {part} is not JSON: {source}")]
    NotJson {
        /// `key` or `value`.
        part: &'static str,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The key or value is not a protobuf message of the expected type.
    #[error("the record {part} is not a rowferry.event.v1 protobuf message: {source}")]
    NotProtobuf {
        /// `key` or `value`.
        part: &'static str,
        /// The parser's complaint.
        source: prost::DecodeError,
    },
    /// The envelope lacks a part or has one of the wrong shape.
    #[error("malformed change record: {reason}")]
    Envelope {
        /// What is wrong.
        reason: String,
    },
    /// A column's value or schema cannot be read.
    #[error("field `{field}`: {reason}")]
    Field {
        /// The column (or envelope field) name.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl DecodeError {
    /// Whether the record was a tombstone rather than a broken record.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, DecodeError::Tombstone)
    }

    /// A malformed envelope.
    pub fn envelope(reason: impl Into<String>) -> Self {
        DecodeError::Envelope {
            reason: reason.into(),
        }
    }

    /// A column or field that cannot be read.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        DecodeError::Field {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl ColumnKind {
    /// The kind of a MySQL column type as SQL writes it (`decimal(10,2)`, `bigint unsigned`).
    pub fn from_sql_type(sql_type: &str) -> ColumnKind {
        let name = sql_type.split(['(', ' ']).next().unwrap_or_default();
        // Lower-case into a small stack buffer: this runs for every column of every record.
        let mut buffer = [0u8; 24];
        let Some(lower) = buffer.get_mut(..name.len()) else {
            return ColumnKind::Other;
        };
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let name = std::str::from_utf8(lower).unwrap_or_default();
        match name {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                ColumnKind::Integer
            }
            "decimal" | "numeric" => ColumnKind::Decimal,
            "float" => ColumnKind::Float,
            "double" | "real" => ColumnKind::Double,
            "date" => ColumnKind::Date,
            "time" => ColumnKind::Time,
            "datetime" => ColumnKind::DateTime,
            "timestamp" => ColumnKind::Timestamp,
            "year" => ColumnKind::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                ColumnKind::Text
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                ColumnKind::Bytes
            }
            "enum" => ColumnKind::Enum,
            "set" => ColumnKind::Set,
            "bit" => ColumnKind::Bit,
            "json" => ColumnKind::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnKind::Geometry,
            "vector" => ColumnKind::Vector,
            _ => ColumnKind::Other,
        }
    }
}

/// Builds the [`RowChange`] of an operation code from its images.
fn row_change(
    op: &str,
    before: Option<Vec<crate::event::Value>>,
    after: Option<Vec<crate::event::Value>>,
) -> Result<RowChange, DecodeError> {
    let missing = |image: &str| DecodeError::envelope(format!("op `{op}` without `{image}`"));
    Ok(match op {
        "r" => RowChange::Read {
            after: after.ok_or_else(|| missing("after"))?,
        },
        "c" => RowChange::Insert {
            after: after.ok_or_else(|| missing("after"))?,
        },
        "u" => RowChange::Update {
            before: before.ok_or_else(|| missing("before"))?,
            after: after.ok_or_else(|| missing("after"))?,
        },
        "d" => RowChange::Delete {
            before: before.ok_or_else(|| missing("before"))?,
        },
        other => {
            return Err(DecodeError::envelope(format!(
                "unknown op {other:?}; expected \"r\", \"c\", \"u\" or \"d\""
            )));
        }
    })
}
