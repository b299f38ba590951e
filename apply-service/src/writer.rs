//! The writing half of a partition's applier: each chunk of prepared records goes into one
//! target transaction with the partition's next offset, conditional on the previous one; a
//! record the target refuses is found by applying the chunk record by record and handled by
//! the poison policy.
//!
//! It runs as a task of its own, so that the next batch is decoded and planned while this one
//! is written.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::PoisonPolicy;
use crate::metrics;
use crate::planner::{Change, Planner};
use crate::record::Record;
use crate::status::{State, partition_key};
use crate::target::tables::TargetTable;
use crate::target::{TargetError, exec};
use crate::trace::{Batch, CommitSpans};
use crate::worker::{Report, Shared};
use rowferry_shared::control::{TableCounts, count_change, merge_tables};

/// Why a partition's applier stopped early.
pub(crate) enum Exit {
    /// Stop requested (cancel) while waiting to retry.
    Stopped,
    /// Another writer moved the stored offset.
    Fenced,
    /// Unrecoverable: the pipeline fails.
    Fatal(String),
}

/// The outcome of one target transaction attempt.
enum Attempt {
    Transient(TargetError),
    /// The target refused a record's data: find it and apply the poison policy.
    Permanent(String),
    /// A permanent error that is no record's fault: stop.
    Fatal(String),
    Fenced,
}

/// A record ready to write.
pub(crate) struct Prepared {
    /// Its target table.
    pub table: Arc<TargetTable>,
    /// Its change, mapped to the table's columns.
    pub change: Change,
    /// Source commit time, ms since the epoch.
    pub source_ts_ms: i64,
    /// Source GTID or `file:pos`, stored with the offset.
    pub position: Option<String>,
    /// Bytes of the record (key and value).
    pub bytes: usize,
}

/// Records of one partition in offset order, ready to write, and the poison record that
/// follows them, if any.
pub(crate) struct Chunk {
    /// The records (tombstones included), in offset order.
    pub records: Vec<Record>,
    /// One entry per record; `None` for tombstones.
    pub prepared: Vec<Option<Prepared>>,
    /// A record that could not be prepared, with the reason.
    pub poison: Option<(Record, String)>,
}

/// Longest a target transaction may take before it is abandoned and retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Writes a partition's chunks.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    topic: Arc<str>,
    partition: i32,
    previous: Option<i64>,
    conn: Option<Conn>,
    cancel: CancellationToken,
}

