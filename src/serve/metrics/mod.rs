//! Serve mode's Prometheus metrics: the metric names as constants, the per-scenario series
//! (histogram buckets include each scenario's SLO latency threshold) and how outcomes move
//! them; the expositions live in `text` (Prometheus text 0.0.4 and OpenMetrics 1.0) and
//! `proto` (delimited protobuf with native histograms), chosen by `format`.
//!
//! Why our own encoders and not prometheus-client 0.26: a scenario carries its own static
//! labels and its own bucket set (the SLO threshold), which one prometheus-client `Family`
//! cannot hold (one constructor, one bucket layout per family); its per-series `Arc` + lock +
//! label-set key, and an exposition built whole in memory, cost more at 10,000 scenarios than
//! these compact structs written family by family in bounded chunks. The protobuf messages are
//! few and stable, so `proto` writes their wire format directly (no generated code, no new
//! crate). Process metrics, build info, reload counters and the HTTP connection series live in
//! a prometheus [`Registry`]. Runs cancelled by shutdown are not recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::time::Instant;

use crate::outcome::ScenarioOutcome;
use crate::scenario::LoadedScenario;

mod family;
pub mod format;
mod hist;
mod native;
mod otlp;
mod proto;
mod series;
mod text;
mod window;

pub use format::Format;
pub use otlp::{OTLP_EXPORT_FAILURES_TOTAL, OTLP_SPANS_TOTAL};
pub use text::RenderChunks;

use hist::Hist;
use series::{ScenarioMetrics, Series, StepSeries};

pub const RUNS_TOTAL: &str = "flowprobe_runs_total";
pub const RUN_DURATION_SECONDS: &str = "flowprobe_run_duration_seconds";
pub const STEP_DURATION_SECONDS: &str = "flowprobe_step_duration_seconds";
pub const STEP_FAILURES_TOTAL: &str = "flowprobe_step_failures_total";
pub const RUN_FAILURES_TOTAL: &str = "flowprobe_run_failures_total";
pub const STEP_RETRIES_TOTAL: &str = "flowprobe_step_retries_total";
pub const PHASE_DURATION_SECONDS: &str = "flowprobe_phase_duration_seconds";
pub const STEP_LATENCY_SECONDS: &str = "flowprobe_step_latency_seconds";
pub const SCENARIO_SUCCESS: &str = "flowprobe_scenario_success";
pub const LAST_RUN_TIMESTAMP_SECONDS: &str = "flowprobe_last_run_timestamp_seconds";
pub const LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "flowprobe_last_success_timestamp_seconds";
pub const CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS: &str =
    "flowprobe_certificate_expiry_timestamp_seconds";
pub const BUILD_INFO: &str = "flowprobe_build_info";
pub const RUNS_SKIPPED_TOTAL: &str = "flowprobe_runs_skipped_total";
pub const CONFIG_RELOADS_TOTAL: &str = "flowprobe_config_reloads_total";
pub const CONFIG_LAST_RELOAD_SUCCESS: &str = "flowprobe_config_last_reload_success";
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: &str =
    "flowprobe_config_last_reload_success_timestamp_seconds";
pub const CONFIG_INFO: &str = "flowprobe_config_info";
pub const SCENARIO_INFO: &str = "flowprobe_scenario_info";
/// The source revision the binary was built from: `FLOWPROBE_REVISION` at build time (the
/// Dockerfile passes the Git commit), else `unknown`.
pub const REVISION: &str = match option_env!("FLOWPROBE_REVISION") {
    Some(r) => r,
    None => "unknown",
};
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "flowprobe_http_connections_refused_total";
pub const HTTP_CONNECTIONS_OPEN: &str = "flowprobe_http_connections_open";
pub const TLS_VERSION_INFO: &str = "flowprobe_tls_version_info";

