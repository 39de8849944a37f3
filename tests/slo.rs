//! `flowprobe slo` end to end: the binary generates rules from a scenario, `promtool check rules`
//! accepts them, and `promtool test rules` replays synthetic series through them: a full outage
//! pages within minutes, one failed run does not, a slow burn opens a ticket, stopped runs and a
//! dead prober alert, slow runs fire the latency alert.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// One run every 30s, the promtool series step below: one sample per run.
const SCENARIO: &str = r#"
name: checkout
labels: {team: payments}
schedule: {interval: 30s, jitter: 5s, timeout: 45s}
steps:
  - name: home
    http: {url: "http://127.0.0.1:9/"}
slo:
  availability: 99.9%
  latency: {threshold: 2.5s, objective: 99%}
  window: 30d
"#;

fn promtool() -> PathBuf {
    support::find_program("promtool").expect("promtool is installed (scripts/setup.sh)")
}

fn flowprobe(args: &[&str]) -> std::process::Output {
    Command::new(support::flowprobe_bin())
        .args(args)
        .output()
        .expect("run flowprobe")
}

/// Writes the scenario, runs `flowprobe slo` on it, returns (dir, rules path, stderr).
fn generate(scenario: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("checkout.yaml");
    std::fs::write(&sc, scenario).unwrap();
    let rules = dir.path().join("rules.yaml");
    let mut args = vec!["slo", sc.to_str().unwrap(), "-o", rules.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = flowprobe(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "flowprobe slo failed: {stderr}");
    (dir, rules, stderr)
}

fn run_promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn rules_of(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// The generated alert rule named `alert` whose labels include `labels`.
fn alert_rule<'a>(rules: &'a Value, alert: &str, labels: &[(&str, &str)]) -> &'a Value {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .find(|r| r["alert"] == alert && labels.iter().all(|(k, v)| r["labels"][*k] == *v))
        .unwrap_or_else(|| panic!("no {alert} rule with {labels:?}"))
}

/// What promtool should see firing: the rule's labels (plus the series' scenario label) and its
/// annotations, copied from the generated rule (their wording is checked elsewhere).
fn firing(rules: &Value, alert: &str, labels: &[(&str, &str)], series: &[(&str, &str)]) -> Value {
    let rule = alert_rule(rules, alert, labels);
    let mut exp = rule["labels"].clone();
    for (k, v) in series {
        exp[*k] = json!(v);
    }
    json!({"exp_labels": exp, "exp_annotations": rule["annotations"].clone()})
}

fn burn(rules: &Value, alert: &str, long: &str) -> Value {
    firing(
        rules,
        alert,
        &[("long_window", long)],
        &[("scenario", "checkout")],
    )
}

/// promtool's explicit value list for a counter of the runs (one per 30s sample) for which
/// `counts` says yes.
fn counter(runs: usize, counts: impl Fn(usize) -> bool) -> String {
    let mut total = 0u64;
    let mut values = vec!["0".to_string()];
    for i in 0..runs {
        if counts(i) {
            total += 1;
        }
        values.push(total.to_string());
    }
    values.join(" ")
}

fn runs_series(runs: usize, failed: impl Fn(usize) -> bool + Copy) -> Vec<Value> {
    vec![
        json!({"series": "flowprobe_runs_total{scenario=\"checkout\",outcome=\"success\"}",
               "values": counter(runs, |i| !failed(i))}),
        json!({"series": "flowprobe_runs_total{scenario=\"checkout\",outcome=\"failure\"}",
               "values": counter(runs, failed)}),
    ]
}

/// Runs `promtool test rules` with these test cases against the generated rules.
fn promtool_test(dir: &Path, tests: Vec<Value>) -> String {
    let doc = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": tests,
    });
    std::fs::write(dir.join("test.yaml"), serde_yaml::to_string(&doc).unwrap()).unwrap();
    run_promtool(&["test", "rules", "test.yaml"], dir)
}

