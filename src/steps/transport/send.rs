//! Sending one request: the `traceparent`, `user-agent` and `accept` headers, the time to the
//! response head split into the connection's phases and `first_byte`, and the body read up to
//! a cap (`body`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, USER_AGENT};
use hyper::Request;

use super::client::{Body, Transport};
use super::connector::{ConnInfo, Handshake};
use super::error::TransportError;
use super::phases::Timings;
use crate::outcome::{ConnectionUse, Reason};
use crate::trace::SpanContext;

/// Limits of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most body bytes read; the rest is not read.
    pub max_body: usize,
    /// Budget for the whole exchange, when the caller has none of its own around it.
    pub timeout: Option<Duration>,
}

/// An answer, read.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body was longer than the cap.
    pub truncated: bool,
    pub timings: Timings,
    pub connection: ConnectionUse,
    /// The handshake of the connection, when it is TLS (also for a reused one).
    pub handshake: Option<Arc<Handshake>>,
}

const UA: HeaderValue = HeaderValue::from_static(concat!("flowprobe/", env!("CARGO_PKG_VERSION")));

type Sending<'a> = Pin<Box<dyn Future<Output = Result<Exchange, TransportError>> + Send + 'a>>;

impl Transport {
    /// Sends `req` (absolute URI) and reads the answer. Boxed: callers stay shallow futures.
    pub fn send(&self, mut req: Request<Body>, limits: Limits, trace: &SpanContext) -> Sending<'_> {
        let h = req.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&trace.traceparent()) {
            h.insert("traceparent", v);
        }
        h.entry(USER_AGENT).or_insert(UA);
        h.entry(ACCEPT).or_insert(HeaderValue::from_static("*/*"));
        Box::pin(async move {
            match limits.timeout {
                None => self.exchange(req, limits.max_body).await,
                Some(t) => tokio::time::timeout(t, self.exchange(req, limits.max_body))
                    .await
                    .unwrap_or_else(|_| {
                        Err(TransportError::new(
                            Reason::Timeout,
                            format!("no answer within {}", crate::units::format_duration(t)),
                        ))
                    }),
            }
        })
    }

    async fn exchange(&self, req: Request<Body>, cap: usize) -> Result<Exchange, TransportError> {
        let started = Instant::now();
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| TransportError::from_client(&e))?;
        let head = started.elapsed();
        let info = resp.extensions().get::<ConnInfo>().cloned();
        let (timings, connection) = split(head, info.as_ref(), started);
        let (parts, mut incoming) = resp.into_parts();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(frame) = incoming.frame().await {
            let frame =
                frame.map_err(|e| TransportError::from_client(&e).context("reading the body"))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            let room = cap.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Exchange {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            truncated,
            timings: Timings {
                body: started.elapsed() - head,
                ..timings
            },
            connection,
            handshake: info.and_then(|i| i.handshake),
        })
    }
}

/// The time to the head as the connection's phases (when this request opened it) and
/// `first_byte`, the remainder, so the phases add up to the request's time.
fn split(head: Duration, info: Option<&ConnInfo>, started: Instant) -> (Timings, ConnectionUse) {
    match info {
        Some(i) if i.established_at >= started => {
            let setup = i.dns + i.connect + i.tls.unwrap_or_default();
            let t = Timings {
                dns: Some(i.dns),
                connect: Some(i.connect),
                tls: i.tls,
                first_byte: head.saturating_sub(setup),
                body: Duration::ZERO,
            };
            (t, ConnectionUse::New)
        }
        _ => {
            let t = Timings {
                first_byte: head,
                ..Timings::default()
            };
            (t, ConnectionUse::Reused)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(established_at: Instant, tls: Option<Duration>) -> ConnInfo {
        ConnInfo {
            established_at,
            dns: Duration::from_millis(1),
            connect: Duration::from_millis(2),
            tls,
            handshake: None,
            remote: "127.0.0.1:443".parse().unwrap(),
        }
    }

    #[test]
    fn a_new_connection_splits_the_head_time_and_a_reused_one_does_not() {
        let started = Instant::now();
        let head = Duration::from_millis(10);
        let later = started + Duration::from_millis(6);
        let new = info(later, Some(Duration::from_millis(3)));
        let (t, conn) = split(head, Some(&new), started);
        assert_eq!(conn, ConnectionUse::New);
        assert_eq!(t.first_byte, Duration::from_millis(4));
        assert_eq!(t.total(), head);
        let earlier = started - Duration::from_secs(1);
        let (t, conn) = split(head, Some(&info(earlier, None)), started);
        assert_eq!(conn, ConnectionUse::Reused);
        assert_eq!(
            (t.dns, t.connect, t.tls, t.first_byte),
            (None, None, None, head)
        );
    }
}
