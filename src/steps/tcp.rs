//! The `tcp` step: blackbox_exporter's query/response prober. Connect to `host:port`,
//! optionally over TLS (with SNI `server_name`), send a string, and read until the answer
//! matches a regex, the connection closes, the read cap or the time-out. Failures map to
//! reasons: a name that does not resolve `dns`, a refused port `connect`, a failed handshake
//! `tls`, an answer that ends without a match `assertion`, no match in time `timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::bytes::Regex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{read_config_file, render_config, Kind, StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::scenario::ranges::{Problems, Range};
use crate::units::{format_duration, format_size, Size};

/// Default cap on what is read while waiting for `expect`.
pub const DEFAULT_MAX_READ: u64 = 64 << 10;
/// Range of `max_read`.
pub const MAX_READ: Range = Range::Size(1, 16 << 20);
/// The first read's size while waiting for `expect`.
const READ_CHUNK: usize = 16 << 10;
/// How much of what was read a failure message shows (redacted first).
const SHOWN_CHARS: usize = 200;

/// A TCP connection, optionally TLS, with a string sent and a regex expected. `address` and
/// `send` may use `${{ }}` templates.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// `host:port` (`[IPv6]:port` for an IPv6 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Speak TLS after connecting (`tls: {}` for the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TcpTls>,
    /// Text sent once connected; in a double-quoted YAML string `\r\n` is CR LF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Regex the answer must match: the step reads until it matches, the connection closes,
    /// `max_read` or the timeout. Without it the step reads nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Most bytes read while waiting for `expect` (default 64KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_read: Option<Size>,
}

/// TLS client settings: the other kinds' `tls` fields, plus the server name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpTls {
    /// PEM file of extra trusted CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM client certificate (mTLS); needs `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM private key of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Accept any certificate. Only when written explicitly; never a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Name sent as SNI and checked against the certificate (default: the host of `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// `host:port` as (host, port); brackets around an IPv6 host are removed.
fn split_address(s: &str) -> Option<(String, u16)> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return (addr.port() != 0).then(|| (addr.ip().to_string(), addr.port()));
    }
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    (!host.is_empty() && host.chars().all(plain)).then(|| (host.to_string(), port))
}

impl TcpSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |p: &str, m: String| errs.push((p.to_string(), m));
        match self.address.as_deref() {
            None => err("", "tcp step needs an `address` (host:port)".into()),
            Some(a) if a.contains("${{") => {}
            Some(a) => {
                if split_address(a).is_none() {
                    err("address", format!("address must be host:port, got `{a}`"));
                }
            }
        }
        if let Some(re) = &self.expect {
            if let Err(e) = Regex::new(re) {
                err("expect", format!("invalid regex: {e}"));
            }
        }
        if self.max_read.is_some_and(|s| s.0 == 0) {
            err("max_read", "max_read must be at least 1B".into());
        }
        if let Some(t) = &self.tls {
            if t.cert_file.is_some() != t.key_file.is_some() {
                err(
                    "tls",
                    "a client certificate needs both `cert_file` and `key_file`".into(),
                );
            }
            if let Some(n) = t.server_name.as_deref().filter(|n| !n.contains("${{")) {
                if ServerName::try_from(n).is_err() {
                    err(
                        "tls.server_name",
                        format!("`{n}` is not a host name or IP address"),
                    );
                }
            }
        }
        errs
    }
}

/// The step's budget less a margin, so the step reports its own timeout (naming the phase)
/// before the runner's coarser one.
fn own_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(100)))
}

/// Runs `fut` until `deadline`; past it, a `timeout` failure saying what did not finish.
async fn by<T>(
    deadline: tokio::time::Instant,
    budget: Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(StepError::new(
            Reason::Timeout,
            format!("{} within {}", what(), format_duration(budget)),
        )),
    }
}

