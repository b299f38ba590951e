//! The gRPC side of the shared lifecycle: what both control services do the same way —
//! mapping refusals to gRPC codes, request timeouts, the status stream, the health service
//! that follows the pipeline state, reflection, and binding the endpoint.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status};

mod counters;
mod security;

pub use counters::{
    OpCounts, Rates, TableCounts, Totals, count_change, merge_tables, tables_to_proto,
};
pub use security::{Security, TokenCheck};

use crate::lifecycle::{ControlError, ControlView, State};
use crate::pb::control::v1 as pb;

/// How long Stop and Pause wait when the request does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Status updates are sent at most this often, however fast the status changes.
const WATCH_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// And at least this often, when nothing changes.
const WATCH_MAX_INTERVAL: Duration = Duration::from_secs(1);

/// The API's state for a lifecycle state.
pub fn state_to_proto(state: State) -> pb::State {
    match state {
        State::Stopped => pb::State::Stopped,
        State::Starting => pb::State::Starting,
        State::Snapshotting => pb::State::Snapshotting,
        State::Running => pb::State::Running,
        State::Paused => pb::State::Paused,
        State::Retrying => pb::State::Retrying,
        State::Stopping => pb::State::Stopping,
        State::Failed => pb::State::Failed,
    }
}

/// A refusal is `FAILED_PRECONDITION`, a confirmation that did not come in time
/// `DEADLINE_EXCEEDED`; the message is the error's, which says what to do.
pub fn to_grpc(error: ControlError) -> Status {
    let code = match error {
        ControlError::Refused(_) => Code::FailedPrecondition,
        ControlError::Timeout { .. } => Code::DeadlineExceeded,
    };
    Status::new(code, error.to_string())
}

/// The request's `timeout` field (default [`DEFAULT_TIMEOUT`]), shortened to the client's
/// own deadline (`grpc-timeout`) so that the answer still reaches it. A negative or
/// malformed timeout is `INVALID_ARGUMENT`.
pub fn request_timeout<T>(
    request: &Request<T>,
    timeout: Option<&pbjson_types::Duration>,
) -> Result<Duration, Status> {
    let mut wait = match timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) if t.seconds == 0 && t.nanos == 0 => {
            return Err(Status::invalid_argument(
                "timeout is zero; give a positive duration (e.g. {\"seconds\": 30}) or \
                 leave it out for the default of 30 s",
            ));
        }
        Some(t) => Duration::try_from(*t).map_err(|_| {
            Status::invalid_argument(format!(
                "timeout {}s {}ns is not a positive duration; give e.g. {{\"seconds\": 30}} \
                 or leave it out for the default of 30 s",
                t.seconds, t.nanos
            ))
        })?,
    };
    if let Some(client) = client_deadline(request) {
        // Keep a little of the client's budget for the answer itself.
        wait = wait.min(client.saturating_sub(client / 10));
    }
    Ok(wait)
}

/// The client's deadline from the `grpc-timeout` header (`<digits><unit>`).
fn client_deadline<T>(request: &Request<T>) -> Option<Duration> {
    let text = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// A protobuf timestamp for milliseconds since the Unix epoch.
pub fn timestamp_from_ms(ms: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf duration (saturating at `i64::MAX` seconds).
pub fn duration_to_proto(duration: Duration) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: duration.subsec_nanos() as i32,
    }
}

/// Seconds since the Unix epoch now, as a float (for lag computations).
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What is running: `service` at `version`, with the commit and build the build script
/// recorded when there was one.
pub fn build_info(service: &str, version: &str) -> pb::BuildInfo {
    pb::BuildInfo {
        service: service.to_owned(),
        version: version.to_owned(),
        git_commit: option_env!("ROWFERRY_GIT_COMMIT")
            .unwrap_or_default()
            .to_owned(),
        build: format!(
            "{} {}-{}",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            std::env::consts::ARCH,
            std::env::consts::OS
        ),
    }
}

/// A state change a control service was asked for.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// Start a run.
    Start,
    /// Stop the run, waiting up to this long for the work in flight.
    Stop(Duration),
    /// Pause the run, waiting up to this long for the confirmation.
    Pause(Duration),
    /// Resume the run, waiting up to this long for the confirmation.
    Resume(Duration),
}

