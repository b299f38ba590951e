//! TABLE_MAP events become table schemas plus the physical layout of each column in a row
//! image.
//!
//! With `binlog_row_metadata=FULL` the event carries everything (names, signedness, charsets,
//! ENUM/SET members, primary key). Without it, a [`TableDefinition`] read from
//! `information_schema` fills in what the event lacks; the physical types always come from the
//! event, so rows decode correctly even when the definition is a little stale.

use std::sync::Arc;

use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType as Wire;
use rowferry_shared::event::{ColumnSchema, ColumnType, LobSize, RowKey, TableId, TableSchema};

use super::DecodeError;
use super::charset::{Charset, CollationTable};

/// How one column's value is laid out in a row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Little-endian integer of 1, 2, 3, 4 or 8 bytes.
    Int { bytes: u8 },
    /// IEEE 754 single, little-endian.
    Float,
    /// IEEE 754 double, little-endian.
    Double,
    /// MySQL's packed decimal.
    Decimal { precision: u8, scale: u8 },
    /// 3-byte packed date.
    Date,
    /// Pre-5.6 TIME (3-byte HHMMSS integer).
    TimeV1,
    /// TIME(fsp): 3 bytes + fraction.
    Time2 { fsp: u8 },
    /// Pre-5.6 DATETIME (8-byte YYYYMMDDhhmmss integer).
    DateTimeV1,
    /// DATETIME(fsp): 5 bytes + fraction.
    DateTime2 { fsp: u8 },
    /// Pre-5.6 TIMESTAMP (4-byte seconds).
    TimestampV1,
    /// TIMESTAMP(fsp): 4 big-endian bytes + fraction.
    Timestamp2 { fsp: u8 },
    /// 1 byte, years since 1900 (0 = zero year).
    Year,
    /// Length-prefixed bytes (prefix of 1 or 2 bytes): VARCHAR, VARBINARY, CHAR, BINARY.
    String { prefix_bytes: u8 },
    /// ENUM index of 1 or 2 bytes.
    Enum { bytes: u8 },
    /// SET bitmap of 1–8 bytes.
    Set { bytes: u8 },
    /// Length-prefixed bytes with a 1–4 byte prefix: TEXT, BLOB, GEOMETRY, VECTOR.
    Blob { prefix_bytes: u8 },
    /// MySQL's binary JSON, length-prefixed.
    Json { prefix_bytes: u8 },
    /// BIT(bits), ⌈bits/8⌉ big-endian bytes.
    Bit { bits: u8 },
}

/// A column of a [`TableMap`]: how to read it and how to interpret its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDecode {
    /// Physical layout in the row image.
    pub layout: Layout,
    /// Charset of character data (`None` for everything else, binary included).
    pub charset: Option<Charset>,
}

/// A table as one TABLE_MAP event describes it.
#[derive(Debug, Clone)]
pub struct TableMap {
    /// The binlog's number for the table, valid until the next rotation.
    pub table_id: u64,
    /// The schema that events of this table carry.
    pub schema: Arc<TableSchema>,
    /// One entry per column, in table order.
    pub columns: Vec<ColumnDecode>,
}

/// What `information_schema` says about a table, used when the binlog lacks full metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    /// Columns in table order.
    pub columns: Vec<ColumnDefinition>,
    /// Primary key (or its stand-in) as column indexes.
    pub key: RowKey,
}

/// One column as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// Column name.
    pub name: String,
    /// Whether a numeric column is UNSIGNED.
    pub unsigned: bool,
    /// Charset name of a character column.
    pub charset: Option<String>,
    /// ENUM or SET members in definition order.
    pub members: Vec<String>,
}

/// The logical facts a TABLE_MAP event may or may not carry.
struct Extracted {
    names: Vec<String>,
    unsigned: Vec<bool>,
    charsets: Vec<u16>,
    enum_set_charsets: Vec<u16>,
    /// ENUM member names per ENUM column, as bytes in the column's charset.
    enum_members: Vec<Vec<Vec<u8>>>,
    /// SET member names per SET column, as bytes in the column's charset.
    set_members: Vec<Vec<Vec<u8>>>,
    primary_key: Vec<usize>,
}

