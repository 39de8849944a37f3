//! Run outcomes: the one data structure that every reporter (terminal, JSON, JUnit,
//! Prometheus, /status) reads. Messages in here are already redacted.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::Serialize;

/// Why a step failed: a closed set, the only error information that becomes a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Dns,
    Connect,
    Tls,
    Timeout,
    HttpStatus,
    Assertion,
    Auth,
    LoginForm,
    TokenInvalid,
    Storage,
    Integrity,
    Cache,
    Config,
    Internal,
}

impl Reason {
    /// Every reason, for pre-initialising counters.
    pub const ALL: [Reason; 14] = [
        Reason::Dns,
        Reason::Connect,
        Reason::Tls,
        Reason::Timeout,
        Reason::HttpStatus,
        Reason::Assertion,
        Reason::Auth,
        Reason::LoginForm,
        Reason::TokenInvalid,
        Reason::Storage,
        Reason::Integrity,
        Reason::Cache,
        Reason::Config,
        Reason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Timeout => "timeout",
            Reason::HttpStatus => "http_status",
            Reason::Assertion => "assertion",
            Reason::Auth => "auth",
            Reason::LoginForm => "login_form",
            Reason::TokenInvalid => "token_invalid",
            Reason::Storage => "storage",
            Reason::Integrity => "integrity",
            Reason::Cache => "cache",
            Reason::Config => "config",
            Reason::Internal => "internal",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Not run, because an earlier step failed or the scenario ran out of time.
    Skipped,
}

/// One evaluated assertion.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AssertionOutcome {
    /// The assertion as written.
    pub assertion: String,
    pub passed: bool,
    pub actual: String,
    pub expected: String,
    /// `file:line:column` of the assertion in the scenario.
    pub location: String,
}

/// The result of one step (all its attempts).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepOutcome {
    pub name: String,
    /// The step kind's key (`http`, `redis`, ...), as the registry names it.
    pub kind: &'static str,
    pub status: StepStatus,
    /// True for steps from the `finally:` block.
    pub cleanup: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Full, redacted failure message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(with = "secs")]
    #[schemars(with = "f64")]
    pub duration: Duration,
    /// Attempts made (1 when no retry was needed).
    pub attempts: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<Phase>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<AssertionOutcome>,
    /// Unix time when the first certificate of the peer's chain expires, when the step used
    /// TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<u64>,
    /// What the TLS handshake of the step's (last) connection showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
    /// Whether the step's (last) request opened a connection or reused one of this run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionUse>,
    /// `file:line` of the step.
    pub location: String,
    /// The step's span in the run's trace (16 hex digits), when the step ran. A step that made
    /// one attempt is one span, whose id its requests carried in `traceparent`; a step that
    /// retried has a span of its own with one child span per attempt (`attempt_spans`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// When the step started, when it ran.
    #[serde(with = "unix_secs_opt", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<f64>")]
    pub started_at: Option<SystemTime>,
    /// The HTTP status of the step's (last) response, for the kinds that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// One entry per attempt when the step made more than one: each attempt's span, whose id
    /// that attempt's requests carried in `traceparent`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempt_spans: Vec<AttemptSpan>,
    /// Facts worth knowing that are not failures (a response body cut at `max_body`), redacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One attempt of a step that retried: a child span of the step's span.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AttemptSpan {
    /// 1-based.
    pub attempt: u32,
    /// 16 hex digits: the span id this attempt's requests carried in `traceparent`.
    pub span_id: String,
    #[serde(with = "unix_secs")]
    #[schemars(with = "f64")]
    pub started_at: SystemTime,
    #[serde(with = "secs")]
    #[schemars(with = "f64")]
    pub duration: Duration,
    /// Why the attempt failed; none for the attempt that passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

/// What a TLS handshake showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TlsFacts {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The negotiated cipher suite (`TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The negotiated ALPN protocol (`h2`, `http/1.1`), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The peer's certificate chain as sent, leaf first.
    pub chain: Vec<CertificateFacts>,
}

impl TlsFacts {
    /// The certificate of the chain that expires first.
    pub fn earliest_expiry(&self) -> Option<&CertificateFacts> {
        self.chain.iter().min_by_key(|c| c.not_after)
    }

    /// When the chain's first certificate to expire does (what `certificate expires_in` reads).
    pub fn earliest_not_after(&self) -> Option<SystemTime> {
        self.earliest_expiry()
            .map(|c| SystemTime::UNIX_EPOCH + Duration::from_secs(c.not_after))
    }
}

/// One certificate of a peer's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CertificateFacts {
    pub subject: String,
    pub issuer: String,
    /// Unix time of `notAfter`.
    pub not_after: u64,
}

