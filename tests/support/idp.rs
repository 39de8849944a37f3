//! The OIDC provider of the tests and the demo: `tests/idp/server.mjs` (npm `oidc-provider`)
//! under node on 127.0.0.1, with one confidential client, one user whose password is really
//! checked, JWT access tokens for two API resources, and its signing keys in a JWKS file in
//! its own temporary directory. Stopped by PID; restarted on the same port with the same keys
//! ([`Idp::restart`]) or new ones ([`Idp::rotate_keys`]). [`Idp::start_ui`] picks the login
//! and consent pages' look (`dev`, the default, or `django`: see `tests/idp/server.mjs`).
//!
//! ```ignore
//! let idp = idp::Idp::start();
//! let yaml = format!("{}steps: ...issuer: {}", idp.secrets_yaml(), idp.issuer());
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{find_program, free_port, wait_for_port, ChildGuard};

pub const CLIENT_ID: &str = "flowprobe";
pub const CLIENT_SECRET: &str = "fp-client-secret-3b9f0c";
/// The user; the example scenario's default user name.
pub const USER: &str = "synthetic-user-1";
pub const PASSWORD: &str = "correct-horse-7d1c";
pub const EMAIL: &str = "synthetic-user-1@example.test";
/// Registered for the client; never fetched (the login stops at the redirect to it).
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";
pub const POST_LOGOUT_REDIRECT_URI: &str = "http://127.0.0.1/logged-out";
/// An API whose JWT access tokens live 10 minutes.
pub const API_RESOURCE: &str = "urn:flowprobe:api";
/// An API whose JWT access tokens live 1 second (for the expired-token test).
pub const SHORT_RESOURCE: &str = "urn:flowprobe:api-short";
/// The scope both APIs grant.
pub const API_SCOPE: &str = "api:read";
/// Environment variables the example scenario reads its secrets from.
pub const ENV_CLIENT_SECRET: &str = "OIDC_CLIENT_SECRET";
pub const ENV_PASSWORD: &str = "OIDC_PROBE_PASSWORD";

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// A running provider.
pub struct Idp {
    pub port: u16,
    dir: tempfile::TempDir,
    guard: Option<ChildGuard>,
    starts: u32,
    ui: &'static str,
}

impl Idp {
    /// Starts the provider on a free port; panics with its log when it cannot start.
    pub fn start() -> Idp {
        Idp::start_ui("dev")
    }

    /// Starts it with the login and consent pages of `ui` (`dev` or `django`).
    pub fn start_ui(ui: &'static str) -> Idp {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-idp-")
            .tempdir()
            .expect("temp dir for the IdP");
        let mut idp = Idp {
            port: free_port(),
            dir,
            guard: None,
            starts: 0,
            ui,
        };
        idp.write_files();
        idp.spawn().unwrap_or_else(|e| panic!("{e}"));
        idp
    }

    /// `http://127.0.0.1:PORT`
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn jwks_file(&self) -> PathBuf {
        self.dir.path().join("jwks.json")
    }

    /// A file holding a secret, for scenarios' `secrets: {x: {file: ...}}`.
    pub fn secret_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.secret"))
    }

    /// `secrets:` block with `client_secret` and `password` read from files.
    pub fn secrets_yaml(&self) -> String {
        format!(
            "secrets:\n  client_secret: {{file: {}}}\n  password: {{file: {}}}\n",
            self.secret_file("client_secret").display(),
            self.secret_file("password").display()
        )
    }

    fn write_files(&self) {
        let config = serde_json::json!({
            "port": self.port,
            "jwks_file": self.jwks_file(),
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [REDIRECT_URI],
                "post_logout_redirect_uris": [POST_LOGOUT_REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token", "client_credentials", "password"],
                "response_types": ["code"],
                "scope": format!("openid offline_access profile email {API_SCOPE}"),
            }],
            "users": [{"login": USER, "password": PASSWORD, "email": EMAIL, "name": "Synthetic User"}],
            "resources": {
                API_RESOURCE: {"scope": API_SCOPE, "ttl": 600},
                SHORT_RESOURCE: {"scope": API_SCOPE, "ttl": 1},
            },
            "ui": self.ui,
        });
        let p = self.dir.path();
        std::fs::write(p.join("config.json"), config.to_string()).expect("write IdP config");
        std::fs::write(self.secret_file("client_secret"), CLIENT_SECRET).expect("write secret");
        std::fs::write(self.secret_file("password"), PASSWORD).expect("write secret");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let node = find_program("node").ok_or("node is not installed: run scripts/setup.sh")?;
        let script = idp_dir().join("server.mjs");
        if !idp_dir().join("node_modules/oidc-provider").is_dir() {
            return Err("tests/idp/node_modules is missing: run scripts/setup.sh (npm ci)".into());
        }
        self.starts += 1;
        let log = self.dir.path().join(format!("idp-{}.log", self.starts));
        let mut cmd = Command::new(node);
        cmd.arg(&script)
            .arg(self.dir.path().join("config.json"))
            .current_dir(idp_dir())
            .env("NODE_ENV", "test");
        let mut guard = ChildGuard::spawn("oidc-provider", cmd, &log)?;
        if let Err(e) = wait_for_port(self.port, Duration::from_secs(20)) {
            let exited = guard.child.try_wait().ok().flatten();
            guard.stop();
            return Err(format!(
                "the IdP did not start ({e}; exit {exited:?}):\n{}",
                guard.log_text()
            ));
        }
        self.guard = Some(guard);
        Ok(())
    }

    /// PID of the node process.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().map(|g| g.pid())
    }

    /// Stops the provider (its port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.stop();
        }
    }

    /// Stops and starts it again on the same port, with the same keys.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops it, throws its signing keys away and starts it with a new key (new `kid`).
    pub fn rotate_keys(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.jwks_file());
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    /// The `kid`s of the current signing keys.
    pub fn kids(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.jwks_file()).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v["keys"]
            .as_array()
            .map(|ks| {
                ks.iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every log of every start so far: one `METHOD /path STATUS` line per request.
    pub fn log_text(&self) -> String {
        // The provider logs a request after its answer went out: let the log settle first.
        let size = || {
            std::fs::metadata(self.dir.path().join(format!("idp-{}.log", self.starts)))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut last = size();
        while std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(60));
            let now = size();
            if now == last {
                break;
            }
            last = now;
        }
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("idp-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// How many requests began with `prefix` (e.g. `GET /jwks`), over every start.
    pub fn requests(&self, prefix: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// The `--var` pairs of `scenarios/login-flow.yaml` for this provider.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("oidc_issuer".into(), self.issuer()),
            ("oidc_client_id".into(), CLIENT_ID.into()),
            ("oidc_redirect_uri".into(), REDIRECT_URI.into()),
            ("oidc_username".into(), USER.into()),
            ("api_resource".into(), API_RESOURCE.into()),
        ]
    }

    /// The environment the example scenario reads its secrets from.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (ENV_CLIENT_SECRET.into(), CLIENT_SECRET.into()),
            (ENV_PASSWORD.into(), PASSWORD.into()),
        ]
    }

    /// The temporary directory (config, keys, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}
