//! The documented range of every number a scenario may hold, and the check that reports an
//! out-of-range value at its place with the range as a hint.
//!
//! Literals are already bounded when they are read (durations 0s..=3650d, sizes 0B..=1024TiB,
//! see `units`); the ranges here are each field's own, narrower ones. Lower bounds that a step
//! kind checks itself (`redis.roundtrip.ttl >= 1ms`, ...) are not reported twice.

use std::time::Duration;

use super::model::{Defaults, Retry, Scenario, Step};
use crate::steps::http::HttpSpec;
use crate::steps::oidc::OidcSpec;
use crate::steps::redis::{RedisArg, RedisSpec};
use crate::steps::s3::S3Spec;
use crate::units::{format_size, number_text, Dur, Size};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

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

/// Every ranged field: (path as documented, range). The README table is this list.
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
    ("http.max_redirects", MAX_REDIRECTS),
    ("http.max_body, s3.get.max_body", MAX_BODY),
    ("oidc.clock_skew", CLOCK_SKEW),
    ("oidc.jwks_cache_ttl", JWKS_CACHE_TTL),
    ("oidc.max_hops", MAX_HOPS),
    ("redis.db", REDIS_DB),
    (
        "redis.connect_timeout, redis.command_timeout",
        REDIS_TIMEOUT,
    ),
    ("redis.roundtrip.ttl", REDIS_TTL),
    ("redis.commands (numbers)", REDIS_NUMBER),
    ("s3.put.size", S3_OBJECT_SIZE),
    ("s3.put.multipart_threshold", MULTIPART_THRESHOLD),
    ("s3.sweep.older_than", SWEEP_OLDER_THAN),
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
pub const MAX_REDIRECTS: Range = Range::Int(0, 100);
pub const MAX_BODY: Range = Range::Size(0, GIB);
pub const CLOCK_SKEW: Range = Range::Dur(Duration::ZERO, HOUR);
pub const JWKS_CACHE_TTL: Range = Range::Dur(Duration::ZERO, DAY);
pub const MAX_HOPS: Range = Range::Int(1, 100);
pub const REDIS_DB: Range = Range::Int(0, 65_535);
pub const REDIS_TIMEOUT: Range = Range::Dur(MS, HOUR);
pub const REDIS_TTL: Range = Range::Dur(MS, Duration::from_secs(365 * 86_400));
/// Floats sent as command arguments: finite, within what Redis reads as a double.
pub const REDIS_NUMBER: Range = Range::Float(-1e300, 1e300);
pub const S3_OBJECT_SIZE: Range = Range::Size(0, 5 * TIB);
pub const MULTIPART_THRESHOLD: Range = Range::Size(0, 5 * GIB);
/// The s3 step itself requires at least 1m.
pub const SWEEP_OLDER_THAN: Range = Range::Dur(MINUTE, Duration::from_secs(3650 * 86_400));

/// Ranges the step kinds already report on their own (documented in the README table, not
/// checked again here).
pub const CHECKED_BY_KINDS: &[(&str, &str)] = &[
    ("redis.roundtrip.size", "1B and 64MiB"),
    ("s3.put.part_size", "5MiB and 5GiB"),
    ("s3.presign.size", "0B and 64MiB"),
    ("s3.presign.expires_in", "1s and 7d"),
];

/// One value outside its range.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    /// YAML path of the value, e.g. `steps[2].retry.backoff`.
    pub path: String,
    pub message: String,
    /// `` `backoff` is between 1 and 10 ``
    pub hint: String,
}

/// Collects out-of-range values under one path prefix.
struct Collector<'a> {
    prefix: &'a str,
    found: Vec<OutOfRange>,
}

