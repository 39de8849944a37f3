//! The `s3` step: one object-storage operation — put (streamed multipart above a threshold),
//! get (verified by SHA-256), head, delete, list (newest object's age and size), presign (a
//! presigned PUT/GET used over HTTP) — plus an optional sweep of old probe objects. Objects a
//! run creates are deleted in the run's clean-up, also after a failure.

mod client;
mod errors;
mod fetch;
mod kind;
mod ledger;
mod net;
mod ops;
mod payload;
mod presign;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::http::TlsSpec;
use super::redis::references_secret;
use super::{StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::units::{Dur, Size};

use payload::parse_checksum;

/// Objects above this size are uploaded in parts (default).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 8 << 20;
/// Size of each part (default); S3 wants at least 5MiB for every part but the last.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// Size of the random payload when `put` gives neither `body` nor `size`.
pub const DEFAULT_PAYLOAD_SIZE: u64 = 64 << 10;
const MIN_PART_SIZE: u64 = 5 << 20;
const MAX_PART_SIZE: u64 = 5 << 30;
const MAX_PARTS: u64 = 10_000;
/// Presigned uploads are sent from memory, as a browser would: keep them modest.
const MAX_PRESIGNED_SIZE: u64 = 64 << 20;

/// An object-storage operation through the S3 API.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {
    /// `https://minio.storage.svc:9000`; absent means AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Signing region (default: the environment's, else us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub bucket: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`); default true with an `endpoint`, false for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Access key id; with `secret_access_key`. Without both, the default provider chain
    /// (environment, web identity / IRSA, instance profile) is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Must come from a secret: `${{ secrets.s3_secret_key }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Temporary credentials' session token; must come from a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// `ca_file` for a private CA; `insecure: true` only for `presign` requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Delete probe objects under a prefix older than an age, before the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put: Option<PutOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub get: Option<GetOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<KeyOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<KeyOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presign: Option<PresignOp>,
}

/// Upload an object: `body` text or a random payload of `size`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOp {
    /// Object key (default `flowprobe/<run.id>/<random>.bin`); output as `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Text uploaded as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Size of a random payload, new each run (default 64KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Upload in parts above this size (default 8MiB); parts are made and hashed on the fly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart_threshold: Option<Size>,
    /// Size of each part (default 8MiB, at least 5MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<Size>,
}

/// Download an object and verify it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetOp {
    /// Object key; or give `newest`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Get the newest object under this prefix instead of `key` (checksum sidecars skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    /// Verify against the sidecar object `<key><suffix>` (`.sha256`, `sha256sum` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sidecar: Option<String>,
    /// Check that a gzip or zstd object (told by its magic bytes) decompresses to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decompress: Option<bool>,
    /// Keep the object in a scratch file for later steps (output `file`), removed at run end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<bool>,
    /// Expected SHA-256 (hex, optionally `sha256:`-prefixed). Without it, an object this run
    /// put is compared with what was put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Most bytes kept for `body`/`jsonpath`/`regex` (default 1MiB); all bytes are hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Size>,
}

/// An operation on one key.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyOp {
    pub key: String,
}

/// List objects under a prefix: `count`, total `size`, and the `newest` object.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Delete objects under `prefix` last modified more than `older_than` ago.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    pub prefix: String,
    pub older_than: Dur,
}

/// A presigned request sent over plain HTTP, as a browser uploading through an application.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresignOp {
    /// `GET` (default) or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Object key; for PUT default `flowprobe/<run.id>/<random>.bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Lifetime of the URL (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<Dur>,
    /// PUT: text to upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// PUT: size of a random payload (default 64KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// GET: expected SHA-256 (else what this run put, if it put the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Reach the endpoint's host at another address, like the http step:
    /// `{s3.example.com: "10.0.0.5:443"}` (through the ingress).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub resolve: IndexMap<String, String>,
}

fn is_template(s: &str) -> bool {
    s.contains("${{")
}

