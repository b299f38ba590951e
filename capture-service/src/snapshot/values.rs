//! Values read by a snapshot's SELECT (binary protocol, session time zone UTC) turned into the
//! same [`Value`]s the binlog decoder produces for the column, so a snapshot record and a
//! streamed record of one row look alike.

use mysql_async::Value as Wire;
use rowferry_shared::event::{ColumnType, Date, DateTime, Time, Timestamp, Value};

/// Why a value read from the source does not fit its column.
#[derive(Debug, thiserror::Error)]
#[error("column `{column}` ({column_type}): cannot read {found}")]
pub struct ValueError {
    column: String,
    column_type: String,
    found: String,
}

/// Converts one column value.
pub fn from_wire(wire: Wire, column: &str, column_type: &ColumnType) -> Result<Value, ValueError> {
    let bad = |found: &Wire| ValueError {
        column: column.to_owned(),
        column_type: column_type.to_string(),
        found: describe(found),
    };
    let text =
        |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|e| bad(&Wire::Bytes(e.into_bytes())));
    Ok(match (column_type, wire) {
        (_, Wire::NULL) => Value::Null,
        (
            ColumnType::TinyInt { unsigned }
            | ColumnType::SmallInt { unsigned }
            | ColumnType::MediumInt { unsigned }
            | ColumnType::Int { unsigned }
            | ColumnType::BigInt { unsigned },
            wire,
        ) => match (wire, unsigned) {
            (Wire::Int(v), false) => Value::Int(v),
            (Wire::UInt(v), false) => {
                Value::Int(i64::try_from(v).map_err(|_| bad(&Wire::UInt(v)))?)
            }
            (Wire::Int(v), true) => Value::UInt(u64::try_from(v).map_err(|_| bad(&Wire::Int(v)))?),
            (Wire::UInt(v), true) => Value::UInt(v),
            (other, _) => return Err(bad(&other)),
        },
        (ColumnType::Float, Wire::Float(f)) => Value::Float(f),
        (ColumnType::Float, Wire::Double(f)) => Value::Float(f as f32),
        (ColumnType::Double, Wire::Double(f)) => Value::Double(f),
        (ColumnType::Double, Wire::Float(f)) => Value::Double(f64::from(f)),
        (ColumnType::Decimal { .. }, Wire::Bytes(b)) => Value::Decimal(text(b)?),
        (ColumnType::Year, Wire::Int(y)) => {
            Value::Year(u16::try_from(y).map_err(|_| bad(&Wire::Int(y)))?)
        }
        (ColumnType::Year, Wire::UInt(y)) => {
            Value::Year(u16::try_from(y).map_err(|_| bad(&Wire::UInt(y)))?)
        }
        (ColumnType::Date, Wire::Date(year, month, day, ..)) => {
            Value::Date(Date { year, month, day })
        }
        (
            ColumnType::DateTime { .. },
            Wire::Date(year, month, day, hour, minute, second, micros),
        ) => Value::DateTime(DateTime {
            date: Date { year, month, day },
            hour,
            minute,
            second,
            micros,
        }),
        (
            ColumnType::Timestamp { .. },
            Wire::Date(year, month, day, hour, minute, second, micros),
        ) => {
            let date = Date { year, month, day };
            let seconds = match date.days_since_epoch() {
                // The zero timestamp is second 0, as the binlog stores it.
                None => 0,
                Some(days) => {
                    i64::from(days) * 86_400
                        + i64::from(hour) * 3600
                        + i64::from(minute) * 60
                        + i64::from(second)
                }
            };
            Value::Timestamp(Timestamp { seconds, micros })
        }
        (ColumnType::Time { .. }, Wire::Time(negative, days, hours, minutes, seconds, micros)) => {
            let hours = u16::try_from(days * 24 + u32::from(hours))
                .map_err(|_| bad(&Wire::Time(negative, days, hours, minutes, seconds, micros)))?;
            Value::Time(Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            })
        }
        (
            ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. },
            Wire::Bytes(b),
        ) => Value::Text(text(b)?),
        (
            ColumnType::Binary { .. }
            | ColumnType::VarBinary { .. }
            | ColumnType::Blob { .. }
            | ColumnType::Geometry
            | ColumnType::Vector { .. },
            Wire::Bytes(b),
        ) => Value::Bytes(b),
        (ColumnType::Enum { .. }, Wire::Bytes(b)) => Value::Enum(text(b)?),
        (ColumnType::Set { .. }, Wire::Bytes(b)) => {
            let names = text(b)?;
            Value::Set(if names.is_empty() {
                Vec::new()
            } else {
                names.split(',').map(str::to_owned).collect()
            })
        }
        (ColumnType::Bit { bits }, Wire::Bytes(b)) => {
            // The binlog keeps ⌈bits/8⌉ bytes; a SELECT returns the same.
            let want = usize::from(*bits).div_ceil(8);
            let mut bytes = b;
            if bytes.len() < want {
                let mut padded = vec![0; want - bytes.len()];
                padded.extend_from_slice(&bytes);
                bytes = padded;
            }
            Value::Bit(bytes)
        }
        (ColumnType::Json, Wire::Bytes(b)) => Value::Json(compact_json(&text(b)?)),
        (_, other) => return Err(bad(&other)),
    })
}

