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
    for absent in [
        STEP_FAILURES_TOTAL,
        STEP_RETRIES_TOTAL,
        RUNS_SKIPPED_TOTAL,
        RUN_FAILURES_TOTAL,
    ] {
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
    assert!(
        t.contains(r#"flowprobe_config_reloads_total{result="failure",location="eu-west-1"} 0"#)
    );
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
    let series = t.lines().filter(|l| l.contains("scenario=\"one\"")).count();
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
            &format!("{STEP_FAILURES_TOTAL}{{{L},step=\"api\",kind=\"http\",reason=\"timeout\"}}")
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
            &format!(
                "{STEP_FAILURES_TOTAL}{{{L},step=\"home\",kind=\"http\",reason=\"http_status\"}}"
            )
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
    let count = format!(
        "{STEP_LATENCY_SECONDS}_count{{scenario=\"other\",location=\"eu-west-1\",step=\"only\"}}"
    );
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
        .map(|i| {
            scenario(&format!(
                "name: s-{i}\nsteps:\n  - name: a\n    http: {{url: \"http://127.0.0.1:9/\"}}\n"
            ))
        })
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

#[test]
fn openmetrics_has_created_exemplars_family_names_and_eof() {
    let m = metrics();
    m.sync(&[scenario(SHOP)]);
    let mut failed = step("api", StepStatus::Failed, 400);
    failed.attempts = 2;
    m.record(&outcome(
        "shop",
        vec![step("home", StepStatus::Passed, 40), failed],
    ));
    let om = String::from_utf8(m.render_as(Format::OpenMetrics)).expect("utf-8");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(om.matches("# EOF").count(), 1);
    for family in [
        "flowprobe_runs",
        "flowprobe_step_failures",
        "flowprobe_config_reloads",
    ] {
        assert!(
            om.contains(&format!("# TYPE {family} counter\n")),
            "{family}\n{om}"
        );
        assert!(!om.contains(&format!("# TYPE {family}_total")), "{family}");
    }
    assert!(om.contains(&format!("{RUNS_TOTAL}{{{L},outcome=\"failure\"}} 1\n")));
    assert!(om.contains(&format!(
        "flowprobe_runs_created{{{L},outcome=\"failure\"}} "
    )));
    assert!(om.contains(&format!(
        "flowprobe_step_failures_created{{{L},step=\"api\",kind=\"http\",reason=\"http_status\"}} "
    )));
    assert!(
        om.contains("flowprobe_config_reloads_total{result=\"success\",location=\"eu-west-1\"} 0")
    );
    // The 40 ms step's exemplar sits on its bucket (le 0.1), with the run's trace and run id.
    let bucket = format!("{STEP_DURATION_SECONDS}_bucket{{{L},step=\"home\",kind=\"http\",le=\"0.1\"}} 1 # {{trace_id=\"0af7651916cd43dd8448eb211c80319c\",run_id=\"r1\"}} 0.04 ");
    assert!(om.contains(&bucket), "{om}");
    assert!(om.contains(&format!(
        "{STEP_DURATION_SECONDS}_created{{{L},step=\"home\",kind=\"http\"}} "
    )));
    // The Prometheus text has neither.
    let text = m.render();
    assert!(!text.contains(" # {") && !text.contains("_created") && !text.contains("# EOF"));
}

#[test]
fn tls_version_is_one_series_per_step_replaced_when_it_changes() {
    let m = metrics();
    m.sync(&[scenario(OTHER)]);
    let lo = r#"scenario="other",location="eu-west-1""#;
    for (v, expiry) in [("TLSv1.2", 1_900_000_000), ("TLSv1.3", 1_800_000_000)] {
        let mut s = step("only", StepStatus::Passed, 5);
        let mut facts = tls(v, expiry);
        facts.chain.push(crate::outcome::CertificateFacts {
            subject: "CN=intermediate".into(),
            issuer: "CN=root".into(),
            not_after: expiry + 5,
        });
        s.tls = Some(facts);
        m.record(&outcome("other", vec![s]));
    }
    let t = m.render();
    let lines: Vec<&str> = t
        .lines()
        .filter(|l| l.starts_with(TLS_VERSION_INFO))
        .collect();
    assert_eq!(
        lines,
        vec![format!(
            "{TLS_VERSION_INFO}{{{lo},step=\"only\",version=\"TLSv1.3\"}} 1"
        )]
    );
    // The chain's earliest expiry, when the transport did not set one itself.
    assert_eq!(
        value(
            &t,
            &format!("{CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS}{{{lo},step=\"only\"}}")
        )
        .as_deref(),
        Some("1800000000")
    );
}

/// A decoded protobuf field: varint, 64-bit, or length-delimited.
#[derive(Debug, Clone, PartialEq)]
enum Pb {
    Int(u64),
    F64(f64),
    Bytes(Vec<u8>),
}

fn read_varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn fields(b: &[u8]) -> Vec<(u64, Pb)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i);
        let v = match key & 7 {
            0 => Pb::Int(read_varint(b, &mut i)),
            1 => {
                let raw: [u8; 8] = b[i..i + 8].try_into().expect("8 bytes");
                i += 8;
                Pb::F64(f64::from_le_bytes(raw))
            }
            2 => {
                let n = read_varint(b, &mut i) as usize;
                i += n;
                Pb::Bytes(b[i - n..i].to_vec())
            }
            w => panic!("wire type {w}"),
        };
        out.push((key >> 3, v));
    }
    out
}

