//! Trace export against a real OTLP/HTTP receiver (tests/support/otlp.rs decodes the official
//! protobuf): `flowprobe run` and `flowprobe serve` export one trace per run — a root span, a
//! span per step that ran, a child span per attempt of a step that retried — whose ids are the
//! report's and the `traceparent` the backend saw; attributes, statuses and the resource's
//! service name; export is off without an endpoint, a hanging receiver does not fail the run,
//! `http/json` works, `grpc` is refused at start, and header values never reach the output.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::backend::Backend;
use support::otlp::{Blackhole, ReceivedSpan, Receiver};
use support::prometheus::{scenario_dir, wait_until, Prober};

/// Every OTEL_* variable the exporter reads: removed from the test's own environment.
const OTEL_VARS: &[&str] = &[
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
];

const SECRET: &str = "Zq9OtlpHeaderSecret";

/// A passing step, a step that passes on its second attempt, a failing step, a skipped one.
const FLOW: &str = r#"
name: flow
steps:
  - name: echo
    http: {url: "${{ vars.api }}/echo500/x"}
    assert: ["status == 500"]
  - name: flaky
    http: {url: "${{ vars.api }}/flaky/${{ run.id }}/1"}
    retry: {attempts: 3, interval: 10ms}
  - name: broken
    http: {url: "${{ vars.api }}/status/503"}
  - name: never
    http: {url: "${{ vars.api }}/health"}
"#;

const PASSING: &str = r#"
name: passing
schedule: {interval: 1s, timeout: 10s}
steps:
  - name: home
    http: {url: "${{ vars.api }}/health"}
"#;

fn run(paths: &[&Path], args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(support::flowprobe_bin());
    cmd.arg("run").args(paths).args(args).env_remove("RUST_LOG");
    for v in OTEL_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run flowprobe")
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs FLOW once against `api` with export to `rx`; the JSON report's one run.
fn run_flow(api: &Backend, env: &[(&str, String)]) -> (Output, Value) {
    let (dir, scenarios) = scenario_dir(&[("flow.yaml", FLOW)]);
    let report = dir.path().join("report.json");
    let out = run(
        &[&scenarios],
        &[
            "-v",
            "--var",
            &format!("api={}", api.url()),
            "--report",
            &format!("json={}", report.display()),
        ],
        env,
    );
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let doc: Value = serde_json::from_str(&text).expect("JSON report");
    (out, doc["runs"][0].clone())
}

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no span {name}: {:?}", names(spans)))
}

