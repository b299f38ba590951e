//! The protobuf format: `rowferry.event.v1.ChangeEvent` values and `ChangeKey` keys.
//!
//! Values are typed and keep what MySQL stored rather than Debezium's reading of it: zero and
//! partly zero dates travel as their text in `zero_temporal`, YEAR 0000 stays 0, BIT bytes stay
//! big-endian, ENUM members are their names.
//!
//! The `schema` field is the same for every event of a table, so it is encoded once per table
//! and appended to each value: a protobuf message may list its fields in any order, and the
//! bytes decode to the one message. Row images, the bulk of a record, are written straight
//! from the borrowed values ([`KindField`]) instead of being copied into prost's owned types
//! first; the rest of the message goes through prost.

use prost::Message;

use crate::event::{ChangeEvent, RowChange, SnapshotMarker, TableSchema, Value};
use crate::pb::event::v1 as pb;

use super::value_fit::{check_row_length, check_value_fits};
use super::{CodecError, CodecOptions};

/// The text MySQL shows for the zero TIMESTAMP, which the binlog stores as second 0.
const ZERO_TIMESTAMP: &str = "0000-00-00 00:00:00";

/// `ChangeEvent` fields written by hand.
const EVENT_BEFORE: u32 = 3;
const EVENT_AFTER: u32 = 4;
/// `Row.columns` and `ChangeKey.columns`.
const COLUMNS: u32 = 1;
/// `Column.value`.
const COLUMN_VALUE: u32 = 2;
/// `StringList.values`.
const STRING_LIST_VALUES: u32 = 1;

/// One table's protobuf rendering, reused for every event of the table.
pub(super) struct ProtobufTable {
    /// Field 7 (`schema`) of `ChangeEvent`, tag and length included.
    schema_field: Vec<u8>,
    /// Field 1 (`name`) of each column's `Column` message, tag and length included.
    name_fields: Vec<Vec<u8>>,
}

impl ProtobufTable {
    /// Encodes `table`'s schema once.
    pub(super) fn new(table: &TableSchema) -> Self {
        let schema = pb::TableSchema {
            columns: table
                .columns
                .iter()
                .map(|c| pb::ColumnSchema {
                    name: c.name.clone(),
                    sql_type: c.column_type.to_string(),
                    nullable: c.nullable,
                    charset: c.charset.clone().unwrap_or_default(),
                })
                .collect(),
            primary_key: table
                .key
                .columns()
                .iter()
                .filter_map(|&index| table.columns.get(index))
                .map(|c| c.name.clone())
                .collect(),
        };
        // Every other field is at its default, so this is exactly the `schema` field.
        let schema_field = pb::ChangeEvent {
            schema: Some(schema),
            ..Default::default()
        }
        .encode_to_vec();
        let name_fields = table
            .columns
            .iter()
            .map(|c| {
                pb::Column {
                    name: c.name.clone(),
                    value: None,
                }
                .encode_to_vec()
            })
            .collect();
        Self {
            schema_field,
            name_fields,
        }
    }

    /// Writes the record value of `event` (whose schema is the one this was built from).
    pub(super) fn write_value(
        &self,
        event: &ChangeEvent,
        options: &CodecOptions,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let table = &*event.schema;
        let source = &event.source;
        let message = pb::ChangeEvent {
            op: operation(&event.change).into(),
            source: Some(pb::Source {
                version: options.rowferry_version.clone(),
                connector: source.flavor.to_string(),
                name: source.name.clone(),
                ts_ms: source.ts_us.div_euclid(1000),
                snapshot: snapshot_marker(source.snapshot).into(),
                db: table.id.db.clone(),
                table: table.id.table.clone(),
                server_id: source.server_id,
                gtid: source.gtid.clone().unwrap_or_default(),
                file: source.file.clone(),
                pos: source.pos,
                row: source.row,
                thread: source.thread.unwrap_or_default(),
                query: source.query.clone().unwrap_or_default(),
                ts_us: source.ts_us,
            }),
            // Written by hand below.
            before: None,
            after: None,
            ts_ms: event.ts_us.div_euclid(1000),
            transaction: event.transaction.as_ref().map(|t| pb::TransactionBlock {
                id: t.id.clone(),
                total_order: t.total_order,
                data_collection_order: t.data_collection_order,
            }),
            schema: None,
            ts_us: event.ts_us,
        };
        message.encode(out)?;
        if let Some(before) = event.change.before() {
            self.write_row_field(EVENT_BEFORE, table, before, out)?;
        }
        if let Some(after) = event.change.after() {
            self.write_row_field(EVENT_AFTER, table, after, out)?;
        }
        out.extend_from_slice(&self.schema_field);
        Ok(())
    }

