//! The grants, through openidconnect: authorization code (PKCE S256, state, nonce, RFC 9207
//! `iss`) driven by the headless browser, password, client credentials and refresh; token
//! endpoint errors mapped to reasons.

use std::time::Instant;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreTokenResponse,
};
use openidconnect::{
    AuthorizationCode, ConfigurationError, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpClientError, Nonce, PkceCodeChallenge, RefreshToken, RequestTokenError,
    ResourceOwnerPassword, ResourceOwnerUsername, Scope, StandardErrorResponse,
};
use url::Url;

use super::browser::{Browser, LoginPlan, Rule};
use super::client::Recording;
use super::discovery::{add_phase, Discovered};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::transport::TransportError;
use crate::steps::StepError;

/// The client as built from discovery.
pub type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type TokenError = RequestTokenError<
    HttpClientError<TransportError>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

/// What a grant returned, and the nonce the ID token must carry (authorization code only).
pub struct Granted {
    pub response: CoreTokenResponse,
    pub nonce: Option<Nonce>,
}

/// What the authorization code flow needs besides the client.
pub struct CodeRequest<'a> {
    pub redirect_uri: Url,
    pub scopes: &'a [String],
    pub params: &'a [(String, String)],
    pub resource: Option<&'a str>,
    pub login: &'a LoginPlan,
    pub rules: &'a [Rule],
}

/// How much of an error answer messages quote.
pub const EXCERPT_CHARS: usize = 200;

fn no_token_endpoint(_: ConfigurationError) -> StepError {
    StepError::new(
        Reason::HttpStatus,
        "the provider's discovery document names no token_endpoint",
    )
}

/// Headless login: authorize → login form → follow-up pages → redirect with the code; then
/// the code is exchanged with the PKCE verifier.
pub async fn authorization_code(
    client: &Client,
    http: &Recording,
    browser: &mut Browser,
    provider: &Discovered,
    req: CodeRequest<'_>,
    obs: &mut Observation,
) -> Result<Granted, StepError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut auth = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in req.scopes.iter().filter(|s| s.as_str() != "openid") {
        auth = auth.add_scope(Scope::new(s.clone()));
    }
    if let Some(r) = req.resource {
        auth = auth.add_extra_param("resource", r.to_string());
    }
    for (k, v) in req.params {
        auth = auth.add_extra_param(k.clone(), v.clone());
    }
    let (url, state, nonce) = auth.url();

    let callback = browser
        .walk(
            url,
            Some(&req.redirect_uri),
            Some(req.login),
            req.rules,
            "authorize",
            obs,
        )
        .await?
        .ok_or_else(|| StepError::new(Reason::Internal, "walk ended without the redirect"))?;
    let code = check_callback(&callback, &state, provider)?;
    // Both are credentials until the exchange; a token endpoint that fails may echo them.
    http.redactor.add("authorization_code", &code);
    http.redactor.add("pkce_verifier", verifier.secret());

    let started = Instant::now();
    let mut exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(no_token_endpoint)?
        .set_pkce_verifier(verifier);
    if let Some(r) = req.resource {
        exchange = exchange.add_extra_param("resource", r.to_string());
    }
    let result = exchange.request_async(http).await;
    add_phase(obs, "token", started.elapsed());
    let response = result.map_err(|e| token_error(e, http, "token"))?;
    Ok(Granted {
        response,
        nonce: Some(nonce),
    })
}

