//! What a run's steps share and read: the values templates resolve (vars, secrets, run
//! facts, earlier steps' outputs and captures), a step's view of its own captures, and the
//! cookie jar, clean-ups and process-wide state of one run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value as Json;

use crate::steps::{Cleanups, Shared};
use crate::template::{Expr, RenderError, Resolve};

/// State the steps of one run share, and what they keep across runs.
pub(super) struct RunShared {
    pub cookies: Arc<reqwest::cookie::Jar>,
    pub cleanups: Cleanups,
    pub process: Arc<Shared>,
    /// Values kept for this run only (pooled connections).
    pub run: Shared,
}

impl RunShared {
    pub fn new(process: Arc<Shared>) -> Self {
        RunShared {
            cookies: Arc::default(),
            cleanups: Cleanups::default(),
            process,
            run: Shared::default(),
        }
    }
}

/// Values a run's templates can read.
pub(super) struct RunContext {
    pub run_id: String,
    /// The run's trace: each step attempt is a span in it.
    pub trace_id: crate::trace::TraceId,
    pub started_at: String,
    pub iteration: u32,
    pub vars: HashMap<String, String>,
    pub secrets: HashMap<String, String>,
    /// Per step: its outputs and captures.
    pub steps: HashMap<String, serde_json::Map<String, Json>>,
}

impl RunContext {
    /// A run's context before its secrets are read and its vars rendered.
    pub fn new(
        run_id: String,
        trace_id: crate::trace::TraceId,
        started_at: SystemTime,
        iteration: u32,
    ) -> Self {
        RunContext {
            run_id,
            trace_id,
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            iteration,
            vars: HashMap::new(),
            secrets: HashMap::new(),
            steps: HashMap::new(),
        }
    }

    /// `steps.<step>.<path>` from the values earlier steps produced.
    fn step_value(&self, step: &str, path: &[String]) -> Result<String, RenderError> {
        let missing = || {
            RenderError(format!(
                "`steps.{step}.{}` has no value: step `{step}` did not run or did not produce it",
                path.join(".")
            ))
        };
        let map = self.steps.get(step).ok_or_else(missing)?;
        let (first, rest) = path.split_first().ok_or_else(missing)?;
        let mut v = map.get(first).ok_or_else(missing)?;
        for seg in rest {
            v = match v {
                Json::Object(m) => m.get(seg).ok_or_else(missing)?,
                Json::Array(a) => seg
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .ok_or_else(missing)?,
                _ => return Err(missing()),
            };
        }
        Ok(match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Resolve for RunContext {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError> {
        match expr {
            Expr::Var(n) => self
                .vars
                .get(n)
                .cloned()
                .ok_or_else(|| RenderError(format!("var `{n}` has no value yet"))),
            Expr::Secret(n) => self
                .secrets
                .get(n)
                .cloned()
                .ok_or_else(|| RenderError(format!("secret `{n}` was not read"))),
            Expr::Env(n) => std::env::var(n)
                .map_err(|_| RenderError(format!("environment variable `{n}` is not set"))),
            Expr::Step { step, path } => self.step_value(step, path),
            Expr::RunId => Ok(self.run_id.clone()),
            Expr::RunStartedAt => Ok(self.started_at.clone()),
            Expr::RunIteration => Ok(self.iteration.to_string()),
            Expr::Uuid => Ok(uuid::Uuid::new_v4().to_string()),
        }
    }
}

/// Resolves `steps.<this step>.x` from the values of the attempt being checked.
pub(super) struct OwnStep<'a> {
    pub ctx: &'a RunContext,
    pub name: &'a str,
    pub values: &'a serde_json::Map<String, Json>,
}

impl Resolve for OwnStep<'_> {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError> {
        if let Expr::Step { step, path } = expr {
            if step == self.name {
                let v = path
                    .first()
                    .and_then(|p| self.values.get(p))
                    .ok_or_else(|| {
                        RenderError(format!("`steps.{step}.{}` has no value", path.join(".")))
                    })?;
                return Ok(match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        self.ctx.resolve(expr)
    }
}
