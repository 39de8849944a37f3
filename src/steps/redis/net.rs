//! A node's connection opened stage by stage and handed to the redis crate
//! (`MultiplexedConnection::new_with_config` takes any stream): the DNS lookup, TCP connect and
//! TLS handshake timed on the very connection the step then uses, the TLS facts kept, and the
//! crate's own AUTH/HELLO/SELECT timed as `setup`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::ConnectionAddr;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::conn::{no_answer, Tls};
use super::errors;
use crate::observation::Observation;
use crate::outcome::{ConnectionUse, Reason, TlsFacts};
use crate::steps::StepError;

/// What opening one node's connection took, stage by stage.
#[derive(Debug, Clone, Default)]
pub(super) struct Timings {
    pub dns: Duration,
    pub connect: Duration,
    /// The handshake's duration and what it showed, on a TLS connection.
    pub tls: Option<(Duration, Option<TlsFacts>)>,
    /// AUTH/HELLO/SELECT as the crate sends them.
    pub setup: Duration,
}

impl Timings {
    /// Adds the phases `dns`, `connect`, `tls` and `setup`, and the TLS facts.
    pub(super) fn observe(&self, obs: &mut Observation) {
        obs.add_phase("dns", self.dns);
        obs.add_phase("connect", self.connect);
        if let Some((took, facts)) = &self.tls {
            obs.add_phase("tls", *took);
            if facts.is_some() {
                obs.set_tls(facts.clone());
            }
        }
        obs.add_phase("setup", self.setup);
        obs.connection = Some(ConnectionUse::New);
    }
}

/// Opens `client`'s node within `limit` (all stages together, as the crate's own limit did);
/// `None` timings for a Unix socket, which the crate opens itself.
pub(super) async fn connect(
    client: &redis::Client,
    tls: Option<&Tls>,
    limit: Duration,
    command_timeout: Duration,
    display: &str,
) -> Result<(MultiplexedConnection, Option<Timings>), StepError> {
    let info = client.get_connection_info();
    let (host, port, secure) = match &info.addr {
        ConnectionAddr::Tcp(h, p) => (h.clone(), *p, false),
        ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
        ConnectionAddr::Unix(_) => {
            let con = super::conn::connect_node(client, limit, command_timeout, display).await?;
            return Ok((con, None));
        }
    };
    let config = if secure { Some(tls_config(tls)?) } else { None };
    let open = open(&host, port, config, &info.redis, command_timeout, display);
    match tokio::time::timeout(limit, open).await {
        Ok(r) => r.map(|(c, t)| (c, Some(t))),
        Err(_) => Err(no_answer("connect to", display, limit)),
    }
}

async fn open(
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    redis_info: &redis::RedisConnectionInfo,
    command_timeout: Duration,
    display: &str,
) -> Result<(MultiplexedConnection, Timings), StepError> {
    let fail =
        |reason, detail: String| StepError::new(reason, format!("connect on {display}: {detail}"));
    let t = Instant::now();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| fail(Reason::Dns, format!("cannot resolve {host}: {e}")))?
        .collect();
    let dns = t.elapsed();
    let t = Instant::now();
    let tcp = connect_any(&addrs).await.map_err(|e| {
        fail(
            Reason::Connect,
            format!("connection refused or failed: {host}:{port}: {e}"),
        )
    })?;
    let _ = tcp.set_nodelay(true);
    let connect = t.elapsed();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(command_timeout);
    let t = Instant::now();
    let (con, tls) = match tls {
        None => (handshake(redis_info, tcp, config, display).await?, None),
        Some(cfg) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| fail(Reason::Config, format!("invalid TLS server name: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| fail(Reason::Tls, format!("tls handshake failed: {e}")))?;
            let facts = crate::steps::tls_facts::from_connection(stream.get_ref().1);
            let took = t.elapsed();
            let con = handshake(redis_info, stream, config, display).await?;
            (con, Some((took, facts)))
        }
    };
    let setup = t
        .elapsed()
        .saturating_sub(tls.as_ref().map(|(d, _)| *d).unwrap_or_default());
    Ok((
        con,
        Timings {
            dns,
            connect,
            tls,
            setup,
        },
    ))
}

/// The crate's connection set-up (AUTH/HELLO/SELECT) over `stream`; its driver runs as a task
/// until the connection is dropped.
async fn handshake<S>(
    info: &redis::RedisConnectionInfo,
    stream: S,
    config: redis::AsyncConnectionConfig,
    display: &str,
) -> Result<MultiplexedConnection, StepError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (con, driver) = MultiplexedConnection::new_with_config(info, stream, config)
        .await
        .map_err(|e| errors::step_error(&e, "connect", display))?;
    tokio::spawn(driver);
    Ok(con)
}

async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// rustls settings equal to the step's `tls:`: the system store plus `ca_file` (or any
/// certificate with `insecure: true`), and the client certificate when there is one.
fn tls_config(tls: Option<&Tls>) -> Result<Arc<rustls::ClientConfig>, StepError> {
    let bad = |what: &str, e: String| StepError::new(Reason::Config, format!("{what}: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", e.to_string()))?;
    let certs = tls.and_then(|t| t.certs.as_ref());
    let builder = if tls.is_some_and(|t| t.insecure) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::steps::tcp::AcceptAnyCertificate(
                provider,
            )))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(crate::steps::trust::system_roots_der().iter().cloned());
        for c in certs
            .and_then(|c| c.root_cert.as_deref())
            .map(CertificateDer::pem_slice_iter)
            .into_iter()
            .flatten()
        {
            let c = c.map_err(|e| bad("CA file", e.to_string()))?;
            roots.add(c).map_err(|e| bad("CA file", e.to_string()))?;
        }
        builder.with_root_certificates(roots)
    };
    let config = match certs.and_then(|c| c.client_tls.as_ref()) {
        Some(client) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&client.client_cert)
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad("client certificate is not PEM", e.to_string()))?;
            // Never the key's content in a message: only that it is not a key.
            let key = PrivateKeyDer::from_pem_slice(&client.client_key)
                .map_err(|_| bad("client key", "no PEM private key in it".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("client certificate/key invalid", e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
