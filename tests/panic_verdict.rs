//! A panic is a failed run, never a pass: with the test-only fault hook (cargo feature
//! `fault-injection`) making one step panic, `flowprobe run` reports that scenario failed with
//! reason `internal` and exits 1 while the other scenario still passes; `flowprobe serve`
//! counts every such run as a failure and keeps scheduling the scenario.
// Only with the hook compiled in (`cargo test --features fault-injection`, as scripts/test.sh
// runs it); a cfg rather than `required-features`, so that Cargo.toml names no test file that a
// build without tests/ (the container image) would miss.
#![cfg(feature = "fault-injection")]

mod support;

use std::process::Command;
use std::time::Duration;

use support::backend::Backend;
use support::flowprobe_bin;
use support::prometheus::{scenario_dir, wait_until, Prober};

const PANICS: &str = r#"
name: panics
schedule: {interval: 1s}
steps:
  - name: boom
    http: {url: "${{ vars.api }}/health"}
  - name: after
    http: {url: "${{ vars.api }}/health"}
finally:
  - name: cleanup
    http: {url: "${{ vars.api }}/echo"}
"#;

const HEALTHY: &str = r#"
name: healthy
schedule: {interval: 1s}
steps:
  - name: home
    http: {url: "${{ vars.api }}/health"}
"#;

const FAULT: (&str, &str) = ("FLOWPROBE_FAULT_PANIC_STEP", "boom");

#[test]
fn run_reports_a_panicking_step_as_an_internal_failure_and_exits_1() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[("panics.yaml", PANICS), ("healthy.yaml", HEALTHY)]);
    let junit = dir.path().join("junit.xml");
    let json = dir.path().join("report.json");
    let out = Command::new(flowprobe_bin())
        .arg("run")
        .arg(&scenarios)
        .args(["--var", &format!("api={}", api.url()), "--no-color"])
        .args(["--report", &format!("junit={}", junit.display())])
        .args(["--report", &format!("json={}", json.display())])
        .env(FAULT.0, FAULT.1)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("FAIL panics"), "{stdout}");
    assert!(stdout.contains("PASS healthy"), "{stdout}");
    assert!(
        stdout.contains("internal error: fault injection"),
        "{stdout}"
    );
    assert!(stdout.contains("2 runs: 1 passed, 1 failed"), "{stdout}");
    assert!(stderr.contains("internal error (a bug) at"), "{stderr}");
    assert_eq!(api.hits("/echo"), 1, "the finally step did not run");
    assert_eq!(api.hits("/health"), 1, "only `healthy` reached /health");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let run = report["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["scenario"] == "panics"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(run["success"], false, "{report}");
    assert_eq!(run["reason"], "internal", "{report}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("internal error: fault injection"), "{xml}");
}

#[test]
fn serve_counts_panicking_runs_as_failures_and_keeps_scheduling() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[("panics.yaml", PANICS), ("healthy.yaml", HEALTHY)]);
    let var = format!("api={}", api.url());
    let probe = Prober::start(
        &[&scenarios],
        &["--var", &var],
        &[FAULT],
        &dir.path().join("serve.log"),
    );
    wait_until(
        Duration::from_secs(30),
        "three failed runs of `panics`",
        || {
            let n = probe.metric(
                "flowprobe_runs_total",
                &[("scenario", "panics"), ("outcome", "failure")],
            );
            (n >= 3.0).then_some(())
        },
    );
    let text = probe.scrape();
    let v = |name: &str, labels: &[(&str, &str)]| {
        support::prometheus::value(&text, name, labels).unwrap_or(0.0)
    };
    assert_eq!(
        v(
            "flowprobe_runs_total",
            &[("scenario", "panics"), ("outcome", "success")]
        ),
        0.0,
        "a panicking run was counted as a success"
    );
    assert!(
        v(
            "flowprobe_step_failures_total",
            &[
                ("scenario", "panics"),
                ("step", "boom"),
                ("reason", "internal")
            ]
        ) >= 3.0,
        "{text}"
    );
    assert!(
        v(
            "flowprobe_runs_total",
            &[("scenario", "healthy"), ("outcome", "success")]
        ) >= 2.0,
        "the healthy scenario stopped: {text}"
    );
    assert_eq!(
        probe.status()["scenarios"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(probe.guard.child.id() > 0);
}
