//! Row images: the bytes of a ROWS event become typed values, one per column.
//!
//! We decode row images ourselves rather than through mysql_common's `BinlogValue` because we
//! need exact types (unsigned, DECIMAL text, TIMESTAMP as an instant, ENUM/SET names, YEAR 0,
//! negative fractional TIME) and because corrupt input must give an error, never a panic.

use mysql_async::binlog::jsonb;
use mysql_async::consts::ColumnType as Wire;
use mysql_common::io::ParseBuf;
use rowferry_shared::event::{ColumnType, Date, DateTime, Row, RowChange, Time, Timestamp, Value};

use super::DecodeError;
use super::table_map::{Layout, TableMap};

/// Reads a row image front to back; running out of bytes is a [`DecodeError::Truncated`].
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated {
            what: "row image",
            needed: n,
            left: self.buf.len().saturating_sub(self.pos),
        })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn uint_le(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn uint_be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// MySQL's length-encoded integer.
    pub(super) fn lenenc(&mut self) -> Result<u64, DecodeError> {
        match self.take(1)?[0] {
            n @ 0..=0xfa => Ok(u64::from(n)),
            0xfc => self.uint_le(2),
            0xfd => self.uint_le(3),
            0xfe => self.uint_le(8),
            other => Err(DecodeError::Corrupt {
                what: format!("length-encoded integer starts with 0x{other:02x}"),
            }),
        }
    }
}

/// The set bits of a column bitmap, as column indexes.
fn present_columns(bitmap: &[u8], num_columns: usize) -> Vec<usize> {
    (0..num_columns)
        .filter(|&i| bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect()
}

/// Which kind of ROWS event this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    /// WRITE_ROWS: after images.
    Write,
    /// UPDATE_ROWS: before and after images.
    Update,
    /// DELETE_ROWS: before images.
    Delete,
    /// PARTIAL_UPDATE_ROWS (MySQL 8 `binlog_row_value_options=PARTIAL_JSON`).
    PartialUpdate,
}

/// The parts of a ROWS event that row decoding needs.
#[derive(Debug)]
pub struct RowsBody<'a> {
    /// Which kind.
    pub kind: RowsKind,
    /// Column count as the event states it.
    pub num_columns: usize,
    /// Columns present in the before image (UPDATE, DELETE).
    pub before_columns: Option<&'a [u8]>,
    /// Columns present in the after image (WRITE, UPDATE).
    pub after_columns: Option<&'a [u8]>,
    /// The row images (inflated when the event was compressed).
    pub rows: std::borrow::Cow<'a, [u8]>,
}

/// Decodes every row of a ROWS event into row changes of `map`'s table.
pub fn decode_rows(body: &RowsBody<'_>, map: &TableMap) -> Result<Vec<RowChange>, DecodeError> {
    let num_columns = map.columns.len();
    if body.num_columns != num_columns {
        return Err(DecodeError::Corrupt {
            what: format!(
                "ROWS event for {} has {} columns, its TABLE_MAP {}",
                map.schema.id, body.num_columns, num_columns
            ),
        });
    }
    let before = body.before_columns.map(|b| present_columns(b, num_columns));
    let after = body.after_columns.map(|b| present_columns(b, num_columns));
    let mut cursor = Cursor::new(&body.rows);
    let mut changes = Vec::new();
    while !cursor.is_empty() {
        let change = match body.kind {
            RowsKind::Write => RowChange::Insert {
                after: read_image(&mut cursor, map, need(&after)?, None)?,
            },
            RowsKind::Delete => RowChange::Delete {
                before: read_image(&mut cursor, map, need(&before)?, None)?,
            },
            RowsKind::Update => {
                let old = read_image(&mut cursor, map, need(&before)?, None)?;
                let new = read_image(&mut cursor, map, need(&after)?, None)?;
                RowChange::Update {
                    before: old,
                    after: new,
                }
            }
            RowsKind::PartialUpdate => {
                let old = read_image(&mut cursor, map, need(&before)?, None)?;
                let options = cursor.lenenc()?;
                let partial = if options & 1 == 1 {
                    // One bit per JSON column of the after image: set = holds a diff.
                    let after_cols = need(&after)?;
                    let json_columns = after_cols
                        .iter()
                        .filter(|&&c| matches!(map.columns[c].layout, Layout::Json { .. }))
                        .count();
                    Some(cursor.take(json_columns.div_ceil(8))?)
                } else {
                    None
                };
                let new = read_image(
                    &mut cursor,
                    map,
                    need(&after)?,
                    partial.map(|p| (p, &old[..])),
                )?;
                RowChange::Update {
                    before: old,
                    after: new,
                }
            }
        };
        changes.push(change);
    }
    Ok(changes)
}

