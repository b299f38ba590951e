//! Incremental snapshots: chosen tables re-read in key chunks while streaming goes on, with
//! the watermark approach of DBLog (and Debezium's read-only incremental snapshots).
//!
//! For each chunk the binlog end is read before (*low*) and after (*high*) the chunk's SELECT.
//! The chunk holds each row as it was at some moment between the two. Streaming goes on; a
//! streamed change of a chunk row from a transaction at or after *low* makes that chunk row
//! possibly stale, so the row is dropped from the chunk (the streamed change carries the
//! newer state). Once streaming has read up to *high*, what is left of the chunk is published
//! as `op = r` records, and the progress (last key per table) is committed with them. No write
//! access to the source is needed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use rowferry_shared::event::{Row, TableId};
use rowferry_shared::position::BinlogFilePosition;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::progress::{KeyValue, TableProgress};

/// Default rows per chunk.
pub const DEFAULT_CHUNK_ROWS: usize = 1024;

/// An incremental snapshot's progress, stored with the position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalProgress {
    /// When it was started, ms since the epoch.
    pub started_ms: i64,
    /// Paused by request: no chunks are read until resumed.
    #[serde(default)]
    pub paused: bool,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// The tables, in the order they are read.
    pub tables: Vec<TableProgress>,
}

impl IncrementalProgress {
    /// The first table not read to its end.
    pub fn next_table(&self) -> Option<usize> {
        self.tables.iter().position(|t| !t.done)
    }

    /// Whether every table is read.
    pub fn complete(&self) -> bool {
        self.next_table().is_none()
    }
}

/// A request for the capture's incremental snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Re-read these tables (appended to a snapshot already running).
    Start {
        tables: Vec<(TableId, u64)>,
        chunk_rows: usize,
    },
    /// Stop reading chunks, keep the progress.
    Pause,
    /// Go on reading chunks.
    Resume,
    /// Drop the snapshot and its progress.
    Cancel,
}

/// Requests from the control API to the running capture, applied at its next transaction
/// boundary (and kept for the next run when none is running).
#[derive(Default)]
pub struct Commands {
    queue: Mutex<VecDeque<Command>>,
    notify: Notify,
    /// A START was taken and is being committed; the status shows it once that is done.
    start_in_hand: std::sync::atomic::AtomicBool,
}

impl Commands {
    /// Queues a request.
    pub fn push(&self, command: Command) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.push_back(command);
        }
        self.notify.notify_one();
    }

    /// Whether a START waits in the queue (so pause, resume and cancel have something to act
    /// on even before the capture has taken it).
    pub fn start_queued(&self) -> bool {
        self.queue
            .lock()
            .map(|queue| match last_start_or_cancel(queue.iter()) {
                Some(last) => matches!(last, Command::Start { .. }),
                None => self.start_in_hand.load(Ordering::SeqCst),
            })
            .unwrap_or(false)
    }

    /// Takes the queued requests; until [`Commands::settled`], a START among them still
    /// counts as queued (the status shows it only once it is committed).
    pub fn take(&self) -> Vec<Command> {
        let Ok(mut queue) = self.queue.lock() else {
            return Vec::new();
        };
        let taken: Vec<Command> = queue.drain(..).collect();
        if let Some(last) = last_start_or_cancel(taken.iter()) {
            self.start_in_hand
                .store(matches!(last, Command::Start { .. }), Ordering::SeqCst);
        }
        taken
    }

    /// The requests taken last are committed and reported.
    pub fn settled(&self) {
        self.start_in_hand.store(false, Ordering::SeqCst);
    }

    /// Puts back requests taken but not stored (their commit failed): the next run takes
    /// them again, before any newer one.
    pub fn restore(&self, taken: Vec<Command>) {
        if let Ok(mut queue) = self.queue.lock() {
            for command in taken.into_iter().rev() {
                queue.push_front(command);
            }
        }
        self.start_in_hand.store(false, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Resolves when a request is queued.
    pub async fn queued(&self) {
        self.notify.notified().await;
    }
}

/// The last START or CANCEL of `commands`.
fn last_start_or_cancel<'a>(
    commands: impl DoubleEndedIterator<Item = &'a Command>,
) -> Option<&'a Command> {
    commands
        .rev()
        .find(|c| matches!(c, Command::Start { .. } | Command::Cancel))
}

