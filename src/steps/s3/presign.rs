//! Presigned requests: the SDK signs a PUT or GET URL offline, and reqwest sends it, as a
//! browser does when an application hands it an upload URL — optionally through the ingress
//! (`resolve`, `tls`). The URL's signature is redacted; the clean-up deletes an uploaded object
//! with a presigned DELETE over the same path.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use bytes::Bytes;
use serde_json::json;

use super::client::S3;
use super::errors::{reason_for, sdk_error, xml_code};
use super::ledger::Ledger;
use super::ops::{expected_checksum, payload_of, remember_put, verify};
use super::payload::Digester;
use super::{default_key, run_id, PresignOp};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::secrets::Redactor;
use crate::steps::http::{classify, error_chain, TlsSpec};
use crate::steps::{read_config_file, render_config, StepContext, StepError};

/// Lifetime of a presigned URL when the step gives none.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(300);
/// Most bytes of a downloaded object kept for body queries.
const MAX_BODY: usize = 1 << 20;

/// `10.0.0.5` or `10.0.0.5:8443` (port 0: the URL's).
pub fn parse_addr(addr: &str) -> Option<SocketAddr> {
    addr.parse::<SocketAddr>()
        .ok()
        .or_else(|| addr.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
}

/// The URL without its query (which holds the signature), for messages.
fn shown(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// The attempt's `traceparent` for the presigned requests (not part of their signature).
fn trace_header(ctx: &StepContext<'_>) -> Result<reqwest::header::HeaderMap, StepError> {
    let value = reqwest::header::HeaderValue::from_str(&ctx.trace.traceparent())
        .map_err(|e| StepError::new(Reason::Internal, format!("traceparent: {e}")))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("traceparent", value);
    Ok(headers)
}

fn http_client(
    op: &PresignOp,
    tls: Option<&TlsSpec>,
    ctx: &StepContext<'_>,
) -> Result<reqwest::Client, StepError> {
    let r = ctx.resolver;
    let mut b = crate::steps::trust::with_system_roots(reqwest::Client::builder())
        .use_rustls_tls()
        .connect_timeout(ctx.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flowprobe/", env!("CARGO_PKG_VERSION")))
        .default_headers(trace_header(ctx)?);
    if let Some(t) = tls {
        if let Some(ca) = &t.ca_file {
            let path = render_config(ca, r)?;
            let pem = read_config_file(&path, "CA file")?;
            for c in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                StepError::new(Reason::Config, format!("CA file {path} is not PEM: {e}"))
            })? {
                b = b.add_root_certificate(c);
            }
        }
        if t.insecure == Some(true) {
            b = b.danger_accept_invalid_certs(true);
        }
    }
    for (host, addr) in &op.resolve {
        let a = render_config(addr, r)?;
        let sock = parse_addr(&a).ok_or_else(|| {
            StepError::new(
                Reason::Config,
                format!("resolve {host}: `{a}` is not an IP address or IP:port"),
            )
        })?;
        b = b.resolve(host, sock);
    }
    b.build()
        .map_err(|e| StepError::new(Reason::Config, format!("cannot build HTTP client: {e}")))
}

/// Keeps the URL's signature out of every message and report.
fn redact_signature(req: &PresignedRequest, redactor: &Redactor) {
    if let Ok(url) = url::Url::parse(req.uri()) {
        for (k, v) in url.query_pairs() {
            if k.eq_ignore_ascii_case("X-Amz-Signature")
                || k.eq_ignore_ascii_case("X-Amz-Security-Token")
            {
                redactor.add("presigned-url-signature", &v);
            }
        }
    }
}

/// Sends a presigned request; returns the response or a classified error.
async fn send(
    http: &reqwest::Client,
    req: &PresignedRequest,
    body: Option<Bytes>,
    what: &str,
) -> Result<reqwest::Response, StepError> {
    let method = reqwest::Method::from_bytes(req.method().as_bytes()).map_err(|_| {
        StepError::new(
            Reason::Internal,
            format!("{what}: bad method {}", req.method()),
        )
    })?;
    let mut rb = http.request(method, req.uri());
    for (k, v) in req.headers() {
        rb = rb.header(k, v);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    rb.send().await.map_err(|e| {
        let e = e.without_url();
        StepError::new(classify(&e), format!("{what}: {}", error_chain(&e)))
    })
}

/// Turns a non-2xx answer into an error naming the S3 error code.
async fn check_status(resp: reqwest::Response, what: &str) -> Result<reqwest::Response, StepError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let text = resp.text().await.unwrap_or_default();
    let code = xml_code(&text);
    let mut msg = format!("{what}: HTTP {}", status.as_u16());
    if let Some(c) = &code {
        msg.push_str(&format!(" {c}"));
    }
    Err(StepError::new(
        reason_for(code.as_deref(), Some(status.as_u16())),
        msg,
    ))
}

/// Runs a presigned PUT or GET.
pub async fn run(
    s3: &S3,
    op: &PresignOp,
    tls: Option<&TlsSpec>,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let run = run_id(ctx)?;
    let put = op
        .method
        .as_deref()
        .unwrap_or("GET")
        .eq_ignore_ascii_case("PUT");
    let key = match &op.key {
        Some(k) => render_config(k, ctx.resolver)?,
        None if put => default_key(&run),
        None => {
            return Err(StepError::new(
                Reason::Config,
                "a presigned GET needs a `key`",
            ))
        }
    };
    let at = s3.at(&key);
    let expiry = PresigningConfig::expires_in(op.expires_in.map(|d| d.0).unwrap_or(DEFAULT_EXPIRY))
        .map_err(|e| StepError::new(Reason::Config, format!("presign {at}: {e}")))?;
    let presigned = Presigned {
        s3,
        ctx,
        http: http_client(op, tls, ctx)?,
        expiry,
        started: Instant::now(),
        run,
        key,
        at,
    };
    if put {
        presigned.put(op, obs).await?;
    } else {
        presigned.get(op, obs).await?;
    }
    obs.outputs.insert("key".into(), json!(presigned.key));
    Ok(())
}

/// A presigned request about to be signed and sent.
struct Presigned<'a, 'c> {
    s3: &'a S3,
    ctx: &'a StepContext<'c>,
    http: reqwest::Client,
    expiry: PresigningConfig,
    /// When the step began: the `presign` phase counts from here.
    started: Instant,
    run: String,
    key: String,
    /// The object, for messages.
    at: String,
}

impl Presigned<'_, '_> {
    /// Uploads the payload through a presigned PUT; the clean-up deletes it.
    async fn put(&self, op: &PresignOp, obs: &mut Observation) -> Result<(), StepError> {
        let (s3, ctx, key) = (self.s3, self.ctx, &self.key);
        let content_type = op
            .content_type
            .as_deref()
            .map(|c| render_config(c, ctx.resolver))
            .transpose()?;
        let mut payload = payload_of(op.body.as_deref(), op.size, ctx.resolver)?;
        let size = payload.size();
        let body = payload.next_chunk(size as usize).unwrap_or_default();
        let sha256 = payload.finish();
        let req = s3
            .client
            .put_object()
            .bucket(&s3.bucket)
            .key(key)
            .set_content_type(content_type)
            .presigned(self.expiry.clone())
            .await
            .map_err(|e| sdk_error("presign PutObject", &self.at, &e))?;
        redact_signature(&req, ctx.redactor);
        obs.add_phase("presign", self.started.elapsed());
        let what = format!("presigned PUT {}", shown(req.uri()));
        delete_later(s3, &self.http, self.expiry.clone(), ctx, &self.run, key);
        let t = Instant::now();
        let resp = check_status(send(&self.http, &req, Some(body), &what).await?, &what).await?;
        obs.add_phase("upload", t.elapsed());
        observe_status(&resp, obs);
        remember_put(s3, ctx, &self.run, key, &sha256, size);
        obs.outputs.insert("size".into(), size.into());
        obs.outputs.insert("checksum".into(), sha256.into());
        Ok(())
    }

    /// Downloads the object through a presigned GET and verifies its checksum.
    async fn get(&self, op: &PresignOp, obs: &mut Observation) -> Result<(), StepError> {
        let (s3, key) = (self.s3, &self.key);
        let expected = expected_checksum(op.checksum.as_deref(), s3, key, self.ctx)?;
        let req = s3
            .client
            .get_object()
            .bucket(&s3.bucket)
            .key(key)
            .presigned(self.expiry.clone())
            .await
            .map_err(|e| sdk_error("presign GetObject", &self.at, &e))?;
        redact_signature(&req, self.ctx.redactor);
        obs.add_phase("presign", self.started.elapsed());
        let what = format!("presigned GET {}", shown(req.uri()));
        let t = Instant::now();
        let mut resp = check_status(send(&self.http, &req, None, &what).await?, &what).await?;
        let first_byte = t.elapsed();
        obs.add_phase("first_byte", first_byte);
        observe_status(&resp, obs);
        let mut digest = Digester::new(MAX_BODY);
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => digest.update(&c),
                Ok(None) => break,
                Err(e) => {
                    let e = e.without_url();
                    return Err(StepError::new(
                        classify(&e),
                        format!("{what}: reading the body: {}", error_chain(&e)),
                    ));
                }
            }
        }
        obs.add_phase("body", t.elapsed().saturating_sub(first_byte));
        let (sha256, size, head, truncated) = digest.finish();
        verify(&what, &sha256, size, expected)?;
        obs.body = head;
        obs.body_truncated = truncated;
        obs.outputs.insert("size".into(), size.into());
        obs.outputs.insert("checksum".into(), sha256.into());
        Ok(())
    }
}