fn need(columns: &Option<Vec<usize>>) -> Result<&[usize], DecodeError> {
    columns.as_deref().ok_or_else(|| DecodeError::Corrupt {
        what: "ROWS event lacks a column bitmap its kind requires".into(),
    })
}

/// Reads one row image. Every column must be present: a partial (MINIMAL/NOBLOB) image cannot
/// be turned into a full row and is refused with the setting to change.
fn read_image(
    cursor: &mut Cursor<'_>,
    map: &TableMap,
    present: &[usize],
    partial_json: Option<(&[u8], &[Value])>,
) -> Result<Row, DecodeError> {
    if present.len() != map.columns.len() {
        let missing = (0..map.columns.len())
            .find(|i| !present.contains(i))
            .map(|i| map.schema.columns[i].name.clone())
            .unwrap_or_default();
        return Err(DecodeError::PartialRowImage {
            table: map.schema.id.clone(),
            column: missing,
        });
    }
    let nulls = cursor.take(present.len().div_ceil(8))?;
    let mut row = Vec::with_capacity(present.len());
    let mut json_index = 0;
    for (n, &column) in present.iter().enumerate() {
        let decode = &map.columns[column];
        let is_json = matches!(decode.layout, Layout::Json { .. });
        if nulls[n / 8] & (1 << (n % 8)) != 0 {
            if is_json {
                json_index += 1;
            }
            row.push(Value::Null);
            continue;
        }
        let schema = &map.schema.columns[column];
        let value = match (partial_json, decode.layout) {
            (Some((bits, before)), Layout::Json { prefix_bytes })
                if bits
                    .get(json_index / 8)
                    .is_some_and(|b| b & (1 << (json_index % 8)) != 0) =>
            {
                let len = cursor.uint_le(usize::from(prefix_bytes))?;
                let diff = cursor.take(to_usize(len)?)?;
                super::json_diff::apply(before.get(column), diff).map_err(|reason| {
                    DecodeError::Value {
                        table: map.schema.id.clone(),
                        column: schema.name.clone(),
                        reason,
                    }
                })?
            }
            _ => read_value(
                cursor,
                decode.layout,
                &schema.column_type,
                decode.charset.as_ref(),
            )
            .map_err(|e| e.in_column(&map.schema.id, &schema.name))?,
        };
        if is_json {
            json_index += 1;
        }
        row.push(value);
    }
    Ok(row)
}

fn to_usize(n: u64) -> Result<usize, DecodeError> {
    usize::try_from(n).map_err(|_| DecodeError::Corrupt {
        what: format!("length {n} does not fit in memory"),
    })
}

fn sign_extend(value: u64, bytes: u8) -> i64 {
    let shift = 64 - u32::from(bytes) * 8;
    ((value << shift) as i64) >> shift
}

