//! Secrets never leave the process. First, a password from an environment variable, an API key
//! from a file, a token captured with `secret: true` and the basic-auth header built from the
//! password are sent through a real nginx ingress to a backend that echoes them back; passing
//! and failing scenarios run with `-v` and `-vv` and both reports. Then a planted-secrets suite
//! over every step kind (http, oidc against an echoing token endpoint and the real IdP, s3,
//! redis), echoed at the start of an answer and across the 200-character excerpt cut, run with
//! `-v`/`-vv`, text/JSON logs, both reports, and under `serve` (/metrics, /status as JSON and
//! HTML). No trace of any secret — raw, URL-encoded (path, query, form), JSON-escaped, base64,
//! Basic credentials, or any 12-character window of it or of its encodings — may appear.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use support::nginx::{Ingress, SHOP};
use support::prometheus::{http_get, wait_until, Prober};

/// A secret with characters that every encoding changes, around two random "cores" of letters
/// and digits that no encoding changes: finding a core anywhere means a leak in some form.
struct Planted {
    value: String,
    cores: [String; 2],
}

fn plant(tag: &str) -> Planted {
    let a = format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let b = format!("Z{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    Planted {
        value: format!("{a}/+= @&:{b}"),
        cores: [a, b],
    }
}

/// Every form of `value` that must not appear.
fn forms(value: &str, user: &str) -> Vec<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let mut path_url = reqwest::Url::parse("http://x/").unwrap();
    path_url.set_path(&format!("/{value}"));
    vec![
        ("raw".into(), value.to_string()),
        ("form-urlencoded".into(), url),
        (
            "percent-encoded path".into(),
            path_url.path()[1..].to_string(),
        ),
        ("json".into(), serde_json::to_string(value).unwrap()),
        ("base64".into(), b64.encode(value)),
        (
            "base64 user:password".into(),
            b64.encode(format!("{user}:{value}")),
        ),
    ]
}

struct Setup {
    ing: Ingress,
    dir: tempfile::TempDir,
    password: Planted,
    api_key: Planted,
}

const SECRETS: &str = r#"
secrets:
  password: {env: FP_REDACTION_PASSWORD}
  api_key: {file: "${KEY_FILE}"}
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
"#;

const LOGIN: &str = r#"
  - name: login
    http:
      method: POST
      url: ${{ vars.shop }}/login
      body: {json: {username: alice, password: "${{ secrets.password }}"}}
    capture:
      token: {query: 'jsonpath "$.token"', secret: true}
    assert:
      - status == 200
      - jsonpath "$.token" startsWith "tok-"
"#;

/// An echo carrying every secret: query, header, bearer token, JSON body.
const ECHO: &str = r#"
  - name: echo
    http:
      method: POST
      url: ${{ vars.shop }}/echo
      query: {key: "${{ secrets.api_key }}"}
      headers: {X-Api-Key: "${{ secrets.api_key }}"}
      auth: {bearer: "${{ steps.login.token }}"}
      body: {json: {password: "${{ secrets.password }}", key: "${{ secrets.api_key }}"}}
"#;

impl Setup {
    fn new() -> Setup {
        let password = plant("pw");
        let api_key = plant("key");
        let ing = Ingress::start_with_password(&password.value);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api-key"), format!("{}\n", api_key.value)).unwrap();
        std::fs::create_dir(dir.path().join("scenarios")).unwrap();
        let s = Setup {
            ing,
            dir,
            password,
            api_key,
        };
        s.write(
            "pass",
            &format!(
                "{LOGIN}{ECHO}{}",
                r#"
    assert:
      - status == 200
      - jsonpath "$.headers.authorization" == "Bearer ${{ steps.login.token }}"
      - jsonpath "$.headers['x-api-key']" == "${{ secrets.api_key }}"
      - jsonpath "$.query" startsWith "key="
  - name: basic
    http:
      url: ${{ vars.shop }}/basic
      auth: {basic: {username: alice, password: "${{ secrets.password }}"}}
    assert: ['jsonpath "$.user" == "alice"']
  - name: echo-basic
    http:
      url: ${{ vars.shop }}/echo
      auth: {basic: {username: alice, password: "${{ secrets.password }}"}}
    assert: ['jsonpath "$.headers.authorization" startsWith "Basic "']
"#
            ),
        );
        // Each failing scenario fails on an assertion whose actual value, expected value or
        // response excerpt holds a secret.
        s.write(
            "fail-key",
            &format!(
                "{LOGIN}{ECHO}{}",
                r#"
    assert: ['jsonpath "$.headers[''x-api-key'']" == "${{ secrets.password }}"']
"#
            ),
        );
        s.write(
            "fail-token",
            &format!(
                "{LOGIN}{ECHO}{}",
                r#"
    assert: ['jsonpath "$.headers.authorization" endsWith "nope"']
"#
            ),
        );
        s.write(
            "fail-body",
            &format!(
                "{LOGIN}{ECHO}{}",
                r#"
    assert: ['jsonpath "$.body" == "nope"', 'jsonpath "$.query" == "nope"']
"#
            ),
        );
        s.write(
            "fail-basic",
            r#"
  - name: echo-basic
    http:
      url: ${{ vars.shop }}/echo
      auth: {basic: {username: alice, password: "${{ secrets.password }}"}}
    assert: ['jsonpath "$.headers.authorization" == "Basic nope"']
"#,
        );
        s.write(
            "fail-status",
            r#"
  - name: echo-in-url
    http: {url: "${{ vars.shop }}/echo/?k=${{ secrets.api_key }}"}
  - name: wrong-password
    http:
      method: POST
      url: ${{ vars.shop }}/login
      body: {form: {username: alice, password: "x${{ secrets.password }}"}}
"#,
        );
        s.write(
            "fail-connect",
            r#"
  - name: secret-in-url
    http:
      url: ${{ vars.closed }}/p/${{ secrets.api_key }}?k=${{ secrets.password }}
      query: {key: "${{ secrets.api_key }}"}
"#,
        );
        s.write(
            "fail-timeout",
            r#"
  - name: slow-with-secret
    http:
      url: ${{ vars.shop }}/delay/3000?k=${{ secrets.api_key }}
    timeout: 200ms
    retry: {attempts: 2, interval: 10ms}
"#,
        );
        s
    }

