//! Binlog files read from disk (recordings of MySQL servers that cannot run here).
//!
//! Framing is done here, not by mysql_common's `EventStreamReader`, because that reader
//! panics on a truncated event; every size is checked before an event is handed to
//! mysql_common. Compressed transaction payloads are expanded in place, as the server does
//! for a replica.

use std::io::BufRead;
use std::path::Path;

use mysql_async::binlog::events::{Event, FormatDescriptionEvent, TransactionPayloadEvent};
use mysql_async::binlog::{BinlogChecksumAlg, BinlogVersion, EventType};

use super::DecodeError;

/// `\xfebin`: the first four bytes of every binlog file.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;
const CHECKSUM_LEN: usize = 4;
/// An FDE body has at least the binlog version, server version and create timestamp.
const MIN_FDE_BODY: usize = 2 + 50 + 4 + 1;

/// Why a binlog file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or read.
    #[error("cannot read binlog file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The first bytes are not the binlog magic.
    #[error("{path} is not a binlog file (it does not start with \\xfebin)")]
    NotABinlog { path: String },
    /// An event could not be decoded.
    #[error("{path} at byte {position}: {source}")]
    Event {
        path: String,
        position: u64,
        source: Box<DecodeError>,
    },
}

/// One event read from a file, with where it starts.
#[derive(Debug)]
pub struct FileEvent {
    /// Byte offset of the event in the file (for events inside a compressed payload: the
    /// offset of the payload event).
    pub position: u64,
    /// Whether the event came out of a compressed transaction payload.
    pub from_payload: bool,
    /// The event.
    pub event: Event,
}

/// Reads the events of a binlog file one by one.
pub struct BinlogFileReader {
    path: String,
    data: Vec<u8>,
    pos: usize,
    fde: FormatDescriptionEvent<'static>,
    /// Events of a compressed payload still to hand out, and the payload's position.
    payload: std::collections::VecDeque<Event>,
    payload_position: u64,
    failed: bool,
}

impl BinlogFileReader {
    /// Opens `path` and checks the magic.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let name = path.display().to_string();
        let data = std::fs::read(path).map_err(|source| FileError::Io {
            path: name.clone(),
            source,
        })?;
        Self::from_bytes(name, data)
    }

    /// Reads binlog bytes already in memory (`name` is used in errors).
    pub fn from_bytes(name: String, data: Vec<u8>) -> Result<Self, FileError> {
        if data.get(..4) != Some(&MAGIC[..]) {
            return Err(FileError::NotABinlog { path: name });
        }
        Ok(Self {
            path: name,
            data,
            pos: 4,
            fde: FormatDescriptionEvent::new(BinlogVersion::Version4),
            payload: Default::default(),
            payload_position: 0,
            failed: false,
        })
    }

    /// The format description in force.
    pub fn fde(&self) -> &FormatDescriptionEvent<'static> {
        &self.fde
    }

    /// The next event, `Ok(None)` at the end of the file. After an error the reader is done.
    pub fn next_event(&mut self) -> Result<Option<FileEvent>, FileError> {
        if self.failed {
            return Ok(None);
        }
        if let Some(event) = self.payload.pop_front() {
            return Ok(Some(FileEvent {
                position: self.payload_position,
                from_payload: true,
                event,
            }));
        }
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let position = self.pos as u64;
        match self.read_one() {
            Ok(event) => Ok(Some(FileEvent {
                position,
                from_payload: false,
                event,
            })),
            Err(source) => {
                self.failed = true;
                Err(FileError::Event {
                    path: self.path.clone(),
                    position,
                    source: Box::new(source),
                })
            }
        }
    }

    fn read_one(&mut self) -> Result<Event, DecodeError> {
        let rest = &self.data[self.pos..];
        let (event, size) = frame(rest, &self.fde, true)?;
        self.pos += size;
        let type_code = event.header().event_type_raw();
        if type_code == EventType::FORMAT_DESCRIPTION_EVENT as u8 {
            let fde: FormatDescriptionEvent<'_> = event.read_event()?;
            self.fde = fde.into_owned().with_footer(event.footer());
        } else if type_code == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            self.expand_payload(&event)?;
            self.payload_position = (self.pos - size) as u64;
        }
        Ok(event)
    }

    /// Frames the events inside a compressed payload (they carry no checksums).
    fn expand_payload(&mut self, event: &Event) -> Result<(), DecodeError> {
        let payload: TransactionPayloadEvent<'_> = event.read_event()?;
        let mut reader = payload.decompressed()?;
        let mut inflated = Vec::new();
        while reader.has_data_left()? {
            let chunk = reader.fill_buf()?;
            let n = chunk.len();
            inflated.extend_from_slice(chunk);
            reader.consume(n);
        }
        let mut inner_fde = self.fde.clone();
        let mut footer = inner_fde.footer();
        footer.set_checksum_enabled(false);
        inner_fde = inner_fde.with_footer(footer);
        let mut at = 0;
        while at < inflated.len() {
            let (inner, size) = frame(&inflated[at..], &inner_fde, false)?;
            if inner.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
                return Err(DecodeError::Corrupt {
                    what: "a transaction payload nested in another".into(),
                });
            }
            self.payload.push_back(inner);
            at += size;
        }
        Ok(())
    }
}

/// Checks the header's size against the bytes at hand, then lets mysql_common read the event.
fn frame(
    rest: &[u8],
    fde: &FormatDescriptionEvent<'static>,
    checksummed: bool,
) -> Result<(Event, usize), DecodeError> {
    if rest.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            what: "event header",
            needed: HEADER_LEN,
            left: rest.len(),
        });
    }
    let type_code = rest[4];
    let size = u32::from_le_bytes([rest[9], rest[10], rest[11], rest[12]]) as usize;
    let is_fde = type_code == EventType::FORMAT_DESCRIPTION_EVENT as u8;
    let checksummed = checksummed
        && matches!(
            fde.footer().get_checksum_alg(),
            Ok(Some(alg)) if alg != BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_OFF
        );
    let min = if is_fde {
        HEADER_LEN + MIN_FDE_BODY
    } else if checksummed {
        HEADER_LEN + CHECKSUM_LEN
    } else {
        HEADER_LEN
    };
    if size < min {
        return Err(DecodeError::Corrupt {
            what: format!("event of type {type_code} claims {size} bytes (at least {min} needed)"),
        });
    }
    if size > rest.len() {
        return Err(DecodeError::Truncated {
            what: "event",
            needed: size,
            left: rest.len(),
        });
    }
    let event = Event::read(fde, &rest[..size])?;
    Ok((event, size))
}
