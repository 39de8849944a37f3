//! HTTP steps through a real nginx ingress (TLS from a test CA, Host/SNI routing to two real
//! backends): a chained flow, routing, `resolve`, redirects, retries and `finally`.

mod support;

use std::collections::BTreeMap;

use flowprobe::outcome::{Reason, ScenarioOutcome, StepStatus};
use flowprobe::run::run_scenario;
use flowprobe::scenario::LoadedScenario;
use support::nginx::{Ingress, API, MTLS, SHOP};
use support::{describe, load_scenario};

/// Vars every scenario here can use: base URLs on the ingress, the CA, the backends.
fn vars(ing: &Ingress) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("shop".to_string(), ing.https(SHOP)),
        ("api".to_string(), ing.https(API)),
        ("plain".to_string(), ing.http(SHOP)),
        ("ca".to_string(), ing.ca.ca_file().display().to_string()),
        ("port".to_string(), ing.nginx.port.to_string()),
        ("app_a".to_string(), ing.app_a.url()),
    ])
}

/// Loads `yaml` with the ingress's vars and `extra`, panicking with every diagnostic.
fn load(ing: &Ingress, extra: &[(&str, String)], yaml: &str) -> LoadedScenario {
    let mut vars = vars(ing);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    load_scenario("flow.yaml", yaml, vars)
}

/// Loads `yaml` and runs it once.
async fn run(ing: &Ingress, yaml: &str) -> ScenarioOutcome {
    run_scenario(&load(ing, &[], yaml), 1).await
}

#[tokio::test]
async fn chained_login_flow_passes_through_the_ingress() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: chained
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: login
    http:
      method: POST
      url: ${{ vars.shop }}/login
      body: {json: {username: alice, password: correct-horse-battery}}
    capture:
      token: jsonpath "$.token"
      user_id: jsonpath "$.id"
    assert:
      - status == 200
      - jsonpath "$.token" startsWith "tok-"
  - name: item
    http:
      url: ${{ vars.shop }}/api/items/${{ steps.login.user_id }}
      auth: {bearer: "${{ steps.login.token }}"}
    assert:
      - status == 200
      - jsonpath "$.id" == 42
      - jsonpath "$.owner" == "alice"
      - jsonpath "$.backend" == "app-a"
      - jsonpath "$.tags" includes "blue"
      - jsonpath "$.tags" count == 2
      - header "x-backend" == "app-a"
      - header "content-type" startsWith "application/json"
      - duration < 5s
      - certificate expires_in > 14d
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(o.steps.len(), 2);
    assert!(o.steps.iter().all(|s| s.attempts == 1));
    assert_eq!(ing.app_a.logins(), 1);
    assert_eq!(ing.app_a.hits("/api/items/42"), 1);
    assert_eq!(ing.app_b.hits("/api/items/42"), 0);
    let not_after = o.steps[1].certificate_not_after.expect("certificate seen");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = (not_after - now) / 86_400;
    assert!(
        (88..=90).contains(&days),
        "certificate expires in {days} days"
    );
}

#[tokio::test]
async fn host_and_sni_pick_the_backend() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: routing
defaults:
  http:
    resolve: {shop.test: 127.0.0.1, api.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: shop
    http: {url: "${{ vars.shop }}/whoami"}
    assert:
      - jsonpath "$.backend" == "app-a"
      - jsonpath "$.host" == "shop.test"
      - jsonpath "$.forwarded_proto" == "https"
  - name: api
    http: {url: "${{ vars.api }}/whoami"}
    assert:
      - jsonpath "$.backend" == "app-b"
      - jsonpath "$.host" == "api.test"
  - name: plain-http-by-host
    http:
      url: ${{ vars.plain }}/whoami
      headers: {Host: api.test}
    assert:
      - jsonpath "$.backend" == "app-b"
      - jsonpath "$.forwarded_proto" == "http"
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(ing.app_a.hits("/whoami"), 1);
    assert_eq!(ing.app_b.hits("/whoami"), 2);
    // nginx saw the names in SNI, not only in Host.
    let log = ing.nginx.access_log_with(&[
        " shop.test shop.test \"GET /whoami",
        " api.test api.test \"GET /whoami",
    ]);
    assert!(log.contains(" shop.test shop.test \"GET /whoami"), "{log}");
    assert!(log.contains(" api.test api.test \"GET /whoami"), "{log}");
}

