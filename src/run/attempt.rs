//! One attempt of a step: executes the kind within its time budget, registers secret outputs
//! with the redactor, then reads captures and checks assertions against the observation.

use std::time::Duration;

use serde_json::Value as Json;
use tokio::time::Instant;

use super::context::{OwnStep, RunContext, RunShared};
use crate::assert::{eval_query, Query};
use crate::observation::Observation;
use crate::outcome::{AssertionOutcome, Reason};
use crate::scenario::CompiledStep;
use crate::secrets::Redactor;
use crate::steps::{StepContext, StepError};

/// How much of a response body a failure message shows.
const EXCERPT_CHARS: usize = 200;

/// The result of one attempt after assertions and captures.
pub(super) struct Attempt {
    pub error: Option<StepError>,
    pub obs: Option<Observation>,
    pub assertions: Vec<AssertionOutcome>,
    pub values: serde_json::Map<String, Json>,
}

impl Attempt {
    /// An attempt that ended without an observation.
    pub fn failed(error: StepError) -> Attempt {
        Attempt {
            error: Some(error),
            obs: None,
            assertions: Vec::new(),
            values: Default::default(),
        }
    }
}

pub(super) async fn attempt(
    step: &CompiledStep,
    ctx: &RunContext,
    redactor: &Redactor,
    shared: &RunShared,
    budget: Duration,
    by_deadline: bool,
    trace: crate::trace::SpanContext,
) -> Attempt {
    // The kind's future is awaited here, not in a helper: more async layers between a run and
    // a kind's execution push the run's future past the compiler's query depth limit when it
    // is laid out ("queries overflow the depth limit").
    let sctx = StepContext {
        resolver: ctx,
        redactor,
        timeout: budget,
        cookies: shared.cookies.clone(),
        cleanups: &shared.cleanups,
        shared: &shared.process,
        run: &shared.run,
        trace,
    };
    let started = Instant::now();
    let execute = async {
        crate::fault::maybe_panic(&step.name);
        step.kind.execute(&sctx).await
    };
    let result = tokio::time::timeout(budget, execute).await;
    let elapsed = started.elapsed();
    let mut obs = match result {
        Err(_) => return Attempt::failed(timeout_error(budget, by_deadline)),
        Ok(Err(e)) => return Attempt::failed(e),
        Ok(Ok(obs)) => obs,
    };
    obs.duration = elapsed;
    register_secret_outputs(step, &obs, redactor);
    let status_error = status_error(step, &obs, redactor).or_else(|| unless_asserted(step, &obs));
    let (values, capture_error) = capture(step, &obs, redactor);
    // A resolver that also sees this step's captures.
    let own = OwnStep {
        ctx,
        name: &step.name,
        values: &values,
    };
    let (assertions, assertion_error) = check_assertions(step, &obs, &own, redactor);
    Attempt {
        error: status_error.or(assertion_error).or(capture_error),
        obs: Some(obs),
        assertions,
        values,
    }
}

/// The error of an attempt that had no result within its budget.
fn timeout_error(budget: Duration, by_deadline: bool) -> StepError {
    let why = if by_deadline {
        "the scenario's time budget ran out"
    } else {
        "step timeout"
    };
    StepError::new(
        Reason::Timeout,
        format!(
            "no result within {} ({why})",
            crate::units::format_duration(budget)
        ),
    )
}

/// Outputs the kind marks secret are redacted from here on, under `<step>.<output>`.
fn register_secret_outputs(step: &CompiledStep, obs: &Observation, redactor: &Redactor) {
    for name in &obs.secret_outputs {
        if let Some(v) = obs.outputs.get(name) {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            redactor.add(&format!("{}.{name}", step.name), &text);
        }
    }
}

/// An HTTP error status fails a step of an HTTP kind that asserts no `status` itself.
fn status_error(step: &CompiledStep, obs: &Observation, redactor: &Redactor) -> Option<StepError> {
    let has_status_assertion = step
        .assertions
        .iter()
        .any(|(a, _)| matches!(a.query, Query::Status));
    if !step.kind.has_http_status() || has_status_assertion {
        return None;
    }
    let code = obs.status.filter(|s| *s >= 400)?;
    let mut msg = format!("HTTP {code} (a step without a `status` assertion expects < 400)");
    if let Some(x) = excerpt(obs, redactor) {
        msg.push_str(&format!("\n  response: {x}"));
    }
    Some(StepError::new(Reason::HttpStatus, msg))
}

/// A failure the kind saw that stands unless one of the step's assertions reads its query word
/// (a name that does not resolve, in a step that asserts on the response code).
fn unless_asserted(step: &CompiledStep, obs: &Observation) -> Option<StepError> {
    let f = obs.unless_asserted.as_ref()?;
    let asserted = step
        .assertions
        .iter()
        .any(|(a, _)| a.query.keyword() == f.query);
    (!asserted).then(|| StepError::new(f.reason, f.message.clone()))
}

/// The step's outputs plus its captures, and the first capture that found nothing.
///
/// Captures come first, so assertions can compare with this step's own captures. A capture that
/// finds nothing is reported only when no assertion failed: `status == 200` failing on a 401
/// says more than "no token in the body".
fn capture(
    step: &CompiledStep,
    obs: &Observation,
    redactor: &Redactor,
) -> (serde_json::Map<String, Json>, Option<StepError>) {
    let mut values = obs.outputs.clone();
    let mut capture_error: Option<StepError> = None;
    for cap in &step.captures {
        let why = match eval_query(&cap.query, obs) {
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
            if let Some(x) = excerpt(obs, redactor) {
                msg.push_str(&format!("\n  response: {x}"));
            }
            StepError::new(Reason::Assertion, msg)
        });
    }
    (values, capture_error)
}

/// Every assertion's outcome (redacted), and the error of the first that failed.
fn check_assertions(
    step: &CompiledStep,
    obs: &Observation,
    own: &OwnStep<'_>,
    redactor: &Redactor,
) -> (Vec<AssertionOutcome>, Option<StepError>) {
    let mut error = None;
    let mut assertions = Vec::new();
    for (a, location) in &step.assertions {
        let mut check = a.check(obs, own);
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
            if let Some(x) = excerpt(obs, redactor) {
                msg.push_str(&format!("\n  response: {x}"));
            }
            error = Some(StepError::new(reason, msg));
        }
        assertions.push(outcome);
    }
    (assertions, error)
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

/// The start of a response body for a failure message: redacted whole, then cut, so a secret
/// that crosses the cut can never show in part.
fn excerpt(obs: &Observation, redactor: &Redactor) -> Option<String> {
    if obs.body.is_empty() {
        return None;
    }
    let cut = redactor.redact_and_cut(&obs.body_text(), EXCERPT_CHARS);
    Some(cut.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

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
