//! The `http` step's execution on the transport: the request rendered from the spec, sent
//! with the run's cookies, redirects followed by hand when asked (phases summed over the
//! hops), and the answer turned into an observation with its phases and TLS facts.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request};
use url::Url;

use super::http::{parse_resolve_addr, render_json, HttpSpec, DEFAULT_MAX_BODY};
use super::transport::{
    cookies, redirect, Body, Exchange, Handshake, Limits, Options, Timings, Transport,
};
use super::{render_config, StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;

/// A request ready to send (again, for a redirect).
struct Prepared {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends the request, follows redirects when asked, and reads the answer.
pub async fn execute(spec: &HttpSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let (url, shown) = request_url(spec, ctx)?;
    let transport = Transport::for_step(
        ctx,
        Options {
            tls: spec.tls.as_ref(),
            version: spec.version,
            pins: pins(spec, &url, ctx)?,
            reuse: spec.reuse_connection == Some(true),
        },
    )?;
    let mut req = prepare(spec, url, ctx)?;
    let limits = Limits {
        max_body: spec.max_body.map(|s| s.0).unwrap_or(DEFAULT_MAX_BODY) as usize,
        timeout: None,
    };
    let follow = spec.follow_redirects.unwrap_or(false);
    let max = spec.max_redirects.unwrap_or(10);
    let (mut timings, mut handshake, mut redirects) = (Timings::default(), None, 0);
    loop {
        let ex = transport
            .send(to_request(&req, ctx)?, limits, &ctx.trace)
            .await
            .map_err(|e| StepError::new(e.reason, format!("{shown}: {}", e.message)))?;
        timings.add(&ex.timings);
        handshake = ex.handshake.clone().or(handshake);
        cookies::store(&*ctx.cookies, &req.url, &ex.headers);
        let location = ex.headers.get(LOCATION).and_then(|v| v.to_str().ok());
        let hop = follow
            .then(|| redirect::next(ex.status, &req.method, &req.url, location))
            .flatten();
        let Some(hop) = hop else {
            return Ok(observe(ex, &req.url, timings, handshake));
        };
        if redirects >= max {
            return Err(StepError::new(
                Reason::HttpStatus,
                format!("{shown}: too many redirects (max_redirects: {max})"),
            ));
        }
        redirects += 1;
        redirect::strip(&mut req.headers, &hop);
        if !hop.keep_body {
            req.body = Bytes::new();
        }
        (req.url, req.method) = (hop.url, hop.method);
    }
}

/// The hyper request for one hop: the run's cookies added for its URL.
fn to_request(p: &Prepared, ctx: &StepContext<'_>) -> Result<Request<Body>, StepError> {
    let mut headers = p.headers.clone();
    cookies::apply(&*ctx.cookies, &p.url, &mut headers);
    let mut req = Request::builder()
        .method(p.method.clone())
        .uri(p.url.as_str())
        .body(Body::new(p.body.clone()))
        .map_err(|e| StepError::new(Reason::Config, format!("invalid request: {e}")))?;
    *req.headers_mut() = headers;
    Ok(req)
}

/// `resolve:` pins, rendered; an address without a port takes the URL's.
fn pins(
    spec: &HttpSpec,
    url: &Url,
    ctx: &StepContext<'_>,
) -> Result<Vec<(String, std::net::SocketAddr)>, StepError> {
    let default_port = url.port_or_known_default().unwrap_or(443);
    let mut out = Vec::with_capacity(spec.resolve.len());
    for (host, addr) in &spec.resolve {
        // The host may be a template too (`${{ vars.ingress_host }}`), like the URL.
        let host = render_config(host, ctx.resolver)?;
        let addr_s = render_config(addr, ctx.resolver)?;
        let sock = parse_resolve_addr(&addr_s, default_port).ok_or_else(|| {
            StepError::new(
                Reason::Config,
                format!("resolve {host}: `{addr_s}` is not an IP address or IP:port"),
            )
        })?;
        out.push((host, sock));
    }
    Ok(out)
}

/// The request URL with its query parameters, and the same URL for messages.
fn request_url(spec: &HttpSpec, ctx: &StepContext<'_>) -> Result<(Url, String), StepError> {
    let r = ctx.resolver;
    let raw_url = spec
        .url
        .as_deref()
        .ok_or_else(|| StepError::new(Reason::Config, "http step has no url"))?;
    let url_s = render_config(raw_url, r)?;
    let mut url = Url::parse(&url_s)
        .map_err(|e| StepError::new(Reason::Config, format!("invalid url `{url_s}`: {e}")))?;
    // The URL for messages: redacted as rendered, before percent-encoding could hide a secret
    // from the redactor (`/p/a b` becomes `/p/a%20b`; query pairs are form-encoded, which the
    // redactor knows).
    let mut shown = ctx.redactor.redact(&url_s);
    if !spec.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &spec.query {
            let (k, v) = (render_config(k, r)?, render_config(v, r)?);
            pairs.append_pair(&k, &v);
            let pair: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair(&k, &v)
                .finish();
            shown.push(if shown.contains('?') { '&' } else { '?' });
            shown.push_str(&ctx.redactor.redact(&pair));
        }
    }
    Ok((url, shown))
}

fn header_value(v: &str) -> Result<HeaderValue, StepError> {
    // The value may hold a secret: never in the message.
    HeaderValue::from_str(v)
        .map_err(|_| StepError::new(Reason::Config, "a header value holds invalid characters"))
}

/// The method, headers, authentication and body, rendered.
fn prepare(spec: &HttpSpec, url: Url, ctx: &StepContext<'_>) -> Result<Prepared, StepError> {
    let r = ctx.resolver;
    let method = spec.method.as_deref().unwrap_or("GET").to_uppercase();
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| StepError::new(Reason::Config, format!("invalid method {method}")))?;
    let mut headers = HeaderMap::new();
    for (k, v) in &spec.headers {
        let k = render_config(k, r)?;
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| StepError::new(Reason::Config, format!("invalid header name `{k}`")))?;
        headers.append(name, header_value(&render_config(v, r)?)?);
    }
    if let Some(auth) = &spec.auth {
        let mut value = if let Some(basic) = &auth.basic {
            let user = render_config(&basic.username, r)?;
            let pass = render_config(&basic.password, r)?;
            // The header is base64(user:password): no form of the password alone matches it.
            if ctx.redactor.redact(&pass) != pass {
                ctx.redactor.add_basic("basic-auth", &user, &pass);
            }
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            header_value(&format!("Basic {token}"))?
        } else {
            let token = auth.bearer.as_deref().unwrap_or_default();
            header_value(&format!("Bearer {}", render_config(token, r)?))?
        };
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let body = body(spec, ctx, &mut headers)?;
    Ok(Prepared {
        url,
        method,
        headers,
        body,
    })
}

