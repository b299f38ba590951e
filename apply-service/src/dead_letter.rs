//! The dead-letter topic: poison records with the reason in their headers.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::record::Record;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Sends poison records to one topic.
pub struct DeadLetter {
    producer: FutureProducer,
    topic: String,
    apply_name: String,
}

impl DeadLetter {
    /// A producer for `topic`.
    pub fn new(
        bootstrap: &str,
        properties: &std::collections::BTreeMap<String, String>,
        topic: String,
        apply_name: String,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000");
        for (key, value) in properties {
            if !key.starts_with("group.") && !key.starts_with("session.") {
                config.set(key, value);
            }
        }
        Ok(Self {
            producer: config.create()?,
            topic,
            apply_name,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends `record` with its original key, value and headers, plus
    /// `rowferry.dlq.{reason,topic,partition,offset,apply}`; returns once the broker has it.
    pub async fn send(
        &self,
        record: &Record,
        reason: &str,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = &record.headers {
            for header in original.iter() {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        for (key, value) in [
            ("rowferry.dlq.reason", reason),
            ("rowferry.dlq.topic", &*record.topic),
            ("rowferry.dlq.partition", partition.as_str()),
            ("rowferry.dlq.offset", offset.as_str()),
            ("rowferry.dlq.apply", self.apply_name.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut out: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = record.key() {
            out = out.key(key);
        }
        if let Some(value) = record.value.as_deref() {
            out = out.payload(value);
        }
        self.producer
            .send(out, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }
}
