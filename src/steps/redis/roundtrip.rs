//! What a `redis` step does once connected: the round-trip (SET with expiry, GET and
//! byte-exact compare, optionally the same read on every replica, PTTL, DEL) and the
//! free-form commands, deleting afterwards every key they created.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;
use redis::Value;

use super::conn::Con;
use super::spec::{RedisArg, Roundtrip};
use super::{cluster, errors, reply, Session, DEFAULT_TTL_SECS, DEFAULT_VALUE_SIZE};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::{render_config, StepContext, StepError};
use crate::template::Expr;

impl RedisArg {
    fn render(&self, r: &dyn crate::template::Resolve) -> Result<String, StepError> {
        Ok(match self {
            RedisArg::Str(s) => render_config(s, r)?,
            RedisArg::Int(n) => n.to_string(),
            RedisArg::Float(f) => f.to_string(),
            RedisArg::Bool(b) => b.to_string(),
        })
    }
}

/// The round-trip's key, value and expiry (ms), rendered.
fn key_value_ttl(
    rt: &Roundtrip,
    ctx: &StepContext<'_>,
) -> Result<(String, Vec<u8>, u64), StepError> {
    let r = ctx.resolver;
    let key = match &rt.key {
        Some(k) => render_config(k, r)?,
        None => {
            let run_id = r
                .resolve(&Expr::RunId)
                .map_err(|e| StepError::new(Reason::Internal, e.0))?;
            format!("flowprobe:{run_id}:{:08x}", rand::random::<u32>())
        }
    };
    let value: Vec<u8> = match &rt.value {
        Some(v) => render_config(v, r)?.into_bytes(),
        None => {
            let size = rt.size.map(|s| s.0).unwrap_or(DEFAULT_VALUE_SIZE) as usize;
            let mut buf = vec![0u8; size];
            rand::thread_rng().fill_bytes(&mut buf);
            buf
        }
    };
    let ttl_ms = rt
        .ttl
        .map(|t| t.0.as_millis() as u64)
        .unwrap_or(DEFAULT_TTL_SECS * 1000)
        .max(1);
    Ok((key, value, ttl_ms))
}

fn cache(msg: String) -> StepError {
    StepError::new(Reason::Cache, msg)
}

pub(super) async fn roundtrip(
    s: &Session,
    rt: &Roundtrip,
    read_replicas: bool,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let (key, value, ttl_ms) = key_value_ttl(rt, ctx)?;
    // Registered before SET: a run that dies after SET still removes the key.
    let done = Arc::new(AtomicBool::new(false));
    s.delete_later(ctx, key.clone().into_bytes(), done.clone());

    let mut set = redis::cmd("SET");
    set.arg(&key).arg(&value).arg("PX").arg(ttl_ms);
    let reply = s.run(&set, "set", &format!("SET {key}"), obs).await?;
    if !matches!(reply, Value::Okay) {
        return Err(cache(format!(
            "SET {key}: expected OK, got {}",
            reply::to_json(&reply)
        )));
    }
    let reply = s
        .run(
            redis::cmd("GET").arg(&key),
            "get",
            &format!("GET {key}"),
            obs,
        )
        .await?;
    compare(&key, reply, &value)?;
    if read_replicas {
        if let Some(resolver) = s.target.sentinel() {
            let t = Instant::now();
            let read = resolver.check_replicas(&key, &value).await;
            obs.add_phase("replica", t.elapsed());
            obs.outputs.insert("replicas".into(), read?.into());
        }
    }
    let pttl = check_pttl(s, &key, ttl_ms, obs).await?;
    obs.outputs.insert("key".into(), key.clone().into());
    obs.outputs
        .insert("ttl".into(), serde_json::json!(pttl as f64 / 1000.0));
    if let Con::Cluster(c) = &s.connected.con {
        let slot = cluster::key_slot(key.as_bytes());
        let owner = cluster::slot_owner(c, slot, s.display()).await?;
        obs.outputs.insert("node".into(), owner.into());
        obs.outputs.insert("slot".into(), slot.into());
    }

    let reply = s
        .run(
            redis::cmd("DEL").arg(&key),
            "del",
            &format!("DEL {key}"),
            obs,
        )
        .await?;
    if reply != Value::Int(1) {
        return Err(cache(format!(
            "DEL {key}: expected 1 key deleted, got {}",
            reply::to_json(&reply)
        )));
    }
    done.store(true, Ordering::SeqCst);
    Ok(())
}

