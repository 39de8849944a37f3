//! The documented range of every number a scenario may hold, and the check that reports an
//! out-of-range value at its place with the range as a hint.
//!
//! Literals are already bounded when they are read (durations 0s..=3650d, sizes 0B..=1024TiB,
//! see `units`); the ranges here are each field's own, narrower ones. Lower bounds that a step
//! kind checks itself (`redis.roundtrip.ttl >= 1ms`, ...) are not reported twice.

use std::time::Duration;

use super::model::{Retry, Scenario, Step};
use crate::units::{format_size, number_text, Dur, Size};

pub const MS: Duration = Duration::from_millis(1);
pub const SECOND: Duration = Duration::from_secs(1);
pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(86_400);
pub const GIB: u64 = 1 << 30;
pub const TIB: u64 = 1 << 40;

/// Inclusive bounds of one numeric field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    Dur(Duration, Duration),
    Size(u64, u64),
    Int(i64, i64),
    Float(f64, f64),
}

impl Range {
    /// `1ms and 1d`, as the hint and the README show it.
    pub fn describe(&self) -> String {
        match *self {
            Range::Dur(lo, hi) => format!("{} and {}", human_duration(lo), human_duration(hi)),
            Range::Size(lo, hi) => format!("{} and {}", format_size(lo), format_size(hi)),
            Range::Int(lo, hi) => format!("{lo} and {hi}"),
            Range::Float(lo, hi) => format!("{lo} and {hi}"),
        }
    }
}

/// A duration in the largest unit that divides it: `1d`, `90s`, `250ms`.
pub fn human_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let ms = d.as_millis();
    for (unit, len) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms.is_multiple_of(len) {
            return format!("{}{unit}", ms / len);
        }
    }
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{ms}ms")
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// Every ranged field outside the step kinds: (path as documented, range). The README table is
/// this list followed by each kind's `RANGES`.
pub const FIELDS: &[(&str, Range)] = &[
    ("schedule.interval", SCHEDULE_INTERVAL),
    ("schedule.jitter", SCHEDULE_JITTER),
    ("schedule.timeout", RUN_TIMEOUT),
    ("defaults.timeout, steps[].timeout", STEP_TIMEOUT),
    ("retry.attempts", RETRY_ATTEMPTS),
    ("retry.interval", RETRY_INTERVAL),
    ("retry.backoff", RETRY_BACKOFF),
    ("slo.window", SLO_WINDOW),
    ("slo.latency.threshold", SLO_THRESHOLD),
];

pub const SCHEDULE_INTERVAL: Range = Range::Dur(SECOND, Duration::from_secs(7 * 86_400));
/// Checked against the interval by the loader (`jitter < interval`).
pub const SCHEDULE_JITTER: Range = Range::Dur(Duration::ZERO, Duration::from_secs(7 * 86_400));
pub const RUN_TIMEOUT: Range = Range::Dur(MS, DAY);
pub const STEP_TIMEOUT: Range = Range::Dur(MS, DAY);
pub const RETRY_ATTEMPTS: Range = Range::Int(1, 100);
pub const RETRY_INTERVAL: Range = Range::Dur(Duration::ZERO, HOUR);
pub const RETRY_BACKOFF: Range = Range::Float(1.0, 10.0);
pub const SLO_WINDOW: Range = Range::Dur(HOUR, Duration::from_secs(366 * 86_400));
pub const SLO_THRESHOLD: Range = Range::Dur(MS, DAY);
/// One problem found by a check, at a YAML path.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// YAML path of the value, e.g. `steps[2].retry.backoff`.
    pub path: String,
    pub message: String,
    /// For a number out of range: `` `backoff` is between 1 and 10 ``.
    pub hint: Option<String>,
}

/// Collects the problems of one part of a scenario under one path prefix (`steps[3].http`).
#[derive(Debug, Default)]
pub struct Problems {
    prefix: String,
    found: Vec<Problem>,
}

impl Problems {
    pub fn new(prefix: impl Into<String>) -> Self {
        Problems {
            prefix: prefix.into(),
            found: Vec::new(),
        }
    }

    /// What was found, in order.
    pub fn into_vec(self) -> Vec<Problem> {
        self.found
    }

    fn path(&self, field: &str) -> String {
        match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{field}", self.prefix),
        }
    }

    /// A problem with the value at `field` (relative to the prefix; empty for the whole part).
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let path = self.path(field);
        self.found.push(Problem {
            path,
            message: message.into(),
            hint: None,
        });
    }

    fn push(&mut self, field: &str, written: String, range: Range) {
        let path = self.path(field);
        let name = field.rsplit('.').next().unwrap_or(field);
        self.found.push(Problem {
            path,
            message: format!("`{name}` {written} is out of range"),
            hint: Some(format!("`{name}` is between {}", range.describe())),
        });
    }

    pub fn dur(&mut self, field: &str, value: Option<Dur>, range: Range) {
        if let (Some(Dur(v)), Range::Dur(lo, hi)) = (value, range) {
            if v < lo || v > hi {
                self.push(field, human_duration(v), range);
            }
        }
    }

    /// Only the upper bound: the step kind reports values below its own minimum.
    pub fn dur_max(&mut self, field: &str, value: Option<Dur>, range: Range) {
        if let (Some(Dur(v)), Range::Dur(_, hi)) = (value, range) {
            if v > hi {
                self.push(field, human_duration(v), range);
            }
        }
    }

    pub fn size(&mut self, field: &str, value: Option<Size>, range: Range) {
        if let (Some(Size(v)), Range::Size(lo, hi)) = (value, range) {
            if v < lo || v > hi {
                self.push(field, format_size(v), range);
            }
        }
    }

    pub fn int(&mut self, field: &str, value: Option<i64>, range: Range) {
        if let (Some(v), Range::Int(lo, hi)) = (value, range) {
            if v < lo || v > hi {
                self.push(field, v.to_string(), range);
            }
        }
    }

    pub fn float(&mut self, field: &str, value: Option<f64>, range: Range) {
        if let (Some(v), Range::Float(lo, hi)) = (value, range) {
            // NaN is never in range.
            if !(lo..=hi).contains(&v) {
                self.push(field, number_text(v), range);
            }
        }
    }

    pub fn retry(&mut self, retry: Option<&Retry>) {
        if let Some(r) = retry {
            self.int(
                "retry.attempts",
                Some(i64::from(r.attempts)),
                RETRY_ATTEMPTS,
            );
            self.dur("retry.interval", Some(r.interval), RETRY_INTERVAL);
            self.float("retry.backoff", Some(r.backoff), RETRY_BACKOFF);
        }
    }
}

