//! Typed SQL values, as a source row holds them.
//!
//! Values keep what the source stored, without a target format's interpretation: a DATETIME is
//! its calendar fields (no time zone), a zero date stays a zero date, a DECIMAL is its exact
//! text. Codecs decide how each is written (Debezium's days/epoch numbers, protobuf fields).

use std::fmt;

/// One column's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A signed integer column (TINYINT … BIGINT).
    Int(i64),
    /// An unsigned integer column (TINYINT UNSIGNED … BIGINT UNSIGNED).
    UInt(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DECIMAL, as exact decimal text with the column's scale (`-12.3400`).
    Decimal(String),
    /// Character data (CHAR, VARCHAR, TEXT), decoded from the column charset.
    Text(String),
    /// Binary data (BINARY, VARBINARY, BLOB), and GEOMETRY's internal form (SRID + WKB).
    Bytes(Vec<u8>),
    /// DATE.
    Date(Date),
    /// TIME.
    Time(Time),
    /// DATETIME, as written (no time zone).
    DateTime(DateTime),
    /// TIMESTAMP, in UTC.
    Timestamp(Timestamp),
    /// YEAR; 0 is the zero year.
    Year(u16),
    /// ENUM, as the member's name; the empty string for the invalid value (index 0).
    Enum(String),
    /// SET, as its members' names in definition order.
    Set(Vec<String>),
    /// BIT(n), as ⌈n/8⌉ bytes, most significant first (as MySQL stores `b'…'`).
    Bit(Vec<u8>),
    /// JSON, as compact JSON text.
    Json(String),
}

/// A DATE; MySQL allows zero parts (`0000-00-00`, `2024-00-10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// 0–9999.
    pub year: u16,
    /// 0–12.
    pub month: u8,
    /// 0–31.
    pub day: u8,
}

/// A TIME: a signed duration up to ±838:59:59.999999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time {
    /// Whether the duration is negative.
    pub negative: bool,
    /// 0–838.
    pub hours: u16,
    /// 0–59.
    pub minutes: u8,
    /// 0–59.
    pub seconds: u8,
    /// 0–999999.
    pub micros: u32,
}

/// A DATETIME: calendar date and wall-clock time, no time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// The date part (may have zero parts).
    pub date: Date,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
    /// 0–999999.
    pub micros: u32,
}

/// A TIMESTAMP: an instant, seconds and microseconds since the Unix epoch (UTC).
///
/// The zero timestamp `0000-00-00 00:00:00` is stored as second 0, exactly like the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 00:00:00 UTC.
    pub seconds: i64,
    /// 0–999999.
    pub micros: u32,
}

const DAYS_0000_TO_1970: i64 = 719_468;

impl Date {
    /// Whether any part is zero (MySQL's zero or partly zero dates).
    pub fn has_zero_part(&self) -> bool {
        self.year == 0 || self.month == 0 || self.day == 0
    }

