//! Where streaming after a snapshot overlaps it: streaming starts at the earliest snapshot
//! point, so changes between that point and a table's own point are already in the table's
//! snapshot rows and must not be published again.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::event::TableId;
use rowferry_shared::position::{BinlogFilePosition, Flavor, GtidSet, PositionError};

use super::SnapshotError;
use super::progress::{EventPoint, KeyValue, ParsedPoint, SnapshotProgress};
use crate::source::SourceError;

struct TableSegments {
    /// `(after_key, point)` in key order.
    segments: Vec<(Option<Vec<KeyValue>>, ParsedPoint)>,
    collations: Vec<Option<String>>,
}

/// The snapshot streaming has not yet passed.
pub struct Overlap {
    progress: Arc<SnapshotProgress>,
    tables: HashMap<TableId, TableSegments>,
    points: Vec<ParsedPoint>,
}

impl Overlap {
    /// The overlap of a finished snapshot.
    pub fn new(progress: Arc<SnapshotProgress>, flavor: Flavor) -> Result<Self, PositionError> {
        let mut tables = HashMap::new();
        let mut points = Vec::new();
        for table in &progress.tables {
            let mut segments = Vec::with_capacity(table.segments.len());
            for segment in &table.segments {
                let point = ParsedPoint::new(&segment.at, flavor)?;
                points.push(point.clone());
                segments.push((segment.after_key.clone(), point));
            }
            tables.insert(
                table.id(),
                TableSegments {
                    segments,
                    collations: table.key_collations.clone(),
                },
            );
        }
        Ok(Self {
            progress,
            tables,
            points,
        })
    }

    /// The snapshot's progress, stored with positions until streaming passes it.
    pub fn progress(&self) -> &Arc<SnapshotProgress> {
        &self.progress
    }

    /// Whether streaming that reached `boundary` is past every snapshot point.
    pub fn passed(
        &self,
        boundary: &BinlogFilePosition,
        gtids: Option<&GtidSet>,
    ) -> Result<bool, PositionError> {
        for point in &self.points {
            if !point.passed_by(boundary, gtids)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the snapshot already holds the change to `table`'s row `key` made by the
    /// transaction at `event`. `key` is `None` for a table without a usable key.
    pub async fn reflects(
        &self,
        meta: &mut Conn,
        table: &TableId,
        event: &EventPoint<'_>,
        key: Option<&[KeyValue]>,
    ) -> Result<bool, SnapshotError> {
        let Some(entry) = self.tables.get(table) else {
            return Ok(false);
        };
        let mut reflected = Vec::with_capacity(entry.segments.len());
        for (_, point) in &entry.segments {
            reflected.push(point.reflects(event).map_err(position_error)?);
        }
        match (reflected.iter().all(|r| *r), reflected.iter().any(|r| *r)) {
            (_, false) => return Ok(false),
            (true, _) => return Ok(true),
            _ => {}
        }
        // The segments disagree: the key decides which one holds the row.
        let Some(key) = key else {
            return Ok(reflected.last().copied().unwrap_or(false));
        };
        let mut holder = 0;
        for (i, (after, _)) in entry.segments.iter().enumerate() {
            match after {
                None => holder = i,
                Some(after) => {
                    if compare_keys(meta, key, after, &entry.collations).await? == Ordering::Greater
                    {
                        holder = i;
                    }
                }
            }
        }
        Ok(reflected[holder])
    }
}

fn position_error(e: PositionError) -> SnapshotError {
    SnapshotError::Worker(format!(
        "comparing a binlog position with the snapshot: {e}"
    ))
}

/// Orders two keys column by column; character columns are compared by the source with the
/// column's collation.
async fn compare_keys(
    meta: &mut Conn,
    a: &[KeyValue],
    b: &[KeyValue],
    collations: &[Option<String>],
) -> Result<Ordering, SnapshotError> {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let order = match (x, y) {
            (KeyValue::Text(x), KeyValue::Text(y)) => {
                let collation = collations.get(i).cloned().flatten();
                compare_text(meta, x, y, collation.as_deref()).await?
            }
            _ => x.local_cmp(y).unwrap_or(Ordering::Equal),
        };
        if order != Ordering::Equal {
            return Ok(order);
        }
    }
    Ok(a.len().cmp(&b.len()))
}

async fn compare_text(
    meta: &mut Conn,
    a: &str,
    b: &str,
    collation: Option<&str>,
) -> Result<Ordering, SnapshotError> {
    let collation = collation
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or("utf8mb4_bin");
    let charset = collation.split('_').next().unwrap_or("utf8mb4");
    let sql = format!(
        "SELECT STRCMP(CONVERT(? USING {charset}) COLLATE {collation}, \
         CONVERT(? USING {charset}) COLLATE {collation})"
    );
    let result: Option<i64> = meta
        .exec_first(&sql, (a, b))
        .await
        .map_err(|source| SnapshotError::Source(SourceError::Query { query: sql, source }))?;
    Ok(result.unwrap_or(0).cmp(&0))
}
