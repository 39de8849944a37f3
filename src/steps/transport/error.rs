//! Transport failures and their reasons: what the connector saw (resolution, connect,
//! handshake) is classified where it happens; the rest is read from the error's source chain.

use crate::outcome::Reason;

/// A request that got no (complete) answer, with the reason it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub reason: Reason,
    pub message: String,
}

impl TransportError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        TransportError {
            reason,
            message: message.into(),
        }
    }

    /// A failure of hyper's client: the connector's own error when there is one in the chain.
    pub(crate) fn from_client(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = cur {
            if let Some(own) = s.downcast_ref::<TransportError>() {
                return own.clone();
            }
            cur = s.source();
        }
        let chain = crate::steps::http::error_chain(e);
        let reason =
            crate::steps::http::dns_or_tls(&chain.to_lowercase()).unwrap_or(Reason::Connect);
        TransportError::new(reason, chain)
    }

    /// The same failure with what was being done in front: `reading the body: ...`.
    pub fn context(self, what: &str) -> Self {
        TransportError::new(self.reason, format!("{what}: {}", self.message))
    }
}