/// Reads one non-NULL value.
fn read_value(
    cursor: &mut Cursor<'_>,
    layout: Layout,
    column_type: &ColumnType,
    charset: Option<&super::charset::Charset>,
) -> Result<Value, DecodeError> {
    let value = match layout {
        Layout::Int { bytes } => {
            let raw = cursor.uint_le(usize::from(bytes))?;
            let unsigned = matches!(
                column_type,
                ColumnType::TinyInt { unsigned: true }
                    | ColumnType::SmallInt { unsigned: true }
                    | ColumnType::MediumInt { unsigned: true }
                    | ColumnType::Int { unsigned: true }
                    | ColumnType::BigInt { unsigned: true }
            );
            if unsigned {
                Value::UInt(raw)
            } else {
                Value::Int(sign_extend(raw, bytes))
            }
        }
        Layout::Float => Value::Float(f32::from_bits(cursor.uint_le(4)? as u32)),
        Layout::Double => Value::Double(f64::from_bits(cursor.uint_le(8)?)),
        Layout::Decimal { precision, scale } => {
            Value::Decimal(read_decimal(cursor, precision, scale)?)
        }
        Layout::Date => {
            let v = cursor.uint_le(3)?;
            Value::Date(Date {
                year: (v >> 9) as u16,
                month: ((v >> 5) & 15) as u8,
                day: (v & 31) as u8,
            })
        }
        Layout::TimeV1 => {
            let v = sign_extend(cursor.uint_le(3)?, 3);
            let abs = v.unsigned_abs();
            Value::Time(Time {
                negative: v < 0,
                hours: (abs / 10_000) as u16,
                minutes: (abs / 100 % 100) as u8,
                seconds: (abs % 100) as u8,
                micros: 0,
            })
        }
        Layout::Time2 { fsp } => Value::Time(read_time2(cursor, fsp)?),
        Layout::DateTimeV1 => {
            let v = cursor.uint_le(8)?;
            let (date, time) = (v / 1_000_000, v % 1_000_000);
            Value::DateTime(DateTime {
                date: Date {
                    year: (date / 10_000) as u16,
                    month: (date / 100 % 100) as u8,
                    day: (date % 100) as u8,
                },
                hour: (time / 10_000) as u8,
                minute: (time / 100 % 100) as u8,
                second: (time % 100) as u8,
                micros: 0,
            })
        }
        Layout::DateTime2 { fsp } => {
            let int_part = cursor.uint_be(5)? as i64 - 0x80_0000_0000;
            let micros = read_fraction(cursor, fsp)?;
            let int_part = int_part.max(0) as u64;
            let ymd = int_part >> 17;
            let ym = ymd >> 5;
            let hms = int_part % (1 << 17);
            Value::DateTime(DateTime {
                date: Date {
                    year: (ym / 13) as u16,
                    month: (ym % 13) as u8,
                    day: (ymd % 32) as u8,
                },
                hour: (hms >> 12) as u8,
                minute: ((hms >> 6) % 64) as u8,
                second: (hms % 64) as u8,
                micros: micros as u32,
            })
        }
        Layout::TimestampV1 => Value::Timestamp(Timestamp {
            seconds: cursor.uint_le(4)? as i64,
            micros: 0,
        }),
        Layout::Timestamp2 { fsp } => {
            let seconds = cursor.uint_be(4)? as i64;
            let micros = read_fraction(cursor, fsp)?;
            Value::Timestamp(Timestamp {
                seconds,
                micros: micros as u32,
            })
        }
        Layout::Year => {
            let y = cursor.take(1)?[0];
            Value::Year(if y == 0 { 0 } else { 1900 + u16::from(y) })
        }
        Layout::String { prefix_bytes } => {
            let len = cursor.uint_le(usize::from(prefix_bytes))?;
            let bytes = cursor.take(to_usize(len)?)?;
            match (column_type, charset) {
                (_, Some(charset)) => Value::Text(charset.decode(bytes)?),
                (ColumnType::Binary { length }, None) => {
                    // The binlog drops BINARY's trailing zero bytes; a SELECT shows them.
                    let mut padded = bytes.to_vec();
                    let length = usize::try_from(*length).unwrap_or(usize::MAX);
                    if padded.len() < length {
                        padded.resize(length, 0);
                    }
                    Value::Bytes(padded)
                }
                _ => Value::Bytes(bytes.to_vec()),
            }
        }
        Layout::Enum { bytes } => {
            let index = cursor.uint_le(usize::from(bytes))?;
            let ColumnType::Enum { members } = column_type else {
                return Err(DecodeError::Corrupt {
                    what: "ENUM layout on a non-ENUM column".into(),
                });
            };
            match index {
                0 => Value::Enum(String::new()),
                n => Value::Enum(members.get(to_usize(n - 1)?).cloned().ok_or(
                    DecodeError::MemberOutOfRange {
                        index: n,
                        members: members.len(),
                    },
                )?),
            }
        }
        Layout::Set { bytes } => {
            let bits = cursor.uint_le(usize::from(bytes))?;
            let ColumnType::Set { members } = column_type else {
                return Err(DecodeError::Corrupt {
                    what: "SET layout on a non-SET column".into(),
                });
            };
            if members.len() < 64 && bits >> members.len() != 0 {
                return Err(DecodeError::MemberOutOfRange {
                    index: bits,
                    members: members.len(),
                });
            }
            Value::Set(
                members
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, m)| m.clone())
                    .collect(),
            )
        }
        Layout::Blob { prefix_bytes } => {
            let len = cursor.uint_le(usize::from(prefix_bytes))?;
            let bytes = cursor.take(to_usize(len)?)?;
            match (column_type, charset) {
                (ColumnType::Json, Some(charset)) => Value::Json(charset.decode(bytes)?),
                (_, Some(charset)) => Value::Text(charset.decode(bytes)?),
                _ => Value::Bytes(bytes.to_vec()),
            }
        }
        Layout::Json { prefix_bytes } => {
            let len = cursor.uint_le(usize::from(prefix_bytes))?;
            let bytes = cursor.take(to_usize(len)?)?;
            Value::Json(jsonb_to_text(bytes)?)
        }
        Layout::Bit { bits } => Value::Bit(cursor.take(usize::from(bits).div_ceil(8))?.to_vec()),
    };
    Ok(value)
}

