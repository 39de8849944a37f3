//! Connecting to PostgreSQL: the URL, the secret password, TLS (rustls with the system trust
//! store plus `tls.ca_file`, optional client certificate) and the connect limit; and the
//! mapping of driver errors to the closed failure reasons.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresSpec;
use crate::outcome::Reason;
use crate::steps::http::{error_chain, TlsSpec};
use crate::steps::{read_config_file, render_config, StepContext, StepError};

/// The password part of a `postgres://user:password@host` URL, if any.
pub(super) fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

/// Where and how to connect; cheap to clone into a clean-up action.
#[derive(Clone)]
pub(super) struct Target {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    connect_timeout: Duration,
    /// `postgres://host:port/db` without user or password, for messages.
    pub display: String,
}

impl Target {
    pub(super) fn from_spec(
        spec: &PostgresSpec,
        ctx: &StepContext<'_>,
    ) -> Result<Target, StepError> {
        let raw = spec
            .url
            .as_deref()
            .ok_or_else(|| StepError::new(Reason::Config, "postgres step has no url"))?;
        let url = render_config(raw, ctx.resolver)?;
        if let Some(pw) = url_password(&url) {
            ctx.redactor.add("postgres-password", pw);
        }
        let mut config: Config = url.parse().map_err(|e| {
            // The URL may hold a password: show only what parsing said.
            StepError::new(Reason::Config, format!("invalid postgres url: {e}"))
        })?;
        if let Some(p) = &spec.password {
            let pw = render_config(p, ctx.resolver)?;
            ctx.redactor.add("postgres-password", &pw);
            config.password(pw);
        }
        let display = display(&config);
        let wants_tls = spec.tls.is_some() || config.get_ssl_mode() == SslMode::Require;
        let tls = if wants_tls {
            config.ssl_mode(SslMode::Require);
            Some(connector(spec.tls.as_ref(), ctx)?)
        } else {
            config.ssl_mode(SslMode::Disable);
            None
        };
        Ok(Target {
            config,
            tls,
            connect_timeout: spec.connect_timeout.map(|d| d.0).unwrap_or(ctx.timeout),
            display,
        })
    }

    /// Connects (to `database` instead of the URL's, when given) and logs in.
    pub(super) async fn connect(&self, database: Option<&str>) -> Result<Client, StepError> {
        let mut config = self.config.clone();
        if let Some(db) = database {
            config.dbname(db);
        }
        let fut = async {
            match &self.tls {
                Some(tls) => {
                    let (client, conn) = config.connect(tls.clone()).await?;
                    tokio::spawn(conn);
                    Ok::<_, tokio_postgres::Error>(client)
                }
                None => {
                    let (client, conn) = config.connect(NoTls).await?;
                    tokio::spawn(conn);
                    Ok(client)
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(pg_error(&format!("connect to {}", self.display), &e)),
            Err(_) => Err(StepError::new(
                Reason::Timeout,
                format!(
                    "connect to {}: no answer within {}",
                    self.display,
                    crate::units::format_duration(self.connect_timeout)
                ),
            )),
        }
    }
}

fn display(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres://{host}:{port}/{db}")
}

/// A rustls connector trusting the system store and `tls.ca_file`.
fn connector(tls: Option<&TlsSpec>, ctx: &StepContext<'_>) -> Result<MakeRustlsConnect, StepError> {
    let config_err = |what: &str, e: &dyn std::fmt::Display| {
        StepError::new(Reason::Config, format!("{what}: {e}"))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = tls.cloned().unwrap_or_default();
    if let Some(ca) = &tls.ca_file {
        let path = render_config(ca, ctx.resolver)?;
        let pem = read_config_file(&path, "CA file")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| config_err(&format!("CA file {path}"), &e))?;
            roots
                .add(cert)
                .map_err(|e| config_err(&format!("CA file {path}"), &e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_err("TLS", &e))?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => {
            let (c, k) = (
                render_config(c, ctx.resolver)?,
                render_config(k, ctx.resolver)?,
            );
            let certs =
                CertificateDer::pem_slice_iter(&read_config_file(&c, "client certificate")?)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| config_err(&format!("client certificate {c}"), &e))?;
            let key = PrivateKeyDer::from_pem_slice(&read_config_file(&k, "client key")?)
                .map_err(|_| config_err(&format!("client key {k}"), &"no private key found"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| config_err("client certificate", &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// A driver error as a step failure: SQLSTATE class 28 is `auth`, TLS trouble `tls`, a
/// timeout `timeout`, other server errors `storage`, the rest `connect`.
pub(super) fn pg_error(what: &str, e: &tokio_postgres::Error) -> StepError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let reason = if code.starts_with("28") {
            Reason::Auth
        } else {
            Reason::Storage
        };
        return StepError::new(reason, format!("{what}: {} ({code})", db.message()));
    }
    let chain = error_chain(e);
    let t = chain.to_lowercase();
    let reason = if t.contains("tls") || t.contains("certificate") || t.contains("ssl") {
        Reason::Tls
    } else if t.contains("timed out") || t.contains("timeout") {
        Reason::Timeout
    } else if t.contains("password missing") || t.contains("authentication") {
        Reason::Auth
    } else {
        Reason::Connect
    };
    StepError::new(reason, format!("{what}: {chain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_user_info_only() {
        assert_eq!(url_password("postgres://u:p@h/db"), Some("p"));
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://h/db?user=a:b@c"), None);
    }

    #[test]
    fn messages_show_host_port_and_database_only() {
        let c: Config = "postgres://drill:pw@db.test:6543/app".parse().unwrap();
        assert_eq!(display(&c), "postgres://db.test:6543/app");
    }
}