/// Resolves `host` and connects to the first address that accepts.
async fn connect(
    host: &str,
    port: u16,
    obs: &mut Observation,
) -> Result<tokio::net::TcpStream, StepError> {
    let started = Instant::now();
    let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let found = tokio::net::lookup_host((host, port)).await.map_err(|e| {
                StepError::new(Reason::Dns, format!("cannot resolve `{host}`: {e}"))
            })?;
            obs.add_phase("resolve", started.elapsed());
            found.collect()
        }
    };
    let connecting = Instant::now();
    let mut last = None;
    for addr in &addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                obs.add_phase("connect", connecting.elapsed());
                return Ok(s);
            }
            Err(e) => last = Some(format!("connect to {addr}: {e}")),
        }
    }
    Err(StepError::new(
        Reason::Connect,
        last.unwrap_or_else(|| format!("`{host}` resolved to no address")),
    ))
}

/// Accepts any server certificate (`insecure: true`); signatures are still checked, so the
/// handshake itself is real.
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config_error(what: &str, e: impl std::fmt::Display) -> StepError {
    StepError::new(Reason::Config, format!("{what}: {e}"))
}

/// The trusted roots: the system store plus `ca_file`.
fn root_store(tls: &TcpTls, ctx: &StepContext<'_>) -> Result<rustls::RootCertStore, StepError> {
    let ca = match &tls.ca_file {
        Some(ca) => {
            let path = render_config(ca, ctx.resolver)?;
            let pem = read_config_file(&path, "CA file")?;
            Some((path, pem))
        }
        None => None,
    };
    super::trust::roots_with_ca(ca.as_ref().map(|(p, pem)| (p.as_str(), pem.as_slice())))
}

/// A rustls client configuration from the step's `tls` settings.
fn client_config(tls: &TcpTls, ctx: &StepContext<'_>) -> Result<rustls::ClientConfig, StepError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS", e))?;
    let builder = if tls.insecure == Some(true) {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(root_store(tls, ctx)?)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let r = ctx.resolver;
            let cert_pem = read_config_file(&render_config(cert, r)?, "client certificate")?;
            let key_pem = read_config_file(&render_config(key, r)?, "client key")?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| config_error("client certificate is not PEM", e))?;
            // Never the key's content in a message: only that it is not a key.
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|_| config_error("client key", "no PEM private key in it"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_error("client certificate/key invalid", e))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// A plain or TLS connection.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// The TLS handshake over `tcp`: a failure is `tls`.
async fn handshake(
    tcp: tokio::net::TcpStream,
    tls: &TcpTls,
    host: &str,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<Box<dyn Conn>, StepError> {
    let config = client_config(tls, ctx)?;
    let name = match &tls.server_name {
        Some(n) => render_config(n, ctx.resolver)?,
        None => host.to_string(),
    };
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| config_error(&format!("server name `{name}`"), e))?;
    let started = Instant::now();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| StepError::new(Reason::Tls, format!("TLS handshake with {name}: {e}")))?;
    obs.add_phase("tls", started.elapsed());
    obs.set_tls(super::tls_facts::from_connection(stream.get_ref().1));
    Ok(Box::new(stream))
}

/// What was read, redacted then cut, for a failure message.
fn shown(read: &[u8], ctx: &StepContext<'_>) -> String {
    if read.is_empty() {
        return "nothing".to_string();
    }
    let text = ctx
        .redactor
        .redact_and_cut(&String::from_utf8_lossy(read), SHOWN_CHARS);
    format!("{text:?} ({})", format_size(read.len() as u64))
}

