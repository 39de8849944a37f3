//! OTLP trace export settings, read from the standard `OTEL_*` environment variables.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

/// Export timeout when no `OTEL_EXPORTER_OTLP_*TIMEOUT` is set (the specification's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: the default.
    HttpProtobuf,
    /// `http/json`.
    HttpJson,
}

impl Protocol {
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        }
    }
}

/// Where and how to export. Its `Debug` shows header names only: their values are secrets.
#[derive(Clone)]
pub struct OtlpConfig {
    /// The traces URL requests are POSTed to.
    pub endpoint: url::Url,
    pub protocol: Protocol,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    /// Resource attributes, `service.name` first.
    pub resource: Vec<(String, String)>,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &super::shown_endpoint(&self.endpoint))
            .field("protocol", &self.protocol)
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("resource", &self.resource)
            .finish()
    }
}

/// A setting that cannot be used. Messages never show a header's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value}: flowprobe exports spans over OTLP/HTTP only; set it to `http/protobuf` (the default) or `http/json` and point the endpoint at the collector's HTTP port (4318)")]
    Protocol { var: &'static str, value: String },
    #[error("{var}: `{value}` is not an http(s) URL")]
    Endpoint { var: &'static str, value: String },
    #[error("{var}: entry {index} is not a valid `name=value` header (values are not shown)")]
    Header { var: &'static str, index: usize },
    #[error("{var}: `{value}` is not a whole number of milliseconds")]
    Timeout { var: &'static str, value: String },
}

impl OtlpConfig {
    /// The settings from the process environment; `None` when export is off.
    pub fn from_env() -> Result<Option<OtlpConfig>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The settings from `get` (an environment); `None` when export is off: no endpoint is
    /// set, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let Some(endpoint) = endpoint(&get)? else {
            return Ok(None);
        };
        let protocol = protocol(&get)?;
        let mut all = headers(
            "OTEL_EXPORTER_OTLP_HEADERS",
            get("OTEL_EXPORTER_OTLP_HEADERS"),
        )?;
        let own = headers(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            get("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        )?;
        all.retain(|(n, _)| !own.iter().any(|(o, _)| o == n));
        all.extend(own);
        Ok(Some(OtlpConfig {
            endpoint,
            protocol,
            headers: all,
            timeout: timeout(&get)?,
            resource: resource(&get),
        }))
    }
}

/// `..._TRACES_ENDPOINT` as is, else `..._ENDPOINT` with `/v1/traces` appended.
fn endpoint(get: &impl Fn(&str) -> Option<String>) -> Result<Option<url::Url>, ConfigError> {
    let (var, text) = if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v)
    } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        let base = v.trim_end_matches('/');
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("{base}/v1/traces"))
    } else {
        return Ok(None);
    };
    let bad = || ConfigError::Endpoint {
        var,
        value: text.clone(),
    };
    let url = url::Url::parse(&text).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad());
    }
    Ok(Some(url))
}

fn protocol(get: &impl Fn(&str) -> Option<String>) -> Result<Protocol, ConfigError> {
    let var = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find(|v| get(v).is_some());
    let Some(var) = var else {
        return Ok(Protocol::HttpProtobuf);
    };
    let value = get(var).unwrap_or_default();
    match value.as_str() {
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Ok(Protocol::HttpJson),
        _ => Err(ConfigError::Protocol { var, value }),
    }
}

/// `name=value,name=value` with percent-encoded values (the W3C baggage format).
fn headers(
    var: &'static str,
    text: Option<String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (index, entry) in text
        .split(',')
        .enumerate()
        .filter(|(_, e)| !e.trim().is_empty())
    {
        let bad = || ConfigError::Header {
            var,
            index: index + 1,
        };
        let (name, value) = entry.split_once('=').ok_or_else(bad)?;
        let name =
            HeaderName::from_bytes(percent_decode(name.trim()).as_bytes()).map_err(|_| bad())?;
        let mut value = HeaderValue::from_str(&percent_decode(value.trim())).map_err(|_| bad())?;
        value.set_sensitive(true);
        out.push((name, value));
    }
    Ok(out)
}

