//! The command line: `run`, `validate`, `schema` (and the exit codes they return).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::outcome::ScenarioOutcome;
use crate::report;
use crate::scenario::{load_paths, Diagnostic, LoadOptions, LoadedScenario};

/// Exit codes of `flowprobe run` (and the other commands).
pub mod exit {
    /// Every scenario passed.
    pub const OK: i32 = 0;
    /// At least one scenario failed.
    pub const FAILED: i32 = 1;
    /// The input is invalid; nothing was run.
    pub const INVALID: i32 = 2;
    /// Every scenario passed but a declared threshold was breached.
    pub const THRESHOLD: i32 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "flowprobe",
    version,
    about = "Synthetic end-to-end user-flow prober"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios once (a smoke test): per-step results, reports, exit code.
    Run(RunArgs),
    /// Check scenarios without running them.
    Validate(ValidateArgs),
    /// Run scenarios on their schedules and serve /metrics, /healthz, /readyz, /status.
    Serve(crate::serve::ServeArgs),
    /// Generate Prometheus recording and burn-rate alert rules from scenarios' `slo:` blocks.
    Slo(crate::slo::SloArgs),
    /// Print the JSON Schema of the scenario format (for editors).
    Schema,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, or directories searched for *.yaml / *.yml.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Scenarios run at the same time.
    #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Runs of each scenario, one after another.
    #[arg(short = 'n', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    /// Start no new run after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Set a scenario var: --var ingress=https://127.0.0.1:8443 (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub vars: Vec<(String, String)>,
    /// Write a report: --report json=FILE, --report junit=FILE (repeatable).
    #[arg(long = "report", value_name = "FORMAT=FILE", value_parser = parse_report)]
    pub reports: Vec<(ReportFormat, PathBuf)>,
    /// No colour, even on a terminal.
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Set a scenario var (as for `run`).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub vars: Vec<(String, String)>,
    /// Do not check that secret sources (env vars, files) exist here.
    #[arg(long)]
    pub skip_secrets: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Junit,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}

fn parse_report(s: &str) -> Result<(ReportFormat, PathBuf), String> {
    let (f, path) = parse_kv(s)?;
    let format = match f.as_str() {
        "json" => ReportFormat::Json,
        "junit" => ReportFormat::Junit,
        other => {
            return Err(format!(
                "unknown report format `{other}`: expected json or junit"
            ))
        }
    };
    Ok((format, PathBuf::from(path)))
}

/// Errors at the binary's edge that are not scenario outcomes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot write report {path}: {source}")]
    Report {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot render report: {0}")]
    Render(#[from] serde_json::Error),
}

/// Prints diagnostics to stderr, with a count.
fn print_diagnostics(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{d}\n");
    }
    let _ = writeln!(
        err,
        "{} error{} found; nothing was run",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Validate(args) => Ok(validate(args)),
        Command::Serve(args) => crate::serve::command(args).await,
        Command::Slo(args) => crate::slo::command(args).await,
        Command::Schema => {
            let schema = schemars::schema_for!(crate::scenario::Scenario);
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(exit::OK)
        }
    }
}

fn validate(args: ValidateArgs) -> i32 {
    let opts = LoadOptions {
        vars: args.vars.into_iter().collect(),
        check_secrets: !args.skip_secrets,
    };
    match load_paths(&args.paths, &opts) {
        Ok(list) => {
            for sc in &list {
                println!(
                    "OK {} ({}, {} steps)",
                    sc.file.display(),
                    sc.name(),
                    sc.steps.len() + sc.finally.len()
                );
            }
            exit::OK
        }
        Err(diags) => {
            print_diagnostics(&diags);
            exit::INVALID
        }
    }
}

async fn run(args: RunArgs) -> Result<i32, CliError> {
    let opts = LoadOptions {
        vars: args.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
        check_secrets: true,
    };
    let scenarios = match load_paths(&args.paths, &opts) {
        Ok(list) => list,
        Err(diags) => {
            print_diagnostics(&diags);
            return Ok(exit::INVALID);
        }
    };
    let color = report::terminal::use_color(args.no_color);
    let declared = crate::thresholds::declared(&scenarios);
    let started = std::time::Instant::now();
    let outcomes = run_all(
        scenarios,
        args.jobs as usize,
        args.iterations,
        args.fail_fast,
        |o| {
            print!(
                "{}",
                report::terminal::render_outcome(o, color, args.iterations > 1)
            );
            let _ = std::io::stdout().flush();
        },
    )
    .await;
    print!(
        "{}",
        report::terminal::render_summary(&outcomes, started.elapsed(), color)
    );
    let verdicts = crate::thresholds::evaluate(&declared, &outcomes);
    if !verdicts.is_empty() {
        print!("{}", crate::thresholds::render_terminal(&verdicts, color));
    }
    for (format, path) in &args.reports {
        let text = match format {
            ReportFormat::Json => report::json::render_with_thresholds(&outcomes, &verdicts)?,
            ReportFormat::Junit => report::junit::render(&outcomes, &verdicts),
        };
        std::fs::write(path, text).map_err(|source| CliError::Report {
            path: path.clone(),
            source,
        })?;
    }
    Ok(if !outcomes.iter().all(|o| o.success) {
        exit::FAILED
    } else if verdicts.iter().any(|v| !v.passed) {
        exit::THRESHOLD
    } else {
        exit::OK
    })
}

/// Runs every scenario `iterations` times, at most `jobs` runs at once; calls `on_done` as each
/// run finishes. Outcomes come back in scenario order, then iteration order.
pub async fn run_all(
    scenarios: Vec<LoadedScenario>,
    jobs: usize,
    iterations: u32,
    fail_fast: bool,
    mut on_done: impl FnMut(&ScenarioOutcome),
) -> Vec<ScenarioOutcome> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (index, sc) in scenarios.into_iter().enumerate() {
        let (permits, stop, tx) = (permits.clone(), stop.clone(), tx.clone());
        tokio::spawn(async move {
            for iteration in 1..=iterations {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let outcome = crate::runner::run_scenario(&sc, iteration).await;
                if fail_fast && !outcome.success {
                    stop.store(true, Ordering::SeqCst);
                }
                if tx.send((index, outcome)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut all = Vec::new();
    while let Some((index, outcome)) = rx.recv().await {
        on_done(&outcome);
        all.push((index, outcome));
    }
    all.sort_by_key(|(i, o)| (*i, o.iteration));
    all.into_iter().map(|(_, o)| o).collect()
}