/// Carries out `change` on `controller` (detached: it completes even if the caller leaves),
/// with refusals and timeouts as gRPC statuses.
pub async fn change<P: crate::lifecycle::Pipeline>(
    controller: &std::sync::Arc<crate::lifecycle::Controller<P>>,
    change: Change,
) -> Result<(), Status> {
    let controller = controller.clone();
    detached(async move {
        match change {
            Change::Start => controller.start().await,
            Change::Stop(timeout) => controller.stop(timeout).await,
            Change::Pause(timeout) => controller.pause(timeout).await,
            Change::Resume(timeout) => controller.resume(timeout).await,
        }
    })
    .await?
    .map_err(to_grpc)
}

/// Runs a seek's `store` while the pipeline is idle (see [`Controller::while_idle`]),
/// detached like [`change`].
///
/// [`Controller::while_idle`]: crate::lifecycle::Controller::while_idle
pub async fn seek_while_idle<P, T, Fut>(
    controller: &std::sync::Arc<crate::lifecycle::Controller<P>>,
    deadline: Duration,
    store: impl FnOnce() -> Fut + Send + 'static,
) -> Result<T, Status>
where
    P: crate::lifecycle::Pipeline,
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let controller = controller.clone();
    detached(async move { controller.while_idle("seek", deadline, store).await })
        .await?
        .map_err(to_grpc)
}

/// A seek request's `boundary`: earliest (`true`) or latest (`false`).
pub fn earliest_boundary(value: i32) -> Result<bool, Status> {
    match pb::Boundary::try_from(value) {
        Ok(pb::Boundary::Earliest) => Ok(true),
        Ok(pb::Boundary::Latest) => Ok(false),
        _ => Err(Status::invalid_argument(format!(
            "boundary {value} is neither BOUNDARY_EARLIEST nor BOUNDARY_LATEST"
        ))),
    }
}

/// The state and error a status reports: the controller's view over the pipeline's own
/// report (a run in progress has no error unless it is retrying).
pub fn reported_state(
    view: &ControlView,
    phase: State,
    pipeline_error: Option<&String>,
) -> (State, Option<String>) {
    let state = view.state(phase);
    let error = match state {
        State::Running | State::Paused | State::Starting | State::Snapshotting => None,
        State::Retrying => pipeline_error.cloned(),
        _ => view.error.clone().or_else(|| pipeline_error.cloned()),
    };
    (state, error)
}

/// Runs a controller request to its end even if the caller goes away: a client that gives up
/// (or resets the stream) must not leave a stop, a seek or a restart half done.
async fn detached<T, F>(request: F) -> Result<T, Status>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(request)
        .await
        .map_err(|e| Status::internal(format!("the control request failed: {e}")))
}

/// The stream of WatchStatus: the status at once, then on every change of the pipeline's
/// status or the controller's view (at most every 100 ms, except that a change of the reported
/// state is sent at once, so no state is ever coalesced away), and at least every second.
/// `phase` reads the pipeline's own state from its status. Ends when the client goes away or
/// the server shuts down (`stop`), so that open streams never hold up a graceful exit.
pub fn watch<S, M, P, F>(
    mut status: watch::Receiver<S>,
    mut view: watch::Receiver<ControlView>,
    stop: CancellationToken,
    phase: P,
    render: F,
) -> impl Stream<Item = Result<M, Status>> + Send + 'static
where
    S: Clone + Send + Sync + 'static,
    M: Send + 'static,
    P: Fn(&S) -> State + Send + 'static,
    F: Fn(&S) -> M + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let current = status.borrow_and_update().clone();
            let shown = view.borrow_and_update().state(phase(&current));
            // A client that reads slowly must not hold up a shutdown.
            tokio::select! {
                sent = tx.send(Ok(render(&current))) => if sent.is_err() { return },
                () = stop.cancelled() => return,
            }
            // The minimum gap between updates, cut short when the reported state changes.
            let gap = tokio::time::sleep(WATCH_MIN_INTERVAL);
            tokio::pin!(gap);
            let mut pending = false;
            loop {
                tokio::select! {
                    () = &mut gap => break,
                    changed = status.changed() => if changed.is_err() { return } else { pending = true },
                    changed = view.changed() => if changed.is_err() { return } else { pending = true },
                    () = stop.cancelled() => return,
                }
                if view.borrow().state(phase(&status.borrow())) != shown {
                    break;
                }
            }
            if pending {
                continue;
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                changed = view.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(WATCH_MAX_INTERVAL - WATCH_MIN_INTERVAL) => {}
                () = tx.closed() => return,
                () = stop.cancelled() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Keeps the health of `service` SERVING while the pipeline is RUNNING, SNAPSHOTTING or PAUSED,
/// NOT_SERVING otherwise, until `stop` (readiness). The server's overall health `""` stays
/// SERVING while the process answers (liveness): a stopped or failed pipeline is no reason to
/// restart the process.
fn follow_health<T>(
    reporter: tonic_health::server::HealthReporter,
    service: &'static str,
    mut status: watch::Receiver<T>,
    mut view: watch::Receiver<ControlView>,
    phase: impl Fn(&T) -> State + Send + 'static,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let state = view
                .borrow_and_update()
                .state(phase(&status.borrow_and_update()));
            let serving = matches!(state, State::Running | State::Snapshotting | State::Paused);
            if last != Some(serving) {
                let health = if serving {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status(service, health).await;
                last = Some(serving);
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                changed = view.changed() => if changed.is_err() { return },
                () = stop.cancelled() => return,
            }
        }
    })
}

