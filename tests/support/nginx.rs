//! A real nginx as the ingress: TLS from the test CA, Host/SNI routing of server names to
//! backends on 127.0.0.1, started with its own prefix (pid, logs, temp paths) and stopped by
//! PID. [`Ingress`] is the standard stack the tests and the demo use.
//!
//! ```ignore
//! let ing = nginx::Ingress::start();
//! // https://shop.test:{ing.nginx.port}/ → app-a, https://api.test:{port}/ → app-b,
//! // expired.test: expired certificate, wrong.test: certificate for another name,
//! // soon.test: certificate that expires in 7 days. Reach them with
//! // `resolve: {shop.test: 127.0.0.1}` and `tls: {ca_file: ing.ca.ca_file()}`.
//! ```

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::backend::Backend;
use super::tls::{CertFiles, TestCa};
use super::{find_program, free_port, owns_port, wait_for_port, ChildGuard};

/// One `server` block: a name, its certificate (None: plain HTTP) and the backend port.
#[derive(Debug, Clone)]
pub struct Site {
    pub server_name: String,
    pub cert: Option<CertFiles>,
    pub upstream_port: u16,
    /// CA file of required client certificates (mTLS); TLS sites only.
    pub client_ca: Option<PathBuf>,
    /// Pass the Host header as the client sent it, port included (an S3 backend checks it:
    /// SigV4 signs it); otherwise without the port.
    pub host_as_sent: bool,
}

impl Site {
    /// An HTTPS site on the shared TLS port.
    pub fn tls(server_name: &str, cert: CertFiles, upstream_port: u16) -> Site {
        Site {
            server_name: server_name.to_string(),
            cert: Some(cert),
            upstream_port,
            client_ca: None,
            host_as_sent: false,
        }
    }

    /// This site passing the Host header as sent, port included.
    pub fn host_as_sent(mut self) -> Site {
        self.host_as_sent = true;
        self
    }

    /// This site with client certificates (mTLS) signed by `ca_file` required.
    pub fn require_client_cert(mut self, ca_file: &Path) -> Site {
        self.client_ca = Some(ca_file.to_path_buf());
        self
    }

    /// A plain-HTTP site on the shared HTTP port.
    pub fn plain(server_name: &str, upstream_port: u16) -> Site {
        Site {
            server_name: server_name.to_string(),
            cert: None,
            upstream_port,
            client_ca: None,
            host_as_sent: false,
        }
    }
}

/// What nginx serves. TLS sites share one port (chosen by SNI and Host), plain sites another;
/// the first site of each is that port's default server.
#[derive(Debug, Clone, Default)]
pub struct NginxConfig {
    pub sites: Vec<Site>,
}

