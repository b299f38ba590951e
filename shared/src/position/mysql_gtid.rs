//! MySQL GTID sets: `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,…`, with MySQL 8.3+ tags
//! (`uuid:1-5:tag_a:1-3`).
//!
//! A set is kept normalised: per source (server uuid + optional tag) a sorted list of disjoint,
//! non-adjacent closed intervals. Printing a parsed set therefore gives MySQL's own canonical
//! text (lowercase uuids in order, untagged intervals before tagged ones, tags in order), and two
//! sets that contain the same transactions compare equal whatever text they came from.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::PositionError;

/// The origin of a MySQL transaction: the server uuid and, since MySQL 8.3, an optional tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MySqlSid {
    /// `server_uuid` of the server that first committed the transaction.
    pub uuid: Uuid,
    /// Lowercase tag (`[a-z_][a-z0-9_]{0,31}`); `None` for untagged transactions.
    pub tag: Option<String>,
}

/// One MySQL GTID: `uuid[:tag]:gno`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MySqlGtid {
    /// Where the transaction came from.
    pub sid: MySqlSid,
    /// Transaction number, 1 or more.
    pub gno: u64,
}

/// A closed interval of transaction numbers, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GnoInterval {
    /// First transaction number in the interval.
    pub start: u64,
    /// Last transaction number in the interval (inclusive).
    pub end: u64,
}

/// A set of MySQL GTIDs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MySqlGtidSet {
    /// Normalised intervals per source; never holds an empty list.
    sources: BTreeMap<MySqlSid, Vec<GnoInterval>>,
}

/// MySQL's largest transaction number (`GNO_END - 1`).
const MAX_GNO: u64 = i64::MAX as u64 - 1;
const MAX_TAG_LEN: usize = 32;

impl MySqlGtidSet {
    /// The empty set (MySQL prints it as an empty string).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no transaction is in the set.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether `gtid` is in the set.
    pub fn contains(&self, gtid: &MySqlGtid) -> bool {
        self.sources.get(&gtid.sid).is_some_and(|intervals| {
            let i = intervals.partition_point(|iv| iv.end < gtid.gno);
            intervals.get(i).is_some_and(|iv| iv.start <= gtid.gno)
        })
    }

    /// Adds one transaction (what happens when a replica commits it).
    pub fn insert(&mut self, gtid: &MySqlGtid) {
        self.insert_interval(
            gtid.sid.clone(),
            GnoInterval {
                start: gtid.gno,
                end: gtid.gno,
            },
        );
    }

    /// Adds every transaction of `other`.
    pub fn union_with(&mut self, other: &MySqlGtidSet) {
        for (sid, intervals) in &other.sources {
            for interval in intervals {
                self.insert_interval(sid.clone(), *interval);
            }
        }
    }

    /// Whether every transaction of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &MySqlGtidSet) -> bool {
        self.sources.iter().all(|(sid, intervals)| {
            let Some(theirs) = other.sources.get(sid) else {
                return false;
            };
            intervals.iter().all(|iv| {
                let i = theirs.partition_point(|t| t.end < iv.start);
                theirs
                    .get(i)
                    .is_some_and(|t| t.start <= iv.start && iv.end <= t.end)
            })
        })
    }

    /// The intervals per source, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (&MySqlSid, &[GnoInterval])> {
        self.sources.iter().map(|(sid, ivs)| (sid, ivs.as_slice()))
    }

    /// Adds the closed interval `new` of `sid`'s transactions.
    pub fn insert_interval(&mut self, sid: MySqlSid, new: GnoInterval) {
        let intervals = self.sources.entry(sid).or_default();
        // First interval that could touch `new` (ends at or after start - 1).
        let first = intervals.partition_point(|iv| iv.end.saturating_add(1) < new.start);
        let mut merged = new;
        let mut last = first;
        while let Some(iv) = intervals.get(last) {
            if iv.start > merged.end.saturating_add(1) {
                break;
            }
            merged.start = merged.start.min(iv.start);
            merged.end = merged.end.max(iv.end);
            last += 1;
        }
        intervals.splice(first..last, [merged]);
    }
}

impl FromStr for MySqlGtid {
    type Err = PositionError;

