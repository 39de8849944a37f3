//! The OTLP span exporter's counts as counters on `/metrics`: spans exported, failed and
//! dropped, and failed export requests, read from the exporter at each scrape.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, Opts};

use super::{reg_err, MetricsError};
use crate::otlp::{ExportCounts, Recorder};

pub const OTLP_SPANS_TOTAL: &str = "flowprobe_otlp_spans_total";
pub const OTLP_EXPORT_FAILURES_TOTAL: &str = "flowprobe_otlp_export_failures_total";

/// Reads the exporter's totals when the registry is gathered.
pub(super) struct OtlpCollector {
    recorder: Recorder,
    spans: IntCounterVec,
    failures: IntCounter,
}

impl OtlpCollector {
    pub fn new(recorder: Recorder) -> Result<OtlpCollector, MetricsError> {
        let spans = IntCounterVec::new(
            Opts::new(
                OTLP_SPANS_TOTAL,
                "Spans of finished runs by what became of them: exported (the receiver took \
                 them), failed (their export request failed), dropped (the queue was full)",
            ),
            &["result"],
        )
        .map_err(reg_err)?;
        let failures = IntCounter::new(
            OTLP_EXPORT_FAILURES_TOTAL,
            "OTLP export requests that failed (refused, no answer in time, a non-2xx status)",
        )
        .map_err(reg_err)?;
        Ok(OtlpCollector {
            recorder,
            spans,
            failures,
        })
    }

    /// Brings the counters up to the exporter's totals (which only go up).
    fn refresh(&self, c: &ExportCounts) {
        for (result, total) in [
            ("exported", c.exported_spans),
            ("failed", c.failed_spans),
            ("dropped", c.dropped_spans),
        ] {
            let counter = self.spans.with_label_values(&[result]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.failures
            .inc_by(c.failed_exports.saturating_sub(self.failures.get()));
    }
}

impl Collector for OtlpCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut d = self.spans.desc();
        d.extend(self.failures.desc());
        d
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh(&self.recorder.counts());
        let mut families = self.spans.collect();
        families.extend(self.failures.collect());
        families
    }
}
