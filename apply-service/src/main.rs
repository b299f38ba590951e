//! rowferry-apply: consumes change topics and applies them to a target MySQL, exactly once.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use rowferry_apply::config::{ApplyConfig, DEFAULT_GRPC_LISTEN, DEFAULT_METRICS_LISTEN};
use rowferry_apply::control::{self, ApplyPipeline, Control};
use rowferry_apply::metrics::{self, ApplyProbe};
use rowferry_apply::status;
use rowferry_shared::lifecycle::Controller;
use rowferry_shared::service::{self, Endpoints};

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
    let log = config.log.clone();
    service::main("rowferry-apply", &log, move || async move {
        let (status_tx, status_rx) = status::channel();
        let name = config.name.clone();
        let group_id = config.group_id().to_owned();
        let control_config = config.control.clone();
        let metrics_listen = config.metrics.listen(DEFAULT_METRICS_LISTEN).to_owned();
        let pipeline = Arc::new(ApplyPipeline::new(config, status_tx));
        let controller = Arc::new(Controller::new("apply", pipeline));
        let probe = Arc::new(ApplyProbe::new(status_rx, controller.subscribe()));
        let control = Control::new(name, group_id, controller.clone());
        let endpoints = Endpoints {
            control: &control_config,
            control_default: DEFAULT_GRPC_LISTEN,
            metrics_listen: &metrics_listen,
        };
        service::serve(
            controller,
            endpoints,
            probe,
            metrics::describe,
            move |listener, security, max_concurrent, stop| {
                control::serve(listener, control, security, max_concurrent, stop)
            },
        )
        .await
    })
}