/// The status and the `etag` output of a presigned request's answer.
fn observe_status(resp: &reqwest::Response, obs: &mut Observation) {
    obs.status = Some(resp.status().as_u16());
    if let Some(e) = resp.headers().get("etag").and_then(|v| v.to_str().ok()) {
        obs.outputs
            .insert("etag".into(), e.trim_matches('"').into());
    }
}

/// Deletes an object put through a presigned URL with a presigned DELETE over the same path
/// (the S3 endpoint may only be reachable through the ingress).
fn delete_later(
    s3: &S3,
    http: &reqwest::Client,
    expiry: PresigningConfig,
    ctx: &StepContext<'_>,
    run: &str,
    key: &str,
) {
    let (client, http, bucket, endpoint) = (
        s3.client.clone(),
        http.clone(),
        s3.bucket.clone(),
        s3.endpoint.clone(),
    );
    let (run, key) = (run.to_string(), key.to_string());
    let redactor = ctx.redactor.clone();
    let ledger = ctx.shared.get::<Ledger>();
    ctx.cleanups.register(
        format!("s3 delete {} (presigned)", s3.at(&key)),
        move || async move {
            ledger.forget(&run, &endpoint, &bucket, &key);
            let req = client
                .delete_object()
                .bucket(&bucket)
                .key(&key)
                .presigned(expiry)
                .await
                .map_err(|e| error_chain(&e))?;
            redact_signature(&req, &redactor);
            let what = format!("presigned DELETE {}", shown(req.uri()));
            let resp = send(&http, &req, None, &what)
                .await
                .map_err(|e| e.message)?;
            match check_status(resp, &what).await {
                Ok(_) => Ok(()),
                Err(e) if e.message.contains("NoSuchKey") => Ok(()),
                Err(e) => Err(e.message),
            }
        },
    );
}
