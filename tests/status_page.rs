//! The `/status` page and the HTML report in a real headless Chromium (WebDriver): a real
//! `flowprobe serve` runs a passing, a failing and a slow scenario against a real HTTP backend;
//! the page shows one tick per retained run (pass/fail as in the JSON), the waterfall of the
//! failed step, a run's details on click, filters, and updates itself without a reload, with no
//! console error under its Content-Security-Policy. The /status JSON validates against
//! `flowprobe schema status`. The same for a `run --report html=FILE` file. Screenshots go to
//! target/browser/.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::backend::Backend;
use support::browser::{artifact, Browser};
use support::prometheus::{scenario_dir, wait_until, Prober};

fn scenarios(backend: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pass.yaml", format!(
            "name: pass\nlabels: {{team: shop}}\nschedule: {{interval: 1s}}\nsteps:\n  - name: health\n    http: {{url: \"{backend}/health\"}}\n    assert: [\"status == 200\"]\n  - name: login-page\n    http: {{url: \"{backend}/text\"}}\n"
        )),
        ("fail.yaml", format!(
            "name: fail\nlabels: {{team: shop}}\nschedule: {{interval: 1s}}\nsteps:\n  - name: health\n    http: {{url: \"{backend}/health\"}}\n  - name: api\n    http: {{url: \"{backend}/status/500\"}}\n    assert: [\"status == 200\"]\n  - name: after\n    http: {{url: \"{backend}/health\"}}\n"
        )),
        ("slow.yaml", format!(
            "name: slow\nlabels: {{team: search}}\nschedule: {{interval: 1s}}\nsteps:\n  - name: search\n    http: {{url: \"{backend}/delay/400\"}}\n    assert: [\"status == 200\"]\n"
        )),
    ]
}

fn scenario<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {doc}"))
}

