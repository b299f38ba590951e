//! Positions in a source's binlog: GTID sets of both flavors and binlog file coordinates.
//!
//! Positions are values, never strings: they parse and print exactly, and comparing positions
//! of different flavors or different binlog sequences is an error, not a guess.

mod binlog_file;
mod mariadb_gtid;
mod mysql_gtid;

use std::fmt;
use std::str::FromStr;

pub use binlog_file::BinlogFilePosition;
pub use mariadb_gtid::{MariaDbGtid, MariaDbGtidPos};
pub use mysql_gtid::{GnoInterval, MySqlGtid, MySqlGtidSet, MySqlSid};

/// The two server families whose binlogs rowferry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Oracle MySQL (and compatible builds such as Percona Server).
    MySql,
    /// MariaDB.
    MariaDb,
}

impl Flavor {
    /// `mysql` or `mariadb` (also the `db.system.name` of the OpenTelemetry conventions).
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a position could not be parsed or compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    /// A GTID set or GTID position did not parse.
    #[error(
        "invalid GTID set {input:?}: {reason}; expected MySQL `uuid:1-5[:7-9][,uuid:…]` or MariaDB `domain-server-seq[,…]` (e.g. `0-1-42`)"
    )]
    InvalidGtidSet {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A single GTID did not parse.
    #[error(
        "invalid GTID {input:?}: {reason}; expected MySQL `uuid:42` (or `uuid:tag:42`) or MariaDB `domain-server-seq` (e.g. `0-1-42`)"
    )]
    InvalidGtid {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A binlog file position did not parse.
    #[error(
        "invalid binlog position {input:?}: {reason}; expected `file:position`, e.g. `mysql-bin.000042:1234`"
    )]
    InvalidBinlogPosition {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two positions of different flavors or binlog sequences were compared.
    #[error("cannot compare {left} with {right}: they come from different {what}")]
    Incomparable {
        /// The first position.
        left: String,
        /// The second position.
        right: String,
        /// What differs ("flavors", "binlog file sequences").
        what: &'static str,
    },
}

impl PositionError {
    pub(crate) fn invalid_gtid_set(input: &str, reason: &str) -> Self {
        Self::InvalidGtidSet {
            input: input.to_owned(),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn invalid_gtid(input: &str, reason: &str) -> Self {
        Self::InvalidGtid {
            input: input.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// The transactions a source has executed, in its flavor's form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GtidSet {
    /// A MySQL GTID set.
    MySql(MySqlGtidSet),
    /// A MariaDB GTID position.
    MariaDb(MariaDbGtidPos),
}

/// One transaction id, in its flavor's form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Gtid {
    /// A MySQL GTID.
    MySql(MySqlGtid),
    /// A MariaDB GTID.
    MariaDb(MariaDbGtid),
}

impl GtidSet {
    /// Parses `text` as a set of the given flavor (the empty text is the empty set).
    pub fn parse_as(flavor: Flavor, text: &str) -> Result<Self, PositionError> {
        Ok(match flavor {
            Flavor::MySql => GtidSet::MySql(text.parse()?),
            Flavor::MariaDb => GtidSet::MariaDb(text.parse()?),
        })
    }

    /// The empty set of a flavor.
    pub fn empty(flavor: Flavor) -> Self {
        match flavor {
            Flavor::MySql => GtidSet::MySql(MySqlGtidSet::new()),
            Flavor::MariaDb => GtidSet::MariaDb(MariaDbGtidPos::new()),
        }
    }

    /// The flavor of the set.
    pub fn flavor(&self) -> Flavor {
        match self {
            GtidSet::MySql(_) => Flavor::MySql,
            GtidSet::MariaDb(_) => Flavor::MariaDb,
        }
    }

    /// Whether `gtid` is in the set; a GTID of the other flavor is an error.
    pub fn contains(&self, gtid: &Gtid) -> Result<bool, PositionError> {
        match (self, gtid) {
            (GtidSet::MySql(set), Gtid::MySql(gtid)) => Ok(set.contains(gtid)),
            (GtidSet::MariaDb(pos), Gtid::MariaDb(gtid)) => Ok(pos.contains(gtid)),
            _ => Err(self.incomparable(&gtid.to_string())),
        }
    }

    /// Adds a transaction that has been executed (MySQL) or moves the position to it (MariaDB).
    pub fn add(&mut self, gtid: &Gtid) -> Result<(), PositionError> {
        match (&mut *self, gtid) {
            (GtidSet::MySql(set), Gtid::MySql(gtid)) => set.insert(gtid),
            (GtidSet::MariaDb(pos), Gtid::MariaDb(gtid)) => pos.advance(*gtid),
            _ => return Err(self.incomparable(&gtid.to_string())),
        }
        Ok(())
    }

    /// Whether every transaction of `self` is in `other` (`self` is at or before `other`).
    pub fn is_subset_of(&self, other: &GtidSet) -> Result<bool, PositionError> {
        match (self, other) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => Ok(a.is_subset_of(b)),
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => Ok(a.is_subset_of(b)),
            _ => Err(self.incomparable(&other.to_string())),
        }
    }

    fn incomparable(&self, other: &str) -> PositionError {
        PositionError::Incomparable {
            left: format!("{} GTID set '{self}'", self.flavor()),
            right: format!("'{other}'"),
            what: "flavors",
        }
    }
}

impl FromStr for GtidSet {
    type Err = PositionError;

    /// Parses either flavor, telling them apart by form; the empty text is ambiguous and
    /// refused (use [`GtidSet::parse_as`]).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match guess_flavor(text) {
            Some(flavor) => Self::parse_as(flavor, text),
            None => Err(PositionError::invalid_gtid_set(
                text,
                "empty: say which flavor's empty set is meant",
            )),
        }
    }
}

