//! How Debezium's MySQL connector writes each column type: its Connect field schema and its
//! JSON value, with Debezium's default settings (`decimal.handling.mode=precise`,
//! `time.precision.mode=adaptive_time_microseconds`, `binary.handling.mode=bytes`,
//! `bigint.unsigned.handling.mode` from [`CodecOptions`]).
//!
//! Sources: Debezium 3.0 `BinlogValueConverters`, `JdbcValueConverters`, `RowDeserializers`
//! and `PropagateSourceMetadataToSchemaParameter`. Where the binlog and Debezium disagree on
//! what a value is, Debezium's streaming behaviour wins:
//! - zero or impossible DATE/DATETIME values are null in nullable columns and the epoch (0)
//!   otherwise;
//! - TIMESTAMP depends on where Debezium read the row ([`RowOrigin`]): from the binlog it has
//!   exactly `fsp` fractional digits and the zero TIMESTAMP (stored as 0) is the epoch instant;
//!   from a snapshot (JDBC) it has Java's ISO format (no trailing zeros) and the zero TIMESTAMP
//!   is null, or `1970-01-01T00:00:00Z` in a NOT NULL column;
//! - YEAR 0000 is 1900 (Debezium reads the binlog byte as `1900 + n`); 1900 is not a valid
//!   YEAR, so the value stays unambiguous;
//! - an empty JSON value (possible in the binlog) is null, or `{}` in a NOT NULL column;
//! - BINARY(n) values are right-padded with zero bytes to n, as MySQL returns them.
//!
//! Deliberate differences, because the binlog does not carry what Debezium reads from DDL:
//! no `default` (column defaults) and no `doc` (column comments) in field schemas; integer
//! display widths are not propagated; FLOAT(M,D) columns, which Debezium writes as doubles,
//! look like FLOAT and are written as floats; POINT columns, for which Debezium has a
//! `Point` struct, are written as `Geometry` like every other spatial type; columns declared
//! BOOL/BOOLEAN are TINYINT(1) in the binlog and written as INT16 (Debezium writes a boolean
//! only when it parsed the original `BOOLEAN` DDL). Years 0–99 of DATE/DATETIME/TIMESTAMP are
//! written as stored, as with Debezium's `enable.time.adjuster=false` (its default moves them
//! to 2000–2069 and 1970–1999).

use crate::codec::connect_decimal::{DecimalError, unscaled_from_text, unscaled_from_u64};
use crate::codec::java_float::{push_f32, push_f64};
use crate::codec::json_text::{push_base64, push_i64, push_string, push_string_content, push_u64};
use crate::codec::value_fit::{does_not_fit, out_of_range};
use crate::codec::{BigintUnsignedMode, CodecError, CodecOptions};
use crate::event::{ColumnSchema, ColumnType, LobSize, TableSchema, Value};

use super::connect_schema::ConnectSchema;

/// Where a row was read, for the one type Debezium writes differently by path (TIMESTAMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOrigin {
    /// A snapshot read (Debezium reads it over JDBC).
    Snapshot,
    /// A binlog row event.
    Binlog,
}

