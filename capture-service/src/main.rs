//! rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed
//! row, exactly once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rowferry_capture::config::CaptureConfig;
use rowferry_capture::control::{self, CapturePipeline, Control};
use rowferry_capture::metrics::{self, CaptureProbe};
use rowferry_capture::status;
use rowferry_shared::lifecycle::Controller;
use rowferry_shared::telemetry::{self, metrics_endpoint};
use tokio_util::sync::CancellationToken;

// Capture allocates a few small buffers per row; mimalloc makes that markedly cheaper than
// glibc's allocator (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed row.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Every key can be overridden by an environment variable
    /// `ROWFERRY_CAPTURE_<SECTION>__<KEY>`.
    #[arg(long, env = "ROWFERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Start at this position instead of the stored one: `earliest`, `latest`, `file:pos` or
    /// `gtid:<set>`. The stored position is replaced at the first commit.
    #[arg(long, value_name = "POSITION")]
    seek: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = CaptureConfig::load(cli.config.as_deref())?;
    if cli.seek.is_some() {
        config.source.seek = cli.seek;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // The OTLP gRPC exporter needs the runtime: telemetry starts inside it.
        let telemetry =
            telemetry::init("rowferry-capture", env!("CARGO_PKG_VERSION"), &config.log)?;
        let result = serve(config).await;
        if let Err(error) = &result {
            tracing::error!(error = %format!("{error:#}"), "rowferry-capture exits");
        }
        // Flushing queued spans blocks: keep it off the runtime's worker threads.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        result
    })
}

async fn serve(config: CaptureConfig) -> anyhow::Result<()> {
    let (status_tx, status_rx) = status::channel();
    let name = config.name.clone();
    let control_config = config.control.clone();
    let metrics_listen = config
        .metrics
        .listen(rowferry_capture::config::DEFAULT_METRICS_LISTEN)
        .to_owned();
    let pipeline = Arc::new(CapturePipeline::new(config, status_tx));
    let controller = Arc::new(Controller::new("capture", pipeline));
    let probe = Arc::new(CaptureProbe::new(status_rx, controller.subscribe()));
    let metrics = metrics_endpoint::start(&metrics_listen, probe, metrics::describe).await?;
    let listen = control_config.listen(rowferry_capture::config::DEFAULT_GRPC_LISTEN);
    let endpoint = if listen.is_empty() {
        None
    } else {
        let security = rowferry_shared::control::Security::from_config(&control_config)?;
        let max_concurrent = control_config.max_concurrent_requests;
        let listener = control::bind(listen).await?;
        let stop = CancellationToken::new();
        let service = Control::new(name, controller.clone());
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
