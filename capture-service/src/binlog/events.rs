//! Binlog events sorted into what capture acts on.
//!
//! Every event from the wire or a file passes through [`classify`]: its checksum is verified,
//! and its body is decoded into a [`SourceEvent`]. Unknown event types are not skipped
//! silently: they come back as [`SourceEvent::Ignored`] with their type code, and the few that
//! would make the stream unreadable (encryption) are errors.

use std::borrow::Cow;

use mysql_async::binlog::events::{
    Event, FormatDescriptionEvent, GtidEvent, PreviousGtidsEvent, QueryEvent, RotateEvent,
    RowsQueryEvent, TableMapEvent, TransactionPayloadEvent,
};
use mysql_async::binlog::{BinlogChecksumAlg, EventType};
use rowferry_shared::position::{GnoInterval, Gtid, GtidSet, MySqlGtid, MySqlGtidSet, MySqlSid};

use super::DecodeError;
use super::mariadb;
use super::row_image::{Cursor, RowsBody, RowsKind};

/// A binlog event, decoded as far as capture needs.
#[derive(Debug)]
pub enum SourceEvent<'a> {
    /// The file's format description (first event of every file).
    FormatDescription { server_version: String },
    /// Continue in `file` at `position` (also sent first by a dump, as a "fake" rotate). The
    /// name is raw: a dump's first rotate still carries 4 checksum bytes (see the pipeline).
    Rotate { file: Vec<u8>, position: u64 },
    /// The source is alive and has nothing new.
    Heartbeat,
    /// A transaction (or standalone statement) with this GTID starts.
    Gtid { gtid: Gtid, standalone: bool },
    /// A MySQL transaction without a GTID starts (gtid_mode OFF).
    AnonymousGtid,
    /// GTIDs already in the binlog before this file (MariaDB GTID_LIST, MySQL PREVIOUS_GTIDS).
    GtidsBefore(GtidSet),
    /// MariaDB's note of the oldest file crash recovery needs.
    BinlogCheckpoint(String),
    /// `BEGIN`.
    Begin { thread_id: u32 },
    /// The transaction committed (XID, or a `COMMIT` query for non-XA engines).
    Commit,
    /// The transaction rolled back (non-transactional tables can log this).
    Rollback,
    /// Any other statement: DDL, or DML logged as a statement.
    Statement {
        db: String,
        sql: String,
        thread_id: u32,
    },
    /// The SQL text of the following row events (MariaDB ANNOTATE_ROWS, MySQL ROWS_QUERY).
    Annotate(String),
    /// Maps a table id to a table for the following ROWS events.
    TableMap(Box<TableMapEvent<'static>>),
    /// Row images of one table.
    Rows {
        table_id: u64,
        body: RowsBody<'a>,
        end_of_statement: bool,
    },
    /// MySQL 8 compressed transaction; its events follow, already decompressed.
    TransactionPayload { uncompressed_size: u64 },
    /// The server stopped (end of a file written by a server that shut down).
    Stop,
    /// An event capture has no use for (INTVAR, RAND, USER_VAR, …), by type code.
    Ignored { type_code: u8 },
}

