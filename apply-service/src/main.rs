//! rowferry-apply: consumes rowferry change topics and applies them to a target MySQL.
//!
//! The pipeline is built in issue #4; until then the binary only answers `--help` and
//! `--version`, and refuses to run rather than pretend to.

use clap::Parser;

/// rowferry-apply: consumes rowferry change topics and applies them to a target MySQL.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, env = "ROWFERRY_CONFIG")]
    config: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("rowferry-apply cannot run yet: its pipeline is not built (issue #4)")
}
