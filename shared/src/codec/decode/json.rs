//! Debezium JSON records: the envelope with its Connect schema, or the payload alone typed by
//! a caller's [`TableSchema`].
//!
//! Each column gets a [`Reader`] once per record, from its Connect field schema or its SQL
//! type; the reader turns the column's JSON values into [`Value`]s. Both paths then share the
//! payload reading (images, `source`, `transaction`, `op`, timestamps).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};

use super::{ColumnKind, DecodeError, DecodedChange, DecodedColumn, row_change, text};
use crate::codec::connect_decimal::{DecimalError, text_from_unscaled};
use crate::event::{
    ColumnType, Date, DateTime, SnapshotMarker, SourceInfo, TableId, TableSchema, Time,
    TransactionInfo, Value,
};
use crate::position::Flavor;

const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";

/// How one column's JSON values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// A JSON integer; `unsigned` reads negative numbers as the bits of an unsigned 64-bit
    /// value (Debezium's `long` mode) and Connect decimals as unsigned integers (`precise`).
    Integer {
        unsigned: bool,
    },
    Float,
    Double,
    /// Connect `Decimal` bytes at this scale.
    Decimal {
        scale: u8,
    },
    /// Days since the epoch.
    Date,
    /// A time of day or duration in this many microseconds per unit (ms: 1000, µs: 1).
    Time {
        micros_per_unit: i64,
        nanos: bool,
    },
    /// A DATETIME in units since the epoch.
    DateTime {
        micros_per_unit: i64,
        nanos: bool,
    },
    /// `io.debezium.time.ZonedTimestamp`.
    ZonedTimestamp,
    Year,
    Text,
    Bytes,
    Enum,
    Set,
    /// BIT(1) as a boolean.
    Boolean,
    /// `io.debezium.data.Bits`: little-endian bytes; `bytes` wide when the length is known.
    Bits {
        bytes: Option<usize>,
    },
    Json,
    Geometry,
    FloatVector,
}

impl Reader {
    fn kind(self) -> ColumnKind {
        match self {
            Reader::Integer { .. } => ColumnKind::Integer,
            Reader::Float => ColumnKind::Float,
            Reader::Double => ColumnKind::Double,
            Reader::Decimal { .. } => ColumnKind::Decimal,
            Reader::Date => ColumnKind::Date,
            Reader::Time { .. } => ColumnKind::Time,
            Reader::DateTime { .. } => ColumnKind::DateTime,
            Reader::ZonedTimestamp => ColumnKind::Timestamp,
            Reader::Year => ColumnKind::Year,
            Reader::Text => ColumnKind::Text,
            Reader::Bytes => ColumnKind::Bytes,
            Reader::Enum => ColumnKind::Enum,
            Reader::Set => ColumnKind::Set,
            Reader::Boolean | Reader::Bits { .. } => ColumnKind::Bit,
            Reader::Json => ColumnKind::Json,
            Reader::Geometry => ColumnKind::Geometry,
            Reader::FloatVector => ColumnKind::Vector,
        }
    }
}

/// A column of the record with its reader.
struct Column {
    decoded: DecodedColumn,
    reader: Reader,
}

/// Decodes Debezium JSON records written with their Connect schema, reading each distinct
/// schema only once.
///
/// The embedded schema is most of such a record (3.7 of 4.4 kB for a small row) and the same
/// text for every record of one table version, so this decoder keeps the columns read from
/// each schema text it has seen (up to 256; then it starts over) and only parses the payload
/// and the key of each record. Results are those of [`decode_debezium_json`].
#[derive(Default)]
pub struct DebeziumJsonDecoder {
    schemas: HashMap<Box<str>, SchemaColumns>,
}

/// The columns read from one schema text: with their readers, and as decoded changes carry
/// them.
type SchemaColumns = (Arc<[Column]>, Arc<[DecodedColumn]>);

/// Distinct schemas a [`DebeziumJsonDecoder`] remembers.
const SCHEMA_CACHE: usize = 256;

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

