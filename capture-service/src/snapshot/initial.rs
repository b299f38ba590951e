//! The initial snapshot: every included table read at a consistent point, `op = r` records
//! committed to Kafka with the snapshot's progress, tables read in parallel by workers that
//! each hold their own consistent-snapshot transaction.
//!
//! Workers only read; this task encodes, sends and commits, so a chunk is always wholly in a
//! Kafka transaction or wholly out of it, and the progress committed with it is exact.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::{Conn, Opts};
use rowferry_shared::codec::{Encoder, ValueFormat};
use rowferry_shared::event::{Row, SnapshotMarker};
use rowferry_shared::lifecycle::RunControl;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::SnapshotError;
use super::progress::{SnapshotPoint, SnapshotProgress, TableProgress};
use super::reader::{self, Chunk, ChunkReader};
use super::records::{ReadAt, send_read};
use super::tables::{self, SnapshotTable};
use crate::config::CaptureConfig;
use crate::filter::Filter;
use crate::kafka::offsets::{SNAPSHOT_POSITION_VERSION, StoredPosition};
use crate::kafka::writer::TransactionalWriter;
use crate::pipeline::CaptureError;
use crate::source::{self, SourceFacts};
use crate::status::{SnapshotStatus, State, StatusSender};

/// What a worker reports.
enum Message {
    /// The table's snapshot transaction is open at this point.
    Opened { index: usize, point: SnapshotPoint },
    /// Rows read.
    Chunk { index: usize, chunk: Chunk },
}

/// How a snapshot run ended.
pub enum Outcome {
    /// Every table is read; the committed position (with the finished progress) to stream from.
    Complete(StoredPosition),
    /// Asked to stop; what was read is committed and the next run resumes after it.
    Stopped,
}

/// What the snapshot needs from the capture.
pub struct Snapshotter<'a> {
    pub config: &'a CaptureConfig,
    pub facts: &'a SourceFacts,
    pub opts: &'a Opts,
    pub filter: &'a Filter,
    pub status: &'a StatusSender,
    pub control: &'a RunControl,
    pub writer: &'a mut TransactionalWriter,
    pub encoder: &'a mut Encoder,
    pub format: ValueFormat,
    pub meta: &'a mut Conn,
}

/// Where a chunk sits, for the snapshot markers of its first and last rows.
struct Ends {
    first_of_snapshot: bool,
    table_end: bool,
    last_of_snapshot: bool,
}

/// A table being read.
struct Active {
    table: Arc<SnapshotTable>,
    point: Option<SnapshotPoint>,
    /// No row of it emitted yet in this snapshot.
    first_row: bool,
}

