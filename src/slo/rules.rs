//! The Prometheus rules themselves: recording rules for each SLI over every window, the
//! multi-window burn-rate alerts, and the alerts for a scenario that stopped running and a
//! prober that is down. Pure functions from a scenario to rule groups, serialized by serde.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cadence::{self, number, percent, prom_duration, BurnPlan, Severity, WINDOWS};
use super::names::{LAST_RUN_TIMESTAMP, RUNS_TOTAL, RUN_DURATION, SCENARIO_SUCCESS};

/// A rule file (`promtool check rules`), also the `spec` of a PrometheusRule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A recording rule (`record`) or an alerting rule (`alert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Alert names (stable: routes and silences refer to them).
pub mod alerts {
    pub const AVAILABILITY_BURN: &str = "FlowprobeAvailabilityBudgetBurn";
    pub const LATENCY_BURN: &str = "FlowprobeLatencyBudgetBurn";
    pub const NOT_RUNNING: &str = "FlowprobeScenarioNotRunning";
    pub const DOWN: &str = "FlowprobeDown";
    pub const FAILING_IN_LOCATIONS: &str = "FlowprobeScenarioFailingInLocations";
}

/// Recorded series: share of failed runs over `window`.
pub fn failure_ratio(window: Duration) -> String {
    format!(
        "scenario:flowprobe_runs_failure:ratio_rate{}",
        prom_duration(window)
    )
}

/// Recorded series: share of runs slower than the latency threshold over `window`.
pub fn slow_ratio(window: Duration) -> String {
    format!(
        "scenario:flowprobe_runs_slow:ratio_rate{}",
        prom_duration(window)
    )
}

/// Recorded constant: the availability objective, for dashboards (burn = ratio / (1 - this)).
pub const AVAILABILITY_OBJECTIVE: &str = "scenario:flowprobe_slo_availability:objective";
/// Recorded constant: the latency objective.
pub const LATENCY_OBJECTIVE: &str = "scenario:flowprobe_slo_latency:objective";

/// The `le` label value of the SLO threshold's histogram bucket, exactly as the prober's
/// exposition writes it (`2.5`, `0.3`, `1`).
pub fn le_label(threshold: Duration) -> String {
    crate::serve::metrics::seconds_label(threshold)
}

/// What the rules need to know about one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioSlo<'a> {
    pub name: &'a str,
    /// Static scenario labels, copied onto its alerts for routing.
    pub labels: &'a BTreeMap<String, String>,
    pub interval: Duration,
    pub jitter: Duration,
    pub timeout: Duration,
    pub slo: Option<&'a crate::scenario::model::Slo>,
}

/// One SLI (availability or latency) ready for rule generation.
struct Sli {
    kind: &'static str,
    alert: &'static str,
    objective: f64,
    /// Recorded series name for a window.
    series: fn(Duration) -> String,
    /// PromQL counting bad runs over a range, for the minimum-runs guard.
    bad_runs: Box<dyn Fn(&str) -> String>,
    /// Sentence stating the objective, for annotations.
    objective_text: String,
    /// What a bad run is, plural (`failed runs`, `runs slower than 2.5s`).
    bad_text: String,
}

fn selector(scenario: &str, extra: &str) -> String {
    format!("{{scenario=\"{scenario}\"{extra}}}")
}

/// `sum by (scenario) (FUNC(METRIC{...}[RANGE]))`
fn sum_over(func: &str, metric: &str, sel: &str, range: &str) -> String {
    format!("sum by (scenario) ({func}({metric}{sel}[{range}]))")
}