/// Validates `doc` against `flowprobe schema status` with Python's jsonschema (the test venv).
fn schema_errors(doc: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::flowprobe_bin())
        .args(["schema", "status"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(dir.path().join("schema.json"), &out.stdout).unwrap();
    std::fs::write(dir.path().join("doc.json"), doc.to_string()).unwrap();
    let script = "import json, sys, jsonschema\nv = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))\nfor e in v.iter_errors(json.load(open(sys.argv[2]))): print(list(e.absolute_path), e.message)\n";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join(".venv/bin/python"))
        .args(["-c", script])
        .arg(dir.path().join("schema.json"))
        .arg(dir.path().join("doc.json"))
        .output()
        .expect("the venv's python (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Per scenario section: (ticks, failed ticks) as drawn.
const TICKS: &str = "const r = {}; for (const s of document.querySelectorAll('section.scenario')) { r[s.dataset.scenario] = [s.querySelectorAll('.tick').length, s.querySelectorAll('.tick.fail').length]; } return r;";

#[test]
fn the_status_page_in_a_real_browser() {
    let backend = Backend::start("status-page");
    let files = scenarios(&backend.url());
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let (dir, path) = scenario_dir(&files);
    let probe = Prober::start(
        &[&path],
        &["--label", "location=lab-1"],
        &[],
        &dir.path().join("serve.log"),
    );
    let doc = wait_until(Duration::from_secs(30), "3 runs of each scenario", || {
        let doc = probe.status();
        ["pass", "fail", "slow"]
            .iter()
            .all(|n| scenario(&doc, n)["history"].as_array().map_or(0, Vec::len) >= 3)
            .then_some(doc)
    });
    let errors = schema_errors(&doc);
    assert!(
        errors.is_empty(),
        "/status JSON against its schema: {errors}"
    );
    let fail = scenario(&doc, "fail");
    assert_eq!(fail["uptime"]["window"], 0.0);
    assert_eq!(scenario(&doc, "pass")["uptime"]["last_hour"], 1.0);
    assert_eq!(fail["history"][0]["steps"][1]["reason"], "http_status");
    assert_eq!(
        fail["last_failure"]["steps"][1]["assertions"][0]["actual"],
        "500"
    );
    assert_eq!(doc["labels"]["location"], "lab-1");

    // The page's policy, and its assets from this origin.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://127.0.0.1:{}/status", probe.port);
    let csp = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(&url)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string()
    });
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let browser = Browser::start(&dir.path().join("chromedriver.log"));
    browser.open(&url);
    browser.wait_for(
        "the page to draw",
        Duration::from_secs(20),
        "const a = document.getElementById('app'); return a && !a.hidden && document.querySelectorAll('section.scenario').length === 3;",
    );
    browser.eval("window.__notReloaded = true; return null;", json!([]));
    let ticks = browser.eval(TICKS, json!([]));
    let (pass, failed, slow) = (&ticks["pass"], &ticks["fail"], &ticks["slow"]);
    assert!(pass[0].as_u64().unwrap() >= 3, "{ticks}");
    assert_eq!(pass[1], 0, "{ticks}");
    assert!(failed[0].as_u64().unwrap() >= 3, "{ticks}");
    assert_eq!(failed[0], failed[1], "every run of `fail` failed: {ticks}");
    assert_eq!(slow[1], 0, "{ticks}");
    let label = browser.eval(
        "return document.querySelector('[data-scenario=fail] .tick').getAttribute('aria-label');",
        json!([]),
    );
    assert!(
        label.as_str().unwrap().contains("failed (http_status)"),
        "{label}"
    );

    // The failed step in the last failure's waterfall, with its phases.
    let wf = browser.eval(
        "const w = document.querySelector('[data-scenario=fail] .waterfall.last-failure'); return [w.querySelector('.wf-item[data-step=api]').textContent, w.querySelectorAll('g.wf-step.failed').length, w.querySelectorAll('g.wf-step.skipped').length, w.querySelectorAll('rect.phase-first_byte').length];",
        json!([]),
    );
    let text = wf[0].as_str().unwrap();
    assert!(
        text.contains("api (http): failed · http_status") && text.contains("first_byte"),
        "{wf}"
    );
    assert_eq!(wf[1], 1, "{wf}");
    assert_eq!(wf[2], 1, "{wf}");
    assert!(wf[3].as_u64().unwrap() >= 2, "{wf}");
    // The slow step's sparkline says how slow it is.
    let spark = browser.eval(
        "return document.querySelector('[data-scenario=slow] .spark figcaption').textContent;",
        json!([]),
    );
    let p50_ms: f64 = spark
        .as_str()
        .unwrap()
        .split("p50 ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{spark}"));
    assert!(p50_ms >= 400.0, "{spark}");

    // A tick opens its run.
    let detail = browser.eval(
        "document.querySelector('[data-scenario=fail] .tick').click(); const d = document.querySelector('[data-scenario=fail] .run-detail'); return d && d.textContent;",
        json!([]),
    );
    let detail = detail
        .as_str()
        .unwrap_or_else(|| panic!("no run detail: {detail}"));
    assert!(
        detail.contains("api") && detail.contains("500") && detail.contains("run id"),
        "{detail}"
    );

    // Self-update: more ticks, no reload, the opened run stays open.
    let before = pass[0].as_u64().unwrap();
    browser.wait_for(
        "a new tick without reload",
        Duration::from_secs(15),
        &format!("return window.__notReloaded === true && document.querySelectorAll('[data-scenario=pass] .tick').length > {before};"),
    );
    assert_eq!(
        browser.eval(
            "return !!document.querySelector('[data-scenario=fail] .run-detail');",
            json!([])
        ),
        true
    );
    browser.screenshot(&artifact("status.png"));

    // Filters: by label, then by location.
    let shown = |script: &str| {
        browser.eval(&format!("{script} return [...document.querySelectorAll('section.scenario')].map(s => s.dataset.scenario);"), json!([]))
    };
    let by_team = shown("const s = document.getElementById('filter-label'); s.value = 'team=search'; s.dispatchEvent(new Event('change'));");
    assert_eq!(by_team, json!(["slow"]));
    let all = shown("const s = document.getElementById('filter-label'); s.value = ''; s.dispatchEvent(new Event('change')); const l = document.getElementById('filter-location'); l.value = 'lab-1'; l.dispatchEvent(new Event('change'));");
    assert_eq!(all, json!(["fail", "pass", "slow"]));

    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn the_html_report_in_a_real_browser() {
    let backend = Backend::start("report");
    let files = scenarios(&backend.url());
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let (dir, path) = scenario_dir(&files);
    let report = dir.path().join("out/report.html");
    let out = Command::new(support::flowprobe_bin())
        .arg("run")
        .arg(&path)
        .arg("--report")
        .arg(format!("html={}", report.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "external asset"
    );

    let browser = Browser::start(&dir.path().join("chromedriver.log"));
    browser.open(&format!("file://{}", report.display()));
    let v = browser.eval(
        "return [document.getElementById('runs').textContent, document.getElementById('failed').textContent, document.querySelectorAll('details.run').length, document.querySelectorAll('details.run.failed[open]').length];",
        json!([]),
    );
    assert_eq!(v, json!(["3 runs", "1 failed", 3, 1]));
    let failure = browser.eval(
        "const a = document.querySelector('#failures .failure[data-scenario=fail] tr.assertion'); return [a.querySelector('.where').textContent, a.querySelector('.actual').textContent, a.querySelector('.expected').textContent];",
        json!([]),
    );
    let where_ = failure[0].as_str().unwrap();
    assert!(where_.contains("fail.yaml:9"), "{failure}");
    assert_eq!(failure[1], "500");
    assert_eq!(failure[2], "== 200");
    let wf = browser.eval(
        "const d = document.querySelector('details.run.failed'); return [d.querySelectorAll('g.wf-step').length, d.querySelectorAll('g.wf-step.failed').length, d.querySelector('g.wf-step.failed').dataset.step, d.querySelectorAll('rect.phase').length];",
        json!([]),
    );
    assert_eq!(wf[0], 3, "{wf}");
    assert_eq!(wf[1], 1, "{wf}");
    assert_eq!(wf[2], "api", "{wf}");
    assert!(wf[3].as_u64().unwrap() >= 4, "{wf}");
    browser.screenshot(&artifact("report.png"));
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
