//! S3 failures mapped to reasons: signature and permission errors are `auth`, every other S3
//! error (NoSuchBucket, 5xx, ...) `storage`, transport errors `connect`/`tls`/`dns`/`timeout`.
//! Messages name the operation, bucket, key and S3 error code; never a credential.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::steps::http::{dns_or_tls, error_chain};

use crate::outcome::Reason;
use crate::steps::StepError;

/// S3 error codes that mean "who you are or what you may do".
const AUTH_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "MissingSecurityHeader",
    "AllAccessDisabled",
    "NotSignedUp",
    "RequestTimeTooSkewed",
];

/// The reason for an S3 error code and HTTP status.
pub fn reason_for(code: Option<&str>, status: Option<u16>) -> Reason {
    match (code, status) {
        (Some(c), _) if AUTH_CODES.contains(&c) => Reason::Auth,
        // HEAD answers carry no body, so no code: a bare 401/403 is still an auth failure.
        (None, Some(401 | 403)) => Reason::Auth,
        _ => Reason::Storage,
    }
}

/// Reason for a transport failure from its message chain.
pub fn transport_reason(chain: &str) -> Reason {
    let t = chain.to_lowercase();
    if let Some(reason) = dns_or_tls(&t) {
        reason
    } else if t.contains("timed out") || t.contains("timeout") {
        Reason::Timeout
    } else {
        Reason::Connect
    }
}

/// A step error for a failed SDK call: `op` is the S3 operation (`PutObject`), `target`
/// `s3://bucket/key at ENDPOINT`.
pub fn sdk_error<E, R>(op: &str, target: &str, e: &SdkError<E, R>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus,
{
    let chain = error_chain(e);
    match e {
        SdkError::ConstructionFailure(_) => StepError::new(
            Reason::Config,
            format!("{op} {target}: cannot build the request: {chain}"),
        ),
        SdkError::TimeoutError(_) => StepError::new(
            Reason::Timeout,
            format!("{op} {target}: no answer in time: {chain}"),
        ),
        SdkError::DispatchFailure(d) => {
            let reason = if d.is_timeout() {
                Reason::Timeout
            } else {
                transport_reason(&chain)
            };
            StepError::new(reason, format!("{op} {target}: {chain}"))
        }
        _ => {
            let status = e.raw_response().map(|r| r.status_code());
            let code = e.code();
            let mut msg = format!("{op} {target}:");
            if let Some(s) = status {
                msg.push_str(&format!(" HTTP {s}"));
            }
            if let Some(c) = code {
                msg.push_str(&format!(" {c}"));
            }
            match e.message() {
                Some(m) => msg.push_str(&format!(": {m}")),
                // HEAD answers carry no body, so no error code to show.
                None if code.is_none() && status.is_some() => {
                    msg.push_str(" (no error code in the answer)")
                }
                None if code.is_none() => msg.push_str(&format!(": {chain}")),
                None => {}
            }
            StepError::new(reason_for(code, status), msg)
        }
    }
}

/// The HTTP status of a raw response (the SDK's response type, or a test stand-in).
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The `<Code>` of an S3 XML error body (presigned requests answer with one).
pub fn xml_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_map_to_reasons() {
        assert_eq!(
            reason_for(Some("SignatureDoesNotMatch"), Some(403)),
            Reason::Auth
        );
        assert_eq!(
            reason_for(Some("InvalidAccessKeyId"), Some(403)),
            Reason::Auth
        );
        assert_eq!(reason_for(None, Some(403)), Reason::Auth);
        assert_eq!(reason_for(Some("NoSuchBucket"), Some(404)), Reason::Storage);
        assert_eq!(
            reason_for(Some("InternalError"), Some(500)),
            Reason::Storage
        );
        assert_eq!(reason_for(None, Some(503)), Reason::Storage);
    }

    #[test]
    fn transport_chains_map_to_reasons() {
        assert_eq!(
            transport_reason("io error: Connection refused (os error 111)"),
            Reason::Connect
        );
        assert_eq!(
            transport_reason("invalid peer certificate: UnknownIssuer"),
            Reason::Tls
        );
        assert_eq!(
            transport_reason("dns error: failed to lookup address"),
            Reason::Dns
        );
    }

    #[test]
    fn xml_codes_are_read_from_error_bodies() {
        let body =
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>x</Message></Error>";
        assert_eq!(xml_code(body).as_deref(), Some("AccessDenied"));
        assert_eq!(xml_code("nope"), None);
    }
}
