//! OTLP/HTTP export of each run's spans (off unless an `OTEL_EXPORTER_OTLP_*ENDPOINT` is
//! set): `config` reads the standard environment, `spans` builds a run's spans from its
//! outcome, `export` queues and sends them without ever holding a run up.

pub mod config;
mod export;
pub mod spans;

use std::time::Duration;

pub use self::config::{ConfigError, OtlpConfig, Protocol};
pub use self::export::{ExportCounts, Exporter, Recorder};

/// Longest wait at exit for queued spans to go out.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// The exporter the environment asks for, started; `None` when export is off. Call within
/// the tokio runtime.
pub fn from_env() -> Result<Option<Exporter>, ConfigError> {
    Ok(OtlpConfig::from_env()?.map(Exporter::start))
}

/// Sends what is queued, waiting at most [`SHUTDOWN_FLUSH`], and stops; logs the counts and
/// gives them.
pub async fn shutdown(exporter: Option<Exporter>) -> Option<ExportCounts> {
    let exporter = exporter?;
    let counts = exporter.shutdown(SHUTDOWN_FLUSH).await;
    tracing::info!(
        exported_spans = counts.exported_spans,
        failed_exports = counts.failed_exports,
        dropped_spans = counts.dropped_spans,
        "OTLP export stopped"
    );
    Some(counts)
}

/// An endpoint for logs: scheme, host, port and path, never credentials or a query.
pub fn shown_endpoint(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}
