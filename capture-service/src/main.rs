//! rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed
//! row, exactly once.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rowferry_capture::config::CaptureConfig;
use rowferry_capture::control::{self, Control};
use rowferry_capture::{pipeline, status};
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
        let cancel = CancellationToken::new();
        let (status_tx, mut status_rx) = status::channel();
        let signals = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                rowferry_shared::signal::stop_signal().await;
                tracing::info!("stop requested: finishing the transaction in flight");
                cancel.cancel();
            })
        };
        let server_stop = CancellationToken::new();
        let server = if config.control.grpc_listen.is_empty() {
            None
        } else {
            let control = Control::new(config.name.clone(), status_rx.clone());
            let listener = control::bind(&config.control.grpc_listen).await?;
            let stop = server_stop.clone();
            Some(tokio::spawn(async move {
                if let Err(error) = control::serve(listener, control, stop).await {
                    tracing::error!(%error, "control endpoint stopped");
                }
            }))
        };
        tokio::spawn(async move {
            let mut last = None;
            while status_rx.changed().await.is_ok() {
                let state = status_rx.borrow().state;
                if last != Some(state) {
                    tracing::info!(?state, "capture state");
                    last = Some(state);
                }
            }
        });
        let result = pipeline::run(config, status_tx, cancel).await;
        signals.abort();
        server_stop.cancel();
        if let Some(server) = server {
            let _ = server.await;
        }
        result.map_err(anyhow::Error::from)
    })
}