fn get(f: &[(u64, Pb)], n: u64) -> Vec<Pb> {
    f.iter()
        .filter(|(k, _)| *k == n)
        .map(|(_, v)| v.clone())
        .collect()
}

fn bytes_of(p: &Pb) -> Vec<u8> {
    match p {
        Pb::Bytes(b) => b.clone(),
        other => panic!("not bytes: {other:?}"),
    }
}

fn delimited(b: &[u8]) -> Vec<Vec<(u64, Pb)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let n = read_varint(b, &mut i) as usize;
        out.push(fields(&b[i..i + n]));
        i += n;
    }
    out
}

fn label_pairs(metric: &[(u64, Pb)]) -> Vec<(String, String)> {
    get(metric, 1)
        .iter()
        .map(|l| {
            let f = fields(&bytes_of(l));
            let s = |n| String::from_utf8(bytes_of(&get(&f, n)[0])).expect("utf-8");
            (s(1), s(2))
        })
        .collect()
}

#[test]
fn protobuf_has_native_step_buckets_beside_classic_ones_with_exemplars() {
    let m = metrics();
    m.sync(&[scenario(SHOP)]);
    for ms in [40, 40, 400] {
        m.record(&outcome("shop", vec![step("home", StepStatus::Passed, ms)]));
    }
    let families = delimited(&m.render_as(Format::Protobuf));
    let family = |name: &str| {
        families
            .iter()
            .find(|f| get(f, 1) == vec![Pb::Bytes(name.as_bytes().to_vec())])
            .unwrap_or_else(|| panic!("no family {name}"))
            .clone()
    };
    assert!(families
        .iter()
        .any(|f| get(f, 1) == vec![Pb::Bytes(b"process_cpu_seconds_total".to_vec())]));
    let runs = family(RUNS_TOTAL);
    assert_eq!(get(&runs, 3), vec![Pb::Int(0)], "COUNTER");
    let steps = family(STEP_DURATION_SECONDS);
    assert_eq!(get(&steps, 3), vec![Pb::Int(4)], "HISTOGRAM");
    let home = get(&steps, 4)
        .iter()
        .map(|m| fields(&bytes_of(m)))
        .find(|m| label_pairs(m).contains(&("step".into(), "home".into())))
        .expect("home");
    assert!(label_pairs(&home).contains(&("team".into(), "pay\"ments".into())));
    let h = fields(&bytes_of(&get(&home, 7)[0]));
    assert_eq!(get(&h, 1), vec![Pb::Int(3)], "sample_count");
    assert_eq!(get(&h, 5), vec![Pb::Int(6)], "schema 3, zigzag");
    assert_eq!(get(&h, 6), vec![Pb::F64(native::ZERO_THRESHOLD)]);
    // 40 ms is in bucket -37 of schema 3 (2^(-38/8) < x ≤ 2^(-37/8)); 400 ms in -10.
    let spans: Vec<(u64, u64)> = get(&h, 12)
        .iter()
        .map(|s| {
            let f = fields(&bytes_of(s));
            let int = |n| match get(&f, n).first() {
                Some(Pb::Int(v)) => *v,
                _ => 0,
            };
            (int(1), int(2))
        })
        .collect();
    let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
    assert_eq!(spans, vec![(zigzag(-37), 1), (zigzag(-10 - (-37) - 1), 1)]);
    assert_eq!(get(&h, 13), vec![Pb::Int(zigzag(2)), Pb::Int(zigzag(-1))]);
    // Classic buckets, the 0.1 one with its exemplar.
    let buckets: Vec<Vec<(u64, Pb)>> = get(&h, 3).iter().map(|b| fields(&bytes_of(b))).collect();
    assert_eq!(
        buckets.len(),
        DEFAULT_BUCKETS.len() + 1,
        "with the SLO bucket, +Inf implicit"
    );
    let le01 = buckets
        .iter()
        .find(|b| get(b, 2) == vec![Pb::F64(0.1)])
        .expect("le 0.1");
    assert_eq!(get(le01, 1), vec![Pb::Int(2)]);
    let ex = fields(&bytes_of(&get(le01, 3)[0]));
    assert_eq!(
        label_pairs(&ex),
        vec![
            ("trace_id".into(), "0af7651916cd43dd8448eb211c80319c".into()),
            ("run_id".into(), "r1".into())
        ]
    );
    assert_eq!(get(&ex, 2), vec![Pb::F64(0.04)]);
    // Phases: native only; run durations: classic only (their `le` buckets feed SLO rules).
    let phases = family(PHASE_DURATION_SECONDS);
    let ph = fields(&bytes_of(
        &get(&fields(&bytes_of(&get(&phases, 4)[0])), 7)[0],
    ));
    assert!(get(&ph, 3).is_empty() && !get(&ph, 12).is_empty());
    let run = family(RUN_DURATION_SECONDS);
    let rh = fields(&bytes_of(&get(&fields(&bytes_of(&get(&run, 4)[0])), 7)[0]));
    assert!(!get(&rh, 3).is_empty() && get(&rh, 5).is_empty() && get(&rh, 6).is_empty());
}
