//! `flowprobe serve`: the daemon. Loads and validates the scenarios, schedules them, serves
//! `/metrics`, `/healthz`, `/readyz` and `/status`, reloads on SIGHUP or when a scenario file
//! changes (a Kubernetes ConfigMap's symlink swap included), and drains on SIGTERM/SIGINT.

pub mod history;
pub mod http;
pub mod metrics;
pub mod schedule;
pub mod status_page;
pub mod status_schema;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use self::metrics::Metrics;
use crate::cli::exit;
use crate::run::RunControl;
use crate::scenario::load::expand_paths as expand;
use crate::scenario::{load_paths, LoadOptions, LoadedScenario};
use crate::serve::http::{App, ReloadState};
use crate::serve::schedule::{Event, EventFn, Scheduler, Shard};

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

/// What a (re)load needs.
#[derive(Debug, Clone)]
struct Source {
    paths: Vec<PathBuf>,
    vars: BTreeMap<String, String>,
    shard: Option<Shard>,
    labels: Vec<(String, String)>,
}

impl Source {
    /// Loads, validates and shards the scenarios; every problem as one message.
    fn load(&self, check_secrets: bool) -> Result<Vec<LoadedScenario>, Vec<String>> {
        let opts = LoadOptions {
            vars: self.vars.clone(),
            check_secrets,
        };
        let all = load_paths(&self.paths, &opts)
            .map_err(|diags| diags.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
        let set: Vec<LoadedScenario> = match self.shard {
            Some(shard) => all
                .into_iter()
                .filter(|s| shard.contains(s.name()))
                .collect(),
            None => all,
        };
        metrics::check_label_collisions(&set, &self.labels)
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        Ok(set)
    }

    /// (path, mtime, size, content hash) of every scenario file; a change means reload.
    fn fingerprint(&self, cache: &mut FileCache) -> Vec<FileStamp> {
        let files = match expand(&self.paths) {
            Ok(f) => f,
            Err(d) => {
                return vec![FileStamp {
                    path: PathBuf::new(),
                    modified: None,
                    size: 0,
                    hash: d.to_string(),
                }]
            }
        };
        files.into_iter().map(|p| cache.stamp(p)).collect()
    }
}

/// The scenario files' paths and content hashes as one text: what a reload compares, and
/// what [`config_hash`] digests.
fn files_key(stamps: &[FileStamp]) -> String {
    stamps
        .iter()
        .map(|f| format!("{}\0{}\n", f.path.display(), f.hash))
        .collect()
}

/// The `hash` of `flowprobe_config_info`: 12 hex digits of the SHA-256 of [`files_key`], the
/// same for every replica that loaded the same files from the same paths.
fn config_hash(files_key: &str) -> String {
    let digest = hex::encode(Sha256::digest(files_key.as_bytes()));
    digest[..12].to_string()
}

/// One scenario file's state, as polled.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    size: u64,
    hash: String,
}

/// Content hashes by (path, resolved path, mtime, size), so unchanged files are not re-read.
/// The resolved path changes when a ConfigMap swaps its `..data` symlink.
#[derive(Debug, Default)]
struct FileCache {
    entries: BTreeMap<PathBuf, (PathBuf, Option<SystemTime>, u64, String)>,
}

impl FileCache {
    fn stamp(&mut self, path: PathBuf) -> FileStamp {
        let meta = std::fs::metadata(&path).ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
        let resolved = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let hash = match self.entries.get(&path) {
            Some((r, m, s, h)) if *r == resolved && *m == modified && *s == size => h.clone(),
            _ => {
                let h = std::fs::read(&path)
                    .map(|bytes| hex::encode(Sha256::digest(&bytes)))
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                self.entries
                    .insert(path.clone(), (resolved, modified, size, h.clone()));
                h
            }
        };
        FileStamp {
            path,
            modified,
            size,
            hash,
        }
    }
}

/// Everything the reload path touches.
struct Daemon {
    source: Source,
    app: Arc<App>,
    scheduler: Scheduler,
}

impl Daemon {
    /// Applies a validated set: metrics first (series at 0 before any run), then status, then
    /// the scheduler.
    fn apply(&self, set: Vec<LoadedScenario>) {
        self.app.metrics.sync(&set);
        self.app.sync(&set);
        self.scheduler
            .apply(set.into_iter().map(Arc::new).collect());
    }

