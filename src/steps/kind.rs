//! The contract every step kind fulfils: its spec (what a user writes under the kind's key), its
//! load-time checks, the query words and outputs it answers, and how one attempt runs.

use std::fmt::Debug;
use std::future::Future;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{StepContext, StepError};
use crate::assert::OwnQuery;
use crate::observation::Observation;
use crate::scenario::ranges::{Problems, Range};

/// A step kind, implemented by its spec type. `registry.rs` lists the kinds.
pub trait Kind:
    Serialize + DeserializeOwned + JsonSchema + Clone + Debug + Send + Sync + 'static
{
    /// The key that selects the kind in a step (`http`), and the `kind` metric label.
    const KEY: &'static str;
    /// What a step of this kind does, in a few words (schema and `--help`).
    const ABOUT: &'static str;
    /// Shared query words it answers: `status`, `header`, `body`, `jsonpath`, `regex`,
    /// `duration`, `phase`, `certificate`, and the words of [`Kind::OWN_QUERIES`].
    const QUERIES: &'static [&'static str];
    /// Query words only this kind has (`claim "sub"`, `reply 0`, `answers`).
    const OWN_QUERIES: &'static [OwnQuery] = &[];
    /// Names reachable as `steps.NAME.OUTPUT` besides the step's captures.
    const OUTPUTS: &'static [&'static str];
    /// A failed `status` assertion is an `http_status` failure, and a 4xx/5xx answer fails a
    /// step that does not assert on `status`.
    const HTTP_STATUS: bool = false;
    /// `defaults.<KEY>` exists and is merged under every step's spec by [`Kind::merged_over`].
    const HAS_DEFAULTS: bool = false;
    /// Ranged numbers of the spec, `(field under KEY, range)`, for the README's table.
    const RANGES: &'static [(&'static str, Range)] = &[];

    /// Load-time checks beyond types (missing or conflicting fields), on the spec with
    /// `defaults.<KEY>` merged in.
    fn validate(&self, problems: &mut Problems);

    /// Numbers outside [`Kind::RANGES`], on the spec as written (a step's or the defaults'), so
    /// each is reported where it is written.
    fn check_ranges(&self, _problems: &mut Problems) {}

    /// This spec with unset fields taken from `defaults.<KEY>` (only if [`Kind::HAS_DEFAULTS`]).
    fn merged_over(&self, _defaults: &Self) -> Self {
        self.clone()
    }

    /// Runs one attempt.
    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Observation, StepError>> + Send;
}
