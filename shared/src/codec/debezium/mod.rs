//! Debezium JSON: the change-event envelope of Debezium 3.0's MySQL connector, byte for byte as
//! Kafka Connect's `JsonConverter` serializes it.
//!
//! Everything that depends only on the table (the key and envelope schemas, escaped names, each
//! column's encoding) is rendered once into a [`DebeziumTable`]; per event only the payload is
//! written, straight into the output buffer.
//!
//! The envelope (Debezium `SchemaFactory.datatypeEnvelopeSchema`, version 2) has the fields
//! `before`, `after`, `source`, `transaction`, `op`, `ts_ms`, `ts_us`, `ts_ns`, in that order;
//! the `source` block is `io.debezium.connector.mysql.Source` (`AbstractSourceInfoStructMaker`
//! plus `BinlogSourceInfoStructMaker`). `source.connector` is always `mysql`, MariaDB included,
//! so that consumers written for Debezium's MySQL connector read both.

mod column;
mod connect_schema;

pub(crate) use column::RowOrigin;

use crate::event::{ChangeEvent, RowChange, TableSchema, Value};

use super::json_text::{push_i64, push_string, push_u64};
use super::value_fit::{check_row_length, check_value_fits};
use super::{CodecError, CodecOptions};
use column::Encoding;
use connect_schema::ConnectSchema;

/// Debezium's `source.snapshot` values in `SnapshotRecord` declaration order.
const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// One table's Debezium JSON, rendered once and reused for every event of the table.
pub(super) struct DebeziumTable {
    /// How each column's values are written, in column order.
    encodings: Vec<Encoding>,
    /// `"name":` of each column, escaped, in column order.
    field_prefixes: Vec<Vec<u8>>,
    /// `{"schema":<envelope schema>,"payload":`, or nothing without schemas.
    value_head: Vec<u8>,
    /// `{"schema":<key schema>,"payload":`, or nothing without schemas (or without a key).
    key_head: Vec<u8>,
    /// `{"version":…,"connector":"mysql","name":`, the start of every `source` block.
    source_head: Vec<u8>,
    /// `,"db":"…"`, escaped.
    db_field: Vec<u8>,
    /// `,"table":"…"`, escaped.
    table_field: Vec<u8>,
    /// Whether records carry their schema.
    schemas: bool,
}

impl DebeziumTable {
    /// Renders `table`'s schemas and names; `schemas` is JsonConverter's `schemas.enable`.
    pub(super) fn new(table: &TableSchema, options: &CodecOptions, schemas: bool) -> Self {
        let encodings = table
            .columns
            .iter()
            .map(|c| column::encoding(&c.column_type, options))
            .collect();
        let field_prefixes = table
            .columns
            .iter()
            .map(|c| {
                let mut prefix = Vec::with_capacity(c.name.len() + 3);
                push_string(&mut prefix, &c.name);
                prefix.push(b':');
                prefix
            })
            .collect();

        let mut value_head = Vec::new();
        let mut key_head = Vec::new();
        if schemas {
            let record_name = record_schema_prefix(&options.topic_prefix, table);
            value_head.extend_from_slice(b"{\"schema\":");
            envelope_schema(table, options, &record_name).render(None, &mut value_head);
            value_head.extend_from_slice(b",\"payload\":");
            if !table.key.columns().is_empty() {
                key_head.extend_from_slice(b"{\"schema\":");
                key_schema(table, options, &record_name).render(None, &mut key_head);
                key_head.extend_from_slice(b",\"payload\":");
            }
        }

        let mut source_head = b"{\"version\":".to_vec();
        push_string(&mut source_head, &options.rowferry_version);
        source_head.extend_from_slice(b",\"connector\":\"mysql\",\"name\":");
        let mut db_field = b",\"db\":".to_vec();
        push_string(&mut db_field, &table.id.db);
        let mut table_field = b",\"table\":".to_vec();
        push_string(&mut table_field, &table.id.table);

        Self {
            encodings,
            field_prefixes,
            value_head,
            key_head,
            source_head,
            db_field,
            table_field,
            schemas,
        }
    }