/// A running nginx, stopped (TERM to the master PID) when dropped.
pub struct Nginx {
    /// The TLS port (`listen 127.0.0.1:PORT ssl http2`).
    pub port: u16,
    /// The plain-HTTP port.
    pub http_port: u16,
    /// The prefix directory: nginx.conf, nginx.pid, logs/, tmp/.
    pub prefix: PathBuf,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Writes the configuration and starts nginx; waits until both ports accept connections.
    pub fn start(cfg: NginxConfig) -> Result<Nginx, String> {
        let program =
            find_program("nginx").ok_or("nginx is not installed: run scripts/setup.sh")?;
        let mut last = String::new();
        // A free port can be taken between probing and binding: try a few times.
        for _ in 0..3 {
            match Nginx::try_start(&program, &cfg) {
                Ok(n) => return Ok(n),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(program: &Path, cfg: &NginxConfig) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-nginx-")
            .tempdir()
            .map_err(|e| format!("nginx prefix: {e}"))?;
        let prefix = dir.path().to_path_buf();
        // Workers may run as another user (nobody, when started as root): let them in.
        set_mode(&prefix, 0o755);
        std::fs::create_dir_all(prefix.join("logs")).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(prefix.join("tmp")).map_err(|e| e.to_string())?;
        let port = free_port();
        let http_port = free_port();
        let conf = render_conf(cfg, &prefix, port, http_port);
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("write nginx.conf: {e}"))?;

        let mut cmd = Command::new(program);
        cmd.arg("-c").arg(&conf_path).arg("-p").arg(&prefix).args([
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ]);
        let mut guard = ChildGuard::spawn("nginx", cmd, &prefix.join("logs/stderr.log"))?;
        for p in [port, http_port] {
            // Another test's server may have bound the port first: then nginx exits and the
            // port still answers, so it must be nginx's own socket.
            let ours = wait_for_port(p, Duration::from_secs(5)).and_then(|()| {
                owns_port(guard.pid(), p)
                    .then_some(())
                    .ok_or_else(|| format!("127.0.0.1:{p} is another process's"))
            });
            if let Err(e) = ours {
                let exited = guard.child.try_wait().ok().flatten();
                guard.stop();
                return Err(format!(
                    "nginx did not start ({e}; exit {exited:?}):\n{}",
                    guard.log_text()
                ));
            }
        }
        Ok(Nginx {
            port,
            http_port,
            prefix,
            guard,
            _dir: dir,
        })
    }

    /// PID of the master process.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// nginx's own messages (stderr and the error log).
    pub fn log_text(&self) -> String {
        let err = std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default();
        format!("{}{err}", self.guard.log_text())
    }

    /// The access log: one line per request with host, status, upstream and `traceparent`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/access.log")).unwrap_or_default()
    }

    /// The access log once it holds every one of `needles` (nginx writes a request's line only
    /// after the client has its answer), or as it is after 5 s, for the caller's assertion.
    pub fn access_log_with(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = self.access_log();
            if needles.iter().all(|n| log.contains(n)) || std::time::Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

fn render_conf(cfg: &NginxConfig, prefix: &Path, port: u16, http_port: u16) -> String {
    let p = prefix.display();
    let mut c = String::new();
    let _ = write!(
        c,
        "worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format probe '$remote_addr $ssl_server_name $host \"$request\" $status $upstream_addr \"$http_traceparent\"';
    access_log {p}/logs/access.log probe;
    client_body_temp_path {p}/tmp/client_body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    server_names_hash_bucket_size 64;
"
    );
    let mut first_tls = true;
    let mut first_plain = true;
    for s in &cfg.sites {
        let (listen, tls) = match &s.cert {
            Some(cert) => {
                let default = if std::mem::take(&mut first_tls) {
                    " default_server"
                } else {
                    ""
                };
                let mut tls = format!(
                    "ssl_certificate {};\n        ssl_certificate_key {};",
                    cert.cert.display(),
                    cert.key.display()
                );
                if let Some(ca) = &s.client_ca {
                    let _ = write!(
                        tls,
                        "\n        ssl_client_certificate {};\n        ssl_verify_client on;",
                        ca.display()
                    );
                }
                (format!("listen 127.0.0.1:{port} ssl http2{default};"), tls)
            }
            None => {
                let default = if std::mem::take(&mut first_plain) {
                    " default_server"
                } else {
                    ""
                };
                (
                    format!("listen 127.0.0.1:{http_port}{default};"),
                    String::new(),
                )
            }
        };
        let _ = write!(
            c,
            "    server {{
        {listen}
        server_name {name};
        {tls}
        location / {{
            proxy_pass http://127.0.0.1:{up};
            proxy_set_header Host {host};
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_redirect off;
        }}
    }}
",
            name = s.server_name,
            host = if s.host_as_sent {
                "$http_host"
            } else {
                "$host"
            },
            up = s.upstream_port
        );
    }
    // Every port exists even when no site uses it, so callers can rely on both.
    if first_tls {
        // No TLS site: nothing to serve on the TLS port without a certificate; listen plain.
        let _ = writeln!(c, "    server {{ listen 127.0.0.1:{port}; return 404; }}");
    }
    if first_plain {
        let _ = writeln!(
            c,
            "    server {{ listen 127.0.0.1:{http_port}; return 404; }}"
        );
    }
    c.push_str("}\n");
    c
}

