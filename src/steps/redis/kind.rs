//! The redis step as a [`Kind`]: its key, query words (`reply N`), outputs and numeric ranges.

use super::{RedisArg, RedisSpec};
use crate::assert::{OwnQuery, QueryArg, ARG};
use crate::observation::Observation;
use crate::scenario::ranges::{Problems, Range, HOUR, MS};
use crate::steps::{Kind, StepContext, StepError};

/// Highest command index `reply N` may name.
pub const MAX_REPLY_INDEX: usize = 999;
pub const REDIS_DB: Range = Range::Int(0, 65_535);
pub const REDIS_TIMEOUT: Range = Range::Dur(MS, HOUR);
pub const REDIS_TTL: Range = Range::Dur(MS, std::time::Duration::from_secs(365 * 86_400));
/// Floats sent as command arguments: finite, within what Redis reads as a double.
pub const REDIS_NUMBER: Range = Range::Float(-1e300, 1e300);

impl Kind for RedisSpec {
    const KEY: &'static str = "redis";
    const ABOUT: &'static str = "A Redis round-trip or commands.";
    const QUERIES: &'static [&'static str] = &["duration", "phase", "reply"];
    const OWN_QUERIES: &'static [OwnQuery] = &[OwnQuery {
        word: "reply",
        arg: QueryArg::Index {
            max: MAX_REPLY_INDEX,
        },
        reads: &["replies", ARG],
        seconds: false,
    }];
    /// `replies` (one per command, in order), `key` and `ttl` (seconds left, from PTTL) of the
    /// round-trip, `node` (`host:port` that holds the round-trip's key: the node, the slot's
    /// primary in a cluster, the primary with Sentinel), `slot` (cluster) and `replicas` (the
    /// replicas read with `read_from: replica`).
    const OUTPUTS: &'static [&'static str] = &["replies", "key", "ttl", "node", "slot", "replicas"];
    const RANGES: &'static [(&'static str, Range)] = &[
        ("db", REDIS_DB),
        ("connect_timeout", REDIS_TIMEOUT),
        ("command_timeout", REDIS_TIMEOUT),
        ("roundtrip.ttl", REDIS_TTL),
        (
            "roundtrip.size",
            Range::Size(1, super::spec::MAX_VALUE_SIZE),
        ),
        ("commands (numbers)", REDIS_NUMBER),
    ];

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn check_ranges(&self, problems: &mut Problems) {
        // A negative db is the redis step's own error.
        if self.db.is_some_and(|db| db >= 0) {
            problems.int("db", self.db, REDIS_DB);
        }
        problems.dur_max("connect_timeout", self.connect_timeout, REDIS_TIMEOUT);
        problems.dur_max("command_timeout", self.command_timeout, REDIS_TIMEOUT);
        if let Some(rt) = &self.roundtrip {
            problems.dur_max("roundtrip.ttl", rt.ttl, REDIS_TTL);
        }
        for (i, command) in self.commands.iter().enumerate() {
            for (j, arg) in command.iter().enumerate() {
                if let RedisArg::Float(f) = arg {
                    problems.float(&format!("commands[{i}][{j}]"), Some(*f), REDIS_NUMBER);
                }
            }
        }
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<Observation, StepError>> + Send {
        super::execute(self, ctx)
    }
}