    /// Parses `uuid:gno` or `uuid:tag:gno`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| PositionError::invalid_gtid(text, reason);
        let mut parts = text.trim().split(':');
        let uuid = parse_uuid(parts.next().unwrap_or_default()).map_err(|r| invalid(&r))?;
        let (tag, gno) = match (parts.next(), parts.next(), parts.next()) {
            (Some(gno), None, None) => (None, gno),
            (Some(tag), Some(gno), None) => (Some(parse_tag(tag).map_err(|r| invalid(&r))?), gno),
            _ => return Err(invalid("expected uuid:number or uuid:tag:number")),
        };
        let gno = parse_gno(gno).map_err(|r| invalid(&r))?;
        Ok(MySqlGtid {
            sid: MySqlSid { uuid, tag },
            gno,
        })
    }
}

impl fmt::Display for MySqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid.tag {
            Some(tag) => write!(f, "{}:{tag}:{}", self.sid.uuid, self.gno),
            None => write!(f, "{}:{}", self.sid.uuid, self.gno),
        }
    }
}

impl FromStr for MySqlGtidSet {
    type Err = PositionError;

    /// Parses MySQL's text form, as `@@gtid_executed` prints it (newlines after commas allowed).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut set = MySqlGtidSet::new();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(set);
        }
        for block in trimmed.split(',') {
            parse_block(block.trim(), &mut set)
                .map_err(|reason| PositionError::invalid_gtid_set(text, &reason))?;
        }
        Ok(set)
    }
}

/// Parses one `uuid:interval[:interval…][:tag:interval…]` block into `set`.
fn parse_block(block: &str, set: &mut MySqlGtidSet) -> Result<(), String> {
    let mut parts = block.split(':');
    let uuid_text = parts.next().unwrap_or_default();
    let uuid = parse_uuid(uuid_text)?;
    let mut tag: Option<String> = None;
    let mut intervals_for_tag = 0usize;
    let mut any = false;
    for part in parts {
        let part = part.trim();
        if part.starts_with(|c: char| c.is_ascii_digit()) {
            let interval = parse_interval(part)?;
            set.insert_interval(
                MySqlSid {
                    uuid,
                    tag: tag.clone(),
                },
                interval,
            );
            intervals_for_tag += 1;
            any = true;
        } else {
            if tag.is_some() && intervals_for_tag == 0 {
                return Err(format!("tag '{}' has no interval", tag.unwrap_or_default()));
            }
            tag = Some(parse_tag(part)?);
            intervals_for_tag = 0;
        }
    }
    if !any || (tag.is_some() && intervals_for_tag == 0) {
        return Err(format!("'{block}' has no interval after the uuid"));
    }
    Ok(())
}

fn parse_uuid(text: &str) -> Result<Uuid, String> {
    let text = text.trim();
    // MySQL accepts only the hyphenated 36-character form (and the 32-hex-digit form).
    if text.len() != 36 && text.len() != 32 {
        return Err(format!("'{text}' is not a server uuid"));
    }
    Uuid::try_parse(text).map_err(|_| format!("'{text}' is not a server uuid"))
}

fn parse_tag(text: &str) -> Result<String, String> {
    let tag = text.to_ascii_lowercase();
    let mut chars = tag.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_lowercase());
    let valid_rest = chars.all(|c| c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid_start || !valid_rest || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "'{text}' is neither an interval nor a tag (letters, digits, '_', at most 32, not starting with a digit)"
        ));
    }
    Ok(tag)
}

fn parse_gno(text: &str) -> Result<u64, String> {
    let gno: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a transaction number"))?;
    if gno == 0 || gno > MAX_GNO {
        return Err(format!(
            "transaction number {gno} is out of range 1..={MAX_GNO}"
        ));
    }
    Ok(gno)
}

