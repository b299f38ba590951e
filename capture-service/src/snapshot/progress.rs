//! What a snapshot has delivered, stored with the capture's position in the same Kafka
//! transaction as the records it covers, so a restart resumes from the last committed chunk.
//!
//! Each table is read inside one consistent-snapshot transaction whose binlog point is known
//! (a *segment*). A table resumed after a crash gets a second segment for the keys above the
//! last committed one, read at a later point. Streaming starts at the earliest point and, for
//! each row change, skips it when the segment holding its key was read at or after the change.

use std::cmp::Ordering;

use rowferry_shared::event::{ColumnType, Row, TableId, TableSchema, Value};
use rowferry_shared::position::{BinlogFilePosition, Gtid, GtidSet, PositionError};
use serde::{Deserialize, Serialize};

/// A binlog point at which a consistent snapshot was read: every transaction before it is in
/// the snapshot, none after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPoint {
    /// Binlog file of the point.
    pub file: String,
    /// Offset in that file.
    pub pos: u64,
    /// The source's GTID position at that point, when it uses GTIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtids: Option<String>,
}

impl SnapshotPoint {
    /// The point as a binlog file position.
    pub fn file_position(&self) -> BinlogFilePosition {
        BinlogFilePosition::new(self.file.clone(), self.pos)
    }
}

/// Where a streamed transaction sits, to compare with snapshot points.
#[derive(Debug, Clone)]
pub struct EventPoint<'a> {
    /// The transaction's GTID, when the source uses GTIDs.
    pub gtid: Option<&'a Gtid>,
    /// File and offset of the transaction's first event.
    pub file: &'a str,
    pub pos: u64,
}

/// A snapshot point parsed once for comparisons.
#[derive(Debug, Clone)]
pub struct ParsedPoint {
    file: BinlogFilePosition,
    gtids: Option<GtidSet>,
}

impl ParsedPoint {
    /// Parses `point` for a source of `flavor`.
    pub fn new(
        point: &SnapshotPoint,
        flavor: rowferry_shared::position::Flavor,
    ) -> Result<Self, PositionError> {
        Ok(Self {
            file: point.file_position(),
            gtids: point
                .gtids
                .as_deref()
                .map(|text| GtidSet::parse_as(flavor, text))
                .transpose()?,
        })
    }

    /// Whether the snapshot read at this point already reflects the transaction at `event`.
    pub fn reflects(&self, event: &EventPoint<'_>) -> Result<bool, PositionError> {
        match (&self.gtids, event.gtid) {
            (Some(set), Some(gtid)) => set.contains(gtid),
            _ => Ok(
                BinlogFilePosition::new(event.file, event.pos).compare(&self.file)?
                    == Ordering::Less,
            ),
        }
    }

    /// Whether streaming that has reached `boundary` (and `gtids`) is past this point.
    pub fn passed_by(
        &self,
        boundary: &BinlogFilePosition,
        gtids: Option<&GtidSet>,
    ) -> Result<bool, PositionError> {
        match (&self.gtids, gtids) {
            (Some(mine), Some(theirs)) => mine.is_subset_of(theirs),
            _ => Ok(boundary.compare(&self.file)? != Ordering::Less),
        }
    }
}

/// One key column's value, in a form that can be stored, bound as a query parameter and
/// ordered the way the source orders the column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyValue {
    /// Signed integers and YEAR.
    #[serde(rename = "i")]
    Int(i64),
    /// Unsigned integers, BIT, and ENUM/SET by their numeric value (as the source orders them).
    #[serde(rename = "u")]
    UInt(u64),
    /// DOUBLE, as shortest round-trip text.
    #[serde(rename = "f")]
    Float(String),
    /// FLOAT, as shortest round-trip text of the f32.
    #[serde(rename = "f4")]
    Float32(String),
    /// DECIMAL text.
    #[serde(rename = "d")]
    Decimal(String),
    /// Character data, ordered by the column's collation (asked of the source).
    #[serde(rename = "s")]
    Text(String),
    /// Binary strings, as lower-case hex (hex order is byte order).
    #[serde(rename = "b")]
    Bytes(String),
    /// DATE, DATETIME and TIMESTAMP (UTC) as zero-padded text, which orders as the values do.
    #[serde(rename = "t")]
    DateTime(String),
    /// TIME, as signed microseconds.
    #[serde(rename = "tm")]
    Time(i64),
}