fn case(series: Vec<Value>, alerts: Vec<(&str, &str, Vec<Value>)>) -> Value {
    json!({
        "interval": "30s",
        "input_series": series,
        "alert_rule_test": alerts
            .into_iter()
            .map(|(at, name, exp)| json!({"eval_time": at, "alertname": name, "exp_alerts": exp}))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn generated_rules_pass_promtool_check() {
    let (dir, _rules, stderr) = generate(SCENARIO, &[]);
    assert!(!stderr.contains("warning"), "unexpected warnings: {stderr}");
    let out = run_promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn rules_of_several_scenarios_pass_promtool_check() {
    // Same labels, same objectives: promtool must still see no duplicate rule.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), SCENARIO).unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        SCENARIO.replace("name: checkout", "name: checkout-eu"),
    )
    .unwrap();
    let rules = dir.path().join("rules.yaml");
    let out = flowprobe(&[
        "slo",
        dir.path().join("a.yaml").to_str().unwrap(),
        dir.path().join("b.yaml").to_str().unwrap(),
        "-o",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = run_promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(text.contains("SUCCESS"), "{text}");
    let groups: Vec<String> = rules_of(&rules)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        groups,
        [
            "flowprobe-prober",
            "flowprobe-slo-checkout",
            "flowprobe-slo-checkout-eu"
        ]
    );
}

#[test]
fn full_outage_pages_within_minutes_and_tickets_follow() {
    let (dir, path, _) = generate(SCENARIO, &[]);
    let rules = rules_of(&path);
    const A: &str = "FlowprobeAvailabilityBudgetBurn";
    // Healthy for an hour, then every run fails.
    let series = runs_series(140, |i| i >= 120);
    // At 100% errors the 1h/5m page needs 14.4 * 0.1% of an hour (52s) and its 2-failure guard
    // (2 runs = 1m); the 6h/30m one needs 5 failed runs (2.5m); the tickets 9 (4.5m). Allow one
    // rule evaluation (1m) on top.
    let alerts = vec![
        ("60m", A, vec![]),
        ("63m", A, vec![burn(&rules, A, "1h"), burn(&rules, A, "6h")]),
        (
            "66m",
            A,
            vec![
                burn(&rules, A, "1h"),
                burn(&rules, A, "6h"),
                burn(&rules, A, "1d"),
                burn(&rules, A, "3d"),
            ],
        ),
    ];
    promtool_test(dir.path(), vec![case(series, alerts)]);
}

#[test]
fn a_single_failed_run_at_30s_does_not_page() {
    let (dir, _, _) = generate(SCENARIO, &[]);
    const A: &str = "FlowprobeAvailabilityBudgetBurn";
    let series = runs_series(240, |i| i == 100);
    let alerts = ["50m", "51m", "52m", "55m", "60m", "90m", "119m"]
        .into_iter()
        .map(|at| (at, A, vec![]))
        .collect();
    promtool_test(dir.path(), vec![case(series, alerts)]);
}

#[test]
fn a_slow_burn_opens_tickets_but_does_not_page() {
    let (dir, path, _) = generate(SCENARIO, &[]);
    let rules = rules_of(&path);
    const A: &str = "FlowprobeAvailabilityBudgetBurn";
    // One run in 200 fails (0.5%): 5x the budget, above the 3x and 1x ticket rates, below the
    // 6x and 14.4x page rates. 20 hours of runs.
    let series = runs_series(2400, |i| i % 200 == 199);
    let alerts = vec![
        ("3h", A, vec![]),
        ("20h", A, vec![burn(&rules, A, "1d"), burn(&rules, A, "3d")]),
    ];
    promtool_test(dir.path(), vec![case(series, alerts)]);
}

#[test]
fn stopped_runs_fire_the_not_running_alert() {
    let (dir, path, _) = generate(SCENARIO, &[]);
    let rules = rules_of(&path);
    const N: &str = "FlowprobeScenarioNotRunning";
    let not_running = firing(&rules, N, &[], &[("scenario", "checkout")]);
    // 60 runs (30m), then the scheduler stops: counters and last-run time stay where they were.
    let mut stuck = runs_series(100, |_| false);
    stuck[0]["values"] = json!(counter(100, |i| i < 60));
    stuck.push(json!({
        "series": "flowprobe_last_run_timestamp_seconds{scenario=\"checkout\"}",
        "values": "0+30x60 1800+0x40",
    }));
    // The stale threshold is 2m (2 intervals + jitter + timeout), then 2m `for:`.
    let stuck_case = case(
        stuck,
        vec![
            ("31m", N, vec![]),
            ("32m", N, vec![]),
            ("36m", N, vec![not_running.clone()]),
        ],
    );
    // 60 runs, then the scenario vanishes from the prober's metrics (dropped from its config).
    let gone = vec![
        json!({"series": "flowprobe_runs_total{scenario=\"other\",outcome=\"success\"}",
               "values": "0+1x100"}),
        json!({"series": "flowprobe_runs_total{scenario=\"checkout\",outcome=\"success\"}",
               "values": "0+1x60"}),
    ];
    let mut absent = firing(&rules, N, &[], &[]);
    absent["exp_labels"]["scenario"] = json!("checkout");
    let gone_case = case(gone, vec![("30m", N, vec![]), ("42m", N, vec![absent])]);
    promtool_test(dir.path(), vec![stuck_case, gone_case]);
}

#[test]
fn runs_slower_than_the_threshold_fire_the_latency_alert() {
    let (dir, path, _) = generate(SCENARIO, &[]);
    let rules = rules_of(&path);
    const L: &str = "FlowprobeLatencyBudgetBurn";
    // Every run succeeds; from 30m on each one takes longer than 2.5s.
    let mut series = runs_series(120, |_| false);
    series.push(json!({
        "series": "flowprobe_run_duration_seconds_bucket{scenario=\"checkout\",le=\"2.5\"}",
        "values": counter(120, |i| i < 60),
    }));
    series.push(json!({
        "series": "flowprobe_run_duration_seconds_bucket{scenario=\"checkout\",le=\"+Inf\"}",
        "values": counter(120, |_| true),
    }));
    series.push(json!({
        "series": "flowprobe_run_duration_seconds_count{scenario=\"checkout\"}",
        "values": counter(120, |_| true),
    }));
    // 99% within 2.5s: the 1h/5m page needs 14.4% of an hour's 120 runs slow, 18 runs (9m).
    let alerts = vec![
        ("30m", L, vec![]),
        ("35m", L, vec![]),
        ("41m", L, vec![burn(&rules, L, "1h")]),
    ];
    // And the same runs do not touch the availability SLO.
    let avail = vec![("41m", "FlowprobeAvailabilityBudgetBurn", vec![])];
    promtool_test(
        dir.path(),
        vec![case(series, alerts.into_iter().chain(avail).collect())],
    );
}

#[test]
fn a_dead_prober_fires_the_down_alert() {
    let (dir, path, _) = generate(SCENARIO, &["--job", "probes"]);
    let rules = rules_of(&path);
    const D: &str = "FlowprobeDown";
    let down = firing(
        &rules,
        D,
        &[],
        &[("job", "probes"), ("instance", "10.0.0.1:9478")],
    );
    let series = vec![json!({
        "series": "up{job=\"probes\",instance=\"10.0.0.1:9478\"}",
        "values": "1+0x20 0+0x40",
    })];
    // Down from 10m; `for: 5m`.
    let c = case(
        series,
        vec![
            ("10m", D, vec![]),
            ("14m", D, vec![]),
            ("16m", D, vec![down]),
        ],
    );
    promtool_test(dir.path(), vec![c]);
}

#[test]
fn annotations_state_objective_budget_and_failed_runs() {
    let (_dir, path, _) = generate(SCENARIO, &[]);
    let rules = rules_of(&path);
    let fast = alert_rule(
        &rules,
        "FlowprobeAvailabilityBudgetBurn",
        &[("long_window", "1h")],
    );
    assert_eq!(fast["labels"]["severity"], "page");
    assert_eq!(fast["labels"]["team"], "payments");
    let d = fast["annotations"]["description"].as_str().unwrap();
    assert!(
        d.contains("99.9% of runs of checkout succeed over 30d"),
        "{d}"
    );
    assert!(d.contains("2% of the 30d error budget burnt in 1h"), "{d}");
    assert!(
        d.contains("one run every 30s this fires on at least 2 failed runs in 1h"),
        "{d}"
    );
    let slow = alert_rule(
        &rules,
        "FlowprobeLatencyBudgetBurn",
        &[("long_window", "3d")],
    );
    assert_eq!(slow["labels"]["severity"], "ticket");
    let d = slow["annotations"]["description"].as_str().unwrap();
    assert!(
        d.contains("99% of runs of checkout finish within 2.5s over 30d"),
        "{d}"
    );
    assert!(d.contains("runs slower than"), "{d}");
}

#[test]
fn low_cadence_needs_two_failed_runs_to_page_and_warns_on_tiny_budgets() {
    let sc = SCENARIO
        .replace("interval: 30s, jitter: 5s, timeout: 45s", "interval: 1m")
        .replace("99.9%", "99.99%");
    let (_dir, path, stderr) = generate(&sc, &[]);
    assert!(
        stderr.contains("warning: checkout availability: objective 99.99% at one run every 1m"),
        "{stderr}"
    );
    assert!(
        stderr.contains("one failed run burns 23.1481% of it"),
        "{stderr}"
    );
    let rules = rules_of(&path);
    let fast = alert_rule(
        &rules,
        "FlowprobeAvailabilityBudgetBurn",
        &[("long_window", "1h")],
    );
    let expr = fast["expr"].as_str().unwrap();
    assert!(
        expr.ends_with("[1h])) > 1.5"),
        "guard of 2 failed runs: {expr}"
    );
}

#[test]
fn prometheus_operator_format_wraps_the_same_groups() {
    let (dir, rules_path, _) = generate(SCENARIO, &[]);
    let (_dir2, op_path, _) = generate(
        SCENARIO,
        &["--format", "prometheus-operator", "--name", "probes"],
    );
    let op = rules_of(&op_path);
    assert_eq!(op["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(op["kind"], "PrometheusRule");
    assert_eq!(op["metadata"]["name"], "probes");
    assert_eq!(op["spec"], rules_of(&rules_path));
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, serde_yaml::to_string(&op["spec"]).unwrap()).unwrap();
    run_promtool(&["check", "rules", "spec.yaml"], dir.path());
}

#[test]
fn invalid_input_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("bad.yaml");
    std::fs::write(
        &sc,
        SCENARIO.replace("availability: 99.9%", "availabilty: 99.9%"),
    )
    .unwrap();
    let out_file = dir.path().join("rules.yaml");
    let out = flowprobe(&[
        "slo",
        sc.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:"), "{stderr}");
    assert!(
        stderr.contains("availability"),
        "did-you-mean hint: {stderr}"
    );
    assert!(!out_file.exists());
}

#[test]
fn the_quorum_alert_fires_only_when_enough_locations_fail_at_once() {
    let (dir, path, _) = generate(SCENARIO, &["--quorum", "2"]);
    let out = run_promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}");
    let rules = rules_of(&path);
    let rule = alert_rule(&rules, "FlowprobeScenarioFailingInLocations", &[]);
    assert_eq!(rule["labels"]["severity"], "page");

    // One 30s sample per run. eu-west always passes; us-east fails from the start; in ap-south
    // one of two replicas starts failing after 10 minutes (a location fails when any of its
    // replicas does).
    let success = |loc: &str, pod: &str, values: &str| {
        json!({"series": format!("flowprobe_scenario_success{{scenario=\"checkout\",location=\"{loc}\",pod=\"{pod}\"}}"),
               "values": values})
    };
    let series = vec![
        success("eu-west", "a", "1x60"),
        success("us-east", "b", "0x60"),
        success("ap-south", "c", "1x60"),
        success("ap-south", "d", "1x19 0x40"),
    ];
    let mut exp = rule["labels"].clone();
    exp["scenario"] = json!("checkout");
    let mut annotations = rule["annotations"].clone();
    annotations["summary"] = json!("checkout is failing in 2 locations at once");
    let fires = json!({"exp_labels": exp, "exp_annotations": annotations});
    let alert = "FlowprobeScenarioFailingInLocations";
    let out = promtool_test(
        dir.path(),
        vec![case(
            series,
            vec![
                // One failing location, for 9 minutes: that location's problem, no page.
                ("9m", alert, vec![]),
                // Two locations, but not yet for the rule's `for`.
                ("10m30s", alert, vec![]),
                ("14m", alert, vec![fires]),
            ],
        )],
    );
    assert!(out.contains("SUCCESS"), "{out}");
}