/// The fractional-second part of TIME2/DATETIME2/TIMESTAMP2, in microseconds.
fn read_fraction(cursor: &mut Cursor<'_>, fsp: u8) -> Result<u64, DecodeError> {
    Ok(match fsp {
        0 => 0,
        1 | 2 => cursor.uint_be(1)? * 10_000,
        3 | 4 => cursor.uint_be(2)? * 100,
        _ => cursor.uint_be(3)?,
    })
}

/// TIME2: a signed 24-bit packed hour/minute/second plus a fraction whose sign follows the
/// integer part. Everything is done in i64, so negative fractional times cannot underflow.
///
/// For TIME(1–4) the fraction is stored as an *unsigned* byte (or big-endian 16-bit word): a
/// negative time keeps the integer part rounded down and stores `0x100 - hundredths`
/// (`0x10000 - ten-thousandths`), so that the bytes sort like the values. `-00:00:01.5` in
/// TIME(1) is `7F FF FE CE`: integer part -2, fraction 0x100 - 0xCE = 50 hundredths back up
/// from -2 s. Reading the fraction as signed would count the borrow twice.
fn read_time2(cursor: &mut Cursor<'_>, fsp: u8) -> Result<Time, DecodeError> {
    const INT_OFFSET: i64 = 0x80_0000;
    let packed: i64 = match fsp {
        0 => (cursor.uint_be(3)? as i64 - INT_OFFSET) << 24,
        1 | 2 => {
            let mut int_part = cursor.uint_be(3)? as i64 - INT_OFFSET;
            let mut frac = cursor.uint_be(1)? as i64;
            if int_part < 0 && frac != 0 {
                int_part += 1;
                frac -= 0x100;
            }
            (int_part << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int_part = cursor.uint_be(3)? as i64 - INT_OFFSET;
            let mut frac = cursor.uint_be(2)? as i64;
            if int_part < 0 && frac != 0 {
                int_part += 1;
                frac -= 0x10000;
            }
            (int_part << 24) + frac * 100
        }
        _ => cursor.uint_be(6)? as i64 - 0x8000_0000_0000,
    };
    let negative = packed < 0;
    let packed = packed.unsigned_abs();
    let hms = packed >> 24;
    Ok(Time {
        negative,
        hours: ((hms >> 12) % (1 << 10)) as u16,
        minutes: ((hms >> 6) % 64) as u8,
        seconds: (hms % 64) as u8,
        micros: (packed % (1 << 24)) as u32,
    })
}

/// Bytes per group of leading/trailing decimal digits (MySQL's dig2bytes).
const DIGIT_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// MySQL's binary DECIMAL as exact text with `scale` fraction digits.
pub(super) fn read_decimal(
    cursor: &mut Cursor<'_>,
    precision: u8,
    scale: u8,
) -> Result<String, DecodeError> {
    let (precision, scale) = (usize::from(precision), usize::from(scale));
    let intg = precision.saturating_sub(scale);
    let (intg_full, intg_rest) = (intg / 9, intg % 9);
    let (frac_full, frac_rest) = (scale / 9, scale % 9);
    let size = DIGIT_BYTES[intg_rest] + intg_full * 4 + frac_full * 4 + DIGIT_BYTES[frac_rest];
    let mut bytes = cursor.take(size)?.to_vec();
    let Some(first) = bytes.first_mut() else {
        return Ok("0".into());
    };
    // The sign bit is stored inverted; negative numbers have every bit inverted.
    let negative = *first & 0x80 == 0;
    *first ^= 0x80;
    if negative {
        bytes.iter_mut().for_each(|b| *b = !*b);
    }
    let mut groups = Cursor::new(&bytes);
    let mut int_digits = String::new();
    if intg_rest > 0 {
        let v = groups.uint_be(DIGIT_BYTES[intg_rest])?;
        int_digits.push_str(&v.to_string());
    }
    for _ in 0..intg_full {
        let v = groups.uint_be(4)?;
        int_digits.push_str(&format!("{v:09}"));
    }
    let int_digits = int_digits.trim_start_matches('0');
    let mut text = String::with_capacity(precision + 2);
    let mut frac_digits = String::with_capacity(scale);
    for _ in 0..frac_full {
        frac_digits.push_str(&format!("{:09}", groups.uint_be(4)?));
    }
    if frac_rest > 0 {
        let v = groups.uint_be(DIGIT_BYTES[frac_rest])?;
        frac_digits.push_str(&format!("{v:0width$}", width = frac_rest));
    }
    let is_zero = int_digits.is_empty() && frac_digits.bytes().all(|b| b == b'0');
    if negative && !is_zero {
        text.push('-');
    }
    text.push_str(if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    });
    if scale > 0 {
        text.push('.');
        text.push_str(&frac_digits);
    }
    Ok(text)
}

