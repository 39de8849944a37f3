//! The `redis` step against one node, a Redis Cluster or the primary Sentinel names: a
//! SET/GET/TTL/DEL round-trip with a random value and byte-exact compare (optionally read back
//! from the replicas), and free-form commands whose replies assertions read as `reply N`. Keys
//! the step creates are deleted in the run's clean-up, also after a failure.

mod cluster;
mod conn;
mod errors;
mod kind;
mod net;
mod nodes;
mod reply;
mod roundtrip;
mod sentinel;
mod spec;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{StepContext, StepError};
use crate::observation::Observation;

pub use errors::classify;
pub(crate) use spec::references_secret;
pub use spec::{ReadFrom, RedisArg, RedisSpec, Roundtrip, SentinelSpec};

/// Default size of the random round-trip value.
pub const DEFAULT_VALUE_SIZE: u64 = 32;
/// Default expiry of the round-trip key.
pub const DEFAULT_TTL_SECS: u64 = 60;

/// Runs one attempt. Clients are built per attempt: a topology learnt in one run (slot map,
/// primary) never outlives it, so runs after a failover or a slot migration see the new one.
pub async fn execute(spec: &RedisSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let target = conn::Target::from_spec(spec, ctx)?;
    let mut obs = Observation::default();
    let started = Instant::now();
    let connected = target.connect().await?;
    let resolve = connected.resolve.unwrap_or_default();
    if connected.resolve.is_some() {
        obs.add_phase("resolve", resolve);
    }
    match &connected.net {
        Some(net) => net.observe(&mut obs),
        // A cluster: the crate opens its connections itself, so one phase for all of it.
        None => obs.add_phase("connect", started.elapsed().saturating_sub(resolve)),
    }
    if let Some(node) = &connected.node {
        obs.outputs.insert("node".into(), node.clone().into());
    }
    let session = Session { target, connected };
    if let Some(rt) = &spec.roundtrip {
        let replicas = spec.read_from == Some(ReadFrom::Replica);
        roundtrip::roundtrip(&session, rt, replicas, ctx, &mut obs).await?;
    }
    if !spec.commands.is_empty() {
        roundtrip::commands(&session, &spec.commands, ctx, &mut obs).await?;
    }
    Ok(obs)
}

/// A connected target: the connection plus what is needed to reconnect for a clean-up.
struct Session {
    target: conn::Target,
    connected: conn::Connected,
}

impl Session {
    fn display(&self) -> &str {
        &self.connected.display
    }

    /// Runs one command, timing it as a phase named after the command.
    async fn run(
        &self,
        cmd: &redis::Cmd,
        label: &str,
        what: &str,
        obs: &mut Observation,
    ) -> Result<redis::Value, StepError> {
        let t = Instant::now();
        let result = self.connected.con.query(cmd).await;
        let name = phase_name(&obs.phases, label);
        obs.add_phase(&name, t.elapsed());
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.error(&e, what).await),
        }
    }

    /// The step error for a failed command (a MOVED the client gave up on is explained).
    async fn error(&self, e: &redis::RedisError, what: &str) -> StepError {
        if e.kind() == redis::ErrorKind::Moved {
            if let Some(err) = cluster::explain_moved(e, what, &self.target).await {
                return err;
            }
        }
        errors::step_error(e, what, self.display())
    }

    /// Registers a clean-up that deletes `key` unless `done` is set by then.
    fn delete_later(&self, ctx: &StepContext<'_>, key: Vec<u8>, done: Arc<AtomicBool>) {
        let con = self.connected.con.clone();
        let target = self.target.clone();
        let shown = String::from_utf8_lossy(&key).into_owned();
        ctx.cleanups.register(
            format!("redis DEL {shown} on {}", self.display()),
            move || async move {
                if done.load(Ordering::SeqCst) {
                    return Ok(());
                }
                conn::delete_key(con, &target, &key).await
            },
        );
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
