//! Sentinel: asks the sentinels (all at once, with their own login and TLS, within the connect
//! and command timeouts; the first answer counts) for the current primary of a master name,
//! connects to it and checks its ROLE; lists the healthy replicas and reads the round-trip's
//! value back from each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::{FromRedisValue, Value};

use super::conn::{self, Con, Connected, Login, Node, Tls};
use super::net::Timings;
use super::{errors, SentinelSpec};
use crate::outcome::Reason;
use crate::steps::{render_config, StepContext, StepError};

use super::RedisSpec;

/// How often a replica is asked again for a value that has not arrived yet.
const REPLICA_POLL: Duration = Duration::from_millis(10);

/// The sentinels to ask and how to reach the data nodes they name.
#[derive(Clone)]
pub(super) struct Resolver {
    pub master: String,
    /// One client per sentinel, with its `host:port`.
    sentinels: Vec<(redis::Client, String)>,
    login: Login,
    db: i64,
    tls: Option<Tls>,
    connect_timeout: Duration,
    command_timeout: Duration,
}

/// A replica as the sentinels list it.
pub(super) struct Replica {
    pub node: Node,
    /// The replica's link to its primary as the sentinels last saw it (`ok`, `err`).
    pub link: String,
}

impl Resolver {
    pub(super) fn from_spec(
        spec: &RedisSpec,
        s: &SentinelSpec,
        connect_timeout: Duration,
        command_timeout: Duration,
        ctx: &StepContext<'_>,
    ) -> Result<Resolver, StepError> {
        let master = render_config(&s.master, ctx.resolver)?;
        let mut sentinel_login = conn::render_login(s.username.as_ref(), s.password.as_ref(), ctx)?;
        let nodes = conn::render_nodes(&s.nodes, s.tls.is_some(), &mut sentinel_login, ctx)?;
        let sentinel_tls = if nodes.iter().any(|n| n.tls) {
            Some(conn::read_tls(s.tls.as_ref(), ctx)?)
        } else {
            None
        };
        let sentinels = nodes
            .iter()
            .map(|n| {
                let info = n.info(&sentinel_login, 0, sentinel_tls.as_ref());
                conn::node_client(info, sentinel_tls.as_ref())
                    .map(|c| (c, n.addr()))
                    .map_err(|e| {
                        StepError::new(Reason::Config, format!("sentinel {}: {e}", n.addr()))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match &spec.tls {
            Some(t) => Some(conn::read_tls(Some(t), ctx)?),
            None => None,
        };
        Ok(Resolver {
            master,
            sentinels,
            login: conn::render_login(spec.username.as_ref(), spec.password.as_ref(), ctx)?,
            db: spec.db.unwrap_or(0),
            tls,
            connect_timeout,
            command_timeout,
        })
    }

    /// Runs `cmd` on every sentinel at once and takes the first answer, so a dead or silent
    /// sentinel costs nothing while another one answers; when none does, every failure is in
    /// the message, in the order the sentinels are listed.
    async fn ask<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        what: &str,
    ) -> Result<(T, &str), StepError> {
        let mut pending: FuturesUnordered<_> = self
            .sentinels
            .iter()
            .enumerate()
            .map(|(i, (client, addr))| async move {
                let shown = format!("sentinel {addr}");
                let con =
                    conn::connect_node(client, self.connect_timeout, self.command_timeout, &shown);
                let result = match con.await {
                    Ok(mut c) => cmd
                        .query_async::<T>(&mut c)
                        .await
                        .map_err(|e| errors::step_error(&e, what, &shown)),
                    Err(e) => Err(e),
                };
                (i, result)
            })
            .collect();
        let mut failures: Vec<Option<StepError>> = self.sentinels.iter().map(|_| None).collect();
        while let Some((i, result)) = pending.next().await {
            match result {
                Ok(v) => return Ok((v, self.sentinels[i].1.as_str())),
                Err(e) => failures[i] = Some(e),
            }
        }
        let failures: Vec<StepError> = failures.into_iter().flatten().collect();
        let reason = failures.last().map(|f| f.reason).unwrap_or(Reason::Config);
        let all: Vec<String> = failures.into_iter().map(|f| f.message).collect();
        Err(StepError::new(
            reason,
            format!("no sentinel answered {what}: {}", all.join("; ")),
        ))
    }

    /// The current primary of the master name.
    pub(super) async fn primary(&self) -> Result<Node, StepError> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(&self.master);
        let what = format!("SENTINEL GET-MASTER-ADDR-BY-NAME {}", self.master);
        let (reply, from): (Option<(String, String)>, _) = self.ask(&cmd, &what).await?;
        let Some((host, port)) = reply else {
            return Err(StepError::new(
                Reason::Config,
                format!(
                    "sentinel {from} does not know a master named `{}`",
                    self.master
                ),
            ));
        };
        let port = port.parse().map_err(|_| {
            StepError::new(
                Reason::Cache,
                format!(
                    "sentinel {from} named an invalid port `{port}` for `{}`",
                    self.master
                ),
            )
        })?;
        Ok(Node {
            host,
            port,
            tls: self.tls.is_some(),
        })
    }

    fn node_display(&self, node: &Node, role: &str) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!(
            "{scheme}://{}/{} ({role} of {})",
            node.addr(),
            self.db,
            self.master
        )
    }

    async fn connect_node(
        &self,
        node: &Node,
        display: &str,
    ) -> Result<(redis::aio::MultiplexedConnection, Option<Timings>), StepError> {
        let info = node.info(&self.login, self.db, self.tls.as_ref());
        let client = conn::node_client(info, self.tls.as_ref())
            .map_err(|e| StepError::new(Reason::Config, format!("{display}: {e}")))?;
        super::net::connect(
            &client,
            self.tls.as_ref(),
            self.connect_timeout,
            self.command_timeout,
            display,
        )
        .await
    }

    /// Connects to the primary the sentinels named and checks that it is one (ROLE; skipped
    /// when the ACL user may not run it — a write to a replica still fails with READONLY).
    pub(super) async fn connect_primary(&self, node: &Node) -> Result<Connected, StepError> {
        let display = self.node_display(node, "primary");
        let (mut con, net) = self.connect_node(node, &display).await?;
        match redis::cmd("ROLE").query_async::<Value>(&mut con).await {
            Ok(Value::Array(parts)) => {
                let role = parts
                    .first()
                    .and_then(|r| String::from_redis_value(r).ok())
                    .unwrap_or_default();
                if role != "master" {
                    return Err(StepError::new(
                        Reason::Cache,
                        format!(
                            "{display}: the node the sentinels name says it is a {role}, not the \
                             primary (a failover in progress?)"
                        ),
                    ));
                }
            }
            Ok(_) => {}
            Err(e) if e.code() == Some("NOPERM") => {}
            Err(e) => return Err(errors::step_error(&e, "ROLE", &display)),
        }
        Ok(Connected {
            con: Con::Node(con),
            node: Some(node.addr()),
            display,
            resolve: None,
            net,
        })
    }

    /// The replicas the sentinels list that are not down or disconnected.
    pub(super) async fn replicas(&self) -> Result<Vec<Replica>, StepError> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("REPLICAS").arg(&self.master);
        let what = format!("SENTINEL REPLICAS {}", self.master);
        let (list, _): (Vec<HashMap<String, String>>, _) = self.ask(&cmd, &what).await?;
        Ok(list
            .into_iter()
            .filter(|r| {
                let flags = r.get("flags").map(String::as_str).unwrap_or("");
                !["s_down", "o_down", "disconnected"]
                    .iter()
                    .any(|f| flags.contains(f))
            })
            .filter_map(|r| {
                Some(Replica {
                    node: Node {
                        host: r.get("ip")?.clone(),
                        port: r.get("port")?.parse().ok()?,
                        tls: self.tls.is_some(),
                    },
                    link: r.get("master-link-status").cloned().unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Reads `key` from every healthy replica until it holds `value` (replication may lag up to
    /// the command timeout); returns the replicas' `host:port`.
    pub(super) async fn check_replicas(
        &self,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<String>, StepError> {
        let replicas = self.replicas().await?;
        if replicas.is_empty() {
            return Err(StepError::new(
                Reason::Cache,
                format!(
                    "the sentinels list no healthy replica of `{}` to read from",
                    self.master
                ),
            ));
        }
        let mut read = Vec::with_capacity(replicas.len());
        for r in &replicas {
            self.read_replica(r, key, value).await?;
            read.push(r.node.addr());
        }
        Ok(read)
    }

    async fn read_replica(&self, r: &Replica, key: &str, value: &[u8]) -> Result<(), StepError> {
        let display = self.node_display(&r.node, "replica");
        let (mut con, _) = self.connect_node(&r.node, &display).await?;
        let started = Instant::now();
        loop {
            let got: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut con)
                .await
                .map_err(|e| errors::step_error(&e, &format!("GET {key}"), &display))?;
            match got {
                Some(v) if v == value => return Ok(()),
                Some(v) => {
                    return Err(StepError::new(
                        Reason::Integrity,
                        format!(
                            "GET {key} on {display}: the replica holds other bytes than the \
                             primary ({} read, {} written)",
                            v.len(),
                            value.len()
                        ),
                    ))
                }
                None if started.elapsed() >= self.command_timeout => {
                    return Err(StepError::new(
                        Reason::Cache,
                        format!(
                            "GET {key} on {display}: the value written to the primary did not \
                             arrive within {} (replication broken or lagging; the sentinels \
                             report master-link-status {})",
                            crate::units::format_duration(self.command_timeout),
                            if r.link.is_empty() {
                                "unknown"
                            } else {
                                &r.link
                            }
                        ),
                    ))
                }
                None => tokio::time::sleep(REPLICA_POLL).await,
            }
        }
    }
}
