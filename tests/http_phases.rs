//! Network phases and TLS facts of the http step through a real nginx (TLS from a throwaway CA
//! whose intermediate expires before the leaf) in front of a backend that can delay its first
//! byte: names through the system resolver and pinned with `resolve:`, the phases' sum, the
//! connection reuse option, and the `traceparent` every request carries.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowprobe::outcome::{ConnectionUse, ScenarioOutcome, StepOutcome};
use flowprobe::run::run_scenario;
use support::backend::Backend;
use support::nginx::{Nginx, NginxConfig, Site};
use support::tls::{TestCa, VALID_FOR};
use support::{describe, load_scenario};

const CHAIN: &str = "chain.test";
const MID_LEFT: Duration = Duration::from_secs(20 * 86_400);

/// nginx with `chain.test` (TLS, leaf + intermediate) and plain `localhost`, both to one backend.
struct Stack {
    nginx: Nginx,
    app: Backend,
    ca: TestCa,
}

impl Stack {
    fn start() -> Stack {
        let ca = TestCa::new("flowprobe phases CA");
        let app = Backend::start("app-phases");
        let cert = ca.issue_via_intermediate(&[CHAIN, "localhost"], MID_LEFT);
        let sites = vec![
            Site::tls(CHAIN, cert, app.port),
            Site::plain("localhost", app.port),
        ];
        let nginx = Nginx::start(NginxConfig { sites }).unwrap_or_else(|e| panic!("{e}"));
        Stack { nginx, app, ca }
    }

    fn vars(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("tls".into(), format!("https://{CHAIN}:{}", self.nginx.port)),
            (
                "plain".into(),
                format!("http://localhost:{}", self.nginx.http_port),
            ),
            ("ca".into(), self.ca.ca_file().display().to_string()),
        ])
    }

    async fn run(&self, yaml: &str) -> ScenarioOutcome {
        let o = run_scenario(&load_scenario("phases.yaml", yaml, self.vars()), 1).await;
        assert!(o.success, "{}", describe(&o));
        o
    }
}

fn names(s: &StepOutcome) -> Vec<&str> {
    s.phases.iter().map(|p| p.name.as_str()).collect()
}