    fn write(&self, name: &str, steps: &str) {
        let key_file = self.dir.path().join("api-key").display().to_string();
        let text = format!(
            "name: {name}\n{}\nsteps:{steps}",
            SECRETS.replace("${KEY_FILE}", &key_file)
        );
        std::fs::write(self.dir.path().join(format!("scenarios/{name}.yaml")), text).unwrap();
    }

    fn run(&self, verbosity: &str) -> (Output, String, String) {
        let tag = verbosity.replace(' ', "_");
        let json = self.dir.path().join(format!("report{tag}.json"));
        let junit = self.dir.path().join(format!("junit{tag}.xml"));
        let closed = support::free_port();
        let o = Command::new(support::flowprobe_bin())
            .arg("run")
            .arg(self.dir.path().join("scenarios"))
            .args(verbosity.split(' '))
            .args(["--var", &format!("shop={}", self.ing.https(SHOP))])
            .args(["--var", &format!("ca={}", self.ing.ca.ca_file().display())])
            .args(["--var", &format!("closed=http://127.0.0.1:{closed}")])
            .arg("--report")
            .arg(format!("json={}", json.display()))
            .arg("--report")
            .arg(format!("junit={}", junit.display()))
            .env("FP_REDACTION_PASSWORD", &self.password.value)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .output()
            .expect("run flowprobe");
        (
            o,
            std::fs::read_to_string(json).unwrap(),
            std::fs::read_to_string(junit).unwrap(),
        )
    }

    /// (what, value) for everything that must not appear.
    fn forbidden(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, p) in [("password", &self.password), ("api_key", &self.api_key)] {
            for (form, v) in forms(&p.value, "alice") {
                out.push((format!("{name} {form}"), v));
            }
            for core in &p.cores {
                out.push((format!("{name} fragment"), core.clone()));
            }
        }
        let tokens = self.ing.app_a.issued_tokens();
        assert!(tokens.len() >= 4, "logins happened: {tokens:?}");
        for t in tokens {
            let hex = t.trim_start_matches("tok-").to_string();
            for (form, v) in forms(&t, "alice") {
                out.push((format!("token {form}"), v));
            }
            out.push(("token fragment".into(), hex));
        }
        out
    }
}

