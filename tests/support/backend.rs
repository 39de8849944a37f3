//! A small real test application (axum) served on a free 127.0.0.1 port from a background
//! thread with its own runtime, so `#[test]` and `#[tokio::test]` can both use it. It plays the
//! application behind the ingress: a login that hands out a token, an authenticated API, and
//! endpoints that misbehave on purpose (status codes, delays, redirects, flaky answers).
//!
//! Endpoints (every response carries `x-backend: NAME`):
//! - `GET /health` → `ok`
//! - `GET /whoami` → `{"backend", "host", "forwarded_proto"}`: which backend answered, for which Host
//! - `POST /login` (JSON or form `{username, password}`) → `{"token", "id", "user"}`, 401 on a
//!   wrong password
//! - `GET /api/items/{id}` with `Authorization: Bearer TOKEN` → `{"id", "name", "owner",
//!   "backend", "tags"}`, 401 without a token this backend issued
//! - `POST /logout` with `Authorization: Bearer TOKEN` → 204, the token no longer works
//! - `GET /basic` with HTTP basic auth (any user, the backend's password) → `{"user"}`, else 401
//! - `GET /status/{n}` → status n, `{"status": n}`
//! - `GET /delay/{ms}` → waits, then `{"delayed_ms": ms}`
//! - `GET /redirect` → 302 to the relative `/redirected` → `{"redirected": true}`;
//!   `GET /redirect-loop` redirects to itself forever
//! - `ANY /echo` → `{"method", "path", "query", "headers": {..}, "body"}`
//! - `GET /flaky/{key}/{n}` → 503 for the first n requests with that key, then 200 `{"attempt"}`
//! - `GET /set-cookie/{value}` → `Set-Cookie: session=VALUE; Path=/`
//! - `GET /text` → plain text; `GET /bytes/{n}` → n bytes of `x`
//! - `ANY /echo500[/{*rest}]?pad=N&first=WHAT` → 500, `text/plain`: N dots, then one part of
//!   the request as received (`path`: what follows `/echo500/`; `query:NAME`, `form:NAME`: that
//!   parameter's still-encoded value; `header:NAME`; `body`), then the whole request (request
//!   line, headers, body), so a secret sits at a chosen offset of the answer;
//!   `&fmt=json` answers the same as JSON `{"pad", "first", "request"}` instead
//! - `GET /oidc-echo/{pad}/{first}/.well-known/openid-configuration` → a discovery document
//!   for the issuer `http://HOST/oidc-echo/{pad}/{first}` whose token endpoint is
//!   `/echo500?pad={pad}&first={first}` (a token endpoint that echoes its request in a 500)
//!
//! ```ignore
//! let app = backend::Backend::start("app-a");
//! let url = format!("{}/health", app.url());
//! assert_eq!(app.hits("/health"), 0);
//! ```

use std::collections::{HashMap, HashSet};
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The user name the login expects (any name is accepted; this is the usual one).
pub const USER: &str = "alice";
/// Password of a backend started with [`Backend::start`].
pub const DEFAULT_PASSWORD: &str = "correct-horse-battery";

struct AppState {
    name: String,
    password: String,
    /// token → user
    tokens: Mutex<HashMap<String, String>>,
    flaky: Mutex<HashMap<String, u32>>,
    hits: Mutex<HashMap<String, usize>>,
    logins: Mutex<HashSet<String>>,
    /// Headers of every `/echo500` request, in order.
    echoed: Mutex<Vec<HeaderMap>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running backend; stopped (its runtime dropped) when this value is dropped.
pub struct Backend {
    pub name: String,
    pub port: u16,
    pub password: String,
    state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// Starts backend `name` with [`DEFAULT_PASSWORD`].
    pub fn start(name: &str) -> Backend {
        Backend::start_with_password(name, DEFAULT_PASSWORD)
    }

