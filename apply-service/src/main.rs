//! rowferry-apply: consumes change topics and applies them to a target MySQL, exactly once.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rowferry_apply::config::ApplyConfig;
use rowferry_apply::control::{self, ApplyPipeline, Control};
use rowferry_apply::status;
use rowferry_shared::lifecycle::Controller;
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
        let (status_tx, _) = status::channel();
        let name = config.name.clone();
        let group_id = config.group_id().to_owned();
        let control_config = config.control.clone();
        let pipeline = Arc::new(ApplyPipeline::new(config, status_tx));
        let controller = Arc::new(Controller::new("apply", pipeline));
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
        rowferry_shared::control::run_process(
            controller,
            endpoint,
            control_config.autostart,
            rowferry_shared::control::DEFAULT_TIMEOUT,
        )
        .await
        .map_err(|error| anyhow::anyhow!(error))
    })
}