fn extract(tme: &TableMapEvent<'_>, num_columns: usize) -> Result<Extracted, DecodeError> {
    let bad = |what: &str, err: std::io::Error| DecodeError::Corrupt {
        what: format!("TABLE_MAP optional metadata ({what}): {err}"),
    };
    let meta =
        OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| bad("fields", e))?;
    let names = meta
        .iter_column_name()
        .take(num_columns)
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("column names", e))?;
    let unsigned = meta.iter_signedness().collect();
    // Both charset iterators repeat the default forever; a table has at most num_columns.
    let charsets = meta
        .iter_charset()
        .take(num_columns)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("charsets", e))?;
    let enum_set_charsets = meta
        .iter_enum_and_set_charset()
        .take(num_columns)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("ENUM/SET charsets", e))?;
    let primary_key = meta
        .iter_primary_key()
        .map(|i| i.map(|i| usize::try_from(i).unwrap_or(usize::MAX)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("primary key", e))?;
    let mut enum_members = Vec::new();
    let mut set_members = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| bad("fields", e))? {
            OptionalMetadataField::EnumStrValue(values) => {
                for column in values.iter_values() {
                    let column = column.map_err(|e| bad("ENUM members", e))?;
                    enum_members.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value_raw().to_vec())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for column in values.iter_values() {
                    let column = column.map_err(|e| bad("SET members", e))?;
                    set_members.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value_raw().to_vec())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(Extracted {
        names,
        unsigned,
        charsets,
        enum_set_charsets,
        enum_members,
        set_members,
        primary_key,
    })
}

/// ENUM or SET member names from the TABLE_MAP metadata, which stores them in the column's
/// charset (a latin1 `ENUM('café')` member is the bytes `63 61 66 E9`), not in UTF-8.
fn decode_members(
    raw: &[Vec<u8>],
    charset: &Charset,
    column: usize,
) -> Result<Vec<String>, DecodeError> {
    raw.iter()
        .map(|member| {
            if charset.is_binary() {
                // `CHARACTER SET binary` members have no text form; show them as MySQL
                // clients do, byte for byte where they are UTF-8.
                Ok(String::from_utf8_lossy(member).into_owned())
            } else {
                charset
                    .decode(member)
                    .map_err(|source| DecodeError::Charset { column, source })
            }
        })
        .collect()
}

/// The physical type and its metadata bytes for column `i`.
fn wire_type<'a>(tme: &'a TableMapEvent<'a>, i: usize) -> Result<(Wire, &'a [u8]), DecodeError> {
    let corrupt = |what: String| DecodeError::Corrupt { what };
    let wire = tme
        .get_column_type(i)
        .map_err(|e| corrupt(format!("TABLE_MAP column {i}: {e}")))?
        .ok_or_else(|| corrupt(format!("TABLE_MAP has no column {i}")))?;
    let meta = tme.get_column_metadata(i).unwrap_or(&[]);
    Ok((wire, meta))
}

fn meta_byte(meta: &[u8], i: usize, column: usize) -> Result<u8, DecodeError> {
    meta.get(i).copied().ok_or_else(|| DecodeError::Corrupt {
        what: format!("TABLE_MAP metadata of column {column} is too short"),
    })
}

fn meta_u16(meta: &[u8], column: usize) -> Result<u16, DecodeError> {
    Ok(u16::from_le_bytes([
        meta_byte(meta, 0, column)?,
        meta_byte(meta, 1, column)?,
    ]))
}

fn fsp(meta: &[u8], column: usize) -> Result<u8, DecodeError> {
    let fsp = meta_byte(meta, 0, column)?;
    if fsp > 6 {
        return Err(DecodeError::Corrupt {
            what: format!("column {column} has fractional-second precision {fsp} (0–6 allowed)"),
        });
    }
    Ok(fsp)
}

fn lob_prefix(meta: &[u8], column: usize) -> Result<(u8, LobSize), DecodeError> {
    let bytes = meta_byte(meta, 0, column)?;
    let size = LobSize::from_length_bytes(bytes).ok_or_else(|| DecodeError::Corrupt {
        what: format!("column {column} has a {bytes}-byte length prefix (1–4 allowed)"),
    })?;
    Ok((bytes, size))
}