/// How one column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// A JSON integer (INT8 … INT64).
    Integer,
    /// BIGINT UNSIGNED in `long` mode: the bits as a signed 64-bit number.
    UnsignedLong,
    /// BIGINT UNSIGNED in `precise` mode: a Connect decimal of scale 0.
    UnsignedPrecise,
    /// FLOAT32.
    Float,
    /// FLOAT64.
    Double,
    /// Connect `Decimal` bytes at this scale.
    Decimal { scale: u8 },
    /// `io.debezium.time.Date`: days since the epoch.
    Date,
    /// `io.debezium.time.MicroTime`: signed microseconds.
    MicroTime,
    /// `io.debezium.time.Timestamp`: milliseconds since the epoch.
    TimestampMillis,
    /// `io.debezium.time.MicroTimestamp`: microseconds since the epoch.
    TimestampMicros,
    /// `io.debezium.time.ZonedTimestamp`: ISO-8601 text in UTC.
    ZonedTimestamp { fsp: u8 },
    /// `io.debezium.time.Year`.
    Year,
    /// A JSON string.
    Text,
    /// Base64 bytes, right-padded to `pad_to` bytes.
    Bytes { pad_to: usize },
    /// `io.debezium.data.Enum`.
    Enum,
    /// `io.debezium.data.EnumSet`: members joined by commas.
    Set,
    /// BIT(1): a boolean.
    Boolean,
    /// `io.debezium.data.Bits`: little-endian bytes, exactly `bytes` of them.
    Bits { bytes: usize },
    /// `io.debezium.data.Json`.
    Json,
    /// `io.debezium.data.geometry.Geometry`: `{wkb, srid}`.
    Geometry,
    /// `io.debezium.data.FloatVector`: an array of floats.
    FloatVector,
}

/// The encoding of a column's values.
pub(super) fn encoding(column_type: &ColumnType, options: &CodecOptions) -> Encoding {
    match column_type {
        ColumnType::TinyInt { .. }
        | ColumnType::SmallInt { .. }
        | ColumnType::MediumInt { .. }
        | ColumnType::Int { .. }
        | ColumnType::BigInt { unsigned: false } => Encoding::Integer,
        ColumnType::BigInt { unsigned: true } => match options.bigint_unsigned {
            BigintUnsignedMode::Long => Encoding::UnsignedLong,
            BigintUnsignedMode::Precise => Encoding::UnsignedPrecise,
        },
        ColumnType::Decimal { scale, .. } => Encoding::Decimal { scale: *scale },
        ColumnType::Float => Encoding::Float,
        ColumnType::Double => Encoding::Double,
        ColumnType::Date => Encoding::Date,
        ColumnType::Time { .. } => Encoding::MicroTime,
        ColumnType::DateTime { fsp } if *fsp <= 3 => Encoding::TimestampMillis,
        ColumnType::DateTime { .. } => Encoding::TimestampMicros,
        ColumnType::Timestamp { fsp } => Encoding::ZonedTimestamp { fsp: *fsp },
        ColumnType::Year => Encoding::Year,
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            Encoding::Text
        }
        ColumnType::Binary { length } => Encoding::Bytes {
            pad_to: *length as usize,
        },
        ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => Encoding::Bytes { pad_to: 0 },
        ColumnType::Enum { .. } => Encoding::Enum,
        ColumnType::Set { .. } => Encoding::Set,
        ColumnType::Bit { bits } if *bits <= 1 => Encoding::Boolean,
        ColumnType::Bit { bits } => Encoding::Bits {
            bytes: usize::from(*bits).div_ceil(8),
        },
        ColumnType::Json => Encoding::Json,
        ColumnType::Geometry => Encoding::Geometry,
        ColumnType::Vector { .. } => Encoding::FloatVector,
    }
}