/// What a control endpoint serves besides the standard services.
pub struct Endpoint<T> {
    /// The service's routes (`Routes::new(CaptureControlServer::new(…))`).
    pub routes: tonic::service::Routes,
    /// Its full name, for the health service (`rowferry.capture.v1.CaptureControl`).
    pub service: &'static str,
    /// The pipeline's status.
    pub status: watch::Receiver<T>,
    /// The controller's view.
    pub view: watch::Receiver<ControlView>,
    /// TLS, if any (the token is checked by the routes' interceptor).
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    /// Control requests served at once.
    pub max_concurrent_requests: usize,
}

/// The span of one control request: `rpc.*` attributes after the OpenTelemetry semantic
/// conventions, parented by the request's `traceparent` when it has one.
fn request_span<B>(request: &tonic::codegen::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let Some((service, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(service, _)| service.starts_with("rowferry."))
    else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        "grpc request",
        otel.name = %format!("{service}/{method}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    crate::telemetry::propagation::continue_request(&span, request.headers());
    span
}

/// Serves `endpoint` with the health service (following the state) and reflection on
/// `listener` until `shutdown` fires.
pub async fn serve<T: Send + Sync + 'static>(
    listener: tokio::net::TcpListener,
    endpoint: Endpoint<T>,
    phase: impl Fn(&T) -> State + Send + 'static,
    shutdown: CancellationToken,
) -> Result<(), EndpointError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (health, health_service) = tonic_health::server::health_reporter();
    // Both names answer from the first request on: the process is live, the pipeline not
    // ready until follow_health says so.
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    health
        .set_service_status(endpoint.service, tonic_health::ServingStatus::NotServing)
        .await;
    let health_task = follow_health(
        health,
        endpoint.service,
        endpoint.status,
        endpoint.view,
        phase,
        shutdown.clone(),
    );
    let reflection = reflection(endpoint.service)?;
    let tls = endpoint.tls.is_some();
    tracing::info!(%address, service = endpoint.service, tls, "gRPC control endpoint listening");
    let mut builder = tonic::transport::Server::builder();
    if let Some(config) = endpoint.tls {
        builder = builder
            .tls_config(config)
            .map_err(|e| EndpointError::Config {
                key: "control.tls_cert",
                detail: format!("cannot be used: {e}"),
            })?;
    }
    // Every control request gets a span (exported with traces, continuing the caller's
    // `traceparent`); health and reflection calls stay out of traces. A global limit keeps a
    // burst of control calls from crowding out the pipeline.
    let layers = tower::ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_grpc().make_span_with(request_span))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            endpoint.max_concurrent_requests.max(1),
        ));
    let served = builder
        .layer(layers)
        .add_routes(endpoint.routes)
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        )
        .await;
    health_task.abort();
    served.map_err(|e| EndpointError::Serve {
        address,
        detail: e.to_string(),
    })
}