/// Builds the table map of a TABLE_MAP event.
///
/// `definition` is required when the event lacks column names (no full row metadata); it
/// supplies names, signedness, charsets, ENUM/SET members and the key. Without either,
/// `allow_unnamed` names columns `@1`, `@2`… as mysqlbinlog does (for reading recordings).
pub fn build(
    tme: &TableMapEvent<'_>,
    collations: &CollationTable,
    definition: Option<&TableDefinition>,
    allow_unnamed: bool,
) -> Result<TableMap, DecodeError> {
    let id = TableId::new(tme.database_name(), tme.table_name());
    let num_columns = usize::try_from(tme.columns_count()).map_err(|_| DecodeError::Corrupt {
        what: "TABLE_MAP column count does not fit in memory".into(),
    })?;
    let extracted = extract(tme, num_columns)?;
    let full = extracted.names.len() == num_columns;
    let definition = if full || (definition.is_none() && allow_unnamed) {
        None
    } else {
        let definition = definition.ok_or_else(|| DecodeError::NoMetadata { table: id.clone() })?;
        if definition.columns.len() != num_columns {
            return Err(DecodeError::DefinitionMismatch {
                table: id.clone(),
                binlog: num_columns,
                information_schema: definition.columns.len(),
            });
        }
        Some(definition)
    };

    let nulls = tme.null_bitmask();
    let mut numeric = 0;
    let mut character = 0;
    let mut enum_or_set = 0;
    let (mut enums, mut sets) = (0, 0);
    let mut columns = Vec::with_capacity(num_columns);
    let mut decode = Vec::with_capacity(num_columns);
    for i in 0..num_columns {
        let (wire, meta) = wire_type(tme, i)?;
        let defined = definition.map(|d| &d.columns[i]);
        let mut unsigned = || {
            let flag = match defined {
                Some(d) => d.unsigned,
                None => extracted.unsigned.get(numeric).copied().unwrap_or(false),
            };
            numeric += 1;
            flag
        };
        let mut next_charset = |enum_set: bool| -> Result<Charset, DecodeError> {
            let from_binlog = if enum_set {
                enum_or_set += 1;
                extracted.enum_set_charsets.get(enum_or_set - 1).copied()
            } else {
                character += 1;
                extracted.charsets.get(character - 1).copied()
            };
            if let Some(name) = defined.and_then(|d| d.charset.clone()) {
                let max_len = collations.max_len_of_charset(&name);
                return Ok(Charset { name, max_len });
            }
            match from_binlog {
                Some(id) => collations
                    .charset(id)
                    .map_err(|source| DecodeError::Charset { column: i, source }),
                // Neither source knows: MySQL's default for 8.0 tables.
                None => Ok(Charset {
                    name: "utf8mb4".into(),
                    max_len: 4,
                }),
            }
        };
        let (layout, column_type, charset) = match wire {
            Wire::MYSQL_TYPE_TINY => (
                Layout::Int { bytes: 1 },
                ColumnType::TinyInt {
                    unsigned: unsigned(),
                },
                None,
            ),
            Wire::MYSQL_TYPE_SHORT => (
                Layout::Int { bytes: 2 },
                ColumnType::SmallInt {
                    unsigned: unsigned(),
                },
                None,
            ),
            Wire::MYSQL_TYPE_INT24 => (
                Layout::Int { bytes: 3 },
                ColumnType::MediumInt {
                    unsigned: unsigned(),
                },
                None,
            ),
            Wire::MYSQL_TYPE_LONG => (
                Layout::Int { bytes: 4 },
                ColumnType::Int {
                    unsigned: unsigned(),
                },
                None,
            ),
            Wire::MYSQL_TYPE_LONGLONG => (
                Layout::Int { bytes: 8 },
                ColumnType::BigInt {
                    unsigned: unsigned(),
                },
                None,
            ),
            Wire::MYSQL_TYPE_FLOAT => {
                unsigned();
                (Layout::Float, ColumnType::Float, None)
            }
            Wire::MYSQL_TYPE_DOUBLE => {
                unsigned();
                (Layout::Double, ColumnType::Double, None)
            }
            Wire::MYSQL_TYPE_NEWDECIMAL => {
                unsigned();
                let precision = meta_byte(meta, 0, i)?;
                let scale = meta_byte(meta, 1, i)?;
                if precision == 0 || precision > 65 || scale > 30 || scale > precision {
                    return Err(DecodeError::Corrupt {
                        what: format!("column {i} is DECIMAL({precision},{scale})"),
                    });
                }
                (
                    Layout::Decimal { precision, scale },
                    ColumnType::Decimal { precision, scale },
                    None,
                )
            }
            Wire::MYSQL_TYPE_DATE | Wire::MYSQL_TYPE_NEWDATE => {
                (Layout::Date, ColumnType::Date, None)
            }
            Wire::MYSQL_TYPE_TIME => (Layout::TimeV1, ColumnType::Time { fsp: 0 }, None),
            Wire::MYSQL_TYPE_TIME2 => {
                let fsp = fsp(meta, i)?;
                (Layout::Time2 { fsp }, ColumnType::Time { fsp }, None)
            }
            Wire::MYSQL_TYPE_DATETIME => {
                (Layout::DateTimeV1, ColumnType::DateTime { fsp: 0 }, None)
            }
            Wire::MYSQL_TYPE_DATETIME2 => {
                let fsp = fsp(meta, i)?;
                (
                    Layout::DateTime2 { fsp },
                    ColumnType::DateTime { fsp },
                    None,
                )
            }
            Wire::MYSQL_TYPE_TIMESTAMP => {
                (Layout::TimestampV1, ColumnType::Timestamp { fsp: 0 }, None)
            }
            Wire::MYSQL_TYPE_TIMESTAMP2 => {
                let fsp = fsp(meta, i)?;
                (
                    Layout::Timestamp2 { fsp },
                    ColumnType::Timestamp { fsp },
                    None,
                )
            }
            Wire::MYSQL_TYPE_YEAR => {
                // mysql_common counts YEAR among the numeric columns of the signedness bitmap.
                unsigned();
                (Layout::Year, ColumnType::Year, None)
            }
            Wire::MYSQL_TYPE_VARCHAR | Wire::MYSQL_TYPE_VAR_STRING => {
                let max_len = meta_u16(meta, i)?;
                let charset = next_charset(false)?;
                let prefix_bytes = if max_len < 256 { 1 } else { 2 };
                let length = u32::from(max_len);
                if charset.is_binary() {
                    (
                        Layout::String { prefix_bytes },
                        ColumnType::VarBinary { length },
                        None,
                    )
                } else {
                    let length = length / u32::from(charset.max_len.max(1));
                    (
                        Layout::String { prefix_bytes },
                        ColumnType::VarChar { length },
                        Some(charset),
                    )
                }
            }
            Wire::MYSQL_TYPE_STRING => {
                // Real type in byte 0; a length above 255 borrows two bits of it.
                let b0 = meta_byte(meta, 0, i)?;
                let b1 = meta_byte(meta, 1, i)?;
                let max_len = u16::from(b1) | (u16::from((b0 & 0x30) ^ 0x30) << 4);
                let charset = next_charset(false)?;
                let prefix_bytes = if max_len < 256 { 1 } else { 2 };
                let length = u32::from(max_len);
                if charset.is_binary() {
                    (
                        Layout::String { prefix_bytes },
                        ColumnType::Binary { length },
                        None,
                    )
                } else {
                    let length = length / u32::from(charset.max_len.max(1));
                    (
                        Layout::String { prefix_bytes },
                        ColumnType::Char { length },
                        Some(charset),
                    )
                }
            }
            Wire::MYSQL_TYPE_ENUM => {
                let bytes = meta_byte(meta, 1, i)?;
                if !(1..=2).contains(&bytes) {
                    return Err(DecodeError::Corrupt {
                        what: format!("ENUM column {i} has {bytes}-byte values"),
                    });
                }
                let charset = next_charset(true)?;
                enums += 1;
                let members = match defined {
                    Some(d) => d.members.clone(),
                    None => decode_members(
                        extracted
                            .enum_members
                            .get(enums - 1)
                            .map_or(&[][..], Vec::as_slice),
                        &charset,
                        i,
                    )?,
                };
                (
                    Layout::Enum { bytes },
                    ColumnType::Enum { members },
                    Some(charset),
                )
            }
            Wire::MYSQL_TYPE_SET => {
                let bytes = meta_byte(meta, 1, i)?;
                if !(1..=8).contains(&bytes) {
                    return Err(DecodeError::Corrupt {
                        what: format!("SET column {i} has {bytes}-byte values"),
                    });
                }
                let charset = next_charset(true)?;
                sets += 1;
                let members = match defined {
                    Some(d) => d.members.clone(),
                    None => decode_members(
                        extracted
                            .set_members
                            .get(sets - 1)
                            .map_or(&[][..], Vec::as_slice),
                        &charset,
                        i,
                    )?,
                };
                (
                    Layout::Set { bytes },
                    ColumnType::Set { members },
                    Some(charset),
                )
            }
            Wire::MYSQL_TYPE_BLOB
            | Wire::MYSQL_TYPE_TINY_BLOB
            | Wire::MYSQL_TYPE_MEDIUM_BLOB
            | Wire::MYSQL_TYPE_LONG_BLOB => {
                let (prefix_bytes, size) = lob_prefix(meta, i)?;
                let charset = next_charset(false)?;
                if charset.is_binary() {
                    (
                        Layout::Blob { prefix_bytes },
                        ColumnType::Blob { size },
                        None,
                    )
                } else {
                    (
                        Layout::Blob { prefix_bytes },
                        ColumnType::Text { size },
                        Some(charset),
                    )
                }
            }
            Wire::MYSQL_TYPE_JSON => {
                let (prefix_bytes, _) = lob_prefix(meta, i)?;
                (Layout::Json { prefix_bytes }, ColumnType::Json, None)
            }
            Wire::MYSQL_TYPE_GEOMETRY => {
                let (prefix_bytes, _) = lob_prefix(meta, i)?;
                (Layout::Blob { prefix_bytes }, ColumnType::Geometry, None)
            }
            Wire::MYSQL_TYPE_VECTOR => {
                let (prefix_bytes, _) = lob_prefix(meta, i)?;
                (
                    Layout::Blob { prefix_bytes },
                    ColumnType::Vector { dimensions: 0 },
                    None,
                )
            }
            Wire::MYSQL_TYPE_BIT => {
                let bits =
                    u16::from(meta_byte(meta, 1, i)?) * 8 + u16::from(meta_byte(meta, 0, i)?);
                let bits = u8::try_from(bits)
                    .ok()
                    .filter(|b| (1..=64).contains(b))
                    .ok_or_else(|| DecodeError::Corrupt {
                        what: format!("BIT column {i} has {bits} bits (1–64 allowed)"),
                    })?;
                (Layout::Bit { bits }, ColumnType::Bit { bits }, None)
            }
            other => {
                return Err(DecodeError::UnsupportedType {
                    table: id.clone(),
                    column: i,
                    wire_type: other as u8,
                });
            }
        };
        let name = match defined {
            Some(d) => d.name.clone(),
            None => extracted
                .names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("@{}", i + 1)),
        };
        let nullable = nulls.get(i).is_some_and(|bit| *bit);
        columns.push(ColumnSchema {
            name,
            column_type,
            nullable,
            charset: charset.as_ref().map(|c| c.name.clone()),
        });
        decode.push(ColumnDecode { layout, charset });
    }

    let key = match definition {
        Some(d) => d.key.clone(),
        None if extracted.primary_key.is_empty() => RowKey::None,
        None => {
            if let Some(&bad) = extracted.primary_key.iter().find(|&&i| i >= num_columns) {
                return Err(DecodeError::Corrupt {
                    what: format!("primary key names column {bad} of {num_columns}"),
                });
            }
            RowKey::Primary(extracted.primary_key.clone())
        }
    };
    Ok(TableMap {
        table_id: tme.table_id(),
        schema: Arc::new(TableSchema { id, columns, key }),
        columns: decode,
    })
}

