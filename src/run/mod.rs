//! Runs one scenario: renders vars and secrets, runs steps with timeouts and retries, keeps
//! captures for later steps, always runs `finally`, and returns one [`ScenarioOutcome`].
//!
//! The parts: `context` (what templates read, what steps share), `stop` (cancel and
//! clean-up grace), `step` (a step's attempts and outcome), `attempt` (one attempt's
//! execution, captures and assertions), [`thresholds`] (run-mode thresholds over many runs).

mod attempt;
mod context;
mod step;
mod stop;
pub mod thresholds;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::time::Instant;

use self::context::{RunContext, RunShared};
use self::step::{cut_short, run_step, skipped, unmet_step_reference, StepStart};
use self::stop::Stop;
pub use self::stop::{RunControl, DEFAULT_CLEANUP_GRACE};
use crate::outcome::{Reason, ScenarioOutcome, StepOutcome, StepStatus};
use crate::scenario::{CompiledStep, LoadedScenario};
use crate::secrets::{read_secret, Redactor};
use crate::template::render;
use crate::trace::{SpanContext, SpanId, TraceId};

/// Time allowed for each clean-up action.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Runs a scenario once. Never panics on a failing target: every failure is in the outcome.
/// Nothing is kept for later runs (no JWKS cache, ...): callers that run again keep one
/// [`RunControl`] and use [`run_scenario_with`].
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
    let begin = RunStart::now(iteration);
    // Every event of the run, the steps' included, carries the scenario and the trace id
    // through this span (the innermost one, which JSON logs show as `span`).
    let span = tracing::info_span!("run", scenario = %sc.name, trace_id = %begin.trace.trace_id);
    let run = tracing::Instrument::instrument(run_inner(sc, redactor, control, &begin), span);
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(out) => out,
        Err(payload) => {
            // The same run id and trace as the requests it sent before it died.
            let mut out = new_outcome(sc, &begin);
            let msg = redactor.redact(&format!("internal error: {}", panic_text(&*payload)));
            tracing::error!(scenario = %out.scenario, trace_id = %out.trace_id, reason = "internal", error = %msg, "run failed");
            out.reason = Some(Reason::Internal);
            out.message = Some(msg);
            out.steps = all_skipped(sc);
            out.duration = begin.start.elapsed();
            out
        }
    }
}

/// What a run is from its start: its ids, its trace's root span, and when it began.
struct RunStart {
    run_id: String,
    iteration: u32,
    /// The run's root span.
    trace: SpanContext,
    started_at: SystemTime,
    start: Instant,
}

impl RunStart {
    fn now(iteration: u32) -> RunStart {
        RunStart {
            run_id: new_run_id(),
            iteration,
            trace: SpanContext {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
            },
            started_at: SystemTime::now(),
            start: Instant::now(),
        }
    }
}

