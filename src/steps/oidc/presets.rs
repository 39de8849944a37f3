//! Login-page presets: where Keycloak, Dex and oidc-provider put their login form, its field
//! names, their error message, and the follow-up pages (consent, logout confirmation) a
//! browser would click through; and where widely deployed login templates show why a login
//! failed (tried with every preset and without one).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A known IdP user interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Preset {
    #[serde(rename = "keycloak")]
    Keycloak,
    #[serde(rename = "dex")]
    Dex,
    /// The npm `oidc-provider`'s development interactions and the UIs built on its examples.
    #[serde(rename = "oidc-provider")]
    OidcProvider,
}

/// What a preset (or the generic default) knows about an IdP's pages.
pub struct PresetForms {
    /// Selector of the login form or of an element inside it.
    pub login_form: &'static str,
    /// `None`: the first text/email input, and the password input.
    pub username_field: Option<&'static str>,
    pub password_field: Option<&'static str>,
    /// Where this IdP shows why a login failed; tried before [`DEFAULT_ERRORS`].
    pub error: &'static [&'static str],
    /// Pages after the login (consent): (selector, fields to set).
    pub pages: &'static [(&'static str, &'static [(&'static str, &'static str)])],
    /// Pages of the end-session flow (logout confirmation).
    pub logout: &'static [(&'static str, &'static [(&'static str, &'static str)])],
}

const KEYCLOAK: PresetForms = PresetForms {
    login_form: "form#kc-form-login",
    username_field: Some("username"),
    password_field: Some("password"),
    error: &[
        "#input-error",
        "#input-error-username",
        "#input-error-password",
        ".kc-feedback-text",
        ".alert-error",
    ],
    // The consent page's first submit button is `accept`.
    pages: &[("input[name=accept]", &[])],
    logout: &[("input[name=confirmLogout]", &[])],
};

const DEX: PresetForms = PresetForms {
    login_form: "input#password",
    username_field: Some("login"),
    password_field: Some("password"),
    error: &["#login-error", ".dex-error-box"],
    pages: &[("input[name=approval][value=approve]", &[])],
    logout: &[],
};

const OIDC_PROVIDER: PresetForms = PresetForms {
    login_form: "input[name=prompt][value=login]",
    username_field: Some("login"),
    password_field: Some("password"),
    error: &[".error", "[role=alert]"],
    pages: &[("input[name=prompt][value=consent]", &[])],
    logout: &[(r#"form[id="op.logoutForm"]"#, &[])],
};

/// No preset: the form with a password input, and every preset's follow-up rules.
const GENERIC: PresetForms = PresetForms {
    login_form: "input[type=password]",
    username_field: None,
    password_field: None,
    error: &[],
    pages: &[
        ("input[name=prompt][value=consent]", &[]),
        ("input[name=accept]", &[]),
        ("input[name=approval][value=approve]", &[]),
    ],
    logout: &[
        (r#"form[id="op.logoutForm"]"#, &[]),
        ("input[name=confirmLogout]", &[]),
    ],
};

/// Where widely deployed login templates show why a login failed, tried in this order (after
/// `login.error` and the preset's own): each IdP's own markup first, generic classes last. The
/// first one with text is quoted in the failure.
pub const DEFAULT_ERRORS: &[&str] = &[
    // Keycloak: login.ftl's field error (v1 and v2 themes), template.ftl's feedback message.
    "#input-error",
    "#input-error-username",
    "#input-error-password",
    ".kc-feedback-text",
    ".alert-error",
    // Dex: password.html.
    "#login-error",
    ".dex-error-box",
    // Django auth and allauth (the form's non-field errors), the Django admin login.
    ".errorlist",
    ".errornote",
    // Zitadel's login (v1).
    ".lgn-error-message",
    // authentik's flow stages (PatternFly helper text).
    ".pf-c-form__helper-text.pf-m-error",
    // Auth0 Universal Login.
    "#error-element-password",
    "#error-element-username",
    ".ulp-input-error-message",
    // Okta's sign-in widget.
    ".okta-form-infobox-error",
    ".o-form-error-container",
    // ASP.NET Core Identity and Duende IdentityServer's UI templates.
    ".validation-summary-errors",
    ".field-validation-error",
    // Apereo CAS.
    "#loginErrorsPanel",
    // Bootstrap and ARIA alerts, and the plain `error` class.
    ".alert-danger",
    ".error",
    "[role=alert]",
];

impl Preset {
    pub fn forms(preset: Option<Preset>) -> &'static PresetForms {
        match preset {
            Some(Preset::Keycloak) => &KEYCLOAK,
            Some(Preset::Dex) => &DEX,
            Some(Preset::OidcProvider) => &OIDC_PROVIDER,
            None => &GENERIC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_selector_parses() {
        for p in [
            None,
            Some(Preset::Keycloak),
            Some(Preset::Dex),
            Some(Preset::OidcProvider),
        ] {
            let f = Preset::forms(p);
            let all = [f.login_form]
                .into_iter()
                .chain(f.error.iter().copied())
                .chain(DEFAULT_ERRORS.iter().copied())
                .chain(f.pages.iter().map(|(s, _)| *s))
                .chain(f.logout.iter().map(|(s, _)| *s));
            for s in all {
                assert!(super::super::form::selector(s).is_ok(), "{s}");
            }
        }
    }
}