/// Verifies an event's CRC32 when the binlog has checksums on.
pub fn verify_checksum(event: &Event, position: u64) -> Result<(), DecodeError> {
    let Ok(Some(alg)) = event.footer().get_checksum_alg() else {
        return Ok(());
    };
    if alg != BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 || !event.footer().get_checksum_enabled()
    {
        return Ok(());
    }
    let Some(stored) = event.checksum() else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let computed = event.calc_checksum(alg);
    if stored != computed {
        return Err(DecodeError::Checksum {
            position,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Decodes `event`. `fde` is the format description in force (for post-header lengths).
pub fn classify<'a>(
    event: &'a Event,
    fde: &FormatDescriptionEvent<'_>,
) -> Result<SourceEvent<'a>, DecodeError> {
    let header = event.header();
    let type_code = header.event_type_raw();
    let data = event.data();
    let known = EventType::try_from(type_code).ok();
    let post_header_len = fde
        .event_type_header_lengths()
        .get(usize::from(type_code).wrapping_sub(1))
        .copied();
    Ok(match (known, type_code) {
        (Some(EventType::FORMAT_DESCRIPTION_EVENT), _) => {
            let fde: FormatDescriptionEvent<'_> = event.read_event()?;
            SourceEvent::FormatDescription {
                server_version: fde.server_version().trim_end_matches('\0').to_owned(),
            }
        }
        (Some(EventType::ROTATE_EVENT), _) => {
            let rotate: RotateEvent<'_> = event.read_event()?;
            SourceEvent::Rotate {
                file: rotate.name_raw().to_vec(),
                position: rotate.position(),
            }
        }
        (Some(EventType::HEARTBEAT_EVENT), _) => SourceEvent::Heartbeat,
        (Some(EventType::STOP_EVENT), _) => SourceEvent::Stop,
        (Some(EventType::GTID_EVENT | EventType::GTID_TAGGED_LOG_EVENT), _) => {
            let gtid: GtidEvent = event.read_event()?;
            let uuid = uuid::Uuid::from_bytes(gtid.sid());
            let tag = gtid.tag().map(|t| t.as_str().to_lowercase());
            SourceEvent::Gtid {
                gtid: Gtid::MySql(MySqlGtid {
                    sid: MySqlSid { uuid, tag },
                    gno: gtid.gno(),
                }),
                standalone: false,
            }
        }
        (Some(EventType::ANONYMOUS_GTID_EVENT), _) => SourceEvent::AnonymousGtid,
        (Some(EventType::PREVIOUS_GTIDS_EVENT), _) if !untagged_previous_gtids_fit(data) => {
            // Capture does not need this summary (positions come from GTID events); it is
            // only decoded when its counts fit its size, because mysql_common allocates by
            // count and a corrupt count would abort the process.
            SourceEvent::Ignored { type_code }
        }
        (Some(EventType::PREVIOUS_GTIDS_EVENT), _) => {
            let previous: PreviousGtidsEvent<'_> = event.read_event()?;
            let mut set = MySqlGtidSet::new();
            for sid in previous.sids() {
                let sid_value = MySqlSid {
                    uuid: uuid::Uuid::from_bytes(sid.uuid()),
                    tag: sid.tag().map(|t| t.as_str().to_lowercase()),
                };
                for interval in sid.intervals() {
                    // MySQL stores half-open intervals [start, end).
                    let (start, end) = (interval.start(), interval.end());
                    if start == 0 || end <= start {
                        return Err(DecodeError::Corrupt {
                            what: format!("PREVIOUS_GTIDS interval {start}-{end}"),
                        });
                    }
                    set.insert_interval(
                        sid_value.clone(),
                        GnoInterval {
                            start,
                            end: end - 1,
                        },
                    );
                }
            }
            SourceEvent::GtidsBefore(GtidSet::MySql(set))
        }
        (Some(EventType::QUERY_EVENT), _) => {
            let query: QueryEvent<'_> = event.read_event()?;
            statement(
                query.thread_id(),
                query.schema().into_owned(),
                query.query().into_owned(),
            )
        }
        // XA PREPARE ends the binlog group of an XA transaction (its COMMIT comes later, in a
        // group of its own).
        (Some(EventType::XID_EVENT | EventType::XA_PREPARE_LOG_EVENT), _) => SourceEvent::Commit,
        (Some(EventType::ROWS_QUERY_EVENT), _) => {
            let rows_query: RowsQueryEvent<'_> = event.read_event()?;
            SourceEvent::Annotate(rows_query.query().into_owned())
        }
        (Some(EventType::TABLE_MAP_EVENT), _) => {
            let tme: TableMapEvent<'_> = event.read_event()?;
            SourceEvent::TableMap(Box::new(tme.into_owned()))
        }
        (Some(EventType::TRANSACTION_PAYLOAD_EVENT), _) => {
            let payload: TransactionPayloadEvent<'_> = event.read_event()?;
            // mysql_common inflates payloads quietly and yields nothing on failure; inflate
            // once here so a corrupt payload is an error instead of a lost transaction.
            let mut reader = payload.decompressed()?;
            let mut inflated = 0u64;
            while reader.has_data_left()? {
                let chunk = std::io::BufRead::fill_buf(&mut reader)?;
                let n = chunk.len();
                std::io::BufRead::consume(&mut reader, n);
                inflated += n as u64;
            }
            if inflated != payload.uncompressed_size() {
                return Err(DecodeError::Corrupt {
                    what: format!(
                        "transaction payload inflates to {inflated} bytes, header says {}",
                        payload.uncompressed_size()
                    ),
                });
            }
            SourceEvent::TransactionPayload {
                uncompressed_size: payload.uncompressed_size(),
            }
        }
        (Some(kind), _) => match rows_kind(kind) {
            Some((kind, v2)) => rows(data, post_header_len, kind, v2, false)?,
            None => SourceEvent::Ignored { type_code },
        },
        (None, mariadb::GTID) => {
            let gtid = mariadb::gtid(data, header.server_id())?;
            SourceEvent::Gtid {
                gtid: Gtid::MariaDb(gtid.gtid),
                standalone: gtid.standalone,
            }
        }
        (None, mariadb::GTID_LIST) => {
            SourceEvent::GtidsBefore(GtidSet::MariaDb(mariadb::gtid_list(data)?))
        }
        (None, mariadb::BINLOG_CHECKPOINT) => {
            SourceEvent::BinlogCheckpoint(mariadb::binlog_checkpoint(data)?)
        }
        (None, mariadb::ANNOTATE_ROWS) => {
            SourceEvent::Annotate(String::from_utf8_lossy(data).into_owned())
        }
        (None, mariadb::START_ENCRYPTION) => {
            return Err(DecodeError::Corrupt {
                what: "this binlog file is encrypted (START_ENCRYPTION); read it through the \
                       server, which decrypts it for replicas"
                    .into(),
            });
        }
        (None, mariadb::QUERY_COMPRESSED) => compressed_query(data, post_header_len)?,
        (None, code @ mariadb::WRITE_ROWS_COMPRESSED_V1..=mariadb::DELETE_ROWS_COMPRESSED) => {
            let kind = match (code - mariadb::WRITE_ROWS_COMPRESSED_V1) % 3 {
                0 => RowsKind::Write,
                1 => RowsKind::Update,
                _ => RowsKind::Delete,
            };
            rows(
                data,
                post_header_len,
                kind,
                code >= mariadb::WRITE_ROWS_COMPRESSED,
                true,
            )?
        }
        (None, _) => SourceEvent::Ignored { type_code },
    })
}

/// Whether an untagged PREVIOUS_GTIDS body's counts agree with its length.
fn untagged_previous_gtids_fit(data: &[u8]) -> bool {
    let mut c = Cursor::new(data);
    let Ok(header) = c.uint_le(8) else {
        return false;
    };
    if header >> 56 != 0 {
        return false;
    }
    for _ in 0..header {
        if c.take(16).is_err() {
            return false;
        }
        let Ok(intervals) = c.uint_le(8) else {
            return false;
        };
        match usize::try_from(intervals)
            .ok()
            .and_then(|n| n.checked_mul(16))
        {
            Some(bytes) if bytes <= c.remaining() => {
                let _ = c.take(bytes);
            }
            _ => return false,
        }
    }
    c.is_empty()
}

fn statement(thread_id: u32, db: String, sql: String) -> SourceEvent<'static> {
    let mut words = sql
        .split_whitespace()
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase());
    let first = words.next().unwrap_or_default();
    let second = words.next().unwrap_or_default();
    match (first.as_str(), second.as_str()) {
        ("BEGIN", _) | ("XA", "START" | "BEGIN") => SourceEvent::Begin { thread_id },
        ("COMMIT", _) | ("XA", "COMMIT") => SourceEvent::Commit,
        // `ROLLBACK TO savepoint` stays inside the transaction.
        ("ROLLBACK", "" | "WORK") | ("XA", "ROLLBACK") => SourceEvent::Rollback,
        _ => SourceEvent::Statement { db, sql, thread_id },
    }
}

