//! Serve mode's HTTP endpoints and the state they show: `/metrics` (Prometheus text, streamed
//! in chunks), `/healthz` (alive), `/readyz` (scenarios loaded and scheduled), and `/status`
//! (each scenario's last outcome and next run) as JSON, or as an HTML page for a browser that
//! asks for `text/html`. Everything on the page is escaped; outcome messages are already
//! redacted by the runner. The server loop ([`serve_http`]) bounds what clients can hold: a
//! header-read timeout and a cap on open connections.

use crate::report::escape_markup as esc;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
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
use serde_json::{json, Value};

use crate::outcome::{ScenarioOutcome, StepStatus};
use crate::scenario::LoadedScenario;
use crate::serve::metrics::Metrics;
use crate::serve::schedule::{Shard, Timing};

/// What `/status` knows about one scenario besides its counters.
#[derive(Debug, Clone)]
struct ScenarioState {
    file: String,
    labels: BTreeMap<String, String>,
    interval: Duration,
    jitter: Duration,
    timeout: Duration,
    steps: Vec<(String, &'static str)>,
    next_run: Option<SystemTime>,
    running: bool,
    last: Option<Arc<ScenarioOutcome>>,
    history: crate::serve::history::History,
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
    started: SystemTime,
    shard: Option<Shard>,
    scenarios: RwLock<BTreeMap<String, ScenarioState>>,
    last_reload: RwLock<Option<ReloadState>>,
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ScenarioState>> {
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

    /// The `/status` document with every retained run.
    pub fn status_json(&self) -> Value {
        self.status_doc(crate::serve::history::RETAINED_RUNS)
    }

    /// The `/status` document with at most `history` runs per scenario (see
    /// [`crate::serve::status_schema`]).
    pub fn status_doc(&self, history: usize) -> Value {
        let now = SystemTime::now();
        let scenarios: Vec<Value> = self
            .read()
            .iter()
            .map(|(name, s)| {
                json!({
                    "name": name,
                    "file": s.file,
                    "labels": s.labels,
                    "interval_seconds": s.interval.as_secs_f64(),
                    "jitter_seconds": s.jitter.as_secs_f64(),
                    "timeout_seconds": s.timeout.as_secs_f64(),
                    "steps": s.steps.iter().map(|(n, k)| json!({"name": n, "kind": k})).collect::<Vec<_>>(),
                    "next_run": s.next_run.map(rfc3339),
                    "running": s.running,
                    "runs": self.metrics.counts(name).unwrap_or_default(),
                    "last_run_failure": s.last.as_deref().and_then(run_failure_json),
                    "last_run": s.last.as_deref(),
                    "last_failure": s.history.last_failure().map(|o| &**o),
                    "uptime": s.history.uptime(now),
                    "history": s.history.runs(history),
                })
            })
            .collect();
        let reload = self
            .last_reload
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": self.is_ready(),
            "started_at": rfc3339(self.started),
            "shard": self.shard.map(|s| s.to_string()),
            "labels": self.metrics.const_labels().iter().cloned().collect::<BTreeMap<_, _>>(),
            "generated_at": rfc3339(now),
            "last_reload": reload,
            "scenarios": scenarios,
        })
    }

