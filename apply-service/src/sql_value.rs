//! Values written back as SQL literals, exactly.
//!
//! Apply sessions run with `NO_BACKSLASH_ESCAPES` and `time_zone = '+00:00'` (see
//! `target::session`), so a string literal only needs its quotes doubled and TIMESTAMP values
//! are written in UTC. Binary data goes as hex literals, numbers in a form that reads back to
//! the same value.
//!
//! Debezium JSON is lossy in a few places; the target column type repairs what it can:
//! BIGINT UNSIGNED above 2^63-1 arrives negative in Debezium's `long` mode, YEAR 0000 arrives
//! as 1900.

use std::fmt::Write;

use rowferry_shared::event::{ColumnType, Date, DateTime, Time, Value};

/// A value that cannot be written to its column.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The value cannot be a SQL literal (NaN, a malformed decimal).
    #[error("column `{column}`: {reason}")]
    Invalid { column: String, reason: String },
}

/// Appends `value` as a literal for a column of type `target`.
pub fn push_literal(
    out: &mut String,
    value: &Value,
    target: &ColumnType,
    column: &str,
) -> Result<(), ValueError> {
    let invalid = |reason: String| ValueError::Invalid {
        column: column.to_owned(),
        reason,
    };
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Int(v) => match target {
            // Debezium's `long` mode writes BIGINT UNSIGNED above i64::MAX as its bits.
            ColumnType::BigInt { unsigned: true } if *v < 0 => push_display(out, *v as u64),
            _ => push_display(out, v),
        },
        Value::UInt(v) => push_display(out, v),
        Value::Float(v) => {
            if !v.is_finite() {
                return Err(invalid(format!("{v} has no SQL value")));
            }
            // The f32's exact value as a double: MySQL reads the literal as a DOUBLE and
            // narrows it to FLOAT, which gives back this f32 (the f32's own shortest digits
            // can read as a double just above FLT_MAX and be refused). The exponent form
            // makes MySQL read an approximate value, not a DECIMAL.
            let _ = write!(out, "{:e}", f64::from(*v));
        }
        Value::Double(v) => {
            if !v.is_finite() {
                return Err(invalid(format!("{v} has no SQL value")));
            }
            let _ = write!(out, "{v:e}");
        }
        Value::Decimal(text) => {
            if !is_decimal(text) {
                return Err(invalid(format!("{text:?} is not a decimal number")));
            }
            out.push_str(text);
        }
        Value::Text(text) | Value::Json(text) | Value::Enum(text) => push_string(out, text),
        Value::Set(members) => push_string(out, &members.join(",")),
        Value::Bytes(bytes) => push_hex(out, bytes),
        Value::Bit(bytes) => {
            if bytes.len() > 8 {
                return Err(invalid(format!("BIT value of {} bytes", bytes.len())));
            }
            let number = bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            push_display(out, number);
        }
        Value::Year(year) => {
            // Debezium reads the binlog's YEAR 0000 as 1900, which no YEAR column can hold.
            push_display(out, if *year == 1900 { 0 } else { *year });
        }
        Value::Date(date) => {
            out.push('\'');
            push_date(out, date);
            out.push('\'');
        }
        Value::DateTime(datetime) => {
            out.push('\'');
            push_datetime(out, datetime);
            out.push('\'');
        }
        Value::Timestamp(ts) => {
            out.push('\'');
            if ts.seconds == 0 && ts.micros == 0 {
                // The zero TIMESTAMP ('0000-00-00 00:00:00'), not the epoch: 1970-01-01
                // 00:00:00 UTC is outside TIMESTAMP's range.
                out.push_str("0000-00-00 00:00:00");
            } else {
                let utc = ts.to_utc().ok_or_else(|| {
                    invalid(format!("TIMESTAMP {} s is out of range", ts.seconds))
                })?;
                push_datetime(out, &utc);
            }
            out.push('\'');
        }
        Value::Time(time) => {
            out.push('\'');
            push_time(out, time);
            out.push('\'');
        }
    }
    Ok(())
}

/// `[+-]digits[.digits]` (or `.digits`): exact DECIMAL text, nothing MySQL would read as a
/// DOUBLE or an expression.
fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction)
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    let _ = write!(out, "{value}");
}