fn parse_interval(text: &str) -> Result<GnoInterval, String> {
    let (start, end) = match text.split_once('-') {
        Some((start, end)) => (parse_gno(start)?, parse_gno(end)?),
        None => {
            let gno = parse_gno(text)?;
            (gno, gno)
        }
    };
    if start > end {
        return Err(format!("interval '{text}' ends before it starts"));
    }
    Ok(GnoInterval { start, end })
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // BTreeMap order puts each uuid's untagged source (tag None) before its tags.
        let mut current: Option<Uuid> = None;
        for (sid, intervals) in &self.sources {
            if current != Some(sid.uuid) {
                if current.is_some() {
                    f.write_str(",")?;
                }
                write!(f, "{}", sid.uuid)?;
                current = Some(sid.uuid);
            }
            if let Some(tag) = &sid.tag {
                write!(f, ":{tag}")?;
            }
            for iv in intervals {
                if iv.start == iv.end {
                    write!(f, ":{}", iv.start)?;
                } else {
                    write!(f, ":{}-{}", iv.start, iv.end)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "8a94f357-aab4-11df-86ab-c80aa9429562";

    fn set(text: &str) -> MySqlGtidSet {
        text.parse().expect("valid set")
    }

    fn gtid(text: &str) -> MySqlGtid {
        text.parse().expect("valid gtid")
    }

    #[test]
    fn prints_the_canonical_form() {
        let text = format!("{},\n{A}:7:1-5:3", B.to_uppercase() + ":1-3");
        assert_eq!(set(&text).to_string(), format!("{A}:1-5:7,{B}:1-3"));
    }

    #[test]
    fn adjacent_and_overlapping_intervals_merge() {
        assert_eq!(
            set(&format!("{A}:1-3:4-6:10:8-12")).to_string(),
            format!("{A}:1-6:8-12")
        );
        let mut s = set(&format!("{A}:1-3:5"));
        s.insert(&gtid(&format!("{A}:4")));
        assert_eq!(s.to_string(), format!("{A}:1-5"));
    }

    #[test]
    fn tags_follow_the_untagged_intervals_of_their_uuid() {
        let s = set(&format!("{A}:Beta:1-2:alpha:5,{A}:1-3"));
        assert_eq!(s.to_string(), format!("{A}:1-3:alpha:5:beta:1-2"));
        assert!(s.contains(&gtid(&format!("{A}:beta:2"))));
        assert!(!s.contains(&gtid(&format!("{A}:beta:3"))));
        assert!(!s.contains(&gtid(&format!("{A}:gamma:1"))));
    }

    #[test]
    fn empty_text_is_the_empty_set() {
        assert!(set("").is_empty());
        assert!(set(" \n").is_empty());
        assert_eq!(set("").to_string(), "");
    }

    #[test]
    fn contains_checks_interval_bounds() {
        let s = set(&format!("{A}:1-5:7-9"));
        for (n, expected) in [
            (1, true),
            (5, true),
            (6, false),
            (7, true),
            (9, true),
            (10, false),
        ] {
            assert_eq!(s.contains(&gtid(&format!("{A}:{n}"))), expected, "gno {n}");
        }
        assert!(!s.contains(&gtid(&format!("{B}:1"))));
    }

    #[test]
    fn subset_and_union() {
        let small = set(&format!("{A}:2-3"));
        let big = set(&format!("{A}:1-5,{B}:1"));
        assert!(small.is_subset_of(&big));
        assert!(!big.is_subset_of(&small));
        assert!(MySqlGtidSet::new().is_subset_of(&small));
        assert!(!set(&format!("{A}:5-6")).is_subset_of(&big));
        let mut u = set(&format!("{A}:7"));
        u.union_with(&big);
        assert_eq!(u.to_string(), format!("{A}:1-5:7,{B}:1"));
    }

    #[test]
    fn rejects_malformed_sets_with_the_reason() {
        let cases = [
            ("nonsense".to_owned(), "not a server uuid"),
            (A.to_owned(), "no interval"),
            (format!("{A}:0"), "out of range"),
            (format!("{A}:5-3"), "ends before it starts"),
            (format!("{A}:1-x"), "not a transaction number"),
            (format!("{A}:1:9tag:1"), "not a transaction number"),
            (format!("{A}:1:bad-tag:1"), "neither an interval nor a tag"),
            (format!("{A}:1:tag"), "no interval"),
            (format!("{A}:1,"), "not a server uuid"),
        ];
        for (text, reason) in &cases {
            let text = text.as_str();
            let err = text.parse::<MySqlGtidSet>().expect_err(text).to_string();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(
                err.contains("uuid:1-5"),
                "the message shows the expected form: {err}"
            );
        }
    }

    #[test]
    fn single_gtid_round_trips() {
        for text in [format!("{A}:42"), format!("{A}:my_tag:7")] {
            assert_eq!(gtid(&text).to_string(), text);
        }
        assert!(format!("{A}:1-3").parse::<MySqlGtid>().is_err());
    }
}
