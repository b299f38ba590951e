//! Protobuf records: `rowferry.event.v1.ChangeEvent` values and `ChangeKey` keys.
//!
//! Values are exact. The table schema in every record types what the value kinds leave open:
//! ENUM members travel as `text`, and `zero_temporal` text is a DATE, DATETIME or the zero
//! TIMESTAMP by the column's `sql_type`.
//!
//! Every record repeats its table's schema and each value's column name. [`ProtobufDecoder`]
//! reads the record through views of the generated messages that keep those parts as slices
//! of the record (no string is built for them): the schema is read once per distinct schema,
//! and the names are only compared with it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::{ColumnKind, DecodeError, DecodedChange, DecodedColumn, row_change, text};
use crate::event::{
    Date, DateTime, SnapshotMarker, SourceInfo, TableId, Time, Timestamp, TransactionInfo, Value,
};
use crate::pb::event::v1 as pb;
use crate::position::Flavor;

/// `ChangeEvent` with its `schema` left as bytes (same field numbers and wire types).
#[derive(Clone, PartialEq, Message)]
struct EventView {
    #[prost(int32, tag = "1")]
    op: i32,
    #[prost(message, optional, tag = "2")]
    source: Option<pb::Source>,
    #[prost(message, optional, tag = "3")]
    before: Option<RowView>,
    #[prost(message, optional, tag = "4")]
    after: Option<RowView>,
    #[prost(message, optional, tag = "6")]
    transaction: Option<pb::TransactionBlock>,
    #[prost(bytes = "bytes", tag = "7")]
    schema: Bytes,
    #[prost(int64, tag = "8")]
    ts_us: i64,
}

/// `Row` of [`ColumnView`]s.
#[derive(Clone, PartialEq, Message)]
struct RowView {
    #[prost(message, repeated, tag = "1")]
    columns: Vec<ColumnView>,
}

/// `Column` with its name left as bytes.
#[derive(Clone, PartialEq, Message)]
struct ColumnView {
    #[prost(bytes = "bytes", tag = "1")]
    name: Bytes,
    #[prost(message, optional, tag = "2")]
    value: Option<pb::Value>,
}

/// `ChangeKey` reduced to its column names (the values are in the row).
#[derive(Clone, PartialEq, Message)]
struct KeyView {
    #[prost(message, repeated, tag = "1")]
    columns: Vec<KeyColumnView>,
}

/// `Column` of a key, name only.
#[derive(Clone, PartialEq, Message)]
struct KeyColumnView {
    #[prost(bytes = "bytes", tag = "1")]
    name: Bytes,
}

/// What a record's `schema` says, read once per distinct schema.
struct Schema {
    columns: Arc<[DecodedColumn]>,
    primary_key: Arc<[String]>,
}

/// Distinct schemas a [`ProtobufDecoder`] remembers.
const SCHEMA_CACHE: usize = 256;

/// Decodes protobuf records, reading each distinct table schema only once.
///
/// Results are those of [`decode_protobuf_change`]; records passed as [`Bytes`] are read
/// without copying the parts the decoder only compares.
#[derive(Default)]
pub struct ProtobufDecoder {
    schemas: HashMap<Bytes, Arc<Schema>>,
}

