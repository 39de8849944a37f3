//! The per-scenario metric families: their order, names, types and help texts.

use super::*;

/// The per-scenario families, in exposition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Runs,
    Skipped,
    RunDuration,
    StepDuration,
    StepFailures,
    RunFailures,
    StepRetries,
    PhaseDuration,
    StepLatency,
    Success,
    LastRun,
    LastSuccess,
    CertExpiry,
    TlsVersion,
    Info,
}

impl Family {
    pub const ALL: [Family; 15] = [
        Family::Runs,
        Family::Skipped,
        Family::RunDuration,
        Family::StepDuration,
        Family::StepFailures,
        Family::RunFailures,
        Family::StepRetries,
        Family::PhaseDuration,
        Family::StepLatency,
        Family::Success,
        Family::LastRun,
        Family::LastSuccess,
        Family::CertExpiry,
        Family::TlsVersion,
        Family::Info,
    ];

    /// The name OpenMetrics gives the family: a counter's without `_total`.
    pub fn om_name(self) -> &'static str {
        let (name, kind, _) = self.meta();
        if kind == "counter" {
            name.strip_suffix("_total").unwrap_or(name)
        } else {
            name
        }
    }

    pub fn meta(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::Runs => (RUNS_TOTAL, "counter", "Scenario runs by outcome"),
            Family::Skipped => (
                RUNS_SKIPPED_TOTAL,
                "counter",
                "Runs not started because the previous run of the scenario was still going",
            ),
            Family::RunDuration => (
                RUN_DURATION_SECONDS,
                "histogram",
                "Duration of whole scenario runs (finally steps included)",
            ),
            Family::StepDuration => (
                STEP_DURATION_SECONDS,
                "histogram",
                "Duration of steps, retries included",
            ),
            Family::StepFailures => (STEP_FAILURES_TOTAL, "counter", "Failed steps by reason"),
            Family::RunFailures => (
                RUN_FAILURES_TOTAL,
                "counter",
                "Failed runs by the run's reason: the first failed step's, or the run's own \
                 (config, timeout, internal) when no step failed",
            ),
            Family::StepRetries => (
                STEP_RETRIES_TOTAL,
                "counter",
                "Step attempts beyond the first",
            ),
            Family::PhaseDuration => (
                PHASE_DURATION_SECONDS,
                "histogram",
                "Duration of phases within steps (connect, tls, first_byte, login, token, ...)",
            ),
            Family::StepLatency => (
                STEP_LATENCY_SECONDS,
                // A gauge with a `quantile` label, typed as what it is — a summary
                // (windowed quantiles plus cumulative _sum/_count) — since promtool rejects a
                // quantile label on a gauge. PromQL sees the same quantile series.
                "summary",
                "Step duration quantiles (hdrhistogram) over a sliding 5-minute window",
            ),
            Family::Success => (
                SCENARIO_SUCCESS,
                "gauge",
                "1 when the last run of the scenario succeeded, else 0",
            ),
            Family::LastRun => (
                LAST_RUN_TIMESTAMP_SECONDS,
                "gauge",
                "Unix time when the last run finished",
            ),
            Family::LastSuccess => (
                LAST_SUCCESS_TIMESTAMP_SECONDS,
                "gauge",
                "Unix time when the last successful run finished",
            ),
            Family::CertExpiry => (
                CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS,
                "gauge",
                "Unix time when the first certificate of the chain a step last saw expires",
            ),
            Family::TlsVersion => (
                TLS_VERSION_INFO,
                "gauge",
                "The TLS version the step's last handshake negotiated; always 1",
            ),
            Family::Info => (
                SCENARIO_INFO,
                "gauge",
                "A scheduled scenario: its file and run interval; always 1",
            ),
        }
    }
}
