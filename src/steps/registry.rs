//! The registry of step kinds: one line per kind at the bottom of this file. Everything else
//! that depends on the set of kinds (the `StepKind` enum, reading a step's kind key, the
//! schema, query words, defaults) is generated from that list.

use std::sync::OnceLock;

use serde::de::MapAccess;

use super::kind::Kind;
use super::{StepContext, StepError};
use crate::assert::OwnQuery;
use crate::observation::Observation;
use crate::scenario::ranges::{Problems, Range};

macro_rules! registry {
    ($($variant:ident => $spec:ty),* $(,)?) => {
        /// A step's kind with its settings (defaults already merged in).
        // Built once per step at load time: the variants' size difference costs nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone)]
        pub enum StepKind {
            $($variant($spec),)*
        }

        /// Keys that select a step's kind, in the order they are documented.
        pub const KINDS: &[&str] = &[$(<$spec as Kind>::KEY,)*];

        impl StepKind {
            /// The kind's key; also the `kind` metric label.
            pub fn name(&self) -> &'static str {
                match self { $(StepKind::$variant(_) => <$spec as Kind>::KEY,)* }
            }

            /// Shared query words and own query words this kind answers.
            pub fn queries(&self) -> &'static [&'static str] {
                match self { $(StepKind::$variant(_) => <$spec as Kind>::QUERIES,)* }
            }

            /// Names reachable as `steps.NAME.OUTPUT` besides the step's captures.
            pub fn outputs(&self) -> &'static [&'static str] {
                match self { $(StepKind::$variant(_) => <$spec as Kind>::OUTPUTS,)* }
            }

            /// See [`Kind::HTTP_STATUS`].
            pub fn has_http_status(&self) -> bool {
                match self { $(StepKind::$variant(_) => <$spec as Kind>::HTTP_STATUS,)* }
            }

            /// The step's settings as JSON, to find the `${{ }}` templates it uses.
            pub fn spec_json(&self) -> serde_json::Value {
                let v = match self { $(StepKind::$variant(s) => serde_json::to_value(s),)* };
                v.unwrap_or(serde_json::Value::Null)
            }

            /// See [`Kind::validate`].
            pub fn validate(&self, problems: &mut Problems) {
                match self { $(StepKind::$variant(s) => s.validate(problems),)* }
            }

            /// See [`Kind::check_ranges`].
            pub fn check_ranges(&self, problems: &mut Problems) {
                match self { $(StepKind::$variant(s) => s.check_ranges(problems),)* }
            }

            /// This kind with `defaults.<key>` merged under it, when the defaults have one.
            pub fn merged_over(self, defaults: &[StepKind]) -> StepKind {
                match self {
                    $(StepKind::$variant(s) => {
                        let d = defaults.iter().find_map(|d| match d {
                            StepKind::$variant(d) => Some(d),
                            #[allow(unreachable_patterns)]
                            _ => None,
                        });
                        StepKind::$variant(d.map_or_else(|| s.clone(), |d| s.merged_over(d)))
                    })*
                }
            }

            /// Runs one attempt.
            pub async fn execute(&self, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
                match self { $(StepKind::$variant(s) => s.execute(ctx).await,)* }
            }

            /// Reads the value of map key `key` as that kind's spec; `Ok(None)` when `key` names
            /// no kind (the value is then left unread).
            pub fn read_value<'de, A: MapAccess<'de>>(
                key: &str,
                map: &mut A,
            ) -> Result<Option<StepKind>, A::Error> {
                $(if key == <$spec as Kind>::KEY {
                    return Ok(Some(StepKind::$variant(map.next_value()?)));
                })*
                Ok(None)
            }

            /// True when `defaults.<key>` is allowed for kind `key`.
            pub fn has_defaults(key: &str) -> bool {
                $(if key == <$spec as Kind>::KEY {
                    return <$spec as Kind>::HAS_DEFAULTS;
                })*
                false
            }
        }

        /// `(key, description, schema)` of every kind, for the scenario's JSON Schema.
        pub fn schemas(
            generator: &mut schemars::SchemaGenerator,
        ) -> Vec<(&'static str, &'static str, bool, schemars::Schema)> {
            vec![$((
                <$spec as Kind>::KEY,
                <$spec as Kind>::ABOUT,
                <$spec as Kind>::HAS_DEFAULTS,
                generator.subschema_for::<$spec>(),
            ),)*]
        }

        /// Every kind's ranged fields as `(kind.field, range)`, for the README's table.
        pub fn ranges() -> Vec<(String, Range)> {
            let mut out = Vec::new();
            $(for (field, range) in <$spec as Kind>::RANGES {
                out.push((format!("{}.{field}", <$spec as Kind>::KEY), *range));
            })*
            out
        }

        /// Every kind's own query words, for the assertion grammar.
        pub fn own_queries() -> &'static [&'static OwnQuery] {
            static ALL: OnceLock<Vec<&'static OwnQuery>> = OnceLock::new();
            ALL.get_or_init(|| {
                let mut all: Vec<&'static OwnQuery> = Vec::new();
                $(for q in <$spec as Kind>::OWN_QUERIES {
                    if !all.iter().any(|known| known.word == q.word) {
                        all.push(q);
                    }
                })*
                all
            })
        }
    };
}

registry! {
    Http => super::http::HttpSpec,
    Oidc => super::oidc::OidcSpec,
    S3 => super::s3::S3Spec,
    Redis => super::redis::RedisSpec,
    Dns => super::dns::DnsSpec,
    Tcp => super::tcp::TcpSpec,
    Postgres => super::postgres::PostgresSpec,
}
