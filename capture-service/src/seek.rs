//! Seeking: the position capture reads from next, checked against the source and stored in
//! the offsets topic as if a commit had reached it — so a restart (or the next Start)
//! resumes there, and writing it under the capture's transactional id fences any older
//! instance still running.

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rowferry_shared::position::{BinlogFilePosition, Flavor, GtidSet};

use crate::binlog::events::{SourceEvent, classify};
use crate::config::CaptureConfig;
use crate::kafka::KafkaError;
use crate::kafka::offsets::StoredPosition;
use crate::kafka::writer::TransactionalWriter;
use crate::source::{self, SourceError, SourceFacts, StreamStart};

/// How long the timestamp scan waits for one binlog event.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Where to read from next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A binlog file and the position of an event in it.
    File(BinlogFilePosition),
    /// A GTID set (either flavor's syntax): continue after the transactions it contains.
    Gtids(GtidSet),
    /// The oldest binlog file still on the source.
    Earliest,
    /// The current end of the binlog.
    Latest,
    /// The first transaction that starts at or after this time (seconds since the epoch).
    Timestamp(u64),
}

/// Why a seek was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SeekError {
    /// The position does not exist on the source, or does not fit it.
    #[error("{0}")]
    Invalid(String),
    /// The position is past the end of the binlog.
    #[error("{0}")]
    OutOfRange(String),
    /// The source refused or could not be reached.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Kafka could not store the position.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The binlog could not be read to the end of the search.
    #[error("{0}")]
    Unavailable(String),
    /// The configuration lacks what a seek needs (the password).
    #[error("{0}")]
    Config(String),
}

impl SeekError {
    /// Whether retrying the same request later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SeekError::Source(e) => e.is_transient(),
            SeekError::Kafka(e) => e.is_transient(),
            SeekError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Whether the request is at fault (rather than the source or Kafka).
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            SeekError::Invalid(_)
                | SeekError::OutOfRange(_)
                | SeekError::Source(SourceError::Refused { .. })
        )
    }
}

/// Checks `target` against the source and turns it into the position capture would store.
pub async fn resolve(config: &CaptureConfig, target: Target) -> Result<StoredPosition, SeekError> {
    let password = config
        .source_password()
        .map_err(|e| SeekError::Config(e.to_string()))?;
    let opts = source::connection_opts(&config.source.url, password.as_ref().map(|p| p.expose()))?;
    let mut conn = source::connect(&opts).await?;
    let facts = source::preflight(&mut conn, config.source.server_id).await?;
    let start = match target {
        Target::Earliest => source::resolve_start(&mut conn, &facts, "earliest").await?,
        Target::Latest => source::resolve_start(&mut conn, &facts, "latest").await?,
        Target::File(at) => {
            if at.pos < 4 {
                return Err(SeekError::Invalid(format!(
                    "position {} is before the first event of a binlog file (4)",
                    at.pos
                )));
            }
            let sizes = binlog_file_sizes(&mut conn).await?;
            if let Some((_, size)) = sizes.iter().find(|(name, _)| *name == at.file)
                && at.pos > *size
            {
                return Err(SeekError::OutOfRange(format!(
                    "position {} is beyond the end of {} ({size} bytes); see SHOW BINARY LOGS",
                    at.pos, at.file
                )));
            }
            source::resolve_start(&mut conn, &facts, &at.to_string()).await?
        }
        Target::Gtids(set) => {
            if set.flavor() != facts.flavor {
                return Err(SeekError::Invalid(format!(
                    "{set} is a {} GTID set but the source is {}; give it in the source's \
                     syntax (MariaDB `domain-server-sequence`, MySQL `uuid:1-10`)",
                    set.flavor(),
                    facts.flavor
                )));
            }
            let executed = executed_gtids(&mut conn, &facts).await?;
            if !matches!(set.is_subset_of(&executed), Ok(true)) {
                return Err(SeekError::OutOfRange(format!(
                    "GTID set {set} is ahead of what the source has executed ({executed})"
                )));
            }
            source::resolve_start(&mut conn, &facts, &format!("gtid:{set}")).await?
        }
        Target::Timestamp(seconds) => {
            let at = find_time(config, &opts, &facts, &mut conn, seconds).await?;
            source::resolve_start(&mut conn, &facts, &at.to_string()).await?
        }
    };
    let _ = conn.disconnect().await;
    Ok(StoredPosition::boundary(
        facts.flavor,
        facts.server_id,
        start.file.file,
        start.file.pos,
        start.gtids.as_ref().map(ToString::to_string),
    ))
}

/// Stores `position` in the offsets topic, fencing any other instance of this capture.
pub async fn store(config: &CaptureConfig, position: &StoredPosition) -> Result<(), SeekError> {
    let mut writer =
        TransactionalWriter::start(&config.kafka, &config.name, config.batch.max_bytes).await?;
    writer.commit(position).await?;
    writer.reap(true).await?;
    Ok(())
}

