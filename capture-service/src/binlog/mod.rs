//! The binlog, decoded: events framed and checked, table maps turned into schemas, row images
//! into typed rows.
//!
//! mysql_common frames events and parses the common ones (FORMAT_DESCRIPTION, QUERY, ROTATE,
//! XID, GTID, TABLE_MAP, TRANSACTION_PAYLOAD). MariaDB's own events, ROWS event bodies and row
//! images are decoded here, with every length checked, so that a corrupt or truncated binlog
//! gives an error that says where, never a panic.

pub mod charset;
pub mod decoder;
pub mod events;
pub mod file;
mod json_diff;
pub mod mariadb;
pub mod row_image;
pub mod table_map;

use rowferry_shared::event::TableId;

/// Why a binlog event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes contradict the format.
    #[error("corrupt binlog: {what}")]
    Corrupt { what: String },
    /// The data ended before the format said it would.
    #[error("truncated {what}: {needed} more bytes needed, {left} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        left: usize,
    },
    /// The event's checksum does not match its bytes.
    #[error(
        "binlog event at {position} fails its CRC32 checksum (stored {stored:08x}, computed \
         {computed:08x}): the binlog is corrupt; restore it or seek past it"
    )]
    Checksum {
        position: u64,
        stored: u32,
        computed: u32,
    },
    /// Neither the binlog nor information_schema described the table.
    #[error(
        "{table}: the binlog carries no column metadata for this table; set \
         binlog_row_metadata=FULL on the source (or let rowferry read information_schema)"
    )]
    NoMetadata { table: TableId },
    /// The information_schema definition does not match the binlog's table map.
    #[error(
        "{table}: the binlog row has {binlog} columns but information_schema lists \
         {information_schema}; the table was altered after this event. Set \
         binlog_row_metadata=FULL on the source so the binlog describes every row itself"
    )]
    DefinitionMismatch {
        table: TableId,
        binlog: usize,
        information_schema: usize,
    },
    /// A column type rowferry cannot decode.
    #[error(
        "{table}: column {column} has binlog type {wire_type}, which rowferry does not support"
    )]
    UnsupportedType {
        table: TableId,
        column: usize,
        wire_type: u8,
    },
    /// A collation id that could not be resolved.
    #[error("column {column}: {source}")]
    Charset {
        column: usize,
        source: charset::CharsetError,
    },
    /// Text that does not decode in its charset.
    #[error(transparent)]
    Text(#[from] charset::CharsetError),
    /// An ENUM index or SET bitmap beyond the column's members.
    #[error("ENUM/SET value {index} is outside the column's {members} members")]
    MemberOutOfRange { index: u64, members: usize },
    /// A row image without every column.
    #[error(
        "{table}: the row image lacks column `{column}` because binlog_row_image is not FULL; \
         set binlog_row_image=FULL on the source"
    )]
    PartialRowImage { table: TableId, column: String },
    /// A value that could not be decoded, with where it was.
    #[error("{table}.{column}: {reason}")]
    Value {
        table: TableId,
        column: String,
        reason: String,
    },
    /// A ROWS event for a table id no TABLE_MAP introduced.
    #[error("ROWS event for table id {table_id} without a preceding TABLE_MAP event")]
    UnknownTable { table_id: u64 },
    /// mysql_common refused the event.
    #[error("corrupt binlog: {0}")]
    Parse(#[from] std::io::Error),
}

impl DecodeError {
    /// Names the table and column a value error happened in.
    fn in_column(self, table: &TableId, column: &str) -> DecodeError {
        match self {
            DecodeError::Value { .. } => self,
            other => DecodeError::Value {
                table: table.clone(),
                column: column.to_owned(),
                reason: other.to_string(),
            },
        }
    }
}
