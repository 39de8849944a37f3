//! Serve mode's HTTP endpoints and the state they show: `/metrics` (Prometheus text, OpenMetrics or protobuf by `Accept`, streamed
//! in chunks), `/healthz` (alive), `/readyz` (scenarios loaded and scheduled), and `/status`
//! (each scenario's last outcome and next run; rendered in `serve/status.rs`). The server loop
//! ([`serve_http`]) bounds what clients can hold: a header-read timeout and a cap on open
//! connections.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::outcome::ScenarioOutcome;
use crate::scenario::LoadedScenario;
use crate::serve::metrics::{Format, Metrics};
use crate::serve::schedule::{Shard, Timing};

/// What `/status` knows about one scenario besides its counters.
#[derive(Debug, Clone)]
pub(super) struct ScenarioState {
    pub file: String,
    pub labels: BTreeMap<String, String>,
    pub interval: Duration,
    pub jitter: Duration,
    pub timeout: Duration,
    pub steps: Vec<(String, &'static str)>,
    pub next_run: Option<SystemTime>,
    pub running: bool,
    pub last: Option<Arc<ScenarioOutcome>>,
    /// The last runs, bounded.
    pub history: crate::serve::history::History,
}

/// The result of the last reload.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReloadState {
    #[serde(serialize_with = "ser_time")]
    #[schemars(with = "String")]
    pub at: SystemTime,
    pub success: bool,
    /// Why the new set was rejected (diagnostics, one per entry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Identity of the rejected files (paths and content hashes): reloading the same files
    /// again is not a new rejection.
    #[serde(skip)]
    pub rejected_files: Option<String>,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string())
}

/// State shared by the daemon and its endpoints.
pub struct App {
    pub metrics: Arc<Metrics>,
    ready: AtomicBool,
    pub(super) started: SystemTime,
    pub(super) shard: Option<Shard>,
    scenarios: RwLock<BTreeMap<String, ScenarioState>>,
    last_reload: RwLock<Option<ReloadState>>,
    /// Where finished runs' spans go, when OTLP export is on.
    otlp: std::sync::OnceLock<crate::otlp::Recorder>,
}

impl App {
    pub fn new(metrics: Arc<Metrics>, shard: Option<Shard>) -> App {
        App {
            metrics,
            ready: AtomicBool::new(false),
            started: SystemTime::now(),
            shard,
            scenarios: RwLock::new(BTreeMap::new()),
            last_reload: RwLock::new(None),
            otlp: std::sync::OnceLock::new(),
        }
    }

    /// Sends every finished run's spans to `recorder` from now on (set once).
    pub fn export_to(&self, recorder: crate::otlp::Recorder) {
        let _ = self.otlp.set(recorder);
    }

    /// The OTLP export counts, when export is on.
    pub fn otlp_counts(&self) -> Option<crate::otlp::ExportCounts> {
        self.otlp.get().map(|r| r.counts())
    }

    /// Queues a finished run's spans for export, when export is on; never waits.
    pub fn export(&self, outcome: &ScenarioOutcome) {
        if let Some(r) = self.otlp.get() {
            r.record(outcome);
        }
    }

