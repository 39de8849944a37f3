//! Redis failures mapped to reasons: WRONGPASS/NOAUTH/NOPERM are `auth` (also when the
//! cluster client wraps them into a connection error), refused or lost connections and a
//! cluster node without a connection `connect`, certificate problems `tls`, slow replies
//! `timeout`, every other server error (MOVED after the retries, CLUSTERDOWN, READONLY on a
//! demoted primary, ...) `cache`.

use redis::{ErrorKind, RedisError};

use crate::outcome::Reason;
use crate::steps::StepError;

/// The error's own text plus its source chain (I/O errors carry the TLS or DNS cause there).
fn chain(e: &RedisError) -> String {
    let mut parts = vec![own_text(e)];
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// A server error with a code the client does not know, as the server sent it (`CODE detail`):
/// the client's `CODE: detail` would split a secret the reply echoes, and the redactor would
/// no longer recognise either half.
fn own_text(e: &RedisError) -> String {
    match (e.kind(), e.code(), e.detail()) {
        (ErrorKind::ExtensionError, Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

/// The reason for a Redis error.
pub fn classify(e: &RedisError) -> Reason {
    if e.kind() == ErrorKind::AuthenticationFailed {
        return Reason::Auth;
    }
    if matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM")) {
        return Reason::Auth;
    }
    if e.is_timeout() {
        return Reason::Timeout;
    }
    if e.kind() == ErrorKind::InvalidClientConfig {
        return Reason::Config;
    }
    if e.kind() == ErrorKind::ClusterConnectionNotFound {
        return Reason::Connect;
    }
    if e.is_io_error() {
        let text = chain(e).to_lowercase();
        return if ["wrongpass", "noauth", "noperm", "authentication failed"]
            .iter()
            .any(|t| text.contains(t))
        {
            Reason::Auth
        } else if text.contains("failed to lookup address")
            || text.contains("name or service not known")
        {
            Reason::Dns
        } else if text.contains("certificate")
            || text.contains("tls")
            || text.contains("handshake")
            || text.contains("corrupt message")
            || text.contains("peer sent")
        {
            Reason::Tls
        } else {
            Reason::Connect
        };
    }
    Reason::Cache
}

/// A step error for a failed operation (`connect`, `SET key`, `command 2 (GET)`) on `target`.
pub fn step_error(e: &RedisError, what: &str, target: &str) -> StepError {
    let reason = classify(e);
    let detail = match reason {
        Reason::Connect if e.is_connection_dropped() => format!("connection lost: {}", chain(e)),
        Reason::Connect if e.is_connection_refusal() => format!("connection refused: {}", chain(e)),
        _ => chain(e),
    };
    StepError::new(reason, format!("{what} on {target}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_codes_map_to_reasons() {
        let wrongpass = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert_eq!(classify(&wrongpass), Reason::Auth);
        let noauth =
            redis::make_extension_error("NOAUTH".into(), Some("Authentication required.".into()));
        assert_eq!(classify(&noauth), Reason::Auth);
        let wrongtype = redis::make_extension_error(
            "WRONGTYPE".into(),
            Some("Operation against a key holding the wrong kind of value".into()),
        );
        assert_eq!(classify(&wrongtype), Reason::Cache);
    }

    #[test]
    fn server_errors_are_shown_as_sent_so_an_echoed_secret_stays_whole() {
        let r = crate::secrets::Redactor::new();
        r.add("value", "tok3n-part1 part2");
        let e = redis::make_extension_error("tok3n-part1".into(), Some("part2".into()));
        let shown = r.redact(&step_error(&e, "command 0 (EVAL)", "redis://h:1/0").message);
        assert!(
            !shown.contains("tok3n") && !shown.contains("part2"),
            "{shown}"
        );
    }

    #[test]
    fn io_errors_map_to_connect_timeout_and_tls() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused), Reason::Connect);
        assert!(step_error(&refused, "connect", "redis://h:1/0")
            .message
            .contains("connection refused"));
        let slow = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(classify(&slow), Reason::Timeout);
        let cert = RedisError::from(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert_eq!(classify(&cert), Reason::Tls);
    }

    #[test]
    fn cluster_errors_keep_their_reason() {
        // The cluster client wraps a failed login into a connection error.
        let wrapped = RedisError::from((
            ErrorKind::IoError,
            "Failed to create initial connections",
            "WRONGPASS: invalid username-password pair".to_string(),
        ));
        assert_eq!(classify(&wrapped), Reason::Auth);
        let gone = RedisError::from((ErrorKind::ClusterConnectionNotFound, "No connections found"));
        assert_eq!(classify(&gone), Reason::Connect);
        let down =
            redis::make_extension_error("CLUSTERDOWN".into(), Some("The cluster is down".into()));
        assert_eq!(classify(&down), Reason::Cache);
    }
}
