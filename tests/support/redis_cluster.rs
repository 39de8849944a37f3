//! A real 3-master Redis Cluster (optionally with replicas) on free 127.0.0.1 ports: redis-servers with
//! `cluster-enabled yes` (each its own directory, bus port and TLS port, `tls-cluster yes`),
//! joined by `redis-cli --cluster create`, `requirepass` plus an ACL user on every node
//! (`flowprobe:*` keys, data commands and CLUSTER SLOTS only).
//! Helpers find keys for a given master, move a slot between masters the way `redis-cli
//! --cluster reshard` does, and kill a node by PID.
//!
//! ```ignore
//! let c = redis_cluster::RedisCluster::start();
//! // c.seeds() = "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"; c.tls_seeds() the TLS ports
//! let k = c.key_on(1, "flowprobe:x");   // a key whose slot master 1 owns
//! c.migrate_slot(c.slot(&k), 2);        // now master 2 owns it
//! assert!(c.keys("flowprobe:*").is_empty());
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::redis::{abs, uuid_like};
use super::tls::TestCa;
use super::{find_program, free_port, wait_for_port, ChildGuard};

/// One cluster node.
pub struct ClusterNode {
    pub port: u16,
    pub tls_port: u16,
    bus: u16,
    pub id: String,
    // Field order is drop order: stop the server before its directory goes.
    guard: Option<ChildGuard>,
    program: PathBuf,
    args: Vec<OsString>,
    _dir: tempfile::TempDir,
}

/// A running 3-master cluster.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    /// Password of the `default` user on every node.
    pub password: String,
    pub acl_user: String,
    pub acl_password: String,
    pub ca: TestCa,
}

/// Settings every node gets.
struct NodeConf<'a> {
    password: &'a str,
    cert: &'a super::tls::CertFiles,
    client: &'a super::tls::CertFiles,
    ca: &'a Path,
}

fn start_node(program: &Path, conf: &NodeConf) -> Result<ClusterNode, String> {
    let dir = tempfile::Builder::new()
        .prefix("flowprobe-rcluster-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let (port, tls_port, bus) = (free_port(), free_port(), free_port());
    let mut args: Vec<OsString> = Vec::new();
    let mut add = |a: &[&str]| args.extend(a.iter().map(OsString::from));
    add(&["--bind", "127.0.0.1", "--port", &port.to_string()]);
    add(&["--tls-port", &tls_port.to_string()]);
    add(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus.to_string(),
    ]);
    add(&["--cluster-config-file", "nodes.conf"]);
    add(&["--cluster-node-timeout", "2000"]);
    // A replica may take over however long its link was down (tests kill masters at will).
    add(&["--cluster-replica-validity-factor", "0"]);
    add(&["--tls-cluster", "yes", "--tls-replication", "yes"]);
    add(&["--tls-auth-clients", "optional"]);
    add(&["--save", "", "--appendonly", "no", "--daemonize", "no"]);
    add(&[
        "--requirepass",
        conf.password,
        "--masterauth",
        conf.password,
    ]);
    for (flag, file) in [
        ("--tls-cert-file", &conf.cert.cert),
        ("--tls-key-file", &conf.cert.key),
        ("--tls-client-cert-file", &conf.client.cert),
        ("--tls-client-key-file", &conf.client.key),
        ("--tls-ca-cert-file", &conf.ca.to_path_buf()),
        ("--dir", &dir.path().to_path_buf()),
    ] {
        args.push(flag.into());
        args.push(abs(file).into());
    }
    let mut node = ClusterNode {
        port,
        tls_port,
        bus,
        id: String::new(),
        guard: None,
        program: program.to_path_buf(),
        args,
        _dir: dir,
    };
    node.spawn()?;
    node.id = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut admin_conn(port, conf.password))
        .map_err(|e| format!("CLUSTER MYID: {e}"))?;
    Ok(node)
}

impl ClusterNode {
    /// Starts (or starts again) the server with its ports and directory.
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        let log = self._dir.path().join("redis.log");
        let mut guard = ChildGuard::spawn("redis-server (cluster)", cmd, &log)?;
        for p in [self.port, self.tls_port, self.bus] {
            if let Err(e) = wait_for_port(p, Duration::from_secs(5)) {
                guard.stop();
                return Err(format!("{e}:\n{}", guard.log_text()));
            }
        }
        self.guard = Some(guard);
        Ok(())
    }
}