/// Served by app-a with a valid certificate.
pub const SHOP: &str = "shop.test";
/// Served by app-b with a valid certificate.
pub const API: &str = "api.test";
/// Served by app-a with a certificate that expired yesterday.
pub const EXPIRED: &str = "expired.test";
/// Served by app-a with a valid certificate issued for [`OTHER`], not for this name.
pub const WRONG_HOST: &str = "wrong.test";
/// The name the certificate of [`WRONG_HOST`] is for.
pub const OTHER: &str = "other.test";
/// Served by app-a with a certificate that expires in 7 days.
pub const SOON: &str = "soon.test";
/// Served by app-a only to clients with a certificate from the test CA (mTLS).
pub const MTLS: &str = "mtls.test";

/// The standard local stack: a test CA, backends app-a and app-b, and nginx routing
/// [`SHOP`] → app-a and [`API`] → app-b (TLS port, and plain HTTP port by Host), plus
/// [`EXPIRED`], [`WRONG_HOST`] and [`SOON`] with bad or expiring certificates, and [`MTLS`]
/// which requires a client certificate from the CA (`ca.issue_client(..)`).
pub struct Ingress {
    // Field order is drop order: nginx stops before its backends and CA files go.
    pub nginx: Nginx,
    pub app_a: Backend,
    pub app_b: Backend,
    pub ca: TestCa,
}

impl Ingress {
    /// Starts the stack; panics with nginx's log when it cannot start.
    pub fn start() -> Ingress {
        Ingress::start_with_password(super::backend::DEFAULT_PASSWORD)
    }

    /// Starts the stack with backends whose login and basic auth accept `password`.
    pub fn start_with_password(password: &str) -> Ingress {
        let ca = TestCa::new("flowprobe test CA");
        let app_a = Backend::start_with_password("app-a", password);
        let app_b = Backend::start_with_password("app-b", password);
        let sites = vec![
            Site::tls(SHOP, ca.issue(&[SHOP]), app_a.port),
            Site::tls(API, ca.issue(&[API]), app_b.port),
            Site::tls(EXPIRED, ca.issue_expired(&[EXPIRED]), app_a.port),
            Site::tls(WRONG_HOST, ca.issue(&[OTHER]), app_a.port),
            Site::tls(
                SOON,
                ca.issue_expiring_in(&[SOON], Duration::from_secs(7 * 86_400)),
                app_a.port,
            ),
            Site::tls(MTLS, ca.issue(&[MTLS]), app_a.port).require_client_cert(ca.ca_file()),
            Site::plain(SHOP, app_a.port),
            Site::plain(API, app_b.port),
        ];
        let nginx = Nginx::start(NginxConfig { sites }).unwrap_or_else(|e| panic!("{e}"));
        Ingress {
            nginx,
            app_a,
            app_b,
            ca,
        }
    }

    /// `https://HOST:PORT` on the TLS port (reach it with `resolve: {HOST: 127.0.0.1}`).
    pub fn https(&self, host: &str) -> String {
        format!("https://{host}:{}", self.nginx.port)
    }

    /// `http://HOST:PORT` on the plain port.
    pub fn http(&self, host: &str) -> String {
        format!("http://{host}:{}", self.nginx.http_port)
    }

    /// The `--var` pairs the example scenarios read: where the ingress is and which CA to trust.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("ingress_host".into(), SHOP.into()),
            (
                "ingress_addr".into(),
                format!("127.0.0.1:{}", self.nginx.port),
            ),
            (
                "ingress_plain_addr".into(),
                format!("127.0.0.1:{}", self.nginx.http_port),
            ),
            ("ca_file".into(), self.ca.ca_file().display().to_string()),
            ("username".into(), super::backend::USER.into()),
        ]
    }
}