    /// The `/status` page for people.
    pub fn status_html(&self) -> String {
        let mut h = String::with_capacity(16 * 1024);
        h.push_str(concat!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>flowprobe status</title>",
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}",
            "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}",
            ".passed{color:#080}.failed{color:#b00}.skipped{color:#888}pre{margin:0;white-space:pre-wrap}</style>",
            "</head><body>\n"
        ));
        let _ = write!(
            h,
            "<h1>flowprobe {}</h1>\n<p>{} · started {}{}</p>\n",
            esc(env!("CARGO_PKG_VERSION")),
            if self.is_ready() {
                "ready"
            } else {
                "not ready"
            },
            esc(&rfc3339(self.started)),
            self.shard
                .map(|s| format!(" · shard {}", esc(&s.to_string())))
                .unwrap_or_default()
        );
        if let Some(r) = self
            .last_reload
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = writeln!(
                h,
                "<p>last reload {}: {}</p>",
                esc(&rfc3339(r.at)),
                if r.success {
                    "applied"
                } else {
                    "rejected, the previous scenarios keep running"
                }
            );
            for e in &r.errors {
                let _ = writeln!(h, "<pre class=\"failed\">{}</pre>", esc(e));
            }
        }
        h.push_str("<table><tr><th>scenario</th><th>last run</th><th>reason</th><th>duration</th><th>finished</th><th>next run</th><th>runs ok / failed / skipped</th></tr>\n");
        let map = self.read();
        for (name, s) in map.iter() {
            let (state, reason, duration, finished) = match &s.last {
                None => (
                    "never".to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
                Some(o) => (
                    if o.success { "passed" } else { "failed" }.to_string(),
                    o.reason.map(|r| r.to_string()).unwrap_or_default(),
                    crate::units::format_duration(o.duration),
                    rfc3339(o.started_at + o.duration),
                ),
            };
            let counts = self.metrics.counts(name).unwrap_or_default();
            let _ = writeln!(
                h,
                "<tr><td><a href=\"#{n}\">{n}</a>{running}</td><td class=\"{st}\">{st}</td><td>{r}</td><td>{d}</td><td>{f}</td><td>{next}</td><td>{} / {} / {}</td></tr>",
                counts.success,
                counts.failure,
                counts.skipped,
                n = esc(name),
                running = if s.running { " (running)" } else { "" },
                st = esc(&state),
                r = esc(&reason),
                d = esc(&duration),
                f = esc(&finished),
                next = esc(&s.next_run.map(rfc3339).unwrap_or_default()),
            );
        }
        h.push_str("</table>\n");
        for (name, s) in map.iter() {
            let _ = writeln!(
                h,
                "<h2 id=\"{n}\">{n}</h2>\n<p>{file} · every {i}{j}</p>",
                n = esc(name),
                file = esc(&s.file),
                i = esc(&crate::units::format_duration(s.interval)),
                j = if s.jitter.is_zero() {
                    String::new()
                } else {
                    format!(
                        " (jitter {})",
                        esc(&crate::units::format_duration(s.jitter))
                    )
                }
            );
            let Some(o) = &s.last else {
                h.push_str("<p>not run yet</p>\n");
                continue;
            };
            if let Some(reason) = o.run_level_failure() {
                let _ = writeln!(
                    h,
                    "<p class=\"failed\">the run failed before or between its steps: {}</p>",
                    esc(reason.as_str())
                );
            }
            if let Some(m) = &o.message {
                let _ = writeln!(h, "<pre class=\"failed\">{}</pre>", esc(m));
            }
            h.push_str("<table><tr><th>step</th><th>kind</th><th>result</th><th>reason</th><th>duration</th><th>attempts</th><th>message</th><th>notes</th></tr>\n");
            for st in &o.steps {
                let status = match st.status {
                    StepStatus::Passed => "passed",
                    StepStatus::Failed => "failed",
                    StepStatus::Skipped => "skipped",
                };
                let _ = writeln!(
                    h,
                    "<tr><td>{}{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
                    esc(&st.name),
                    if st.cleanup { " (finally)" } else { "" },
                    esc(st.kind),
                    esc(&st.reason.map(|r| r.to_string()).unwrap_or_default()),
                    esc(&crate::units::format_duration(st.duration)),
                    st.attempts,
                    esc(st.message.as_deref().unwrap_or("")),
                    esc(&st.notes.join("\n")),
                );
            }
            h.push_str("</table>\n");
            for e in &o.cleanup_errors {
                let _ = writeln!(h, "<pre class=\"failed\">clean-up: {}</pre>", esc(e));
            }
        }
        h.push_str("</body></html>\n");
        h
    }
}

