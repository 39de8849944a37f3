//! The JSON report: every outcome as data, plus a summary.

use super::Summary;
use crate::outcome::ScenarioOutcome;

/// Renders the report document.
pub fn render(outcomes: &[ScenarioOutcome]) -> Result<String, serde_json::Error> {
    let doc = serde_json::json!({
        "version": 1,
        "tool": concat!("flowprobe ", env!("CARGO_PKG_VERSION")),
        "summary": Summary::of(outcomes),
        "runs": outcomes,
    });
    serde_json::to_string_pretty(&doc)
}