impl Collector<'_> {
    fn push(&mut self, field: &str, written: String, range: Range) {
        let path = if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        };
        let name = field.rsplit('.').next().unwrap_or(field);
        self.found.push(OutOfRange {
            path,
            message: format!("`{name}` {written} is out of range"),
            hint: format!("`{name}` is between {}", range.describe()),
        });
    }

    fn dur(&mut self, field: &str, value: Option<Dur>, range: Range) {
        if let (Some(Dur(v)), Range::Dur(lo, hi)) = (value, range) {
            if v < lo || v > hi {
                self.push(field, human_duration(v), range);
            }
        }
    }

    /// Only the upper bound: the step kind reports values below its own minimum.
    fn dur_max(&mut self, field: &str, value: Option<Dur>, range: Range) {
        if let (Some(Dur(v)), Range::Dur(_, hi)) = (value, range) {
            if v > hi {
                self.push(field, human_duration(v), range);
            }
        }
    }

    fn size(&mut self, field: &str, value: Option<Size>, range: Range) {
        if let (Some(Size(v)), Range::Size(lo, hi)) = (value, range) {
            if v < lo || v > hi {
                self.push(field, format_size(v), range);
            }
        }
    }

    fn int(&mut self, field: &str, value: Option<i64>, range: Range) {
        if let (Some(v), Range::Int(lo, hi)) = (value, range) {
            if v < lo || v > hi {
                self.push(field, v.to_string(), range);
            }
        }
    }

    fn float(&mut self, field: &str, value: Option<f64>, range: Range) {
        if let (Some(v), Range::Float(lo, hi)) = (value, range) {
            // NaN is never in range.
            if !(lo..=hi).contains(&v) {
                self.push(field, number_text(v), range);
            }
        }
    }

    fn retry(&mut self, retry: Option<&Retry>) {
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

/// Scenario-level numbers: schedule, defaults, slo.
pub fn check_scenario(sc: &Scenario) -> Vec<OutOfRange> {
    let mut c = Collector {
        prefix: "",
        found: Vec::new(),
    };
    if let Some(s) = &sc.schedule {
        c.dur("schedule.interval", Some(s.interval), SCHEDULE_INTERVAL);
        c.dur("schedule.jitter", s.jitter, SCHEDULE_JITTER);
        c.dur("schedule.timeout", s.timeout, RUN_TIMEOUT);
    }
    if let Some(d) = &sc.defaults {
        check_defaults(&mut c, d);
    }
    if let Some(slo) = &sc.slo {
        c.dur("slo.window", Some(slo.window), SLO_WINDOW);
        if let Some(l) = &slo.latency {
            c.dur("slo.latency.threshold", Some(l.threshold), SLO_THRESHOLD);
        }
    }
    c.found
}

fn check_defaults(c: &mut Collector, d: &Defaults) {
    c.dur("defaults.timeout", d.timeout, STEP_TIMEOUT);
    if let Some(r) = &d.retry {
        let mut inner = Collector {
            prefix: "defaults",
            found: Vec::new(),
        };
        inner.retry(Some(r));
        c.found.append(&mut inner.found);
    }
    if let Some(h) = &d.http {
        let mut inner = Collector {
            prefix: "defaults.http",
            found: Vec::new(),
        };
        check_http(&mut inner, h);
        c.found.append(&mut inner.found);
    }
}

/// The numbers of one step (`path` is `steps[3]` or `finally[0]`), its kind's included.
pub fn check_step(path: &str, step: &Step) -> Vec<OutOfRange> {
    let mut c = Collector {
        prefix: path,
        found: Vec::new(),
    };
    c.dur("timeout", step.timeout, STEP_TIMEOUT);
    c.retry(step.retry.as_ref());
    let kind_path = |key: &str| format!("{path}.{key}");
    let mut sub = |key: &str, f: &dyn Fn(&mut Collector)| {
        let p = kind_path(key);
        let mut k = Collector {
            prefix: &p,
            found: Vec::new(),
        };
        f(&mut k);
        c.found.append(&mut k.found);
    };
    if let Some(h) = &step.http {
        sub("http", &|k| check_http(k, h));
    }
    if let Some(o) = &step.oidc {
        sub("oidc", &|k| check_oidc(k, o));
    }
    if let Some(r) = &step.redis {
        sub("redis", &|k| check_redis(k, r));
    }
    if let Some(s) = &step.s3 {
        sub("s3", &|k| check_s3(k, s));
    }
    c.found
}

fn check_http(c: &mut Collector, h: &HttpSpec) {
    c.int(
        "max_redirects",
        h.max_redirects.map(i64::from),
        MAX_REDIRECTS,
    );
    c.size("max_body", h.max_body, MAX_BODY);
}

fn check_oidc(c: &mut Collector, o: &OidcSpec) {
    c.dur("clock_skew", o.clock_skew, CLOCK_SKEW);
    c.dur("jwks_cache_ttl", o.jwks_cache_ttl, JWKS_CACHE_TTL);
    c.int("max_hops", o.max_hops.map(i64::from), MAX_HOPS);
}

fn check_redis(c: &mut Collector, r: &RedisSpec) {
    // A negative db is the redis step's own error.
    if r.db.is_some_and(|db| db >= 0) {
        c.int("db", r.db, REDIS_DB);
    }
    c.dur_max("connect_timeout", r.connect_timeout, REDIS_TIMEOUT);
    c.dur_max("command_timeout", r.command_timeout, REDIS_TIMEOUT);
    if let Some(rt) = &r.roundtrip {
        c.dur_max("roundtrip.ttl", rt.ttl, REDIS_TTL);
    }
    for (i, command) in r.commands.iter().enumerate() {
        for (j, arg) in command.iter().enumerate() {
            if let RedisArg::Float(f) = arg {
                c.float(&format!("commands[{i}][{j}]"), Some(*f), REDIS_NUMBER);
            }
        }
    }
}

fn check_s3(c: &mut Collector, s: &S3Spec) {
    if let Some(p) = &s.put {
        c.size("put.size", p.size, S3_OBJECT_SIZE);
        c.size(
            "put.multipart_threshold",
            p.multipart_threshold,
            MULTIPART_THRESHOLD,
        );
    }
    if let Some(g) = &s.get {
        c.size("get.max_body", g.max_body, MAX_BODY);
    }
    if let Some(sw) = &s.sweep {
        c.dur_max("sweep.older_than", Some(sw.older_than), SWEEP_OLDER_THAN);
    }
}

/// The README table: one row per numeric field.
pub fn markdown_table() -> String {
    let mut out = String::from("| Field | Range (inclusive) |\n|---|---|\n");
    for (field, range) in FIELDS {
        out.push_str(&format!("| `{field}` | {} |\n", range.describe()));
    }
    for (field, range) in CHECKED_BY_KINDS {
        out.push_str(&format!("| `{field}` | {range} |\n"));
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
        assert_eq!(found[0].hint, "`interval` is between 1s and 7d");
    }

    #[test]
    fn step_numbers_are_checked_per_kind() {
        let sc = scenario(
            "name: x\nsteps:\n  - name: a\n    timeout: 0s\n    retry: {attempts: 2, backoff: .nan}\n    \
             http: {url: 'http://x', max_redirects: 1000, max_body: 2GiB}\n  - name: b\n    \
             redis: {url: 'redis://x', db: 70000, commands: [[SET, k, 1.0e301]]}\n",
        );
        let a = check_step("steps[0]", &sc.steps[0]);
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
        let b = check_step("steps[1]", &sc.steps[1]);
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