/// `text` around bytes `at..at + len`, 80 characters either side.
fn context(text: &str, at: usize, len: usize) -> &str {
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(80)
        .map(|(i, _)| i)
        .unwrap_or(0);
    let end = (at + len + 80).min(text.len());
    let end = (end..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap();
    &text[start..end]
}

/// Every place `text` shows a forbidden value: "FORM leaked into WHAT: …context…". Values of
/// `WINDOW` bytes (windows of secrets and of their encodings) are looked up at every position
/// of the text; longer ones are searched as they are.
fn find_leaks(what: &str, text: &str, forbidden: &[(String, String)]) -> Vec<String> {
    let (windows, whole): (Vec<_>, Vec<_>) = forbidden.iter().partition(|(_, v)| v.len() == WINDOW);
    // A window several forms share is named after the first of them.
    let mut first_names = std::collections::HashMap::new();
    for (name, v) in &windows {
        first_names.entry(v.as_str()).or_insert(name.as_str());
    }
    let windows = first_names;
    let mut found = Vec::new();
    for (name, value) in whole {
        if let Some(at) = text.find(value.as_str()) {
            let around = context(text, at, value.len());
            found.push(format!("{name} leaked into {what}:\n…{around}…"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for at in 0..text.len().saturating_sub(WINDOW - 1) {
        let Some(name) = text.get(at..at + WINDOW).and_then(|w| windows.get(w)) else {
            continue;
        };
        if seen.insert(*name) {
            let around = context(text, at, WINDOW);
            found.push(format!("{name} leaked into {what}:\n…{around}…"));
        }
    }
    found
}

fn assert_clean(what: &str, text: &str, forbidden: &[(String, String)]) {
    let leaks = find_leaks(what, text, forbidden);
    assert!(leaks.is_empty(), "{}", leaks.join("\n\n"));
}

#[test]
fn secrets_appear_nowhere_in_output_logs_or_reports() {
    let s = Setup::new();
    for verbosity in ["-v", "-vv", "-vv --log-format json"] {
        let (o, json, junit) = s.run(verbosity);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let all = format!("{stdout}\n{stderr}");
        assert_eq!(o.status.code(), Some(1), "{all}");

        // The runs did what they should: the secrets really went out and came back.
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let runs = report["runs"].as_array().unwrap();
        let result = |name: &str| {
            runs.iter()
                .find(|r| r["scenario"] == name)
                .unwrap_or_else(|| panic!("no run of {name}"))
        };
        assert_eq!(result("pass")["success"], true, "{all}");
        for (name, reason) in [
            ("fail-key", "assertion"),
            ("fail-token", "assertion"),
            ("fail-body", "assertion"),
            ("fail-basic", "assertion"),
            ("fail-status", "http_status"),
            ("fail-connect", "connect"),
            ("fail-timeout", "timeout"),
        ] {
            assert_eq!(result(name)["reason"], reason, "{name}: {all}");
        }
        assert!(!all.contains('\x1b'), "colour on a pipe: {all:?}");
        // Logs were written, and redaction markers show where the secrets were.
        assert!(stderr.contains("step failed"), "{stderr}");
        if verbosity.starts_with("-vv") {
            assert!(stderr.contains("DEBUG"), "{stderr}");
        }
        for marker in [
            "[redacted:api_key]",
            "[redacted:password]",
            "[redacted:token]",
            "[redacted:basic-auth]",
        ] {
            assert!(all.contains(marker), "{marker} not shown:\n{all}");
            assert!(json.contains(marker), "{marker} not in the JSON report");
            assert!(junit.contains(marker), "{marker} not in the JUnit report");
        }

        let forbidden = s.forbidden();
        assert_clean(&format!("stdout ({verbosity})"), &stdout, &forbidden);
        assert_clean(&format!("stderr ({verbosity})"), &stderr, &forbidden);
        assert_clean(&format!("JSON report ({verbosity})"), &json, &forbidden);
        assert_clean(&format!("JUnit report ({verbosity})"), &junit, &forbidden);
    }
}

// ---------------------------------------------------------------------------------------------
// The planted-secrets suite over every step kind: http (echoed headers, path, query and bodies
// in 500 answers), oidc (client_secret_basic and client_secret_post echoed by a token endpoint,
// tokens from the real IdP echoed by the API), s3 (a secret object key and content, a wrong
// secret key), redis (a wrong secret password, a secret echoed in a reply and in an error).
// Everything the program printed is searched for each secret in every encoding and for every
// 12-character window of it.
// ---------------------------------------------------------------------------------------------

/// Length of the windows of a planted value that must not appear anywhere.
const WINDOW: usize = 12;

/// A secret with every character an encoding treats specially: `/+=! '"@&:`, around two
/// random cores.
fn plant_awkward(tag: &str) -> Planted {
    let a = format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let b = format!("Z{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    Planted {
        value: format!("{a}/+=! '\"@&:{b}"),
        cores: [a, b],
    }
}

/// Every `WINDOW`-character window of `value`.
fn windows(value: &str) -> Vec<String> {
    let chars: Vec<char> = value.chars().collect();
    chars
        .windows(WINDOW.min(chars.len()))
        .map(|w| w.iter().collect())
        .collect()
}

/// `value` in every form it can travel in, computed here independently of the redactor:
/// what the url crate writes in a path, a path segment, a typed query and a query pair,
/// JSON, base64 and base64url (padded or not), and HTTP Basic for each user (plain, and
/// form-encoded first as OAuth clients do).
fn encodings(value: &str, users: &[&str]) -> Vec<(String, String, usize)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let form = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let mut path = url::Url::parse("https://h/").unwrap();
    path.set_path(&format!("/{value}"));
    let mut segment = url::Url::parse("https://h/").unwrap();
    segment.path_segments_mut().unwrap().push(value);
    let mut typed = url::Url::parse("https://h/").unwrap();
    typed.set_query(Some(value));
    let json = |s: &str| -> String {
        let quoted = serde_json::to_string(s).unwrap();
        quoted[1..quoted.len() - 1].to_string()
    };
    let out = vec![
        ("raw".to_string(), value.to_string()),
        ("json".into(), json(value)),
        ("json in json".into(), json(&json(value))),
        ("form-urlencoded".into(), form(value)),
        ("form-urlencoded twice".into(), form(&form(value))),
        ("url path".into(), path.path()[1..].to_string()),
        ("url path segment".into(), segment.path()[1..].to_string()),
        ("url typed query".into(), typed.query().unwrap().to_string()),
        ("base64".into(), STANDARD.encode(value)),
        ("base64 unpadded".into(), STANDARD_NO_PAD.encode(value)),
        ("base64url".into(), URL_SAFE.encode(value)),
        ("base64url unpadded".into(), URL_SAFE_NO_PAD.encode(value)),
    ];
    let mut out: Vec<(String, String, usize)> =
        out.into_iter().map(|(form, v)| (form, v, 0)).collect();
    // Basic credentials: the base64 characters before the first one with a bit of the secret
    // encode the user alone.
    for user in users {
        out.push((
            format!("basic {user}:secret"),
            STANDARD.encode(format!("{user}:{value}")),
            (user.len() + 1) * 8 / 6,
        ));
        out.push((
            format!("basic form-encoded {user}:secret"),
            STANDARD.encode(format!("{}:{}", form(user), form(value))),
            (form(user).len() + 1) * 8 / 6,
        ));
    }
    out
}

/// Forms, and 12-character windows when `windowed`, of a secret named `name`.
fn forbidden_forms(
    name: &str,
    value: &str,
    users: &[&str],
    windowed: bool,
) -> Vec<(String, String)> {
    // Windows that a look-alike secret (letters and digits changed) shares say nothing about
    // this one: the encoding of its punctuation alone.
    let look_alike: std::collections::HashSet<String> = encodings(&look_alike(value), users)
        .into_iter()
        .flat_map(|(_, v, user_part)| byte_windows(&v[user_part..]))
        .collect();
    let mut out = Vec::new();
    for (form, v, user_part) in encodings(value, users) {
        if windowed && form != "raw" {
            // A piece of an encoded form is a piece of the secret too.
            for w in byte_windows(&v[user_part..]) {
                if !look_alike.contains(&w) {
                    out.push((format!("{name} ({form}, 12-character window {w:?})"), w));
                }
            }
        }
        out.push((format!("{name} ({form})"), v));
    }
    if windowed {
        for w in windows(value) {
            out.push((format!("{name} (12-character window {w:?})"), w));
        }
    }
    out
}

/// `value` with every letter and digit changed, its punctuation kept.
fn look_alike(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'q' => 'w',
            c if c.is_ascii_alphanumeric() => 'q',
            c => c,
        })
        .collect()
}

/// Every `WINDOW`-byte window of an encoded (ASCII) form.
fn byte_windows(form: &str) -> Vec<String> {
    (0..form.len().saturating_sub(WINDOW - 1))
        .filter_map(|at| form.get(at..at + WINDOW).map(str::to_string))
        .collect()
}

/// The user names secrets are paired with in Basic credentials (`bob:` is 4 bytes, so the
/// secret's base64 is not aligned as it is alone; `alice:` is 6).
const BASIC_USERS: &[&str] = &["alice", "bob", "probe-client", "flowprobe"];

/// Planted secrets, by name, with the environment variable each comes from.
const PLANTED: &[(&str, &str)] = &[
    ("http_secret", "FP_RED_HTTP"),
    ("oidc_secret", "FP_RED_OIDC"),
    ("oidc_password", "FP_RED_OIDC_PW"),
    ("s3_key", "FP_RED_S3_KEY"),
    ("s3_wrong", "FP_RED_S3_WRONG"),
    ("redis_wrong", "FP_RED_REDIS_WRONG"),
    ("redis_value", "FP_RED_REDIS_VALUE"),
];

/// One failing scenario: (name, steps). `@P@` is the echo's padding, `@F@` its format,
/// `@PAD@` padding dots written into content.
fn http_scenarios() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "http-path",
            r#"
  - name: echo
    http: {url: "${{ vars.shop }}/echo500/${{ secrets.http_secret }}?pad=@P@&fmt=@F@&first=path"}
"#,
        ),
        (
            "http-query-pair",
            r#"
  - name: echo
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=query:k"
      query: {k: "${{ secrets.http_secret }}"}
"#,
        ),
        (
            "http-typed-query",
            r#"
  - name: echo
    http: {url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=query:k&k=${{ secrets.http_secret }}"}
"#,
        ),
        (
            "http-header",
            r#"
  - name: echo
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=header:x-secret"
      headers: {X-Secret: "${{ secrets.http_secret }}"}
"#,
        ),
        (
            "http-basic",
            r#"
  - name: echo
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=header:authorization"
      auth: {basic: {username: bob, password: "${{ secrets.http_secret }}"}}
"#,
        ),
        (
            "http-bearer",
            r#"
  - name: echo
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=header:authorization"
      auth: {bearer: "${{ secrets.http_secret }}"}
"#,
        ),
        (
            "http-json-body",
            r#"
  - name: echo
    http:
      method: POST
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=body"
      body: {json: {password: "${{ secrets.http_secret }}"}}
"#,
        ),
        (
            "http-form-body",
            r#"
  - name: echo
    http:
      method: POST
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=form:password"
      body: {form: {password: "${{ secrets.http_secret }}"}}
"#,
        ),
        (
            "http-raw-body",
            r#"
  - name: echo
    http:
      method: POST
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=body"
      body: {raw: "${{ secrets.http_secret }}"}
"#,
        ),
    ]
}

