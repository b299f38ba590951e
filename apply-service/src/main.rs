//! rowferry-apply: consumes change topics and applies them to a target MySQL, exactly once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rowferry_apply::config::ApplyConfig;
use rowferry_apply::control::{self, ApplyPipeline, Control};
use rowferry_apply::metrics::{self, ApplyProbe};
use rowferry_apply::status;
use rowferry_shared::lifecycle::Controller;
use rowferry_shared::telemetry::{self, metrics_endpoint};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// rowferry-apply: consumes rowferry change topics and applies them to a target MySQL.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Every key can be overridden by an environment variable
    /// `ROWFERRY_APPLY_<SECTION>__<KEY>`.
    #[arg(long, env = "ROWFERRY_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = ApplyConfig::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // The OTLP gRPC exporter needs the runtime: telemetry starts inside it.
        let telemetry = telemetry::init("rowferry-apply", env!("CARGO_PKG_VERSION"), &config.log)?;
        let result = serve(config).await;
        if let Err(error) = &result {
            tracing::error!(error = %format!("{error:#}"), "rowferry-apply exits");
        }
        // Flushing queued spans blocks: keep it off the runtime's worker threads.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        result
    })
}

async fn serve(config: ApplyConfig) -> anyhow::Result<()> {
    let (status_tx, status_rx) = status::channel();
    let name = config.name.clone();
    let group_id = config.group_id().to_owned();
    let control_config = config.control.clone();
    let metrics_listen = config
        .metrics
        .listen(rowferry_apply::config::DEFAULT_METRICS_LISTEN)
        .to_owned();
    let pipeline = Arc::new(ApplyPipeline::new(config, status_tx));
    let controller = Arc::new(Controller::new("apply", pipeline));
    let probe = Arc::new(ApplyProbe::new(status_rx, controller.subscribe()));
    let metrics = metrics_endpoint::start(&metrics_listen, probe, metrics::describe).await?;
    let listen = control_config.listen(rowferry_apply::config::DEFAULT_GRPC_LISTEN);
    let endpoint = if listen.is_empty() {
        None
    } else {
        let security = rowferry_shared::control::Security::from_config(&control_config)?;
        let max_concurrent = control_config.max_concurrent_requests;
        let listener = control::bind(listen).await?;
        let stop = CancellationToken::new();
        let service = Control::new(name, group_id, controller.clone());
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                if let Err(error) =
                    control::serve(listener, service, security, max_concurrent, stop).await
                {
                    tracing::error!(%error, "control endpoint stopped");
                }
            }
        });
        Some((stop, server))
    };
    let result = rowferry_shared::control::run_process(
        controller,
        endpoint,
        control_config.autostart,
        rowferry_shared::control::DEFAULT_TIMEOUT,
    )
    .await
    .map_err(|error| anyhow::anyhow!(error));
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    result
}
