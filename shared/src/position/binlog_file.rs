//! Binlog file coordinates: `mysql-bin.000042:1234`.
//!
//! A server names its binlog files `<basename>.<number>` with a growing number, so positions
//! order by (number, offset) as long as the base names agree; positions of two different
//! basenames belong to different binlog sequences and do not compare.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::PositionError;

/// A byte offset in a named binlog file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BinlogFilePosition {
    /// File name as the server reports it (`SHOW BINARY LOGS`), without a directory.
    pub file: String,
    /// Byte offset of an event in that file (4 is the first event after the magic bytes).
    pub pos: u64,
}

impl BinlogFilePosition {
    /// A position in `file` at byte `pos`.
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        Self {
            file: file.into(),
            pos,
        }
    }

    /// The file's base name and sequence number (`mysql-bin`, 42), if it has the usual form.
    pub fn file_sequence(&self) -> Option<(&str, u64)> {
        let (base, number) = self.file.rsplit_once('.')?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((base, number.parse().ok()?))
    }

    /// Orders two positions of the same binlog sequence.
    pub fn compare(&self, other: &BinlogFilePosition) -> Result<Ordering, PositionError> {
        if self.file == other.file {
            return Ok(self.pos.cmp(&other.pos));
        }
        match (self.file_sequence(), other.file_sequence()) {
            (Some((base_a, n_a)), Some((base_b, n_b))) if base_a == base_b => {
                Ok(n_a.cmp(&n_b).then(self.pos.cmp(&other.pos)))
            }
            _ => Err(PositionError::Incomparable {
                left: self.to_string(),
                right: other.to_string(),
                what: "binlog file sequences",
            }),
        }
    }
}

impl FromStr for BinlogFilePosition {
    type Err = PositionError;

    /// Parses `file:position`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| PositionError::InvalidBinlogPosition {
            input: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (file, pos) = text
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| invalid("no ':' between file and position"))?;
        if file.is_empty() {
            return Err(invalid("the file name is empty"));
        }
        if file.contains('/') {
            return Err(invalid(
                "give the file name without a directory, as SHOW BINARY LOGS prints it",
            ));
        }
        let pos: u64 = pos
            .parse()
            .map_err(|_| invalid(&format!("'{pos}' is not a byte offset")))?;
        if pos < 4 {
            return Err(invalid("offsets start at 4, after the binlog magic bytes"));
        }
        Ok(Self::new(file, pos))
    }
}

impl fmt::Display for BinlogFilePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> BinlogFilePosition {
        text.parse().expect("valid position")
    }

    #[test]
    fn round_trips() {
        assert_eq!(
            at("source-bin.000012:1234").to_string(),
            "source-bin.000012:1234"
        );
        assert_eq!(
            at("mysql-bin.000001:4").file_sequence(),
            Some(("mysql-bin", 1))
        );
    }

    #[test]
    fn orders_by_file_number_then_offset() {
        let cases = [
            ("b.000001:900", "b.000002:4", Ordering::Less),
            ("b.000010:4", "b.000009:900", Ordering::Greater),
            ("b.000003:100", "b.000003:100", Ordering::Equal),
            ("b.000003:100", "b.000003:99", Ordering::Greater),
            ("b.999999:4", "b.1000000:4", Ordering::Less),
        ];
        for (a, b, expected) in cases {
            assert_eq!(
                at(a).compare(&at(b)).expect("comparable"),
                expected,
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn different_sequences_do_not_compare() {
        let err = at("a.000001:4")
            .compare(&at("b.000001:4"))
            .expect_err("different bases");
        assert!(
            err.to_string().contains("different binlog file sequences"),
            "{err}"
        );
    }

    #[test]
    fn rejects_malformed_positions_with_the_reason() {
        for (text, reason) in [
            ("mysql-bin.000001", "no ':'"),
            (":12", "file name is empty"),
            ("mysql-bin.000001:x", "not a byte offset"),
            ("mysql-bin.000001:2", "start at 4"),
            ("/var/lib/mysql/b.000001:4", "without a directory"),
        ] {
            let err = text
                .parse::<BinlogFilePosition>()
                .expect_err(text)
                .to_string();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.contains("file:position"), "{err}");
        }
    }
}