#[tokio::test]
async fn resolve_reaches_a_real_host_name_at_a_chosen_address() {
    let ing = Ingress::start();
    // The URL carries no port: the address in `resolve` brings it, as with curl --resolve.
    let o = run(
        &ing,
        r#"
name: resolve
steps:
  - name: by-address-and-port
    http:
      url: https://shop.test/whoami
      resolve: {shop.test: "127.0.0.1:${{ vars.port }}"}
      tls: {ca_file: "${{ vars.ca }}"}
    assert:
      - jsonpath "$.backend" == "app-a"
      - jsonpath "$.host" == "shop.test"
  - name: by-address-only
    http:
      url: https://api.test:${{ vars.port }}/whoami
      resolve: {api.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
    assert:
      - jsonpath "$.backend" == "app-b"
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
}

#[tokio::test]
async fn redirects_are_followed_only_when_asked() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: redirects
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: not-followed
    http: {url: "${{ vars.shop }}/redirect"}
    assert:
      - status == 302
      - header "location" == "/redirected"
  - name: followed
    http:
      url: ${{ vars.shop }}/redirect
      follow_redirects: true
    capture:
      landed: url
    assert:
      - status == 200
      - jsonpath "$.redirected" == true
      - url endsWith "/redirected"
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(ing.app_a.hits("/redirect"), 2);
    assert_eq!(ing.app_a.hits("/redirected"), 1);

    let o = run(
        &ing,
        r#"
name: redirect-loop
steps:
  - name: loop
    http:
      url: ${{ vars.shop }}/redirect-loop
      follow_redirects: true
      max_redirects: 3
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
"#,
    )
    .await;
    assert!(!o.success);
    let step = &o.steps[0];
    assert_eq!(step.reason, Some(Reason::HttpStatus), "{}", describe(&o));
    assert!(
        step.message.as_deref().unwrap_or("").contains("redirect"),
        "{}",
        describe(&o)
    );
    // The first request and three redirects.
    assert_eq!(ing.app_a.hits("/redirect-loop"), 4);
}

#[tokio::test]
async fn finally_runs_after_a_failure_and_later_steps_are_skipped() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: finally-after-failure
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: ok
    http: {url: "${{ vars.shop }}/health"}
  - name: broken
    http: {url: "${{ vars.shop }}/status/500"}
    assert: ["status == 200"]
  - name: never
    http: {url: "${{ vars.shop }}/whoami"}
    capture: {who: jsonpath "$.backend"}
finally:
  - name: cleanup
    http: {url: "${{ vars.shop }}/echo", method: DELETE}
    assert: ['jsonpath "$.method" == "DELETE"']
  - name: undo-never
    http: {url: "${{ vars.shop }}/echo?who=${{ steps.never.who }}", method: DELETE}
"#,
    )
    .await;
    assert!(!o.success);
    let statuses: Vec<_> = o
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("ok", StepStatus::Passed),
            ("broken", StepStatus::Failed),
            ("never", StepStatus::Skipped),
            ("cleanup", StepStatus::Passed),
            ("undo-never", StepStatus::Skipped),
        ]
    );
    assert!(o.steps[3].cleanup);
    // A clean-up of what a step that never ran would have made has nothing to do.
    assert_eq!(
        o.steps[4].message.as_deref(),
        Some("needs `steps.never.who`, which the run did not produce")
    );
    assert_eq!(o.steps[4].reason, None);
    assert_eq!(o.reason, Some(Reason::HttpStatus));
    assert_eq!(ing.app_a.hits("/whoami"), 0);
    assert_eq!(ing.app_a.hits("/echo"), 1);
}