/// Which ROWS kind an event type is, and whether it is a v2 (MySQL 5.6+) event.
fn rows_kind(kind: EventType) -> Option<(RowsKind, bool)> {
    Some(match kind {
        EventType::WRITE_ROWS_EVENT_V1 => (RowsKind::Write, false),
        EventType::UPDATE_ROWS_EVENT_V1 => (RowsKind::Update, false),
        EventType::DELETE_ROWS_EVENT_V1 => (RowsKind::Delete, false),
        EventType::WRITE_ROWS_EVENT => (RowsKind::Write, true),
        EventType::UPDATE_ROWS_EVENT => (RowsKind::Update, true),
        EventType::DELETE_ROWS_EVENT => (RowsKind::Delete, true),
        EventType::PARTIAL_UPDATE_ROWS_EVENT => (RowsKind::PartialUpdate, true),
        _ => return None,
    })
}

const STMT_END_F: u16 = 1;

/// Splits a ROWS event into its table id, column bitmaps and row images.
fn rows(
    data: &[u8],
    post_header_len: Option<u8>,
    kind: RowsKind,
    v2: bool,
    compressed: bool,
) -> Result<SourceEvent<'_>, DecodeError> {
    let mut c = Cursor::new(data);
    // Ancient servers used a 4-byte table id (post-header of 6 bytes).
    let id_bytes = if post_header_len == Some(6) { 4 } else { 6 };
    let table_id = c.uint_le(id_bytes)?;
    let flags = c.uint_le(2)? as u16;
    if v2 {
        let extra_len = c.uint_le(2)? as usize;
        c.take(extra_len.saturating_sub(2))?;
    }
    let num_columns = usize::try_from(c.lenenc()?).map_err(|_| DecodeError::Corrupt {
        what: "ROWS column count overflows".into(),
    })?;
    let bitmap_len = num_columns.div_ceil(8);
    let before_columns = match kind {
        RowsKind::Update | RowsKind::Delete | RowsKind::PartialUpdate => Some(c.take(bitmap_len)?),
        RowsKind::Write => None,
    };
    let after_columns = match kind {
        RowsKind::Write | RowsKind::Update | RowsKind::PartialUpdate => Some(c.take(bitmap_len)?),
        RowsKind::Delete => None,
    };
    let rest = c.take(c.remaining())?;
    let rows = if compressed {
        Cow::Owned(mariadb::uncompress(rest)?)
    } else {
        Cow::Borrowed(rest)
    };
    Ok(SourceEvent::Rows {
        table_id,
        body: RowsBody {
            kind,
            num_columns,
            before_columns,
            after_columns,
            rows,
        },
        end_of_statement: flags & STMT_END_F != 0,
    })
}

