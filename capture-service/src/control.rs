//! The gRPC control endpoint: `rowferry.capture.v1.CaptureControl` over the shared lifecycle
//! controller, the standard health service (SERVING only while RUNNING or PAUSED) and server
//! reflection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rowferry_shared::control::{self as shared_control, Change, Rates, Totals};
use rowferry_shared::lifecycle::{Controller, Pipeline, RunControl, RunFuture, State};
use rowferry_shared::pb::capture::v1 as pb;
use rowferry_shared::pb::capture::v1::capture_control_server::{
    CaptureControl, CaptureControlServer,
};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::config::CaptureConfig;
use crate::filter::Filter;
use crate::kafka::offsets::StoredPosition;
use crate::pipeline::{self, CaptureError, SeekState};
use crate::seek::{self, SeekError};
use crate::snapshot::incremental::{Command, Commands, DEFAULT_CHUNK_ROWS};
use crate::snapshot::tables;
use crate::source;
use crate::status::{CaptureStatus, StatusReceiver, StatusSender};
use rowferry_shared::event::TableId;

/// The capture pipeline as the controller runs it: each run reads the configuration as it
/// is then.
pub struct CapturePipeline {
    config: CaptureConfig,
    status: StatusSender,
    seek: SeekState,
    /// Incremental-snapshot requests for the running (or next) run.
    commands: Commands,
}

impl CapturePipeline {
    /// A pipeline reporting to `status`.
    pub fn new(config: CaptureConfig, status: StatusSender) -> Self {
        let seek = SeekState::new(&config);
        Self {
            config,
            status,
            seek,
            commands: Commands::default(),
        }
    }

    /// Checks an incremental-snapshot request against the configuration and the source, and
    /// queues it for the capture.
    pub async fn snapshot(&self, request: pb::SnapshotRequest) -> Result<(), Status> {
        let action = pb::SnapshotAction::try_from(request.action).map_err(|_| {
            Status::invalid_argument(format!(
                "unknown snapshot action {}; use START, PAUSE, RESUME or CANCEL",
                request.action
            ))
        })?;
        // The queue first: the streamer reports a taken START before it stops counting it as
        // queued, so reading in this order always sees it in one of the two.
        let queued = self.commands.start_queued();
        let running = queued
            || self
                .status
                .borrow()
                .snapshot
                .as_ref()
                .is_some_and(|s| s.incremental && s.running);
        let command = match action {
            pb::SnapshotAction::Unspecified | pb::SnapshotAction::Start => {
                if request.tables.is_empty() {
                    return Err(Status::invalid_argument(
                        "no tables: give `tables` as database.table (or an action: PAUSE, \
                         RESUME, CANCEL)",
                    ));
                }
                let tables = self.check_tables(&request.tables).await?;
                let chunk_rows = match request.chunk_rows {
                    0 => DEFAULT_CHUNK_ROWS,
                    n => n as usize,
                };
                Command::Start { tables, chunk_rows }
            }
            other if !request.tables.is_empty() => {
                return Err(Status::invalid_argument(format!(
                    "`tables` goes with START only, not {}",
                    other.as_str_name()
                )));
            }
            _ if !running => {
                return Err(Status::failed_precondition(
                    "no incremental snapshot is running; start one with `tables`",
                ));
            }
            pb::SnapshotAction::Pause => Command::Pause,
            pb::SnapshotAction::Resume => Command::Resume,
            pb::SnapshotAction::Cancel => Command::Cancel,
        };
        self.commands.push(command);
        Ok(())
    }

    /// Each table: `db.table`, captured by the filter, existing, with a key to chunk by.
    async fn check_tables(&self, names: &[String]) -> Result<Vec<(TableId, u64)>, Status> {
        let filter = Filter::new(&self.config.filter)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let password = self
            .config
            .source_password()
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let opts = source::connection_opts(
            &self.config.source.url,
            password.as_ref().map(|p| p.expose()),
        )
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let mut conn = source::connect(&opts)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let listed = tables::list(&mut conn, &filter)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut checked = Vec::new();
        for name in names {
            let Some((db, table)) = name.split_once('.') else {
                return Err(Status::invalid_argument(format!(
                    "table `{name}`: write it as database.table"
                )));
            };
            let id = TableId::new(db, table);
            let Some((_, estimate)) = listed.iter().find(|(t, _)| *t == id) else {
                return Err(Status::invalid_argument(format!(
                    "table `{name}` does not exist on the source or is not captured (see the \
                     filter section of the configuration)"
                )));
            };
            let described = tables::describe(&mut conn, &id, &filter, self.config.topic_prefix())
                .await
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            if described.key_names.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "table `{name}` has no primary key and no NOT NULL unique key, which an \
                     incremental snapshot reads it by; add one, or take an initial snapshot \
                     (--seek snapshot)"
                )));
            }
            checked.push((id, *estimate));
        }
        let _ = conn.disconnect().await;
        Ok(checked)
    }

    /// Checks `target` against the source and, unless `validate_only`, stores it as the
    /// position the next run reads from.
    pub async fn seek(
        &self,
        target: seek::Target,
        validate_only: bool,
    ) -> Result<StoredPosition, SeekError> {
        let position = seek::resolve(&self.config, target).await?;
        if !validate_only {
            seek::store(&self.config, &position).await?;
            self.seek.supersede();
            self.status
                .send_modify(|s| s.committed = Some(position.clone()));
            tracing::info!(file = %position.file, pos = position.pos, gtids = ?position.gtids, "position sought and stored");
        }
        Ok(position)
    }

    /// Follows the pipeline's own status.
    pub fn subscribe(&self) -> StatusReceiver {
        self.status.subscribe()
    }
}

