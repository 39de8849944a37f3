//! TLS facts: what a handshake negotiated (version, cipher suite, ALPN) and the peer's chain
//! with subject, issuer and expiry of each certificate, for reports and `certificate`
//! assertions (which read the chain's earliest expiry).

use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;

use super::connector::Handshake;
use crate::outcome::{CertificateFacts, TlsFacts};

/// The raw facts of a finished client handshake.
pub(crate) fn handshake(conn: &rustls::ClientConnection) -> Handshake {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "unknown".to_string());
    Handshake {
        version,
        cipher,
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        chain: conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default(),
    }
}

/// One certificate's subject, issuer and `notAfter`; `None` when it does not parse.
fn certificate(der: &CertificateDer<'_>) -> Option<CertificateFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(CertificateFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
    })
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

/// When the first certificate of the chain expires.
pub fn earliest_expiry(facts: &TlsFacts) -> Option<SystemTime> {
    let c = facts.earliest_expiry()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(c.not_after))
}
