//! The `http` step's spec: the request, TLS settings, `resolve` overrides, redirects, a body
//! cap and connection reuse, with load-time checks; and failure classification shared by the
//! clients that stay on reqwest. Sending is in `http_request.rs`.

use std::net::{IpAddr, SocketAddr};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{render_config, Kind, StepContext, StepError};
use crate::assert::OwnQuery;
use crate::outcome::Reason;
use crate::scenario::ranges::{Problems, Range, GIB};
use crate::template::Resolve;
use crate::units::Size;

/// Default cap on the response body read.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// An HTTP request. Every string may use `${{ }}` templates.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// GET (default), POST, PUT, DELETE, PATCH, HEAD, OPTIONS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Absolute http:// or https:// URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Query parameters appended to the URL.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Request headers; a step's headers override the defaults' headers of the same name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Request body: exactly one of raw, json, form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
    /// Authentication: exactly one of basic, bearer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    /// Follow redirects (default false, so `status == 302` can be asserted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// Most redirects followed when `follow_redirects` is on (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_redirects: Option<u32>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Reach a host name at a chosen address, like `curl --resolve`: `{shop.example.com: 10.0.0.5}`
    /// or `{shop.example.com: "127.0.0.1:8443"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub resolve: IndexMap<String, String>,
    /// `1.1` or `2`; by default HTTP/2 when the server offers it over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<HttpVersion>,
    /// Most bytes of the response body read (default 1MiB); the rest is discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Size>,
    /// Keep the connection open for the later requests of the same run to the same host with
    /// the same settings (default false: every request opens its own connection, as a user's
    /// first visit does). A reused connection reports `connection: reused` and no `dns`,
    /// `connect` or `tls` phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_connection: Option<bool>,
}

/// A request body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpBody {
    /// Text sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// A JSON document (written as YAML); string leaves may use templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// Form fields, sent as application/x-www-form-urlencoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<IndexMap<String, String>>,
}

/// Request authentication.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// A bearer token, usually `${{ steps.login.access_token }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
}

/// HTTP basic authentication.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// TLS client settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// PEM file of extra trusted CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM client certificate (mTLS); needs `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM private key of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Accept any certificate. Only when written explicitly; never a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

/// HTTP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum HttpVersion {
    #[serde(rename = "1.1")]
    Http1,
    #[serde(rename = "2")]
    Http2,
}

impl<'de> Deserialize<'de> for HttpVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not an untagged enum, so a bad value is reported at its own line.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = HttpVersion;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("1.1 or 2")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HttpVersion, E> {
                match v {
                    "1.1" | "1" => Ok(HttpVersion::Http1),
                    "2" | "2.0" => Ok(HttpVersion::Http2),
                    other => Err(E::custom(format!(
                        "unknown HTTP version `{other}`: expected 1.1 or 2"
                    ))),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<HttpVersion, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HttpVersion, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HttpVersion, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

impl HttpSpec {
    /// This spec with unset fields taken from `defaults`; maps are merged, this spec winning.
    pub fn merged_over(&self, defaults: &HttpSpec) -> HttpSpec {
        let mut headers = defaults.headers.clone();
        for (k, v) in &self.headers {
            headers.shift_remove(k);
            headers.insert(k.clone(), v.clone());
        }
        let mut resolve = defaults.resolve.clone();
        resolve.extend(self.resolve.clone());
        let mut query = defaults.query.clone();
        query.extend(self.query.clone());
        HttpSpec {
            method: self.method.clone().or_else(|| defaults.method.clone()),
            url: self.url.clone().or_else(|| defaults.url.clone()),
            query,
            headers,
            body: self.body.clone().or_else(|| defaults.body.clone()),
            auth: self.auth.clone().or_else(|| defaults.auth.clone()),
            follow_redirects: self.follow_redirects.or(defaults.follow_redirects),
            max_redirects: self.max_redirects.or(defaults.max_redirects),
            tls: self.tls.clone().or_else(|| defaults.tls.clone()),
            resolve,
            version: self.version.or(defaults.version),
            max_body: self.max_body.or(defaults.max_body),
            reuse_connection: self.reuse_connection.or(defaults.reuse_connection),
        }
    }

    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        match &self.url {
            None => errs.push((String::new(), "http step needs a `url`".to_string())),
            Some(u) if !u.starts_with("${{") => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    errs.push((
                        "url".into(),
                        format!("url must start with http:// or https://, got `{u}`"),
                    ));
                }
            }
            Some(_) => {}
        }
        if let Some(m) = &self.method {
            if reqwest::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty() {
                errs.push(("method".into(), format!("invalid HTTP method `{m}`")));
            }
        }
        if let Some(b) = &self.body {
            let n = [b.raw.is_some(), b.json.is_some(), b.form.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if n != 1 {
                errs.push((
                    "body".into(),
                    "body takes exactly one of `raw`, `json`, `form`".into(),
                ));
            }
        }
        if let Some(a) = &self.auth {
            if a.basic.is_some() == a.bearer.is_some() {
                errs.push((
                    "auth".into(),
                    "auth takes exactly one of `basic`, `bearer`".into(),
                ));
            }
        }
        if let Some(t) = &self.tls {
            if t.cert_file.is_some() != t.key_file.is_some() {
                errs.push((
                    "tls".into(),
                    "a client certificate needs both `cert_file` and `key_file`".into(),
                ));
            }
        }
        for (host, addr) in &self.resolve {
            if !addr.contains("${{") && parse_resolve_addr(addr, 0).is_none() {
                errs.push((
                    format!("resolve.{host}"),
                    format!("`{addr}` is not an IP address or IP:port"),
                ));
            }
        }
        errs
    }
}

