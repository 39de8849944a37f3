//! Runs one scenario: renders vars and secrets, runs steps with timeouts and retries, keeps
//! captures for later steps, always runs `finally`, and returns one [`ScenarioOutcome`].

pub mod thresholds;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;

use serde_json::Value as Json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assert::{eval_query, Query};
use crate::observation::Observation;
use crate::outcome::{AssertionOutcome, Phase, Reason, ScenarioOutcome, StepOutcome, StepStatus};
use crate::scenario::{CompiledStep, LoadedScenario};
use crate::secrets::{read_secret, Redactor};
use crate::steps::{Cleanups, Shared, StepContext, StepError};
use crate::template::{render, Expr, RenderError, Resolve};

/// How much of a response body a failure message shows.
const EXCERPT_CHARS: usize = 200;
/// Budget for `finally` steps after the scenario's own deadline has passed.
const FINALLY_MIN_BUDGET: Duration = Duration::from_secs(5);

/// Longest wait between two attempts, whatever the backoff multiplies to.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Time allowed for each clean-up action.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// State the steps of one run share, and what they keep across runs.
struct RunShared {
    cookies: Arc<reqwest::cookie::Jar>,
    cleanups: Cleanups,
    process: Arc<Shared>,
}

impl RunShared {
    fn new(process: Arc<Shared>) -> Self {
        RunShared {
            cookies: Arc::default(),
            cleanups: Cleanups::default(),
            process,
        }
    }
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

/// One-time work done before the first run, so that no run's duration includes it: the system
/// trust store is read and the redactor's patterns are compiled. Blocking: call it off the
/// async threads.
pub fn warm_up() {
    crate::steps::trust::warm();
    crate::secrets::warm();
}

/// A fresh run id: 16 hex characters, unique enough to keep concurrent runs' keys apart.
pub fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_string()
}

/// How a run can be stopped from outside (shutdown) and how long its clean-up may take then.
#[derive(Debug, Clone)]
pub struct RunControl {
    /// Cancelling stops the step in flight and skips the rest; `finally` and clean-ups still run.
    pub cancel: CancellationToken,
    /// Time `finally` steps and clean-up actions get after a cancel, all together.
    pub cleanup_grace: Duration,
    /// What steps keep between runs (caches); one for every run of the process.
    pub shared: Arc<Shared>,
}

/// Default of `--cleanup-grace`.
pub const DEFAULT_CLEANUP_GRACE: Duration = Duration::from_secs(10);

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            cancel: CancellationToken::new(),
            cleanup_grace: DEFAULT_CLEANUP_GRACE,
            shared: Arc::default(),
        }
    }
}

/// Watches a run's cancel token and remembers when it was first seen cancelled, so that the
/// clean-up grace counts from the cancel, not from each clean-up step.
struct Stop<'a> {
    control: &'a RunControl,
    at: OnceLock<Instant>,
}

impl<'a> Stop<'a> {
    fn new(control: &'a RunControl) -> Self {
        Stop {
            control,
            at: OnceLock::new(),
        }
    }

    fn is_cancelled(&self) -> bool {
        let yes = self.control.cancel.is_cancelled();
        if yes {
            self.at.get_or_init(Instant::now);
        }
        yes
    }

    /// Resolves when the run is cancelled.
    async fn cancelled(&self) {
        self.control.cancel.cancelled().await;
        self.at.get_or_init(Instant::now);
    }

    /// Resolves when the clean-up grace after a cancel has run out.
    async fn cleanup_over(&self) {
        self.cancelled().await;
        let at = *self.at.get_or_init(Instant::now);
        match at.checked_add(self.control.cleanup_grace) {
            Some(end) => tokio::time::sleep_until(end).await,
            None => std::future::pending().await,
        }
    }
}

/// Runs a scenario once. Never panics on a failing target: every failure is in the outcome.
pub async fn run_scenario(sc: &LoadedScenario, iteration: u32) -> ScenarioOutcome {
    run_scenario_with(sc, iteration, &Redactor::new(), &RunControl::default()).await
}