/// The Connect schema of a column's field; `propagate` adds the source-type parameters
/// (Debezium adds them to value fields only, never to key fields).
pub(super) fn field_schema(
    column: &ColumnSchema,
    options: &CodecOptions,
    propagate: bool,
) -> ConnectSchema {
    let column_type = &column.column_type;
    let schema = match column_type {
        ColumnType::TinyInt { .. } | ColumnType::SmallInt { unsigned: false } => {
            ConnectSchema::primitive("int16")
        }
        ColumnType::SmallInt { unsigned: true }
        | ColumnType::MediumInt { .. }
        | ColumnType::Int { unsigned: false } => ConnectSchema::primitive("int32"),
        ColumnType::Int { unsigned: true } | ColumnType::BigInt { unsigned: false } => {
            ConnectSchema::primitive("int64")
        }
        ColumnType::BigInt { unsigned: true } => match options.bigint_unsigned {
            BigintUnsignedMode::Long => ConnectSchema::primitive("int64"),
            BigintUnsignedMode::Precise => decimal_schema(20, 0),
        },
        ColumnType::Decimal { precision, scale } => decimal_schema(*precision, *scale),
        ColumnType::Float => ConnectSchema::primitive("float"),
        ColumnType::Double => ConnectSchema::primitive("double"),
        ColumnType::Date => logical("int32", "io.debezium.time.Date"),
        ColumnType::Time { .. } => logical("int64", "io.debezium.time.MicroTime"),
        ColumnType::DateTime { fsp } if *fsp <= 3 => logical("int64", "io.debezium.time.Timestamp"),
        ColumnType::DateTime { .. } => logical("int64", "io.debezium.time.MicroTimestamp"),
        ColumnType::Timestamp { .. } => logical("string", "io.debezium.time.ZonedTimestamp"),
        ColumnType::Year => logical("int32", "io.debezium.time.Year"),
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. } => {
            ConnectSchema::primitive("string")
        }
        ColumnType::Binary { .. } | ColumnType::VarBinary { .. } | ColumnType::Blob { .. } => {
            ConnectSchema::primitive("bytes")
        }
        ColumnType::Enum { members } => {
            logical("string", "io.debezium.data.Enum").parameter("allowed", allowed(members))
        }
        ColumnType::Set { members } => {
            logical("string", "io.debezium.data.EnumSet").parameter("allowed", allowed(members))
        }
        ColumnType::Bit { bits } if *bits <= 1 => ConnectSchema::primitive("boolean"),
        ColumnType::Bit { bits } => {
            logical("bytes", "io.debezium.data.Bits").parameter("length", bits.to_string())
        }
        ColumnType::Json => logical("string", "io.debezium.data.Json"),
        // Debezium's Geometry schema is optional whatever the column says.
        ColumnType::Geometry => ConnectSchema::structure(vec![
            ("wkb".to_owned(), ConnectSchema::primitive("bytes")),
            (
                "srid".to_owned(),
                ConnectSchema::primitive("int32").optional(true),
            ),
        ])
        .name("io.debezium.data.geometry.Geometry")
        .version(1)
        .doc("Geometry")
        .optional(true),
        ColumnType::Vector { .. } => ConnectSchema::array(ConnectSchema::primitive("float"))
            .name("io.debezium.data.FloatVector")
            .version(1),
    };
    let schema = if propagate {
        with_source_type(schema, column)
    } else {
        schema
    };
    if column.nullable {
        schema.optional(true)
    } else {
        schema
    }
}

fn logical(type_name: &'static str, name: &'static str) -> ConnectSchema {
    ConnectSchema::primitive(type_name).name(name).version(1)
}

fn decimal_schema(precision: u8, scale: u8) -> ConnectSchema {
    logical("bytes", "org.apache.kafka.connect.data.Decimal")
        .parameter("scale", scale.to_string())
        .parameter("connect.decimal.precision", precision.to_string())
}

/// ENUM/SET members as Debezium lists them: commas inside a member escaped as `\,`.
fn allowed(members: &[String]) -> String {
    let mut allowed = String::new();
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            allowed.push(',');
        }
        allowed.push_str(&member.replace(',', "\\,"));
    }
    allowed
}

/// Adds Debezium's `column.propagate.source.type` parameters: the type name as its DDL parser
/// upper-cases it, the length and scale it parses from the DDL, and the column name.
fn with_source_type(schema: ConnectSchema, column: &ColumnSchema) -> ConnectSchema {
    let (type_name, length, scale) = source_type(&column.column_type);
    let mut schema = schema.parameter("__debezium.source.column.type", type_name);
    if let Some(length) = length {
        schema = schema.parameter("__debezium.source.column.length", length.to_string());
    }
    if let Some(scale) = scale {
        schema = schema.parameter("__debezium.source.column.scale", scale.to_string());
    }
    schema.parameter("__debezium.source.column.name", column.name.clone())
}