    /// Writes a `Row` as field `field` of the enclosing message.
    fn write_row_field(
        &self,
        field: u32,
        table: &TableSchema,
        row: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        check_row_length(table, row)?;
        let mut kinds = Vec::with_capacity(row.len());
        let mut row_len = 0;
        for (index, value) in row.iter().enumerate() {
            let kind = kind_field(table, index, value)?;
            row_len += wire::length_delimited_len(COLUMNS, self.column_len(index, kind.as_ref()));
            kinds.push(kind);
        }
        wire::put_key(out, field, wire::LENGTH_DELIMITED);
        wire::put_varint(out, row_len as u64);
        for (index, kind) in kinds.iter().enumerate() {
            self.write_column(COLUMNS, index, kind.as_ref(), out);
        }
        Ok(())
    }

    /// The length of column `index`'s `Column` message.
    fn column_len(&self, index: usize, kind: Option<&KindField<'_>>) -> usize {
        self.name_fields[index].len()
            + kind.map_or(0, |kind| {
                wire::length_delimited_len(COLUMN_VALUE, kind.len())
            })
    }

    /// Writes column `index`'s `Column` message as field `field`.
    fn write_column(
        &self,
        field: u32,
        index: usize,
        kind: Option<&KindField<'_>>,
        out: &mut Vec<u8>,
    ) {
        wire::put_key(out, field, wire::LENGTH_DELIMITED);
        wire::put_varint(out, self.column_len(index, kind) as u64);
        out.extend_from_slice(&self.name_fields[index]);
        if let Some(kind) = kind {
            wire::put_key(out, COLUMN_VALUE, wire::LENGTH_DELIMITED);
            wire::put_varint(out, kind.len() as u64);
            kind.write(out);
        }
    }

    /// Writes the record key of `row`: its key columns. The caller makes sure the table has a
    /// key.
    pub(super) fn write_key(
        &self,
        table: &TableSchema,
        row: &[Value],
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        check_row_length(table, row)?;
        // `ChangeKey` is its `columns` fields, one per key column.
        for &index in table.key.columns() {
            let kind = kind_field(table, index, &row[index])?;
            self.write_column(COLUMNS, index, kind.as_ref(), out);
        }
        Ok(())
    }
}

/// Decodes a protobuf record value.
pub fn decode_protobuf(bytes: &[u8]) -> Result<pb::ChangeEvent, CodecError> {
    Ok(pb::ChangeEvent::decode(bytes)?)
}

/// Decodes a protobuf record key.
pub fn decode_protobuf_key(bytes: &[u8]) -> Result<pb::ChangeKey, CodecError> {
    Ok(pb::ChangeKey::decode(bytes)?)
}

fn operation(change: &RowChange) -> pb::Operation {
    match change {
        RowChange::Read { .. } => pb::Operation::Read,
        RowChange::Insert { .. } => pb::Operation::Create,
        RowChange::Update { .. } => pb::Operation::Update,
        RowChange::Delete { .. } => pb::Operation::Delete,
    }
}

fn snapshot_marker(marker: SnapshotMarker) -> pb::SnapshotMarker {
    match marker {
        SnapshotMarker::No => pb::SnapshotMarker::Unspecified,
        SnapshotMarker::Yes => pb::SnapshotMarker::True,
        SnapshotMarker::First => pb::SnapshotMarker::First,
        SnapshotMarker::FirstInTable => pb::SnapshotMarker::FirstInDataCollection,
        SnapshotMarker::LastInTable => pb::SnapshotMarker::LastInDataCollection,
        SnapshotMarker::Last => pb::SnapshotMarker::Last,
        SnapshotMarker::Incremental => pb::SnapshotMarker::Incremental,
    }
}

