//! The `oidc` step: discovery, a grant (headless authorization code + PKCE through the IdP's
//! login form, password, client credentials, refresh), token validation against the issuer's
//! JWKS, optional userinfo and end-session, and the outputs later steps use
//! (`${{ steps.login.access_token }}`, `${{ steps.login.claims.sub }}`).

mod browser;
mod client;
mod discovery;
mod flows;
mod form;
mod kind;
mod presets;
mod spec;
mod suggest;
mod tokens;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::CoreClient;
use openidconnect::{AuthType, ClientId, ClientSecret, OAuth2TokenResponse, TokenResponse};
use scraper::Selector;
use serde_json::Value as Json;
use url::Url;

use self::browser::{Browser, LoginPlan, Rule};
use self::client::{strip_query, transport_error, Http, NetLog, Recording};
use self::discovery::{add_phase, Discovered, Keys};
use self::flows::{CodeRequest, Granted};
use self::form::selector;
use self::tokens::{header_kid, verify_access_token, verify_id_token, Expect};
use super::{render_config, StepContext, StepError};
use crate::observation::Observation;
use crate::outcome::Reason;

pub use self::presets::Preset;
pub use self::spec::{ClientAuth, Flow, LoginSpec, OidcSpec, PageRule};

/// Outputs redacted wherever they appear.
const SECRET_OUTPUTS: &[&str] = &["access_token", "id_token", "refresh_token"];

const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(300);
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
const DEFAULT_MAX_HOPS: u32 = 30;

fn rend(s: &str, ctx: &StepContext<'_>) -> Result<String, StepError> {
    render_config(s, ctx.resolver)
}

fn rend_opt(s: &Option<String>, ctx: &StepContext<'_>) -> Result<Option<String>, StepError> {
    s.as_deref().map(|v| rend(v, ctx)).transpose()
}

fn required(s: &Option<String>, what: &str, ctx: &StepContext<'_>) -> Result<String, StepError> {
    rend_opt(s, ctx)?
        .ok_or_else(|| StepError::new(Reason::Config, format!("oidc step has no `{what}`")))
}

fn parse_url(s: &str, what: &str) -> Result<Url, StepError> {
    Url::parse(s)
        .map_err(|e| StepError::new(Reason::Config, format!("{what} `{s}` is not a URL: {e}")))
}

/// The login form to fill, from the preset and the scenario's own settings.
fn login_plan(spec: &OidcSpec, ctx: &StepContext<'_>) -> Result<LoginPlan, StepError> {
    let l = spec.login.clone().unwrap_or_default();
    let p = Preset::forms(l.preset);
    let sel = |s: &str| selector(s).map_err(|e| StepError::new(Reason::Config, e));
    let form_src = l.form.clone().unwrap_or_else(|| p.login_form.to_string());
    let mut extra = Vec::new();
    for (k, v) in &l.fields {
        extra.push((k.clone(), rend(v, ctx)?));
    }
    Ok(LoginPlan {
        form: sel(&form_src)?,
        form_src,
        username_field: l
            .username_field
            .clone()
            .or(p.username_field.map(str::to_string)),
        password_field: l
            .password_field
            .clone()
            .or(p.password_field.map(str::to_string)),
        username: required(&spec.username, "username", ctx)?,
        password: required(&spec.password, "password", ctx)?,
        extra,
        errors: error_selectors(l.error.as_deref(), p.error)?,
    })
}

/// Where a failed login's reason is looked for: the scenario's `login.error`, the preset's,
/// then the widely deployed templates'.
fn error_selectors(own: Option<&str>, preset: &[&str]) -> Result<Vec<Selector>, StepError> {
    own.into_iter()
        .chain(preset.iter().copied())
        .chain(presets::DEFAULT_ERRORS.iter().copied())
        .map(|s| selector(s).map_err(|e| StepError::new(Reason::Config, e)))
        .collect()
}