/// `SHOW BINARY LOGS`: each file with its size.
async fn binlog_file_sizes(conn: &mut Conn) -> Result<Vec<(String, u64)>, SeekError> {
    let rows: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS")
            .await
            .map_err(|source| SourceError::Query {
                query: "SHOW BINARY LOGS".into(),
                source,
            })?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get_opt(0)?.ok()?;
            let size: u64 = row.get_opt(1)?.ok()?;
            Some((name, size))
        })
        .collect())
}

/// The GTIDs the source has written to its binlog.
async fn executed_gtids(conn: &mut Conn, facts: &SourceFacts) -> Result<GtidSet, SeekError> {
    let query = match facts.flavor {
        Flavor::MariaDb => "SELECT @@gtid_binlog_pos",
        Flavor::MySql => "SELECT @@gtid_executed",
    };
    let text: Option<String> =
        conn.query_first(query)
            .await
            .map_err(|source| SourceError::Query {
                query: query.into(),
                source,
            })?;
    GtidSet::parse_as(facts.flavor, text.unwrap_or_default().trim())
        .map_err(|e| SeekError::Invalid(format!("the source's own GTID set: {e}")))
}

/// The position of the first transaction that starts at or after `seconds` (the binlog end
/// when none does): the last file started at or before that time is read from its start.
async fn find_time(
    config: &CaptureConfig,
    opts: &mysql_async::Opts,
    facts: &SourceFacts,
    conn: &mut Conn,
    seconds: u64,
) -> Result<BinlogFilePosition, SeekError> {
    let files = source::binlog_files(conn).await?;
    let end = source::binlog_end(conn).await?;
    let mut from = files
        .first()
        .cloned()
        .ok_or_else(|| SeekError::Invalid("the source has no binlog files".into()))?;
    for file in files.iter().rev() {
        match file_start_time(config, opts, facts, file).await? {
            Some(started) if u64::from(started) <= seconds => {
                from = file.clone();
                break;
            }
            _ => {}
        }
    }
    let start = StreamStart {
        file: BinlogFilePosition::new(from.clone(), 4),
        gtids: None,
    };
    let stream_conn = source::connect(opts).await?;
    let mut stream = source::open_stream(
        stream_conn,
        facts,
        &start,
        config.source.server_id,
        config.heartbeat_interval(),
    )
    .await?;
    let mut file = from;
    loop {
        let event = next_event(&mut stream).await?;
        let header = event.header();
        let log_end = u64::from(header.log_pos());
        match classify(&event, event.fde()) {
            Ok(SourceEvent::Rotate { file: name, .. })
                if log_end == 0 || header.timestamp() == 0 =>
            {
                // The dump's first (fake) rotate names the file it starts in.
                let name = String::from_utf8_lossy(&name).into_owned();
                if files.iter().any(|f| name.starts_with(f.as_str())) {
                    file = files
                        .iter()
                        .find(|f| name.starts_with(f.as_str()))
                        .cloned()
                        .unwrap_or(name);
                }
                continue;
            }
            Ok(SourceEvent::Rotate { file: name, .. }) => {
                file = String::from_utf8_lossy(&name).into_owned();
                continue;
            }
            Ok(
                SourceEvent::Gtid { .. } | SourceEvent::AnonymousGtid | SourceEvent::Begin { .. },
            ) if log_end > 0 && u64::from(header.timestamp()) >= seconds => {
                let at = log_end.saturating_sub(u64::from(header.event_size()));
                return Ok(BinlogFilePosition::new(file, at));
            }
            _ => {}
        }
        if log_end > 0 && file == end.file && log_end >= end.pos {
            return Ok(end);
        }
    }
}

/// When `file` was started: the timestamp of its format description event.
async fn file_start_time(
    config: &CaptureConfig,
    opts: &mysql_async::Opts,
    facts: &SourceFacts,
    file: &str,
) -> Result<Option<u32>, SeekError> {
    let start = StreamStart {
        file: BinlogFilePosition::new(file, 4),
        gtids: None,
    };
    let conn = source::connect(opts).await?;
    let mut stream = source::open_stream(
        conn,
        facts,
        &start,
        config.source.server_id,
        config.heartbeat_interval(),
    )
    .await?;
    for _ in 0..4 {
        let event = next_event(&mut stream).await?;
        if matches!(
            classify(&event, event.fde()),
            Ok(SourceEvent::FormatDescription { .. })
        ) {
            return Ok(Some(event.header().timestamp()));
        }
    }
    Ok(None)
}

async fn next_event(
    stream: &mut mysql_async::BinlogStream,
) -> Result<mysql_async::binlog::events::Event, SeekError> {
    use futures::StreamExt;
    match tokio::time::timeout(EVENT_WAIT, stream.next()).await {
        Ok(Some(Ok(event))) => Ok(event),
        Ok(Some(Err(e))) => Err(SeekError::Source(SourceError::Stream(e))),
        Ok(None) => Err(SeekError::Unavailable(
            "the source ended the binlog stream while looking for the time; try again".into(),
        )),
        Err(_) => Err(SeekError::Unavailable(format!(
            "no binlog event within {EVENT_WAIT:?} while looking for the time; try again"
        ))),
    }
}
