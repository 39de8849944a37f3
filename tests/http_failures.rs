//! Failures are outcomes with the right reason and message: every assertion kind failing,
//! step and scenario timeouts, connection refused, and TLS with an unknown CA, a certificate
//! for another host and an expired certificate — all against a real nginx ingress.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flowprobe::outcome::{Reason, ScenarioOutcome, StepOutcome, StepStatus};
use flowprobe::run::run_scenario;
use support::nginx::{Ingress, EXPIRED, SHOP, SOON, WRONG_HOST};
use support::tls::TestCa;
use support::{describe, load_scenario};

fn vars(ing: &Ingress) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("shop".to_string(), ing.https(SHOP)),
        ("expired".to_string(), ing.https(EXPIRED)),
        ("wrong".to_string(), ing.https(WRONG_HOST)),
        ("soon".to_string(), ing.https(SOON)),
        ("ca".to_string(), ing.ca.ca_file().display().to_string()),
    ])
}

async fn run_with(ing: &Ingress, extra: &[(&str, String)], yaml: &str) -> ScenarioOutcome {
    let mut v = vars(ing);
    for (k, val) in extra {
        v.insert(k.to_string(), val.clone());
    }
    run_scenario(&load_scenario("fail.yaml", yaml, v), 1).await
}

async fn run(ing: &Ingress, yaml: &str) -> ScenarioOutcome {
    run_with(ing, &[], yaml).await
}

fn failed_step(o: &ScenarioOutcome) -> &StepOutcome {
    o.first_failure()
        .unwrap_or_else(|| panic!("expected a failed step:\n{}", describe(o)))
}

/// One step GETting `path` on shop.test with one assertion; returns the failed step's outcome.
async fn one_assertion(ing: &Ingress, host_var: &str, path: &str, assertion: &str) -> StepOutcome {
    let yaml = format!(
        r#"name: one-assertion
steps:
  - name: probe
    http:
      url: "${{{{ vars.{host_var} }}}}{path}"
      resolve: {{shop.test: 127.0.0.1, soon.test: 127.0.0.1}}
      tls: {{ca_file: "${{{{ vars.ca }}}}"}}
    assert:
      - status < 500
      - '{assertion}'
"#
    );
    let o = run(ing, &yaml).await;
    assert!(!o.success, "`{assertion}` should fail:\n{}", describe(&o));
    failed_step(&o).clone()
}

