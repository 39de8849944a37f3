//! The scenario file format as serde structs: what a user may write, and nothing else.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::steps::StepKind;
use crate::units::Dur;

/// One scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name, `[a-z0-9-]`; the `scenario` label of every metric.
    pub name: String,
    /// Free text shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Static extra labels (a small, bounded set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// When `flowprobe serve` runs the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Named values, rendered in order once per run; later vars may use earlier ones.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, String>,
    /// Secret values, read again at the start of every run and redacted everywhere.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, SecretSource>,
    /// Settings every step inherits unless it sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// The user flow, run in order; the first failure skips the rest.
    pub steps: Vec<Step>,
    /// Clean-up steps that always run, also after a failure or a timeout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<Step>,
    /// Service level objective, used by `flowprobe slo` and for histogram buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Pass/fail criteria over `flowprobe run --iterations N`: `p95(duration) < 300ms`,
    /// `success_rate >= 99%`, `p99(steps.login.duration) < 2s`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
}

/// How often `flowprobe serve` runs a scenario.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Time between run starts.
    pub interval: Dur,
    /// Random delay added to each start, up to this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Dur>,
    /// Limit for a whole run, `finally` excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// Where a secret comes from. Exactly one of `env` or `file`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// Name of an environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Path of a file (a mounted Kubernetes Secret); trailing newlines are trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Settings inherited by every step: `timeout`, `retry`, and a spec per kind that has
/// defaults (`http:`), merged under each step's own.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// Time limit of one attempt of a step.
    pub timeout: Option<Dur>,
    /// Retry policy of every step.
    pub retry: Option<Retry>,
    /// Defaults of the kinds, each kind at most once.
    pub kinds: Vec<StepKind>,
}

/// Service level objective of a scenario.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Share of runs that must succeed, e.g. `99.9%`.
    pub availability: Percent,
    /// Share of runs that must finish within a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySlo>,
    /// Compliance window, e.g. `30d`.
    #[serde(default = "default_window")]
    pub window: Dur,
}

fn default_window() -> Dur {
    Dur(std::time::Duration::from_secs(30 * 86400))
}

/// Latency objective: `objective` of runs finish within `threshold`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySlo {
    pub threshold: Dur,
    pub objective: Percent,
}

/// A percentage written as `99.9%` or `0.999`, stored as a ratio in (0, 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(with = "String")]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not an untagged enum, so a bad value is reported at its own place.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a percentage such as 99.9% or a ratio such as 0.999")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Percent, E> {
                let invalid = || E::custom(format!("invalid percentage `{s}`: write e.g. 99.9%"));
                let pct = s.trim().strip_suffix('%').ok_or_else(invalid)?;
                let n: f64 = pct.trim().parse().map_err(|_| invalid())?;
                percent(n / 100.0)
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Percent, E> {
                percent(n)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Percent, E> {
                percent(n as f64)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Percent, E> {
                percent(n as f64)
            }
        }
        d.deserialize_any(V)
    }
}

/// A ratio strictly between 0 and 1 (NaN is not).
fn percent<E: serde::de::Error>(ratio: f64) -> Result<Percent, E> {
    if ratio > 0.0 && ratio < 1.0 {
        Ok(Percent(ratio))
    } else {
        Err(E::custom(format!(
            "percentage {}% is out of range{}a percentage is between 0% and 100%, both excluded",
            ratio * 100.0,
            crate::units::HINT_MARK
        )))
    }
}

/// Retry policy: how many attempts, how long between them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts, including the first (>= 1).
    pub attempts: u32,
    /// Wait before the second attempt.
    #[serde(default = "default_retry_interval")]
    pub interval: Dur,
    /// Multiplier applied to the wait after each attempt (1 = constant).
    #[serde(default = "default_backoff")]
    pub backoff: f64,
}

fn default_retry_interval() -> Dur {
    Dur(std::time::Duration::from_secs(1))
}

fn default_backoff() -> f64 {
    1.0
}

/// One step as written: a name, one kind key (`http:`, `redis:`, ...), and the common fields.
#[derive(Debug, Clone)]
pub struct Step {
    /// Unique within the scenario; the `step` label.
    pub name: String,
    /// The kind keys written, in order: exactly one is valid, which the loader checks.
    pub kinds: Vec<StepKind>,
    /// Values taken from the result for later steps: `name: <query>`.
    pub capture: IndexMap<String, Capture>,
    /// Checks on the result: `<query> [not] <predicate> <value>`.
    pub assert: Vec<String>,
    /// Time limit of one attempt.
    pub timeout: Option<Dur>,
    /// Retry policy of this step.
    pub retry: Option<Retry>,
}

/// A capture: a query string, or `{query, secret}` to redact the captured value.
#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    pub query: String,
    #[serde(default)]
    pub secret: bool,
}

impl<'de> Deserialize<'de> for Capture {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            query: String,
            #[serde(default)]
            secret: bool,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Capture;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a query string or a map {query, secret}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Capture, E> {
                Ok(Capture {
                    query: v.to_string(),
                    secret: false,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Capture, A::Error> {
                let full = Full::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                Ok(Capture {
                    query: full.query,
                    secret: full.secret,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Capture {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Capture".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A query (`jsonpath \"$.id\"`), or `{query, secret: true}` to redact the value",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"query": {"type": "string"}, "secret": {"type": "boolean"}},
                    "required": ["query"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl SecretSource {
    /// Human description for messages, never the value: `env PROBE_PASSWORD`.
    pub fn describe(&self) -> String {
        match (&self.env, &self.file) {
            (Some(e), _) => format!("env {e}"),
            (_, Some(f)) => format!("file {f}"),
            _ => "no source".to_string(),
        }
    }
}
