//! `flowprobe serve`: the daemon that schedules scenarios and serves metrics. (Skeleton.)

use std::path::PathBuf;

use clap::Args;

/// Arguments of `flowprobe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Scenario files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn command(_args: ServeArgs) -> Result<i32, crate::cli::CliError> {
    eprintln!("flowprobe serve is not available in this build yet");
    Ok(crate::cli::exit::INVALID)
}
