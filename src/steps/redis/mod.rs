//! The `redis` step: a SET/GET/TTL/DEL round-trip with a random value and byte-exact compare,
//! and free-form commands whose replies assertions read as `reply N`. Keys the step creates are
//! deleted in the run's clean-up, also after a failure.

mod conn;
mod errors;
mod kind;
mod reply;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::http::TlsSpec;
use super::{render_config, StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::template::{Expr, Template};
use crate::units::{Dur, Size};

pub use errors::classify;

/// Default size of the random round-trip value.
pub const DEFAULT_VALUE_SIZE: u64 = 32;
/// Default expiry of the round-trip key.
pub const DEFAULT_TTL_SECS: u64 = 60;
/// Largest round-trip value.
const MAX_VALUE_SIZE: u64 = 64 << 20;

/// A Redis check: connect (redis:// or rediss://, ACL user, password from a secret, db), then
/// a round-trip, commands, or both (round-trip first).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://host:6379/0` or `rediss://host:6380` (TLS). A password in the URL must be a
    /// secret template; prefer `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// ACL user name (Redis 6+); without it the `default` user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password: must come from a secret, e.g. `${{ secrets.redis_password }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Database index (overrides the URL's `/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<i64>,
    /// TLS settings for `rediss://`: CA file, client certificate, `insecure: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Limit for TCP + TLS + AUTH (default: the step's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Limit for each command's reply (default: the step's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<Dur>,
    /// SET with expiry, GET and byte-exact compare, TTL check, DEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roundtrip: Option<Roundtrip>,
    /// Commands run in order, e.g. `[[SET, k, v, EX, 60], [GET, k]]`; replies are
    /// `reply 0`, `reply 1`, ... in assertions and `steps.NAME.replies.N` in templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<RedisArg>>,
}

/// The round-trip's key, value and expiry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roundtrip {
    /// Key (default `flowprobe:<run.id>:<random>`, so concurrent runs never collide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Value written and read back (default: random bytes, new each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Size of the random value (default 32B); not with `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// Expiry set with the value and checked with PTTL (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Dur>,
}

/// One argument of a command: a string (may use templates) or a number.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RedisArg {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

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

/// True when `s` takes its value from a secret (`${{ secrets.NAME }}`), so it is never written
/// in plain text in a scenario.
pub(crate) fn references_secret(s: &str) -> bool {
    Template::parse(s)
        .map(|t| t.exprs().any(|(e, _)| matches!(e, Expr::Secret(_))))
        .unwrap_or(false)
}

impl RedisSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |p: &str, m: String| errs.push((p.to_string(), m));
        match self.url.as_deref() {
            None => err(
                "",
                "redis step needs a `url` (redis://host:6379 or rediss://host:6380)".into(),
            ),
            Some(u) if !u.starts_with("${{") => {
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    let hint = if u.starts_with("redis+cluster") || u.contains(",") {
                        " (Redis Cluster is not supported: point the step at one node)"
                    } else {
                        ""
                    };
                    err(
                        "url",
                        format!("url must start with redis:// or rediss://, got `{u}`{hint}"),
                    );
                }
                if let Some(pw) = conn::url_password(u) {
                    if !references_secret(pw) {
                        err(
                            "url",
                            "the URL holds a plain-text password: use `password: ${{ secrets.NAME }}`"
                                .into(),
                        );
                    }
                }
                if u.starts_with("redis://") && self.tls.is_some() {
                    err("tls", "`tls` needs a rediss:// URL".into());
                }
            }
            Some(_) => {}
        }
        if let Some(pw) = &self.password {
            if !references_secret(pw) {
                err(
                    "password",
                    "the password must come from a secret: `password: ${{ secrets.NAME }}`".into(),
                );
            }
        }
        if let Some(db) = self.db {
            if db < 0 {
                err("db", format!("db must be 0 or more, got {db}"));
            }
        }
        if let Some(t) = &self.tls {
            if t.cert_file.is_some() != t.key_file.is_some() {
                err(
                    "tls",
                    "a client certificate needs both `cert_file` and `key_file`".into(),
                );
            }
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                err(name, format!("{name} must be greater than 0"));
            }
        }
        if self.roundtrip.is_none() && self.commands.is_empty() {
            err(
                "",
                "redis step needs `roundtrip`, `commands`, or both".into(),
            );
        }
        if let Some(rt) = &self.roundtrip {
            if rt.value.is_some() && rt.size.is_some() {
                err("roundtrip", "give `value` or `size`, not both".into());
            }
            if let Some(s) = rt.size {
                if s.0 == 0 || s.0 > MAX_VALUE_SIZE {
                    err("roundtrip.size", "size must be between 1B and 64MiB".into());
                }
            }
            if let Some(t) = rt.ttl {
                if t.0.as_millis() == 0 {
                    err("roundtrip.ttl", "ttl must be at least 1ms".into());
                }
            }
        }
        for (i, c) in self.commands.iter().enumerate() {
            match c.first() {
                None => err(&format!("commands[{i}]"), "empty command".into()),
                Some(RedisArg::Str(name)) if !name.trim().is_empty() => {}
                Some(_) => err(
                    &format!("commands[{i}]"),
                    "a command starts with its name, e.g. [GET, key]".into(),
                ),
            }
        }
        errs
    }
}

