//! The JSON report: every outcome as data (run reason and message, step notes included), a
//! `run_failure` object on runs that failed on their own (no step failed), and a summary.

use serde_json::{json, Value};

use super::Summary;
use crate::outcome::ScenarioOutcome;
use crate::run::thresholds::ThresholdResult;

/// Renders the report document.
pub fn render(outcomes: &[ScenarioOutcome]) -> Result<String, serde_json::Error> {
    render_with_thresholds(outcomes, &[])
}

/// Renders the report document with the threshold verdicts (a `thresholds` array, present only
/// when the scenarios declare thresholds).
pub fn render_with_thresholds(
    outcomes: &[ScenarioOutcome],
    thresholds: &[ThresholdResult],
) -> Result<String, serde_json::Error> {
    let runs = outcomes.iter().map(run).collect::<Result<Vec<_>, _>>()?;
    let mut doc = json!({
        "version": 1,
        "tool": concat!("flowprobe ", env!("CARGO_PKG_VERSION")),
        "summary": Summary::of(outcomes),
        "runs": runs,
    });
    if !thresholds.is_empty() {
        doc["thresholds"] = serde_json::to_value(thresholds)?;
    }
    serde_json::to_string_pretty(&doc)
}

/// One run: the outcome, plus `run_failure: {reason, message}` when the run failed but no step
/// did (a secret that cannot be read, the deadline passing between steps, a bug).
fn run(o: &ScenarioOutcome) -> Result<Value, serde_json::Error> {
    let mut v = serde_json::to_value(o)?;
    if let (Some(reason), Some(map)) = (o.run_level_failure(), v.as_object_mut()) {
        map.insert(
            "run_failure".into(),
            json!({"reason": reason, "message": o.message}),
        );
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Reason, StepOutcome, StepStatus};

    fn outcome(
        status: StepStatus,
        reason: Option<Reason>,
        message: Option<&str>,
    ) -> ScenarioOutcome {
        let step = StepOutcome {
            reason: (status == StepStatus::Failed).then_some(Reason::Connect),
            notes: vec!["response body cut at max_body (1 KiB)".into()],
            ..crate::outcome::fixtures::step("home", status)
        };
        ScenarioOutcome {
            reason,
            message: message.map(String::from),
            ..crate::outcome::fixtures::run("shop", vec![step])
        }
    }

    fn runs(outcomes: &[ScenarioOutcome]) -> Vec<Value> {
        let text = render(outcomes).expect("renders");
        let doc: Value = serde_json::from_str(&text).expect("valid JSON");
        doc["runs"].as_array().cloned().expect("runs array")
    }

    #[test]
    fn run_level_failures_and_step_notes_are_in_the_report() {
        let runs = runs(&[
            outcome(
                StepStatus::Skipped,
                Some(Reason::Config),
                Some("secret `pw`: environment variable PW is not set"),
            ),
            outcome(StepStatus::Failed, Some(Reason::Connect), None),
            outcome(StepStatus::Passed, None, None),
        ]);
        assert_eq!(runs[0]["reason"], "config");
        assert_eq!(runs[0]["run_failure"]["reason"], "config");
        assert_eq!(
            runs[0]["run_failure"]["message"],
            "secret `pw`: environment variable PW is not set"
        );
        assert_eq!(
            runs[0]["message"],
            "secret `pw`: environment variable PW is not set"
        );
        // A step failed: the run's reason is the step's, and there is no run-level failure.
        assert_eq!(runs[1]["reason"], "connect");
        assert!(runs[1].get("run_failure").is_none());
        assert!(runs[2].get("run_failure").is_none());
        // The ids that lead to the backend's trace: the run's, and each step's span that ran.
        assert_eq!(runs[1]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(runs[1]["span_id"], "00f067aa0ba902b7");
        assert_eq!(runs[1]["steps"][0]["span_id"], "b7ad6b7169203331");
        assert!(runs[0]["steps"][0].get("span_id").is_none());
        for r in &runs {
            assert_eq!(
                r["steps"][0]["notes"][0],
                "response body cut at max_body (1 KiB)"
            );
        }
    }
}