impl S3Spec {
    /// The operations written, by name.
    fn operations(&self) -> Vec<&'static str> {
        [
            ("put", self.put.is_some()),
            ("get", self.get.is_some()),
            ("head", self.head.is_some()),
            ("delete", self.delete.is_some()),
            ("list", self.list.is_some()),
            ("presign", self.presign.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| n)
        .collect()
    }

    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs = self.check_access();
        errs.extend(self.check_tls());
        errs.extend(self.check_operation());
        if let Some(sw) = &self.sweep {
            errs.extend(check_sweep(sw));
        }
        if let Some(p) = &self.put {
            errs.extend(check_put(p));
        }
        if let Some(g) = &self.get {
            check_checksum(&mut errs, "get.checksum", g.checksum.as_deref());
            errs.extend(fetch::check(g));
        }
        if let Some(p) = &self.presign {
            errs.extend(check_presign(p));
        }
        errs
    }

    /// The bucket, the endpoint and the credentials.
    fn check_access(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |p: &str, m: &str| errs.push((p.to_string(), m.to_string()));
        if self.bucket.as_deref().is_none_or(str::is_empty) {
            err("", "s3 step needs a `bucket`");
        }
        if let Some(e) = &self.endpoint {
            if !(is_template(e) || e.starts_with("http://") || e.starts_with("https://")) {
                err("endpoint", "endpoint must start with http:// or https://");
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            err(
                "",
                "give both `access_key_id` and `secret_access_key`, or neither (default provider chain)",
            );
        }
        if let Some(s) = &self.secret_access_key {
            if !references_secret(s) {
                err(
                    "secret_access_key",
                    "the secret access key must come from a secret: `${{ secrets.NAME }}`",
                );
            }
        }
        if let Some(s) = &self.session_token {
            if !references_secret(s) {
                err(
                    "session_token",
                    "the session token must come from a secret: `${{ secrets.NAME }}`",
                );
            }
            if self.access_key_id.is_none() {
                err(
                    "session_token",
                    "a session token needs `access_key_id` and `secret_access_key`",
                );
            }
        }
        errs
    }

    /// TLS settings the step can use.
    fn check_tls(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |p: &str, m: &str| errs.push((p.to_string(), m.to_string()));
        if let Some(t) = &self.tls {
            if t.cert_file.is_some() || t.key_file.is_some() {
                err(
                    "tls",
                    "client certificates are not supported by the s3 step",
                );
            }
            if t.insecure == Some(true) && self.presign.is_none() {
                err(
                    "tls.insecure",
                    "`insecure` applies only to `presign` requests; use `ca_file`",
                );
            }
        }
        errs
    }

    /// Exactly one operation, or none beside a sweep.
    fn check_operation(&self) -> Option<(String, String)> {
        let ops = self.operations();
        let message = match ops.len() {
            0 if self.sweep.is_some() => return None,
            0 => "s3 step needs one of: put, get, head, delete, list, presign (or a sweep)".into(),
            1 => return None,
            _ => format!("s3 step takes one operation, got {}", ops.join(", ")),
        };
        Some((String::new(), message))
    }
}

/// A sweep deletes what it finds: a prefix, and only objects older than running probes'.
fn check_sweep(sw: &Sweep) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    if sw.prefix.trim_matches('/').is_empty() {
        errs.push((
            "sweep.prefix".into(),
            "sweep needs a non-empty prefix: it deletes what it finds".into(),
        ));
    }
    if sw.older_than.0.as_secs() < 60 {
        errs.push((
            "sweep.older_than".into(),
            "older_than must be at least 1m, so running probes keep their objects".into(),
        ));
    }
    errs
}

fn check_checksum(errs: &mut Vec<(String, String)>, path: &str, c: Option<&str>) {
    if let Some(c) = c {
        if !is_template(c) && parse_checksum(c).is_none() {
            errs.push((
                path.into(),
                "checksum must be a SHA-256: 64 hex digits, optionally `sha256:`-prefixed".into(),
            ));
        }
    }
}

fn check_put(p: &PutOp) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    if p.body.is_some() && p.size.is_some() {
        errs.push(("put".into(), "give `body` or `size`, not both".into()));
    }
    let part = p.part_size.map(|s| s.0).unwrap_or(DEFAULT_PART_SIZE);
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part) {
        errs.push((
            "put.part_size".into(),
            "part_size must be between 5MiB and 5GiB".into(),
        ));
    }
    if let Some(size) = p.size {
        if part > 0 && size.0.div_ceil(part) > MAX_PARTS {
            errs.push((
                "put.size".into(),
                format!(
                    "{} needs more than {MAX_PARTS} parts: raise part_size",
                    crate::units::format_size(size.0)
                ),
            ));
        }
    }
    errs
}

fn check_presign(p: &PresignOp) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let method = p.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    match method.as_str() {
        "GET" => {
            if p.key.is_none() {
                errs.push(("presign.key".into(), "a presigned GET needs a `key`".into()));
            }
            if p.body.is_some() || p.size.is_some() {
                errs.push((
                    "presign".into(),
                    "`body` and `size` are for a presigned PUT".into(),
                ));
            }
        }
        "PUT" => {
            if p.checksum.is_some() {
                errs.push((
                    "presign.checksum".into(),
                    "`checksum` is for a presigned GET".into(),
                ));
            }
            if p.body.is_some() && p.size.is_some() {
                errs.push(("presign".into(), "give `body` or `size`, not both".into()));
            }
            if p.size.is_some_and(|s| s.0 > MAX_PRESIGNED_SIZE) {
                errs.push((
                    "presign.size".into(),
                    "a presigned upload is sent from memory: at most 64MiB".into(),
                ));
            }
        }
        other => errs.push((
            "presign.method".into(),
            format!("method must be GET or PUT, got `{other}`"),
        )),
    }
    if let Some(e) = p.expires_in {
        if e.0.as_secs() == 0 || e.0.as_secs() > 7 * 86_400 {
            errs.push((
                "presign.expires_in".into(),
                "expires_in must be between 1s and 7d".into(),
            ));
        }
    }
    check_checksum(&mut errs, "presign.checksum", p.checksum.as_deref());
    for (host, addr) in &p.resolve {
        if !is_template(addr) && presign::parse_addr(addr).is_none() {
            errs.push((
                format!("presign.resolve.{host}"),
                format!("`{addr}` is not an IP address or IP:port"),
            ));
        }
    }
    errs
}

