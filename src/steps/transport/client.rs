//! The transport a step sends with: hyper-util's client over the timed [`Connector`], built
//! from the cached TLS configuration of the step's setting. By default it keeps no idle
//! connection (a fresh connection per request, as a user's first request); with reuse, one
//! pooled client per setting lives as long as the run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::Connector;
use super::tls::TlsSetting;
use crate::steps::http::{HttpVersion, TlsSpec};
use crate::steps::{StepContext, StepError};

/// A request body.
pub type Body = Full<Bytes>;

/// What a step's transport is made for.
#[derive(Default)]
pub struct Options<'a> {
    pub tls: Option<&'a TlsSpec>,
    pub version: Option<HttpVersion>,
    /// `resolve:` pins, host → address.
    pub pins: Vec<(String, SocketAddr)>,
    /// Keep connections open for the later requests of the run.
    pub reuse: bool,
}

/// Sends requests (see [`Transport::send`]); cheap to clone.
#[derive(Clone)]
pub struct Transport {
    pub(crate) client: Client<Connector, Body>,
}

impl Transport {
    /// The transport for a step's settings: its TLS configuration from the process cache, and
    /// with `reuse`, the run's pooled client for the same settings.
    pub fn for_step(ctx: &StepContext<'_>, o: Options<'_>) -> Result<Transport, StepError> {
        let setting = TlsSetting::read(o.tls, o.version, ctx.resolver)?;
        let connector = Connector {
            tls: setting.config(ctx.shared)?,
            pins: Arc::new(o.pins),
            timeout: ctx.timeout,
        };
        if !o.reuse {
            return Ok(build(connector, o.version, false));
        }
        let key = format!(
            "{} {:?} {:?}",
            hex::encode(setting.key()),
            o.version,
            connector.pins
        );
        let pooled = ctx.run.get::<RunClients>();
        let mut map = pooled.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .entry(key)
            .or_insert_with(|| build(connector, o.version, true))
            .clone())
    }
}

impl Transport {
    /// A transport with the system roots and no pins, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Transport {
        let shared = crate::steps::Shared::default();
        let config = TlsSetting::plain(None).config(&shared).unwrap();
        let connector = Connector {
            tls: config,
            pins: Arc::default(),
            timeout: std::time::Duration::from_secs(5),
        };
        build(connector, None, false)
    }
}

fn build(connector: Connector, version: Option<HttpVersion>, reuse: bool) -> Transport {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_max_idle_per_host(if reuse { usize::MAX } else { 0 })
        .pool_timer(TokioTimer::new())
        .http2_only(version == Some(HttpVersion::Http2));
    Transport {
        client: b.build(connector),
    }
}

/// The pooled clients of one run (`reuse_connection`), by setting; dropped with the run,
/// closing their connections.
#[derive(Default)]
pub struct RunClients(Mutex<HashMap<String, Transport>>);
