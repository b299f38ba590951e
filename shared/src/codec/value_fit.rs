//! Whether a value fits its column: the check both formats make before writing a value.
//!
//! Capture builds values from the same TABLE_MAP as the schema, so a misfit means a capture
//! bug or a schema that does not belong to the row. Either way the record must not be written
//! with a guess; the encoder returns [`CodecError`] instead.

use crate::event::{ColumnSchema, ColumnType, TableSchema, Value};

use super::{CodecError, ColumnRef};

/// A short name for a value's kind, for error messages.
pub(crate) fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Int(_) => "signed integer",
        Value::UInt(_) => "unsigned integer",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Decimal(_) => "decimal",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::DateTime(_) => "datetime",
        Value::Timestamp(_) => "timestamp",
        Value::Year(_) => "year",
        Value::Enum(_) => "enum",
        Value::Set(_) => "set",
        Value::Bit(_) => "bit",
        Value::Json(_) => "json",
    }
}

/// The error for a value whose kind does not fit its column.
pub(crate) fn does_not_fit(
    table: &TableSchema,
    column: &ColumnSchema,
    value: &Value,
) -> CodecError {
    CodecError::ValueDoesNotFit {
        column: column_ref(table, column),
        found: value_kind(value),
    }
}

/// The error for a value of the right kind that cannot be written.
pub(crate) fn out_of_range(
    table: &TableSchema,
    column: &ColumnSchema,
    reason: impl Into<String>,
) -> CodecError {
    CodecError::ValueOutOfRange {
        column: column_ref(table, column),
        reason: reason.into(),
    }
}

fn column_ref(table: &TableSchema, column: &ColumnSchema) -> Box<ColumnRef> {
    Box::new(ColumnRef {
        table: table.id.clone(),
        column: column.name.clone(),
        column_type: column.column_type.clone(),
    })
}

/// Checks that a row image has one value per column.
pub(crate) fn check_row_length(table: &TableSchema, row: &[Value]) -> Result<(), CodecError> {
    if row.len() == table.columns.len() {
        Ok(())
    } else {
        Err(CodecError::RowLengthMismatch {
            table: table.id.clone(),
            expected: table.columns.len(),
            found: row.len(),
        })
    }
}

/// Checks that `value` is of the kind `column` holds and within its range.
///
/// Integer columns accept signed and unsigned values alike, as long as the number is in the
/// column's range.
pub(crate) fn check_value_fits(
    table: &TableSchema,
    column: &ColumnSchema,
    value: &Value,
) -> Result<(), CodecError> {
    let fits = match (&column.column_type, value) {
        (_, Value::Null) => column.nullable,
        (ColumnType::TinyInt { unsigned }, _) => {
            return check_integer(table, column, value, *unsigned, 8);
        }
        (ColumnType::SmallInt { unsigned }, _) => {
            return check_integer(table, column, value, *unsigned, 16);
        }
        (ColumnType::MediumInt { unsigned }, _) => {
            return check_integer(table, column, value, *unsigned, 24);
        }
        (ColumnType::Int { unsigned }, _) => {
            return check_integer(table, column, value, *unsigned, 32);
        }
        (ColumnType::BigInt { unsigned }, _) => {
            return check_integer(table, column, value, *unsigned, 64);
        }
        (ColumnType::Float, Value::Float(v)) => {
            return finite(table, column, v.is_finite());
        }
        (ColumnType::Double, Value::Double(v)) => {
            return finite(table, column, v.is_finite());
        }
        (ColumnType::Geometry, Value::Bytes(bytes)) if bytes.len() < 4 => {
            return Err(out_of_range(
                table,
                column,
                format!(
                    "a geometry value starts with a 4-byte SRID, but this one has only {} bytes",
                    bytes.len()
                ),
            ));
        }
        (ColumnType::Vector { .. }, Value::Bytes(bytes)) if bytes.len() % 4 != 0 => {
            return Err(out_of_range(
                table,
                column,
                format!(
                    "a vector value is a sequence of 4-byte floats, but this one has {} bytes",
                    bytes.len()
                ),
            ));
        }
        (ColumnType::Decimal { .. }, Value::Decimal(_))
        | (ColumnType::Date, Value::Date(_))
        | (ColumnType::Time { .. }, Value::Time(_))
        | (ColumnType::DateTime { .. }, Value::DateTime(_))
        | (ColumnType::Timestamp { .. }, Value::Timestamp(_))
        | (ColumnType::Year, Value::Year(_))
        | (
            ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Text { .. },
            Value::Text(_),
        )
        | (
            ColumnType::Binary { .. }
            | ColumnType::VarBinary { .. }
            | ColumnType::Blob { .. }
            | ColumnType::Geometry
            | ColumnType::Vector { .. },
            Value::Bytes(_),
        )
        | (ColumnType::Enum { .. }, Value::Enum(_))
        | (ColumnType::Set { .. }, Value::Set(_))
        | (ColumnType::Bit { .. }, Value::Bit(_))
        | (ColumnType::Json, Value::Json(_)) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(does_not_fit(table, column, value))
    }
}

fn check_integer(
    table: &TableSchema,
    column: &ColumnSchema,
    value: &Value,
    unsigned: bool,
    bits: u32,
) -> Result<(), CodecError> {
    let number = match value {
        Value::Int(v) => i128::from(*v),
        Value::UInt(v) => i128::from(*v),
        _ => return Err(does_not_fit(table, column, value)),
    };
    let (min, max) = if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    };
    if (min..=max).contains(&number) {
        Ok(())
    } else {
        Err(out_of_range(
            table,
            column,
            format!("{number} is outside the column's range {min}..={max}"),
        ))
    }
}

fn finite(table: &TableSchema, column: &ColumnSchema, is_finite: bool) -> Result<(), CodecError> {
    if is_finite {
        Ok(())
    } else {
        Err(out_of_range(
            table,
            column,
            "NaN and infinities cannot be stored in MySQL nor written as JSON numbers",
        ))
    }
}
