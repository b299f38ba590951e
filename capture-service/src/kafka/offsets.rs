//! Committed positions: one record per capture name in a compacted topic, written inside the
//! same Kafka transaction as the change records it covers, read back with read_committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::KafkaError;

/// Where a capture has delivered up to.
///
/// Without `partial`, every source transaction before `file:pos` (and every GTID in `gtids`)
/// is in Kafka. With `partial`, the transaction starting at `partial.file:partial.pos` has its
/// first `partial.rows_done` row changes in Kafka too (it was split for size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPosition {
    /// Format version of this record.
    pub version: u32,
    /// `mysql` or `mariadb`.
    pub flavor: String,
    /// The source's `server_id` when the position was written (file positions only make sense
    /// on that server).
    pub source_server_id: u32,
    /// Binlog file where the next transaction starts.
    pub file: String,
    /// Position in that file.
    pub pos: u64,
    /// GTIDs fully delivered, when the source uses GTIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtids: Option<String>,
    /// A transaction delivered in part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialTransaction>,
    /// Commit time (ms since the epoch) of the last source event covered.
    pub source_ts_ms: i64,
    /// An initial snapshot in progress, or finished but not yet passed by streaming (which
    /// then skips the changes the snapshot already holds). Written as format version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<std::sync::Arc<crate::snapshot::progress::SnapshotProgress>>,
    /// An incremental snapshot in progress (format version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<std::sync::Arc<crate::snapshot::incremental::IncrementalProgress>>,
}

impl StoredPosition {
    /// The position at a transaction boundary of a source (`flavor`, `server_id`), with
    /// nothing in progress.
    pub fn boundary(
        flavor: impl ToString,
        source_server_id: u32,
        file: String,
        pos: u64,
        gtids: Option<String>,
    ) -> Self {
        Self {
            version: POSITION_VERSION,
            flavor: flavor.to_string(),
            source_server_id,
            file,
            pos,
            gtids,
            partial: None,
            source_ts_ms: 0,
            snapshot: None,
            incremental: None,
        }
    }
}

/// A source transaction split across Kafka transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialTransaction {
    /// Its GTID, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// File of its first event.
    pub file: String,
    /// Position of its first event.
    pub pos: u64,
    /// Row changes of it already in Kafka.
    pub rows_done: u64,
}

/// Version of a position that carries a snapshot (older builds must not resume from it: they
/// would stream without finishing or honouring the snapshot).
pub const SNAPSHOT_POSITION_VERSION: u32 = 2;

/// Version written by this build for a position without a snapshot.
pub const POSITION_VERSION: u32 = 1;

/// Makes sure the offsets topic exists, compacted.
pub async fn ensure_topic(config: &ClientConfig, topic: &str) -> Result<(), KafkaError> {
    let bootstrap = config
        .get("bootstrap.servers")
        .unwrap_or_default()
        .to_owned();
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| KafkaError::Fatal {
            bootstrap: bootstrap.clone(),
            detail: e.to_string(),
        })?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("min.compaction.lag.ms", "60000");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| KafkaError::Transient {
                bootstrap: bootstrap.clone(),
                detail: format!("cannot create topic {topic}: {e}"),
            })?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::Transient {
                    bootstrap,
                    detail: format!("cannot create topic {name}: {code}"),
                });
            }
        }
    }
    Ok(())
}

/// Reads the last committed position of `name`, skipping aborted transactions.
///
/// Call it after `init_transactions`, which aborts whatever a previous incarnation left open,
/// so that the read_committed end of the topic is reachable.
pub fn read_position(
    config: &ClientConfig,
    topic: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<StoredPosition>, KafkaError> {
    let bootstrap = config
        .get("bootstrap.servers")
        .unwrap_or_default()
        .to_owned();
    let fail = |detail: String| KafkaError::Transient {
        bootstrap: bootstrap.clone(),
        detail,
    };
    let mut config = config.clone();
    config
        .set("group.id", format!("rowferry-capture-offsets-{name}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<super::QuietContext> = config
        .create_with_context(super::QuietContext)
        .map_err(|e| fail(e.to_string()))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| fail(format!("cannot read metadata of {topic}: {e}")))?;
    if let Some(error) = metadata.topics().iter().find_map(|t| t.error()) {
        return Err(fail(format!("metadata of {topic}: {error:?}")));
    }
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        // Never read "no partitions" as "no stored position": that would start over.
        return Err(fail(format!("{topic} has no partitions yet")));
    }
    // With read_committed, "end of partition" is reported at the first open transaction
    // (another capture sharing the topic may be committing): read up to the high watermark.
    let mut high: HashMap<i32, i64> = HashMap::new();
    for &partition in &partitions {
        let (_, hw) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| fail(format!("watermarks of {topic}: {e}")))?;
        high.insert(partition, hw);
    }
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| fail(e.to_string()))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| fail(e.to_string()))?;
    let mut at_end: HashMap<i32, bool> = partitions
        .iter()
        .map(|&p| (p, high.get(&p).is_some_and(|&hw| hw <= 0)))
        .collect();
    let mut last: Option<Option<Vec<u8>>> = None;
    let deadline = Instant::now() + timeout;
    while at_end.values().any(|done| !done) {
        if Instant::now() > deadline {
            return Err(fail(format!(
                "reading the stored position from {topic} did not finish in {timeout:?}"
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                let reached = consumer
                    .position()
                    .ok()
                    .and_then(|list| {
                        list.find_partition(topic, partition)
                            .and_then(|p| p.offset().to_raw())
                    })
                    .is_some_and(|offset| offset >= high.get(&partition).copied().unwrap_or(0));
                if reached {
                    at_end.insert(partition, true);
                }
            }
            Some(Err(e)) => return Err(fail(format!("reading {topic}: {e}"))),
            Some(Ok(message)) if message.key() == Some(name.as_bytes()) => {
                last = Some(message.payload().map(<[u8]>::to_vec));
            }
            Some(Ok(_)) => {}
        }
    }
    match last.flatten() {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KafkaError::Fatal {
                bootstrap,
                detail: format!(
                    "the stored position of {name} in {topic} is not readable ({e}); \
                     seek to a position explicitly to replace it"
                ),
            }),
    }
}
