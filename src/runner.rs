//! Runs one scenario: renders vars and secrets, runs steps with timeouts and retries, keeps
//! captures for later steps, always runs `finally`, and returns one [`ScenarioOutcome`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value as Json;
use tokio::time::Instant;

use crate::assert::{eval_query, Query};
use crate::observation::Observation;
use crate::outcome::{AssertionOutcome, Phase, Reason, ScenarioOutcome, StepOutcome, StepStatus};
use crate::scenario::{CompiledStep, LoadedScenario};
use crate::secrets::{read_secret, Redactor};
use crate::steps::{Cleanups, StepContext, StepError};
use crate::template::{render, Expr, RenderError, Resolve};

/// How much of a response body a failure message shows.
const EXCERPT_CHARS: usize = 200;
/// Budget for `finally` steps after the scenario's own deadline has passed.
const FINALLY_MIN_BUDGET: Duration = Duration::from_secs(5);

/// Time allowed for each clean-up action.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// State the steps of one run share.
#[derive(Default)]
struct RunShared {
    cookies: Arc<reqwest::cookie::Jar>,
    cleanups: Cleanups,
}

/// Values a run's templates can read.
struct RunContext {
    run_id: String,
    started_at: String,
    iteration: u32,
    vars: HashMap<String, String>,
    secrets: HashMap<String, String>,
    /// Per step: its outputs and captures.
    steps: HashMap<String, serde_json::Map<String, Json>>,
}

