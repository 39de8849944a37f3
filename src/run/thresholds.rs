//! Thresholds for smoke tests (the k6 habit): `p95(duration) < 300ms`, `success_rate >= 99%`,
//! `p99(steps.login.duration) < 2s`. Parsed at load time, evaluated over the outcomes of
//! `flowprobe run --iterations N` (quantiles from hdrhistogram), rendered for the terminal and
//! the JSON report. A breach makes `run` exit with `cli::exit::THRESHOLD`.

use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::outcome::{ScenarioOutcome, StepStatus};
use crate::suggest::closest;
use crate::units::{format_duration, parse_duration};

/// What a threshold measures: whole runs, or one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Run,
    Step(String),
}

/// The statistic compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Avg,
    Min,
    Max,
    /// A quantile in (0, 1]; `med` is 0.5.
    Quantile(f64),
    SuccessRate,
    FailureRate,
}

impl Stat {
    fn is_rate(self) -> bool {
        matches!(self, Stat::SuccessRate | Stat::FailureRate)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        // Equality on measured floats: within a nanosecond / a millionth.
        let eq = (a - b).abs() < 1e-9;
        match self {
            Op::Lt => a < b && !eq,
            Op::Le => a < b || eq,
            Op::Gt => a > b && !eq,
            Op::Ge => a > b || eq,
            Op::Eq => eq,
            Op::Ne => !eq,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub text: String,
    /// The left-hand side as written, without spaces: `p95(duration)`.
    pub metric: String,
    pub subject: Subject,
    pub stat: Stat,
    pub op: Op,
    /// Seconds for duration statistics, a ratio in [0, 1] for rates.
    pub value: f64,
    /// `file:line:column` in the scenario, set by the loader.
    pub location: String,
}

/// Why a threshold did not parse: a message at a byte offset, maybe a hint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

const STATS: &[&str] = &[
    "avg",
    "min",
    "max",
    "med",
    "p90",
    "p95",
    "p99",
    "success_rate",
    "failure_rate",
];
const FORMS: &str = "e.g. `p95(duration) < 300ms`, `avg(steps.login.duration) < 1s`, \
                     `success_rate >= 99%`, `success_rate(steps.upload) == 100%`";

fn err(offset: usize, message: impl Into<String>, hint: Option<String>) -> ParseError {
    ParseError {
        offset,
        message: message.into(),
        hint,
    }
}

fn parse_stat(name: &str, at: usize) -> Result<Stat, ParseError> {
    match name {
        "avg" => Ok(Stat::Avg),
        "min" => Ok(Stat::Min),
        "max" => Ok(Stat::Max),
        "med" => Ok(Stat::Quantile(0.5)),
        "success_rate" => Ok(Stat::SuccessRate),
        "failure_rate" => Ok(Stat::FailureRate),
        p if p.starts_with('p') && p.len() > 1 => match p[1..].parse::<f64>() {
            Ok(q) if q > 0.0 && q <= 100.0 => Ok(Stat::Quantile(q / 100.0)),
            _ => Err(err(
                at,
                format!("invalid percentile `{p}`"),
                Some("write p50, p95, p99 or p99.9".into()),
            )),
        },
        other => Err(err(
            at,
            format!("unknown statistic `{other}`"),
            closest(other, STATS.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(FORMS.into())),
        )),
    }
}

/// Parses the inside of `stat(...)`: `duration`, `steps.NAME.duration`, or for rates `steps.NAME`.
fn parse_subject(inner: &str, at: usize, rate: bool) -> Result<Subject, ParseError> {
    let t = inner.trim();
    let at = at + (inner.len() - inner.trim_start().len());
    if !rate && t == "duration" {
        return Ok(Subject::Run);
    }
    let step = t.strip_prefix("steps.").and_then(|rest| {
        if rate {
            Some(rest)
        } else {
            rest.strip_suffix(".duration")
        }
    });
    match step {
        Some(name)
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(Subject::Step(name.to_string()))
        }
        _ if rate => Err(err(at, format!("expected `steps.NAME`, got `{t}`"), None)),
        _ => Err(err(
            at,
            format!("expected `duration` or `steps.NAME.duration`, got `{t}`"),
            None,
        )),
    }
}

impl Threshold {
    /// Parses `<stat>(<subject>) <op> <value>`.
    pub fn parse(text: &str) -> Result<Threshold, ParseError> {
        let lead = text.len() - text.trim_start().len();
        let s = &text[lead..];
        let name_len = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(s.len());
        if name_len == 0 {
            return Err(err(lead, "expected a statistic", Some(FORMS.into())));
        }
        let stat = parse_stat(&s[..name_len], lead)?;
        let mut pos = name_len;
        let subject = if s[pos..].starts_with('(') {
            let close = s[pos..]
                .find(')')
                .ok_or_else(|| err(lead + pos, "missing `)`", None))?;
            let subject = parse_subject(&s[pos + 1..pos + close], lead + pos + 1, stat.is_rate())?;
            pos += close + 1;
            subject
        } else if stat.is_rate() {
            Subject::Run
        } else {
            return Err(err(
                lead + pos,
                format!(
                    "`{}` needs what it measures: `{}(duration)`",
                    &s[..name_len],
                    &s[..name_len]
                ),
                None,
            ));
        };
        let metric: String = s[..pos].chars().filter(|c| !c.is_whitespace()).collect();
        let rest = &s[pos..];
        let op_at = pos + (rest.len() - rest.trim_start().len());
        let rest = rest.trim_start();
        let (op, op_len) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(t, _)| rest.starts_with(t))
        .map(|(t, op)| (op, t.len()))
        .ok_or_else(|| err(lead + op_at, "expected a comparison: < <= > >= == !=", None))?;
        let value_text = rest[op_len..].trim();
        let value_at =
            lead + op_at + op_len + (rest[op_len..].len() - rest[op_len..].trim_start().len());
        if value_text.is_empty() {
            return Err(err(value_at, "expected a value after the comparison", None));
        }
        let value = if stat.is_rate() {
            parse_ratio(value_text).ok_or_else(|| {
                err(
                    value_at,
                    format!("invalid rate `{value_text}`: write e.g. 99% or 0.99"),
                    None,
                )
            })?
        } else {
            parse_duration(value_text)
                .map(|d| d.as_secs_f64())
                .map_err(|e| err(value_at, e.to_string(), None))?
        };
        Ok(Threshold {
            text: text.trim().to_string(),
            metric,
            subject,
            stat,
            op,
            value,
            location: String::new(),
        })
    }