    /// Writes the record value of `event` (whose schema is the one this was built from).
    pub(super) fn write_value(
        &self,
        event: &ChangeEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let table = &*event.schema;
        let origin = row_origin(event);
        out.extend_from_slice(&self.value_head);
        out.extend_from_slice(b"{\"before\":");
        self.write_optional_row(table, event.change.before(), origin, out)?;
        out.extend_from_slice(b",\"after\":");
        self.write_optional_row(table, event.change.after(), origin, out)?;
        out.extend_from_slice(b",\"source\":");
        self.write_source(event, out);
        out.extend_from_slice(b",\"transaction\":");
        match &event.transaction {
            Some(transaction) => {
                out.extend_from_slice(b"{\"id\":");
                push_string(out, &transaction.id);
                out.extend_from_slice(b",\"total_order\":");
                push_u64(out, transaction.total_order);
                out.extend_from_slice(b",\"data_collection_order\":");
                push_u64(out, transaction.data_collection_order);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(event.change.op().as_bytes());
        out.push(b'"');
        push_timestamps(event.ts_us, out);
        out.push(b'}');
        if self.schemas {
            out.push(b'}');
        }
        Ok(())
    }

    /// Writes the record key of `row`: its key columns as a struct. The caller makes sure the
    /// table has a key.
    pub(super) fn write_key(
        &self,
        table: &TableSchema,
        row: &[Value],
        origin: RowOrigin,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        check_row_length(table, row)?;
        out.extend_from_slice(&self.key_head);
        out.push(b'{');
        for (i, &index) in table.key.columns().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.write_field(table, index, &row[index], origin, out)?;
        }
        out.push(b'}');
        if self.schemas {
            out.push(b'}');
        }
        Ok(())
    }

    fn write_optional_row(
        &self,
        table: &TableSchema,
        row: Option<&Vec<Value>>,
        origin: RowOrigin,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let Some(row) = row else {
            out.extend_from_slice(b"null");
            return Ok(());
        };
        check_row_length(table, row)?;
        out.push(b'{');
        for (index, value) in row.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            self.write_field(table, index, value, origin, out)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn write_field(
        &self,
        table: &TableSchema,
        index: usize,
        value: &Value,
        origin: RowOrigin,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let column = &table.columns[index];
        check_value_fits(table, column, value)?;
        out.extend_from_slice(&self.field_prefixes[index]);
        column::write_value(self.encodings[index], origin, table, column, value, out)
    }

    fn write_source(&self, event: &ChangeEvent, out: &mut Vec<u8>) {
        let source = &event.source;
        out.extend_from_slice(&self.source_head);
        push_string(out, &source.name);
        out.extend_from_slice(b",\"ts_ms\":");
        push_i64(out, source.ts_us.div_euclid(1000));
        out.extend_from_slice(b",\"snapshot\":\"");
        out.extend_from_slice(source.snapshot.as_str().as_bytes());
        out.push(b'"');
        out.extend_from_slice(&self.db_field);
        out.extend_from_slice(b",\"sequence\":null,\"ts_us\":");
        push_i64(out, source.ts_us);
        out.extend_from_slice(b",\"ts_ns\":");
        push_i64(out, source.ts_us.saturating_mul(1000));
        out.extend_from_slice(&self.table_field);
        out.extend_from_slice(b",\"server_id\":");
        push_u64(out, u64::from(source.server_id));
        out.extend_from_slice(b",\"gtid\":");
        push_optional_string(out, source.gtid.as_deref());
        out.extend_from_slice(b",\"file\":");
        push_string(out, &source.file);
        out.extend_from_slice(b",\"pos\":");
        push_u64(out, source.pos);
        out.extend_from_slice(b",\"row\":");
        push_u64(out, u64::from(source.row));
        out.extend_from_slice(b",\"thread\":");
        match source.thread {
            Some(thread) => push_u64(out, thread),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"query\":");
        push_optional_string(out, source.query.as_deref());
        out.push(b'}');
    }
}

/// Snapshot rows are what Debezium reads over JDBC; everything else comes from the binlog.
pub(super) fn row_origin(event: &ChangeEvent) -> RowOrigin {
    match event.change {
        RowChange::Read { .. } => RowOrigin::Snapshot,
        _ => RowOrigin::Binlog,
    }
}

fn push_optional_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => push_string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// `,"ts_ms":…,"ts_us":…,"ts_ns":…` of the envelope.
fn push_timestamps(ts_us: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"ts_ms\":");
    push_i64(out, ts_us.div_euclid(1000));
    out.extend_from_slice(b",\"ts_us\":");
    push_i64(out, ts_us);
    out.extend_from_slice(b",\"ts_ns\":");
    push_i64(out, ts_us.saturating_mul(1000));
}

/// `{prefix}.{db}.{table}` as Debezium's default topic naming strategy builds it, which is
/// also the prefix of the record schema names: characters outside `[A-Za-z0-9._-]` become `_`
/// (one per UTF-16 unit, as Java counts), and the name is cut at 249 characters.
fn record_schema_prefix(topic_prefix: &str, table: &TableSchema) -> String {
    let parts = [topic_prefix, &table.id.db, &table.id.table];
    let mut name = String::new();
    for part in parts.iter().filter(|p| !p.trim().is_empty()) {
        if !name.is_empty() {
            name.push('.');
        }
        for c in part.chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                name.push(c);
            } else {
                for _ in 0..c.len_utf16() {
                    name.push('_');
                }
            }
        }
    }
    name.truncate(249);
    name
}

