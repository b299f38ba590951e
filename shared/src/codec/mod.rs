//! Record codecs: how a [`ChangeEvent`] becomes a Kafka record key and value, and how apply
//! reads records back ([`decode_debezium_json`], [`decode_debezium_payload`],
//! [`decode_protobuf_change`]).
//!
//! Two formats ([`ValueFormat`]):
//! - **Debezium JSON**, byte for byte what Debezium 3.0's MySQL connector emits through Kafka
//!   Connect's `JsonConverter`, with or without the embedded schema, so that existing
//!   Debezium consumers and sinks read rowferry's topics unchanged;
//! - **protobuf** (`rowferry.event.v1`), typed values that keep exactly what MySQL stored.
//!
//! One [`Encoder`] serves one capture pipeline (`&mut self`, no locking). What is the same for
//! every event of a table — the Connect schemas, escaped names, the protobuf table schema — is
//! rendered once and cached per table; the cache entry is rebuilt when an event brings a
//! different [`TableSchema`] for the table (after DDL). Per event only the row values are
//! written, straight into the output buffer.
//!
//! Keys hold the table's key columns ([`RowKey`](crate::event::RowKey)); tables without a key
//! have records without a key. [`Encoder::encode_key`] exists on its own so that the publisher
//! can write tombstones (the key with a null value) and Debezium's delete + create pair for an
//! update that changes the key.

mod connect_decimal;
mod debezium;
mod decode;
mod error;
mod format;
mod java_float;
mod json_text;
mod protobuf;
mod value_fit;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

pub use decode::{
    ColumnKind, DebeziumJsonDecoder, DecodeError, DecodedChange, DecodedColumn, ProtobufDecoder,
    decode_debezium_json, decode_debezium_payload, decode_protobuf_change,
};
pub use error::{CodecError, ColumnRef};
pub use format::{BigintUnsignedMode, CodecOptions, ValueFormat};
pub use protobuf::{decode_protobuf, decode_protobuf_key};

use crate::event::{ChangeEvent, SharedTableSchema, TableId, TableSchema, Value};
use debezium::{DebeziumTable, RowOrigin};
use protobuf::ProtobufTable;

/// The bytes of one Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    /// The record key; `None` for tables without a key.
    pub key: Option<Vec<u8>>,
    /// The record value.
    pub value: Vec<u8>,
}

/// Encodes the change events of one capture pipeline.
pub struct Encoder {
    format: ValueFormat,
    options: CodecOptions,
    tables: TableCache,
    /// Largest value written so far, so that new buffers rarely grow.
    value_capacity: usize,
    /// Largest key written so far.
    key_capacity: usize,
}

/// Per-table renderings; bounded by the number of captured tables.
#[derive(Default)]
struct TableCache {
    tables: HashMap<TableId, CachedTable>,
    /// How many times a table was rendered (first sight or schema change).
    renders: u64,
}

/// A table's rendering and the schema it was rendered from.
struct CachedTable {
    schema: SharedTableSchema,
    rendering: TableRendering,
}

enum TableRendering {
    Debezium(DebeziumTable),
    Protobuf(ProtobufTable),
}

impl Encoder {
    /// An encoder writing `format` with `options`.
    pub fn new(format: ValueFormat, options: CodecOptions) -> Self {
        Self {
            format,
            options,
            tables: TableCache::default(),
            value_capacity: 256,
            key_capacity: 32,
        }
    }

    /// The format this encoder writes.
    pub fn format(&self) -> ValueFormat {
        self.format
    }

    /// How many times a table's schema was rendered: once per table, plus once per schema
    /// change. For metrics and tests.
    pub fn table_renders(&self) -> u64 {
        self.tables.renders
    }

