//! rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed
//! row, exactly once.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use rowferry_capture::config::{CaptureConfig, DEFAULT_GRPC_LISTEN, DEFAULT_METRICS_LISTEN};
use rowferry_capture::control::{self, CapturePipeline, Control};
use rowferry_capture::metrics::{self, CaptureProbe};
use rowferry_capture::status;
use rowferry_shared::lifecycle::Controller;
use rowferry_shared::service::{self, Endpoints};

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
    let log = config.log.clone();
    service::main("rowferry-capture", &log, move || async move {
        let (status_tx, status_rx) = status::channel();
        let name = config.name.clone();
        let control_config = config.control.clone();
        let metrics_listen = config.metrics.listen(DEFAULT_METRICS_LISTEN).to_owned();
        let pipeline = Arc::new(CapturePipeline::new(config, status_tx));
        let controller = Arc::new(Controller::new("capture", pipeline));
        let probe = Arc::new(CaptureProbe::new(status_rx, controller.subscribe()));
        let control = Control::new(name, controller.clone());
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
