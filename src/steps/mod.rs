//! Step kinds behind one dispatch: one file, one enum variant and one match arm per kind.
//! The compiler's exhaustiveness check is the registry.

pub mod http;
pub mod oidc;
pub mod redis;
pub mod s3;
pub mod trust;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::observation::Observation;
use crate::outcome::Reason;
use crate::secrets::Redactor;
use crate::template::Resolve;

/// Keys that select a step's kind, in the order they are documented.
pub const KINDS: &[&str] = &["http", "oidc", "s3", "redis"];

/// A step's kind with its settings (defaults already merged in).
// Built once per step at load time: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum StepKind {
    Http(http::HttpSpec),
    Oidc(oidc::OidcSpec),
    S3(s3::S3Spec),
    Redis(redis::RedisSpec),
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

/// Renders a scenario string; a template that cannot be resolved is a configuration error.
pub(crate) fn render_config(s: &str, r: &dyn Resolve) -> Result<String, StepError> {
    crate::template::render(s, r).map_err(|e| StepError::new(Reason::Config, e.0))
}

/// Reads a file the scenario names (CA, client certificate or key); failing is a
/// configuration error that shows the path but never the content.
pub(crate) fn read_config_file(path: &str, what: &str) -> Result<Vec<u8>, StepError> {
    std::fs::read(path).map_err(|e| {
        StepError::new(
            Reason::Config,
            format!("cannot read {what} {path}: {}", e.kind()),
        )
    })
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
    /// Clean-up actions (delete what this run created) run after `finally`, even on failure.
    pub cleanups: &'a Cleanups,
}

/// A boxed clean-up action's future.
pub type CleanupFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One clean-up action registered by a step.
pub struct Cleanup {
    /// What it removes, for messages (`s3 delete probes/abc.bin`); never a secret.
    pub description: String,
    pub action: Box<dyn FnOnce() -> CleanupFuture + Send>,
}

/// The clean-up actions of one run, run in reverse order of registration.
#[derive(Default)]
pub struct Cleanups(Mutex<Vec<Cleanup>>);

impl Cleanups {
    /// Registers an action; `make` is called once, after the run's steps and `finally`.
    pub fn register<F, Fut>(&self, description: impl Into<String>, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let action: Box<dyn FnOnce() -> CleanupFuture + Send> =
            Box::new(move || Box::pin(make()) as CleanupFuture);
        if let Ok(mut list) = self.0.lock() {
            list.push(Cleanup {
                description: description.into(),
                action,
            });
        }
    }

    /// Takes every action, last registered first.
    pub fn take(&self) -> Vec<Cleanup> {
        let mut list = self
            .0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        list.reverse();
        list
    }
}

impl StepKind {
    /// The kind's key: `http`, `oidc`, `s3`, `redis`. Also the `kind` metric label.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Http(_) => "http",
            StepKind::Oidc(_) => "oidc",
            StepKind::S3(_) => "s3",
            StepKind::Redis(_) => "redis",
        }
    }

    /// Query keywords this kind can answer (see `assert.rs`).
    pub fn queries(&self) -> &'static [&'static str] {
        match self {
            StepKind::Http(_) => http::QUERIES,
            StepKind::Oidc(_) => oidc::QUERIES,
            StepKind::S3(_) => s3::QUERIES,
            StepKind::Redis(_) => redis::QUERIES,
        }
    }

    /// Output names reachable as `steps.NAME.OUTPUT` besides the step's captures.
    pub fn outputs(&self) -> &'static [&'static str] {
        match self {
            StepKind::Http(_) => http::OUTPUTS,
            StepKind::Oidc(_) => oidc::OUTPUTS,
            StepKind::S3(_) => s3::OUTPUTS,
            StepKind::Redis(_) => redis::OUTPUTS,
        }
    }

    /// The step's settings as JSON, to find the `${{ }}` templates it uses.
    pub fn spec_json(&self) -> serde_json::Value {
        let v = match self {
            StepKind::Http(s) => serde_json::to_value(s),
            StepKind::Oidc(s) => serde_json::to_value(s),
            StepKind::S3(s) => serde_json::to_value(s),
            StepKind::Redis(s) => serde_json::to_value(s),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// True when a failed assertion on `status` should be reported as `http_status`, and a
    /// step without any status assertion fails on a 4xx/5xx answer.
    pub fn has_http_status(&self) -> bool {
        match self {
            StepKind::Http(_) => true,
            StepKind::Oidc(_) | StepKind::S3(_) | StepKind::Redis(_) => false,
        }
    }

    /// Runs one attempt.
    pub async fn execute(&self, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
        match self {
            StepKind::Http(spec) => http::execute(spec, ctx).await,
            StepKind::Oidc(spec) => oidc::execute(spec, ctx).await,
            StepKind::S3(spec) => s3::execute(spec, ctx).await,
            StepKind::Redis(spec) => redis::execute(spec, ctx).await,
        }
    }
}
