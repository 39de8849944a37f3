//! The `oidc` step. (Skeleton: the spec and execution are being written; see issues.)

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;

/// Query keywords a oidc step answers.
pub const QUERIES: &[&str] = &["duration"];

/// Outputs of a oidc step, besides its captures.
pub const OUTPUTS: &[&str] = &[];

/// Settings of a oidc step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {}

impl OidcSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        vec![(String::new(), "the oidc step is not available in this build yet".into())]
    }
}

/// Runs one attempt.
pub async fn execute(_spec: &OidcSpec, _ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    Err(StepError::new(Reason::Internal, "the oidc step is not available in this build yet"))
}
