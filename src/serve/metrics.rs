//! Serve mode's Prometheus metrics: the metric names as constants, per-scenario series
//! pre-created at 0, histograms whose buckets include each scenario's SLO latency threshold,
//! step latency quantiles from hdrhistogram over a sliding window, and the text exposition.
//!
//! Metrics are one more reader of [`ScenarioOutcome`]: [`Metrics::record`] reads an outcome and
//! changes nothing about it. The per-scenario families are kept in compact structs and written
//! family by family in bounded chunks ([`Metrics::render_chunks`]), because a scenario may carry
//! its own static labels and its own bucket set (which the prometheus crate's registry does not
//! allow within one family) and because 10,000 scenarios must not need their whole exposition in
//! memory at once. Process metrics, build info, reload counters and the HTTP connection series
//! live in a prometheus [`Registry`] and are encoded by its `TextEncoder`. Runs cancelled by
//! shutdown are not recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use rand::Rng;
use tokio::time::Instant;

use crate::outcome::{Reason, ScenarioOutcome, StepStatus};
use crate::scenario::LoadedScenario;

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

/// Default histogram buckets in seconds (`--buckets` replaces them).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
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
/// Rough size of one chunk of the exposition.
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

/// A cumulative histogram over fixed bounds (non-cumulative counts per bucket; +Inf is the
/// total count).
#[derive(Debug, Clone)]
struct Hist {
    bounds: Arc<[f64]>,
    counts: Box<[u64]>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn new(bounds: &Arc<[f64]>) -> Hist {
        Hist {
            bounds: bounds.clone(),
            counts: vec![0; bounds.len()].into_boxed_slice(),
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Writes `_bucket`, `_sum`, `_count` lines with `labels` (already rendered, non-empty).
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += c;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                crate::prom_float::canonical(*b)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", fmt_f64(self.sum));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Step durations of the last [`WINDOW_SLOTS`] × [`SLOT`], as raw microsecond samples per
/// slot: a few bytes per run, where an hdrhistogram per slot would cost kilobytes per step.
/// Quantiles are computed through an hdrhistogram when scraped.
#[derive(Debug, Default)]
struct Window {
    /// (slot number, runs seen in it, samples)
    slots: VecDeque<(u64, u64, Vec<u32>)>,
}

impl Window {
    fn record(&mut self, slot: u64, d: Duration) {
        let micros = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        while self
            .slots
            .front()
            .is_some_and(|(s, _, _)| s + WINDOW_SLOTS <= slot)
        {
            self.slots.pop_front();
        }
        if self.slots.back().is_none_or(|(s, _, _)| *s != slot) {
            self.slots.push_back((slot, 0, Vec::new()));
        }
        if let Some((_, seen, samples)) = self.slots.back_mut() {
            *seen += 1;
            if samples.len() < SLOT_SAMPLES {
                samples.push(micros);
            } else {
                let j = rand::thread_rng().gen_range(0..*seen);
                if let Ok(j) = usize::try_from(j) {
                    if j < SLOT_SAMPLES {
                        samples[j] = micros;
                    }
                }
            }
        }
    }

    /// Quantiles in seconds over the slots still in the window, None without samples.
    fn quantiles(&self, slot: u64, scratch: &mut Histogram<u64>) -> Option<[f64; 4]> {
        scratch.reset();
        for (s, _, samples) in &self.slots {
            if s + WINDOW_SLOTS > slot {
                for v in samples {
                    // Grows to fit (auto-resize); saturate only if it cannot.
                    if scratch.record(u64::from(*v)).is_err() {
                        scratch.saturating_record(u64::from(*v));
                    }
                }
            }
        }
        if scratch.is_empty() {
            return None;
        }
        let mut out = [0.0; 4];
        for (o, v) in out.iter_mut().zip(scratch.value_at_quantiles(QUANTILES)) {
            // The middle of the value's bucket: at most half a bucket (0.05 %) off.
            *o = scratch.median_equivalent(v) as f64 / 1e6;
        }
        Some(out)
    }
}

/// Series of one step.
#[derive(Debug)]
struct StepSeries {
    kind: &'static str,
    /// `step="x",kind="y"` (escaped).
    labels: String,
    duration: Hist,
    failures: [u64; Reason::ALL.len()],
    retries: u64,
    phases: BTreeMap<String, Hist>,
    window: Window,
    cert_not_after: Option<u64>,
}

impl StepSeries {
    fn new(name: &str, kind: &'static str, bounds: &Arc<[f64]>) -> StepSeries {
        StepSeries {
            kind,
            labels: format!("step=\"{}\",kind=\"{kind}\"", escape(name)),
            duration: Hist::new(bounds),
            failures: [0; Reason::ALL.len()],
            retries: 0,
            phases: BTreeMap::new(),
            window: Window::default(),
            cert_not_after: None,
        }
    }
}

/// Mutable series of one scenario.
#[derive(Debug)]
struct Series {
    success: u64,
    failure: u64,
    skipped: u64,
    /// Failed runs by the run's reason, in [`Reason::ALL`] order.
    run_failures: [u64; Reason::ALL.len()],
    run_duration: Hist,
    /// Steps (and `finally` steps) in scenario order.
    steps: Vec<(String, StepSeries)>,
    last_success: Option<bool>,
    last_run: Option<f64>,
    last_success_at: Option<f64>,
    /// `file="…",interval="…"` of `flowprobe_scenario_info` (escaped).
    info: String,
}

impl Series {
    fn new(bounds: &Arc<[f64]>) -> Series {
        Series {
            success: 0,
            failure: 0,
            skipped: 0,
            run_failures: [0; Reason::ALL.len()],
            run_duration: Hist::new(bounds),
            steps: Vec::new(),
            last_success: None,
            last_run: None,
            last_success_at: None,
            info: String::new(),
        }
    }
}

/// One scenario's metrics.
#[derive(Debug)]
struct ScenarioMetrics {
    /// `scenario="x",static...,const...` (escaped).
    labels: String,
    bounds: Arc<[f64]>,
    series: Mutex<Series>,
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

    fn labels_for(&self, sc: &LoadedScenario) -> String {
        let mut s = format!("scenario=\"{}\"", escape(sc.name()));
        let statics = sc.labels.iter();
        for (k, v) in statics.chain(self.const_labels.iter().map(|(k, v)| (k, v))) {
            let _ = write!(s, ",{k}=\"{}\"", escape(v));
        }
        s
    }

    /// Makes the scenario set exactly `scenarios`: new ones get every series at 0, removed
    /// ones lose theirs, unchanged ones keep their values. A changed label set starts the
    /// scenario afresh; changed buckets restart its histograms; new steps start at 0 and
    /// removed steps' series go.
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
        for sc in scenarios {
            let labels = self.labels_for(sc);
            let wanted = self.buckets_for(sc);
            let bounds: Arc<[f64]> = match interned.iter().find(|b| b[..] == wanted[..]) {
                Some(b) => b.clone(),
                None => {
                    let b: Arc<[f64]> = wanted.into();
                    interned.push(b.clone());
                    b
                }
            };
            let previous = map.get(sc.name()).filter(|p| p.labels == labels).cloned();
            let m = match previous {
                Some(p) if p.bounds == bounds => p,
                // Same labels, new buckets: counters go on, histograms restart.
                Some(p) => {
                    let mut series = Series::new(&bounds);
                    {
                        let mut old = lock(&p.series);
                        series.success = old.success;
                        series.failure = old.failure;
                        series.skipped = old.skipped;
                        series.run_failures = old.run_failures;
                        series.last_success = old.last_success;
                        series.last_run = old.last_run;
                        series.last_success_at = old.last_success_at;
                        series.steps = std::mem::take(&mut old.steps);
                    }
                    for (_, st) in &mut series.steps {
                        st.duration = Hist::new(&bounds);
                        st.phases.clear();
                    }
                    let m = Arc::new(ScenarioMetrics {
                        labels,
                        bounds,
                        series: Mutex::new(series),
                    });
                    map.insert(sc.name().to_string(), m.clone());
                    m
                }
                None => {
                    let m = Arc::new(ScenarioMetrics {
                        labels,
                        series: Mutex::new(Series::new(&bounds)),
                        bounds,
                    });
                    map.insert(sc.name().to_string(), m.clone());
                    m
                }
            };
            let mut s = lock(&m.series);
            s.info = format!(
                "file=\"{}\",interval=\"{}\"",
                escape(&sc.file.display().to_string()),
                humantime::format_duration(crate::serve::schedule::Timing::of(sc).interval)
            );
            let mut old: Vec<(String, StepSeries)> = std::mem::take(&mut s.steps);
            for step in sc.steps.iter().chain(&sc.finally) {
                let kind = step.kind.name();
                let found = old
                    .iter()
                    .position(|(n, st)| *n == step.name && st.kind == kind)
                    .map(|i| old.swap_remove(i).1);
                let st = found.unwrap_or_else(|| StepSeries::new(&step.name, kind, &m.bounds));
                s.steps.push((step.name.clone(), st));
            }
        }
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
        let slot = self.slot();
        let mut s = lock(&m.series);
        if o.success {
            s.success += 1;
        } else {
            s.failure += 1;
            let reason = o.reason.unwrap_or(Reason::Internal);
            if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
                s.run_failures[i] += 1;
            }
        }
        s.run_duration.observe(o.duration.as_secs_f64());
        let finished = unix_secs(o.started_at) + o.duration.as_secs_f64();
        s.last_success = Some(o.success);
        s.last_run = Some(finished);
        if o.success {
            s.last_success_at = Some(finished);
        }
        for step in &o.steps {
            if step.status == StepStatus::Skipped {
                continue;
            }
            let Some((_, st)) = s.steps.iter_mut().find(|(n, _)| *n == step.name) else {
                continue;
            };
            st.duration.observe(step.duration.as_secs_f64());
            st.window.record(slot, step.duration);
            st.retries += u64::from(step.attempts.saturating_sub(1));
            if step.status == StepStatus::Failed {
                let reason = step.reason.unwrap_or(Reason::Internal);
                if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
                    st.failures[i] += 1;
                }
            }
            for p in &step.phases {
                if !st.phases.contains_key(&p.name) {
                    st.phases.insert(p.name.clone(), Hist::new(&m.bounds));
                }
                if let Some(h) = st.phases.get_mut(&p.name) {
                    h.observe(p.duration.as_secs_f64());
                }
            }
            if step.certificate_not_after.is_some() {
                st.cert_not_after = step.certificate_not_after;
            }
        }
    }