impl ProtobufDecoder {
    /// A decoder that has seen no schema yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one record: `value` is a `ChangeEvent`, `key` (if any) a `ChangeKey` whose
    /// column names become the key columns (else the schema's `primary_key`).
    ///
    /// An empty value is a tombstone ([`DecodeError::Tombstone`]).
    pub fn decode(
        &mut self,
        key: Option<&Bytes>,
        value: &Bytes,
    ) -> Result<DecodedChange, DecodeError> {
        if value.is_empty() {
            return Err(DecodeError::Tombstone);
        }
        let event =
            EventView::decode(value.clone()).map_err(|source| DecodeError::NotProtobuf {
                part: "value",
                source,
            })?;
        // An absent schema and an empty one read alike; a table has at least one column.
        if event.schema.is_empty() {
            return Err(DecodeError::envelope("the record has no table `schema`"));
        }
        let schema = self.schema(&event.schema)?;
        let key_columns = match key {
            Some(key) => {
                let names = KeyView::decode(key.clone())
                    .map_err(|source| DecodeError::NotProtobuf {
                        part: "key",
                        source,
                    })?
                    .columns;
                let same_as_schema = names.len() == schema.primary_key.len()
                    && names
                        .iter()
                        .zip(schema.primary_key.iter())
                        .all(|(n, k)| n.name == k.as_bytes());
                if same_as_schema {
                    schema.primary_key.clone()
                } else {
                    names
                        .into_iter()
                        .map(|c| utf8(c.name, "key column name"))
                        .collect::<Result<_, _>>()?
                }
            }
            None => schema.primary_key.clone(),
        };
        let op = match pb::Operation::try_from(event.op) {
            Ok(pb::Operation::Read) => "r",
            Ok(pb::Operation::Create) => "c",
            Ok(pb::Operation::Update) => "u",
            Ok(pb::Operation::Delete) => "d",
            Ok(pb::Operation::Unspecified) | Err(_) => {
                return Err(DecodeError::envelope(format!(
                    "operation {} is not create, update, delete or read",
                    event.op
                )));
            }
        };
        let before = event
            .before
            .map(|row| read_row(row, &schema.columns, "before"))
            .transpose()?;
        let after = event
            .after
            .map(|row| read_row(row, &schema.columns, "after"))
            .transpose()?;
        let change = row_change(op, before, after)?;
        let source = event
            .source
            .ok_or_else(|| DecodeError::envelope("the record has no `source`"))?;
        let (table, source) = read_source(source)?;
        Ok(DecodedChange {
            table,
            change,
            columns: schema.columns.clone(),
            key_columns,
            source,
            transaction: event.transaction.map(|t| TransactionInfo {
                id: t.id,
                total_order: t.total_order,
                data_collection_order: t.data_collection_order,
            }),
            ts_us: event.ts_us,
        })
    }

    /// The schema of `bytes`, read on first sight.
    fn schema(&mut self, bytes: &Bytes) -> Result<Arc<Schema>, DecodeError> {
        if let Some(schema) = self.schemas.get(bytes) {
            return Ok(schema.clone());
        }
        let schema =
            pb::TableSchema::decode(bytes.clone()).map_err(|source| DecodeError::NotProtobuf {
                part: "value",
                source,
            })?;
        let schema = Arc::new(Schema {
            columns: schema
                .columns
                .into_iter()
                .map(|c| DecodedColumn {
                    kind: ColumnKind::from_sql_type(&c.sql_type),
                    name: c.name,
                    optional: c.nullable,
                    sql_type: Some(c.sql_type),
                })
                .collect(),
            primary_key: schema.primary_key.into(),
        });
        if self.schemas.len() >= SCHEMA_CACHE {
            self.schemas.clear();
        }
        // A copy: a slice would keep the whole record it came from alive in the cache.
        self.schemas
            .insert(Bytes::copy_from_slice(bytes), schema.clone());
        Ok(schema)
    }
}

/// Decodes one protobuf record with a fresh [`ProtobufDecoder`] (see
/// [`ProtobufDecoder::decode`]); a stream of records decodes faster through one decoder.
pub fn decode_protobuf_change(
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<DecodedChange, DecodeError> {
    let key = key.map(Bytes::copy_from_slice);
    ProtobufDecoder::new().decode(key.as_ref(), &Bytes::copy_from_slice(value))
}

fn utf8(bytes: Bytes, what: &str) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|e| DecodeError::envelope(format!("a {what} is not UTF-8: {e}")))
}

fn read_row(
    row: RowView,
    columns: &[DecodedColumn],
    image: &str,
) -> Result<Vec<Value>, DecodeError> {
    if row.columns.len() != columns.len() {
        return Err(DecodeError::envelope(format!(
            "the `{image}` row has {} columns but the schema has {}",
            row.columns.len(),
            columns.len()
        )));
    }
    row.columns
        .into_iter()
        .zip(columns)
        .map(|(value, column)| {
            if value.name != column.name.as_bytes() {
                return Err(DecodeError::field(
                    &String::from_utf8_lossy(&value.name),
                    format!(
                        "found in the `{image}` row where the schema has `{}`",
                        column.name
                    ),
                ));
            }
            read_value(value.value, column)
        })
        .collect()
}