/// MySQL's binary JSON as compact JSON text, keys in storage order (as MySQL prints them).
pub(super) fn jsonb_to_text(bytes: &[u8]) -> Result<String, DecodeError> {
    let value: jsonb::Value<'_> = ParseBuf(bytes)
        .parse(())
        .map_err(|e| DecodeError::Corrupt {
            what: format!("binary JSON: {e}"),
        })?;
    let mut out = String::with_capacity(bytes.len() + 16);
    write_jsonb(&value, &mut out, 0)?;
    Ok(out)
}

/// Nesting limit, as MySQL's (100), so corrupt input cannot exhaust the stack.
const MAX_JSON_DEPTH: usize = 100;

fn write_jsonb(
    value: &jsonb::Value<'_>,
    out: &mut String,
    depth: usize,
) -> Result<(), DecodeError> {
    use std::fmt::Write;
    if depth > MAX_JSON_DEPTH {
        return Err(DecodeError::Corrupt {
            what: "binary JSON nests deeper than 100".into(),
        });
    }
    let corrupt = |e: std::io::Error| DecodeError::Corrupt {
        what: format!("binary JSON: {e}"),
    };
    match value {
        jsonb::Value::Null => out.push_str("null"),
        jsonb::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        jsonb::Value::I16(n) => {
            let _ = write!(out, "{n}");
        }
        jsonb::Value::U16(n) => {
            let _ = write!(out, "{n}");
        }
        jsonb::Value::I32(n) => {
            let _ = write!(out, "{n}");
        }
        jsonb::Value::U32(n) => {
            let _ = write!(out, "{n}");
        }
        jsonb::Value::I64(n) => {
            let _ = write!(out, "{n}");
        }
        jsonb::Value::U64(n) => {
            let _ = write!(out, "{n}");
        }
        jsonb::Value::F64(n) => match serde_json::Number::from_f64(*n) {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.push_str("null"),
        },
        jsonb::Value::String(s) => push_json_string(out, &s.str()),
        jsonb::Value::SmallArray(a) => write_array(a.iter(), out, depth, corrupt)?,
        jsonb::Value::LargeArray(a) => write_array(a.iter(), out, depth, corrupt)?,
        jsonb::Value::SmallObject(o) => write_object(o.iter(), out, depth, corrupt)?,
        jsonb::Value::LargeObject(o) => write_object(o.iter(), out, depth, corrupt)?,
        jsonb::Value::Opaque(opaque) => write_opaque(opaque.value_type(), opaque.data_raw(), out)?,
    }
    Ok(())
}

