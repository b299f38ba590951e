//! rowferry-apply: consumes change topics and applies them to a target MySQL, exactly once.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rowferry_apply::config::ApplyConfig;
use rowferry_apply::{pipeline, status};
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = ApplyConfig::load(cli.config.as_deref())?;
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
                tracing::info!("stop requested: finishing the batches in flight");
                cancel.cancel();
            })
        };
        tokio::spawn(async move {
            let mut last = None;
            while status_rx.changed().await.is_ok() {
                let state = status_rx.borrow().state;
                if last != Some(state) {
                    tracing::info!(?state, "apply state");
                    last = Some(state);
                }
            }
        });
        let result = pipeline::run(config, status_tx, cancel).await;
        signals.abort();
        result.map_err(anyhow::Error::from)
    })
}
