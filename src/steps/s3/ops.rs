//! The S3 API operations of the step: put (single or streamed multipart), get (streamed and
//! verified), head, delete, list, and the sweep of old probe objects; plus the clean-ups that
//! delete what a run put.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use serde_json::json;

use super::client::S3;
use super::errors::{sdk_error, transport_reason};
use super::ledger::{Ledger, Put};
use super::payload::{parse_checksum, Digester, Payload};
use super::{default_key, run_id, GetOp, KeyOp, ListOp, PutOp, Sweep};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::http::error_chain;
use crate::steps::{render_config, StepContext, StepError};
use crate::template::Resolve;
use crate::units::Size;

/// Default most bytes of a downloaded object kept for body queries.
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Most pages a list or sweep reads (1000 keys each).
const MAX_PAGES: usize = 1000;

/// Seconds since `t` (0 when `t` is in the future).
pub fn age_secs(t: &DateTime) -> f64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    (now - t.as_secs_f64()).max(0.0)
}

fn strip_quotes(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// The `etag`, `age` and `content_type` outputs from an object's metadata (GetObject and
/// HeadObject answer with the same headers through different types).
fn object_meta(
    obs: &mut Observation,
    etag: Option<&str>,
    last_modified: Option<&DateTime>,
    content_type: Option<&str>,
) {
    if let Some(e) = etag {
        obs.outputs.insert("etag".into(), strip_quotes(e).into());
    }
    if let Some(lm) = last_modified {
        obs.outputs.insert("age".into(), json!(age_secs(lm)));
    }
    if let Some(ct) = content_type {
        obs.outputs.insert("content_type".into(), ct.into());
    }
}

/// Registers a clean-up that deletes `key` (and forgets what the run put there).
fn delete_later(s3: &S3, ctx: &StepContext<'_>, run: &str, key: &str) {
    let (client, bucket, endpoint) = (s3.client.clone(), s3.bucket.clone(), s3.endpoint.clone());
    let (run, key) = (run.to_string(), key.to_string());
    let ledger = ctx.shared.get::<Ledger>();
    ctx.cleanups
        .register(format!("s3 delete {}", s3.at(&key)), move || async move {
            ledger.forget(&run, &endpoint, &bucket, &key);
            match client
                .delete_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("NoSuchKey") => Ok(()),
                Err(e) => Err(error_chain(&e)),
            }
        });
}

/// What a put uploads: the scenario's `body` text, else a random payload of `size` (new each
/// run). Shared by `put` and the presigned PUT.
pub fn payload_of(
    body: Option<&str>,
    size: Option<Size>,
    r: &dyn Resolve,
) -> Result<Payload, StepError> {
    Ok(match body {
        Some(b) => Payload::fixed(Bytes::from(render_config(b, r)?)),
        None => Payload::random(
            size.map(|s| s.0).unwrap_or(super::DEFAULT_PAYLOAD_SIZE),
            rand::random(),
        ),
    })
}

/// Records what this run put at `key`, so a later get of it is verified.
pub fn remember_put(s3: &S3, ctx: &StepContext<'_>, run: &str, key: &str, sha256: &str, size: u64) {
    let put = Put {
        sha256: sha256.to_string(),
        size,
    };
    let ledger = ctx.shared.get::<Ledger>();
    ledger.record(run, &s3.endpoint, &s3.bucket, key, put);
}