    /// Loads the scenarios again; an invalid set leaves the running one in place. The same
    /// rejected files reloaded again (SIGHUP after a rejected edit) are not a new rejection:
    /// counted and logged as an error once.
    async fn reload(&self, why: &str) {
        let source = self.source.clone();
        // Secrets were checked at start-up; from now on a missing one fails runs (reason
        // `config`) instead of blocking every other change.
        let result = tokio::task::spawn_blocking(move || {
            // The files' paths and content hashes (not their mtimes), taken before loading as at
            // start-up: a change made while loading is seen by the next poll.
            let files = files_key(&source.fingerprint(&mut FileCache::default()));
            (source.load(false), files)
        })
        .await
        .unwrap_or_else(|e| (Err(vec![format!("reload task failed: {e}")]), String::new()));
        match result {
            (Ok(set), files) => {
                let n = set.len();
                self.apply(set);
                self.app.metrics.record_reload(true);
                self.app.metrics.set_config(&config_hash(&files));
                self.app.set_reload(ReloadState {
                    at: SystemTime::now(),
                    success: true,
                    errors: Vec::new(),
                    rejected_files: None,
                });
                tracing::info!(trigger = why, scenarios = n, "scenarios reloaded");
            }
            (Err(errors), files) => {
                let already_rejected = self
                    .app
                    .last_reload()
                    .and_then(|r| r.rejected_files)
                    .is_some_and(|previous| !files.is_empty() && previous == files);
                if already_rejected {
                    tracing::debug!(
                        trigger = why,
                        "reload skipped: these files were rejected already and have not changed"
                    );
                    return;
                }
                self.app.metrics.record_reload(false);
                for e in &errors {
                    tracing::error!(trigger = why, error = %e, "reload rejected; the previous scenarios keep running");
                }
                self.app.set_reload(ReloadState {
                    at: SystemTime::now(),
                    success: false,
                    errors,
                    rejected_files: Some(files),
                });
            }
        }
    }
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
    let mut stamps = source.fingerprint(&mut cache);
    let initial = match source.load(true) {
        Ok(set) => set,
        Err(errors) => {
            eprint!(
                "{}",
                crate::scenario::diagnostic::render_all(&errors, "nothing was started")
            );
            return Ok(exit::INVALID);
        }
    };
    let buckets = args.buckets.map(|b| b.0).unwrap_or_default();
    let metrics = match Metrics::new(&args.labels, &buckets) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::INVALID);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return Ok(exit::FAILED);
        }
    };
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            eprintln!("cannot install signal handlers");
            return Ok(exit::FAILED);
        }
    };

    let app = Arc::new(App::new(metrics, args.shard));
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
    app.metrics.set_config(&config_hash(&files_key(&stamps)));
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

    let (stop_tx, server_stop) = tokio::sync::watch::channel(false);
    let limits = crate::serve::http::ServerLimits {
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections as usize,
    };
    let server = tokio::spawn(crate::serve::http::serve_http(
        listener,
        app,
        limits,
        server_stop,
    ));

    // Reloads: SIGHUP, or a changed fingerprint of the scenario files.
    let watcher = {
        let daemon = daemon.clone();
        let watch_every = args.watch_interval;
        tokio::spawn(async move {
            loop {
                let trigger = tokio::select! {
                    Some(()) = hup.recv() => "SIGHUP",
                    _ = tokio::time::sleep(watch_every), if !watch_every.is_zero() => {
                        let source = daemon.source.clone();
                        let (new, c) = tokio::task::spawn_blocking(move || {
                            let s = source.fingerprint(&mut cache);
                            (s, cache)
                        })
                        .await
                        .unwrap_or_else(|_| (stamps.clone(), FileCache::default()));
                        cache = c;
                        if new == stamps {
                            continue;
                        }
                        stamps = new;
                        "file change"
                    }
                };
                daemon.reload(trigger).await;
            }
        })
    };

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
    if daemon.scheduler.shutdown(args.shutdown_grace).await {
        tracing::info!("all runs finished");
    } else {
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
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server error"),
        Err(_) => tracing::warn!("HTTP server did not stop within 5s"),
        _ => {}
    }
    Ok(exit::OK)
}