fn phase(s: &StepOutcome, name: &str) -> Duration {
    s.phases
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no phase {name} in {s:#?}"))
        .duration
}

/// The phases add up to the step's time, less what the step does around its request
/// (rendering, the cached TLS configuration) — a small tolerance.
fn assert_sums_to_duration(s: &StepOutcome) {
    let sum: Duration = s.phases.iter().map(|p| p.duration).sum();
    assert!(sum <= s.duration, "{sum:?} > {:?}: {s:#?}", s.duration);
    assert!(
        s.duration - sum < Duration::from_millis(15),
        "phases {sum:?} vs step {:?}: {s:#?}",
        s.duration
    );
}

const HTTPS: &str = r#"
name: https-phases
defaults:
  http:
    resolve: {chain.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: slow
    http: {url: "${{ vars.tls }}/delay/150"}
    assert: [status == 200, 'phase "tls" < 2s', 'phase "first_byte" > 140ms', certificate expires_in < 21d]
  - name: http1
    http: {url: "${{ vars.tls }}/health", version: "1.1"}
"#;

#[tokio::test]
async fn https_phases_tls_facts_and_the_chains_earliest_expiry() {
    let stack = Stack::start();
    // The first run builds and caches the TLS configuration; the second is measured.
    stack.run(HTTPS).await;
    let o = stack.run(HTTPS).await;
    let slow = &o.steps[0];
    assert_eq!(names(slow), ["dns", "connect", "tls", "first_byte", "body"]);
    assert!(
        phase(slow, "dns") < Duration::from_millis(1),
        "pinned: {slow:#?}"
    );
    assert!(phase(slow, "connect") > Duration::ZERO);
    assert!(phase(slow, "tls") > Duration::ZERO);
    assert!(
        phase(slow, "first_byte") >= Duration::from_millis(150),
        "{slow:#?}"
    );
    assert!(
        phase(slow, "first_byte") < Duration::from_millis(1000),
        "{slow:#?}"
    );
    assert_sums_to_duration(slow);
    assert_eq!(slow.connection, Some(ConnectionUse::New));

    let tls = slow.tls.as_ref().expect("TLS facts");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.cipher.starts_with("TLS13_"), "{tls:?}");
    assert_eq!(tls.alpn.as_deref(), Some("h2"));
    assert_eq!(tls.chain.len(), 2, "{tls:?}");
    assert!(tls.chain[0].subject.contains(CHAIN), "{tls:?}");
    assert!(tls.chain[0].issuer.contains("intermediate"), "{tls:?}");
    assert!(tls.chain[1].subject.contains("intermediate"), "{tls:?}");
    assert!(tls.chain[1].issuer.contains("phases CA"), "{tls:?}");
    // The intermediate expires first: it is the chain's expiry.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mid = tls.chain[1].not_after;
    assert!(mid.abs_diff(now + MID_LEFT.as_secs()) < 3_600, "{tls:?}");
    assert!(tls.chain[0].not_after > now + VALID_FOR.as_secs() - 2 * 86_400);
    assert_eq!(slow.certificate_not_after, Some(mid));

    // The JSON report carries the same facts.
    let json = serde_json::to_value(slow).unwrap();
    assert_eq!(json["connection"], "new");
    assert_eq!(json["tls"]["alpn"], "h2");
    assert_eq!(json["tls"]["chain"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["phases"][2]["name"], "tls");

    let http1 = &o.steps[1];
    let alpn = http1.tls.as_ref().and_then(|t| t.alpn.as_deref());
    assert_eq!(alpn, Some("http/1.1"));
    assert_sums_to_duration(http1);
}

#[tokio::test]
async fn a_name_through_the_system_resolver_has_a_dns_phase_and_no_tls() {
    let stack = Stack::start();
    let yaml = r#"
name: localhost
steps:
  - name: warm
    http: {url: "${{ vars.plain }}/health"}
  - name: home
    http: {url: "${{ vars.plain }}/delay/50"}
"#;
    let o = stack.run(yaml).await;
    let home = &o.steps[1];
    assert_eq!(names(home), ["dns", "connect", "first_byte", "body"]);
    assert!(phase(home, "dns") > Duration::ZERO, "{home:#?}");
    assert!(phase(home, "connect") > Duration::ZERO, "{home:#?}");
    assert!(phase(home, "first_byte") >= Duration::from_millis(50));
    assert!(home.tls.is_none() && home.certificate_not_after.is_none());
    assert_sums_to_duration(home);
    assert_eq!(stack.app.hits("/delay/50"), 1);
}

#[tokio::test]
async fn reused_connections_have_no_connection_phases() {
    let stack = Stack::start();
    let yaml = r#"
name: reuse
defaults:
  http:
    resolve: {chain.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
steps:
  - name: first
    http: {url: "${{ vars.tls }}/health", reuse_connection: true}
  - name: second
    http: {url: "${{ vars.tls }}/health", reuse_connection: true}
  - name: fresh
    http: {url: "${{ vars.tls }}/health"}
  - name: fresh-again
    http: {url: "${{ vars.tls }}/health"}
"#;
    let o = stack.run(yaml).await;
    let conn: Vec<_> = o.steps.iter().map(|s| s.connection).collect();
    use ConnectionUse::{New, Reused};
    assert_eq!(conn, [Some(New), Some(Reused), Some(New), Some(New)]);
    assert_eq!(names(&o.steps[1]), ["first_byte", "body"]);
    assert!(
        o.steps[1].tls.is_some(),
        "a reused TLS connection keeps its facts"
    );
    assert_eq!(
        names(&o.steps[3]),
        ["dns", "connect", "tls", "first_byte", "body"]
    );

    // A new run opens its own connection.
    let o = stack.run(yaml).await;
    assert_eq!(o.steps[0].connection, Some(New));
}

#[tokio::test]
async fn requests_carry_the_runs_traceparent() {
    let stack = Stack::start();
    let yaml = r#"
name: traced
steps:
  - name: one
    http: {url: "${{ vars.plain }}/echo500"}
    assert: [status == 500]
  - name: two
    http: {url: "${{ vars.tls }}/echo500", resolve: {chain.test: 127.0.0.1}, tls: {ca_file: "${{ vars.ca }}"}}
    assert: [status == 500]
"#;
    let o = stack.run(yaml).await;
    let seen = stack.app.echoed_header("traceparent");
    assert_eq!(seen.len(), 2, "{seen:?}");
    let spans: Vec<&str> = seen
        .iter()
        .map(|tp| {
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(
                (parts[0], parts[1], parts[3]),
                ("00", o.trace_id.as_str(), "01")
            );
            parts[2]
        })
        .collect();
    assert_ne!(spans[0], spans[1], "one span per step attempt");
}