#[cfg(test)]
mod tests {
    use mysql_common::binlog::BinlogCtx;
    use mysql_common::binlog::consts::{BinlogVersion, EventType};
    use mysql_common::binlog::events::FormatDescriptionEvent;
    use mysql_common::io::ParseBuf;

    use super::*;

    /// Appends a one-byte-length string (lengths here stay below 251, so this is also the
    /// length-encoded form).
    fn push_short(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(bytes);
    }

    /// An optional-metadata field: type, length, value.
    fn push_field(out: &mut Vec<u8>, field_type: u8, value: &[u8]) {
        out.push(field_type);
        push_short(out, value);
    }

    /// The body of a TABLE_MAP event, as MariaDB writes it with `binlog_row_metadata=FULL`,
    /// for `t (e ENUM('café','€uro') CHARACTER SET latin1, s SET('é','ü') CHARACTER SET
    /// latin1, u ENUM('ü') CHARACTER SET utf8mb4)`.
    fn latin1_enum_set_table_map() -> Vec<u8> {
        let mut body = vec![42, 0, 0, 0, 0, 0, 1, 0]; // table id, flags
        push_short(&mut body, b"db");
        body.push(0);
        push_short(&mut body, b"t");
        body.push(0);
        body.push(3); // columns
        body.extend_from_slice(&[254, 254, 254]); // MYSQL_TYPE_STRING, real type in metadata
        push_short(&mut body, &[0xF7, 1, 0xF8, 1, 0xF7, 1]); // ENUM, SET, ENUM; 1 byte each
        body.push(0b111); // all nullable

        let mut names = Vec::new();
        for name in [&b"e"[..], b"s", b"u"] {
            push_short(&mut names, name);
        }
        push_field(&mut body, 4, &names); // COLUMN_NAME
        let mut set_values = vec![2];
        push_short(&mut set_values, b"\xE9"); // latin1 é
        push_short(&mut set_values, b"\xFC"); // latin1 ü
        push_field(&mut body, 5, &set_values); // SET_STR_VALUE
        let mut enum_values = vec![2];
        push_short(&mut enum_values, b"caf\xE9"); // latin1 café
        push_short(&mut enum_values, b"\x80uro"); // latin1 (cp1252) €uro
        enum_values.push(1);
        push_short(&mut enum_values, "ü".as_bytes()); // utf8mb4
        push_field(&mut body, 6, &enum_values); // ENUM_STR_VALUE
        // ENUM_AND_SET_COLUMN_CHARSET: latin1_swedish_ci (8), latin1, utf8mb4_general_ci (45).
        push_field(&mut body, 11, &[8, 8, 45]);
        body
    }