/// The scenario's page rules, then the preset's (`logout`: the end-session pages instead).
fn rules(spec: &OidcSpec, ctx: &StepContext<'_>, logout: bool) -> Result<Vec<Rule>, StepError> {
    let preset = spec.login.as_ref().and_then(|l| l.preset);
    let p = Preset::forms(preset);
    let mut out = Vec::new();
    for r in &spec.pages {
        let mut fields = Vec::new();
        for (k, v) in &r.fields {
            fields.push((k.clone(), rend(v, ctx)?));
        }
        out.push(Rule {
            form: selector(&r.form).map_err(|e| StepError::new(Reason::Config, e))?,
            fields,
            phase: r.phase.clone().unwrap_or_else(|| "consent".into()),
        });
    }
    let (list, phase) = if logout {
        (p.logout, "logout")
    } else {
        (p.pages, "consent")
    };
    for (s, fields) in list {
        out.push(Rule {
            form: selector(s).map_err(|e| StepError::new(Reason::Config, e))?,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            phase: phase.into(),
        });
    }
    Ok(out)
}

/// Runs one attempt: discovery, the grant, token checks, userinfo and logout, then outputs.
pub async fn execute(spec: &OidcSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let mut attempt = Attempt::start(spec, ctx).await?;
    let granted = attempt.grant().await?;
    let response = &granted.response;
    let access = response.access_token().clone();
    let id_token = response.id_token().cloned();
    // Registered before anything can print them (failure messages included).
    ctx.redactor.add("access_token", access.secret());
    if let Some(rt) = response.refresh_token() {
        ctx.redactor.add("refresh_token", rt.secret());
    }
    if let Some(t) = &id_token {
        ctx.redactor.add("id_token", &t.to_string());
    }
    let (claims, access_claims) = attempt.verify_tokens(&granted).await?;
    let claims = claims.or_else(|| access_claims.clone());
    if spec.userinfo == Some(true) {
        attempt.userinfo(access.secret(), claims.as_ref()).await?;
    }
    if spec.logout == Some(true) {
        attempt
            .logout(id_token.as_ref().map(|t| t.to_string()))
            .await?;
    }
    let mut obs = attempt.obs;
    if let Ok(net) = attempt.net.lock() {
        net.record(&mut obs);
    }
    set_outputs(&mut obs, &granted, claims, access_claims);
    Ok(obs)
}

/// One attempt's settings, rendered, and what it has found so far.
struct Attempt<'s, 'c> {
    spec: &'s OidcSpec,
    ctx: &'s StepContext<'c>,
    flow: Flow,
    issuer: String,
    client_id: String,
    secret: Option<String>,
    resource: Option<String>,
    scopes: Vec<String>,
    http: Recording,
    provider: Discovered,
    client: flows::Client,
    /// The front channel's session, made when the flow or the logout needs one.
    browser: Option<Browser>,
    /// The network phases of every request, both channels.
    net: Arc<Mutex<NetLog>>,
    obs: Observation,
}