/// Token endpoints that echo the token request in a 500 (through the oidc-echo issuer).
fn oidc_echo_scenarios() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "oidc-client-secret-basic",
            r#"
  - name: token
    oidc:
      issuer: "${{ vars.echo }}/oidc-echo/@P@/header:authorization"
      client_id: probe-client
      client_secret: "${{ secrets.oidc_secret }}"
      flow: client_credentials
"#,
        ),
        (
            "oidc-client-secret-post",
            r#"
  - name: token
    oidc:
      issuer: "${{ vars.echo }}/oidc-echo/@P@/form:client_secret"
      client_id: probe-client
      client_secret: "${{ secrets.oidc_secret }}"
      client_auth: post
      flow: client_credentials
"#,
        ),
        (
            "oidc-password",
            r#"
  - name: token
    oidc:
      issuer: "${{ vars.echo }}/oidc-echo/@P@/form:password"
      client_id: probe-client
      client_secret: "${{ secrets.oidc_secret }}"
      flow: password
      username: alice
      password: "${{ secrets.oidc_password }}"
"#,
        ),
    ]
}

/// A real login, then an API that echoes the token it was sent in a 500.
fn oidc_token_scenarios() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "oidc-access-token",
            r#"
@LOGIN@
  - name: api
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=header:authorization"
      auth: {bearer: "${{ steps.login.access_token }}"}
