//! `flowprobe serve` counts failed runs by the run's reason in `flowprobe_run_failures_total`
//! (created with the first failure of a reason, promtool-clean), a failure that belongs to the run and not to a step
//! included: a secret file that disappears after start-up fails the runs with `config`, and
//! `/status` (JSON and HTML) shows that reason and message for the last run.

mod support;

use std::time::Duration;

use support::backend::Backend;
use support::prometheus::{check_metrics, find, http_get, scenario_dir, value, wait_until, Prober};

const WAIT: Duration = Duration::from_secs(30);

fn run_failures(text: &str, scenario: &str, reason: &str) -> Option<f64> {
    value(
        text,
        "flowprobe_run_failures_total",
        &[("scenario", scenario), ("reason", reason)],
    )
}

#[test]
fn run_level_failures_are_counted_and_shown() {
    let api = Backend::start("api");
    let secret_dir = tempfile::tempdir().expect("temp dir");
    let secret = secret_dir.path().join("token");
    std::fs::write(&secret, "tok-run-level-5ecr3t\n").expect("write the secret file");
    let with_secret = format!(
        "name: with-secret\nschedule: {{interval: 1s}}\nsecrets:\n  token: {{file: \"{}\"}}\nsteps:\n  - name: health\n    http:\n      url: \"${{{{ vars.api }}}}/health\"\n      headers: {{x-token: \"${{{{ secrets.token }}}}\"}}\n",
        secret.display()
    );
    let refused = "name: refused\nschedule: {interval: 1s}\nsteps:\n  - name: nothing-there\n    http: {url: \"http://127.0.0.1:9/\"}\n";
    let (dir, scenarios) = scenario_dir(&[
        ("with-secret.yaml", &with_secret),
        ("refused.yaml", refused),
    ]);
    let var = format!("api={}", api.url());
    let probe = Prober::start(
        &[&scenarios],
        &["--var", &var],
        &[],
        &dir.path().join("serve.log"),
    );

    // Per-reason counters come with their first increment; the run totals are there at 0.
    let first = probe.scrape();
    for sc in ["with-secret", "refused"] {
        assert!(
            find(&first, "flowprobe_run_failures_total", &[("scenario", sc)]).is_empty(),
            "{first}"
        );
        assert_eq!(
            value(
                &first,
                "flowprobe_runs_total",
                &[("scenario", sc), ("outcome", "failure")]
            ),
            Some(0.0),
            "{first}"
        );
    }
    wait_until(WAIT, "with-secret to pass once", || {
        value(
            &probe.scrape(),
            "flowprobe_runs_total",
            &[("scenario", "with-secret"), ("outcome", "success")],
        )
        .filter(|n| *n >= 1.0)
    });

    // The secret goes away: the runs fail on their own, no step fails.
    std::fs::remove_file(&secret).expect("remove the secret file");
    let text = wait_until(WAIT, "config failures and connect failures", || {
        let t = probe.scrape();
        let ok = run_failures(&t, "with-secret", "config")? >= 2.0
            && run_failures(&t, "refused", "connect")? >= 1.0;
        ok.then_some(t)
    });
    check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for reason in ["connect", "timeout", "internal", "http_status"] {
        assert_eq!(run_failures(&text, "with-secret", reason), None, "{reason}");
    }
    assert_eq!(run_failures(&text, "refused", "config"), None);
    // No step failed in the config runs: no step counter was created.
    for reason in ["config", "internal", "connect"] {
        assert_eq!(
            value(
                &text,
                "flowprobe_step_failures_total",
                &[("scenario", "with-secret"), ("reason", reason)]
            ),
            None,
            "{reason}"
        );
    }
    // Every failed run is counted under exactly one reason (read from one scrape once stable).
    wait_until(WAIT, "failed runs = run failures over all reasons", || {
        let t = probe.scrape();
        let failed = value(
            &t,
            "flowprobe_runs_total",
            &[("scenario", "refused"), ("outcome", "failure")],
        )?;
        let by_reason: f64 = find(
            &t,
            "flowprobe_run_failures_total",
            &[("scenario", "refused")],
        )
        .iter()
        .map(|s| s.value)
        .sum();
        (failed == by_reason).then_some(())
    });

    // /status: the last run's own reason and message.
    let status = probe.status();
    let sc = status["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "with-secret"))
        .expect("with-secret in /status")
        .clone();
    assert_eq!(sc["last_run_failure"]["reason"], "config", "{sc:#}");
    let message = sc["last_run_failure"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("token") && message.contains("cannot read file"),
        "{message}"
    );
    let refused_sc = status["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "refused"))
        .expect("refused in /status");
    assert!(
        refused_sc["last_run_failure"].is_null(),
        "a step failed there: {refused_sc:#}"
    );
    let (code, _, html) = http_get(probe.port, "/status", Some("text/html")).expect("HTML status");
    assert_eq!(code, 200);
    assert!(
        html.contains("the run failed before or between its steps: config"),
        "{html}"
    );
    assert!(!html.contains("tok-run-level-5ecr3t") && !message.contains("tok-run-level-5ecr3t"));
}