impl DebeziumJsonDecoder {
    /// A decoder that has seen no schema yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one record (see [`decode_debezium_json`]).
    pub fn decode(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<DecodedChange, DecodeError> {
        let trimmed = value.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Err(DecodeError::Tombstone);
        }
        let not_json = |source| DecodeError::NotJson {
            part: "value",
            source,
        };
        let text = std::str::from_utf8(value)
            .map_err(|e| DecodeError::envelope(format!("the record value is not UTF-8: {e}")))?;
        let raw: RawEnvelope<'_> = serde_json::from_str(text).map_err(not_json)?;
        let (Some(schema), Some(payload)) = (raw.schema, raw.payload) else {
            // A null payload (a tombstone with schema) or a missing part: the one-shot
            // decoder tells which.
            return decode_debezium_json(key, value);
        };
        let payload: Json = serde_json::from_str(payload.get()).map_err(not_json)?;
        if payload.is_null() {
            return Err(DecodeError::Tombstone);
        }
        let (columns, decoded) = match self.schemas.get(schema.get()) {
            Some(columns) => columns.clone(),
            None => {
                let parsed: Json = serde_json::from_str(schema.get()).map_err(not_json)?;
                let columns: Arc<[Column]> = columns_from_envelope_schema(&parsed)?.into();
                let decoded = decoded_columns(&columns);
                if self.schemas.len() >= SCHEMA_CACHE {
                    self.schemas.clear();
                }
                self.schemas
                    .insert(schema.get().into(), (columns.clone(), decoded.clone()));
                (columns, decoded)
            }
        };
        let key_columns = match key {
            Some(key) => key_columns_from_json(&parse("key", key)?, None)?,
            None => Vec::new(),
        };
        decode_payload(
            object(&payload, "payload")?,
            &columns,
            decoded,
            key_columns.into(),
        )
    }
}

/// Decodes a Debezium JSON record written with its Connect schema
/// (`{"schema":…,"payload":…}`, Kafka Connect's `schemas.enable=true`).
///
/// `key` is the record key, if any; its schema names the key columns in key order (a key
/// written without a schema only gives its field names, in alphabetical order). A null or
/// empty value is a tombstone ([`DecodeError::Tombstone`]).
pub fn decode_debezium_json(
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<DecodedChange, DecodeError> {
    let root = parse("value", value)?;
    let envelope = root
        .as_object()
        .ok_or_else(|| DecodeError::envelope("the value is not a JSON object"))?;
    let (Some(schema), Some(payload)) = (envelope.get("schema"), envelope.get("payload")) else {
        return Err(DecodeError::envelope(
            "the value has no `schema` and `payload`; records without schemas need \
             decode_debezium_payload and the table's schema",
        ));
    };
    if payload.is_null() {
        return Err(DecodeError::Tombstone);
    }
    let payload = object(payload, "payload")?;
    let columns = columns_from_envelope_schema(schema)?;
    let key_columns = match key {
        Some(key) => key_columns_from_json(&parse("key", key)?, None)?,
        None => Vec::new(),
    };
    decode_payload(
        payload,
        &columns,
        decoded_columns(&columns),
        key_columns.into(),
    )
}

/// Decodes the payload of a Debezium JSON record written without its schema (Kafka
/// Connect's `schemas.enable=false`), reading each column by its type in `table`.
///
/// Payload columns must be columns of `table` (matched by name); columns of `table` that the
/// payload lacks are left out of the result. Unsigned integer columns come back as exact
/// [`Value::UInt`], whichever `bigint.unsigned.handling.mode` wrote them. Key columns come
/// from `key` when given (in `table`'s column order), else from `table`'s key.
pub fn decode_debezium_payload(
    key: Option<&[u8]>,
    value: &[u8],
    table: &TableSchema,
) -> Result<DecodedChange, DecodeError> {
    let root = parse("value", value)?;
    let payload = object(&root, "payload")?;
    let image = match (payload.get("after"), payload.get("before")) {
        (Some(Json::Object(after)), _) => after,
        (_, Some(Json::Object(before))) => before,
        _ => {
            return Err(DecodeError::envelope(
                "the payload has neither a `before` nor an `after` row",
            ));
        }
    };
    if let Some(unknown) = image
        .keys()
        .find(|name| !table.columns.iter().any(|c| &c.name == *name))
    {
        return Err(DecodeError::field(
            unknown,
            format!(
                "not a column of {}; the table schema does not match the record",
                table.id
            ),
        ));
    }
    let columns: Vec<Column> = table
        .columns
        .iter()
        .filter(|c| image.contains_key(&c.name))
        .map(|c| Column {
            decoded: DecodedColumn {
                name: c.name.clone(),
                kind: reader_for_sql(&c.column_type).kind(),
                optional: c.nullable,
                sql_type: Some(c.column_type.to_string()),
            },
            reader: reader_for_sql(&c.column_type),
        })
        .collect();
    let key_columns = match key {
        Some(key) => key_columns_from_json(&parse("key", key)?, Some(table))?,
        None => table
            .key
            .columns()
            .iter()
            .filter_map(|&i| table.columns.get(i))
            .map(|c| c.name.clone())
            .collect(),
    };
    decode_payload(
        payload,
        &columns,
        decoded_columns(&columns),
        key_columns.into(),
    )
}

fn parse(part: &'static str, bytes: &[u8]) -> Result<Json, DecodeError> {
    if bytes.is_empty() && part == "value" {
        return Err(DecodeError::Tombstone);
    }
    let json: Json =
        serde_json::from_slice(bytes).map_err(|source| DecodeError::NotJson { part, source })?;
    if json.is_null() && part == "value" {
        return Err(DecodeError::Tombstone);
    }
    Ok(json)
}

fn object<'j>(json: &'j Json, what: &str) -> Result<&'j Map<String, Json>, DecodeError> {
    json.as_object()
        .ok_or_else(|| DecodeError::envelope(format!("`{what}` is not a JSON object")))
}