"#,
        ),
        (
            "oidc-id-token",
            r#"
@LOGIN@
  - name: api
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=header:x-token"
      headers: {X-Token: "${{ steps.login.id_token }}"}
"#,
        ),
        (
            "oidc-refresh-token",
            r#"
@LOGIN@
  - name: api
    http:
      url: "${{ vars.shop }}/echo500?pad=@P@&fmt=@F@&first=header:x-token"
      headers: {X-Token: "${{ steps.login.refresh_token }}"}
"#,
        ),
    ]
}

const IDP_LOGIN: &str = r#"
  - name: login
    oidc:
      issuer: "${{ vars.issuer }}"
      client_id: flowprobe
      client_secret: "${{ secrets.idp_client_secret }}"
      redirect_uri: http://127.0.0.1/callback
      username: synthetic-user-1
      password: "${{ secrets.idp_password }}"
      scopes: [openid, offline_access]"#;

/// s3: `@S3@` is the connection.
fn s3_scenarios() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "s3-missing-key",
            r#"
  - name: get
    s3: {@S3@, get: {key: 'probe/${{ secrets.s3_key }}'}}
"#,
        ),
        (
            "s3-listed-key",
            r#"
  - name: put
    s3: {@S3@, put: {key: 'probe/${{ run.id }}/${{ secrets.s3_key }}', body: 'x'}}
  - name: list
    s3: {@S3@, list: {prefix: 'probe/${{ run.id }}/'}}
    assert: ['newest.key == "nope"']
"#,
        ),
        (
            "s3-content",
            r#"
  - name: put
    s3: {@S3@, put: {key: 'probe/${{ run.id }}/content', body: '@PAD@${{ secrets.s3_key }}'}}
  - name: get
    s3: {@S3@, get: {key: 'probe/${{ run.id }}/content'}}
    assert: ['body == "nope"']
"#,
        ),
        (
            "s3-wrong-secret-key",
            r#"
  - name: put
    s3: {endpoint: '${{ vars.s3 }}', bucket: '${{ vars.bucket }}', access_key_id: '${{ vars.ak }}', secret_access_key: '${{ secrets.s3_wrong }}', put: {body: 'x'}}
"#,
        ),
    ]
}