fn write_array<'a>(
    items: impl Iterator<Item = std::io::Result<jsonb::Value<'a>>>,
    out: &mut String,
    depth: usize,
    corrupt: impl Fn(std::io::Error) -> DecodeError,
) -> Result<(), DecodeError> {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_jsonb(&item.map_err(&corrupt)?, out, depth + 1)?;
    }
    out.push(']');
    Ok(())
}

fn write_object<'a>(
    entries: impl Iterator<Item = std::io::Result<(jsonb::ObjectKey<'a>, jsonb::Value<'a>)>>,
    out: &mut String,
    depth: usize,
    corrupt: impl Fn(std::io::Error) -> DecodeError,
) -> Result<(), DecodeError> {
    out.push('{');
    for (i, entry) in entries.enumerate() {
        let (key, value) = entry.map_err(&corrupt)?;
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, &key.value());
        out.push(':');
        write_jsonb(&value, out, depth + 1)?;
    }
    out.push('}');
    Ok(())
}

/// DECIMAL and temporal values inside JSON are "opaque": print them as MySQL does.
fn write_opaque(wire: Wire, data: &[u8], out: &mut String) -> Result<(), DecodeError> {
    match wire {
        Wire::MYSQL_TYPE_NEWDECIMAL => {
            let (&precision, rest) = data.split_first().ok_or(DecodeError::Corrupt {
                what: "binary JSON decimal without precision".into(),
            })?;
            let (&scale, rest) = rest.split_first().ok_or(DecodeError::Corrupt {
                what: "binary JSON decimal without scale".into(),
            })?;
            if precision == 0 || precision > 65 || scale > 30 || scale > precision {
                return Err(DecodeError::Corrupt {
                    what: "binary JSON decimal precision".into(),
                });
            }
            out.push_str(&read_decimal(&mut Cursor::new(rest), precision, scale)?);
        }
        Wire::MYSQL_TYPE_DATE
        | Wire::MYSQL_TYPE_TIME
        | Wire::MYSQL_TYPE_DATETIME
        | Wire::MYSQL_TYPE_TIMESTAMP => {
            let packed = Cursor::new(data).uint_le(8)? as i64;
            push_json_string(out, &packed_temporal_text(wire, packed));
        }
        other => {
            // Same form as MySQL's JSON_QUOTE of opaque data: base64 with the type number.
            use base64::Engine;
            let text = format!(
                "base64:type{}:{}",
                other as u8,
                base64::engine::general_purpose::STANDARD.encode(data)
            );
            push_json_string(out, &text);
        }
    }
    Ok(())
}

/// MySQL's in-memory packed temporal (as stored in binary JSON) as its SQL text.
fn packed_temporal_text(wire: Wire, packed: i64) -> String {
    let negative = packed < 0;
    let packed = packed.unsigned_abs();
    let micros = packed % (1 << 24);
    let int_part = packed >> 24;
    if wire == Wire::MYSQL_TYPE_TIME {
        let (h, m, s) = (
            (int_part >> 12) % (1 << 10),
            (int_part >> 6) % 64,
            int_part % 64,
        );
        let sign = if negative { "-" } else { "" };
        return format!("{sign}{h:02}:{m:02}:{s:02}.{micros:06}");
    }
    let ymd = int_part >> 17;
    let ym = ymd >> 5;
    let hms = int_part % (1 << 17);
    let date = format!("{:04}-{:02}-{:02}", ym / 13, ym % 13, ymd % 32);
    if wire == Wire::MYSQL_TYPE_DATE {
        return date;
    }
    format!(
        "{date} {:02}:{:02}:{:02}.{micros:06}",
        hms >> 12,
        (hms >> 6) % 64,
        hms % 64
    )
}