    /// The step this threshold is about, if any.
    pub fn step(&self) -> Option<&str> {
        match &self.subject {
            Subject::Step(s) => Some(s),
            Subject::Run => None,
        }
    }
}

/// `99%` or `0.99`, in [0, 1].
fn parse_ratio(s: &str) -> Option<f64> {
    let r = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => s.parse::<f64>().ok()?,
    };
    (0.0..=1.0).contains(&r).then_some(r)
}

/// A threshold problem for the loader to place in the file: (index in `thresholds:`, byte offset
/// in the text, message, hint).
pub type Problem = (usize, usize, String, Option<String>);

/// Parses a scenario's thresholds (returned with their index) and checks the steps they name.
pub fn compile(
    texts: &[String],
    step_names: &indexmap::IndexSet<String>,
) -> (Vec<(usize, Threshold)>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match Threshold::parse(text) {
            Ok(t) => {
                if let Some(step) = t.step() {
                    if !step_names.contains(step) {
                        let hint = closest(step, step_names.iter().map(String::as_str))
                            .map(|s| format!("did you mean `steps.{s}`?"));
                        let offset = text.find(step).unwrap_or(0);
                        errors.push((i, offset, format!("unknown step `{step}`"), hint));
                        continue;
                    }
                }
                out.push((i, t));
            }
            Err(e) => errors.push((i, e.offset, e.message, e.hint)),
        }
    }
    (out, errors)
}

/// A threshold's verdict over the runs of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdResult {
    pub scenario: String,
    pub threshold: String,
    /// `file:line:column` of the threshold.
    pub location: String,
    /// Seconds for durations, a ratio for rates; absent when nothing was measured.
    pub measured: Option<f64>,
    /// The measured value as people read it: `212ms`, `90%`.
    pub display: String,
    /// Runs (or step executions) measured.
    pub samples: usize,
    pub passed: bool,
}