/// Default histogram buckets in seconds (`--buckets` replaces them).
/// Few on purpose: the step duration's native histogram (protobuf) has the resolution, these
/// and the SLO threshold are for `le` rules and for scrapers without native histograms.
pub const DEFAULT_BUCKETS: &[f64] = &[0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Native histogram schema of `flowprobe_step_duration_seconds`: 8 buckets per power of two,
/// each at most 9 % wide (client_golang's default bucket factor 1.1).
pub const STEP_SCHEMA: i8 = 3;
/// Native histogram schema of `flowprobe_phase_duration_seconds`: 4 buckets per power of two.
pub const PHASE_SCHEMA: i8 = 2;
/// Quantiles of `flowprobe_step_latency_seconds`.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];
/// The sliding window of the quantiles: this many slots of [`SLOT`].
pub const WINDOW_SLOTS: u64 = 5;
pub const SLOT: Duration = Duration::from_secs(60);
/// Samples kept per step and slot; beyond it a uniform reservoir sample is kept.
const SLOT_SAMPLES: usize = 1024;
/// Most `--label`s.
pub const MAX_CONST_LABELS: usize = 8;
pub use crate::labels::RESERVED_LABELS;
/// Rough size of one chunk of the text exposition.
const CHUNK_BYTES: usize = 64 * 1024;

/// Invalid metric settings (`--label`, `--buckets`) or labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("label `{0}`: a label name is [a-zA-Z_][a-zA-Z0-9_]* and does not start with __")]
    LabelName(String),
    #[error("label `{0}` is set by flowprobe itself")]
    Reserved(String),
    #[error("label `{0}` is given twice")]
    Duplicate(String),
    #[error("at most {MAX_CONST_LABELS} constant labels")]
    TooMany,
    #[error("scenario `{scenario}`: its label `{label}` is also a --label")]
    Collision { scenario: String, label: String },
    #[error("bucket `{0}`: expected seconds (0.25) or a duration (250ms), greater than 0")]
    Bucket(String),
    #[error("cannot set up the metrics registry: {0}")]
    Registry(String),
}

/// Seconds as written in an `le` label and in generated rules, in the canonical form Prometheus 3
/// stores: `0.3`, `2.5`, `60.0`.
pub fn seconds_label(d: Duration) -> String {
    crate::prom_float::canonical(d.as_secs_f64())
}

/// Parses `--buckets 0.1,0.5,1,2.5` (seconds) or `100ms,500ms,1s`, sorted and deduplicated.
pub fn parse_buckets(s: &str) -> Result<Vec<f64>, MetricsError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = match part.parse::<f64>() {
            Ok(v) => v,
            Err(_) => crate::units::parse_duration(part)
                .map_err(|_| MetricsError::Bucket(part.to_string()))?
                .as_secs_f64(),
        };
        if !(v.is_finite() && v > 0.0) {
            return Err(MetricsError::Bucket(part.to_string()));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(MetricsError::Bucket(s.to_string()));
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    Ok(out)
}

/// Checks `--label` pairs: valid, not reserved, unique, few.
pub fn check_const_labels(labels: &[(String, String)]) -> Result<(), MetricsError> {
    if labels.len() > MAX_CONST_LABELS {
        return Err(MetricsError::TooMany);
    }
    let mut seen = std::collections::HashSet::new();
    for (k, _) in labels {
        if !crate::labels::is_label_name(k) {
            return Err(MetricsError::LabelName(k.clone()));
        }
        if RESERVED_LABELS.contains(&k.as_str()) {
            return Err(MetricsError::Reserved(k.clone()));
        }
        if !seen.insert(k.as_str()) {
            return Err(MetricsError::Duplicate(k.clone()));
        }
    }
    Ok(())
}

