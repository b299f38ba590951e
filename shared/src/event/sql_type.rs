//! Reading a column type back from SQL: `information_schema.COLUMNS.COLUMN_TYPE`
//! (`int(10) unsigned`, `decimal(10,2)`, `enum('a','b')`) into a [`ColumnType`].

use super::{ColumnType, LobSize};

impl ColumnType {
    /// Parses a `COLUMN_TYPE` as MySQL and MariaDB report it (also the type names of DDL).
    /// `None` for a type rowferry does not know (MariaDB's `inet6`, `uuid`…).
    pub fn from_sql(column_type: &str) -> Option<ColumnType> {
        let text = column_type.trim();
        let lower = text.to_ascii_lowercase();
        let (name, args, rest) = match lower.find('(') {
            Some(open) => {
                let close = matching_paren(&lower, open)?;
                (
                    lower[..open].trim(),
                    &text[open + 1..close],
                    lower[close + 1..].trim(),
                )
            }
            None => {
                let mut words = lower.splitn(2, ' ');
                let name = words.next().unwrap_or_default();
                (name, "", words.next().unwrap_or_default().trim())
            }
        };
        let unsigned = rest.split_whitespace().any(|w| w == "unsigned");
        let numbers: Vec<u32> = args
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let first = numbers.first().copied();
        let fsp = || first.and_then(|n| u8::try_from(n).ok()).unwrap_or(0);
        Some(match name {
            "tinyint" | "bool" | "boolean" => ColumnType::TinyInt { unsigned },
            "smallint" => ColumnType::SmallInt { unsigned },
            "mediumint" => ColumnType::MediumInt { unsigned },
            "int" | "integer" => ColumnType::Int { unsigned },
            "bigint" => ColumnType::BigInt { unsigned },
            "decimal" | "numeric" | "dec" | "fixed" => ColumnType::Decimal {
                precision: first.and_then(|n| u8::try_from(n).ok()).unwrap_or(10),
                scale: numbers
                    .get(1)
                    .and_then(|n| u8::try_from(*n).ok())
                    .unwrap_or(0),
            },
            "float" => ColumnType::Float,
            "double" | "real" | "double precision" => ColumnType::Double,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time { fsp: fsp() },
            "datetime" => ColumnType::DateTime { fsp: fsp() },
            "timestamp" => ColumnType::Timestamp { fsp: fsp() },
            "year" => ColumnType::Year,
            "char" => ColumnType::Char {
                length: first.unwrap_or(1),
            },
            "varchar" => ColumnType::VarChar { length: first? },
            "tinytext" => ColumnType::Text {
                size: LobSize::Tiny,
            },
            "text" => ColumnType::Text {
                size: LobSize::Regular,
            },
            "mediumtext" => ColumnType::Text {
                size: LobSize::Medium,
            },
            "longtext" => ColumnType::Text {
                size: LobSize::Long,
            },
            "binary" => ColumnType::Binary {
                length: first.unwrap_or(1),
            },
            "varbinary" => ColumnType::VarBinary { length: first? },
            "tinyblob" => ColumnType::Blob {
                size: LobSize::Tiny,
            },
            "blob" => ColumnType::Blob {
                size: LobSize::Regular,
            },
            "mediumblob" => ColumnType::Blob {
                size: LobSize::Medium,
            },
            "longblob" => ColumnType::Blob {
                size: LobSize::Long,
            },
            "enum" => ColumnType::Enum {
                members: quoted_members(args),
            },
            "set" => ColumnType::Set {
                members: quoted_members(args),
            },
            "bit" => ColumnType::Bit {
                bits: first.and_then(|n| u8::try_from(n).ok()).unwrap_or(1),
            },
            "json" => ColumnType::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnType::Geometry,
            "vector" => ColumnType::Vector { dimensions: first? },
            _ => return None,
        })
    }
}

fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let mut quoted = false;
    let bytes = text.as_bytes();
    let mut i = open + 1;
    while i < bytes.len() {
        match (bytes[i], quoted) {
            (b'\'', false) => quoted = true,
            (b'\'', true) if bytes.get(i + 1) == Some(&b'\'') => i += 1,
            (b'\'', true) => quoted = false,
            (b'\\', true) => i += 1,
            (b')', false) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The members of an ENUM/SET argument list as information_schema writes it
/// (`'a','it''s','c,d'`).
pub fn quoted_members(args: &str) -> Vec<String> {
    let mut members = Vec::new();
    let mut current = String::new();
    let mut chars = args.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('\'', false) => quoted = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            ('\'', true) => {
                quoted = false;
                members.push(std::mem::take(&mut current));
            }
            ('\\', true) => current.extend(chars.next()),
            (c, true) => current.push(c),
            _ => {}
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_information_schema_types() {
        let cases = [
            ("int(10) unsigned", ColumnType::Int { unsigned: true }),
            ("bigint(20)", ColumnType::BigInt { unsigned: false }),
            ("tinyint(1)", ColumnType::TinyInt { unsigned: false }),
            (
                "decimal(65,30)",
                ColumnType::Decimal {
                    precision: 65,
                    scale: 30,
                },
            ),
            ("datetime(6)", ColumnType::DateTime { fsp: 6 }),
            ("timestamp", ColumnType::Timestamp { fsp: 0 }),
            ("varchar(255)", ColumnType::VarChar { length: 255 }),
            ("binary(16)", ColumnType::Binary { length: 16 }),
            (
                "mediumblob",
                ColumnType::Blob {
                    size: LobSize::Medium,
                },
            ),
            ("bit(12)", ColumnType::Bit { bits: 12 }),
            ("year(4)", ColumnType::Year),
            ("point", ColumnType::Geometry),
            ("json", ColumnType::Json),
        ];
        for (text, expected) in cases {
            assert_eq!(ColumnType::from_sql(text), Some(expected), "{text}");
        }
        assert_eq!(
            ColumnType::from_sql("enum('a','it''s','c,d)')"),
            Some(ColumnType::Enum {
                members: vec!["a".into(), "it's".into(), "c,d)".into()]
            })
        );
        assert_eq!(ColumnType::from_sql("inet6"), None);
    }

    #[test]
    fn every_printed_type_reads_back() {
        let types = [
            ColumnType::MediumInt { unsigned: true },
            ColumnType::Time { fsp: 3 },
            ColumnType::Text {
                size: LobSize::Tiny,
            },
            ColumnType::Set {
                members: vec!["x".into(), "y'z".into()],
            },
            ColumnType::VarBinary { length: 9 },
            ColumnType::Vector { dimensions: 4 },
        ];
        for t in types {
            assert_eq!(ColumnType::from_sql(&t.to_string()), Some(t.clone()), "{t}");
        }
    }
}