/// Whether a request opened its connection or reused one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionUse {
    New,
    Reused,
}

/// A named sub-timing of a step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Phase {
    pub name: String,
    #[serde(with = "secs")]
    #[schemars(with = "f64")]
    pub duration: Duration,
}

/// The result of one run of one scenario.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScenarioOutcome {
    pub scenario: String,
    pub file: String,
    pub run_id: String,
    /// The W3C trace id of this run (32 hex digits): every request the run's steps send
    /// carries it in `traceparent`.
    pub trace_id: String,
    /// The run's root span (16 hex digits): the parent of every step's span.
    pub span_id: String,
    /// 1-based iteration (`--iterations`).
    pub iteration: u32,
    #[serde(with = "unix_secs")]
    #[schemars(with = "f64")]
    pub started_at: SystemTime,
    #[serde(with = "secs")]
    #[schemars(with = "f64")]
    pub duration: Duration,
    pub success: bool,
    /// Why the run failed: set whenever `success` is false. The first failed step's reason, or
    /// a run-level reason when no step failed (`config`: a secret or var could not be read;
    /// `timeout`: the scenario's deadline passed between steps; `internal`: a bug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Set when the scenario ran out of its overall time budget.
    pub timed_out: bool,
    /// The run-level failure message (a secret that cannot be read, the deadline, an internal
    /// error), redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set when shutdown cut the run short: its steps were cancelled and only `finally` and the
    /// clean-ups ran. Such a run says nothing about the target and is not counted in metrics.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// Clean-up actions (deleting what the run created) that failed, redacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cleanup_errors: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub steps: Vec<StepOutcome>,
}

impl ScenarioOutcome {
    /// The first failed step, which decides the run's reason.
    pub fn first_failure(&self) -> Option<&StepOutcome> {
        self.steps.iter().find(|s| s.status == StepStatus::Failed)
    }

    /// The reason of a failure that belongs to the run, not to a step: the run failed but no
    /// step did (see [`ScenarioOutcome::reason`]). Reporters show it as its own test case.
    pub fn run_level_failure(&self) -> Option<Reason> {
        if self.success || self.first_failure().is_some() {
            return None;
        }
        Some(self.reason.unwrap_or(Reason::Internal))
    }

    /// Steps that passed only after a retry.
    pub fn retried_passes(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Passed && s.attempts > 1)
            .count()
    }
}

/// Outcomes for unit tests of the readers (reports, metrics, /status, scheduler): fill in the
/// fields a test does not care about, so that a new field is added here once.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A one-attempt `http` step of 5 ms at `shop.yaml:3`; a failed one has reason
    /// `http_status`.
    pub fn step(name: &str, status: StepStatus) -> StepOutcome {
        StepOutcome {
            name: name.into(),
            kind: "http",
            status,
            cleanup: false,
            reason: (status == StepStatus::Failed).then_some(Reason::HttpStatus),
            message: None,
            duration: Duration::from_millis(5),
            attempts: 1,
            phases: Vec::new(),
            assertions: Vec::new(),
            certificate_not_after: None,
            tls: None,
            connection: None,
            location: "shop.yaml:3".into(),
            span_id: (status != StepStatus::Skipped).then(|| "b7ad6b7169203331".into()),
            started_at: (status != StepStatus::Skipped).then_some(SystemTime::UNIX_EPOCH),
            http_status: None,
            attempt_spans: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Iteration 1 of `scenario` from `shop.yaml`: passed when every step did, with the first
    /// failed step's reason.
    pub fn run(scenario: &str, steps: Vec<StepOutcome>) -> ScenarioOutcome {
        ScenarioOutcome {
            scenario: scenario.into(),
            file: "shop.yaml".into(),
            run_id: "r1".into(),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "00f067aa0ba902b7".into(),
            iteration: 1,
            started_at: SystemTime::UNIX_EPOCH,
            duration: steps.iter().map(|s| s.duration).sum(),
            success: steps.iter().all(|s| s.status == StepStatus::Passed),
            reason: steps.iter().find_map(|s| s.reason),
            timed_out: false,
            message: None,
            cleanup_errors: Vec::new(),
            cancelled: false,
            labels: BTreeMap::new(),
            steps,
        }
    }
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
    }
}

mod unix_secs_opt {
    use serde::Serializer;
    use std::time::SystemTime;
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::unix_secs::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

mod unix_secs {
    use serde::Serializer;
    use std::time::SystemTime;
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        s.serialize_f64((secs * 1e3).round() / 1e3)
    }
}
