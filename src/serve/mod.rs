//! `flowprobe serve`: the daemon. Loads and validates the scenarios, schedules them, serves
//! `/metrics`, `/healthz`, `/readyz` and `/status`, reloads on SIGHUP or when a scenario file
//! changes (a Kubernetes ConfigMap's symlink swap included), and drains on SIGTERM/SIGINT.

pub mod history;
pub mod http;
pub mod metrics;
pub mod schedule;
mod status;
pub mod status_page;
pub mod status_schema;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use self::http::App;
use self::metrics::Metrics;
use self::schedule::{Event, EventFn, Scheduler, Shard};
use self::watch::{config_hash, files_key, Daemon, FileCache, FileStamp, Source};
use crate::cli::exit;
use crate::run::RunControl;
use crate::scenario::LoadedScenario;

/// Default port of the endpoints (`--listen`).
pub const DEFAULT_PORT: u16 = 9478;

/// Arguments of `flowprobe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Scenario files or directories (searched for *.yaml / *.yml; a mounted ConfigMap works).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Address of /metrics, /healthz, /readyz and /status (9478 is flowprobe's port).
    #[arg(
        long,
        default_value = "0.0.0.0:9478",
        value_name = "ADDR",
        env = "FLOWPROBE_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Run only the scenarios whose name hashes to this shard, e.g. 0/3 (replicas share work).
    #[arg(long, value_name = "INDEX/COUNT", env = "FLOWPROBE_SHARD")]
    pub shard: Option<Shard>,
    /// Constant label on every series, e.g. --label location=eu-west-1 (repeatable; in the
    /// environment, comma-separated).
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_kv, env = "FLOWPROBE_LABELS", value_delimiter = ',')]
    pub labels: Vec<(String, String)>,
    /// Histogram buckets, seconds or durations: --buckets 0.1,0.5,1,2.5 or 100ms,1s. Each
    /// scenario's SLO latency threshold is always added.
    #[arg(long, value_name = "LIST", value_parser = parse_buckets, env = "FLOWPROBE_BUCKETS")]
    pub buckets: Option<Buckets>,
    /// Also expose `flowprobe_step_latency_seconds`, step duration quantiles over a sliding
    /// 5-minute window (6 more series per step; the step duration histogram answers the same
    /// with histogram_quantile()).
    #[arg(long, env = "FLOWPROBE_LATENCY_SUMMARY")]
    pub latency_summary: bool,
    /// Most scenario runs at the same time (more wait for a slot).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..), env = "FLOWPROBE_MAX_CONCURRENCY")]
    pub max_concurrency: u32,
    /// On SIGTERM/SIGINT, time given to runs in flight to finish (their `finally` included).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration, env = "FLOWPROBE_SHUTDOWN_GRACE")]
    pub shutdown_grace: Duration,
    /// When the shutdown grace runs out, the runs still going are cancelled and their `finally`
    /// steps and clean-ups get this long (together) to delete what they created. The longest
    /// shutdown is shutdown-grace + cleanup-grace + 5s.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = crate::cli::parse_grace, env = "FLOWPROBE_CLEANUP_GRACE")]
    pub cleanup_grace: Duration,
    /// How often scenario files are checked for changes; 0s checks only on SIGHUP.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration, env = "FLOWPROBE_WATCH_INTERVAL")]
    pub watch_interval: Duration,
    /// Set a scenario var: --var ingress=https://shop.example.com (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub vars: Vec<(String, String)>,
    /// Time a client of the endpoints has to send a request's headers; a connection that sends
    /// nothing, half a request, or idles between requests this long is closed.
    #[arg(long, env = "FLOWPROBE_HEADER_READ_TIMEOUT", default_value = "10s", value_name = "DURATION", value_parser = crate::serve::http::parse_header_read_timeout)]
    pub header_read_timeout: Duration,
    /// Most open connections to the endpoints; more are closed at once (counted in
    /// flowprobe_http_connections_refused_total).
    #[arg(long, env = "FLOWPROBE_MAX_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

/// `--buckets`, parsed.
#[derive(Debug, Clone)]
pub struct Buckets(pub Vec<f64>);

fn parse_buckets(s: &str) -> Result<Buckets, String> {
    metrics::parse_buckets(s)
        .map(Buckets)
        .map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::units::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}

