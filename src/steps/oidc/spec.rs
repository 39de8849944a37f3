//! The `oidc` step as written in a scenario, and its load-time checks (credentials only from
//! `secrets:`, the fields each flow needs, selectors that parse).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::form::selector;
use super::presets::Preset;
use crate::steps::http::TlsSpec;
use crate::template::{Expr, Template};
use crate::units::Dur;

/// An OpenID Connect login or token request. Every string may use `${{ }}` templates; the
/// password, client secret and refresh token must come from `secrets:` or an earlier step.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {
    /// Issuer URL; discovery reads `ISSUER/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `${{ secrets.NAME }}`; a confidential client's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint: `basic` (default) or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// `authorization_code` (default), `password`, `client_credentials` or `refresh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
    /// Scopes requested; `openid` is always added for the user flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Redirect URI registered for the client (authorization_code). It is never fetched: the
    /// walk stops at the redirect to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `${{ secrets.NAME }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Where the login form is and what its fields are called (authorization_code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginSpec>,
    /// Pages after the login (consent and the like): a form matching `form` is submitted with
    /// `fields`. Tried in order, before the preset's own rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageRule>,
    /// Extra authorization request parameters (`prompt`, `login_hint`, `acr_values`, ...).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, String>,
    /// Resource indicator (RFC 8707) sent with the authorization and token requests; the IdP
    /// then issues an access token for that API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The refresh token to use (flow `refresh`): `${{ steps.login.refresh_token }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Audience the ID token must name (default: the client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// When set, the access token must be a JWT signed by the issuer for this audience
    /// (RFC 9068); its claims become `access_claims`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_audience: Option<String>,
    /// Clock difference tolerated when checking `exp` and `iat` (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<Dur>,
    /// Also call the userinfo endpoint; its JSON becomes `userinfo` and the step's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<bool>,
    /// End the session afterwards (RP-initiated logout through the end_session_endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout: Option<bool>,
    /// Where the IdP sends the browser after the logout; the walk stops there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uri: Option<String>,
    /// How long the issuer's keys are reused by later runs (default 5m; 0s: fetch each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_cache_ttl: Option<Dur>,
    /// Most requests of the browser part (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hops: Option<u32>,
    /// TLS settings for every request to the IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// The OAuth 2.0 grant the step performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// Headless form login with PKCE (S256), state and nonce.
    AuthorizationCode,
    /// Resource owner password credentials.
    Password,
    ClientCredentials,
    /// Exchanges `refresh_token` (usually from an earlier step) for new tokens.
    Refresh,
}

impl Flow {
    pub fn name(self) -> &'static str {
        match self {
            Flow::AuthorizationCode => "authorization_code",
            Flow::Password => "password",
            Flow::ClientCredentials => "client_credentials",
            Flow::Refresh => "refresh",
        }
    }
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
}

/// The login form: a preset, custom selectors and field names, or both (custom wins).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// `keycloak`, `dex` or `oidc-provider`. Without one: the form holding a password input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// CSS selector of the login form, or of an element inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
    /// Name of the username field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_field: Option<String>,
    /// Name of the password field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_field: Option<String>,
    /// Further fields to set (`rememberMe: "on"`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, String>,
    /// CSS selector of the message a failed login shows (quoted in the failure); tried before
    /// the preset's and the defaults for common IdP templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A page rule: "a form matching `form` is submitted with `fields`".
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRule {
    /// CSS selector of the form, or of an element inside it (its submit button, a hidden input).
    /// A submit button it matches is the one clicked; otherwise the form's first one is.
    pub form: String,
    /// Fields set before submitting; others keep the page's values.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, String>,
    /// The phase its time counts to (default `consent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

/// True when the template refers to a secret, or (`steps_ok`) to an earlier step's output.
fn from_secret(text: &str, steps_ok: bool) -> bool {
    Template::parse(text).is_ok_and(|t| {
        t.exprs().any(|(e, _)| match e {
            Expr::Secret(_) => true,
            Expr::Step { .. } => steps_ok,
            _ => false,
        })
    })
}

fn is_phase_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
}

