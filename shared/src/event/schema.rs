//! Table and column definitions, as far as change events need them.
//!
//! Capture builds a [`TableSchema`] from the binlog's TABLE_MAP event (with full row metadata:
//! names, signedness, charsets, ENUM/SET members, primary key) so that the schema always matches
//! the row being decoded, not whatever the table looks like now.

use std::fmt;
use std::sync::Arc;

/// A table's identity: database (schema) and table name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    /// Database name.
    pub db: String,
    /// Table name.
    pub table: String,
}

impl TableId {
    /// `db`.`table`.
    pub fn new(db: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            db: db.into(),
            table: table.into(),
        }
    }

    /// The table as a quoted SQL identifier: `` `db`.`table` ``.
    pub fn quoted(&self) -> String {
        format!(
            "{}.{}",
            quote_identifier(&self.db),
            quote_identifier(&self.table)
        )
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

/// Quotes a MySQL identifier with backticks, doubling any backtick inside it.
pub fn quote_identifier(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('`');
    for c in name.chars() {
        if c == '`' {
            quoted.push('`');
        }
        quoted.push(c);
    }
    quoted.push('`');
    quoted
}

/// Size class of TEXT and BLOB columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LobSize {
    /// TINYTEXT / TINYBLOB: up to 255 bytes.
    Tiny,
    /// TEXT / BLOB: up to 64 KiB.
    Regular,
    /// MEDIUMTEXT / MEDIUMBLOB: up to 16 MiB.
    Medium,
    /// LONGTEXT / LONGBLOB: up to 4 GiB.
    Long,
}

impl LobSize {
    /// The size class whose length prefix has `bytes` bytes (1–4).
    pub fn from_length_bytes(bytes: u8) -> Option<Self> {
        match bytes {
            1 => Some(Self::Tiny),
            2 => Some(Self::Regular),
            3 => Some(Self::Medium),
            4 => Some(Self::Long),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Regular => "",
            Self::Medium => "medium",
            Self::Long => "long",
        }
    }
}

/// A column's SQL type with the parameters that change how its values are read and written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// TINYINT.
    TinyInt { unsigned: bool },
    /// SMALLINT.
    SmallInt { unsigned: bool },
    /// MEDIUMINT.
    MediumInt { unsigned: bool },
    /// INT.
    Int { unsigned: bool },
    /// BIGINT.
    BigInt { unsigned: bool },
    /// DECIMAL(precision, scale).
    Decimal { precision: u8, scale: u8 },
    /// FLOAT.
    Float,
    /// DOUBLE.
    Double,
    /// DATE.
    Date,
    /// TIME(fsp).
    Time { fsp: u8 },
    /// DATETIME(fsp).
    DateTime { fsp: u8 },
    /// TIMESTAMP(fsp).
    Timestamp { fsp: u8 },
    /// YEAR.
    Year,
    /// CHAR(length), length in characters.
    Char { length: u32 },
    /// VARCHAR(length), length in characters.
    VarChar { length: u32 },
    /// TINYTEXT … LONGTEXT.
    Text { size: LobSize },
    /// BINARY(length).
    Binary { length: u32 },
    /// VARBINARY(length).
    VarBinary { length: u32 },
    /// TINYBLOB … LONGBLOB.
    Blob { size: LobSize },
    /// ENUM with its members in definition order.
    Enum { members: Vec<String> },
    /// SET with its members in definition order.
    Set { members: Vec<String> },
    /// BIT(bits), 1–64.
    Bit { bits: u8 },
    /// JSON (MariaDB: a LONGTEXT alias, reported as such by the binlog).
    Json,
    /// GEOMETRY and its subtypes (values: 4-byte SRID + WKB).
    Geometry,
    /// VECTOR(dimensions) (MySQL 9).
    Vector { dimensions: u32 },
}

impl ColumnType {
    /// Whether values of this type are character data decoded with a charset.
    pub fn is_character(&self) -> bool {
        matches!(
            self,
            ColumnType::Char { .. }
                | ColumnType::VarChar { .. }
                | ColumnType::Text { .. }
                | ColumnType::Enum { .. }
                | ColumnType::Set { .. }
        )
    }
}