#[tokio::test]
async fn each_assertion_kind_fails_with_actual_expected_and_location() {
    let ing = Ingress::start();
    // (host var, path, assertion, reason, actual, expected)
    let cases: &[(&str, &str, &str, Reason, &str, &str)] = &[
        (
            "shop",
            "/whoami",
            "status == 201",
            Reason::HttpStatus,
            "200",
            "== 201",
        ),
        (
            "shop",
            "/status/404",
            "status != 404",
            Reason::HttpStatus,
            "404",
            "!= 404",
        ),
        (
            "shop",
            "/whoami",
            r#"header "x-backend" == "app-b""#,
            Reason::Assertion,
            r#""app-a""#,
            r#"== "app-b""#,
        ),
        (
            "shop",
            "/whoami",
            r#"header "x-missing" exists"#,
            Reason::Assertion,
            "<none>",
            "exists",
        ),
        (
            "shop",
            "/text",
            r#"body contains "goodbye""#,
            Reason::Assertion,
            r#""hello from app-a\nversion=1.4.2\n""#,
            r#"contains "goodbye""#,
        ),
        (
            "shop",
            "/whoami",
            r#"jsonpath "$.backend" == "app-b""#,
            Reason::Assertion,
            r#""app-a""#,
            r#"== "app-b""#,
        ),
        (
            "shop",
            "/text",
            r#"jsonpath "$.backend" exists"#,
            Reason::Assertion,
            "<jsonpath \"$.backend\": the body is not JSON>",
            "exists",
        ),
        (
            "shop",
            "/text",
            r#"regex "version=([0-9]+)" == "2""#,
            Reason::Assertion,
            r#""1""#,
            r#"== "2""#,
        ),
        (
            "shop",
            "/whoami",
            r#"jsonpath "$.host" not endsWith ".test""#,
            Reason::Assertion,
            r#""shop.test""#,
            r#"not endsWith ".test""#,
        ),
        (
            "shop",
            "/whoami",
            r#"jsonpath "$.backend" matches "^api-""#,
            Reason::Assertion,
            r#""app-a""#,
            r#"matches "^api-""#,
        ),
        (
            "shop",
            "/delay/60",
            "duration < 1ms",
            Reason::Assertion,
            "ms",
            "< 1ms",
        ),
        (
            "soon",
            "/health",
            "certificate expires_in > 14d",
            Reason::Assertion,
            "6d",
            "> 14d",
        ),
    ];
    for (host, path, assertion, reason, actual, expected) in cases {
        let step = one_assertion(&ing, host, path, assertion).await;
        let msg = step.message.clone().unwrap_or_default();
        assert_eq!(step.reason, Some(*reason), "`{assertion}`: {msg}");
        // The failed assertion is the second one, written on line 10, column 10 (inside the quotes).
        let failed: Vec<_> = step.assertions.iter().filter(|a| !a.passed).collect();
        assert_eq!(failed.len(), 1, "`{assertion}`: {:?}", step.assertions);
        let a = failed[0];
        assert_eq!(a.assertion, *assertion);
        assert_eq!(a.location, "fail.yaml:10:10", "`{assertion}`");
        assert!(
            a.actual.contains(actual),
            "`{assertion}`: actual {:?}",
            a.actual
        );
        assert_eq!(a.expected, *expected, "`{assertion}`");
        assert!(
            msg.starts_with(&format!(
                "assertion failed at fail.yaml:10:10: `{assertion}`"
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("\n  actual:   {}", a.actual)),
            "{msg}"
        );
        assert!(msg.contains(&format!("\n  expected: {expected}")), "{msg}");
        if *path != "/health" {
            assert!(
                msg.contains("\n  response: "),
                "`{assertion}` shows no excerpt: {msg}"
            );
        }
    }
}

#[tokio::test]
async fn a_capture_that_finds_nothing_fails_the_step() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: capture-nothing
steps:
  - name: login
    http:
      url: ${{ vars.shop }}/whoami
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
    capture:
      token: jsonpath "$.token"
  - name: use
    http:
      url: ${{ vars.shop }}/api/items/1
      auth: {bearer: "${{ steps.login.token }}"}
"#,
    )
    .await;
    let step = failed_step(&o);
    assert_eq!(step.name, "login");
    assert_eq!(step.reason, Some(Reason::Assertion));
    let msg = step.message.as_deref().unwrap_or("");
    assert!(
        msg.starts_with("capture `token`: jsonpath \"$.token\" found nothing\n  response: {"),
        "{msg}"
    );
    assert_eq!(o.steps[1].status, StepStatus::Skipped);

    // When an assertion fails too, it is the assertion that explains the failure.
    let o = run(
        &ing,
        r#"
name: login-refused
steps:
  - name: login
    http:
      method: POST
      url: ${{ vars.shop }}/login
      body: {json: {username: alice, password: wrong}}
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
    capture:
      token: jsonpath "$.token"
    assert: ["status == 200"]
"#,
    )
    .await;
    let step = failed_step(&o);
    assert_eq!(step.reason, Some(Reason::HttpStatus), "{}", describe(&o));
    let msg = step.message.as_deref().unwrap_or("");
    assert!(msg.contains("`status == 200`\n  actual:   401\n"), "{msg}");
}

#[tokio::test]
async fn step_timeout_cuts_a_slow_answer() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: step-timeout
steps:
  - name: slow
    http:
      url: ${{ vars.shop }}/delay/5000
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
    timeout: 300ms
"#,
    )
    .await;
    let step = failed_step(&o);
    assert_eq!(step.reason, Some(Reason::Timeout), "{}", describe(&o));
    let msg = step.message.as_deref().unwrap_or("");
    assert!(
        msg.contains("300ms") && msg.contains("step timeout"),
        "{msg}"
    );
    assert!(!o.timed_out, "the scenario itself had time left");
    assert!(
        step.duration < Duration::from_secs(4),
        "{:?}",
        step.duration
    );
}

#[tokio::test]
async fn scenario_timeout_stops_the_run_and_finally_still_runs() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: scenario-timeout
schedule: {interval: 1m, timeout: 700ms}
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: first
    http: {url: "${{ vars.shop }}/delay/400"}
  - name: second
    http: {url: "${{ vars.shop }}/delay/3000"}
  - name: third
    http: {url: "${{ vars.shop }}/health"}
finally:
  - name: cleanup
    http: {url: "${{ vars.shop }}/echo", method: DELETE}