    /// Days since 1970-01-01, or `None` for a zero or impossible date.
    pub fn days_since_epoch(&self) -> Option<i32> {
        if self.has_zero_part()
            || self.month > 12
            || self.day > days_in_month(self.year, self.month)
        {
            return None;
        }
        // Proleptic Gregorian day count (H. Hinnant's days_from_civil).
        let (y, m, d) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        i32::try_from(era * 146_097 + doe - DAYS_0000_TO_1970).ok()
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days_since_epoch(days: i32) -> Option<Date> {
        let z = i64::from(days) + DAYS_0000_TO_1970;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Some(Date {
            year: u16::try_from(year).ok().filter(|y| *y <= 9999)?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
        })
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl Time {
    /// The signed duration in microseconds.
    pub fn total_micros(&self) -> i64 {
        let magnitude = ((i64::from(self.hours) * 60 + i64::from(self.minutes)) * 60
            + i64::from(self.seconds))
            * 1_000_000
            + i64::from(self.micros);
        if self.negative { -magnitude } else { magnitude }
    }

    /// The TIME of a signed duration in microseconds.
    pub fn from_total_micros(total: i64) -> Time {
        let magnitude = total.unsigned_abs();
        let seconds = magnitude / 1_000_000;
        Time {
            negative: total < 0,
            hours: u16::try_from(seconds / 3600).unwrap_or(u16::MAX),
            minutes: ((seconds / 60) % 60) as u8,
            seconds: (seconds % 60) as u8,
            micros: (magnitude % 1_000_000) as u32,
        }
    }
}

impl DateTime {
    /// Microseconds since 1970-01-01 00:00:00 of this wall-clock time read as UTC, or `None`
    /// for a zero or impossible date.
    pub fn epoch_micros(&self) -> Option<i64> {
        let days = i64::from(self.date.days_since_epoch()?);
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(seconds * 1_000_000 + i64::from(self.micros))
    }

    /// The wall-clock time `micros` after 1970-01-01 00:00:00.
    pub fn from_epoch_micros(micros: i64) -> Option<DateTime> {
        let seconds = micros.div_euclid(1_000_000);
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        Some(DateTime {
            date: Date::from_days_since_epoch(i32::try_from(days).ok()?)?,
            hour: (in_day / 3600) as u8,
            minute: ((in_day / 60) % 60) as u8,
            second: (in_day % 60) as u8,
            micros: micros.rem_euclid(1_000_000) as u32,
        })
    }
}

impl Timestamp {
    /// Microseconds since the Unix epoch.
    pub fn epoch_micros(&self) -> i64 {
        self.seconds * 1_000_000 + i64::from(self.micros)
    }

    /// The UTC calendar time of this instant.
    pub fn to_utc(&self) -> Option<DateTime> {
        DateTime::from_epoch_micros(self.epoch_micros())
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(
            f,
            "{sign}{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}:{:02}",
            self.date, self.hour, self.minute, self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn days_since_epoch_matches_known_dates() {
        for (d, days) in [
            (date(1970, 1, 1), 0),
            (date(2024, 3, 15), 19_797),
            (date(2024, 2, 29), 19_782),
            (date(1969, 12, 31), -1),
            (date(1, 1, 1), -719_162),
            (date(9999, 12, 31), 2_932_896),
        ] {
            assert_eq!(d.days_since_epoch(), Some(days), "{d}");
            assert_eq!(Date::from_days_since_epoch(days), Some(d), "{days}");
        }
    }

    #[test]
    fn zero_and_impossible_dates_have_no_day_number() {
        for d in [
            date(0, 0, 0),
            date(2024, 0, 1),
            date(2024, 1, 0),
            date(2023, 2, 29),
            date(2024, 13, 1),
        ] {
            assert_eq!(d.days_since_epoch(), None, "{d}");
        }
    }

    #[test]
    fn time_micros_round_trip_with_sign() {
        let t = Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 0,
        };
        assert_eq!(t.total_micros(), -3_020_399_000_000);
        assert_eq!(Time::from_total_micros(t.total_micros()), t);
        let half = Time {
            negative: true,
            hours: 0,
            minutes: 0,
            seconds: 0,
            micros: 500_000,
        };
        assert_eq!(half.total_micros(), -500_000);
        assert_eq!(half.to_string(), "-00:00:00.500000");
    }

    #[test]
    fn datetime_epoch_micros_round_trip() {
        let dt = DateTime {
            date: date(2024, 3, 15),
            hour: 12,
            minute: 34,
            second: 56,
            micros: 123_456,
        };
        assert_eq!(dt.epoch_micros(), Some(1_710_506_096_123_456));
        assert_eq!(DateTime::from_epoch_micros(1_710_506_096_123_456), Some(dt));
        let before = DateTime {
            date: date(1969, 12, 31),
            hour: 23,
            minute: 59,
            second: 59,
            micros: 999_999,
        };
        assert_eq!(before.epoch_micros(), Some(-1));
        assert_eq!(DateTime::from_epoch_micros(-1), Some(before));
    }
}
