//! The postgres step as a [`Kind`]: its key, query words (`rows`), outputs and numeric ranges.

use super::PostgresSpec;
use crate::assert::OwnQuery;
use crate::observation::Observation;
use crate::scenario::ranges::{Problems, Range, HOUR, MS};
use crate::steps::{Kind, StepContext, StepError};

pub const PG_TIMEOUT: Range = Range::Dur(MS, HOUR);
pub const PG_SWEEP: Range = Range::Dur(
    std::time::Duration::from_secs(60),
    std::time::Duration::from_secs(3650 * 86_400),
);

impl Kind for PostgresSpec {
    const KEY: &'static str = "postgres";
    const ABOUT: &'static str = "A PostgreSQL query, or a restore drill of a SQL dump.";
    const QUERIES: &'static [&'static str] =
        &["rows", "body", "jsonpath", "regex", "duration", "phase"];
    const OWN_QUERIES: &'static [OwnQuery] = &[OwnQuery::output("rows", &["rows"])];
    /// `rows` (how many the query returned), `database` (the scratch database of a restore),
    /// `statements` (how many statements the restore applied).
    const OUTPUTS: &'static [&'static str] = &["rows", "database", "statements"];
    const RANGES: &'static [(&'static str, Range)] = &[
        ("connect_timeout", PG_TIMEOUT),
        ("restore.sweep_older_than", PG_SWEEP),
    ];

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn check_ranges(&self, problems: &mut Problems) {
        problems.dur("connect_timeout", self.connect_timeout, PG_TIMEOUT);
        if let Some(r) = &self.restore {
            problems.dur("restore.sweep_older_than", r.sweep_older_than, PG_SWEEP);
        }
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<Observation, StepError>> + Send {
        super::execute(self, ctx)
    }
}
