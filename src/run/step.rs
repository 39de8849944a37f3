//! One step of a run: its time budget, its attempts with retries and backoff, and its
//! [`StepOutcome`]; plus the outcomes of steps that did not run or were cut short, and the
//! check that a `finally` step has what it refers to.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use serde_json::Value as Json;
use tokio::time::Instant;

use super::attempt::{attempt, Attempt};
use super::context::{RunContext, RunShared};
use super::panic_text;
use crate::outcome::{AttemptSpan, Phase, Reason, StepOutcome, StepStatus};
use crate::scenario::CompiledStep;
use crate::secrets::Redactor;
use crate::steps::StepError;
use crate::template::{Expr, Resolve};
use crate::trace::{SpanContext, SpanId, TraceId};

/// Where a step's span begins: the span id its first attempt's requests carry, and when.
///
/// A step that makes one attempt is one span with this id. A step that retries gets a span of
/// its own (a new id) and each attempt is a child span; the first attempt keeps this id, so
/// whatever its requests carried in `traceparent` is in the trace either way.
pub(super) struct StepStart {
    pub first_span: SpanId,
    pub at: SystemTime,
    pub start: Instant,
}

impl StepStart {
    pub fn now() -> StepStart {
        StepStart {
            first_span: SpanId::random(),
            at: SystemTime::now(),
            start: Instant::now(),
        }
    }

    /// The span of attempt `n` (1-based), whose id its requests carry in `traceparent`.
    fn attempt(&self, trace_id: TraceId, n: u32) -> SpanContext {
        let span_id = if n == 1 {
            self.first_span
        } else {
            SpanId::random()
        };
        SpanContext { trace_id, span_id }
    }
}

/// Budget for `finally` steps after the scenario's own deadline has passed.
const FINALLY_MIN_BUDGET: Duration = Duration::from_secs(5);

/// Longest wait between two attempts, whatever the backoff multiplies to.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The first `steps.X.Y` a `finally` step uses that the run did not produce, because step X
/// failed or never ran. Such a clean-up has nothing to act on (no token to log out, no key to
/// delete): it is skipped rather than failed, so it does not read as a `config` failure.
pub(super) fn unmet_step_reference(step: &CompiledStep, ctx: &RunContext) -> Option<String> {
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

pub(super) fn skipped(step: &CompiledStep, cleanup: bool) -> StepOutcome {
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
        tls: None,
        connection: None,
        location: step.location.clone(),
        span_id: None,
        started_at: None,
        http_status: None,
        attempt_spans: Vec::new(),
        notes: Vec::new(),
    }
}

/// A step stopped from outside (shutdown) while it ran: one span, as far as it got.
pub(super) fn cut_short(
    step: &CompiledStep,
    cleanup: bool,
    why: &str,
    began: &StepStart,
) -> StepOutcome {
    let mut o = skipped(step, cleanup);
    o.status = StepStatus::Failed;
    o.reason = Some(Reason::Timeout);
    o.message = Some(why.to_string());
    o.duration = began.start.elapsed();
    o.span_id = Some(began.first_span.to_string());
    o.started_at = Some(began.at);
    tracing::warn!(step = %step.name, "{why}");
    o
}

/// The wait before the next retry: `wait × backoff`, saturating instead of overflowing.
fn next_wait(wait: Duration, backoff: f64) -> Duration {
    Duration::try_from_secs_f64(wait.as_secs_f64() * backoff)
        .unwrap_or(MAX_RETRY_WAIT)
        .min(MAX_RETRY_WAIT)
}

/// Time the next attempt gets, and whether the scenario's deadline (not the step's own
/// timeout) is what bounds it.
fn budget(step: &CompiledStep, deadline: Option<Instant>) -> (Duration, bool) {
    match deadline {
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
    }
}