impl Writer {
    /// A writer whose stored next offset is `previous`.
    pub fn new(
        shared: Arc<Shared>,
        topic: Arc<str>,
        partition: i32,
        previous: Option<i64>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            shared,
            topic,
            partition,
            previous,
            conn: None,
            cancel,
        }
    }

    /// Writes chunks until the channel closes; on fencing or failure it cancels `cancel`, so
    /// the preparing half stops too.
    pub async fn run(mut self, mut chunks: mpsc::Receiver<Chunk>) -> Result<(), Exit> {
        let mut result = Ok(());
        while let Some(chunk) = chunks.recv().await {
            result = self.write(chunk).await;
            if result.is_err() {
                break;
            }
        }
        if matches!(result, Err(Exit::Fenced | Exit::Fatal(_))) {
            self.cancel.cancel();
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.disconnect().await;
        }
        result
    }

    async fn write(&mut self, chunk: Chunk) -> Result<(), Exit> {
        if !chunk.records.is_empty() {
            self.commit(&chunk.records, chunk.prepared).await?;
        }
        if let Some((record, reason)) = chunk.poison {
            self.poison(&record, &reason).await?;
        }
        Ok(())
    }

    /// The partition's stored next offset, if it can be read now.
    async fn stored_offset(&mut self) -> Option<i64> {
        let shared = self.shared.clone();
        let topic = self.topic.clone();
        let partition = self.partition;
        let conn = self.connection().await.ok()?;
        shared
            .offsets
            .read(conn, &topic, partition)
            .await
            .ok()
            .flatten()
            .map(|s| s.next_offset)
    }

    async fn connection(&mut self) -> Result<&mut Conn, TargetError> {
        if self.conn.is_none() {
            self.conn = Some(self.shared.target.connect().await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| TargetError::Schema("no target connection".into()))
    }

    fn first_delay(&self) -> Duration {
        first_delay(&self.shared)
    }

    async fn retry_wait(&mut self, error: &str, delay: &mut Duration) -> Result<(), Exit> {
        retry_wait(
            &self.shared,
            &self.topic,
            self.partition,
            &self.cancel,
            error,
            delay,
        )
        .await
    }

    /// Writes `prepared` (the records of `records`, in order) and the partition's new offset
    /// in one transaction. A change the target refuses for good is found by applying the
    /// records one by one, and handled by the poison policy.
    async fn commit(
        &mut self,
        records: &[Record],
        prepared: Vec<Option<Prepared>>,
    ) -> Result<(), Exit> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let next_offset = last.offset + 1;
        let mut delay = self.first_delay();
        let mut retried = false;
        let spans = CommitSpans::start(&Batch {
            records,
            topic: &self.topic,
            partition: self.partition,
            group: self.shared.config.group_id(),
            transactional: self.shared.config.apply.transactional,
        });
        loop {
            let started = std::time::Instant::now();
            let outcome = match self.attempt(&prepared, next_offset).await {
                // After a lost connection the COMMIT may have succeeded: then the stored
                // offset is already ours.
                Err(Attempt::Fenced)
                    if retried && self.stored_offset().await == Some(next_offset) =>
                {
                    Ok(0)
                }
                outcome => outcome,
            };
            match outcome {
                Ok(statements) => {
                    let changes = prepared.iter().flatten().count();
                    metrics::target_commit(changes, started.elapsed());
                    spans.committed(changes, statements);
                    tracing::debug!(
                        topic = %self.topic,
                        partition = self.partition,
                        records = records.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "committed"
                    );
                    self.committed(&prepared, records.len(), next_offset);
                    return Ok(());
                }
                Err(Attempt::Fenced) => {
                    metrics::error("fenced");
                    spans.failed("fenced: another instance or a seek moved the stored offset");
                    return Err(Exit::Fenced);
                }
                Err(Attempt::Transient(e)) => {
                    metrics::error("target");
                    self.conn = None;
                    retried = true;
                    self.retry_wait(&e.to_string(), &mut delay).await?;
                }
                Err(Attempt::Fatal(reason)) => {
                    // Counted as `fatal` where the run ends with it.
                    spans.failed(&reason);
                    return Err(Exit::Fatal(format!(
                        "{}/{}: {reason}",
                        self.topic, self.partition
                    )));
                }
                Err(Attempt::Permanent(reason)) => {
                    if records.len() == 1 {
                        spans.failed(&reason);
                        return self.poison(&records[0], &reason).await;
                    }
                    // Find the record the target refuses: one transaction per record.
                    for (record, item) in records.iter().zip(prepared) {
                        Box::pin(self.commit(std::slice::from_ref(record), vec![item])).await?;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// One transaction: the conditional offset update, then the planned statements.
    async fn attempt(
        &mut self,
        prepared: &[Option<Prepared>],
        next_offset: i64,
    ) -> Result<usize, Attempt> {
        let statements = match self.plan(prepared) {
            Ok(statements) => statements,
            Err(reason) => return Err(Attempt::Permanent(reason)),
        };
        let last = prepared.iter().rev().flatten().next();
        let advance = self.shared.offsets.advance_sql(
            &self.topic,
            self.partition,
            self.previous,
            next_offset,
            last.and_then(|p| p.position.as_deref()),
            last.map(|p| p.source_ts_ms),
        );
        let conn = self.connection().await.map_err(classify)?;
        // A target that stops answering (a dead peer, a lock held for minutes) must not hold
        // the partition forever: give up, reconnect, retry.
        let result = match tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            run_transaction(conn, &advance, &statements),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                self.conn = None;
                return Err(Attempt::Transient(TargetError::sql(
                    format!("no answer from the target within {ATTEMPT_TIMEOUT:?}"),
                    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "target transaction timed out",
                    ))),
                )));
            }
        };
        if result.is_err()
            && let Some(conn) = self.conn.as_mut()
        {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        result.map(|()| statements.len())
    }

    fn plan(&self, prepared: &[Option<Prepared>]) -> Result<Vec<String>, String> {
        let options = &self.shared.config.apply;
        let rows = self.shared.config.batch.statement_rows;
        let mut statements = Vec::new();
        let items: Vec<&Prepared> = prepared.iter().flatten().collect();
        let mut i = 0;
        while i < items.len() {
            let table = &items[i].table;
            let mut j = i;
            let mut run = Vec::new();
            while j < items.len() && Arc::ptr_eq(&items[j].table, table) {
                run.push(&items[j].change);
                j += 1;
            }
            let planner = Planner::new(table, options.mode, options.deletes, rows);
            statements.extend(planner.plan(&run).map_err(|e| e.to_string())?);
            i = j;
        }
        Ok(statements)
    }

    fn committed(&mut self, prepared: &[Option<Prepared>], records: usize, next_offset: i64) {
        self.previous = Some(next_offset);
        let applied = prepared.iter().flatten().count() as u64;
        let tombstones = records as u64 - applied;
        let last_ts = prepared
            .iter()
            .rev()
            .flatten()
            .next()
            .map(|p| p.source_ts_ms);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let key = partition_key(&self.topic, self.partition);
        let mut tables = TableCounts::new();
        let mut bytes = 0u64;
        for p in prepared.iter().flatten() {
            count_change(&mut tables, &p.table.schema.id, &p.change.change);
            bytes += p.bytes as u64;
        }
        let last_position = prepared
            .iter()
            .rev()
            .flatten()
            .find_map(|p| p.position.clone());
        self.shared.status.send_modify(|s| {
            if s.state == State::Retrying {
                s.state = State::Running;
                s.error = None;
            }
            s.records_applied += applied;
            s.bytes_applied += bytes;
            merge_tables(&mut s.tables, &tables);
            if last_position.is_some() {
                s.source_position = last_position;
            }
            s.tombstones_skipped += tombstones;
            s.target_transactions += 1;
            if let Some(ts) = last_ts {
                s.lag_seconds = Some(((now_ms - ts).max(0) as f64) / 1000.0);
            }
            let entry = s.partitions.entry(key).or_default();
            entry.next_offset = Some(next_offset);
            if last_ts.is_some() {
                entry.source_ts_ms = last_ts;
            }
        });
        let _ = self.shared.reports.send(Report::Committed {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset,
        });
    }

    /// A record that cannot be applied: stop (`fail`) or dead-letter it and move past it.
    async fn poison(&mut self, record: &Record, reason: &str) -> Result<(), Exit> {
        let located = format!(
            "record at {}/{} offset {}: {reason}",
            record.topic, record.partition, record.offset
        );
        let shared = self.shared.clone();
        let Some(dead_letter) = shared
            .dead_letter
            .as_ref()
            .filter(|_| shared.config.apply.poison_policy == PoisonPolicy::DeadLetter)
        else {
            tracing::error!(error = %located, "poison record; stopping (apply.poison_policy = \"fail\")");
            metrics::error("poison");
            return Err(Exit::Fatal(format!(
                "{located}; fix the cause and restart, or set apply.poison_policy = \
                 \"dead-letter\" to divert such records"
            )));
        };
        let mut delay = self.first_delay();
        loop {
            match dead_letter.send(record, reason).await {
                Ok(()) => break,
                Err(e) => {
                    let error = format!(
                        "sending to the dead-letter topic {}: {e}",
                        dead_letter.topic()
                    );
                    self.retry_wait(&error, &mut delay).await?;
                }
            }
        }
        tracing::warn!(error = %located, topic = dead_letter.topic(), "poison record sent to the dead-letter topic");
        self.shared.status.send_modify(|s| s.dead_lettered += 1);
        metrics::error("poison");
        // Move the stored offset past it (no rows).
        let next_offset = record.offset + 1;
        loop {
            match self.attempt(&[], next_offset).await {
                Ok(_) => {
                    self.committed(&[], 0, next_offset);
                    return Ok(());
                }
                Err(Attempt::Fenced) => return Err(Exit::Fenced),
                Err(Attempt::Transient(e)) => {
                    self.conn = None;
                    self.retry_wait(&e.to_string(), &mut delay).await?;
                }
                Err(Attempt::Permanent(reason) | Attempt::Fatal(reason)) => {
                    return Err(Exit::Fatal(reason));
                }
            }
        }
    }
}