    /// Encodes `event` as a Kafka record: the key of its key row and the change as the value.
    pub fn encode(&mut self, event: &ChangeEvent) -> Result<EncodedRecord, CodecError> {
        let schema = &event.schema;
        let rendering = self.tables.rendering(schema, self.format, &self.options)?;
        let key = if schema.key.columns().is_empty() {
            None
        } else {
            let mut key = Vec::with_capacity(self.key_capacity);
            let origin = debezium::row_origin(event);
            rendering.write_key(schema, event.change.key_row(), origin, &mut key)?;
            Some(key)
        };
        let mut value = Vec::with_capacity(self.value_capacity);
        rendering.write_value(event, &self.options, &mut value)?;
        self.key_capacity = self.key_capacity.max(key.as_ref().map_or(0, Vec::len));
        self.value_capacity = self.value_capacity.max(value.len());
        Ok(EncodedRecord { key, value })
    }

    /// Encodes the Kafka key of `row` of `schema`'s table, as for a binlog change, or `None`
    /// when the table has no key. Use it for tombstones and for the old key of an update that
    /// changes the key.
    pub fn encode_key(
        &mut self,
        schema: &SharedTableSchema,
        row: &[Value],
    ) -> Result<Option<Vec<u8>>, CodecError> {
        if schema.key.columns().is_empty() {
            return Ok(None);
        }
        let rendering = self.tables.rendering(schema, self.format, &self.options)?;
        let mut key = Vec::with_capacity(self.key_capacity);
        rendering.write_key(schema, row, RowOrigin::Binlog, &mut key)?;
        self.key_capacity = self.key_capacity.max(key.len());
        Ok(Some(key))
    }
}

impl TableRendering {
    fn write_key(
        &self,
        schema: &TableSchema,
        row: &[Value],
        origin: RowOrigin,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match self {
            TableRendering::Debezium(table) => table.write_key(schema, row, origin, out),
            TableRendering::Protobuf(table) => table.write_key(schema, row, out),
        }
    }

    fn write_value(
        &self,
        event: &ChangeEvent,
        options: &CodecOptions,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        match self {
            TableRendering::Debezium(table) => table.write_value(event, out),
            TableRendering::Protobuf(table) => table.write_value(event, options, out),
        }
    }
}

impl TableCache {
    /// The cached rendering of `schema`'s table, rendered first if the table is new or its
    /// schema changed.
    fn rendering(
        &mut self,
        schema: &SharedTableSchema,
        format: ValueFormat,
        options: &CodecOptions,
    ) -> Result<&TableRendering, CodecError> {
        let current = match self.tables.get_mut(&schema.id) {
            Some(cached) if Arc::ptr_eq(&cached.schema, schema) => true,
            Some(cached) if cached.schema == *schema => {
                // Same schema in a new Arc (capture rebuilt it): keep the rendering and
                // remember this Arc so that the next event takes the pointer check.
                cached.schema = Arc::clone(schema);
                true
            }
            _ => false,
        };
        if current {
            return Ok(&self.tables[&schema.id].rendering);
        }
        check_key_columns(schema)?;
        let rendering = match format {
            ValueFormat::DebeziumJson { schemas } => {
                TableRendering::Debezium(DebeziumTable::new(schema, options, schemas))
            }
            ValueFormat::Protobuf => TableRendering::Protobuf(ProtobufTable::new(schema)),
        };
        self.renders += 1;
        let cached = CachedTable {
            schema: Arc::clone(schema),
            rendering,
        };
        Ok(&self
            .tables
            .entry(schema.id.clone())
            .insert_entry(cached)
            .into_mut()
            .rendering)
    }
}

/// Makes sure the key only names columns the table has, so that writers can index rows by it.
fn check_key_columns(schema: &TableSchema) -> Result<(), CodecError> {
    match schema
        .key
        .columns()
        .iter()
        .find(|&&i| i >= schema.columns.len())
    {
        Some(&index) => Err(CodecError::KeyColumnMissing {
            table: schema.id.clone(),
            index,
            columns: schema.columns.len(),
        }),
        None => Ok(()),
    }
}