/// The fields of a Connect struct schema.
fn struct_fields<'j>(schema: &'j Json, what: &str) -> Result<&'j Vec<Json>, DecodeError> {
    schema
        .get("fields")
        .and_then(Json::as_array)
        .ok_or_else(|| DecodeError::envelope(format!("the {what} schema has no `fields` list")))
}

/// The columns of the envelope's `after` (or `before`) struct schema.
fn columns_from_envelope_schema(schema: &Json) -> Result<Vec<Column>, DecodeError> {
    let fields = struct_fields(schema, "envelope")?;
    let row_schema = ["after", "before"]
        .iter()
        .find_map(|name| {
            fields
                .iter()
                .find(|f| f.get("field").and_then(Json::as_str) == Some(name))
        })
        .ok_or_else(|| DecodeError::envelope("the envelope schema has no `after` or `before`"))?;
    struct_fields(row_schema, "row")?
        .iter()
        .map(column_from_connect)
        .collect()
}

/// A column from its Connect field schema.
fn column_from_connect(schema: &Json) -> Result<Column, DecodeError> {
    let name = schema
        .get("field")
        .and_then(Json::as_str)
        .ok_or_else(|| DecodeError::envelope("a row field schema has no `field` name"))?;
    let type_name = schema
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| DecodeError::field(name, "field schema without `type`"))?;
    let parameter = |key: &str| {
        schema
            .get("parameters")
            .and_then(|p| p.get(key))
            .and_then(Json::as_str)
    };
    let sql_type = parameter("__debezium.source.column.type").map(str::to_owned);
    let unsigned = sql_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_uppercase().ends_with("UNSIGNED"));
    let reader = match schema.get("name").and_then(Json::as_str) {
        Some(DECIMAL) => {
            let scale = parameter("scale")
                .ok_or_else(|| DecodeError::field(name, "Decimal without `scale` parameter"))?;
            let scale = scale.parse().map_err(|_| {
                DecodeError::field(name, format!("Decimal `scale` {scale:?} is not 0–255"))
            })?;
            if unsigned && scale == 0 {
                Reader::Integer { unsigned }
            } else {
                Reader::Decimal { scale }
            }
        }
        Some("io.debezium.time.Date" | "org.apache.kafka.connect.data.Date") => Reader::Date,
        Some("io.debezium.time.Time" | "org.apache.kafka.connect.data.Time") => Reader::Time {
            micros_per_unit: 1000,
            nanos: false,
        },
        Some("io.debezium.time.MicroTime") => Reader::Time {
            micros_per_unit: 1,
            nanos: false,
        },
        Some("io.debezium.time.NanoTime") => Reader::Time {
            micros_per_unit: 1,
            nanos: true,
        },
        Some("io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp") => {
            Reader::DateTime {
                micros_per_unit: 1000,
                nanos: false,
            }
        }
        Some("io.debezium.time.MicroTimestamp") => Reader::DateTime {
            micros_per_unit: 1,
            nanos: false,
        },
        Some("io.debezium.time.NanoTimestamp") => Reader::DateTime {
            micros_per_unit: 1,
            nanos: true,
        },
        Some("io.debezium.time.ZonedTimestamp") => Reader::ZonedTimestamp,
        Some("io.debezium.time.Year") => Reader::Year,
        Some("io.debezium.data.Enum") => Reader::Enum,
        Some("io.debezium.data.EnumSet") => Reader::Set,
        Some("io.debezium.data.Bits") => {
            let bytes = match parameter("length") {
                Some(length) => {
                    let bits: usize = length.parse().map_err(|_| {
                        DecodeError::field(
                            name,
                            format!("Bits `length` {length:?} is not a number"),
                        )
                    })?;
                    Some(bits.div_ceil(8))
                }
                None => None,
            };
            Reader::Bits { bytes }
        }
        Some("io.debezium.data.Json") => Reader::Json,
        Some("io.debezium.data.geometry.Geometry" | "io.debezium.data.geometry.Point") => {
            Reader::Geometry
        }
        Some("io.debezium.data.FloatVector") => Reader::FloatVector,
        // Other semantic types (Uuid, Xml, …) are read as their Connect type.
        _ => match type_name {
            "int8" | "int16" | "int32" | "int64" => Reader::Integer { unsigned },
            "float" | "float32" => Reader::Float,
            "double" | "float64" => Reader::Double,
            "string" => Reader::Text,
            "bytes" => Reader::Bytes,
            "boolean" => Reader::Boolean,
            other => {
                return Err(DecodeError::field(
                    name,
                    format!("unsupported Connect type `{other}`"),
                ));
            }
        },
    };
    Ok(Column {
        decoded: DecodedColumn {
            name: name.to_owned(),
            kind: reader.kind(),
            optional: schema
                .get("optional")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            sql_type,
        },
        reader,
    })
}

