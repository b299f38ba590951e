//! A transactional Kafka producer: change records and the position record go into one
//! transaction, so a read_committed consumer sees both or neither.
//!
//! librdkafka's transaction calls block; they run on the blocking pool. A commit runs in the
//! background while the pipeline goes on reading: records sent meanwhile wait in a bounded
//! buffer and open the next transaction once the commit is through, so the broker's commit
//! latency does not stall decoding. Sends do not block: when librdkafka's queue is full we
//! yield until its background thread has drained some.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::KafkaError;
use super::offsets::StoredPosition;
use crate::config::KafkaConfig;

/// Remembers the first failed delivery; the transaction it belongs to cannot commit.
#[derive(Default)]
pub struct DeliveryTracker {
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, message)) = result {
            use rdkafka::message::Message;
            if let Ok(mut first) = self.first_error.lock()
                && first.is_none()
            {
                *first = Some(format!("delivery to {} failed: {error}", message.topic()));
            }
        }
    }
}

impl DeliveryTracker {
    fn take(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|mut e| e.take())
    }
}

/// A record waiting for the commit in flight to finish.
struct Pending {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: OwnedHeaders,
}

/// A commit running on the blocking pool.
struct InFlight {
    handle: tokio::task::JoinHandle<rdkafka::error::KafkaResult<()>>,
    position: StoredPosition,
    records: usize,
    bytes: usize,
    started: Instant,
}

/// A transaction Kafka has committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The position stored with it.
    pub position: StoredPosition,
    /// Change records in it.
    pub records: usize,
    /// Bytes of those records (keys and values).
    pub bytes: usize,
    /// From the commit's start (flush included) until it was seen done.
    pub duration: Duration,
}

/// The transactional writer of one capture.
pub struct TransactionalWriter {
    producer: Arc<ThreadedProducer<DeliveryTracker>>,
    bootstrap: String,
    transactional_id: String,
    name: String,
    offsets_topic: String,
    timeout: Duration,
    open: bool,
    opened_at: Option<Instant>,
    records: usize,
    bytes: usize,
    in_flight: Option<InFlight>,
    pending: Vec<Pending>,
    pending_bytes: usize,
    pending_limit: usize,
    completed: Vec<Committed>,
}

/// The librdkafka settings every capture client shares (bootstrap, extra properties).
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap_servers);
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
}

impl TransactionalWriter {
    /// Creates the producer and registers its transactional id, which fences any older
    /// instance with the same name and aborts its open transaction.
    /// `pending_limit` bounds the bytes buffered while a commit is in flight.
    pub async fn start(
        config: &KafkaConfig,
        name: &str,
        pending_limit: usize,
    ) -> Result<Self, KafkaError> {
        let transactional_id = format!("rowferry-capture-{name}");
        let bootstrap = config.bootstrap_servers.clone();
        let mut client = client_config(config);
        let max_message = config.max_record_bytes.max(1_000_000) + 128 * 1024;
        client
            .set("transactional.id", &transactional_id)
            .set("enable.idempotence", "true")
            .set(
                "transaction.timeout.ms",
                config.transaction_timeout_ms.to_string(),
            )
            .set("message.max.bytes", max_message.to_string())
            // Java's default partitioner, so a key lands in the partition Debezium (and any
            // Java producer) would choose; librdkafka's own default hashes differently.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "16384")
            .set("queue.buffering.max.messages", "200000");
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        let producer: ThreadedProducer<DeliveryTracker> = client
            .create_with_context(DeliveryTracker::default())
            .map_err(|e| KafkaError::Fatal {
                bootstrap: bootstrap.clone(),
                detail: format!("cannot create the producer: {e}"),
            })?;
        let producer = Arc::new(producer);
        let timeout = Duration::from_millis(config.transaction_timeout_ms.clamp(10_000, 60_000));
        let init = Arc::clone(&producer);
        blocking(move || init.init_transactions(timeout))
            .await
            .map_err(|e| KafkaError::from_rdkafka(&e, &bootstrap, &transactional_id))?;
        Ok(Self {
            producer,
            bootstrap,
            transactional_id,
            name: name.to_owned(),
            offsets_topic: config.offsets_topic.clone(),
            timeout,
            open: false,
            opened_at: None,
            records: 0,
            bytes: 0,
            in_flight: None,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_limit,
            completed: Vec::new(),
        })
    }

