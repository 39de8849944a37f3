//! The restore-drill side of `get`: the newest object under a prefix, a checksum from a
//! sidecar object (`sha256sum` format), a streamed check that a gzip/zstd object decompresses
//! to the end, and a scratch file kept for later steps of the run (removed by the run's
//! clean-up). Phases `download` and `verify`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use aws_sdk_s3::error::ProvideErrorMetadata;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::client::S3;
use super::errors::{sdk_error, transport_reason};
use super::ops::{age_secs, expected_checksum, list_all, verify};
use super::payload::{parse_checksum, Digester};
use super::{run_id, GetOp};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::decompress::check_to_end;
use crate::steps::http::{error_chain, DEFAULT_MAX_BODY};
use crate::steps::{render_config, StepContext, StepError};

/// Most bytes read of a checksum sidecar.
const MAX_SIDECAR: usize = 4096;

/// True when the get uses any restore-drill option (else the plain get runs).
pub fn wanted(g: &GetOp) -> bool {
    g.newest.is_some()
        || g.checksum_sidecar.is_some()
        || g.decompress == Some(true)
        || g.keep == Some(true)
}

/// Load-time checks of the restore-drill options.
pub fn check(g: &GetOp) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    match (g.key.is_empty(), g.newest.is_some()) {
        (true, false) => errs.push(("get.key".into(), "get needs a `key` or `newest`".into())),
        (false, true) => errs.push(("get".into(), "give `key` or `newest`, not both".into())),
        _ => {}
    }
    if let Some(s) = &g.checksum_sidecar {
        if s.is_empty() {
            errs.push((
                "get.checksum_sidecar".into(),
                "the sidecar suffix is empty: `.sha256`".into(),
            ));
        }
        if g.checksum.is_some() {
            errs.push((
                "get".into(),
                "give `checksum` or `checksum_sidecar`, not both".into(),
            ));
        }
    }
    errs
}

/// Runs a get with restore-drill options.
pub async fn get(
    s3: &S3,
    op: &GetOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let t = Instant::now();
    let sidecar = op.checksum_sidecar.as_deref();
    let key = match &op.newest {
        Some(prefix) => newest_key(s3, &render_config(prefix, ctx.resolver)?, sidecar, obs).await?,
        None => render_config(&op.key, ctx.resolver)?,
    };
    let expected = match sidecar {
        Some(suffix) => Some(read_sidecar(s3, &key, suffix).await?),
        None => expected_checksum(op.checksum.as_deref(), s3, &key, ctx)?,
    };
    let path = scratch_path(&run_id(ctx)?, &key);
    remove_later(ctx, &path);
    let max_body = op.max_body.map(|s| s.0).unwrap_or(DEFAULT_MAX_BODY) as usize;
    let digest = download(s3, &key, &path, max_body, obs).await?;
    obs.add_phase("download", t.elapsed());
    let v = Instant::now();
    let (sha256, size, head, truncated) = digest.finish();
    let checked = check_file(s3, &key, &path, &sha256, size, expected, op).await;
    obs.add_phase("verify", v.elapsed());
    if checked.is_err() || op.keep != Some(true) {
        let _ = tokio::fs::remove_file(&path).await;
    }
    checked?;
    obs.body = head;
    obs.body_truncated = truncated;
    if op.keep == Some(true) {
        obs.outputs
            .insert("file".into(), path.to_string_lossy().into_owned().into());
    }
    obs.outputs.insert("key".into(), key.into());
    obs.outputs.insert("size".into(), size.into());
    obs.outputs.insert("checksum".into(), sha256.into());
    Ok(())
}

/// The checksum comparison, then (if asked) the decompression to the end.
async fn check_file(
    s3: &S3,
    key: &str,
    path: &Path,
    sha256: &str,
    size: u64,
    expected: Option<(String, String)>,
    op: &GetOp,
) -> Result<(), StepError> {
    let at = s3.at(key);
    verify(&format!("GetObject {at}"), sha256, size, expected)?;
    if op.decompress == Some(true) {
        check_to_end(path).await.map_err(|e| {
            StepError::new(
                Reason::Integrity,
                format!("{at}: does not decompress to the end: {e}"),
            )
        })?;
    }
    Ok(())
}

/// The key of the newest object under `prefix`, skipping sidecars; sets `age` and `newest`.
async fn newest_key(
    s3: &S3,
    prefix: &str,
    sidecar: Option<&str>,
    obs: &mut Observation,
) -> Result<String, StepError> {
    let at = format!("s3://{}/{prefix}* at {}", s3.bucket, s3.endpoint);
    // An object without a date counts as the oldest.
    let best = list_all(s3, prefix)
        .await?
        .into_iter()
        .filter(|o| !sidecar.is_some_and(|s| o.key.ends_with(s)))
        .map(|o| (o.key, o.size, if o.dated { o.age } else { f64::MAX }))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    let (key, size, age) =
        best.ok_or_else(|| StepError::new(Reason::Storage, format!("{at}: no object found")))?;
    obs.outputs.insert("age".into(), json!(age));
    obs.outputs.insert(
        "newest".into(),
        json!({"key": key, "size": size, "age": age}),
    );
    Ok(key)
}