/// Checks that no scenario's static label repeats a `--label` (one series, two values).
pub fn check_label_collisions(
    scenarios: &[LoadedScenario],
    const_labels: &[(String, String)],
) -> Result<(), Vec<MetricsError>> {
    let errors: Vec<MetricsError> = scenarios
        .iter()
        .flat_map(|sc| {
            sc.labels
                .keys()
                .filter(|k| const_labels.iter().any(|(c, _)| c == *k))
                .map(|k| MetricsError::Collision {
                    scenario: sc.name().to_string(),
                    label: k.clone(),
                })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Prometheus number format (`+Inf`, `NaN`, shortest round-trip decimal otherwise).
fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Run counts of a scenario, for `/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct RunCounts {
    pub success: u64,
    pub failure: u64,
    pub skipped: u64,
}

/// The serve-mode metrics.
pub struct Metrics {
    const_labels: Vec<(String, String)>,
    buckets: Vec<f64>,
    latency_summary: bool,
    epoch: Instant,
    scenarios: RwLock<BTreeMap<String, Arc<ScenarioMetrics>>>,
    registry: Registry,
    reloads: IntCounterVec,
    last_reload_success: IntGauge,
    connections_refused: IntCounter,
    connections_open: IntGauge,
    config_info: prometheus::IntGaugeVec,
    config_loaded_at: prometheus::Gauge,
}

fn reg_err(e: prometheus::Error) -> MetricsError {
    MetricsError::Registry(e.to_string())
}

/// Registers `c` with `registry` and gives it back (a handle to the registered series).
fn registered<C>(registry: &Registry, c: C) -> Result<C, MetricsError>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(c.clone())).map_err(reg_err)?;
    Ok(c)
}

/// The registry with the `--label`s on every series, the process metrics and the build info.
fn new_registry(const_labels: &[(String, String)]) -> Result<Registry, MetricsError> {
    let common: HashMap<String, String> = const_labels.iter().cloned().collect();
    let registry =
        Registry::new_custom(None, (!common.is_empty()).then_some(common)).map_err(reg_err)?;
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .map_err(reg_err)?;
    let build = IntGauge::with_opts(
        Opts::new(BUILD_INFO, "flowprobe build; always 1")
            .const_label("version", env!("CARGO_PKG_VERSION"))
            .const_label("revision", REVISION),
    )
    .map_err(reg_err)?;
    build.set(1);
    registry.register(Box::new(build)).map_err(reg_err)?;
    Ok(registry)
}

/// Reload counters by result (both at 0) and the last reload's success (1 until one fails).
fn reload_series(registry: &Registry) -> Result<(IntCounterVec, IntGauge), MetricsError> {
    let reloads = IntCounterVec::new(
        Opts::new(
            CONFIG_RELOADS_TOTAL,
            "Scenario reloads (SIGHUP or a changed file), by result",
        ),
        &["result"],
    )
    .map_err(reg_err)?;
    for r in ["success", "failure"] {
        reloads.with_label_values(&[r]);
    }
    let reloads = registered(registry, reloads)?;
    let last_reload_success = IntGauge::new(
        CONFIG_LAST_RELOAD_SUCCESS,
        "1 when the last reload succeeded (or none was tried), 0 when it was rejected",
    )
    .map_err(reg_err)?;
    last_reload_success.set(1);
    let last_reload_success = registered(registry, last_reload_success)?;
    Ok((reloads, last_reload_success))
}

/// Connections to the endpoints: refused over the cap, and open now.
fn connection_series(registry: &Registry) -> Result<(IntCounter, IntGauge), MetricsError> {
    let connections_refused = IntCounter::new(
        HTTP_CONNECTIONS_REFUSED_TOTAL,
        "Connections to the endpoints closed at once because --max-connections were open",
    )
    .map_err(reg_err)?;
    let connections_refused = registered(registry, connections_refused)?;
    let connections_open = IntGauge::new(
        HTTP_CONNECTIONS_OPEN,
        "Connections to the endpoints open now",
    )
    .map_err(reg_err)?;
    let connections_open = registered(registry, connections_open)?;
    Ok((connections_refused, connections_open))
}

/// The loaded scenario set: its files' hash, and when it was loaded.
fn config_series(
    registry: &Registry,
) -> Result<(prometheus::IntGaugeVec, prometheus::Gauge), MetricsError> {
    let config_info = prometheus::IntGaugeVec::new(
        Opts::new(
            CONFIG_INFO,
            "The loaded scenario set: 1 for the short hash of its files (changes with every \
             deployed change of the scenarios)",
        ),
        &["hash"],
    )
    .map_err(reg_err)?;
    let config_info = registered(registry, config_info)?;
    let config_loaded_at = prometheus::Gauge::new(
        CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
        "Unix time when the running scenario set was loaded (start-up or the last accepted reload)",
    )
    .map_err(reg_err)?;
    let config_loaded_at = registered(registry, config_loaded_at)?;
    Ok((config_info, config_loaded_at))
}

impl Metrics {
    /// Counts the OTLP exporter's spans on `/metrics` (`flowprobe_otlp_spans_total`,
    /// `flowprobe_otlp_export_failures_total`); called once, when export is on.
    pub fn watch_otlp(&self, recorder: crate::otlp::Recorder) -> Result<(), MetricsError> {
        let collector = otlp::OtlpCollector::new(recorder)?;
        self.registry.register(Box::new(collector)).map_err(reg_err)
    }

    /// Metrics with `--label`s and `--buckets` (empty: [`DEFAULT_BUCKETS`]), no scenario yet.
    pub fn new(
        const_labels: &[(String, String)],
        buckets: &[f64],
    ) -> Result<Metrics, MetricsError> {
        check_const_labels(const_labels)?;
        let registry = new_registry(const_labels)?;
        let (reloads, last_reload_success) = reload_series(&registry)?;
        let (connections_refused, connections_open) = connection_series(&registry)?;
        let (config_info, config_loaded_at) = config_series(&registry)?;
        let mut sorted = const_labels.to_vec();
        sorted.sort();
        Ok(Metrics {
            const_labels: sorted,
            buckets: if buckets.is_empty() {
                DEFAULT_BUCKETS.to_vec()
            } else {
                buckets.to_vec()
            },
            latency_summary: false,
            epoch: Instant::now(),
            scenarios: RwLock::new(BTreeMap::new()),
            registry,
            reloads,
            last_reload_success,
            connections_refused,
            connections_open,
            config_info,
            config_loaded_at,
        })
    }

    /// Also keeps and exposes the windowed quantile summary `flowprobe_step_latency_seconds`
    /// (`serve --latency-summary`).
    pub fn with_latency_summary(mut self, on: bool) -> Metrics {
        self.latency_summary = on;
        self
    }

    /// Buckets of a scenario: the configured ones plus its SLO latency threshold.
    pub fn buckets_for(&self, sc: &LoadedScenario) -> Vec<f64> {
        let mut b = self.buckets.clone();
        if let Some(l) = sc.slo.as_ref().and_then(|s| s.latency.as_ref()) {
            let t = l.threshold.0.as_secs_f64();
            if !b.contains(&t) {
                b.push(t);
                b.sort_by(f64::total_cmp);
            }
        }
        b
    }

    /// The scenario's label pairs: `scenario`, its static labels, the `--label`s.
    fn pairs_for(&self, sc: &LoadedScenario) -> Vec<(String, String)> {
        let mut pairs = vec![("scenario".to_string(), sc.name().to_string())];
        pairs.extend(sc.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        pairs.extend(self.const_labels.iter().cloned());
        pairs
    }

    /// Makes the scenario set exactly `scenarios`: new ones get their series, removed ones
    /// lose theirs, unchanged ones keep their values. A changed label set starts the scenario
    /// afresh; changed buckets restart its histograms; new steps start at 0 and removed
    /// steps' series go.
    pub fn sync(&self, scenarios: &[LoadedScenario]) {
        let mut map = self.scenarios.write().unwrap_or_else(|e| e.into_inner());
        let keep: std::collections::HashSet<&str> = scenarios.iter().map(|s| s.name()).collect();
        map.retain(|name, _| keep.contains(name.as_str()));
        // Scenarios with the same buckets share one bounds slice.
        let mut interned: Vec<Arc<[f64]>> = Vec::new();
        for m in map.values() {
            if !interned.iter().any(|b| *b == m.bounds) {
                interned.push(m.bounds.clone());
            }
        }
        let now = unix_secs(SystemTime::now());
        for sc in scenarios {
            let wanted = self.buckets_for(sc);
            let bounds: Arc<[f64]> = match interned.iter().find(|b| b[..] == wanted[..]) {
                Some(b) => b.clone(),
                None => {
                    let b: Arc<[f64]> = wanted.into();
                    interned.push(b.clone());
                    b
                }
            };
            let m = self.synced_scenario(&mut map, sc, bounds, now);
            sync_steps(&m, sc, now);
        }
    }

    /// The scenario's metrics after a sync: kept, restarted histograms, or new.
    fn synced_scenario(
        &self,
        map: &mut BTreeMap<String, Arc<ScenarioMetrics>>,
        sc: &LoadedScenario,
        bounds: Arc<[f64]>,
        now: f64,
    ) -> Arc<ScenarioMetrics> {
        let pairs = self.pairs_for(sc);
        let previous = map.get(sc.name()).filter(|p| p.pairs == pairs).cloned();
        if let Some(p) = previous.as_ref().filter(|p| p.bounds == bounds) {
            return p.clone();
        }
        let mut series = Series::new(&bounds, now);
        if let Some(p) = previous.as_ref() {
            // Same labels, new buckets: counters go on, histograms restart.
            let mut old = lock(&p.series);
            let run_duration =
                std::mem::replace(&mut series.run_duration, Hist::new(&bounds, None, now));
            series = Series {
                run_duration,
                steps: std::mem::take(&mut old.steps),
                file: String::new(),
                interval: String::new(),
                run_failures: old.run_failures.clone(),
                ..*old
            };
            for (_, st) in &mut series.steps {
                st.duration = Hist::new(&bounds, Some(STEP_SCHEMA), now);
                st.phases.clear();
            }
        }
        let labels = pairs
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        let m = Arc::new(ScenarioMetrics {
            labels,
            pairs,
            created: previous.as_ref().map_or(now, |p| p.created),
            series: Mutex::new(series),
            bounds,
        });
        map.insert(sc.name().to_string(), m.clone());
        m
    }

    /// Reads one outcome into the series of its scenario (ignored when the scenario is gone,
    /// and when shutdown cancelled the run: it says nothing about the target).
    pub fn record(&self, o: &ScenarioOutcome) {
        if o.cancelled {
            return;
        }
        let Some(m) = self.scenario(&o.scenario) else {
            return;
        };
        let window = self.latency_summary.then(|| self.slot());
        let now = unix_secs(SystemTime::now());
        lock(&m.series).record(o, now, window);
    }

    /// Counts a run that came due while the previous one still ran.
    pub fn record_skipped(&self, scenario: &str) {
        if let Some(m) = self.scenario(scenario) {
            lock(&m.series).skipped(unix_secs(SystemTime::now()));
        }
    }

    /// Records the scenario set now running: the short hash of its files and the time.
    pub fn set_config(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
        self.config_loaded_at.set(unix_secs(SystemTime::now()));
    }

    /// Counts a reload attempt.
    pub fn record_reload(&self, success: bool) {
        self.reloads
            .with_label_values(&[if success { "success" } else { "failure" }])
            .inc();
        self.last_reload_success.set(i64::from(success));
    }

    /// Counts a connection closed at once because `--max-connections` were open.
    pub fn record_connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Counts a connection the server now serves (see [`Metrics::connection_closed`]).
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Run counts of a scenario.
    /// The `--label` pairs every series carries (location, ...), sorted.
    pub fn const_labels(&self) -> &[(String, String)] {
        &self.const_labels
    }

    pub fn counts(&self, scenario: &str) -> Option<RunCounts> {
        self.scenario(scenario).map(|m| {
            let s = lock(&m.series);
            RunCounts {
                success: s.success,
                failure: s.failure,
                skipped: s.skipped.map_or(0, |(n, _)| n),
            }
        })
    }

    /// Names of the scenarios with series.
    pub fn scenario_names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<ScenarioMetrics>>> {
        self.scenarios.read().unwrap_or_else(|e| e.into_inner())
    }

    fn scenario(&self, name: &str) -> Option<Arc<ScenarioMetrics>> {
        self.read().get(name).cloned()
    }

    fn slot(&self) -> u64 {
        (Instant::now() - self.epoch).as_secs() / SLOT.as_secs()
    }

    /// The whole Prometheus text exposition as one string.
    pub fn render(&self) -> String {
        self.render_chunks().collect()
    }

    /// The whole exposition in `format` (protobuf bytes; text as UTF-8).
    pub fn render_as(&self, format: Format) -> Vec<u8> {
        match format {
            Format::Protobuf => proto::ProtoChunks::new(self).flatten().collect(),
            Format::Text | Format::OpenMetrics => {
                let om = format == Format::OpenMetrics;
                RenderChunks::new(self, om).collect::<String>().into_bytes()
            }
        }
    }

    /// The Prometheus text exposition in chunks of roughly 64 KiB, produced lazily: registry
    /// metrics first, then each family over all scenarios.
    pub fn render_chunks(&self) -> RenderChunks<&Metrics> {
        RenderChunks::new(self, false)
    }

    /// The exposition in `format`, in chunks, owning its metrics (for a streamed response
    /// body).
    pub fn chunks(
        metrics: Arc<Metrics>,
        format: Format,
    ) -> Box<dyn Iterator<Item = Vec<u8>> + Send> {
        match format {
            Format::Protobuf => Box::new(proto::ProtoChunks::new(metrics)),
            Format::Text | Format::OpenMetrics => {
                let om = format == Format::OpenMetrics;
                Box::new(RenderChunks::new(metrics, om).map(String::into_bytes))
            }
        }
    }
}

/// The scenario's info and step series after a sync: steps kept by name and kind, new ones
/// added, removed ones dropped.
fn sync_steps(m: &ScenarioMetrics, sc: &LoadedScenario, now: f64) {
    let mut s = lock(&m.series);
    s.file = sc.file.display().to_string();
    s.interval =
        humantime::format_duration(crate::serve::schedule::Timing::of(sc).interval).to_string();
    let mut old: Vec<(String, StepSeries)> = std::mem::take(&mut s.steps);
    for step in sc.steps.iter().chain(&sc.finally) {
        let kind = step.kind.name();
        let found = old
            .iter()
            .position(|(n, st)| *n == step.name && st.kind == kind)
            .map(|i| old.swap_remove(i).1);
        let st = found.unwrap_or_else(|| StepSeries::new(&step.name, kind, &m.bounds, now));
        s.steps.push((step.name.clone(), st));
    }
}

#[cfg(test)]
mod tests;