/// Debezium's type name, length and scale for a column type. Lengths follow Debezium's MySQL
/// DDL parser: declared lengths, DECIMAL precision, fractional-second precision when declared,
/// 1 for ENUM and members + commas for SET; integer display widths are unknown here.
fn source_type(column_type: &ColumnType) -> (String, Option<u32>, Option<u8>) {
    let integer = |name: &str, unsigned: bool| {
        if unsigned {
            format!("{name} UNSIGNED")
        } else {
            name.to_owned()
        }
    };
    let fractional = |fsp: u8| (fsp > 0).then_some(u32::from(fsp));
    let lob = |size: LobSize, name: &str| {
        let prefix = match size {
            LobSize::Tiny => "TINY",
            LobSize::Regular => "",
            LobSize::Medium => "MEDIUM",
            LobSize::Long => "LONG",
        };
        format!("{prefix}{name}")
    };
    match column_type {
        ColumnType::TinyInt { unsigned } => (integer("TINYINT", *unsigned), None, None),
        ColumnType::SmallInt { unsigned } => (integer("SMALLINT", *unsigned), None, None),
        ColumnType::MediumInt { unsigned } => (integer("MEDIUMINT", *unsigned), None, None),
        ColumnType::Int { unsigned } => (integer("INT", *unsigned), None, None),
        ColumnType::BigInt { unsigned } => (integer("BIGINT", *unsigned), None, None),
        ColumnType::Decimal { precision, scale } => (
            "DECIMAL".to_owned(),
            Some(u32::from(*precision)),
            Some(*scale),
        ),
        ColumnType::Float => ("FLOAT".to_owned(), None, None),
        ColumnType::Double => ("DOUBLE".to_owned(), None, None),
        ColumnType::Date => ("DATE".to_owned(), None, None),
        ColumnType::Time { fsp } => ("TIME".to_owned(), fractional(*fsp), None),
        ColumnType::DateTime { fsp } => ("DATETIME".to_owned(), fractional(*fsp), None),
        ColumnType::Timestamp { fsp } => ("TIMESTAMP".to_owned(), fractional(*fsp), None),
        ColumnType::Year => ("YEAR".to_owned(), None, None),
        ColumnType::Char { length } => ("CHAR".to_owned(), Some(*length), None),
        ColumnType::VarChar { length } => ("VARCHAR".to_owned(), Some(*length), None),
        ColumnType::Text { size } => (lob(*size, "TEXT"), None, None),
        ColumnType::Binary { length } => ("BINARY".to_owned(), Some(*length), None),
        ColumnType::VarBinary { length } => ("VARBINARY".to_owned(), Some(*length), None),
        ColumnType::Blob { size } => (lob(*size, "BLOB"), None, None),
        ColumnType::Enum { .. } => ("ENUM".to_owned(), Some(1), None),
        ColumnType::Set { members } => {
            let length = (members.len() * 2).saturating_sub(1);
            (
                "SET".to_owned(),
                Some(u32::try_from(length).unwrap_or(u32::MAX)),
                None,
            )
        }
        ColumnType::Bit { bits } => ("BIT".to_owned(), Some(u32::from(*bits)), None),
        ColumnType::Json => ("JSON".to_owned(), None, None),
        ColumnType::Geometry => ("GEOMETRY".to_owned(), None, None),
        ColumnType::Vector { dimensions } => ("VECTOR".to_owned(), Some(*dimensions), None),
    }
}

