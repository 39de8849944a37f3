//! The `tcp` step against real servers: nginx plain and TLS (SNI routing, certificate expiry,
//! a client certificate, an unknown CA, a wrong name, an expired certificate, TLS against a
//! plain port), redis (a PING that needs AUTH first), a closed port, an answer that ends or
//! stalls without matching `expect` (redacted in the message), and the example scenario
//! through the binary.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use flowprobe::outcome::{Reason, ScenarioOutcome};
use flowprobe::run::run_scenario;
use support::nginx::{Ingress, API, EXPIRED, MTLS, SHOP, SOON, WRONG_HOST};
use support::redis::RedisServer;
use support::tls::TestCa;
use support::{describe, load_scenario};

async fn run(vars: &[(&str, String)], yaml: &str) -> ScenarioOutcome {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    run_scenario(&load_scenario("tcp.yaml", yaml, vars), 1).await
}

/// `vars.tls` is the ingress's TLS address, `vars.plain` its plain one, `vars.ca` its CA.
fn ingress_vars(ing: &Ingress) -> Vec<(&'static str, String)> {
    vec![
        ("tls", format!("127.0.0.1:{}", ing.nginx.port)),
        ("plain", format!("127.0.0.1:{}", ing.nginx.http_port)),
        ("ca", ing.ca.ca_file().display().to_string()),
    ]
}

