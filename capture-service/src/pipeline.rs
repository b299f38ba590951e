//! The capture pipeline: binlog in, Kafka transactions out, one controllable task.
//!
//! [`run`] retries transient failures (lost source or broker) from the last committed
//! position with exponential backoff; everything else moves the status to FAILED with the
//! error kept. Inside, a [`Streamer`] reads events in order and keeps three positions: the
//! event being read, the end of the last complete source transaction (the *boundary*, what a
//! commit stores), and what was last committed. Kafka transactions end only at boundaries,
//! except when a source transaction is split for size; then the stored position says how many
//! of its rows are out, and a restart skips exactly those.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use mysql_async::binlog::events::TableMapEvent;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, Conn};
use rdkafka::message::{Header, OwnedHeaders};
use rowferry_shared::codec::{CodecOptions, Encoder, ValueFormat};
use rowferry_shared::event::{
    ChangeEvent, ColumnSchema, Row, RowChange, RowKey, SharedTableSchema, SnapshotMarker,
    SourceInfo, TableId, TableSchema, TransactionInfo, Value,
};
use rowferry_shared::position::{BinlogFilePosition, Flavor, Gtid, GtidSet};
use tokio_util::sync::CancellationToken;

use crate::binlog::DecodeError;
use crate::binlog::decoder::RowDecoder;
use crate::binlog::events::{SourceEvent, classify, verify_checksum};
use crate::binlog::table_map::TableMap;
use crate::config::{CaptureConfig, ConfigError};
use crate::filter::{Filter, FilterError};
use crate::kafka::KafkaError;
use crate::kafka::offsets::{
    POSITION_VERSION, PartialTransaction, SNAPSHOT_POSITION_VERSION, StoredPosition, ensure_topic,
    read_position,
};
use crate::kafka::writer::{TransactionalWriter, client_config};
use crate::metrics;
use crate::snapshot::SnapshotError;
use crate::snapshot::incremental::{self, Commands, InFlight, IncrementalProgress};
use crate::snapshot::initial::{Outcome, Snapshotter};
use crate::snapshot::overlap::Overlap;
use crate::snapshot::progress::{EventPoint, KeyValue, key_of};
use crate::snapshot::reader::{self as snapshot_reader, ChunkReader};
use crate::snapshot::records::{ReadAt, send_read};
use crate::snapshot::tables::{self as snapshot_tables, SnapshotTable};
use crate::source::{self, SourceError, SourceFacts, StreamStart};
use crate::status::{State, StatusSender};
use crate::trace::{Origin, TransactionSpan};
use rowferry_shared::lifecycle::RunControl;

