//! The export task: runs' spans wait in a bounded queue, go out in batches (one POST per
//! batch, with a timeout), and a failure is counted and logged at most once a minute. Nothing
//! here can block or fail a run: a full queue drops the spans and counts them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{OtlpConfig, Protocol};
use super::spans::{request, run_spans};
use crate::outcome::ScenarioOutcome;

/// Runs whose spans may wait for export; more are dropped (and counted).
const QUEUE_RUNS: usize = 2048;
/// Most spans in one request.
const MAX_BATCH_SPANS: usize = 512;
/// How long the first spans of a batch wait for more.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Least time between two logged export failures.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Export counts since start.
#[derive(Debug, Default)]
struct Counters {
    recorded_spans: AtomicU64,
    exported_spans: AtomicU64,
    failed_spans: AtomicU64,
    failed_exports: AtomicU64,
    dropped_spans: AtomicU64,
    warned_drop: AtomicBool,
}

/// A snapshot of the export counts (for `/status` and for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ExportCounts {
    /// Spans of finished runs handed to the exporter.
    pub recorded_spans: u64,
    /// Spans the receiver accepted.
    pub exported_spans: u64,
    /// Export requests that failed (no answer in time, refused, a non-2xx status).
    pub failed_exports: u64,
    /// Spans lost in those failed requests.
    pub failed_spans: u64,
    /// Spans dropped because the export queue was full.
    pub dropped_spans: u64,
}

impl ExportCounts {
    /// Spans recorded and not exported: failed, dropped, or still queued.
    pub fn unexported(&self) -> u64 {
        self.recorded_spans.saturating_sub(self.exported_spans)
    }
}

/// Hands runs to the export task; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Vec<Span>>,
    counters: Arc<Counters>,
}

impl Recorder {
    /// Queues the run's spans; never waits.
    pub fn record(&self, out: &ScenarioOutcome) {
        let spans = run_spans(out);
        let n = spans.len() as u64;
        if n == 0 {
            return;
        }
        self.counters.recorded_spans.fetch_add(n, Ordering::Relaxed);
        if self.tx.try_send(spans).is_err() {
            self.counters.dropped_spans.fetch_add(n, Ordering::Relaxed);
            if !self.counters.warned_drop.swap(true, Ordering::Relaxed) {
                tracing::warn!("OTLP export queue full: spans are dropped (counted in /status)");
            }
        }
    }

    pub fn counts(&self) -> ExportCounts {
        let c = &self.counters;
        ExportCounts {
            recorded_spans: c.recorded_spans.load(Ordering::Relaxed),
            exported_spans: c.exported_spans.load(Ordering::Relaxed),
            failed_exports: c.failed_exports.load(Ordering::Relaxed),
            failed_spans: c.failed_spans.load(Ordering::Relaxed),
            dropped_spans: c.dropped_spans.load(Ordering::Relaxed),
        }
    }
}

/// The export task and its recorder.
pub struct Exporter {
    recorder: Recorder,
    close: CancellationToken,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Starts the export task (call within the tokio runtime).
    pub fn start(config: OtlpConfig) -> Exporter {
        let (tx, rx) = mpsc::channel(QUEUE_RUNS);
        let counters = Arc::new(Counters::default());
        let close = CancellationToken::new();
        tracing::info!(
            endpoint = %super::shown_endpoint(&config.endpoint),
            protocol = ?config.protocol,
            "exporting run spans over OTLP"
        );
        let sender = Sender::new(config, counters.clone());
        let task = tokio::spawn(export_loop(rx, sender, close.clone()));
        Exporter {
            recorder: Recorder { tx, counters },
            close,
            task,
        }
    }

    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Sends what is queued, waiting at most `limit`; then stops the task.
    pub async fn shutdown(self, limit: Duration) -> ExportCounts {
        self.close.cancel();
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
            tracing::warn!(
                limit_s = limit.as_secs_f64(),
                "OTLP export: spans still queued at exit were not sent in time"
            );
        }
        self.recorder.counts()
    }
}

/// Collects batches and sends them until closed; then sends what is left.
async fn export_loop(
    mut rx: mpsc::Receiver<Vec<Span>>,
    mut sender: Sender,
    close: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            m = rx.recv() => m,
            () = close.cancelled() => None,
        };
        let Some(mut batch) = first else { break };
        let until = Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH_SPANS && !close.is_cancelled() {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(spans) => batch.extend(spans),
                    None => break,
                },
                () = tokio::time::sleep_until(until) => break,
                () = close.cancelled() => break,
            }
        }
        sender.send(batch).await;
    }
    // Closing: what is still queued goes out now.
    rx.close();
    let mut batch = Vec::new();
    while let Ok(spans) = rx.try_recv() {
        batch.extend(spans);
        if batch.len() >= MAX_BATCH_SPANS {
            sender.send(std::mem::take(&mut batch)).await;
        }
    }
    if !batch.is_empty() {
        sender.send(batch).await;
    }
}

/// POSTs batches; counts and logs failures.
struct Sender {
    config: OtlpConfig,
    client: Option<reqwest::Client>,
    counters: Arc<Counters>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl Sender {
    fn new(config: OtlpConfig, counters: Arc<Counters>) -> Sender {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(
                |e| tracing::warn!(error = %e, "OTLP export: no HTTP client; spans are not sent"),
            )
            .ok();
        Sender {
            config,
            client,
            counters,
            last_log: None,
            unlogged: 0,
        }
    }

    async fn send(&mut self, spans: Vec<Span>) {
        let n = spans.len() as u64;
        match self.post(spans).await {
            Ok(()) => {
                self.counters.exported_spans.fetch_add(n, Ordering::Relaxed);
            }
            Err(why) => {
                self.counters.failed_exports.fetch_add(1, Ordering::Relaxed);
                self.counters.failed_spans.fetch_add(n, Ordering::Relaxed);
                self.log_failure(&why);
            }
        }
    }

    async fn post(&self, spans: Vec<Span>) -> Result<(), String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let req = request(&self.config.resource, spans);
        let body = match self.config.protocol {
            Protocol::HttpProtobuf => req.encode_to_vec(),
            Protocol::HttpJson => serde_json::to_vec(&req).map_err(|e| e.to_string())?,
        };
        let mut builder = client
            .post(self.config.endpoint.clone())
            .header("content-type", self.config.protocol.content_type());
        for (name, value) in &self.config.headers {
            builder = builder.header(name, value);
        }
        let response = builder.body(body).send().await.map_err(describe)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered HTTP {}", status.as_u16()))
        }
    }

    fn log_failure(&mut self, why: &str) {
        self.unlogged += 1;
        if self.last_log.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            endpoint = %super::shown_endpoint(&self.config.endpoint),
            error = %why,
            failures = self.unlogged,
            "OTLP export failed; runs are not affected (failures are counted in /status)"
        );
        self.last_log = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// A send error and its causes, without the URL (shown apart, without credentials).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