impl OidcSpec {
    pub fn flow(&self) -> Flow {
        self.flow.unwrap_or(Flow::AuthorizationCode)
    }

    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut e = Problems::default();
        self.check_provider(&mut e);
        self.check_secrets_written(&mut e);
        self.check_user(&mut e);
        self.check_code_flow(&mut e);
        self.check_other_flows(&mut e);
        self.check_pages(&mut e);
        e.0
    }

    /// Who the client is and where its provider lives.
    fn check_provider(&self, e: &mut Problems) {
        match &self.issuer {
            None => e.add("", "oidc step needs an `issuer`"),
            Some(i)
                if !(i.contains("${{")
                    || i.starts_with("http://")
                    || i.starts_with("https://")) =>
            {
                e.add(
                    "issuer",
                    format!("issuer must start with http:// or https://, got `{i}`"),
                )
            }
            Some(_) => {}
        }
        if self.client_id.is_none() {
            e.add("", "oidc step needs a `client_id`");
        }
    }

    /// Credentials come from `secrets:`, never from the file itself.
    fn check_secrets_written(&self, e: &mut Problems) {
        for (field, value, steps_ok) in [
            ("client_secret", &self.client_secret, false),
            ("password", &self.password, false),
            ("refresh_token", &self.refresh_token, true),
        ] {
            if let Some(v) = value {
                if !from_secret(v, steps_ok) {
                    let source = if steps_ok {
                        "`${{ steps.STEP.refresh_token }}` or `${{ secrets.NAME }}`"
                    } else {
                        "`${{ secrets.NAME }}`"
                    };
                    e.add(
                        field,
                        format!("`{field}` must not be written into the scenario: declare it under `secrets:` (env or file) and write {source}"),
                    );
                }
            }
        }
    }

    /// A user's credentials exactly where the flow logs one in.
    fn check_user(&self, e: &mut Problems) {
        let flow = self.flow();
        let needs_user = matches!(flow, Flow::AuthorizationCode | Flow::Password);
        if needs_user {
            for (field, v) in [("username", &self.username), ("password", &self.password)] {
                if v.is_none() {
                    e.add("", format!("flow {} needs `{field}`", flow.name()));
                }
            }
        } else {
            for (field, set) in [
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
            ] {
                if set {
                    e.add(
                        field,
                        format!("`{field}` is not used by flow {}", flow.name()),
                    );
                }
            }
        }
    }

    /// Settings of the authorization code flow, and only there.
    fn check_code_flow(&self, e: &mut Problems) {
        let flow = self.flow();
        if flow == Flow::AuthorizationCode {
            match &self.redirect_uri {
                None => e.add(
                    "",
                    "flow authorization_code needs a `redirect_uri` registered for the client",
                ),
                Some(u) if !u.contains("${{") && url::Url::parse(u).is_err() => {
                    e.add("redirect_uri", format!("`{u}` is not an absolute URL"))
                }
                Some(_) => {}
            }
        } else {
            for (field, set) in [
                ("redirect_uri", self.redirect_uri.is_some()),
                ("login", self.login.is_some()),
                ("pages", !self.pages.is_empty()),
                ("params", !self.params.is_empty()),
            ] {
                if set {
                    e.add(
                        field,
                        format!("`{field}` is only used by flow authorization_code"),
                    );
                }
            }
        }
    }

    /// Client credentials, refresh and logout settings.
    fn check_other_flows(&self, e: &mut Problems) {
        let flow = self.flow();
        if flow == Flow::ClientCredentials {
            if self.client_secret.is_none() {
                e.add("", "flow client_credentials needs a `client_secret`");
            }
            for (field, set) in [
                ("userinfo", self.userinfo == Some(true)),
                ("logout", self.logout == Some(true)),
            ] {
                if set {
                    e.add(
                        field,
                        format!("`{field}` needs a user: flow client_credentials has none"),
                    );
                }
            }
        }
        match (flow, &self.refresh_token) {
            (Flow::Refresh, None) => e.add(
                "",
                "flow refresh needs `refresh_token: ${{ steps.STEP.refresh_token }}`",
            ),
            (f, Some(_)) if f != Flow::Refresh => e.add(
                "refresh_token",
                "`refresh_token` is only used by flow refresh",
            ),
            _ => {}
        }
        if self.post_logout_redirect_uri.is_some() && self.logout != Some(true) {
            e.add(
                "post_logout_redirect_uri",
                "`post_logout_redirect_uri` needs `logout: true`",
            );
        }
    }

    /// Selectors and phase names of the login form and page rules; hops; TLS.
    fn check_pages(&self, e: &mut Problems) {
        if let Some(l) = &self.login {
            for (field, v) in [("form", &l.form), ("error", &l.error)] {
                if let Some(sel) = v {
                    if let Err(why) = selector(sel) {
                        e.add(&format!("login.{field}"), why);
                    }
                }
            }
        }
        for (i, rule) in self.pages.iter().enumerate() {
            if let Err(why) = selector(&rule.form) {
                e.add(&format!("pages[{i}].form"), why);
            }
            if let Some(p) = &rule.phase {
                if !is_phase_name(p) {
                    e.add(
                        &format!("pages[{i}].phase"),
                        format!("phase `{p}` must be lower-case letters, digits and `_`"),
                    );
                }
            }
        }
        if self.max_hops == Some(0) {
            e.add("max_hops", "max_hops must be at least 1");
        }
        if let Some(t) = &self.tls {
            if t.cert_file.is_some() != t.key_file.is_some() {
                e.add(
                    "tls",
                    "a client certificate needs both `cert_file` and `key_file`",
                );
            }
        }
    }
}