/// Reads the authorization response: `error`, then `state` and `iss` checks, then the code.
fn check_callback(
    callback: &Url,
    state: &CsrfToken,
    provider: &Discovered,
) -> Result<String, StepError> {
    let get = |k: &str| {
        callback
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(error) = get("error") {
        let desc = get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let reason = match error.as_str() {
            "access_denied"
            | "login_required"
            | "consent_required"
            | "interaction_required"
            | "account_selection_required"
            | "unauthorized_client"
            | "invalid_client" => Reason::Auth,
            "server_error" | "temporarily_unavailable" => Reason::HttpStatus,
            _ => Reason::Config,
        };
        return Err(StepError::new(
            reason,
            format!("authorization response: {error}{desc}"),
        ));
    }
    if get("state").as_deref() != Some(state.secret().as_str()) {
        return Err(StepError::new(
            Reason::TokenInvalid,
            "authorization response check `state` failed: it does not match the state sent",
        ));
    }
    let issuer = provider.metadata.issuer().as_str();
    match get("iss") {
        Some(iss) if iss != issuer => {
            return Err(StepError::new(
                Reason::TokenInvalid,
                format!("authorization response check `iss` failed: `{iss}`, expected `{issuer}`"),
            ))
        }
        None if provider.iss_in_authorization_response() => {
            return Err(StepError::new(
                Reason::TokenInvalid,
                "authorization response check `iss` failed: missing, though the provider announces authorization_response_iss_parameter_supported",
            ))
        }
        _ => {}
    }
    get("code").ok_or_else(|| {
        StepError::new(
            Reason::HttpStatus,
            "authorization response: redirect without `code` or `error`",
        )
    })
}

/// Resource owner password credentials.
pub async fn password(
    client: &Client,
    http: &Recording,
    username: &str,
    password: &str,
    scopes: &[String],
    resource: Option<&str>,
    obs: &mut Observation,
) -> Result<Granted, StepError> {
    let user = ResourceOwnerUsername::new(username.to_string());
    let pass = ResourceOwnerPassword::new(password.to_string());
    let mut req = client
        .exchange_password(&user, &pass)
        .map_err(no_token_endpoint)?
        .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
    if let Some(r) = resource {
        req = req.add_extra_param("resource", r.to_string());
    }
    let started = Instant::now();
    let result = req.request_async(http).await;
    add_phase(obs, "token", started.elapsed());
    Ok(Granted {
        response: result.map_err(|e| token_error(e, http, "token"))?,
        nonce: None,
    })
}

/// Client credentials.
pub async fn client_credentials(
    client: &Client,
    http: &Recording,
    scopes: &[String],
    resource: Option<&str>,
    obs: &mut Observation,
) -> Result<Granted, StepError> {
    let mut req = client
        .exchange_client_credentials()
        .map_err(no_token_endpoint)?
        .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
    if let Some(r) = resource {
        req = req.add_extra_param("resource", r.to_string());
    }
    let started = Instant::now();
    let result = req.request_async(http).await;
    add_phase(obs, "token", started.elapsed());
    Ok(Granted {
        response: result.map_err(|e| token_error(e, http, "token"))?,
        nonce: None,
    })
}

/// Refresh: new tokens for a refresh token an earlier step got.
pub async fn refresh(
    client: &Client,
    http: &Recording,
    token: &str,
    scopes: &[String],
    resource: Option<&str>,
    obs: &mut Observation,
) -> Result<Granted, StepError> {
    let rt = RefreshToken::new(token.to_string());
    let mut req = client
        .exchange_refresh_token(&rt)
        .map_err(no_token_endpoint)?
        .add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
    if let Some(r) = resource {
        req = req.add_extra_param("resource", r.to_string());
    }
    let started = Instant::now();
    let result = req.request_async(http).await;
    add_phase(obs, "refresh", started.elapsed());
    Ok(Granted {
        response: result.map_err(|e| token_error(e, http, "refresh"))?,
        nonce: None,
    })
}

/// Maps a token endpoint failure to a reason. Bodies of successful answers are never quoted:
/// they hold tokens.
fn token_error(e: TokenError, http: &Recording, what: &str) -> StepError {
    let status = http.status();
    let at = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    match e {
        RequestTokenError::ServerResponse(err) => {
            use CoreErrorResponseType as T;
            let reason = match err.error() {
                T::InvalidClient | T::InvalidGrant | T::UnauthorizedClient => Reason::Auth,
                T::InvalidRequest | T::InvalidScope | T::UnsupportedGrantType => Reason::Config,
                T::Extension(x) if x == "access_denied" => Reason::Auth,
                T::Extension(x) if x == "invalid_target" => Reason::Config,
                T::Extension(_) => Reason::HttpStatus,
            };
            let code = serde_json::to_value(err.error())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", err.error()));
            let desc = err
                .error_description()
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            StepError::new(reason, format!("{what}: {code}{desc}{at}"))
        }
        RequestTokenError::Request(HttpClientError::Reqwest(re)) => {
            // The message starts with the URL, without its query.
            StepError::new(re.reason, format!("{what}: {}", re.message))
        }
        RequestTokenError::Request(other) => {
            StepError::new(Reason::Connect, format!("{what}: {other}"))
        }
        RequestTokenError::Parse(pe, body) if status != Some(200) => {
            // Redacted before it is cut: the answer may echo the request (client secret,
            // password, code), and a cut secret is no longer recognised.
            let text = http
                .redactor
                .redact_and_cut(&String::from_utf8_lossy(&body), EXCERPT_CHARS);
            let _ = pe;
            StepError::new(
                Reason::HttpStatus,
                format!(
                    "{what}: the token endpoint failed{at}: {}",
                    text.replace('\n', " ")
                ),
            )
        }
        RequestTokenError::Parse(pe, _) => {
            let path = pe.path().to_string();
            let reason = if path.starts_with("id_token") {
                Reason::TokenInvalid
            } else {
                Reason::HttpStatus
            };
            let prefix = if reason == Reason::TokenInvalid {
                "ID token check `format` failed: "
            } else {
                ""
            };
            StepError::new(
                reason,
                // serde's message may quote a value (a token): only its category is shown.
                format!(
                    "{what}: {prefix}the token response does not parse at `{path}` ({:?} error)",
                    pe.inner().classify()
                ),
            )
        }
        RequestTokenError::Other(m) => {
            StepError::new(Reason::HttpStatus, format!("{what}: {m}{at}"))
        }
    }
}
