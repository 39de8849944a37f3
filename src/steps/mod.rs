//! Step kinds. A kind is one file (or folder) here and one line in `registry.rs`:
//!
//! 1. Write `src/steps/<kind>.rs` with the spec struct (serde + schemars derives,
//!    `deny_unknown_fields`, doc comments: they become the JSON Schema) and `impl Kind` for it:
//!    key, query words, outputs, load-time checks (`validate`) and `execute`, which turns one
//!    attempt into an [`Observation`] or a [`StepError`] with a closed [`Reason`].
//! 2. Add `pub mod <kind>;` below and one line `Variant => super::<kind>::Spec` to the
//!    `registry!` list. The loader, the assertion grammar, the schema and the reports read
//!    everything else from the kind.
//!
//! State a kind keeps between runs (caches) lives in [`Shared`], reached through the
//! [`StepContext`], never in a `static`.

pub mod decompress;
pub mod dns;
pub mod http;
mod http_request;
pub mod kind;
pub mod oidc;
pub mod postgres;
pub mod redis;
pub mod registry;
pub mod s3;
pub mod shared;
pub mod tcp;
pub(crate) mod tls_facts;
pub mod transport;
pub mod trust;

pub use kind::Kind;
pub use registry::{StepKind, KINDS};
pub use shared::Shared;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::observation::Observation;
use crate::outcome::Reason;
use crate::secrets::Redactor;
use crate::template::Resolve;

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
    /// What steps keep between runs of this process (caches), one value per type.
    pub shared: &'a Shared,
    /// What the steps of this run share, one value per type (the http step's pooled
    /// connections with `reuse_connection`); dropped when the run ends.
    pub run: &'a Shared,
    /// This attempt's span: requests carry it in `traceparent`.
    pub trace: crate::trace::SpanContext,
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