/// Runs one attempt: the sweep (if any), then the operation.
pub async fn execute(spec: &S3Spec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let s3 = client::build(spec, ctx).await?;
    let mut obs = Observation::default();
    if let Some(sw) = &spec.sweep {
        ops::sweep(&s3, sw, ctx, &mut obs).await?;
    }
    if let Some(op) = &spec.put {
        ops::put(&s3, op, ctx, &mut obs).await?;
    } else if let Some(op) = spec.get.as_ref().filter(|g| fetch::wanted(g)) {
        fetch::get(&s3, op, ctx, &mut obs).await?;
    } else if let Some(op) = &spec.get {
        ops::get(&s3, op, ctx, &mut obs).await?;
    } else if let Some(op) = &spec.head {
        ops::head(&s3, op, ctx, &mut obs).await?;
    } else if let Some(op) = &spec.delete {
        ops::delete(&s3, op, ctx, &mut obs).await?;
    } else if let Some(op) = &spec.list {
        ops::list(&s3, op, ctx, &mut obs).await?;
    } else if let Some(op) = &spec.presign {
        presign::run(&s3, op, spec.tls.as_ref(), ctx, &mut obs).await?;
    }
    s3.net.observe(&mut obs);
    if obs.status.is_none() {
        obs.status = s3.status.get();
    }
    if let Some(s) = obs.status {
        obs.outputs.insert("status".into(), s.into());
    }
    Ok(obs)
}

/// The run's id, for default keys and the ledger.
fn run_id(ctx: &StepContext<'_>) -> Result<String, StepError> {
    ctx.resolver
        .resolve(&crate::template::Expr::RunId)
        .map_err(|e| StepError::new(Reason::Internal, e.0))
}

/// `flowprobe/<run.id>/<random>.bin`.
fn default_key(run: &str) -> String {
    format!("flowprobe/{run}/{:08x}.bin", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(yaml: &str) -> String {
        let s: S3Spec = crate::scenario::yaml::from_str(yaml).unwrap();
        s.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn valid_specs_pass() {
        for y in [
            "{endpoint: 'http://127.0.0.1:9000', bucket: b, access_key_id: ak, secret_access_key: '${{ secrets.sk }}', put: {size: 64MiB}}",
            "{bucket: b, get: {key: k, checksum: '${{ steps.up.checksum }}'}}",
            "{bucket: b, sweep: {prefix: probes/, older_than: 1h}}",
            "{bucket: b, list: {prefix: backups/db/}}",
            "{bucket: b, tls: {insecure: true}, presign: {method: put, size: 1KiB, resolve: {s3.test: '127.0.0.1:8443'}}}",
        ] {
            assert_eq!(messages(y), "", "{y}");
        }
    }

    #[test]
    fn plain_text_secret_keys_are_rejected() {
        let m = messages(
            "{bucket: b, access_key_id: ak, secret_access_key: wJalrXUtnFEMI, head: {key: k}}",
        );
        assert!(
            m.contains("secret_access_key: the secret access key must come from a secret"),
            "{m}"
        );
        assert!(!m.contains("wJalrXUtnFEMI"));
        let m = messages("{bucket: b, secret_access_key: '${{ secrets.sk }}', head: {key: k}}");
        assert!(m.contains("give both"), "{m}");
    }

    #[test]
    fn operations_and_their_options_are_checked() {
        let m = messages("{bucket: b, put: {}, get: {key: k}}");
        assert!(m.contains("one operation, got put, get"), "{m}");
        let m = messages("{bucket: b}");
        assert!(m.contains("needs one of"), "{m}");
        let m = messages("{put: {body: x, size: 1KiB, part_size: 1MiB}}");
        assert!(m.contains("needs a `bucket`"), "{m}");
        assert!(m.contains("`body` or `size`"), "{m}");
        assert!(m.contains("put.part_size"), "{m}");
        let m = messages("{bucket: b, put: {size: 100GiB, part_size: 5MiB}}");
        assert!(m.contains("more than 10000 parts"), "{m}");
        let m = messages("{bucket: b, get: {key: k, checksum: abc}}");
        assert!(
            m.contains("get.checksum: checksum must be a SHA-256"),
            "{m}"
        );
        let m = messages("{bucket: b, sweep: {prefix: /, older_than: 10s}}");
        assert!(
            m.contains("non-empty prefix") && m.contains("at least 1m"),
            "{m}"
        );
        let m = messages("{bucket: b, presign: {method: POST}}");
        assert!(m.contains("GET or PUT"), "{m}");
        let m = messages("{bucket: b, presign: {size: 1KiB, resolve: {h: nope}}}");
        assert!(
            m.contains("presign.key") && m.contains("for a presigned PUT"),
            "{m}"
        );
        assert!(m.contains("presign.resolve.h"), "{m}");
        let m = messages("{bucket: b, tls: {insecure: true}, head: {key: k}}");
        assert!(m.contains("tls.insecure"), "{m}");
    }
}
