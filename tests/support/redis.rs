//! A real redis-server on free 127.0.0.1 ports: a plain port with `requirepass`, an ACL user
//! made with `ACL SETUSER`, and a TLS port with a certificate from the test CA. No persistence
//! (`--save '' --appendonly no`); stopped (or killed, to test failures) by PID.
//!
//! ```ignore
//! let r = redis::RedisServer::start();
//! // r.url() = redis://127.0.0.1:PORT, r.tls_url() = rediss://127.0.0.1:TLSPORT
//! // default user's password: r.password; ACL user: r.acl_user / r.acl_password
//! // trust: tls: {ca_file: r.ca_file()}
//! assert!(r.keys("*").is_empty());
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::tls::TestCa;
use super::{find_program, free_port, wait_for_port, ChildGuard};

/// A running redis-server.
pub struct RedisServer {
    pub port: u16,
    pub tls_port: u16,
    /// Password of the `default` user (`requirepass`).
    pub password: String,
    /// An ACL user allowed every command on every key.
    pub acl_user: String,
    pub acl_password: String,
    // Field order is drop order: stop the server before its CA files go.
    guard: ChildGuard,
    pub ca: TestCa,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server, waits for both ports, and creates the ACL user.
    pub fn start() -> RedisServer {
        let program = find_program("redis-server")
            .expect("redis-server is not installed: run scripts/setup.sh");
        let mut last = String::new();
        // A free port can be taken between probing and binding: try a few times.
        for _ in 0..3 {
            match RedisServer::try_start(&program) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn try_start(program: &Path) -> Result<RedisServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-redis-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let ca = TestCa::new("flowprobe redis test CA");
        let cert = ca.issue(&["127.0.0.1", "localhost"]);
        let port = free_port();
        let tls_port = free_port();
        let password = format!("pw-{}", uuid_like());
        let mut cmd = Command::new(program);
        // redis changes into --dir before reading TLS files: every path is absolute.
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--tls-port", &tls_port.to_string()])
            .arg("--tls-cert-file")
            .arg(abs(&cert.cert))
            .arg("--tls-key-file")
            .arg(abs(&cert.key))
            .arg("--tls-ca-cert-file")
            .arg(abs(ca.ca_file()))
            .args(["--tls-auth-clients", "optional"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--requirepass", &password])
            .arg("--dir")
            .arg(dir.path());
        let mut guard = ChildGuard::spawn("redis-server", cmd, &dir.path().join("redis.log"))?;
        for p in [port, tls_port] {
            if let Err(e) = wait_for_port(p, Duration::from_secs(5)) {
                let exited = guard.child.try_wait().ok().flatten();
                guard.stop();
                return Err(format!("{e}; exit {exited:?}:\n{}", guard.log_text()));
            }
        }
        let server = RedisServer {
            port,
            tls_port,
            password,
            acl_user: "probe".into(),
            acl_password: format!("acl-{}", uuid_like()),
            guard,
            ca,
            _dir: dir,
        };
        let mut admin = server.admin();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&server.acl_user)
            .arg("on")
            .arg(format!(">{}", server.acl_password))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .exec(&mut admin)
            .map_err(|e| format!("ACL SETUSER: {e}"))?;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT` (no credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:TLSPORT` (no credentials).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// PEM file of the CA that signed the server certificate.
    pub fn ca_file(&self) -> &Path {
        self.ca.ca_file()
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        self.guard.log_text()
    }

    /// A synchronous admin connection as the `default` user.
    pub fn admin(&self) -> redis::Connection {
        let url = format!("redis://default:{}@127.0.0.1:{}", self.password, self.port);
        redis::Client::open(url)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("admin connection to the test redis-server")
    }

    /// Keys matching `pattern` in database `db`.
    pub fn keys_in(&self, db: i64, pattern: &str) -> Vec<String> {
        let mut c = self.admin();
        redis::cmd("SELECT").arg(db).exec(&mut c).expect("SELECT");
        redis::cmd("KEYS").arg(pattern).query(&mut c).expect("KEYS")
    }

    /// Keys matching `pattern` in database 0.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.keys_in(0, pattern)
    }

    /// Waits until a client is blocked in a command (e.g. BLPOP), as `CLIENT LIST` shows.
    pub fn wait_for_blocked_client(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut c = self.admin();
        while Instant::now() < deadline {
            let n: i64 = redis::cmd("INFO")
                .arg("clients")
                .query::<String>(&mut c)
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("blocked_clients:"))
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            if n > 0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no client blocked within {timeout:?}"))
    }

    /// Kills the server with SIGKILL by PID (a crash, not a shutdown) and waits for it.
    pub fn kill(&mut self) {
        self.guard.signal("KILL");
        let _ = self.guard.child.wait();
    }
}

/// `p` made absolute (redis changes into `--dir` before reading files).
pub fn abs(p: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A random-enough token for passwords: time and PID, hex.
pub fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", nanos, std::process::id())
}
