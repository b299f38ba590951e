//! Table maps and rows events in, typed row changes out.
//!
//! A TABLE_MAP event precedes every ROWS event, usually identical to the previous one for that
//! table id; the decoder keeps the built [`TableMap`] and reuses it (same `Arc` schema) while
//! the event stays byte-for-byte the same, so schemas are built once per table, not per row.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::binlog::events::TableMapEvent;
use rowferry_shared::event::{RowChange, TableId};

use super::DecodeError;
use super::charset::CollationTable;
use super::row_image::{RowsBody, decode_rows};
use super::table_map::{self, TableDefinition, TableMap};

struct Mapped {
    event: TableMapEvent<'static>,
    map: Arc<TableMap>,
}

/// Turns TABLE_MAP and ROWS events into row changes.
pub struct RowDecoder {
    collations: CollationTable,
    tables: HashMap<u64, Mapped>,
    definitions: HashMap<TableId, TableDefinition>,
    allow_unnamed: bool,
}

impl RowDecoder {
    /// A decoder resolving charsets with `collations`.
    pub fn new(collations: CollationTable) -> Self {
        Self {
            collations,
            tables: HashMap::new(),
            definitions: HashMap::new(),
            allow_unnamed: false,
        }
    }

    /// Names columns `@1`, `@2`… when a table has neither full metadata nor a definition
    /// (reading recordings; a live capture reads information_schema instead).
    pub fn allow_unnamed_columns(mut self) -> Self {
        self.allow_unnamed = true;
        self
    }

    /// Supplies the information_schema definition of a table whose binlog lacks metadata.
    pub fn set_definition(&mut self, table: TableId, definition: TableDefinition) {
        self.definitions.insert(table, definition);
    }

    /// Drops a definition (after DDL on the table).
    pub fn forget_definition(&mut self, table: &TableId) {
        self.definitions.remove(table);
    }

    /// Registers a TABLE_MAP event and returns its table map.
    pub fn table_map(&mut self, tme: &TableMapEvent<'_>) -> Result<Arc<TableMap>, DecodeError> {
        if let Some(mapped) = self.tables.get(&tme.table_id())
            && mapped.event == *tme
        {
            return Ok(Arc::clone(&mapped.map));
        }
        let id = TableId::new(tme.database_name(), tme.table_name());
        let map = Arc::new(table_map::build(
            tme,
            &self.collations,
            self.definitions.get(&id),
            self.allow_unnamed,
        )?);
        self.tables.insert(
            tme.table_id(),
            Mapped {
                event: tme.clone().into_owned(),
                map: Arc::clone(&map),
            },
        );
        Ok(map)
    }

    /// Decodes a ROWS event of a table mapped before.
    pub fn rows(
        &self,
        table_id: u64,
        body: &RowsBody<'_>,
    ) -> Result<(Arc<TableMap>, Vec<RowChange>), DecodeError> {
        let mapped = self
            .tables
            .get(&table_id)
            .ok_or(DecodeError::UnknownTable { table_id })?;
        let changes = decode_rows(body, &mapped.map)?;
        Ok((Arc::clone(&mapped.map), changes))
    }

    /// Table ids are only valid within one binlog file: forget them at a rotation.
    pub fn forget_tables(&mut self) {
        self.tables.clear();
    }
}