/// The rendered body; JSON and form bodies set their content type unless the step did.
fn body(spec: &HttpSpec, ctx: &StepContext<'_>, h: &mut HeaderMap) -> Result<Bytes, StepError> {
    let r = ctx.resolver;
    let Some(body) = &spec.body else {
        return Ok(Bytes::new());
    };
    let (bytes, kind) = if let Some(raw) = &body.raw {
        (render_config(raw, r)?.into_bytes(), None)
    } else if let Some(json) = &body.json {
        let v = render_json(json, r)?;
        let text = serde_json::to_vec(&v)
            .map_err(|e| StepError::new(Reason::Config, format!("json body: {e}")))?;
        (text, Some("application/json"))
    } else if let Some(form) = &body.form {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            s.append_pair(k, &render_config(v, r)?);
        }
        (
            s.finish().into_bytes(),
            Some("application/x-www-form-urlencoded"),
        )
    } else {
        (Vec::new(), None)
    };
    if let Some(kind) = kind {
        h.entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static(kind));
    }
    Ok(Bytes::from(bytes))
}

/// What the last answer tells, with the phases of every hop and the TLS facts.
fn observe(
    ex: Exchange,
    url: &Url,
    timings: Timings,
    handshake: Option<Arc<Handshake>>,
) -> Observation {
    let mut obs = Observation::default();
    obs.status = Some(ex.status);
    obs.headers = ex
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    obs.body = ex.body;
    obs.body_truncated = ex.truncated;
    timings.record(&mut obs);
    obs.connection = Some(ex.connection);
    obs.set_tls(handshake.map(|h| h.facts()));
    obs.outputs.insert("status".into(), ex.status.into());
    obs.outputs.insert("url".into(), url.to_string().into());
    obs
}
