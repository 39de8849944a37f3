//! Unit tests of the serve metrics: series, buckets, lazy counters and the three formats.

use super::*;
use crate::outcome::{fixtures, Phase, Reason, StepOutcome, StepStatus};
use crate::scenario::load::load_source;
use crate::scenario::LoadOptions;

fn scenario(src: &str) -> LoadedScenario {
    load_source("t.yaml", src, &LoadOptions::default()).expect("valid scenario")
}

const SHOP: &str = "name: shop\nlabels: {team: \"pay\\\"ments\"}\nslo: {availability: 99%, latency: {threshold: 300ms, objective: 99%}}\nsteps:\n  - name: home\n    http: {url: \"http://127.0.0.1:9/\"}\n  - name: api\n    http: {url: \"http://127.0.0.1:9/api\"}\nfinally:\n  - name: cleanup\n    http: {url: \"http://127.0.0.1:9/x\", method: DELETE}\n";
const OTHER: &str =
    "name: other\nsteps:\n  - name: only\n    http: {url: \"http://127.0.0.1:9/\"}\n";

fn step(name: &str, status: StepStatus, ms: u64) -> StepOutcome {
    StepOutcome {
        duration: Duration::from_millis(ms),
        phases: vec![Phase {
            name: "connect".into(),
            duration: Duration::from_millis(1),
        }],
        ..fixtures::step(name, status)
    }
}

fn tls(version: &str, not_after: u64) -> crate::outcome::TlsFacts {
    crate::outcome::TlsFacts {
        version: version.into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        alpn: None,
        chain: vec![crate::outcome::CertificateFacts {
            subject: "CN=leaf".into(),
            issuer: "CN=ca".into(),
            not_after,
        }],
    }
}

fn outcome(scenario: &str, steps: Vec<StepOutcome>) -> ScenarioOutcome {
    ScenarioOutcome {
        started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ..fixtures::run(scenario, steps)
    }
}

/// The value of the one line that starts with `series ` (exact labels, in order).
fn value(text: &str, series: &str) -> Option<String> {
    let prefix = format!("{series} ");
    let hits: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(hits.len() <= 1, "{series} appears {} times", hits.len());
    hits.first().map(|l| l[prefix.len()..].to_string())
}

fn metrics() -> Metrics {
    Metrics::new(&[("location".into(), "eu-west-1".into())], &[]).expect("metrics")
}

const L: &str = r#"scenario="shop",team="pay\"ments",location="eu-west-1""#;

#[test]
fn run_totals_exist_from_the_start_and_per_reason_counters_from_their_first_increment() {
    let m = metrics();
    m.sync(&[scenario(SHOP), scenario(OTHER)]);
    let t = m.render();
    for outcome in ["success", "failure"] {
        assert_eq!(
            value(&t, &format!("{RUNS_TOTAL}{{{L},outcome=\"{outcome}\"}}")).as_deref(),
            Some("0")
        );
    }
    // Per-reason, retry and skip counters appear with their first increment.
    for absent in [STEP_FAILURES_TOTAL, STEP_RETRIES_TOTAL, RUNS_SKIPPED_TOTAL, RUN_FAILURES_TOTAL] {
        assert!(!t.contains(absent), "{absent} in\n{t}");
    }
    assert!(t.contains(
        r#"flowprobe_runs_total{scenario="other",location="eu-west-1",outcome="failure"} 0"#
    ));
    // Gauges about the last run only appear once there was one.
    assert!(!t.contains(SCENARIO_SUCCESS));
    // Registry metrics carry the constant label too.
    assert!(
        t.contains(&format!(
            r#"flowprobe_build_info{{revision="{REVISION}",version="{}",location="eu-west-1"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )),
        "{t}"
    );
    assert!(t.contains(
        r#"flowprobe_config_reloads_total{result="failure",location="eu-west-1"} 0"#
    ));
    assert!(t.contains("process_cpu_seconds_total"));
}

#[test]
fn a_one_step_scenario_has_at_most_30_series_in_text() {
    let m = metrics();
    let https = "name: one\nslo: {availability: 99%, latency: {threshold: 300ms, objective: 99%}}\nsteps:\n  - name: a\n    http: {url: \"https://127.0.0.1:9/\"}\n";
    m.sync(&[scenario(https)]);
    let mut s = step("a", StepStatus::Passed, 40);
    s.tls = Some(tls("TLSv1.3", 1_800_000_000));
    m.record(&outcome("one", vec![s]));
    let t = m.render();
    let series = t
        .lines()
        .filter(|l| l.contains("scenario=\"one\""))
        .count();
    assert!(series <= 30, "{series} series:\n{t}");
    assert_eq!(series, 30, "TLS, SLO bucket and all: {t}");
}
#[test]
fn buckets_include_the_slo_threshold_exactly_once() {
    let m = metrics();
    m.sync(&[scenario(SHOP), scenario(OTHER)]);
    let t = m.render();
    let le = |scenario: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "{RUN_DURATION_SECONDS}_bucket{{scenario=\"{scenario}\""
                ))
            })
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next().map(String::from))
            .collect()
    };
    let shop = le("shop");
    assert!(shop.contains(&"0.3".to_string()), "{shop:?}");
    assert_eq!(shop.len(), DEFAULT_BUCKETS.len() + 2, "{shop:?}");
    // Another scenario keeps the configured buckets.
    assert!(!le("other").contains(&"0.3".to_string()));
    // A threshold that is already a bucket is not repeated; configured buckets are used.
    let m = Metrics::new(&[], &parse_buckets("300ms,1,2s").expect("buckets")).expect("metrics");
    m.sync(&[scenario(SHOP)]);
    let t = m.render();
    let n = t
        .lines()
        .filter(|l| l.starts_with("flowprobe_run_duration_seconds_bucket"))
        .count();
    assert_eq!(n, 4, "0.3, 1, 2, +Inf");
    assert_eq!(seconds_label(Duration::from_millis(2500)), "2.5");
}