/// What the checks found: (field path suffix, message).
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> OidcSpec {
        crate::scenario::yaml::from_str(yaml).unwrap()
    }

    fn messages(s: &OidcSpec) -> Vec<String> {
        s.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    const BASE: &str = "issuer: https://sso.test\nclient_id: app\nredirect_uri: http://127.0.0.1/cb\nusername: alice\n";

    #[test]
    fn a_complete_authorization_code_spec_passes() {
        let s = spec(&format!(
            "{BASE}password: ${{{{ secrets.pw }}}}\nclient_secret: ${{{{ secrets.cs }}}}\n"
        ));
        assert!(s.check().is_empty(), "{:?}", s.check());
    }

    #[test]
    fn literal_credentials_are_load_errors() {
        let s = spec(&format!(
            "{BASE}password: hunter2\nclient_secret: \"${{{{ vars.x }}}}\"\n"
        ));
        let m = messages(&s);
        assert!(
            m.iter()
                .any(|x| x.starts_with("password: `password` must not be written")),
            "{m:?}"
        );
        assert!(m.iter().any(|x| x.starts_with("client_secret:")), "{m:?}");
        // A literal message never repeats the value.
        assert!(m.iter().all(|x| !x.contains("hunter2")), "{m:?}");
    }

    #[test]
    fn each_flow_needs_its_fields() {
        let m = messages(&spec("issuer: https://sso.test\nclient_id: app\n"));
        assert!(m.iter().any(|x| x.contains("needs `username`")), "{m:?}");
        assert!(m.iter().any(|x| x.contains("redirect_uri")), "{m:?}");
        let m = messages(&spec(
            "issuer: https://sso.test\nclient_id: app\nflow: refresh\n",
        ));
        assert!(
            m.iter().any(|x| x.contains("needs `refresh_token")),
            "{m:?}"
        );
        let m = messages(&spec(
            "issuer: https://sso.test\nclient_id: app\nflow: client_credentials\nclient_secret: ${{ secrets.c }}\nuserinfo: true\npages: [{form: form}]\n",
        ));
        assert_eq!(m.len(), 2, "{m:?}");
        let ok = spec("issuer: https://sso.test\nclient_id: app\nflow: refresh\nrefresh_token: ${{ steps.login.refresh_token }}\n");
        assert!(ok.check().is_empty());
    }

    #[test]
    fn selectors_and_urls_are_checked() {
        let s = spec(&format!(
            "{BASE}password: ${{{{ secrets.pw }}}}\nlogin: {{form: \"form[\"}}\npages: [{{form: \"input[name=x]\", phase: Consent}}]\n"
        ));
        let m = messages(&s);
        assert!(
            m.iter()
                .any(|x| x.starts_with("login.form: invalid CSS selector")),
            "{m:?}"
        );
        assert!(m.iter().any(|x| x.starts_with("pages[0].phase")), "{m:?}");
        let m = messages(&spec("issuer: sso.test\nclient_id: a\nflow: client_credentials\nclient_secret: ${{ secrets.c }}\n"));
        assert!(m.iter().any(|x| x.starts_with("issuer:")), "{m:?}");
    }
}
