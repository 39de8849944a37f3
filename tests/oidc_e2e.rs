//! The mission's flow end to end: `scenarios/login-flow.yaml` logs a user in at the IdP, calls
//! the API through nginx (TLS) into the test application, which checks the token against the
//! IdP's keys and answers with the user's claims. A wrong or expired token fails that call with
//! `http_status`, and no token, password or client secret ever shows up in what flowprobe
//! prints or writes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::api_app::{LoginStack, APP_HOST};
use support::idp;
use support::tls::TestCa;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn flowprobe(stack: &LoginStack, args: &[&str]) -> Output {
    let mut cmd = Command::new(support::flowprobe_bin());
    cmd.current_dir(root()).args(args).env_remove("RUST_LOG");
    for (k, v) in stack.vars() {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    cmd.envs(stack.env());
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

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("JSON")
}

#[test]
fn login_then_the_api_sees_the_same_user_and_nothing_secret_leaks() {
    let ca = TestCa::new("flowprobe e2e CA");
    let stack = LoginStack::start(&ca);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("report.json");
    let junit = out.path().join("junit.xml");
    let o = flowprobe(
        &stack,
        &[
            "run",
            "scenarios/login-flow.yaml",
            "-vv",
            "--report",
            &format!("json={}", json.display()),
            "--report",
            &format!("junit={}", junit.display()),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        show(&o),
        stack.idp.log_text()
    );

    // The request went through nginx into the app, with a token the app accepted.
    let access = stack.nginx.access_log_with(&["\"GET /api/me "]);
    assert!(
        access
            .lines()
            .any(|l| l.contains(APP_HOST) && l.contains("\"GET /api/me ") && l.contains("\" 200 ")),
        "{access}"
    );
    let seen = stack.app.seen_tokens();
    assert_eq!(seen.len(), 1, "one API call");
    let r = report(&json);
    let steps = &r["runs"][0]["steps"];
    let me = steps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "me")
        .unwrap();
    assert!(
        me["assertions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["assertion"]
                .as_str()
                .unwrap()
                .starts_with("jsonpath \"$.sub\"")
                && a["passed"] == true
                && a["actual"] == format!("\"{}\"", idp::USER)),
        "{me:#}"
    );

    // No secret in stdout, stderr (debug logs), the JSON or the JUnit report.
    let texts = [
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        std::fs::read_to_string(&json).unwrap(),
        std::fs::read_to_string(&junit).unwrap(),
    ];
    let mut secrets: Vec<String> = seen.clone();
    secrets.push(idp::PASSWORD.into());
    secrets.push(idp::CLIENT_SECRET.into());
    for t in &texts {
        for s in &secrets {
            assert!(!t.contains(s.as_str()), "a secret leaked into output:\n{t}");
        }
        // Nor a piece of a JWT (header or signature).
        for part in seen[0].split('.') {
            assert!(!t.contains(part), "part of the access token leaked:\n{t}");
        }
    }
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("oidc hop"),
        "-vv shows the hops"
    );
}

/// A scenario that logs in for `resource`, optionally waits, and calls the API with `bearer`.
fn token_yaml(stack: &LoginStack, resource: &str, wait_ms: u64, bearer: &str) -> String {
    format!(
        r#"name: token-check
{secrets}steps:
  - name: login
    oidc:
      issuer: {issuer}
      client_id: {client}
      client_secret: ${{{{ secrets.client_secret }}}}
      redirect_uri: {redirect}
      username: {user}
      password: ${{{{ secrets.password }}}}
      scopes: [openid, "{scope}"]
      resource: {resource}
  - name: wait
    http: {{url: "{app}/delay/{wait_ms}"}}
  - name: me
    http:
      url: https://{host}:{port}/api/me
      resolve: {{{host}: "127.0.0.1:{port}"}}
      tls: {{ca_file: "{ca}"}}
      auth: {{bearer: "{bearer}"}}
    assert:
      - status == 200
      - jsonpath "$.sub" == "${{{{ steps.login.claims.sub }}}}"
"#,
        secrets = stack.idp.secrets_yaml(),
        issuer = stack.idp.issuer(),
        client = idp::CLIENT_ID,
        redirect = idp::REDIRECT_URI,
        user = idp::USER,
        scope = idp::API_SCOPE,
        app = stack.app.url(),
        host = APP_HOST,
        port = stack.nginx.port,
        ca = stack.vars().iter().find(|(k, _)| k == "ca_file").unwrap().1,
    )
}

fn run_yaml(yaml: &str) -> flowprobe::outcome::ScenarioOutcome {
    let sc = flowprobe::scenario::load::load_source(
        "token.yaml",
        yaml,
        &flowprobe::scenario::LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(flowprobe::run::run_scenario(&sc, 1))
}

fn me_step(o: &flowprobe::outcome::ScenarioOutcome) -> &flowprobe::outcome::StepOutcome {
    o.steps.iter().find(|s| s.name == "me").unwrap()
}

#[test]
fn a_wrong_or_expired_token_fails_the_api_call_with_http_status() {
    use flowprobe::outcome::{Reason, StepStatus};
    let ca = TestCa::new("flowprobe e2e CA");
    let stack = LoginStack::start(&ca);
    let good = "${{ steps.login.access_token }}";

    // The control: the same scenario with the real token passes.
    let o = run_yaml(&token_yaml(&stack, idp::API_RESOURCE, 0, good));
    assert!(o.success, "{o:#?}");

    // A failure that would show the token shows its redaction instead.
    let yaml = token_yaml(&stack, idp::API_RESOURCE, 0, good).replace(
        r#"jsonpath "$.sub" == "${{ steps.login.claims.sub }}""#,
        r#"jsonpath "$.sub" == "${{ steps.login.access_token }}""#,
    );
    let o = run_yaml(&yaml);
    let me = me_step(&o);
    assert_eq!(me.reason, Some(Reason::Assertion), "{o:#?}");
    let msg = me.message.as_deref().unwrap();
    assert!(msg.contains("[redacted:access_token]"), "{msg}");
    let token = stack.app.seen_tokens().pop().unwrap();
    assert!(
        !msg.contains(&token) && !format!("{o:?}").contains(&token),
        "{msg}"
    );

    // A forged token (the real one with its signature cut off and replaced).
    let forged = format!("{good}x");
    let o = run_yaml(&token_yaml(&stack, idp::API_RESOURCE, 0, &forged));
    let me = me_step(&o);
    assert_eq!(
        (me.status, me.reason),
        (StepStatus::Failed, Some(Reason::HttpStatus)),
        "{o:#?}"
    );
    assert!(me.message.as_deref().unwrap().contains("401"), "{me:#?}");

    // Not a token at all.
    let o = run_yaml(&token_yaml(&stack, idp::API_RESOURCE, 0, "not-a-jwt"));
    assert_eq!(me_step(&o).reason, Some(Reason::HttpStatus), "{o:#?}");

    // A token that lives one second, used after it expired.
    let o = run_yaml(&token_yaml(&stack, idp::SHORT_RESOURCE, 2100, good));
    let me = me_step(&o);
    assert_eq!(me.reason, Some(Reason::HttpStatus), "{o:#?}");
    assert!(
        me.message.as_deref().unwrap().contains("expired"),
        "{me:#?}"
    );
    // ... while the same short-lived token works when used at once.
    let o = run_yaml(&token_yaml(&stack, idp::SHORT_RESOURCE, 0, good));
    assert!(o.success, "{o:#?}");
}
