//! A real dnsmasq as a DNS server on a free 127.0.0.1 port (UDP and TCP), answering only from
//! records given on its command line: no upstream servers, no /etc/hosts, no configuration
//! file. Everything under the `test` domain that is not listed is NXDOMAIN. Stopped by PID.
//!
//! ```ignore
//! let d = dnsmasq::Dnsmasq::start();
//! // d.server() = "127.0.0.1:PORT"; app.test A 10.0.0.7 (TTL 300), www.test CNAME app.test,
//! // v6.test AAAA fd00::7, txt.test TXT, test MX 10 mail.test, _http._tcp.test SRV, and
//! // missing.test (or any other name under test) NXDOMAIN.
//! ```

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{find_program, free_port, wait_for_port, ChildGuard};

/// An address record.
pub const APP: &str = "app.test";
pub const APP_ADDR: &str = "10.0.0.7";
/// A second address of [`APP`], so `answers` holds two.
pub const APP_ADDR_2: &str = "10.0.0.8";
/// A CNAME pointing at [`APP`].
pub const WWW: &str = "www.test";
/// An AAAA record.
pub const V6: &str = "v6.test";
pub const V6_ADDR: &str = "fd00::7";
/// A TXT record of two strings (`v=spf1 ` and `-all`).
pub const TXT: &str = "txt.test";
/// The domain holding the MX record `10 mail.test`.
pub const DOMAIN: &str = "test";
/// An SRV record `1 5 8080 app.test`.
pub const SRV: &str = "_http._tcp.test";
/// A name under the local domain that does not exist.
pub const MISSING: &str = "missing.test";
/// The TTL of every local record.
pub const TTL: u32 = 300;

/// A running dnsmasq.
pub struct Dnsmasq {
    pub port: u16,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq and waits until it answers on TCP and UDP.
    pub fn start() -> Dnsmasq {
        let program =
            find_program("dnsmasq").expect("dnsmasq is not installed: run scripts/setup.sh");
        let mut last = String::new();
        // A free port can be taken between probing and binding: try a few times.
        for _ in 0..3 {
            match Dnsmasq::try_start(&program) {
                Ok(d) => return d,
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start: {last}");
    }

    fn try_start(program: &Path) -> Result<Dnsmasq, String> {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-dnsmasq-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let port = free_port();
        let mut cmd = Command::new(program);
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--log-queries",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--local-ttl={TTL}"))
        .arg(format!("--local=/{DOMAIN}/"))
        .arg(format!("--host-record={APP},{APP_ADDR}"))
        .arg(format!("--host-record={APP},{APP_ADDR_2}"))
        .arg(format!("--host-record={V6},{V6_ADDR}"))
        .arg(format!("--cname={WWW},{APP}"))
        .arg(format!("--txt-record={TXT},v=spf1 ,-all"))
        .arg(format!("--mx-host={DOMAIN},mail.{DOMAIN},10"))
        .arg(format!("--srv-host={SRV},{APP},8080,1,5"));
        let mut guard = ChildGuard::spawn("dnsmasq", cmd, &dir.path().join("dnsmasq.log"))?;
        let ready = wait_for_port(port, Duration::from_secs(5)).and_then(|_| wait_udp(port));
        if let Err(e) = ready {
            let exited = guard.child.try_wait().ok().flatten();
            guard.stop();
            return Err(format!("{e}; exit {exited:?}:\n{}", guard.log_text()));
        }
        Ok(Dnsmasq {
            port,
            guard,
            _dir: dir,
        })
    }

    /// `127.0.0.1:PORT`, as a step's `server`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// dnsmasq's log so far (every query is logged).
    pub fn log_text(&self) -> String {
        self.guard.log_text()
    }
}

/// Waits until a query for [`APP`] over UDP is answered.
fn wait_udp(port: u16) -> Result<(), String> {
    // id 0x1234, RD, one question: app.test A IN.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in APP.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        let _ = sock.send_to(&query, ("127.0.0.1", port));
        if matches!(sock.recv(&mut buf), Ok(n) if n > 2 && buf[..2] == [0x12, 0x34]) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("dnsmasq did not answer on udp 127.0.0.1:{port}"))
}
