//! What a finished rustls handshake showed, as [`TlsFacts`]: protocol version, cipher suite,
//! ALPN and the peer's chain (subject, issuer, notAfter), for the steps that hold their own
//! rustls connection (s3, redis).

use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;

use crate::outcome::{CertificateFacts, TlsFacts};

/// The facts of a client connection whose handshake is done; `None` before that.
pub(crate) fn from_connection(c: &rustls::CommonState) -> Option<TlsFacts> {
    let version = match c.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        other => format!("{other:?}"),
    };
    let cipher = c
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let alpn = c
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let chain = c
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .filter_map(certificate)
        .collect();
    Some(TlsFacts {
        version,
        cipher,
        alpn,
        chain,
    })
}

/// The `notAfter` of the chain's certificate that expires first.
pub(crate) fn earliest_not_after(facts: &TlsFacts) -> Option<SystemTime> {
    facts
        .earliest_expiry()
        .map(|c| SystemTime::UNIX_EPOCH + Duration::from_secs(c.not_after))
}

fn certificate(der: &CertificateDer<'_>) -> Option<CertificateFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(CertificateFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
    })
}
