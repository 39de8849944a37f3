//! The `dns` step against a real dnsmasq on a loopback port: answers for A, AAAA, CNAME, MX,
//! TXT and SRV over UDP and TCP, outputs feeding a later step, a missing name failing with
//! reason `dns` unless the step asserts on `rcode`, an empty answer, a silent server (timeout),
//! a closed TCP port (connect), and the example scenario through the binary.

mod support;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::Command;

use flowprobe::outcome::{Reason, ScenarioOutcome, StepStatus};
use flowprobe::run::run_scenario;
use support::dnsmasq::{self, Dnsmasq};
use support::{describe, load_scenario};

async fn run(vars: &[(&str, String)], yaml: &str) -> ScenarioOutcome {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    run_scenario(&load_scenario("dns.yaml", yaml, vars), 1).await
}

/// Runs `yaml` with `vars.dns` pointing at `d`.
async fn run_at(d: &Dnsmasq, yaml: &str) -> ScenarioOutcome {
    run(&[("dns", d.server())], yaml).await
}

fn message(o: &ScenarioOutcome) -> String {
    o.first_failure()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_record_type_reads_as_documented_over_udp() {
    let d = Dnsmasq::start();
    let o = run_at(
        &d,
        r#"name: dns-types
defaults:
  dns: {server: "${{ vars.dns }}"}
steps:
  - name: a
    dns: {name: app.test}
    assert:
      - answers includes "10.0.0.7"
      - answers includes "10.0.0.8"
      - answers count == 2
      - rcode == "NOERROR"
      - ttl == 5m
      - duration < 2s
  - name: aaaa
    dns: {name: v6.test, type: AAAA}
    assert: ['answers includes "fd00::7"', 'answers count == 1']
  - name: cname
    dns: {name: www.test, type: CNAME}
    assert: ['answers includes "app.test"']
  - name: through-cname
    dns: {name: www.test}
    assert: ['answers includes "10.0.0.7"', 'answers not includes "app.test"']
  - name: mx
    dns: {name: test, type: MX}
    assert: ['answers includes "10 mail.test"']
  - name: txt
    dns: {name: txt.test, type: txt}
    assert: ['answers includes "v=spf1 -all"']
  - name: srv
    dns: {name: _http._tcp.test, type: SRV}
    assert: ['answers includes "1 5 8080 app.test"']
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert!(o.steps.iter().all(|s| s.kind == "dns"), "{}", describe(&o));
    // Every query reached the server (dnsmasq logs each one).
    let log = d.log_text();
    for q in [
        "query[A] app.test",
        "query[MX] test",
        "query[SRV] _http._tcp.test",
    ] {
        assert!(log.contains(q), "{q} not in the dnsmasq log:\n{log}");
    }
}

#[tokio::test]
async fn a_wrong_expectation_is_an_assertion_failure_showing_the_answers() {
    let d = Dnsmasq::start();
    let o = run_at(
        &d,
        r#"name: dns-wrong
steps:
  - name: a
    dns: {name: app.test, server: "${{ vars.dns }}"}
    assert: ['answers includes "10.9.9.9"']
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Assertion), "{}", describe(&o));
    let m = message(&o);
    assert!(m.contains("10.0.0.7") && m.contains("10.9.9.9"), "{m}");
}

#[tokio::test]
async fn tcp_asks_over_tcp_and_outputs_feed_a_later_step() {
    let d = Dnsmasq::start();
    let o = run_at(
        &d,
        r#"name: dns-tcp
steps:
  - name: alias
    dns: {name: www.test, type: CNAME, server: "${{ vars.dns }}", protocol: tcp}
  - name: target
    dns:
      name: "${{ steps.alias.answers.0 }}"
      server: "${{ vars.dns }}"
      protocol: tcp
      recursion: false
    assert: ['answers includes "10.0.0.8"', 'rcode == "${{ steps.alias.rcode }}"']
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert!(
        d.log_text().contains("query[A] app.test"),
        "{}",
        d.log_text()
    );

    // Over TCP, a port with nothing listening refuses the connection.
    let closed = support::free_port();
    let o = run(
        &[("dns", format!("127.0.0.1:{closed}"))],
        r#"name: dns-tcp-closed
steps:
  - name: a
    dns: {name: app.test, server: "${{ vars.dns }}", protocol: tcp}
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    assert!(
        message(&o).contains(&format!("tcp 127.0.0.1:{closed}")),
        "{}",
        message(&o)
    );
    // Over UDP, the closed port's ICMP "port unreachable" refuses the answer just as fast.
    let o = run(
        &[("dns", format!("127.0.0.1:{closed}"))],
        r#"name: dns-udp-closed
steps:
  - name: a
    dns: {name: app.test, server: "${{ vars.dns }}"}
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains(&format!("udp 127.0.0.1:{closed}")) && m.contains("refused"),
        "{m}"
    );
}

#[tokio::test]
async fn a_missing_name_fails_with_reason_dns_unless_the_step_asserts_on_rcode() {
    let d = Dnsmasq::start();
    let o = run_at(
        &d,
        r#"name: dns-missing
steps:
  - name: lookup
    dns: {name: missing.test, server: "${{ vars.dns }}"}
    assert: ['duration < 5s']
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Dns), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("missing.test A: NXDOMAIN from 127.0.0.1:"),
        "{m}"
    );
    // A failed assertion on the answers does not hide the reason.
    let o = run_at(
        &d,
        r#"name: dns-missing-answers
steps:
  - name: lookup
    dns: {name: missing.test, server: "${{ vars.dns }}"}
    assert: ['answers includes "10.0.0.7"']
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Dns), "{}", describe(&o));

    // A probe that a name is NOT resolvable: the rcode assertion decides.
    let o = run_at(
        &d,
        r#"name: dns-absent
steps:
  - name: absent
    dns: {name: missing.test, server: "${{ vars.dns }}"}
    assert: ['rcode == "NXDOMAIN"', 'answers count == 0']
"#,
    )
    .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(o.steps[0].status, StepStatus::Passed);

    // ... and fails as an assertion when the name does resolve.
    let o = run_at(
        &d,
        r#"name: dns-absent-but-there
steps:
  - name: absent
    dns: {name: app.test, server: "${{ vars.dns }}"}
    assert: ['rcode == "NXDOMAIN"']
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Assertion), "{}", describe(&o));
    assert!(message(&o).contains("\"NOERROR\""), "{}", message(&o));
}