/// Scenario-level numbers: schedule, defaults (but their kinds'), slo.
pub fn check_scenario(sc: &Scenario) -> Vec<Problem> {
    let mut problems = Problems::new("");
    if let Some(s) = &sc.schedule {
        problems.dur("schedule.interval", Some(s.interval), SCHEDULE_INTERVAL);
        problems.dur("schedule.jitter", s.jitter, SCHEDULE_JITTER);
        problems.dur("schedule.timeout", s.timeout, RUN_TIMEOUT);
    }
    if let Some(d) = &sc.defaults {
        problems.dur("defaults.timeout", d.timeout, STEP_TIMEOUT);
        let mut inner = Problems::new("defaults");
        inner.retry(d.retry.as_ref());
        problems.found.append(&mut inner.found);
    }
    if let Some(slo) = &sc.slo {
        problems.dur("slo.window", Some(slo.window), SLO_WINDOW);
        if let Some(l) = &slo.latency {
            problems.dur("slo.latency.threshold", Some(l.threshold), SLO_THRESHOLD);
        }
    }
    problems.found
}

/// The numbers of one step that are not its kind's (`path` is `steps[3]` or `finally[0]`).
pub fn check_step(path: &str, step: &Step) -> Vec<Problem> {
    let mut c = Problems::new(path);
    c.dur("timeout", step.timeout, STEP_TIMEOUT);
    c.retry(step.retry.as_ref());
    c.found
}

/// The README table: one row per numeric field.
pub fn markdown_table() -> String {
    let mut out = String::from("| Field | Range (inclusive) |\n|---|---|\n");
    for (field, range) in FIELDS {
        out.push_str(&format!("| `{field}` | {} |\n", range.describe()));
    }
    for (field, range) in crate::steps::registry::ranges() {
        out.push_str(&format!("| `{field}` | {} |\n", range.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(yaml: &str) -> Scenario {
        crate::scenario::yaml::from_str(yaml).expect("test scenario deserializes")
    }

    #[test]
    fn durations_show_in_their_largest_exact_unit() {
        assert_eq!(human_duration(DAY), "1d");
        assert_eq!(human_duration(Duration::from_secs(90)), "90s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human_duration(Duration::ZERO), "0s");
        assert_eq!(human_duration(Duration::from_nanos(5)), "5ns");
    }

    #[test]
    fn out_of_range_values_are_reported_with_their_range() {
        let sc = scenario(
            "name: x\nschedule: {interval: 8d, timeout: 2d}\nslo: {availability: 99%, window: 1m}\n\
             defaults: {retry: {attempts: 101}}\nsteps: []\n",
        );
        let found = check_scenario(&sc);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "schedule.interval",
                "schedule.timeout",
                "defaults.retry.attempts",
                "slo.window"
            ]
        );
        assert_eq!(found[0].message, "`interval` 8d is out of range");
        assert_eq!(
            found[0].hint.as_deref(),
            Some("`interval` is between 1s and 7d")
        );
    }

    #[test]
    fn step_numbers_are_checked_per_kind() {
        let sc = scenario(
            "name: x\nsteps:\n  - name: a\n    timeout: 0s\n    retry: {attempts: 2, backoff: .nan}\n    \
             http: {url: 'http://x', max_redirects: 1000, max_body: 2GiB}\n  - name: b\n    \
             redis: {url: 'redis://x', db: 70000, commands: [[SET, k, 1.0e301]]}\n",
        );
        let with_kind = |path: &str, step: &Step| {
            let mut found = check_step(path, step);
            let mut kind = Problems::new(format!("{path}.{}", step.kinds[0].name()));
            step.kinds[0].check_ranges(&mut kind);
            found.extend(kind.into_vec());
            found
        };
        let a = with_kind("steps[0]", &sc.steps[0]);
        let paths: Vec<&str> = a.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps[0].timeout",
                "steps[0].retry.backoff",
                "steps[0].http.max_redirects",
                "steps[0].http.max_body"
            ]
        );
        let b = with_kind("steps[1]", &sc.steps[1]);
        let paths: Vec<&str> = b.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["steps[1].redis.db", "steps[1].redis.commands[0][2]"]
        );
    }

    #[test]
    fn values_at_the_bounds_pass() {
        let sc = scenario(
            "name: x\nschedule: {interval: 7d, jitter: 0s, timeout: 1d}\n\
             steps:\n  - name: a\n    timeout: 1ms\n    retry: {attempts: 100, interval: 1h, backoff: 10}\n    \
             http: {url: 'http://x', max_redirects: 0, max_body: 1GiB}\n",
        );
        assert_eq!(check_scenario(&sc), []);
        assert_eq!(check_step("steps[0]", &sc.steps[0]), []);
        assert!(markdown_table().contains("| `retry.backoff` | 1 and 10 |"));
    }
}
