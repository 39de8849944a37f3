//! The HTTP transport of the http and oidc steps: hyper-util's client over a connector that
//! times name resolution, TCP connect and the TLS handshake, with TLS configurations built
//! once per setting. Each request reports its phases (`dns`, `connect`, `tls`, `first_byte`,
//! `body`), whether its connection was new or reused, and the handshake's facts; every request
//! carries the attempt's `traceparent`.

mod client;
mod connector;
pub mod cookies;
mod error;
mod facts;
pub mod phases;
pub mod redirect;
mod send;
mod tls;

pub use client::{Body, Options, RunClients, Transport};
pub use connector::{ConnInfo, Connector, Handshake};
pub use error::TransportError;
pub use phases::Timings;
pub use send::{Exchange, Limits};
pub use tls::{TlsConfigs, TlsSetting};
