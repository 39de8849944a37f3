//! rustls client configurations, built once per distinct TLS setting (trusted CAs, client
//! certificate, `insecure`, ALPN) and kept in the process-wide [`Shared`] store, keyed by a
//! hash of the files' contents so a rotated file makes a new configuration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::outcome::Reason;
use crate::steps::http::{HttpVersion, TlsSpec};
use crate::steps::{read_config_file, render_config, Shared, StepError};
use crate::template::Resolve;

/// Most configurations kept; past it the cache starts again (rotated files leave old ones).
const MAX_CONFIGS: usize = 64;

/// A step's TLS setting, its files read.
pub struct TlsSetting {
    ca_pem: Option<(String, Vec<u8>)>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    insecure: bool,
    alpn: Vec<Vec<u8>>,
}

/// The ALPN protocols offered for a `version:`.
fn alpn(version: Option<HttpVersion>) -> Vec<Vec<u8>> {
    match version {
        Some(HttpVersion::Http1) => vec![b"http/1.1".to_vec()],
        Some(HttpVersion::Http2) => vec![b"h2".to_vec()],
        None => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    }
}

impl TlsSetting {
    /// No TLS settings of the step: the system roots, ALPN for `version`.
    pub(crate) fn plain(version: Option<HttpVersion>) -> TlsSetting {
        TlsSetting {
            ca_pem: None,
            identity: None,
            insecure: false,
            alpn: alpn(version),
        }
    }

    /// The system roots plus an optional private CA (its path, its PEM), HTTP/1.1 only: the
    /// s3 step's client, cached with the http step's configurations.
    pub(crate) fn http1_with_ca(ca_pem: Option<(String, Vec<u8>)>) -> TlsSetting {
        TlsSetting {
            ca_pem,
            ..TlsSetting::plain(Some(HttpVersion::Http1))
        }
    }

    /// Renders the paths and reads the files (every time: they may have been rotated).
    pub fn read(
        tls: Option<&TlsSpec>,
        version: Option<HttpVersion>,
        r: &dyn Resolve,
    ) -> Result<TlsSetting, StepError> {
        let mut s = TlsSetting::plain(version);
        let Some(tls) = tls else { return Ok(s) };
        if let Some(ca) = &tls.ca_file {
            let path = render_config(ca, r)?;
            let pem = read_config_file(&path, "CA file")?;
            s.ca_pem = Some((path, pem));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let cert = read_config_file(&render_config(cert, r)?, "client certificate")?;
            let key = read_config_file(&render_config(key, r)?, "client key")?;
            s.identity = Some((cert, key));
        }
        s.insecure = tls.insecure == Some(true);
        Ok(s)
    }

    pub(crate) fn key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(
            self.ca_pem
                .as_ref()
                .map(|(_, p)| p.as_slice())
                .unwrap_or(b"-"),
        );
        if let Some((c, k)) = &self.identity {
            part(c);
            part(k);
        }
        part(&[u8::from(self.insecure), u8::from(self.identity.is_some())]);
        for p in &self.alpn {
            part(p);
        }
        h.finalize().into()
    }

    /// The configuration: from the cache, or built now.
    pub fn config(&self, shared: &Shared) -> Result<Arc<rustls::ClientConfig>, StepError> {
        let cache = shared.get::<TlsConfigs>();
        let key = self.key();
        if let Some(c) = cache.lock().get(&key) {
            return Ok(c.clone());
        }
        let config = Arc::new(self.build()?);
        let mut map = cache.lock();
        if map.len() >= MAX_CONFIGS {
            map.clear();
        }
        map.insert(key, config.clone());
        Ok(config)
    }

    fn build(&self) -> Result<rustls::ClientConfig, StepError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("TLS", e))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(
                    crate::steps::tcp::AcceptAnyCertificate(provider),
                ))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let mut config = match &self.identity {
            Some((cert_pem, key_pem)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<_, _>>()
                    .map_err(|e| config_error("client certificate is not PEM", e))?;
                // Never the key's content in a message: only that it is not a key.
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|_| config_error("client key", "no PEM private key in it"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| config_error("client certificate/key invalid", e))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(config)
    }

    /// The system store plus the step's CA file.
    fn roots(&self) -> Result<rustls::RootCertStore, StepError> {
        crate::steps::trust::roots_with_ca(
            self.ca_pem
                .as_ref()
                .map(|(path, pem)| (path.as_str(), pem.as_slice())),
        )
    }
}

fn config_error(what: &str, e: impl std::fmt::Display) -> StepError {
    StepError::new(Reason::Config, format!("{what}: {e}"))
}

/// The configurations built so far, by setting.
#[derive(Default)]
pub struct TlsConfigs(Mutex<HashMap<[u8; 32], Arc<rustls::ClientConfig>>>);

impl TlsConfigs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<rustls::ClientConfig>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many configurations are cached (for tests and benches).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_per_setting() {
        let shared = Shared::default();
        let plain = TlsSetting::plain;
        let a = plain(None).config(&shared).unwrap();
        let b = plain(None).config(&shared).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let h1 = plain(Some(HttpVersion::Http1)).config(&shared).unwrap();
        assert!(!Arc::ptr_eq(&a, &h1));
        assert_eq!(h1.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let mut insecure = plain(None);
        insecure.insecure = true;
        insecure.config(&shared).unwrap();
        assert_eq!(shared.get::<TlsConfigs>().len(), 3);
    }
}
