//! The JSON Schema of the `/status` document (`flowprobe schema status`): types that describe
//! what [`crate::serve::http::App::status_doc`] writes, field by field, for other tools to build
//! on. A test checks a real document against it.

use std::collections::BTreeMap;

use schemars::JsonSchema;

use crate::outcome::{Reason, ScenarioOutcome};
use crate::serve::history::{HistoryRun, Uptime};
use crate::serve::http::ReloadState;
use crate::serve::metrics::RunCounts;

/// `GET /status` with `Accept: application/json` (`?history=N` keeps the N newest runs of each
/// scenario's history; 0 for none).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StatusDocument {
    /// flowprobe's version.
    version: String,
    /// True once the scenarios are loaded and scheduled (as `/readyz`).
    ready: bool,
    /// RFC 3339.
    started_at: String,
    /// RFC 3339: when this document was made.
    generated_at: String,
    /// `--shard K/N`, when set.
    shard: Option<String>,
    /// The `--label` pairs of this instance (its location, ...).
    labels: BTreeMap<String, String>,
    /// The result of the last reload, if there was one.
    last_reload: Option<ReloadState>,
    /// OTLP span export counts since start; null when export is off.
    otlp_export: Option<crate::otlp::ExportCounts>,
    scenarios: Vec<ScenarioStatus>,
}

/// One scheduled scenario.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ScenarioStatus {
    name: String,
    file: String,
    labels: BTreeMap<String, String>,
    interval_seconds: f64,
    jitter_seconds: f64,
    timeout_seconds: f64,
    /// The steps, `finally` ones included, in order.
    steps: Vec<StepRef>,
    /// RFC 3339.
    next_run: Option<String>,
    running: bool,
    /// Runs since serve started, by outcome.
    runs: RunCounts,
    /// Set when the last run failed on its own (no step failed).
    last_run_failure: Option<RunFailure>,
    /// The last run in full (phases, assertions, messages redacted).
    last_run: Option<ScenarioOutcome>,
    /// The last failed run in full.
    last_failure: Option<ScenarioOutcome>,
    uptime: Uptime,
    /// The retained runs, oldest first (at most 100).
    history: Vec<HistoryRun>,
}

/// A step as scheduled.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StepRef {
    name: String,
    /// Step kind: http, oidc, s3, redis.
    kind: String,
}

/// A failure of the run itself.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RunFailure {
    reason: Reason,
    message: Option<String>,
}

/// The schema document, of what serve writes (fields it leaves out when empty are optional).
pub fn schema() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<StatusDocument>()
}
