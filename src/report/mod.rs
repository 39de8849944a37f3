//! Reporters: separate readers of the same [`crate::outcome::ScenarioOutcome`] data.

pub mod json;
pub mod junit;
pub mod terminal;

use crate::outcome::ScenarioOutcome;

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