/// Reads into `obs.body` until `re` matches; the end of the stream or `cap` without a match
/// is an `assertion` failure.
async fn read_until(
    conn: &mut Box<dyn Conn>,
    re: &Regex,
    cap: usize,
    obs: &mut Observation,
    ctx: &StepContext<'_>,
) -> Result<(), StepError> {
    let started = Instant::now();
    let mut chunk = vec![0u8; READ_CHUNK];
    while !re.is_match(&obs.body) {
        let room = cap.saturating_sub(obs.body.len());
        if room == 0 {
            return Err(StepError::new(
                Reason::Assertion,
                format!(
                    "expect /{}/ not matched in the first {} read (max_read): {}",
                    re.as_str(),
                    format_size(cap as u64),
                    shown(&obs.body, ctx)
                ),
            ));
        }
        // Reads grow with what was read, so a large answer is matched a few times, not once
        // per 16KiB.
        let want = room.min(obs.body.len().max(READ_CHUNK));
        if chunk.len() < want {
            chunk.resize(want, 0);
        }
        let n = match conn.read(&mut chunk[..want]).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify has still closed.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                let message = format!("reading the answer: {e}");
                return Err(StepError::new(Reason::Connect, message));
            }
        };
        if n == 0 {
            return Err(StepError::new(
                Reason::Assertion,
                format!(
                    "expect /{}/ not matched before the connection closed; read {}",
                    re.as_str(),
                    shown(&obs.body, ctx)
                ),
            ));
        }
        if obs.body.is_empty() {
            obs.add_phase("first_byte", started.elapsed());
        }
        obs.body.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Where to connect, rendered: `address` as written (for messages) and its parts.
struct Target {
    address: String,
    host: String,
    port: u16,
}

impl Target {
    fn from_spec(spec: &TcpSpec, ctx: &StepContext<'_>) -> Result<Target, StepError> {
        let raw = spec
            .address
            .as_deref()
            .ok_or_else(|| StepError::new(Reason::Config, "tcp step has no address"))?;
        let address = render_config(raw, ctx.resolver)?;
        let (host, port) = split_address(&address).ok_or_else(|| {
            StepError::new(
                Reason::Config,
                format!("address must be host:port, got `{address}`"),
            )
        })?;
        Ok(Target {
            address,
            host,
            port,
        })
    }
}

/// The attempt's time limit: one deadline for every phase.
#[derive(Clone, Copy)]
struct Budget {
    deadline: tokio::time::Instant,
    total: Duration,
}