impl Snapshotter<'_> {
    /// Plans a new snapshot of the tables the filter includes.
    pub async fn plan(&mut self) -> Result<SnapshotProgress, CaptureError> {
        let tables = tables::list(self.meta, self.filter).await?;
        tracing::info!(tables = tables.len(), "initial snapshot planned");
        Ok(SnapshotProgress {
            started_ms: now_ms(),
            tables: tables
                .into_iter()
                .map(|(id, estimate)| TableProgress::new(id, estimate))
                .collect(),
        })
    }

    /// Reads every table not yet done, committing progress as it goes.
    pub async fn run(&mut self, mut progress: SnapshotProgress) -> Result<Outcome, CaptureError> {
        let cancel = self.control.cancel_token().clone();
        let parallel = self.config.snapshot.parallel_tables.max(1);
        let chunk_rows = self.config.snapshot.chunk_rows;
        let mut queue: VecDeque<usize> = (0..progress.tables.len())
            .filter(|&i| !progress.tables[i].done)
            .collect();
        let mut active: std::collections::HashMap<usize, Active> = Default::default();
        let (tx, mut rx) = mpsc::channel::<Result<Message, SnapshotError>>(parallel * 2);
        let mut workers = JoinSet::new();
        let started = Instant::now();
        let rows_at_start: u64 = progress.tables.iter().map(|t| t.rows).sum();
        let mut last_commit = Instant::now();
        let commit_interval = Duration::from_millis(self.config.snapshot.commit_interval_ms.max(1));
        self.report(&progress, started, rows_at_start, true);
        loop {
            // Start workers for the next tables while there is room.
            while active.len() < parallel && !cancel.is_cancelled() {
                let Some(index) = queue.pop_front() else {
                    break;
                };
                let entry = &mut progress.tables[index];
                let table = match tables::describe(
                    self.meta,
                    &entry.id(),
                    self.filter,
                    self.config.topic_prefix(),
                )
                .await
                {
                    Ok(table) => Arc::new(table),
                    Err(SnapshotError::Vanished { table }) => {
                        tracing::warn!(%table, "table dropped before its snapshot; skipped");
                        entry.done = true;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                if table.key_names.is_empty() && entry.last_key.is_none() && entry.rows > 0 {
                    // A table without a key cannot resume inside itself: read it again.
                    tracing::warn!(table = %entry.id(), "table without a key interrupted; reading it again from the start");
                    entry.rows = 0;
                    entry.segments.clear();
                }
                entry.key_collations = table.key_collations.clone();
                let reader =
                    ChunkReader::new(Arc::clone(&table), chunk_rows, entry.last_key.clone());
                workers.spawn(read_table(
                    self.opts.clone(),
                    self.facts.clone(),
                    index,
                    reader,
                    tx.clone(),
                ));
                active.insert(
                    index,
                    Active {
                        table,
                        point: None,
                        first_row: entry.rows == 0,
                    },
                );
            }
            if active.is_empty() {
                break;
            }
            let message = tokio::select! {
                message = rx.recv() => message,
                () = cancel.cancelled() => None,
                // A worker that ends by itself has sent its outcome; one that panicked has not.
                Some(joined) = workers.join_next(), if !workers.is_empty() => {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        return Err(SnapshotError::Worker(format!("a table reader panicked: {e}")).into());
                    }
                    continue;
                }
                () = tokio::time::sleep(commit_interval), if self.writer.is_open() => {
                    self.commit(&progress).await?;
                    last_commit = Instant::now();
                    self.report(&progress, started, rows_at_start, false);
                    continue;
                }
            };
            let Some(message) = message else {
                // Stopping: what was sent is committed with its progress; workers are dropped
                // (their snapshot transactions end with their connections).
                workers.abort_all();
                self.commit(&progress).await?;
                self.writer.reap(true).await?;
                return Ok(Outcome::Stopped);
            };
            match message? {
                Message::Opened { index, point } => {
                    if let Some(entry) = active.get_mut(&index) {
                        entry.point = Some(point.clone());
                    }
                    progress.tables[index].open_segment(point);
                }
                Message::Chunk { index, chunk } => {
                    let others_done = progress
                        .tables
                        .iter()
                        .enumerate()
                        .all(|(i, t)| i == index || t.done);
                    let Some(entry) = active.get_mut(&index) else {
                        continue;
                    };
                    let first_of_snapshot =
                        rows_at_start == 0 && progress.tables.iter().all(|t| t.rows == 0);
                    let last = chunk.last;
                    let rows = chunk.rows.len() as u64;
                    let ends = Ends {
                        first_of_snapshot,
                        table_end: last,
                        last_of_snapshot: last && others_done && queue.is_empty(),
                    };
                    self.emit_chunk(entry, chunk.rows, ends).await?;
                    entry.first_row = entry.first_row && rows == 0;
                    let table = &mut progress.tables[index];
                    table.rows += rows;
                    table.last_key = chunk.last_key;
                    if last {
                        table.done = true;
                        active.remove(&index);
                        tracing::info!(table = %table.id(), rows = table.rows, "table snapshot done");
                    }
                    let batch = &self.config.batch;
                    if self.writer.records() >= batch.max_records
                        || self.writer.bytes() >= batch.max_bytes
                        || last_commit.elapsed() >= commit_interval
                        || last
                    {
                        self.commit(&progress).await?;
                        last_commit = Instant::now();
                        self.report(&progress, started, rows_at_start, false);
                    }
                    if self.control.pause_requested() {
                        self.commit(&progress).await?;
                        self.writer.reap(true).await?;
                        self.report(&progress, started, rows_at_start, false);
                        self.control.hold().await;
                        self.status.send_modify(|s| s.state = State::Snapshotting);
                    }
                }
            }
        }
        drop(tx);
        while let Some(joined) = workers.join_next().await {
            if let Ok(Err(e)) = joined {
                return Err(e.into());
            }
        }
        let position = self.position(&progress).ok_or_else(|| {
            CaptureError::Position("the snapshot read no table; nothing to stream from".into())
        });
        let position = match position {
            Ok(position) => position,
            // No table at all: stream from where the binlog is now.
            Err(_) => {
                let mut conn = source::connect(self.opts).await?;
                let point = reader::open(&mut conn, self.facts).await?;
                reader::close(&mut conn).await?;
                let _ = conn.disconnect().await;
                self.stored(&point, &progress)
            }
        };
        self.writer.commit(&position).await?;
        self.writer.reap(true).await?;
        self.report(&progress, started, rows_at_start, false);
        tracing::info!(
            rows = progress.tables.iter().map(|t| t.rows).sum::<u64>(),
            seconds = started.elapsed().as_secs_f64(),
            "initial snapshot complete"
        );
        Ok(Outcome::Complete(position))
    }

    /// Encodes and sends a chunk's rows.
    async fn emit_chunk(
        &mut self,
        entry: &Active,
        rows: Vec<Row>,
        ends: Ends,
    ) -> Result<(), CaptureError> {
        let Some(point) = &entry.point else {
            return Err(SnapshotError::Worker("rows before the snapshot point".into()).into());
        };
        let at = ReadAt {
            flavor: self.facts.flavor,
            file: &point.file,
            pos: point.pos,
        };
        let count = rows.len();
        for (i, row) in rows.into_iter().enumerate() {
            let (first, last) = (i == 0, i + 1 == count);
            // Debezium's markers: first/last of the whole snapshot, then of each table.
            let marker = if first && ends.first_of_snapshot {
                SnapshotMarker::First
            } else if last && ends.last_of_snapshot {
                SnapshotMarker::Last
            } else if first && entry.first_row {
                SnapshotMarker::FirstInTable
            } else if last && ends.table_end {
                SnapshotMarker::LastInTable
            } else {
                SnapshotMarker::Yes
            };
            send_read(
                self.writer,
                self.config,
                self.encoder,
                self.format,
                &entry.table,
                &at,
                marker,
                row,
            )
            .await?;
        }
        Ok(())
    }

    /// The position stored while the snapshot runs: streaming will start at the earliest
    /// point; the progress says what is delivered.
    fn position(&self, progress: &SnapshotProgress) -> Option<StoredPosition> {
        let point = progress.earliest_point()?.clone();
        Some(self.stored(&point, progress))
    }

    fn stored(&self, point: &SnapshotPoint, progress: &SnapshotProgress) -> StoredPosition {
        StoredPosition {
            version: SNAPSHOT_POSITION_VERSION,
            snapshot: Some(Arc::new(progress.clone())),
            ..StoredPosition::boundary(
                self.facts.flavor,
                self.facts.server_id,
                point.file.clone(),
                point.pos,
                point.gtids.clone(),
            )
        }
    }

    async fn commit(&mut self, progress: &SnapshotProgress) -> Result<(), CaptureError> {
        let Some(position) = self.position(progress) else {
            return Ok(());
        };
        if !self.writer.is_open() {
            return Ok(());
        }
        self.writer.commit(&position).await?;
        Ok(())
    }

    /// Publishes progress: rows per table, and an ETA from this run's rate.
    fn report(
        &mut self,
        progress: &SnapshotProgress,
        started: Instant,
        rows_at_start: u64,
        first: bool,
    ) {
        // Rows count as delivered once their Kafka transaction has committed: the status shows
        // the progress stored by the last finished commit (at the start, what was stored).
        let mut delivered = None;
        for done in self.writer.take_completed() {
            delivered = done.position.snapshot.clone().or(delivered);
            crate::metrics::kafka_commit(done.records, done.duration);
            self.status.send_modify(|s| {
                s.committed = Some(done.position);
                s.records_committed += done.records as u64;
                s.bytes_committed += done.bytes as u64;
                s.kafka_transactions += 1;
            });
        }
        let shown = match delivered {
            Some(delivered) => delivered,
            None if first => Arc::new(progress.clone()),
            None => return,
        };
        let rows: u64 = shown.tables.iter().map(|t| t.rows).sum();
        let status = SnapshotStatus::of(
            &shown.tables,
            shown.started_ms,
            rows.saturating_sub(rows_at_start),
            started.elapsed().as_secs_f64(),
            false,
            false,
        );
        self.status.send_modify(|s| {
            if first {
                s.state = State::Snapshotting;
            } else if let Some(before) = &s.snapshot {
                // The rows delivered since the last report count as reads of their table.
                for table in &shown.tables {
                    let name = table.id().to_string();
                    let earlier = before
                        .tables
                        .iter()
                        .find(|t| t.table == name)
                        .map_or(0, |t| t.rows);
                    if table.rows > earlier {
                        s.tables.entry(table.id()).or_default().reads += table.rows - earlier;
                    }
                }
            }
            s.snapshot = Some(status);
        });
    }
}

/// A worker: opens the table's snapshot transaction and reads it chunk by chunk.
async fn read_table(
    opts: Opts,
    facts: SourceFacts,
    index: usize,
    mut reader: ChunkReader,
    tx: mpsc::Sender<Result<Message, SnapshotError>>,
) -> Result<(), SnapshotError> {
    let result = async {
        let mut conn = source::connect(&opts).await?;
        let point = reader::open(&mut conn, &facts).await?;
        if tx.send(Ok(Message::Opened { index, point })).await.is_err() {
            return Ok(());
        }
        while let Some(chunk) = reader.next(&mut conn).await? {
            let last = chunk.last;
            if tx.send(Ok(Message::Chunk { index, chunk })).await.is_err() || last {
                break;
            }
        }
        reader::close(&mut conn).await?;
        let _ = conn.disconnect().await;
        Ok::<(), SnapshotError>(())
    }
    .await;
    if let Err(e) = result {
        let text = e.to_string();
        let _ = tx.send(Err(e)).await;
        return Err(SnapshotError::Worker(text));
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
