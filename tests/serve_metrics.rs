//! `flowprobe serve` against the real local stack (nginx ingress with TLS in front of the test
//! backends): counters, histograms, phases, certificate and latency gauges move as they should
//! for passing and failing scenarios; `promtool check metrics` is clean; /status as JSON and
//! HTML; JSON logs with one event per run and per failed step; no secret anywhere; a real
//! Prometheus server scrapes the prober and answers a query for `flowprobe_runs_total`.

mod support;

use std::time::{Duration, SystemTime};

use support::backend::Backend;
use support::nginx::Ingress;
use support::otlp::Receiver;
use support::prometheus::{
    check_metrics, find, http_get, scenario_dir, value, wait_until, Prober, PrometheusServer,
};

const SHOP_PASSWORD: &str = "correct-horse-battery";
const API_TOKEN: &str = "tok-5ecr3t-api-7f3a9";

/// Logs in through the ingress (TLS), calls the API with the token, logs out in `finally`.
const SHOP_LOGIN: &str = r#"
name: shop-login
labels: {team: shop}
schedule: {interval: 1s, timeout: 10s}
slo: {availability: 99%, latency: {threshold: 750ms, objective: 99%}}
secrets:
  password: {env: SHOP_PROBE_PASSWORD}
defaults:
  http:
    resolve: {"${{ vars.ingress_host }}": "${{ vars.ingress_addr }}"}
    tls: {ca_file: "${{ vars.ca_file }}"}
steps:
  - name: health
    http: {url: "https://${{ vars.ingress_host }}/health"}
    assert: ["status == 200", 'body == "ok"']
  - name: login
    http:
      method: POST
      url: https://${{ vars.ingress_host }}/login
      body: {json: {username: "${{ vars.username }}", password: "${{ secrets.password }}"}}
    capture:
      token: {query: 'jsonpath "$.token"', secret: true}
      user_id: jsonpath "$.id"
  - name: item
    http:
      url: https://${{ vars.ingress_host }}/api/items/${{ steps.login.user_id }}
      auth: {bearer: "${{ steps.login.token }}"}
    assert: ["status == 200", "certificate expires_in > 14d"]
finally:
  - name: logout
    http:
      method: POST
      url: https://${{ vars.ingress_host }}/logout
      auth: {bearer: "${{ steps.login.token }}"}
"#;

/// Fails on its first step's status assertion; the failure message quotes the response, which
/// echoes the token back (it must be redacted). The second step is skipped.
const API_BROKEN: &str = r#"
name: api-broken
schedule: {interval: 1s}
secrets:
  token: {env: API_TOKEN}
steps:
  - name: status
    # The answer starts with the token (every request's headers, traceparent included, follow).
    http: {url: "${{ vars.api }}/echo500?pad=0&first=query:token&token=${{ secrets.token }}"}
    assert: ["status == 503"]
  - name: never
    http: {url: "${{ vars.api }}/health"}
"#;

/// Fails an assertion whose text is markup, for the HTML page's escaping.
const MARKUP: &str = r#"
name: markup
schedule: {interval: 1s}
steps:
  - name: page
    http: {url: "${{ vars.api }}/text"}
    assert: ['body contains "<script>alert(1)</script>"']
"#;

fn vars(ing: &Ingress, api: &Backend) -> Vec<String> {
    let mut v: Vec<String> = ing
        .vars()
        .into_iter()
        .flat_map(|(k, val)| ["--var".to_string(), format!("{k}={val}")])
        .collect();
    v.extend(["--var".into(), format!("api={}", api.url())]);
    v
}