/// Writes one value, already checked to fit its column, as Debezium's JSON for `encoding`.
pub(super) fn write_value(
    encoding: Encoding,
    origin: RowOrigin,
    table: &TableSchema,
    column: &ColumnSchema,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    match (encoding, value) {
        (_, Value::Null) => out.extend_from_slice(b"null"),
        (Encoding::Integer | Encoding::UnsignedLong, Value::Int(v)) => push_i64(out, *v),
        (Encoding::Integer, Value::UInt(v)) => push_u64(out, *v),
        // Debezium's `long` mode: the unsigned bits read as a Java long.
        (Encoding::UnsignedLong, Value::UInt(v)) => push_i64(out, *v as i64),
        (Encoding::UnsignedPrecise, Value::UInt(v)) => {
            push_base64(out, unscaled_from_u64(*v).as_bytes());
        }
        (Encoding::UnsignedPrecise, Value::Int(v)) => {
            let v = u64::try_from(*v).map_err(|_| out_of_range(table, column, "negative"))?;
            push_base64(out, unscaled_from_u64(v).as_bytes());
        }
        (Encoding::Float, Value::Float(v)) => push_f32(out, *v),
        (Encoding::Double, Value::Double(v)) => push_f64(out, *v),
        (Encoding::Decimal { scale }, Value::Decimal(text)) => {
            let unscaled = unscaled_from_text(text, scale).map_err(|e| {
                let reason = match e {
                    DecimalError::Malformed => format!("{text:?} is not a decimal number"),
                    DecimalError::ScaleTooLarge { digits, scale } => format!(
                        "{text:?} has {digits} fractional digits but the column's scale is {scale}"
                    ),
                    DecimalError::TooManyDigits => format!("{text:?} has too many digits"),
                };
                out_of_range(table, column, reason)
            })?;
            push_base64(out, unscaled.as_bytes());
        }
        (Encoding::Date, Value::Date(date)) => match date.days_since_epoch() {
            Some(days) => push_i64(out, i64::from(days)),
            None => write_zero(column, b"0", out),
        },
        (Encoding::MicroTime, Value::Time(time)) => push_i64(out, time.total_micros()),
        (Encoding::TimestampMillis, Value::DateTime(datetime)) => match datetime.epoch_micros() {
            Some(micros) => push_i64(out, micros.div_euclid(1000)),
            None => write_zero(column, b"0", out),
        },
        (Encoding::TimestampMicros, Value::DateTime(datetime)) => match datetime.epoch_micros() {
            Some(micros) => push_i64(out, micros),
            None => write_zero(column, b"0", out),
        },
        (Encoding::ZonedTimestamp { .. }, Value::Timestamp(timestamp))
            if origin == RowOrigin::Snapshot && timestamp.seconds == 0 && timestamp.micros == 0 =>
        {
            write_zero(column, b"\"1970-01-01T00:00:00Z\"", out);
        }
        (Encoding::ZonedTimestamp { fsp }, Value::Timestamp(timestamp)) => {
            let utc = timestamp.to_utc().ok_or_else(|| {
                out_of_range(
                    table,
                    column,
                    format!(
                        "{} seconds since the epoch is past year 9999",
                        timestamp.seconds
                    ),
                )
            })?;
            let width = match origin {
                RowOrigin::Binlog => fsp,
                RowOrigin::Snapshot => 0,
            };
            write_zoned_timestamp(&utc, width, out);
        }
        (Encoding::Year, Value::Year(year)) => {
            push_u64(out, if *year == 0 { 1900 } else { u64::from(*year) });
        }
        (Encoding::Text, Value::Text(text)) => push_string(out, text),
        (Encoding::Bytes { pad_to }, Value::Bytes(bytes)) => {
            if bytes.len() < pad_to {
                let mut padded = bytes.clone();
                padded.resize(pad_to, 0);
                push_base64(out, &padded);
            } else {
                push_base64(out, bytes);
            }
        }
        (Encoding::Enum, Value::Enum(member)) => {
            out.push(b'"');
            push_member(out, member);
            out.push(b'"');
        }
        (Encoding::Set, Value::Set(members)) => {
            out.push(b'"');
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_member(out, member);
            }
            out.push(b'"');
        }
        (Encoding::Boolean, Value::Bit(bytes)) => {
            let set = bytes.last().is_some_and(|last| last & 1 == 1);
            out.extend_from_slice(if set { b"true" } else { b"false" });
        }
        (Encoding::Bits { bytes: width }, Value::Bit(bytes)) => {
            // MySQL's bytes are big-endian; Debezium writes them little-endian, exactly as
            // many as the column needs.
            let mut little_endian: Vec<u8> = bytes.iter().rev().copied().collect();
            if little_endian.iter().skip(width).any(|&b| b != 0) {
                return Err(out_of_range(
                    table,
                    column,
                    format!("{} bytes do not fit the column's {width}", bytes.len()),
                ));
            }
            little_endian.resize(width, 0);
            push_base64(out, &little_endian);
        }
        (Encoding::Json, Value::Json(text)) => {
            if text.is_empty() {
                write_zero(column, b"\"{}\"", out);
            } else {
                push_string(out, text);
            }
        }
        (Encoding::Geometry, Value::Bytes(bytes)) => {
            let (srid, wkb) = bytes
                .split_first_chunk::<4>()
                .ok_or_else(|| out_of_range(table, column, "geometry without an SRID"))?;
            out.extend_from_slice(b"{\"wkb\":");
            push_base64(out, wkb);
            out.extend_from_slice(b",\"srid\":");
            // Debezium reads SRID 0 as "no SRID".
            match i32::from_le_bytes(*srid) {
                0 => out.extend_from_slice(b"null"),
                srid => push_i64(out, i64::from(srid)),
            }
            out.push(b'}');
        }
        (Encoding::FloatVector, Value::Bytes(bytes)) => {
            out.push(b'[');
            for (i, chunk) in bytes.chunks_exact(4).enumerate() {
                let element = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if !element.is_finite() {
                    return Err(out_of_range(
                        table,
                        column,
                        format!("element {i} is {element}, which JSON cannot hold"),
                    ));
                }
                if i > 0 {
                    out.push(b',');
                }
                push_f32(out, element);
            }
            out.push(b']');
        }
        _ => return Err(does_not_fit(table, column, value)),
    }
    Ok(())
}

