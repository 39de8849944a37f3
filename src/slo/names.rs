//! The prober's metric names the rules query (DESIGN's metrics table). Kept here until
//! `crate::metrics` exports them as consts; a test compares these with a real scrape.

/// Counter: scenario, outcome=success|failure.
pub const RUNS_TOTAL: &str = "flowprobe_runs_total";
/// Histogram of whole-run durations: scenario.
pub const RUN_DURATION: &str = "flowprobe_run_duration_seconds";
/// Gauge: unix time of the scenario's last run.
pub const LAST_RUN_TIMESTAMP: &str = "flowprobe_last_run_timestamp_seconds";
