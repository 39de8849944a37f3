//! What a finished rustls handshake showed, as [`TlsFacts`]: protocol version, cipher suite,
//! ALPN and the peer's chain (subject, issuer, notAfter); shared by the http transport and the
//! steps that hold their own rustls connection (s3, redis).

use rustls::pki_types::CertificateDer;

use crate::outcome::{CertificateFacts, TlsFacts};

/// The facts of a client connection whose handshake is done; `None` before that.
pub(crate) fn from_connection(c: &rustls::CommonState) -> Option<TlsFacts> {
    c.protocol_version()?;
    let (version, cipher, alpn) = negotiated(c);
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

/// The protocol version (`TLSv1.3`), cipher suite and ALPN protocol a handshake agreed on.
pub(crate) fn negotiated(c: &rustls::CommonState) -> (String, String, Option<String>) {
    let version = match c.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = c
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "unknown".to_string());
    let alpn = c
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    (version, cipher, alpn)
}

/// One certificate's subject, issuer and `notAfter`; `None` when it does not parse.
pub(crate) fn certificate(der: &CertificateDer<'_>) -> Option<CertificateFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(CertificateFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0),
    })
}
