//! The mutable series of one scenario and its steps, and how one outcome moves them: counters
//! that exist from start-up, counters created on their first increment (with the time, for
//! OpenMetrics `_created`), histograms with exemplars, the TLS facts of each step.

use std::sync::{Arc, Mutex};

use super::hist::Hist;
use super::window::Window;
use super::{escape, PHASE_SCHEMA, STEP_SCHEMA};
use crate::outcome::{Reason, ScenarioOutcome, StepOutcome, StepStatus};

/// The ids of one run, shared by the exemplars its observations leave: `trace_id run_id` in
/// one allocation.
#[derive(Debug, Clone)]
pub struct Run(Arc<str>);

impl Run {
    pub fn new(trace_id: &str, run_id: &str) -> Run {
        Run(format!("{trace_id} {run_id}").into())
    }

    pub fn trace_id(&self) -> &str {
        self.0.split_once(' ').map_or(&*self.0, |(t, _)| t)
    }

    pub fn run_id(&self) -> &str {
        self.0.split_once(' ').map_or("", |(_, r)| r)
    }
}

/// A counter created on its first increment: (value, unix seconds it was created).
pub type Lazy = Option<(u64, f64)>;

/// Counters by reason, each created on its first increment: (index in [`Reason::ALL`], value,
/// created), in index order.
#[derive(Debug, Default, Clone)]
pub struct ByReason(pub Vec<(u8, u64, f64)>);

impl ByReason {
    fn inc(&mut self, reason: Reason, now: f64) {
        let Some(i) = Reason::ALL.iter().position(|r| *r == reason) else {
            return;
        };
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        match self.0.binary_search_by_key(&i, |(k, _, _)| *k) {
            Ok(p) => self.0[p].1 += 1,
            Err(p) => self.0.insert(p, (i, 1, now)),
        }
    }

    /// (reason, value, created) of the counters that exist.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64, f64)> + '_ {
        self.0
            .iter()
            .filter_map(|(i, n, c)| Reason::ALL.get(usize::from(*i)).map(|r| (*r, *n, *c)))
    }
}

fn inc_lazy(c: &mut Lazy, by: u64, now: f64) {
    match c {
        Some((n, _)) => *n += by,
        None => *c = Some((by, now)),
    }
}

/// Series of one step.
#[derive(Debug)]
pub struct StepSeries {
    pub kind: &'static str,
    /// `step="x",kind="y"` (escaped).
    pub labels: String,
    pub duration: Hist,
    pub failures: ByReason,
    pub retries: Lazy,
    /// Native-only histograms by phase name, in order of appearance (a few per step; a
    /// BTreeMap's node would cost more than all of them).
    pub phases: Vec<(Box<str>, Hist)>,
    pub window: Window,
    pub cert_not_after: Option<u64>,
    /// The TLS version the step's last TLS handshake negotiated.
    pub tls_version: Option<Box<str>>,
}

impl StepSeries {
    pub fn new(name: &str, kind: &'static str, bounds: &Arc<[f64]>, now: f64) -> StepSeries {
        StepSeries {
            kind,
            labels: format!("step=\"{}\",kind=\"{kind}\"", escape(name)),
            duration: Hist::new(bounds, Some(STEP_SCHEMA), now),
            failures: ByReason::default(),
            retries: None,
            phases: Vec::new(),
            window: Window::default(),
            cert_not_after: None,
            tls_version: None,
        }
    }

    fn record(&mut self, step: &StepOutcome, run: &Run, now: f64, window: Option<u64>) {
        let secs = step.duration.as_secs_f64();
        self.duration.observe(secs, Some(run), now);
        if let Some(slot) = window {
            self.window.record(slot, step.duration);
        }
        if step.attempts > 1 {
            inc_lazy(&mut self.retries, u64::from(step.attempts - 1), now);
        }
        if step.status == StepStatus::Failed {
            self.failures
                .inc(step.reason.unwrap_or(Reason::Internal), now);
        }
        for p in &step.phases {
            let i = match self.phases.iter().position(|(n, _)| **n == *p.name) {
                Some(i) => i,
                None => {
                    let h = Hist::native_only(PHASE_SCHEMA, now);
                    self.phases.push((p.name.as_str().into(), h));
                    self.phases.len() - 1
                }
            };
            self.phases[i]
                .1
                .observe(p.duration.as_secs_f64(), None, now);
        }
        let expiry = step.certificate_not_after.or_else(|| {
            step.tls
                .as_ref()
                .and_then(|t| t.earliest_expiry())
                .map(|c| c.not_after)
        });
        if expiry.is_some() {
            self.cert_not_after = expiry;
        }
        if let Some(t) = &step.tls {
            if self.tls_version.as_deref() != Some(t.version.as_str()) {
                self.tls_version = Some(t.version.as_str().into());
            }
        }
    }
}

/// Mutable series of one scenario.
#[derive(Debug)]
pub struct Series {
    pub success: u64,
    pub failure: u64,
    pub skipped: Lazy,
    /// Failed runs by the run's reason.
    pub run_failures: ByReason,
    pub run_duration: Hist,
    /// Steps (and `finally` steps) in scenario order.
    pub steps: Vec<(String, StepSeries)>,
    pub last_success: Option<bool>,
    pub last_run: Option<f64>,
    pub last_success_at: Option<f64>,
    /// `file` and `interval` of `flowprobe_scenario_info`.
    pub file: String,
    pub interval: String,
}

impl Series {
    pub fn new(bounds: &Arc<[f64]>, now: f64) -> Series {
        Series {
            success: 0,
            failure: 0,
            skipped: None,
            run_failures: ByReason::default(),
            run_duration: Hist::new(bounds, None, now),
            steps: Vec::new(),
            last_success: None,
            last_run: None,
            last_success_at: None,
            file: String::new(),
            interval: String::new(),
        }
    }

    /// Reads one outcome (not a cancelled one) in; `window` is the current quantile slot when
    /// the latency summary is on.
    pub fn record(&mut self, o: &ScenarioOutcome, now: f64, window: Option<u64>) {
        if o.success {
            self.success += 1;
        } else {
            self.failure += 1;
            self.run_failures
                .inc(o.reason.unwrap_or(Reason::Internal), now);
        }
        let run = Run::new(&o.trace_id, &o.run_id);
        self.run_duration
            .observe(o.duration.as_secs_f64(), Some(&run), now);
        let finished = super::unix_secs(o.started_at) + o.duration.as_secs_f64();
        self.last_success = Some(o.success);
        self.last_run = Some(finished);
        if o.success {
            self.last_success_at = Some(finished);
        }
        for step in o.steps.iter().filter(|s| s.status != StepStatus::Skipped) {
            if let Some((_, st)) = self.steps.iter_mut().find(|(n, _)| *n == step.name) {
                st.record(step, &run, now, window);
            }
        }
    }

    pub fn skipped(&mut self, now: f64) {
        inc_lazy(&mut self.skipped, 1, now);
    }
}

/// One scenario's metrics.
#[derive(Debug)]
pub struct ScenarioMetrics {
    /// `scenario="x",static...,const...` (escaped).
    pub labels: String,
    /// The same labels as pairs (unescaped), for the protobuf exposition.
    pub pairs: Vec<(String, String)>,
    pub bounds: Arc<[f64]>,
    /// Unix seconds when the scenario's series started (OpenMetrics `_created`).
    pub created: f64,
    pub series: Mutex<Series>,
}