/// A value Debezium cannot represent (zero dates): null where the column allows it, else
/// `fallback`.
fn write_zero(column: &ColumnSchema, fallback: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(if column.nullable { b"null" } else { fallback });
}

/// An ENUM or SET member as Debezium writes it: commas escaped as `\,`.
fn push_member(out: &mut Vec<u8>, member: &str) {
    for (i, piece) in member.split(',').enumerate() {
        if i > 0 {
            // `\,` as JSON string content.
            out.extend_from_slice(b"\\\\,");
        }
        push_string_content(out, piece);
    }
}

/// `"2024-01-02T03:04:05.120Z"`: Debezium's `ZonedTimestamp` with exactly `fsp` fractional
/// digits, or with `fsp` 0 Java's ISO format (as many as needed, no trailing zeros).
fn write_zoned_timestamp(utc: &crate::event::DateTime, fsp: u8, out: &mut Vec<u8>) {
    out.push(b'"');
    push_padded(out, u32::from(utc.date.year), 4);
    out.push(b'-');
    push_padded(out, u32::from(utc.date.month), 2);
    out.push(b'-');
    push_padded(out, u32::from(utc.date.day), 2);
    out.push(b'T');
    push_padded(out, u32::from(utc.hour), 2);
    out.push(b':');
    push_padded(out, u32::from(utc.minute), 2);
    out.push(b':');
    push_padded(out, u32::from(utc.second), 2);
    let mut fraction = [0u8; 6];
    let mut micros = utc.micros;
    for digit in fraction.iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    let digits = if fsp > 0 {
        usize::from(fsp.min(6))
    } else {
        6 - fraction.iter().rev().take_while(|&&d| d == b'0').count()
    };
    if digits > 0 {
        out.push(b'.');
        out.extend_from_slice(&fraction[..digits]);
    }
    out.extend_from_slice(b"Z\"");
}

fn push_padded(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    let mut used = 0;
    while rest > 0 || used == 0 {
        used += 1;
        digits[digits.len() - used] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let shown = used.max(width).min(digits.len());
    out.extend_from_slice(&digits[digits.len() - shown..]);
}
