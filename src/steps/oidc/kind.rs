//! The oidc step as a [`Kind`]: its key, query words (`claim "sub"`, `token expires_in`),
//! outputs and numeric ranges.

use super::OidcSpec;
use crate::assert::{OwnQuery, QueryArg, ARG};
use crate::observation::Observation;
use crate::scenario::ranges::{Problems, Range, DAY, HOUR};
use crate::steps::{Kind, StepContext, StepError};

pub const CLOCK_SKEW: Range = Range::Dur(std::time::Duration::ZERO, HOUR);
pub const JWKS_CACHE_TTL: Range = Range::Dur(std::time::Duration::ZERO, DAY);
pub const MAX_HOPS: Range = Range::Int(1, 100);

impl Kind for OidcSpec {
    const KEY: &'static str = "oidc";
    const ABOUT: &'static str = "An OpenID Connect login or token request.";
    /// `jsonpath` reads the userinfo answer.
    const QUERIES: &'static [&'static str] = &["duration", "phase", "claim", "token", "jsonpath"];
    const OWN_QUERIES: &'static [OwnQuery] = &[
        OwnQuery {
            word: "claim",
            arg: QueryArg::Quoted("claim name"),
            reads: &["claims", ARG],
            seconds: false,
        },
        OwnQuery {
            word: "token",
            arg: QueryArg::Word("expires_in"),
            reads: &["expires_in"],
            seconds: true,
        },
    ];
    /// `claims`, `access_claims` and `userinfo` are objects reached by path
    /// (`steps.login.claims.sub`).
    const OUTPUTS: &'static [&'static str] = &[
        "access_token",
        "id_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "scope",
        "claims",
        "access_claims",
        "userinfo",
    ];
    const RANGES: &'static [(&'static str, Range)] = &[
        ("clock_skew", CLOCK_SKEW),
        ("jwks_cache_ttl", JWKS_CACHE_TTL),
        ("max_hops", MAX_HOPS),
    ];

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn check_ranges(&self, problems: &mut Problems) {
        problems.dur("clock_skew", self.clock_skew, CLOCK_SKEW);
        problems.dur("jwks_cache_ttl", self.jwks_cache_ttl, JWKS_CACHE_TTL);
        problems.int("max_hops", self.max_hops.map(i64::from), MAX_HOPS);
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<Observation, StepError>> + Send {
        super::execute(self, ctx)
    }
}