    /// Counts a run that came due while the previous one still ran.
    pub fn record_skipped(&self, scenario: &str) {
        if let Some(m) = self.scenario(scenario) {
            lock(&m.series).skipped += 1;
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
                skipped: s.skipped,
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

    /// The whole exposition as one string.
    pub fn render(&self) -> String {
        self.render_chunks().collect()
    }

    /// The exposition in chunks of roughly 64 KiB, produced lazily: registry metrics first,
    /// then each family over all scenarios.
    pub fn render_chunks(&self) -> RenderChunks<&Metrics> {
        RenderChunks::new(self)
    }

    /// Like [`Metrics::render_chunks`], owning its metrics (for a streamed response body).
    pub fn chunks(metrics: Arc<Metrics>) -> RenderChunks<Arc<Metrics>> {
        RenderChunks::new(metrics)
    }

    fn registry_text(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode process metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The per-scenario families, in exposition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Runs,
    Skipped,
    RunDuration,
    StepDuration,
    StepFailures,
    RunFailures,
    StepRetries,
    PhaseDuration,
    StepLatency,
    Success,
    LastRun,
    LastSuccess,
    CertExpiry,
    Info,
}

impl Family {
    const ALL: [Family; 14] = [
        Family::Runs,
        Family::Skipped,
        Family::RunDuration,
        Family::StepDuration,
        Family::StepFailures,
        Family::RunFailures,
        Family::StepRetries,
        Family::PhaseDuration,
        Family::StepLatency,
        Family::Success,
        Family::LastRun,
        Family::LastSuccess,
        Family::CertExpiry,
        Family::Info,
    ];

    fn meta(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::Runs => (RUNS_TOTAL, "counter", "Scenario runs by outcome"),
            Family::Skipped => (
                RUNS_SKIPPED_TOTAL,
                "counter",
                "Runs not started because the previous run of the scenario was still going",
            ),
            Family::RunDuration => (
                RUN_DURATION_SECONDS,
                "histogram",
                "Duration of whole scenario runs (finally steps included)",
            ),
            Family::StepDuration => (
                STEP_DURATION_SECONDS,
                "histogram",
                "Duration of steps, retries included",
            ),
            Family::StepFailures => (STEP_FAILURES_TOTAL, "counter", "Failed steps by reason"),
            Family::RunFailures => (
                RUN_FAILURES_TOTAL,
                "counter",
                "Failed runs by the run's reason: the first failed step's, or the run's own \
                 (config, timeout, internal) when no step failed",
            ),
            Family::StepRetries => (
                STEP_RETRIES_TOTAL,
                "counter",
                "Step attempts beyond the first",
            ),
            Family::PhaseDuration => (
                PHASE_DURATION_SECONDS,
                "histogram",
                "Duration of phases within steps (connect, tls, first_byte, login, token, ...)",
            ),
            Family::StepLatency => (
                STEP_LATENCY_SECONDS,
                // A gauge with a `quantile` label, typed as what it is — a summary
                // (windowed quantiles plus cumulative _sum/_count) — since promtool rejects a
                // quantile label on a gauge. PromQL sees the same quantile series.
                "summary",
                "Step duration quantiles (hdrhistogram) over a sliding 5-minute window",
            ),
            Family::Success => (
                SCENARIO_SUCCESS,
                "gauge",
                "1 when the last run of the scenario succeeded, else 0",
            ),
            Family::LastRun => (
                LAST_RUN_TIMESTAMP_SECONDS,
                "gauge",
                "Unix time when the last run finished",
            ),
            Family::LastSuccess => (
                LAST_SUCCESS_TIMESTAMP_SECONDS,
                "gauge",
                "Unix time when the last successful run finished",
            ),
            Family::CertExpiry => (
                CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS,
                "gauge",
                "Unix time when the certificate a step last saw expires",
            ),
            Family::Info => (
                SCENARIO_INFO,
                "gauge",
                "A scheduled scenario: its file and run interval; always 1",
            ),
        }
    }
}

/// Iterator over the exposition's chunks (see [`Metrics::render_chunks`]).
pub struct RenderChunks<M: Deref<Target = Metrics>> {
    metrics: M,
    scenarios: Vec<Arc<ScenarioMetrics>>,
    /// None: the registry part is next.
    family: Option<usize>,
    pos: usize,
    header_done: bool,
    slot: u64,
    scratch: Option<Histogram<u64>>,
}

impl<M: Deref<Target = Metrics>> RenderChunks<M> {
    fn new(metrics: M) -> RenderChunks<M> {
        let scenarios = metrics.read().values().cloned().collect();
        let slot = metrics.slot();
        RenderChunks {
            scenarios,
            slot,
            metrics,
            family: None,
            pos: 0,
            header_done: false,
            scratch: Histogram::new(3).ok(),
        }
    }
}

impl<M: Deref<Target = Metrics>> Iterator for RenderChunks<M> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let Some(fi) = self.family else {
            self.family = Some(0);
            return Some(self.metrics.registry_text());
        };
        let mut out = String::with_capacity(CHUNK_BYTES + 4096);
        let mut fi = fi;
        while fi < Family::ALL.len() && out.len() < CHUNK_BYTES {
            let family = Family::ALL[fi];
            if self.pos < self.scenarios.len() {
                let m = self.scenarios[self.pos].clone();
                let start = out.len();
                self.write_scenario(family, &m, &mut out);
                if out.len() > start && !self.header_done {
                    let (name, kind, help) = family.meta();
                    out.insert_str(
                        start,
                        &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"),
                    );
                    self.header_done = true;
                }
                self.pos += 1;
            } else {
                fi += 1;
                self.pos = 0;
                self.header_done = false;
            }
        }
        self.family = Some(fi);
        (!out.is_empty()).then_some(out)
    }
}