/// Recording rules, burn alerts and objectives of a scenario with an `slo:` block.
pub fn slo_group(s: &ScenarioSlo, slo: &crate::scenario::model::Slo) -> (Group, Vec<String>) {
    let name = s.name;
    let (mut rules, mut slis) = availability(name, slo);
    if let Some(l) = &slo.latency {
        let (records, sli) = latency(name, slo, l);
        rules.extend(records);
        slis.push(sli);
    }
    let mut warnings = Vec::new();
    for sli in &slis {
        let p = cadence::plan(
            &format!("{name} {}", sli.kind),
            sli.objective,
            slo.window.0,
            s.interval,
        );
        warnings.extend(p.warnings);
        for b in &p.burns {
            rules.push(burn_alert(s, sli, b, slo.window.0, &mut warnings));
        }
    }
    (
        Group {
            name: format!("flowprobe-slo-{name}"),
            rules,
        },
        warnings,
    )
}

/// The availability SLI of scenario `name`: its failure ratio over every window, its
/// objective.
fn availability(name: &str, slo: &crate::scenario::model::Slo) -> (Vec<Rule>, Vec<Sli>) {
    let all = selector(name, "");
    let failed = selector(name, ",outcome=\"failure\"");
    let mut rules = Vec::new();
    for w in WINDOWS {
        let r = prom_duration(w);
        rules.push(record(
            name,
            failure_ratio(w),
            format!(
                "{}\n/\n{}",
                sum_over("rate", RUNS_TOTAL, &failed, &r),
                sum_over("rate", RUNS_TOTAL, &all, &r)
            ),
        ));
    }
    rules.push(record(
        name,
        AVAILABILITY_OBJECTIVE.into(),
        format!("vector({})", number(slo.availability.0)),
    ));
    let bad_failed = move |range: &str| sum_over("increase", RUNS_TOTAL, &failed, range);
    let sli = Sli {
        kind: "availability",
        alert: alerts::AVAILABILITY_BURN,
        objective: slo.availability.0,
        series: failure_ratio,
        bad_runs: Box::new(bad_failed),
        objective_text: format!(
            "{} of runs of {name} succeed over {}",
            percent(slo.availability.0),
            prom_duration(slo.window.0)
        ),
        bad_text: "failed runs".into(),
    };
    (rules, vec![sli])
}

/// The latency SLI of scenario `name`: the share of runs slower than the threshold over every
/// window, its objective.
fn latency(
    name: &str,
    slo: &crate::scenario::model::Slo,
    l: &crate::scenario::model::LatencySlo,
) -> (Vec<Rule>, Sli) {
    let all = selector(name, "");
    let bucket = format!("{RUN_DURATION}_bucket");
    let count = format!("{RUN_DURATION}_count");
    let threshold_text = prom_duration(l.threshold.0);
    let within = selector(name, &format!(",le=\"{}\"", le_label(l.threshold.0)));
    let mut rules = Vec::new();
    for w in WINDOWS {
        let r = prom_duration(w);
        rules.push(record(
            name,
            slow_ratio(w),
            format!(
                "1 - (\n  {}\n  /\n  {}\n)",
                sum_over("rate", &bucket, &within, &r),
                sum_over("rate", &count, &all, &r)
            ),
        ));
    }
    rules.push(record(
        name,
        LATENCY_OBJECTIVE.into(),
        format!("vector({})", number(l.objective.0)),
    ));
    let bad_slow = move |range: &str| {
        format!(
            "(\n  {}\n  -\n  {}\n)",
            sum_over("increase", &count, &all, range),
            sum_over("increase", &bucket, &within, range)
        )
    };
    let sli = Sli {
        kind: "latency",
        alert: alerts::LATENCY_BURN,
        objective: l.objective.0,
        series: slow_ratio,
        bad_runs: Box::new(bad_slow),
        objective_text: format!(
            "{} of runs of {name} finish within {threshold_text} over {}",
            percent(l.objective.0),
            prom_duration(slo.window.0)
        ),
        bad_text: format!("runs slower than {threshold_text}"),
    };
    (rules, sli)
}

/// A recording rule of `scenario`. The static `scenario` label repeats what the expression
/// yields; it keeps rules of different scenarios apart (promtool flags same-name, same-label
/// rules as duplicates).
fn record(scenario: &str, name: String, expr: String) -> Rule {
    Rule {
        record: Some(name),
        alert: None,
        expr,
        for_: None,
        labels: BTreeMap::from([("scenario".to_string(), scenario.to_string())]),
        annotations: BTreeMap::new(),
    }
}