/// The reader of a column of this SQL type, as the encoder writes it (Debezium's defaults).
fn reader_for_sql(column_type: &ColumnType) -> Reader {
    match column_type {
        ColumnType::TinyInt { unsigned }
        | ColumnType::SmallInt { unsigned }
        | ColumnType::MediumInt { unsigned }
        | ColumnType::Int { unsigned }
        | ColumnType::BigInt { unsigned } => Reader::Integer {
            unsigned: *unsigned,
        },
        ColumnType::Decimal { scale, .. } => Reader::Decimal { scale: *scale },
        ColumnType::Float => Reader::Float,
        ColumnType::Double => Reader::Double,
        ColumnType::Date => Reader::Date,
        ColumnType::Time { .. } => Reader::Time {
            micros_per_unit: 1,
            nanos: false,
        },
        ColumnType::DateTime { fsp } => Reader::DateTime {
            micros_per_unit: if *fsp <= 3 { 1000 } else { 1 },
            nanos: false,
        },
        ColumnType::Timestamp { .. } => Reader::ZonedTimestamp,
        ColumnType::Year => Reader::Year,
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Reader::Text
        }
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            Reader::Bytes
        }
        ColumnType::Enum { .. } => Reader::Enum,
        ColumnType::Set { .. } => Reader::Set,
        ColumnType::Bit { bits } if *bits <= 1 => Reader::Boolean,
        ColumnType::Bit { bits } => Reader::Bits {
            bytes: Some(usize::from(*bits).div_ceil(8)),
        },
        ColumnType::Json => Reader::Json,
        ColumnType::Geometry => Reader::Geometry,
        ColumnType::Vector { .. } => Reader::FloatVector,
    }
}

