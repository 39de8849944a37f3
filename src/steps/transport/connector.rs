//! The connector hyper's client opens connections with: name resolution (the system resolver,
//! or a step's `resolve:` pin), the TCP connect and the rustls handshake, each timed. The
//! timings and what the handshake showed ride on the connection as [`ConnInfo`]
//! (`Connected::extra`), so every response carries them in its extensions.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::error::TransportError;
use crate::outcome::Reason;

/// How a connection was made; attached to every response it carries.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// When the connection was ready: a request that started later reused it.
    pub established_at: Instant,
    pub dns: Duration,
    pub connect: Duration,
    /// Set for TLS connections.
    pub tls: Option<Duration>,
    pub handshake: Option<Arc<Handshake>>,
    pub remote: SocketAddr,
}

/// What a TLS handshake showed, raw; [`super::facts`] turns it into the report's facts.
#[derive(Debug)]
pub struct Handshake {
    pub version: String,
    pub cipher: String,
    pub alpn: Option<String>,
    /// The peer's chain as sent, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

/// Opens timed connections; cheap to clone (the TLS configuration is shared).
#[derive(Clone)]
pub struct Connector {
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// `resolve:` pins: host → address (its port is used when the URL names none).
    pub(crate) pins: Arc<Vec<(String, SocketAddr)>>,
    pub(crate) timeout: Duration,
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, TransportError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = TransportError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let budget = this.timeout;
            match tokio::time::timeout(budget, this.open(uri)).await {
                Ok(r) => r.map(TokioIo::new),
                Err(_) => Err(TransportError::new(
                    Reason::Timeout,
                    format!(
                        "no connection within {}",
                        crate::units::format_duration(budget)
                    ),
                )),
            }
        })
    }
}

impl Connector {
    async fn open(self, uri: Uri) -> Result<Stream, TransportError> {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| TransportError::new(Reason::Config, "URL without a host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16();
        let default_port = if https { 443 } else { 80 };
        let started = Instant::now();
        let addrs = self.resolve(&host, port, default_port).await?;
        let dns = started.elapsed();
        let (tcp, remote) = connect(&addrs).await?;
        let connect = started.elapsed() - dns;
        if !https {
            let info = ConnInfo {
                established_at: Instant::now(),
                dns,
                connect,
                tls: None,
                handshake: None,
                remote,
            };
            return Ok(Stream::new(Io::Plain(tcp), info));
        }
        let name = ServerName::try_from(host.clone()).map_err(|e| {
            TransportError::new(Reason::Config, format!("server name `{host}`: {e}"))
        })?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| TransportError::new(Reason::Tls, tls_message(&e)))?;
        let handshake = super::facts::handshake(tls.get_ref().1);
        let info = ConnInfo {
            established_at: Instant::now(),
            dns,
            connect,
            tls: Some(started.elapsed() - dns - connect),
            handshake: Some(Arc::new(handshake)),
            remote,
        };
        Ok(Stream::new(Io::Tls(Box::new(tls)), info))
    }

    /// The addresses to try: a pin, a literal IP, or the system resolver's answer.
    async fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        default_port: u16,
    ) -> Result<Vec<SocketAddr>, TransportError> {
        if let Some((_, pinned)) = self.pins.iter().find(|(h, _)| h.eq_ignore_ascii_case(host)) {
            let port = port.unwrap_or(match pinned.port() {
                0 => default_port,
                p => p,
            });
            return Ok(vec![SocketAddr::new(pinned.ip(), port)]);
        }
        let port = port.unwrap_or(default_port);
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                TransportError::new(
                    Reason::Dns,
                    format!("dns error: failed to lookup address `{host}`: {e}"),
                )
            })?
            .collect();
        if found.is_empty() {
            return Err(TransportError::new(
                Reason::Dns,
                format!("dns error: `{host}` resolved to no address"),
            ));
        }
        Ok(found)
    }
}

/// Connects to the first address that accepts.
async fn connect(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr), TransportError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *addr));
            }
            Err(e) => last = Some(format!("tcp connect error: {addr}: {e}")),
        }
    }
    Err(TransportError::new(
        Reason::Connect,
        last.unwrap_or_else(|| "no address to connect to".into()),
    ))
}

/// A handshake failure: rustls' own error when it is one (the I/O wrapper adds nothing).
fn tls_message(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => format!("tls handshake: {inner}"),
        None => format!("tls handshake: {e}"),
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// One connection, plain or TLS, with how it was made.
pub struct Stream {
    io: Io,
    info: ConnInfo,
    h2: bool,
}

impl Stream {
    fn new(io: Io, info: ConnInfo) -> Stream {
        let h2 = info
            .handshake
            .as_ref()
            .is_some_and(|h| h.alpn.as_deref() == Some("h2"));
        Stream { io, info, h2 }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        let c = Connected::new().extra(self.info.clone());
        if self.h2 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}