fn redis_scenarios() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "redis-wrong-password",
            r#"
  - name: cache
    redis: {url: '${{ vars.redis }}', password: '${{ secrets.redis_wrong }}', roundtrip: {ttl: 30s}}
"#,
        ),
        (
            "redis-echoed-value",
            r#"
  - name: cache
    redis:
      url: '${{ vars.redis }}'
      password: '${{ secrets.redis_pw }}'
      commands: [[ECHO, '${{ secrets.redis_value }}']]
    assert: ['reply 0 == "nope"']
"#,
        ),
        (
            "redis-error-reply",
            r#"
  - name: cache
    redis:
      url: '${{ vars.redis }}'
      password: '${{ secrets.redis_pw }}'
      commands: [[EVAL, 'return redis.error_reply(ARGV[1])', '0', '${{ secrets.redis_value }}']]
"#,
        ),
    ]
}

/// Scenarios whose secret is not echoed (a wrong credential): no redaction marker expected.
const NOT_ECHOED: &[&str] = &["s3-wrong-secret-key", "redis-wrong-password"];

/// The servers of every step kind, and the planted secrets.
struct Stack {
    ing: Ingress,
    echo: support::backend::Backend,
    idp: support::idp::Idp,
    s3: support::s3::S3Server,
    redis: support::redis::RedisServer,
    dir: tempfile::TempDir,
    planted: Vec<(&'static str, &'static str, Planted)>,
}

