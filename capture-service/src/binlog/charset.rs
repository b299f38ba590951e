//! Column character sets: which collation ids exist, how wide their characters are, and how
//! their bytes become UTF-8 text.
//!
//! The binlog names a column's collation by number. A live source tells us what each number
//! means (`information_schema.COLLATIONS`, which also knows MariaDB's own ids); recordings fall
//! back to mysql_common's table of MySQL collations.

use std::collections::HashMap;

use encoding_rs::Encoding;
use mysql_common::collations::{Collation, CollationId};

/// The binary pseudo-charset: BINARY, VARBINARY and BLOB columns.
pub const BINARY_COLLATION: u16 = 63;

/// What a collation id means for decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charset {
    /// Character set name (`utf8mb4`, `latin1`, `binary`).
    pub name: String,
    /// Most bytes one character takes (turns a byte length into a character length).
    pub max_len: u8,
}

impl Charset {
    /// Whether this is the binary pseudo-charset.
    pub fn is_binary(&self) -> bool {
        self.name == "binary"
    }

    /// Decodes column bytes into text. Invalid sequences are an error, never replaced silently.
    pub fn decode(&self, bytes: &[u8]) -> Result<String, CharsetError> {
        match self.name.as_str() {
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => {
                String::from_utf8(bytes.to_vec()).map_err(|_| CharsetError::Invalid {
                    charset: self.name.clone(),
                })
            }
            // MySQL's latin1 is Windows-1252 with the five unassigned bytes kept as C1
            // controls, which is exactly what the WHATWG windows-1252 decoder does.
            "latin1" => Ok(encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned()),
            "binary" => Err(CharsetError::Binary),
            other => {
                let encoding = encoding_for(other).ok_or_else(|| CharsetError::Unsupported {
                    charset: other.to_owned(),
                })?;
                let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
                if had_errors {
                    return Err(CharsetError::Invalid {
                        charset: self.name.clone(),
                    });
                }
                Ok(text.into_owned())
            }
        }
    }
}

/// Text that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharsetError {
    /// The bytes are not valid in the column's charset.
    #[error("bytes are not valid {charset}")]
    Invalid { charset: String },
    /// No decoder for this charset.
    #[error(
        "character set {charset} is not supported; convert the column to utf8mb4 \
         (ALTER TABLE … CONVERT TO CHARACTER SET utf8mb4)"
    )]
    Unsupported { charset: String },
    /// A binary column was asked for text.
    #[error("binary data has no text form")]
    Binary,
    /// The binlog names a collation id the source does not know.
    #[error("unknown collation id {0}")]
    UnknownCollation(u16),
}

/// MySQL charset names that encoding_rs decodes under another name.
fn encoding_for(mysql_name: &str) -> Option<&'static Encoding> {
    let label = match mysql_name {
        "cp1250" => "windows-1250",
        "cp1251" => "windows-1251",
        "cp1256" => "windows-1256",
        "cp1257" => "windows-1257",
        "latin2" => "iso-8859-2",
        "latin7" => "iso-8859-13",
        "greek" => "iso-8859-7",
        "hebrew" => "iso-8859-8",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "sjis" | "cp932" => "shift_jis",
        "ujis" | "eucjpms" => "euc-jp",
        "euckr" => "euc-kr",
        "gbk" | "gb2312" => "gbk",
        "gb18030" => "gb18030",
        "big5" => "big5",
        "utf16" => "utf-16be",
        "utf16le" => "utf-16le",
        _ => return None,
    };
    Encoding::for_label(label.as_bytes())
}

/// Collation ids and what they mean, for one source.
#[derive(Debug, Clone, Default)]
pub struct CollationTable {
    by_id: HashMap<u16, Charset>,
}

impl CollationTable {
    /// A table from `(id, charset name, max bytes per character)` rows, as
    /// `information_schema.COLLATIONS` joined with `CHARACTER_SETS` gives them.
    pub fn from_rows(rows: impl IntoIterator<Item = (u16, String, u8)>) -> Self {
        let by_id = rows
            .into_iter()
            .map(|(id, name, max_len)| (id, Charset { name, max_len }))
            .collect();
        Self { by_id }
    }

    /// The SQL that lists a live server's collations for [`CollationTable::from_rows`].
    pub const QUERY: &'static str = "SELECT co.ID, co.CHARACTER_SET_NAME, cs.MAXLEN \
         FROM information_schema.COLLATIONS co \
         JOIN information_schema.CHARACTER_SETS cs USING (CHARACTER_SET_NAME) \
         WHERE co.ID IS NOT NULL";

    /// Most bytes per character of the charset called `name`.
    pub fn max_len_of_charset(&self, name: &str) -> u8 {
        if let Some(charset) = self.by_id.values().find(|c| c.name == name) {
            return charset.max_len;
        }
        for suffix in ["_general_ci", "_bin", "_0900_ai_ci"] {
            let id = CollationId::from(format!("{name}{suffix}").as_str());
            if id != CollationId::UNKNOWN_COLLATION_ID {
                return Collation::from(id).max_len();
            }
        }
        1
    }

    /// What `id` means: from the live table when there is one, else from MySQL's built-in list.
    pub fn charset(&self, id: u16) -> Result<Charset, CharsetError> {
        if let Some(charset) = self.by_id.get(&id) {
            return Ok(charset.clone());
        }
        let collation_id = CollationId::from(id);
        if collation_id == CollationId::UNKNOWN_COLLATION_ID {
            return Err(CharsetError::UnknownCollation(id));
        }
        let collation = Collation::from(collation_id);
        Ok(Charset {
            name: collation.charset().to_owned(),
            max_len: collation.max_len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_windows_1252() {
        let latin1 = Charset {
            name: "latin1".into(),
            max_len: 1,
        };
        assert_eq!(
            latin1.decode(b"na\xefve \x80").ok().as_deref(),
            Some("naïve €")
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_replacement() {
        let utf8 = Charset {
            name: "utf8mb4".into(),
            max_len: 4,
        };
        assert!(matches!(
            utf8.decode(b"\xff"),
            Err(CharsetError::Invalid { .. })
        ));
        assert_eq!(utf8.decode("☕".as_bytes()).ok().as_deref(), Some("☕"));
    }

    #[test]
    fn falls_back_to_the_builtin_list() {
        let table = CollationTable::default();
        let utf8mb4 = table.charset(45).ok();
        assert_eq!(
            utf8mb4.map(|c| (c.name, c.max_len)),
            Some(("utf8mb4".into(), 4))
        );
        assert!(table.charset(BINARY_COLLATION).is_ok_and(|c| c.is_binary()));
        assert!(matches!(
            table.charset(9999),
            Err(CharsetError::UnknownCollation(9999))
        ));
    }

    #[test]
    fn live_rows_win_over_the_builtin_list() {
        let table = CollationTable::from_rows([(45, "custom".to_owned(), 2)]);
        assert_eq!(
            table.charset(45).ok().map(|c| c.name),
            Some("custom".into())
        );
    }
}
