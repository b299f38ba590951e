//! The Kafka side: a consumer-group member on its own thread that hands each assigned
//! partition's records to that partition's worker.
//!
//! On assignment it reads the partitions' next offsets from the target's offsets table and
//! assigns the partitions at exactly those offsets (Kafka's committed offsets are only for
//! lag monitoring); on revocation it stops the partitions' workers and waits for the batch in
//! flight. A worker that cannot keep up gets its partition paused instead of blocking the
//! others.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use rowferry_shared::lifecycle::RunControl;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{PoisonPolicy, StartAt};
use crate::record::{Keep, Record};
use crate::status::{State, now_ms, partition_key};
use crate::worker::{Input, Report, Shared, Worker};

/// Records a worker may have waiting before its partition is paused.
const WORKER_QUEUE: usize = 2048;
/// How long a revocation waits for a worker's batch in flight.
const REVOKE_WAIT: Duration = Duration::from_secs(30);
/// How often librdkafka reports its statistics (the partitions' end offsets, for lag).
const STATISTICS_INTERVAL_MS: &str = "1000";

/// Why consuming stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The consumer could not be created or subscribed.
    #[error("Kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
    /// A worker failed for good.
    #[error("{0}")]
    Failed(String),
}

struct WorkerHandle {
    sender: mpsc::Sender<Input>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// Inputs that did not fit the worker's queue; the partition is paused while any wait.
    backlog: VecDeque<Input>,
    /// The offset after the last record handed to the worker (for lag).
    dispatched_next: Option<i64>,
}

type PartitionId = (Arc<str>, i32);

/// The consumer's context: rebalance handling and the partitions' workers.
pub struct ApplyContext {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    cancel: CancellationToken,
    workers: Mutex<HashMap<PartitionId, WorkerHandle>>,
    /// Paused on request: partitions assigned meanwhile stay paused, without workers, until
    /// the resume restarts them at their stored offsets.
    paused: AtomicBool,
    /// Each partition's end and lag when the pause began (`topic/partition` keys): the
    /// baseline of the lag reported while paused.
    paused_marks: Mutex<HashMap<String, (i64, i64)>>,
}

impl ClientContext for ApplyContext {
    // The statistics carry each partition's last stable offset (the end a read_committed
    // consumer can reach), its fetch position and the records fetched but not yet polled:
    // with what the workers hold, that is the lag.
    fn stats(&self, statistics: Statistics) {
        let ours: Vec<(PartitionId, Option<i64>)> = self
            .workers()
            .iter()
            .map(|(id, w)| (id.clone(), w.dispatched_next))
            .collect();
        let marks: Vec<(String, i64, i64, i64, Option<i64>)> = ours
            .iter()
            .filter_map(|((topic, partition), dispatched)| {
                let p = statistics.topics.get(&**topic)?.partitions.get(partition)?;
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                (end >= 0).then(|| {
                    (
                        partition_key(topic, *partition),
                        end,
                        p.next_offset,
                        p.fetchq_cnt,
                        *dispatched,
                    )
                })
            })
            .collect();
        let now = now_ms();
        self.shared.status.send_if_modified(|s| {
            let mut changed = false;
            for (key, end, fetch_next, fetched, dispatched) in &marks {
                if let Some(entry) = s.partitions.get_mut(key) {
                    let lag =
                        partition_lag(*end, *fetch_next, *fetched, *dispatched, entry.next_offset);
                    changed |= entry.set_lag(*end, lag, now);
                }
            }
            changed
        });
    }
}

/// Records of a partition not yet applied: those after the fetch position up to `end`, those
/// fetched but not yet polled, and those handed to the worker but not yet committed.
///
/// Counted this way rather than `end − applied` because a transactional topic's commit
/// markers take offsets too: a caught-up apply's stored offset stays one marker short of
/// the end, while the fetch position moves past it.
fn partition_lag(
    end: i64,
    fetch_next: i64,
    fetched: i64,
    dispatched_next: Option<i64>,
    applied_next: Option<i64>,
) -> Option<i64> {
    let applied_next = applied_next?;
    if fetch_next < 0 {
        // Not fetching yet: nothing is in flight.
        return Some((end - applied_next).max(0));
    }
    let in_worker = dispatched_next.map_or(0, |d| (d - applied_next).max(0));
    Some((end - fetch_next).max(0) + fetched.max(0) + in_worker)
}