impl Stack {
    fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let s3 = support::s3::S3Server::start();
        let redis = support::redis::RedisServer::start();
        std::fs::write(dir.path().join("s3-sk"), &s3.secret_key).unwrap();
        std::fs::write(dir.path().join("redis-pw"), &redis.password).unwrap();
        Stack {
            ing: Ingress::start(),
            echo: support::backend::Backend::start("oidc-echo"),
            idp: support::idp::Idp::start(),
            s3,
            redis,
            dir,
            planted: PLANTED
                .iter()
                .map(|(name, var)| (*name, *var, plant_awkward(&name[..2])))
                .collect(),
        }
    }

    fn secrets_yaml(&self) -> String {
        let mut y = String::from("secrets:\n");
        for (name, var, _) in &self.planted {
            y.push_str(&format!("  {name}: {{env: {var}}}\n"));
        }
        for (name, path) in [
            ("s3_sk", self.dir.path().join("s3-sk")),
            ("redis_pw", self.dir.path().join("redis-pw")),
            ("idp_client_secret", self.idp.secret_file("client_secret")),
            ("idp_password", self.idp.secret_file("password")),
        ] {
            y.push_str(&format!("  {name}: {{file: \"{}\"}}\n", path.display()));
        }
        y.push_str(
            "defaults:\n  http:\n    resolve: {shop.test: 127.0.0.1}\n    tls: {ca_file: \"${{ vars.ca }}\"}\n",
        );
        y
    }

    /// Writes every scenario into a new directory `name`, the echo padding `pad` and
    /// format `fmt`; with `schedule`, for `serve`.
    fn write_all(&self, name: &str, pads: &[usize], fmt: &str, schedule: bool) -> PathBuf {
        let out = self.dir.path().join(name);
        std::fs::create_dir(&out).unwrap();
        let s3 = "endpoint: '${{ vars.s3 }}', bucket: '${{ vars.bucket }}', access_key_id: '${{ vars.ak }}', secret_access_key: '${{ secrets.s3_sk }}'";
        let all = [
            http_scenarios(),
            oidc_echo_scenarios(),
            oidc_token_scenarios(),
            s3_scenarios(),
            redis_scenarios(),
        ]
        .concat();
        for pad in pads {
            for (scenario, steps) in &all {
                let steps = steps
                    .replace("@LOGIN@", IDP_LOGIN)
                    .replace("@S3@", s3)
                    .replace("@PAD@", &".".repeat(*pad))
                    .replace("@P@", &pad.to_string())
                    .replace("@F@", fmt);
                let file_name = format!("{scenario}-p{pad}");
                let schedule = if schedule {
                    "schedule: {interval: 2s, timeout: 20s}\n"
                } else {
                    ""
                };
                let text = format!(
                    "name: {file_name}\n{schedule}{}steps:{steps}",
                    self.secrets_yaml()
                );
                std::fs::write(out.join(format!("{file_name}.yaml")), text).unwrap();
            }
        }
        out
    }

    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("shop".into(), self.ing.https(SHOP)),
            ("ca".into(), self.ing.ca.ca_file().display().to_string()),
            ("echo".into(), self.echo.url()),
            ("issuer".into(), self.idp.issuer()),
            ("s3".into(), self.s3.endpoint()),
            ("bucket".into(), self.s3.bucket.clone()),
            ("ak".into(), self.s3.access_key.clone()),
            ("redis".into(), self.redis.url()),
        ]
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        self.planted
            .iter()
            .map(|(_, var, p)| (*var, p.value.clone()))
            .collect()
    }

    /// `flowprobe run DIR` with `args`: (stdout, stderr, JSON report, JUnit report).
    fn run(&self, scenarios: &Path, args: &str) -> [(String, String); 4] {
        let tag = args.replace([' ', '-'], "_");
        let json = self.dir.path().join(format!("report{tag}.json"));
        let junit = self.dir.path().join(format!("junit{tag}.xml"));
        let mut cmd = Command::new(support::flowprobe_bin());
        cmd.arg("run").arg(scenarios).args(args.split(' '));
        for (k, v) in self.vars() {
            cmd.args(["--var", &format!("{k}={v}")]);
        }
        cmd.arg("--report")
            .arg(format!("json={}", json.display()))
            .arg("--report")
            .arg(format!("junit={}", junit.display()))
            .envs(self.env())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR");
        let o = cmd.output().expect("run flowprobe");
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
        [
            (format!("stdout of run {args}"), stdout),
            (format!("stderr of run {args}"), stderr),
            (
                format!("JSON report of run {args}"),
                std::fs::read_to_string(json).unwrap(),
            ),
            (
                format!("JUnit report of run {args}"),
                std::fs::read_to_string(junit).unwrap(),
            ),
        ]
    }

    /// Everything that must not appear: planted secrets (forms and windows), the servers'
    /// own credentials (forms), and every token the API was sent (forms and windows).
    fn forbidden(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, _, p) in &self.planted {
            out.extend(forbidden_forms(name, &p.value, BASIC_USERS, true));
        }
        for (name, value) in [
            ("idp client secret", support::idp::CLIENT_SECRET.to_string()),
            ("idp password", support::idp::PASSWORD.to_string()),
            ("s3 secret key", self.s3.secret_key.clone()),
            ("redis password", self.redis.password.clone()),
        ] {
            out.extend(forbidden_forms(name, &value, BASIC_USERS, false));
        }
        for token in self.tokens() {
            out.extend(forbidden_forms("oidc token", &token, &[], true));
        }
        out
    }

    /// The tokens the API was sent (access token as bearer, ID and refresh tokens as X-Token).
    fn tokens(&self) -> Vec<String> {
        let app = &self.ing.app_a;
        let mut tokens: Vec<String> = app
            .echoed_header("authorization")
            .iter()
            .filter_map(|v| v.strip_prefix("Bearer "))
            .filter(|t| t.starts_with("ey"))
            .map(str::to_string)
            .collect();
        tokens.extend(app.echoed_header("x-token"));
        tokens.sort();
        tokens.dedup();
        tokens
    }
}

/// Checks that every scenario failed, and, with `markers`, where the secret came back, that
/// its failing step says so with a redaction marker (the secret really travelled).
fn assert_every_scenario_failed_on_its_echo(report: &str, markers: bool) {
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert!(runs.len() >= 22, "{} runs", runs.len());
    for run in runs {
        let name = run["scenario"].as_str().unwrap();
        assert_eq!(run["success"], false, "{name}: {run:#}");
        if !markers || NOT_ECHOED.iter().any(|n| name.starts_with(n)) {
            continue;
        }
        let shown = run.to_string();
        assert!(
            shown.contains("[redacted"),
            "{name}: no redaction marker, so the secret did not come back: {run:#}"
        );
    }
}

fn assert_all_clean(outputs: &[(String, String)], forbidden: &[(String, String)]) {
    let leaks: Vec<String> = outputs
        .iter()
        .flat_map(|(what, text)| find_leaks(what, text, forbidden))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} leaks:\n\n{}",
        leaks.len(),
        leaks.join("\n\n")
    );
}

