//! Connecting to Redis: the spec's URL or node list, ACL user, secret password, db and TLS
//! settings turned into clients (one node, a cluster, or the primary the sentinels name),
//! connected with connect and command timeouts. Every run builds its clients anew, so no
//! topology outlives the run that learnt it.

use std::sync::Once;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

pub(super) use super::nodes::{render_login, render_nodes, Login, Node};
use super::{cluster, errors, sentinel, RedisSpec};
use crate::outcome::Reason;
use crate::steps::http::TlsSpec;
use crate::steps::{read_config_file, render_config, StepContext, StepError};

/// Where and how to connect; cheap to clone into a clean-up action.
#[derive(Clone)]
pub(super) struct Target {
    kind: Kind,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// `redis://host:port/db`, `cluster a:1,b:2` or `sentinel NAME`, without credentials.
    pub display: String,
}

#[derive(Clone)]
enum Kind {
    Node(redis::Client, Option<Tls>),
    Cluster(redis::cluster::ClusterClient),
    Sentinel(sentinel::Resolver),
}

/// A connection to one node or to a cluster (clones share it).
#[derive(Clone)]
pub(super) enum Con {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Con {
    pub(super) async fn query(&self, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
        match self.clone() {
            Con::Node(mut c) => cmd.query_async(&mut c).await,
            Con::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }
}

/// An open connection and what it reached.
#[derive(Clone)]
pub(super) struct Connected {
    pub con: Con,
    /// `host:port` of the node (the primary, with Sentinel); None for a cluster.
    pub node: Option<String>,
    /// Names the node in messages, e.g. `redis://10.0.0.5:6379/0 (primary of mymaster)`.
    pub display: String,
    /// Time spent asking the sentinels, when there are any.
    pub resolve: Option<Duration>,
    /// The node connection's stages; None for a cluster (the crate opens those itself).
    pub net: Option<super::net::Timings>,
}

/// TLS settings, rendered and read (`None` where TLS is off).
#[derive(Clone)]
pub(super) struct Tls {
    pub insecure: bool,
    pub certs: Option<redis::TlsCertificates>,
}

/// rustls needs one process-wide crypto provider when more than one is compiled in (reqwest
/// brings ring, the AWS SDK aws-lc); the redis crate uses the default, so install ring once.
pub(super) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads a `tls:` block: certificate checks are off only when it says `insecure: true`.
pub(super) fn read_tls(spec: Option<&TlsSpec>, ctx: &StepContext<'_>) -> Result<Tls, StepError> {
    install_crypto_provider();
    let r = ctx.resolver;
    let tls = spec.cloned().unwrap_or_default();
    let root_cert = match &tls.ca_file {
        Some(ca) => Some(read_config_file(&render_config(ca, r)?, "CA file")?),
        None => None,
    };
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
            client_cert: read_config_file(&render_config(c, r)?, "client certificate")?,
            client_key: read_config_file(&render_config(k, r)?, "client key")?,
        }),
        _ => None,
    };
    let certs = (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
        client_tls,
        root_cert,
    });
    Ok(Tls {
        insecure: tls.insecure == Some(true),
        certs,
    })
}

/// A client for one node (TLS settings applied when the address is TLS).
pub(super) fn node_client(
    mut info: ConnectionInfo,
    tls: Option<&Tls>,
) -> redis::RedisResult<redis::Client> {
    if let (ConnectionAddr::TcpTls { insecure, .. }, Some(t)) = (&mut info.addr, tls) {
        *insecure = t.insecure;
        if let Some(certs) = &t.certs {
            return redis::Client::build_with_tls(info, certs.clone());
        }
    }
    redis::Client::open(info)
}

/// Connects one node's client with the target's limits; the crate's limit covers the
/// connection, this one also AUTH/HELLO/SELECT.
pub(super) async fn connect_node(
    client: &redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
    display: &str,
) -> Result<redis::aio::MultiplexedConnection, StepError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(connect_timeout)
        .set_response_timeout(command_timeout);
    let fut = client.get_multiplexed_async_connection_with_config(&config);
    match tokio::time::timeout(connect_timeout + Duration::from_millis(100), fut).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(errors::step_error(&e, "connect", display)),
        Err(_) => Err(no_answer("connect to", display, connect_timeout)),
    }
}

/// A `timeout` failure: `what display: no answer within D`.
pub(super) fn no_answer(what: &str, display: &str, limit: Duration) -> StepError {
    StepError::new(
        Reason::Timeout,
        format!(
            "{what} {display}: no answer within {}",
            crate::units::format_duration(limit)
        ),
    )
}