/// Like [`run_scenario`], registering secrets with a caller's redactor (so its logs are clean),
/// and stoppable through `control`. A panic inside (a bug) is a failed run with reason
/// `internal`, never a pass and never a crash of the caller.
pub async fn run_scenario_with(
    sc: &LoadedScenario,
    iteration: u32,
    redactor: &Redactor,
    control: &RunControl,
) -> ScenarioOutcome {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let run_id = new_run_id();
    let run = run_inner(sc, iteration, redactor, control, &run_id, started_at, start);
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(out) => out,
        Err(payload) => {
            let mut out = new_outcome(sc, run_id, iteration, started_at);
            let msg = redactor.redact(&format!("internal error: {}", panic_text(&*payload)));
            tracing::error!(scenario = %out.scenario, reason = "internal", error = %msg, "run failed");
            out.reason = Some(Reason::Internal);
            out.message = Some(msg);
            out.steps = all_skipped(sc);
            out.duration = start.elapsed();
            out
        }
    }
}

/// The outcome of a run that died outside the runner's own guard: failed, reason `internal`.
/// `why` must hold no secret: callers pass a fixed text, never a panic payload.
pub fn internal_failure(sc: &LoadedScenario, iteration: u32, why: &str) -> ScenarioOutcome {
    let mut out = new_outcome(sc, new_run_id(), iteration, SystemTime::now());
    out.reason = Some(Reason::Internal);
    out.message = Some(format!("internal error: {why}"));
    out.steps = all_skipped(sc);
    tracing::error!(scenario = %out.scenario, reason = "internal", "run failed: its task died");
    out
}

/// The text of a panic's payload (what `panic!` was given).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

fn new_outcome(
    sc: &LoadedScenario,
    run_id: String,
    iteration: u32,
    started_at: SystemTime,
) -> ScenarioOutcome {
    ScenarioOutcome {
        scenario: sc.name.clone(),
        file: sc.file.display().to_string(),
        run_id,
        iteration,
        started_at,
        duration: Duration::ZERO,
        success: false,
        reason: None,
        timed_out: false,
        message: None,
        cleanup_errors: Vec::new(),
        cancelled: false,
        labels: sc.labels.clone(),
        steps: Vec::new(),
    }
}

fn all_skipped(sc: &LoadedScenario) -> Vec<StepOutcome> {
    let steps = sc.steps.iter().map(|s| skipped(s, false));
    steps
        .chain(sc.finally.iter().map(|s| skipped(s, true)))
        .collect()
}

