//! The change event: one changed row with where it came from.
//!
//! This is the model both services share. Capture builds it from the binlog; the codecs turn
//! it into Kafka record keys and values (Debezium JSON or protobuf) and back.

mod schema;
mod sql_type;
mod value;

pub use schema::{
    ColumnSchema, ColumnType, LobSize, RowKey, SharedTableSchema, TableId, TableSchema,
    quote_identifier,
};
pub use sql_type::quoted_members;
pub use value::{Date, DateTime, Time, Timestamp, Value};

use crate::position::Flavor;

/// A row's values, one per column of its [`TableSchema`], in column order.
pub type Row = Vec<Value>;

/// What happened to a row. Each variant holds exactly the images that kind of change has.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    /// Read by a snapshot (Debezium `r`).
    Read { after: Row },
    /// Inserted (`c`).
    Insert { after: Row },
    /// Updated (`u`).
    Update { before: Row, after: Row },
    /// Deleted (`d`).
    Delete { before: Row },
}

impl RowChange {
    /// Debezium's `op` code.
    pub fn op(&self) -> &'static str {
        match self {
            RowChange::Read { .. } => "r",
            RowChange::Insert { .. } => "c",
            RowChange::Update { .. } => "u",
            RowChange::Delete { .. } => "d",
        }
    }

    /// The row before the change, if the change has one.
    pub fn before(&self) -> Option<&Row> {
        match self {
            RowChange::Update { before, .. } | RowChange::Delete { before } => Some(before),
            RowChange::Read { .. } | RowChange::Insert { .. } => None,
        }
    }

    /// The row after the change, if the change has one.
    pub fn after(&self) -> Option<&Row> {
        match self {
            RowChange::Read { after }
            | RowChange::Insert { after }
            | RowChange::Update { after, .. } => Some(after),
            RowChange::Delete { .. } => None,
        }
    }

    /// The row whose key the Kafka record carries: the new row, or the old one for a delete.
    pub fn key_row(&self) -> &Row {
        match self {
            RowChange::Read { after }
            | RowChange::Insert { after }
            | RowChange::Update { after, .. } => after,
            RowChange::Delete { before } => before,
        }
    }
}

/// Debezium's `source.snapshot` marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotMarker {
    /// Streamed from the binlog (`false`).
    No,
    /// A snapshot row (`true`).
    Yes,
    /// The first row of the snapshot (`first`).
    First,
    /// The first row of a table other than the first (`first_in_data_collection`).
    FirstInTable,
    /// The last row of a table other than the last (`last_in_data_collection`).
    LastInTable,
    /// The last row of the snapshot (`last`).
    Last,
    /// A row of an incremental snapshot (`incremental`).
    Incremental,
}

impl SnapshotMarker {
    /// Debezium's text for the marker.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::No => "false",
            SnapshotMarker::Yes => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::FirstInTable => "first_in_data_collection",
            SnapshotMarker::LastInTable => "last_in_data_collection",
            SnapshotMarker::Last => "last",
            SnapshotMarker::Incremental => "incremental",
        }
    }
}

/// Where a change was read: Debezium's `source` block.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Source flavor (Debezium's `connector` is always `mysql`; this keeps the truth).
    pub flavor: Flavor,
    /// Logical name of the capture instance (the topic prefix).
    pub name: String,
    /// Commit time of the source event, microseconds since the epoch.
    pub ts_us: i64,
    /// Snapshot marker.
    pub snapshot: SnapshotMarker,
    /// `server_id` of the server that wrote the event (0 in a snapshot).
    pub server_id: u32,
    /// GTID of the source transaction, when the source uses GTIDs.
    pub gtid: Option<String>,
    /// Binlog file of the row event.
    pub file: String,
    /// Start position of the row event in that file.
    pub pos: u64,
    /// Index of the row within its row event.
    pub row: u32,
    /// Thread id of the source session, when known.
    pub thread: Option<u64>,
    /// The SQL statement, when captured.
    pub query: Option<String>,
}

impl SourceInfo {
    /// An empty value that allocates nothing (to move a real one out of a struct and back).
    pub fn placeholder() -> Self {
        Self {
            flavor: Flavor::MySql,
            name: String::new(),
            ts_us: 0,
            snapshot: SnapshotMarker::No,
            server_id: 0,
            gtid: None,
            file: String::new(),
            pos: 0,
            row: 0,
            thread: None,
            query: None,
        }
    }
}

/// A record's place in its source transaction: Debezium's `transaction` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// Transaction id: the GTID, or `file=…,pos=…` of its BEGIN without GTIDs.
    pub id: String,
    /// 1-based order of the record in the transaction.
    pub total_order: u64,
    /// 1-based order of the record among the transaction's records of its table.
    pub data_collection_order: u64,
}

/// One changed row, ready to be encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The table's schema as of this change.
    pub schema: SharedTableSchema,
    /// The change and its row images.
    pub change: RowChange,
    /// Where it was read.
    pub source: SourceInfo,
    /// Its place in the source transaction (none for snapshot reads).
    pub transaction: Option<TransactionInfo>,
    /// When rowferry built the event, microseconds since the epoch (Debezium's `ts_us`).
    pub ts_us: i64,
}
