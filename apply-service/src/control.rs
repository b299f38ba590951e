//! The gRPC control endpoint: `rowferry.apply.v1.ApplyControl` over the shared lifecycle
//! controller, with the standard health service and server reflection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rowferry_shared::control::{self as shared_control, ControlTimeouts};
use rowferry_shared::lifecycle::{Controller, Pipeline, RunControl, RunFuture, State};
use rowferry_shared::pb::apply::v1 as pb;
use rowferry_shared::pb::apply::v1::apply_control_server::{ApplyControl, ApplyControlServer};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::config::ApplyConfig;
use crate::pipeline::{self, ApplyError};
use crate::status::{ApplyStatus, StatusReceiver, StatusSender, split_partition_key};

/// The control service's full name (health checks use it).
pub const SERVICE_NAME: &str = "rowferry.apply.v1.ApplyControl";

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
) -> pb::ApplyStatus {
    let view = controller.view();
    let state = view.state(status.state);
    let error = match state {
        State::Running | State::Paused | State::Starting | State::Snapshotting => None,
        State::Retrying => status.error.clone(),
        _ => view.error.clone().or_else(|| status.error.clone()),
    };
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
        counters: None,
        tables: Vec::new(),
        uptime: Some(shared_control::duration_to_proto(started.elapsed())),
        build: Some(shared_control::build_info(
            "rowferry-apply",
            env!("CARGO_PKG_VERSION"),
        )),
        source_position: String::new(),
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::WatchStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ApplyControl for Control {
    async fn start(
        &self,
        _request: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        self.controller
            .start()
            .await
            .map_err(shared_control::to_grpc)?;
        Ok(Response::new(pb::StartResponse {
            status: Some(self.status()),
        }))
    }

    async fn stop(
        &self,
        request: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let timeout = ControlTimeouts::of(&request, request.get_ref().timeout.as_ref())?;
        self.controller
            .stop(timeout)
            .await
            .map_err(shared_control::to_grpc)?;
        Ok(Response::new(pb::StopResponse {
            status: Some(self.status()),
        }))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::PauseResponse>, Status> {
        let timeout = ControlTimeouts::of(&request, request.get_ref().timeout.as_ref())?;
        self.controller
            .pause(timeout)
            .await
            .map_err(shared_control::to_grpc)?;
        Ok(Response::new(pb::PauseResponse {
            status: Some(self.status()),
        }))
    }

    async fn resume(
        &self,
        _request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        self.controller
            .resume()
            .await
            .map_err(shared_control::to_grpc)?;
        Ok(Response::new(pb::ResumeResponse {
            status: Some(self.status()),
        }))
    }

    async fn seek(
        &self,
        _request: Request<pb::SeekRequest>,
    ) -> Result<Response<pb::SeekResponse>, Status> {
        Err(Status::unimplemented(
            "Seek over gRPC is not available in this version; stop apply and change the \
             partition's row in the offsets table (see docs/operations.md)",
        ))
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
        let stream = shared_control::watch(
            controller.pipeline().subscribe(),
            controller.subscribe(),
            self.shutdown.clone(),
            move |status| pb::WatchStatusResponse {
                status: Some(to_proto(&name, &group_id, status, &controller, started)),
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Why the control endpoint could not start.
pub use rowferry_shared::control::EndpointError as ControlError;

/// Binds the control endpoint (before the pipeline starts, so a taken port is an error at
/// startup).
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener, ControlError> {
    shared_control::bind(listen).await
}

/// Serves the control API on `listener` until `shutdown` fires; the health service follows
/// the pipeline's state.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Control,
    shutdown: CancellationToken,
) -> Result<(), ControlError> {
    let controller = control.controller.clone();
    let control = Control {
        shutdown: shutdown.clone(),
        ..control
    };
    let endpoint = shared_control::Endpoint {
        routes: tonic::service::Routes::new(ApplyControlServer::new(control)),
        service: SERVICE_NAME,
        status: controller.pipeline().subscribe(),
        view: controller.subscribe(),
    };
    shared_control::serve(listener, endpoint, |s: &ApplyStatus| s.state, shutdown).await
}