fn names(spans: &[ReceivedSpan]) -> Vec<String> {
    spans.iter().map(|s| s.span.name.clone()).collect()
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

const CLIENT: i32 = 3;
const INTERNAL: i32 = 1;
const OK: i32 = 1;
const ERROR: i32 = 2;

#[test]
fn run_exports_a_root_span_step_spans_and_attempt_spans_with_the_reports_ids() {
    let api = Backend::start("api");
    let rx = Receiver::start();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url()),
        ("OTEL_SERVICE_NAME", "probe-eu".to_string()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,service.name=ignored".to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("authorization=Bearer%20{SECRET}"),
        ),
    ];
    let (out, report) = run_flow(&api, &env);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // The run has exited: its spans were flushed before.
    let spans = rx.spans();
    assert_eq!(rx.rejected(), 0);
    let req = &rx.requests()[0];
    assert_eq!(req.content_type, "application/x-protobuf");
    assert_eq!(
        req.headers.get("authorization").map(|v| v.as_bytes()),
        Some(format!("Bearer {SECRET}").as_bytes())
    );
    assert!(!show(&out).contains(SECRET), "{}", show(&out));

    // root, echo, flaky + its 2 attempts, broken; the skipped step has none.
    assert_eq!(names(&spans).len(), 6, "{:?}", names(&spans));
    let trace_id = report["trace_id"].as_str().expect("trace_id");
    assert!(spans.iter().all(|s| s.trace_id() == trace_id));
    assert!(spans
        .iter()
        .all(|s| s.resource_attr("service.name").as_deref() == Some("probe-eu")));
    assert_eq!(
        spans[0].resource_attr("deployment.environment").as_deref(),
        Some("test")
    );

    // The run's log events carry the trace id, the failed step's among them.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = stderr
        .lines()
        .find(|l| l.contains("step failed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(failed.contains(&format!("trace_id={trace_id}")), "{failed}");

    let root = by_name(&spans, "flow");
    assert_eq!(root.parent_id(), "");
    assert_eq!(root.span_id(), report["span_id"].as_str().unwrap());
    assert_eq!(root.status().0, ERROR);
    assert_eq!(
        root.attr("flowprobe.reason").as_deref(),
        Some("http_status")
    );

    let echo = by_name(&spans, "echo");
    assert_eq!(echo.parent_id(), root.span_id());
    assert_eq!(
        echo.span_id(),
        step(&report, "echo")["span_id"].as_str().unwrap()
    );
    assert_eq!(echo.span.kind, CLIENT);
    assert_eq!(echo.status().0, OK);
    assert_eq!(echo.attr("flowprobe.scenario").as_deref(), Some("flow"));
    assert_eq!(echo.attr("flowprobe.step").as_deref(), Some("echo"));
    assert_eq!(echo.attr("flowprobe.step.kind").as_deref(), Some("http"));
    assert_eq!(echo.attr("flowprobe.attempt").as_deref(), Some("1"));
    assert_eq!(
        echo.attr("http.response.status_code").as_deref(),
        Some("500")
    );
    let location = step(&report, "echo")["location"].as_str().map(String::from);
    assert!(location
        .as_deref()
        .is_some_and(|l| l.contains("flow.yaml:")));
    assert_eq!(echo.attr("flowprobe.location"), location);
    assert!(echo.span.start_time_unix_nano >= root.span.start_time_unix_nano);
    assert!(echo.span.end_time_unix_nano <= root.span.end_time_unix_nano);
    assert!(echo.span.end_time_unix_nano > echo.span.start_time_unix_nano);

    let flaky = by_name(&spans, "flaky");
    assert_eq!(flaky.span.kind, INTERNAL);
    assert_eq!(flaky.attr("flowprobe.attempts").as_deref(), Some("2"));
    let attempts = step(&report, "flaky")["attempt_spans"]
        .as_array()
        .expect("attempt spans");
    for (n, want_code, http) in [(1, ERROR, "503"), (2, OK, "200")] {
        let a = by_name(&spans, &format!("flaky attempt {n}"));
        assert_eq!(a.parent_id(), flaky.span_id());
        assert_eq!(a.span.kind, CLIENT);
        assert_eq!(a.span_id(), attempts[n - 1]["span_id"].as_str().unwrap());
        assert_eq!(a.status().0, want_code);
        assert_eq!(a.attr("flowprobe.attempt"), Some(n.to_string()));
        assert_eq!(a.attr("http.response.status_code").as_deref(), Some(http));
    }

    let broken = by_name(&spans, "broken");
    let (code, message) = broken.status();
    assert_eq!(code, ERROR);
    assert!(message.starts_with("http_status: HTTP 503"), "{message}");
    assert_eq!(
        broken.attr("flowprobe.reason").as_deref(),
        Some("http_status")
    );
}

/// Needs the http step to send `traceparent` from its context (the transport work).
#[test]
fn the_backend_saw_the_traceparent_of_the_exported_step_span() {
    let api = Backend::start("api");
    let rx = Receiver::start();
    let (out, report) = run_flow(&api, &[("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url())]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let spans = rx.spans();
    let echo = by_name(&spans, "echo");
    let want = format!("00-{}-{}-01", echo.trace_id(), echo.span_id());
    assert_eq!(echo.trace_id(), report["trace_id"].as_str().unwrap());
    assert_eq!(
        api.echoed_header("traceparent"),
        vec![want],
        "the backend's traceparent is not the exported span's"
    );
}

#[test]
fn export_is_off_without_an_endpoint_and_with_otel_sdk_disabled() {
    let api = Backend::start("api");
    let rx = Receiver::start();
    let (out, report) = run_flow(&api, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(report["trace_id"].as_str().is_some_and(|t| t.len() == 32));
    let (out, _) = run_flow(
        &api,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url()),
            ("OTEL_SDK_DISABLED", "true".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(rx.requests().is_empty());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("OTLP"));
}

#[test]
fn a_hanging_receiver_does_not_fail_the_run_and_exit_waits_a_bounded_time() {
    let api = Backend::start("api");
    let hole = Blackhole::start();
    let (dir, scenarios) = scenario_dir(&[("passing.yaml", PASSING)]);
    let report = dir.path().join("r.json");
    let t = Instant::now();
    let out = run(
        &[&scenarios],
        &[
            "-v",
            "--var",
            &format!("api={}", api.url()),
            "--report",
            &format!("json={}", report.display()),
        ],
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", hole.port),
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000".into()),
        ],
    );
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let step_took = doc["runs"][0]["steps"][0]["duration"].as_f64().unwrap();
    assert!(step_took < 5.0, "the step itself waited: {step_took} s");
    // Exit waits for the flush at most 5 s, not the 60 s export timeout.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("were not sent in time"), "{stderr}");
    assert!(stderr.contains("2 spans were not exported"), "{stderr}");
}

#[test]
fn http_json_is_decoded_by_the_receiver_and_grpc_is_refused_at_start() {
    let api = Backend::start("api");
    let rx = Receiver::start();
    let (out, report) = run_flow(
        &api,
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", rx.url()),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(rx.rejected(), 0);
    assert_eq!(rx.requests()[0].content_type, "application/json");
    let spans = rx.spans();
    assert_eq!(
        by_name(&spans, "flow").trace_id(),
        report["trace_id"].as_str().unwrap()
    );
    assert_eq!(
        by_name(&spans, "flow")
            .resource_attr("service.name")
            .as_deref(),
        Some("flowprobe")
    );

    let (dir, scenarios) = scenario_dir(&[("passing.yaml", PASSING)]);
    let out = run(
        &[&scenarios],
        &["--var", &format!("api={}", api.url())],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ],
    );
    drop(dir);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OTLP/HTTP only"),
        "{}",
        show(&out)
    );
    assert_eq!(api.hits("/health"), 0, "nothing runs on a bad setting");
}

fn serve(scenarios: &Path, api: &Backend, endpoint: String, log: PathBuf) -> Prober {
    let env: Vec<(&str, String)> = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let var = format!("api={}", api.url());
    Prober::start(&[scenarios], &["--var", &var], &env, &log)
}

#[test]
fn serve_exports_each_run_and_its_trace_ids_are_in_status() {
    let api = Backend::start("api");
    let rx = Receiver::start();
    let (dir, scenarios) = scenario_dir(&[("passing.yaml", PASSING)]);
    let mut probe = serve(&scenarios, &api, rx.url(), dir.path().join("serve.log"));
    // Two runs (root + step each): batches go out within about a second.
    let spans = rx.wait_for_spans(4, Duration::from_secs(20));
    let status = probe.status();
    let counts = &status["otlp_export"];
    assert!(
        counts["exported_spans"].as_u64().unwrap_or(0) >= 2,
        "{status}"
    );
    assert_eq!(counts["failed_exports"], 0, "{status}");
    // /metrics counts what the receiver took, read from the exporter at each scrape.
    let exported = wait_until(
        Duration::from_secs(10),
        "exported spans on /metrics",
        || {
            let v = probe.metric("flowprobe_otlp_spans_total", &[("result", "exported")]);
            (v >= 2.0).then_some(v)
        },
    );
    assert!(exported >= 2.0, "{exported}");
    // Present at 0 (absent would read as 0 through `metric`).
    assert_eq!(
        support::prometheus::value(&probe.scrape(), "flowprobe_otlp_export_failures_total", &[]),
        Some(0.0)
    );
    let last = &status["scenarios"][0]["last_run"];
    let trace = last["trace_id"].as_str().expect("trace id in /status");
    wait_until(Duration::from_secs(10), "the last run's spans", || {
        rx.spans()
            .iter()
            .any(|s| s.trace_id() == trace)
            .then_some(())
    });
    let root = by_name(&spans, "passing");
    let home = spans
        .iter()
        .find(|s| s.span.name == "home" && s.trace_id() == root.trace_id())
        .expect("the step span of the same run");
    assert_eq!(home.parent_id(), root.span_id());
    assert_eq!(root.status().0, OK);

    // Shutdown flushes: the runs /status counted are all at the receiver after exit.
    probe.guard.signal("TERM");
    wait_until(Duration::from_secs(20), "serve to exit", || {
        probe.guard.child.try_wait().ok().flatten()
    });
    let roots = rx
        .spans()
        .iter()
        .filter(|s| s.span.name == "passing")
        .count();
    assert!(roots >= 2, "{roots}");
    assert!(
        probe.log_text().contains("OTLP export stopped"),
        "{}",
        probe.log_text()
    );
}

#[test]
fn serve_counts_failed_exports_in_status_and_keeps_probing() {
    let api = Backend::start("api");
    // Nothing listens there: every export is refused.
    let port = support::free_port();
    let (dir, scenarios) = scenario_dir(&[("passing.yaml", PASSING)]);
    let probe = serve(
        &scenarios,
        &api,
        format!("http://127.0.0.1:{port}"),
        dir.path().join("serve.log"),
    );
    let status = wait_until(
        Duration::from_secs(20),
        "a failed export in /status",
        || {
            let s = probe.status();
            (s["otlp_export"]["failed_exports"].as_u64().unwrap_or(0) >= 1).then_some(s)
        },
    );
    assert_eq!(
        status["scenarios"][0]["last_run"]["success"], true,
        "{status}"
    );
    assert!(probe.metric("flowprobe_otlp_export_failures_total", &[]) >= 1.0);
    assert!(probe.metric("flowprobe_otlp_spans_total", &[("result", "failed")]) >= 1.0);
    wait_until(Duration::from_secs(10), "more runs", || {
        (api.hits("/health") >= 3).then_some(())
    });
    let log = probe.log_text();
    assert_eq!(
        log.matches("OTLP export failed").count(),
        1,
        "failures are logged at most once a minute:\n{log}"
    );
}

#[test]
fn a_secret_in_a_failing_request_never_reaches_the_receiver() {
    let api = Backend::start("api");
    let rx = Receiver::start();
    let secret = "Zq9PlantedOtelToken77";
    let yaml = r#"
name: secretive
secrets:
  token: {env: FP_OTEL_TEST_TOKEN}
steps:
  - name: leak
    http:
      url: "${{ vars.api }}/echo500/${{ secrets.token }}?first=path"
      headers: {x-token: "${{ secrets.token }}"}
    retry: {attempts: 2, interval: 10ms}
"#;
    let (_dir, scenarios) = scenario_dir(&[("secretive.yaml", yaml)]);
    let out = run(
        &[&scenarios],
        &["-v", "--var", &format!("api={}", api.url())],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url()),
            ("FP_OTEL_TEST_TOKEN", secret.to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let spans = rx.spans();
    // root, the step, its two attempts.
    assert_eq!(spans.len(), 4, "{:?}", names(&spans));
    let leak = by_name(&spans, "leak attempt 2");
    assert!(
        leak.status().1.starts_with("http_status: HTTP 500"),
        "{:?}",
        leak.status()
    );
    let everything = format!("{:?}", rx.requests());
    assert!(
        !everything.contains(secret),
        "a secret reached the receiver"
    );
    assert!(!show(&out).contains(secret));
}
