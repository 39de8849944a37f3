//! Login-page presets: where Keycloak, Dex and oidc-provider put their login form, its field
//! names, their error message, and the follow-up pages (consent, logout confirmation) a
//! browser would click through.

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
    pub error: &'static str,
    /// Pages after the login (consent): (selector, fields to set).
    pub pages: &'static [(&'static str, &'static [(&'static str, &'static str)])],
    /// Pages of the end-session flow (logout confirmation).
    pub logout: &'static [(&'static str, &'static [(&'static str, &'static str)])],
}

const KEYCLOAK: PresetForms = PresetForms {
    login_form: "form#kc-form-login",
    username_field: Some("username"),
    password_field: Some("password"),
    error: "#input-error, #input-error-username, .kc-feedback-text, .alert-error",
    // The consent page's first submit button is `accept`.
    pages: &[("input[name=accept]", &[])],
    logout: &[("input[name=confirmLogout]", &[])],
};

const DEX: PresetForms = PresetForms {
    login_form: "input#password",
    username_field: Some("login"),
    password_field: Some("password"),
    error: "#login-error, .dex-error-box",
    pages: &[("input[name=approval][value=approve]", &[])],
    logout: &[],
};

const OIDC_PROVIDER: PresetForms = PresetForms {
    login_form: "input[name=prompt][value=login]",
    username_field: Some("login"),
    password_field: Some("password"),
    error: ".error, [role=alert]",
    pages: &[("input[name=prompt][value=consent]", &[])],
    logout: &[(r#"form[id="op.logoutForm"]"#, &[])],
};

/// No preset: the form with a password input, and every preset's follow-up rules.
const GENERIC: PresetForms = PresetForms {
    login_form: "input[type=password]",
    username_field: None,
    password_field: None,
    error: ".error, .alert-error, #input-error, #login-error, [role=alert]",
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
            let all = [f.login_form, f.error]
                .into_iter()
                .chain(f.pages.iter().map(|(s, _)| *s))
                .chain(f.logout.iter().map(|(s, _)| *s));
            for s in all {
                assert!(super::super::form::selector(s).is_ok(), "{s}");
            }
        }
    }
}