#[tokio::test]
async fn retries_are_counted_and_shown() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: retries
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: eventually
    http: {url: "${{ vars.shop }}/flaky/a/2"}
    retry: {attempts: 4, interval: 20ms, backoff: 2}
    assert: ["status == 200", 'jsonpath "$.attempt" == 3']
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(o.steps[0].attempts, 3);
    assert_eq!(o.retried_passes(), 1);
    assert!(
        describe(&o).contains("after 3 attempts"),
        "{}",
        describe(&o)
    );
    let summary =
        flowprobe::report::terminal::render_summary(std::slice::from_ref(&o), o.duration, false);
    assert!(summary.contains("1 step passed after a retry"), "{summary}");

    let o = run(
        &ing,
        r#"
name: retries-exhausted
steps:
  - name: never-ready
    http:
      url: ${{ vars.shop }}/flaky/b/5
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
    retry: {attempts: 2, interval: 10ms}
"#,
    )
    .await;
    assert!(!o.success);
    assert_eq!(o.steps[0].attempts, 2);
    assert_eq!(o.steps[0].reason, Some(Reason::HttpStatus));
    assert_eq!(ing.app_a.hits("/flaky/b/5"), 2);
    assert!(
        describe(&o).contains("after 2 attempts"),
        "{}",
        describe(&o)
    );
}

#[tokio::test]
async fn request_parts_reach_the_backend() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: request-parts
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
    headers: {X-Team: payments, X-Run: "${{ run.id }}"}
steps:
  - name: form
    http:
      method: PUT
      url: ${{ vars.shop }}/echo
      query: {q: "a b", n: "1"}
      headers: {X-Team: checkout}
      body: {form: {user: alice, note: "x&y"}}
    assert:
      - jsonpath "$.method" == "PUT"
      - jsonpath "$.query" == "q=a+b&n=1"
      - jsonpath "$.headers['x-team']" == "checkout"
      - jsonpath "$.headers['x-run']" matches "^[0-9a-f]{16}$"
      - jsonpath "$.headers['content-type']" == "application/x-www-form-urlencoded"
      - jsonpath "$.body" == "user=alice&note=x%26y"
  - name: raw
    http:
      method: POST
      url: ${{ vars.shop }}/echo
      headers: {Content-Type: text/plain}
      body: {raw: "id=${{ uuid() }}"}
    assert:
      - regex "id=([0-9a-f-]{36})" exists
  - name: basic
    http:
      url: ${{ vars.shop }}/basic
      auth: {basic: {username: bob, password: correct-horse-battery}}
    assert: ['jsonpath "$.user" == "bob"']
  - name: capped
    http:
      url: ${{ vars.shop }}/bytes/5000
      max_body: 1KiB
    assert: ["body count == 1024"]
  - name: http1
    http: {url: "${{ vars.shop }}/health", version: "1.1"}
  - name: http2
    http: {url: "${{ vars.shop }}/health", version: "2"}
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    let log = ing
        .nginx
        .access_log_with(&["\"GET /health HTTP/1.1\"", "\"GET /health HTTP/2.0\""]);
    assert!(log.contains("\"GET /health HTTP/1.1\""), "{log}");
    assert!(log.contains("\"GET /health HTTP/2.0\""), "{log}");
}

#[tokio::test]
async fn cookies_persist_across_the_steps_of_one_run_only() {
    let ing = Ingress::start();
    let yaml = r#"
name: cookies
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: before
    http: {url: "${{ vars.shop }}/echo"}
    assert: ['jsonpath "$.headers.cookie" not exists']
  - name: set
    http: {url: "${{ vars.shop }}/set-cookie/s-${{ run.id }}"}
  - name: sent-back
    http: {url: "${{ vars.shop }}/echo"}
    assert: ['jsonpath "$.headers.cookie" == "session=s-${{ run.id }}"']
"#;
    let sc = load(&ing, &[], yaml);
    // A second run starts with an empty jar: `before` would fail otherwise.
    for _ in 0..2 {
        let o = run_scenario(&sc, 1).await;
        assert!(o.success, "{}", describe(&o));
    }
}

