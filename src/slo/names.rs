//! The prober's metric names the rules query: `crate::serve::metrics`' consts under the names the rule
//! code uses, so a renamed metric cannot leave the rules behind.

/// Gauge: unix time of the scenario's last run.
pub use crate::serve::metrics::LAST_RUN_TIMESTAMP_SECONDS as LAST_RUN_TIMESTAMP;
/// Counter: scenario, outcome=success|failure.
pub use crate::serve::metrics::RUNS_TOTAL;
/// Histogram of whole-run durations: scenario.
pub use crate::serve::metrics::RUN_DURATION_SECONDS as RUN_DURATION;
/// Gauge: 1 when the scenario's last run passed, 0 when it failed.
pub use crate::serve::metrics::SCENARIO_SUCCESS;
