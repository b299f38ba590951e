//! The gRPC control endpoint: `rowferry.apply.v1.ApplyControl` over the shared lifecycle
//! controller, with the standard health service and server reflection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rowferry_shared::control::{self as shared_control, Change, Rates, Totals};
use rowferry_shared::lifecycle::{Controller, Pipeline, RunControl, RunFuture, State};
use rowferry_shared::pb::apply::v1 as pb;
use rowferry_shared::pb::apply::v1::apply_control_server::{ApplyControl, ApplyControlServer};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::config::ApplyConfig;
use crate::pipeline::{self, ApplyError};
use crate::seek::{self, SeekError};
use crate::status::{ApplyStatus, StatusReceiver, StatusSender, split_partition_key};
use crate::target::TargetOptions;
use crate::target::offsets::OffsetsTable;

/// The control service's full name (health checks use it).
pub const SERVICE_NAME: &str = rowferry_shared::pb::apply::v1::apply_control_server::SERVICE_NAME;

/// The apply pipeline as the controller runs it.
pub struct ApplyPipeline {
    config: ApplyConfig,
    status: StatusSender,
}

impl ApplyPipeline {
    /// A pipeline reporting to `status`.
    pub fn new(config: ApplyConfig, status: StatusSender) -> Self {
        Self { config, status }
    }

    /// Follows the pipeline's own status.
    pub fn subscribe(&self) -> StatusReceiver {
        self.status.subscribe()
    }

    /// Resolves `target` and (unless `validate_only`) stores it in the offsets table.
    pub async fn seek(
        &self,
        target: seek::Target,
        validate_only: bool,
    ) -> Result<Vec<seek::PartitionOffset>, SeekError> {
        let offsets = seek::resolve(&self.config, target).await?;
        if !validate_only {
            let password = self
                .config
                .target_password()
                .map_err(|e| SeekError::Invalid(e.to_string()))?;
            let target = TargetOptions::new(
                &self.config.target.url,
                password.as_ref(),
                self.config.target.foreign_key_checks,
            )?;
            let table = OffsetsTable::new(
                &self.config.target.offsets_database,
                &self.config.target.offsets_table,
                self.config.group_id(),
            );
            seek::store(&target, &table, &offsets).await?;
            tracing::info!(partitions = offsets.len(), "offsets sought and stored");
        }
        Ok(offsets)
    }
}

impl Pipeline for ApplyPipeline {
    type Error = ApplyError;

    fn run(self: Arc<Self>, control: RunControl) -> RunFuture<ApplyError> {
        Box::pin(async move {
            pipeline::run_controlled(self.config.clone(), self.status.clone(), control).await
        })
    }

    fn phase(&self) -> State {
        self.status.borrow().state
    }
}

/// Serves the control API.
pub struct Control {
    name: String,
    group_id: String,
    controller: Arc<Controller<ApplyPipeline>>,
    started: Instant,
    rates: Arc<Rates>,
    /// Fired when the server shuts down: ends the open status streams.
    shutdown: CancellationToken,
}

impl Control {
    /// A control service for the apply called `name`, consuming as `group_id`.
    pub fn new(name: String, group_id: String, controller: Arc<Controller<ApplyPipeline>>) -> Self {
        Self {
            name,
            group_id,
            controller,
            started: Instant::now(),
            rates: Arc::default(),
            shutdown: CancellationToken::new(),
        }
    }

    fn status(&self) -> pb::ApplyStatus {
        let status = self.controller.pipeline().subscribe().borrow().clone();
        self.render(&status)
    }

    fn render(&self, status: &ApplyStatus) -> pb::ApplyStatus {
        to_proto(
            &self.name,
            &self.group_id,
            status,
            &self.controller,
            self.started,
            &self.rates,
        )
    }
}

