//! The Grafana dashboard shows data: every panel's and every variable's query, as Grafana would
//! send it, answered by a real Prometheus that scraped two real `flowprobe serve` replicas in
//! two locations (a passing and a failing scenario, TLS through nginx) and evaluated the rules
//! `flowprobe slo` generated from the same scenarios. The latency burn panel included. And the
//! success panels show the worst location, not the best.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use regex::Regex;
use support::nginx::{Ingress, SHOP};
use support::prometheus::{scenario_dir, wait_until, Prober, PrometheusServer};

const DEFAULTS: &str = "defaults:\n  http:\n    resolve: {shop.test: 127.0.0.1}\n    tls: {ca_file: \"${{ vars.ca }}\"}\n";
const SLO: &str =
    "slo:\n  availability: 99%\n  latency: {threshold: 1s, objective: 99%}\n  window: 30d\n";

fn dashboard() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/base/dashboards/flowprobe-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A query as Grafana sends it with every variable on "All" and a short time range.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
        .replace("$scenario", ".*")
        .replace("$location", ".*")
        .replace("$step", ".*")
}

/// The result of the first query of the panel titled `title`.
fn first_query_of(
    dash: &serde_json::Value,
    prom: &PrometheusServer,
    title: &str,
) -> Vec<serde_json::Value> {
    let panel = dash["panels"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["title"] == title))
        .unwrap_or_else(|| panic!("no panel {title}"));
    let expr = panel["targets"][0]["expr"].as_str().unwrap_or_default();
    prom.query(&as_grafana_sends(expr))
        .unwrap_or_else(|e| panic!("{title}: {e}"))
}

#[test]
fn every_panel_and_variable_query_returns_data_from_a_real_prometheus() {
    let ing = Ingress::start();
    let ok = format!(
        "name: shop-ok\nschedule: {{interval: 1s}}\n{DEFAULTS}{SLO}steps:\n  - name: health\n    http: {{url: \"{}/health\"}}\n",
        ing.https(SHOP)
    );
    let broken = format!(
        "name: shop-broken\nschedule: {{interval: 1s}}\n{DEFAULTS}{SLO}steps:\n  - name: api\n    http: {{url: \"{}/status/500\"}}\n    retry: {{attempts: 2, interval: 10ms}}\n",
        ing.https(SHOP)
    );
    // Fails in one location only: what a `max` over locations would hide.
    let regional = format!(
        "name: shop-regional\nschedule: {{interval: 1s}}\n{DEFAULTS}steps:\n  - name: home\n    http: {{url: \"{}/status/${{{{ env.DASHBOARD_TEST_STATUS }}}}\"}}\n",
        ing.https(SHOP)
    );
    let (dir, scenarios) = scenario_dir(&[
        ("ok.yaml", &ok),
        ("broken.yaml", &broken),
        ("regional.yaml", &regional),
    ]);
    let rules = dir.path().join("rules.yaml");
    let ca = format!("ca={}", ing.ca.ca_file().display());
    let out = Command::new(support::flowprobe_bin())
        .args([
            "slo",
            scenarios.to_str().unwrap(),
            "-o",
            rules.to_str().unwrap(),
        ])
        .args(["--var", &ca])
        .env("DASHBOARD_TEST_STATUS", "200")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let probers: Vec<Prober> = [("eu", "200"), ("us", "503")]
        .iter()
        .map(|(loc, status)| {
            let label = format!("location={loc}");
            Prober::start(
                &[&scenarios],
                &["--var", &ca, "--label", &label],
                &[("DASHBOARD_TEST_STATUS", status)],
                &dir.path().join(format!("serve-{loc}.log")),
            )
        })
        .collect();
    let targets: Vec<String> = probers
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port))
        .collect();
    // Native histograms on: the phase panel reads them (protobuf scrapes only).
    let prom = PrometheusServer::start_with_flags(
        &targets,
        Some(&rules),
        &["--enable-feature=native-histograms"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Enough runs for rate() windows and the recording rules of both SLIs.
    wait_until(Duration::from_secs(60), "runs and recorded SLIs", || {
        let runs = prom.query("sum(flowprobe_runs_total)").ok()?;
        let n: f64 = runs.first()?["value"][1].as_str()?.parse().ok()?;
        let slow = prom
            .query("scenario:flowprobe_runs_slow:ratio_rate5m")
            .ok()?;
        (n >= 24.0 && slow.len() == 2).then_some(())
    });
    // Let every scrape see a few more runs.
    std::thread::sleep(Duration::from_secs(3));

    let dash = dashboard();
    let label_values = Regex::new(r"^label_values\((.*),\s*([a-z_]+)\)$").unwrap();
    let mut empty = Vec::new();
    let mut queried = 0;
    for var in dash["templating"]["list"].as_array().unwrap() {
        let Some(q) = var["query"]["query"].as_str() else {
            continue;
        };
        let cap = label_values
            .captures(q)
            .unwrap_or_else(|| panic!("unexpected variable query {q}"));
        let values = prom
            .label_values(&cap[2], &as_grafana_sends(&cap[1]))
            .unwrap_or_else(|e| panic!("{e}"));
        queried += 1;
        if values.is_empty() {
            empty.push(format!("variable {}: {q}", var["name"]));
        }
        if var["name"] == "location" {
            assert_eq!(values, ["eu", "us"]);
        }
    }
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = as_grafana_sends(target["expr"].as_str().unwrap());
            let result = prom
                .query(&expr)
                .unwrap_or_else(|e| panic!("panel {}: {e}", panel["title"]));
            queried += 1;
            if result.is_empty() {
                empty.push(format!("panel {}: {expr}", panel["title"]));
            }
        }
    }
    assert!(
        empty.is_empty(),
        "queries without data:\n{}\n\ntargets: {}",
        empty.join("\n"),
        prom.targets()
    );
    assert!(queried >= 30, "only {queried} queries");

    // The success stat is the worst location: it fails when any location fails.
    let per_scenario = first_query_of(&dash, &prom, "Last run per scenario (worst location)");
    let value_of = |name: &str| {
        per_scenario
            .iter()
            .find(|r| r["metric"]["scenario"] == name)
            .and_then(|r| r["value"][1].as_str().map(String::from))
    };
    assert_eq!(value_of("shop-ok").as_deref(), Some("1"));
    assert_eq!(value_of("shop-broken").as_deref(), Some("0"));
    assert_eq!(
        value_of("shop-regional").as_deref(),
        Some("0"),
        "{per_scenario:?}"
    );
    let rows = first_query_of(&dash, &prom, "Last run per scenario and location");
    let mut regional: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["metric"]["scenario"] == "shop-regional")
        .map(|r| {
            (
                r["metric"]["location"].as_str().unwrap_or("").to_string(),
                r["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    regional.sort();
    assert_eq!(
        regional,
        [
            ("eu".to_string(), "1".to_string()),
            ("us".to_string(), "0".to_string())
        ]
    );
    drop(probers);
}
