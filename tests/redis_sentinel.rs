//! The `redis` step through real Sentinels (a primary, a replica, three sentinels; ACL users
//! on the data nodes and on the sentinels): the current primary is found and probed, the value
//! is read back from the replica, broken replication and unreachable or misconfigured
//! sentinels are verdicts, a forced failover in the middle of `flowprobe serve` is followed by
//! passing runs against the new primary, and no key is left on any node.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flowprobe::outcome::{Reason, ScenarioOutcome};
use flowprobe::run::run_scenario;
use support::describe;
use support::prometheus::{scenario_dir, value, wait_until, Prober};
use support::redis_sentinel::SentinelSet;

struct Fixture {
    set: SentinelSet,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::from(SentinelSet::start())
    }

    fn from(set: SentinelSet) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("acl-pw"), &set.acl_password).unwrap();
        std::fs::write(dir.path().join("watcher-pw"), &set.sentinel_user_password).unwrap();
        std::fs::write(dir.path().join("wrong-pw"), "not-the-password-4b2d").unwrap();
        Fixture { set, dir }
    }

    fn vars(&self) -> BTreeMap<String, String> {
        let p = |n: &str| self.dir.path().join(n).display().to_string();
        BTreeMap::from([
            ("sentinels".to_string(), self.set.sentinel_nodes()),
            ("master".to_string(), self.set.master.clone()),
            ("user".to_string(), self.set.acl_user.clone()),
            ("watcher".to_string(), self.set.sentinel_user.clone()),
            ("acl_pw_file".to_string(), p("acl-pw")),
            ("watcher_pw_file".to_string(), p("watcher-pw")),
            ("wrong_pw_file".to_string(), p("wrong-pw")),
        ])
    }

    async fn run(&self, yaml: &str) -> ScenarioOutcome {
        let mut text = yaml.to_string();
        for (k, v) in self.vars() {
            text = text.replace(&format!("@{k}@"), &v);
        }
        let sc = support::load_scenario("sentinel.yaml", &text, self.vars());
        run_scenario(&sc, 1).await
    }

    fn no_keys_left(&self) {
        let left = self.set.keys("*");
        assert!(left.is_empty(), "keys left: {left:?}");
    }
}

const SECRETS: &str = "
secrets:
  acl_pw: {file: '@acl_pw_file@'}
  watcher_pw: {file: '@watcher_pw_file@'}
  wrong_pw: {file: '@wrong_pw_file@'}
";

/// A sentinel step: `sentinel_extra` goes into the sentinel block, `extra` into the step.
fn step(name: &str, sentinel_extra: &str, extra: &str) -> String {
    format!(
        "  - name: {name}
    redis:
      sentinel:
        nodes: ['${{{{ vars.sentinels }}}}']
        master: ${{{{ vars.master }}}}
        username: ${{{{ vars.watcher }}}}
        password: ${{{{ secrets.watcher_pw }}}}
        {sentinel_extra}
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      {extra}
"
    )
}

#[tokio::test]
async fn the_primary_is_probed_and_the_value_read_back_from_the_replica() {
    let f = Fixture::start();
    let o = primary_and_replica(&f, 0).await;
    assert!(o.success, "{}", describe(&o));
    let phases: Vec<&str> = o.steps[0].phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        phases,
        ["resolve", "dns", "connect", "setup", "set", "get", "replica", "ttl", "del"]
    );
    f.no_keys_left();
}

#[tokio::test]
async fn broken_replication_fails_the_replica_read_only() {
    let f = Fixture::start();
    f.set.break_replication(1);
    let yaml = |extra: &str| {
        format!(
            "name: sentinel-broken{SECRETS}steps:\n{}",
            step(
                "rt",
                "",
                &format!("command_timeout: 500ms\n      {extra}roundtrip: {{}}")
            )
        )
    };
    let o = f.run(&yaml("read_from: replica\n      ")).await;
    assert_eq!(o.reason, Some(Reason::Cache), "{}", describe(&o));
    let msg = o.steps[0].message.clone().unwrap_or_default();
    assert!(
        msg.contains(&format!("127.0.0.1:{}", f.set.data[1].port))
            && msg.contains("did not arrive within 500ms"),
        "{msg}"
    );
    let o = f.run(&yaml("")).await;
    assert!(o.success, "the primary alone still works: {}", describe(&o));
    f.no_keys_left();
}