/// Uploads an object and records its SHA-256 for later gets of this run.
pub async fn put(
    s3: &S3,
    op: &PutOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let r = ctx.resolver;
    let run = run_id(ctx)?;
    let key = match &op.key {
        Some(k) => render_config(k, r)?,
        None => default_key(&run),
    };
    let content_type = op
        .content_type
        .as_deref()
        .map(|c| render_config(c, r))
        .transpose()?;
    let mut payload = payload_of(op.body.as_deref(), op.size, r)?;
    let threshold = op
        .multipart_threshold
        .map(|s| s.0)
        .unwrap_or(super::DEFAULT_MULTIPART_THRESHOLD);
    let part_size = op
        .part_size
        .map(|s| s.0)
        .unwrap_or(super::DEFAULT_PART_SIZE);
    // Registered first: an upload cut short by a failure or a timeout is still removed.
    delete_later(s3, ctx, &run, &key);
    let size = payload.size();
    let started = Instant::now();
    let (etag, parts) = if size <= threshold {
        let body = payload.next_chunk(size as usize).unwrap_or_default();
        let out = s3
            .client
            .put_object()
            .bucket(&s3.bucket)
            .key(&key)
            .set_content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", &s3.at(&key), &e))?;
        obs.add_phase("upload", started.elapsed());
        (out.e_tag().map(strip_quotes), 1)
    } else {
        multipart(
            s3,
            &key,
            content_type,
            &mut payload,
            part_size as usize,
            ctx,
            obs,
        )
        .await?
    };
    let sha256 = payload.finish();
    remember_put(s3, ctx, &run, &key, &sha256, size);
    obs.outputs.insert("key".into(), key.into());
    obs.outputs.insert("size".into(), size.into());
    obs.outputs.insert("checksum".into(), sha256.into());
    obs.outputs.insert("parts".into(), parts.into());
    if let Some(e) = etag {
        obs.outputs.insert("etag".into(), e.into());
    }
    Ok(())
}