/// Runs a step: its attempts until one passes, the retries are used up, or the next wait
/// would pass the deadline; then its outcome. Its outputs and captures go into `ctx`.
pub(super) async fn run_step(
    step: &CompiledStep,
    ctx: &mut RunContext,
    redactor: &Redactor,
    shared: &RunShared,
    deadline: Option<Instant>,
    cleanup: bool,
    began: &StepStart,
) -> StepOutcome {
    // The attempts are awaited here, not in a helper: see `attempt` on the nesting of futures.
    let max_attempts = step.retry.as_ref().map(|r| r.attempts.max(1)).unwrap_or(1);
    let mut spans = Vec::new();
    let mut wait = step
        .retry
        .as_ref()
        .map(|r| r.interval.0)
        .unwrap_or(Duration::ZERO);
    let mut n = 0;
    let mut last = loop {
        n += 1;
        let (budget, by_deadline) = budget(step, deadline);
        let trace = began.attempt(ctx.trace_id, n);
        let (at, start) = (SystemTime::now(), Instant::now());
        let a = AssertUnwindSafe(attempt(
            step,
            ctx,
            redactor,
            shared,
            budget,
            by_deadline,
            trace,
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| {
            Attempt::failed(StepError::new(
                Reason::Internal,
                format!("internal error: {}", panic_text(&*payload)),
            ))
        });
        spans.push(attempt_span(n, trace.span_id, at, start, &a));
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

    ctx.steps
        .insert(step.name.clone(), std::mem::take(&mut last.values));
    let mut outcome = step_outcome(step, cleanup, last, n, began.start, redactor);
    set_spans(&mut outcome, began, spans);
    if let (Some(reason), Some(msg)) = (outcome.reason, &outcome.message) {
        tracing::warn!(step = %step.name, trace_id = %ctx.trace_id, span_id = outcome.span_id.as_deref().unwrap_or(""), reason = reason.as_str(), attempts = n, error = %msg, "step failed");
    } else {
        tracing::debug!(step = %step.name, attempts = n, duration_ms = outcome.duration.as_millis() as u64, "step passed");
    }
    outcome
}

/// The span of one attempt, from what it saw.
fn attempt_span(n: u32, span: SpanId, at: SystemTime, start: Instant, a: &Attempt) -> AttemptSpan {
    AttemptSpan {
        attempt: n,
        span_id: span.to_string(),
        started_at: at,
        duration: start.elapsed(),
        reason: a.error.as_ref().map(|e| e.reason),
        http_status: a.obs.as_ref().and_then(|o| o.status),
    }
}

/// The step's span: its first attempt's when it made one, else a parent of its attempts'.
fn set_spans(outcome: &mut StepOutcome, began: &StepStart, spans: Vec<AttemptSpan>) {
    outcome.started_at = Some(began.at);
    if spans.len() <= 1 {
        outcome.span_id = Some(began.first_span.to_string());
        return;
    }
    outcome.span_id = Some(SpanId::random().to_string());
    outcome.attempt_spans = spans;
}

/// The outcome of a step from its last attempt (messages redacted).
fn step_outcome(
    step: &CompiledStep,
    cleanup: bool,
    last: Attempt,
    attempts: u32,
    started: Instant,
    redactor: &Redactor,
) -> StepOutcome {
    let obs = last.obs;
    StepOutcome {
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
        attempts,
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
        tls: obs.as_ref().and_then(|o| o.tls.clone()),
        connection: obs.as_ref().and_then(|o| o.connection),
        location: step.location.clone(),
        span_id: None,
        started_at: None,
        http_status: obs.as_ref().and_then(|o| o.status),
        attempt_spans: Vec::new(),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_saturate_instead_of_overflowing() {
        let one = Duration::from_secs(1);
        assert_eq!(next_wait(one, 2.0), Duration::from_secs(2));
        assert_eq!(next_wait(one, 1e300), MAX_RETRY_WAIT);
        assert_eq!(next_wait(one, f64::INFINITY), MAX_RETRY_WAIT);
        assert_eq!(next_wait(Duration::MAX, 1.0), MAX_RETRY_WAIT);
    }
}