impl ConsumerContext for ApplyContext {
    // The whole rebalance is ours: an assignment is made once, with every partition at its
    // stored offset (so `auto.offset.reset = error` only fires for a real gap), and a
    // revocation waits for the partitions' batches in flight.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let partitions: Vec<PartitionId> = tpl
            .elements()
            .iter()
            .map(|e| (Arc::from(e.topic()), e.partition()))
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(partitions = partitions.len(), "partitions assigned");
                if let Err(error) = self.assign_at_stored_offsets(consumer, &partitions, tpl) {
                    tracing::error!(%error, "cannot assign partitions at their stored offsets");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = partitions.len(), "partitions revoked");
                self.stop_workers(Some(&partitions), true);
                if let Err(error) = consumer.unassign() {
                    tracing::warn!(%error, "unassign failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                let _ = consumer.unassign();
            }
        }
    }
}

impl ApplyContext {
    /// The ends and lags recorded when the pause began.
    fn paused_marks(&self) -> HashMap<String, (i64, i64)> {
        self.paused_marks
            .lock()
            .map(|marks| marks.clone())
            .unwrap_or_default()
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<PartitionId, WorkerHandle>> {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the stored offsets (retrying while the target is unreachable), assigns the
    /// partitions there and starts their workers.
    fn assign_at_stored_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &[PartitionId],
        tpl: &mut TopicPartitionList,
    ) -> Result<(), KafkaError> {
        let mut stored = HashMap::new();
        for (topic, partition) in assigned {
            if let Some(previous) = self.read_offset(topic, *partition) {
                stored.insert((topic.clone(), *partition), previous);
            } else {
                return Ok(()); // cancelled
            }
        }
        for (topic, partition) in assigned {
            let offset = match stored.get(&(topic.clone(), *partition)).copied().flatten() {
                Some(next) => Offset::Offset(next),
                None => match self.shared.config.kafka.start {
                    StartAt::Earliest => Offset::Beginning,
                    StartAt::Latest => Offset::End,
                },
            };
            tpl.set_partition_offset(topic, *partition, offset)?;
        }
        consumer.assign(tpl)?;
        if self.paused.load(Ordering::SeqCst) {
            consumer.pause(tpl)?;
            return Ok(());
        }
        for (topic, partition) in assigned {
            let previous = stored.get(&(topic.clone(), *partition)).copied().flatten();
            self.start_worker(topic.clone(), *partition, previous);
        }
        Ok(())
    }

    /// The stored next offset of a partition (`Some(None)`: none stored), retrying transient
    /// errors; `None` when cancelled.
    fn read_offset(&self, topic: &str, partition: i32) -> Option<Option<i64>> {
        let mut delay = Duration::from_millis(self.shared.config.target.retry_initial_ms.max(10));
        loop {
            let attempt = self.runtime.block_on(async {
                let mut conn = self.shared.target.connect().await?;
                let stored = self.shared.offsets.read(&mut conn, topic, partition).await;
                let _ = conn.disconnect().await;
                stored
            });
            match attempt {
                Ok(stored) => {
                    self.shared.status.send_modify(|s| {
                        if s.state == State::Retrying {
                            s.state = State::Running;
                            s.error = None;
                        }
                    });
                    return Some(stored.map(|s| s.next_offset));
                }
                Err(error) => {
                    tracing::warn!(%error, topic, partition, "cannot read the stored offset; retrying");
                    if error.is_transient() {
                        self.shared.status.send_modify(|s| {
                            s.state = State::Retrying;
                            s.error = Some(format!("reading stored offsets: {error}"));
                        });
                        std::thread::sleep(delay);
                        let max =
                            Duration::from_millis(self.shared.config.target.retry_max_ms.max(10));
                        delay = (delay * 2).min(max);
                    } else {
                        let _ = self.shared.reports.send(Report::Failed {
                            error: format!("reading the offsets table: {error}"),
                        });
                        return None;
                    }
                    if self.cancel.is_cancelled() {
                        return None;
                    }
                }
            }
        }
    }

    fn start_worker(&self, topic: Arc<str>, partition: i32, previous: Option<i64>) {
        let (sender, receiver) = mpsc::channel(WORKER_QUEUE);
        let cancel = self.cancel.child_token();
        let worker = Worker::new(
            self.shared.clone(),
            topic.clone(),
            partition,
            previous,
            receiver,
            cancel.clone(),
        );
        let task = self.runtime.spawn(worker.run());
        self.workers().insert(
            (topic, partition),
            WorkerHandle {
                sender,
                cancel,
                task,
                backlog: VecDeque::new(),
                dispatched_next: None,
            },
        );
    }

    /// Stops the workers of `partitions` (all when `None`) and waits for their batches in
    /// flight; `forget` also drops the partitions from the status (they are no longer ours).
    fn stop_workers(&self, partitions: Option<&[PartitionId]>, forget: bool) {
        let stopped: Vec<(PartitionId, WorkerHandle)> = {
            let mut workers = self.workers();
            let keys: Vec<PartitionId> = match partitions {
                Some(list) => list.to_vec(),
                None => workers.keys().cloned().collect(),
            };
            keys.into_iter()
                .filter_map(|k| workers.remove(&k).map(|w| (k, w)))
                .collect()
        };
        for (_, worker) in &stopped {
            worker.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + REVOKE_WAIT;
        for ((topic, partition), worker) in stopped {
            let done = self
                .runtime
                .block_on(async { tokio::time::timeout_at(deadline, worker.task).await });
            if done.is_err() {
                tracing::warn!(%topic, partition, "worker did not stop in time");
            }
            if forget {
                self.shared.status.send_modify(|s| {
                    s.partitions.remove(&partition_key(&topic, partition));
                });
            }
        }
    }
}

/// Consumes until `control` is cancelled or a worker fails, pausing when asked. Runs on a
/// blocking thread.
pub fn run(
    shared: Arc<Shared>,
    reports: Receiver<Report>,
    runtime: tokio::runtime::Handle,
    control: RunControl,
) -> Result<(), ConsumeError> {
    let cancel = control.cancel_token().clone();
    let config = &shared.config;
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("group.id", config.group_id())
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .set("queued.max.messages.kbytes", "16384")
        // read_committed fetches wait for the transaction marker: answer quickly so that a
        // committed transaction reaches the target within milliseconds.
        .set("fetch.wait.max.ms", "10")
        // When the local queue is full librdkafka backs off fetching, by default for a whole
        // second: far longer than a batch takes to apply.
        .set("fetch.queue.backoff.ms", "10")
        // A stored offset that retention has deleted must stop apply, not skip the gap.
        .set("auto.offset.reset", "error")
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .set(
            "enable.partition.eof",
            if config.apply.transactional {
                "true"
            } else {
                "false"
            },
        );
    for (key, value) in &config.kafka.properties {
        client.set(key, value);
    }
    let context = ApplyContext {
        shared: shared.clone(),
        runtime,
        cancel: cancel.clone(),
        workers: Mutex::new(HashMap::new()),
        paused: AtomicBool::new(false),
        paused_marks: Mutex::new(HashMap::new()),
    };
    let consumer: BaseConsumer<ApplyContext> = client.create_with_context(context)?;
    let subscription: Vec<String> = match &config.kafka.topic_pattern {
        // Grouped, so that a top-level `|` cannot escape the anchors (the configuration
        // checks match the same way).
        Some(pattern) => vec![format!("^({pattern})$")],
        None => config.kafka.topics.clone(),
    };
    let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    shared.status.send_modify(|s| {
        s.state = State::Running;
        s.error = None;
    });
    tracing::info!(group = config.group_id(), topics = ?topics, "consuming");
    let mut failure = None;
    let mut topic_names: HashMap<String, Arc<str>> = HashMap::new();
    let keep = Keep {
        gtid: config.apply.transactional,
        headers: config.apply.poison_policy == PoisonPolicy::DeadLetter,
        trace: rowferry_shared::telemetry::tracing_enabled(),
    };
    let mut paused_lag_at: Option<std::time::Instant> = None;
    while !cancel.is_cancelled() {
        while let Ok(report) = reports.try_recv() {
            match report {
                Report::Committed {
                    topic,
                    partition,
                    next_offset,
                } => {
                    let mut tpl = TopicPartitionList::new();
                    if tpl
                        .add_partition_offset(&topic, partition, Offset::Offset(next_offset))
                        .is_ok()
                    {
                        // Only for lag monitoring; a partition just revoked refuses it.
                        let _ = consumer.store_offsets(&tpl);
                    }
                }
                Report::Fenced { topic, partition } => refence(&consumer, topic, partition),
                Report::Failed { error } => {
                    failure.get_or_insert(error);
                }
            }
        }
        if failure.is_some() {
            break;
        }
        follow_pause(&consumer, &control);
        if consumer.context().paused.load(Ordering::SeqCst)
            && paused_lag_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            paused_lag_at = Some(std::time::Instant::now());
            refresh_paused_lag(&consumer);
        }
        let backlogged = drain_backlogs(&consumer);

        // A paused partition waits for its worker to make room: look again soon rather than
        // after a full poll interval (with one busy partition, that interval was the limit:
        // about 8,000 records/s).
        let wait = if backlogged {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(100)
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                let topic = match topic_names.get(message.topic()) {
                    Some(topic) => topic.clone(),
                    None => {
                        let topic: Arc<str> = Arc::from(message.topic());
                        topic_names.insert(message.topic().to_owned(), topic.clone());
                        topic
                    }
                };
                let record = Record::from_message(&message, topic, keep);
                let id: PartitionId = (record.topic.clone(), record.partition);
                dispatch(&consumer, &id, Input::Record(record));
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                let ids: Vec<PartitionId> = consumer
                    .context()
                    .workers()
                    .keys()
                    .filter(|(_, p)| *p == partition)
                    .cloned()
                    .collect();
                for id in ids {
                    dispatch(&consumer, &id, Input::End);
                }
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                failure.get_or_insert(
                    "a partition's stored offset is no longer in Kafka (retention deleted the \
                     records after it, or the topic was recreated): the target has missed those \
                     changes; re-snapshot the tables, or reset the partition's row in the \
                     offsets table to accept the gap"
                        .to_owned(),
                );
            }
            Some(Err(error)) => tracing::warn!(%error, "Kafka consumer error; librdkafka retries"),
            None => {}
        }
    }
    // A stop that gave up on this run may already have started the next one: then this
    // thread must leave the status alone.
    let current = !control.is_abandoned();
    if current {
        shared.status.send_modify(|s| {
            if s.state != State::Failed {
                s.state = State::Stopping;
            }
        });
    }
    consumer.context().stop_workers(None, current);
    while let Ok(report) = reports.try_recv() {
        if let Report::Committed {
            topic,
            partition,
            next_offset,
        } = report
        {
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(&topic, partition, Offset::Offset(next_offset))
                .is_ok()
            {
                let _ = consumer.store_offsets(&tpl);
            }
        }
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    consumer.unsubscribe();
    drop(consumer);
    match failure {
        Some(error) => Err(ConsumeError::Failed(error)),
        None => Ok(()),
    }
}

/// Hands `input` to its partition's worker, or to the worker's backlog (pausing the
/// partition) when the worker's queue is full.
fn dispatch(consumer: &BaseConsumer<ApplyContext>, id: &PartitionId, input: Input) {
    let mut workers = consumer.context().workers();
    let Some(worker) = workers.get_mut(id) else {
        // Revoked meanwhile; the next owner starts from the stored offset.
        return;
    };
    if let Input::Record(record) = &input {
        worker.dispatched_next = Some(record.offset + 1);
    }
    if !worker.backlog.is_empty() {
        worker.backlog.push_back(input);
        return;
    }
    match worker.sender.try_send(input) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(input)) => {
            worker.backlog.push_back(input);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&id.0, id.1);
            if let Err(error) = consumer.pause(&tpl) {
                tracing::warn!(%error, topic = %id.0, partition = id.1, "cannot pause partition");
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Moves backlogs into workers' queues as room appears, resuming drained partitions.
/// Whether a backlog still waits.
fn drain_backlogs(consumer: &BaseConsumer<ApplyContext>) -> bool {
    let mut workers = consumer.context().workers();
    let mut waiting = false;
    for (id, worker) in workers.iter_mut() {
        if worker.backlog.is_empty() {
            continue;
        }
        while let Some(input) = worker.backlog.pop_front() {
            match worker.sender.try_send(input) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(input)) => {
                    worker.backlog.push_front(input);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    worker.backlog.clear();
                }
            }
        }
        if worker.backlog.is_empty() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&id.0, id.1);
            if let Err(error) = consumer.resume(&tpl) {
                tracing::warn!(%error, topic = %id.0, partition = id.1, "cannot resume partition");
            }
            // librdkafka's fetcher notices a resume only at its next wake-up (up to a second
            // when no other partition is fetching); a seek to where it resumes anyway wakes it.
            if let Some(next) = worker.dispatched_next {
                let _ = consumer.seek(&id.0, id.1, Offset::Offset(next), Duration::ZERO);
            }
        } else {
            waiting = true;
        }
    }
    waiting
}

