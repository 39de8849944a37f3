//! The command line: `run`, `validate`, `schema` (and the exit codes they return).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::outcome::ScenarioOutcome;
use crate::report;
use crate::run::RunControl;
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
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FLOWPROBE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Colour on the terminal: auto (a terminal without NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (or is not) a terminal. `auto` honours NO_COLOR
    /// (set and not empty); an explicit `always` or `never` wins over it.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
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
    /// Print a JSON Schema: of the scenario format (for editors), or with `status`, of serve's
    /// `/status` JSON document.
    Schema {
        #[arg(value_enum, default_value_t = SchemaOf::Scenario)]
        of: SchemaOf,
    },
    /// Print a shell completion script: `flowprobe completions bash > /etc/bash_completion.d/flowprobe`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `flowprobe man > /usr/local/share/man/man1/flowprobe.1`.
    Man,
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
    /// Write a report: --report json=FILE, --report junit=FILE, --report html=FILE (repeatable).
    #[arg(long = "report", value_name = "FORMAT=FILE", value_parser = parse_report)]
    pub reports: Vec<(ReportFormat, PathBuf)>,
    /// Same as `--color never` (kept for existing scripts).
    #[arg(long, hide = true)]
    pub no_color: bool,
    /// After SIGINT/SIGTERM, time the cancelled runs' `finally` steps and clean-ups get.
    #[arg(long, default_value = "10s", value_parser = parse_grace)]
    pub cleanup_grace: std::time::Duration,
}

/// Parses a grace period (`10s`, `1m30s`), at most one hour.
pub fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d > std::time::Duration::from_secs(3600) {
        return Err(format!("`{s}` is longer than 1h"));
    }
    Ok(d)
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
    Html,
}

/// What `flowprobe schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaOf {
    /// The scenario format.
    Scenario,
    /// Serve's `/status` JSON document.
    Status,
}