/// The GET reply against the value SET wrote.
fn compare(key: &str, reply: Value, value: &[u8]) -> Result<(), StepError> {
    match reply {
        Value::BulkString(got) if got == value => Ok(()),
        Value::BulkString(got) => Err(StepError::new(
            Reason::Integrity,
            format!(
                "GET {key}: the value differs from what SET wrote ({} bytes read, {} written{})",
                got.len(),
                value.len(),
                first_difference(&got, value)
                    .map(|i| format!(", first difference at byte {i}"))
                    .unwrap_or_default()
            ),
        )),
        Value::Nil => Err(cache(format!(
            "GET {key}: the key is gone right after SET (evicted or expired)"
        ))),
        other => Err(cache(format!(
            "GET {key}: unexpected reply {}",
            reply::to_json(&other)
        ))),
    }
}

/// PTTL of the key: within 1..=ttl_ms, else a `cache` failure.
async fn check_pttl(
    s: &Session,
    key: &str,
    ttl_ms: u64,
    obs: &mut Observation,
) -> Result<i64, StepError> {
    let reply = s
        .run(
            redis::cmd("PTTL").arg(key),
            "ttl",
            &format!("PTTL {key}"),
            obs,
        )
        .await?;
    let pttl = match reply {
        Value::Int(n) => n,
        other => {
            return Err(cache(format!(
                "PTTL {key}: unexpected reply {}",
                reply::to_json(&other)
            )))
        }
    };
    if pttl <= 0 || pttl as u64 > ttl_ms {
        let why = match pttl {
            -1 => "the key has no expiry".to_string(),
            -2 => "the key is gone".to_string(),
            n => format!("{n}ms left, expected 1..={ttl_ms}ms"),
        };
        return Err(cache(format!("PTTL {key}: {why}")));
    }
    Ok(pttl)
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or_else(|| {
        if a.len() != b.len() {
            Some(a.len().min(b.len()))
        } else {
            None
        }
    })
}

pub(super) async fn commands(
    s: &Session,
    list: &[Vec<RedisArg>],
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let mut replies = Vec::with_capacity(list.len());
    for (i, args) in list.iter().enumerate() {
        let rendered: Vec<String> = args
            .iter()
            .map(|a| a.render(ctx.resolver))
            .collect::<Result<_, _>>()?;
        let Some((name, rest)) = rendered.split_first() else {
            return Err(StepError::new(
                Reason::Config,
                format!("command {i} is empty"),
            ));
        };
        let upper = name.to_ascii_uppercase();
        delete_created_keys_later(s, ctx, &upper, rest).await?;
        let mut cmd = redis::cmd(&upper);
        for a in rest {
            cmd.arg(a);
        }
        let what = format!("command {i} ({upper})");
        let reply = s.run(&cmd, &upper.to_ascii_lowercase(), &what, obs).await?;
        replies.push(reply::to_json(&reply));
    }
    obs.outputs
        .insert("replies".into(), serde_json::Value::Array(replies));
    Ok(())
}

/// Keys this command would create: delete them later, but only if they do not exist yet —
/// a probe must never delete data it did not make.
async fn delete_created_keys_later(
    s: &Session,
    ctx: &StepContext<'_>,
    upper: &str,
    args: &[String],
) -> Result<(), StepError> {
    for key in reply::created_keys(upper, args) {
        match s.connected.con.query(redis::cmd("EXISTS").arg(key)).await {
            Ok(Value::Int(0)) => s.delete_later(
                ctx,
                key.as_bytes().to_vec(),
                Arc::new(AtomicBool::new(false)),
            ),
            Ok(_) => {}
            Err(e) => {
                return Err(errors::step_error(
                    &e,
                    &format!("EXISTS {key}"),
                    s.display(),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_finds_changed_and_truncated_values() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abX", b"abc"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
    }
}