/// While paused nothing is fetched, so librdkafka's statistics stop moving: ask the brokers
/// for each assigned partition's end instead (a read_committed consumer's offset query
/// answers with the last stable offset). The lag is the one at the pause plus what was
/// appended since (commit markers of new transactions included: an upper bound); a
/// partition assigned while paused, with no such baseline, counts from its stored offset.
/// One pass takes a second at most, so a slow broker cannot hold up the consumer loop.
fn refresh_paused_lag(consumer: &BaseConsumer<ApplyContext>) {
    let assigned: Vec<(String, i32)> = consumer
        .assignment()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect()
        })
        .unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut ends: Vec<(String, i64)> = Vec::new();
    for (topic, partition) in &assigned {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.fetch_watermarks(topic, *partition, left.min(Duration::from_millis(500))) {
            Ok((_, end)) => ends.push((partition_key(topic, *partition), end)),
            Err(error) => {
                tracing::debug!(%error, topic, partition, "cannot read the partition's end while paused");
            }
        }
    }
    let baselines = consumer.context().paused_marks();
    let now = now_ms();
    consumer.context().shared.status.send_if_modified(|s| {
        let mut changed = false;
        for (key, end) in &ends {
            if let Some(entry) = s.partitions.get_mut(key) {
                let lag = match baselines.get(key) {
                    Some((end_at_pause, lag_at_pause)) => {
                        Some(lag_at_pause + (end - end_at_pause).max(0))
                    }
                    None => entry.next_offset.map(|next| (end - next).max(0)),
                };
                changed |= entry.set_lag(*end, lag, now);
            }
        }
        changed
    });
}