    /// Starts backend `name` whose login and basic auth accept `password`.
    pub fn start_with_password(name: &str, password: &str) -> Backend {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(AppState {
            name: name.to_string(),
            password: password.to_string(),
            tokens: Mutex::default(),
            flaky: Mutex::default(),
            hits: Mutex::default(),
            logins: Mutex::default(),
            echoed: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("backend-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("backend runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("tokio listener from std");
                    let serve = axum::serve(listener, app).into_future();
                    tokio::select! {
                        _ = serve => {}
                        _ = rx => {}
                    }
                });
                // Dropping the runtime here cancels connections still open.
            })
            .expect("spawn the backend thread");
        Backend {
            name: name.to_string(),
            port,
            password: password.to_string(),
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests received so far for exactly this path (e.g. `/health`, `/api/items/7`).
    pub fn hits(&self, path: &str) -> usize {
        let hits = self.state.hits.lock().expect("hits lock");
        hits.get(path).copied().unwrap_or(0)
    }

    /// Tokens issued and not yet revoked by `/logout`.
    pub fn live_tokens(&self) -> usize {
        live_tokens(&self.state)
    }

    /// The most requests this backend was serving at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every token this backend has issued (also those logged out since).
    pub fn issued_tokens(&self) -> Vec<String> {
        let logins = self.state.logins.lock().expect("logins lock");
        logins.iter().cloned().collect()
    }

    /// Values of header `name` in every `/echo500` request so far.
    pub fn echoed_header(&self, name: &str) -> Vec<String> {
        let echoed = self.state.echoed.lock().expect("echoed lock");
        echoed
            .iter()
            .filter_map(|h| h.get(name))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.state.logins.lock().expect("logins lock").len()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/whoami", get(whoami))
        .route("/login", post(login))
        .route("/api/items/{id}", get(item))
        .route("/logout", post(logout))
        .route("/basic", get(basic))
        .route("/status/{n}", get(status))
        .route("/delay/{ms}", get(delay))
        .route("/redirect", get(|| async { redirect("/redirected") }))
        .route(
            "/redirect-loop",
            get(|| async { redirect("/redirect-loop") }),
        )
        .route(
            "/redirected",
            get(|| async { Json(json!({"redirected": true})) }),
        )
        .route("/echo", any(echo))
        .route("/echo500", any(echo500))
        .route("/echo500/{*rest}", any(echo500))
        .route(
            "/oidc-echo/{pad}/{first}/.well-known/openid-configuration",
            get(oidc_echo_discovery),
        )
        .route("/flaky/{key}/{n}", get(flaky))
        .route("/set-cookie/{value}", get(set_cookie))
        .route("/text", get(text))
        .route("/bytes/{n}", get(bytes))
        .layer(middleware::from_fn_with_state(state.clone(), count_and_tag))
        .with_state(state)
}

/// Counts the request by path and tags the response with the backend's name.
async fn count_and_tag(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    {
        let mut hits = s.hits.lock().expect("hits lock");
        *hits.entry(req.uri().path().to_string()).or_default() += 1;
    }
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let mut resp = next.run(req).await;
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    if let Ok(v) = HeaderValue::from_str(&s.name) {
        resp.headers_mut().insert("x-backend", v);
    }
    resp
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn whoami(State(s): State<Arc<AppState>>, h: HeaderMap) -> Json<Value> {
    Json(json!({
        "backend": s.name,
        "host": header_str(&h, "host"),
        "forwarded_proto": header_str(&h, "x-forwarded-proto"),
    }))
}

/// Reads `username` and `password` from a JSON or form body.
fn credentials(h: &HeaderMap, body: &[u8]) -> (String, String) {
    let ct = header_str(h, "content-type");
    let mut user = String::new();
    let mut pass = String::new();
    if ct.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in url::form_urlencoded::parse(body) {
            match k.as_ref() {
                "username" => user = v.into_owned(),
                "password" => pass = v.into_owned(),
                _ => {}
            }
        }
    } else if let Ok(v) = serde_json::from_slice::<Value>(body) {
        user = v["username"].as_str().unwrap_or_default().to_string();
        pass = v["password"].as_str().unwrap_or_default().to_string();
    }
    (user, pass)
}

async fn login(State(s): State<Arc<AppState>>, h: HeaderMap, body: Bytes) -> Response {
    let (user, pass) = credentials(&h, &body);
    if user.is_empty() || pass != s.password {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid credentials"})),
        )
            .into_response();
    }
    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    s.tokens
        .lock()
        .expect("tokens lock")
        .insert(token.clone(), user.clone());
    s.logins.lock().expect("logins lock").insert(token.clone());
    Json(json!({"token": token, "id": 42, "user": user})).into_response()
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": why})),
    )
        .into_response()
}

async fn item(State(s): State<Arc<AppState>>, Path(id): Path<String>, h: HeaderMap) -> Response {
    let Some(token) = header_str(&h, "authorization").strip_prefix("Bearer ") else {
        return unauthorized("missing bearer token");
    };
    let Some(user) = s.tokens.lock().expect("tokens lock").get(token).cloned() else {
        return unauthorized("unknown token");
    };
    let id_value = id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or(Value::String(id.clone()));
    Json(json!({
        "id": id_value,
        "name": format!("item-{id}"),
        "owner": user,
        "backend": s.name,
        "tags": ["red", "blue"],
    }))
    .into_response()
}

async fn logout(State(s): State<Arc<AppState>>, h: HeaderMap) -> Response {
    let token = header_str(&h, "authorization").strip_prefix("Bearer ");
    let removed = token.and_then(|t| s.tokens.lock().expect("tokens lock").remove(t));
    match removed {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => unauthorized("unknown token"),
    }
}

/// Tokens issued and not yet logged out.
fn live_tokens(s: &AppState) -> usize {
    s.tokens.lock().expect("tokens lock").len()
}

async fn basic(State(s): State<Arc<AppState>>, h: HeaderMap) -> Response {
    use base64::Engine;
    let decoded = header_str(&h, "authorization")
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some((user, pass)) if pass == s.password => Json(json!({"user": user})).into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"test\"")],
            Json(json!({"error": "bad credentials"})),
        )
            .into_response(),
    }
}