/// Server reflection over every rowferry proto.
/// Lists exactly what this endpoint serves: `service`, the health service (with its schema,
/// so grpcurl can call it) and reflection itself — not the other service's API, whose schema
/// shares the descriptor set.
fn reflection(
    service: &str,
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    EndpointError,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(service)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
        .map_err(|e| EndpointError::Serve {
            address: String::new(),
            detail: format!("reflection: {e}"),
        })
}

/// Why the control endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The listen address does not parse.
    #[error("invalid control.grpc_listen {0:?}: expected host:port, e.g. 127.0.0.1:50051")]
    Address(String),
    /// A security setting cannot be used.
    #[error("invalid configuration: `{key}` {detail}")]
    Config {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// Binding or serving failed.
    #[error("gRPC control endpoint on {address}: {detail}")]
    Serve {
        /// The address.
        address: String,
        /// What went wrong.
        detail: String,
    },
}

/// Binds the control endpoint (before the pipeline starts, so a taken port is an error at
/// startup, not a silent absence).
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener, EndpointError> {
    let address: SocketAddr = listen
        .parse()
        .map_err(|_| EndpointError::Address(listen.to_owned()))?;
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| EndpointError::Serve {
            address: listen.to_owned(),
            detail: format!("{e}; choose another port with control.grpc_listen"),
        })
}

/// The life of a service process around its controller: start the pipeline if `autostart`,
/// log state changes, and on SIGTERM/SIGINT stop it gracefully (within `stop_timeout`).
///
/// With a control endpoint (`endpoint` is its stop token and task) the process keeps running
/// whatever the pipeline does — a FAILED pipeline waits for a Start — until a signal, and then
/// returns `Ok`. Without one there is no way to restart the pipeline, so the process returns
/// when the run ends: `Ok` when it stopped, the error when it failed.
pub async fn run_process<P: crate::lifecycle::Pipeline>(
    controller: std::sync::Arc<crate::lifecycle::Controller<P>>,
    endpoint: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    autostart: bool,
    stop_timeout: Duration,
) -> Result<(), String> {
    let logger = {
        let mut view = controller.subscribe();
        let controller = controller.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let state = controller.state();
                if last != Some(state) {
                    match view.borrow_and_update().error.clone() {
                        Some(error) if state == State::Failed => {
                            tracing::error!(%state, %error, "pipeline state");
                        }
                        _ => tracing::info!(%state, "pipeline state"),
                    }
                    last = Some(state);
                }
                tokio::select! {
                    changed = view.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        })
    };
    if autostart {
        controller.start().await.map_err(|e| e.to_string())?;
    }
    let result = match &endpoint {
        Some(_) => {
            crate::signal::stop_signal().await;
            Ok(())
        }
        None => {
            let mut view = controller.subscribe();
            tokio::select! {
                () = crate::signal::stop_signal() => Ok(()),
                ended = view.wait_for(|v| !v.state.is_active()) => match ended {
                    Ok(v) => v.error.clone().filter(|_| v.state == State::Failed).map_or(Ok(()), Err),
                    Err(_) => Ok(()),
                },
            }
        }
    };
    if controller.state().is_active() {
        tracing::info!("stop requested: finishing the work in flight");
        let _ = controller.stop(stop_timeout).await;
    }
    if let Some((stop, server)) = endpoint {
        stop.cancel();
        let _ = server.await;
    }
    logger.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn a_state_shorter_than_the_update_gap_is_still_streamed() {
        let (phase, phase_rx) = watch::channel(State::Starting);
        let (_view, view_rx) = watch::channel(ControlView {
            state: State::Starting,
            paused: false,
            error: None,
        });
        let stop = CancellationToken::new();
        let stream = watch(
            phase_rx,
            view_rx,
            stop.clone(),
            |s: &State| *s,
            |s: &State| *s,
        );
        tokio::pin!(stream);
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .ok()
                .flatten()
                .and_then(Result::ok)
        };
        assert_eq!(next().await, Some(State::Starting));
        // RUNNING for 10 ms, well inside the 100 ms between two updates.
        phase.send_replace(State::Running);
        tokio::time::sleep(Duration::from_millis(10)).await;
        phase.send_replace(State::Retrying);
        assert_eq!(next().await, Some(State::Running));
        assert_eq!(next().await, Some(State::Retrying));
        stop.cancel();
    }
}
