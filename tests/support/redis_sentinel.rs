//! A real Sentinel set-up on free 127.0.0.1 ports: a primary and a replica (redis-server,
//! `requirepass` + `masterauth`, an ACL user on each) watched by three sentinels
//! (`redis-server CONF --sentinel`, `requirepass` and an ACL user of their own allowed only
//! what the step asks, quorum 2, down after 1s). `start_tls` also gives every process a TLS port and makes replication and
//! the sentinels' own links use TLS. Helpers force a failover and wait until it has settled,
//! break a replica's link, and list keys on every data node.
//!
//! ```ignore
//! let s = redis_sentinel::SentinelSet::start();
//! // s.sentinel_nodes() = "127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3", master name s.master
//! let new_primary = s.failover();   // SENTINEL FAILOVER, then wait for the new roles
//! assert!(s.keys("flowprobe:*").is_empty());
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use super::redis::{abs, uuid_like};
use super::tls::{CertFiles, TestCa};
use super::{find_program, free_port, wait_for_port, ChildGuard};

/// A data node (primary or replica) or a sentinel.
pub struct Proc {
    pub port: u16,
    /// The TLS port, in a set started with TLS.
    pub tls_port: Option<u16>,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Proc {
    pub fn log_text(&self) -> String {
        self.guard.log_text()
    }
}

/// A primary, a replica and three sentinels.
pub struct SentinelSet {
    /// `data[0]` starts as the primary, `data[1]` as its replica.
    pub data: Vec<Proc>,
    pub sentinels: Vec<Proc>,
    /// The monitored master's name.
    pub master: String,
    /// `default` user's password on the data nodes.
    pub password: String,
    pub acl_user: String,
    pub acl_password: String,
    /// `default` user's password on the sentinels.
    pub sentinel_password: String,
    /// An ACL user on the sentinels.
    pub sentinel_user: String,
    pub sentinel_user_password: String,
    /// The CA of a TLS set.
    pub ca: Option<TestCa>,
}

/// TLS files every process of a TLS set gets: its certificate, a client certificate for its
/// own outgoing links (replication, sentinel to node), and the CA.
struct TlsFiles {
    cert: CertFiles,
    client: CertFiles,
    ca: PathBuf,
}

impl TlsFiles {
    /// (option, file) pairs, as `--option` flags or config lines.
    fn settings(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("tls-cert-file", abs(&self.cert.cert)),
            ("tls-key-file", abs(&self.cert.key)),
            ("tls-client-cert-file", abs(&self.client.cert)),
            ("tls-client-key-file", abs(&self.client.key)),
            ("tls-ca-cert-file", abs(&self.ca)),
        ]
    }
}

fn spawn(
    program: &Path,
    args: &[String],
    conf: Option<&str>,
    tls: Option<&TlsFiles>,
) -> Result<Proc, String> {
    let dir = tempfile::Builder::new()
        .prefix("flowprobe-rsentinel-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let port = free_port();
    let tls_port = tls.map(|_| free_port());
    // With TLS, outgoing links (replication, sentinels to nodes and to each other) use TLS
    // and announce the TLS port.
    let mut tls_lines = Vec::new();
    if let (Some(t), Some(tp)) = (tls, tls_port) {
        tls_lines.push(("tls-port".to_string(), tp.to_string()));
        for (k, f) in t.settings() {
            tls_lines.push((k.to_string(), f.display().to_string()));
        }
        tls_lines.push(("tls-auth-clients".into(), "optional".into()));
        tls_lines.push(("tls-replication".into(), "yes".into()));
    }
    let mut cmd = Command::new(program);
    if let Some(text) = conf {
        // Sentinel rewrites its config file: it lives in the node's own directory.
        let file = dir.path().join("sentinel.conf");
        let extra: String = tls_lines
            .iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect();
        std::fs::write(&file, format!("port {port}\n{extra}{text}")).map_err(|e| e.to_string())?;
        cmd.arg(&file).arg("--sentinel");
    } else {
        cmd.args(["--port", &port.to_string()]);
        for (k, v) in &tls_lines {
            cmd.arg(format!("--{k}")).arg(v);
        }
    }
    cmd.args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .args(args)
        .arg("--dir")
        .arg(dir.path());
    let mut guard = ChildGuard::spawn("redis (sentinel set)", cmd, &dir.path().join("log"))?;
    for p in std::iter::once(port).chain(tls_port) {
        if let Err(e) = wait_for_port(p, Duration::from_secs(5)) {
            guard.stop();
            return Err(format!("{e}:\n{}", guard.log_text()));
        }
    }
    Ok(Proc {
        port,
        tls_port,
        guard,
        _dir: dir,
    })
}

/// Starts with a few tries: a free port can be taken between probing and binding.
fn spawn_retry(
    program: &Path,
    args: &[String],
    conf: Option<&str>,
    tls: Option<&TlsFiles>,
) -> Proc {
    let mut last = String::new();
    for _ in 0..3 {
        match spawn(program, args, conf, tls) {
            Ok(p) => return p,
            Err(e) => last = e,
        }
    }
    panic!("redis did not start: {last}")
}

fn conn(port: u16, user: &str, password: &str) -> redis::Connection {
    let url = format!("redis://{user}:{password}@127.0.0.1:{port}");
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("connection to 127.0.0.1:{port}: {e}"))
}