fn admin_conn(port: u16, password: &str) -> redis::Connection {
    let url = format!("redis://default:{password}@127.0.0.1:{port}");
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("admin connection to a cluster node")
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster and waits until every node sees it whole.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(0)
    }

    /// Three masters with `replicas` replicas each (nodes 0..3 are the masters, then their
    /// replicas), so a dead master is replaced by a promoted replica.
    pub fn start_with(replicas: usize) -> RedisCluster {
        let program = find_program("redis-server")
            .expect("redis-server is not installed: run scripts/setup.sh");
        let ca = TestCa::new("flowprobe redis cluster CA");
        let cert = ca.issue(&["127.0.0.1", "localhost"]);
        let client = ca.issue_client("redis-cluster-node");
        let password = format!("cpw-{}", uuid_like());
        let conf = NodeConf {
            password: &password,
            cert: &cert,
            client: &client,
            ca: ca.ca_file(),
        };
        let mut nodes = Vec::new();
        let mut tries = 0;
        while nodes.len() < 3 * (1 + replicas) {
            match start_node(&program, &conf) {
                Ok(n) => nodes.push(n),
                // A free port can be taken between probing and binding.
                Err(e) if tries < 5 => {
                    tries += 1;
                    eprintln!("cluster node did not start, again: {e}");
                }
                Err(e) => panic!("cluster node did not start: {e}"),
            }
        }
        let cluster = RedisCluster {
            nodes,
            password,
            acl_user: "probe".into(),
            acl_password: format!("acl-{}", uuid_like()),
            ca,
        };
        cluster.create(replicas);
        cluster.add_acl_user();
        cluster
    }

    fn create(&self, replicas: usize) {
        let cli = find_program("redis-cli").expect("redis-cli is not installed");
        let mut cmd = Command::new(cli);
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = cmd
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .env("REDISCLI_AUTH", &self.password)
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_until_settled(Duration::from_secs(30));
    }

    /// Waits until every live node reports `cluster_state:ok` and knows every node.
    pub fn wait_until_settled(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let ok = self.live().all(|i| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut self.admin(i))
                    .unwrap_or_default();
                info.contains("cluster_state:ok") && info.contains(&known) && self.synced(i)
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not settle");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True unless node `i` is a replica whose link to its master is not up yet.
    fn synced(&self, i: usize) -> bool {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.admin(i))
            .unwrap_or_default();
        !info.contains("role:slave") || info.contains("master_link_status:up")
    }

    fn add_acl_user(&self) {
        for i in 0..self.nodes.len() {
            self.add_acl_user_on(i);
        }
    }

    /// The ACL user on node `i` (ACL users live in memory: again after a restart).
    fn add_acl_user_on(&self, i: usize) {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.acl_user)
            .arg("on")
            .arg(format!(">{}", self.acl_password))
            // What the README says a probe user needs: its keys, data commands, CLUSTER SLOTS.
            .arg(&["~flowprobe:*", "-@all", "+@read", "+@write", "+@keyspace"][..])
            .arg(&["+@connection", "+@blocking", "+cluster|slots"][..])
            .exec(&mut self.admin(i))
            .expect("ACL SETUSER on a cluster node");
    }

    /// Every node's plain port, `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn seeds(&self) -> String {
        let v: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        v.join(",")
    }

    /// Every node's TLS port.
    pub fn tls_seeds(&self) -> String {
        let v: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.tls_port))
            .collect();
        v.join(",")
    }

    /// Indexes of the nodes that run (not killed).
    pub fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].guard.is_some())
    }

    fn any_live(&self) -> usize {
        self.live().next().expect("a live node")
    }

    /// An admin connection to node `i` as the `default` user.
    pub fn admin(&self, i: usize) -> redis::Connection {
        admin_conn(self.nodes[i].port, &self.password)
    }

    /// The hash slot of `key`, as the cluster computes it.
    pub fn slot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.admin(self.any_live()))
            .expect("CLUSTER KEYSLOT")
    }

    /// Index of the node that owns `slot`, per a live node's CLUSTER SLOTS.
    pub fn owner(&self, slot: u16) -> usize {
        let ranges: Vec<(u16, u16, String, u16)> = self.slot_ranges();
        let port = ranges
            .iter()
            .find(|(a, b, _, _)| (*a..=*b).contains(&slot))
            .map(|r| r.3)
            .expect("a node owns every slot");
        self.nodes
            .iter()
            .position(|n| n.port == port || n.tls_port == port)
            .expect("the owner is one of ours")
    }

    /// (start, end, host, port) of every slot range, from a live node's CLUSTER SLOTS.
    pub fn slot_ranges(&self) -> Vec<(u16, u16, String, u16)> {
        let v: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.admin(self.any_live()))
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = v else {
            panic!("CLUSTER SLOTS: {v:?}")
        };
        ranges
            .into_iter()
            .map(|r| {
                let parts: Vec<redis::Value> =
                    redis::FromRedisValue::from_redis_value(&r).expect("slot range");
                let num = |v: &redis::Value| -> u16 {
                    redis::FromRedisValue::from_redis_value(v).expect("a number")
                };
                let master: Vec<redis::Value> =
                    redis::FromRedisValue::from_redis_value(&parts[2]).expect("the master");
                let host: String =
                    redis::FromRedisValue::from_redis_value(&master[0]).expect("host");
                (num(&parts[0]), num(&parts[1]), host, num(&master[1]))
            })
            .collect()
    }

    /// `prefix{tag}` for the first tag 0, 1, ... whose slot node `i` owns.
    pub fn key_on(&self, i: usize, prefix: &str) -> String {
        (0..10_000)
            .map(|n| format!("{prefix}{{t{n}}}"))
            .find(|k| self.owner(self.slot(k)) == i)
            .expect("a key for every master")
    }

    /// Moves `slot` (and its keys) to node `to`: IMPORTING/MIGRATING, MIGRATE, then
    /// SETSLOT NODE on every node.
    pub fn migrate_slot(&self, slot: u16, to: usize) {
        let from = self.owner(slot);
        if from == to {
            return;
        }
        self.begin_migration(slot, to);
        let mut src = self.admin(from);
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut src)
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            // With tls-cluster, MIGRATE speaks TLS: the target's TLS port.
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].tls_port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("AUTH")
                .arg(&self.password)
                .arg("KEYS")
                .arg(&keys)
                .exec(&mut src)
                .expect("MIGRATE");
        }
        self.finish_migration(slot, to);
    }

    /// Marks `slot` IMPORTING on `to` and MIGRATING on its owner (keys stay where they are:
    /// clients get ASK for keys that are not on the owner).
    pub fn begin_migration(&self, slot: u16, to: usize) {
        let from = self.owner(slot);
        let setslot = |i: usize, state: &str, id: &str| {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id)
                .exec(&mut self.admin(i))
                .unwrap_or_else(|e| panic!("SETSLOT {slot} {state} on node {i}: {e}"));
        };
        setslot(to, "IMPORTING", &self.nodes[from].id);
        setslot(from, "MIGRATING", &self.nodes[to].id);
    }

    /// Gives `slot` to node `to` on every node (ends a migration).
    pub fn finish_migration(&self, slot: u16, to: usize) {
        for i in 0..self.nodes.len() {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&self.nodes[to].id)
                .exec(&mut self.admin(i))
                .unwrap_or_else(|e| panic!("SETSLOT {slot} NODE on node {i}: {e}"));
        }
    }

    /// Keys matching `pattern` on every live node: (node index, key).
    pub fn keys(&self, pattern: &str) -> Vec<(usize, String)> {
        let mut all = Vec::new();
        for i in self.live() {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut self.admin(i))
                .expect("KEYS");
            all.extend(keys.into_iter().map(|k| (i, k)));
        }
        all
    }

    /// Kills node `i` with SIGKILL by PID and waits for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut g) = self.nodes[i].guard.take() {
            g.signal("KILL");
            let _ = g.child.wait();
        }
    }

    /// Starts killed node `i` again on its ports, with its directory (and so its cluster
    /// config): it rejoins with the slots it had.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i]
            .spawn()
            .unwrap_or_else(|e| panic!("restart node {i}: {e}"));
        self.add_acl_user_on(i);
    }

    /// The log of node `i`.
    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i]._dir.path().join("redis.log")).unwrap_or_default()
    }
}
