//! Connecting to Redis: the URL and the spec's user, secret password, db and TLS settings
//! turned into a `redis::Client`, connected with connect and command timeouts.

use std::sync::Once;
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};

use super::{errors, RedisSpec};
use crate::outcome::Reason;
use crate::steps::{read_config_file, render_config, StepContext, StepError};

/// Where and how to connect; cheap to clone into a clean-up action.
#[derive(Clone)]
pub(super) struct Target {
    client: redis::Client,
    config: redis::AsyncConnectionConfig,
    connect_timeout: Duration,
    /// `redis://host:port/db` without user or password, for messages.
    pub display: String,
}

/// The password part of a `redis://user:password@host` URL, if any (`None` when the URL
/// has no password or no user-info).
pub(super) fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    // User-info ends at the last `@` before the path.
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

/// rustls needs one process-wide crypto provider when more than one is compiled in (reqwest
/// brings ring, the AWS SDK aws-lc); the redis crate uses the default, so install ring once.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Target {
    pub(super) fn from_spec(spec: &RedisSpec, ctx: &StepContext<'_>) -> Result<Target, StepError> {
        let r = ctx.resolver;
        let raw = spec
            .url
            .as_deref()
            .ok_or_else(|| StepError::new(Reason::Config, "redis step has no url"))?;
        let url_s = render_config(raw, r)?;
        let url = url::Url::parse(&url_s).map_err(|e| {
            // The URL may hold a password: show only what parsing said.
            StepError::new(Reason::Config, format!("invalid redis url: {e}"))
        })?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(StepError::new(
                Reason::Config,
                format!(
                    "redis url must use redis:// or rediss://, not {}://",
                    url.scheme()
                ),
            ));
        }
        let mut info = url
            .clone()
            .into_connection_info()
            .map_err(|e| StepError::new(Reason::Config, format!("invalid redis url: {e}")))?;
        if let Some(u) = &spec.username {
            info.redis.username = Some(render_config(u, r)?);
        }
        if let Some(p) = &spec.password {
            let pw = render_config(p, r)?;
            ctx.redactor.add("redis-password", &pw);
            info.redis.password = Some(pw);
        }
        if let Some(pw) = &info.redis.password {
            ctx.redactor.add("redis-password", pw);
        }
        if let Some(db) = spec.db {
            info.redis.db = db;
        }
        let display = match &info.addr {
            ConnectionAddr::Tcp(h, p) => format!("redis://{h}:{p}/{}", info.redis.db),
            ConnectionAddr::TcpTls { host, port, .. } => {
                format!("rediss://{host}:{port}/{}", info.redis.db)
            }
            other => format!("{other}"),
        };

        let tls = spec.tls.clone().unwrap_or_default();
        let client = if let ConnectionAddr::TcpTls { insecure, .. } = &mut info.addr {
            install_crypto_provider();
            // Certificate checks are off only when the scenario says `insecure: true`.
            *insecure = tls.insecure == Some(true);
            let root_cert = match &tls.ca_file {
                Some(ca) => Some(read_config_file(&render_config(ca, r)?, "CA file")?),
                None => None,
            };
            let client_tls = match (&tls.cert_file, &tls.key_file) {
                (Some(c), Some(k)) => Some(redis::ClientTlsConfig {
                    client_cert: read_config_file(&render_config(c, r)?, "client certificate")?,
                    client_key: read_config_file(&render_config(k, r)?, "client key")?,
                }),
                _ => None,
            };
            if root_cert.is_some() || client_tls.is_some() {
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls,
                        root_cert,
                    },
                )
            } else {
                redis::Client::open(info)
            }
        } else {
            if spec.tls.is_some() {
                return Err(StepError::new(
                    Reason::Config,
                    "`tls` needs a rediss:// URL",
                ));
            }
            redis::Client::open(info)
        }
        .map_err(|e| StepError::new(Reason::Config, format!("{display}: {e}")))?;

        let connect_timeout = spec.connect_timeout.map(|d| d.0).unwrap_or(ctx.timeout);
        let command_timeout = spec.command_timeout.map(|d| d.0).unwrap_or(ctx.timeout);
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(connect_timeout)
            .set_response_timeout(command_timeout);
        Ok(Target {
            client,
            config,
            connect_timeout,
            display,
        })
    }

    /// Connects and authenticates.
    pub(super) async fn connect(&self) -> Result<redis::aio::MultiplexedConnection, StepError> {
        let fut = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config);
        // The crate's own limit covers the connection; this one also covers AUTH/HELLO/SELECT.
        match tokio::time::timeout(self.connect_timeout + Duration::from_millis(100), fut).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(errors::step_error(&e, "connect", &self.display)),
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

/// Deletes `key` over `con`, reconnecting once if that connection is broken.
pub(super) async fn delete_key(
    con: redis::aio::MultiplexedConnection,
    target: &Target,
    key: &[u8],
) -> Result<(), String> {
    let mut con = con;
    let first: Result<i64, redis::RedisError> =
        redis::cmd("DEL").arg(key).query_async(&mut con).await;
    match first {
        Ok(_) => Ok(()),
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
            let mut fresh = target.connect().await.map_err(|e| e.message)?;
            redis::cmd("DEL")
                .arg(key)
                .query_async::<i64>(&mut fresh)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::url_password;

    #[test]
    fn finds_passwords_in_user_info_only() {
        assert_eq!(url_password("redis://default:pw@h:6379/0"), Some("pw"));
        assert_eq!(url_password("rediss://:p@ss@h"), Some("p@ss"));
        assert_eq!(url_password("redis://user@h"), None);
        assert_eq!(url_password("redis://h:6379"), None);
        assert_eq!(url_password("redis://h/0?x=a:b@c"), None);
    }
}