/// The status as the API reports it: the pipeline's own report, with the lifecycle state and
/// error the controller knows.
pub fn to_proto(
    name: &str,
    group_id: &str,
    status: &ApplyStatus,
    controller: &Controller<ApplyPipeline>,
    started: Instant,
    rates: &Rates,
) -> pb::ApplyStatus {
    let (state, error) =
        shared_control::reported_state(&controller.view(), status.state, status.error.as_ref());
    let partitions = status
        .partitions
        .iter()
        .filter_map(|(key, p)| {
            let (topic, partition) = split_partition_key(key)?;
            let offset = p.next_offset.unwrap_or(-1);
            Some(pb::PartitionStatus {
                topic: topic.to_owned(),
                partition,
                offset,
                high_watermark: p.high_watermark.unwrap_or(-1),
                lag: p.lag.unwrap_or(-1),
            })
        })
        .collect();
    let last_ts_ms = status
        .partitions
        .values()
        .filter_map(|p| p.source_ts_ms)
        .max();
    pb::ApplyStatus {
        name: name.to_owned(),
        state: shared_control::state_to_proto(state) as i32,
        error: error.unwrap_or_default(),
        group_id: group_id.to_owned(),
        partitions,
        records_applied: status.records_applied,
        transactions_committed: status.target_transactions,
        dead_lettered: status.dead_lettered,
        last_event_time: last_ts_ms.map(shared_control::timestamp_from_ms),
        lag_seconds: status.lag_seconds,
        counters: Some(rates.observe(Totals {
            events: status.records_applied,
            bytes: status.bytes_applied,
            transactions: status.target_transactions,
        })),
        tables: shared_control::tables_to_proto(&status.tables),
        uptime: Some(shared_control::duration_to_proto(started.elapsed())),
        build: Some(shared_control::build_info(
            "rowferry-apply",
            env!("CARGO_PKG_VERSION"),
        )),
        source_position: status.source_position.clone().unwrap_or_default(),
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::WatchStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ApplyControl for Control {
    async fn start(
        &self,
        _request: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        shared_control::change(&self.controller, Change::Start).await?;
        Ok(Response::new(pb::StartResponse {
            status: Some(self.status()),
        }))
    }

    async fn stop(
        &self,
        request: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let timeout =
            shared_control::request_timeout(&request, request.get_ref().timeout.as_ref())?;
        shared_control::change(&self.controller, Change::Stop(timeout)).await?;
        Ok(Response::new(pb::StopResponse {
            status: Some(self.status()),
        }))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::PauseResponse>, Status> {
        let timeout =
            shared_control::request_timeout(&request, request.get_ref().timeout.as_ref())?;
        shared_control::change(&self.controller, Change::Pause(timeout)).await?;
        Ok(Response::new(pb::PauseResponse {
            status: Some(self.status()),
        }))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let timeout = shared_control::request_timeout(&request, None)?;
        shared_control::change(&self.controller, Change::Resume(timeout)).await?;
        Ok(Response::new(pb::ResumeResponse {
            status: Some(self.status()),
        }))
    }

    async fn seek(
        &self,
        request: Request<pb::SeekRequest>,
    ) -> Result<Response<pb::SeekResponse>, Status> {
        let deadline = shared_control::request_timeout(&request, None)?;
        let request = request.into_inner();
        let target = seek_target(request.target)?;
        let pipeline = self.controller.pipeline().clone();
        let offsets = if request.validate_only {
            pipeline.seek(target, true).await
        } else {
            shared_control::seek_while_idle(&self.controller, deadline, move || async move {
                pipeline.seek(target, false).await
            })
            .await?
        }
        .map_err(seek_status)?;
        Ok(Response::new(pb::SeekResponse {
            offsets: offsets
                .into_iter()
                .map(|o| pb::PartitionOffset {
                    topic: o.topic,
                    partition: o.partition,
                    offset: o.offset,
                })
                .collect(),
            status: Some(self.status()),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(pb::GetStatusResponse {
            status: Some(self.status()),
        }))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<pb::WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let name = self.name.clone();
        let group_id = self.group_id.clone();
        let controller = self.controller.clone();
        let started = self.started;
        let rates = self.rates.clone();
        let stream = shared_control::watch(
            controller.pipeline().subscribe(),
            controller.subscribe(),
            self.shutdown.clone(),
            |s: &ApplyStatus| s.state,
            move |status| pb::WatchStatusResponse {
                status: Some(to_proto(
                    &name,
                    &group_id,
                    status,
                    &controller,
                    started,
                    &rates,
                )),
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The request's target, checked for what can be checked without Kafka.
fn seek_target(target: Option<pb::seek_request::Target>) -> Result<seek::Target, Status> {
    use pb::seek_request::Target as T;
    let invalid = |m: String| Status::invalid_argument(m);
    match target {
        None => Err(invalid(
            "set one of offsets, boundary, timestamp or source_gtid_set".into(),
        )),
        Some(T::Offsets(list)) => {
            let mut offsets = Vec::new();
            for o in list.offsets {
                if o.topic.is_empty() {
                    return Err(invalid("offsets: a topic name is empty".into()));
                }
                if o.partition < 0 || o.offset < 0 {
                    return Err(invalid(format!(
                        "offsets: {}/{} at {}: partitions and offsets are 0 or more",
                        o.topic, o.partition, o.offset
                    )));
                }
                offsets.push(seek::PartitionOffset {
                    topic: o.topic,
                    partition: o.partition,
                    offset: o.offset,
                });
            }
            Ok(seek::Target::Offsets(offsets))
        }
        Some(T::Boundary(b)) => Ok(if shared_control::earliest_boundary(b)? {
            seek::Target::Earliest
        } else {
            seek::Target::Latest
        }),
        Some(T::Timestamp(t)) => {
            if t.seconds < 0 || !(0..1_000_000_000).contains(&t.nanos) {
                return Err(invalid(format!(
                    "timestamp {}s {}ns is not a time after 1970 (RFC 3339 in JSON, e.g. \"2026-11-26T10:00:00Z\")",
                    t.seconds, t.nanos
                )));
            }
            t.seconds
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(t.nanos / 1_000_000)))
                .map(seek::Target::Timestamp)
                .ok_or_else(|| invalid(format!("timestamp {}s is out of range", t.seconds)))
        }
        Some(T::SourceGtidSet(text)) => {
            if text.trim().is_empty() {
                return Err(invalid(
                    "source_gtid_set is empty; give the target's gtid_executed (MySQL `uuid:1-10`) or gtid_slave_pos (MariaDB `0-1-100`), or seek to BOUNDARY_EARLIEST"
                        .into(),
                ));
            }
            text.trim()
                .parse()
                .map(seek::Target::SourceGtids)
                .map_err(|e| invalid(format!("source_gtid_set {text:?}: {e}")))
        }
    }
}

fn seek_status(error: SeekError) -> Status {
    match error {
        SeekError::Invalid(m) => Status::invalid_argument(m),
        SeekError::OutOfRange(m) => Status::out_of_range(m),
        SeekError::Kafka(_) | SeekError::Target(_) => Status::unavailable(error.to_string()),
    }
}

/// Why the control endpoint could not start.
pub use rowferry_shared::control::EndpointError as ControlError;

/// Serves the control API on `listener` until `shutdown` fires; the health service follows
/// the pipeline's state.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Control,
    security: shared_control::Security,
    max_concurrent_requests: usize,
    shutdown: CancellationToken,
) -> Result<(), ControlError> {
    let controller = control.controller.clone();
    let control = Control {
        shutdown: shutdown.clone(),
        ..control
    };
    let endpoint = shared_control::Endpoint {
        routes: tonic::service::Routes::new(ApplyControlServer::with_interceptor(
            control,
            security.token_check(),
        )),
        service: SERVICE_NAME,
        status: controller.pipeline().subscribe(),
        view: controller.subscribe(),
        tls: security.tls,
        max_concurrent_requests,
    };
    shared_control::serve(listener, endpoint, |s: &ApplyStatus| s.state, shutdown).await
}
