//! HTTP clients of the `oidc` step on the transport: one for the back channel (discovery, JWKS,
//! token, userinfo) and one browser-like client (its own cookie jar, redirects not followed)
//! for the front channel; both with the step's TLS settings. Every request's network phases
//! are summed into the attempt's [`NetLog`]; transport errors become reasons.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use hyper::{Method, Request};
use openidconnect::{HttpClientError, HttpRequest, HttpResponse};
use url::Url;

use crate::observation::Observation;
use crate::outcome::{ConnectionUse, Reason};
use crate::secrets::Redactor;
use crate::steps::http::TlsSpec;
use crate::steps::transport::{
    cookies, Body, Exchange, Handshake, Limits, Options, Timings, Transport, TransportError,
};
use crate::steps::{StepContext, StepError};
use crate::trace::SpanContext;

/// Most bytes of an IdP answer read (pages, documents, key sets).
const MAX_ANSWER: usize = 8 << 20;

/// The network phases of every request of an attempt, and the last connection's facts.
#[derive(Default)]
pub struct NetLog {
    timings: Timings,
    last: Option<(ConnectionUse, Option<Arc<Handshake>>)>,
}

impl NetLog {
    /// Adds the phases (summed per name), the TLS facts and the connection use.
    pub fn record(&self, obs: &mut Observation) {
        self.timings.record(obs);
        if let Some((conn, handshake)) = &self.last {
            obs.connection = Some(*conn);
            obs.set_tls(handshake.as_ref().map(|h| h.facts()));
        }
    }
}

/// A client of the step: the transport, an optional cookie jar, the attempt's span.
#[derive(Clone)]
pub struct Http {
    transport: Transport,
    jar: Option<Arc<reqwest::cookie::Jar>>,
    trace: SpanContext,
    timeout: Duration,
    log: Arc<Mutex<NetLog>>,
}

impl Http {
    /// A client logging into `log`; `jar` makes it a browser (cookies kept across requests).
    pub fn new(
        tls: Option<&TlsSpec>,
        ctx: &StepContext<'_>,
        jar: Option<Arc<reqwest::cookie::Jar>>,
        log: Arc<Mutex<NetLog>>,
    ) -> Result<Http, StepError> {
        let transport = Transport::for_step(
            ctx,
            Options {
                tls,
                ..Options::default()
            },
        )?;
        Ok(Http {
            transport,
            jar,
            trace: ctx.trace,
            timeout: ctx.timeout,
            log,
        })
    }

    /// A client without TLS settings, jar or budget of a step, for unit tests.
    #[cfg(test)]
    pub fn for_tests() -> Http {
        Http {
            transport: Transport::for_tests(),
            jar: None,
            trace: SpanContext {
                trace_id: crate::trace::TraceId::random(),
                span_id: crate::trace::SpanId::random(),
            },
            timeout: Duration::from_secs(5),
            log: Arc::default(),
        }
    }

    /// Sends one request (redirects are not followed) and reads the answer.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Exchange, TransportError> {
        if let Some(jar) = &self.jar {
            cookies::apply(&**jar, url, &mut headers);
        }
        let mut req = Request::builder()
            .method(method)
            .uri(url.as_str())
            .body(Body::new(body))
            .map_err(|e| TransportError::new(Reason::Config, format!("invalid request: {e}")))?;
        *req.headers_mut() = headers;
        let limits = Limits {
            max_body: MAX_ANSWER,
            timeout: Some(self.timeout),
        };
        let ex = self.transport.send(req, limits, &self.trace).await?;
        if let Some(jar) = &self.jar {
            cookies::store(&**jar, url, &ex.headers);
        }
        if let Ok(mut log) = self.log.lock() {
            log.timings.add(&ex.timings);
            log.last = Some((ex.connection, ex.handshake.clone()));
        }
        Ok(ex)
    }

    /// GETs `url` with `Accept: application/json` (and a bearer token when given).
    pub async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<Exchange, TransportError> {
        let u = Url::parse(url)
            .map_err(|e| TransportError::new(Reason::Config, format!("invalid URL: {e}")))?;
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(token) = bearer {
            let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                TransportError::new(Reason::Config, "the access token is not a header value")
            })?;
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        self.send(Method::GET, &u, h, Bytes::new()).await
    }
}

/// A transport failure of the request to `what` (discovery, token, ...), with its reason.
pub fn transport_error(what: &str, url: &str, e: &TransportError) -> StepError {
    StepError::new(
        e.reason,
        format!("{what}: {}: {}", strip_query(url), e.message),
    )
}

/// A URL without query and fragment: what hop logs and messages show (codes, states and
/// token hints travel in queries).
pub fn strip_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// A back-channel answer.
pub struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GETs a JSON document.
pub async fn fetch_json(http: &Http, url: &str, what: &str) -> Result<Fetched, StepError> {
    let ex = http
        .get_json(url, None)
        .await
        .map_err(|e| transport_error(what, url, &e))?;
    Ok(Fetched {
        status: ex.status,
        body: ex.body,
    })
}

/// The back-channel client as openidconnect's HTTP client, remembering the status of the
/// last answer (oauth2 drops it from its errors, and a 502 is not an `invalid_grant`), with
/// the run's redactor for what its answers show.
#[derive(Clone)]
pub struct Recording {
    pub client: Http,
    pub last_status: Arc<Mutex<Option<u16>>>,
    pub redactor: Redactor,
}

impl Recording {
    pub fn new(client: Http, redactor: Redactor) -> Self {
        Recording {
            client,
            last_status: Arc::default(),
            redactor,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.last_status.lock().ok().and_then(|s| *s)
    }

    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|e| TransportError::new(Reason::Config, format!("invalid URL: {e}")))?;
        let ex = self
            .client
            .send(parts.method, &url, parts.headers, Bytes::from(body))
            .await
            .map_err(|e| {
                TransportError::new(
                    e.reason,
                    format!("{}: {}", strip_query(url.as_str()), e.message),
                )
            })?;
        if let Ok(mut s) = self.last_status.lock() {
            *s = Some(ex.status);
        }
        let mut resp = HttpResponse::new(ex.body);
        *resp.status_mut() = hyper::StatusCode::from_u16(ex.status)
            .map_err(|e| TransportError::new(Reason::HttpStatus, e.to_string()))?;
        *resp.headers_mut() = ex.headers;
        Ok(resp)
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Recording {
    type Error = HttpClientError<TransportError>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            self.exchange(request)
                .await
                .map_err(|e| HttpClientError::Reqwest(Box::new(e)))
        })
    }
}