impl Resolve for RunContext {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError> {
        match expr {
            Expr::Var(n) => self
                .vars
                .get(n)
                .cloned()
                .ok_or_else(|| RenderError(format!("var `{n}` has no value yet"))),
            Expr::Secret(n) => self
                .secrets
                .get(n)
                .cloned()
                .ok_or_else(|| RenderError(format!("secret `{n}` was not read"))),
            Expr::Env(n) => std::env::var(n)
                .map_err(|_| RenderError(format!("environment variable `{n}` is not set"))),
            Expr::Step { step, path } => {
                let missing = || {
                    RenderError(format!(
                        "`steps.{step}.{}` has no value: step `{step}` did not run or did not produce it",
                        path.join(".")
                    ))
                };
                let map = self.steps.get(step).ok_or_else(missing)?;
                let (first, rest) = path.split_first().ok_or_else(missing)?;
                let mut v = map.get(first).ok_or_else(missing)?;
                for seg in rest {
                    v = match v {
                        Json::Object(m) => m.get(seg).ok_or_else(missing)?,
                        Json::Array(a) => seg
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| a.get(i))
                            .ok_or_else(missing)?,
                        _ => return Err(missing()),
                    };
                }
                Ok(match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            Expr::RunId => Ok(self.run_id.clone()),
            Expr::RunStartedAt => Ok(self.started_at.clone()),
            Expr::RunIteration => Ok(self.iteration.to_string()),
            Expr::Uuid => Ok(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// A fresh run id: 16 hex characters, unique enough to keep concurrent runs' keys apart.
pub fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_string()
}

/// Runs a scenario once. Never panics on a failing target: every failure is in the outcome.
pub async fn run_scenario(sc: &LoadedScenario, iteration: u32) -> ScenarioOutcome {
    run_scenario_with(sc, iteration, &Redactor::new()).await
}

/// Like [`run_scenario`], registering secrets with a caller's redactor (so its logs are clean).
pub async fn run_scenario_with(
    sc: &LoadedScenario,
    iteration: u32,
    redactor: &Redactor,
) -> ScenarioOutcome {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let mut out = ScenarioOutcome {
        scenario: sc.scenario.name.clone(),
        file: sc.file.display().to_string(),
        run_id: new_run_id(),
        iteration,
        started_at,
        duration: Duration::ZERO,
        success: false,
        reason: None,
        timed_out: false,
        message: None,
        cleanup_errors: Vec::new(),
        cancelled: false,
        labels: sc.scenario.labels.clone(),
        steps: Vec::new(),
    };
    let mut ctx = RunContext {
        run_id: out.run_id.clone(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        iteration,
        vars: HashMap::new(),
        secrets: HashMap::new(),
        steps: HashMap::new(),
    };

    if let Err(msg) = prepare(sc, &mut ctx, redactor) {
        out.message = Some(redactor.redact(&msg));
        out.reason = Some(Reason::Config);
        out.steps = sc
            .steps
            .iter()
            .chain(&sc.finally)
            .map(|s| skipped(s, sc.finally.iter().any(|f| f.name == s.name)))
            .collect();
        out.duration = start.elapsed();
        tracing::warn!(scenario = %out.scenario, reason = "config", error = %out.message.as_deref().unwrap_or(""), "run could not start");
        return out;
    }

    let deadline = start + sc.timeout;
    let shared = RunShared::default();
    let mut failed = false;
    for step in &sc.steps {
        if failed || Instant::now() >= deadline {
            if !failed {
                out.timed_out = true;
            }
            out.steps.push(skipped(step, false));
            continue;
        }
        let o = run_step(step, &mut ctx, redactor, &shared, Some(deadline), false).await;
        if o.status == StepStatus::Failed {
            failed = true;
            if o.reason == Some(Reason::Timeout) && Instant::now() >= deadline {
                out.timed_out = true;
            }
        }
        out.steps.push(o);
    }
    for step in &sc.finally {
        if let Some(missing) = unmet_step_reference(step, &ctx) {
            let mut o = skipped(step, true);
            o.message = Some(format!("needs `{missing}`, which the run did not produce"));
            tracing::debug!(step = %step.name, needs = %missing, "finally step skipped");
            out.steps.push(o);
            continue;
        }
        let o = run_step(step, &mut ctx, redactor, &shared, None, true).await;
        out.steps.push(o);
    }

    for cleanup in shared.cleanups.take() {
        let result = tokio::time::timeout(CLEANUP_TIMEOUT, (cleanup.action)()).await;
        let error = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(_) => format!(
                "no result within {}",
                crate::units::format_duration(CLEANUP_TIMEOUT)
            ),
        };
        let msg = redactor.redact(&format!("{}: {error}", cleanup.description));
        tracing::warn!(scenario = %out.scenario, error = %msg, "clean-up failed");
        out.cleanup_errors.push(msg);
    }

    out.duration = start.elapsed();
    out.success = out.steps.iter().all(|s| s.status == StepStatus::Passed);
    out.reason = out.first_failure().and_then(|s| s.reason);
    if out.timed_out && out.message.is_none() {
        out.message = Some(format!(
            "scenario timed out after {}",
            crate::units::format_duration(sc.timeout)
        ));
    }
    tracing::info!(
        scenario = %out.scenario,
        run_id = %out.run_id,
        success = out.success,
        reason = out.reason.map(|r| r.as_str()).unwrap_or(""),
        duration_ms = out.duration.as_millis() as u64,
        "run finished"
    );
    out
}

/// Reads secrets and renders vars; the error names what failed, never a value.
fn prepare(sc: &LoadedScenario, ctx: &mut RunContext, redactor: &Redactor) -> Result<(), String> {
    for (name, src) in &sc.scenario.secrets {
        let value = read_secret(name, src).map_err(|e| e.to_string())?;
        redactor.add(name, &value);
        ctx.secrets.insert(name.clone(), value);
    }
    for (k, v) in &sc.vars {
        let value = render(v, ctx).map_err(|e| format!("var `{k}`: {e}"))?;
        ctx.vars.insert(k.clone(), value);
    }
    Ok(())
}

/// The first `steps.X.Y` a `finally` step uses that the run did not produce, because step X
/// failed or never ran. Such a clean-up has nothing to act on (no token to log out, no key to
/// delete): it is skipped rather than failed, so it does not read as a `config` failure.
fn unmet_step_reference(step: &CompiledStep, ctx: &RunContext) -> Option<String> {
    fn visit(v: &Json, ctx: &RunContext) -> Option<String> {
        let check = |s: &str| -> Option<String> {
            if !s.contains("${{") {
                return None;
            }
            let t = crate::template::Template::parse(s).ok()?;
            let missing = t
                .exprs()
                .map(|(e, _)| e)
                .find(|e| matches!(e, Expr::Step { .. }) && ctx.resolve(e).is_err())
                .map(|e| e.to_string());
            missing
        };
        match v {
            Json::String(s) => check(s),
            Json::Array(a) => a.iter().find_map(|x| visit(x, ctx)),
            Json::Object(m) => m
                .iter()
                .find_map(|(k, x)| check(k).or_else(|| visit(x, ctx))),
            _ => None,
        }
    }
    visit(&step.kind.spec_json(), ctx)
}

fn skipped(step: &CompiledStep, cleanup: bool) -> StepOutcome {
    StepOutcome {
        name: step.name.clone(),
        kind: step.kind.name(),
        status: StepStatus::Skipped,
        cleanup,
        reason: None,
        message: None,
        duration: Duration::ZERO,
        attempts: 0,
        phases: Vec::new(),
        assertions: Vec::new(),
        certificate_not_after: None,
        location: step.location.clone(),
        notes: Vec::new(),
    }
}

fn excerpt(obs: &Observation) -> Option<String> {
    if obs.body.is_empty() {
        return None;
    }
    let text = obs.body_text();
    let mut cut: String = text.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    Some(cut.replace('\n', " "))
}

/// The result of one attempt after assertions and captures.
struct Attempt {
    error: Option<StepError>,
    obs: Option<Observation>,
    assertions: Vec<AssertionOutcome>,
    values: serde_json::Map<String, Json>,
}

async fn attempt(
    step: &CompiledStep,
    ctx: &RunContext,
    redactor: &Redactor,
    shared: &RunShared,
    budget: Duration,
    by_deadline: bool,
) -> Attempt {
    let sctx = StepContext {
        resolver: ctx,
        redactor,
        timeout: budget,
        cookies: shared.cookies.clone(),
        cleanups: &shared.cleanups,
    };
    let started = Instant::now();
    let result = tokio::time::timeout(budget, step.kind.execute(&sctx)).await;
    let elapsed = started.elapsed();
    let mut obs = match result {
        Err(_) => {
            let why = if by_deadline {
                "the scenario's time budget ran out"
            } else {
                "step timeout"
            };
            return Attempt {
                error: Some(StepError::new(
                    Reason::Timeout,
                    format!(
                        "no result within {} ({why})",
                        crate::units::format_duration(budget)
                    ),
                )),
                obs: None,
                assertions: Vec::new(),
                values: Default::default(),
            };
        }
        Ok(Err(e)) => {
            return Attempt {
                error: Some(e),
                obs: None,
                assertions: Vec::new(),
                values: Default::default(),
            }
        }
        Ok(Ok(obs)) => obs,
    };
    obs.duration = elapsed;
    for name in &obs.secret_outputs {
        if let Some(v) = obs.outputs.get(name) {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            redactor.add(&format!("{}.{name}", step.name), &text);
        }
    }

    let mut error = None;
    let mut assertions = Vec::new();
    let has_status_assertion = step
        .assertions
        .iter()
        .any(|(a, _)| matches!(a.query, Query::Status));
    if step.kind.has_http_status() && !has_status_assertion {
        if let Some(code) = obs.status.filter(|s| *s >= 400) {
            let mut msg =
                format!("HTTP {code} (a step without a `status` assertion expects < 400)");
            if let Some(x) = excerpt(&obs) {
                msg.push_str(&format!("\n  response: {x}"));
            }
            error = Some(StepError::new(Reason::HttpStatus, msg));
        }
    }

    // Captures first, so assertions can compare with this step's own captures. A capture that
    // finds nothing is reported only when no assertion failed: `status == 200` failing on a 401
    // says more than "no token in the body".
    let mut values = obs.outputs.clone();
    let mut capture_error: Option<StepError> = None;
    for cap in &step.captures {
        let why = match eval_query(&cap.query, &obs) {
            Ok(v) if !v.is_missing() => {
                if cap.secret {
                    if let Some(text) = v.to_capture_string() {
                        redactor.add(&cap.name, &text);
                    }
                }
                values.insert(cap.name.clone(), v.to_json());
                continue;
            }
            Ok(_) => format!("capture `{}`: {} found nothing", cap.name, cap.query),
            Err(e) => format!("capture `{}`: {e}", cap.name),
        };
        capture_error.get_or_insert_with(|| {
            let mut msg = why;
            if let Some(x) = excerpt(&obs) {
                msg.push_str(&format!("\n  response: {x}"));
            }
            StepError::new(Reason::Assertion, msg)
        });
    }

    // A resolver that also sees this step's captures.
    let own = OwnStep {
        ctx,
        name: &step.name,
        values: &values,
    };
    for (a, location) in &step.assertions {
        let check = a.check(&obs, &own);
        let outcome = AssertionOutcome {
            assertion: redactor.redact(&a.source),
            passed: check.passed,
            actual: redactor.redact(&check.actual),
            expected: redactor.redact(&check.expected),
            location: location.clone(),
        };
        if !check.passed && error.is_none() {
            let reason = if matches!(a.query, Query::Status) && step.kind.has_http_status() {
                Reason::HttpStatus
            } else {
                Reason::Assertion
            };
            let mut msg = format!(
                "assertion failed at {location}: `{}`\n  actual:   {}\n  expected: {}",
                a.source, check.actual, check.expected
            );
            if let Some(x) = excerpt(&obs) {
                msg.push_str(&format!("\n  response: {x}"));
            }
            error = Some(StepError::new(reason, msg));
        }
        assertions.push(outcome);
    }
    Attempt {
        error: error.or(capture_error),
        obs: Some(obs),
        assertions,
        values,
    }
}

/// Resolves `steps.<this step>.x` from the values of the attempt being checked.
struct OwnStep<'a> {
    ctx: &'a RunContext,
    name: &'a str,
    values: &'a serde_json::Map<String, Json>,
}

impl Resolve for OwnStep<'_> {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError> {
        if let Expr::Step { step, path } = expr {
            if step == self.name {
                let v = path
                    .first()
                    .and_then(|p| self.values.get(p))
                    .ok_or_else(|| {
                        RenderError(format!("`steps.{step}.{}` has no value", path.join(".")))
                    })?;
                return Ok(match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        self.ctx.resolve(expr)
    }
}

async fn run_step(
    step: &CompiledStep,
    ctx: &mut RunContext,
    redactor: &Redactor,
    shared: &RunShared,
    deadline: Option<Instant>,
    cleanup: bool,
) -> StepOutcome {
    let max_attempts = step.retry.as_ref().map(|r| r.attempts.max(1)).unwrap_or(1);
    let started = Instant::now();
    let mut wait = step
        .retry
        .as_ref()
        .map(|r| r.interval.0)
        .unwrap_or(Duration::ZERO);
    let mut n = 0;
    let last = loop {
        n += 1;
        let (budget, by_deadline) = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left < step.timeout {
                    (left, true)
                } else {
                    (step.timeout, false)
                }
            }
            None => (
                step.timeout.max(FINALLY_MIN_BUDGET.min(step.timeout)),
                false,
            ),
        };
        let a = attempt(step, ctx, redactor, shared, budget, by_deadline).await;
        let retry_possible = n < max_attempts
            && a.error.is_some()
            && deadline.is_none_or(|d| Instant::now() + wait < d);
        if !retry_possible {
            break a;
        }
        tracing::debug!(
            step = %step.name,
            attempt = n,
            error = %redactor.redact(&a.error.as_ref().map(|e| e.to_string()).unwrap_or_default()),
            "retrying step"
        );
        tokio::time::sleep(wait).await;
        let backoff = step.retry.as_ref().map(|r| r.backoff).unwrap_or(1.0);
        wait = wait.mul_f64(backoff);
    };

    ctx.steps.insert(step.name.clone(), last.values);
    let obs = last.obs;
    let outcome = StepOutcome {
        name: step.name.clone(),
        kind: step.kind.name(),
        status: if last.error.is_none() {
            StepStatus::Passed
        } else {
            StepStatus::Failed
        },
        cleanup,
        reason: last.error.as_ref().map(|e| e.reason),
        message: last.error.as_ref().map(|e| redactor.redact(&e.message)),
        duration: started.elapsed(),
        attempts: n,
        phases: obs
            .as_ref()
            .map(|o| {
                o.phases
                    .iter()
                    .map(|(name, d)| Phase {
                        name: name.clone(),
                        duration: *d,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        assertions: last.assertions,
        certificate_not_after: obs.as_ref().and_then(|o| o.cert_not_after).and_then(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        }),
        location: step.location.clone(),
        notes: Vec::new(),
    };
    if let (Some(reason), Some(msg)) = (outcome.reason, &outcome.message) {
        tracing::warn!(step = %step.name, reason = reason.as_str(), attempts = n, error = %msg, "step failed");
    } else {
        tracing::debug!(step = %step.name, attempts = n, duration_ms = outcome.duration.as_millis() as u64, "step passed");
    }
    outcome
}