fn read_value(value: Option<pb::Value>, column: &DecodedColumn) -> Result<Value, DecodeError> {
    use pb::value::Kind;
    let Some(kind) = value.and_then(|v| v.kind) else {
        return Ok(Value::Null);
    };
    let field = column.name.as_str();
    let out_of_range = |what: &str| DecodeError::field(field, format!("{what} out of range"));
    Ok(match kind {
        Kind::Int(v) => Value::Int(v),
        Kind::Uint(v) => Value::UInt(v),
        Kind::Float(v) => Value::Float(v),
        Kind::Double(v) => Value::Double(v),
        Kind::Decimal(text) => Value::Decimal(text),
        Kind::Text(text) if column.kind == ColumnKind::Enum => Value::Enum(text),
        Kind::Text(text) => Value::Text(text),
        Kind::Bytes(bytes) => Value::Bytes(bytes),
        Kind::Date(days) => {
            Value::Date(Date::from_days_since_epoch(days).ok_or_else(|| out_of_range("date"))?)
        }
        Kind::TimeMicros(micros) => Value::Time(Time::from_total_micros(micros)),
        Kind::DatetimeMicros(micros) => Value::DateTime(
            DateTime::from_epoch_micros(micros).ok_or_else(|| out_of_range("datetime"))?,
        ),
        Kind::TimestampMicros(micros) => Value::Timestamp(Timestamp {
            seconds: micros.div_euclid(1_000_000),
            micros: micros.rem_euclid(1_000_000) as u32,
        }),
        Kind::Year(year) => Value::Year(u16::try_from(year).map_err(|_| out_of_range("year"))?),
        Kind::Set(list) => Value::Set(list.values),
        Kind::Bit(bytes) => Value::Bit(bytes),
        Kind::Json(text) => Value::Json(text),
        Kind::ZeroTemporal(zero) => {
            let unreadable = || {
                DecodeError::field(
                    field,
                    format!("zero_temporal {zero:?} does not fit the column's type"),
                )
            };
            match column.kind {
                ColumnKind::Date => Value::Date(text::date(&zero).ok_or_else(unreadable)?),
                ColumnKind::DateTime => {
                    Value::DateTime(text::datetime(&zero).ok_or_else(unreadable)?)
                }
                // The binlog stores the zero TIMESTAMP as second 0.
                ColumnKind::Timestamp if text::datetime(&zero).is_some() => {
                    Value::Timestamp(Timestamp {
                        seconds: 0,
                        micros: 0,
                    })
                }
                _ => return Err(unreadable()),
            }
        }
    })
}

fn read_source(source: pb::Source) -> Result<(TableId, SourceInfo), DecodeError> {
    let flavor = match source.connector.as_str() {
        "mysql" => Flavor::MySql,
        "mariadb" => Flavor::MariaDb,
        other => {
            return Err(DecodeError::field(
                "source.connector",
                format!("{other:?} is neither \"mysql\" nor \"mariadb\""),
            ));
        }
    };
    let snapshot = match pb::SnapshotMarker::try_from(source.snapshot) {
        Ok(pb::SnapshotMarker::Unspecified) => SnapshotMarker::No,
        Ok(pb::SnapshotMarker::True) => SnapshotMarker::Yes,
        Ok(pb::SnapshotMarker::First) => SnapshotMarker::First,
        Ok(pb::SnapshotMarker::FirstInDataCollection) => SnapshotMarker::FirstInTable,
        Ok(pb::SnapshotMarker::LastInDataCollection) => SnapshotMarker::LastInTable,
        Ok(pb::SnapshotMarker::Last) => SnapshotMarker::Last,
        Ok(pb::SnapshotMarker::Incremental) => SnapshotMarker::Incremental,
        Err(_) => {
            return Err(DecodeError::field(
                "source.snapshot",
                format!("unknown snapshot marker {}", source.snapshot),
            ));
        }
    };
    let non_empty = |text: String| (!text.is_empty()).then_some(text);
    let table = TableId::new(source.db, source.table);
    let info = SourceInfo {
        flavor,
        name: source.name,
        ts_us: source.ts_us,
        snapshot,
        server_id: source.server_id,
        gtid: non_empty(source.gtid),
        file: source.file,
        pos: source.pos,
        row: source.row,
        // proto3 has no absent integers: thread 0 means unknown.
        thread: (source.thread != 0).then_some(source.thread),
        query: non_empty(source.query),
    };
    Ok((table, info))
}
