//! `thresholds:` end to end: `flowprobe run --iterations N` against a real local HTTP backend
//! prints each threshold with its measured value, writes them to the JSON report, and exits 3 on
//! a breach (1 when a run failed, 2 when a threshold does not parse).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::backend::Backend;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Runs `flowprobe run` with a JSON report; returns the output and the parsed report.
fn run(dir: &Path, files: &[&str], extra: &[&str]) -> (Output, String, Option<Value>) {
    let report = dir.join("report.json");
    let _ = std::fs::remove_file(&report);
    let out = Command::new(support::flowprobe_bin())
        .arg("run")
        .args(files)
        .args(["--no-color", "--report"])
        .arg(format!("json={}", report.display()))
        .args(extra)
        .output()
        .expect("run flowprobe");
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(&report)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (out, stdout, json)
}

fn scenario(app: &Backend, thresholds: &[&str]) -> String {
    let list: String = thresholds
        .iter()
        .map(|t| format!("  - \"{t}\"\n"))
        .collect();
    format!(
        r#"name: shop
steps:
  - name: fast
    http: {{url: "{base}/health"}}
    assert: ["status == 200"]
  - name: slow
    http: {{url: "{base}/delay/60"}}
    assert: ["status == 200"]
thresholds:
{list}"#,
        base = app.url()
    )
}

fn verdict<'a>(report: &'a Value, threshold: &str) -> &'a Value {
    report["thresholds"]
        .as_array()
        .expect("thresholds in the JSON report")
        .iter()
        .find(|t| t["threshold"] == threshold)
        .unwrap_or_else(|| panic!("no verdict for {threshold}: {report}"))
}

#[test]
fn thresholds_that_hold_pass_with_their_measured_values() {
    let app = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "shop.yaml",
        &scenario(
            &app,
            &[
                "p95(duration) < 10s",
                "success_rate >= 99%",
                "avg(steps.slow.duration) >= 60ms",
                "max(steps.fast.duration) < 5s",
            ],
        ),
    );
    let (out, text, report) = run(dir.path(), &[&f], &["--iterations", "5"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("thresholds\n"), "{text}");
    assert!(text.contains("✓ shop  success_rate >= 99%"), "{text}");
    assert!(text.contains("100% (5/5)"), "{text}");
    assert!(text.contains("0 of 4 thresholds breached"), "{text}");
    let report = report.unwrap();
    let avg = verdict(&report, "avg(steps.slow.duration) >= 60ms");
    assert_eq!(avg["passed"], true);
    assert_eq!(avg["samples"], 5);
    let measured = avg["measured"].as_f64().unwrap();
    assert!(
        (0.06..5.0).contains(&measured),
        "slow step took {measured}s"
    );
    assert_eq!(app.hits("/delay/60"), 5);
}

#[test]
fn a_breached_threshold_exits_3_and_says_which() {
    let app = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "shop.yaml",
        &scenario(
            &app,
            &["p50(steps.slow.duration) < 20ms", "p99(duration) < 30s"],
        ),
    );
    let (out, text, report) = run(dir.path(), &[&f], &["-n", "3"]);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("3 runs: 3 passed, 0 failed"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("p50(steps.slow.duration) < 20ms"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains('✗'), "{line}");
    // Points at the threshold in the file (line 10: the first item under `thresholds:`).
    assert!(line.contains("shop.yaml:10:"), "{line}");
    assert!(text.contains("1 of 2 thresholds breached"), "{text}");
    let report = report.unwrap();
    let p50 = verdict(&report, "p50(steps.slow.duration) < 20ms");
    assert_eq!(p50["passed"], false);
    assert!(p50["measured"].as_f64().unwrap() >= 0.06, "{p50}");
    assert_eq!(verdict(&report, "p99(duration) < 30s")["passed"], true);
}

#[test]
fn a_failed_run_wins_over_a_breach() {
    let app = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    // The first request to /flaky/k/1 answers 503: the first of four runs fails.
    let f = write(
        dir.path(),
        "flaky.yaml",
        &format!(
            r#"name: flaky
steps:
  - name: call
    http: {{url: "{}/flaky/k/1"}}
    assert: ["status == 200"]
thresholds:
  - success_rate >= 99%
  - success_rate(steps.call) > 50%
"#,
            app.url()
        ),
    );
    let (out, text, report) = run(dir.path(), &[&f], &["-n", "4", "-j", "1"]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("75% (3/4)"), "{text}");
    let report = report.unwrap();
    assert_eq!(verdict(&report, "success_rate >= 99%")["passed"], false);
    assert_eq!(
        verdict(&report, "success_rate(steps.call) > 50%")["passed"],
        true
    );
}

#[test]
fn thresholds_only_see_their_own_scenario() {
    let app = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let shop = write(
        dir.path(),
        "a.yaml",
        &scenario(&app, &["max(duration) < 50ms"]).replace("/delay/60", "/health"),
    );
    let slow = write(
        dir.path(),
        "b.yaml",
        &format!(
            "name: slow\nsteps:\n  - name: wait\n    http: {{url: \"{}/delay/300\"}}\n",
            app.url()
        ),
    );
    let (out, text, report) = run(dir.path(), &[&shop, &slow], &["-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let v = verdict(report.as_ref().unwrap(), "max(duration) < 50ms");
    assert_eq!(v["scenario"], "shop");
    assert_eq!(v["samples"], 2);
}

#[test]
fn no_thresholds_means_no_block_and_no_report_field() {
    let app = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "plain.yaml",
        &format!(
            "name: plain\nsteps:\n  - name: h\n    http: {{url: \"{}/health\"}}\n",
            app.url()
        ),
    );
    let (out, text, report) = run(dir.path(), &[&f], &[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("thresholds"), "{text}");
    assert!(report.unwrap().get("thresholds").is_none());
}

#[test]
fn invalid_thresholds_are_load_errors_with_locations() {
    let app = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.yaml",
        &scenario(
            &app,
            &[
                "p95(duration) < 300",
                "p99(steps.logn.duration) < 2s",
                "sucess_rate > 1%",
            ],
        )
        .replace("< 300\"", "< 3x\""),
    );
    let (out, text, report) = run(dir.path(), &[&f], &[]);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(report.is_none(), "nothing runs on invalid input");
    assert_eq!(app.hits("/health"), 0);
    assert!(text.contains("bad.yaml:10:22"), "{text}");
    assert!(text.contains("invalid duration `3x`"), "{text}");
    assert!(
        text.contains("bad.yaml:11:16: error: unknown step `logn`"),
        "{text}"
    );
    assert!(text.contains("bad.yaml:12:6"), "{text}");
    assert!(text.contains("did you mean `success_rate`?"), "{text}");
}

#[test]
fn the_slo_example_meets_its_thresholds_on_the_local_stack() {
    let ing = support::nginx::Ingress::start();
    let dir = tempfile::tempdir().unwrap();
    let example = format!("{}/scenarios/slo-example.yaml", env!("CARGO_MANIFEST_DIR"));
    let vars: Vec<String> = ing
        .vars()
        .into_iter()
        .filter(|(k, _)| k != "username")
        .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")])
        .collect();
    let mut extra = vec!["-n", "5"];
    extra.extend(vars.iter().map(String::as_str));
    let (out, text, report) = run(dir.path(), &[&example], &extra);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 of 3 thresholds breached"), "{text}");
    let report = report.unwrap();
    assert_eq!(
        verdict(&report, "success_rate >= 99%")["display"],
        "100% (5/5)"
    );
    assert_eq!(
        verdict(&report, "p99(steps.health.duration) < 500ms")["samples"],
        5
    );
}
