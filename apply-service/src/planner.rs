//! Turns a run of row changes for one table into few multi-row statements.
//!
//! Every change becomes a write (the row's after image) or a delete (its key); a primary-key
//! change becomes a delete of the old key and a write of the new row. Then:
//! - upsert mode, on a table whose only UNIQUE key is the row key: changes of different rows
//!   cannot interfere, so only the last change of each key is kept, and all deletes go in one
//!   `DELETE … WHERE key IN (…)`, all writes in one `INSERT … ON DUPLICATE KEY UPDATE`;
//! - otherwise (other UNIQUE keys, insert mode, keyless tables) the changes keep their order
//!   exactly: consecutive changes of one kind share a statement, which MySQL applies row by
//!   row in order.

use std::collections::HashMap;
use std::sync::Arc;

use rowferry_shared::event::{Row, RowChange, Value};

use crate::config::{DeleteMode, WriteMode};
use crate::sql_value::{ValueError, push_literal};
use crate::target::tables::TargetTable;

/// Largest statement text, well below the smallest `max_allowed_packet` default (16 MiB on
/// MariaDB, 64 MiB on MySQL 8).
const STATEMENT_BYTES: usize = 4 << 20;

/// One change of the run: its row images and where each of their values goes.
#[derive(Debug, Clone)]
pub struct Change {
    /// For each value of the row images, the index of its target column.
    pub columns: Arc<[usize]>,
    /// The change.
    pub change: RowChange,
}

/// Why a run cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A value cannot be written.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A row image lacks a key column.
    #[error("records of {table} lack key column `{column}`")]
    MissingKey { table: String, column: String },
}

/// Plans statements for one table.
pub struct Planner<'a> {
    table: &'a TargetTable,
    mode: WriteMode,
    deletes: DeleteMode,
    statement_rows: usize,
}

enum Op<'c> {
    /// Upsert (upsert mode) or insert (insert mode, keyless tables).
    Write {
        columns: &'c Arc<[usize]>,
        row: &'c Row,
    },
    /// Insert mode: update the row with this key.
    Update {
        columns: &'c Arc<[usize]>,
        key: String,
        row: &'c Row,
    },
    /// Delete the row with this key (a tuple literal).
    Delete { key: String },
    /// Keyless tables: update/delete one row equal to `before`.
    UpdateMatching {
        columns: &'c Arc<[usize]>,
        before: &'c Row,
        after: &'c Row,
    },
    DeleteMatching {
        columns: &'c Arc<[usize]>,
        before: &'c Row,
    },
}

impl<'a> Planner<'a> {
    /// A planner writing to `table`.
    pub fn new(
        table: &'a TargetTable,
        mode: WriteMode,
        deletes: DeleteMode,
        statement_rows: usize,
    ) -> Self {
        Self {
            table,
            mode,
            deletes,
            statement_rows: statement_rows.max(1),
        }
    }

    fn keyed(&self) -> bool {
        !self.table.schema.key.columns().is_empty()
    }

    /// The statements that apply `changes` in order.
    pub fn plan(&self, changes: &[&Change]) -> Result<Vec<String>, PlanError> {
        let mut ops = Vec::with_capacity(changes.len());
        for change in changes {
            self.ops(change, &mut ops)?;
        }
        let coalesce =
            self.mode == WriteMode::Upsert && self.keyed() && !self.table.other_unique_keys;
        if coalesce {
            ops = self.coalesce(ops)?;
        }
        self.render(&ops)
    }