impl fmt::Display for ColumnType {
    /// The type as SQL DDL writes it (`decimal(10,2)`, `bigint unsigned`, `enum('a','b')`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unsigned = |u: bool| if u { " unsigned" } else { "" };
        match self {
            ColumnType::TinyInt { unsigned: u } => write!(f, "tinyint{}", unsigned(*u)),
            ColumnType::SmallInt { unsigned: u } => write!(f, "smallint{}", unsigned(*u)),
            ColumnType::MediumInt { unsigned: u } => write!(f, "mediumint{}", unsigned(*u)),
            ColumnType::Int { unsigned: u } => write!(f, "int{}", unsigned(*u)),
            ColumnType::BigInt { unsigned: u } => write!(f, "bigint{}", unsigned(*u)),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Time { fsp } => write_fsp(f, "time", *fsp),
            ColumnType::DateTime { fsp } => write_fsp(f, "datetime", *fsp),
            ColumnType::Timestamp { fsp } => write_fsp(f, "timestamp", *fsp),
            ColumnType::Year => f.write_str("year"),
            ColumnType::Char { length } => write!(f, "char({length})"),
            ColumnType::VarChar { length } => write!(f, "varchar({length})"),
            ColumnType::Text { size } => write!(f, "{}text", size.prefix()),
            ColumnType::Binary { length } => write!(f, "binary({length})"),
            ColumnType::VarBinary { length } => write!(f, "varbinary({length})"),
            ColumnType::Blob { size } => write!(f, "{}blob", size.prefix()),
            ColumnType::Enum { members } => write_members(f, "enum", members),
            ColumnType::Set { members } => write_members(f, "set", members),
            ColumnType::Bit { bits } => write!(f, "bit({bits})"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Geometry => f.write_str("geometry"),
            ColumnType::Vector { dimensions } => write!(f, "vector({dimensions})"),
        }
    }
}

fn write_fsp(f: &mut fmt::Formatter<'_>, name: &str, fsp: u8) -> fmt::Result {
    if fsp == 0 {
        f.write_str(name)
    } else {
        write!(f, "{name}({fsp})")
    }
}

fn write_members(f: &mut fmt::Formatter<'_>, name: &str, members: &[String]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "'{}'", member.replace('\\', "\\\\").replace('\'', "''"))?;
    }
    f.write_str(")")
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// SQL type.
    pub column_type: ColumnType,
    /// Whether the column accepts NULL.
    pub nullable: bool,
    /// Character set of a character column (`utf8mb4`, `latin1`); `None` for other types.
    pub charset: Option<String>,
}

/// Which columns identify a row, and where that choice came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowKey {
    /// The primary key: column indexes in key order.
    Primary(Vec<usize>),
    /// No primary key; a UNIQUE key over NOT NULL columns stands in (as Debezium does).
    Unique(Vec<usize>),
    /// No usable key: records have a null Kafka key.
    None,
}

impl RowKey {
    /// The key's column indexes (empty for [`RowKey::None`]).
    pub fn columns(&self) -> &[usize] {
        match self {
            RowKey::Primary(columns) | RowKey::Unique(columns) => columns,
            RowKey::None => &[],
        }
    }
}

/// A table's columns and key, as of one point in the binlog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableSchema {
    /// Which table.
    pub id: TableId,
    /// Columns in table order.
    pub columns: Vec<ColumnSchema>,
    /// The columns that identify a row.
    pub key: RowKey,
}

/// Table schemas are shared by every event of their table.
pub type SharedTableSchema = Arc<TableSchema>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("a`b"), "`a``b`");
        assert_eq!(TableId::new("db", "t").quoted(), "`db`.`t`");
    }

    #[test]
    fn prints_ddl_types() {
        assert_eq!(
            ColumnType::BigInt { unsigned: true }.to_string(),
            "bigint unsigned"
        );
        assert_eq!(
            ColumnType::Decimal {
                precision: 65,
                scale: 30
            }
            .to_string(),
            "decimal(65,30)"
        );
        assert_eq!(ColumnType::DateTime { fsp: 6 }.to_string(), "datetime(6)");
        assert_eq!(ColumnType::Timestamp { fsp: 0 }.to_string(), "timestamp");
        assert_eq!(
            ColumnType::Text {
                size: LobSize::Medium
            }
            .to_string(),
            "mediumtext"
        );
        let members = vec!["a".to_owned(), "it's".to_owned()];
        assert_eq!(
            ColumnType::Enum { members }.to_string(),
            "enum('a','it''s')"
        );
    }
}
