//! The `oidc` step against a real provider (npm `oidc-provider` on 127.0.0.1): authorization
//! code + PKCE through the login form, every failure reason the IdP can cause, the other
//! grants, and the JWKS cache across runs and key rotation.

mod support;

use flowprobe::outcome::{Reason, ScenarioOutcome, StepOutcome, StepStatus};
use flowprobe::scenario::load::load_source;
use flowprobe::scenario::{LoadOptions, LoadedScenario};

use support::idp::{self, Idp};

fn load(yaml: &str) -> LoadedScenario {
    load_source("test.yaml", yaml, &LoadOptions::default()).unwrap_or_else(|errs| {
        panic!(
            "scenario does not load:\n{}\n{yaml}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Runs once with the process-wide state every run of this test binary shares (as `serve` and
/// `run --iterations` share theirs), so caches such as the JWKS carry over between runs.
async fn run(sc: &LoadedScenario) -> ScenarioOutcome {
    static CONTROL: std::sync::OnceLock<flowprobe::run::RunControl> = std::sync::OnceLock::new();
    let control = CONTROL.get_or_init(flowprobe::run::RunControl::default);
    let redactor = flowprobe::secrets::Redactor::new();
    flowprobe::run::run_scenario_with(sc, 1, &redactor, control).await
}

/// A scenario with the IdP's secrets and one login step (`extra` lines are added to it).
fn login_yaml(idp: &Idp, extra: &str, asserts: &[&str]) -> String {
    let asserts: String = asserts.iter().map(|a| format!("      - '{a}'\n")).collect();
    format!(
        "name: oidc-test\n{secrets}steps:\n  - name: login\n    oidc:\n      issuer: {issuer}\n      client_id: {client}\n      client_secret: ${{{{ secrets.client_secret }}}}\n      redirect_uri: {redirect}\n      username: {user}\n      password: ${{{{ secrets.password }}}}\n{extra}    assert:\n      - 'duration < 10s'\n{asserts}",
        secrets = idp.secrets_yaml(),
        issuer = idp.issuer(),
        client = idp::CLIENT_ID,
        redirect = idp::REDIRECT_URI,
        user = idp::USER,
    )
}

fn step<'a>(o: &'a ScenarioOutcome, name: &str) -> &'a StepOutcome {
    o.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// The network phases the transport adds, summed over every request of the step.
const NET: [&str; 5] = ["dns", "connect", "tls", "first_byte", "body"];

/// The step-level phases (discovery, authorize, token, ...), in order.
fn phases(s: &StepOutcome) -> Vec<&str> {
    s.phases
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| !NET.contains(n))
        .collect()
}

/// The network phases, in order.
fn net_phases(s: &StepOutcome) -> Vec<&str> {
    s.phases
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| NET.contains(n))
        .collect()
}

fn expect_failure(o: &ScenarioOutcome, reason: Reason) -> String {
    let s = &o.steps[0];
    assert_eq!(s.status, StepStatus::Failed, "{o:#?}");
    assert_eq!(s.reason, Some(reason), "{o:#?}");
    s.message.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_code_with_pkce_logs_in_through_the_form() {
    let idp = Idp::start();
    let yaml = login_yaml(
        &idp,
        "      scopes: [openid, email, profile]\n      login: {preset: oidc-provider}\n      userinfo: true\n      logout: true\n      post_logout_redirect_uri: http://127.0.0.1/logged-out\n",
        &[
            &format!(r#"claim "sub" == "{}""#, idp::USER),
            r#"claim "aud" includes "flowprobe""#,
            &format!(r#"claim "email" == "{}""#, idp::EMAIL),
            "token expires_in > 5m",
            r#"phase "token" < 5s"#,
            &format!(r#"jsonpath "$.email" == "{}""#, idp::EMAIL),
        ],
    );
    let o = run(&load(&yaml)).await;
    assert!(o.success, "{o:#?}\n{}", idp.log_text());
    let s = step(&o, "login");
    assert!(s.assertions.iter().all(|a| a.passed), "{s:#?}");
    assert_eq!(
        phases(s),
        [
            "discovery",
            "authorize",
            "login",
            "consent",
            "token",
            "jwks",
            "userinfo",
            "logout"
        ]
    );
    // Every request of the step (both channels, each redirect hop) adds its network phases:
    // the IdP is plain HTTP on a new connection each time, so no `tls`.
    assert_eq!(
        net_phases(s),
        ["dns", "connect", "first_byte", "body"],
        "{s:#?}"
    );
    assert_eq!(s.connection, Some(flowprobe::outcome::ConnectionUse::New));
    let net: std::time::Duration = s
        .phases
        .iter()
        .filter(|p| NET.contains(&p.name.as_str()))
        .map(|p| p.duration)
        .sum();
    assert!(
        net > std::time::Duration::ZERO && net <= s.duration,
        "{s:#?}"
    );
    // The IdP saw the whole dance: login form posted, code exchanged, session ended.
    let log = idp.log_text();
    for line in [
        "GET /auth 303",
        "POST /token 200",
        "GET /me 200",
        "POST /session/end/confirm 303",
    ] {
        assert!(
            log.contains(line),
            "{line} missing from the IdP log:\n{log}"
        );
    }
    assert_eq!(
        idp.requests("POST /interaction/"),
        2,
        "login + consent:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generic_form_finder_works_without_a_preset() {
    let idp = Idp::start();
    let o = run(&load(&login_yaml(&idp, "", &[r#"claim "sub" exists"#]))).await;
    assert!(o.success, "{o:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_fails_with_auth() {
    let idp = Idp::start();
    std::fs::write(idp.secret_file("password"), "not-the-password").unwrap();
    let o = run(&load(&login_yaml(&idp, "", &[]))).await;
    let msg = expect_failure(&o, Reason::Auth);
    assert!(msg.contains("login form came back"), "{msg}");
    assert!(msg.contains("Invalid login or password"), "{msg}");
    assert!(msg.contains("POST /interaction/"), "hop trail: {msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    // Nothing was exchanged: no code was issued.
    assert_eq!(idp.requests("POST /token"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_form_field_names_or_selectors_fail_with_login_form() {
    let idp = Idp::start();
    let yaml = login_yaml(
        &idp,
        "      login: {preset: oidc-provider, username_field: username}\n",
        &[],
    );
    let msg = expect_failure(&run(&load(&yaml)).await, Reason::LoginForm);
    assert!(msg.contains("no username field `username`"), "{msg}");
    assert!(
        msg.contains("prompt, login, password"),
        "lists the fields found: {msg}"
    );

    let yaml = login_yaml(&idp, "      login: {form: \"form#kc-form-login\"}\n", &[]);
    let msg = expect_failure(&run(&load(&yaml)).await, Reason::LoginForm);
    assert!(
        msg.contains("no login form matching `form#kc-form-login`"),
        "{msg}"
    );
    assert!(msg.contains("page \"Sign-in\""), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_no_rule_matches_fails_with_login_form() {
    let idp = Idp::start();
    // Keycloak's preset does not know oidc-provider's consent page.
    let yaml = login_yaml(
        &idp,
        "      login: {preset: keycloak, form: \"input[name=prompt][value=login]\", username_field: login}\n",
        &[],
    );
    let msg = expect_failure(&run(&load(&yaml)).await, Reason::LoginForm);
    assert!(msg.contains("matches no rule in `pages`"), "{msg}");
    assert!(msg.contains("page \"Authorize\""), "{msg}");
    // Its one button has no name: the suggested rule finds the form by its fixed hidden input.
    assert_eq!(
        suggested_rule(&msg),
        "input[name=prompt][value=consent]",
        "{msg}"
    );
    // The scenario's own rule gets past it.
    let yaml = login_yaml(
        &idp,
        "      login: {preset: keycloak, form: \"input[name=prompt][value=login]\", username_field: login}\n      pages:\n        - form: \"input[name=prompt][value=consent]\"\n          phase: approve\n",
        &[r#"phase "approve" < 5s"#],
    );
    let o = run(&load(&yaml)).await;
    assert!(o.success, "{o:#?}");
}

/// A login selector as broad as `form[method=post]` also matches the consent form: that page
/// is not "the login form again" (it has no password field), so the `pages:` rules decide.
#[tokio::test(flavor = "multi_thread")]
async fn a_consent_form_the_login_selector_also_matches_is_not_a_failed_login() {
    let broad = "      login: {form: \"form[method=post]\"}\n";
    let idp = Idp::start();
    let o = run(&load(&login_yaml(&idp, broad, &[r#"claim "sub" exists"#]))).await;
    assert!(o.success, "{o:#?}\n{}", idp.log_text());
    assert!(phases(&o.steps[0]).contains(&"consent"), "{o:#?}");
    assert_eq!(
        idp.requests("POST /interaction/"),
        2,
        "login + consent:\n{}",
        idp.log_text()
    );
    // The same selector still tells a wrong password: the login form came back with its fields.
    std::fs::write(idp.secret_file("password"), "not-the-password").unwrap();
    let msg = expect_failure(
        &run(&load(&login_yaml(&idp, broad, &[]))).await,
        Reason::Auth,
    );
    assert!(msg.contains("login form came back"), "{msg}");
    assert!(msg.contains("Invalid login or password"), "{msg}");

    // A consent page with several buttons, matched by the same selector: the scenario's rule
    // clicks Allow (the form's first button is Cancel).
    let idp = Idp::start_ui("django");
    let extra = format!("{broad}      pages: [{{form: \"button[name=allow]\"}}]\n");
    let o = run(&load(&login_yaml(&idp, &extra, &[]))).await;
    assert!(o.success, "{o:#?}\n{}", idp.log_text());
    let log = idp.log_text();
    assert!(log.contains("POST /token 200"), "{log}");
}

/// Without `login.error`, the default selectors find a Django-style `errorlist`; the quoted
/// message is redacted (this IdP echoes the password typed).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_quotes_the_idps_message_from_a_common_template_redacted() {
    let idp = Idp::start_ui("django");
    let planted = "planted-pw-5c1e-wrong";
    std::fs::write(idp.secret_file("password"), planted).unwrap();
    let o = run(&load(&login_yaml(&idp, "", &[]))).await;
    let msg = expect_failure(&o, Reason::Auth);
    assert!(msg.contains("login form came back"), "{msg}");
    assert!(
        msg.contains("the IdP says \"Please enter a correct username and password (the password you entered, [redacted:password], is not it).\""),
        "{msg}"
    );
    assert!(!format!("{o:?}").contains(planted), "{o:#?}");
    assert_eq!(idp.requests("POST /token"), 0);
}

/// The selector in a failure's suggested rule (`      - form: '...'`).
fn suggested_rule(msg: &str) -> String {
    let line = msg
        .lines()
        .find_map(|l| l.trim().strip_prefix("- form: "))
        .unwrap_or_else(|| panic!("no suggested rule in: {msg}"));
    line.trim_matches('\'').replace("''", "'")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_no_rule_matches_lists_its_buttons_and_suggests_a_rule_that_works() {
    let idp = Idp::start_ui("django");
    let broad = "      login: {form: \"form[method=post]\"}\n";
    let msg = expect_failure(
        &run(&load(&login_yaml(&idp, broad, &[]))).await,
        Reason::LoginForm,
    );
    assert!(msg.contains("matches no rule in `pages`"), "{msg}");
    assert!(msg.contains("page \"Authorize\""), "{msg}");
    for button in [
        "<input type=submit name=cancel value=Cancel>",
        "<button type=submit name=allow value=yes>Allow</button>",
        "<button type=submit name=deny value=no>Deny</button>",
    ] {
        assert!(msg.contains(button), "{button} missing: {msg}");
    }
    assert!(msg.contains("a rule that submits \"Allow\""), "{msg}");
    let rule = suggested_rule(&msg);
    assert_eq!(rule, "button[name=allow]", "{msg}");

    // The suggestion, pasted into the scenario, gets through.
    let extra = format!("{broad}      pages:\n        - form: '{rule}'\n");
    let o = run(&load(&login_yaml(
        &idp,
        &extra,
        &[r#"phase "consent" < 5s"#],
    )))
    .await;
    assert!(o.success, "{o:#?}\n{}", idp.log_text());
    // Submitting the form as it is clicks its first button, Cancel: the IdP refuses.
    let extra = format!("{broad}      pages: [{{form: \"input[name=csrfmiddlewaretoken]\"}}]\n");
    let msg = expect_failure(
        &run(&load(&login_yaml(&idp, &extra, &[]))).await,
        Reason::Auth,
    );
    assert!(msg.contains("access_denied"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_expected_audience_fails_with_token_invalid() {
    let idp = Idp::start();
    let yaml = login_yaml(&idp, "      audience: some-other-client\n", &[]);
    let msg = expect_failure(&run(&load(&yaml)).await, Reason::TokenInvalid);
    assert!(msg.starts_with("ID token check `aud` failed"), "{msg}");
    assert!(msg.contains("some-other-client"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idp_that_is_down_fails_with_connect() {
    let mut idp = Idp::start();
    idp.stop();
    let msg = expect_failure(
        &run(&load(&login_yaml(&idp, "", &[]))).await,
        Reason::Connect,
    );
    assert!(msg.starts_with("discovery:"), "{msg}");
    assert!(msg.contains(&idp.issuer()), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_client_secret_fails_with_auth() {
    let idp = Idp::start();
    std::fs::write(idp.secret_file("client_secret"), "wrong-secret").unwrap();
    let msg = expect_failure(&run(&load(&login_yaml(&idp, "", &[]))).await, Reason::Auth);
    assert!(msg.starts_with("token: invalid_client"), "{msg}");
}

fn cc_yaml(idp: &Idp, extra: &str, asserts: &[&str]) -> String {
    let asserts: String = asserts.iter().map(|a| format!("      - '{a}'\n")).collect();
    format!(
        "name: cc-test\n{}steps:\n  - name: cc\n    oidc:\n      issuer: {}\n      client_id: {}\n      client_secret: ${{{{ secrets.client_secret }}}}\n      flow: client_credentials\n{extra}    assert:\n      - 'duration < 10s'\n{asserts}",
        idp.secrets_yaml(),
        idp.issuer(),
        idp::CLIENT_ID
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_gets_a_jwt_for_the_api() {
    let idp = Idp::start();
    let extra = format!(
        "      scopes: [\"{}\"]\n      resource: {res}\n      access_token_audience: {res}\n",
        idp::API_SCOPE,
        res = idp::API_RESOURCE
    );
    let o = run(&load(&cc_yaml(
        &idp,
        &extra,
        &[
            r#"claim "client_id" == "flowprobe""#,
            &format!(r#"claim "aud" == "{}""#, idp::API_RESOURCE),
            &format!(r#"claim "scope" includes "{}""#, idp::API_SCOPE),
            "token expires_in > 5m",
        ],
    )))
    .await;
    assert!(o.success, "{o:#?}");
    assert_eq!(phases(&o.steps[0]), ["discovery", "token", "jwks"]);

    // Another API's audience: the token is rejected, naming the check.
    let extra = format!(
        "      resource: {}\n      access_token_audience: urn:other:api\n",
        idp::API_RESOURCE
    );
    let msg = expect_failure(
        &run(&load(&cc_yaml(&idp, &extra, &[]))).await,
        Reason::TokenInvalid,
    );
    assert!(msg.starts_with("access token check `aud` failed"), "{msg}");

    // Without a resource the IdP issues an opaque token, which cannot be checked as a JWT.
    let extra = "      access_token_audience: urn:flowprobe:api\n";
    let msg = expect_failure(
        &run(&load(&cc_yaml(&idp, extra, &[]))).await,
        Reason::TokenInvalid,
    );
    assert!(
        msg.starts_with("access token check `format` failed"),
        "{msg}"
    );

    // An unknown resource is the scenario's mistake.
    let msg = expect_failure(
        &run(&load(&cc_yaml(&idp, "      resource: urn:nope\n", &[]))).await,
        Reason::Config,
    );
    assert!(msg.contains("invalid_target"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_uses_the_refresh_token_of_an_earlier_step() {
    let idp = Idp::start();
    let refresh = |name: &str| {
        format!(
            "  - name: {name}\n    oidc:\n      issuer: {}\n      client_id: {}\n      client_secret: ${{{{ secrets.client_secret }}}}\n      flow: refresh\n      refresh_token: ${{{{ steps.login.refresh_token }}}}\n    assert:\n      - 'claim \"sub\" == \"${{{{ steps.login.claims.sub }}}}\"'\n      - 'phase \"refresh\" < 5s'\n",
            idp.issuer(),
            idp::CLIENT_ID
        )
    };
    let yaml =
        login_yaml(&idp, "      scopes: [openid, offline_access]\n", &[]) + &refresh("refresh");
    let o = run(&load(&yaml)).await;
    assert!(o.success, "{o:#?}");
    // The login step's keys are cached: the refreshed ID token is checked without a fetch.
    assert_eq!(phases(step(&o, "refresh")), ["discovery", "refresh"]);
    assert_eq!(idp.requests("POST /token 200"), 2);

    // Refresh tokens rotate: using the login's token a second time is refused.
    let yaml = yaml + &refresh("replay");
    let o = run(&load(&yaml)).await;
    let s = step(&o, "replay");
    assert_eq!(s.reason, Some(Reason::Auth), "{o:#?}");
    assert!(
        s.message
            .as_deref()
            .unwrap_or("")
            .starts_with("refresh: invalid_grant"),
        "{s:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_flow_checks_the_password() {
    let idp = Idp::start();
    let yaml = |user: &str| {
        format!(
            "name: pw\n{}steps:\n  - name: pw\n    oidc:\n      issuer: {}\n      client_id: {}\n      client_secret: ${{{{ secrets.client_secret }}}}\n      flow: password\n      scopes: [email]\n      username: {user}\n      password: ${{{{ secrets.password }}}}\n    assert:\n      - 'claim \"email\" == \"{}\"'\n",
            idp.secrets_yaml(),
            idp.issuer(),
            idp::CLIENT_ID,
            idp::EMAIL
        )
    };
    let o = run(&load(&yaml(idp::USER))).await;
    assert!(o.success, "{o:#?}");
    let msg = expect_failure(&run(&load(&yaml("mallory"))).await, Reason::Auth);
    assert!(msg.starts_with("token: invalid_grant"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_cached_between_runs_and_fetched_again_after_rotation() {
    let mut idp = Idp::start();
    let sc = load(&login_yaml(&idp, "", &[]));
    let first_kid = idp.kids();

    let o = run(&sc).await;
    assert!(o.success, "{o:#?}");
    assert!(phases(&o.steps[0]).contains(&"jwks"));
    assert_eq!(idp.requests("GET /jwks"), 1);

    // Second run: the cached keys verify the token; no JWKS request.
    let o = run(&sc).await;
    assert!(o.success, "{o:#?}");
    assert!(!phases(&o.steps[0]).contains(&"jwks"), "{o:#?}");
    assert_eq!(idp.requests("GET /jwks"), 1);

    // New signing key: the token names an unknown kid, the keys are fetched once more.
    idp.rotate_keys();
    assert_ne!(idp.kids(), first_kid);
    let o = run(&sc).await;
    assert!(o.success, "{o:#?}\n{}", idp.log_text());
    assert!(phases(&o.steps[0]).contains(&"jwks"), "{o:#?}");
    assert_eq!(idp.requests("GET /jwks"), 2, "{}", idp.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_ttl_fetches_the_keys_every_run() {
    let idp = Idp::start();
    let sc = load(&login_yaml(&idp, "      jwks_cache_ttl: 0s\n", &[]));
    for _ in 0..2 {
        assert!(run(&sc).await.success);
    }
    assert_eq!(idp.requests("GET /jwks"), 2);
}

#[test]
fn literal_credentials_are_refused_at_load_time() {
    let yaml = "name: bad\nsteps:\n  - name: login\n    oidc:\n      issuer: http://127.0.0.1:9\n      client_id: c\n      client_secret: hunter2\n      redirect_uri: http://127.0.0.1/cb\n      username: u\n      password: hunter3\n";
    let errs = load_source("bad.yaml", yaml, &LoadOptions::default()).unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(text.iter().any(|t| t.contains("bad.yaml:7:") && t.contains("`client_secret` must not be written")), "{text:#?}");
    assert!(
        text.iter()
            .any(|t| t.contains("bad.yaml:10:") && t.contains("`password` must not be written")),
        "{text:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idp_that_never_answers_fails_with_timeout() {
    // Accepts connections, never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let yaml = format!(
        "name: t\nsecrets:\n  cs: {{env: PATH}}\nsteps:\n  - name: cc\n    timeout: 1s\n    oidc:\n      issuer: http://127.0.0.1:{port}\n      client_id: c\n      flow: client_credentials\n      client_secret: ${{{{ secrets.cs }}}}\n"
    );
    let o = run(&load(&yaml)).await;
    expect_failure(&o, Reason::Timeout);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_fails_with_tls_and_a_foreign_issuer_with_config() {
    use support::nginx::{Nginx, NginxConfig, Site};
    let idp = Idp::start();
    let ca = support::tls::TestCa::new("oidc tls test CA");
    // nginx terminates TLS for 127.0.0.1 in front of the IdP.
    let nginx = Nginx::start(NginxConfig {
        sites: vec![Site::tls("127.0.0.1", ca.issue(&["127.0.0.1"]), idp.port)],
    })
    .unwrap();
    let issuer = format!("https://127.0.0.1:{}", nginx.port);
    let yaml = |tls: &str| {
        format!(
            "name: t\n{}steps:\n  - name: cc\n    oidc:\n      issuer: {issuer}\n      client_id: {}\n      flow: client_credentials\n      client_secret: ${{{{ secrets.client_secret }}}}\n{tls}",
            idp.secrets_yaml(),
            idp::CLIENT_ID
        )
    };
    let msg = expect_failure(&run(&load(&yaml(""))).await, Reason::Tls);
    assert!(msg.starts_with("discovery:"), "{msg}");
    // Trusting the CA gets through TLS; the provider then names its real issuer.
    let tls = format!("      tls: {{ca_file: {}}}\n", ca.ca_file().display());
    let msg = expect_failure(&run(&load(&yaml(&tls))).await, Reason::Config);
    assert!(
        msg.contains(&format!("calls itself `{}`", idp.issuer())),
        "{msg}"
    );
}
