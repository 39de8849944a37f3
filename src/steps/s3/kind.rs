//! The s3 step as a [`Kind`]: its key, query words (`size`, `etag`, `newest.age`, ...),
//! outputs and numeric ranges.

use super::S3Spec;
use crate::assert::OwnQuery;
use crate::observation::Observation;
use crate::scenario::ranges::{Problems, Range, GIB, MINUTE, TIB};
use crate::steps::http::MAX_BODY;
use crate::steps::{Kind, StepContext, StepError};

pub const S3_OBJECT_SIZE: Range = Range::Size(0, 5 * TIB);
pub const MULTIPART_THRESHOLD: Range = Range::Size(0, 5 * GIB);
/// The s3 step itself requires at least 1m.
pub const SWEEP_OLDER_THAN: Range =
    Range::Dur(MINUTE, std::time::Duration::from_secs(3650 * 86_400));

impl Kind for S3Spec {
    const KEY: &'static str = "s3";
    const ABOUT: &'static str = "An object-storage operation (S3 API).";
    const QUERIES: &'static [&'static str] = &[
        "status",
        "size",
        "etag",
        "checksum",
        "age",
        "count",
        "newest.age",
        "newest.size",
        "newest.key",
        "duration",
        "phase",
        "body",
        "jsonpath",
        "regex",
    ];
    const OWN_QUERIES: &'static [OwnQuery] = &[
        OwnQuery::output("size", &["size"]),
        OwnQuery::output("etag", &["etag"]),
        OwnQuery::output("checksum", &["checksum"]),
        OwnQuery::seconds("age", &["age"]),
        OwnQuery::output("count", &["count"]),
        OwnQuery::seconds("newest.age", &["newest", "age"]),
        OwnQuery::output("newest.size", &["newest", "size"]),
        OwnQuery::output("newest.key", &["newest", "key"]),
    ];
    /// `newest` is an object: `newest.key`, `newest.size`, `newest.age`; `file` is the scratch
    /// file of a `get` with `keep: true`.
    const OUTPUTS: &'static [&'static str] = &[
        "status",
        "key",
        "size",
        "etag",
        "checksum",
        "age",
        "content_type",
        "count",
        "newest",
        "parts",
        "swept",
        "file",
    ];
    const RANGES: &'static [(&'static str, Range)] = &[
        ("put.size", S3_OBJECT_SIZE),
        ("put.multipart_threshold", MULTIPART_THRESHOLD),
        (
            "put.part_size",
            Range::Size(super::MIN_PART_SIZE, super::MAX_PART_SIZE),
        ),
        ("get.max_body", MAX_BODY),
        ("presign.size", Range::Size(0, super::MAX_PRESIGNED_SIZE)),
        (
            "presign.expires_in",
            Range::Dur(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(7 * 86_400),
            ),
        ),
        ("sweep.older_than", SWEEP_OLDER_THAN),
    ];

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn check_ranges(&self, problems: &mut Problems) {
        if let Some(p) = &self.put {
            problems.size("put.size", p.size, S3_OBJECT_SIZE);
            problems.size(
                "put.multipart_threshold",
                p.multipart_threshold,
                MULTIPART_THRESHOLD,
            );
        }
        if let Some(g) = &self.get {
            problems.size("get.max_body", g.max_body, MAX_BODY);
        }
        if let Some(sw) = &self.sweep {
            problems.dur_max("sweep.older_than", Some(sw.older_than), SWEEP_OLDER_THAN);
        }
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<Observation, StepError>> + Send {
        super::execute(self, ctx)
    }
}