impl<M: Deref<Target = Metrics>> RenderChunks<M> {
    fn write_scenario(&mut self, family: Family, m: &ScenarioMetrics, out: &mut String) {
        let (name, _, _) = family.meta();
        let l = &m.labels;
        let s = lock(&m.series);
        match family {
            Family::StepLatency => {
                if let Some(scratch) = self.scratch.as_mut() {
                    write_step_latency(out, name, l, &s, self.slot, scratch);
                }
            }
            Family::StepDuration
            | Family::StepFailures
            | Family::StepRetries
            | Family::PhaseDuration
            | Family::CertExpiry => write_step_family(family, out, name, l, &s),
            Family::Runs
            | Family::Skipped
            | Family::RunDuration
            | Family::RunFailures
            | Family::Success
            | Family::LastRun
            | Family::LastSuccess
            | Family::Info => write_run_family(family, out, name, l, &s),
        }
    }
}

/// A family with one or a few series per scenario (runs, their durations and failures, the
/// last run, the scenario's info).
fn write_run_family(family: Family, out: &mut String, name: &str, l: &str, s: &Series) {
    match family {
        Family::Runs => {
            let _ = writeln!(out, "{name}{{{l},outcome=\"success\"}} {}", s.success);
            let _ = writeln!(out, "{name}{{{l},outcome=\"failure\"}} {}", s.failure);
        }
        Family::Skipped => {
            let _ = writeln!(out, "{name}{{{l}}} {}", s.skipped);
        }
        Family::RunDuration => s.run_duration.write(out, name, l),
        Family::RunFailures => {
            for (r, n) in Reason::ALL.iter().zip(s.run_failures.iter()) {
                let _ = writeln!(out, "{name}{{{l},reason=\"{}\"}} {n}", r.as_str());
            }
        }
        Family::Success => {
            if let Some(ok) = s.last_success {
                let _ = writeln!(out, "{name}{{{l}}} {}", u8::from(ok));
            }
        }
        Family::LastRun => {
            if let Some(t) = s.last_run {
                let _ = writeln!(out, "{name}{{{l}}} {}", fmt_f64(t));
            }
        }
        Family::LastSuccess => {
            if let Some(t) = s.last_success_at {
                let _ = writeln!(out, "{name}{{{l}}} {}", fmt_f64(t));
            }
        }
        Family::Info => {
            let _ = writeln!(out, "{name}{{{l},{}}} 1", s.info);
        }
        // Per-step families: `write_step_family` and `write_step_latency`.
        _ => {}
    }
}