/// Key column names: the key schema's fields, or for a schemaless key its fields in `table`'s
/// column order.
fn key_columns_from_json(
    key: &Json,
    table: Option<&TableSchema>,
) -> Result<Vec<String>, DecodeError> {
    if key.is_null() {
        return Ok(Vec::new());
    }
    if let (Some(schema), Some(_)) = (key.get("schema"), key.get("payload")) {
        return struct_fields(schema, "key")?
            .iter()
            .map(|f| {
                f.get("field")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| DecodeError::envelope("a key field schema has no `field` name"))
            })
            .collect();
    }
    let fields = key
        .as_object()
        .ok_or_else(|| DecodeError::envelope("the key is not a JSON object"))?;
    match table {
        Some(table) => {
            if let Some(unknown) = fields
                .keys()
                .find(|name| !table.columns.iter().any(|c| &c.name == *name))
            {
                return Err(DecodeError::field(
                    unknown,
                    format!("key field is not a column of {}", table.id),
                ));
            }
            Ok(table
                .columns
                .iter()
                .filter(|c| fields.contains_key(&c.name))
                .map(|c| c.name.clone())
                .collect())
        }
        None => Ok(fields.keys().cloned().collect()),
    }
}

/// The column descriptions a decoded change carries.
fn decoded_columns(columns: &[Column]) -> Arc<[DecodedColumn]> {
    columns.iter().map(|c| c.decoded.clone()).collect()
}

/// Reads the payload: images through `columns` (described by `decoded`), then `source`,
/// `transaction`, `op`, times.
fn decode_payload(
    payload: &Map<String, Json>,
    columns: &[Column],
    decoded: Arc<[DecodedColumn]>,
    key_columns: Arc<[String]>,
) -> Result<DecodedChange, DecodeError> {
    let op = payload
        .get("op")
        .and_then(Json::as_str)
        .ok_or_else(|| DecodeError::envelope("the payload has no `op` text"))?;
    let before = read_image(payload, "before", columns)?;
    let after = read_image(payload, "after", columns)?;
    let change = row_change(op, before, after)?;
    let source = payload
        .get("source")
        .ok_or_else(|| DecodeError::envelope("the payload has no `source`"))?;
    let (table, source) = read_source(object(source, "source")?)?;
    let transaction = match payload.get("transaction") {
        None | Some(Json::Null) => None,
        Some(block) => Some(read_transaction(object(block, "transaction")?)?),
    };
    let ts_us = times(payload).unwrap_or(0);
    Ok(DecodedChange {
        table,
        change,
        columns: decoded,
        key_columns,
        source,
        transaction,
        ts_us,
    })
}

/// `ts_us`, else `ts_ms` × 1000, of an object (the payload or `source`).
fn times(block: &Map<String, Json>) -> Option<i64> {
    block
        .get("ts_us")
        .and_then(Json::as_i64)
        .or_else(|| block.get("ts_ms")?.as_i64()?.checked_mul(1000))
}

