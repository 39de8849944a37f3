//! TLS facts of the transport's connections: the handshake's raw facts are kept with the
//! connection and parsed into [`TlsFacts`] (subject, issuer, expiry per certificate) only when
//! a step reports them.

use super::connector::Handshake;
use crate::outcome::TlsFacts;
use crate::steps::tls_facts::{certificate, negotiated};

/// The raw facts of a finished client handshake.
pub(crate) fn handshake(conn: &rustls::ClientConnection) -> Handshake {
    let (version, cipher, alpn) = negotiated(conn);
    Handshake {
        version,
        cipher,
        alpn,
        chain: conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default(),
    }
}

impl Handshake {
    /// The facts for the report: every certificate of the chain that parses, leaf first.
    pub fn facts(&self) -> TlsFacts {
        TlsFacts {
            version: self.version.clone(),
            cipher: self.cipher.clone(),
            alpn: self.alpn.clone(),
            chain: self.chain.iter().filter_map(certificate).collect(),
        }
    }
}
