//! The `redis` step against a real 3-master Redis Cluster (redis-cli --cluster create, an ACL
//! user, TLS ports): keys on every master pass and say which node holds them, many random keys
//! pass (no false MOVED alarms), ASK during a slot migration and MOVED after one are followed,
//! a dead master is a verdict (not a hang) and runs pass again once it is back or once its
//! replica has been promoted, and no key is left on any node.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowprobe::outcome::{Reason, ScenarioOutcome, StepStatus};
use flowprobe::run::run_scenario;
use support::describe;
use support::redis_cluster::RedisCluster;

/// A cluster plus secret files holding its passwords.
struct Fixture {
    cluster: RedisCluster,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::from(RedisCluster::start())
    }

    fn from(cluster: RedisCluster) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("acl-pw"), &cluster.acl_password).unwrap();
        std::fs::write(dir.path().join("default-pw"), &cluster.password).unwrap();
        std::fs::write(dir.path().join("wrong-pw"), "not-the-password-9c1e").unwrap();
        Fixture { cluster, dir }
    }

    fn vars(&self) -> BTreeMap<String, String> {
        let p = |n: &str| self.dir.path().join(n).display().to_string();
        BTreeMap::from([
            ("nodes".to_string(), self.cluster.seeds()),
            ("tls_nodes".to_string(), self.cluster.tls_seeds()),
            (
                "ca".to_string(),
                self.cluster.ca.ca_file().display().to_string(),
            ),
            ("user".to_string(), self.cluster.acl_user.clone()),
            ("acl_pw_file".to_string(), p("acl-pw")),
            ("default_pw_file".to_string(), p("default-pw")),
            ("wrong_pw_file".to_string(), p("wrong-pw")),
        ])
    }

    fn load(&self, yaml: &str) -> flowprobe::scenario::LoadedScenario {
        let mut text = yaml.to_string();
        for (k, v) in self.vars() {
            text = text.replace(&format!("@{k}@"), &v);
        }
        support::load_scenario("cluster.yaml", &text, self.vars())
    }

    async fn run(&self, yaml: &str) -> ScenarioOutcome {
        run_scenario(&self.load(yaml), 1).await
    }

    fn no_keys_left(&self) {
        let left = self.cluster.keys("*");
        assert!(left.is_empty(), "keys left on the cluster: {left:?}");
    }
}

const SECRETS: &str = "
secrets:
  acl_pw: {file: '@acl_pw_file@'}
  default_pw: {file: '@default_pw_file@'}
  wrong_pw: {file: '@wrong_pw_file@'}
";

/// A round-trip step on the cluster whose key uses `tag`, as the ACL user.
fn roundtrip_step(name: &str, tag: &str, extra: &str) -> String {
    format!(
        "  - name: {name}
    redis:
      cluster: ['${{{{ vars.nodes }}}}']
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      {extra}
      roundtrip: {{key: 'flowprobe:${{{{ run.id }}}}:{tag}', size: 1KiB}}
"
    )
}