    fn error(&self, error: &rdkafka::error::KafkaError) -> KafkaError {
        // After a fatal error every call fails with a generic "Fatal"; the cause (fenced or
        // not) is only kept by the client.
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return KafkaError::from_fatal(code, &reason, &self.bootstrap, &self.transactional_id);
        }
        KafkaError::from_rdkafka(error, &self.bootstrap, &self.transactional_id)
    }

    fn begin(&mut self) -> Result<(), KafkaError> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| self.error(&e))?;
            self.open = true;
            if self.opened_at.is_none() {
                self.opened_at = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Finishes the commit in flight: waits for it when `wait`, else only if it is done.
    pub async fn reap(&mut self, wait: bool) -> Result<(), KafkaError> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        if !wait && !in_flight.handle.is_finished() {
            self.in_flight = Some(in_flight);
            return Ok(());
        }
        let result = match in_flight.handle.await {
            Ok(result) => result,
            Err(_) => Err(rdkafka::error::KafkaError::Canceled),
        };
        tracing::debug!(
            records = in_flight.records,
            commit_ms = in_flight.started.elapsed().as_millis() as u64,
            "kafka transaction committed"
        );
        if let Err(e) = result {
            let error = self.error(&e);
            self.abort().await;
            return Err(error);
        }
        if let Some(detail) = self.producer.context().take() {
            self.abort().await;
            return Err(KafkaError::Transient {
                bootstrap: self.bootstrap.clone(),
                detail,
            });
        }
        self.completed.push(Committed {
            position: in_flight.position,
            records: in_flight.records,
            bytes: in_flight.bytes,
            duration: in_flight.started.elapsed(),
        });
        Ok(())
    }

    /// Commits finished since the last call: the position each stored and its record count.
    pub fn take_completed(&mut self) -> Vec<Committed> {
        std::mem::take(&mut self.completed)
    }

    /// Whether a commit is running.
    pub fn commit_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Opens the next transaction and sends what waited for the previous commit.
    async fn flush_pending(&mut self) -> Result<(), KafkaError> {
        self.begin()?;
        for record in std::mem::take(&mut self.pending) {
            self.produce(
                &record.topic,
                record.key.as_deref(),
                record.value.as_deref(),
                record.headers,
            )
            .await?;
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Records in the open transaction.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Bytes in the open transaction.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How long the open transaction has been open.
    pub fn open_for(&self) -> Option<Duration> {
        self.opened_at.map(|t| t.elapsed())
    }

    /// Whether records wait for a commit (sent in an open transaction, or buffered).
    pub fn is_open(&self) -> bool {
        self.open || !self.pending.is_empty()
    }

    /// Adds a record to the next commit: sent in the open transaction, or buffered while the
    /// previous commit is in flight.
    pub async fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
        self.reap(false).await?;
        if self.in_flight.is_some() {
            if self.pending_bytes + size <= self.pending_limit {
                self.pending.push(Pending {
                    topic: topic.to_owned(),
                    key: key.map(<[u8]>::to_vec),
                    value: value.map(<[u8]>::to_vec),
                    headers,
                });
                self.pending_bytes += size;
                self.records += 1;
                self.bytes += size;
                self.opened_at.get_or_insert_with(Instant::now);
                return Ok(());
            }
            self.reap(true).await?;
        }
        if !self.pending.is_empty() {
            self.flush_pending().await?;
        }
        self.begin()?;
        self.produce(topic, key, value, headers).await?;
        self.records += 1;
        self.bytes += size;
        Ok(())
    }

    async fn produce(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(self.error(&e)),
            }
        }
        Ok(())
    }

    /// Writes `position` and starts committing the transaction (opening one if nothing was
    /// sent, so a quiet source still moves its stored position). The commit finishes in the
    /// background; [`reap`](Self::reap) and [`take_completed`](Self::take_completed) report it.
    pub async fn commit(&mut self, position: &StoredPosition) -> Result<(), KafkaError> {
        self.reap(true).await?;
        self.flush_pending().await?;
        let value = serde_json::to_vec(position).map_err(|e| KafkaError::Fatal {
            bootstrap: self.bootstrap.clone(),
            detail: format!("cannot encode the position: {e}"),
        })?;
        let topic = self.offsets_topic.clone();
        let key = self.name.clone().into_bytes();
        self.produce(&topic, Some(&key), Some(&value), OwnedHeaders::new())
            .await?;
        let producer = Arc::clone(&self.producer);
        let timeout = self.timeout;
        self.in_flight = Some(InFlight {
            handle: tokio::task::spawn_blocking(move || {
                // rdkafka's commit_transaction first flushes, polling in steps of up to 100 ms
                // for delivery reports that the producer's own thread serves instead: every
                // commit took 100 ms. Waiting for them here in 1 ms steps makes that flush
                // return at once.
                let deadline = Instant::now() + timeout;
                while producer.in_flight_count() > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                producer.commit_transaction(deadline.saturating_duration_since(Instant::now()))
            }),
            position: position.clone(),
            records: self.records,
            bytes: self.bytes,
            started: Instant::now(),
        });
        self.open = false;
        self.opened_at = None;
        self.records = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Aborts the open transaction, if any (its records are never seen by read_committed
    /// consumers).
    pub async fn abort(&mut self) {
        if let Some(in_flight) = self.in_flight.take() {
            let _ = in_flight.handle.await;
        }
        let producer = Arc::clone(&self.producer);
        let timeout = self.timeout;
        if let Err(e) = blocking(move || producer.abort_transaction(timeout)).await {
            tracing::debug!(error = %e, "abort_transaction");
        }
        self.producer.context().take();
        self.open = false;
        self.opened_at = None;
        self.records = 0;
        self.bytes = 0;
        self.pending.clear();
        self.pending_bytes = 0;
    }
}

/// Runs a blocking librdkafka call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rdkafka::error::KafkaResult<T> + Send + 'static,
) -> rdkafka::error::KafkaResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(rdkafka::error::KafkaError::Canceled).inspect_err(|_| {
            tracing::error!(error = %e, "blocking Kafka call panicked or was cancelled");
        }),
    }
}