/// The first retry delay.
pub(crate) fn first_delay(shared: &Shared) -> Duration {
    Duration::from_millis(shared.config.target.retry_initial_ms.max(10))
}

/// Reports a transient error (state RETRYING) and sleeps before the next attempt,
/// doubling the delay up to `target.retry_max_ms`.
pub(crate) async fn retry_wait(
    shared: &Shared,
    topic: &str,
    partition: i32,
    cancel: &CancellationToken,
    error: &str,
    delay: &mut Duration,
) -> Result<(), Exit> {
    let max = Duration::from_millis(shared.config.target.retry_max_ms.max(10));
    tracing::warn!(topic = %topic, partition = partition, %error, retry_in = ?delay, "transient target error");
    let message = format!("{}/{}: {error}", topic, partition);
    shared.status.send_modify(|s| {
        if s.state == State::Running || s.state == State::Retrying {
            s.state = State::Retrying;
            s.error = Some(message);
        }
    });
    tokio::select! {
        _ = cancel.cancelled() => return Err(Exit::Stopped),
        _ = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(max);
    Ok(())
}

fn classify(error: TargetError) -> Attempt {
    if error.is_transient() {
        Attempt::Transient(error)
    } else if error.is_record_fault() {
        Attempt::Permanent(error.to_string())
    } else {
        Attempt::Fatal(error.to_string())
    }
}

async fn run_transaction(
    conn: &mut Conn,
    advance: &str,
    statements: &[String],
) -> Result<(), Attempt> {
    exec(conn, "START TRANSACTION", "starting a target transaction")
        .await
        .map_err(classify)?;
    match conn.query_drop(advance).await {
        Ok(()) if conn.affected_rows() == 1 => {}
        Ok(()) => return Err(Attempt::Fenced),
        // Duplicate key on the first INSERT: another instance stored an offset first.
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => return Err(Attempt::Fenced),
        Err(e) => {
            // Never the record's fault: a broken offsets table must not poison records.
            let error = TargetError::sql("updating the offsets table", e);
            return Err(if error.is_transient() {
                Attempt::Transient(error)
            } else {
                Attempt::Fatal(error.to_string())
            });
        }
    }
    for statement in statements {
        let started = std::time::Instant::now();
        if let Err(e) = conn.query_drop(statement.as_str()).await {
            let error = TargetError::sql("applying changes", e);
            return Err(classify(error));
        }
        metrics::statement(started.elapsed());
    }
    exec(conn, "COMMIT", "committing").await.map_err(classify)
}