/// Applies a request to the progress (`None`: no incremental snapshot).
pub fn apply(
    progress: Option<IncrementalProgress>,
    command: Command,
    now_ms: i64,
) -> Option<IncrementalProgress> {
    match command {
        Command::Start { tables, chunk_rows } => {
            let mut progress = progress.unwrap_or(IncrementalProgress {
                started_ms: now_ms,
                paused: false,
                chunk_rows: chunk_rows.max(1),
                tables: Vec::new(),
            });
            for (id, estimate) in tables {
                // A table asked for again starts over (its earlier pass may be done).
                progress
                    .tables
                    .retain(|t| !(t.db == id.db && t.table == id.table && t.done));
                if progress
                    .tables
                    .iter()
                    .any(|t| t.db == id.db && t.table == id.table)
                {
                    continue;
                }
                progress.tables.push(TableProgress::new(id, estimate));
            }
            Some(progress)
        }
        Command::Pause => progress.map(|p| IncrementalProgress { paused: true, ..p }),
        Command::Resume => progress.map(|p| IncrementalProgress { paused: false, ..p }),
        Command::Cancel => None,
    }
}

/// A chunk read and waiting for streaming to reach its high watermark.
pub struct InFlight {
    /// Index of its table in the progress.
    pub table: usize,
    /// Which table.
    pub id: TableId,
    /// Binlog end before the SELECT.
    pub low: BinlogFilePosition,
    /// Binlog end after the SELECT.
    pub high: BinlogFilePosition,
    /// The rows still to publish, in key order (`None`: dropped by a streamed change).
    pub rows: Vec<Option<Row>>,
    /// Row index by key.
    pub index: HashMap<Vec<KeyValue>, usize>,
    /// The last key of the chunk (where the next one starts).
    pub last_key: Option<Vec<KeyValue>>,
    /// The table's last chunk.
    pub last: bool,
}

impl InFlight {
    /// Drops the chunk row with this key: a change streamed after the low watermark is newer.
    pub fn drop_key(&mut self, key: &[KeyValue]) {
        if let Some(&i) = self.index.get(key)
            && let Some(slot) = self.rows.get_mut(i)
        {
            *slot = None;
        }
    }

    /// The rows left, in key order.
    pub fn remaining(self) -> impl Iterator<Item = Row> {
        self.rows.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_start_counts_as_queued_until_it_is_reported() {
        let commands = Commands::default();
        assert!(!commands.start_queued());
        commands.push(start(&["a"]));
        assert!(commands.start_queued());
        assert_eq!(commands.take().len(), 1);
        // Being committed: pause and cancel must still find it.
        assert!(commands.start_queued());
        commands.settled();
        assert!(!commands.start_queued());
        commands.push(start(&["a"]));
        commands.push(Command::Cancel);
        assert!(!commands.start_queued());
        commands.take();
        assert!(!commands.start_queued(), "a cancelled start is not in hand");
        // A failed commit puts the requests back, in order.
        commands.push(start(&["b"]));
        let taken = commands.take();
        commands.restore(taken);
        assert!(commands.start_queued());
        assert_eq!(commands.take(), vec![start(&["b"])]);
    }

    fn start(tables: &[&str]) -> Command {
        Command::Start {
            tables: tables
                .iter()
                .map(|t| (TableId::new("db", *t), 10))
                .collect(),
            chunk_rows: 100,
        }
    }

    #[test]
    fn requests_change_the_progress() {
        let p = apply(None, start(&["a", "b"]), 5);
        assert_eq!(p.as_ref().map(|p| p.tables.len()), Some(2));
        // Asking for a table being read again does not add it twice.
        let p = apply(p, start(&["b", "c"]), 6);
        assert_eq!(
            p.as_ref().map(|p| p
                .tables
                .iter()
                .map(|t| t.table.as_str())
                .collect::<Vec<_>>()),
            Some(vec!["a", "b", "c"])
        );
        let p = apply(p, Command::Pause, 7);
        assert_eq!(p.as_ref().map(|p| p.paused), Some(true));
        let p = apply(p, Command::Resume, 8);
        assert_eq!(p.as_ref().map(|p| p.paused), Some(false));
        assert_eq!(apply(p, Command::Cancel, 9), None);
        assert_eq!(apply(None, Command::Pause, 9), None);
    }

    #[test]
    fn a_streamed_change_drops_its_chunk_row() {
        let key = |k: i64| vec![KeyValue::Int(k)];
        let mut chunk = InFlight {
            table: 0,
            id: TableId::new("db", "t"),
            low: BinlogFilePosition::new("b.000001", 4),
            high: BinlogFilePosition::new("b.000001", 9),
            rows: vec![Some(Vec::new()), Some(Vec::new()), Some(Vec::new())],
            index: [(key(1), 0), (key(2), 1), (key(3), 2)]
                .into_iter()
                .collect(),
            last_key: Some(key(3)),
            last: false,
        };
        chunk.drop_key(&key(2));
        chunk.drop_key(&key(9));
        assert_eq!(chunk.remaining().count(), 2);
    }
}
