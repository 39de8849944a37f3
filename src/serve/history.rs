//! The bounded run history of each scenario that `/status` shows: the last [`RETAINED_RUNS`]
//! runs as compact records (start, duration, result, each step's duration and result), the
//! redacted messages, run ids and trace ids of the failed ones, the last failed run in full (for its
//! waterfall), and uptime over the retained window and the last hour.
//!
//! Memory is bounded per scenario: a passing run of one step costs 24 bytes; messages are kept
//! only for failed runs, of which at most [`RETAINED_RUNS`] are retained.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;

use crate::outcome::{Reason, ScenarioOutcome, StepStatus};

/// Runs retained per scenario.
pub const RETAINED_RUNS: usize = 100;

/// One run, compact: 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Tick {
    started_ms: u64,
    duration_us: u32,
    steps: u16,
    success: bool,
    reason: Option<Reason>,
}

/// One step of a run, compact: 8 bytes.
#[derive(Debug, Clone, Copy)]
struct StepTick {
    duration_us: u32,
    name: u16,
    status: StepStatus,
    reason: Option<Reason>,
}

/// What is kept of a failed run besides its ticks: its ids and redacted messages.
#[derive(Debug, Clone)]
struct Detail {
    seq: u64,
    run_id: Box<str>,
    trace_id: Box<str>,
    message: Option<Box<str>>,
    /// (index of the step in the run, its message).
    steps: Box<[(u16, Box<str>)]>,
}

/// The retained runs of one scenario.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Sequence number the next run gets (runs recorded so far).
    next_seq: u64,
    ticks: VecDeque<Tick>,
    steps: VecDeque<StepTick>,
    /// Step names, interned: a step tick holds an index.
    names: Vec<Box<str>>,
    details: VecDeque<Detail>,
    last_failure: Option<Arc<ScenarioOutcome>>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl History {
    /// Adds a finished run, dropping the oldest beyond [`RETAINED_RUNS`]. Runs cut short by
    /// shutdown say nothing about the target and are not recorded.
    pub fn record(&mut self, o: &Arc<ScenarioOutcome>) {
        if o.cancelled {
            return;
        }
        if self.ticks.len() == RETAINED_RUNS {
            self.drop_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let steps = o.steps.len().min(usize::from(u16::MAX));
        for st in o.steps.iter().take(steps) {
            let name = self.intern(&st.name);
            self.steps.push_back(StepTick {
                duration_us: micros(st.duration),
                name,
                status: st.status,
                reason: st.reason,
            });
        }
        self.ticks.push_back(Tick {
            started_ms: unix_ms(o.started_at),
            duration_us: micros(o.duration),
            steps: steps as u16,
            success: o.success,
            reason: o.reason,
        });
        if !o.success {
            self.details.push_back(Detail {
                seq,
                run_id: o.run_id.as_str().into(),
                trace_id: o.trace_id.as_str().into(),
                message: o.message.as_deref().map(Into::into),
                steps: o
                    .steps
                    .iter()
                    .take(steps)
                    .enumerate()
                    .filter_map(|(i, s)| Some((i as u16, s.message.as_deref()?.into())))
                    .collect(),
            });
            self.last_failure = Some(o.clone());
        }
    }

    fn drop_oldest(&mut self) {
        let Some(old) = self.ticks.pop_front() else {
            return;
        };
        self.steps
            .drain(..usize::from(old.steps).min(self.steps.len()));
        let first_seq = self.next_seq - self.ticks.len() as u64;
        while self.details.front().is_some_and(|d| d.seq < first_seq) {
            self.details.pop_front();
        }
    }

    fn intern(&mut self, name: &str) -> u16 {
        if let Some(i) = self.names.iter().position(|n| &**n == name) {
            return i as u16;
        }
        if self.names.len() >= usize::from(u16::MAX) {
            return u16::MAX;
        }
        self.names.push(name.into());
        (self.names.len() - 1) as u16
    }

    /// The last failed run in full (kept when it leaves the window).
    pub fn last_failure(&self) -> Option<&Arc<ScenarioOutcome>> {
        self.last_failure.as_ref()
    }

    /// Runs retained.
    pub fn len(&self) -> usize {
        self.ticks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ticks.is_empty()
    }

    /// The retained runs, oldest first, at most the `limit` newest.
    pub fn runs(&self, limit: usize) -> Vec<HistoryRun> {
        let first_seq = self.next_seq - self.ticks.len() as u64;
        let mut step_at = 0;
        let mut out = Vec::with_capacity(self.ticks.len().min(limit));
        let skip = self.ticks.len().saturating_sub(limit);
        for (i, t) in self.ticks.iter().enumerate() {
            let n = usize::from(t.steps);
            let seq = first_seq + i as u64;
            if i >= skip {
                out.push(self.run_at(seq, t, step_at, n));
            }
            step_at += n;
        }
        out
    }

    fn run_at(&self, seq: u64, t: &Tick, step_at: usize, n: usize) -> HistoryRun {
        let detail = self.details.iter().find(|d| d.seq == seq);
        let steps = self
            .steps
            .range(step_at..(step_at + n).min(self.steps.len()))
            .enumerate()
            .map(|(i, s)| HistoryStep {
                name: self
                    .names
                    .get(usize::from(s.name))
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                status: s.status,
                reason: s.reason,
                duration: secs_of_us(s.duration_us),
                message: detail.and_then(|d| {
                    d.steps
                        .iter()
                        .find(|(j, _)| usize::from(*j) == i)
                        .map(|(_, m)| m.to_string())
                }),
            })
            .collect();
        HistoryRun {
            seq,
            started_at: t.started_ms as f64 / 1e3,
            duration: secs_of_us(t.duration_us),
            success: t.success,
            reason: t.reason,
            run_id: detail.map(|d| d.run_id.to_string()),
            trace_id: detail.map(|d| d.trace_id.to_string()),
            message: detail.and_then(|d| d.message.as_deref().map(str::to_string)),
            steps,
        }
    }

    /// Uptime over the retained runs and over those that started in the hour before `now`.
    pub fn uptime(&self, now: SystemTime) -> Uptime {
        let hour_ago = unix_ms(now).saturating_sub(3_600_000);
        let ratio = |runs: usize, ok: usize| (runs > 0).then(|| ok as f64 / runs as f64);
        let (mut hour_runs, mut hour_ok, mut ok) = (0, 0, 0);
        for t in &self.ticks {
            ok += usize::from(t.success);
            if t.started_ms >= hour_ago {
                hour_runs += 1;
                hour_ok += usize::from(t.success);
            }
        }
        Uptime {
            window: ratio(self.ticks.len(), ok),
            window_runs: self.ticks.len(),
            window_since: self.ticks.front().map(|t| t.started_ms as f64 / 1e3),
            last_hour: ratio(hour_runs, hour_ok),
            last_hour_runs: hour_runs,
        }
    }
}

fn secs_of_us(us: u32) -> f64 {
    f64::from(us) / 1e6
}

/// One retained run as `/status` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryRun {
    /// Number of the run since serve started (or the scenario appeared), from 0.
    pub seq: u64,
    /// Unix time in seconds.
    pub started_at: f64,
    /// Seconds.
    pub duration: f64,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The run's id, kept for failed runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's trace id (as its requests carried in `traceparent`), kept for failed runs:
    /// a passing run's is in `last_run` while it is the last (a trace id per retained run
    /// would double the history's memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The run-level failure message, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub steps: Vec<HistoryStep>,
}