pub fn parse_kv(s: &str) -> Result<(String, String), String> {
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
        "html" => ReportFormat::Html,
        other => {
            return Err(format!(
                "unknown report format `{other}`: expected json, junit or html"
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

/// Prints load errors to stderr, with a count.
fn print_diagnostics(diags: &[Diagnostic]) {
    let text = crate::scenario::diagnostic::render_all(diags, "nothing was run");
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Runs the parsed command; returns the process exit code.
pub async fn dispatch(cli: Cli) -> Result<i32, CliError> {
    let color = cli.color;
    match cli.command {
        Command::Run(args) => run(args, color, cli.verbose > 0).await,
        Command::Validate(args) => Ok(validate(args)),
        Command::Serve(args) => crate::serve::command(args).await,
        Command::Slo(args) => crate::slo::command(args).await,
        Command::Schema { of } => {
            let schema = match of {
                SchemaOf::Scenario => schemars::schema_for!(crate::scenario::Scenario),
                SchemaOf::Status => crate::serve::status_schema::schema(),
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(exit::OK)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "flowprobe", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|source| CliError::Report {
                    path: PathBuf::from("-"),
                    source,
                })?;
            let _ = std::io::stdout().write_all(&out);
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

async fn run(args: RunArgs, color: ColorChoice, detail: bool) -> Result<i32, CliError> {
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
    let color = if args.no_color {
        ColorChoice::Never
    } else {
        color
    };
    let color = color.enabled(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let total = scenarios.len() as u32 * args.iterations;
    let mut progress = Progress::new(total, args.iterations > 1);
    let declared = crate::run::thresholds::declared(&scenarios);
    let started = std::time::Instant::now();
    let control = RunControl {
        cleanup_grace: args.cleanup_grace,
        ..RunControl::default()
    };
    let exporter = match start_otlp() {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let recorder = exporter.as_ref().map(|e| e.recorder());
    let signals = tokio::spawn(cancel_on_signal(control.cancel.clone()));
    let _ = tokio::task::spawn_blocking(crate::run::warm_up).await;
    let outcomes = run_all(
        scenarios,
        args.jobs as usize,
        args.iterations,
        args.fail_fast,
        &control,
        |o| {
            if let Some(r) = &recorder {
                r.record(o);
            }
            progress.clear();
            print!(
                "{}",
                report::terminal::render_outcome_with(o, color, args.iterations > 1, detail)
            );
            let _ = std::io::stdout().flush();
            progress.count(o.success);
        },
    )
    .await;
    progress.clear();
    signals.abort();
    print!(
        "{}",
        report::terminal::render_summary(&outcomes, started.elapsed(), color)
    );
    let verdicts = crate::run::thresholds::evaluate(&declared, &outcomes);
    if !verdicts.is_empty() {
        print!(
            "{}",
            crate::run::thresholds::render_terminal(&verdicts, color)
        );
    }
    write_reports(&args.reports, &outcomes, &verdicts)?;
    flush_spans(exporter).await;
    Ok(if !outcomes.iter().all(|o| o.success) {
        exit::FAILED
    } else if verdicts.iter().any(|v| !v.passed) {
        exit::THRESHOLD
    } else {
        exit::OK
    })
}

/// Sends the spans still queued for OTLP export, and says how many never reached the receiver.
async fn flush_spans(exporter: Option<crate::otlp::Exporter>) {
    let lost = crate::otlp::shutdown(exporter)
        .await
        .map_or(0, |c| c.unexported());
    if lost > 0 {
        // Not a failure of the run: said once, where `run`'s quiet default still shows it.
        eprintln!("flowprobe: OTLP export: {lost} spans were not exported (-v shows why)");
    }
}

/// Writes each `--report` file.
fn write_reports(
    reports: &[(ReportFormat, PathBuf)],
    outcomes: &[ScenarioOutcome],
    verdicts: &[crate::run::thresholds::ThresholdResult],
) -> Result<(), CliError> {
    for (format, path) in reports {
        let text = match format {
            ReportFormat::Json => report::json::render_with_thresholds(outcomes, verdicts)?,
            ReportFormat::Junit => report::junit::render(outcomes, verdicts),
            ReportFormat::Html => report::html::render(outcomes, verdicts),
        };
        write_report(path, &text)?;
    }
    Ok(())
}

/// The OTLP exporter the environment asks for, started; on a setting that cannot be used,
/// prints why and gives the exit code.
pub(crate) fn start_otlp() -> Result<Option<crate::otlp::Exporter>, i32> {
    crate::otlp::from_env().map_err(|e| {
        eprintln!("{e}");
        exit::INVALID
    })
}

/// Writes a report file, creating its parent directories.
fn write_report(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    let fail = |source| CliError::Report {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)
}

/// A one-line progress count on stderr (`[12/30] 11 passed, 1 failed`) while `--iterations`
/// runs go, on a terminal only; cleared before each outcome is printed and at the end.
struct Progress {
    shown: bool,
    enabled: bool,
    total: u32,
    passed: u32,
    failed: u32,
}

impl Progress {
    fn new(total: u32, wanted: bool) -> Self {
        Progress {
            shown: false,
            enabled: wanted && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            total,
            passed: 0,
            failed: 0,
        }
    }

    fn count(&mut self, success: bool) {
        if success {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        if self.enabled {
            let done = self.passed + self.failed;
            eprint!(
                "\r[{done}/{}] {} passed, {} failed",
                self.total, self.passed, self.failed
            );
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

/// Cancels the runs on the first SIGINT or SIGTERM, so they stop and clean up what they created;
/// a second signal exits at once.
async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!(
        "flowprobe: stopping; running `finally` steps and clean-ups (signal again to quit now)"
    );
    cancel.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    std::process::exit(exit::FAILED);
}

/// Runs every scenario `iterations` times, at most `jobs` runs at once; calls `on_done` as each
/// run finishes. Outcomes come back in scenario order, then iteration order. A run whose task
/// died anyway (a panic outside the runner's own guard) comes back as a failed run with reason
/// `internal`: a crash is never a missing — and so passing — result.
pub async fn run_all(
    scenarios: Vec<LoadedScenario>,
    jobs: usize,
    iterations: u32,
    fail_fast: bool,
    control: &RunControl,
    mut on_done: impl FnMut(&ScenarioOutcome),
) -> Vec<ScenarioOutcome> {
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let scenarios: Vec<Arc<LoadedScenario>> = scenarios.into_iter().map(Arc::new).collect();
    let mut tasks = Vec::with_capacity(scenarios.len());
    for (index, sc) in scenarios.iter().enumerate() {
        let (permits, stop, tx) = (permits.clone(), stop.clone(), tx.clone());
        let (sc, control) = (sc.clone(), control.clone());
        tasks.push(tokio::spawn(async move {
            for iteration in 1..=iterations {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                if stop.load(Ordering::SeqCst) || control.cancel.is_cancelled() {
                    return;
                }
                let redactor = crate::secrets::Redactor::new();
                let outcome =
                    crate::run::run_scenario_with(&sc, iteration, &redactor, &control).await;
                if fail_fast && !outcome.success {
                    stop.store(true, Ordering::SeqCst);
                }
                if tx.send((index, outcome)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut all = Vec::new();
    while let Some((index, outcome)) = rx.recv().await {
        on_done(&outcome);
        all.push((index, outcome));
    }
    for (index, task) in tasks.into_iter().enumerate() {
        let Err(e) = task.await else { continue };
        // The payload is not shown: this run's redactor is gone with its task.
        let why = if e.is_panic() {
            "the run's task panicked"
        } else {
            "the run's task was cancelled"
        };
        let done = all.iter().filter(|(i, _)| *i == index).count() as u32;
        let outcome = crate::run::internal_failure(&scenarios[index], done + 1, why);
        on_done(&outcome);
        all.push((index, outcome));
    }
    all.sort_by_key(|(i, o)| (*i, o.iteration));
    all.into_iter().map(|(_, o)| o).collect()
}