/// Alert labels: the scenario's static labels for routing, then ours (which win on a clash).
fn alert_labels(
    s: &ScenarioSlo,
    ours: &[(&str, String)],
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut labels = s.labels.clone();
    // Scenario names are never static label names (reserved), so this cannot clash.
    labels.insert("scenario".to_string(), s.name.to_string());
    for (k, v) in ours {
        if labels.insert(k.to_string(), v.clone()).is_some() {
            warnings.push(format!(
                "{}: scenario label `{k}` is replaced on alerts by flowprobe's own",
                s.name
            ));
        }
    }
    labels
}

fn burn_alert(
    s: &ScenarioSlo,
    sli: &Sli,
    b: &BurnPlan,
    window: Duration,
    warnings: &mut Vec<String>,
) -> Rule {
    let name = s.name;
    let (long, short) = (prom_duration(b.window.long), prom_duration(b.short));
    let sel = selector(name, "");
    let ratio = number(b.ratio);
    let expr = format!(
        "{long_series}{sel} > {ratio}\nand\n{short_series}{sel} > {ratio}\nand\n{guard} > {min}",
        long_series = (sli.series)(b.window.long),
        short_series = (sli.series)(b.short),
        guard = (sli.bad_runs)(&long),
        // Counters are extrapolated over the range: half a run of slack.
        min = b.failures_long as f64 - 0.5,
    );
    let severity = b.window.severity;
    let labels = alert_labels(
        s,
        &[
            ("severity", severity.as_str().to_string()),
            ("long_window", long.clone()),
            ("short_window", short.clone()),
        ],
        warnings,
    );
    let exhausted = Duration::from_secs_f64(window.as_secs_f64() / b.window.factor);
    let summary = format!(
        "{name}: {} error budget burning at {}x the sustainable rate ({})",
        sli.kind,
        b.window.factor,
        severity.as_str()
    );
    let description = format!(
        "Objective: {objective}. The share of {bad} is above {pct} over both the last {long} and \
         the last {short}: {burnt} of the {win} error budget burnt in {long}, all of it within {exh} \
         at this rate. At one run every {every} this fires on at least {n_long} {bad} in {long}, \
         {n_short} of them in the last {short}.",
        objective = sli.objective_text,
        bad = sli.bad_text,
        pct = percent(b.ratio),
        burnt = percent(b.budget_burnt),
        win = prom_duration(window),
        exh = prom_duration(exhausted),
        every = prom_duration(s.interval),
        n_long = b.failures_long,
        n_short = b.failures_short,
    );
    Rule {
        record: None,
        alert: Some(sli.alert.to_string()),
        expr,
        for_: None,
        labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            ("description".to_string(), description),
        ]),
    }
}

/// Rounds up to whole minutes: alert timings people can read.
fn whole_minutes(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().div_ceil(60).max(1) * 60)
}

/// The alert for a scenario whose runs stopped (scheduler stuck, scenario dropped from the
/// config): its last run is older than two intervals plus jitter and timeout, it made no run
/// in that time, or the prober exports nothing for it.
pub fn not_running_alert(s: &ScenarioSlo, warnings: &mut Vec<String>) -> Rule {
    let name = s.name;
    let sel = selector(name, "");
    let one_run = s.interval + s.jitter + s.timeout;
    let stale = whole_minutes(one_run + s.interval);
    let range = stale.max(Duration::from_secs(300));
    // Until its first run a freshly started prober has no increase: wait that long.
    let for_ = whole_minutes(one_run);
    let expr = format!(
        "time() - max by (scenario) ({LAST_RUN_TIMESTAMP}{sel}) > {}\nor\n{} == 0\nor\nabsent({RUNS_TOTAL}{sel})",
        stale.as_secs(),
        sum_over("increase", RUNS_TOTAL, &sel, &prom_duration(range)),
    );
    let labels = alert_labels(
        s,
        &[("severity", Severity::Ticket.as_str().into())],
        warnings,
    );
    Rule {
        record: None,
        alert: Some(alerts::NOT_RUNNING.into()),
        expr,
        for_: Some(prom_duration(for_)),
        labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), format!("{name} has stopped running")),
            (
                "description".to_string(),
                format!(
                    "flowprobe should run {name} every {} (timeout {}), but it has made no run \
                     for over {}, or the prober exports no runs for it. Its SLO alerts are blind \
                     until it runs again.",
                    prom_duration(s.interval),
                    prom_duration(s.timeout),
                    prom_duration(stale),
                ),
            ),
        ]),
    }
}