/// QUERY_COMPRESSED: a QUERY event whose statement text is compressed.
fn compressed_query(
    data: &[u8],
    post_header_len: Option<u8>,
) -> Result<SourceEvent<'static>, DecodeError> {
    let mut c = Cursor::new(data);
    let thread_id = c.uint_le(4)? as u32;
    c.take(4)?; // execution time
    let db_len = usize::from(c.take(1)?[0]);
    c.take(2)?; // error code
    let status_len = c.uint_le(2)? as usize;
    // Any post-header bytes beyond the 13 we know.
    c.take(usize::from(post_header_len.unwrap_or(13)).saturating_sub(13))?;
    c.take(status_len)?;
    let db = String::from_utf8_lossy(c.take(db_len)?).into_owned();
    c.take(1)?; // NUL after the database name
    let rest = c.take(c.remaining())?;
    let sql = mariadb::uncompress(rest)?;
    Ok(statement(
        thread_id,
        db,
        String::from_utf8_lossy(&sql).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> &'static str {
        match statement(1, String::new(), sql.to_owned()) {
            SourceEvent::Begin { .. } => "begin",
            SourceEvent::Commit => "commit",
            SourceEvent::Rollback => "rollback",
            _ => "statement",
        }
    }

    #[test]
    fn transaction_control_statements_are_told_apart() {
        assert_eq!(kind("BEGIN"), "begin");
        assert_eq!(kind("COMMIT"), "commit");
        assert_eq!(kind("ROLLBACK"), "rollback");
        assert_eq!(
            kind("ROLLBACK TO `sp1`"),
            "statement",
            "a savepoint stays inside"
        );
        assert_eq!(kind("XA START X'01',X'',1"), "begin");
        assert_eq!(kind("XA END X'01',X'',1"), "statement");
        assert_eq!(kind("XA COMMIT X'01',X'',1"), "commit");
        assert_eq!(kind("XA ROLLBACK X'01',X'',1"), "rollback");
        assert_eq!(kind("ALTER TABLE t ADD c INT"), "statement");
    }
}
