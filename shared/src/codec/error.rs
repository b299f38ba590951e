//! Why a record could not be encoded or decoded.
//!
//! Every encoding error is definite: the same event fails the same way on every retry, so the
//! pipeline stops instead of retrying. They name the table and column so that the operator can
//! find the row or the schema that capture got wrong.

use std::fmt;

use crate::event::{ColumnType, TableId};

/// The column an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// The table.
    pub table: TableId,
    /// The column's name.
    pub column: String,
    /// The column's type.
    pub column_type: ColumnType,
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "column `{}` ({}) of {}",
            self.column, self.column_type, self.table
        )
    }
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A value's kind does not match its column's type, or a NOT NULL column holds NULL.
    #[error(
        "cannot encode {column}: a {found} value does not fit it; the row does not match its table schema"
    )]
    ValueDoesNotFit {
        /// The column.
        column: Box<ColumnRef>,
        /// What kind of value it held (`text`, `null`, …).
        found: &'static str,
    },
    /// A value of the right kind that its column cannot hold or the format cannot express.
    #[error("cannot encode {column}: {reason}")]
    ValueOutOfRange {
        /// The column.
        column: Box<ColumnRef>,
        /// What is wrong with the value.
        reason: String,
    },
    /// A row image has more or fewer values than its table has columns.
    #[error(
        "cannot encode a row of {table}: it has {found} values but the table schema has {expected} columns"
    )]
    RowLengthMismatch {
        /// The table.
        table: TableId,
        /// Columns in the table schema.
        expected: usize,
        /// Values in the row.
        found: usize,
    },
    /// The table's key names a column the table does not have.
    #[error(
        "cannot encode keys of {table}: its key names column index {index} but the table has {columns} columns"
    )]
    KeyColumnMissing {
        /// The table.
        table: TableId,
        /// The key's column index.
        index: usize,
        /// Columns in the table schema.
        columns: usize,
    },
    /// A value format name that is not one of ours.
    #[error("unknown value format {name:?}; expected \"debezium-json\" or \"protobuf\"")]
    UnknownValueFormat {
        /// The name as given.
        name: String,
    },
    /// Protobuf bytes that are not a valid message.
    #[error("cannot decode protobuf record: {0}")]
    DecodeProtobuf(#[from] prost::DecodeError),
    /// prost refused to encode a message (only happens when a buffer is full).
    #[error("cannot encode protobuf record: {0}")]
    EncodeProtobuf(#[from] prost::EncodeError),
}