/// Unique phase names: `get`, then `get_2`, ... (phase names are metric labels: bounded by the
/// scenario's own commands).
fn phase_name(taken: &[(String, std::time::Duration)], base: &str) -> String {
    if !taken.iter().any(|(n, _)| n == base) {
        return base.to_string();
    }
    (2..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !taken.iter().any(|(t, _)| t == n))
        .unwrap_or_else(|| base.to_string())
}

/// Runs one attempt.
pub async fn execute(spec: &RedisSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let target = conn::Target::from_spec(spec, ctx)?;
    let mut obs = Observation::default();
    let started = Instant::now();
    let con = target.connect().await?;
    obs.add_phase("connect", started.elapsed());
    let session = Session { target, con };
    if let Some(rt) = &spec.roundtrip {
        roundtrip(&session, rt, ctx, &mut obs).await?;
    }
    if !spec.commands.is_empty() {
        commands(&session, &spec.commands, ctx, &mut obs).await?;
    }
    Ok(obs)
}

/// A connected target: the connection plus what is needed to reconnect for a clean-up.
struct Session {
    target: conn::Target,
    con: redis::aio::MultiplexedConnection,
}

impl Session {
    /// Runs one command, timing it as a phase named after the command.
    async fn run(
        &self,
        cmd: &redis::Cmd,
        label: &str,
        what: &str,
        obs: &mut Observation,
    ) -> Result<redis::Value, StepError> {
        let mut con = self.con.clone();
        let t = Instant::now();
        let result = cmd.query_async::<redis::Value>(&mut con).await;
        let name = phase_name(&obs.phases, label);
        obs.add_phase(&name, t.elapsed());
        result.map_err(|e| errors::step_error(&e, what, &self.target.display))
    }

    /// Registers a clean-up that deletes `key` unless `done` is set by then.
    fn delete_later(&self, ctx: &StepContext<'_>, key: Vec<u8>, done: Arc<AtomicBool>) {
        let con = self.con.clone();
        let target = self.target.clone();
        let shown = String::from_utf8_lossy(&key).into_owned();
        ctx.cleanups.register(
            format!("redis DEL {shown} on {}", self.target.display),
            move || async move {
                if done.load(Ordering::SeqCst) {
                    return Ok(());
                }
                conn::delete_key(con, &target, &key).await
            },
        );
    }
}

