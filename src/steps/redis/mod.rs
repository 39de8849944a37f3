//! The `redis` step. (Skeleton: the spec and execution are being written; see issues.)

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;

/// Query keywords a redis step answers.
pub const QUERIES: &[&str] = &["duration"];

/// Outputs of a redis step, besides its captures.
pub const OUTPUTS: &[&str] = &[];

/// Settings of a redis step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {}

impl RedisSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        vec![(String::new(), "the redis step is not available in this build yet".into())]
    }
}

/// Runs one attempt.
pub async fn execute(_spec: &RedisSpec, _ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    Err(StepError::new(Reason::Internal, "the redis step is not available in this build yet"))
}