impl Target {
    pub(super) fn from_spec(spec: &RedisSpec, ctx: &StepContext<'_>) -> Result<Target, StepError> {
        let connect_timeout = spec.connect_timeout.map(|d| d.0).unwrap_or(ctx.timeout);
        let command_timeout = spec.command_timeout.map(|d| d.0).unwrap_or(ctx.timeout);
        let (kind, display) = if let Some(nodes) = &spec.cluster {
            let (c, display) = cluster::client(spec, nodes, connect_timeout, command_timeout, ctx)?;
            (Kind::Cluster(c), display)
        } else if let Some(s) = &spec.sentinel {
            let r = sentinel::Resolver::from_spec(spec, s, connect_timeout, command_timeout, ctx)?;
            let display = format!("sentinel master {}", r.master);
            (Kind::Sentinel(r), display)
        } else {
            let (c, tls, display) = url_client(spec, ctx)?;
            (Kind::Node(c, tls), display)
        };
        Ok(Target {
            kind,
            connect_timeout,
            command_timeout,
            display,
        })
    }

    /// Connects and authenticates (asking the sentinels first, when there are any).
    pub(super) async fn connect(&self) -> Result<Connected, StepError> {
        match &self.kind {
            Kind::Node(client, tls) => {
                let (con, net) = super::net::connect(
                    client,
                    tls.as_ref(),
                    self.connect_timeout,
                    self.command_timeout,
                    &self.display,
                )
                .await?;
                Ok(Connected {
                    con: Con::Node(con),
                    node: node_of(client),
                    display: self.display.clone(),
                    resolve: None,
                    net,
                })
            }
            Kind::Cluster(client) => {
                let con = cluster::connect(client, self).await?;
                Ok(Connected {
                    con: Con::Cluster(con),
                    node: None,
                    display: self.display.clone(),
                    resolve: None,
                    net: None,
                })
            }
            Kind::Sentinel(r) => {
                let t = Instant::now();
                let primary = r.primary().await?;
                let resolve = t.elapsed();
                let mut c = r.connect_primary(&primary).await?;
                c.resolve = Some(resolve);
                Ok(c)
            }
        }
    }

    /// The sentinel resolver, when the target is found through Sentinel.
    pub(super) fn sentinel(&self) -> Option<&sentinel::Resolver> {
        match &self.kind {
            Kind::Sentinel(r) => Some(r),
            _ => None,
        }
    }
}

fn node_of(client: &redis::Client) -> Option<String> {
    match &client.get_connection_info().addr {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => Some(
            Node {
                host: h.clone(),
                port: *p,
                tls: false,
            }
            .addr(),
        ),
        ConnectionAddr::Unix(_) => None,
    }
}

/// The one-node client of a `url:` spec, its TLS settings and how it is shown.
fn url_client(
    spec: &RedisSpec,
    ctx: &StepContext<'_>,
) -> Result<(redis::Client, Option<Tls>, String), StepError> {
    let raw = spec
        .url
        .as_deref()
        .ok_or_else(|| StepError::new(Reason::Config, "redis step has no url"))?;
    let url_s = render_config(raw, ctx.resolver)?;
    let url = url::Url::parse(&url_s).map_err(|e| {
        // The URL may hold a password: show only what parsing said.
        StepError::new(Reason::Config, format!("invalid redis url: {e}"))
    })?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(StepError::new(
            Reason::Config,
            format!(
                "redis url must use redis:// or rediss://, not {}://",
                url.scheme()
            ),
        ));
    }
    let mut info = url
        .into_connection_info()
        .map_err(|e| StepError::new(Reason::Config, format!("invalid redis url: {e}")))?;
    let login = render_login(spec.username.as_ref(), spec.password.as_ref(), ctx)?;
    if login.username.is_some() {
        info.redis.username = login.username;
    }
    if login.password.is_some() {
        info.redis.password = login.password;
    }
    if let Some(pw) = &info.redis.password {
        ctx.redactor.add("redis-password", pw);
    }
    if let Some(db) = spec.db {
        info.redis.db = db;
    }
    let display = match &info.addr {
        ConnectionAddr::Tcp(h, p) => format!("redis://{h}:{p}/{}", info.redis.db),
        ConnectionAddr::TcpTls { host, port, .. } => {
            format!("rediss://{host}:{port}/{}", info.redis.db)
        }
        other => format!("{other}"),
    };
    let tls = match &info.addr {
        ConnectionAddr::TcpTls { .. } => Some(read_tls(spec.tls.as_ref(), ctx)?),
        _ if spec.tls.is_some() => {
            return Err(StepError::new(
                Reason::Config,
                "`tls` needs a rediss:// URL",
            ))
        }
        _ => None,
    };
    let client = node_client(info, tls.as_ref())
        .map_err(|e| StepError::new(Reason::Config, format!("{display}: {e}")))?;
    Ok((client, tls, display))
}

/// Deletes `key` over `con`, reconnecting once if that connection is broken.
pub(super) async fn delete_key(con: Con, target: &Target, key: &[u8]) -> Result<(), String> {
    let mut del = redis::cmd("DEL");
    del.arg(key);
    match con.query(&del).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
            let fresh = target.connect().await.map_err(|e| e.message)?;
            fresh
                .con
                .query(&del)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