async fn roundtrip(
    s: &Session,
    rt: &Roundtrip,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(), StepError> {
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

    // Registered before SET: a run that dies after SET still removes the key.
    let done = Arc::new(AtomicBool::new(false));
    s.delete_later(ctx, key.clone().into_bytes(), done.clone());

    let mut set = redis::cmd("SET");
    set.arg(&key).arg(&value).arg("PX").arg(ttl_ms);
    let reply = s.run(&set, "set", &format!("SET {key}"), obs).await?;
    if !matches!(reply, redis::Value::Okay) {
        return Err(StepError::new(
            Reason::Cache,
            format!("SET {key}: expected OK, got {}", reply::to_json(&reply)),
        ));
    }

    let reply = s
        .run(
            redis::cmd("GET").arg(&key),
            "get",
            &format!("GET {key}"),
            obs,
        )
        .await?;
    match reply {
        redis::Value::BulkString(got) if got == value => {}
        redis::Value::BulkString(got) => {
            return Err(StepError::new(
                Reason::Integrity,
                format!(
                "GET {key}: the value differs from what SET wrote ({} bytes read, {} written{})",
                got.len(),
                value.len(),
                first_difference(&got, &value)
                    .map(|i| format!(", first difference at byte {i}"))
                    .unwrap_or_default()
            ),
            ))
        }
        redis::Value::Nil => {
            return Err(StepError::new(
                Reason::Cache,
                format!("GET {key}: the key is gone right after SET (evicted or expired)"),
            ))
        }
        other => {
            return Err(StepError::new(
                Reason::Cache,
                format!("GET {key}: unexpected reply {}", reply::to_json(&other)),
            ))
        }
    }

    let reply = s
        .run(
            redis::cmd("PTTL").arg(&key),
            "ttl",
            &format!("PTTL {key}"),
            obs,
        )
        .await?;
    let pttl = match reply {
        redis::Value::Int(n) => n,
        other => {
            return Err(StepError::new(
                Reason::Cache,
                format!("PTTL {key}: unexpected reply {}", reply::to_json(&other)),
            ))
        }
    };
    if pttl <= 0 || pttl as u64 > ttl_ms {
        let why = match pttl {
            -1 => "the key has no expiry".to_string(),
            -2 => "the key is gone".to_string(),
            n => format!("{n}ms left, expected 1..={ttl_ms}ms"),
        };
        return Err(StepError::new(Reason::Cache, format!("PTTL {key}: {why}")));
    }
    obs.outputs.insert("key".into(), key.clone().into());
    obs.outputs
        .insert("ttl".into(), serde_json::json!(pttl as f64 / 1000.0));

    let reply = s
        .run(
            redis::cmd("DEL").arg(&key),
            "del",
            &format!("DEL {key}"),
            obs,
        )
        .await?;
    if reply != redis::Value::Int(1) {
        return Err(StepError::new(
            Reason::Cache,
            format!(
                "DEL {key}: expected 1 key deleted, got {}",
                reply::to_json(&reply)
            ),
        ));
    }
    done.store(true, Ordering::SeqCst);
    Ok(())
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

async fn commands(
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
        // Keys this command would create: delete them later, but only if they do not exist
        // yet — a probe must never delete data it did not make.
        for key in reply::created_keys(&upper, rest) {
            let mut con = s.con.clone();
            let exists: Result<i64, _> = redis::cmd("EXISTS").arg(key).query_async(&mut con).await;
            match exists {
                Ok(0) => s.delete_later(
                    ctx,
                    key.as_bytes().to_vec(),
                    Arc::new(AtomicBool::new(false)),
                ),
                Ok(_) => {}
                Err(e) => {
                    return Err(errors::step_error(
                        &e,
                        &format!("EXISTS {key}"),
                        &s.target.display,
                    ))
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> RedisSpec {
        crate::scenario::yaml::from_str(yaml).unwrap()
    }

    fn messages(s: &RedisSpec) -> String {
        s.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_valid_spec_has_no_errors() {
        let s = spec(
            "{url: 'rediss://cache:6380/2', username: probe, password: '${{ secrets.pw }}', \
             tls: {ca_file: /ca.pem}, roundtrip: {ttl: 30s}, commands: [[SET, k, v, EX, 60], [GET, k]]}",
        );
        assert_eq!(messages(&s), "");
        assert_eq!(s.commands[0][4], RedisArg::Int(60));
    }

    #[test]
    fn plain_text_passwords_are_rejected() {
        let m = messages(&spec(
            "{url: 'redis://h:6379', password: hunter2, roundtrip: {}}",
        ));
        assert!(
            m.contains("password: the password must come from a secret"),
            "{m}"
        );
        let m = messages(&spec(
            "{url: 'redis://default:hunter2@h:6379', roundtrip: {}}",
        ));
        assert!(
            m.contains("url: the URL holds a plain-text password"),
            "{m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
        let ok = spec("{url: 'redis://default:${{ secrets.pw }}@h:6379', roundtrip: {}}");
        assert_eq!(messages(&ok), "");
        let env_only = spec("{url: 'redis://h', password: '${{ env.PW }}', roundtrip: {}}");
        assert!(messages(&env_only).contains("must come from a secret"));
    }

    #[test]
    fn structural_mistakes_are_reported() {
        let m = messages(&spec("{url: 'http://h', tls: {ca_file: x}}"));
        assert!(m.contains("redis:// or rediss://"), "{m}");
        assert!(m.contains("needs `roundtrip`, `commands`"), "{m}");
        let m = messages(&spec(
            "{url: 'redis://h', tls: {insecure: true}, commands: [[], [1, 2]]}",
        ));
        assert!(m.contains("tls: `tls` needs a rediss:// URL"), "{m}");
        assert!(m.contains("commands[0]: empty command"), "{m}");
        assert!(
            m.contains("commands[1]: a command starts with its name"),
            "{m}"
        );
        let m = messages(&spec(
            "{url: 'redis://h', db: -1, roundtrip: {value: x, size: 1KiB, ttl: 0s}}",
        ));
        assert!(m.contains("db must be 0 or more"), "{m}");
        assert!(m.contains("`value` or `size`"), "{m}");
        assert!(m.contains("ttl must be at least 1ms"), "{m}");
    }

    #[test]
    fn phase_names_stay_unique() {
        let mut o = Observation::default();
        for _ in 0..3 {
            let n = phase_name(&o.phases, "get");
            o.add_phase(&n, std::time::Duration::ZERO);
        }
        let names: Vec<_> = o.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["get", "get_2", "get_3"]);
    }

    #[test]
    fn first_difference_finds_changed_and_truncated_values() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abX", b"abc"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
    }
}