#[test]
fn metrics_status_and_logs_follow_passing_and_failing_runs() {
    let ing = Ingress::start();
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[
        ("shop-login.yaml", SHOP_LOGIN),
        ("api-broken.yaml", API_BROKEN),
        ("markup.yaml", MARKUP),
    ]);
    let mut args = vars(&ing, &api);
    args.extend([
        "--latency-summary".into(),
        "--label".into(),
        "location=test-1".into(),
        "--log-format".into(),
        "json".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("serve.log");
    let probe = Prober::start(
        &[&scenarios],
        &args,
        &[
            ("SHOP_PROBE_PASSWORD", SHOP_PASSWORD),
            ("API_TOKEN", API_TOKEN),
        ],
        &log,
    );

    // Before any run completes every scenario × outcome series is there; per-reason counters
    // come with their first increment.
    let first = probe.scrape();
    for sc in ["shop-login", "api-broken", "markup"] {
        for outcome in ["success", "failure"] {
            assert!(
                value(
                    &first,
                    "flowprobe_runs_total",
                    &[("scenario", sc), ("outcome", outcome)]
                )
                .is_some(),
                "{sc} {outcome} missing:\n{first}"
            );
        }
    }
    assert!(
        find(&first, "flowprobe_step_failures_total", &[]).is_empty(),
        "{first}"
    );

    let text = wait_until(Duration::from_secs(40), "3 runs of each scenario", || {
        let t = probe.scrape();
        let ok = value(
            &t,
            "flowprobe_runs_total",
            &[("scenario", "shop-login"), ("outcome", "success")],
        )? >= 3.0
            && value(
                &t,
                "flowprobe_runs_total",
                &[("scenario", "api-broken"), ("outcome", "failure")],
            )? >= 3.0
            && value(
                &t,
                "flowprobe_runs_total",
                &[("scenario", "markup"), ("outcome", "failure")],
            )? >= 1.0;
        ok.then_some(t)
    });
    check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let v = |name: &str, labels: &[(&str, &str)]| {
        value(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    // Every series carries the constant label and the scenario's static labels.
    for s in support::prometheus::parse(&text)
        .iter()
        .filter(|s| s.name.starts_with("flowprobe_") && s.label("scenario").is_some())
    {
        assert_eq!(s.label("location"), Some("test-1"), "{s:?}");
        if s.label("scenario") == Some("shop-login") {
            assert_eq!(s.label("team"), Some("shop"), "{s:?}");
        }
    }

    // The passing scenario.
    let shop = [("scenario", "shop-login")];
    let runs = v("flowprobe_runs_total", &[shop[0], ("outcome", "success")]);
    assert_eq!(
        v("flowprobe_runs_total", &[shop[0], ("outcome", "failure")]),
        0.0
    );
    let count = v("flowprobe_run_duration_seconds_count", &shop);
    assert!(count >= runs && count <= runs + 1.0, "{count} vs {runs}");
    // The SLO threshold is a bucket, and buckets are cumulative.
    let buckets = find(&text, "flowprobe_run_duration_seconds_bucket", &shop);
    assert!(
        buckets.iter().any(|b| b.label("le") == Some("0.75")),
        "{buckets:?}"
    );
    for w in buckets.windows(2) {
        assert!(w[0].value <= w[1].value, "{buckets:?}");
    }
    assert_eq!(buckets.last().and_then(|b| b.label("le")), Some("+Inf"));
    assert!(find(&text, "flowprobe_step_failures_total", &shop).is_empty());
    assert!(
        v(
            "flowprobe_step_duration_seconds_count",
            &[shop[0], ("step", "logout"), ("kind", "http")]
        ) >= 3.0
    );
    // Phase histograms are native-only: not in the text exposition.
    assert!(!text.contains("flowprobe_phase_duration_seconds"));
    assert_eq!(v("flowprobe_scenario_success", &shop), 1.0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = v("flowprobe_last_success_timestamp_seconds", &shop);
    assert!(last <= now + 1.0 && last > now - 30.0, "{last} vs {now}");
    let expiry = v(
        "flowprobe_certificate_expiry_timestamp_seconds",
        &[shop[0], ("step", "item")],
    );
    assert!(expiry > now + 14.0 * 86400.0, "{expiry}");
    let q = |quantile: &str| {
        v(
            "flowprobe_step_latency_seconds",
            &[shop[0], ("step", "item"), ("quantile", quantile)],
        )
    };
    assert!(q("0.5") > 0.0 && q("0.5") <= q("0.99") && q("0.99") <= q("1.0") && q("1.0") < 10.0);

    // The failing scenarios.
    let broken = [("scenario", "api-broken")];
    assert_eq!(
        v("flowprobe_runs_total", &[broken[0], ("outcome", "success")]),
        0.0
    );
    let failures = v("flowprobe_runs_total", &[broken[0], ("outcome", "failure")]);
    let by_reason = v(
        "flowprobe_step_failures_total",
        &[broken[0], ("step", "status"), ("reason", "http_status")],
    );
    assert!(
        by_reason >= failures && by_reason <= failures + 1.0,
        "{by_reason} vs {failures}"
    );
    assert!(value(
        &text,
        "flowprobe_step_failures_total",
        &[broken[0], ("step", "status"), ("reason", "connect")]
    )
    .is_none());
    // The skipped step ran never: its series stay at 0.
    assert_eq!(
        v(
            "flowprobe_step_duration_seconds_count",
            &[broken[0], ("step", "never")]
        ),
        0.0
    );
    assert_eq!(v("flowprobe_scenario_success", &broken), 0.0);
    assert!(value(&text, "flowprobe_last_success_timestamp_seconds", &broken).is_none());
    assert!(
        v(
            "flowprobe_step_failures_total",
            &[
                ("scenario", "markup"),
                ("step", "page"),
                ("reason", "assertion")
            ]
        ) >= 1.0
    );
    // The other formats, by Accept, with their exact content types.
    let (code, ctype, om) = http_get(
        probe.port,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        ctype,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE flowprobe_runs counter"));
    assert!(om.contains(" # {trace_id=\""), "exemplars in\n{om}");
    let (code, ctype, _) = http_get(
        probe.port,
        "/metrics",
        Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9,*/*;q=0.1"),
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        ctype,
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );

    // /status: last outcomes with steps, reasons, redacted messages, next runs.
    let status = probe.status();
    assert_eq!(status["ready"], true);
    let scenarios = status["scenarios"].as_array().unwrap();
    let get = |name: &str| {
        scenarios
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let b = get("api-broken");
    let steps = b["last_run"]["steps"].as_array().unwrap();
    assert_eq!(steps[0]["reason"], "http_status");
    assert_eq!(steps[1]["status"], "skipped");
    let message = steps[0]["message"].as_str().unwrap();
    assert!(message.contains("[redacted:token]"), "{message}");
    assert!(b["next_run"].as_str().is_some());
    assert!(b["runs"]["failure"].as_u64().unwrap() >= 3);
    let s = get("shop-login");
    assert_eq!(s["last_run"]["success"], true);
    assert_eq!(s["last_run"]["steps"].as_array().unwrap().len(), 4);
    assert_eq!(s["interval_seconds"], 1.0);

    // The HTML page: the same handler, by content negotiation, everything escaped.
    let (code, ctype, html) = http_get(
        probe.port,
        "/status",
        Some("text/html,application/xhtml+xml"),
    )
    .unwrap();
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(html.contains("shop-login") && html.contains("api-broken"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");

    // Health and readiness.
    assert_eq!(http_get(probe.port, "/healthz", None).unwrap().0, 200);
    assert_eq!(http_get(probe.port, "/readyz", None).unwrap().0, 200);

    // JSON logs: one event per run and per failed step, with scenario, step and reason.
    let logs = probe.log_text();
    let events: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(events.len() >= 6, "{logs}");
    let failed_step = events
        .iter()
        .find(|e| e["fields"]["message"] == "step failed" && e["span"]["scenario"] == "api-broken")
        .unwrap_or_else(|| panic!("no failed-step event for api-broken in\n{logs}"));
    assert_eq!(failed_step["fields"]["step"], "status");
    assert_eq!(failed_step["fields"]["reason"], "http_status");
    let runs_logged = events
        .iter()
        .filter(|e| {
            e["fields"]["message"] == "run finished" && e["fields"]["scenario"] == "shop-login"
        })
        .count();
    assert!(runs_logged >= 3, "{logs}");

    // Secrets never leave: not in metrics, status (JSON or HTML) or logs.
    let html_status = html;
    let json_status = status.to_string();
    for (what, out) in [
        ("metrics", &text),
        ("status", &json_status),
        ("html", &html_status),
        ("logs", &logs),
    ] {
        for secret in [SHOP_PASSWORD, API_TOKEN] {
            assert!(!out.contains(secret), "secret in {what}");
        }
    }
    // The issued bearer tokens (captured as secrets) do not leak either.
    for token in ing.app_a.issued_tokens() {
        for (what, out) in [
            ("metrics", &text),
            ("status", &json_status),
            ("logs", &logs),
        ] {
            assert!(!out.contains(&token), "token in {what}");
        }
    }
}

#[test]
fn a_real_prometheus_scrapes_the_prober() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[(
        "health.yaml",
        "name: api-health\nschedule: {interval: 1s}\nsteps:\n  - name: health\n    http: {url: \"${{ vars.api }}/health\"}\n",
    )]);
    let var = format!("api={}", api.url());
    let probe = Prober::start(
        &[&scenarios],
        &["--var", &var],
        &[],
        &dir.path().join("serve.log"),
    );
    let prom = PrometheusServer::start(&[format!("127.0.0.1:{}", probe.port)])
        .unwrap_or_else(|e| panic!("{e}"));
    let result = wait_until(
        Duration::from_secs(30),
        "Prometheus to have flowprobe_runs_total",
        || {
            let r = prom
                .query(r#"flowprobe_runs_total{scenario="api-health",outcome="success"} > 0"#)
                .ok()?;
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(result[0]["metric"]["job"], "flowprobe");
    assert_eq!(result[0]["metric"]["outcome"], "success");
    let runs: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(runs >= 1.0);
    // The scrape itself is healthy (Prometheus parsed the whole exposition).
    let up = prom.query("up{job=\"flowprobe\"}").unwrap();
    assert_eq!(up[0]["value"][1], "1", "{}", prom.targets());
    // Histograms work in PromQL: the bucket series of the run duration are there.
    let buckets = prom
        .query(r#"count(flowprobe_run_duration_seconds_bucket{scenario="api-health"})"#)
        .unwrap();
    let n: f64 = buckets[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(
        n as usize,
        flowprobe::serve::metrics::DEFAULT_BUCKETS.len() + 1
    );
}

/// A one-step scenario every second against the API backend, with an SLO latency bucket.
const HEALTH: &str = "name: api-health\nschedule: {interval: 1s}\nslo: {availability: 99%, latency: {threshold: 300ms, objective: 99%}}\nsteps:\n  - name: health\n    http: {url: \"${{ vars.api }}/health\"}\n";

/// The trace and run ids of the runs `/status` showed as last run while polling for `wait`.
fn observed_runs(probe: &Prober, wait: Duration) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let end = std::time::Instant::now() + wait;
    while std::time::Instant::now() < end {
        let status = probe.status();
        for sc in status["scenarios"].as_array().into_iter().flatten() {
            let last = &sc["last_run"];
            if let (Some(t), Some(r)) = (last["trace_id"].as_str(), last["run_id"].as_str()) {
                let pair = (t.to_string(), r.to_string());
                if !seen.contains(&pair) {
                    seen.push(pair);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

/// Exemplars Prometheus stored for series matching `selector` over the last 5 minutes:
/// (series name, trace_id, run_id).
fn stored_exemplars(prom: &PrometheusServer, selector: &str) -> Vec<(String, String, String)> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q: String = url::form_urlencoded::byte_serialize(selector.as_bytes()).collect();
    let path = format!(
        "/api/v1/query_exemplars?query={q}&start={}&end={}",
        now - 300,
        now + 60
    );
    let data = prom.api(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for series in data.as_array().into_iter().flatten() {
        let name = series["seriesLabels"]["__name__"]
            .as_str()
            .unwrap_or("")
            .to_string();
        for e in series["exemplars"].as_array().into_iter().flatten() {
            let l = &e["labels"];
            out.push((
                name.clone(),
                l["trace_id"].as_str().unwrap_or("").to_string(),
                l["run_id"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

/// The last scrape of every target succeeded (Prometheus parsed the whole exposition).
fn scrapes_are_clean(prom: &PrometheusServer) {
    let up = prom.query("up{job=\"flowprobe\"}").unwrap();
    assert_eq!(up[0]["value"][1], "1", "{}", prom.targets());
    let targets: serde_json::Value =
        serde_json::from_str(&http_get(prom.port, "/api/v1/targets", None).unwrap().2).unwrap();
    for t in targets["data"]["activeTargets"].as_array().unwrap() {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["lastError"], "", "{t}");
    }
}

#[test]
fn prometheus_ingests_native_histograms_and_exemplars_over_protobuf() {
    let api = Backend::start("api");
    // The runs' spans go to a real OTLP/HTTP receiver: an exemplar must lead to a trace the
    // tracing backend got.
    let otlp = Receiver::start();
    let (dir, scenarios) = scenario_dir(&[("health.yaml", HEALTH)]);
    let var = format!("api={}", api.url());
    let endpoint = otlp.url();
    let probe = Prober::start(
        &[&scenarios],
        &["--var", &var],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
        &dir.path().join("serve.log"),
    );
    let prom = PrometheusServer::start_with_flags(
        &[format!("127.0.0.1:{}", probe.port)],
        None,
        &["--enable-feature=native-histograms,exemplar-storage"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let runs = observed_runs(&probe, Duration::from_secs(6));
    assert!(runs.len() >= 3, "{runs:?}");
    let count = wait_until(Duration::from_secs(40), "a native histogram rate", || {
        let r = prom
            .query("histogram_count(rate(flowprobe_step_duration_seconds[1m]))")
            .ok()?;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        // About one run a second, once the range holds a few scrapes.
        (v > 0.5).then_some(v)
    });
    assert!(count < 5.0, "{count} runs/s");
    let q = prom
        .query("histogram_quantile(0.5, rate(flowprobe_step_duration_seconds[1m]))")
        .unwrap();
    let p50: f64 = q[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p50 > 0.0 && p50 < 1.0, "{p50}");
    // The run duration stays a classic histogram: its `le` buckets, the SLO's included, are
    // stored for the SLO rules.
    let slo = prom
        .query(r#"flowprobe_run_duration_seconds_bucket{scenario="api-health",le="0.3"}"#)
        .unwrap();
    assert_eq!(slo.len(), 1, "{slo:?}");
    // Prometheus 2.42 keeps only the native form of a histogram that has both (no
    // scrape_classic_histograms before 2.45): say what this one did.
    let classic = prom
        .query(r#"count(flowprobe_step_duration_seconds_bucket{scenario="api-health"})"#)
        .unwrap();
    eprintln!("classic step duration buckets stored beside the native histogram: {classic:?}");
    scrapes_are_clean(&prom);
    let exemplars = wait_until(Duration::from_secs(20), "exemplars", || {
        let e = stored_exemplars(
            &prom,
            r#"{__name__=~"flowprobe_(run|step)_duration_seconds.*"}"#,
        );
        (!e.is_empty()).then_some(e)
    });
    let more = observed_runs(&probe, Duration::from_millis(1500));
    let runs: Vec<(String, String)> = runs.into_iter().chain(more).collect();
    let mut names: Vec<&str> = exemplars.iter().map(|(n, _, _)| n.as_str()).collect();
    names.dedup();
    eprintln!("{} exemplars on {names:?}", exemplars.len());
    // The native step histogram has exemplars too (Prometheus takes them from its classic
    // buckets), each a run /status showed.
    for series in [
        "flowprobe_step_duration_seconds",
        "flowprobe_run_duration_seconds_bucket",
    ] {
        let matched = exemplars
            .iter()
            .filter(|(n, t, r)| n == series && runs.contains(&(t.clone(), r.clone())))
            .count();
        assert!(
            matched > 0,
            "no {series} exemplar of a run /status showed: {exemplars:?} vs {runs:?}"
        );
    }
    for (_, t, _) in &exemplars {
        assert_eq!(t.len(), 32, "{t}");
    }
    // Spans are exported in batches of up to a second after their run.
    let exported = wait_until(
        Duration::from_secs(10),
        "an exemplar's trace at the receiver",
        || {
            let traces: Vec<String> = otlp.spans().iter().map(|s| s.trace_id()).collect();
            let n = exemplars
                .iter()
                .filter(|(_, t, _)| traces.contains(t))
                .count();
            (n > 0).then_some(n)
        },
    );
    eprintln!(
        "{exported} of {} exemplars lead to exported traces",
        exemplars.len()
    );
}

#[test]
fn prometheus_parses_the_openmetrics_exposition_with_exemplars() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[("health.yaml", HEALTH)]);
    let var = format!("api={}", api.url());
    let probe = Prober::start(
        &[&scenarios],
        &["--var", &var],
        &[],
        &dir.path().join("serve.log"),
    );
    // Without native histograms Prometheus asks for OpenMetrics first.
    let prom = PrometheusServer::start_with_flags(
        &[format!("127.0.0.1:{}", probe.port)],
        None,
        &["--enable-feature=exemplar-storage"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let runs = observed_runs(&probe, Duration::from_secs(5));
    wait_until(Duration::from_secs(30), "runs in Prometheus", || {
        let r = prom
            .query(r#"flowprobe_runs_total{scenario="api-health",outcome="success"} > 1"#)
            .ok()?;
        (!r.is_empty()).then_some(())
    });
    scrapes_are_clean(&prom);
    // OpenMetrics' _created series were parsed as such (a counter's creation time).
    let created = prom
        .query(r#"flowprobe_runs_created{scenario="api-health",outcome="success"}"#)
        .unwrap();
    eprintln!("flowprobe_runs_created: {created:?}");
    let exemplars = wait_until(Duration::from_secs(20), "exemplars", || {
        let e = stored_exemplars(&prom, "flowprobe_step_duration_seconds_bucket");
        (!e.is_empty()).then_some(e)
    });
    let more = observed_runs(&probe, Duration::from_millis(1500));
    let runs: Vec<(String, String)> = runs.into_iter().chain(more).collect();
    assert!(
        exemplars
            .iter()
            .any(|(_, t, r)| runs.contains(&(t.clone(), r.clone()))),
        "{exemplars:?} vs {runs:?}"
    );
    // The text exposition stays within budget: at most 30 series for this one-step scenario.
    let text = probe.scrape();
    check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let series = support::prometheus::parse(&text)
        .into_iter()
        .filter(|s| s.label("scenario") == Some("api-health"))
        .count();
    assert!(series <= 30, "{series} series:\n{text}");
}
