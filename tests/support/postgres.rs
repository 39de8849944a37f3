//! A real PostgreSQL: a cluster made with `initdb` in a temporary directory (as the `postgres`
//! user when the tests run as root, as CI does), listening on a free 127.0.0.1 port with
//! password (scram-sha-256) logins, no fsync; stopped by PID (fast shutdown).
//!
//! ```ignore
//! let pg = postgres::PgServer::start();
//! // pg.url() = postgres://flowprobe@127.0.0.1:PORT/postgres, password pg.password
//! assert!(pg.databases("flowprobe_drill_").is_empty());
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{find_program, free_port, wait_for_port, ChildGuard};

pub const USER: &str = "flowprobe";

/// A running postgres.
pub struct PgServer {
    pub port: u16,
    pub password: String,
    bin: PathBuf,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

/// The directory holding initdb and postgres (Debian keeps them out of PATH).
fn bindir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    if let Some(b) = found.pop() {
        return b;
    }
    find_program("initdb")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("PostgreSQL is not installed: run scripts/setup.sh")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root (initdb refuses root).
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = bindir();
        let mut last = String::new();
        for _ in 0..3 {
            match PgServer::try_start(&bin) {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("postgres did not start: {last}");
    }

    fn try_start(bin: &Path) -> Result<PgServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let password = format!("pg-{}-{}", std::process::id(), free_port());
        std::fs::write(dir.path().join("pw"), &password).map_err(|e| e.to_string())?;
        std::fs::create_dir(dir.path().join("sock")).map_err(|e| e.to_string())?;
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| e.to_string())?;
            if !ok.success() {
                return Err("chown to postgres failed (is the postgres user there?)".into());
            }
        }
        let data = dir.path().join("data");
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()))
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = free_port();
        let mut cmd = as_owner(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .arg("-k")
            .arg(dir.path().join("sock"))
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        let guard = ChildGuard::spawn("postgres", cmd, &dir.path().join("pg.log"))?;
        let server = PgServer {
            port,
            password,
            bin: bin.to_path_buf(),
            guard,
            _dir: dir,
        };
        if let Err(e) = wait_for_port(port, Duration::from_secs(10)).and_then(|_| server.ready()) {
            let log = server.guard.log_text();
            return Err(format!("{e}:\n{log}"));
        }
        Ok(server)
    }

    /// Waits until the server accepts logins.
    fn ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.try_psql("postgres", "select 1") {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `postgres://flowprobe@127.0.0.1:PORT/postgres` (no password).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL with psql in `db`; panics on an error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql {sql}: {e}"))
    }

    /// Names of the databases starting with `prefix`.
    pub fn databases(&self, prefix: &str) -> Vec<String> {
        self.psql(
            "postgres",
            &format!(
                "select datname from pg_database where starts_with(datname, '{prefix}') order by 1"
            ),
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is postgres's fast shutdown (SIGTERM waits for clients to leave).
        self.guard.signal("INT");
        self.guard.stop();
    }
}
