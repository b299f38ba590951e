//! MariaDB GTID positions: `0-1-42,1-2-7`, one `domain-server-seq` per replication domain.
//!
//! A MariaDB position names, per domain, the last transaction applied. With
//! `gtid_strict_mode=ON` sequence numbers only grow within a domain, so "transaction T is at or
//! before the position" is `T.seq <= position[T.domain].seq`, whatever server wrote it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::PositionError;

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MariaDbGtid {
    /// Replication domain (`gtid_domain_id`).
    pub domain: u32,
    /// `server_id` of the server that first committed the transaction.
    pub server_id: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

/// A MariaDB GTID position (what `@@gtid_binlog_pos` or `@@gtid_slave_pos` print).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MariaDbGtidPos {
    /// The last transaction per domain.
    domains: BTreeMap<u32, MariaDbGtid>,
}

impl MariaDbGtidPos {
    /// The empty position: nothing applied yet, in any domain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no domain has a transaction.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Whether `gtid` is at or before this position.
    pub fn contains(&self, gtid: &MariaDbGtid) -> bool {
        self.domains
            .get(&gtid.domain)
            .is_some_and(|last| gtid.seq <= last.seq)
    }

    /// Moves the position forward to `gtid` (a later transaction of its domain).
    ///
    /// A GTID at or before the position leaves it unchanged, so replaying a transaction never
    /// moves the position back.
    pub fn advance(&mut self, gtid: MariaDbGtid) {
        let last = self.domains.entry(gtid.domain).or_insert(gtid);
        if gtid.seq > last.seq {
            *last = gtid;
        }
    }

    /// Whether `self` is at or before `other` in every domain `self` has.
    pub fn is_subset_of(&self, other: &MariaDbGtidPos) -> bool {
        self.domains.values().all(|gtid| other.contains(gtid))
    }

    /// The last transaction of each domain, by domain.
    pub fn iter(&self) -> impl Iterator<Item = &MariaDbGtid> {
        self.domains.values()
    }

    /// The last transaction of `domain`, if any.
    pub fn get(&self, domain: u32) -> Option<&MariaDbGtid> {
        self.domains.get(&domain)
    }
}

impl FromStr for MariaDbGtid {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_gtid(text.trim()).map_err(|reason| PositionError::invalid_gtid(text, &reason))
    }
}

fn parse_gtid(text: &str) -> Result<MariaDbGtid, String> {
    let mut parts = text.split('-');
    let (Some(domain), Some(server_id), Some(seq), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("'{text}' is not domain-server-seq"));
    };
    let number = |what: &str, value: &str| format!("'{value}' is not a {what} in '{text}'");
    Ok(MariaDbGtid {
        domain: domain.parse().map_err(|_| number("domain id", domain))?,
        server_id: server_id
            .parse()
            .map_err(|_| number("server id", server_id))?,
        seq: seq.parse().map_err(|_| number("sequence number", seq))?,
    })
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

impl FromStr for MariaDbGtidPos {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut pos = MariaDbGtidPos::new();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(pos);
        }
        for part in trimmed.split(',') {
            let gtid = parse_gtid(part.trim())
                .map_err(|reason| PositionError::invalid_gtid_set(text, &reason))?;
            if pos.domains.insert(gtid.domain, gtid).is_some() {
                return Err(PositionError::invalid_gtid_set(
                    text,
                    &format!("domain {} appears twice", gtid.domain),
                ));
            }
        }
        Ok(pos)
    }
}

impl fmt::Display for MariaDbGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str) -> MariaDbGtidPos {
        text.parse().expect("valid position")
    }

    fn gtid(text: &str) -> MariaDbGtid {
        text.parse().expect("valid gtid")
    }

    #[test]
    fn round_trips_sorted_by_domain() {
        assert_eq!(pos("2-5-9, 0-1-42,1-2-7").to_string(), "0-1-42,1-2-7,2-5-9");
        assert_eq!(pos("").to_string(), "");
        assert_eq!(gtid("0-1-18446744073709551615").seq, u64::MAX);
    }

    #[test]
    fn contains_compares_sequence_numbers_within_a_domain() {
        let p = pos("0-1-42,1-2-7");
        assert!(p.contains(&gtid("0-1-42")));
        assert!(
            p.contains(&gtid("0-3-41")),
            "the server id does not matter within a domain"
        );
        assert!(!p.contains(&gtid("0-1-43")));
        assert!(
            !p.contains(&gtid("5-1-1")),
            "an unknown domain has nothing applied"
        );
    }

    #[test]
    fn advance_only_moves_forward() {
        let mut p = pos("0-1-42");
        p.advance(gtid("0-2-43"));
        p.advance(gtid("0-1-40"));
        p.advance(gtid("3-1-1"));
        assert_eq!(p.to_string(), "0-2-43,3-1-1");
    }

    #[test]
    fn subset_means_at_or_before_in_every_domain() {
        assert!(pos("0-1-5").is_subset_of(&pos("0-1-6,1-1-1")));
        assert!(!pos("0-1-7").is_subset_of(&pos("0-1-6")));
        assert!(!pos("2-1-1").is_subset_of(&pos("0-1-6")));
        assert!(MariaDbGtidPos::new().is_subset_of(&pos("0-1-1")));
    }

    #[test]
    fn rejects_malformed_positions_with_the_reason() {
        for (text, reason) in [
            ("0-1", "not domain-server-seq"),
            ("0-1-2-3", "not domain-server-seq"),
            ("a-1-2", "not a domain id"),
            ("0-1-x", "not a sequence number"),
            ("0--1-2", "not domain-server-seq"),
            ("0-1-2,0-1-3", "domain 0 appears twice"),
            ("0-1-2,", "not domain-server-seq"),
        ] {
            let err = text.parse::<MariaDbGtidPos>().expect_err(text).to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