/// A multipart upload whose parts are generated, hashed and sent one at a time.
async fn multipart(
    s3: &S3,
    key: &str,
    content_type: Option<String>,
    payload: &mut Payload,
    part_size: usize,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(Option<String>, u64), StepError> {
    let at = s3.at(key);
    let t = Instant::now();
    let created = s3
        .client
        .create_multipart_upload()
        .bucket(&s3.bucket)
        .key(key)
        .set_content_type(content_type)
        .send()
        .await
        .map_err(|e| sdk_error("CreateMultipartUpload", &at, &e))?;
    obs.add_phase("create", t.elapsed());
    let upload_id = created
        .upload_id()
        .ok_or_else(|| {
            StepError::new(
                Reason::Storage,
                format!("CreateMultipartUpload {at}: no upload id"),
            )
        })?
        .to_string();
    let completed = abort_unless_completed(s3, key, &upload_id, &at, ctx);
    let t = Instant::now();
    let mut parts = Vec::new();
    let mut number = 0;
    while let Some(chunk) = payload.next_chunk(part_size) {
        number += 1;
        let len = chunk.len() as i64;
        let out = s3
            .client
            .upload_part()
            .bucket(&s3.bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .content_length(len)
            .body(ByteStream::from(chunk))
            .send()
            .await
            .map_err(|e| sdk_error(&format!("UploadPart {number}"), &at, &e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    obs.add_phase("parts", t.elapsed());
    let t = Instant::now();
    let count = parts.len() as u64;
    let out = s3
        .client
        .complete_multipart_upload()
        .bucket(&s3.bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| sdk_error("CompleteMultipartUpload", &at, &e))?;
    completed.store(true, Ordering::SeqCst);
    obs.add_phase("complete", t.elapsed());
    Ok((out.e_tag().map(strip_quotes), count))
}

/// Parts of an unfinished upload take space without showing in listings: the clean-up aborts
/// the upload unless the returned flag was set when it completed.
fn abort_unless_completed(
    s3: &S3,
    key: &str,
    upload_id: &str,
    at: &str,
    ctx: &StepContext<'_>,
) -> Arc<AtomicBool> {
    let completed = Arc::new(AtomicBool::new(false));
    let (client, bucket, key, id, done) = (
        s3.client.clone(),
        s3.bucket.clone(),
        key.to_string(),
        upload_id.to_string(),
        completed.clone(),
    );
    ctx.cleanups.register(
        format!("s3 abort multipart upload {at}"),
        move || async move {
            if done.load(Ordering::SeqCst) {
                return Ok(());
            }
            client
                .abort_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| error_chain(&e))
        },
    );
    completed
}

/// The checksum a read is compared with, and where it comes from.
pub fn expected_checksum(
    explicit: Option<&str>,
    s3: &S3,
    key: &str,
    ctx: &StepContext<'_>,
) -> Result<Option<(String, String)>, StepError> {
    if let Some(c) = explicit {
        let text = render_config(c, ctx.resolver)?;
        let hex = parse_checksum(&text).ok_or_else(|| {
            StepError::new(
                Reason::Config,
                format!("expected checksum `{text}` is not a SHA-256 (64 hex digits)"),
            )
        })?;
        return Ok(Some((hex, "the expected checksum".to_string())));
    }
    let run = run_id(ctx)?;
    let ledger = ctx.shared.get::<Ledger>();
    Ok(ledger
        .lookup(&run, &s3.endpoint, &s3.bucket, key)
        .map(|p| (p.sha256, format!("what this run put ({} bytes)", p.size))))
}

/// Fails with `integrity` when the bytes read are not the expected ones.
pub fn verify(
    what: &str,
    sha256: &str,
    size: u64,
    expected: Option<(String, String)>,
) -> Result<(), StepError> {
    match expected {
        Some((want, source)) if want != sha256 => Err(StepError::new(
            Reason::Integrity,
            format!("{what}: the bytes differ from {source}: read {size} bytes with SHA-256 {sha256}, expected {want}"),
        )),
        _ => Ok(()),
    }
}

/// Downloads an object, hashing it as it streams in.
pub async fn get(
    s3: &S3,
    op: &GetOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let key = render_config(&op.key, ctx.resolver)?;
    let at = s3.at(&key);
    let expected = expected_checksum(op.checksum.as_deref(), s3, &key, ctx)?;
    let t = Instant::now();
    let out = s3
        .client
        .get_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| sdk_error("GetObject", &at, &e))?;
    let first_byte = t.elapsed();
    obs.add_phase("first_byte", first_byte);
    object_meta(obs, out.e_tag(), out.last_modified(), out.content_type());
    let mut body = out.body;
    let mut digest = Digester::new(op.max_body.map(|s| s.0).unwrap_or(DEFAULT_MAX_BODY) as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            let chain = error_chain(&e);
            StepError::new(
                transport_reason(&chain),
                format!("GetObject {at}: reading the body: {chain}"),
            )
        })?;
        digest.update(&chunk);
    }
    obs.add_phase("body", t.elapsed().saturating_sub(first_byte));
    let (sha256, size, head, truncated) = digest.finish();
    verify(&format!("GetObject {at}"), &sha256, size, expected)?;
    obs.body = head;
    obs.body_truncated = truncated;
    obs.outputs.insert("key".into(), key.into());
    obs.outputs.insert("size".into(), size.into());
    obs.outputs.insert("checksum".into(), sha256.into());
    Ok(())
}

/// Reads an object's metadata.
pub async fn head(
    s3: &S3,
    op: &KeyOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let key = render_config(&op.key, ctx.resolver)?;
    let t = Instant::now();
    let out = s3
        .client
        .head_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| sdk_error("HeadObject", &s3.at(&key), &e))?;
    obs.add_phase("request", t.elapsed());
    if let Some(n) = out.content_length() {
        obs.outputs.insert("size".into(), n.into());
    }
    object_meta(obs, out.e_tag(), out.last_modified(), out.content_type());
    obs.outputs.insert("key".into(), key.into());
    Ok(())
}

/// Deletes an object.
pub async fn delete(
    s3: &S3,
    op: &KeyOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let key = render_config(&op.key, ctx.resolver)?;
    let t = Instant::now();
    s3.client
        .delete_object()
        .bucket(&s3.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| sdk_error("DeleteObject", &s3.at(&key), &e))?;
    obs.add_phase("request", t.elapsed());
    obs.outputs.insert("key".into(), key.into());
    Ok(())
}

/// One listed object.
pub(super) struct Listed {
    pub key: String,
    pub size: u64,
    /// Seconds since it was last modified; 0 when the store gave no date.
    pub age: f64,
    /// The store gave a modification date.
    pub dated: bool,
}

