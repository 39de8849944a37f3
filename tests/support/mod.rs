//! Test harness shared by the integration tests and the demo stack: free ports, child
//! processes stopped by PID, readiness waits, and one module per real server.
#![allow(dead_code)]

pub mod api_app;
pub mod backend;
pub mod browser;
pub mod dnsmasq;
pub mod idp;
pub mod nginx;
pub mod otlp;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod s3;
pub mod tls;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "nothing listened on 127.0.0.1:{port} within {timeout:?}"
    ))
}

/// Inodes of the sockets listening on 127.0.0.1:`port` (from /proc/net/tcp).
fn listening_inodes(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, state 0A (LISTEN), inode
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
                .then(|| f.get(9).map(|i| i.to_string()))
                .flatten()
        })
        .collect()
}

/// True when process `pid` holds a socket listening on 127.0.0.1:`port`: the server itself
/// took the port, not another test's server that bound it first.
pub fn owns_port(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|t| t.to_str().map(String::from))
            .and_then(|t| {
                t.strip_prefix("socket:[")
                    .map(|i| i.trim_end_matches(']').to_string())
            })
            .is_some_and(|i| inodes.contains(&i))
    })
}

/// A child process that is stopped by its PID (SIGTERM, then SIGKILL) when dropped.
pub struct ChildGuard {
    pub name: String,
    pub child: Child,
    /// stderr/stdout log file of the process, for failure messages.
    pub log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<ChildGuard, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{name}: log file: {e}"))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{name}: log file: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("{name}: cannot start {:?}: {e}", cmd.get_program()))?;
        Ok(ChildGuard {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the process by PID.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }

    /// Stops the process: TERM, up to 5 s, then KILL.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Loads a scenario from text with these vars (secret sources checked), panicking with every
/// diagnostic and the text when it does not load.
pub fn load_scenario(
    file: &str,
    yaml: &str,
    vars: BTreeMap<String, String>,
) -> flowprobe::scenario::LoadedScenario {
    let opts = flowprobe::scenario::LoadOptions {
        vars,
        check_secrets: true,
    };
    flowprobe::scenario::load::load_source(file, yaml, &opts).unwrap_or_else(|diags| {
        let all: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        panic!("scenario does not load:\n{}\n{yaml}", all.join("\n"))
    })
}

/// A run as the terminal shows it (no colour), for assertion messages.
pub fn describe(o: &flowprobe::outcome::ScenarioOutcome) -> String {
    flowprobe::report::terminal::render_outcome(o, false, false)
}

/// Path of the flowprobe binary: the one cargo built for these tests, else target/debug's.
pub fn flowprobe_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_flowprobe") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/flowprobe"),
    }
}

/// Finds a program on PATH or in the usual sbin / cargo directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].iter().map(PathBuf::from));
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}
