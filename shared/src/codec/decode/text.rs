//! Small text readers the decoders share: base64, ISO-8601 instants, MySQL date text and
//! Debezium's escaped ENUM/SET members. None of them panics on any input.

use crate::event::{Date, DateTime, Timestamp};

/// Standard base64 (with or without `=` padding), as Kafka Connect writes bytes.
pub(super) fn base64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in trimmed.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot encode a byte.
    (trimmed.len() % 4 != 1).then_some(out)
}

/// A fixed-width run of ASCII digits.
fn number(text: &str, from: usize, width: usize) -> Option<u32> {
    let digits = text.get(from..from + width)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `YYYY-MM-DD`, zero parts allowed (MySQL's zero dates).
pub(super) fn date(text: &str) -> Option<Date> {
    if text.len() != 10 || text.get(4..5)? != "-" || text.get(7..8)? != "-" {
        return None;
    }
    let date = Date {
        year: u16::try_from(number(text, 0, 4)?).ok()?,
        month: u8::try_from(number(text, 5, 2)?).ok()?,
        day: u8::try_from(number(text, 8, 2)?).ok()?,
    };
    (date.month <= 12 && date.day <= 31).then_some(date)
}

/// `YYYY-MM-DD?HH:MM:SS[.f…]` with `separator` between date and time; returns the rest.
fn datetime_prefix<'t>(text: &'t str, separator: &str) -> Option<(DateTime, &'t str)> {
    let date = date(text.get(..10)?)?;
    if text.get(10..11)? != separator || text.get(13..14)? != ":" || text.get(16..17)? != ":" {
        return None;
    }
    let (hour, minute, second) = (
        number(text, 11, 2)?,
        number(text, 14, 2)?,
        number(text, 17, 2)?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let mut value: u32 = fraction.get(..digits)?.parse().ok()?;
        for _ in digits..6 {
            value *= 10;
        }
        for _ in 6..digits {
            value /= 10;
        }
        micros = value;
        rest = fraction.get(digits..)?;
    }
    let datetime = DateTime {
        date,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        micros,
    };
    Some((datetime, rest))
}

/// MySQL's DATETIME text, `YYYY-MM-DD HH:MM:SS[.ffffff]`, zero parts allowed.
pub(super) fn datetime(text: &str) -> Option<DateTime> {
    match datetime_prefix(text, " ")? {
        (datetime, "") => Some(datetime),
        _ => None,
    }
}

/// An ISO-8601 instant as Debezium's `ZonedTimestamp` writes it:
/// `YYYY-MM-DDTHH:MM:SS[.f…]` then `Z` or an offset `±HH:MM`; converted to UTC.
pub(super) fn zoned_timestamp(text: &str) -> Option<Timestamp> {
    let (local, zone) = datetime_prefix(text, "T")?;
    let offset_seconds = match zone {
        "Z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if zone.len() != 6 || zone.get(3..4)? != ":" {
                return None;
            }
            let (hours, minutes) = (number(zone, 1, 2)?, number(zone, 4, 2)?);
            if hours > 18 || minutes > 59 {
                return None;
            }
            sign * i64::from(hours * 3600 + minutes * 60)
        }
    };
    let micros = local.epoch_micros()? - offset_seconds * 1_000_000;
    Some(Timestamp {
        seconds: micros.div_euclid(1_000_000),
        micros: micros.rem_euclid(1_000_000) as u32,
    })
}

/// An ENUM member as Debezium writes it, with `\,` for a comma.
pub(super) fn member(text: &str) -> String {
    text.replace("\\,", ",")
}

/// SET members as Debezium writes them: joined by `,`, with `\,` for a comma inside a member.
/// The empty string is the empty set.
pub(super) fn members(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut members = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            ',' => members.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    members.push(current);
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_base64() {
        assert_eq!(base64("AQIAAA=="), Some(vec![1, 2, 0, 0]));
        assert_eq!(base64("/wA="), Some(vec![0xFF, 0]));
        assert_eq!(base64("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(base64(""), Some(Vec::new()));
        assert_eq!(base64("A"), None);
        assert_eq!(base64("A==="), None);
        assert_eq!(base64("a b="), None);
    }

    #[test]
    fn reads_zoned_timestamps() {
        let ts = |seconds, micros| Some(Timestamp { seconds, micros });
        assert_eq!(
            zoned_timestamp("2024-01-02T03:04:05Z"),
            ts(1_704_164_645, 0)
        );
        assert_eq!(
            zoned_timestamp("2024-01-02T03:04:05.12Z"),
            ts(1_704_164_645, 120_000)
        );
        assert_eq!(
            zoned_timestamp("2024-01-02T05:04:05.123456+02:00"),
            ts(1_704_164_645, 123_456)
        );
        assert_eq!(
            zoned_timestamp("2024-01-01T22:34:05-04:30"),
            ts(1_704_164_645, 0)
        );
        assert_eq!(zoned_timestamp("1969-12-31T23:59:59.5Z"), ts(-1, 500_000));
        for bad in [
            "",
            "2024-01-02",
            "2024-01-02T03:04:05",
            "2024-01-02 03:04:05Z",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+2",
        ] {
            assert_eq!(zoned_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_zero_dates() {
        let zero = Date {
            year: 0,
            month: 0,
            day: 0,
        };
        assert_eq!(date("0000-00-00"), Some(zero));
        assert_eq!(
            date("2024-00-10"),
            Some(Date {
                year: 2024,
                month: 0,
                day: 10
            })
        );
        let dt = datetime("0000-00-00 00:00:00").expect("zero datetime");
        assert_eq!(dt.date, zero);
        assert_eq!(
            datetime("2024-01-02 03:04:05.000001").map(|d| d.micros),
            Some(1)
        );
        assert_eq!(date("2024-1-10"), None);
    }

    #[test]
    fn splits_members_with_escaped_commas() {
        assert_eq!(members(""), Vec::<String>::new());
        assert_eq!(members("a,c"), vec!["a", "c"]);
        assert_eq!(members("a\\,b,c"), vec!["a,b", "c"]);
        assert_eq!(members(","), vec!["", ""]);
        assert_eq!(member("a\\,b"), "a,b");
    }
}