/// Every object under `prefix`, page by page.
pub(super) async fn list_all(s3: &S3, prefix: &str) -> Result<Vec<Listed>, StepError> {
    let at = format!("s3://{}/{prefix}* at {}", s3.bucket, s3.endpoint);
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = s3
            .client
            .list_objects_v2()
            .bucket(&s3.bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_error("ListObjectsV2", &at, &e))?;
        for o in out.contents() {
            all.push(Listed {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                age: o.last_modified().map(age_secs).unwrap_or(0.0),
                dated: o.last_modified().is_some(),
            });
        }
        match (out.is_truncated(), out.next_continuation_token()) {
            (Some(true), Some(next)) => token = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(all)
}

/// Lists objects under a prefix: `count`, total `size`, the `newest` object.
pub async fn list(
    s3: &S3,
    op: &ListOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let prefix = op
        .prefix
        .as_deref()
        .map(|p| render_config(p, ctx.resolver))
        .transpose()?
        .unwrap_or_default();
    let t = Instant::now();
    let objects = list_all(s3, &prefix).await?;
    obs.add_phase("list", t.elapsed());
    obs.outputs.insert("count".into(), objects.len().into());
    obs.outputs.insert(
        "size".into(),
        objects.iter().map(|o| o.size).sum::<u64>().into(),
    );
    if let Some(n) = objects.iter().min_by(|a, b| a.age.total_cmp(&b.age)) {
        obs.outputs.insert(
            "newest".into(),
            json!({"key": n.key, "size": n.size, "age": n.age}),
        );
    }
    Ok(())
}

/// Deletes objects (and aborts multipart uploads) under the sweep prefix older than its age.
pub async fn sweep(
    s3: &S3,
    sw: &Sweep,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let prefix = render_config(&sw.prefix, ctx.resolver)?;
    let cutoff = sw.older_than.0.as_secs_f64();
    let t = Instant::now();
    let mut swept = 0u64;
    for o in list_all(s3, &prefix).await? {
        if o.age <= cutoff {
            continue;
        }
        s3.client
            .delete_object()
            .bucket(&s3.bucket)
            .key(&o.key)
            .send()
            .await
            .map_err(|e| sdk_error("sweep DeleteObject", &s3.at(&o.key), &e))?;
        swept += 1;
    }
    swept += abort_stale_uploads(s3, &prefix, sw.older_than.0).await?;
    obs.add_phase("sweep", t.elapsed());
    obs.outputs.insert("swept".into(), swept.into());
    if swept > 0 {
        let (bucket, prefix) = (
            ctx.redactor.redact(&s3.bucket),
            ctx.redactor.redact(&prefix),
        );
        tracing::info!(bucket = %bucket, prefix = %prefix, swept, "swept old probe objects");
    }
    Ok(())
}

/// Aborts multipart uploads under `prefix` started more than `older_than` ago (a prober
/// killed mid-upload). Stores that do not list uploads are skipped.
async fn abort_stale_uploads(
    s3: &S3,
    prefix: &str,
    older_than: Duration,
) -> Result<u64, StepError> {
    let out = match s3
        .client
        .list_multipart_uploads()
        .bucket(&s3.bucket)
        .prefix(prefix)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if matches!(e.code(), Some("NotImplemented" | "NotSupported")) => return Ok(0),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 501) => return Ok(0),
        Err(e) => return Err(sdk_error("sweep ListMultipartUploads", &s3.at(prefix), &e)),
    };
    let mut n = 0;
    for u in out.uploads() {
        let old = u
            .initiated()
            .is_some_and(|t| age_secs(t) > older_than.as_secs_f64());
        if let (true, Some(key), Some(id)) = (old, u.key(), u.upload_id()) {
            s3.client
                .abort_multipart_upload()
                .bucket(&s3.bucket)
                .key(key)
                .upload_id(id)
                .send()
                .await
                .map_err(|e| sdk_error("sweep AbortMultipartUpload", &s3.at(key), &e))?;
            n += 1;
        }
    }
    Ok(n)
}