/// The thresholds of each scenario, by scenario name (taken before the scenarios are run).
pub fn declared(scenarios: &[crate::scenario::LoadedScenario]) -> Vec<(String, Vec<Threshold>)> {
    scenarios
        .iter()
        .filter(|s| !s.thresholds.is_empty())
        .map(|s| (s.name().to_string(), s.thresholds.clone()))
        .collect()
}

/// Samples of one subject: each execution's duration and whether it succeeded.
fn samples(outcomes: &[&ScenarioOutcome], subject: &Subject) -> Vec<(Duration, bool)> {
    match subject {
        Subject::Run => outcomes.iter().map(|o| (o.duration, o.success)).collect(),
        Subject::Step(name) => outcomes
            .iter()
            .flat_map(|o| o.steps.iter())
            .filter(|s| &s.name == name && s.status != StepStatus::Skipped)
            .map(|s| (s.duration, s.status == StepStatus::Passed))
            .collect(),
    }
}

/// Quantile `q` of `durations` in seconds, from an hdrhistogram at microsecond resolution and
/// three significant digits (what the prober's sliding windows use too).
fn quantile(durations: &[Duration], q: f64) -> f64 {
    let Ok(mut h) = Histogram::<u64>::new(3) else {
        return f64::NAN;
    };
    for d in durations {
        // Auto-resizing histogram: recording only fails for values past u64.
        let _ = h.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
    h.value_at_quantile(q) as f64 / 1e6
}

fn measure(stat: Stat, samples: &[(Duration, bool)]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let n = samples.len() as f64;
    let durations: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    let secs = durations.iter().map(Duration::as_secs_f64);
    let ok = samples.iter().filter(|(_, ok)| *ok).count() as f64;
    Some(match stat {
        Stat::Avg => secs.sum::<f64>() / n,
        Stat::Min => secs.fold(f64::INFINITY, f64::min),
        Stat::Max => secs.fold(0.0, f64::max),
        Stat::Quantile(q) => quantile(&durations, q),
        Stat::SuccessRate => ok / n,
        Stat::FailureRate => 1.0 - ok / n,
    })
}

fn display(stat: Stat, value: f64, samples: &[(Duration, bool)]) -> String {
    if stat.is_rate() {
        let ok = samples.iter().filter(|(_, ok)| *ok).count();
        let shown = if stat == Stat::SuccessRate {
            ok
        } else {
            samples.len() - ok
        };
        format!(
            "{} ({shown}/{})",
            crate::slo::cadence::percent(value),
            samples.len()
        )
    } else {
        format_duration(Duration::from_secs_f64(value.max(0.0)))
    }
}

/// Evaluates every declared threshold over the outcomes of its scenario's runs.
pub fn evaluate(
    declared: &[(String, Vec<Threshold>)],
    outcomes: &[ScenarioOutcome],
) -> Vec<ThresholdResult> {
    let mut results = Vec::new();
    for (scenario, thresholds) in declared {
        let runs: Vec<&ScenarioOutcome> = outcomes
            .iter()
            .filter(|o| &o.scenario == scenario)
            .collect();
        for t in thresholds {
            let s = samples(&runs, &t.subject);
            let measured = measure(t.stat, &s);
            results.push(ThresholdResult {
                scenario: scenario.clone(),
                threshold: t.text.clone(),
                location: t.location.clone(),
                measured,
                display: measured
                    .map(|v| display(t.stat, v, &s))
                    .unwrap_or_else(|| "no data".into()),
                samples: s.len(),
                passed: measured.is_some_and(|v| t.op.holds(v, t.value)),
            });
        }
    }
    results
}

/// The terminal block: one line per threshold with its measured value, then a verdict line.
pub fn render_terminal(results: &[ThresholdResult], color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let width = results.iter().map(|r| r.threshold.len()).max().unwrap_or(0);
    let name_width = results.iter().map(|r| r.scenario.len()).max().unwrap_or(0);
    let mut out = String::from("\nthresholds\n");
    for r in results {
        let mark = if r.passed {
            paint("32", "✓")
        } else {
            paint("31", "✗")
        };
        let _ = write!(
            out,
            "  {mark} {:<name_width$}  {:<width$}  {}",
            r.scenario, r.threshold, r.display
        );
        if !r.passed {
            let _ = write!(out, "  {}", paint("2", &r.location));
        }
        out.push('\n');
    }
    let breached = results.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "{} of {} thresholds breached",
        if breached > 0 {
            paint("31", &breached.to_string())
        } else {
            "0".into()
        },
        results.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t = Threshold::parse("p95(duration) < 300ms").unwrap();
        assert_eq!(
            (t.stat, t.op, t.subject.clone()),
            (Stat::Quantile(0.95), Op::Lt, Subject::Run)
        );
        assert!((t.value - 0.3).abs() < 1e-12);
        assert_eq!(t.metric, "p95(duration)");
        let t = Threshold::parse("success_rate >= 99%").unwrap();
        assert_eq!((t.stat, t.op), (Stat::SuccessRate, Op::Ge));
        assert!((t.value - 0.99).abs() < 1e-12);
        let t = Threshold::parse("p99.9( steps.login.duration ) <= 2s").unwrap();
        assert!(matches!(t.stat, Stat::Quantile(q) if (q - 0.999).abs() < 1e-12));
        assert_eq!(t.step(), Some("login"));
        let t = Threshold::parse("success_rate(steps.upload) == 100%").unwrap();
        assert_eq!(t.step(), Some("upload"));
        assert_eq!(
            Threshold::parse("failure_rate < 0.01").unwrap().stat,
            Stat::FailureRate
        );
        assert_eq!(Threshold::parse("med(duration)>1s").unwrap().op, Op::Gt);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Threshold::parse("p95(duraton) < 1s").unwrap_err();
        assert_eq!(e.offset, 4);
        let e = Threshold::parse("sucess_rate >= 99%").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `success_rate`?"));
        let e = Threshold::parse("p95(duration) ~ 1s").unwrap_err();
        assert_eq!(e.offset, 14);
        let e = Threshold::parse("avg(duration) < 99%").unwrap_err();
        assert!(e.message.contains("invalid duration"), "{e}");
        assert_eq!(e.offset, 16);
        let e = Threshold::parse("success_rate >= 2s").unwrap_err();
        assert!(e.message.contains("invalid rate"), "{e}");
        assert!(Threshold::parse("p0(duration) < 1s").is_err());
        assert!(Threshold::parse("p95 < 1s")
            .unwrap_err()
            .message
            .contains("p95(duration)"));
    }

    #[test]
    fn compile_checks_step_names() {
        let texts = vec![
            "p99(steps.logn.duration) < 2s".to_string(),
            "avg(duration) < 1s".into(),
        ];
        let steps = ["login", "upload"].map(String::from).into_iter().collect();
        let (ok, errors) = compile(&texts, &steps);
        assert_eq!(ok.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 0);
        assert_eq!(errors[0].1, 10);
        assert_eq!(errors[0].3.as_deref(), Some("did you mean `steps.login`?"));
    }

    #[test]
    fn statistics_over_samples() {
        let s: Vec<(Duration, bool)> = (1..=100)
            .map(|ms| (Duration::from_millis(ms), ms % 10 != 0))
            .collect();
        assert!((measure(Stat::Avg, &s).unwrap() - 0.0505).abs() < 1e-9);
        assert_eq!(measure(Stat::Min, &s), Some(0.001));
        assert_eq!(measure(Stat::Max, &s), Some(0.1));
        // hdrhistogram: 3 significant digits at microsecond resolution.
        assert!((measure(Stat::Quantile(0.95), &s).unwrap() - 0.095).abs() < 0.0001);
        assert!((measure(Stat::Quantile(0.5), &s).unwrap() - 0.050).abs() < 0.0001);
        assert_eq!(measure(Stat::SuccessRate, &s), Some(0.9));
        assert!((measure(Stat::FailureRate, &s).unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(measure(Stat::Avg, &[]), None);
        assert_eq!(display(Stat::SuccessRate, 0.9, &s), "90% (90/100)");
    }

    #[test]
    fn comparisons_at_the_boundary() {
        assert!(Op::Ge.holds(0.99, 0.99));
        assert!(!Op::Lt.holds(0.3, 0.3));
        assert!(Op::Le.holds(0.3, 0.1 + 0.2));
        assert!(Op::Ne.holds(1.0, 0.5));
    }
}
