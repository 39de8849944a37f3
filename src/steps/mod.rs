//! Step kinds behind one dispatch: one file, one enum variant and one match arm per kind.
//! The compiler's exhaustiveness check is the registry.

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use crate::observation::Observation;
use crate::outcome::Reason;
use crate::secrets::Redactor;
use crate::template::Resolve;

/// Keys that select a step's kind, in the order they are documented.
pub const KINDS: &[&str] = &["http"];

/// A step's kind with its settings (defaults already merged in).
#[derive(Debug, Clone)]
pub enum StepKind {
    Http(http::HttpSpec),
}

/// Why an attempt of a step failed before (or instead of) its assertions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct StepError {
    pub reason: Reason,
    pub message: String,
}

impl StepError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        StepError {
            reason,
            message: message.into(),
        }
    }
}

/// What a step needs from its run: values for templates, the redactor, a time budget, and
/// state shared by the steps of one run.
pub struct StepContext<'a> {
    pub resolver: &'a dyn Resolve,
    pub redactor: &'a Redactor,
    /// Budget of this attempt; steps pass it to their clients as connect/read limits.
    pub timeout: Duration,
    /// Cookies persist across the HTTP steps of one run, as in a browser session.
    pub cookies: Arc<reqwest::cookie::Jar>,
}

impl StepKind {
    /// The kind's key: `http`, `oidc`, `s3`, `redis`. Also the `kind` metric label.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
        }
    }

    /// Query keywords this kind can answer (see `assert.rs`).
    pub fn queries(&self) -> &'static [&'static str] {
        match self {
            StepKind::Http(_) => http::QUERIES,
        }
    }

    /// Output names reachable as `steps.NAME.OUTPUT` besides the step's captures.
    pub fn outputs(&self) -> &'static [&'static str] {
        match self {
            StepKind::Http(_) => http::OUTPUTS,
        }
    }

    /// True when a failed assertion on `status` should be reported as `http_status`, and a
    /// step without any status assertion fails on a 4xx/5xx answer.
    pub fn has_http_status(&self) -> bool {
        match self {
            StepKind::Http(_) => true,
        }
    }

    /// Runs one attempt.
    pub async fn execute(&self, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
        match self {
            StepKind::Http(spec) => http::execute(spec, ctx).await,
        }
    }
}