/// Pauses or resumes as the controller asks. A pause stops every worker (each commits its
/// batch in flight and drops what it had queued) and pauses the assigned partitions, keeping
/// the group membership; then it is confirmed. A resume assigns every partition again at its
/// stored offset, so nothing dropped is lost and nothing applied is applied again.
fn follow_pause(consumer: &BaseConsumer<ApplyContext>, control: &RunControl) {
    let context = consumer.context();
    let paused = context.paused.load(Ordering::SeqCst);
    let wanted = control.pause_requested();
    if wanted == paused {
        return;
    }
    let assigned: Vec<PartitionId> = consumer
        .assignment()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .map(|e| (Arc::from(e.topic()), e.partition()))
                .collect()
        })
        .unwrap_or_default();
    if wanted {
        context.paused.store(true, Ordering::SeqCst);
        let marks: HashMap<String, (i64, i64)> = context
            .shared
            .status
            .borrow()
            .partitions
            .iter()
            .filter_map(|(key, p)| Some((key.clone(), (p.high_watermark?, p.lag?))))
            .collect();
        if let Ok(mut baseline) = context.paused_marks.lock() {
            *baseline = marks;
        }
        context.stop_workers(None, false);
        if let Ok(tpl) = consumer.assignment()
            && let Err(error) = consumer.pause(&tpl)
        {
            tracing::warn!(%error, "cannot pause the assigned partitions");
        }
        tracing::info!(partitions = assigned.len(), "paused");
        control.set_paused(true);
    } else {
        context.paused.store(false, Ordering::SeqCst);
        // Assigning anew at the stored offsets (rather than seeking) also covers partitions
        // assigned while paused, which never fetched and so could not be sought.
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &assigned {
            tpl.add_partition(topic, *partition);
        }
        if let Err(error) = context.assign_at_stored_offsets(consumer, &assigned, &mut tpl) {
            let _ = context.shared.reports.send(Report::Failed {
                error: format!(
                    "cannot resume the partitions at their stored offsets ({error}); restart apply"
                ),
            });
            return;
        }
        if let Err(error) = consumer.resume(&tpl) {
            tracing::warn!(%error, "cannot resume the assigned partitions");
        }
        tracing::info!(partitions = assigned.len(), "resumed");
        control.set_paused(false);
    }
}