async fn run_inner(
    sc: &LoadedScenario,
    iteration: u32,
    redactor: &Redactor,
    control: &RunControl,
    run_id: &str,
    started_at: SystemTime,
    start: Instant,
) -> ScenarioOutcome {
    let mut out = new_outcome(sc, run_id.to_string(), iteration, started_at);
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
        out.steps = all_skipped(sc);
        out.duration = start.elapsed();
        tracing::warn!(scenario = %out.scenario, reason = "config", error = %out.message.as_deref().unwrap_or(""), "run could not start");
        return out;
    }

    // A timeout too large to add to the clock (validation bounds it) means no deadline.
    let deadline = start.checked_add(sc.timeout);
    let shared = RunShared::new(control.shared.clone());
    let stop = Stop::new(control);
    let mut failed = false;
    for step in &sc.steps {
        if failed || stop.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
            if !failed && !stop.is_cancelled() {
                out.timed_out = true;
            }
            out.steps.push(skipped(step, false));
            continue;
        }
        let o = tokio::select! {
            o = run_step(step, &mut ctx, redactor, &shared, deadline, false) => o,
            () = stop.cancelled() => cut_short(step, false, "cancelled at shutdown before it finished"),
        };
        if o.status == StepStatus::Failed {
            failed = true;
            if o.reason == Some(Reason::Timeout) && deadline.is_some_and(|d| Instant::now() >= d) {
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
        let o = tokio::select! {
            o = run_step(step, &mut ctx, redactor, &shared, None, true) => o,
            () = stop.cleanup_over() => cut_short(step, true, "cut short: the clean-up grace ran out at shutdown"),
        };
        out.steps.push(o);
    }

    for cleanup in shared.cleanups.take() {
        let action = tokio::time::timeout(CLEANUP_TIMEOUT, (cleanup.action)());
        let error = tokio::select! {
            r = action => match r {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => format!(
                    "no result within {}",
                    crate::units::format_duration(CLEANUP_TIMEOUT)
                ),
            },
            () = stop.cleanup_over() => "cut short: the clean-up grace ran out at shutdown".to_string(),
        };
        let msg = redactor.redact(&format!("{}: {error}", cleanup.description));
        tracing::warn!(scenario = %out.scenario, error = %msg, "clean-up failed");
        out.cleanup_errors.push(msg);
    }

    out.duration = start.elapsed();
    out.cancelled = stop.is_cancelled();
    out.success = !out.cancelled && out.steps.iter().all(|s| s.status == StepStatus::Passed);
    out.reason = out.first_failure().and_then(|s| s.reason);
    if out.cancelled {
        out.message = Some(
            "cancelled: flowprobe was shutting down; only `finally` steps and clean-ups ran"
                .to_string(),
        );
        out.reason.get_or_insert(Reason::Timeout);
    } else if out.timed_out {
        out.message.get_or_insert_with(|| {
            format!(
                "scenario timed out after {}",
                crate::units::format_duration(sc.timeout)
            )
        });
        // The deadline passed between steps: no step failed, the run did.
        out.reason.get_or_insert(Reason::Timeout);
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
    for (name, src) in &sc.secrets {
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

/// A step stopped from outside (shutdown) while it ran.
fn cut_short(step: &CompiledStep, cleanup: bool, why: &str) -> StepOutcome {
    let mut o = skipped(step, cleanup);
    o.status = StepStatus::Failed;
    o.reason = Some(Reason::Timeout);
    o.message = Some(why.to_string());
    tracing::warn!(step = %step.name, "{why}");
    o
}

/// The start of a response body for a failure message: redacted whole, then cut, so a secret
/// that crosses the cut can never show in part.
fn excerpt(obs: &Observation, redactor: &Redactor) -> Option<String> {
    if obs.body.is_empty() {
        return None;
    }
    let cut = redactor.redact_and_cut(&obs.body_text(), EXCERPT_CHARS);
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
        shared: &shared.process,
    };
    let started = Instant::now();
    let execute = async {
        crate::fault::maybe_panic(&step.name);
        step.kind.execute(&sctx).await
    };
    let result = tokio::time::timeout(budget, execute).await;
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
            if let Some(x) = excerpt(&obs, redactor) {
                msg.push_str(&format!("\n  response: {x}"));
            }
            error = Some(StepError::new(Reason::HttpStatus, msg));
        }
    }
    if let Some(f) = obs.unless_asserted.as_ref().filter(|f| {
        !step
            .assertions
            .iter()
            .any(|(a, _)| a.query.keyword() == f.query)
    }) {
        error.get_or_insert_with(|| StepError::new(f.reason, f.message.clone()));
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
            if let Some(x) = excerpt(&obs, redactor) {
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
        let mut check = a.check(&obs, &own);
        // A credential header's value arrives without its name, which the redactor keys on.
        if matches!(&a.query, Query::Header(h) if is_credential_header(h)) {
            check.actual = "[redacted]".to_string();
        }
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
            if let Some(x) = excerpt(&obs, redactor) {
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

/// Headers whose values are credentials whatever they hold.
fn is_credential_header(name: &str) -> bool {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// The wait before the next retry: `wait × backoff`, saturating instead of overflowing.
fn next_wait(wait: Duration, backoff: f64) -> Duration {
    Duration::try_from_secs_f64(wait.as_secs_f64() * backoff)
        .unwrap_or(MAX_RETRY_WAIT)
        .min(MAX_RETRY_WAIT)
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
        let a = AssertUnwindSafe(attempt(step, ctx, redactor, shared, budget, by_deadline))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| Attempt {
                error: Some(StepError::new(
                    Reason::Internal,
                    format!("internal error: {}", panic_text(&*payload)),
                )),
                obs: None,
                assertions: Vec::new(),
                values: Default::default(),
            });
        // A bug is not retried: the next attempt would only hide it.
        let retryable = a
            .error
            .as_ref()
            .is_some_and(|e| e.reason != Reason::Internal);
        let retry_possible = n < max_attempts
            && retryable
            && deadline.is_none_or(|d| Instant::now().checked_add(wait).is_some_and(|t| t < d));
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
        wait = next_wait(wait, backoff);
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
        notes: obs
            .as_ref()
            .filter(|o| o.body_truncated)
            .map(|o| {
                vec![format!(
                    "response body cut at max_body: assertions and captures saw its first {} bytes",
                    o.body.len()
                )]
            })
            .unwrap_or_default(),
    };
    if let (Some(reason), Some(msg)) = (outcome.reason, &outcome.message) {
        tracing::warn!(step = %step.name, reason = reason.as_str(), attempts = n, error = %msg, "step failed");
    } else {
        tracing::debug!(step = %step.name, attempts = n, duration_ms = outcome.duration.as_millis() as u64, "step passed");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::load_source;
    use crate::scenario::LoadOptions;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn load(yaml: &str) -> LoadedScenario {
        load_source("t.yaml", yaml, &LoadOptions::default())
            .unwrap_or_else(|d| panic!("invalid test scenario: {d:?}"))
    }

    /// A TCP port that accepts connections and never answers.
    async fn silent_port() -> (u16, tokio::task::JoinHandle<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                held.push(sock);
            }
        });
        (port, task)
    }

    /// A port that answers every request `200 OK` and counts them.
    async fn ok_port() -> (u16, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if sock.read(&mut buf).await.unwrap_or(0) > 0 {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    }
                });
            }
        });
        (port, hits)
    }

    #[tokio::test]
    async fn a_panicking_step_is_a_failed_run_with_reason_internal_and_finally_still_runs() {
        let (port, hits) = ok_port().await;
        let name = "boom-panics-on-purpose";
        std::env::set_var(crate::fault::PANIC_STEP_ENV, name);
        let sc = load(&format!(
            "name: t\nsteps:\n  - name: {name}\n    http: {{url: \"http://127.0.0.1:{port}/\"}}\n    retry: {{attempts: 3, interval: 10ms}}\n  - name: next\n    http: {{url: \"http://127.0.0.1:{port}/\"}}\nfinally:\n  - name: after\n    http: {{url: \"http://127.0.0.1:{port}/\"}}\n"
        ));
        let o = run_scenario(&sc, 1).await;
        assert!(!o.success);
        assert_eq!(o.reason, Some(Reason::Internal));
        let boom = &o.steps[0];
        assert_eq!(boom.status, StepStatus::Failed);
        assert_eq!(boom.reason, Some(Reason::Internal));
        assert_eq!(boom.attempts, 1, "a bug is not retried");
        let msg = boom.message.as_deref().unwrap_or("");
        assert!(msg.starts_with("internal error: fault injection"), "{msg}");
        assert_eq!(o.steps[1].status, StepStatus::Skipped);
        assert_eq!(o.steps[2].status, StepStatus::Passed, "finally must run");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "only the finally step reached the target"
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_step_in_flight_and_finally_still_runs() {
        let (silent, _keep) = silent_port().await;
        let (ok, hits) = ok_port().await;
        let sc = load(&format!(
            "name: t\nschedule: {{interval: 1m, timeout: 60s}}\nsteps:\n  - name: slow\n    http: {{url: \"http://127.0.0.1:{silent}/\"}}\n    timeout: 30s\n  - name: never\n    http: {{url: \"http://127.0.0.1:{ok}/never\"}}\nfinally:\n  - name: cleanup\n    http: {{url: \"http://127.0.0.1:{ok}/cleanup\"}}\n"
        ));
        let control = RunControl::default();
        let cancel = control.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        });
        let t = std::time::Instant::now();
        let o = run_scenario_with(&sc, 1, &Redactor::new(), &control).await;
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "took {:?}",
            t.elapsed()
        );
        assert!(o.cancelled && !o.success);
        assert_eq!(o.steps[0].status, StepStatus::Failed);
        assert!(o.steps[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("cancelled"));
        assert_eq!(o.steps[1].status, StepStatus::Skipped);
        assert_eq!(o.steps[2].status, StepStatus::Passed, "{:?}", o.steps[2]);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "the finally step reached its target"
        );
    }

    #[tokio::test]
    async fn the_cleanup_grace_bounds_finally_after_a_cancel() {
        let (silent, _keep) = silent_port().await;
        let sc = load(&format!(
            "name: t\nsteps:\n  - name: slow\n    http: {{url: \"http://127.0.0.1:{silent}/\"}}\n    timeout: 30s\nfinally:\n  - name: stuck\n    http: {{url: \"http://127.0.0.1:{silent}/c\"}}\n    timeout: 30s\n"
        ));
        let control = RunControl {
            cleanup_grace: Duration::from_millis(400),
            ..RunControl::default()
        };
        control.cancel.cancel();
        let t = std::time::Instant::now();
        let o = run_scenario_with(&sc, 1, &Redactor::new(), &control).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
        assert!(o.cancelled);
        // Cancelled before it began: the first step never started, the clean-up was cut.
        assert_eq!(o.steps[0].status, StepStatus::Skipped);
        let stuck = &o.steps[1];
        assert_eq!(stuck.status, StepStatus::Failed);
        assert!(stuck
            .message
            .as_deref()
            .unwrap_or("")
            .contains("clean-up grace"));
    }

    #[tokio::test]
    async fn a_secret_that_cannot_be_read_is_a_run_level_config_failure() {
        let sc = load_source(
            "t.yaml",
            "name: t\nsecrets:\n  pw: {env: FLOWPROBE_TEST_RUNNER_UNSET_SECRET}\nsteps:\n  - name: a\n    http: {url: \"http://127.0.0.1:9/${{ secrets.pw }}\"}\n",
            &LoadOptions {
                check_secrets: false,
                ..LoadOptions::default()
            },
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        let o = run_scenario(&sc, 1).await;
        assert!(!o.success);
        assert_eq!(o.run_level_failure(), Some(Reason::Config));
        assert!(o.steps.iter().all(|s| s.status == StepStatus::Skipped));
    }

    #[tokio::test]
    async fn a_credential_header_assertion_shows_no_value() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nset-cookie: session=Zq9SessionValue77\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let sc = load(&format!(
            "name: t\nsteps:\n  - name: a\n    http: {{url: \"http://127.0.0.1:{port}/\"}}\n    assert: ['header \"Set-Cookie\" == \"other\"']\n"
        ));
        let o = run_scenario(&sc, 1).await;
        let text = serde_json::to_string(&o).unwrap();
        assert!(!o.success, "{text}");
        assert!(!text.contains("Zq9SessionValue77"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn retry_waits_saturate_instead_of_overflowing() {
        let one = Duration::from_secs(1);
        assert_eq!(next_wait(one, 2.0), Duration::from_secs(2));
        assert_eq!(next_wait(one, 1e300), MAX_RETRY_WAIT);
        assert_eq!(next_wait(one, f64::INFINITY), MAX_RETRY_WAIT);
        assert_eq!(next_wait(Duration::MAX, 1.0), MAX_RETRY_WAIT);
    }

    #[test]
    fn excerpts_are_redacted_before_they_are_cut() {
        let r = Redactor::new();
        let secret = "S3cr3tTokenValue-0123456789abcdef";
        r.add("token", secret);
        let body = format!(
            "{}{secret}{}",
            "x".repeat(EXCERPT_CHARS - 10),
            "y".repeat(50)
        );
        let mut obs = Observation::default();
        obs.body = body.into_bytes();
        let cut = excerpt(&obs, &r).unwrap_or_default();
        assert!(!cut.contains("S3cr3t"), "{cut}");
        assert!(cut.contains("[redacted"), "{cut}");
    }
}