#[tokio::test]
async fn client_certificates_for_mtls() {
    let ing = Ingress::start();
    let client = ing.ca.issue_client("probe");
    let extra = [
        ("mtls", ing.https(MTLS)),
        ("cert", client.cert.display().to_string()),
        ("key", client.key.display().to_string()),
    ];
    let with_cert = load(
        &ing,
        &extra,
        r#"
name: mtls
steps:
  - name: with-cert
    http:
      url: ${{ vars.mtls }}/whoami
      resolve: {mtls.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}", cert_file: "${{ vars.cert }}", key_file: "${{ vars.key }}"}
    assert: ['jsonpath "$.host" == "mtls.test"']
"#,
    );
    let o = run_scenario(&with_cert, 1).await;
    assert!(o.success, "{}", describe(&o));

    let without = load(
        &ing,
        &extra,
        r#"
name: mtls-missing
steps:
  - name: without-cert
    http:
      url: ${{ vars.mtls }}/whoami
      resolve: {mtls.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
"#,
    );
    let o = run_scenario(&without, 1).await;
    let step = o
        .first_failure()
        .expect("nginx refuses a client without a certificate");
    assert_eq!(step.reason, Some(Reason::HttpStatus), "{}", describe(&o));
    let msg = step.message.as_deref().unwrap_or("");
    assert!(
        msg.contains("No required SSL certificate was sent"),
        "{msg}"
    );
    assert_eq!(ing.app_a.hits("/whoami"), 1);
}

#[tokio::test]
async fn secret_files_are_read_again_for_every_run() {
    let ing = Ingress::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{}\n", ing.app_a.password)).unwrap();
    let sc = load(
        &ing,
        &[("pw_file", file.display().to_string())],
        r#"
name: rotation
secrets:
  password: {file: "PW_FILE"}
steps:
  - name: basic
    http:
      url: ${{ vars.shop }}/basic
      resolve: {shop.test: 127.0.0.1}
      tls: {ca_file: "${{ vars.ca }}"}
      auth: {basic: {username: alice, password: "${{ secrets.password }}"}}
    assert: [status == 200]
"#
        .replace("PW_FILE", &file.display().to_string())
        .as_str(),
    );
    assert!(run_scenario(&sc, 1).await.success);
    // Rotated to a value the backend rejects: the same loaded scenario now fails.
    std::fs::write(&file, "rotated-elsewhere").unwrap();
    let o = run_scenario(&sc, 2).await;
    assert_eq!(o.reason, Some(Reason::HttpStatus), "{}", describe(&o));
    std::fs::write(&file, &ing.app_a.password).unwrap();
    assert!(run_scenario(&sc, 3).await.success);
}

#[tokio::test]
async fn regex_escapes_in_quoted_assertions_reach_the_regex() {
    let ing = Ingress::start();
    let o = run(
        &ing,
        r#"
name: regex-escapes
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: text
    http: {url: "${{ vars.shop }}/text"}
    capture:
      major: regex "version=(\d+)\.\d+\.\d+"
    assert:
      - regex "version=\d+\.(\d+)" == "4"
      - body matches "^hello from app-\w\n"
      - body not matches "version=\d\d"
      - body not contains "\"app-a\""
  - name: echo
    http:
      url: ${{ vars.shop }}/echo
      headers: {X-Major: "${{ steps.text.major }}"}
    assert: ['jsonpath "$.headers[''x-major'']" == "1"']
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert!(o.steps[0].assertions.iter().all(|a| a.passed));
}