/// A worker found the stored offset moved under it: restart the partition from what is
/// stored now.
fn refence(consumer: &BaseConsumer<ApplyContext>, topic: Arc<str>, partition: i32) {
    let context = consumer.context();
    let id: PartitionId = (topic.clone(), partition);
    if !context.workers().contains_key(&id) {
        return;
    }
    tracing::warn!(%topic, partition, "stored offset moved by another writer; re-reading it");
    context.stop_workers(Some(std::slice::from_ref(&id)), false);
    restart_partition(consumer, topic, partition);
}

/// Seeks a partition that has no worker to its stored offset, starts its worker and resumes
/// fetching it.
fn restart_partition(consumer: &BaseConsumer<ApplyContext>, topic: Arc<str>, partition: i32) {
    let context = consumer.context();
    let Some(stored) = context.read_offset(&topic, partition) else {
        return;
    };
    let offset = match stored {
        Some(next) => Offset::Offset(next),
        None => match context.shared.config.kafka.start {
            StartAt::Earliest => Offset::Beginning,
            StartAt::Latest => Offset::End,
        },
    };
    if let Err(error) = consumer.seek(&topic, partition, offset, Duration::from_secs(10)) {
        // A worker started without the seek would see records from the wrong offset.
        let _ = context.shared.reports.send(Report::Failed {
            error: format!(
                "{topic}/{partition}: cannot seek to the stored offset after another writer \
                 moved it ({error}); restart apply"
            ),
        });
        return;
    }
    context.start_worker(topic.clone(), partition, stored);
    // The old worker's backlog is gone with it: the partition may have been paused for it.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, partition);
    if let Err(error) = consumer.resume(&tpl) {
        tracing::warn!(%error, %topic, partition, "cannot resume partition");
    }
}

#[cfg(test)]
mod tests {
    use super::partition_lag;

    #[test]
    fn lag_counts_records_not_the_commit_markers() {
        // Caught up on a transactional topic: stored 4406, end 4407 (the marker), fetch
        // position past it, nothing queued.
        assert_eq!(
            partition_lag(4407, 4407, 0, Some(4406), Some(4406)),
            Some(0)
        );
        // 10 records fetched but not polled, 5 in the worker, 100 more in Kafka.
        assert_eq!(
            partition_lag(1215, 1115, 10, Some(1105), Some(1100)),
            Some(115)
        );
        // Not fetching yet: the distance from the stored offset.
        assert_eq!(partition_lag(50, -1001, 0, None, Some(20)), Some(30));
        // Nothing applied yet: unknown.
        assert_eq!(partition_lag(50, 10, 0, Some(10), None), None);
    }
}