/// The SHA-256 in the sidecar object `<key><suffix>` (`<hex>  <name>`); a missing or
/// malformed sidecar is an `integrity` failure.
async fn read_sidecar(s3: &S3, key: &str, suffix: &str) -> Result<(String, String), StepError> {
    let side = format!("{key}{suffix}");
    let at = s3.at(&side);
    let out = match s3
        .client
        .get_object()
        .bucket(&s3.bucket)
        .key(&side)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) if e.code() == Some("NoSuchKey") => {
            return Err(StepError::new(
                Reason::Integrity,
                format!("checksum sidecar {at} is missing"),
            ))
        }
        Err(e) => return Err(sdk_error("GetObject", &at, &e)),
    };
    let mut body = out.body;
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| read_error(&at, &e))?;
        text.extend_from_slice(&chunk);
        if text.len() > MAX_SIDECAR {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    let hex = text
        .split_whitespace()
        .next()
        .and_then(parse_checksum)
        .ok_or_else(|| {
            StepError::new(
                Reason::Integrity,
                format!("checksum sidecar {at} does not start with a SHA-256"),
            )
        })?;
    Ok((hex, format!("the checksum sidecar {at}")))
}

fn read_error(at: &str, e: &dyn std::error::Error) -> StepError {
    let chain = error_chain(e);
    StepError::new(
        transport_reason(&chain),
        format!("GetObject {at}: reading the body: {chain}"),
    )
}

/// Streams the object into `path` (mode 0600), hashing it on the way.
async fn download(
    s3: &S3,
    key: &str,
    path: &Path,
    max_body: usize,
    obs: &mut Observation,
) -> Result<Digester, StepError> {
    let at = s3.at(key);
    let t = Instant::now();
    let out = s3
        .client
        .get_object()
        .bucket(&s3.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error("GetObject", &at, &e))?;
    obs.add_phase("first_byte", t.elapsed());
    if let Some(e) = out.e_tag() {
        obs.outputs
            .insert("etag".into(), e.trim_matches('"').to_string().into());
    }
    if let Some(lm) = out.last_modified() {
        obs.outputs.insert("age".into(), json!(age_secs(lm)));
    }
    let file_error = |e: std::io::Error| {
        StepError::new(
            Reason::Internal,
            format!("scratch file {}: {e}", path.display()),
        )
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(file_error)?;
    let mut digest = Digester::new(max_body);
    let mut body = out.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| read_error(&at, &e))?;
        digest.update(&chunk);
        file.write_all(&chunk).await.map_err(file_error)?;
    }
    file.flush().await.map_err(file_error)?;
    Ok(digest)
}

/// `<tmp>/flowprobe-<run>-<random>-<object name>`: named by run, unique per step.
fn scratch_path(run: &str, key: &str) -> PathBuf {
    let name: String = key
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    std::env::temp_dir().join(format!(
        "flowprobe-{run}-{:08x}-{name}",
        rand::random::<u32>()
    ))
}

/// Registers the removal of the scratch file at the end of the run (also on failure).
fn remove_later(ctx: &StepContext<'_>, path: &Path) {
    let path = path.to_path_buf();
    ctx.cleanups
        .register(format!("remove {}", path.display()), move || async move {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> GetOp {
        crate::scenario::yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn key_or_newest_and_one_checksum_source() {
        assert!(check(&spec(
            "{newest: db/, checksum_sidecar: .sha256, keep: true}"
        ))
        .is_empty());
        let m = format!("{:?}", check(&spec("{keep: true}")));
        assert!(m.contains("`key` or `newest`"), "{m}");
        let m = format!("{:?}", check(&spec("{key: a, newest: db/}")));
        assert!(m.contains("not both"), "{m}");
        let m = format!(
            "{:?}",
            check(&spec("{key: a, checksum: abc, checksum_sidecar: ''}"))
        );
        assert!(m.contains("suffix is empty") && m.contains("checksum_sidecar`, not both"));
    }

    #[test]
    fn scratch_files_are_named_by_run_and_object() {
        let p = scratch_path("r1", "db/2024 dump.sql.gz");
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("flowprobe-r1-"), "{name}");
        assert!(name.ends_with("-2024_dump.sql.gz"), "{name}");
        assert_eq!(p.parent().unwrap(), std::env::temp_dir());
    }
}