pub(crate) fn parse_resolve_addr(addr: &str, default_port: u16) -> Option<SocketAddr> {
    addr.parse::<SocketAddr>().ok().or_else(|| {
        addr.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

pub(crate) fn render_json(
    v: &serde_json::Value,
    r: &dyn Resolve,
) -> Result<serde_json::Value, StepError> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(render_config(s, r)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| render_json(x, r))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                out.insert(k.clone(), render_json(x, r)?);
            }
            serde_json::Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Every message in an error's source chain, joined, without the wrappers that repeat the URL.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = cur {
        let m = s.to_string();
        let wrapper = m.starts_with("error sending request")
            || m.starts_with("client error (")
            || m.starts_with("error decoding response body")
            || m.starts_with("request or response body error");
        if !wrapper && !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// `dns` or `tls` when a lowercased error chain tells of a failed lookup or a failed
/// certificate check or handshake (hyper, rustls and the AWS SDK word them alike).
pub(crate) fn dns_or_tls(chain: &str) -> Option<Reason> {
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        Some(Reason::Dns)
    } else if chain.contains("certificate")
        || chain.contains("tls")
        || chain.contains("handshake")
        || chain.contains("unknownissuer")
        || chain.contains("peer sent")
    {
        Some(Reason::Tls)
    } else {
        None
    }
}

/// Maps a transport error to a reason by its kind and its source chain.
pub fn classify(e: &reqwest::Error) -> Reason {
    if e.is_timeout() {
        return Reason::Timeout;
    }
    if let Some(reason) = dns_or_tls(&error_chain(e).to_lowercase()) {
        reason
    } else if e.is_redirect() {
        Reason::HttpStatus
    } else if e.is_builder() {
        Reason::Config
    } else {
        Reason::Connect
    }
}

/// Largest `max_redirects`.
pub const MAX_REDIRECTS: Range = Range::Int(0, 100);
/// Largest body cap (`http.max_body`, `s3.get.max_body`).
pub const MAX_BODY: Range = Range::Size(0, GIB);

impl Kind for HttpSpec {
    const KEY: &'static str = "http";
    const ABOUT: &'static str = "An HTTP request.";
    const QUERIES: &'static [&'static str] = &[
        "status",
        "header",
        "body",
        "jsonpath",
        "regex",
        "duration",
        "certificate",
        "phase",
        "url",
    ];
    const OWN_QUERIES: &'static [OwnQuery] = &[OwnQuery::output("url", &["url"])];
    const OUTPUTS: &'static [&'static str] = &["status", "url"];
    const HTTP_STATUS: bool = true;
    const HAS_DEFAULTS: bool = true;
    const RANGES: &'static [(&'static str, Range)] =
        &[("max_redirects", MAX_REDIRECTS), ("max_body", MAX_BODY)];

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn check_ranges(&self, problems: &mut Problems) {
        problems.int(
            "max_redirects",
            self.max_redirects.map(i64::from),
            MAX_REDIRECTS,
        );
        problems.size("max_body", self.max_body, MAX_BODY);
    }

    fn merged_over(&self, defaults: &HttpSpec) -> HttpSpec {
        HttpSpec::merged_over(self, defaults)
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<super::Observation, StepError>> + Send {
        super::http_request::execute(self, ctx)
    }
}
