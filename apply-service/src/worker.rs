//! One partition's applier: gathers records into batches, decodes them, writes each batch and
//! the partition's next offset in one target transaction, conditional on the previous offset.
//!
//! A worker owns its target connection, so partitions apply in parallel while each
//! partition's records are applied strictly in offset order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use rowferry_shared::codec::{DecodeError, DecodedChange};
use rowferry_shared::event::{RowKey, TableId, TableSchema};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ApplyConfig, PoisonPolicy};
use crate::dead_letter::DeadLetter;
use crate::decode::{self, Format};
use crate::planner::{Change, Planner};
use crate::status::{PartitionStatus, State, StatusSender, partition_key};
use crate::target::offsets::OffsetsTable;
use crate::target::tables::{self, TargetTable};
use crate::target::{TargetError, TargetOptions, exec};

/// What the consumer hands a worker.
#[derive(Debug)]
pub enum Input {
    /// The next record of the partition.
    Record(OwnedMessage),
    /// The consumer reached the end of the partition: every record before this one was
    /// committed in Kafka, so a source transaction open here is complete.
    End,
}

/// What a worker tells the consumer.
#[derive(Debug)]
pub enum Report {
    /// Rows up to `next_offset` are committed in the target.
    Committed {
        topic: Arc<str>,
        partition: i32,
        next_offset: i64,
    },
    /// The stored offset was not the one this worker expected: another instance (or a seek)
    /// moved it. The worker stopped; the consumer re-reads the offset and seeks there.
    Fenced { topic: Arc<str>, partition: i32 },
    /// The pipeline must stop.
    Failed { error: String },
}

/// What every worker shares.
pub struct Shared {
    /// The configuration.
    pub config: ApplyConfig,
    /// How to reach the target.
    pub target: TargetOptions,
    /// The offsets table.
    pub offsets: OffsetsTable,
    /// The status.
    pub status: StatusSender,
    /// The dead-letter producer under `poison_policy = "dead-letter"`.
    pub dead_letter: Option<DeadLetter>,
    /// Reports to the consumer.
    pub reports: std::sync::mpsc::Sender<Report>,
}

/// Why a worker stopped early.
enum Exit {
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
struct Prepared {
    table: Arc<TargetTable>,
    change: Change,
    source_ts_ms: i64,
    position: Option<String>,
}

/// A partition's applier.
pub struct Worker {
    shared: Arc<Shared>,
    topic: Arc<str>,
    partition: i32,
    previous: Option<i64>,
    input: mpsc::Receiver<Input>,
    pending: VecDeque<Input>,
    conn: Option<Conn>,
    tables: HashMap<TableId, Arc<TargetTable>>,
    columns: HashMap<(TableId, Vec<String>), Arc<[usize]>>,
    topic_table: Option<TableId>,
    cancel: CancellationToken,
}

impl Worker {
    /// A worker for `topic`/`partition` whose stored next offset is `previous`.
    pub fn new(
        shared: Arc<Shared>,
        topic: Arc<str>,
        partition: i32,
        previous: Option<i64>,
        input: mpsc::Receiver<Input>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            shared,
            topic,
            partition,
            previous,
            input,
            pending: VecDeque::new(),
            conn: None,
            tables: HashMap::new(),
            columns: HashMap::new(),
            topic_table: None,
            cancel,
        }
    }

    /// Applies until cancelled, fenced or failed.
    pub async fn run(mut self) {
        let key = partition_key(&self.topic, self.partition);
        self.shared.status.send_modify(|s| {
            s.partitions.insert(
                key.clone(),
                PartitionStatus {
                    next_offset: self.previous,
                    source_ts_ms: None,
                },
            );
        });
        let result = self.run_batches().await;
        let report = match result {
            Ok(()) | Err(Exit::Stopped) => None,
            Err(Exit::Fenced) => Some(Report::Fenced {
                topic: self.topic.clone(),
                partition: self.partition,
            }),
            Err(Exit::Fatal(error)) => Some(Report::Failed { error }),
        };
        if let Some(report) = report {
            let _ = self.shared.reports.send(report);
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.disconnect().await;
        }
    }

    async fn run_batches(&mut self) -> Result<(), Exit> {
        while let Some(batch) = self.next_batch().await {
            self.apply_batch(batch).await?;
        }
        Ok(())
    }

    fn transactional(&self) -> bool {
        self.shared.config.apply.transactional
    }

