//! Kafka records into decoded changes: the value format from the `content-type` header (or
//! the configured fallback), Debezium JSON with or without its schema, protobuf.

use rowferry_shared::codec::{
    DebeziumJsonDecoder, DecodeError, DecodedChange, ProtobufDecoder, decode_debezium_payload,
};
use rowferry_shared::event::{TableId, TableSchema};
use serde::Deserialize;

use crate::config::FormatFallback;
use crate::record::{ContentType, Record};

/// How a record's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"schema":…,"payload":…}`.
    JsonWithSchema,
    /// The payload alone; needs the target table to type its values.
    JsonPayload,
    /// `rowferry.event.v1.ChangeEvent`.
    Protobuf,
}

/// The record's value format.
pub fn format_of(record: &Record, fallback: FormatFallback) -> Format {
    let value = record.payload();
    let json = match record.content_type {
        ContentType::Protobuf => false,
        ContentType::Json => true,
        ContentType::Unknown => match fallback {
            FormatFallback::DebeziumJson => true,
            FormatFallback::Protobuf => false,
            FormatFallback::Auto => value.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
        },
    };
    if !json {
        return Format::Protobuf;
    }
    // An envelope's first key is `schema` or `payload` (JsonConverter writes `schema` first;
    // other writers may sort keys); a bare payload starts with `before`, `after` or `op`.
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b'{')
        .unwrap_or(0);
    let first_key = &value[start..];
    if first_key.starts_with(b"\"schema\"") || first_key.starts_with(b"\"payload\"") {
        Format::JsonWithSchema
    } else {
        Format::JsonPayload
    }
}

/// The decoders of the formats that carry their own types; each remembers the schemas it
/// has read.
#[derive(Default)]
pub struct TypedDecoders {
    json: DebeziumJsonDecoder,
    protobuf: ProtobufDecoder,
}

impl TypedDecoders {
    /// Decodes a record whose format carries its own types.
    pub fn decode(
        &mut self,
        record: &Record,
        format: Format,
    ) -> Result<DecodedChange, DecodeError> {
        let Some(value) = record.value.as_ref().filter(|v| !v.is_empty()) else {
            return Err(DecodeError::Tombstone);
        };
        match format {
            Format::Protobuf => self.protobuf.decode(record.key.as_ref(), value),
            Format::JsonWithSchema | Format::JsonPayload => self.json.decode(record.key(), value),
        }
    }
}

/// Decodes a schemaless Debezium JSON record with its table's definition.
pub fn decode_payload(record: &Record, table: &TableSchema) -> Result<DecodedChange, DecodeError> {
    decode_debezium_payload(record.key(), record.payload(), table)
}

#[derive(Deserialize)]
struct Peek {
    source: PeekSource,
}

#[derive(Deserialize)]
struct PeekSource {
    db: String,
    table: String,
}

/// The source table a schemaless record belongs to (`source.db`, `source.table`).
pub fn peek_table(record: &Record) -> Result<TableId, DecodeError> {
    let value = record.payload();
    if value.is_empty() {
        return Err(DecodeError::Tombstone);
    }
    let peek: Peek = serde_json::from_slice(value).map_err(|e| {
        DecodeError::envelope(format!("cannot find source.db and source.table: {e}"))
    })?;
    Ok(TableId::new(peek.source.db, peek.source.table))
}

#[derive(Deserialize)]
struct PeekTransaction {
    transaction: Option<PeekTransactionId>,
}

#[derive(Deserialize)]
struct PeekTransactionId {
    id: String,
}

/// The `transaction.id` of a schemaless record, if it has one.
pub fn peek_transaction(record: &Record) -> Option<String> {
    let value = record.payload();
    serde_json::from_slice::<PeekTransaction>(value)
        .ok()
        .and_then(|p| p.transaction)
        .map(|t| t.id)
}