#[test]
fn outcomes_move_counters_histograms_and_gauges() {
    let m = metrics().with_latency_summary(true);
    m.sync(&[scenario(SHOP)]);
    m.record(&outcome(
        "shop",
        vec![
            step("home", StepStatus::Passed, 40),
            step("api", StepStatus::Passed, 200),
            step("cleanup", StepStatus::Passed, 5),
        ],
    ));
    let mut failed = step("api", StepStatus::Failed, 400);
    failed.attempts = 3;
    m.record(&outcome(
        "shop",
        vec![
            step("home", StepStatus::Passed, 40),
            failed,
            step("cleanup", StepStatus::Passed, 5),
        ],
    ));
    m.record_skipped("shop");
    let t = m.render();
    let v = |s: String| value(&t, &s).unwrap_or_else(|| panic!("no {s}"));
    assert_eq!(v(format!("{RUNS_TOTAL}{{{L},outcome=\"success\"}}")), "1");
    assert_eq!(v(format!("{RUNS_TOTAL}{{{L},outcome=\"failure\"}}")), "1");
    assert_eq!(v(format!("{RUNS_SKIPPED_TOTAL}{{{L}}}")), "1");
    assert_eq!(
        v(format!(
            "{STEP_FAILURES_TOTAL}{{{L},step=\"api\",kind=\"http\",reason=\"http_status\"}}"
        )),
        "1"
    );
    assert_eq!(
        value(
            &t,
            &format!(
                "{STEP_FAILURES_TOTAL}{{{L},step=\"api\",kind=\"http\",reason=\"timeout\"}}"
            )
        ),
        None
    );
    assert_eq!(v(format!("{STEP_RETRIES_TOTAL}{{{L},step=\"api\"}}")), "2");
    // Runs of 245ms and 445ms: one within the 0.3 SLO bucket, both within 0.5.
    assert_eq!(
        v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"0.25\"}}")),
        "1"
    );
    assert_eq!(
        v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"0.3\"}}")),
        "1"
    );
    assert_eq!(
        v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"0.5\"}}")),
        "2"
    );
    assert_eq!(
        v(format!("{RUN_DURATION_SECONDS}_bucket{{{L},le=\"+Inf\"}}")),
        "2"
    );
    assert_eq!(v(format!("{RUN_DURATION_SECONDS}_count{{{L}}}")), "2");
    assert_eq!(v(format!("{RUN_DURATION_SECONDS}_sum{{{L}}}")), "0.69");
    assert_eq!(
        v(format!(
            "{STEP_DURATION_SECONDS}_count{{{L},step=\"home\",kind=\"http\"}}"
        )),
        "2"
    );
    // Phases are native histograms: protobuf only.
    assert!(!t.contains(PHASE_DURATION_SECONDS));
    assert_eq!(v(format!("{SCENARIO_SUCCESS}{{{L}}}")), "0");
    assert_eq!(
        v(format!("{LAST_RUN_TIMESTAMP_SECONDS}{{{L}}}")),
        "1700000000.445"
    );
    assert_eq!(
        v(format!("{LAST_SUCCESS_TIMESTAMP_SECONDS}{{{L}}}")),
        "1700000000.245"
    );
    assert_eq!(
        v(format!(
            "{STEP_LATENCY_SECONDS}{{{L},step=\"home\",quantile=\"0.5\"}}"
        ))
        .parse::<f64>()
        .map(|x| (x - 0.04).abs() < 0.0004),
        Ok(true)
    );
    // Outcomes of unknown scenarios are ignored.
    m.record(&outcome("gone", vec![step("x", StepStatus::Passed, 1)]));
    assert!(!m.render().contains("\"gone\""));
}