fn timeout(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
        if let Some(value) = get(var) {
            let ms: u64 = value
                .parse()
                .map_err(|_| ConfigError::Timeout { var, value })?;
            return Ok(Duration::from_millis(ms.max(1)));
        }
    }
    Ok(DEFAULT_TIMEOUT)
}

/// `OTEL_RESOURCE_ATTRIBUTES`, with `service.name` from `OTEL_SERVICE_NAME` (which wins), else
/// from the attributes, else `flowprobe`. Entries that are not `key=value` are ignored.
fn resource(get: &impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    for entry in get("OTEL_RESOURCE_ATTRIBUTES")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((k, v)) = entry.split_once('=') {
            let k = percent_decode(k.trim());
            if !k.is_empty() {
                attrs.retain(|(o, _)| *o != k);
                attrs.push((k, percent_decode(v.trim())));
            }
        }
    }
    let from_attrs = attrs
        .iter()
        .position(|(k, _)| k == "service.name")
        .map(|i| attrs.remove(i).1);
    let service = get("OTEL_SERVICE_NAME")
        .or(from_attrs)
        .unwrap_or_else(|| "flowprobe".to_string());
    attrs.insert(0, ("service.name".to_string(), service));
    attrs
}

/// `%XX` escapes decoded; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, ConfigError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn export_is_off_without_an_endpoint_or_when_disabled() {
        assert!(config(&[]).unwrap().is_none());
        assert!(config(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(config(&on).unwrap().is_some());
        let off = [on[0], ("OTEL_SDK_DISABLED", "TRUE")];
        assert!(config(&off).unwrap().is_none());
    }

    #[test]
    fn the_generic_endpoint_gets_the_traces_path_and_the_traces_one_is_used_as_is() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]);
        assert_eq!(
            c.unwrap().unwrap().endpoint.as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:9/custom",
            ),
        ]);
        assert_eq!(
            c.unwrap().unwrap().endpoint.as_str(),
            "http://127.0.0.1:9/custom"
        );
        assert!(config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318")]).is_err());
    }

    #[test]
    fn grpc_is_a_clear_error_and_json_is_accepted() {
        let e = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("OTLP/HTTP only"), "{msg}");
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]);
        assert_eq!(c.unwrap().unwrap().protocol, Protocol::HttpJson);
    }

    #[test]
    fn headers_are_decoded_and_never_shown() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20Zq9Secret, x-a=1",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-a=2"),
        ])
        .unwrap()
        .unwrap();
        let h: Vec<(String, &[u8])> = c
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes()))
            .collect();
        assert_eq!(
            h,
            vec![
                ("authorization".to_string(), &b"Bearer Zq9Secret"[..]),
                ("x-a".to_string(), &b"2"[..])
            ]
        );
        assert!(!format!("{c:?}").contains("Zq9Secret"));
        let e = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=ok,Zq9Secret"),
        ]);
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("entry 2") && !msg.contains("Zq9Secret"),
            "{msg}"
        );
    }

    #[test]
    fn service_name_comes_from_its_variable_then_the_resource_attributes() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let attrs = (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,service.name=a%2Cb",
        );
        let c = config(&[base, attrs]).unwrap().unwrap();
        assert_eq!(
            c.resource,
            vec![
                ("service.name".to_string(), "a,b".to_string()),
                ("deployment.environment".to_string(), "prod".to_string())
            ]
        );
        let c = config(&[base, attrs, ("OTEL_SERVICE_NAME", "probe")])
            .unwrap()
            .unwrap();
        assert_eq!(c.resource[0].1, "probe");
        assert_eq!(config(&[base]).unwrap().unwrap().resource[0].1, "flowprobe");
    }
}