#[tokio::test]
async fn an_empty_answer_is_a_dns_failure() {
    let d = Dnsmasq::start();
    let o = run_at(
        &d,
        r#"name: dns-empty
steps:
  - name: v6
    dns: {name: app.test, type: AAAA, server: "${{ vars.dns }}"}
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Dns), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("app.test AAAA: no AAAA record (NOERROR, empty answer)"),
        "{m}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_timeout() {
    // A real UDP socket that reads queries and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let o = run(
        &[("dns", addr.to_string())],
        r#"name: dns-silent
steps:
  - name: a
    timeout: 500ms
    dns: {name: app.test, server: "${{ vars.dns }}"}
"#,
    )
    .await;
    assert_eq!(o.reason, Some(Reason::Timeout), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains(&format!(
            "app.test A: no answer from {addr} over udp within"
        )),
        "{m}"
    );
    let mut buf = [0u8; 512];
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let n = silent.recv(&mut buf).expect("the query reached the socket");
    assert!(n > 12, "a DNS query of {n} bytes");
}

#[test]
fn the_example_scenario_passes_through_the_binary_and_reports_a_missing_name() {
    let d = Dnsmasq::start();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(support::flowprobe_bin())
        .current_dir(&root)
        .args(["run", "scenarios/dns-resolution.yaml", "--no-color"])
        .args(["--var", &format!("dns_server={}", d.server())])
        .args(["--var", &format!("lookup_name={}", dnsmasq::APP)])
        .args(["--var", &format!("lookup_addr={}", dnsmasq::APP_ADDR)])
        .args(["--var", &format!("mx_domain={}", dnsmasq::DOMAIN)])
        .args(["--var", &format!("retired_name={}", dnsmasq::MISSING)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("PASS dns-resolution "), "{stdout}");

    // A name the scenario expects to resolve but that is missing: exit 1, reason dns.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(support::flowprobe_bin())
        .current_dir(&root)
        .args(["run", "scenarios/dns-resolution.yaml", "--no-color"])
        .args(["--var", &format!("dns_server={}", d.server())])
        .args(["--var", &format!("lookup_name={}", dnsmasq::MISSING)])
        .args(["--var", &format!("retired_name={}", dnsmasq::MISSING)])
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let steps = json["runs"][0]["steps"]
        .as_array()
        .expect("steps in the report");
    let failed: Vec<&serde_json::Value> =
        steps.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{json}");
    assert_eq!(failed[0]["reason"], "dns", "{json}");
    assert_eq!(failed[0]["kind"], "dns", "{json}");
    let m = failed[0]["message"].as_str().unwrap_or_default();
    assert!(m.contains("missing.test A: NXDOMAIN"), "{m}");
}