/// Wall-clock time of a tokio instant (for /status).
fn wall(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

/// The scheduler's events feed the metrics, /status and the logs.
fn on_event(app: Arc<App>) -> EventFn {
    Arc::new(move |e: Event<'_>| match e {
        Event::Scheduled { name, at } => app.set_next_run(name, wall(at)),
        Event::Started { name, lag, .. } => {
            app.set_running(name);
            if lag > Duration::from_secs(1) {
                tracing::debug!(
                    scenario = name,
                    lag_ms = lag.as_millis() as u64,
                    "run started late"
                );
            }
        }
        Event::Skipped { name } => {
            app.metrics.record_skipped(name);
            tracing::warn!(
                scenario = name,
                "run skipped: the previous run is still going"
            );
        }
        Event::Finished { outcome } => {
            // A run cut short by shutdown says nothing about the target: no SLI sample.
            if !outcome.cancelled {
                app.metrics.record(outcome);
            }
            app.export(outcome);
            app.finished(outcome);
        }
    })
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub async fn command(args: ServeArgs) -> Result<i32, crate::cli::CliError> {
    if let Err(e) = metrics::check_const_labels(&args.labels) {
        eprintln!("--label: {e}");
        return Ok(exit::INVALID);
    }
    let source = Source {
        paths: args.paths.clone(),
        vars: args.vars.iter().cloned().collect(),
        shard: args.shard,
        labels: args.labels.clone(),
    };
    // Stamped before loading: a change made while loading is seen by the first poll.
    let mut cache = FileCache::default();
    let stamps = source.fingerprint(&mut cache);
    let initial = match load_initial(&source) {
        Ok(set) => set,
        Err(code) => return Ok(code),
    };
    let exporter = match crate::cli::start_otlp() {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let (metrics, listener, signals) = match open(&args).await {
        Ok(opened) => opened,
        Err(code) => return Ok(code),
    };
    let recorder = exporter.as_ref().map(|e| e.recorder());
    let (daemon, control) = start(
        &args, source, initial, metrics, &stamps, &listener, recorder,
    )
    .await;

    let (stop_tx, server_stop) = tokio::sync::watch::channel(false);
    let limits = crate::serve::http::ServerLimits {
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections as usize,
    };
    let server = tokio::spawn(crate::serve::http::serve_http(
        listener,
        daemon.app.clone(),
        limits,
        server_stop,
    ));
    let Signals {
        mut term,
        mut int,
        hup,
    } = signals;
    let watcher = watch::spawn_watcher(daemon.clone(), hup, args.watch_interval, cache, stamps);

    let signal_name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = signal_name,
        grace_s = args.shutdown_grace.as_secs_f64(),
        "shutting down: no new runs; waiting for runs in flight"
    );
    daemon.app.set_ready(false);
    watcher.abort();
    drain(&daemon, &control, &args).await;
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server error"),
        Err(_) => tracing::warn!("HTTP server did not stop within 5s"),
        _ => {}
    }
    let _ = crate::otlp::shutdown(exporter).await;
    Ok(exit::OK)
}

/// The first load, secrets checked; on errors, prints them and gives the exit code.
fn load_initial(source: &Source) -> Result<Vec<LoadedScenario>, i32> {
    source.load(true).map_err(|errors| {
        eprint!(
            "{}",
            crate::scenario::diagnostic::render_all(&errors, "nothing was started")
        );
        exit::INVALID
    })
}

/// The signals the daemon answers: SIGTERM and SIGINT stop it, SIGHUP reloads.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

/// The metrics, the listening socket and the signal handlers; on failure, prints why and
/// gives the exit code.
async fn open(args: &ServeArgs) -> Result<(Arc<Metrics>, TcpListener, Signals), i32> {
    let buckets = args
        .buckets
        .as_ref()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let metrics = match Metrics::new(&args.labels, &buckets) {
        Ok(m) => Arc::new(m.with_latency_summary(args.latency_summary)),
        Err(e) => {
            eprintln!("{e}");
            return Err(exit::INVALID);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return Err(exit::FAILED);
        }
    };
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(int), Ok(hup)) => Ok((metrics, listener, Signals { term, int, hup })),
        _ => {
            eprintln!("cannot install signal handlers");
            Err(exit::FAILED)
        }
    }
}

/// Builds the daemon, applies the first set and marks it ready; gives the daemon and the
/// control that cancels its runs.
async fn start(
    args: &ServeArgs,
    source: Source,
    initial: Vec<LoadedScenario>,
    metrics: Arc<Metrics>,
    stamps: &[FileStamp],
    listener: &TcpListener,
    otlp: Option<crate::otlp::Recorder>,
) -> (Arc<Daemon>, RunControl) {
    if let Some(r) = &otlp {
        if let Err(e) = metrics.watch_otlp(r.clone()) {
            tracing::warn!(error = %e, "OTLP export counts are not on /metrics");
        }
    }
    let app = Arc::new(App::new(metrics, args.shard));
    if let Some(r) = otlp {
        app.export_to(r);
    }
    let control = RunControl {
        cleanup_grace: args.cleanup_grace,
        ..RunControl::default()
    };
    let scheduler = Scheduler::new(
        args.max_concurrency as usize,
        crate::serve::schedule::runner(control.clone()),
        on_event(app.clone()),
    );
    let daemon = Arc::new(Daemon {
        source,
        app: app.clone(),
        scheduler,
    });
    let count = initial.len();
    // Read before the first run, so that no run's duration includes it.
    let _ = tokio::task::spawn_blocking(crate::run::warm_up).await;
    daemon.apply(initial);
    app.metrics.set_config(&config_hash(&files_key(stamps)));
    app.set_ready(true);
    let local = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(
        listen = %local,
        scenarios = count,
        shard = args.shard.map(|s| s.to_string()).unwrap_or_default(),
        "flowprobe serve started"
    );
    if count == 0 {
        tracing::warn!("no scenario belongs to this shard; serving metrics only");
    }
    (daemon, control)
}

/// Waits for the runs in flight within the shutdown grace; then cancels the rest and gives
/// their clean-up the clean-up grace.
async fn drain(daemon: &Daemon, control: &RunControl, args: &ServeArgs) {
    if daemon.scheduler.shutdown(args.shutdown_grace).await {
        tracing::info!("all runs finished");
        return;
    }
    tracing::warn!(
        cleanup_grace_s = args.cleanup_grace.as_secs_f64(),
        "runs still going after the shutdown grace; cancelling them, their clean-up still runs"
    );
    control.cancel.cancel();
    // A little over the clean-up grace: the runs' own bound fires first.
    let limit = args.cleanup_grace + Duration::from_secs(1);
    if daemon.scheduler.wait_drained(limit).await {
        tracing::info!("cancelled runs cleaned up");
    } else {
        tracing::warn!("runs still going after the clean-up grace; exiting anyway");
    }
}
