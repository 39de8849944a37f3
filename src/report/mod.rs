//! Reporters: separate readers of the same [`crate::outcome::ScenarioOutcome`] data.

pub mod html;
pub mod json;
pub mod junit;
pub mod terminal;

use crate::outcome::ScenarioOutcome;

/// Escapes text for XML and HTML element content and quoted attributes; drops the control
/// characters XML 1.0 forbids.
pub fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Counts over a set of runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub runs: usize,
    pub passed: usize,
    pub failed: usize,
    /// Steps that passed only after a retry.
    pub retried_steps: usize,
}

impl Summary {
    pub fn of(outcomes: &[ScenarioOutcome]) -> Summary {
        let passed = outcomes.iter().filter(|o| o.success).count();
        Summary {
            runs: outcomes.len(),
            passed,
            failed: outcomes.len() - passed,
            retried_steps: outcomes.iter().map(|o| o.retried_passes()).sum(),
        }
    }
}