/// The outcome of a run that died outside the runner's own guard: failed, reason `internal`.
/// `why` must hold no secret: callers pass a fixed text, never a panic payload.
pub fn internal_failure(sc: &LoadedScenario, iteration: u32, why: &str) -> ScenarioOutcome {
    let mut out = new_outcome(sc, &RunStart::now(iteration));
    out.reason = Some(Reason::Internal);
    out.message = Some(format!("internal error: {why}"));
    out.steps = all_skipped(sc);
    tracing::error!(scenario = %out.scenario, trace_id = %out.trace_id, reason = "internal", "run failed: its task died");
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

fn new_outcome(sc: &LoadedScenario, begin: &RunStart) -> ScenarioOutcome {
    ScenarioOutcome {
        scenario: sc.name.clone(),
        file: sc.file.display().to_string(),
        run_id: begin.run_id.clone(),
        trace_id: begin.trace.trace_id.to_string(),
        span_id: begin.trace.span_id.to_string(),
        iteration: begin.iteration,
        started_at: begin.started_at,
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
    redactor: &Redactor,
    control: &RunControl,
    begin: &RunStart,
) -> ScenarioOutcome {
    // The steps are awaited here, not in helpers: see `attempt` on the nesting of futures.
    let start = begin.start;
    let mut out = new_outcome(sc, begin);
    let mut ctx = RunContext::new(
        out.run_id.clone(),
        begin.trace.trace_id,
        begin.started_at,
        begin.iteration,
    );
    if let Err(msg) = prepare(sc, &mut ctx, redactor) {
        return could_not_start(sc, out, &msg, redactor, start);
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
        let began = StepStart::now();
        let o = tokio::select! {
            o = run_step(step, &mut ctx, redactor, &shared, deadline, false, &began) => o,
            () = stop.cancelled() => cut_short(step, false, "cancelled at shutdown before it finished", &began),
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
            out.steps.push(needs_missing(step, &missing));
            continue;
        }
        let began = StepStart::now();
        let o = tokio::select! {
            o = run_step(step, &mut ctx, redactor, &shared, None, true, &began) => o,
            () = stop.cleanup_over() => cut_short(step, true, "cut short: the clean-up grace ran out at shutdown", &began),
        };
        out.steps.push(o);
    }
    run_cleanups(&shared, &stop, redactor, &mut out).await;

    out.duration = start.elapsed();
    out.cancelled = stop.is_cancelled();
    conclude(sc, &mut out);
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

/// The outcome of a run whose secrets or vars could not be prepared: reason `config`, every
/// step skipped.
fn could_not_start(
    sc: &LoadedScenario,
    mut out: ScenarioOutcome,
    msg: &str,
    redactor: &Redactor,
    start: Instant,
) -> ScenarioOutcome {
    out.message = Some(redactor.redact(msg));
    out.reason = Some(Reason::Config);
    out.steps = all_skipped(sc);
    out.duration = start.elapsed();
    tracing::warn!(scenario = %out.scenario, trace_id = %out.trace_id, reason = "config", error = %out.message.as_deref().unwrap_or(""), "run could not start");
    out
}

/// A `finally` step skipped because it refers to `missing`, which the run did not produce.
fn needs_missing(step: &CompiledStep, missing: &str) -> StepOutcome {
    let mut o = skipped(step, true);
    o.message = Some(format!("needs `{missing}`, which the run did not produce"));
    tracing::debug!(step = %step.name, needs = %missing, "finally step skipped");
    o
}

/// Runs the clean-up actions steps registered; their failures go into `cleanup_errors`.
async fn run_cleanups(
    shared: &RunShared,
    stop: &Stop<'_>,
    redactor: &Redactor,
    out: &mut ScenarioOutcome,
) {
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
        tracing::warn!(scenario = %out.scenario, trace_id = %out.trace_id, error = %msg, "clean-up failed");
        out.cleanup_errors.push(msg);
    }
}

/// The run's verdict from its steps, its cancel and its deadline; logged.
fn conclude(sc: &LoadedScenario, out: &mut ScenarioOutcome) {
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
        trace_id = %out.trace_id,
        success = out.success,
        reason = out.reason.map(|r| r.as_str()).unwrap_or(""),
        duration_ms = out.duration.as_millis() as u64,
        "run finished"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::load_source;
    use crate::scenario::LoadOptions;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
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
    async fn a_retried_step_has_a_span_per_attempt_and_a_single_attempt_is_one_span() {
        let (silent, _keep) = silent_port().await;
        let (ok, _) = ok_port().await;
        let sc = load(&format!(
            "name: t\nsteps:\n  - name: once\n    http: {{url: \"http://127.0.0.1:{ok}/\"}}\n  - name: twice\n    http: {{url: \"http://127.0.0.1:{silent}/\"}}\n    timeout: 100ms\n    retry: {{attempts: 2, interval: 10ms}}\n  - name: never\n    http: {{url: \"http://127.0.0.1:{ok}/\"}}\n"
        ));
        let o = run_scenario(&sc, 1).await;
        assert_eq!(o.trace_id.len(), 32);
        assert_eq!(o.span_id.len(), 16);
        let once = &o.steps[0];
        assert!(once.attempt_spans.is_empty());
        assert_eq!(once.http_status, Some(200));
        assert!(once.span_id.is_some() && once.started_at.is_some());
        let twice = &o.steps[1];
        assert_eq!(twice.attempts, 2);
        let ids: Vec<&str> = twice
            .attempt_spans
            .iter()
            .map(|a| a.span_id.as_str())
            .collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(twice.span_id.as_deref().is_some_and(|s| !ids.contains(&s)));
        assert!(
            twice
                .attempt_spans
                .iter()
                .all(|a| a.reason == Some(Reason::Timeout)
                    && a.duration >= Duration::from_millis(100))
        );
        assert!(twice.attempt_spans[1].started_at > twice.attempt_spans[0].started_at);
        let never = &o.steps[2];
        assert!(never.span_id.is_none() && never.started_at.is_none());
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
}