fn message(o: &ScenarioOutcome) -> String {
    o.first_failure()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn phases(o: &ScenarioOutcome, step: usize) -> Vec<String> {
    o.steps[step]
        .phases
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

/// A GET request for `path` on `host` that asks the server to close afterwards.
fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n")
}

#[tokio::test]
async fn plain_and_tls_ingress_answer_http_and_sni_picks_the_site() {
    let ing = Ingress::start();
    let o = run(
        &ingress_vars(&ing),
        &format!(
            r#"name: tcp-ingress
steps:
  - name: plain
    tcp:
      address: "${{{{ vars.plain }}}}"
      send: "{plain}"
      expect: '"backend":"app-a"'
    assert:
      - body startsWith "HTTP/1.1 200 "
      - 'regex "(?i)x-backend: (\S+)" == "app-a"'
      - phase "connect" < 1s
  - name: tls-shop
    tcp:
      address: "${{{{ vars.tls }}}}"
      tls: {{server_name: {SHOP}, ca_file: "${{{{ vars.ca }}}}"}}
      send: "{shop}"
      expect: "\r\n\r\nok$"
    assert:
      - certificate expires_in > 80d
      - certificate expires_in < 91d
      - 'body contains "x-backend: app-a"'
  - name: tls-api
    tcp:
      address: "${{{{ vars.tls }}}}"
      tls: {{server_name: {API}, ca_file: "${{{{ vars.ca }}}}"}}
      send: "{api}"
      expect: '"backend":"app-b"'
"#,
            plain = get(SHOP, "/whoami"),
            shop = get(SHOP, "/health"),
            api = get(API, "/whoami"),
        ),
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(phases(&o, 0), ["connect", "first_byte"]);
    assert_eq!(phases(&o, 1), ["connect", "tls", "first_byte"]);
    assert!(o.steps[1].certificate_not_after.is_some());
    // The TLS facts, and the expiry is the chain's earliest.
    let tls = o.steps[1].tls.as_ref().expect("TLS facts of the tcp step");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(!tls.chain.is_empty());
    assert_eq!(
        o.steps[1].certificate_not_after,
        tls.earliest_expiry().map(|c| c.not_after)
    );
    assert_eq!(ing.app_a.hits("/whoami"), 1);
    assert_eq!(ing.app_a.hits("/health"), 1);
    assert_eq!(ing.app_b.hits("/whoami"), 1);
}

#[tokio::test]
async fn certificate_problems_are_tls_failures_and_expiry_is_asserted() {
    let ing = Ingress::start();
    let other_ca = TestCa::new("not the ingress CA");
    let mut vars = ingress_vars(&ing);
    vars.push(("other_ca", other_ca.ca_file().display().to_string()));
    let step = |name: &str, tls: &str| {
        format!(
            "name: tcp-tls-{name}\nsteps:\n  - name: {name}\n    tcp: {{address: \"${{{{ vars.tls }}}}\", tls: {tls}}}\n"
        )
    };
    for (name, tls, needle) in [
        (
            "unknown-ca",
            format!("{{server_name: {SHOP}, ca_file: \"${{{{ vars.other_ca }}}}\"}}"),
            "UnknownIssuer",
        ),
        (
            "wrong-name",
            format!("{{server_name: {WRONG_HOST}, ca_file: \"${{{{ vars.ca }}}}\"}}"),
            "not valid for name \"wrong.test\"",
        ),
        (
            "expired",
            format!("{{server_name: {EXPIRED}, ca_file: \"${{{{ vars.ca }}}}\"}}"),
            "certificate expired",
        ),
    ] {
        let o = run(&vars, &step(name, &tls)).await;
        assert_eq!(o.reason, Some(Reason::Tls), "{name}: {}", describe(&o));
        let m = message(&o);
        assert!(
            m.contains("TLS handshake with ") && m.contains(needle),
            "{name}: {m}"
        );
    }

    // TLS against the plain-HTTP port: nginx answers in clear text, the handshake fails.
    let o = run(
        &vars,
        &format!(
            "name: tcp-tls-plain\nsteps:\n  - name: p\n    tcp: {{address: \"${{{{ vars.plain }}}}\", tls: {{server_name: {SHOP}}}}}\n"
        ),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Tls), "{}", describe(&o));

    // `insecure: true` accepts the unknown CA (and still reads the certificate).
    let o = run(
        &vars,
        &step(
            "insecure",
            &format!("{{server_name: {SHOP}, insecure: true}}"),
        ),
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert!(o.steps[0].certificate_not_after.is_some());

    // A certificate that expires in 7 days passes the handshake and fails the assertion.
    let o = run(
        &vars,
        &format!(
            "name: tcp-soon\nsteps:\n  - name: soon\n    tcp: {{address: \"${{{{ vars.tls }}}}\", tls: {{server_name: {SOON}, ca_file: \"${{{{ vars.ca }}}}\"}}}}\n    assert: ['certificate expires_in > 14d']\n"
        ),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Assertion), "{}", describe(&o));
    assert!(
        message(&o).contains("certificate expires_in > 14d"),
        "{}",
        message(&o)
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented() {
    let ing = Ingress::start();
    let client = ing.ca.issue_client("probe");
    let mut vars = ingress_vars(&ing);
    vars.push(("cert", client.cert.display().to_string()));
    vars.push(("key", client.key.display().to_string()));
    let yaml = |tls_extra: &str| {
        format!(
            r#"name: tcp-mtls
steps:
  - name: mtls
    tcp:
      address: "${{{{ vars.tls }}}}"
      tls: {{server_name: {MTLS}, ca_file: "${{{{ vars.ca }}}}"{tls_extra}}}
      send: "{req}"
      expect: "^HTTP/1\\.1 200 "
"#,
            req = get(MTLS, "/health")
        )
    };
    let o = run(
        &vars,
        &yaml(", cert_file: \"${{ vars.cert }}\", key_file: \"${{ vars.key }}\""),
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    // Without it nginx answers 400 and closes: the answer ends without a match.
    let o = run(&vars, &yaml("")).await;
    assert_eq!(o.reason, Some(Reason::Assertion), "{}", describe(&o));
    assert!(message(&o).contains("400"), "{}", message(&o));
}

#[tokio::test]
async fn redis_answers_ping_after_auth_and_stalls_without_it() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, &redis.password).unwrap();
    let vars = vec![
        ("redis", format!("127.0.0.1:{}", redis.port)),
        ("redis_tls", format!("127.0.0.1:{}", redis.tls_port)),
        ("redis_ca", redis.ca_file().display().to_string()),
    ];
    let o = run(
        &vars,
        &format!(
            r#"name: tcp-redis
secrets:
  pw: {{file: '{pw}'}}
steps:
  - name: plain
    tcp: {{address: "${{{{ vars.redis }}}}", send: "AUTH ${{{{ secrets.pw }}}}\r\nPING\r\n", expect: '\+PONG'}}
    assert: ['body startsWith "+OK"', 'body contains "+PONG"']
  - name: tls
    tcp:
      address: "${{{{ vars.redis_tls }}}}"
      tls: {{ca_file: "${{{{ vars.redis_ca }}}}"}}
      send: "AUTH ${{{{ secrets.pw }}}}\r\nPING\r\n"
      expect: '\+PONG'
"#,
            pw = pw_file.display()
        ),
    )
    .await;
    assert!(o.success, "{}", describe(&o));

    // PING without AUTH: redis answers -NOAUTH and keeps the connection open, so `expect` is
    // never matched before the step's timeout; the message shows what was read.
    let o = run(
        &vars,
        r#"name: tcp-redis-noauth
steps:
  - name: ping
    timeout: 1s
    tcp: {address: "${{ vars.redis }}", send: "PING\r\n", expect: '\+PONG'}
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Timeout), "{}", describe(&o));
    let m = message(&o);
    assert!(m.contains("expect /\\+PONG/ not matched within"), "{m}");
    assert!(m.contains("-NOAUTH"), "{m}");
}

#[tokio::test]
async fn a_closed_port_is_a_connect_failure() {
    let port = support::free_port();
    let o = run(
        &[("addr", format!("127.0.0.1:{port}"))],
        r#"name: tcp-closed
steps:
  - name: closed
    tcp: {address: "${{ vars.addr }}", send: "hello\r\n", expect: hello}
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains(&format!("127.0.0.1:{port}")) && m.contains("refused"),
        "{m}"
    );
}

#[tokio::test]
async fn an_answer_that_ends_without_a_match_is_an_assertion_and_secrets_stay_hidden() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, &redis.password).unwrap();
    let token_file = dir.path().join("token");
    let token = "tcp-secret-4f1e9a";
    std::fs::write(&token_file, token).unwrap();
    // ECHO sends the secret back and QUIT closes the connection: what was read holds the
    // secret, and the answer ends without a match.
    let o = run(
        &[("redis", format!("127.0.0.1:{}", redis.port))],
        &format!(
            r#"name: tcp-no-match
secrets:
  pw: {{file: '{pw}'}}
  token: {{file: '{token}'}}
steps:
  - name: echo
    tcp:
      address: "${{{{ vars.redis }}}}"
      send: "AUTH ${{{{ secrets.pw }}}}\r\nECHO ${{{{ secrets.token }}}}\r\nQUIT\r\n"
      expect: never-in-the-answer
"#,
            pw = pw_file.display(),
            token = token_file.display()
        ),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Assertion), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains(
            "expect /never-in-the-answer/ not matched before the connection closed; read \"+OK"
        ),
        "{m}"
    );
    assert!(
        m.contains("[redacted"),
        "the echoed secret is shown redacted: {m}"
    );
    let shown = describe(&o);
    for text in [&m, &shown] {
        assert!(!text.contains(token), "{text}");
        assert!(!text.contains(&redis.password), "{text}");
    }

    // `max_read` caps what is read: the cap without a match is an assertion too.
    let ing = Ingress::start();
    let o = run(
        &ingress_vars(&ing),
        &format!(
            r#"name: tcp-cap
steps:
  - name: big
    tcp:
      address: "${{{{ vars.plain }}}}"
      send: "{req}"
      expect: never-in-the-answer
      max_read: 1KiB
"#,
            req = get(SHOP, "/bytes/100000")
        ),
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Assertion), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("not matched in the first 1KiB read (max_read)"),
        "{m}"
    );
    assert!(m.contains("(1KiB)"), "{m}");
}

#[test]
fn the_example_scenario_passes_through_the_binary() {
    let ing = Ingress::start();
    let redis = RedisServer::start();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(support::flowprobe_bin());
    cmd.current_dir(&root)
        .args(["run", "scenarios/tcp-services.yaml", "--no-color"])
        .env("REDIS_PROBE_PASSWORD", &redis.acl_password);
    let vars = ing.vars().into_iter().chain([
        (
            "redis_addr".to_string(),
            format!("127.0.0.1:{}", redis.tls_port),
        ),
        ("redis_user".to_string(), redis.acl_user.clone()),
        (
            "redis_ca_file".to_string(),
            redis.ca_file().display().to_string(),
        ),
    ]);
    for (k, v) in vars {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("PASS tcp-services "), "{stdout}");
    assert_eq!(ing.app_a.hits("/health"), 2, "plain and TLS");
    assert!(!stdout.contains(&redis.acl_password), "{stdout}");
}