/// Polls `f` every 100 ms until it is true, or panics with `what`.
fn wait(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl SentinelSet {
    /// Plain TCP everywhere.
    pub fn start() -> SentinelSet {
        SentinelSet::start_with(false)
    }

    /// Every process also has a TLS port, and replication and the sentinels' own links use
    /// TLS (so the sentinels name the nodes' TLS ports); `ca` signs every certificate.
    pub fn start_tls() -> SentinelSet {
        SentinelSet::start_with(true)
    }

    fn start_with(tls: bool) -> SentinelSet {
        let ca = tls.then(|| TestCa::new("flowprobe sentinel CA"));
        let files = ca.as_ref().map(|ca| TlsFiles {
            cert: ca.issue(&["127.0.0.1", "localhost"]),
            client: ca.issue_client("redis-sentinel-set"),
            ca: ca.ca_file().to_path_buf(),
        });
        let program = find_program("redis-server")
            .expect("redis-server is not installed: run scripts/setup.sh");
        let password = format!("dpw-{}", uuid_like());
        let common: Vec<String> = [
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            &password,
            "--masterauth",
            &password,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let primary = spawn_retry(&program, &common, None, files.as_ref());
        let mut replica_args = common.clone();
        replica_args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.tls_port.unwrap_or(primary.port).to_string(),
        ]);
        let replica = spawn_retry(&program, &replica_args, None, files.as_ref());
        let mut set = SentinelSet {
            data: vec![primary, replica],
            sentinels: Vec::new(),
            master: "flowprobe-primary".into(),
            password,
            acl_user: "probe".into(),
            acl_password: format!("acl-{}", uuid_like()),
            sentinel_password: format!("spw-{}", uuid_like()),
            sentinel_user: "watcher".into(),
            sentinel_user_password: format!("wpw-{}", uuid_like()),
            ca,
        };
        for i in 0..2 {
            set.acl_setuser(i);
        }
        wait(Duration::from_secs(20), "the replica's link", || {
            set.link_up(1)
        });
        let conf = set.sentinel_conf();
        for _ in 0..3 {
            let s = spawn_retry(&program, &[], Some(&conf), files.as_ref());
            set.sentinels.push(s);
        }
        wait(
            Duration::from_secs(30),
            "sentinels to see each other and the replica",
            || {
                (0..3).all(|i| {
                    let m = set.sentinel_master(i);
                    m.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && m.get("num-slaves").map(String::as_str) == Some("1")
                })
            },
        );
        set
    }

    fn sentinel_conf(&self) -> String {
        let (m, pw) = (&self.master, &self.password);
        format!(
            "sentinel monitor {m} 127.0.0.1 {} 2\n\
             sentinel auth-pass {m} {pw}\n\
             sentinel down-after-milliseconds {m} 1000\n\
             sentinel failover-timeout {m} 10000\n\
             sentinel parallel-syncs {m} 1\n\
             requirepass {sp}\n\
             sentinel sentinel-pass {sp}\n\
             user {u} on >{up} -@all +@connection +sentinel|get-master-addr-by-name +sentinel|replicas\n",
            self.data[0].tls_port.unwrap_or(self.data[0].port),
            sp = self.sentinel_password,
            u = self.sentinel_user,
            up = self.sentinel_user_password,
        )
    }

    fn acl_setuser(&self, i: usize) {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&self.acl_user)
            .arg("on")
            .arg(format!(">{}", self.acl_password))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .exec(&mut self.admin(i))
            .expect("ACL SETUSER on a data node");
    }

    /// Admin connection to data node `i` as `default`.
    pub fn admin(&self, i: usize) -> redis::Connection {
        conn(self.data[i].port, "default", &self.password)
    }

    /// Admin connection to sentinel `i` as `default`.
    pub fn sentinel_admin(&self, i: usize) -> redis::Connection {
        conn(self.sentinels[i].port, "default", &self.sentinel_password)
    }

    /// `SENTINEL MASTER` as sentinel `i` sees it.
    pub fn sentinel_master(&self, i: usize) -> std::collections::HashMap<String, String> {
        redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.master)
            .query(&mut self.sentinel_admin(i))
            .unwrap_or_default()
    }

    /// The sentinels' TLS ports, `127.0.0.1:T1,127.0.0.1:T2,127.0.0.1:T3` (TLS sets only).
    pub fn sentinel_tls_nodes(&self) -> String {
        let v: Vec<String> = self
            .sentinels
            .iter()
            .filter_map(|s| s.tls_port.map(|p| format!("127.0.0.1:{p}")))
            .collect();
        v.join(",")
    }

    /// `127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3`.
    pub fn sentinel_nodes(&self) -> String {
        let v: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        v.join(",")
    }

    /// `ROLE` of data node `i`: `master` or `slave`.
    pub fn role(&self, i: usize) -> String {
        let v: Vec<redis::Value> = redis::cmd("ROLE").query(&mut self.admin(i)).expect("ROLE");
        redis::FromRedisValue::from_redis_value(&v[0]).expect("role name")
    }

    /// True when data node `i` is a replica whose link to its primary is up.
    pub fn link_up(&self, i: usize) -> bool {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut self.admin(i))
            .unwrap_or_default();
        info.contains("role:slave") && info.contains("master_link_status:up")
    }

    /// Index of the data node every sentinel names as the primary, if they agree.
    pub fn primary_by_sentinels(&self) -> Option<usize> {
        let ports: Vec<Option<u16>> = (0..self.sentinels.len())
            .map(|i| {
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.master)
                    .query(&mut self.sentinel_admin(i))
                    .ok()
                    .flatten();
                addr.map(|a| a.1)
            })
            .collect();
        let first = ports.first().copied().flatten()?;
        if ports.iter().any(|p| *p != Some(first)) {
            return None;
        }
        self.data
            .iter()
            .position(|d| d.port == first || d.tls_port == Some(first))
    }

    /// Forces a failover (`SENTINEL FAILOVER` on sentinel 0) and waits until it has settled:
    /// all sentinels name the other node, it is a master, and the old one replicates from it.
    /// Returns the new primary's index.
    pub fn failover(&self) -> usize {
        let old = self
            .primary_by_sentinels()
            .expect("sentinels agree on a primary");
        let new = 1 - old;
        redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(&self.master)
            .exec(&mut self.sentinel_admin(0))
            .expect("SENTINEL FAILOVER");
        self.wait_settled(new, Duration::from_secs(60));
        new
    }

    /// Waits until node `primary` is the primary everywhere and the other one's link is up.
    pub fn wait_settled(&self, primary: usize, timeout: Duration) {
        wait(timeout, "the failover to settle", || {
            self.primary_by_sentinels() == Some(primary)
                && self.role(primary) == "master"
                && self.link_up(1 - primary)
                && (0..3).all(|i| {
                    self.sentinel_master(i)
                        .get("num-slaves")
                        .map(String::as_str)
                        == Some("1")
                })
        });
    }

    /// Breaks replica `i`'s replication: a wrong `masterauth` and its link killed, so it
    /// stays up (the sentinels still list it) but gets no more writes.
    pub fn break_replication(&self, i: usize) {
        let mut c = self.admin(i);
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("masterauth")
            .arg("not-the-password")
            .exec(&mut c)
            .expect("CONFIG SET masterauth");
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("master")
            .exec(&mut c)
            .expect("CLIENT KILL TYPE master");
        wait(
            Duration::from_secs(10),
            "the replica's link to go down",
            || !self.link_up(i),
        );
    }

    /// Keys matching `pattern` on every data node: (node index, key).
    pub fn keys(&self, pattern: &str) -> Vec<(usize, String)> {
        let mut all = Vec::new();
        for i in 0..self.data.len() {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut self.admin(i))
                .expect("KEYS");
            all.extend(keys.into_iter().map(|k| (i, k)));
        }
        all
    }
}
