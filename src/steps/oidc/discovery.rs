//! OpenID Provider discovery (`/.well-known/openid-configuration`) and the issuer's JWKS,
//! cached per issuer between runs with a TTL and fetched again when a token names a key the
//! cached set does not have (the IdP rotated its keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{IssuerUrl, JsonWebKey};

use super::client::{fetch_json, Fetched, Http};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::StepError;

/// What discovery found: the typed metadata, and the raw document for fields the typed one
/// lacks (`end_session_endpoint`, `authorization_response_iss_parameter_supported`).
pub struct Discovered {
    pub metadata: CoreProviderMetadata,
    pub raw: serde_json::Value,
}

impl Discovered {
    pub fn end_session_endpoint(&self) -> Option<&str> {
        self.raw.get("end_session_endpoint")?.as_str()
    }

    /// RFC 9207: the provider puts `iss` into every authorization response.
    pub fn iss_in_authorization_response(&self) -> bool {
        self.raw
            .get("authorization_response_iss_parameter_supported")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

/// Fetches and checks the discovery document of `issuer`.
pub async fn discover(http: &Http, issuer: &str) -> Result<Discovered, StepError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let Fetched { status, body } = fetch_json(http, &url, "discovery").await?;
    if status != 200 {
        return Err(StepError::new(
            Reason::HttpStatus,
            format!("discovery: HTTP {status} from {url}"),
        ));
    }
    let raw: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        StepError::new(
            Reason::HttpStatus,
            format!("discovery: {url} did not answer with JSON: {e}"),
        )
    })?;
    let metadata: CoreProviderMetadata = serde_json::from_value(raw.clone()).map_err(|e| {
        StepError::new(
            Reason::HttpStatus,
            format!("discovery: {url} is not a valid OpenID provider configuration: {e}"),
        )
    })?;
    let expected = IssuerUrl::new(issuer.to_string())
        .map_err(|e| StepError::new(Reason::Config, format!("invalid issuer `{issuer}`: {e}")))?;
    if metadata.issuer() != &expected {
        return Err(StepError::new(
            Reason::Config,
            format!(
                "discovery: the provider calls itself `{}`, not `{issuer}` (the issuer must match exactly)",
                metadata.issuer().as_str()
            ),
        ));
    }
    Ok(Discovered { metadata, raw })
}

struct Cached {
    keys: CoreJsonWebKeySet,
    fetched: Instant,
}

/// JWKS per issuer + jwks_uri, shared by every run in the process (kept in the steps'
/// [`Shared`](crate::steps::Shared) state).
#[derive(Default)]
pub struct JwksCache(Mutex<HashMap<String, Cached>>);

/// The issuer's signing keys for one attempt: from the cache while it is younger than the
/// TTL, fetched (phase `jwks`) otherwise, and fetched once more for an unknown `kid`.
pub struct Keys<'a> {
    http: &'a Http,
    cache: std::sync::Arc<JwksCache>,
    cache_key: String,
    uri: String,
    ttl: Duration,
    current: Option<CoreJsonWebKeySet>,
    fetched_now: bool,
}

impl<'a> Keys<'a> {
    pub fn new(
        http: &'a Http,
        cache: std::sync::Arc<JwksCache>,
        issuer: &str,
        d: &Discovered,
        ttl: Duration,
    ) -> Self {
        let uri = d.metadata.jwks_uri().url().to_string();
        Keys {
            http,
            cache,
            cache_key: format!("{issuer} {uri}"),
            uri,
            ttl,
            current: None,
            fetched_now: false,
        }
    }

    /// Keys able to check a token signed with `kid` (when given).
    pub async fn for_kid(
        &mut self,
        kid: Option<&str>,
        obs: &mut Observation,
    ) -> Result<&CoreJsonWebKeySet, StepError> {
        if self.current.is_none() {
            self.current = self.cached();
        }
        let known = |set: &CoreJsonWebKeySet| match kid {
            None => true,
            Some(k) => set
                .keys()
                .iter()
                .any(|key| key.key_id().map(|id| id.as_str()) == Some(k)),
        };
        let stale = match &self.current {
            None => true,
            // One refetch per attempt: the key may have been rotated since it was cached.
            Some(set) => !known(set) && !self.fetched_now,
        };
        if stale {
            if let Some(k) = kid.filter(|_| self.current.is_some()) {
                tracing::debug!(kid = k, jwks_uri = %self.uri, "token names an unknown key: fetching the JWKS again");
            }
            let started = Instant::now();
            let set = self.fetch().await;
            add_phase(obs, "jwks", started.elapsed());
            let set = set?;
            if let Ok(mut c) = self.cache.0.lock() {
                c.insert(
                    self.cache_key.clone(),
                    Cached {
                        keys: set.clone(),
                        fetched: Instant::now(),
                    },
                );
            }
            self.current = Some(set);
            self.fetched_now = true;
        }
        self.current
            .as_ref()
            .ok_or_else(|| StepError::new(Reason::Internal, "JWKS missing after fetch"))
    }

    fn cached(&self) -> Option<CoreJsonWebKeySet> {
        if self.ttl.is_zero() {
            return None;
        }
        let c = self.cache.0.lock().ok()?;
        let entry = c.get(&self.cache_key)?;
        (entry.fetched.elapsed() < self.ttl).then(|| entry.keys.clone())
    }

    async fn fetch(&self) -> Result<CoreJsonWebKeySet, StepError> {
        let Fetched { status, body } = fetch_json(self.http, &self.uri, "jwks").await?;
        if status != 200 {
            return Err(StepError::new(
                Reason::HttpStatus,
                format!("jwks: HTTP {status} from {}", self.uri),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            StepError::new(
                Reason::HttpStatus,
                format!("jwks: {} is not a JSON Web Key Set: {e}", self.uri),
            )
        })
    }
}

/// Adds to a phase, merging repeated phases of one name.
pub fn add_phase(obs: &mut Observation, name: &str, d: Duration) {
    match obs.phases.iter_mut().find(|(n, _)| n == name) {
        Some((_, total)) => *total += d,
        None => obs.add_phase(name, d),
    }
}
