//! Throughput counters both services report: row changes per table and operation, and
//! per-second rates of the totals.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::{RowChange, TableId};
use crate::pb::control::v1 as pb;

/// Row changes of one table, by operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Inserts (`c`).
    pub inserts: u64,
    /// Updates (`u`).
    pub updates: u64,
    /// Deletes (`d`).
    pub deletes: u64,
    /// Snapshot reads (`r`).
    pub reads: u64,
}

impl OpCounts {
    /// Counts one change.
    pub fn add(&mut self, change: &RowChange) {
        match change {
            RowChange::Insert { .. } => self.inserts += 1,
            RowChange::Update { .. } => self.updates += 1,
            RowChange::Delete { .. } => self.deletes += 1,
            RowChange::Read { .. } => self.reads += 1,
        }
    }

    /// Adds another table's counts.
    pub fn merge(&mut self, other: &OpCounts) {
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.deletes += other.deletes;
        self.reads += other.reads;
    }
}

/// Row changes per table.
pub type TableCounts = BTreeMap<TableId, OpCounts>;

/// Counts one change of `table` (the table id is copied only the first time it is seen, so
/// counting per row allocates nothing).
pub fn count_change(tables: &mut TableCounts, table: &TableId, change: &RowChange) {
    match tables.get_mut(table) {
        Some(counts) => counts.add(change),
        None => tables.entry(table.clone()).or_default().add(change),
    }
}

/// Adds `more` into `total`.
pub fn merge_tables(total: &mut TableCounts, more: &TableCounts) {
    for (table, counts) in more {
        total.entry(table.clone()).or_default().merge(counts);
    }
}

/// The API's per-table counters.
pub fn tables_to_proto(tables: &TableCounts) -> Vec<pb::TableCounters> {
    tables
        .iter()
        .map(|(id, c)| pb::TableCounters {
            database: id.db.clone(),
            table: id.table.clone(),
            inserts: c.inserts,
            updates: c.updates,
            deletes: c.deletes,
            reads: c.reads,
        })
        .collect()
}

/// Totals a service counts: events, bytes, transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Row change events.
    pub events: u64,
    /// Bytes of records (keys and values).
    pub bytes: u64,
    /// Transactions.
    pub transactions: u64,
}

/// How far back rates look.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Samples are at least this far apart.
const SAMPLE_EVERY: Duration = Duration::from_millis(900);

/// Per-second rates of [`Totals`], from samples taken whenever the status is read (at least
/// every second while someone watches).
#[derive(Debug, Default)]
pub struct Rates {
    samples: Mutex<VecDeque<(Instant, Totals)>>,
}

impl Rates {
    /// Records `totals` as of now and returns the counters with their rates over the last
    /// few seconds (0 until two samples exist).
    pub fn observe(&self, totals: Totals) -> pb::Counters {
        self.observe_at(Instant::now(), totals)
    }

    fn observe_at(&self, now: Instant, totals: Totals) -> pb::Counters {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Counters restart with the process only; a smaller total means a restart of the
        // counting side: start over.
        if samples
            .back()
            .is_some_and(|(_, last)| last.events > totals.events)
        {
            samples.clear();
        }
        if samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= SAMPLE_EVERY)
        {
            samples.push_back((now, totals));
        }
        while samples.len() > 2
            && samples
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            samples.pop_front();
        }
        let rate = |pick: fn(&Totals) -> u64| match samples.front() {
            Some((at, first)) if now.duration_since(*at) >= SAMPLE_EVERY => {
                (pick(&totals).saturating_sub(pick(first))) as f64
                    / now.duration_since(*at).as_secs_f64()
            }
            _ => 0.0,
        };
        pb::Counters {
            events: totals.events,
            bytes: totals.bytes,
            transactions: totals.transactions,
            events_per_second: rate(|t| t.events),
            bytes_per_second: rate(|t| t.bytes),
            transactions_per_second: rate(|t| t.transactions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_samples_of_the_last_seconds() {
        let rates = Rates::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let totals = |events: u64| Totals {
            events,
            bytes: events * 100,
            transactions: events / 10,
        };
        let first = rates.observe_at(at(0), totals(0));
        assert_eq!(first.events_per_second, 0.0);
        let later = rates.observe_at(at(2000), totals(1000));
        assert_eq!(later.events, 1000);
        assert!((later.events_per_second - 500.0).abs() < 1e-9, "{later:?}");
        assert!(
            (later.bytes_per_second - 50_000.0).abs() < 1e-6,
            "{later:?}"
        );
        // Twenty seconds of nothing: the old samples age out and the rate falls to 0.
        for s in 3..=22 {
            rates.observe_at(at(s * 1000), totals(1000));
        }
        let idle = rates.observe_at(at(23_000), totals(1000));
        assert_eq!(idle.events_per_second, 0.0, "{idle:?}");
    }

    #[test]
    fn op_counts_count_each_operation() {
        let mut counts = OpCounts::default();
        counts.add(&RowChange::Insert { after: Vec::new() });
        counts.add(&RowChange::Insert { after: Vec::new() });
        counts.add(&RowChange::Delete { before: Vec::new() });
        let mut total = OpCounts {
            updates: 3,
            ..OpCounts::default()
        };
        total.merge(&counts);
        assert_eq!(
            total,
            OpCounts {
                inserts: 2,
                updates: 3,
                deletes: 1,
                reads: 0
            }
        );
    }
}
