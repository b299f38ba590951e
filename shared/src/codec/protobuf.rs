//! The protobuf format: `rowferry.event.v1.ChangeEvent` values and `ChangeKey` keys.
//!
//! Values are typed and keep what MySQL stored rather than Debezium's reading of it: zero and
//! partly zero dates travel as their text in `zero_temporal`, YEAR 0000 stays 0, BIT bytes stay
//! big-endian, ENUM members are their names.
//!
//! The `schema` field is the same for every event of a table, so it is encoded once per table
//! and appended to each value: a protobuf message may list its fields in any order, and the
//! bytes decode to the one message.

use prost::Message;

use crate::event::{ChangeEvent, ColumnSchema, RowChange, SnapshotMarker, TableSchema, Value};
use crate::pb::event::v1 as pb;
use pb::value::Kind;

use super::value_fit::{check_row_length, check_value_fits};
use super::{CodecError, CodecOptions};

/// The text MySQL shows for the zero TIMESTAMP, which the binlog stores as second 0.
const ZERO_TIMESTAMP: &str = "0000-00-00 00:00:00";

/// One table's protobuf rendering, reused for every event of the table.
pub(super) struct ProtobufTable {
    /// Field 7 (`schema`) of `ChangeEvent`, tag and length included.
    schema_field: Vec<u8>,
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
        Self { schema_field }
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
            before: event
                .change
                .before()
                .map(|row| pb_row(table, row))
                .transpose()?,
            after: event
                .change
                .after()
                .map(|row| pb_row(table, row))
                .transpose()?,
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
        out.extend_from_slice(&self.schema_field);
        Ok(())
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
        let columns = table
            .key
            .columns()
            .iter()
            .map(|&index| pb_column(table, &table.columns[index], &row[index]))
            .collect::<Result<_, _>>()?;
        pb::ChangeKey { columns }.encode(out)?;
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

fn pb_row(table: &TableSchema, row: &[Value]) -> Result<pb::Row, CodecError> {
    check_row_length(table, row)?;
    let columns = table
        .columns
        .iter()
        .zip(row)
        .map(|(column, value)| pb_column(table, column, value))
        .collect::<Result<_, _>>()?;
    Ok(pb::Row { columns })
}

fn pb_column(
    table: &TableSchema,
    column: &ColumnSchema,
    value: &Value,
) -> Result<pb::Column, CodecError> {
    check_value_fits(table, column, value)?;
    Ok(pb::Column {
        name: column.name.clone(),
        value: pb_value(value).map(|kind| pb::Value { kind: Some(kind) }),
    })
}

/// The typed value, or `None` for NULL.
fn pb_value(value: &Value) -> Option<Kind> {
    Some(match value {
        Value::Null => return None,
        Value::Int(v) => Kind::Int(*v),
        Value::UInt(v) => Kind::Uint(*v),
        Value::Float(v) => Kind::Float(*v),
        Value::Double(v) => Kind::Double(*v),
        Value::Decimal(text) => Kind::Decimal(text.clone()),
        Value::Text(text) | Value::Enum(text) => Kind::Text(text.clone()),
        Value::Bytes(bytes) => Kind::Bytes(bytes.clone()),
        Value::Date(date) => match date.days_since_epoch() {
            Some(days) => Kind::Date(days),
            None => Kind::ZeroTemporal(date.to_string()),
        },
        Value::Time(time) => Kind::TimeMicros(time.total_micros()),
        Value::DateTime(datetime) => match datetime.epoch_micros() {
            Some(micros) => Kind::DatetimeMicros(micros),
            None => Kind::ZeroTemporal(datetime.to_string()),
        },
        Value::Timestamp(timestamp) if timestamp.seconds == 0 && timestamp.micros == 0 => {
            Kind::ZeroTemporal(ZERO_TIMESTAMP.to_owned())
        }
        Value::Timestamp(timestamp) => Kind::TimestampMicros(timestamp.epoch_micros()),
        Value::Year(year) => Kind::Year(u32::from(*year)),
        Value::Set(members) => Kind::Set(pb::StringList {
            values: members.clone(),
        }),
        Value::Bit(bytes) => Kind::Bit(bytes.clone()),
        Value::Json(text) => Kind::Json(text.clone()),
    })
}