fn read_image(
    payload: &Map<String, Json>,
    image: &str,
    columns: &[Column],
) -> Result<Option<Vec<Value>>, DecodeError> {
    let row = match payload.get(image) {
        None | Some(Json::Null) => return Ok(None),
        Some(row) => object(row, image)?,
    };
    columns
        .iter()
        .map(|column| {
            let name = &column.decoded.name;
            let json = row.get(name).ok_or_else(|| {
                DecodeError::field(name, format!("missing from the `{image}` row"))
            })?;
            read_value(column.reader, name, json)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// One column value through its reader.
fn read_value(reader: Reader, field: &str, json: &Json) -> Result<Value, DecodeError> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |expected: &str| {
        DecodeError::field(
            field,
            format!("expected {expected}, found {}", json_kind(json)),
        )
    };
    let int = || json.as_i64().ok_or_else(|| wrong("a 64-bit integer"));
    let string = || json.as_str().ok_or_else(|| wrong("a string"));
    let bytes =
        || text::base64(string()?).ok_or_else(|| DecodeError::field(field, "invalid base64"));
    let out_of_range =
        |what: &str| DecodeError::field(field, format!("{json} is out of range for {what}"));
    Ok(match reader {
        Reader::Integer { unsigned } => match (json.as_i64(), json.as_u64()) {
            (Some(v), _) if unsigned => Value::UInt(v as u64),
            (Some(v), _) => Value::Int(v),
            (None, Some(v)) => Value::UInt(v),
            // BIGINT UNSIGNED in `precise` mode: a Connect decimal of scale 0.
            (None, None) if unsigned && json.is_string() => {
                let text = decimal_text(field, &bytes()?, 0)?;
                Value::UInt(text.parse().map_err(|_| out_of_range("BIGINT UNSIGNED"))?)
            }
            (None, None) => return Err(wrong("an integer")),
        },
        Reader::Float => {
            let v = json.as_f64().ok_or_else(|| wrong("a number"))?;
            let narrowed = v as f32;
            if narrowed.is_infinite() {
                return Err(out_of_range("FLOAT"));
            }
            Value::Float(narrowed)
        }
        Reader::Double => Value::Double(json.as_f64().ok_or_else(|| wrong("a number"))?),
        Reader::Decimal { scale } => Value::Decimal(decimal_text(field, &bytes()?, scale)?),
        Reader::Date => {
            let days = i32::try_from(int()?).map_err(|_| out_of_range("DATE"))?;
            Value::Date(Date::from_days_since_epoch(days).ok_or_else(|| out_of_range("DATE"))?)
        }
        Reader::Time {
            micros_per_unit,
            nanos,
        } => {
            let micros = scaled_micros(int()?, micros_per_unit, nanos)
                .ok_or_else(|| out_of_range("TIME"))?;
            Value::Time(Time::from_total_micros(micros))
        }
        Reader::DateTime {
            micros_per_unit,
            nanos,
        } => {
            let micros = scaled_micros(int()?, micros_per_unit, nanos)
                .ok_or_else(|| out_of_range("DATETIME"))?;
            Value::DateTime(
                DateTime::from_epoch_micros(micros).ok_or_else(|| out_of_range("DATETIME"))?,
            )
        }
        Reader::ZonedTimestamp => {
            let text = string()?;
            Value::Timestamp(text::zoned_timestamp(text).ok_or_else(|| {
                DecodeError::field(field, format!("{text:?} is not an ISO-8601 instant"))
            })?)
        }
        Reader::Year => Value::Year(u16::try_from(int()?).map_err(|_| out_of_range("YEAR"))?),
        Reader::Text => Value::Text(string()?.to_owned()),
        Reader::Bytes => Value::Bytes(bytes()?),
        Reader::Enum => Value::Enum(text::member(string()?)),
        Reader::Set => Value::Set(text::members(string()?)),
        Reader::Boolean => Value::Bit(vec![u8::from(
            json.as_bool().ok_or_else(|| wrong("a boolean"))?,
        )]),
        Reader::Bits { bytes: width } => {
            let mut little_endian = bytes()?;
            if let Some(width) = width {
                if little_endian.iter().skip(width).any(|&b| b != 0) {
                    return Err(DecodeError::field(
                        field,
                        format!(
                            "{} bytes do not fit the {width} of the BIT length",
                            little_endian.len()
                        ),
                    ));
                }
                little_endian.resize(width, 0);
            }
            little_endian.reverse();
            Value::Bit(little_endian)
        }
        Reader::Json => Value::Json(string()?.to_owned()),
        Reader::Geometry => {
            let wkb = json
                .get("wkb")
                .and_then(Json::as_str)
                .ok_or_else(|| wrong("a Geometry struct with `wkb`"))?;
            let wkb = text::base64(wkb)
                .ok_or_else(|| DecodeError::field(field, "invalid base64 in `wkb`"))?;
            let srid = match json.get("srid") {
                None | Some(Json::Null) => 0,
                Some(srid) => srid
                    .as_i64()
                    .and_then(|s| i32::try_from(s).ok())
                    .ok_or_else(|| {
                        DecodeError::field(field, format!("SRID {srid} is not an int32"))
                    })?,
            };
            let mut bytes = srid.to_le_bytes().to_vec();
            bytes.extend_from_slice(&wkb);
            Value::Bytes(bytes)
        }
        Reader::FloatVector => {
            let elements = json.as_array().ok_or_else(|| wrong("an array"))?;
            let mut bytes = Vec::with_capacity(elements.len() * 4);
            for (i, element) in elements.iter().enumerate() {
                let v = element.as_f64().ok_or_else(|| {
                    DecodeError::field(field, format!("element {i} is not a number"))
                })?;
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            }
            Value::Bytes(bytes)
        }
    })
}

/// A count of units as microseconds; nanoseconds are truncated toward negative infinity.
fn scaled_micros(value: i64, micros_per_unit: i64, nanos: bool) -> Option<i64> {
    if nanos {
        Some(value.div_euclid(1000))
    } else {
        value.checked_mul(micros_per_unit)
    }
}

fn decimal_text(field: &str, bytes: &[u8], scale: u8) -> Result<String, DecodeError> {
    text_from_unscaled(bytes, scale).map_err(|e| {
        DecodeError::field(
            field,
            match e {
                DecimalError::TooManyDigits => "Decimal has more than 86 digits",
                _ => "Decimal without bytes",
            },
        )
    })
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The table and the `source` block.
fn read_source(source: &Map<String, Json>) -> Result<(TableId, SourceInfo), DecodeError> {
    let text = |name: &str| {
        source
            .get(name)
            .and_then(Json::as_str)
            .ok_or_else(|| DecodeError::field(&format!("source.{name}"), "missing or not text"))
    };
    let optional_text = |name: &str| source.get(name).and_then(Json::as_str).map(str::to_owned);
    let number = |name: &str| {
        source.get(name).and_then(Json::as_u64).ok_or_else(|| {
            DecodeError::field(&format!("source.{name}"), "missing or not a whole number")
        })
    };
    let table = TableId::new(text("db")?, text("table")?);
    let snapshot = match source.get("snapshot") {
        None | Some(Json::Null) => SnapshotMarker::No,
        Some(Json::Bool(true)) => SnapshotMarker::Yes,
        Some(Json::Bool(false)) => SnapshotMarker::No,
        Some(marker) => match marker.as_str() {
            Some("false") => SnapshotMarker::No,
            Some("true") => SnapshotMarker::Yes,
            Some("first") => SnapshotMarker::First,
            Some("first_in_data_collection") => SnapshotMarker::FirstInTable,
            Some("last_in_data_collection") => SnapshotMarker::LastInTable,
            Some("last") => SnapshotMarker::Last,
            Some("incremental") => SnapshotMarker::Incremental,
            _ => {
                return Err(DecodeError::field(
                    "source.snapshot",
                    format!("unknown snapshot marker {marker}"),
                ));
            }
        },
    };
    let gtid = optional_text("gtid");
    // Debezium writes `connector: mysql` for MariaDB too; MariaDB GTIDs have no `:`.
    let flavor = match &gtid {
        Some(gtid) if !gtid.contains(':') => Flavor::MariaDb,
        _ => Flavor::MySql,
    };
    let info = SourceInfo {
        flavor,
        name: text("name")?.to_owned(),
        ts_us: times(source).unwrap_or(0),
        snapshot,
        server_id: u32::try_from(number("server_id")?)
            .map_err(|_| DecodeError::field("source.server_id", "larger than 32 bits"))?,
        gtid,
        file: text("file")?.to_owned(),
        pos: number("pos")?,
        row: u32::try_from(number("row")?)
            .map_err(|_| DecodeError::field("source.row", "larger than 32 bits"))?,
        thread: source.get("thread").and_then(Json::as_u64),
        query: optional_text("query"),
    };
    Ok((table, info))
}

fn read_transaction(block: &Map<String, Json>) -> Result<TransactionInfo, DecodeError> {
    let number = |name: &str| {
        block.get(name).and_then(Json::as_u64).ok_or_else(|| {
            DecodeError::field(
                &format!("transaction.{name}"),
                "missing or not a whole number",
            )
        })
    };
    Ok(TransactionInfo {
        id: block
            .get("id")
            .and_then(Json::as_str)
            .ok_or_else(|| DecodeError::field("transaction.id", "missing or not text"))?
            .to_owned(),
        total_order: number("total_order")?,
        data_collection_order: number("data_collection_order")?,
    })
}