#[test]
fn failed_runs_are_counted_by_run_reason_and_cancelled_runs_not_at_all() {
    let m = metrics();
    m.sync(&[scenario(SHOP), scenario(OTHER)]);
    let series = |t: &str, sc: &str, r: Reason| {
        let labels = if sc == "shop" {
            L.to_string()
        } else {
            format!("scenario=\"{sc}\",location=\"eu-west-1\"")
        };
        value(
            t,
            &format!("{RUN_FAILURES_TOTAL}{{{labels},reason=\"{r}\"}}"),
        )
    };
    let t = m.render();
    for sc in ["shop", "other"] {
        for r in Reason::ALL {
            assert_eq!(series(&t, sc, r), None, "{sc} {r}");
        }
    }
    // A step failure: the run's reason is the step's.
    m.record(&outcome("shop", vec![step("home", StepStatus::Failed, 10)]));
    // A run-level failure: a secret could not be read, every step skipped.
    let mut config = outcome("shop", vec![step("home", StepStatus::Skipped, 0)]);
    config.reason = Some(Reason::Config);
    config.message = Some("secret `pw`: environment variable PW is not set".into());
    assert_eq!(config.run_level_failure(), Some(Reason::Config));
    m.record(&config);
    // Cut short by shutdown: says nothing about the target, counted nowhere.
    let mut cancelled = outcome("shop", vec![step("home", StepStatus::Failed, 10)]);
    cancelled.cancelled = true;
    m.record(&cancelled);
    // A pass is no failure.
    m.record(&outcome("shop", vec![step("home", StepStatus::Passed, 10)]));
    let t = m.render();
    assert_eq!(series(&t, "shop", Reason::HttpStatus).as_deref(), Some("1"));
    assert_eq!(series(&t, "shop", Reason::Config).as_deref(), Some("1"));
    assert_eq!(series(&t, "shop", Reason::Timeout), None);
    assert_eq!(series(&t, "other", Reason::Config), None);
    assert_eq!(
        m.counts("shop"),
        Some(RunCounts {
            success: 1,
            failure: 2,
            skipped: 0
        })
    );
    assert_eq!(
        value(
            &t,
            &format!("{STEP_FAILURES_TOTAL}{{{L},step=\"home\",kind=\"http\",reason=\"http_status\"}}")
        )
        .as_deref(),
        Some("1"),
        "the cancelled run's step is not counted either"
    );
    assert_eq!(
        t.matches(&format!("# TYPE {RUN_FAILURES_TOTAL} counter"))
            .count(),
        1
    );
}

#[test]
fn connection_series_follow_the_server() {
    let m = metrics();
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    m.record_connection_refused();
    let t = m.render();
    assert!(
        t.contains(&format!(
            "{HTTP_CONNECTIONS_OPEN}{{location=\"eu-west-1\"}} 1"
        )),
        "{t}"
    );
    assert!(t.contains(&format!(
        "{HTTP_CONNECTIONS_REFUSED_TOTAL}{{location=\"eu-west-1\"}} 1"
    )));
}

#[tokio::test(start_paused = true)]
async fn latency_quantiles_cover_a_sliding_window() {
    let m = metrics().with_latency_summary(true);
    m.sync(&[scenario(OTHER)]);
    // 1..=100 ms, then 1000 ms samples four minutes later.
    for ms in 1..=100 {
        m.record(&outcome(
            "other",
            vec![step("only", StepStatus::Passed, ms)],
        ));
    }
    let q = |m: &Metrics, quantile: &str| -> f64 {
        let s = format!("{STEP_LATENCY_SECONDS}{{scenario=\"other\",location=\"eu-west-1\",step=\"only\",quantile=\"{quantile}\"}}");
        value(&m.render(), &s)
            .expect("quantile")
            .parse()
            .expect("number")
    };
    let near = |a: f64, b: f64| (a - b).abs() <= b * 0.01;
    assert!(near(q(&m, "0.5"), 0.050), "{}", q(&m, "0.5"));
    assert!(near(q(&m, "0.9"), 0.090));
    assert!(near(q(&m, "0.99"), 0.099));
    assert!(near(q(&m, "1.0"), 0.100));
    tokio::time::sleep(Duration::from_secs(240)).await;
    for _ in 0..100 {
        m.record(&outcome(
            "other",
            vec![step("only", StepStatus::Passed, 1000)],
        ));
    }
    assert!(
        near(q(&m, "0.5"), 0.100) || q(&m, "0.5") < 0.101,
        "{}",
        q(&m, "0.5")
    );
    assert!(near(q(&m, "0.99"), 1.0));
    // A minute later the first samples have left the window.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(near(q(&m, "0.5"), 1.0), "{}", q(&m, "0.5"));
    // With nothing in the window the quantiles are NaN instead of stale values.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(q(&m, "0.5").is_nan());
    let t = m.render();
    let count = format!("{STEP_LATENCY_SECONDS}_count{{scenario=\"other\",location=\"eu-west-1\",step=\"only\"}}");
    assert_eq!(value(&t, &count).as_deref(), Some("200"));
}