impl Pipeline for CapturePipeline {
    type Error = CaptureError;

    fn run(self: Arc<Self>, control: RunControl) -> RunFuture<CaptureError> {
        Box::pin(async move {
            pipeline::run_controlled(
                self.config.clone(),
                self.status.clone(),
                control,
                &self.seek,
                &self.commands,
            )
            .await
        })
    }

    fn phase(&self) -> State {
        self.status.borrow().state
    }
}

/// Serves the control API.
pub struct Control {
    name: String,
    controller: Arc<Controller<CapturePipeline>>,
    started: Instant,
    rates: Arc<Rates>,
    /// Fired when the server shuts down: ends the open status streams.
    shutdown: CancellationToken,
}

impl Control {
    /// A control service for the capture called `name`.
    pub fn new(name: String, controller: Arc<Controller<CapturePipeline>>) -> Self {
        Self {
            name,
            controller,
            started: Instant::now(),
            rates: Arc::default(),
            shutdown: CancellationToken::new(),
        }
    }

    fn status(&self) -> pb::CaptureStatus {
        let status = self.controller.pipeline().subscribe().borrow().clone();
        to_proto(
            &self.name,
            &status,
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
    status: &CaptureStatus,
    controller: &Controller<CapturePipeline>,
    started: Instant,
    rates: &Rates,
) -> pb::CaptureStatus {
    let (state, error) =
        shared_control::reported_state(&controller.view(), status.state, status.error.as_ref());
    pb::CaptureStatus {
        name: name.to_owned(),
        state: shared_control::state_to_proto(state) as i32,
        error: error.unwrap_or_default(),
        flavor: status.flavor.clone().unwrap_or_default(),
        server_version: status.server_version.clone().unwrap_or_default(),
        metadata_source: status.metadata_source.clone().unwrap_or_default(),
        committed: status.committed.as_ref().map(position_to_proto),
        lag_seconds: status.lag_seconds,
        records_committed: status.records_committed,
        kafka_transactions: status.kafka_transactions,
        source_transactions: status.source_transactions,
        server_id: status
            .committed
            .as_ref()
            .map(|p| p.source_server_id)
            .unwrap_or_default(),
        last_event_time: status
            .committed
            .as_ref()
            .filter(|p| p.source_ts_ms > 0)
            .map(|p| shared_control::timestamp_from_ms(p.source_ts_ms)),
        counters: Some(rates.observe(Totals {
            events: status.records_committed,
            bytes: status.bytes_committed,
            transactions: status.source_transactions,
        })),
        tables: shared_control::tables_to_proto(&status.tables),
        uptime: Some(shared_control::duration_to_proto(started.elapsed())),
        build: Some(shared_control::build_info(
            "rowferry-capture",
            env!("CARGO_PKG_VERSION"),
        )),
        snapshot: status.snapshot.as_ref().map(snapshot_to_proto),
    }
}

fn snapshot_to_proto(s: &crate::status::SnapshotStatus) -> pb::SnapshotProgress {
    pb::SnapshotProgress {
        running: s.running,
        started: Some(shared_control::timestamp_from_ms(s.started_ms)),
        rows: s.rows,
        estimated_rows: s.estimated_rows,
        rows_per_second: s.rows_per_second,
        eta: s
            .eta_seconds
            .filter(|e| e.is_finite() && *e >= 0.0)
            .map(|e| shared_control::duration_to_proto(Duration::from_secs_f64(e))),
        tables: s
            .tables
            .iter()
            .map(|t| pb::TableSnapshot {
                table: t.table.clone(),
                rows: t.rows,
                estimated_rows: t.estimated_rows,
                done: t.done,
            })
            .collect(),
        incremental: s.incremental,
        paused: s.paused,
    }
}

fn position_to_proto(p: &StoredPosition) -> pb::Position {
    pb::Position {
        file: p.file.clone(),
        pos: p.pos,
        gtid_set: p.gtids.clone().unwrap_or_default(),
        partial: p.partial.as_ref().map(|t| pb::PartialTransaction {
            gtid: t.gtid.clone().unwrap_or_default(),
            file: t.file.clone(),
            pos: t.pos,
            rows_done: t.rows_done,
        }),
        source_ts_ms: p.source_ts_ms,
    }
}

/// The request's target, checked for what can be checked without the source.
fn seek_target(target: Option<pb::seek_request::Target>) -> Result<seek::Target, Status> {
    use pb::seek_request::Target as T;
    let invalid = |m: String| Status::invalid_argument(m);
    match target {
        None => Err(invalid(
            "set one of binlog_position, gtid_set, boundary or timestamp".into(),
        )),
        Some(T::BinlogPosition(p)) => {
            if p.file.trim().is_empty() {
                return Err(invalid(
                    "binlog_position.file is empty; give a file SHOW BINARY LOGS lists".into(),
                ));
            }
            Ok(seek::Target::File(
                rowferry_shared::position::BinlogFilePosition::new(p.file.trim(), p.position),
            ))
        }
        Some(T::GtidSet(text)) => {
            if text.trim().is_empty() {
                return Err(invalid(
                    "gtid_set is empty; give a GTID set (MariaDB `0-1-100`, MySQL `uuid:1-10`) \
                     or seek to BOUNDARY_EARLIEST"
                        .into(),
                ));
            }
            text.trim()
                .parse()
                .map(seek::Target::Gtids)
                .map_err(|e| invalid(format!("gtid_set {text:?}: {e}")))
        }
        Some(T::Boundary(b)) => Ok(if shared_control::earliest_boundary(b)? {
            seek::Target::Earliest
        } else {
            seek::Target::Latest
        }),
        Some(T::Timestamp(t)) => u64::try_from(t.seconds)
            .map(seek::Target::Timestamp)
            .map_err(|_| {
                invalid(format!(
                    "timestamp {}s is before 1970; give e.g. \"2026-11-26T10:00:00Z\"",
                    t.seconds
                ))
            }),
    }
}

fn seek_status(error: SeekError) -> Status {
    match &error {
        SeekError::OutOfRange(_) => Status::out_of_range(error.to_string()),
        _ if error.is_request_error() => Status::invalid_argument(error.to_string()),
        _ if error.is_transient() => Status::unavailable(error.to_string()),
        // The source or Kafka refuses (access denied, a purged binlog): not worth a retry.
        _ => Status::failed_precondition(error.to_string()),
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::WatchStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CaptureControl for Control {
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
        if matches!(target, seek::Target::Timestamp(_))
            && matches!(
                self.controller.state(),
                State::Running | State::Retrying | State::Starting | State::Snapshotting
            )
        {
            // Finding a time reads the binlog as a replica with this capture's server_id,
            // which the source would not allow beside the capture's own stream.
            return Err(Status::failed_precondition(format!(
                "cannot seek to a time while the capture is {}: finding it reads the binlog \
                 with the capture's server_id; pause or stop the capture first",
                self.controller.state()
            )));
        }
        let pipeline = self.controller.pipeline().clone();
        let position = if request.validate_only {
            pipeline.seek(target, true).await
        } else {
            shared_control::seek_while_idle(&self.controller, deadline, move || async move {
                pipeline.seek(target, false).await
            })
            .await?
        }
        .map_err(seek_status)?;
        Ok(Response::new(pb::SeekResponse {
            position: Some(position_to_proto(&position)),
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
        let controller = self.controller.clone();
        let started = self.started;
        let rates = self.rates.clone();
        let stream = shared_control::watch(
            controller.pipeline().subscribe(),
            controller.subscribe(),
            self.shutdown.clone(),
            |s: &CaptureStatus| s.state,
            move |status| pb::WatchStatusResponse {
                status: Some(to_proto(&name, status, &controller, started, &rates)),
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let state = self.controller.state();
        if matches!(state, State::Stopped | State::Failed | State::Stopping) {
            return Err(Status::failed_precondition(format!(
                "cannot change the incremental snapshot: the capture is {state}; Start it first"
            )));
        }
        self.controller
            .pipeline()
            .snapshot(request.into_inner())
            .await?;
        Ok(Response::new(pb::SnapshotResponse {
            status: Some(self.status()),
        }))
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
        routes: tonic::service::Routes::new(CaptureControlServer::with_interceptor(
            control,
            security.token_check(),
        )),
        service: SERVICE_NAME,
        status: controller.pipeline().subscribe(),
        view: controller.subscribe(),
        tls: security.tls,
        max_concurrent_requests,
    };
    shared_control::serve(listener, endpoint, |s: &CaptureStatus| s.state, shutdown).await
}

/// The control service's full name (health checks use it).
pub const SERVICE_NAME: &str =
    rowferry_shared::pb::capture::v1::capture_control_server::SERVICE_NAME;
