//! The local broker is a real Kafka with working transactions: a read_committed consumer sees
//! exactly the records of committed transactions, and never those of an aborted one.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rowferry_tests::{Stack, unique_name};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn create_topic(stack: &Stack, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating topic {name}: {code}"))?;
    }
    Ok(())
}

/// Writes three transactions: c1..c3 committed, a1..a2 aborted, c4 committed.
///
/// librdkafka's transaction calls block, so the whole producer runs on a blocking thread.
fn produce_transactions(bootstrap: &str, topic: &str, transactional_id: &str) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .create()?;
    producer.init_transactions(TIMEOUT)?;
    let send = |value: &str| -> Result<()> {
        producer
            .send(BaseRecord::to(topic).key("key").payload(value))
            .map_err(|(error, _)| error)?;
        Ok(())
    };

    producer.begin_transaction()?;
    for value in ["c1", "c2", "c3"] {
        send(value)?;
    }
    producer.commit_transaction(TIMEOUT)?;

    producer.begin_transaction()?;
    for value in ["a1", "a2"] {
        send(value)?;
    }
    // Flush first so the aborted records really reach the partition log before the abort.
    producer.flush(TIMEOUT)?;
    producer.abort_transaction(TIMEOUT)?;

    producer.begin_transaction()?;
    send("c4")?;
    producer.commit_transaction(TIMEOUT)?;
    Ok(())
}

/// Reads partition 0 from the beginning until `last` arrives; returns every value read.
async fn read_until(
    stack: &Stack,
    topic: &str,
    isolation: &str,
    last: &str,
) -> Result<Vec<String>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", unique_name("stack_kafka_reader"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;

    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .with_context(|| {
                format!("{isolation}: '{last}' did not arrive in 30 s; read {values:?}")
            })??;
        let Some(payload) = message.payload() else {
            bail!("record without a value at offset {}", message.offset());
        };
        let value = String::from_utf8(payload.to_vec())?;
        values.push(value.clone());
        if value == last {
            return Ok(values);
        }
    }
}

#[tokio::test]
async fn read_committed_sees_exactly_the_committed_transactions() -> Result<()> {
    let stack = Stack::from_env()?;
    let topic = unique_name("stack_kafka_txn");
    create_topic(&stack, &topic).await?;

    let (bootstrap, producer_topic) = (stack.kafka_bootstrap.clone(), topic.clone());
    let transactional_id = unique_name("stack_kafka_producer");
    tokio::task::spawn_blocking(move || {
        produce_transactions(&bootstrap, &producer_topic, &transactional_id)
    })
    .await??;

    let committed = read_until(&stack, &topic, "read_committed", "c4").await?;
    assert_eq!(committed, ["c1", "c2", "c3", "c4"]);

    // The aborted records are in the log: a read_uncommitted reader sees them.
    let everything = read_until(&stack, &topic, "read_uncommitted", "c4").await?;
    assert_eq!(everything, ["c1", "c2", "c3", "a1", "a2", "c4"]);
    Ok(())
}