#[tokio::test]
async fn sentinel_failures_are_verdicts() {
    let f = Fixture::start();
    // The sentinels' own password is wrong.
    let o = f
        .run(&format!(
            "name: s-auth{SECRETS}steps:\n  - name: rt
    redis:
      sentinel: {{nodes: ['${{{{ vars.sentinels }}}}'], master: '${{{{ vars.master }}}}', username: '${{{{ vars.watcher }}}}', password: '${{{{ secrets.wrong_pw }}}}'}}
      password: ${{{{ secrets.acl_pw }}}}
      username: ${{{{ vars.user }}}}
      roundtrip: {{}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Auth), "{}", describe(&o));
    assert!(!format!("{}{o:?}", describe(&o)).contains("not-the-password-4b2d"));
    // A master name no sentinel knows.
    let o = f
        .run(&format!(
            "name: s-name{SECRETS}steps:\n{}",
            step("rt", "", "roundtrip: {}").replace("${{ vars.master }}", "no-such-master")
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Config), "{}", describe(&o));
    assert!(
        o.steps[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("does not know a master named `no-such-master`"),
        "{}",
        describe(&o)
    );
    // No sentinel listens: every one is named in the message.
    let ports: Vec<u16> = (0..2).map(|_| support::free_port()).collect();
    let o = f
        .run(&format!(
            "name: s-gone{SECRETS}steps:\n{}",
            step("rt", "", "roundtrip: {}").replace(
                "${{ vars.sentinels }}",
                &format!("127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1])
            )
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    let msg = o.steps[0].message.clone().unwrap_or_default();
    assert!(
        ports
            .iter()
            .all(|p| msg.contains(&format!("127.0.0.1:{p}"))),
        "{msg}"
    );
    f.no_keys_left();
}

fn runs(text: &str, outcome: &str) -> f64 {
    value(
        text,
        "flowprobe_runs_total",
        &[("scenario", "cache-failover"), ("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_during_serve_is_followed_by_passing_runs_on_the_new_primary() {
    let f = Fixture::start();
    let (_dir, mut probe) = serve_failover_scenario(&f);
    let wait = Duration::from_secs(60);
    tokio::task::block_in_place(|| {
        wait_until(wait, "two passing runs before the failover", || {
            (runs(&probe.scrape(), "success") >= 2.0).then_some(())
        });
        let new_primary = f.set.failover();
        assert_eq!(new_primary, 1);
        let settled = runs(&probe.scrape(), "success");
        wait_until(wait, "three passing runs after the failover", || {
            (runs(&probe.scrape(), "success") >= settled + 3.0).then_some(())
        });
    });
    assert!(
        probe.guard.child.try_wait().unwrap().is_none(),
        "serve keeps going:\n{}",
        probe.log_text()
    );
    // Runs during the failover may fail, but only as connect, timeout or cache.
    let text = probe.scrape();
    let other: Vec<_> = support::prometheus::find(
        &text,
        "flowprobe_step_failures_total",
        &[("scenario", "cache-failover")],
    )
    .into_iter()
    .filter(|s| s.value > 0.0)
    .filter(|s| !matches!(s.label("reason"), Some("connect" | "timeout" | "cache")))
    .collect();
    assert!(other.is_empty(), "{other:?}");
    let status = probe.status();
    let sc = status["scenarios"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "cache-failover"))
        .cloned()
        .expect("the scenario in /status");
    assert_eq!(sc["last_run"]["success"], true, "{sc:#}");
    drop(probe);

    // A run now names the new primary, and reads from the old one, now its replica.
    let o = primary_and_replica(&f, 1).await;
    assert!(o.success, "{}", describe(&o));
    f.no_keys_left();
}

/// `flowprobe serve` running a round-trip with a replica read every second.
fn serve_failover_scenario(f: &Fixture) -> (tempfile::TempDir, Prober) {
    let scenario = format!(
        "name: cache-failover
schedule: {{interval: 1s}}
secrets:
  acl_pw: {{env: FP_REDIS_PW}}
  watcher_pw: {{env: FP_SENTINEL_PW}}
steps:
{}",
        step(
            "rt",
            "",
            "connect_timeout: 1s\n      command_timeout: 1s\n      read_from: replica\n      roundtrip: {}"
        )
    );
    let (dir, scenarios) = scenario_dir(&[("failover.yaml", &scenario)]);
    let vars: Vec<String> = f.vars().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args: Vec<&str> = Vec::new();
    for v in &vars {
        args.extend(["--var", v.as_str()]);
    }
    let probe = Prober::start(
        &[&scenarios],
        &args,
        &[
            ("FP_REDIS_PW", &f.set.acl_password),
            ("FP_SENTINEL_PW", &f.set.sentinel_user_password),
        ],
        &dir.path().join("serve.log"),
    );
    (dir, probe)
}

/// A round-trip with a replica read, then a step asserting its `node` output is data node
/// `primary` and its `replicas` output the other one.
async fn primary_and_replica(f: &Fixture, primary: usize) -> ScenarioOutcome {
    let (p, r) = (f.set.data[primary].port, f.set.data[1 - primary].port);
    f.run(&format!(
        "name: where{SECRETS}steps:\n{}{}    assert:
      - reply 0 == \"127.0.0.1:{p}\"
      - reply 1 == \"127.0.0.1:{r}\"
",
        step(
            "rt",
            "",
            "read_from: replica\n      roundtrip: {size: 2KiB}"
        ),
        step(
            "where",
            "",
            "commands: [[ECHO, '${{ steps.rt.node }}'], [ECHO, '${{ steps.rt.replicas.0 }}']]"
        ),
    ))
    .await
}

#[test]
fn the_example_scenario_passes() {
    let f = Fixture::start();
    let s = &f.set;
    let mut cmd = std::process::Command::new(support::flowprobe_bin());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "scenarios/cache-sentinel.yaml", "--no-color"])
        .args(["--var", &format!("redis_sentinels={}", s.sentinel_nodes())])
        .args(["--var", &format!("redis_master={}", s.master)])
        .args(["--var", &format!("redis_sentinel_user={}", s.acl_user)])
        .env_remove("RUST_LOG")
        .env("REDIS_SENTINEL_PROBE_PASSWORD", &s.acl_password)
        .env("SENTINEL_PASSWORD", &s.sentinel_password);
    let out = cmd.output().expect("run flowprobe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("PASS cache-sentinel "), "{stdout}");
    f.no_keys_left();
}

#[tokio::test]
async fn sentinels_and_nodes_over_tls_each_with_their_settings() {
    let set = SentinelSet::start_tls();
    let f = Fixture::from(set);
    let ca = f
        .set
        .ca
        .as_ref()
        .expect("a TLS set")
        .ca_file()
        .display()
        .to_string();
    let primary = f.set.data[0].tls_port.expect("TLS port");
    let yaml = |sentinel_tls: &str| {
        format!(
            "name: sentinel-tls{SECRETS}steps:\n{}{}    assert:
      - reply 0 == \"127.0.0.1:{primary}\"
",
            step(
                "rt",
                sentinel_tls,
                &format!(
                    "tls: {{ca_file: '{ca}'}}\n      read_from: replica\n      roundtrip: {{}}"
                )
            )
            .replace("${{ vars.sentinels }}", &f.set.sentinel_tls_nodes()),
            step(
                "where",
                "",
                &format!("tls: {{ca_file: '{ca}'}}\n      commands: [[ECHO, '${{{{ steps.rt.node }}}}']]")
            ),
        )
    };
    let o = f.run(&yaml(&format!("tls: {{ca_file: '{ca}'}}"))).await;
    assert!(o.success, "{}", describe(&o));
    // The sentinels' certificate is checked with their own settings: TLS with the system
    // roots only does not trust the test CA.
    let o = f.run(&yaml("tls: {}")).await;
    assert_eq!(o.reason, Some(Reason::Tls), "{}", describe(&o));
    f.no_keys_left();
}

#[tokio::test]
async fn a_silent_sentinel_costs_no_time_while_another_answers() {
    let f = Fixture::start();
    // Accepts connections (the kernel's backlog) but never answers a byte.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = silent.local_addr().unwrap().to_string();
    let o = f
        .run(&format!(
            "name: s-silent{SECRETS}steps:\n{}",
            step("rt", "", "connect_timeout: 3s\n      roundtrip: {}").replace(
                "['${{ vars.sentinels }}']",
                &format!("['{silent}', '${{{{ vars.sentinels }}}}']")
            )
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    assert!(
        o.steps[0].duration < Duration::from_secs(2),
        "{}",
        describe(&o)
    );
    f.no_keys_left();
}