/// MySQL prints JSON with a space after `:` and `,`; the binlog decoder writes it compact.
/// Whitespace outside strings is dropped; keys keep their order (MySQL prints them in storage
/// order, as the binlog has them).
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

fn describe(wire: &Wire) -> String {
    match wire {
        Wire::NULL => "NULL".into(),
        Wire::Bytes(b) => format!("{} bytes", b.len()),
        Wire::Int(v) => format!("integer {v}"),
        Wire::UInt(v) => format!("unsigned integer {v}"),
        Wire::Float(v) => format!("float {v}"),
        Wire::Double(v) => format!("double {v}"),
        Wire::Date(..) => "a date".into(),
        Wire::Time(..) => "a time".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(wire: Wire, column_type: ColumnType) -> Option<Value> {
        from_wire(wire, "c", &column_type).ok()
    }

    #[test]
    fn temporal_values_match_the_binlog_forms() {
        let ts = read(
            Wire::Date(1970, 1, 2, 0, 0, 1, 500),
            ColumnType::Timestamp { fsp: 6 },
        );
        let want = Timestamp {
            seconds: 86_401,
            micros: 500,
        };
        assert_eq!(ts, Some(Value::Timestamp(want)));
        let zero = read(
            Wire::Date(0, 0, 0, 0, 0, 0, 0),
            ColumnType::Timestamp { fsp: 0 },
        );
        let want = Timestamp {
            seconds: 0,
            micros: 0,
        };
        assert_eq!(zero, Some(Value::Timestamp(want)));
        let time = read(Wire::Time(true, 1, 2, 3, 4, 5), ColumnType::Time { fsp: 6 });
        let want = Time {
            negative: true,
            hours: 26,
            minutes: 3,
            seconds: 4,
            micros: 5,
        };
        assert_eq!(time, Some(Value::Time(want)));
    }

    #[test]
    fn strings_sets_and_bits() {
        let members = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let set = read(
            Wire::Bytes(b"a,c".to_vec()),
            ColumnType::Set {
                members: members.clone(),
            },
        );
        assert_eq!(set, Some(Value::Set(vec!["a".into(), "c".into()])));
        let empty = read(Wire::Bytes(Vec::new()), ColumnType::Set { members });
        assert_eq!(empty, Some(Value::Set(Vec::new())));
        let bit = read(Wire::Bytes(vec![1]), ColumnType::Bit { bits: 12 });
        assert_eq!(bit, Some(Value::Bit(vec![0, 1])));
        let json = read(
            Wire::Bytes(br#"{"b": 1, "a": [1, 2], "s": "x \" y"}"#.to_vec()),
            ColumnType::Json,
        );
        let want = r#"{"b":1,"a":[1,2],"s":"x \" y"}"#;
        assert_eq!(json, Some(Value::Json(want.into())));
        let err = from_wire(
            Wire::Bytes(vec![0xff]),
            "c",
            &ColumnType::VarChar { length: 3 },
        )
        .err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("column `c` (varchar(3))")),
            "the error names the column and its type"
        );
    }

    #[test]
    fn unsigned_columns_keep_their_range() {
        let v = read(Wire::UInt(u64::MAX), ColumnType::BigInt { unsigned: true });
        assert_eq!(v, Some(Value::UInt(u64::MAX)));
        assert_eq!(
            read(Wire::Int(-1), ColumnType::Int { unsigned: true }),
            None
        );
    }
}