fn phases(o: &ScenarioOutcome, step: usize) -> Vec<String> {
    o.steps[step]
        .phases
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

#[tokio::test]
async fn keys_on_every_master_pass_and_say_which_node_holds_them() {
    let f = Fixture::start();
    let c = &f.cluster;
    let tags: Vec<String> = (0..3).map(|i| c.key_on(i, "")).collect();
    let mut yaml = format!("name: every-master{SECRETS}steps:\n");
    for (i, tag) in tags.iter().enumerate() {
        yaml.push_str(&roundtrip_step(&format!("m{i}"), tag, ""));
    }
    let want: Vec<String> = (0..3)
        .map(|i| format!("127.0.0.1:{}", c.nodes[i].port))
        .collect();
    // Commands go to the master of their own key; keys on different masters in one step.
    let (t0, t1, t2) = (&tags[0], &tags[1], &tags[2]);
    yaml.push_str(&format!(
        "  - name: where
    redis:
      cluster: ['${{{{ vars.nodes }}}}']
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      commands:
        - [ECHO, '${{{{ steps.m0.node }}}} ${{{{ steps.m1.node }}}} ${{{{ steps.m2.node }}}}']
        - [ECHO, '${{{{ steps.m0.slot }}}}']
        - [SET, 'flowprobe:${{{{ run.id }}}}:{t0}', v0, EX, 60]
        - [INCRBY, 'flowprobe:${{{{ run.id }}}}:{t1}', 5]
        - [SADD, 'flowprobe:${{{{ run.id }}}}:{t2}', a, b]
        - [GET, 'flowprobe:${{{{ run.id }}}}:{t0}']
    assert:
      - reply 0 == \"{}\"
      - reply 1 == \"{}\"
      - reply 3 == 5
      - reply 4 == 2
      - reply 5 == \"v0\"
",
        want.join(" "),
        c.slot(&tags[0])
    ));
    let o = f.run(&yaml).await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(phases(&o, 0), ["connect", "set", "get", "ttl", "del"]);
    f.no_keys_left();
}

#[tokio::test]
async fn many_random_keys_all_pass() {
    let f = Fixture::start();
    let sc = f.load(&format!(
        "name: random-keys{SECRETS}steps:\n  - name: rt
    redis:
      cluster: ['${{{{ vars.nodes }}}}']
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      roundtrip: {{}}
"
    ));
    for i in 0..18 {
        let o = run_scenario(&sc, i + 1).await;
        assert!(o.success, "run {i}: {}", describe(&o));
    }
    f.no_keys_left();
}

#[tokio::test]
async fn tls_with_the_ca_passes_and_without_it_is_a_tls_failure() {
    let f = Fixture::start();
    let yaml = |tls: &str| {
        format!(
            "name: cluster-tls{SECRETS}steps:\n  - name: rt
    redis:
      cluster: ['${{{{ vars.tls_nodes }}}}']
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      tls: {tls}
      roundtrip: {{}}
"
        )
    };
    let ok = f.run(&yaml("{ca_file: '${{ vars.ca }}'}")).await;
    assert!(ok.success, "{}", describe(&ok));
    let bad = f.run(&yaml("{}")).await;
    assert_eq!(bad.reason, Some(Reason::Tls), "{}", describe(&bad));
    f.no_keys_left();
}

#[tokio::test]
async fn wrong_passwords_are_auth_and_a_dead_cluster_is_connect() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: cluster-auth{SECRETS}steps:\n  - name: rt
    redis:
      cluster: ['${{{{ vars.nodes }}}}']
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.wrong_pw }}}}
      roundtrip: {{}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Auth), "{}", describe(&o));
    assert!(!format!("{}{o:?}", describe(&o)).contains("not-the-password-9c1e"));

    let ports: Vec<u16> = (0..3).map(|_| support::free_port()).collect();
    let o = f
        .run(&format!(
            "name: cluster-gone{SECRETS}steps:\n  - name: rt
    redis:
      cluster: ['127.0.0.1:{}', '127.0.0.1:{}, 127.0.0.1:{}']
      password: ${{{{ secrets.default_pw }}}}
      roundtrip: {{}}
",
            ports[0], ports[1], ports[2]
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    let msg = o.steps[0].message.clone().unwrap_or_default();
    assert!(msg.contains(&format!("127.0.0.1:{}", ports[2])), "{msg}");
}

#[tokio::test]
async fn ask_during_a_slot_migration_is_followed() {
    let f = Fixture::start();
    let c = &f.cluster;
    let tag = c.key_on(0, "");
    let slot = c.slot(&tag);
    // Slot MIGRATING on master 0, IMPORTING on master 1: new keys are answered with ASK.
    c.begin_migration(slot, 1);
    let yaml = format!(
        "name: ask{SECRETS}steps:\n{}",
        roundtrip_step("rt", &tag, "")
    );
    let o = f.run(&yaml).await;
    assert!(o.success, "{}", describe(&o));
    c.finish_migration(slot, 1);
    assert_eq!(c.owner(slot), 1);
    let o = f.run(&yaml).await;
    assert!(o.success, "{}", describe(&o));
    f.no_keys_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_after_a_slot_migration_mid_step_is_followed() {
    let f = Fixture::start();
    let c = &f.cluster;
    let (tag, gate) = (c.key_on(0, ""), c.key_on(2, "flowprobe:gate:"));
    let sc = f.load(&format!(
        "name: moved{SECRETS}steps:\n  - name: cmds
    redis:
      cluster: ['${{{{ vars.nodes }}}}']
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      command_timeout: 10s
      commands:
        - [SET, 'flowprobe:${{{{ run.id }}}}:{tag}', moved-value, EX, 60]
        - [BLPOP, '{gate}', 3]
        - [GET, 'flowprobe:${{{{ run.id }}}}:{tag}']
    assert:
      - reply 2 == \"moved-value\"
"
    ));
    let run = tokio::spawn(async move { run_scenario(&sc, 1).await });
    // While the step waits on master 2, the key's slot moves from master 0 to master 1: the
    // client's slot map is stale and GET is answered with MOVED.
    let deadline = Instant::now() + Duration::from_secs(10);
    tokio::task::block_in_place(|| {
        while blocked_clients(c, 2) == 0 {
            assert!(Instant::now() < deadline, "the step never blocked");
            std::thread::sleep(Duration::from_millis(20));
        }
        c.migrate_slot(c.slot(&tag), 1);
    });
    let o = run.await.unwrap();
    assert!(o.success, "{}", describe(&o));
    assert_eq!(c.owner(c.slot(&tag)), 1);
    f.no_keys_left();
}

fn blocked_clients(c: &RedisCluster, i: usize) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut c.admin(i))
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_a_verdict_and_runs_pass_once_it_is_back() {
    let mut f = Fixture::start();
    let tag = f.cluster.key_on(2, "");
    let yaml = format!(
        "name: dead-master{SECRETS}steps:\n{}",
        roundtrip_step(
            "rt",
            &tag,
            "connect_timeout: 500ms\n      command_timeout: 1s"
        )
    );
    f.cluster.kill(2);
    let started = Instant::now();
    let o = f.run(&yaml).await;
    assert!(!o.success, "{}", describe(&o));
    assert_eq!(o.steps[0].status, StepStatus::Failed, "{}", describe(&o));
    // Before the cluster notices (node timeout 2s) the slot still points at the dead node;
    // after, the cluster is down. Either way a verdict, never a hang.
    let reason = o.reason.expect("a failed run has a reason");
    let msg = o.steps[0].message.clone().unwrap_or_default();
    let dead = format!("127.0.0.1:{}", f.cluster.nodes[2].port);
    match reason {
        Reason::Connect => assert!(
            msg.contains(&dead) && msg.contains("cannot be reached"),
            "{msg}"
        ),
        Reason::Cache => assert!(msg.contains("CLUSTERDOWN"), "{msg}"),
        Reason::Timeout => {}
        _ => panic!("{}", describe(&o)),
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    tokio::task::block_in_place(|| {
        f.cluster.restart(2);
        f.cluster.wait_until_settled(Duration::from_secs(30));
    });
    let o = f.run(&yaml).await;
    assert!(o.success, "{}", describe(&o));
    f.no_keys_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_replaced_by_its_replica_is_followed_once_promoted() {
    let mut f = Fixture::from(RedisCluster::start_with(1));
    let tag = f.cluster.key_on(0, "");
    let slot = f.cluster.slot(&tag);
    let yaml = format!(
        "name: promoted{SECRETS}steps:\n{}",
        roundtrip_step(
            "rt",
            &tag,
            "connect_timeout: 500ms\n      command_timeout: 1s"
        )
    );
    let o = f.run(&yaml).await;
    assert!(o.success, "{}", describe(&o));
    f.cluster.kill(0);
    // Verdicts until the cluster has promoted the replica (node timeout 2s), then passes.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut failed = 0;
    loop {
        let o = f.run(&yaml).await;
        if o.success {
            break;
        }
        failed += 1;
        assert!(
            matches!(
                o.reason,
                Some(Reason::Connect | Reason::Timeout | Reason::Cache)
            ),
            "{}",
            describe(&o)
        );
        assert!(
            Instant::now() < deadline,
            "never passed again: {}",
            describe(&o)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(failed > 0, "the dead master went unnoticed");
    // Every node learns of the promotion in time (the client asked one that knew).
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while f.cluster.owner(slot) < 3 {
            assert!(
                Instant::now() < deadline,
                "no replica (node 3..6) owns the slot"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    tokio::task::block_in_place(|| f.no_keys_left());
}

/// `flowprobe run` of an example scenario from the repository, with vars and environment.
fn run_example(file: &str, vars: &[(&str, String)], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(support::flowprobe_bin());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", file, "--no-color"])
        .env_remove("RUST_LOG");
    for (k, v) in vars {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("run flowprobe")
}

#[test]
fn the_example_scenario_passes_and_its_hash_tags_hit_every_master() {
    let f = Fixture::start();
    let c = &f.cluster;
    let owners: Vec<usize> = ["{a}", "{b}", "{c}"]
        .iter()
        .map(|t| c.owner(c.slot(t)))
        .collect();
    assert_eq!(owners, [2, 0, 1], "the comment in cache-cluster.yaml");
    let out = run_example(
        "scenarios/cache-cluster.yaml",
        &[
            ("redis_cluster_nodes", c.tls_seeds()),
            ("redis_cluster_user", c.acl_user.clone()),
            (
                "redis_cluster_ca_file",
                c.ca.ca_file().display().to_string(),
            ),
        ],
        &[("REDIS_CLUSTER_PROBE_PASSWORD", &c.acl_password)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("PASS cache-cluster "), "{stdout}");
    f.no_keys_left();
}
