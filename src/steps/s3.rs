//! The `s3` step. (Skeleton: the spec and execution are being written; see issues.)

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;

/// Query keywords a s3 step answers.
pub const QUERIES: &[&str] = &["duration"];

/// Outputs of a s3 step, besides its captures.
pub const OUTPUTS: &[&str] = &[];

/// Settings of a s3 step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {}

impl S3Spec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        vec![(String::new(), "the s3 step is not available in this build yet".into())]
    }
}

/// Runs one attempt.
pub async fn execute(_spec: &S3Spec, _ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    Err(StepError::new(Reason::Internal, "the s3 step is not available in this build yet"))
}