/// A family with series per step (durations, failures, retries, phases, certificates).
fn write_step_family(family: Family, out: &mut String, name: &str, l: &str, s: &Series) {
    for (step, st) in &s.steps {
        match family {
            Family::StepDuration => st.duration.write(out, name, &format!("{l},{}", st.labels)),
            Family::StepFailures => {
                for (r, n) in Reason::ALL.iter().zip(st.failures.iter()) {
                    let _ = writeln!(
                        out,
                        "{name}{{{l},{},reason=\"{}\"}} {n}",
                        st.labels,
                        r.as_str()
                    );
                }
            }
            Family::StepRetries => {
                let _ = writeln!(
                    out,
                    "{name}{{{l},step=\"{}\"}} {}",
                    escape(step),
                    st.retries
                );
            }
            Family::PhaseDuration => {
                for (phase, h) in &st.phases {
                    let labels =
                        format!("{l},step=\"{}\",phase=\"{}\"", escape(step), escape(phase));
                    h.write(out, name, &labels);
                }
            }
            Family::CertExpiry => {
                if let Some(t) = st.cert_not_after {
                    let _ = writeln!(out, "{name}{{{l},step=\"{}\"}} {t}", escape(step));
                }
            }
            // Per-scenario families: `write_run_family`; latency: `write_step_latency`.
            _ => {}
        }
    }
}