impl KeyValue {
    /// The key form of a column value; `None` for a value that cannot be a key (NULL, JSON,
    /// geometry).
    pub fn from_value(value: &Value, column_type: &ColumnType) -> Option<KeyValue> {
        Some(match value {
            Value::Int(v) => KeyValue::Int(*v),
            Value::UInt(v) => KeyValue::UInt(*v),
            Value::Year(y) => KeyValue::Int(i64::from(*y)),
            Value::Float(f) => KeyValue::Float32(format!("{f:?}")),
            Value::Double(f) => KeyValue::Float(format!("{f:?}")),
            Value::Decimal(d) => KeyValue::Decimal(d.clone()),
            Value::Text(s) => KeyValue::Text(s.clone()),
            Value::Bytes(b) => KeyValue::Bytes(hex(b)),
            Value::Bit(b) => {
                KeyValue::UInt(b.iter().fold(0u64, |n, byte| n << 8 | u64::from(*byte)))
            }
            Value::Enum(name) => {
                let ColumnType::Enum { members } = column_type else {
                    return None;
                };
                let index = match name.as_str() {
                    "" => 0,
                    name => members.iter().position(|m| m == name)? + 1,
                };
                KeyValue::UInt(index as u64)
            }
            Value::Set(names) => {
                let ColumnType::Set { members } = column_type else {
                    return None;
                };
                let mut bits = 0u64;
                for name in names {
                    bits |= 1 << members.iter().position(|m| m == name)?;
                }
                KeyValue::UInt(bits)
            }
            Value::Date(d) => {
                KeyValue::DateTime(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
            }
            Value::DateTime(dt) => KeyValue::DateTime(datetime_text(
                dt.date.year,
                dt.date.month,
                dt.date.day,
                dt.hour,
                dt.minute,
                dt.second,
                dt.micros,
            )),
            Value::Timestamp(ts) => {
                let days = ts.seconds.div_euclid(86_400);
                let secs = ts.seconds.rem_euclid(86_400);
                let date =
                    rowferry_shared::event::Date::from_days_since_epoch(i32::try_from(days).ok()?)?;
                let (year, month, day) = if ts.seconds == 0 && ts.micros == 0 {
                    (0, 0, 0)
                } else {
                    (date.year, date.month, date.day)
                };
                KeyValue::DateTime(datetime_text(
                    year,
                    month,
                    day,
                    (secs / 3600) as u8,
                    (secs / 60 % 60) as u8,
                    (secs % 60) as u8,
                    ts.micros,
                ))
            }
            Value::Time(t) => {
                let micros = ((i64::from(t.hours) * 60 + i64::from(t.minutes)) * 60
                    + i64::from(t.seconds))
                    * 1_000_000
                    + i64::from(t.micros);
                KeyValue::Time(if t.negative { -micros } else { micros })
            }
            Value::Null | Value::Json(_) => return None,
        })
    }

    /// The value as a query parameter compared with the column.
    pub fn to_param(&self) -> mysql_async::Value {
        use mysql_async::Value as P;
        match self {
            KeyValue::Int(v) => P::Int(*v),
            KeyValue::UInt(v) => P::UInt(*v),
            KeyValue::Float(text) => P::Double(text.parse().unwrap_or(0.0)),
            // Bound as FLOAT: the text of an f32 read as an f64 may be a little off the
            // stored value and repeat or skip a row at the chunk boundary.
            KeyValue::Float32(text) => P::Float(text.parse().unwrap_or(0.0)),
            KeyValue::Decimal(text) | KeyValue::DateTime(text) => {
                P::Bytes(text.clone().into_bytes())
            }
            KeyValue::Text(text) => P::Bytes(text.clone().into_bytes()),
            KeyValue::Bytes(text) => P::Bytes(unhex(text)),
            KeyValue::Time(micros) => {
                let negative = *micros < 0;
                let abs = micros.unsigned_abs();
                let secs = abs / 1_000_000;
                P::Bytes(
                    format!(
                        "{}{}:{:02}:{:02}.{:06}",
                        if negative { "-" } else { "" },
                        secs / 3600,
                        secs / 60 % 60,
                        secs % 60,
                        abs % 1_000_000
                    )
                    .into_bytes(),
                )
            }
        }
    }

    /// Orders two values of one column without the source; `None` for character data (its
    /// collation decides) or values of different kinds.
    pub fn local_cmp(&self, other: &KeyValue) -> Option<Ordering> {
        match (self, other) {
            (KeyValue::Int(a), KeyValue::Int(b)) => Some(a.cmp(b)),
            (KeyValue::UInt(a), KeyValue::UInt(b)) => Some(a.cmp(b)),
            (KeyValue::Float(a), KeyValue::Float(b))
            | (KeyValue::Float32(a), KeyValue::Float32(b)) => {
                a.parse::<f64>().ok()?.partial_cmp(&b.parse::<f64>().ok()?)
            }
            (KeyValue::Decimal(a), KeyValue::Decimal(b)) => Some(decimal_cmp(a, b)),
            (KeyValue::Bytes(a), KeyValue::Bytes(b))
            | (KeyValue::DateTime(a), KeyValue::DateTime(b)) => Some(a.cmp(b)),
            (KeyValue::Time(a), KeyValue::Time(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn datetime_text(
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
) -> String {
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    text
}

fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

/// Orders two DECIMAL texts (`-12.30`, `7`) numerically.
fn decimal_cmp(a: &str, b: &str) -> Ordering {
    let (neg_a, mag_a) = split_sign(a);
    let (neg_b, mag_b) = split_sign(b);
    let zero = |m: &str| m.bytes().all(|c| c == b'0' || c == b'.');
    match (neg_a && !zero(mag_a), neg_b && !zero(mag_b)) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => magnitude_cmp(mag_a, mag_b),
        (true, true) => magnitude_cmp(mag_b, mag_a),
    }
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    }
}

fn magnitude_cmp(a: &str, b: &str) -> Ordering {
    let (int_a, frac_a) = a.split_once('.').unwrap_or((a, ""));
    let (int_b, frac_b) = b.split_once('.').unwrap_or((b, ""));
    let (int_a, int_b) = (int_a.trim_start_matches('0'), int_b.trim_start_matches('0'));
    int_a
        .len()
        .cmp(&int_b.len())
        .then_with(|| int_a.cmp(int_b))
        .then_with(|| {
            let (frac_a, frac_b) = (frac_a.trim_end_matches('0'), frac_b.trim_end_matches('0'));
            frac_a.cmp(frac_b)
        })
}

/// Keys above `after_key` (all keys when `None`) were read at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The last key delivered before this segment's snapshot was opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_key: Option<Vec<KeyValue>>,
    /// Where this segment was read.
    pub at: SnapshotPoint,
}

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Where its key ranges were read, in key order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// The last key delivered; `None` before the first row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_key: Option<Vec<KeyValue>>,
    /// Collation of each key column that holds character data (for ordering its values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_collations: Vec<Option<String>>,
    /// Every row delivered.
    pub done: bool,
    /// Rows delivered so far.
    pub rows: u64,
    /// The source's row estimate when the snapshot began.
    pub estimated_rows: u64,
}

impl TableProgress {
    /// A table not read yet; `estimated_rows` is the source's estimate.
    pub fn new(id: TableId, estimated_rows: u64) -> Self {
        Self {
            db: id.db,
            table: id.table,
            segments: Vec::new(),
            last_key: None,
            key_collations: Vec::new(),
            done: false,
            rows: 0,
            estimated_rows,
        }
    }

    /// The table's id.
    pub fn id(&self) -> TableId {
        TableId::new(self.db.clone(), self.table.clone())
    }

    /// Records that the keys after `last_key` are now read at `at`. A segment that started
    /// after the same key (opened, then lost in a crash before any row of it was committed)
    /// is replaced.
    pub fn open_segment(&mut self, at: SnapshotPoint) {
        let after_key = self.last_key.clone();
        if self
            .segments
            .last()
            .is_some_and(|last| last.after_key == after_key)
        {
            self.segments.pop();
        }
        self.segments.push(Segment { after_key, at });
    }
}

/// A snapshot's progress, stored with the position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// When the snapshot began, ms since the epoch.
    pub started_ms: i64,
    /// The tables, in the order they are read.
    pub tables: Vec<TableProgress>,
}

impl SnapshotProgress {
    /// Whether every table is read.
    pub fn complete(&self) -> bool {
        self.tables.iter().all(|t| t.done)
    }