/// The `…Value` schema: one field per column, the whole struct optional.
fn value_schema(table: &TableSchema, options: &CodecOptions, record_name: &str) -> ConnectSchema {
    let fields = table
        .columns
        .iter()
        .map(|c| {
            let schema = column::field_schema(c, options, options.propagate_source_types);
            (c.name.clone(), schema)
        })
        .collect();
    ConnectSchema::structure(fields)
        .optional(true)
        .name(format!("{record_name}.Value"))
}

/// The `…Key` schema: the key columns in key order, without source-type parameters.
fn key_schema(table: &TableSchema, options: &CodecOptions, record_name: &str) -> ConnectSchema {
    let fields = table
        .key
        .columns()
        .iter()
        .filter_map(|&index| table.columns.get(index))
        .map(|c| (c.name.clone(), column::field_schema(c, options, false)))
        .collect();
    ConnectSchema::structure(fields).name(format!("{record_name}.Key"))
}

/// The `…Envelope` schema.
fn envelope_schema(
    table: &TableSchema,
    options: &CodecOptions,
    record_name: &str,
) -> ConnectSchema {
    let int64 = |optional| ConnectSchema::primitive("int64").optional(optional);
    ConnectSchema::structure(vec![
        (
            "before".to_owned(),
            value_schema(table, options, record_name),
        ),
        (
            "after".to_owned(),
            value_schema(table, options, record_name),
        ),
        ("source".to_owned(), source_schema()),
        ("transaction".to_owned(), transaction_schema()),
        ("op".to_owned(), ConnectSchema::primitive("string")),
        ("ts_ms".to_owned(), int64(true)),
        ("ts_us".to_owned(), int64(true)),
        ("ts_ns".to_owned(), int64(true)),
    ])
    .name(format!("{record_name}.Envelope"))
    .version(2)
}

fn source_schema() -> ConnectSchema {
    let string = |optional| ConnectSchema::primitive("string").optional(optional);
    let int64 = |optional| ConnectSchema::primitive("int64").optional(optional);
    let snapshot = ConnectSchema::primitive("string")
        .optional(true)
        .name("io.debezium.data.Enum")
        .version(1)
        .parameter("allowed", SNAPSHOT_ALLOWED)
        .default_string("false");
    let fields = vec![
        ("version", string(false)),
        ("connector", string(false)),
        ("name", string(false)),
        ("ts_ms", int64(false)),
        ("snapshot", snapshot),
        ("db", string(false)),
        ("sequence", string(true)),
        ("ts_us", int64(true)),
        ("ts_ns", int64(true)),
        ("table", string(true)),
        ("server_id", int64(false)),
        ("gtid", string(true)),
        ("file", string(false)),
        ("pos", int64(false)),
        ("row", ConnectSchema::primitive("int32")),
        ("thread", int64(true)),
        ("query", string(true)),
    ];
    ConnectSchema::structure(fields.into_iter().map(|(n, s)| (n.to_owned(), s)).collect())
        .name("io.debezium.connector.mysql.Source")
}

fn transaction_schema() -> ConnectSchema {
    ConnectSchema::structure(vec![
        ("id".to_owned(), ConnectSchema::primitive("string")),
        ("total_order".to_owned(), ConnectSchema::primitive("int64")),
        (
            "data_collection_order".to_owned(),
            ConnectSchema::primitive("int64"),
        ),
    ])
    .optional(true)
    .name("event.block")
    .version(1)
}
