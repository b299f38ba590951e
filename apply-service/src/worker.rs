//! One partition's applier: gathers records into batches, decodes them, writes each batch and
//! the partition's next offset in one target transaction, conditional on the previous offset.
//!
//! A worker owns its target connection, so partitions apply in parallel while each
//! partition's records are applied strictly in offset order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use rowferry_shared::codec::{DecodeError, DecodedChange, DecodedColumn};
use rowferry_shared::event::{RowKey, TableId, TableSchema};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ApplyConfig;
use crate::dead_letter::DeadLetter;
use crate::decode::{self, Format, TypedDecoders};
use crate::planner::Change;
use crate::record::Record;
use crate::status::{StatusSender, partition_key};
use crate::target::offsets::OffsetsTable;
use crate::target::tables::{self, TargetTable};
use crate::target::{TargetError, TargetOptions, exec};
use crate::writer::{Chunk, Exit, Prepared, Writer, first_delay, retry_wait};

/// What the consumer hands a worker.
#[derive(Debug)]
pub enum Input {
    /// The next record of the partition.
    Record(Record),
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

/// The table and column mapping of the last record prepared.
struct Shape {
    /// The record's source table.
    source: TableId,
    /// The record's column names, in order.
    names: Vec<String>,
    /// The decoder's description of those columns: a record sharing it has the same columns.
    decoded: Arc<[DecodedColumn]>,
    /// Its target table, checked against those columns.
    table: Arc<TargetTable>,
    /// Where each column goes in the target table.
    columns: Arc<[usize]>,
}

impl Shape {
    /// Whether `decoded` has this shape's table and columns.
    fn fits(&self, decoded: &DecodedChange) -> bool {
        decoded.table == self.source
            && (Arc::ptr_eq(&self.decoded, &decoded.columns)
                || self.names.len() == decoded.columns.len()
                    && self
                        .names
                        .iter()
                        .zip(decoded.columns.iter())
                        .all(|(n, c)| *n == c.name))
    }
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
    last_shape: Option<Shape>,
    payload_schema: Option<(TableId, Arc<TableSchema>)>,
    decoders: TypedDecoders,
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
            last_shape: None,
            payload_schema: None,
            decoders: TypedDecoders::default(),
            cancel,
        }
    }

    /// Applies until cancelled, fenced or failed.
    pub async fn run(mut self) {
        // The writer cancels this when it is fenced or fails, which stops the preparing half.
        let stop = self.cancel.child_token();
        self.cancel = stop.clone();
        let key = partition_key(&self.topic, self.partition);
        // A partition resumed or re-assigned keeps what is known of it (when it fell behind,
        // its last change) until the next commit and statistics say more.
        self.shared.status.send_modify(|s| {
            s.partitions.entry(key.clone()).or_default().next_offset = self.previous;
        });
        let (chunks, receiver) = mpsc::channel(1);
        let writer = Writer::new(
            self.shared.clone(),
            self.topic.clone(),
            self.partition,
            self.previous,
            stop,
        );
        let writer = tokio::spawn(writer.run(receiver));
        let prepared = self.run_batches(chunks).await;
        let written = writer
            .await
            .unwrap_or_else(|e| Err(Exit::Fatal(format!("writer task: {e}"))));
        // The writer's outcome explains a stop first (the preparing half only sees it end).
        let result = match (written, prepared) {
            (Err(e @ (Exit::Fenced | Exit::Fatal(_))), _) => Err(e),
            (_, prepared) => prepared,
        };
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

    /// Prepares batches and hands them to the writer, splitting a batch at a poison record.
    async fn run_batches(&mut self, chunks: mpsc::Sender<Chunk>) -> Result<(), Exit> {
        while let Some(mut batch) = self.next_batch(&chunks).await {
            loop {
                let (prepared, poison) = self.prepare(&batch).await?;
                let mut rest = batch.split_off(prepared.len());
                let poison = match poison {
                    Some(reason) if !rest.is_empty() => Some((rest.remove(0), reason)),
                    _ => None,
                };
                let chunk = Chunk {
                    records: batch,
                    prepared,
                    poison,
                };
                if chunks.send(chunk).await.is_err() {
                    // The writer stopped; its outcome is reported.
                    return Ok(());
                }
                if rest.is_empty() {
                    break;
                }
                batch = rest;
            }
        }
        Ok(())
    }

    fn transactional(&self) -> bool {
        self.shared.config.apply.transactional
    }

    /// The next batch: records already waiting are taken at once; a partial batch waits up
    /// to the linger for more, and past it for as long as the writer still has a batch
    /// queued, so batches grow under load (fewer target commits, more changes coalesced)
    /// while a lone change still waits only the linger. In transactional mode the batch ends
    /// at a source transaction boundary. `None` when stopping.
    async fn next_batch(&mut self, chunks: &mpsc::Sender<Chunk>) -> Option<Vec<Record>> {
        let max_rows = self.shared.config.batch.max_rows;
        let max_bytes = self.shared.config.batch.max_bytes;
        let linger = self.shared.config.linger();
        let mut batch: Vec<Record> = Vec::new();
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
                // Already applied (a record fetched before a seek): never again.
                Some(Input::Record(record))
                    if self
                        .previous
                        .is_some_and(|previous| record.offset < previous) => {}
                Some(Input::Record(record)) => {
                    bytes += record.payload().len();
                    if self.transactional() {
                        transactions.push(transaction_of(
                            &record,
                            self.shared.config.kafka.format,
                            &mut self.decoders,
                        ));
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
            let writer_ready = chunks.capacity() > 0;
            if complete > 0 && (full || (expired && writer_ready)) {
                let rest = batch.split_off(complete);
                for record in rest.into_iter().rev() {
                    self.pending.push_front(Input::Record(record));
                }
                return Some(batch);
            }
            let wait = match deadline {
                Some(d) if complete > 0 && !expired => d.saturating_duration_since(Instant::now()),
                _ => Duration::from_secs(3600),
            };
            // Past the linger with the writer busy: wake when it takes the queued batch.
            let writer_freed = async {
                if complete > 0 && expired && !writer_ready {
                    // The permit is dropped at once; only the wake-up matters.
                    chunks.reserve().await.is_ok()
                } else {
                    std::future::pending::<bool>().await
                }
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                open = writer_freed => if !open {
                    // The writer stopped; its outcome is reported.
                    return None;
                },
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

    /// Decodes records and resolves their tables, up to the first poison record (returned
    /// with its reason). Tombstones come back as `None`.
    async fn prepare(
        &mut self,
        records: &[Record],
    ) -> Result<(Vec<Option<Prepared>>, Option<String>), Exit> {
        let mut prepared = Vec::with_capacity(records.len());
        for record in records {
            let mut delay = first_delay(&self.shared);
            let outcome = loop {
                match self.prepare_one(record).await {
                    Ok(outcome) => break outcome,
                    Err(e) if e.is_transient() => {
                        self.conn = None;
                        retry_wait(
                            &self.shared,
                            &self.topic,
                            self.partition,
                            &self.cancel,
                            &e.to_string(),
                            &mut delay,
                        )
                        .await?;
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
        record: &Record,
    ) -> Result<Result<Option<Prepared>, String>, TargetError> {
        let format = decode::format_of(record, self.shared.config.kafka.format);
        let decoded = match format {
            Format::JsonPayload => match self.decode_payload(record).await? {
                Ok(decoded) => decoded,
                Err(reason) => return Ok(Err(reason)),
            },
            _ => self.decoders.decode(record, format),
        };
        let mut decoded = match decoded {
            Ok(decoded) => decoded,
            Err(DecodeError::Tombstone) => return Ok(Ok(None)),
            Err(e) => return Ok(Err(format!("cannot decode the record: {e}"))),
        };
        // Records of a table mostly carry the same columns as the one before: then the table
        // was checked already and the column mapping is known (compared by name, no
        // allocation). Only a new table or column list goes through the checks.
        let shape = match &self.last_shape {
            Some(shape) if shape.fits(&decoded) => shape,
            _ => {
                let target_id = self.target_id(&decoded.table);
                let table = match self.table(&target_id, Some(&decoded)).await? {
                    Ok(table) => table,
                    Err(reason) => return Ok(Err(reason)),
                };
                let columns: Option<Arc<[usize]>> = decoded
                    .columns
                    .iter()
                    .map(|c| table.column_index(&c.name))
                    .collect();
                let Some(columns) = columns else {
                    return Ok(Err(format!(
                        "target table {} lacks a column of the record",
                        table.schema.id
                    )));
                };
                self.last_shape.insert(Shape {
                    source: decoded.table.clone(),
                    names: decoded.columns.iter().map(|c| c.name.clone()).collect(),
                    decoded: decoded.columns.clone(),
                    table,
                    columns,
                })
            }
        };
        let source_ts_ms = decoded.source.ts_us / 1000;
        let position = decoded.source.gtid.take().or_else(|| {
            (!decoded.source.file.is_empty())
                .then(|| format!("{}:{}", decoded.source.file, decoded.source.pos))
        });
        Ok(Ok(Some(Prepared {
            table: shape.table.clone(),
            change: Change {
                columns: shape.columns.clone(),
                change: decoded.change,
            },
            source_ts_ms,
            position,
            bytes: record.key.as_ref().map_or(0, |k| k.len()) + record.payload().len(),
        })))
    }

    /// Decodes a schemaless JSON record with its target table's definition: first with the
    /// table of the record before (a topic mostly carries one table), and only when the
    /// record says another table (or does not fit) by looking its table up.
    async fn decode_payload(
        &mut self,
        record: &Record,
    ) -> Result<Result<Result<DecodedChange, DecodeError>, String>, TargetError> {
        if let Some((source, schema)) = &self.payload_schema
            && let Ok(decoded) = decode::decode_payload(record, schema)
            && decoded.table == *source
        {
            return Ok(Ok(Ok(decoded)));
        }
        let source = match decode::peek_table(record) {
            Ok(source) => source,
            Err(e) => return Ok(Ok(Err(e))),
        };
        let table = match self.table(&self.target_id(&source), None).await? {
            Ok(table) => table,
            Err(reason) => return Ok(Err(reason)),
        };
        let schema = Arc::new(payload_schema(&table));
        let decoded = decode::decode_payload(record, &schema);
        self.payload_schema = Some((source, schema));
        Ok(Ok(decoded))
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
            // Another partition's worker may add some of the columns first (1060): reload and
            // add what is still missing.
            for _ in 0..3 {
                let missing = tables::missing_columns(&table, record);
                if missing.is_empty() || !options.evolve {
                    break;
                }
                let sql = tables::add_columns_sql(id, &missing);
                tracing::info!(table = %id, %sql, "adding columns to the target table");
                match exec(conn, &sql, &format!("altering {id}")).await {
                    Ok(()) => {}
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
        self.last_shape = None;
        self.payload_schema = None;
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
    record: &Record,
    fallback: crate::config::FormatFallback,
    decoders: &mut TypedDecoders,
) -> Option<String> {
    if let Some(gtid) = &record.gtid {
        return Some(gtid.to_string());
    }
    let format = decode::format_of(record, fallback);
    match format {
        Format::Protobuf | Format::JsonWithSchema => decoders
            .decode(record, format)
            .ok()
            .and_then(|d| d.transaction.map(|t| t.id)),
        Format::JsonPayload => decode::peek_transaction(record),
    }
}