/// Why a capture stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A filter pattern does not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The source failed or refused.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Kafka failed.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// A binlog event could not be decoded.
    #[error("binlog {file}:{pos}: {source}")]
    Decode {
        file: String,
        pos: u64,
        source: Box<DecodeError>,
    },
    /// A change could not be encoded.
    #[error("{0}")]
    Codec(String),
    /// The stored position does not fit this source.
    #[error("stored position unusable: {0}")]
    Position(String),
    /// The initial snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl CaptureError {
    /// A short name of the layer that failed (the `kind` label of the error metric).
    pub fn kind(&self) -> &'static str {
        match self {
            CaptureError::Config(_) => "config",
            CaptureError::Filter(_) => "filter",
            CaptureError::Source(_) => "source",
            CaptureError::Kafka(_) => "kafka",
            CaptureError::Decode { .. } => "decode",
            CaptureError::Codec(_) => "codec",
            CaptureError::Position(_) => "position",
            CaptureError::Snapshot(_) => "snapshot",
        }
    }

    /// Whether restarting from the last committed position can help.
    pub fn is_transient(&self) -> bool {
        match self {
            CaptureError::Source(e) => e.is_transient(),
            CaptureError::Kafka(e) => e.is_transient(),
            CaptureError::Snapshot(e) => e.is_transient(),
            _ => false,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs the capture until `cancel` fires (graceful stop: the transaction in flight is finished
/// and committed) or a non-transient error.
pub async fn run(
    config: CaptureConfig,
    status: StatusSender,
    cancel: CancellationToken,
) -> Result<(), CaptureError> {
    let seek = SeekState::new(&config);
    let commands = Commands::default();
    run_controlled(
        config,
        status,
        RunControl::unmanaged(cancel),
        &seek,
        &commands,
    )
    .await
}

/// [`run`] under a controller: also pauses at transaction boundaries when asked. `seek` is
/// the process's `--seek`, kept across runs so that it applies only until its first commit;
/// `commands` are the control API's incremental-snapshot requests.
pub async fn run_controlled(
    config: CaptureConfig,
    status: StatusSender,
    control: RunControl,
    seek: &SeekState,
    commands: &Commands,
) -> Result<(), CaptureError> {
    let cancel = control.cancel_token().clone();
    let initial = Duration::from_millis(config.source.retry_initial_ms.max(50));
    let mut delay = initial;
    loop {
        status.send_modify(|s| {
            s.state = State::Starting;
        });
        let started = Instant::now();
        let result = run_once(&config, &status, &control, seek, commands).await;
        match result {
            Ok(()) => {
                status.send_modify(|s| {
                    s.state = State::Stopped;
                    s.error = None;
                });
                return Ok(());
            }
            Err(error) if error.is_transient() && cancel.is_cancelled() => {
                // Asked to stop while retrying: nothing is lost, the position is stored.
                status.send_modify(|s| {
                    s.state = State::Stopped;
                    s.error = Some(error.to_string());
                });
                return Ok(());
            }
            Err(error) if error.is_transient() => {
                if started.elapsed() > Duration::from_secs(60) {
                    delay = initial;
                }
                tracing::warn!(%error, retry_in = ?delay, "capture interrupted; retrying from the last committed position");
                metrics::error(error.kind(), true);
                status.send_modify(|s| {
                    s.state = State::Retrying;
                    s.error = Some(error.to_string());
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => {
                        status.send_modify(|s| s.state = State::Stopped);
                        return Ok(());
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(error) => {
                tracing::error!(%error, "capture failed");
                metrics::error(error.kind(), false);
                status.send_modify(|s| {
                    s.state = State::Failed;
                    s.error = Some(error.to_string());
                });
                return Err(error);
            }
        }
    }
}

async fn run_once(
    config: &CaptureConfig,
    status: &StatusSender,
    control: &RunControl,
    seek: &SeekState,
    commands: &Commands,
) -> Result<(), CaptureError> {
    let filter = Filter::new(&config.filter)?;
    // Registering the transactional id first fences older instances and aborts what they left
    // open, so the stored position read next is the last one really committed.
    let writer =
        TransactionalWriter::start(&config.kafka, &config.name, config.batch.max_bytes).await?;
    let client = client_config(&config.kafka);
    ensure_topic(&client, &config.kafka.offsets_topic).await?;
    let stored = {
        let (client, topic, name) = (
            client.clone(),
            config.kafka.offsets_topic.clone(),
            config.name.clone(),
        );
        tokio::task::spawn_blocking(move || {
            read_position(&client, &topic, &name, Duration::from_secs(30))
        })
        .await
        .map_err(|e| CaptureError::Position(e.to_string()))??
    };

    let password = config.source_password()?;
    let opts = source::connection_opts(&config.source.url, password.as_ref().map(|p| p.expose()))?;
    let mut meta = source::connect(&opts).await?;
    let facts = source::preflight(&mut meta, config.source.server_id).await?;
    status.send_modify(|s| {
        s.flavor = Some(facts.flavor.to_string());
        s.server_version = Some(facts.version.clone());
        s.metadata_source = Some(
            if facts.full_row_metadata {
                "binlog"
            } else {
                "information_schema"
            }
            .into(),
        );
        s.committed = stored.clone();
    });
    if !facts.full_row_metadata {
        tracing::warn!(
            "binlog_row_metadata is not FULL: column names come from information_schema, which \
             is wrong for changes logged before a later ALTER TABLE; set binlog_row_metadata=FULL"
        );
    }
    let seek_position = seek.pending(config, stored.as_ref());
    let format = match config.output.format.as_str() {
        "protobuf" => ValueFormat::Protobuf,
        _ => ValueFormat::DebeziumJson {
            schemas: config.output.schemas,
        },
    };
    let mut options = CodecOptions::new(config.topic_prefix(), env!("CARGO_PKG_VERSION"));
    options.bigint_unsigned = config.output.bigint_unsigned_handling;
    options.propagate_source_types = config.output.propagate_source_types;
    let mut encoder = Encoder::new(format, options);
    let mut writer = writer;
    let mut stored = stored;
    let mut seek_position = seek_position;

    // An initial snapshot to take or to finish first.
    let snapshot = match (&stored, seek_position) {
        (_, Some("snapshot")) => Some(None),
        (Some(position), None) => position
            .snapshot
            .as_ref()
            .filter(|progress| !progress.complete())
            .map(|progress| Some((**progress).clone())),
        (None, None) if config.source.start == "snapshot" => Some(None),
        _ => None,
    };
    if let Some(progress) = snapshot {
        status.send_modify(|s| s.state = State::Snapshotting);
        let mut snapshotter = Snapshotter {
            config,
            facts: &facts,
            opts: &opts,
            filter: &filter,
            status,
            control,
            writer: &mut writer,
            encoder: &mut encoder,
            format,
            meta: &mut meta,
        };
        let outcome = async {
            let progress = match progress {
                Some(progress) => progress,
                None => snapshotter.plan().await?,
            };
            snapshotter.run(progress).await
        }
        .await;
        match outcome {
            Ok(Outcome::Complete(position)) => {
                seek.supersede();
                seek_position = None;
                stored = Some(position);
            }
            Ok(Outcome::Stopped) => return Ok(()),
            Err(error) => {
                writer.abort().await;
                return Err(error);
            }
        }
    }

    let (start, resume) = match (&stored, seek_position) {
        (_, Some(seek)) => {
            tracing::info!(
                seek,
                "seeking: the stored position is replaced at the first commit"
            );
            (source::resolve_start(&mut meta, &facts, seek).await?, None)
        }
        (Some(position), None) => resume_from(&mut meta, &facts, position).await?,
        (None, None) => (
            source::resolve_start(&mut meta, &facts, &config.source.start).await?,
            None,
        ),
    };
    tracing::info!(file = %start.file, gtids = ?start.gtids.as_ref().map(ToString::to_string), "streaming");
    let stream_conn = source::connect(&opts).await?;
    let stream = source::open_stream(
        stream_conn,
        &facts,
        &start,
        config.source.server_id,
        config.heartbeat_interval(),
    )
    .await?;

    let fresh_start = seek_position.is_some() || stored.is_none();
    // Changes the finished snapshot already holds are skipped until streaming passes it.
    let overlap = match stored.as_ref().and_then(|p| p.snapshot.clone()) {
        Some(progress) if !fresh_start => {
            let overlap = Overlap::new(progress, facts.flavor)
                .map_err(|e| CaptureError::Position(e.to_string()))?;
            let gtids = start.gtids.as_ref();
            let passed = overlap
                .passed(&start.file, gtids)
                .map_err(|e| CaptureError::Position(e.to_string()))?;
            (!passed).then_some(overlap)
        }
        _ => None,
    };
    let boundary = stored.clone().filter(|_| !fresh_start).unwrap_or_else(|| {
        StoredPosition::boundary(
            facts.flavor,
            facts.server_id,
            start.file.file.clone(),
            start.file.pos,
            start.gtids.as_ref().map(ToString::to_string),
        )
    });
    let incremental = stored
        .as_ref()
        .filter(|_| !fresh_start)
        .and_then(|p| p.incremental.clone())
        .map(|progress| IncrementalRun::new((*progress).clone()));
    let mut streamer = Streamer {
        config,
        filter,
        decoder: RowDecoder::new(facts.collations.clone()),
        facts,
        encoder,
        format,
        writer,
        meta,
        status,
        file: start.file.file.clone(),
        gtids: start.gtids.clone(),
        committed: stored.clone(),
        boundary,
        group: None,
        resume,
        views: HashMap::new(),
        keys: HashMap::new(),
        fde_seen: false,
        last_commit: Instant::now(),
        seek,
        included: HashMap::new(),
        lag_updated: None,
        last_end: start.file.pos,
        open_tables: Default::default(),
        open_spans: Vec::new(),
        committing: Default::default(),
        overlap,
        incremental,
        commands,
        opts: opts.clone(),
    };
    streamer.report_incremental();
    let result = streamer.stream(stream, control).await;
    if result.is_err() {
        // Release read_committed consumers now rather than at the transaction timeout.
        streamer.writer.abort().await;
    }
    result
}

/// Whether `--seek` still applies: until its first commit (restarts after that resume from
/// what was stored) or until a gRPC Seek stores another position.
pub struct SeekState {
    done: AtomicBool,
    /// The stored position when the seek was applied: once the stored position differs, a
    /// commit of the seek landed (even if this process never heard back) and the seek is done.
    stored_before: std::sync::Mutex<Option<Option<StoredPosition>>>,
}

impl SeekState {
    /// The state of the configured `source.seek` (none: nothing to apply).
    pub fn new(config: &CaptureConfig) -> Self {
        Self {
            done: AtomicBool::new(config.source.seek.is_none()),
            stored_before: std::sync::Mutex::new(None),
        }
    }

    /// Drops the configured seek: another position was stored in its place.
    pub fn supersede(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// The seek position, if it still applies given what is stored now.
    fn pending<'c>(
        &self,
        config: &'c CaptureConfig,
        stored: Option<&StoredPosition>,
    ) -> Option<&'c str> {
        let seek = config.source.seek.as_deref()?;
        if self.done.load(Ordering::Relaxed) {
            return None;
        }
        let mut before = self.stored_before.lock().ok()?;
        match &*before {
            Some(previous) if previous.as_ref() != stored => {
                self.done.store(true, Ordering::Relaxed);
                None
            }
            Some(_) => Some(seek),
            None => {
                *before = Some(stored.cloned());
                Some(seek)
            }
        }
    }
}

/// A split transaction to resume inside: skip this many rows of the first transaction.
#[derive(Debug, Clone)]
struct Resume {
    gtid: Option<String>,
    rows_done: u64,
}

async fn resume_from(
    meta: &mut Conn,
    facts: &SourceFacts,
    position: &StoredPosition,
) -> Result<(StreamStart, Option<Resume>), CaptureError> {
    if position.version > SNAPSHOT_POSITION_VERSION {
        return Err(CaptureError::Position(format!(
            "it has format version {}, this rowferry reads up to {SNAPSHOT_POSITION_VERSION}; \
             run the newer rowferry, or seek to a position explicitly",
            position.version
        )));
    }
    if position.flavor != facts.flavor.to_string() {
        return Err(CaptureError::Position(format!(
            "it was written for a {} source, this one is {}; seek to a position of this source",
            position.flavor, facts.flavor
        )));
    }
    let gtids = position
        .gtids
        .as_deref()
        .map(|text| GtidSet::parse_as(facts.flavor, text))
        .transpose()
        .map_err(|e| CaptureError::Position(e.to_string()))?;
    let (file, pos) = match &position.partial {
        Some(partial) => (partial.file.clone(), partial.pos),
        None => (position.file.clone(), position.pos),
    };
    let file = rowferry_shared::position::BinlogFilePosition::new(file, pos);
    match (&gtids, facts.flavor) {
        (Some(set), Flavor::MariaDb) | (Some(set), Flavor::MySql) if facts.gtids => {
            source::check_gtids_available(meta, facts, set).await?;
        }
        _ => {
            if position.source_server_id != facts.server_id {
                return Err(CaptureError::Position(format!(
                    "file positions of server_id {} are meaningless on server_id {} without GTIDs; \
                     seek to a position of this server",
                    position.source_server_id, facts.server_id
                )));
            }
            let files = source::binlog_files(meta).await?;
            source::check_file_available(&files, &file)?;
        }
    }
    let resume = position.partial.as_ref().map(|p| Resume {
        gtid: p.gtid.clone(),
        rows_done: p.rows_done,
    });
    Ok((StreamStart { file, gtids }, resume))
}

/// A source transaction (event group) being read.
struct Group {
    gtid: Option<Gtid>,
    /// File and position of its first event.
    start_file: String,
    start_pos: u64,
    /// A BEGIN (or a MariaDB transactional GTID) opened it; otherwise one statement ends it.
    transactional: bool,
    /// Row changes seen so far (emitted or skipped).
    rows: u64,
    /// Rows to skip (already delivered before a restart).
    skip: u64,
    /// Rows of this group in the open Kafka transaction.
    rows_in_kafka_txn: u64,
    thread_id: Option<u64>,
    total_order: u64,
    table_orders: HashMap<TableId, u64>,
    /// Transaction id for the `transaction` block.
    id: String,
    /// Its span, from the first captured row on (traces exported and sampled only).
    trace: Option<TransactionSpan>,
    /// Whether the span was asked for (the sampler decides once per transaction).
    trace_decided: bool,
}

/// What a Kafka transaction being committed is reported with once it is.
struct InCommit {
    /// Its records, per table and operation.
    tables: rowferry_shared::control::TableCounts,
    /// The source transactions it ends; their spans end with the commit.
    spans: Vec<TransactionSpan>,
}

/// How one table's rows are projected into records.
struct TableView {
    source: Arc<TableMap>,
    schema: SharedTableSchema,
    keep: Option<Vec<usize>>,
    /// `{prefix}.{db}.{table}`.
    topic: String,
}

/// What the records of one ROWS event share.
struct RowsContext {
    source: SourceInfo,
    position_header: String,
    gtid_header: Option<String>,
    transaction_id: String,
}

struct Streamer<'a> {
    config: &'a CaptureConfig,
    filter: Filter,
    facts: SourceFacts,
    decoder: RowDecoder,
    encoder: Encoder,
    format: ValueFormat,
    writer: TransactionalWriter,
    meta: Conn,
    status: &'a StatusSender,
    /// Binlog file being read.
    file: String,
    /// GTIDs of the complete groups read so far.
    gtids: Option<GtidSet>,
    committed: Option<StoredPosition>,
    /// The position after the last complete group read.
    boundary: StoredPosition,
    group: Option<Group>,
    resume: Option<Resume>,
    views: HashMap<TableId, Arc<TableView>>,
    keys: HashMap<TableId, Option<(bool, Vec<String>)>>,
    fde_seen: bool,
    last_commit: Instant,
    seek: &'a SeekState,
    /// Filter decisions per table id.
    included: HashMap<u64, bool>,
    /// When the lag in the status was last updated.
    lag_updated: Option<Instant>,
    /// End position of the last event that had one.
    last_end: u64,
    /// Records sent in the open Kafka transaction, per table and operation.
    open_tables: rowferry_shared::control::TableCounts,
    /// Spans of the source transactions ended in the open Kafka transaction.
    open_spans: Vec<TransactionSpan>,
    /// The counts and spans of each Kafka transaction being committed, oldest first.
    committing: std::collections::VecDeque<InCommit>,
    /// The initial snapshot streaming has not yet passed.
    overlap: Option<Overlap>,
    /// The incremental snapshot, if one runs.
    incremental: Option<IncrementalRun>,
    /// Requests for it from the control API.
    commands: &'a Commands,
    /// How to connect to the source (for incremental snapshot chunks).
    opts: mysql_async::Opts,
}

/// An incremental snapshot as the streamer runs it.
struct IncrementalRun {
    progress: IncrementalProgress,
    /// The progress as the next stored position carries it.
    stored: Arc<IncrementalProgress>,
    described: HashMap<TableId, Arc<SnapshotTable>>,
    chunk: Option<InFlight>,
    conn: Option<Conn>,
}

impl IncrementalRun {
    fn new(progress: IncrementalProgress) -> Self {
        Self {
            stored: Arc::new(progress.clone()),
            progress,
            described: HashMap::new(),
            chunk: None,
            conn: None,
        }
    }
}

/// The first ROTATE of a dump arrives before the FORMAT_DESCRIPTION, so when the source
/// writes checksums its name still carries the 4 checksum bytes.
fn rotate_name(raw: &[u8], carries_checksum: bool) -> String {
    let name = if carries_checksum && raw.len() > 4 {
        &raw[..raw.len() - 4]
    } else {
        raw
    };
    String::from_utf8_lossy(name).into_owned()
}

impl Streamer<'_> {
    fn decode_error(&self, pos: u64, source: DecodeError) -> CaptureError {
        CaptureError::Decode {
            file: self.file.clone(),
            pos,
            source: Box::new(source),
        }
    }

    async fn stream(
        &mut self,
        mut stream: BinlogStream,
        control: &RunControl,
    ) -> Result<(), CaptureError> {
        let cancel = control.cancel_token();
        let commands = self.commands;
        self.status.send_modify(|s| {
            s.state = State::Running;
            s.error = None;
        });
        let linger = Duration::from_millis(self.config.batch.linger_ms.max(1));
        let mut stopping: Option<Instant> = None;
        loop {
            if stopping.is_none() && cancel.is_cancelled() {
                self.status.send_modify(|s| s.state = State::Stopping);
                stopping = Some(Instant::now());
            }
            if let Some(since) = stopping {
                if self.group.is_none() {
                    self.commit_boundary(true).await?;
                    self.writer.reap(true).await?;
                    self.report_completed();
                    return Ok(());
                }
                if since.elapsed() > Duration::from_secs(30) {
                    // The transaction in flight never ended; its records are aborted and will
                    // be read again after a restart.
                    self.writer.abort().await;
                    return Ok(());
                }
            }
            if stopping.is_none() && control.pause_requested() && self.group.is_none() {
                // Paused at a transaction boundary with everything read committed. The source
                // may drop the idle connection meanwhile; then the read after resuming fails
                // and the capture reconnects from the committed position, as after any
                // interruption.
                self.commit_boundary(true).await?;
                self.writer.reap(true).await?;
                self.report_completed();
                control.hold().await;
                continue;
            }
            if stopping.is_none() && self.group.is_none() {
                self.drive_incremental().await?;
            }
            let wait = if self.writer.commit_in_flight() {
                Duration::from_millis(5)
            } else if self.writer.is_open() && self.group.is_none() {
                linger.saturating_sub(self.writer.open_for().unwrap_or_default())
            } else {
                Duration::from_millis(self.config.batch.position_heartbeat_ms.max(100))
            };
            let next = tokio::select! {
                next = stream.next() => next,
                () = tokio::time::sleep(wait) => {
                    self.idle().await?;
                    continue;
                }
                () = cancel.cancelled(), if stopping.is_none() => continue,
                () = control.pause_wanted(), if self.group.is_none() && !control.pause_requested() => continue,
                () = commands.queued(), if self.group.is_none() => continue,
            };
            let event = match next {
                Some(Ok(event)) => event,
                // A server error is the source's refusal; anything else means the connection
                // went away, which is also what a server_id clash looks like.
                Some(Err(mysql_async::Error::Server(e))) => {
                    return Err(SourceError::Stream(mysql_async::Error::Server(e)).into());
                }
                Some(Err(e)) => {
                    return Err(SourceError::StreamClosed {
                        server_id: self.config.source.server_id,
                        detail: e.to_string(),
                    }
                    .into());
                }
                None => {
                    return Err(SourceError::StreamClosed {
                        server_id: self.config.source.server_id,
                        detail: "end of stream".into(),
                    }
                    .into());
                }
            };
            self.handle(&event).await?;
            self.writer.reap(false).await?;
            self.report_completed();
        }
    }

    /// Whether the filter captures the table of a TABLE_MAP event; decided once per table id
    /// (ids are stable within a binlog file; the cache is cleared at rotation and DDL).
    fn includes(&mut self, tme: &TableMapEvent<'_>) -> bool {
        if let Some(&included) = self.included.get(&tme.table_id()) {
            return included;
        }
        let id = TableId::new(tme.database_name(), tme.table_name());
        let included = self.filter.includes_table(&id);
        self.included.insert(tme.table_id(), included);
        included
    }

    /// Publishes commits that finished in the background.
    fn report_completed(&mut self) {
        for done in self.writer.take_completed() {
            self.seek.done.store(true, Ordering::Relaxed);
            let InCommit { tables, spans } = self.committing.pop_front().unwrap_or(InCommit {
                tables: Default::default(),
                spans: Vec::new(),
            });
            metrics::kafka_commit(done.records, done.duration);
            self.status.send_modify(|s| {
                s.committed = Some(done.position);
                s.records_committed += done.records as u64;
                s.bytes_committed += done.bytes as u64;
                s.kafka_transactions += 1;
                rowferry_shared::control::merge_tables(&mut s.tables, &tables);
            });
            // The records are visible to read_committed consumers now: the spans end.
            spans.into_iter().for_each(TransactionSpan::committed);
        }
    }

    /// Nothing arrived for a while: commit what waits at a boundary, refresh the position.
    async fn idle(&mut self) -> Result<(), CaptureError> {
        if self.writer.commit_in_flight() {
            self.writer.reap(true).await?;
            self.report_completed();
        }
        if self.group.is_some() {
            return Ok(());
        }
        if self.writer.is_open() {
            return self.commit_boundary(false).await;
        }
        self.maybe_heartbeat_commit().await
    }

    async fn maybe_heartbeat_commit(&mut self) -> Result<(), CaptureError> {
        let heartbeat = Duration::from_millis(self.config.batch.position_heartbeat_ms);
        let moved = self.committed.as_ref() != Some(&self.boundary);
        if moved && self.last_commit.elapsed() >= heartbeat {
            self.commit_boundary(true).await?;
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        event: &mysql_async::binlog::events::Event,
    ) -> Result<(), CaptureError> {
        let header = event.header();
        // Events unpacked from a MySQL transaction payload (and MariaDB ≥ 11.4 events inside a
        // transaction) carry end_log_pos 0: they end where the last positioned event ended.
        let end = match u64::from(header.log_pos()) {
            0 => self.last_end,
            end => end,
        };
        self.last_end = end;
        let start = end.saturating_sub(u64::from(header.event_size()));
        if self.fde_seen {
            verify_checksum(event, start).map_err(|e| self.decode_error(start, e))?;
        }
        let classified = classify(event, event.fde()).map_err(|e| self.decode_error(start, e))?;
        match classified {
            SourceEvent::FormatDescription { .. } => self.fde_seen = true,
            SourceEvent::Rotate { file, position } => {
                let file = rotate_name(&file, !self.fde_seen && self.facts.checksums);
                if file != self.file {
                    self.decoder.forget_tables();
                    self.included.clear();
                }
                self.file = file;
                if self.group.is_none() && header.timestamp() != 0 {
                    self.boundary.file = self.file.clone();
                    self.boundary.pos = position;
                }
            }
            SourceEvent::Heartbeat => {
                self.status.send_modify(|s| s.lag_seconds = Some(0.0));
                if self.group.is_none() {
                    self.maybe_heartbeat_commit().await?;
                }
            }
            SourceEvent::Gtid { gtid, standalone } => {
                self.begin_group(
                    Some(gtid),
                    start,
                    !standalone && self.facts.flavor == Flavor::MariaDb,
                )
                .await?;
            }
            SourceEvent::AnonymousGtid => self.begin_group(None, start, false).await?,
            SourceEvent::Begin { thread_id } => {
                if self.group.is_none() {
                    self.begin_group(None, start, true).await?;
                }
                if let Some(group) = &mut self.group {
                    group.transactional = true;
                    group.thread_id = Some(u64::from(thread_id));
                }
            }
            SourceEvent::Commit | SourceEvent::Rollback => {
                self.end_group(end, header.timestamp()).await?
            }
            SourceEvent::Statement { sql, thread_id, .. } => {
                if is_ddl(&sql) {
                    // Keys and (in information_schema mode) definitions may have changed.
                    self.keys.clear();
                    self.views.clear();
                    self.included.clear();
                    self.decoder = RowDecoder::new(self.facts.collations.clone());
                    // The incremental snapshot describes tables again and re-reads the chunk
                    // in flight (a TRUNCATE, say, streams no row changes to drop it by).
                    if let Some(run) = &mut self.incremental {
                        run.described.clear();
                        run.chunk = None;
                    }
                }
                match &mut self.group {
                    Some(group) if group.transactional => {
                        group.thread_id.get_or_insert(u64::from(thread_id));
                    }
                    Some(_) => self.end_group(end, header.timestamp()).await?,
                    None => {
                        // A statement outside any group (no GTIDs, no BEGIN): it is its own group.
                        self.begin_group(None, start, false).await?;
                        self.end_group(end, header.timestamp()).await?;
                    }
                }
            }
            SourceEvent::TableMap(tme) => {
                if self.includes(&tme) {
                    match self.decoder.table_map(&tme) {
                        // No full row metadata: read the definition once, then map again.
                        Err(DecodeError::NoMetadata { table }) => {
                            let definition =
                                source::table_definition(&mut self.meta, &table).await?;
                            self.decoder.set_definition(table, definition);
                            self.decoder.table_map(&tme)
                        }
                        other => other,
                    }
                    .map_err(|e| self.decode_error(start, e))?;
                }
            }
            SourceEvent::Rows { table_id, body, .. } => {
                let Ok((map, changes)) = (match self.decoder.rows(table_id, &body) {
                    // A table the filter left out has no map: skip its rows.
                    Err(DecodeError::UnknownTable { .. }) => Err(()),
                    Err(e) => return Err(self.decode_error(start, e)),
                    Ok(decoded) => Ok(decoded),
                }) else {
                    return Ok(());
                };
                if self.group.is_none() {
                    self.begin_group(None, start, false).await?;
                }
                let view = self.table_view(&map).await?;
                let mut context = self.rows_context(start, header.timestamp(), header.server_id());
                for (row, change) in changes.into_iter().enumerate() {
                    context.source.row = row as u32;
                    self.emit(&view, &mut context, change).await?;
                }
                // The status is watched by other tasks: update the lag a few times a second,
                // not once per event.
                if self
                    .lag_updated
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(200))
                {
                    self.lag_updated = Some(Instant::now());
                    let lag = (now_ms() as f64 / 1000.0 - f64::from(header.timestamp())).max(0.0);
                    self.status.send_modify(|s| s.lag_seconds = Some(lag));
                }
            }
            SourceEvent::Annotate(_)
            | SourceEvent::GtidsBefore(_)
            | SourceEvent::BinlogCheckpoint(_)
            | SourceEvent::TransactionPayload { .. }
            | SourceEvent::Stop
            | SourceEvent::Ignored { .. } => {}
        }
        Ok(())
    }

    async fn begin_group(
        &mut self,
        gtid: Option<Gtid>,
        start: u64,
        transactional: bool,
    ) -> Result<(), CaptureError> {
        if self.group.is_some() {
            // A new group without an end event for the last one: treat the last as ended here
            // rather than lose its GTID.
            tracing::warn!(file = %self.file, pos = start, "binlog group without an end event");
            self.end_group(start, 0).await?;
        }
        let skip = match self.resume.take() {
            Some(resume) => {
                let found = gtid.as_ref().map(ToString::to_string);
                if resume.gtid.is_some() && resume.gtid != found {
                    return Err(CaptureError::Position(format!(
                        "the stored position resumes inside transaction {:?}, but the binlog \
                         continues with {found:?}; seek to a position explicitly",
                        resume.gtid
                    )));
                }
                resume.rows_done
            }
            None => 0,
        };
        let id = match &gtid {
            Some(gtid) => gtid.to_string(),
            None => format!("file={},pos={start}", self.file),
        };
        self.group = Some(Group {
            gtid,
            start_file: self.file.clone(),
            start_pos: start,
            transactional,
            rows: 0,
            skip,
            rows_in_kafka_txn: 0,
            thread_id: None,
            total_order: 0,
            table_orders: HashMap::new(),
            id,
            trace: None,
            trace_decided: false,
        });
        Ok(())
    }

    async fn end_group(&mut self, end: u64, timestamp: u32) -> Result<(), CaptureError> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        if let Some(trace) = &group.trace {
            trace.finish(end, i64::from(timestamp) * 1000);
        }
        self.open_spans.extend(group.trace);
        if let (Some(gtid), Some(set)) = (&group.gtid, &mut self.gtids) {
            set.add(gtid)
                .map_err(|e| CaptureError::Position(e.to_string()))?;
        }
        if let Some(overlap) = &self.overlap {
            let here = rowferry_shared::position::BinlogFilePosition::new(self.file.clone(), end);
            if overlap
                .passed(&here, self.gtids.as_ref())
                .map_err(|e| CaptureError::Position(e.to_string()))?
            {
                tracing::info!(file = %self.file, pos = end, "streaming passed the initial snapshot");
                self.overlap = None;
            }
        }
        let snapshot = self.overlap.as_ref().map(|o| Arc::clone(o.progress()));
        let incremental = self.incremental.as_ref().map(|r| Arc::clone(&r.stored));
        self.boundary = StoredPosition {
            version: if snapshot.is_some() || incremental.is_some() {
                SNAPSHOT_POSITION_VERSION
            } else {
                POSITION_VERSION
            },
            flavor: self.facts.flavor.to_string(),
            source_server_id: self.facts.server_id,
            file: self.file.clone(),
            pos: end,
            gtids: self.gtids.as_ref().map(ToString::to_string),
            partial: None,
            source_ts_ms: i64::from(timestamp) * 1000,
            snapshot,
            incremental,
        };
        self.status.send_modify(|s| s.source_transactions += 1);
        let batch = &self.config.batch;
        let full = self.writer.records() >= batch.max_records
            || self.writer.bytes() >= batch.max_bytes
            || self
                .writer
                .open_for()
                .is_some_and(|t| t >= Duration::from_millis(batch.linger_ms));
        if self.writer.is_open() && full {
            self.commit_boundary(false).await
        } else if !self.writer.is_open() {
            self.maybe_heartbeat_commit().await
        } else {
            Ok(())
        }
    }

    /// Commits the open Kafka transaction (or a position-only one when `force`) at the boundary.
    async fn commit_boundary(&mut self, force: bool) -> Result<(), CaptureError> {
        if !self.writer.is_open() && (!force || self.committed.as_ref() == Some(&self.boundary)) {
            return Ok(());
        }
        let position = self.boundary.clone();
        self.commit(position).await
    }

    async fn commit(&mut self, position: StoredPosition) -> Result<(), CaptureError> {
        self.writer.commit(&position).await?;
        // The counts of the records in this transaction, reported once Kafka has it.
        self.committing.push_back(InCommit {
            tables: std::mem::take(&mut self.open_tables),
            spans: std::mem::take(&mut self.open_spans),
        });
        self.last_commit = Instant::now();
        self.committed = Some(position);
        self.report_completed();
        Ok(())
    }

    /// Splits the group in flight: commits what is out of it, with a position saying so.
    async fn commit_split(&mut self) -> Result<(), CaptureError> {
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        group.rows_in_kafka_txn = 0;
        let mut position = self.boundary.clone();
        position.partial = Some(PartialTransaction {
            gtid: group.gtid.as_ref().map(ToString::to_string),
            file: group.start_file.clone(),
            pos: group.start_pos,
            rows_done: group.rows,
        });
        self.commit(position).await
    }

    /// At a transaction boundary: applies incremental-snapshot requests, publishes a chunk
    /// once streaming has read past its high watermark, and reads the next chunk.
    async fn drive_incremental(&mut self) -> Result<(), CaptureError> {
        let requests = self.commands.take();
        if !requests.is_empty() {
            let taken = requests.clone();
            let mut run = self.incremental.take();
            for request in requests {
                tracing::info!(?request, "incremental snapshot request");
                let keep_chunk = matches!(request, incremental::Command::Start { .. });
                let progress =
                    incremental::apply(run.as_ref().map(|r| r.progress.clone()), request, now_ms());
                run = match (run, progress) {
                    (_, None) => None,
                    (Some(mut r), Some(progress)) => {
                        r.progress = progress;
                        if !keep_chunk {
                            r.chunk = None;
                        }
                        Some(r)
                    }
                    (None, Some(progress)) => Some(IncrementalRun::new(progress)),
                };
            }
            self.incremental = run;
            self.sync_incremental();
            // Durable at once: a restart sees the request.
            if let Err(error) = self.commit_boundary(true).await {
                // Not stored: the next run takes the requests again.
                self.commands.restore(taken);
                return Err(error);
            }
            self.report_incremental();
            self.commands.settled();
        }
        let Some(run) = &mut self.incremental else {
            return Ok(());
        };
        if run.progress.paused {
            return Ok(());
        }
        if let Some(chunk) = &run.chunk {
            let here = BinlogFilePosition::new(self.file.clone(), self.last_end);
            let reached = here
                .compare(&chunk.high)
                .map_err(|e| CaptureError::Position(format!("incremental snapshot: {e}")))?;
            if reached.is_ge() {
                self.publish_chunk().await?;
            }
            return Ok(());
        }
        if run.progress.complete() {
            tracing::info!("incremental snapshot complete");
            self.incremental = None;
            self.sync_incremental();
            self.commit_boundary(true).await?;
            return Ok(());
        }
        self.read_chunk().await
    }

    /// Reads the next chunk between a low and a high watermark.
    async fn read_chunk(&mut self) -> Result<(), CaptureError> {
        let Some(run) = &mut self.incremental else {
            return Ok(());
        };
        let Some(index) = run.progress.next_table() else {
            return Ok(());
        };
        let entry = &run.progress.tables[index];
        let id = entry.id();
        let table = match run.described.get(&id) {
            Some(table) => Arc::clone(table),
            None => {
                match snapshot_tables::describe(
                    &mut self.meta,
                    &id,
                    &self.filter,
                    self.config.topic_prefix(),
                )
                .await
                {
                    Ok(table) if !table.key_names.is_empty() => {
                        let table = Arc::new(table);
                        run.described.insert(id.clone(), Arc::clone(&table));
                        table
                    }
                    Ok(_) | Err(SnapshotError::Vanished { .. }) => {
                        tracing::warn!(table = %id, "table dropped or without a key; its incremental snapshot ends");
                        run.progress.tables[index].done = true;
                        self.sync_incremental();
                        self.report_incremental();
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let conn = match run.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = source::connect(&self.opts).await?;
                conn.query_drop("SET SESSION time_zone = '+00:00'")
                    .await
                    .map_err(|source| SourceError::Query {
                        query: "SET SESSION time_zone".into(),
                        source,
                    })?;
                conn
            }
        };
        let mut conn = conn;
        let mut reader = ChunkReader::new(
            Arc::clone(&table),
            run.progress.chunk_rows,
            run.progress.tables[index].last_key.clone(),
        );
        let (low, chunk, high) = if self.facts.flavor == Flavor::MariaDb {
            // The chunk at one consistent point that MariaDB names: every transaction before
            // it is in the chunk, none after; the point is both watermarks. (Reading the
            // binlog end around a plain SELECT would race with two-phase commit: a
            // transaction in the binlog may not be visible to the SELECT yet.)
            let point = snapshot_reader::open(&mut conn, &self.facts).await?;
            let chunk = reader.next(&mut conn).await;
            snapshot_reader::close(&mut conn).await?;
            let at = point.file_position();
            (at.clone(), chunk?, at)
        } else {
            let low = source::binlog_end(&mut self.meta).await?;
            let chunk = reader.next(&mut conn).await?;
            let high = source::binlog_end(&mut self.meta).await?;
            (low, chunk, high)
        };
        run.conn = Some(conn);
        let Some(chunk) = chunk else {
            run.progress.tables[index].done = true;
            return Ok(());
        };
        let mut index_by_key = HashMap::with_capacity(chunk.rows.len());
        for (i, row) in chunk.rows.iter().enumerate() {
            if let Some(k) = key_of(row, &table.schema) {
                index_by_key.insert(k, i);
            }
        }
        run.chunk = Some(InFlight {
            table: index,
            id,
            low,
            high,
            rows: chunk.rows.into_iter().map(Some).collect(),
            index: index_by_key,
            last_key: chunk.last_key,
            last: chunk.last,
        });
        Ok(())
    }

    /// Publishes what is left of the chunk as `op = r` records in the open Kafka transaction;
    /// the progress that says so is committed with them.
    async fn publish_chunk(&mut self) -> Result<(), CaptureError> {
        let Some(run) = &mut self.incremental else {
            return Ok(());
        };
        let Some(chunk) = run.chunk.take() else {
            return Ok(());
        };
        let Some(table) = run.described.get(&chunk.id).cloned() else {
            return Ok(());
        };
        let (chunk_id, last_key, last) = (chunk.id.clone(), chunk.last_key.clone(), chunk.last);
        let (file, pos) = (chunk.high.file.clone(), chunk.high.pos);
        let at = ReadAt {
            flavor: self.facts.flavor,
            file: &file,
            pos,
        };
        let mut published = 0u64;
        for row in chunk.remaining() {
            let event = send_read(
                &mut self.writer,
                self.config,
                &mut self.encoder,
                self.format,
                &table,
                &at,
                SnapshotMarker::Incremental,
                row,
            )
            .await?;
            rowferry_shared::control::count_change(
                &mut self.open_tables,
                &event.schema.id,
                &event.change,
            );
            published += 1;
        }
        // By name: a request may have reordered the tables since the chunk was read.
        if let Some(run) = &mut self.incremental
            && let Some(entry) = run
                .progress
                .tables
                .iter_mut()
                .find(|t| t.db == chunk_id.db && t.table == chunk_id.table && !t.done)
        {
            entry.rows += published;
            entry.last_key = last_key;
            entry.done = last;
        }
        self.sync_incremental();
        self.report_incremental();
        Ok(())
    }

    /// Makes the next stored position carry the incremental snapshot's progress.
    fn sync_incremental(&mut self) {
        let stored = self.incremental.as_mut().map(|run| {
            run.stored = Arc::new(run.progress.clone());
            Arc::clone(&run.stored)
        });
        self.boundary.version = if stored.is_some() || self.boundary.snapshot.is_some() {
            SNAPSHOT_POSITION_VERSION
        } else {
            POSITION_VERSION
        };
        self.boundary.incremental = stored;
    }

    /// Publishes the incremental snapshot's progress in the status.
    fn report_incremental(&self) {
        let Some(run) = &self.incremental else {
            self.status.send_modify(|s| {
                if let Some(snapshot) = &mut s.snapshot
                    && snapshot.incremental
                {
                    snapshot.running = false;
                    snapshot.paused = false;
                    for table in &mut snapshot.tables {
                        table.done = true;
                    }
                }
            });
            return;
        };
        let progress = &run.progress;
        let rows: u64 = progress.tables.iter().map(|t| t.rows).sum();
        let seconds = ((now_ms() - progress.started_ms).max(1) as f64) / 1000.0;
        let status = crate::status::SnapshotStatus::of(
            &progress.tables,
            progress.started_ms,
            rows,
            seconds,
            true,
            progress.paused,
        );
        self.status.send_modify(|s| s.snapshot = Some(status));
    }

    async fn table_view(&mut self, map: &Arc<TableMap>) -> Result<Arc<TableView>, CaptureError> {
        let id = &map.schema.id;
        if let Some(view) = self.views.get(id)
            && Arc::ptr_eq(&view.source, map)
        {
            return Ok(Arc::clone(view));
        }
        if !self.keys.contains_key(id) {
            // An error here is transient (the metadata connection may have been closed by
            // wait_timeout); guessing "no key" would publish wrongly keyed records.
            let key = source::table_key(&mut self.meta, id).await?;
            self.keys.insert(id.clone(), key);
        }
        let key_names = self.keys.get(id).cloned().flatten();
        let excluded = self.filter.excluded_columns(&map.schema);
        let keep: Vec<usize> = (0..map.schema.columns.len())
            .filter(|i| !excluded.contains(i))
            .collect();
        let columns: Vec<ColumnSchema> = keep
            .iter()
            .map(|&i| map.schema.columns[i].clone())
            .collect();
        let position_of = |name: &str| columns.iter().position(|c| c.name == name);
        let mut key_columns = map.schema.key.columns().to_vec();
        if let Some((_, names)) = &key_names {
            key_columns.extend(
                names
                    .iter()
                    .filter_map(|n| map.schema.columns.iter().position(|c| &c.name == n)),
            );
        }
        let excluded_key = key_columns
            .iter()
            .find(|i| excluded.contains(i))
            .map(|&i| map.schema.columns[i].name.clone());
        if let Some(column) = excluded_key {
            return Err(CaptureError::Filter(FilterError::KeyColumn {
                table: id.to_string(),
                column,
            }));
        }
        let key = match &key_names {
            Some((primary, names)) => {
                let indexes: Option<Vec<usize>> = names.iter().map(|n| position_of(n)).collect();
                match (indexes, primary) {
                    (Some(indexes), true) => RowKey::Primary(indexes),
                    (Some(indexes), false) => RowKey::Unique(indexes),
                    // Key columns excluded or unknown names (no metadata): the binlog's key.
                    (None, _) => remap_key(&map.schema.key, &keep),
                }
            }
            None => remap_key(&map.schema.key, &keep),
        };
        let schema = Arc::new(TableSchema {
            id: id.clone(),
            columns,
            key,
        });
        let view = Arc::new(TableView {
            source: Arc::clone(map),
            topic: format!("{}.{}.{}", self.config.topic_prefix(), id.db, id.table),
            schema,
            keep: (!excluded.is_empty()).then_some(keep),
        });
        self.views.insert(id.clone(), Arc::clone(&view));
        Ok(view)
    }

    /// What every record of one ROWS event shares, built once per event.
    fn rows_context(&self, event_pos: u64, timestamp: u32, server_id: u32) -> RowsContext {
        let group = self.group.as_ref();
        let gtid = group.and_then(|g| g.gtid.as_ref()).map(ToString::to_string);
        RowsContext {
            position_header: format!("{}:{event_pos}", self.file),
            gtid_header: gtid.clone(),
            transaction_id: group.map(|g| g.id.clone()).unwrap_or_default(),
            source: SourceInfo {
                flavor: self.facts.flavor,
                name: self.config.topic_prefix().to_owned(),
                ts_us: i64::from(timestamp) * 1_000_000,
                snapshot: SnapshotMarker::No,
                server_id,
                gtid,
                file: self.file.clone(),
                pos: event_pos,
                row: 0,
                thread: group.and_then(|g| g.thread_id),
                query: None,
            },
        }
    }

    async fn emit(
        &mut self,
        view: &TableView,
        context: &mut RowsContext,
        change: RowChange,
    ) -> Result<(), CaptureError> {
        let change = project(change, view.keep.as_deref());
        let key_changed = match &change {
            RowChange::Update { before, after } => {
                let key = view.schema.key.columns();
                !key.is_empty() && key.iter().any(|&i| before.get(i) != after.get(i))
            }
            _ => false,
        };
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        group.rows += 1;
        if group.rows <= group.skip {
            // Already delivered before a restart; keep the order numbers where they were.
            let records = if key_changed { 2 } else { 1 };
            group.total_order += records;
            match group.table_orders.get_mut(&view.schema.id) {
                Some(order) => *order += records,
                None => {
                    group.table_orders.insert(view.schema.id.clone(), records);
                }
            }
            return Ok(());
        }
        // A chunk of the incremental snapshot waiting for its high watermark: a change of one
        // of its rows streamed after the low watermark makes that chunk row stale.
        if let (Some(run), Some(group)) = (&mut self.incremental, &self.group)
            && let Some(chunk) = &mut run.chunk
            && chunk.id == view.schema.id
            && BinlogFilePosition::new(group.start_file.clone(), group.start_pos)
                .compare(&chunk.low)
                .is_ok_and(|o| o.is_ge())
        {
            for row in [change.before(), change.after()].into_iter().flatten() {
                if let Some(k) = key_of(row, &view.schema) {
                    chunk.drop_key(&k);
                }
            }
        }
        // Right after an initial snapshot: changes its rows already hold are not sent again.
        let (mut send_old, mut send_new) = (true, true);
        if let Some(overlap) = &self.overlap
            && let Some(group) = &self.group
        {
            let point = EventPoint {
                gtid: group.gtid.as_ref(),
                file: &group.start_file,
                pos: group.start_pos,
            };
            let key_of_row = |row: &Row| key_of(row, &view.schema);
            let id = &view.schema.id;
            if let (true, Some(before)) = (key_changed, change.before()) {
                let old = key_of_row(before);
                send_old = !overlap
                    .reflects(&mut self.meta, id, &point, old.as_deref())
                    .await?;
            }
            let new: Option<Vec<KeyValue>> = key_of_row(change.key_row());
            send_new = !overlap
                .reflects(&mut self.meta, id, &point, new.as_deref())
                .await?;
            if !key_changed {
                send_old = send_new;
            }
        }
        if !send_old && !send_new {
            return Ok(());
        }
        match change {
            // Debezium's way for a key change: delete under the old key, create under the new.
            RowChange::Update { before, after } if key_changed => {
                let codec =
                    |e: rowferry_shared::codec::CodecError| CaptureError::Codec(e.to_string());
                let old_key = self
                    .encoder
                    .encode_key(&view.schema, &before)
                    .map_err(codec)?;
                let new_key = self
                    .encoder
                    .encode_key(&view.schema, &after)
                    .map_err(codec)?;
                if send_old {
                    let delete = RowChange::Delete { before };
                    self.emit_record(
                        view,
                        context,
                        delete,
                        Some(("__debezium.newkey", new_key.as_deref())),
                    )
                    .await?;
                }
                if send_new {
                    let insert = RowChange::Insert { after };
                    self.emit_record(
                        view,
                        context,
                        insert,
                        Some(("__debezium.oldkey", old_key.as_deref())),
                    )
                    .await?;
                }
            }
            other => self.emit_record(view, context, other, None).await?,
        }
        let split_at = self.config.batch.split_transaction_rows as u64;
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        group.rows_in_kafka_txn += 1;
        if group.rows_in_kafka_txn >= split_at
            || self.writer.bytes() >= self.config.batch.split_transaction_bytes
        {
            self.commit_split().await?;
        }
        Ok(())
    }

    /// Encodes and sends one record (and its tombstone after a delete).
    async fn emit_record(
        &mut self,
        view: &TableView,
        context: &mut RowsContext,
        change: RowChange,
        key_header: Option<(&str, Option<&[u8]>)>,
    ) -> Result<(), CaptureError> {
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        if !group.trace_decided && rowferry_shared::telemetry::tracing_enabled() {
            group.trace_decided = true;
            group.trace = TransactionSpan::start(Origin {
                flavor: self.facts.flavor.as_str(),
                gtid: group.gtid.as_ref().map(ToString::to_string),
                file: &group.start_file,
                pos: group.start_pos,
            });
        }
        if let Some(trace) = &mut group.trace {
            trace.note(&view.schema.id, &view.topic);
        }
        group.total_order += 1;
        let order = match group.table_orders.get_mut(&view.schema.id) {
            Some(order) => order,
            None => group
                .table_orders
                .entry(view.schema.id.clone())
                .or_insert(0),
        };
        *order += 1;
        let transaction = TransactionInfo {
            // Moved in and out of the context: no copy per row.
            id: std::mem::take(&mut context.transaction_id),
            total_order: group.total_order,
            data_collection_order: *order,
        };
        let is_delete = matches!(change, RowChange::Delete { .. });
        let event = ChangeEvent {
            schema: Arc::clone(&view.schema),
            change,
            source: std::mem::replace(&mut context.source, SourceInfo::placeholder()),
            transaction: Some(transaction),
            ts_us: now_us(),
        };
        let encoded = self.encoder.encode(&event);
        let record =
            encoded.map_err(|e| CaptureError::Codec(format!("{}: {e}", view.schema.id)))?;
        let mut headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "content-type",
                value: Some(self.format.content_type()),
            })
            .insert(Header {
                key: "rowferry.source.position",
                value: Some(context.position_header.as_str()),
            });
        if let Some(gtid) = &context.gtid_header {
            headers = headers.insert(Header {
                key: "rowferry.source.gtid",
                value: Some(gtid.as_str()),
            });
        }
        if let Some((name, key)) = key_header {
            headers = headers.insert(Header {
                key: name,
                value: key,
            });
        }
        if let Some(trace) = &group.trace {
            for (key, value) in trace.headers() {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
        }
        let result = send_record(
            &mut self.writer,
            self.config,
            &mut self.encoder,
            Outgoing {
                topic: &view.topic,
                event: &event,
                key: record.key.as_deref(),
                value: record.value,
                headers,
            },
        )
        .await;
        if result.is_ok() {
            rowferry_shared::control::count_change(
                &mut self.open_tables,
                &event.schema.id,
                &event.change,
            );
        }
        let ChangeEvent {
            source,
            transaction,
            ..
        } = event;
        context.source = source;
        if let Some(transaction) = transaction {
            context.transaction_id = transaction.id;
        }
        result?;
        if is_delete && self.config.output.tombstones && record.key.is_some() {
            self.writer
                .send(
                    &view.topic,
                    record.key.as_deref(),
                    None,
                    OwnedHeaders::new(),
                )
                .await?;
        }
        Ok(())
    }
}

/// One encoded change record on its way to Kafka.
pub(crate) struct Outgoing<'a> {
    pub topic: &'a str,
    pub event: &'a ChangeEvent,
    pub key: Option<&'a [u8]>,
    pub value: Vec<u8>,
    pub headers: OwnedHeaders,
}

/// Sends one change record, applying the large-record policy (`output.large_record_policy`).
pub(crate) async fn send_record(
    writer: &mut TransactionalWriter,
    config: &CaptureConfig,
    encoder: &mut Encoder,
    record: Outgoing<'_>,
) -> Result<(), CaptureError> {
    let Outgoing {
        topic,
        event,
        key,
        value,
        headers,
    } = record;
    let limit = config.kafka.max_record_bytes;
    let size = key.map_or(0, <[u8]>::len) + value.len();
    if size <= limit {
        writer.send(topic, key, Some(&value), headers).await?;
        return Ok(());
    }
    let key_text = key
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_else(|| "(none)".into());
    match config.output.large_record_policy.as_str() {
        "dead-letter" => {
            let dlq = config
                .output
                .dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{}.dead-letter", config.topic_prefix()));
            let size_text = size.to_string();
            let headers = headers
                .insert(Header {
                    key: "rowferry.table",
                    value: Some(event.schema.id.to_string().as_str()),
                })
                .insert(Header {
                    key: "rowferry.record.bytes",
                    value: Some(size_text.as_str()),
                });
            tracing::warn!(table = %event.schema.id, key = %key_text, size, "record too large; key sent to the dead-letter topic");
            writer.send(&dlq, key, None, headers).await?;
            metrics::dead_lettered();
            Ok(())
        }
        "truncate" => {
            let truncated = truncate_to_fit(event, limit, encoder).map_err(CaptureError::Codec)?;
            tracing::warn!(table = %event.schema.id, key = %key_text, size, "record too large; large columns truncated");
            writer
                .send(
                    topic,
                    truncated.key.as_deref(),
                    Some(&truncated.value),
                    headers,
                )
                .await?;
            Ok(())
        }
        _ => Err(KafkaError::RecordTooLarge {
            table: event.schema.id.to_string(),
            key: key_text,
            size,
            limit,
        }
        .into()),
    }
}

/// Marker appended to a value shortened by the `truncate` policy.
pub const TRUNCATION_MARKER: &str = "…[truncated by rowferry]";

/// Shortens the largest text/binary values until the record fits `limit`.
fn truncate_to_fit(
    event: &ChangeEvent,
    limit: usize,
    encoder: &mut Encoder,
) -> Result<rowferry_shared::codec::EncodedRecord, String> {
    let mut event = event.clone();
    for _ in 0..64 {
        let record = encoder.encode(&event).map_err(|e| e.to_string())?;
        let size = record.key.as_ref().map_or(0, Vec::len) + record.value.len();
        if size <= limit {
            return Ok(record);
        }
        let excess = size - limit;
        let key_columns = event.schema.key.columns().to_vec();
        let shortened = shorten_largest(
            &mut event.change,
            &key_columns,
            excess + TRUNCATION_MARKER.len() + 64,
        );
        if !shortened {
            break;
        }
    }
    Err(format!(
        "{}: the record does not fit kafka.max_record_bytes even with its large columns truncated",
        event.schema.id
    ))
}

fn shorten_largest(change: &mut RowChange, key_columns: &[usize], by: usize) -> bool {
    let rows: Vec<&mut Row> = match change {
        RowChange::Read { after } | RowChange::Insert { after } => vec![after],
        RowChange::Update { before, after } => vec![before, after],
        RowChange::Delete { before } => vec![before],
    };
    let mut any = false;
    for row in rows {
        let largest = row
            .iter()
            .enumerate()
            .filter(|(i, _)| !key_columns.contains(i))
            .max_by_key(|(_, v)| value_len(v))
            .map(|(i, _)| i);
        let Some(i) = largest else { continue };
        // Base64 in JSON makes bytes a third larger than they are.
        let cut = by * 3 / 4 + 1;
        match &mut row[i] {
            Value::Text(s) | Value::Json(s) if s.len() > cut => {
                let mut keep = s.len() - cut;
                while !s.is_char_boundary(keep) {
                    keep -= 1;
                }
                s.truncate(keep);
                s.push_str(TRUNCATION_MARKER);
                any = true;
            }
            Value::Bytes(b) if b.len() > cut => {
                b.truncate(b.len() - cut);
                b.extend_from_slice(TRUNCATION_MARKER.as_bytes());
                any = true;
            }
            _ => {}
        }
    }
    any
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.len(),
        Value::Bytes(b) | Value::Bit(b) => b.len(),
        _ => 0,
    }
}

/// Leaves out excluded columns.
fn project(change: RowChange, keep: Option<&[usize]>) -> RowChange {
    let Some(keep) = keep else {
        return change;
    };
    let pick = |row: Row| -> Row { keep.iter().filter_map(|&i| row.get(i).cloned()).collect() };
    match change {
        RowChange::Read { after } => RowChange::Read { after: pick(after) },
        RowChange::Insert { after } => RowChange::Insert { after: pick(after) },
        RowChange::Update { before, after } => RowChange::Update {
            before: pick(before),
            after: pick(after),
        },
        RowChange::Delete { before } => RowChange::Delete {
            before: pick(before),
        },
    }
}

fn remap_key(key: &RowKey, keep: &[usize]) -> RowKey {
    let remap = |columns: &[usize]| -> Option<Vec<usize>> {
        columns
            .iter()
            .map(|c| keep.iter().position(|k| k == c))
            .collect()
    };
    match key {
        RowKey::Primary(c) => remap(c).map_or(RowKey::None, RowKey::Primary),
        RowKey::Unique(c) => remap(c).map_or(RowKey::None, RowKey::Unique),
        RowKey::None => RowKey::None,
    }
}

fn is_ddl(sql: &str) -> bool {
    let first = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "ALTER" | "CREATE" | "DROP" | "RENAME" | "TRUNCATE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_names_lose_stray_checksum_bytes() {
        assert_eq!(
            rotate_name(b"mariadb-bin.000001\x01\xff\x03\x04", true),
            "mariadb-bin.000001"
        );
        assert_eq!(
            rotate_name(b"mariadb-bin.000002", false),
            "mariadb-bin.000002"
        );
    }

    #[test]
    fn recognises_ddl() {
        assert!(is_ddl("ALTER TABLE t ADD c INT"));
        assert!(is_ddl("  create table x (a int)"));
        assert!(!is_ddl("INSERT INTO t VALUES (1)"));
    }

    #[test]
    fn remaps_keys_through_projection() {
        assert_eq!(
            remap_key(&RowKey::Primary(vec![2]), &[0, 2]),
            RowKey::Primary(vec![1])
        );
        assert_eq!(remap_key(&RowKey::Primary(vec![1]), &[0, 2]), RowKey::None);
    }
}