#[test]
fn sync_keeps_unchanged_counters_and_drops_removed_series() {
    let m = metrics();
    m.sync(&[scenario(SHOP), scenario(OTHER)]);
    m.record(&outcome("shop", vec![step("home", StepStatus::Failed, 1)]));
    m.record(&outcome("other", vec![step("only", StepStatus::Passed, 1)]));
    // "other" gains a step and changes its SLO (buckets); "shop" is removed; "new" comes.
    let other2 = "name: other\nslo: {availability: 99%, latency: {threshold: 700ms, objective: 99%}}\nsteps:\n  - name: only\n    http: {url: \"http://127.0.0.1:9/\"}\n  - name: more\n    redis: {url: \"redis://127.0.0.1:9\", roundtrip: {}}\n";
    m.sync(&[
        scenario(other2),
        scenario("name: new\nsteps:\n  - name: a\n    http: {url: \"http://127.0.0.1:9/\"}\n"),
    ]);
    let t = m.render();
    assert!(!t.contains("scenario=\"shop\""));
    let lo = r#"scenario="other",location="eu-west-1""#;
    assert_eq!(
        value(&t, &format!("{RUNS_TOTAL}{{{lo},outcome=\"success\"}}")).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(
            &t,
            &format!("{STEP_DURATION_SECONDS}_count{{{lo},step=\"more\",kind=\"redis\"}}")
        )
        .as_deref(),
        Some("0")
    );
    assert!(
        t.contains(&format!(
            "{RUN_DURATION_SECONDS}_bucket{{{lo},le=\"0.7\"}} 0"
        )),
        "histograms restart with the new buckets"
    );
    assert!(t.contains(
        r#"flowprobe_runs_total{scenario="new",location="eu-west-1",outcome="success"} 0"#
    ));
    // Unchanged again: values stay.
    m.record(&outcome("other", vec![step("only", StepStatus::Passed, 1)]));
    m.sync(&[scenario(other2)]);
    assert_eq!(
        m.counts("other"),
        Some(RunCounts {
            success: 2,
            failure: 0,
            skipped: 0
        })
    );
    assert_eq!(m.scenario_names(), vec!["other"]);
}

#[test]
fn families_are_contiguous_with_one_header_across_chunks() {
    let m = metrics();
    let set: Vec<LoadedScenario> = (0..600)
        .map(|i| scenario(&format!("name: s-{i}\nsteps:\n  - name: a\n    http: {{url: \"http://127.0.0.1:9/\"}}\n")))
        .collect();
    m.sync(&set);
    let chunks: Vec<String> = m.render_chunks().collect();
    assert!(chunks.len() > 5, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.len() < CHUNK_BYTES + 8192));
    let text: String = chunks.concat();
    let mut seen = Vec::new();
    let mut current = "";
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        if family != current {
            assert!(!seen.contains(&family.to_string()), "{family} is split");
            seen.push(family.to_string());
            current = family;
        }
    }
    for f in [RUNS_TOTAL, STEP_DURATION_SECONDS, RUN_DURATION_SECONDS] {
        assert_eq!(text.matches(&format!("# TYPE {f} ")).count(), 1, "{f}");
    }
    assert_eq!(text.matches("flowprobe_runs_total{").count(), 1200);
}

#[test]
fn label_settings_are_checked() {
    let ok = [("location".to_string(), "eu".to_string())];
    assert!(check_const_labels(&ok).is_ok());
    for bad in ["scenario", "le", "9x", "__x", "a-b"] {
        assert!(
            check_const_labels(&[(bad.into(), "v".into())]).is_err(),
            "{bad}"
        );
    }
    assert!(check_const_labels(&[("a".into(), "1".into()), ("a".into(), "2".into())]).is_err());
    let sc = scenario("name: x\nlabels: {location: here}\nsteps:\n  - name: a\n    http: {url: \"http://127.0.0.1:9/\"}\n");
    assert_eq!(
        check_label_collisions(&[sc], &ok),
        Err(vec![MetricsError::Collision {
            scenario: "x".into(),
            label: "location".into()
        }])
    );
    assert_eq!(
        parse_buckets("1, 0.5,250ms,1s").expect("valid"),
        vec![0.25, 0.5, 1.0]
    );
    assert!(parse_buckets("0").is_err());
    assert!(parse_buckets("fast").is_err());
}
