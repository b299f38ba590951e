//! rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed row.
//!
//! The pipeline is built in issue #3; until then the binary only answers `--help` and
//! `--version`, and refuses to run rather than pretend to.

use clap::Parser;

/// rowferry-capture: reads a MySQL/MariaDB binlog and publishes one Kafka record per changed row.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, env = "ROWFERRY_CONFIG")]
    config: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("rowferry-capture cannot run yet: its pipeline is not built (issue #3)")
}