/// Connects and, with `tls`, completes the handshake.
async fn open(
    spec: &TcpSpec,
    target: &Target,
    budget: Budget,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<Box<dyn Conn>, StepError> {
    let address = &target.address;
    let connecting = connect(&target.host, target.port, obs);
    let what = || format!("connect to {address}: no connection");
    let tcp = by(budget.deadline, budget.total, what, connecting).await?;
    let Some(tls) = &spec.tls else {
        return Ok(Box::new(tcp));
    };
    let shaking = handshake(tcp, tls, &target.host, ctx, obs);
    let what = || format!("TLS handshake with {address}: not done");
    by(budget.deadline, budget.total, what, shaking).await
}

/// Writes `text` and flushes it.
async fn send(
    conn: &mut Box<dyn Conn>,
    text: &str,
    address: &str,
    budget: Budget,
) -> Result<(), StepError> {
    let write = async {
        let sent = async {
            conn.write_all(text.as_bytes()).await?;
            conn.flush().await
        };
        sent.await
            .map_err(|e| StepError::new(Reason::Connect, format!("sending to {address}: {e}")))
    };
    let what = || format!("sending to {address}: not done");
    by(budget.deadline, budget.total, what, write).await
}

/// Reads until `re` matches; no match before the deadline is a `timeout` showing what was read.
async fn expect(
    conn: &mut Box<dyn Conn>,
    re: &Regex,
    cap: usize,
    budget: Budget,
    obs: &mut Observation,
    ctx: &StepContext<'_>,
) -> Result<(), StepError> {
    let reading = read_until(conn, re, cap, obs, ctx);
    match tokio::time::timeout_at(budget.deadline, reading).await {
        Ok(read) => read,
        Err(_) => Err(StepError::new(
            Reason::Timeout,
            format!(
                "expect /{}/ not matched within {}; read {}",
                re.as_str(),
                format_duration(budget.total),
                shown(&obs.body, ctx)
            ),
        )),
    }
}

/// Runs one attempt.
pub async fn execute(spec: &TcpSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let target = Target::from_spec(spec, ctx)?;
    let pattern = match &spec.expect {
        Some(re) => Some(Regex::new(re).map_err(|e| config_error("expect", e))?),
        None => None,
    };
    let text = match &spec.send {
        Some(s) => Some(render_config(s, ctx.resolver)?),
        None => None,
    };
    let total = own_budget(ctx.timeout);
    let budget = Budget {
        deadline: tokio::time::Instant::now() + total,
        total,
    };
    let mut obs = Observation::default();
    let mut conn = open(spec, &target, budget, ctx, &mut obs).await?;
    if let Some(text) = &text {
        send(&mut conn, text, &target.address, budget).await?;
    }
    if let Some(re) = &pattern {
        let cap = spec.max_read.map_or(DEFAULT_MAX_READ, |s| s.0) as usize;
        expect(&mut conn, re, cap, budget, &mut obs, ctx).await?;
    }
    // A clean close (TLS close_notify); the result is already known, so do not wait long.
    let _ = tokio::time::timeout(Duration::from_millis(100), conn.shutdown()).await;
    Ok(obs)
}

impl Kind for TcpSpec {
    const KEY: &'static str = "tcp";
    const ABOUT: &'static str = "A TCP (or TLS) connection with a query and an expected answer.";
    const QUERIES: &'static [&'static str] = &["duration", "phase", "certificate", "body", "regex"];
    const OUTPUTS: &'static [&'static str] = &[];
    const HAS_DEFAULTS: bool = true;
    const RANGES: &'static [(&'static str, Range)] = &[("max_read", MAX_READ)];

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn check_ranges(&self, problems: &mut Problems) {
        problems.size("max_read", self.max_read.filter(|s| s.0 > 0), MAX_READ);
    }

    fn merged_over(&self, defaults: &TcpSpec) -> TcpSpec {
        TcpSpec {
            address: self.address.clone().or_else(|| defaults.address.clone()),
            tls: self.tls.clone().or_else(|| defaults.tls.clone()),
            send: self.send.clone().or_else(|| defaults.send.clone()),
            expect: self.expect.clone().or_else(|| defaults.expect.clone()),
            max_read: self.max_read.or(defaults.max_read),
        }
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<Observation, StepError>> + Send {
        execute(self, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(yaml: &str) -> String {
        let spec: TcpSpec = crate::scenario::yaml::from_str(yaml).unwrap();
        spec.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn valid_specs_have_no_errors() {
        for yaml in [
            "{address: 'db.internal:5432'}",
            "{address: '127.0.0.1:6379', send: \"PING\\r\\n\", expect: '\\+PONG'}",
            "{address: '[::1]:443', tls: {server_name: shop.test, ca_file: /ca.pem}}",
            "{address: '${{ vars.addr }}', tls: {server_name: '${{ vars.host }}'}, max_read: 1KiB}",
        ] {
            assert_eq!(messages(yaml), "", "{yaml}");
        }
    }

    #[test]
    fn mistakes_are_reported_at_their_field() {
        let m =
            messages("{expect: '(', tls: {cert_file: c.pem, server_name: 'a b'}, max_read: 0B}");
        assert!(m.contains(": tcp step needs an `address`"), "{m}");
        assert!(m.contains("expect: invalid regex"), "{m}");
        assert!(m.contains("tls: a client certificate needs both"), "{m}");
        assert!(
            m.contains("tls.server_name: `a b` is not a host name"),
            "{m}"
        );
        assert!(m.contains("max_read: max_read must be at least 1B"), "{m}");
        for bad in [
            "db.internal",
            "db.internal:0",
            "db.internal:http",
            ":80",
            "a b:80",
        ] {
            let m = messages(&format!("{{address: '{bad}'}}"));
            assert!(
                m.contains("address: address must be host:port"),
                "{bad}: {m}"
            );
        }
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_address("127.0.0.1:80"),
            Some(("127.0.0.1".into(), 80))
        );
        assert_eq!(split_address("[::1]:443"), Some(("::1".into(), 443)));
        assert_eq!(
            split_address("redis.cache.svc:6379"),
            Some(("redis.cache.svc".into(), 6379))
        );
        assert_eq!(split_address("::1"), None);
    }
}
