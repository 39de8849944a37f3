//! The JSON report: every outcome as data, plus a summary.

use super::Summary;
use crate::outcome::ScenarioOutcome;
use crate::thresholds::ThresholdResult;

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
    let mut doc = serde_json::json!({
        "version": 1,
        "tool": concat!("flowprobe ", env!("CARGO_PKG_VERSION")),
        "summary": Summary::of(outcomes),
        "runs": outcomes,
    });
    if !thresholds.is_empty() {
        doc["thresholds"] = serde_json::to_value(thresholds)?;
    }
    serde_json::to_string_pretty(&doc)
}
