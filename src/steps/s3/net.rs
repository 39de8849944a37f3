//! The S3 client's HTTP transport: hyper-util's client under the AWS SDK, over a connector that
//! times each new connection's DNS lookup, TCP connect and TLS handshake. The step reports what
//! its first connection showed (phases `dns`, `connect`, `tls`, the TLS facts), so the numbers
//! are those of the SDK's own requests.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::observation::Observation;
use crate::outcome::{ConnectionUse, TlsFacts};

/// What opening one connection took and showed.
#[derive(Debug, Clone)]
struct Opened {
    dns: Duration,
    connect: Duration,
    tls: Option<(Duration, Option<TlsFacts>)>,
}

/// The connections one step attempt's client opened: the first one's timings, and how many.
#[derive(Debug, Clone, Default)]
pub struct NetLog(Arc<Mutex<(Option<Opened>, u32)>>);

impl NetLog {
    fn record(&self, o: Opened) {
        if let Ok(mut seen) = self.0.lock() {
            seen.1 += 1;
            seen.0.get_or_insert(o);
        }
    }

    /// Adds the first connection's `dns`, `connect` and `tls` phases and TLS facts.
    pub fn observe(&self, obs: &mut Observation) {
        let Some(first) = self.0.lock().ok().and_then(|s| s.0.clone()) else {
            return;
        };
        obs.add_phase("dns", first.dns);
        obs.add_phase("connect", first.connect);
        obs.connection = Some(ConnectionUse::New);
        if let Some((took, facts)) = first.tls {
            obs.add_phase("tls", took);
            if let Some(f) = facts {
                obs.cert_not_after = f.earliest_not_after();
                obs.tls = Some(f);
            }
        }
    }
}

/// Why a connection could not be opened; the words `dns error`, `tls` and `timed out` are what
/// the s3 step's failure reasons are read from.
#[derive(Debug, thiserror::Error)]
enum NetError {
    #[error("dns error: cannot resolve {0}: {1}")]
    Dns(String, std::io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("tls handshake with {0} failed: {1}")]
    Tls(String, std::io::Error),
    #[error("invalid endpoint {0}")]
    Endpoint(String),
    #[error("connecting to {0} timed out after {1:?}")]
    Timeout(String, Duration),
}

/// The SDK's HTTP client for one step attempt: every operation shares one hyper-util client
/// (so later requests reuse the first connection, as the SDK's own client does).
#[derive(Debug, Clone)]
pub struct TimedHttpClient {
    tls: Arc<rustls::ClientConfig>,
    log: NetLog,
    built: Arc<OnceLock<SharedHttpConnector>>,
}

impl TimedHttpClient {
    pub fn new(tls: Arc<rustls::ClientConfig>, log: NetLog) -> TimedHttpClient {
        TimedHttpClient {
            tls,
            log,
            built: Arc::default(),
        }
    }
}

impl HttpClient for TimedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.built
            .get_or_init(|| {
                let connector = TimedConnector {
                    tls: self.tls.clone(),
                    log: self.log.clone(),
                    limit: settings.connect_timeout(),
                };
                let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    .build(connector);
                SharedHttpConnector::new(SdkConnector(client))
            })
            .clone()
    }
}

type Hyper = hyper_util::client::legacy::Client<TimedConnector, SdkBody>;

#[derive(Debug, Clone)]
struct SdkConnector(Hyper);

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client.request(request).await.map_err(connector_error)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

fn connector_error(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if matches!(s.downcast_ref::<NetError>(), Some(NetError::Timeout(..))) {
            return ConnectorError::timeout(e.into());
        }
        source = s.source();
    }
    if e.is_connect() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

/// Opens connections for hyper-util, timing each stage into the [`NetLog`].
#[derive(Debug, Clone)]
struct TimedConnector {
    tls: Arc<rustls::ClientConfig>,
    log: NetLog,
    limit: Option<Duration>,
}

impl tower_service::Service<Uri> for TimedConnector {
    type Response = NetIo;
    type Error = NetError;
    type Future = Pin<Box<dyn Future<Output = Result<NetIo, NetError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let shown = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            match this.limit {
                Some(limit) => tokio::time::timeout(limit, this.open(&uri))
                    .await
                    .unwrap_or(Err(NetError::Timeout(shown, limit))),
                None => this.open(&uri).await,
            }
        })
    }
}

impl TimedConnector {
    async fn open(&self, uri: &Uri) -> Result<NetIo, NetError> {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| NetError::Endpoint(uri.to_string()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let t = Instant::now();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| NetError::Dns(host.clone(), e))?
            .collect();
        let dns = t.elapsed();
        let t = Instant::now();
        let tcp = connect_any(&addrs, &host).await?;
        let _ = tcp.set_nodelay(true);
        let connect = t.elapsed();
        if !https {
            self.log.record(Opened {
                dns,
                connect,
                tls: None,
            });
            return Ok(NetIo(TokioIo::new(NetStream::Plain(tcp))));
        }
        let name =
            ServerName::try_from(host.clone()).map_err(|_| NetError::Endpoint(uri.to_string()))?;
        let t = Instant::now();
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| NetError::Tls(host.clone(), e))?;
        let facts = crate::steps::tls_facts::from_connection(stream.get_ref().1);
        self.log.record(Opened {
            dns,
            connect,
            tls: Some((t.elapsed(), facts)),
        });
        Ok(NetIo(TokioIo::new(NetStream::Tls(Box::new(stream)))))
    }
}

/// Connects to the first address that accepts, in resolver order.
async fn connect_any(addrs: &[SocketAddr], host: &str) -> Result<TcpStream, NetError> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(NetError::Connect(host.to_string(), last))
}

/// A connection as tokio sees it: plain TCP or TLS over it.
enum NetStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_flush(cx),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            NetStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connection as hyper sees it.
struct NetIo(TokioIo<NetStream>);

impl Connection for NetIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for NetIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for NetIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
