//! Seeking: where apply continues from, resolved against Kafka and stored in the target's
//! offsets table — the only place apply reads its offsets from, so a seek is exactly-once
//! safe: an instance still writing elsewhere finds its conditional offset update refused, and
//! re-reads the offset from there.

use std::collections::BTreeSet;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rowferry_shared::position::{Gtid, GtidSet};

use crate::config::ApplyConfig;
use crate::target::offsets::OffsetsTable;
use crate::target::{TargetError, TargetOptions};

/// How long one Kafka metadata, watermark or offsets-for-times request may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to continue from.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Explicit offsets for some partitions.
    Offsets(Vec<PartitionOffset>),
    /// The earliest retained offset of every partition.
    Earliest,
    /// The end of every partition.
    Latest,
    /// The first record at or after this time (ms since the epoch) in every partition.
    Timestamp(i64),
    /// The first record whose source transaction is not in the set, in every partition.
    SourceGtids(GtidSet),
}

/// The next offset to apply in one partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to apply.
    pub offset: i64,
}

/// Why a seek was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SeekError {
    /// The request names something that does not exist or does not fit.
    #[error("{0}")]
    Invalid(String),
    /// An offset outside what the partition holds.
    #[error("{0}")]
    OutOfRange(String),
    /// Kafka could not answer.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The offsets table could not be written.
    #[error("target: {0}")]
    Target(#[from] TargetError),
}

/// The partitions apply consumes, with their earliest and end offsets.
struct Partitions {
    consumer: BaseConsumer,
    list: Vec<(String, i32, i64, i64)>,
}

fn kafka(context: &str, error: impl std::fmt::Display) -> SeekError {
    SeekError::Kafka(format!("{context}: {error}"))
}

impl Partitions {
    /// Every partition of the topics `config` subscribes to (by list or pattern).
    fn read(config: &ApplyConfig) -> Result<Self, SeekError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.kafka.bootstrap_servers)
            .set("group.id", config.group_id())
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true");
        for (key, value) in &config.kafka.properties {
            client.set(key, value);
        }
        let consumer: BaseConsumer = client
            .create()
            .map_err(|e| kafka("creating a consumer", e))?;
        let metadata = consumer
            .fetch_metadata(None, KAFKA_TIMEOUT)
            .map_err(|e| kafka("reading topic metadata", e))?;
        let pattern = match &config.kafka.topic_pattern {
            Some(p) => Some(
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| SeekError::Invalid(format!("kafka.topic_pattern: {e}")))?,
            ),
            None => None,
        };
        let mut list = Vec::new();
        for topic in metadata.topics() {
            let wanted = match &pattern {
                Some(p) => p.is_match(topic.name()),
                None => config.kafka.topics.iter().any(|t| t == topic.name()),
            };
            if !wanted || topic.error().is_some() {
                continue;
            }
            for partition in topic.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic.name(), partition.id(), KAFKA_TIMEOUT)
                    .map_err(|e| {
                        kafka(
                            &format!("reading the offsets of {}/{}", topic.name(), partition.id()),
                            e,
                        )
                    })?;
                list.push((topic.name().to_owned(), partition.id(), low, high));
            }
        }
        if list.is_empty() {
            return Err(SeekError::Invalid(
                "no topic apply consumes exists yet (kafka.topics / kafka.topic_pattern): there \
                 is nothing to seek in"
                    .into(),
            ));
        }
        list.sort();
        Ok(Self { consumer, list })
    }

    fn at(&self, pick: impl Fn(i64, i64) -> i64) -> Vec<PartitionOffset> {
        self.list
            .iter()
            .map(|(topic, partition, low, high)| PartitionOffset {
                topic: topic.clone(),
                partition: *partition,
                offset: pick(*low, *high),
            })
            .collect()
    }
}

/// Resolves `target` to one offset per partition it moves, checked against Kafka: the
/// partitions must be ones apply consumes, and explicit offsets within what they hold.
pub async fn resolve(
    config: &ApplyConfig,
    target: Target,
) -> Result<Vec<PartitionOffset>, SeekError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || resolve_blocking(&config, target))
        .await
        .map_err(|e| SeekError::Kafka(format!("seek task: {e}")))?
}

