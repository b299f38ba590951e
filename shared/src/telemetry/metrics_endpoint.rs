//! The HTTP endpoint beside the gRPC one: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (the pipeline runs).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is taken or invalid.
    #[error(
        "cannot listen on {address} for metrics: {source}; set metrics.listen to a free \
         address, or to \"\" to turn the endpoint off"
    )]
    Bind {
        /// The configured address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A recorder was installed already, or the buckets are wrong.
    #[error("cannot install the metrics recorder: {0}")]
    Recorder(String),
    /// Serving failed.
    #[error("the metrics endpoint failed: {0}")]
    Serve(std::io::Error),
}

/// What a service tells the endpoint.
pub trait Probe: Send + Sync + 'static {
    /// Brings the metrics taken from the status up to date (called before each scrape).
    fn refresh(&self);
    /// `Ok` when the service is ready (its pipeline runs or is paused); else why not.
    fn ready(&self) -> Result<(), String>;
}

/// Latency buckets (seconds): sub-millisecond statements to half-minute commits.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Size buckets (records or changes per transaction / batch).
const SIZE_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0, 100000.0,
];

/// Installs the process-wide recorder: histograms named `…_seconds` and `…_records` /
/// `…_changes` get buckets. Until this runs the `metrics` macros record nothing.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let recorder =
        |e: metrics_exporter_prometheus::BuildError| MetricsError::Recorder(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(recorder)?
        .set_buckets_for_metric(Matcher::Suffix("_records".into()), SIZE_BUCKETS)
        .map_err(recorder)?
        .set_buckets_for_metric(Matcher::Suffix("_changes".into()), SIZE_BUCKETS)
        .map_err(recorder)?
        .install_recorder()
        .map_err(recorder)?;
    Ok(handle)
}

/// Binds the endpoint's address (at startup, so a taken port fails the process at once).
pub async fn bind(address: &str) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind {
            address: address.to_owned(),
            source,
        })
}

struct Endpoint {
    handle: PrometheusHandle,
    probe: Arc<dyn Probe>,
}

async fn metrics(State(endpoint): State<Arc<Endpoint>>) -> impl IntoResponse {
    endpoint.probe.refresh();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        endpoint.handle.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoint): State<Arc<Endpoint>>) -> (StatusCode, String) {
    match endpoint.probe.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Serves the endpoint on `listener` until `stop`; drains histogram samples every few
/// seconds even when nobody scrapes.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    probe: Arc<dyn Probe>,
    stop: CancellationToken,
) -> Result<(), MetricsError> {
    let upkeep = tokio::spawn({
        let handle = handle.clone();
        let stop = stop.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => handle.run_upkeep(),
                }
            }
        }
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(Endpoint { handle, probe }));
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "metrics endpoint listening (/metrics, /healthz, /readyz)");
    }
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await;
    upkeep.abort();
    served.map_err(MetricsError::Serve)
}

/// A running endpoint.
pub struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Installs the recorder, runs `describe` (help texts) and serves on `listen`; `None` when
/// `listen` is empty (endpoint off: the `metrics` macros then record nothing).
pub async fn start(
    listen: &str,
    probe: Arc<dyn Probe>,
    describe: fn(),
) -> Result<Option<Running>, MetricsError> {
    if listen.is_empty() {
        return Ok(None);
    }
    let listener = bind(listen).await?;
    let handle = install_recorder()?;
    describe();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            if let Err(error) = serve(listener, handle, probe, stop).await {
                tracing::error!(%error, "metrics endpoint stopped");
            }
        }
    });
    Ok(Some(Running { stop, task }))
}

/// Sets the counter `metric{op}` for each operation from per-table counts (copied from a
/// service's status at scrape time).
pub fn set_rows_by_op(metric: &'static str, tables: &crate::control::TableCounts) {
    let mut ops = crate::control::OpCounts::default();
    for counts in tables.values() {
        ops.merge(counts);
    }
    for (op, count) in [
        ("c", ops.inserts),
        ("u", ops.updates),
        ("d", ops.deletes),
        ("r", ops.reads),
    ] {
        metrics::counter!(metric, "op" => op).absolute(count);
    }
}

/// Sets the gauge `metric{state}` to 1 for `current` and 0 for the other `states`.
pub fn set_state(
    metric: &'static str,
    states: &[crate::lifecycle::State],
    current: crate::lifecycle::State,
) {
    for state in states {
        metrics::gauge!(metric, "state" => state.as_str()).set(if *state == current {
            1.0
        } else {
            0.0
        });
    }
}

/// A service's status as the endpoint reads it: the pipeline's own status and the
/// controller's view, which adds PAUSED (and STOPPED/FAILED between runs).
pub struct Watched<S> {
    status: tokio::sync::watch::Receiver<S>,
    control: tokio::sync::watch::Receiver<crate::lifecycle::ControlView>,
    phase: fn(&S) -> crate::lifecycle::State,
}

impl<S: Clone> Watched<S> {
    /// Watches `status` (whose state `phase` reads) and the controller's `control` view.
    pub fn new(
        status: tokio::sync::watch::Receiver<S>,
        control: tokio::sync::watch::Receiver<crate::lifecycle::ControlView>,
        phase: fn(&S) -> crate::lifecycle::State,
    ) -> Self {
        Self {
            status,
            control,
            phase,
        }
    }

    /// The state the service reports.
    pub fn state(&self) -> crate::lifecycle::State {
        let phase = (self.phase)(&self.status.borrow());
        self.control.borrow().state(phase)
    }

    /// A copy of the pipeline's status.
    pub fn status(&self) -> S {
        self.status.borrow().clone()
    }
}
