//! The system trust store for the http, oidc and tcp steps' clients, loaded once per process: the
//! operating system's CA certificates, honouring `SSL_CERT_FILE` and `SSL_CERT_DIR` (so a
//! corporate CA mounted into `/etc/ssl/certs`, e.g. by trust-manager, works). The s3 and redis
//! clients load the same store; a step's `tls.ca_file` adds to it everywhere.

use std::sync::OnceLock;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::outcome::Reason;
use crate::steps::StepError;

/// The system's CA certificates (DER), read on first use; the tcp step builds its rustls
/// configuration from them.
pub(crate) fn system_roots_der() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "cannot read part of the system trust store");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "the system trust store is empty: TLS targets need `tls.ca_file` (install \
                 ca-certificates, or set SSL_CERT_FILE / SSL_CERT_DIR)"
            );
        }
        found.certs
    })
}

/// The system store plus a step's CA file (`path` for messages, its PEM); a file that is not
/// PEM or holds no certificate is a `config` error.
pub(crate) fn roots_with_ca(ca: Option<(&str, &[u8])>) -> Result<rustls::RootCertStore, StepError> {
    let bad = |what: String, e: &dyn std::fmt::Display| {
        StepError::new(Reason::Config, format!("{what}: {e}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots_der().iter().cloned());
    let Some((path, pem)) = ca else {
        return Ok(roots);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("CA file {path} is not PEM"), &e))?;
    if certs.is_empty() {
        return Err(bad(format!("CA file {path}"), &"no certificate in it"));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| bad(format!("CA file {path}"), &e))?;
    }
    Ok(roots)
}

/// The same certificates for reqwest clients.
fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        system_roots_der()
            .iter()
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
            .collect()
    })
}

/// Reads the store now (at start-up), so that the first TLS step's duration does not include it.
pub fn warm() {
    let _ = system_roots();
}

/// Makes a client trust the system store instead of reqwest's bundled roots.
pub(crate) fn with_system_roots(b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    system_roots()
        .iter()
        .fold(b.tls_built_in_root_certs(false), |b, c| {
            b.add_root_certificate(c.clone())
        })
}