    /// The earliest point of any segment: where streaming must start.
    pub fn earliest_point(&self) -> Option<&SnapshotPoint> {
        // Points only grow as segments are opened, so the first one opened is the earliest;
        // compare anyway (tables may be listed in another order than they were opened).
        let mut earliest: Option<&SnapshotPoint> = None;
        for segment in self.tables.iter().flat_map(|t| &t.segments) {
            let earlier = match earliest {
                None => true,
                Some(e) => segment
                    .at
                    .file_position()
                    .compare(&e.file_position())
                    .is_ok_and(|o| o == Ordering::Less),
            };
            if earlier {
                earliest = Some(&segment.at);
            }
        }
        earliest
    }
}

/// The values of `row`'s key columns (as `schema` names them), if every one can be a key.
pub fn key_of(row: &Row, schema: &TableSchema) -> Option<Vec<KeyValue>> {
    schema
        .key
        .columns()
        .iter()
        .map(|&i| KeyValue::from_value(row.get(i)?, &schema.columns.get(i)?.column_type))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rowferry_shared::event::{Date, DateTime, Time, Timestamp};

    #[test]
    fn decimals_order_numerically() {
        assert_eq!(decimal_cmp("10.00", "9.99"), Ordering::Greater);
        assert_eq!(decimal_cmp("-10.00", "-9.99"), Ordering::Less);
        assert_eq!(decimal_cmp("-0.00", "0.00"), Ordering::Equal);
        assert_eq!(decimal_cmp("0.5", "0.50"), Ordering::Equal);
        assert_eq!(decimal_cmp("-1", "0"), Ordering::Less);
        assert_eq!(decimal_cmp("007.1", "7.09"), Ordering::Greater);
    }

    #[test]
    fn key_values_order_like_the_source() {
        let kv = |v: Value, t: ColumnType| {
            KeyValue::from_value(&v, &t).unwrap_or(KeyValue::Text("not a key".into()))
        };
        let dt = |day, micros| {
            kv(
                Value::DateTime(DateTime {
                    date: Date {
                        year: 2024,
                        month: 2,
                        day,
                    },
                    hour: 1,
                    minute: 2,
                    second: 3,
                    micros,
                }),
                ColumnType::DateTime { fsp: 6 },
            )
        };
        assert_eq!(dt(9, 0).local_cmp(&dt(10, 0)), Some(Ordering::Less));
        assert_eq!(dt(9, 5).local_cmp(&dt(9, 40)), Some(Ordering::Less));
        let time = |negative, hours| {
            kv(
                Value::Time(Time {
                    negative,
                    hours,
                    minutes: 0,
                    seconds: 0,
                    micros: 0,
                }),
                ColumnType::Time { fsp: 0 },
            )
        };
        assert_eq!(
            time(true, 5).local_cmp(&time(true, 1)),
            Some(Ordering::Less)
        );
        assert_eq!(
            time(false, 100).local_cmp(&time(false, 99)),
            Some(Ordering::Greater)
        );
        let bytes = |b: &[u8]| {
            kv(
                Value::Bytes(b.to_vec()),
                ColumnType::Blob {
                    size: rowferry_shared::event::LobSize::Regular,
                },
            )
        };
        assert_eq!(
            bytes(&[0x10]).local_cmp(&bytes(&[0x0f, 0xff])),
            Some(Ordering::Greater)
        );
        assert_eq!(bytes(&[1]).local_cmp(&bytes(&[1, 0])), Some(Ordering::Less));
        let members = vec!["b".to_owned(), "a".to_owned()];
        let e = |name: &str| {
            kv(
                Value::Enum(name.into()),
                ColumnType::Enum {
                    members: members.clone(),
                },
            )
        };
        // ENUM orders by member number, not name.
        assert_eq!(e("b").local_cmp(&e("a")), Some(Ordering::Less));
        let ts = kv(
            Value::Timestamp(Timestamp {
                seconds: 86_400 + 3661,
                micros: 7,
            }),
            ColumnType::Timestamp { fsp: 6 },
        );
        assert_eq!(ts, KeyValue::DateTime("1970-01-02 01:01:01.000007".into()));
        assert_eq!(
            kv(Value::Text("a".into()), ColumnType::VarChar { length: 3 })
                .local_cmp(&KeyValue::Text("b".into())),
            None
        );
    }

    #[test]
    fn key_values_bind_as_the_source_reads_them() {
        assert_eq!(
            KeyValue::Time(-3_723_000_004).to_param(),
            mysql_async::Value::Bytes(b"-1:02:03.000004".to_vec())
        );
        assert_eq!(
            KeyValue::Bytes("00ff".into()).to_param(),
            mysql_async::Value::Bytes(vec![0, 255])
        );
    }

    #[test]
    fn a_reopened_segment_replaces_one_that_never_delivered() {
        let point = |pos| SnapshotPoint {
            file: "b.000001".into(),
            pos,
            gtids: None,
        };
        let mut table = TableProgress::new(TableId::new("d", "t"), 0);
        table.open_segment(point(100));
        table.last_key = Some(vec![KeyValue::Int(5)]);
        table.open_segment(point(200));
        table.open_segment(point(300));
        assert_eq!(table.segments.len(), 2);
        assert_eq!(table.segments[1].at.pos, 300);
        let progress = SnapshotProgress {
            started_ms: 0,
            tables: vec![table],
        };
        assert_eq!(progress.earliest_point().map(|p| p.pos), Some(100));
    }
}
