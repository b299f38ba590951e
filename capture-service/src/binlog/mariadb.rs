//! MariaDB's own binlog events, which mysql_common does not decode: GTID (162), GTID_LIST
//! (163), BINLOG_CHECKPOINT (161), ANNOTATE_ROWS (160) and the compressed QUERY and ROWS events
//! (165–171) that `log_bin_compress=ON` writes.

use std::io::Read;

use rowferry_shared::position::{MariaDbGtid, MariaDbGtidPos};

use super::DecodeError;
use super::row_image::Cursor;

/// ANNOTATE_ROWS: the statement that produced the following row events.
pub const ANNOTATE_ROWS: u8 = 160;
/// BINLOG_CHECKPOINT: the oldest binlog file crash recovery still needs.
pub const BINLOG_CHECKPOINT: u8 = 161;
/// GTID: starts an event group (transaction or standalone statement).
pub const GTID: u8 = 162;
/// GTID_LIST: the GTID position at the start of a binlog file.
pub const GTID_LIST: u8 = 163;
/// START_ENCRYPTION: the rest of the file is encrypted (never sent to replicas).
pub const START_ENCRYPTION: u8 = 164;
/// QUERY with a compressed statement.
pub const QUERY_COMPRESSED: u8 = 165;
/// ROWS v1 events with compressed row images.
pub const WRITE_ROWS_COMPRESSED_V1: u8 = 166;
/// See [`WRITE_ROWS_COMPRESSED_V1`].
pub const UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
/// See [`WRITE_ROWS_COMPRESSED_V1`].
pub const DELETE_ROWS_COMPRESSED_V1: u8 = 168;
/// ROWS v2 events with compressed row images.
pub const WRITE_ROWS_COMPRESSED: u8 = 169;
/// See [`WRITE_ROWS_COMPRESSED`].
pub const UPDATE_ROWS_COMPRESSED: u8 = 170;
/// See [`WRITE_ROWS_COMPRESSED`].
pub const DELETE_ROWS_COMPRESSED: u8 = 171;

/// A decoded MariaDB GTID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    /// The transaction's GTID (server id from the event header).
    pub gtid: MariaDbGtid,
    /// A single statement with no BEGIN/COMMIT (typically DDL).
    pub standalone: bool,
    /// The group is DDL.
    pub ddl: bool,
}

const FL_STANDALONE: u8 = 1;
const FL_DDL: u8 = 32;

/// Decodes a GTID event body.
pub fn gtid(data: &[u8], server_id: u32) -> Result<GtidEvent, DecodeError> {
    let mut c = Cursor::new(data);
    let seq = c.uint_le(8)?;
    let domain = c.uint_le(4)? as u32;
    let flags = c.take(1)?[0];
    Ok(GtidEvent {
        gtid: MariaDbGtid {
            domain,
            server_id,
            seq,
        },
        standalone: flags & FL_STANDALONE != 0,
        ddl: flags & FL_DDL != 0,
    })
}

/// Decodes a GTID_LIST event body into a GTID position.
pub fn gtid_list(data: &[u8]) -> Result<MariaDbGtidPos, DecodeError> {
    let mut c = Cursor::new(data);
    let count = c.uint_le(4)? as u32 & ((1 << 28) - 1);
    let mut pos = MariaDbGtidPos::new();
    for _ in 0..count {
        let domain = c.uint_le(4)? as u32;
        let server_id = c.uint_le(4)? as u32;
        let seq = c.uint_le(8)?;
        pos.advance(MariaDbGtid {
            domain,
            server_id,
            seq,
        });
    }
    Ok(pos)
}

/// Decodes a BINLOG_CHECKPOINT body: the file name.
pub fn binlog_checkpoint(data: &[u8]) -> Result<String, DecodeError> {
    let mut c = Cursor::new(data);
    let len = c.uint_le(4)? as u32 as usize;
    Ok(String::from_utf8_lossy(c.take(len)?).into_owned())
}

/// Largest uncompressed body we accept (MariaDB's own limit is max_allowed_packet, ≤ 1 GiB).
const MAX_UNCOMPRESSED: usize = 1 << 30;

/// Inflates MariaDB's compressed-body format: one header byte `0x80 | n`, an n-byte big-endian
/// uncompressed length, then a zlib stream.
pub fn uncompress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut c = Cursor::new(data);
    let header = c.take(1)?[0];
    if header & 0xe0 != 0x80 {
        return Err(DecodeError::Corrupt {
            what: format!("compressed event body starts with 0x{header:02x}"),
        });
    }
    let len_bytes = usize::from(header & 0x07);
    if !(1..=4).contains(&len_bytes) {
        return Err(DecodeError::Corrupt {
            what: format!("compressed event length takes {len_bytes} bytes"),
        });
    }
    let len = c
        .take(len_bytes)?
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if len > MAX_UNCOMPRESSED {
        return Err(DecodeError::Corrupt {
            what: format!("compressed event claims {len} bytes uncompressed"),
        });
    }
    let rest = &data[1 + len_bytes..];
    let mut out = Vec::with_capacity(len);
    flate2::read::ZlibDecoder::new(rest)
        .take(len as u64)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Corrupt {
            what: format!("compressed event body does not inflate: {e}"),
        })?;
    if out.len() != len {
        return Err(DecodeError::Corrupt {
            what: format!(
                "compressed event inflates to {} bytes, header says {len}",
                out.len()
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn decodes_a_gtid_event() {
        let mut data = 42u64.to_le_bytes().to_vec();
        data.extend(7u32.to_le_bytes());
        data.push(FL_STANDALONE | FL_DDL);
        let event = gtid(&data, 3).ok();
        assert_eq!(
            event,
            Some(GtidEvent {
                gtid: MariaDbGtid {
                    domain: 7,
                    server_id: 3,
                    seq: 42
                },
                standalone: true,
                ddl: true
            })
        );
        assert!(gtid(&data[..10], 3).is_err());
    }

    #[test]
    fn decodes_a_gtid_list() {
        let mut data = 2u32.to_le_bytes().to_vec();
        for (d, s, q) in [(0u32, 1u32, 10u64), (1, 2, 20)] {
            data.extend(d.to_le_bytes());
            data.extend(s.to_le_bytes());
            data.extend(q.to_le_bytes());
        }
        let pos = gtid_list(&data).map(|p| p.to_string()).ok();
        assert_eq!(pos.as_deref(), Some("0-1-10,1-2-20"));
        assert!(gtid_list(&data[..20]).is_err());
    }

    #[test]
    fn inflates_compressed_bodies() {
        let body = b"INSERT INTO t VALUES (1)".repeat(10);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        let compressed = z
            .write_all(&body)
            .and_then(|()| z.finish())
            .unwrap_or_default();
        let mut data = vec![0x82, 0, body.len() as u8];
        data.extend(compressed);
        assert_eq!(uncompress(&data).ok(), Some(body.clone()));
        data[2] = data[2].wrapping_add(1);
        assert!(uncompress(&data).is_err(), "a wrong length is caught");
        assert!(uncompress(&[0x12]).is_err());
    }
}