/// Each step's windowed quantiles and its cumulative sum and count.
fn write_step_latency(
    out: &mut String,
    name: &str,
    l: &str,
    s: &Series,
    slot: u64,
    scratch: &mut Histogram<u64>,
) {
    for (step, st) in &s.steps {
        // NaN while the window is empty, as Prometheus summaries do.
        let q = st.window.quantiles(slot, scratch).unwrap_or([f64::NAN; 4]);
        let step = escape(step);
        for (quantile, v) in QUANTILES.iter().zip(q) {
            let _ = writeln!(
                out,
                "{name}{{{l},step=\"{step}\",quantile=\"{}\"}} {}",
                crate::prom_float::canonical(*quantile),
                fmt_f64(v)
            );
        }
        let (sum, count) = (st.duration.sum, st.duration.count);
        let _ = writeln!(out, "{name}_sum{{{l},step=\"{step}\"}} {}", fmt_f64(sum));
        let _ = writeln!(out, "{name}_count{{{l},step=\"{step}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{fixtures, Phase, StepOutcome};
    use crate::scenario::load::load_source;
    use crate::scenario::LoadOptions;

    fn scenario(src: &str) -> LoadedScenario {
        load_source("t.yaml", src, &LoadOptions::default()).expect("valid scenario")
    }

    const SHOP: &str = "name: shop\nlabels: {team: \"pay\\\"ments\"}\nslo: {availability: 99%, latency: {threshold: 300ms, objective: 99%}}\nsteps:\n  - name: home\n    http: {url: \"http://127.0.0.1:9/\"}\n  - name: api\n    http: {url: \"http://127.0.0.1:9/api\"}\nfinally:\n  - name: cleanup\n    http: {url: \"http://127.0.0.1:9/x\", method: DELETE}\n";
    const OTHER: &str =
        "name: other\nsteps:\n  - name: only\n    http: {url: \"http://127.0.0.1:9/\"}\n";

    fn step(name: &str, status: StepStatus, ms: u64) -> StepOutcome {
        StepOutcome {
            duration: Duration::from_millis(ms),
            phases: vec![Phase {
                name: "connect".into(),
                duration: Duration::from_millis(1),
            }],
            ..fixtures::step(name, status)
        }
    }

    fn outcome(scenario: &str, steps: Vec<StepOutcome>) -> ScenarioOutcome {
        ScenarioOutcome {
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ..fixtures::run(scenario, steps)
        }
    }

    /// The value of the one line that starts with `series ` (exact labels, in order).
    fn value(text: &str, series: &str) -> Option<String> {
        let prefix = format!("{series} ");
        let hits: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert!(hits.len() <= 1, "{series} appears {} times", hits.len());
        hits.first().map(|l| l[prefix.len()..].to_string())
    }

    fn metrics() -> Metrics {
        Metrics::new(&[("location".into(), "eu-west-1".into())], &[]).expect("metrics")
    }

    const L: &str = r#"scenario="shop",team="pay\"ments",location="eu-west-1""#;

    #[test]
    fn every_scenario_outcome_and_step_reason_series_exists_at_zero() {
        let m = metrics();
        m.sync(&[scenario(SHOP), scenario(OTHER)]);
        let t = m.render();
        for outcome in ["success", "failure"] {
            assert_eq!(
                value(&t, &format!("{RUNS_TOTAL}{{{L},outcome=\"{outcome}\"}}")).as_deref(),
                Some("0")
            );
        }
        for step in ["home", "api", "cleanup"] {
            for r in Reason::ALL {
                let s = format!(
                    "{STEP_FAILURES_TOTAL}{{{L},step=\"{step}\",kind=\"http\",reason=\"{r}\"}}"
                );
                assert_eq!(value(&t, &s).as_deref(), Some("0"), "{s}");
            }
            let s = format!("{STEP_RETRIES_TOTAL}{{{L},step=\"{step}\"}}");
            assert_eq!(value(&t, &s).as_deref(), Some("0"));
        }
        assert_eq!(
            value(&t, &format!("{RUNS_SKIPPED_TOTAL}{{{L}}}")).as_deref(),
            Some("0")
        );
        assert!(t.contains(
            r#"flowprobe_runs_total{scenario="other",location="eu-west-1",outcome="failure"} 0"#
        ));
        // Gauges about the last run only appear once there was one.
        assert!(!t.contains(SCENARIO_SUCCESS));
        // Registry metrics carry the constant label too.
        assert!(
            t.contains(&format!(
                r#"flowprobe_build_info{{revision="{REVISION}",version="{}",location="eu-west-1"}} 1"#,
                env!("CARGO_PKG_VERSION")
            )),
            "{t}"
        );
        assert!(t.contains(
            r#"flowprobe_config_reloads_total{result="failure",location="eu-west-1"} 0"#
        ));
        assert!(t.contains("process_cpu_seconds_total"));
    }

    #[test]
    fn buckets_include_the_slo_threshold_exactly_once() {
        let m = metrics();
        m.sync(&[scenario(SHOP), scenario(OTHER)]);
        let t = m.render();
        let le = |scenario: &str| -> Vec<String> {
            t.lines()
                .filter(|l| {
                    l.starts_with(&format!(
                        "{RUN_DURATION_SECONDS}_bucket{{scenario=\"{scenario}\""
                    ))
                })
                .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next().map(String::from))
                .collect()
        };
        let shop = le("shop");
        assert!(shop.contains(&"0.3".to_string()), "{shop:?}");
        assert_eq!(shop.len(), DEFAULT_BUCKETS.len() + 2, "{shop:?}");
        // Another scenario keeps the configured buckets.
        assert!(!le("other").contains(&"0.3".to_string()));
        // A threshold that is already a bucket is not repeated; configured buckets are used.
        let m = Metrics::new(&[], &parse_buckets("300ms,1,2s").expect("buckets")).expect("metrics");
        m.sync(&[scenario(SHOP)]);
        let t = m.render();
        let n = t
            .lines()
            .filter(|l| l.starts_with("flowprobe_run_duration_seconds_bucket"))
            .count();
        assert_eq!(n, 4, "0.3, 1, 2, +Inf");
        assert_eq!(seconds_label(Duration::from_millis(2500)), "2.5");
    }

    #[test]
    fn outcomes_move_counters_histograms_and_gauges() {
        let m = metrics();
        m.sync(&[scenario(SHOP)]);
        m.record(&outcome(
            "shop",
            vec![
                step("home", StepStatus::Passed, 40),
                step("api", StepStatus::Passed, 200),
                step("cleanup", StepStatus::Passed, 5),
            ],
        ));
        let mut failed = step("api", StepStatus::Failed, 400);
        failed.attempts = 3;
        m.record(&outcome(
            "shop",
            vec![
                step("home", StepStatus::Passed, 40),
                failed,
                step("cleanup", StepStatus::Passed, 5),
            ],
        ));
        m.record_skipped("shop");
        let t = m.render();
        let v = |s: String| value(&t, &s).unwrap_or_else(|| panic!("no {s}"));
        assert_eq!(v(format!("{RUNS_TOTAL}{{{L},outcome=\"success\"}}")), "1");
        assert_eq!(v(format!("{RUNS_TOTAL}{{{L},outcome=\"failure\"}}")), "1");
        assert_eq!(v(format!("{RUNS_SKIPPED_TOTAL}{{{L}}}")), "1");
        assert_eq!(
            v(format!(
                "{STEP_FAILURES_TOTAL}{{{L},step=\"api\",kind=\"http\",reason=\"http_status\"}}"
            )),
            "1"
        );
        assert_eq!(
            v(format!(
                "{STEP_FAILURES_TOTAL}{{{L},step=\"api\",kind=\"http\",reason=\"timeout\"}}"
            )),
            "0"
        );
        assert_eq!(v(format!("{STEP_RETRIES_TOTAL}{{{L},step=\"api\"}}")), "2");
        // Runs of 245ms and 445ms: one within the 0.3 SLO bucket, both within 0.5.
        assert_eq!(
            v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"0.25\"}}")),
            "1"
        );
        assert_eq!(
            v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"0.3\"}}")),
            "1"
        );
        assert_eq!(
            v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"0.5\"}}")),
            "2"
        );
        assert_eq!(
            v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"+Inf\"}}")),
            "2"
        );
        assert_eq!(v(format!("{RUN_DURATION_SECONDS}_count{{{L}}}")), "2");
        assert_eq!(v(format!("{RUN_DURATION_SECONDS}_sum{{{L}}}")), "0.69");
        assert_eq!(
            v(format!(
                "{STEP_DURATION_SECONDS}_count{{{L},step=\"home\",kind=\"http\"}}"
            )),
            "2"
        );
        assert_eq!(
            v(format!(
                "{PHASE_DURATION_SECONDS}_count{{{L},step=\"home\",phase=\"connect\"}}"
            )),
            "2"
        );
        assert_eq!(v(format!("{SCENARIO_SUCCESS}{{{L}}}")), "0");
        assert_eq!(
            v(format!("{LAST_RUN_TIMESTAMP_SECONDS}{{{L}}}")),
            "1700000000.445"
        );
        assert_eq!(
            v(format!("{LAST_SUCCESS_TIMESTAMP_SECONDS}{{{L}}}")),
            "1700000000.245"
        );
        assert_eq!(
            v(format!(
                "{STEP_LATENCY_SECONDS}{{{L},step=\"home\",quantile=\"0.5\"}}"
            ))
            .parse::<f64>()
            .map(|x| (x - 0.04).abs() < 0.0004),
            Ok(true)
        );
        // Outcomes of unknown scenarios are ignored.
        m.record(&outcome("gone", vec![step("x", StepStatus::Passed, 1)]));
        assert!(!m.render().contains("\"gone\""));
    }

    #[test]
    fn failed_runs_are_counted_by_run_reason_and_cancelled_runs_not_at_all() {
        let m = metrics();
        m.sync(&[scenario(SHOP), scenario(OTHER)]);
        let series = |t: &str, sc: &str, r: Reason| {
            let labels = if sc == "shop" {
                L.to_string()
            } else {
                format!("scenario=\"{sc}\",location=\"eu-west-1\"")
            };
            value(
                t,
                &format!("{RUN_FAILURES_TOTAL}{{{labels},reason=\"{r}\"}}"),
            )
        };
        let t = m.render();
        for sc in ["shop", "other"] {
            for r in Reason::ALL {
                assert_eq!(series(&t, sc, r).as_deref(), Some("0"), "{sc} {r}");
            }
        }
        // A step failure: the run's reason is the step's.
        m.record(&outcome("shop", vec![step("home", StepStatus::Failed, 10)]));
        // A run-level failure: a secret could not be read, every step skipped.
        let mut config = outcome("shop", vec![step("home", StepStatus::Skipped, 0)]);
        config.reason = Some(Reason::Config);
        config.message = Some("secret `pw`: environment variable PW is not set".into());
        assert_eq!(config.run_level_failure(), Some(Reason::Config));
        m.record(&config);
        // Cut short by shutdown: says nothing about the target, counted nowhere.
        let mut cancelled = outcome("shop", vec![step("home", StepStatus::Failed, 10)]);
        cancelled.cancelled = true;
        m.record(&cancelled);
        // A pass is no failure.
        m.record(&outcome("shop", vec![step("home", StepStatus::Passed, 10)]));
        let t = m.render();
        assert_eq!(series(&t, "shop", Reason::HttpStatus).as_deref(), Some("1"));
        assert_eq!(series(&t, "shop", Reason::Config).as_deref(), Some("1"));
        assert_eq!(series(&t, "shop", Reason::Timeout).as_deref(), Some("0"));
        assert_eq!(series(&t, "other", Reason::Config).as_deref(), Some("0"));
        assert_eq!(
            m.counts("shop"),
            Some(RunCounts {
                success: 1,
                failure: 2,
                skipped: 0
            })
        );
        assert_eq!(
            value(
                &t,
                &format!("{STEP_FAILURES_TOTAL}{{{L},step=\"home\",kind=\"http\",reason=\"http_status\"}}")
            )
            .as_deref(),
            Some("1"),
            "the cancelled run's step is not counted either"
        );
        assert_eq!(
            t.matches(&format!("# TYPE {RUN_FAILURES_TOTAL} counter"))
                .count(),
            1
        );
    }

    #[test]
    fn connection_series_follow_the_server() {
        let m = metrics();
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.record_connection_refused();
        let t = m.render();
        assert!(
            t.contains(&format!(
                "{HTTP_CONNECTIONS_OPEN}{{location=\"eu-west-1\"}} 1"
            )),
            "{t}"
        );
        assert!(t.contains(&format!(
            "{HTTP_CONNECTIONS_REFUSED_TOTAL}{{location=\"eu-west-1\"}} 1"
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn latency_quantiles_cover_a_sliding_window() {
        let m = metrics();
        m.sync(&[scenario(OTHER)]);
        // 1..=100 ms, then 1000 ms samples four minutes later.
        for ms in 1..=100 {
            m.record(&outcome(
                "other",
                vec![step("only", StepStatus::Passed, ms)],
            ));
        }
        let q = |m: &Metrics, quantile: &str| -> f64 {
            let s = format!("{STEP_LATENCY_SECONDS}{{scenario=\"other\",location=\"eu-west-1\",step=\"only\",quantile=\"{quantile}\"}}");
            value(&m.render(), &s)
                .expect("quantile")
                .parse()
                .expect("number")
        };
        let near = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
        assert!(near(q(&m, "0.5"), 0.050), "{}", q(&m, "0.5"));
        assert!(near(q(&m, "0.9"), 0.090));
        assert!(near(q(&m, "0.99"), 0.099));
        assert!(near(q(&m, "1.0"), 0.100));
        tokio::time::sleep(Duration::from_secs(240)).await;
        for _ in 0..100 {
            m.record(&outcome(
                "other",
                vec![step("only", StepStatus::Passed, 1000)],
            ));
        }
        assert!(
            near(q(&m, "0.5"), 0.100) || q(&m, "0.5") < 0.101,
            "{}",
            q(&m, "0.5")
        );
        assert!(near(q(&m, "0.99"), 1.0));
        // A minute later the first samples have left the window.
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(near(q(&m, "0.5"), 1.0), "{}", q(&m, "0.5"));
        // With nothing in the window the quantiles are NaN instead of stale values.
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(q(&m, "0.5").is_nan());
        let t = m.render();
        let count = format!("{STEP_LATENCY_SECONDS}_count{{scenario=\"other\",location=\"eu-west-1\",step=\"only\"}}");
        assert_eq!(value(&t, &count).as_deref(), Some("200"));
    }

    #[test]
    fn sync_keeps_unchanged_counters_and_drops_removed_series() {
        let m = metrics();
        m.sync(&[scenario(SHOP), scenario(OTHER)]);
        m.record(&outcome("shop", vec![step("home", StepStatus::Failed, 1)]));
        m.record(&outcome("other", vec![step("only", StepStatus::Passed, 1)]));
        // "other" gains a step and changes its SLO (buckets); "shop" is removed; "new" comes.
        let other2 = "name: other\nslo: {availability: 99%, latency: {threshold: 700ms, objective: 99%}}\nsteps:\n  - name: only\n    http: {url: \"http://127.0.0.1:9/\"}\n  - name: more\n    redis: {url: \"redis://127.0.0.1:9\", roundtrip: {}}\n";
        m.sync(&[
            scenario(other2),
            scenario("name: new\nsteps:\n  - name: a\n    http: {url: \"http://127.0.0.1:9/\"}\n"),
        ]);
        let t = m.render();
        assert!(!t.contains("scenario=\"shop\""));
        let lo = r#"scenario="other",location="eu-west-1""#;
        assert_eq!(
            value(&t, &format!("{RUNS_TOTAL}{{{lo},outcome=\"success\"}}")).as_deref(),
            Some("1")
        );
        assert_eq!(
            value(
                &t,
                &format!(
                    "{STEP_FAILURES_TOTAL}{{{lo},step=\"more\",kind=\"redis\",reason=\"cache\"}}"
                )
            )
            .as_deref(),
            Some("0")
        );
        assert!(
            t.contains(&format!(
                "{RUN_DURATION_SECONDS}_bucket{{{lo},le=\"0.7\"}} 0"
            )),
            "histograms restart with the new buckets"
        );
        assert!(t.contains(
            r#"flowprobe_runs_total{scenario="new",location="eu-west-1",outcome="success"} 0"#
        ));
        // Unchanged again: values stay.
        m.record(&outcome("other", vec![step("only", StepStatus::Passed, 1)]));
        m.sync(&[scenario(other2)]);
        assert_eq!(
            m.counts("other"),
            Some(RunCounts {
                success: 2,
                failure: 0,
                skipped: 0
            })
        );
        assert_eq!(m.scenario_names(), vec!["other"]);
    }

    #[test]
    fn families_are_contiguous_with_one_header_across_chunks() {
        let m = metrics();
        let set: Vec<LoadedScenario> = (0..600)
            .map(|i| scenario(&format!("name: s-{i}\nsteps:\n  - name: a\n    http: {{url: \"http://127.0.0.1:9/\"}}\n")))
            .collect();
        m.sync(&set);
        let chunks: Vec<String> = m.render_chunks().collect();
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 8192));
        let text: String = chunks.concat();
        let mut seen = Vec::new();
        let mut current = "";
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            if family != current {
                assert!(!seen.contains(&family.to_string()), "{family} is split");
                seen.push(family.to_string());
                current = family;
            }
        }
        for f in [RUNS_TOTAL, STEP_FAILURES_TOTAL, RUN_DURATION_SECONDS] {
            assert_eq!(text.matches(&format!("# TYPE {f} ")).count(), 1, "{f}");
        }
        assert_eq!(text.matches("flowprobe_runs_total{").count(), 1200);
    }

    #[test]
    fn label_settings_are_checked() {
        let ok = [("location".to_string(), "eu".to_string())];
        assert!(check_const_labels(&ok).is_ok());
        for bad in ["scenario", "le", "9x", "__x", "a-b"] {
            assert!(
                check_const_labels(&[(bad.into(), "v".into())]).is_err(),
                "{bad}"
            );
        }
        assert!(check_const_labels(&[("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
        let sc = scenario("name: x\nlabels: {location: here}\nsteps:\n  - name: a\n    http: {url: \"http://127.0.0.1:9/\"}\n");
        assert_eq!(
            check_label_collisions(&[sc], &ok),
            Err(vec![MetricsError::Collision {
                scenario: "x".into(),
                label: "location".into()
            }])
        );
        assert_eq!(
            parse_buckets("1, 0.5,250ms,1s").expect("valid"),
            vec![0.25, 0.5, 1.0]
        );
        assert!(parse_buckets("0").is_err());
        assert!(parse_buckets("fast").is_err());
    }
}