/// The value of column `index` as a `Value.kind` field, checked against its column.
fn kind_field<'v>(
    table: &TableSchema,
    index: usize,
    value: &'v Value,
) -> Result<Option<KindField<'v>>, CodecError> {
    check_value_fits(table, &table.columns[index], value)?;
    Ok(KindField::of(value))
}

/// One `Value.kind` field, borrowing from the row value it is written from.
enum KindField<'v> {
    /// `int` (sint64).
    Int(i64),
    /// `uint` (uint64).
    Uint(u64),
    /// `float` (fixed32).
    Float(f32),
    /// `double` (fixed64).
    Double(f64),
    /// A string field: `decimal`, `text`, `json` or `zero_temporal` (by field number).
    Text(u32, &'v str),
    /// `zero_temporal`, formatted.
    ZeroTemporal(String),
    /// A bytes field: `bytes` or `bit` (by field number).
    Bytes(u32, &'v [u8]),
    /// `date` (int32).
    Date(i32),
    /// An int64 field: `time_micros`, `datetime_micros`, `timestamp_micros` (by field number).
    Micros(u32, i64),
    /// `year` (uint32).
    Year(u16),
    /// `set` (StringList).
    Set(&'v [String]),
}

/// `Value.kind` field numbers.
mod kind {
    pub(super) const INT: u32 = 1;
    pub(super) const UINT: u32 = 2;
    pub(super) const FLOAT: u32 = 3;
    pub(super) const DOUBLE: u32 = 4;
    pub(super) const DECIMAL: u32 = 5;
    pub(super) const TEXT: u32 = 6;
    pub(super) const BYTES: u32 = 7;
    pub(super) const DATE: u32 = 8;
    pub(super) const TIME_MICROS: u32 = 9;
    pub(super) const DATETIME_MICROS: u32 = 10;
    pub(super) const TIMESTAMP_MICROS: u32 = 11;
    pub(super) const YEAR: u32 = 12;
    pub(super) const SET: u32 = 13;
    pub(super) const BIT: u32 = 14;
    pub(super) const JSON: u32 = 15;
    pub(super) const ZERO_TEMPORAL: u32 = 16;
}

impl<'v> KindField<'v> {
    /// The field for `value`, or `None` for NULL (a `Column` without `value`).
    fn of(value: &'v Value) -> Option<Self> {
        Some(match value {
            Value::Null => return None,
            Value::Int(v) => KindField::Int(*v),
            Value::UInt(v) => KindField::Uint(*v),
            Value::Float(v) => KindField::Float(*v),
            Value::Double(v) => KindField::Double(*v),
            Value::Decimal(text) => KindField::Text(kind::DECIMAL, text),
            Value::Text(text) | Value::Enum(text) => KindField::Text(kind::TEXT, text),
            Value::Bytes(bytes) => KindField::Bytes(kind::BYTES, bytes),
            Value::Date(date) => match date.days_since_epoch() {
                Some(days) => KindField::Date(days),
                None => KindField::ZeroTemporal(date.to_string()),
            },
            Value::Time(time) => KindField::Micros(kind::TIME_MICROS, time.total_micros()),
            Value::DateTime(datetime) => match datetime.epoch_micros() {
                Some(micros) => KindField::Micros(kind::DATETIME_MICROS, micros),
                None => KindField::ZeroTemporal(datetime.to_string()),
            },
            Value::Timestamp(timestamp) if timestamp.seconds == 0 && timestamp.micros == 0 => {
                KindField::Text(kind::ZERO_TEMPORAL, ZERO_TIMESTAMP)
            }
            Value::Timestamp(timestamp) => {
                KindField::Micros(kind::TIMESTAMP_MICROS, timestamp.epoch_micros())
            }
            Value::Year(year) => KindField::Year(*year),
            Value::Set(members) => KindField::Set(members),
            Value::Bit(bytes) => KindField::Bytes(kind::BIT, bytes),
            Value::Json(text) => KindField::Text(kind::JSON, text),
        })
    }

    /// The encoded length of the field, key included (the length of the `Value` message).
    fn len(&self) -> usize {
        match self {
            KindField::Int(v) => wire::key_len(kind::INT) + wire::varint_len(wire::zigzag(*v)),
            KindField::Uint(v) => wire::key_len(kind::UINT) + wire::varint_len(*v),
            KindField::Float(_) => wire::key_len(kind::FLOAT) + 4,
            KindField::Double(_) => wire::key_len(kind::DOUBLE) + 8,
            KindField::Text(field, text) => wire::length_delimited_len(*field, text.len()),
            KindField::ZeroTemporal(text) => {
                wire::length_delimited_len(kind::ZERO_TEMPORAL, text.len())
            }
            KindField::Bytes(field, bytes) => wire::length_delimited_len(*field, bytes.len()),
            KindField::Date(days) => {
                wire::key_len(kind::DATE) + wire::varint_len(i64::from(*days) as u64)
            }
            KindField::Micros(field, micros) => {
                wire::key_len(*field) + wire::varint_len(*micros as u64)
            }
            KindField::Year(year) => wire::key_len(kind::YEAR) + wire::varint_len(u64::from(*year)),
            KindField::Set(members) => {
                wire::length_delimited_len(kind::SET, string_list_len(members))
            }
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            KindField::Int(v) => {
                wire::put_key(out, kind::INT, wire::VARINT);
                wire::put_varint(out, wire::zigzag(*v));
            }
            KindField::Uint(v) => {
                wire::put_key(out, kind::UINT, wire::VARINT);
                wire::put_varint(out, *v);
            }
            KindField::Float(v) => {
                wire::put_key(out, kind::FLOAT, wire::FIXED32);
                out.extend_from_slice(&v.to_le_bytes());
            }
            KindField::Double(v) => {
                wire::put_key(out, kind::DOUBLE, wire::FIXED64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            KindField::Text(field, text) => wire::put_bytes(out, *field, text.as_bytes()),
            KindField::ZeroTemporal(text) => {
                wire::put_bytes(out, kind::ZERO_TEMPORAL, text.as_bytes());
            }
            KindField::Bytes(field, bytes) => wire::put_bytes(out, *field, bytes),
            KindField::Date(days) => {
                // int32 is sign-extended to 64 bits on the wire.
                wire::put_key(out, kind::DATE, wire::VARINT);
                wire::put_varint(out, i64::from(*days) as u64);
            }
            KindField::Micros(field, micros) => {
                wire::put_key(out, *field, wire::VARINT);
                wire::put_varint(out, *micros as u64);
            }
            KindField::Year(year) => {
                wire::put_key(out, kind::YEAR, wire::VARINT);
                wire::put_varint(out, u64::from(*year));
            }
            KindField::Set(members) => {
                wire::put_key(out, kind::SET, wire::LENGTH_DELIMITED);
                wire::put_varint(out, string_list_len(members) as u64);
                for member in *members {
                    wire::put_bytes(out, STRING_LIST_VALUES, member.as_bytes());
                }
            }
        }
    }
}

/// The length of a `StringList` message.
fn string_list_len(members: &[String]) -> usize {
    members
        .iter()
        .map(|m| wire::length_delimited_len(STRING_LIST_VALUES, m.len()))
        .sum()
}

/// The protobuf wire format, as far as the hand-written fields need it.
mod wire {
    pub(super) const VARINT: u8 = 0;
    pub(super) const FIXED64: u8 = 1;
    pub(super) const LENGTH_DELIMITED: u8 = 2;
    pub(super) const FIXED32: u8 = 5;

    pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8 & 0x7F) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    pub(super) fn varint_len(value: u64) -> usize {
        // One byte per started group of 7 bits, at least one.
        (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
    }

    pub(super) fn zigzag(value: i64) -> u64 {
        ((value << 1) ^ (value >> 63)) as u64
    }

    pub(super) fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
        put_varint(out, u64::from(field) << 3 | u64::from(wire_type));
    }

    pub(super) fn key_len(field: u32) -> usize {
        varint_len(u64::from(field) << 3)
    }

    pub(super) fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
        put_key(out, field, LENGTH_DELIMITED);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    /// The length of a length-delimited field whose content is `len` bytes.
    pub(super) fn length_delimited_len(field: u32, len: usize) -> usize {
        key_len(field) + varint_len(len as u64) + len
    }
}