    #[test]
    fn enum_and_set_members_decode_in_the_column_charset() -> Result<(), Box<dyn std::error::Error>>
    {
        let body = latin1_enum_set_table_map();
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ctx = BinlogCtx::new(body.len(), &fde, EventType::TABLE_MAP_EVENT as u8);
        let tme: TableMapEvent<'_> = ParseBuf(&body).parse(ctx)?;
        let map = build(&tme, &CollationTable::default(), None, false)?;
        let types: Vec<String> = map
            .schema
            .columns
            .iter()
            .map(|c| format!("{} {} {:?}", c.name, c.column_type, c.charset))
            .collect();
        assert_eq!(
            types,
            [
                "e enum('café','€uro') Some(\"latin1\")",
                "s set('é','ü') Some(\"latin1\")",
                "u enum('ü') Some(\"utf8mb4\")",
            ]
        );
        Ok(())
    }

    #[test]
    fn members_that_do_not_decode_are_an_error() {
        let utf8 = Charset {
            name: "utf8mb4".into(),
            max_len: 4,
        };
        assert!(matches!(
            decode_members(&[b"caf\xE9".to_vec()], &utf8, 3),
            Err(DecodeError::Charset { column: 3, .. })
        ));
        let binary = Charset {
            name: "binary".into(),
            max_len: 1,
        };
        assert_eq!(
            decode_members(&[b"ab".to_vec()], &binary, 0).ok(),
            Some(vec!["ab".to_owned()])
        );
    }
}