"#,
    )
    .await;
    assert!(!o.success);
    assert!(o.timed_out, "{}", describe(&o));
    assert_eq!(o.reason, Some(Reason::Timeout));
    assert_eq!(o.message.as_deref(), Some("scenario timed out after 700ms"));
    let statuses: Vec<_> = o.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Passed,
            StepStatus::Failed,
            StepStatus::Skipped,
            StepStatus::Passed
        ]
    );
    let msg = o.steps[1].message.as_deref().unwrap_or("");
    assert!(msg.contains("the scenario's time budget ran out"), "{msg}");
    assert_eq!(ing.app_a.hits("/health"), 0);
    assert_eq!(ing.app_a.hits("/echo"), 1);
}

#[tokio::test]
async fn connection_refused_is_reason_connect() {
    let ing = Ingress::start();
    let closed = support::free_port();
    // A host name that mentions TLS must not make a refused connection look like a TLS error.
    let o = run_with(
        &ing,
        &[("closed", format!("http://tls-gateway.test:{closed}"))],
        r#"
name: refused
steps:
  - name: nobody-home
    http:
      url: ${{ vars.closed }}/health
      resolve: {tls-gateway.test: 127.0.0.1}
"#,
    )
    .await;
    let step = failed_step(&o);
    assert_eq!(step.reason, Some(Reason::Connect), "{}", describe(&o));
    let msg = step.message.as_deref().unwrap_or("");
    assert!(
        msg.starts_with(&format!("http://tls-gateway.test:{closed}/health: ")),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test]
async fn a_backend_down_behind_the_ingress_is_a_502() {
    let ing = Ingress::start();
    let Ingress {
        nginx, app_a, ca, ..
    } = ing;
    let vars = BTreeMap::from([
        ("shop".to_string(), format!("https://{SHOP}:{}", nginx.port)),
        ("ca".to_string(), ca.ca_file().display().to_string()),
    ]);
    drop(app_a);
    let yaml = r#"
name: upstream-down
steps:
  - name: home
    http:
      url: ${{ vars.shop }}/health
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
"#;
    let o = run_scenario(&load_scenario("fail.yaml", yaml, vars), 1).await;
    let step = failed_step(&o);
    assert_eq!(step.reason, Some(Reason::HttpStatus));
    let msg = step.message.as_deref().unwrap_or("");
    assert!(msg.starts_with("HTTP 502"), "{msg}");
    assert!(msg.contains("response: <html>"), "{msg}");
}

/// Runs one GET against `url_var` with `tls` settings and returns the failed step.
async fn tls_failure(
    ing: &Ingress,
    url_var: &str,
    tls: &str,
    extra: &[(&str, String)],
) -> StepOutcome {
    let yaml = format!(
        r#"
name: tls-failure
steps:
  - name: handshake
    http:
      url: "${{{{ vars.{url_var} }}}}/health"
      resolve: {{shop.test: 127.0.0.1, expired.test: 127.0.0.1, wrong.test: 127.0.0.1}}
      tls: {tls}
"#
    );
    let o = run_with(ing, extra, &yaml).await;
    failed_step(&o).clone()
}

#[tokio::test]
async fn tls_unknown_ca_wrong_host_and_expired_are_reason_tls() {
    let ing = Ingress::start();
    let stranger = TestCa::new("some other CA");
    let stranger_file = ("other_ca", stranger.ca_file().display().to_string());
    // (host var, tls settings, extra vars, what the message says)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "shop",
            r#"{ca_file: "${{ vars.other_ca }}"}"#,
            vec![stranger_file.clone()],
            "unknownissuer",
        ),
        ("shop", "{}", vec![], "unknownissuer"),
        (
            "wrong",
            r#"{ca_file: "${{ vars.ca }}"}"#,
            vec![],
            "notvalidforname",
        ),
        (
            "expired",
            r#"{ca_file: "${{ vars.ca }}"}"#,
            vec![],
            "expired",
        ),
    ];
    for (host, tls, extra, needle) in cases {
        let step = tls_failure(&ing, host, tls, &extra).await;
        let msg = step.message.clone().unwrap_or_default();
        assert_eq!(step.reason, Some(Reason::Tls), "{host} {tls}: {msg}");
        assert!(
            msg.to_lowercase().replace(' ', "").contains(needle),
            "{host} {tls}: `{needle}` not in {msg}"
        );
    }
    // Nothing reached the backend through a rejected handshake.
    assert_eq!(ing.app_a.hits("/health"), 0);

    // `insecure: true`, written explicitly, accepts the expired certificate.
    let o = run(
        &ing,
        r#"
name: insecure
steps:
  - name: anyway
    http:
      url: ${{ vars.expired }}/health
      resolve: {expired.test: 127.0.0.1}
      tls: {insecure: true}
    assert: ["status == 200", "certificate expires_in < 1s"]
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
}
