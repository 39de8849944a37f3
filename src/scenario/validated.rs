//! A scenario as the loader hands it over: validated, defaults merged, assertions and captures
//! parsed, nothing of the file's raw model left over.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use super::model::{Retry, Schedule, SecretSource, Slo};
use crate::assert::{Assertion, Query};
use crate::steps::StepKind;

/// A capture, parsed.
#[derive(Debug, Clone)]
pub struct CompiledCapture {
    pub name: String,
    pub query: Query,
    pub secret: bool,
}

/// A step ready to run.
#[derive(Debug, Clone)]
pub struct CompiledStep {
    pub name: String,
    pub kind: StepKind,
    pub captures: Vec<CompiledCapture>,
    /// Assertions with their `file:line:column`.
    pub assertions: Vec<(Assertion, String)>,
    pub timeout: Duration,
    pub retry: Option<Retry>,
    /// `file:line` of the step.
    pub location: String,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub file: PathBuf,
    /// The `scenario` label.
    pub name: String,
    pub description: Option<String>,
    /// Static extra labels.
    pub labels: BTreeMap<String, String>,
    pub schedule: Option<Schedule>,
    /// Where each secret is read from at the start of every run.
    pub secrets: IndexMap<String, SecretSource>,
    pub slo: Option<Slo>,
    /// Vars after `--var` overrides, in declaration order.
    pub vars: Vec<(String, String)>,
    pub steps: Vec<CompiledStep>,
    pub finally: Vec<CompiledStep>,
    /// Limit of a whole run (`schedule.timeout`, else 60s).
    pub timeout: Duration,
    /// Parsed `thresholds:`, evaluated over `run --iterations`.
    pub thresholds: Vec<crate::run::thresholds::Threshold>,
}

impl LoadedScenario {
    pub fn name(&self) -> &str {
        &self.name
    }
}