async fn status(Path(n): Path<u16>) -> Response {
    let code = StatusCode::from_u16(n).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(json!({"status": n}))).into_response()
}

async fn delay(Path(ms): Path<u64>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"delayed_ms": ms}))
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response()
}

async fn echo(method: Method, uri: Uri, h: HeaderMap, body: Bytes) -> Json<Value> {
    let headers: serde_json::Map<String, Value> = h
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn flaky(State(s): State<Arc<AppState>>, Path((key, n)): Path<(String, u32)>) -> Response {
    let seen = {
        let mut f = s.flaky.lock().expect("flaky lock");
        let c = f.entry(key).or_default();
        *c += 1;
        *c
    };
    if seen <= n {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "not yet", "attempt": seen})),
        )
            .into_response()
    } else {
        Json(json!({"attempt": seen})).into_response()
    }
}

async fn set_cookie(Path(value): Path<String>) -> Response {
    let cookie = format!("session={value}; Path=/; HttpOnly");
    ([(header::SET_COOKIE, cookie)], Json(json!({"set": value}))).into_response()
}

async fn text(State(s): State<Arc<AppState>>) -> String {
    format!("hello from {}\nversion=1.4.2\n", s.name)
}

async fn bytes(Path(n): Path<usize>) -> Vec<u8> {
    vec![b'x'; n]
}

/// The still-encoded value of `name` in `a=1&b=2` (query or form body).
fn raw_param<'a>(pairs: &'a str, name: &str) -> &'a str {
    pairs
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or("")
}

/// The part of the request `first` names (see the module documentation).
fn first_part(first: &str, uri: &Uri, h: &HeaderMap, body: &str) -> String {
    let query = uri.query().unwrap_or("");
    match first.split_once(':') {
        Some(("query", name)) => raw_param(query, name).to_string(),
        Some(("form", name)) => raw_param(body, name).to_string(),
        Some(("header", name)) => header_str(h, name).to_string(),
        _ if first == "path" => uri
            .path()
            .strip_prefix("/echo500/")
            .unwrap_or("")
            .to_string(),
        _ if first == "body" => body.to_string(),
        _ => String::new(),
    }
}

async fn echo500(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    s.echoed.lock().expect("echoed lock").push(h.clone());
    let params: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let pad = ".".repeat(params.get("pad").and_then(|p| p.parse().ok()).unwrap_or(0));
    let body = String::from_utf8_lossy(&body).into_owned();
    let first = first_part(
        params.get("first").map_or("", String::as_str),
        &uri,
        &h,
        &body,
    );
    let mut request = format!("{method} {uri} HTTP/1.1\r\n");
    for (k, v) in &h {
        request.push_str(&format!(
            "{k}: {}\r\n",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    request.push_str(&format!("\r\n{body}"));
    if params.get("fmt").map(String::as_str) == Some("json") {
        let answer = json!({"pad": pad, "first": first, "request": request});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(answer)).into_response();
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{pad}{first}\n{request}"),
    )
        .into_response()
}

async fn oidc_echo_discovery(
    Path((pad, first)): Path<(String, String)>,
    h: HeaderMap,
) -> Json<Value> {
    let base = format!("http://{}", header_str(&h, "host"));
    let issuer = format!("{base}/oidc-echo/{pad}/{first}");
    let first: String = url::form_urlencoded::byte_serialize(first.as_bytes()).collect();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{base}/echo500?pad={pad}&first={first}"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "grant_types_supported": ["client_credentials", "password"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}
