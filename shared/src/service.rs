//! A service process around its pipeline: the async runtime, telemetry, the metrics
//! endpoint, the gRPC control endpoint and the signals that stop it. Both binaries are this
//! plus their pipeline.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ControlConfig;
use crate::control::{self, Security};
use crate::lifecycle::{Controller, Pipeline};
use crate::telemetry::metrics_endpoint::{self, Probe};
use crate::telemetry::{self, LogConfig};

/// Runs `body` on a two-thread runtime with telemetry installed (inside the runtime: the OTLP
/// gRPC exporter needs it), logs a failure, and flushes queued spans before returning.
pub fn main<F, Fut>(service: &'static str, log: &LogConfig, body: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let telemetry = telemetry::init(service, env!("CARGO_PKG_VERSION"), log)?;
        let result = body().await;
        if let Err(error) = &result {
            tracing::error!(error = %format!("{error:#}"), "{service} exits");
        }
        // Flushing spans blocks: keep it off the runtime's worker threads.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        result
    })
}

/// Where a service listens.
pub struct Endpoints<'a> {
    /// `[control]`.
    pub control: &'a ControlConfig,
    /// The service's default control address.
    pub control_default: &'a str,
    /// The metrics endpoint's address (empty: off).
    pub metrics_listen: &'a str,
}

/// Serves the metrics endpoint and (unless disabled) the control endpoint, which
/// `serve_control` runs on the bound listener, then lives the process's life around
/// `controller` ([`control::run_process`]).
pub async fn serve<P, S, Fut, E>(
    controller: Arc<Controller<P>>,
    endpoints: Endpoints<'_>,
    probe: Arc<dyn Probe>,
    describe_metrics: fn(),
    serve_control: S,
) -> anyhow::Result<()>
where
    P: Pipeline,
    S: FnOnce(TcpListener, Security, usize, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let metrics =
        metrics_endpoint::start(endpoints.metrics_listen, probe, describe_metrics).await?;
    let listen = endpoints.control.listen(endpoints.control_default);
    let endpoint = if listen.is_empty() {
        None
    } else {
        let security = Security::from_config(endpoints.control)?;
        let listener = control::bind(listen).await?;
        let stop = CancellationToken::new();
        let served = serve_control(
            listener,
            security,
            endpoints.control.max_concurrent_requests,
            stop.clone(),
        );
        let server = tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::error!(%error, "control endpoint stopped");
            }
        });
        Some((stop, server))
    };
    let result = control::run_process(
        controller,
        endpoint,
        endpoints.control.autostart,
        control::DEFAULT_TIMEOUT,
    )
    .await
    .map_err(anyhow::Error::msg);
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    result
}
