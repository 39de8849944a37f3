//! The mission's test application: an API on 127.0.0.1 that accepts a request only with a
//! bearer JWT access token the IdP signed (checked against the IdP's JWKS, fetched again for an
//! unknown `kid`: signature, `iss`, `aud`, `exp`) and answers with the token's claims, plus
//! [`LoginStack`]: the IdP, this app, and a real nginx with TLS in front of it.
//!
//! - `GET /health` → `ok`
//! - `GET /delay/{ms}` → waits, then `{"delayed_ms": ms}` (lets a scenario outlive a token)
//! - `GET /api/me` with `Authorization: Bearer JWT` → `{"sub", "aud", "scope", "client_id", ...}`,
//!   else 401 `{"error": "invalid_token", "error_description"}`
//!
//! ```ignore
//! let ca = tls::TestCa::new("ca");
//! let stack = api_app::LoginStack::start(&ca);
//! // https://app.test:{stack.nginx.port}/api/me, reached with resolve + ca_file
//! ```

use std::future::IntoFuture;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, JsonWebKey, Nonce};
use serde_json::{json, Value};

use super::idp::{Idp, API_RESOURCE, SHORT_RESOURCE};
use super::nginx::{Nginx, NginxConfig, Site};
use super::tls::TestCa;

/// The host name nginx serves the app under.
pub const APP_HOST: &str = "app.test";

struct AppState {
    issuer: String,
    audiences: Vec<String>,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Option<CoreJsonWebKeySet>>,
    /// Every bearer token received (for tests that grep outputs for leaks).
    seen: Mutex<Vec<String>>,
    /// JWKS fetches so far.
    fetches: Mutex<usize>,
}

/// A running app; stopped when dropped.
pub struct ApiApp {
    pub port: u16,
    state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiApp {
    /// Starts the app trusting tokens of `issuer` for any of `audiences`.
    pub fn start(issuer: &str, audiences: &[&str]) -> ApiApp {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(AppState {
            issuer: issuer.to_string(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            keys: tokio::sync::Mutex::new(None),
            seen: Mutex::default(),
            fetches: Mutex::default(),
        });
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/api/me", get(me))
            .route("/delay/{ms}", get(delay))
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("api-app".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("api-app runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let serve = axum::serve(listener, app).into_future();
                    tokio::select! {
                        _ = serve => {}
                        _ = rx => {}
                    }
                });
            })
            .expect("spawn the api-app thread");
        ApiApp {
            port,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Bearer tokens received so far.
    pub fn seen_tokens(&self) -> Vec<String> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    /// JWKS fetches so far.
    pub fn jwks_fetches(&self) -> usize {
        *self.state.fetches.lock().expect("fetches lock")
    }
}

impl Drop for ApiApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        Json(json!({"error": "invalid_token", "error_description": why})),
    )
        .into_response()
}

async fn fetch_keys(s: &AppState) -> Result<CoreJsonWebKeySet, String> {
    *s.fetches.lock().expect("fetches lock") += 1;
    let conf: Value = s
        .http
        .get(format!("{}/.well-known/openid-configuration", s.issuer))
        .send()
        .await
        .map_err(|e| format!("discovery: {e}"))?
        .json()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let uri = conf["jwks_uri"].as_str().ok_or("discovery: no jwks_uri")?;
    s.http
        .get(uri)
        .send()
        .await
        .map_err(|e| format!("jwks: {e}"))?
        .json()
        .await
        .map_err(|e| format!("jwks: {e}"))
}

/// Keys that know `kid`: cached, or fetched again when the cache lacks it.
async fn keys_for(s: &AppState, kid: Option<&str>) -> Result<CoreJsonWebKeySet, String> {
    let mut cached = s.keys.lock().await;
    let knows = |set: &CoreJsonWebKeySet| {
        kid.is_none_or(|k| {
            set.keys()
                .iter()
                .any(|key| key.key_id().map(|i| i.as_str()) == Some(k))
        })
    };
    match cached.as_ref() {
        Some(set) if knows(set) => Ok(set.clone()),
        _ => {
            let set = fetch_keys(s).await?;
            *cached = Some(set.clone());
            Ok(set)
        }
    }
}

fn kid_of(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["kid"].as_str().map(str::to_string)
}

/// Signature, iss, aud (one of the app's audiences) and exp; returns the claims.
async fn validate(s: &AppState, token: &str) -> Result<Value, String> {
    let jwt = CoreIdToken::from_str(token).map_err(|_| "not a JWT access token".to_string())?;
    let keys = keys_for(s, kid_of(token).as_deref()).await?;
    let issuer = IssuerUrl::new(s.issuer.clone()).map_err(|e| e.to_string())?;
    let mut last = String::from("no audience configured");
    for aud in &s.audiences {
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(aud.clone()),
            issuer.clone(),
            keys.clone(),
        )
        .allow_all_jose_types()
        .set_other_audience_verifier_fn(|_| true);
        match jwt.claims(&verifier, |_: Option<&Nonce>| Ok(())) {
            Ok(_) => {
                use base64::Engine;
                let payload = token.split('.').nth(1).unwrap_or_default();
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .map_err(|e| e.to_string())?;
                return serde_json::from_slice(&bytes).map_err(|e| e.to_string());
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

async fn delay(Path(ms): Path<u64>) -> Json<Value> {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Json(json!({"delayed_ms": ms}))
}

async fn me(State(s): State<Arc<AppState>>, h: HeaderMap) -> Response {
    let auth = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(token) = auth.strip_prefix("Bearer ") else {
        return unauthorized("missing bearer token");
    };
    s.seen.lock().expect("seen lock").push(token.to_string());
    match validate(&s, token).await {
        Ok(claims) => Json(claims).into_response(),
        Err(why) => unauthorized(&why),
    }
}

/// The mission's flow on loopback: the IdP, the app trusting its tokens for [`API_RESOURCE`]
/// and [`SHORT_RESOURCE`], and nginx serving [`APP_HOST`] with a certificate of `ca`.
pub struct LoginStack {
    // Field order is drop order: nginx first, then the app, then the IdP.
    pub nginx: Nginx,
    pub app: ApiApp,
    pub idp: Idp,
    ca_file: String,
}

impl LoginStack {
    /// Starts the three; panics with nginx's log when it cannot start.
    pub fn start(ca: &TestCa) -> LoginStack {
        let idp = Idp::start();
        let app = ApiApp::start(&idp.issuer(), &[API_RESOURCE, SHORT_RESOURCE]);
        let nginx = Nginx::start(NginxConfig {
            sites: vec![Site::tls(APP_HOST, ca.issue(&[APP_HOST]), app.port)],
        })
        .unwrap_or_else(|e| panic!("{e}"));
        LoginStack {
            nginx,
            app,
            idp,
            ca_file: ca.ca_file().display().to_string(),
        }
    }

    /// `https://app.test:PORT` (reach it with `resolve: {app.test: 127.0.0.1}`).
    pub fn app_url(&self) -> String {
        format!("https://{APP_HOST}:{}", self.nginx.port)
    }

    /// The `--var` pairs of `scenarios/login-flow.yaml`.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.idp.vars();
        v.push(("app_host".into(), APP_HOST.into()));
        v.push(("app_addr".into(), format!("127.0.0.1:{}", self.nginx.port)));
        v.push(("ca_file".into(), self.ca_file.clone()));
        v
    }

    /// The environment the example scenario reads its secrets from.
    pub fn env(&self) -> Vec<(String, String)> {
        self.idp.env()
    }
}
