//! What a step saw: the data that assertions and captures query, whatever the step kind.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::outcome::Reason;

/// The result of one attempt of a step, before assertions.
#[derive(Debug, Default)]
pub struct Observation {
    /// HTTP status (http, s3 `status`).
    pub status: Option<u16>,
    /// Response headers in arrival order (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Response body (at most the step's cap).
    pub body: Vec<u8>,
    /// True when the body was longer than the cap and was cut.
    pub body_truncated: bool,
    /// Named sub-timings: discovery, token, first_byte, ...
    pub phases: Vec<(String, Duration)>,
    /// The earliest `notAfter` of the peer's chain (leaf or intermediate), when TLS was used.
    pub cert_not_after: Option<SystemTime>,
    /// What the TLS handshake showed, when the step's client can tell.
    pub tls: Option<crate::outcome::TlsFacts>,
    /// Whether the (last) request opened a connection or reused one, when the client can tell.
    pub connection: Option<crate::outcome::ConnectionUse>,
    /// Step-kind outputs (`access_token`, `claims`, `replies`, `size`, `etag`, ...), usable in
    /// queries and as `steps.NAME.OUTPUT` in templates.
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Outputs whose values are secret (redacted wherever they appear).
    pub secret_outputs: Vec<String>,
    /// Wall time of the attempt; set by the runner.
    pub duration: Duration,
    /// A failure the step saw that a probe may also expect: it fails the step unless one of
    /// the step's assertions reads its query word, and then the assertions decide.
    pub unless_asserted: Option<UnlessAsserted>,
    json: OnceLock<Option<serde_json::Value>>,
}

/// A failure that stands unless an assertion reads the query word `query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlessAsserted {
    pub query: &'static str,
    pub reason: Reason,
    pub message: String,
}

impl Observation {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, once; `None` when it is not JSON.
    pub fn body_json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(&self.body).ok())
            .as_ref()
    }

    /// Duration of a named phase.
    pub fn phase(&self, name: &str) -> Option<Duration> {
        self.phases.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }

    /// Sets what the TLS handshake showed, and with it `cert_not_after`: the chain's earliest
    /// expiry, which `certificate expires_in` reads.
    pub fn set_tls(&mut self, facts: Option<crate::outcome::TlsFacts>) {
        self.cert_not_after = facts
            .as_ref()
            .and_then(crate::outcome::TlsFacts::earliest_not_after);
        self.tls = facts;
    }

    /// Adds a phase timing.
    pub fn add_phase(&mut self, name: &str, d: Duration) {
        self.phases.push((name.to_string(), d));
    }

    /// An output by dotted path (`claims.sub`).
    pub fn output(&self, path: &[String]) -> Option<&serde_json::Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.outputs.get(first)?;
        for seg in rest {
            v = match v {
                serde_json::Value::Object(m) => m.get(seg)?,
                serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }
}