/// One step of a retained run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryStep {
    pub name: String,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Seconds.
    pub duration: f64,
    /// The failure message, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Share of passed runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Uptime {
    /// Passed / retained runs; null when none is retained.
    pub window: Option<f64>,
    pub window_runs: usize,
    /// Unix time in seconds of the oldest retained run.
    pub window_since: Option<f64>,
    /// Passed / runs started in the last hour; null when none did.
    pub last_hour: Option<f64>,
    pub last_hour_runs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::fixtures;

    fn run(ok: bool, at_s: u64) -> Arc<ScenarioOutcome> {
        let status = if ok {
            StepStatus::Passed
        } else {
            StepStatus::Failed
        };
        let mut step = fixtures::step("home", status);
        if !ok {
            step.message = Some("HTTP 500 [redacted]".into());
        }
        let mut o = fixtures::run(
            "shop",
            vec![fixtures::step("login", StepStatus::Passed), step],
        );
        o.started_at = SystemTime::UNIX_EPOCH + Duration::from_secs(at_s);
        o.run_id = format!("run-{at_s}");
        Arc::new(o)
    }

    #[test]
    fn keeps_the_newest_runs_and_the_messages_of_failed_ones() {
        let mut h = History::default();
        for i in 0..(RETAINED_RUNS as u64 + 30) {
            h.record(&run(i % 10 != 3, 1000 + i));
        }
        assert_eq!(h.len(), RETAINED_RUNS);
        let runs = h.runs(usize::MAX);
        assert_eq!(runs.len(), RETAINED_RUNS);
        assert_eq!(runs[0].seq, 30);
        assert_eq!(runs[0].started_at, 1030.0);
        let failed: Vec<_> = runs.iter().filter(|r| !r.success).collect();
        assert_eq!(failed.len(), 10);
        for f in &failed {
            assert_eq!(f.steps[1].message.as_deref(), Some("HTTP 500 [redacted]"));
            assert_eq!(f.steps[1].status, StepStatus::Failed);
            assert_eq!(f.steps[0].name, "login");
            assert_eq!(f.run_id.as_deref(), Some(&*format!("run-{}", f.started_at)));
            assert_eq!(
                f.trace_id.as_deref(),
                Some("0af7651916cd43dd8448eb211c80319c")
            );
        }
        assert!(runs
            .iter()
            .filter(|r| r.success)
            .all(|r| r.trace_id.is_none()));
        assert_eq!(h.details.len(), 10);
        assert_eq!(h.steps.len(), 2 * RETAINED_RUNS);
        assert_eq!(h.runs(5).len(), 5);
        assert_eq!(h.runs(5)[4].seq, RETAINED_RUNS as u64 + 29);
        assert_eq!(
            h.last_failure().map(|o| o.run_id.as_str()),
            Some("run-1123")
        );
    }

    #[test]
    fn uptime_over_the_window_and_the_last_hour() {
        let mut h = History::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(h.uptime(now).window, None);
        h.record(&run(false, 1_000));
        h.record(&run(true, 9_000));
        h.record(&run(true, 9_500));
        h.record(&run(false, 9_900));
        let u = h.uptime(now);
        assert_eq!(u.window, Some(0.5));
        assert_eq!(u.window_runs, 4);
        assert_eq!(u.last_hour, Some(2.0 / 3.0));
        assert_eq!(u.last_hour_runs, 3);
        assert_eq!(u.window_since, Some(1_000.0));
    }

    #[test]
    fn cancelled_runs_are_not_recorded() {
        let mut h = History::default();
        let mut o = (*run(false, 1)).clone();
        o.cancelled = true;
        h.record(&Arc::new(o));
        assert!(h.is_empty());
        assert!(h.last_failure().is_none());
    }
}