/// A string literal for a session with `NO_BACKSLASH_ESCAPES`: only quotes are special.
pub fn push_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('\'');
    for (i, part) in text.split('\'').enumerate() {
        if i > 0 {
            out.push_str("''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out.push('\'');
}

fn push_date(out: &mut String, date: &Date) {
    let _ = write!(out, "{:04}-{:02}-{:02}", date.year, date.month, date.day);
}

fn push_datetime(out: &mut String, dt: &DateTime) {
    push_date(out, &dt.date);
    let _ = write!(out, " {:02}:{:02}:{:02}", dt.hour, dt.minute, dt.second);
    push_fraction(out, dt.micros);
}

fn push_time(out: &mut String, time: &Time) {
    if time.negative {
        out.push('-');
    }
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        time.hours, time.minutes, time.seconds
    );
    push_fraction(out, time.micros);
}

fn push_fraction(out: &mut String, micros: u32) {
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rowferry_shared::event::Timestamp;

    fn literal(value: Value, target: ColumnType) -> anyhow::Result<String> {
        let mut out = String::new();
        push_literal(&mut out, &value, &target, "c")?;
        Ok(out)
    }

    #[test]
    fn strings_double_their_quotes_only() -> anyhow::Result<()> {
        let text = ColumnType::VarChar { length: 10 };
        assert_eq!(
            literal(Value::Text("it's a \\ test\0".into()), text.clone())?,
            "'it''s a \\ test\0'"
        );
        assert_eq!(
            literal(Value::Set(vec!["a".into(), "b".into()]), text)?,
            "'a,b'"
        );
        Ok(())
    }

    #[test]
    fn numbers_read_back_exactly() -> anyhow::Result<()> {
        let bigint_unsigned = ColumnType::BigInt { unsigned: true };
        assert_eq!(
            literal(Value::Int(-1), bigint_unsigned)?,
            "18446744073709551615"
        );
        assert_eq!(
            literal(Value::Int(-1), ColumnType::BigInt { unsigned: false })?,
            "-1"
        );
        assert_eq!(
            literal(Value::Float(0.1), ColumnType::Float)?,
            "1.0000000149011612e-1"
        );
        assert_eq!(
            literal(Value::Float(f32::MAX), ColumnType::Float)?,
            "3.4028234663852886e38"
        );
        assert_eq!(
            literal(Value::Double(1.7976931348623157e308), ColumnType::Double)?,
            "1.7976931348623157e308"
        );
        assert!(literal(Value::Double(f64::NAN), ColumnType::Double).is_err());
        let decimal = ColumnType::Decimal {
            precision: 10,
            scale: 2,
        };
        assert_eq!(
            literal(Value::Decimal("-12.30".into()), decimal.clone())?,
            "-12.30"
        );
        assert!(literal(Value::Decimal("1); DROP TABLE t".into()), decimal.clone()).is_err());
        for bad in ["1-2", "1e5", "", "-", ".", "1.2.3"] {
            assert!(
                literal(Value::Decimal(bad.into()), decimal.clone()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(literal(Value::Decimal("+.5".into()), decimal)?, "+.5");
        assert_eq!(
            literal(Value::Bit(vec![0x01, 0xff]), ColumnType::Bit { bits: 12 })?,
            "511"
        );
        assert_eq!(literal(Value::Year(1900), ColumnType::Year)?, "0");
        Ok(())
    }

    #[test]
    fn temporal_values_keep_their_fractions() -> anyhow::Result<()> {
        let datetime = DateTime {
            date: Date {
                year: 2024,
                month: 2,
                day: 29,
            },
            hour: 23,
            minute: 59,
            second: 58,
            micros: 120,
        };
        assert_eq!(
            literal(Value::DateTime(datetime), ColumnType::DateTime { fsp: 6 })?,
            "'2024-02-29 23:59:58.000120'"
        );
        let time = Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
        };
        assert_eq!(
            literal(Value::Time(time), ColumnType::Time { fsp: 0 })?,
            "'-838:59:59'"
        );
        let ts = Timestamp {
            seconds: 1,
            micros: 500_000,
        };
        assert_eq!(
            literal(Value::Timestamp(ts), ColumnType::Timestamp { fsp: 1 })?,
            "'1970-01-01 00:00:01.500000'"
        );
        let zero = Timestamp {
            seconds: 0,
            micros: 0,
        };
        assert_eq!(
            literal(Value::Timestamp(zero), ColumnType::Timestamp { fsp: 0 })?,
            "'0000-00-00 00:00:00'"
        );
        assert_eq!(
            literal(
                Value::Bytes(vec![0, 0xab]),
                ColumnType::VarBinary { length: 2 }
            )?,
            "X'00AB'"
        );
        Ok(())
    }
}