fn resolve_blocking(
    config: &ApplyConfig,
    target: Target,
) -> Result<Vec<PartitionOffset>, SeekError> {
    let partitions = Partitions::read(config)?;
    match target {
        Target::Earliest => Ok(partitions.at(|low, _| low)),
        Target::Latest => Ok(partitions.at(|_, high| high)),
        Target::Offsets(wanted) => {
            if wanted.is_empty() {
                return Err(SeekError::Invalid(
                    "offsets: give at least one {topic, partition, offset}".into(),
                ));
            }
            let mut seen = BTreeSet::new();
            for w in &wanted {
                if !seen.insert((w.topic.clone(), w.partition)) {
                    return Err(SeekError::Invalid(format!(
                        "offsets: {}/{} is given twice",
                        w.topic, w.partition
                    )));
                }
                let Some((_, _, low, high)) = partitions
                    .list
                    .iter()
                    .find(|(t, p, _, _)| *t == w.topic && *p == w.partition)
                else {
                    return Err(SeekError::Invalid(format!(
                        "offsets: {}/{} is not a partition apply consumes; its partitions are {}",
                        w.topic,
                        w.partition,
                        partitions
                            .list
                            .iter()
                            .map(|(t, p, _, _)| format!("{t}/{p}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                if w.offset < *low {
                    return Err(SeekError::OutOfRange(format!(
                        "offset {} of {}/{} is before its earliest retained record ({low}); \
                         retention has deleted the records before it",
                        w.offset, w.topic, w.partition
                    )));
                }
                if w.offset > *high {
                    return Err(SeekError::OutOfRange(format!(
                        "offset {} of {}/{} is beyond its end ({high}); the largest offset \
                         apply can continue from is the end",
                        w.offset, w.topic, w.partition
                    )));
                }
            }
            Ok(wanted)
        }
        Target::Timestamp(ms) => {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, _, _) in &partitions.list {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(ms))
                    .map_err(|e| kafka("offsets for times", e))?;
            }
            let found = partitions
                .consumer
                .offsets_for_times(tpl, KAFKA_TIMEOUT)
                .map_err(|e| kafka("offsets for times", e))?;
            Ok(partitions
                .list
                .iter()
                .map(|(topic, partition, _, high)| {
                    let offset = match found.find_partition(topic, *partition).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        // No record at or after the time: the end.
                        _ => *high,
                    };
                    PartitionOffset {
                        topic: topic.clone(),
                        partition: *partition,
                        offset,
                    }
                })
                .collect())
        }
        Target::SourceGtids(set) => partitions
            .list
            .iter()
            .map(|(topic, partition, low, high)| {
                let offset =
                    first_not_in(&partitions.consumer, topic, *partition, *low, *high, &set)?;
                Ok(PartitionOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    offset,
                })
            })
            .collect(),
    }
}

/// The offset of the first record of `topic`/`partition` whose source GTID is not in `set`
/// (the end when every record's is): read from the earliest retained record on.
fn first_not_in(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    low: i64,
    high: i64,
    set: &GtidSet,
) -> Result<i64, SeekError> {
    if low >= high {
        return Ok(high);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))
        .map_err(|e| kafka("assigning for the GTID scan", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| kafka("assigning for the GTID scan", e))?;
    loop {
        let message = match consumer.poll(KAFKA_TIMEOUT) {
            None => {
                return Err(SeekError::Kafka(format!(
                    "no record of {topic}/{partition} arrived within {KAFKA_TIMEOUT:?}"
                )));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(high),
            Some(Err(e)) => return Err(kafka("reading for the GTID scan", e)),
            Some(Ok(message)) => message,
        };
        let Some(gtid) = source_gtid(&message) else {
            // Records without a source GTID (snapshot reads, sources without GTIDs) are not
            // part of any set: the first one is where applying must continue.
            return Ok(message.offset());
        };
        let contained = set.contains(&gtid).map_err(|e| {
            SeekError::Invalid(format!(
                "source_gtid_set: {e}; the records of {topic} carry GTIDs like {gtid}"
            ))
        })?;
        if !contained {
            return Ok(message.offset());
        }
        if message.offset() + 1 >= high {
            return Ok(high);
        }
    }
}

/// The source GTID of a record: rowferry's header, else the value's `source.gtid`
/// (Debezium's own records).
fn source_gtid(message: &rdkafka::message::BorrowedMessage<'_>) -> Option<Gtid> {
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if header.key == "rowferry.source.gtid" {
                return std::str::from_utf8(header.value?).ok()?.parse().ok();
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        payload: Option<Payload>,
        source: Option<Source>,
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        source: Option<Source>,
    }
    #[derive(serde::Deserialize)]
    struct Source {
        gtid: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(message.payload()?).ok()?;
    let source = envelope
        .source
        .or(envelope.payload.and_then(|p| p.source))?;
    source.gtid?.parse().ok()
}

/// Stores `offsets` in the offsets table, in one transaction.
pub async fn store(
    target: &TargetOptions,
    table: &OffsetsTable,
    offsets: &[PartitionOffset],
) -> Result<(), SeekError> {
    let mut conn = target.connect().await?;
    table.ensure(&mut conn).await?;
    let context = || format!("storing the sought offsets in {}", table.name());
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .map_err(|e| TargetError::sql(context(), e))?;
    for o in offsets {
        tx.query_drop(table.set_sql(&o.topic, o.partition, o.offset))
            .await
            .map_err(|e| TargetError::sql(context(), e))?;
    }
    tx.commit()
        .await
        .map_err(|e| TargetError::sql(context(), e))?;
    let _ = conn.disconnect().await;
    Ok(())
}
