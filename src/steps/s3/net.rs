//! The S3 client's HTTP transport: hyper-util's client under the AWS SDK, over the http
//! transport's timed connector (DNS lookup, TCP connect, TLS handshake). The step reports what
//! its first connection showed (phases `dns`, `connect`, `tls`, the TLS facts), so the numbers
//! are those of the SDK's own requests.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::rt::TokioExecutor;

use crate::observation::Observation;
use crate::outcome::{ConnectionUse, Reason};
use crate::steps::transport::{ConnInfo, Connector, TransportError};

/// Connect limit when the SDK gives none (the step always sets one).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections one step attempt's client opened: the first one's timings and handshake.
#[derive(Debug, Clone, Default)]
pub struct NetLog(Arc<Mutex<Option<ConnInfo>>>);

impl NetLog {
    fn record(&self, info: &ConnInfo) {
        if let Ok(mut first) = self.0.lock() {
            first.get_or_insert_with(|| info.clone());
        }
    }

    /// Adds the first connection's `dns`, `connect` and `tls` phases and TLS facts.
    pub fn observe(&self, obs: &mut Observation) {
        let Some(first) = self.0.lock().ok().and_then(|s| s.clone()) else {
            return;
        };
        obs.add_phase("dns", first.dns);
        obs.add_phase("connect", first.connect);
        obs.connection = Some(ConnectionUse::New);
        if let Some(took) = first.tls {
            obs.add_phase("tls", took);
        }
        if let Some(h) = &first.handshake {
            obs.set_tls(Some(h.facts()));
        }
    }
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
                let connector = Connector {
                    tls: self.tls.clone(),
                    pins: Arc::default(),
                    timeout: settings
                        .connect_timeout()
                        .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                };
                let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                    .build(connector);
                SharedHttpConnector::new(SdkConnector {
                    client,
                    log: self.log.clone(),
                })
            })
            .clone()
    }
}

type Hyper = hyper_util::client::legacy::Client<Connector, SdkBody>;

#[derive(Clone)]
struct SdkConnector {
    client: Hyper,
    log: NetLog,
}

impl std::fmt::Debug for SdkConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SdkConnector")
    }
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (client, log) = (self.client.clone(), self.log.clone());
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client.request(request).await.map_err(connector_error)?;
            // The connector put how the connection was made on every response it carries.
            if let Some(info) = response.extensions().get::<ConnInfo>() {
                log.record(info);
            }
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The SDK's error kind for a failed request: the connector's own reason when it has one (its
/// messages keep the words `dns error` and `tls` that the step's reasons are read from).
fn connector_error(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if s.downcast_ref::<TransportError>()
            .is_some_and(|t| t.reason == Reason::Timeout)
        {
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