#[test]
fn planted_secrets_leak_from_no_step_kind_in_any_output() {
    let stack = Stack::start();
    let text = stack.write_all("text", &[0], "text", false);
    let json = stack.write_all("json", &[0], "json", false);
    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    for (dir, args) in [
        (&text, "-v --log-format text"),
        (&json, "-v --log-format json"),
        (&text, "-vv --log-format json"),
        (&json, "-vv --log-format text"),
    ] {
        let run = stack.run(dir, args);
        assert!(run[1].1.contains("step failed"), "{}", run[1].1);
        reports.push(run[2].1.clone());
        outputs.extend(run);
    }

    // The same scenarios under `serve`: /metrics, /status as JSON and HTML, and its log.
    let served = stack.write_all("served", &[0], "text", true);
    let log = stack.dir.path().join("serve.log");
    let vars: Vec<String> = stack
        .vars()
        .into_iter()
        .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")])
        .chain(["-vv".into(), "--log-format".into(), "json".into()])
        .collect();
    let args: Vec<&str> = vars.iter().map(String::as_str).collect();
    let env = stack.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let probe = Prober::start(&[&served], &args, &env, &log);
    let expected = std::fs::read_dir(&served).unwrap().count();
    wait_until(
        Duration::from_secs(90),
        "every scenario ran under serve",
        || {
            let status = probe.status();
            let done = status["scenarios"]
                .as_array()?
                .iter()
                .filter(|s| s["last_run"].is_object())
                .count();
            (done == expected).then_some(())
        },
    );
    let html = http_get(probe.port, "/status", Some("text/html")).unwrap();
    assert!(html.1.starts_with("text/html"), "{}", html.1);
    let json_status = http_get(probe.port, "/status", Some("application/json")).unwrap();
    assert!(json_status.2.contains("[redacted"), "{}", json_status.2);
    outputs.push(("serve /metrics".into(), probe.scrape()));
    outputs.push(("serve /status (JSON)".into(), json_status.2));
    outputs.push(("serve /status (HTML)".into(), html.2));
    outputs.push(("serve log (-vv json)".into(), probe.log_text()));

    let tokens = stack.tokens();
    assert!(tokens.len() >= 3, "the API saw the tokens: {tokens:?}");
    assert_all_clean(&outputs, &stack.forbidden());
    for report in &reports {
        assert_every_scenario_failed_on_its_echo(report, true);
    }
}

/// A secret echoed at characters 186..210 of an answer: the 200-character excerpts of
/// responses, token endpoint and IdP error pages must not keep the part before the cut.
#[test]
fn secrets_straddling_the_excerpt_cut_are_not_shown() {
    let stack = Stack::start();
    let dir = stack.write_all("straddle", &[186, 190, 195, 200], "text", false);
    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    for args in ["-v --log-format text", "-vv --log-format json"] {
        let run = stack.run(&dir, args);
        reports.push(run[2].1.clone());
        outputs.extend(run);
    }
    assert_all_clean(&outputs, &stack.forbidden());
    for report in &reports {
        // Cut before the secret at 200: no marker to expect.
        assert_every_scenario_failed_on_its_echo(report, false);
    }
}

/// The search is able to fail: a leak planted in any form or window is found and named.
#[test]
fn the_search_finds_a_planted_leak_in_every_form() {
    let p = plant_awkward("t");
    let forbidden = forbidden_forms("planted", &p.value, BASIC_USERS, true);
    assert!(forbidden.len() > 30, "{}", forbidden.len());
    for (form, value) in &forbidden {
        let text = format!("{{\"message\": \"HTTP 500 ... response: {value} ...\"}}");
        let leaks = find_leaks("a report", &text, &forbidden);
        // Forms that coincide (a window of the JSON form is one of the raw value) are named
        // once.
        let same_value: Vec<&String> = forbidden
            .iter()
            .filter(|(_, v)| v == value)
            .map(|(f, _)| f)
            .collect();
        assert!(
            leaks.iter().any(|l| same_value
                .iter()
                .any(|f| l.starts_with(&format!("{f} leaked into a report")))),
            "{form} not found: {leaks:?}"
        );
    }
    // A piece of the secret cut at an excerpt boundary is a window, so it is found too.
    let cut: String = p.value.chars().take(WINDOW + 2).collect();
    assert!(!find_leaks("an excerpt", &format!("...{cut}…"), &forbidden).is_empty());
    assert!(find_leaks("clean text", "nothing to see [redacted:x]", &forbidden).is_empty());
}

/// The redactor hides every form the search looks for (except windows, which only a cut
/// leaves behind).
#[test]
fn the_redactor_hides_every_form_the_search_looks_for() {
    let p = plant_awkward("r");
    let r = flowprobe::secrets::Redactor::new();
    r.add("planted", &p.value);
    for user in BASIC_USERS {
        let form =
            |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
        r.add_basic("planted", user, &p.value);
        r.add_basic("planted", &form(user), &form(&p.value));
    }
    let forbidden = forbidden_forms("planted", &p.value, BASIC_USERS, true);
    for (form, value) in forbidden_forms("planted", &p.value, BASIC_USERS, false) {
        let shown = r.redact(&format!("echo: {value} end"));
        let leaks = find_leaks(&format!("the redacted {form}"), &shown, &forbidden);
        assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    }
}
