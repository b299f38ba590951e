//! Which tables and columns are captured: include/exclude lists of regular expressions that
//! must match the whole name (as Debezium's `*.include.list` options do).

use regex::Regex;
use rowferry_shared::event::{TableId, TableSchema};

use crate::config::FilterConfig;

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    include_databases: Vec<Regex>,
    exclude_databases: Vec<Regex>,
    include_tables: Vec<Regex>,
    exclude_tables: Vec<Regex>,
    exclude_columns: Vec<Regex>,
}

/// A filter that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A pattern that is not a valid regular expression.
    #[error("invalid pattern {pattern:?} in filter.{list}: {source}")]
    Pattern {
        list: &'static str,
        pattern: String,
        source: regex::Error,
    },
    /// An excluded column identifies the table's rows.
    #[error(
        "filter.exclude_columns removes `{column}`, a key column of {table}; records need their \
         key: narrow the pattern"
    )]
    KeyColumn { table: String, column: String },
}

fn compile(list: &'static str, patterns: &[String]) -> Result<Vec<Regex>, FilterError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$")).map_err(|source| FilterError::Pattern {
                list,
                pattern: p.clone(),
                source,
            })
        })
        .collect()
}

fn any(patterns: &[Regex], text: &str) -> bool {
    patterns.iter().any(|p| p.is_match(text))
}

impl Filter {
    /// Compiles the configured lists.
    pub fn new(config: &FilterConfig) -> Result<Self, FilterError> {
        Ok(Self {
            include_databases: compile("include_databases", &config.include_databases)?,
            exclude_databases: compile("exclude_databases", &config.exclude_databases)?,
            include_tables: compile("include_tables", &config.include_tables)?,
            exclude_tables: compile("exclude_tables", &config.exclude_tables)?,
            exclude_columns: compile("exclude_columns", &config.exclude_columns)?,
        })
    }

    /// Whether changes of `table` are captured.
    pub fn includes_table(&self, table: &TableId) -> bool {
        if any(&self.exclude_databases, &table.db) {
            return false;
        }
        if !self.include_databases.is_empty() && !any(&self.include_databases, &table.db) {
            return false;
        }
        let name = format!("{}.{}", table.db, table.table);
        if any(&self.exclude_tables, &name) {
            return false;
        }
        self.include_tables.is_empty() || any(&self.include_tables, &name)
    }

    /// Indexes of `schema`'s columns that are left out of records.
    pub fn excluded_columns(&self, schema: &TableSchema) -> Vec<usize> {
        if self.exclude_columns.is_empty() {
            return Vec::new();
        }
        schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let name = format!("{}.{}.{}", schema.id.db, schema.id.table, c.name);
                any(&self.exclude_columns, &name)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(config: FilterConfig) -> Filter {
        match Filter::new(&config) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn empty_lists_capture_everything() {
        let f = filter(FilterConfig::default());
        assert!(f.includes_table(&TableId::new("a", "b")));
    }

    #[test]
    fn patterns_match_whole_names() {
        let f = filter(FilterConfig {
            include_databases: vec!["shop_.*".into()],
            exclude_tables: vec!["shop_eu\\.audit".into()],
            ..Default::default()
        });
        assert!(f.includes_table(&TableId::new("shop_eu", "orders")));
        assert!(!f.includes_table(&TableId::new("shop_eu", "audit")));
        assert!(
            !f.includes_table(&TableId::new("myshop_eu", "orders")),
            "anchored"
        );
        assert!(!f.includes_table(&TableId::new("other", "orders")));
    }

    #[test]
    fn bad_patterns_are_named() {
        let err = Filter::new(&FilterConfig {
            include_tables: vec!["db.(".into()],
            ..Default::default()
        })
        .err()
        .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("include_tables") && e.contains("db.("))
        );
    }
}
