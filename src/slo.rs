//! `flowprobe slo`: Prometheus rules generated from each scenario's `slo:` block. (Skeleton.)

use std::path::PathBuf;

use clap::Args;

/// Arguments of `flowprobe slo`.
#[derive(Debug, Args)]
pub struct SloArgs {
    /// Scenario files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Generates the rules; returns the exit code.
pub async fn command(_args: SloArgs) -> Result<i32, crate::cli::CliError> {
    eprintln!("flowprobe slo is not available in this build yet");
    Ok(crate::cli::exit::INVALID)
}
