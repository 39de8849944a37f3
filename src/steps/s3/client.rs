//! Building the S3 client of one step: endpoint (absent = AWS), region, path style,
//! credentials from secrets or the default provider chain, a private CA, no SDK retries (the
//! runner retries, so failures are seen), the HTTP status of the last response, the timed
//! transport of [`super::net`], and the attempt's W3C `traceparent` on every request.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, RuntimeComponents,
};
use aws_sdk_s3::error::BoxError;
use tokio::sync::OnceCell;

use super::S3Spec;
use crate::steps::{read_config_file, render_config, StepContext, StepError};

/// Region used when neither the step nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Remembers the HTTP status of the last response the client received.
#[derive(Debug, Clone, Default)]
pub struct LastStatus(Arc<AtomicU16>);

impl LastStatus {
    pub fn get(&self) -> Option<u16> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Intercept for LastStatus {
    fn name(&self) -> &'static str {
        "flowprobe-last-status"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0
            .store(context.response().status().as_u16(), Ordering::SeqCst);
        Ok(())
    }
}

/// Adds the attempt's `traceparent` header after SigV4 signing: unsigned, so a tracing proxy
/// or mesh sidecar that rewrites it (as they do, with their own span) cannot break the
/// signature; servers check only the headers the signature names.
#[derive(Debug)]
struct TraceParent(String);

impl Intercept for TraceParent {
    fn name(&self) -> &'static str {
        "flowprobe-traceparent"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("traceparent", self.0.clone());
        Ok(())
    }
}

/// A configured client and where it points, for messages.
#[derive(Clone)]
pub struct S3 {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// `http://127.0.0.1:9000` or `AWS (eu-west-1)`.
    pub endpoint: String,
    pub status: LastStatus,
    /// The connections the client opened (phases `dns`, `connect`, `tls`).
    pub net: super::net::NetLog,
}

impl S3 {
    /// `s3://bucket/key at ENDPOINT`.
    pub fn at(&self, key: &str) -> String {
        format!("s3://{}/{key} at {}", self.bucket, self.endpoint)
    }
}

/// The environment's default AWS configuration (env vars, web identity / IRSA, profile,
/// container and instance credentials), loaded once per process and kept in the steps'
/// shared state: its providers cache credentials and refresh them before they expire.
#[derive(Default)]
pub struct DefaultConfig(OnceCell<aws_config::SdkConfig>);

impl DefaultConfig {
    async fn get(&self) -> &aws_config::SdkConfig {
        self.0
            .get_or_init(|| async { aws_config::defaults(BehaviorVersion::latest()).load().await })
            .await
    }
}

/// Builds the client for one attempt.
pub async fn build(spec: &S3Spec, ctx: &StepContext<'_>) -> Result<S3, StepError> {
    let default_config = ctx.shared.get::<DefaultConfig>();
    let r = ctx.resolver;
    let bucket = render_config(spec.bucket.as_deref().unwrap_or_default(), r)?;
    let endpoint = spec
        .endpoint
        .as_deref()
        .map(|e| render_config(e, r))
        .transpose()?;
    let static_creds = static_credentials(spec, ctx)?;

    let mut b = match &static_creds {
        Some(c) => aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(c.clone()),
        None => aws_sdk_s3::config::Builder::from(default_config.get().await),
    };
    let region = match &spec.region {
        Some(reg) => Some(render_config(reg, r)?),
        None if static_creds.is_some() => std::env::var("AWS_REGION").ok(),
        None => default_config.get().await.region().map(|r| r.to_string()),
    }
    .unwrap_or_else(|| DEFAULT_REGION.to_string());
    b = b.region(Region::new(region.clone()));
    if let Some(ep) = &endpoint {
        b = b.endpoint_url(ep);
    }
    // S3-compatible stores (MinIO, Ceph, s3s) usually want path-style; AWS virtual-hosted.
    b = b.force_path_style(spec.path_style.unwrap_or(endpoint.is_some()));
    let ca_pem = match spec.tls.as_ref().and_then(|t| t.ca_file.as_deref()) {
        Some(ca) => {
            let path = render_config(ca, r)?;
            let pem = read_config_file(&path, "CA file")?;
            Some((path, pem))
        }
        None => None,
    };
    let tls = crate::steps::transport::TlsSetting::http1_with_ca(ca_pem).config(ctx.shared)?;
    let net = super::net::NetLog::default();
    b = b.http_client(super::net::TimedHttpClient::new(tls, net.clone()));
    let status = LastStatus::default();
    let b = b
        .interceptor(status.clone())
        .interceptor(TraceParent(ctx.trace.traceparent()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(ctx.timeout)
                .build(),
        )
        // The probe verifies whole objects with SHA-256 itself; CRC trailers (aws-chunked)
        // are not understood by every S3-compatible store.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    Ok(S3 {
        client: aws_sdk_s3::Client::from_conf(b.build()),
        bucket,
        endpoint: endpoint.unwrap_or_else(|| format!("AWS ({region})")),
        status,
        net,
    })
}

/// The scenario's own keys (`access_key_id` + `secret_access_key`, maybe a session token),
/// registered with the redactor; `None` when the environment's credentials are used.
fn static_credentials(
    spec: &S3Spec,
    ctx: &StepContext<'_>,
) -> Result<Option<Credentials>, StepError> {
    let r = ctx.resolver;
    let (Some(id), Some(secret)) = (&spec.access_key_id, &spec.secret_access_key) else {
        return Ok(None);
    };
    let id = render_config(id, r)?;
    let secret = render_config(secret, r)?;
    ctx.redactor.add("s3-secret-access-key", &secret);
    let token = spec
        .session_token
        .as_deref()
        .map(|t| render_config(t, r))
        .transpose()?;
    if let Some(t) = &token {
        ctx.redactor.add("s3-session-token", t);
    }
    Ok(Some(Credentials::new(
        id,
        secret,
        token,
        None,
        "flowprobe-scenario",
    )))
}