impl FromStr for Gtid {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match guess_flavor(text) {
            Some(Flavor::MySql) => Ok(Gtid::MySql(text.parse()?)),
            Some(Flavor::MariaDb) => Ok(Gtid::MariaDb(text.parse()?)),
            None => Err(PositionError::invalid_gtid(text, "empty")),
        }
    }
}

/// MySQL GTIDs start with a uuid (it has a ':' after it); MariaDB ones never contain ':'.
fn guess_flavor(text: &str) -> Option<Flavor> {
    let text = text.trim();
    if text.is_empty() {
        None
    } else if text.contains(':') {
        Some(Flavor::MySql)
    } else {
        Some(Flavor::MariaDb)
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MySql(set) => set.fmt(f),
            GtidSet::MariaDb(pos) => pos.fmt(f),
        }
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MySql(gtid) => gtid.fmt(f),
            Gtid::MariaDb(gtid) => gtid.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_flavors_apart_by_form() {
        let mysql: GtidSet = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
            .parse()
            .expect("mysql");
        assert_eq!(mysql.flavor(), Flavor::MySql);
        let mariadb: GtidSet = "0-1-5".parse().expect("mariadb");
        assert_eq!(mariadb.flavor(), Flavor::MariaDb);
        assert!("".parse::<GtidSet>().is_err());
        assert_eq!(
            GtidSet::parse_as(Flavor::MySql, "").expect("empty"),
            GtidSet::empty(Flavor::MySql)
        );
    }

    #[test]
    fn mixing_flavors_is_an_error() {
        let mariadb: GtidSet = "0-1-5".parse().expect("mariadb");
        let mysql_gtid: Gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:3"
            .parse()
            .expect("gtid");
        let err = mariadb.contains(&mysql_gtid).expect_err("flavors differ");
        assert!(err.to_string().contains("different flavors"), "{err}");
        let mysql = GtidSet::empty(Flavor::MySql);
        assert!(mysql.is_subset_of(&mariadb).is_err());
    }

    #[test]
    fn add_then_contains() {
        let mut set = GtidSet::empty(Flavor::MariaDb);
        let gtid: Gtid = "0-1-9".parse().expect("gtid");
        assert!(!set.contains(&gtid).expect("same flavor"));
        set.add(&gtid).expect("same flavor");
        assert!(set.contains(&gtid).expect("same flavor"));
        assert_eq!(set.to_string(), "0-1-9");
    }
}
