//! A small real OTLP/HTTP trace receiver on a free 127.0.0.1 port (axum, on a background
//! thread with its own runtime): `POST /v1/traces` decodes the official
//! `ExportTraceServiceRequest` (protobuf through `opentelemetry-proto`'s prost types, or its
//! JSON form) and keeps every request with its headers; anything it cannot decode is
//! answered 400 and counted.
//!
//! ```ignore
//! let rx = otlp::Receiver::start();
//! // OTEL_EXPORTER_OTLP_ENDPOINT = rx.url()
//! let spans = rx.wait_for_spans(3, Duration::from_secs(10));
//! ```

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One export request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub content_type: String,
    pub headers: HeaderMap,
    pub request: ExportTraceServiceRequest,
}

/// A span with its resource's attributes.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    /// A span attribute, as text (strings as is, numbers and booleans formatted).
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        attr(&self.resource, key)
    }
    /// (status code, status message): 0 unset, 1 ok, 2 error.
    pub fn status(&self) -> (i32, String) {
        let s = self.span.status.clone().unwrap_or_default();
        (s.code, s.message)
    }
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    rejected: Mutex<usize>,
}

/// The receiver; stops when dropped.
pub struct Receiver {
    pub port: u16,
    inbox: Arc<Inbox>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("local address").port();
        let inbox = Arc::new(Inbox::default());
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(inbox.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = rx => {}
                    }
                });
            })
            .expect("spawn the receiver thread");
        Receiver {
            port,
            inbox,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.inbox.received.lock().expect("inbox").clone()
    }

    /// Requests that could not be decoded.
    pub fn rejected(&self) -> usize {
        *self.inbox.rejected.lock().expect("inbox")
    }

    /// Every span received so far, in order of arrival.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for r in self.requests() {
            for rs in r.request.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push(ReceivedSpan {
                            resource: resource.clone(),
                            span,
                        });
                    }
                }
            }
        }
        out
    }

    /// Waits until at least `n` spans arrived; panics after `timeout`.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            if Instant::now() > deadline {
                panic!(
                    "the receiver got {} spans, not {n}, within {timeout:?}",
                    spans.len()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn traces(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let decoded = match content_type.as_str() {
        "application/x-protobuf" => ExportTraceServiceRequest::decode(body).ok(),
        "application/json" => serde_json::from_slice(&body).ok(),
        _ => None,
    };
    let Some(request) = decoded else {
        *inbox.rejected.lock().expect("inbox") += 1;
        return StatusCode::BAD_REQUEST;
    };
    inbox.received.lock().expect("inbox").push(Received {
        content_type,
        headers,
        request,
    });
    StatusCode::OK
}

fn attr(list: &[KeyValue], key: &str) -> Option<String> {
    let v = list
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A port that accepts connections and never answers (a receiver that hangs), until dropped.
pub struct Blackhole {
    pub port: u16,
    _listener: std::net::TcpListener,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        // The kernel completes handshakes into the backlog; nobody ever reads.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        Blackhole {
            port,
            _listener: listener,
        }
    }
}