    /// The next batch: records already waiting are taken at once; a partial batch waits up
    /// to the linger for more. In transactional mode the batch ends at a source transaction
    /// boundary. `None` when stopping.
    async fn next_batch(&mut self) -> Option<Vec<OwnedMessage>> {
        let max_rows = self.shared.config.batch.max_rows;
        let max_bytes = self.shared.config.batch.max_bytes;
        let linger = self.shared.config.linger();
        let mut batch: Vec<OwnedMessage> = Vec::new();
        // Transactional mode: each record's source transaction, read once.
        let mut transactions: Vec<Option<String>> = Vec::new();
        let mut bytes = 0usize;
        let mut ended = false;
        let mut deadline: Option<Instant> = None;
        loop {
            if self.cancel.is_cancelled() {
                return None;
            }
            let full = batch.len() >= max_rows || bytes >= max_bytes;
            // A full batch takes no more, except in transactional mode while no transaction
            // in it is complete yet.
            let take_more =
                !full || (self.transactional() && complete_prefix(&transactions, ended) == 0);
            let next = if take_more {
                match self.pending.pop_front() {
                    Some(input) => Some(input),
                    None => self.input.try_recv().ok(),
                }
            } else {
                None
            };
            match next {
                Some(Input::Record(record)) => {
                    bytes += record.payload().map_or(0, <[u8]>::len);
                    if self.transactional() {
                        transactions.push(transaction_of(&record, self.shared.config.kafka.format));
                    }
                    batch.push(record);
                    ended = false;
                    deadline.get_or_insert_with(|| Instant::now() + linger);
                    continue;
                }
                Some(Input::End) => {
                    ended = true;
                    continue;
                }
                None => {}
            }
            // Nothing waiting (or the batch is full).
            let complete = if self.transactional() {
                complete_prefix(&transactions, ended)
            } else {
                batch.len()
            };
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if complete > 0 && (full || expired) {
                let rest = batch.split_off(complete);
                for record in rest.into_iter().rev() {
                    self.pending.push_front(Input::Record(record));
                }
                return Some(batch);
            }
            let wait = match deadline {
                Some(d) if complete > 0 => d.saturating_duration_since(Instant::now()),
                _ => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                input = self.input.recv() => match input {
                    Some(input) => self.pending.push_back(input),
                    None => {
                        // The consumer dropped the partition.
                        return None;
                    }
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Applies `batch`: records before a poison record in one transaction, the poison record
    /// by the policy, then the rest.
    async fn apply_batch(&mut self, batch: Vec<OwnedMessage>) -> Result<(), Exit> {
        let mut start = 0;
        while start < batch.len() {
            let (prepared, poison) = self.prepare(&batch[start..]).await?;
            let count = prepared.len();
            if count > 0 {
                self.commit(&batch[start..start + count], prepared).await?;
            }
            start += count;
            if let Some(reason) = poison {
                self.poison(&batch[start], &reason).await?;
                start += 1;
            }
        }
        Ok(())
    }

    /// Decodes records and resolves their tables, up to the first poison record (returned
    /// with its reason). Tombstones come back as `None`.
    async fn prepare(
        &mut self,
        records: &[OwnedMessage],
    ) -> Result<(Vec<Option<Prepared>>, Option<String>), Exit> {
        let mut prepared = Vec::with_capacity(records.len());
        for record in records {
            let mut delay = self.first_delay();
            let outcome = loop {
                match self.prepare_one(record).await {
                    Ok(outcome) => break outcome,
                    Err(e) if e.is_transient() => {
                        self.conn = None;
                        self.retry_wait(&e.to_string(), &mut delay).await?;
                    }
                    Err(e) => return Err(Exit::Fatal(e.to_string())),
                }
            };
            match outcome {
                Ok(p) => prepared.push(p),
                Err(reason) => return Ok((prepared, Some(reason))),
            }
        }
        Ok((prepared, None))
    }

    /// One record: `Ok(Ok(_))` ready, `Ok(Err(reason))` poison, `Err` transient.
    async fn prepare_one(
        &mut self,
        record: &OwnedMessage,
    ) -> Result<Result<Option<Prepared>, String>, TargetError> {
        let format = decode::format_of(record, self.shared.config.kafka.format);
        let decoded = match format {
            Format::JsonPayload => {
                let id = match &self.topic_table {
                    Some(id) => Ok(id.clone()),
                    None => decode::peek_table(record),
                };
                match id {
                    Ok(source_id) => {
                        self.topic_table = Some(source_id.clone());
                        let target_id = self.target_id(&source_id);
                        match self.table(&target_id, None).await? {
                            Ok(table) => decode::decode_payload(record, &payload_schema(&table)),
                            Err(reason) => return Ok(Err(reason)),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            _ => decode::decode_typed(record, format),
        };
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(DecodeError::Tombstone) => return Ok(Ok(None)),
            Err(e) => return Ok(Err(format!("cannot decode the record: {e}"))),
        };
        let target_id = self.target_id(&decoded.table);
        let table = match self.table(&target_id, Some(&decoded)).await? {
            Ok(table) => table,
            Err(reason) => return Ok(Err(reason)),
        };
        let names: Vec<String> = decoded.columns.iter().map(|c| c.name.clone()).collect();
        let cache_key = (target_id, names);
        let columns = match self.columns.get(&cache_key) {
            Some(columns) => columns.clone(),
            None => {
                let columns: Option<Arc<[usize]>> = cache_key
                    .1
                    .iter()
                    .map(|name| table.column_index(name))
                    .collect();
                let Some(columns) = columns else {
                    return Ok(Err(format!(
                        "target table {} lacks a column of the record",
                        table.schema.id
                    )));
                };
                self.columns.insert(cache_key, columns.clone());
                columns
            }
        };
        let source_ts_ms = decoded.source.ts_us / 1000;
        let position = decoded.source.gtid.clone().or_else(|| {
            (!decoded.source.file.is_empty())
                .then(|| format!("{}:{}", decoded.source.file, decoded.source.pos))
        });
        Ok(Ok(Some(Prepared {
            table,
            change: Change {
                columns,
                change: decoded.change,
            },
            source_ts_ms,
            position,
        })))
    }

    fn target_id(&self, source: &TableId) -> TableId {
        match &self.shared.config.target.database {
            Some(db) => TableId::new(db.clone(), source.table.clone()),
            None => source.clone(),
        }
    }

    /// The target table, loaded once; created or widened from `record` when configured.
    /// `Ok(Err(reason))` when the table does not fit.
    async fn table(
        &mut self,
        id: &TableId,
        record: Option<&DecodedChange>,
    ) -> Result<Result<Arc<TargetTable>, String>, TargetError> {
        if let Some(table) = self.tables.get(id) {
            let fits = match record {
                Some(record) => tables::check(table, record).is_ok(),
                None => true,
            };
            if fits {
                return Ok(Ok(table.clone()));
            }
        }
        let options = self.shared.config.apply.clone();
        let conn = self.connection().await?;
        let mut table = tables::load(conn, id).await?;
        if table.is_none() {
            match record {
                Some(record) if options.create_tables => {
                    let sql = tables::create_sql(id, record);
                    tracing::info!(table = %id, "creating the target table");
                    exec(
                        conn,
                        &format!(
                            "CREATE DATABASE IF NOT EXISTS {}",
                            rowferry_shared::event::quote_identifier(&id.db)
                        ),
                        "creating the target database",
                    )
                    .await?;
                    exec(conn, &sql, &format!("creating {id}")).await?;
                    table = tables::load(conn, id).await?;
                }
                Some(_) => {
                    return Ok(Err(format!(
                        "target table {id} does not exist; create it, or set \
                         apply.create_tables = true to let rowferry create it"
                    )));
                }
                None => {
                    return Ok(Err(format!(
                        "target table {id} does not exist, and records without a schema cannot \
                         create it; create it, or capture with schemas on"
                    )));
                }
            }
        }
        let Some(mut table) = table else {
            return Ok(Err(format!("target table {id} could not be created")));
        };
        if let Some(record) = record {
            let missing = tables::missing_columns(&table, record);
            if !missing.is_empty() && options.evolve {
                let sql = tables::add_columns_sql(id, &missing);
                tracing::info!(table = %id, %sql, "adding columns to the target table");
                match exec(conn, &sql, &format!("altering {id}")).await {
                    Ok(()) => {}
                    // Another partition's worker added it first.
                    Err(e) if e.server_code() == Some(1060) => {}
                    Err(e) => return Err(e),
                }
                if let Some(reloaded) = tables::load(conn, id).await? {
                    table = reloaded;
                }
            }
            if let Err(e) = tables::check(&table, record) {
                return Ok(Err(e.to_string()));
            }
        }
        let table = Arc::new(table);
        self.columns.retain(|(t, _), _| t != id);
        self.tables.insert(id.clone(), table.clone());
        Ok(Ok(table))
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
        Duration::from_millis(self.shared.config.target.retry_initial_ms.max(10))
    }

    /// Reports a transient error (state RETRYING) and sleeps before the next attempt,
    /// doubling the delay up to `target.retry_max_ms`.
    async fn retry_wait(&mut self, error: &str, delay: &mut Duration) -> Result<(), Exit> {
        let max = Duration::from_millis(self.shared.config.target.retry_max_ms.max(10));
        tracing::warn!(topic = %self.topic, partition = self.partition, %error, retry_in = ?delay, "transient target error");
        let message = format!("{}/{}: {error}", self.topic, self.partition);
        self.shared.status.send_modify(|s| {
            if s.state == State::Running || s.state == State::Retrying {
                s.state = State::Retrying;
                s.error = Some(message);
            }
        });
        tokio::select! {
            _ = self.cancel.cancelled() => return Err(Exit::Stopped),
            _ = tokio::time::sleep(*delay) => {}
        }
        *delay = (*delay * 2).min(max);
        Ok(())
    }

    /// Writes `prepared` (the records of `records`, in order) and the partition's new offset
    /// in one transaction. A change the target refuses for good is found by applying the
    /// records one by one, and handled by the poison policy.
    async fn commit(
        &mut self,
        records: &[OwnedMessage],
        prepared: Vec<Option<Prepared>>,
    ) -> Result<(), Exit> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        let next_offset = last.offset() + 1;
        let mut delay = self.first_delay();
        loop {
            match self.attempt(&prepared, next_offset).await {
                Ok(()) => {
                    self.committed(&prepared, records.len(), next_offset);
                    return Ok(());
                }
                Err(Attempt::Fenced) => return Err(Exit::Fenced),
                Err(Attempt::Transient(e)) => {
                    self.conn = None;
                    self.retry_wait(&e.to_string(), &mut delay).await?;
                }
                Err(Attempt::Fatal(reason)) => {
                    // A table or column may have changed under us: forget what we know.
                    self.tables.clear();
                    self.columns.clear();
                    return Err(Exit::Fatal(format!(
                        "{}/{}: {reason}",
                        self.topic, self.partition
                    )));
                }
                Err(Attempt::Permanent(reason)) => {
                    if records.len() == 1 {
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
    ) -> Result<(), Attempt> {
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
        let result = run_transaction(conn, &advance, &statements).await;
        if result.is_err()
            && let Some(conn) = self.conn.as_mut()
        {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        result
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
                run.push(items[j].change.clone());
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
        self.shared.status.send_modify(|s| {
            if s.state == State::Retrying {
                s.state = State::Running;
                s.error = None;
            }
            s.records_applied += applied;
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
    async fn poison(&mut self, record: &OwnedMessage, reason: &str) -> Result<(), Exit> {
        let located = format!(
            "record at {}/{} offset {}: {reason}",
            record.topic(),
            record.partition(),
            record.offset()
        );
        let shared = self.shared.clone();
        let Some(dead_letter) = shared
            .dead_letter
            .as_ref()
            .filter(|_| shared.config.apply.poison_policy == PoisonPolicy::DeadLetter)
        else {
            tracing::error!(error = %located, "poison record; stopping (apply.poison_policy = \"fail\")");
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
        // Move the stored offset past it (no rows).
        let next_offset = record.offset() + 1;
        loop {
            match self.attempt(&[], next_offset).await {
                Ok(()) => {
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
        Err(e) => return Err(classify(TargetError::sql("updating the offsets table", e))),
    }
    for statement in statements {
        if let Err(e) = conn.query_drop(statement.as_str()).await {
            let error = TargetError::sql("applying changes", e);
            return Err(classify(error));
        }
    }
    exec(conn, "COMMIT", "committing").await.map_err(classify)
}

/// The target table as a schema for schemaless JSON payloads (its primary key as the key).
fn payload_schema(table: &TargetTable) -> TableSchema {
    let mut schema = table.schema.clone();
    if let RowKey::Unique(columns) = &schema.key {
        schema.key = RowKey::Primary(columns.clone());
    }
    schema
}

/// How many leading records of `batch` form complete source transactions: a transaction is
/// complete when a record of another transaction follows it, or when the consumer reached the
/// end of the partition after it (`ended`).
fn complete_prefix(transactions: &[Option<String>], ended: bool) -> usize {
    let Some(last) = transactions.last() else {
        return 0;
    };
    if ended || last.is_none() {
        return transactions.len();
    }
    let mut cut = transactions.len();
    while cut > 0 && transactions[cut - 1] == *last {
        cut -= 1;
    }
    cut
}

/// The source transaction a record belongs to: the GTID header rowferry writes, else the
/// record's `transaction.id`; `None` for records outside a transaction (snapshot reads).
fn transaction_of(
    record: &OwnedMessage,
    fallback: crate::config::FormatFallback,
) -> Option<String> {
    if let Some(headers) = record.headers()
        && let Some(gtid) = headers
            .iter()
            .find(|h| h.key == "rowferry.source.gtid")
            .and_then(|h| h.value)
    {
        return Some(String::from_utf8_lossy(gtid).into_owned());
    }
    let format = decode::format_of(record, fallback);
    match format {
        Format::Protobuf | Format::JsonWithSchema => decode::decode_typed(record, format)
            .ok()
            .and_then(|d| d.transaction.map(|t| t.id)),
        Format::JsonPayload => decode::peek_transaction(record),
    }
}