    fn ops<'c>(&self, change: &'c Change, ops: &mut Vec<Op<'c>>) -> Result<(), PlanError> {
        let columns = &change.columns;
        let keep_deletes = self.deletes == DeleteMode::Apply;
        if !self.keyed() {
            match &change.change {
                RowChange::Read { after } | RowChange::Insert { after } => {
                    ops.push(Op::Write {
                        columns,
                        row: after,
                    });
                }
                RowChange::Update { before, after } => ops.push(Op::UpdateMatching {
                    columns,
                    before,
                    after,
                }),
                RowChange::Delete { before } if keep_deletes => {
                    ops.push(Op::DeleteMatching { columns, before });
                }
                RowChange::Delete { .. } => {}
            }
            return Ok(());
        }
        match &change.change {
            RowChange::Read { after } | RowChange::Insert { after } => {
                ops.push(Op::Write {
                    columns,
                    row: after,
                });
            }
            RowChange::Update { before, after } => {
                if self.key_changed(columns, before, after)? {
                    if keep_deletes {
                        ops.push(Op::Delete {
                            key: self.key_literal(columns, before)?,
                        });
                    }
                    ops.push(Op::Write {
                        columns,
                        row: after,
                    });
                } else if self.mode == WriteMode::Insert {
                    ops.push(Op::Update {
                        columns,
                        key: self.key_literal(columns, after)?,
                        row: after,
                    });
                } else {
                    ops.push(Op::Write {
                        columns,
                        row: after,
                    });
                }
            }
            RowChange::Delete { before } if keep_deletes => {
                ops.push(Op::Delete {
                    key: self.key_literal(columns, before)?,
                });
            }
            RowChange::Delete { .. } => {}
        }
        Ok(())
    }

    /// Keeps the last change of each key, deletes first, then writes (valid because no other
    /// unique key can make two rows' changes depend on each other's order).
    fn coalesce<'c>(&self, ops: Vec<Op<'c>>) -> Result<Vec<Op<'c>>, PlanError> {
        let mut keys: Vec<Option<String>> = Vec::with_capacity(ops.len());
        for op in &ops {
            keys.push(match op {
                Op::Write { columns, row } => Some(self.key_literal(columns, row)?),
                Op::Delete { key } => Some(key.clone()),
                _ => None,
            });
        }
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(ops.len());
        for (i, key) in keys.iter().enumerate() {
            if let Some(key) = key {
                last.insert(key.as_str(), i);
            }
        }
        let keep: Vec<bool> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| key.as_deref().is_some_and(|k| last.get(k) == Some(&i)))
            .collect();
        let (mut deletes, mut writes) = (Vec::new(), Vec::new());
        for (op, keep) in ops.into_iter().zip(keep) {
            if keep {
                match op {
                    Op::Delete { .. } => deletes.push(op),
                    _ => writes.push(op),
                }
            }
        }
        deletes.append(&mut writes);
        Ok(deletes)
    }

    /// The key of `row` as a SQL tuple literal (also the coalescing identity).
    /// Where the key column `target_index` is in the record's values.
    fn key_position(&self, columns: &[usize], target_index: usize) -> Result<usize, PlanError> {
        columns
            .iter()
            .position(|c| *c == target_index)
            .ok_or_else(|| PlanError::MissingKey {
                table: self.table.schema.id.to_string(),
                column: self.table.schema.columns[target_index].name.clone(),
            })
    }

    /// Whether an update changes the row's key (compared as values, no literal built).
    fn key_changed(&self, columns: &[usize], before: &Row, after: &Row) -> Result<bool, PlanError> {
        for target_index in self.table.schema.key.columns() {
            let position = self.key_position(columns, *target_index)?;
            if before.get(position) != after.get(position) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn key_literal(&self, columns: &[usize], row: &Row) -> Result<String, PlanError> {
        let key = self.table.schema.key.columns();
        let mut out = String::new();
        if key.len() > 1 {
            out.push('(');
        }
        for (n, target_index) in key.iter().enumerate() {
            let position = self.key_position(columns, *target_index)?;
            if n > 0 {
                out.push(',');
            }
            self.push_value(
                &mut out,
                *target_index,
                row.get(position).unwrap_or(&Value::Null),
            )?;
        }
        if key.len() > 1 {
            out.push(')');
        }
        Ok(out)
    }

    fn push_value(
        &self,
        out: &mut String,
        target_index: usize,
        value: &Value,
    ) -> Result<(), PlanError> {
        let column = &self.table.schema.columns[target_index];
        push_literal(out, value, &column.column_type, &column.name)?;
        Ok(())
    }

    fn column_list(&self, columns: &[usize]) -> String {
        let names: Vec<String> = columns
            .iter()
            .map(|i| rowferry_shared::event::quote_identifier(&self.table.schema.columns[*i].name))
            .collect();
        names.join(",")
    }

    fn key_list(&self) -> String {
        let key = self.table.schema.key.columns();
        let list = self.column_list(key);
        if key.len() > 1 {
            format!("({list})")
        } else {
            list
        }
    }

    fn render(&self, ops: &[Op<'_>]) -> Result<Vec<String>, PlanError> {
        let mut statements = Vec::new();
        let mut i = 0;
        while i < ops.len() {
            match &ops[i] {
                Op::Write { columns, .. } => {
                    let upsert = self.mode == WriteMode::Upsert && self.keyed();
                    let mut sql = format!(
                        "INSERT INTO {} ({}) VALUES ",
                        self.table.quoted(),
                        self.column_list(columns)
                    );
                    let mut rows = 0;
                    while let Some(Op::Write { columns: c, row }) = ops.get(i) {
                        if !Arc::ptr_eq(c, columns) && c[..] != columns[..]
                            || rows >= self.statement_rows
                            || sql.len() >= STATEMENT_BYTES
                        {
                            break;
                        }
                        if rows > 0 {
                            sql.push(',');
                        }
                        sql.push('(');
                        for (n, (target_index, value)) in c.iter().zip(row.iter()).enumerate() {
                            if n > 0 {
                                sql.push(',');
                            }
                            self.push_value(&mut sql, *target_index, value)?;
                        }
                        sql.push(')');
                        rows += 1;
                        i += 1;
                    }
                    if upsert {
                        sql.push_str(" ON DUPLICATE KEY UPDATE ");
                        let key = self.table.schema.key.columns();
                        let mut updates: Vec<usize> = columns
                            .iter()
                            .copied()
                            .filter(|c| !key.contains(c))
                            .collect();
                        if updates.is_empty() {
                            updates.push(key[0]);
                        }
                        for (n, c) in updates.iter().enumerate() {
                            if n > 0 {
                                sql.push(',');
                            }
                            let name = rowferry_shared::event::quote_identifier(
                                &self.table.schema.columns[*c].name,
                            );
                            sql.push_str(&format!("{name}=VALUES({name})"));
                        }
                    }
                    statements.push(sql);
                }
                Op::Delete { .. } => {
                    let mut sql = format!(
                        "DELETE FROM {} WHERE {} IN (",
                        self.table.quoted(),
                        self.key_list()
                    );
                    let mut rows = 0;
                    while let Some(Op::Delete { key }) = ops.get(i) {
                        if rows >= self.statement_rows || sql.len() >= STATEMENT_BYTES {
                            break;
                        }
                        if rows > 0 {
                            sql.push(',');
                        }
                        sql.push_str(key);
                        rows += 1;
                        i += 1;
                    }
                    sql.push(')');
                    statements.push(sql);
                }
                Op::Update { columns, key, row } => {
                    let mut sql = format!("UPDATE {} SET ", self.table.quoted());
                    self.push_assignments(&mut sql, columns, row, ",")?;
                    sql.push_str(&format!(" WHERE {} = {key}", self.key_list()));
                    statements.push(sql);
                    i += 1;
                }
                Op::UpdateMatching {
                    columns,
                    before,
                    after,
                } => {
                    let mut sql = format!("UPDATE {} SET ", self.table.quoted());
                    self.push_assignments(&mut sql, columns, after, ",")?;
                    sql.push_str(" WHERE ");
                    self.push_matching(&mut sql, columns, before)?;
                    sql.push_str(" LIMIT 1");
                    statements.push(sql);
                    i += 1;
                }
                Op::DeleteMatching { columns, before } => {
                    let mut sql = format!("DELETE FROM {} WHERE ", self.table.quoted());
                    self.push_matching(&mut sql, columns, before)?;
                    sql.push_str(" LIMIT 1");
                    statements.push(sql);
                    i += 1;
                }
            }
        }
        Ok(statements)
    }

    fn push_assignments(
        &self,
        sql: &mut String,
        columns: &[usize],
        row: &Row,
        separator: &str,
    ) -> Result<(), PlanError> {
        for (n, (target_index, value)) in columns.iter().zip(row.iter()).enumerate() {
            if n > 0 {
                sql.push_str(separator);
            }
            sql.push_str(&rowferry_shared::event::quote_identifier(
                &self.table.schema.columns[*target_index].name,
            ));
            sql.push('=');
            self.push_value(sql, *target_index, value)?;
        }
        Ok(())
    }

    /// `c1 <=> v1 AND …` over the columns whose values compare exactly (FLOAT columns are left
    /// out: a FLOAT never equals the DOUBLE literal of its value).
    fn push_matching(
        &self,
        sql: &mut String,
        columns: &[usize],
        row: &Row,
    ) -> Result<(), PlanError> {
        let mut n = 0;
        for (target_index, value) in columns.iter().zip(row.iter()) {
            let column = &self.table.schema.columns[*target_index];
            if column.column_type == rowferry_shared::event::ColumnType::Float {
                continue;
            }
            if n > 0 {
                sql.push_str(" AND ");
            }
            sql.push_str(&rowferry_shared::event::quote_identifier(&column.name));
            sql.push_str(" <=> ");
            self.push_value(sql, *target_index, value)?;
            n += 1;
        }
        if n == 0 {
            sql.push_str("TRUE");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rowferry_shared::event::{ColumnSchema, ColumnType, RowKey, TableId, TableSchema};

    fn table(key: RowKey, other_unique_keys: bool) -> TargetTable {
        let column = |name: &str, column_type| ColumnSchema {
            name: name.into(),
            column_type,
            nullable: true,
            charset: None,
        };
        TargetTable::new(
            TableSchema {
                id: TableId::new("db", "t"),
                columns: vec![
                    column("id", ColumnType::Int { unsigned: false }),
                    column("v", ColumnType::VarChar { length: 10 }),
                ],
                key,
            },
            other_unique_keys,
        )
    }

    fn row(id: i64, v: &str) -> Row {
        vec![Value::Int(id), Value::Text(v.into())]
    }

    fn changes(list: Vec<RowChange>) -> Vec<Change> {
        let columns: Arc<[usize]> = Arc::from(vec![0, 1]);
        list.into_iter()
            .map(|change| Change {
                columns: columns.clone(),
                change,
            })
            .collect()
    }

    fn plan(
        table: &TargetTable,
        mode: WriteMode,
        deletes: DeleteMode,
        list: Vec<RowChange>,
    ) -> Vec<String> {
        let changes = changes(list);
        Planner::new(table, mode, deletes, 1000)
            .plan(&changes.iter().collect::<Vec<_>>())
            .unwrap_or_else(|e| vec![format!("error: {e}")])
    }

    #[test]
    fn upserts_coalesce_per_key_when_no_other_unique_key_exists() {
        let t = table(RowKey::Primary(vec![0]), false);
        let statements = plan(
            &t,
            WriteMode::Upsert,
            DeleteMode::Apply,
            vec![
                RowChange::Insert { after: row(1, "a") },
                RowChange::Update {
                    before: row(1, "a"),
                    after: row(1, "b"),
                },
                RowChange::Insert { after: row(2, "x") },
                RowChange::Delete {
                    before: row(2, "x"),
                },
                RowChange::Insert {
                    after: row(3, "it's"),
                },
            ],
        );
        assert_eq!(
            statements,
            vec![
                "DELETE FROM `db`.`t` WHERE `id` IN (2)".to_owned(),
                "INSERT INTO `db`.`t` (`id`,`v`) VALUES (1,'b'),(3,'it''s') \
                 ON DUPLICATE KEY UPDATE `v`=VALUES(`v`)"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn other_unique_keys_keep_every_change_in_order() {
        let t = table(RowKey::Primary(vec![0]), true);
        let statements = plan(
            &t,
            WriteMode::Upsert,
            DeleteMode::Apply,
            vec![
                RowChange::Update {
                    before: row(1, "a"),
                    after: row(1, "tmp"),
                },
                RowChange::Update {
                    before: row(2, "b"),
                    after: row(2, "a"),
                },
                RowChange::Update {
                    before: row(1, "tmp"),
                    after: row(1, "b"),
                },
                RowChange::Delete {
                    before: row(2, "a"),
                },
            ],
        );
        assert_eq!(
            statements,
            vec![
                "INSERT INTO `db`.`t` (`id`,`v`) VALUES (1,'tmp'),(2,'a'),(1,'b') \
                 ON DUPLICATE KEY UPDATE `v`=VALUES(`v`)"
                    .to_owned(),
                "DELETE FROM `db`.`t` WHERE `id` IN (2)".to_owned(),
            ]
        );
    }

    #[test]
    fn a_key_change_is_a_delete_and_a_write() {
        let t = table(RowKey::Primary(vec![0]), true);
        let statements = plan(
            &t,
            WriteMode::Upsert,
            DeleteMode::Apply,
            vec![RowChange::Update {
                before: row(1, "a"),
                after: row(10, "a"),
            }],
        );
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert_eq!(statements[0], "DELETE FROM `db`.`t` WHERE `id` IN (1)");
        assert!(statements[1].starts_with("INSERT INTO `db`.`t` (`id`,`v`) VALUES (10,'a')"));
    }

    #[test]
    fn insert_mode_inserts_and_updates_by_key() {
        let t = table(RowKey::Primary(vec![0]), false);
        let statements = plan(
            &t,
            WriteMode::Insert,
            DeleteMode::Apply,
            vec![
                RowChange::Insert { after: row(1, "a") },
                RowChange::Update {
                    before: row(1, "a"),
                    after: row(1, "b"),
                },
            ],
        );
        assert_eq!(
            statements,
            vec![
                "INSERT INTO `db`.`t` (`id`,`v`) VALUES (1,'a')".to_owned(),
                "UPDATE `db`.`t` SET `id`=1,`v`='b' WHERE `id` = 1".to_owned(),
            ]
        );
    }

    #[test]
    fn keyless_tables_match_whole_rows_and_ignored_deletes_vanish() {
        let t = table(RowKey::None, false);
        let statements = plan(
            &t,
            WriteMode::Upsert,
            DeleteMode::Apply,
            vec![RowChange::Delete {
                before: row(1, "x"),
            }],
        );
        assert_eq!(
            statements,
            vec!["DELETE FROM `db`.`t` WHERE `id` <=> 1 AND `v` <=> 'x' LIMIT 1".to_owned()]
        );
        let keyed = table(RowKey::Primary(vec![0]), false);
        let statements = plan(
            &keyed,
            WriteMode::Upsert,
            DeleteMode::Ignore,
            vec![RowChange::Delete {
                before: row(1, "x"),
            }],
        );
        assert!(statements.is_empty(), "{statements:?}");
    }

    #[test]
    fn statements_are_split_by_rows() {
        let t = table(RowKey::Primary(vec![0]), false);
        let list = (1..=3)
            .map(|i| RowChange::Insert { after: row(i, "v") })
            .collect();
        let changes = changes(list);
        let statements = Planner::new(&t, WriteMode::Upsert, DeleteMode::Apply, 2)
            .plan(&changes.iter().collect::<Vec<_>>())
            .unwrap_or_default();
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[1].contains("VALUES (3,'v')"), "{statements:?}");
    }
}
