//! Snapshot rows as `op = r` records: what the initial and the incremental snapshot share.

use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};
use rowferry_shared::codec::{Encoder, ValueFormat};
use rowferry_shared::event::{ChangeEvent, Row, RowChange, SnapshotMarker, SourceInfo};
use rowferry_shared::position::Flavor;

use super::tables::SnapshotTable;
use crate::config::CaptureConfig;
use crate::kafka::writer::TransactionalWriter;
use crate::pipeline::{CaptureError, Outgoing, send_record};

/// Where the rows of one chunk were read.
pub struct ReadAt<'a> {
    pub flavor: Flavor,
    /// Binlog file and position of the snapshot point (or high watermark).
    pub file: &'a str,
    pub pos: u64,
}

/// Encodes `row` of `table` as a snapshot record and sends it into the open transaction.
#[allow(clippy::too_many_arguments)]
pub async fn send_read(
    writer: &mut TransactionalWriter,
    config: &CaptureConfig,
    encoder: &mut Encoder,
    format: ValueFormat,
    table: &SnapshotTable,
    at: &ReadAt<'_>,
    marker: SnapshotMarker,
    row: Row,
) -> Result<ChangeEvent, CaptureError> {
    let now_us = now_us();
    let event = ChangeEvent {
        schema: Arc::clone(&table.schema),
        change: RowChange::Read { after: row },
        source: SourceInfo {
            flavor: at.flavor,
            name: config.topic_prefix().to_owned(),
            ts_us: now_us,
            snapshot: marker,
            server_id: 0,
            gtid: None,
            file: at.file.to_owned(),
            pos: at.pos,
            row: 0,
            thread: None,
            query: None,
        },
        transaction: None,
        ts_us: now_us,
    };
    let record = encoder
        .encode(&event)
        .map_err(|e| CaptureError::Codec(format!("{}: {e}", event.schema.id)))?;
    let position = format!("{}:{}", at.file, at.pos);
    let headers = OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: "content-type",
            value: Some(format.content_type()),
        })
        .insert(Header {
            key: "rowferry.source.position",
            value: Some(position.as_str()),
        });
    send_record(
        writer,
        config,
        encoder,
        Outgoing {
            topic: &table.topic,
            event: &event,
            key: record.key.as_deref(),
            value: record.value,
            headers,
        },
    )
    .await?;
    Ok(event)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
