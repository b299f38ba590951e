//! Snapshots: the rows that exist before streaming starts, delivered as `op = r` records.
//!
//! The initial snapshot ([`initial`]) reads every included table inside a consistent-snapshot
//! transaction whose binlog point the source reports, in primary-key chunks, several tables in
//! parallel; its progress is committed with each Kafka transaction ([`progress`]), so a
//! restart resumes after the last committed chunk. Streaming then starts at the earliest point
//! and [`overlap`] skips the changes a table's snapshot already holds.

pub mod incremental;
pub mod initial;
pub mod overlap;
pub mod progress;
pub mod reader;
pub mod records;
pub mod tables;
pub mod values;

use crate::filter::FilterError;
use crate::source::SourceError;

/// Why a snapshot cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The source failed or refused.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A key column is excluded by the filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A column type rowferry cannot read.
    #[error(
        "snapshot of {table}: column `{column}` has type {column_type}, which rowferry cannot \
         read; exclude the column (filter.exclude_columns) or the table"
    )]
    UnsupportedType {
        table: String,
        column: String,
        column_type: String,
    },
    /// A value does not fit its column's type.
    #[error("snapshot of {table}: {source}")]
    Value {
        table: String,
        source: values::ValueError,
    },
    /// A key value cannot be stored to resume from.
    #[error("snapshot of {table}: a key column holds NULL or a value that cannot order the chunks")]
    KeyValue { table: String },
    /// The table was dropped while the snapshot ran.
    #[error("snapshot of {table}: the table no longer exists on the source")]
    Vanished { table: String },
    /// A worker task ended abnormally.
    #[error("snapshot worker: {0}")]
    Worker(String),
}

impl SnapshotError {
    /// Whether retrying (resuming from the last committed chunk) can help.
    pub fn is_transient(&self) -> bool {
        match self {
            SnapshotError::Source(e) => e.is_transient(),
            _ => false,
        }
    }
}
