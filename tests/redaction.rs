//! Secrets never leave the process: a password from an environment variable, an API key from a
//! file, a token captured with `secret: true` and the basic-auth header built from the password
//! are sent through a real nginx ingress to a backend that echoes them back; passing and failing
//! scenarios run with `-v` and `-vv` and both reports; then no trace of any of them — raw,
//! URL-encoded, percent-encoded, JSON-escaped or base64 — may appear in stdout, stderr or a
//! report file.

mod support;

use std::process::{Command, Output};

use base64::Engine;
use support::nginx::{Ingress, SHOP};

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

fn assert_clean(what: &str, text: &str, forbidden: &[(String, String)]) {
    for (name, value) in forbidden {
        if let Some(at) = text.find(value.as_str()) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let end = (at + value.len() + 80).min(text.len());
            let end = (end..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap();
            panic!("{name} leaked into {what}:\n…{}…", &text[start..end]);
        }
    }
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