    /// `/readyz` answers 200 while this is set.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ScenarioState>> {
        self.scenarios.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ScenarioState>> {
        self.scenarios.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the scenario list exactly `set`, keeping the last outcome of those that stay.
    pub fn sync(&self, set: &[LoadedScenario]) {
        let mut map = self.write();
        map.retain(|name, _| set.iter().any(|s| s.name() == name));
        for sc in set {
            let timing = Timing::of(sc);
            let steps = sc
                .steps
                .iter()
                .chain(&sc.finally)
                .map(|s| (s.name.clone(), s.kind.name()))
                .collect();
            let entry = map.entry(sc.name().to_string()).or_insert(ScenarioState {
                file: String::new(),
                labels: BTreeMap::new(),
                interval: timing.interval,
                jitter: timing.jitter,
                timeout: sc.timeout,
                steps: Vec::new(),
                next_run: None,
                running: false,
                last: None,
                history: Default::default(),
            });
            entry.file = sc.file.display().to_string();
            entry.labels = sc.labels.clone();
            entry.interval = timing.interval;
            entry.jitter = timing.jitter;
            entry.timeout = sc.timeout;
            entry.steps = steps;
        }
    }

    pub fn set_next_run(&self, name: &str, at: SystemTime) {
        if let Some(s) = self.write().get_mut(name) {
            s.next_run = Some(at);
        }
    }

    pub fn set_running(&self, name: &str) {
        if let Some(s) = self.write().get_mut(name) {
            s.running = true;
        }
    }

    pub fn finished(&self, outcome: &Arc<ScenarioOutcome>) {
        if let Some(s) = self.write().get_mut(&outcome.scenario) {
            s.running = false;
            s.last = Some(outcome.clone());
            s.history.record(outcome);
        }
    }

    pub fn set_reload(&self, state: ReloadState) {
        *self.last_reload.write().unwrap_or_else(|e| e.into_inner()) = Some(state);
    }

    /// The result of the last reload, if there was one.
    pub fn last_reload(&self) -> Option<ReloadState> {
        self.last_reload
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What one client may hold of the server (`--header-read-timeout`, `--max-connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time to send a request's headers; a connection that sends nothing, half a request, or
    /// stays idle between keep-alive requests this long is closed.
    pub header_read_timeout: Duration,
    /// Open connections at most; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

/// Parses `--header-read-timeout`: a duration of more than 0s.
pub fn parse_header_read_timeout(s: &str) -> Result<Duration, String> {
    match crate::units::parse_duration(s).map_err(|e| e.to_string())? {
        d if d.is_zero() => Err("must be more than 0s".into()),
        d => Ok(d),
    }
}

/// Pause after an accept error (out of file descriptors, mostly) before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Serves the endpoints on `listener` within `limits` until `shutdown` turns true; then stops
/// accepting, lets requests in progress finish, closes idle connections, and returns once every
/// connection is closed.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    limits: ServerLimits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let router = router(app.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            // The client gave up before it was accepted: nothing wrong with the server.
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "connection gone before it was accepted");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            app.metrics.record_connection_refused();
            tracing::debug!(
                max_connections = limits.max_connections,
                "connection refused: too many open connections"
            );
            drop(stream);
            continue;
        };
        let open = OpenConnection::new(app.clone(), slot);
        connections.spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            shutdown.clone(),
            open,
        ));
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection's slot under the cap, counted in the open-connections gauge while
/// it lives.
struct OpenConnection {
    app: Arc<App>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(app: Arc<App>, slot: tokio::sync::OwnedSemaphorePermit) -> OpenConnection {
        app.metrics.connection_opened();
        OpenConnection { app, _slot: slot }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.app.metrics.connection_closed();
    }
}

/// HTTP/1.1 on one connection until the client closes it, the header-read timeout passes, or
/// shutdown (which lets the request in progress finish).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: ServerLimits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    _open: OpenConnection,
) {
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    let stopping = async move {
        // An error means the daemon is gone: stop as well.
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients going away and the header-read timeout end up here: not the server's fault.
        tracing::debug!(error = %e, "HTTP connection closed with an error");
    }
}

/// The router of the endpoints.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(super::status::status))
        .route("/status/app.js", get(crate::serve::status_page::app_js))
        .route("/status/app.css", get(crate::serve::status_page::app_css))
        .route("/", get(index))
        .with_state(app)
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><html><body><h1>flowprobe</h1><ul><li><a href=\"/status\">/status</a></li><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li></ul></body></html>\n",
    )
        .into_response()
}

/// The exposition in the format the `Accept` header asks for (Prometheus text by default),
/// streamed in chunks.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let chunks = Metrics::chunks(app.metrics.clone(), format)
        .map(|c| Ok::<Bytes, Infallible>(Bytes::from(c)));
    (
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_read_timeout_is_a_positive_duration() {
        assert_eq!(
            parse_header_read_timeout("1500ms"),
            Ok(Duration::from_millis(1500))
        );
        assert!(parse_header_read_timeout("0s").is_err());
        assert!(parse_header_read_timeout("soon").is_err());
    }
}
