//! Reading what capture wrote, the way a downstream consumer would: read_committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One record as a consumer sees it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` for tombstones and key-only records).
    pub value: Option<Vec<u8>>,
    /// Headers by name.
    pub headers: HashMap<String, Option<Vec<u8>>>,
    /// Record timestamp (producer create time), ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// The value as JSON (panics in tests only through the returned error).
    pub fn json(&self) -> Result<serde_json::Value> {
        let value = self.value.as_ref().context("tombstone has no value")?;
        serde_json::from_slice(value).context("value is not JSON")
    }

    /// The key as JSON.
    pub fn key_json(&self) -> Result<serde_json::Value> {
        let key = self.key.as_ref().context("record has no key")?;
        serde_json::from_slice(key).context("key is not JSON")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Reads every committed record of `topic` (all partitions) up to its end, with
/// `isolation.level=read_committed`. A missing topic reads as empty.
pub fn read_committed(bootstrap: &str, topic: &str) -> Result<Vec<Record>> {
    let consumer: BaseConsumer<rowferry_capture::kafka::QuietContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("rowferry-test-reader-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("allow.auto.create.topics", "false")
        .create_with_context(rowferry_capture::kafka::QuietContext)
        .context("cannot create a Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("cannot read topic metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut done: HashMap<i32, bool> = partitions.iter().map(|&p| (p, false)).collect();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.values().any(|d| !d) {
        if Instant::now() > deadline {
            bail!("reading {topic} did not reach its end in 60 s");
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                done.insert(p, true);
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                let mut headers = HashMap::new();
                if let Some(hs) = m.headers() {
                    for h in hs.iter() {
                        headers.insert(h.key.to_owned(), h.value.map(<[u8]>::to_vec));
                    }
                }
                records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                    timestamp_ms: m.timestamp().to_millis(),
                });
            }
        }
    }
    Ok(records)
}

/// Deletes `topics` (tests that write much clean up after themselves).
pub async fn delete_topics(bootstrap: &str, topics: &[String]) -> Result<()> {
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    admin
        .delete_topics(&names, &rdkafka::admin::AdminOptions::new())
        .await?;
    Ok(())
}