/// `{"reason", "message"}` of a run that failed on its own (no step failed), else None.
fn run_failure_json(o: &ScenarioOutcome) -> Option<Value> {
    o.run_level_failure()
        .map(|reason| json!({"reason": reason, "message": o.message}))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
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
        .route("/status", get(status))
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

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let chunks =
        Metrics::chunks(app.metrics.clone()).map(|c| Ok::<Bytes, Infallible>(Bytes::from(c)));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
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

/// True when the client prefers HTML (a browser) to JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().starts_with("text/html"))
}

async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: axum::extract::Query<crate::serve::status_page::StatusQuery>,
) -> Response {
    if wants_html(&headers) {
        crate::serve::status_page::page(&app)
    } else {
        axum::Json(app.status_doc(query.history_limit())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Reason, StepOutcome};

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    fn app_with_last_run(last: ScenarioOutcome) -> App {
        let sc = crate::scenario::load::load_source(
            "t.yaml",
            "name: shop\nsteps:\n  - name: home\n    http: {url: \"http://127.0.0.1:9/\"}\n",
            &crate::scenario::LoadOptions::default(),
        )
        .expect("valid scenario");
        let metrics = Arc::new(Metrics::new(&[], &[]).expect("metrics"));
        metrics.sync(std::slice::from_ref(&sc));
        let app = App::new(metrics, None);
        app.sync(&[sc]);
        app.finished(&Arc::new(last));
        app
    }

    fn outcome(success: bool, step: StepStatus, reason: Option<Reason>) -> ScenarioOutcome {
        let step = StepOutcome {
            reason: None,
            notes: vec!["response body cut at max_body <1 KiB>".into()],
            ..crate::outcome::fixtures::step("home", step)
        };
        ScenarioOutcome {
            success,
            reason,
            message: (!success).then(|| "secret `pw`: cannot read file /run/pw <x>".to_string()),
            ..crate::outcome::fixtures::run("shop", vec![step])
        }
    }

    #[test]
    fn status_shows_a_run_level_failure_and_step_notes() {
        let app = app_with_last_run(outcome(false, StepStatus::Skipped, Some(Reason::Config)));
        let doc = app.status_json();
        let sc = &doc["scenarios"][0];
        assert_eq!(sc["last_run_failure"]["reason"], "config");
        assert_eq!(
            sc["last_run_failure"]["message"],
            "secret `pw`: cannot read file /run/pw <x>"
        );
        assert_eq!(
            sc["last_run"]["steps"][0]["notes"][0],
            "response body cut at max_body <1 KiB>"
        );
        let html = app.status_html();
        assert!(
            html.contains("the run failed before or between its steps: config"),
            "{html}"
        );
        assert!(
            html.contains("cannot read file /run/pw &lt;x&gt;"),
            "{html}"
        );
        assert!(html.contains("<pre>response body cut at max_body &lt;1 KiB&gt;</pre>"));
    }

    #[test]
    fn status_has_no_run_level_failure_when_a_step_failed_or_the_run_passed() {
        let app = app_with_last_run(outcome(false, StepStatus::Failed, Some(Reason::Connect)));
        assert!(app.status_json()["scenarios"][0]["last_run_failure"].is_null());
        assert!(!app.status_html().contains("before or between its steps"));
        let app = app_with_last_run(outcome(true, StepStatus::Passed, None));
        assert!(app.status_json()["scenarios"][0]["last_run_failure"].is_null());
    }

    #[test]
    fn the_header_read_timeout_is_a_positive_duration() {
        assert_eq!(
            parse_header_read_timeout("1500ms"),
            Ok(Duration::from_millis(1500))
        );
        assert!(parse_header_read_timeout("0s").is_err());
        assert!(parse_header_read_timeout("soon").is_err());
    }

    #[test]
    fn negotiates_html_only_when_asked() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, "application/json".parse().expect("header"));
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            "application/xhtml+xml, text/html;q=0.9, */*;q=0.8"
                .parse()
                .expect("header"),
        );
        assert!(wants_html(&h));
    }
}