impl<'s, 'c> Attempt<'s, 'c> {
    /// Renders the settings and runs discovery (phase `discovery`).
    async fn start(spec: &'s OidcSpec, ctx: &'s StepContext<'c>) -> Result<Self, StepError> {
        let flow = spec.flow();
        let issuer = required(&spec.issuer, "issuer", ctx)?;
        let client_id = required(&spec.client_id, "client_id", ctx)?;
        let secret = rend_opt(&spec.client_secret, ctx)?;
        let resource = rend_opt(&spec.resource, ctx)?;
        let mut scopes = Vec::new();
        for s in spec.scopes.iter().flatten() {
            scopes.push(rend(s, ctx)?);
        }
        if matches!(flow, Flow::AuthorizationCode | Flow::Password)
            && !scopes.iter().any(|s| s == "openid")
        {
            scopes.insert(0, "openid".to_string());
        }
        if let Some(s) = &secret {
            register_client_credentials(ctx, &client_id, s);
        }
        let net = Arc::new(Mutex::new(NetLog::default()));
        let http = Recording::new(
            Http::new(spec.tls.as_ref(), ctx, None, net.clone())?,
            ctx.redactor.clone(),
        );
        let mut obs = Observation::default();
        let started = Instant::now();
        let provider = discovery::discover(&http.client, &issuer).await?;
        add_phase(&mut obs, "discovery", started.elapsed());
        let mut client = CoreClient::from_provider_metadata(
            provider.metadata.clone(),
            ClientId::new(client_id.clone()),
            secret.clone().map(ClientSecret::new),
        );
        if spec.client_auth == Some(ClientAuth::Post) {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        Ok(Attempt {
            spec,
            ctx,
            flow,
            issuer,
            client_id,
            secret,
            resource,
            scopes,
            http,
            provider,
            client,
            browser: None,
            net,
            obs,
        })
    }

    /// The front channel's session; a fresh cookie jar per attempt, so every probe is a real
    /// login, not a reused SSO session.
    fn browser(&mut self) -> Result<&mut Browser, StepError> {
        if self.browser.is_none() {
            let jar = Arc::new(reqwest::cookie::Jar::default());
            let max_hops = self.spec.max_hops.unwrap_or(DEFAULT_MAX_HOPS) as usize;
            self.browser = Some(Browser::new(
                Http::new(
                    self.spec.tls.as_ref(),
                    self.ctx,
                    Some(jar),
                    self.net.clone(),
                )?,
                max_hops,
                self.ctx.redactor.clone(),
            ));
        }
        self.browser
            .as_mut()
            .ok_or_else(|| StepError::new(Reason::Internal, "no browser session"))
    }

    /// Runs the flow's grant.
    async fn grant(&mut self) -> Result<Granted, StepError> {
        let (spec, ctx) = (self.spec, self.ctx);
        let resource = self.resource.clone();
        let resource = resource.as_deref();
        match self.flow {
            Flow::AuthorizationCode => self.authorization_code().await,
            Flow::Password => {
                let user = required(&spec.username, "username", ctx)?;
                let pass = required(&spec.password, "password", ctx)?;
                let scopes = &self.scopes;
                let (client, http) = (&self.client, &self.http);
                flows::password(client, http, &user, &pass, scopes, resource, &mut self.obs).await
            }
            Flow::ClientCredentials => {
                let (client, http, scopes) = (&self.client, &self.http, &self.scopes);
                flows::client_credentials(client, http, scopes, resource, &mut self.obs).await
            }
            Flow::Refresh => {
                let rt = required(&spec.refresh_token, "refresh_token", ctx)?;
                ctx.redactor.add("refresh_token", &rt);
                let (client, http, scopes) = (&self.client, &self.http, &self.scopes);
                flows::refresh(client, http, &rt, scopes, resource, &mut self.obs).await
            }
        }
    }

    /// Authorization code + PKCE through the IdP's login form.
    async fn authorization_code(&mut self) -> Result<Granted, StepError> {
        let (spec, ctx) = (self.spec, self.ctx);
        let redirect = required(&spec.redirect_uri, "redirect_uri", ctx)?;
        let redirect_uri = parse_url(&redirect, "redirect_uri")?;
        let redirect_url = openidconnect::RedirectUrl::new(redirect.clone())
            .map_err(|e| StepError::new(Reason::Config, format!("redirect_uri: {e}")))?;
        let client = self.client.clone().set_redirect_uri(redirect_url);
        let mut params = Vec::new();
        for (k, v) in &spec.params {
            params.push((k.clone(), rend(v, ctx)?));
        }
        let plan = login_plan(spec, ctx)?;
        let page_rules = rules(spec, ctx, false)?;
        let scopes = self.scopes.clone();
        let resource = self.resource.clone();
        let req = CodeRequest {
            redirect_uri,
            scopes: &scopes,
            params: &params,
            resource: resource.as_deref(),
            login: &plan,
            rules: &page_rules,
        };
        self.browser()?;
        let Attempt {
            http,
            browser,
            provider,
            obs,
            ..
        } = self;
        let browser = browser
            .as_mut()
            .ok_or_else(|| StepError::new(Reason::Internal, "no browser session"))?;
        flows::authorization_code(&client, http, browser, provider, req, obs).await
    }

    /// Checks the ID token (and the access token when `access_token_audience` is set) against
    /// the issuer's keys; returns their claims.
    async fn verify_tokens(
        &mut self,
        granted: &Granted,
    ) -> Result<(Option<Json>, Option<Json>), StepError> {
        let (spec, ctx) = (self.spec, self.ctx);
        let response = &granted.response;
        let access = response.access_token();
        let ttl = spec.jwks_cache_ttl.map_or(DEFAULT_JWKS_TTL, |d| d.0);
        let skew = spec.clock_skew.map_or(DEFAULT_CLOCK_SKEW, |d| d.0);
        let cache = ctx.shared.get::<self::discovery::JwksCache>();
        let provider = &self.provider;
        let mut keys = Keys::new(&self.http.client, cache, &self.issuer, provider, ttl);
        let algs = provider
            .metadata
            .id_token_signing_alg_values_supported()
            .clone();
        let audience = rend_opt(&spec.audience, ctx)?.unwrap_or_else(|| self.client_id.clone());
        let trusted = vec![self.client_id.clone()];
        let obs = &mut self.obs;
        let claims = match response.id_token() {
            Some(t) => {
                let expect = Expect {
                    issuer: provider.metadata.issuer(),
                    audience: &audience,
                    also_trusted: &trusted,
                    client_secret: self.secret.as_deref(),
                    algs: &algs,
                    clock_skew: skew,
                };
                let kid = header_kid(&t.to_string());
                let set = keys.for_kid(kid.as_deref(), obs).await?;
                let c = verify_id_token(t, set, &expect, granted.nonce.as_ref(), Some(access))
                    .map_err(|i| i.into_step_error("ID token"))?;
                Some(c)
            }
            None if self.flow == Flow::AuthorizationCode => {
                return Err(StepError::new(
                    Reason::TokenInvalid,
                    "ID token check `present` failed: the token response has no id_token (scope openid was requested)",
                ));
            }
            None => None,
        };
        let Some(aud) = rend_opt(&spec.access_token_audience, ctx)? else {
            return Ok((claims, None));
        };
        let expect = Expect {
            issuer: provider.metadata.issuer(),
            audience: &aud,
            also_trusted: &[],
            client_secret: None,
            algs: &algs,
            clock_skew: skew,
        };
        let kid = header_kid(access.secret());
        let set = keys.for_kid(kid.as_deref(), obs).await?;
        let c = verify_access_token(access.secret(), set, &expect)
            .map_err(|i| i.into_step_error("access token"))?;
        Ok((claims, Some(c)))
    }

    /// Calls the userinfo endpoint; its subject must be the token's.
    async fn userinfo(&mut self, access: &str, claims: Option<&Json>) -> Result<(), StepError> {
        let info = userinfo(&self.http, &self.provider, access, &mut self.obs).await?;
        let expected = claims.and_then(|c| c.get("sub")).and_then(Json::as_str);
        let got = info.get("sub").and_then(Json::as_str);
        if let (Some(e), Some(g)) = (expected, got) {
            if e != g {
                return Err(StepError::new(
                    Reason::TokenInvalid,
                    format!("userinfo check `sub` failed: `{g}`, but the token's subject is `{e}`"),
                ));
            }
        }
        self.obs.body = serde_json::to_vec(&info).unwrap_or_default();
        self.obs.outputs.insert("userinfo".into(), info);
        Ok(())
    }

    /// RP-initiated logout through the browser session.
    async fn logout(&mut self, id_token: Option<String>) -> Result<(), StepError> {
        let (spec, ctx) = (self.spec, self.ctx);
        let post = rend_opt(&spec.post_logout_redirect_uri, ctx)?;
        let rules = rules(spec, ctx, true)?;
        self.browser()?;
        let Attempt {
            browser,
            provider,
            client_id,
            obs,
            ..
        } = self;
        let browser = browser
            .as_mut()
            .ok_or_else(|| StepError::new(Reason::Internal, "no browser session"))?;
        end_session(browser, provider, client_id, id_token, post, &rules, obs).await
    }
}

/// The step's outputs: tokens (redacted wherever they appear), token type, lifetime, scope
/// and claims.
fn set_outputs(
    obs: &mut Observation,
    granted: &Granted,
    claims: Option<Json>,
    access_claims: Option<Json>,
) {
    let response = &granted.response;
    let o = &mut obs.outputs;
    o.insert(
        "access_token".into(),
        Json::String(response.access_token().secret().clone()),
    );
    if let Some(t) = response.id_token() {
        o.insert("id_token".into(), Json::String(t.to_string()));
    }
    if let Some(rt) = response.refresh_token() {
        o.insert("refresh_token".into(), Json::String(rt.secret().clone()));
    }
    o.insert(
        "token_type".into(),
        Json::String(response.token_type().as_ref().to_string()),
    );
    if let Some(e) = response.expires_in() {
        o.insert("expires_in".into(), Json::from(e.as_secs()));
    }
    if let Some(s) = response.scopes() {
        let text: Vec<&str> = s.iter().map(|x| x.as_str()).collect();
        o.insert("scope".into(), Json::String(text.join(" ")));
    }
    if let Some(c) = claims {
        o.insert("claims".into(), c);
    }
    if let Some(c) = access_claims {
        o.insert("access_claims".into(), c);
    }
    obs.secret_outputs = SECRET_OUTPUTS
        .iter()
        .filter(|n| obs.outputs.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
}

/// Registers the client secret in the `Authorization: Basic` forms clients send it in:
/// `client_secret_basic` (RFC 6749 §2.3.1: id and secret form-encoded first, as oauth2 does)
/// and plain `id:secret`, which some clients send.
fn register_client_credentials(ctx: &StepContext<'_>, client_id: &str, secret: &str) {
    let encode =
        |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    ctx.redactor
        .add_basic("client_secret", &encode(client_id), &encode(secret));
    ctx.redactor.add_basic("client_secret", client_id, secret);
}

/// GETs the userinfo endpoint with the access token (phase `userinfo`).
async fn userinfo(
    http: &Recording,
    provider: &Discovered,
    token: &str,
    obs: &mut Observation,
) -> Result<Json, StepError> {
    let url = provider
        .metadata
        .userinfo_endpoint()
        .map(|u| u.url().to_string())
        .ok_or_else(|| {
            StepError::new(
                Reason::Config,
                "userinfo: the provider announces no userinfo_endpoint",
            )
        })?;
    let started = Instant::now();
    let ex = http
        .client
        .get_json(&url, Some(token))
        .await
        .map_err(|e| transport_error("userinfo", &url, &e))?;
    let status = ex.status;
    let why = ex
        .headers
        .get(hyper::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = ex.body;
    add_phase(obs, "userinfo", started.elapsed());
    if status != 200 {
        // Redacted before it is cut: the answer may echo the token.
        let text = http.redactor.redact_and_cut(
            &why.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
            flows::EXCERPT_CHARS,
        );
        return Err(StepError::new(
            Reason::HttpStatus,
            format!("userinfo: HTTP {status} from {}: {text}", strip_query(&url)),
        ));
    }
    serde_json::from_slice(&body).map_err(|_| {
        StepError::new(
            Reason::HttpStatus,
            "userinfo: the answer is not JSON (signed or encrypted userinfo is not supported)",
        )
    })
}

/// RP-initiated logout: the end_session_endpoint with `id_token_hint`, confirmation pages by
/// the logout rules, and, when given, the redirect to `post_logout_redirect_uri` with `state`.
async fn end_session(
    browser: &mut Browser,
    provider: &Discovered,
    client_id: &str,
    id_token: Option<String>,
    post_logout: Option<String>,
    rules: &[Rule],
    obs: &mut Observation,
) -> Result<(), StepError> {
    let endpoint = provider.end_session_endpoint().ok_or_else(|| {
        StepError::new(
            Reason::Config,
            "logout: the provider announces no end_session_endpoint",
        )
    })?;
    let mut url = parse_url(endpoint, "end_session_endpoint")?;
    let state = openidconnect::CsrfToken::new_random();
    let target = post_logout
        .as_deref()
        .map(|p| parse_url(p, "post_logout_redirect_uri"))
        .transpose()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(t) = &id_token {
            q.append_pair("id_token_hint", t);
        }
        q.append_pair("client_id", client_id);
        if let Some(p) = &post_logout {
            q.append_pair("post_logout_redirect_uri", p);
            q.append_pair("state", state.secret());
        }
    }
    let back = browser
        .walk(url, target.as_ref(), None, rules, "logout", obs)
        .await?;
    if let Some(back) = back {
        let got = back
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned());
        if got.as_deref() != Some(state.secret().as_str()) {
            return Err(StepError::new(
                Reason::TokenInvalid,
                "logout response check `state` failed: it does not match the state sent",
            ));
        }
    }
    Ok(())
}