/// Appends `s` as a JSON string literal.
pub(super) fn push_json_string(out: &mut String, s: &str) {
    // serde_json's escaper never fails on a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(bytes: &[u8], precision: u8, scale: u8) -> String {
        read_decimal(&mut Cursor::new(bytes), precision, scale).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn decimals_decode_exactly() {
        // DECIMAL(4,2) 12.34: int group 1 byte (12), frac group 1 byte (34), sign bit flipped.
        assert_eq!(decimal(&[0x80 | 12, 34], 4, 2), "12.34");
        assert_eq!(decimal(&[!(0x80u8 | 12), !34], 4, 2), "-12.34");
        assert_eq!(decimal(&[0x80, 0], 4, 2), "0.00");
        assert_eq!(decimal(&[0x80, 1], 4, 2), "0.01");
    }

    #[test]
    fn time2_decodes_hours_minutes_seconds_and_fraction() {
        // 838:59:59.000001 as TIME(6): packed (hms << 24 | micros) + 0x800000000000.
        let hms: i64 = (838 << 12) | (59 << 6) | 59;
        let packed = ((hms << 24) | 1) + 0x8000_0000_0000;
        let bytes = packed.to_be_bytes();
        let time = read_time2(&mut Cursor::new(&bytes[2..]), 6).ok();
        assert_eq!(
            time,
            Some(Time {
                negative: false,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 1
            })
        );
    }

    fn time2(bytes: &[u8], fsp: u8) -> Option<i64> {
        read_time2(&mut Cursor::new(bytes), fsp)
            .ok()
            .map(|t| t.total_micros())
    }

    #[test]
    fn time2_decodes_negative_fractions() {
        // MySQL's own table of TIME(2) disk values (my_time.c, my_time_packed_from_binary).
        assert_eq!(time2(&[0x80, 0x00, 0x00, 0x00], 2), Some(0));
        assert_eq!(time2(&[0x7F, 0xFF, 0xFF, 0xFF], 2), Some(-10_000));
        assert_eq!(time2(&[0x7F, 0xFF, 0xFF, 0x9D], 2), Some(-990_000));
        assert_eq!(time2(&[0x7F, 0xFF, 0xFF, 0x00], 2), Some(-1_000_000));
        assert_eq!(time2(&[0x7F, 0xFF, 0xFE, 0xFF], 2), Some(-1_010_000));
        assert_eq!(time2(&[0x7F, 0xFF, 0xFE, 0xF6], 2), Some(-1_100_000));
        // -00:00:01.5 in TIME(1), -838:59:59.99 and -01:02:03.04 in TIME(2), as MariaDB wrote
        // them.
        assert_eq!(time2(&[0x7F, 0xFF, 0xFE, 0xCE], 1), Some(-1_500_000));
        assert_eq!(
            time2(&[0x4B, 0x91, 0x04, 0x9D], 2),
            Some(-3_020_399_990_000)
        );
        assert_eq!(time2(&[0x7F, 0xEF, 0x7C, 0xFC], 2), Some(-3_723_040_000));
        // TIME(3): -00:00:00.001 and 12:34:56.789.
        assert_eq!(time2(&[0x7F, 0xFF, 0xFF, 0xFF, 0xF6], 3), Some(-1_000));
        assert_eq!(
            time2(&[0x80, 0xC8, 0xB8, 0x1E, 0xD2], 3),
            Some(45_296_789_000)
        );
        let half = read_time2(&mut Cursor::new(&[0x7F, 0xFF, 0xFE, 0xCE]), 1).ok();
        assert_eq!(
            half,
            Some(Time {
                negative: true,
                hours: 0,
                minutes: 0,
                seconds: 1,
                micros: 500_000
            })
        );
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut cursor = Cursor::new(&[1, 2]);
        assert!(matches!(cursor.take(3), Err(DecodeError::Truncated { .. })));
    }
}