/// How many locations must fail a scenario at once before [`quorum_alert`] fires, and the label
/// (set with `serve --label`) that names a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    pub min_locations: u32,
    pub location_label: String,
}

/// The alert for a scenario whose last run failed in at least `min_locations` locations at once
/// (Grafana Synthetic Monitoring's and Checkly's "fails in N locations"): one location failing
/// is that location's network; several at once is the service. A location counts as failing
/// when any of its replicas' last run failed; the state must hold for about one run.
pub fn quorum_alert(s: &ScenarioSlo, q: &Quorum, warnings: &mut Vec<String>) -> Rule {
    let name = s.name;
    let loc = &q.location_label;
    let sel = selector(name, "");
    let expr = format!(
        "count by (scenario) (min by (scenario, {loc}) ({SCENARIO_SUCCESS}{sel}) == 0) >= {}",
        q.min_locations
    );
    let for_ = whole_minutes(s.interval + s.jitter + s.timeout);
    let labels = alert_labels(s, &[("severity", Severity::Page.as_str().into())], warnings);
    Rule {
        record: None,
        alert: Some(alerts::FAILING_IN_LOCATIONS.into()),
        expr,
        for_: Some(prom_duration(for_)),
        labels,
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!("{name} is failing in {{{{ $value }}}} locations at once"),
            ),
            (
                "description".to_string(),
                format!(
                    "The last run of {name} failed in at least {} locations (by the `{loc}` \
                     label) for {}: not one location's network but the service itself. See \
                     flowprobe_step_failures_total for the failing step and reason.",
                    q.min_locations,
                    prom_duration(for_),
                ),
            ),
        ]),
    }
}

/// The alert for a prober Prometheus cannot scrape.
pub fn down_alert(job: &str) -> Rule {
    Rule {
        record: None,
        alert: Some(alerts::DOWN.into()),
        expr: format!("up{{job=\"{job}\"}} == 0\nor\nabsent(up{{job=\"{job}\"}})"),
        for_: Some("5m".into()),
        labels: BTreeMap::from([("severity".to_string(), Severity::Page.as_str().into())]),
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!("flowprobe (job {job}) is down"),
            ),
            (
                "description".to_string(),
                format!(
                    "Prometheus has not scraped the flowprobe job `{job}` for 5m. No scenario is \
                     being probed and every flowprobe SLO alert is blind."
                ),
            ),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_label_matches_the_prometheus_text_encoder() {
        assert_eq!(le_label(Duration::from_millis(2500)), "2.5");
        assert_eq!(le_label(Duration::from_millis(300)), "0.3");
        assert_eq!(le_label(Duration::from_secs(1)), "1.0");
        assert_eq!(le_label(Duration::from_millis(1)), "0.001");
    }

    #[test]
    fn recorded_names_follow_the_level_metric_operation_convention() {
        assert_eq!(
            failure_ratio(Duration::from_secs(300)),
            "scenario:flowprobe_runs_failure:ratio_rate5m"
        );
        assert_eq!(
            slow_ratio(Duration::from_secs(3 * 86400)),
            "scenario:flowprobe_runs_slow:ratio_rate3d"
        );
    }
}
