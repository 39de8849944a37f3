//! The front channel without a browser: a client with its own cookie jar follows each redirect
//! by hand (every hop logged and timed into a phase), fills and submits the login form, submits
//! follow-up pages (consent, logout confirmation) by the scenario's rules, and stops at the
//! redirect to the target URI (`redirect_uri`, `post_logout_redirect_uri`).
//!
//! After the credentials went in, a page is "the login form again" (a failed login) only when
//! a form matching the login selector still has the username and password fields; any other
//! page is one after the login, for the rules; a page no rule matches fails, listing its forms
//! and buttons and suggesting a rule.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::Method;
use scraper::Selector;
use url::Url;

use super::client::{strip_query, transport_error, Http};
use super::discovery::add_phase;
use super::form::{FormData, Found, Page};
use super::presets::DEFAULT_ERRORS;
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::secrets::Redactor;
use crate::steps::transport::TransportError;
use crate::steps::StepError;

/// How much of the hop trail failure messages show.
const TRAIL: usize = 8;

/// The login form to fill.
pub struct LoginPlan {
    /// Finds the form (or an element inside it).
    pub form: Selector,
    /// As written, for messages.
    pub form_src: String,
    /// Field names; `None`: the first text/email input, and the password input.
    pub username_field: Option<String>,
    pub password_field: Option<String>,
    pub username: String,
    pub password: String,
    pub extra: Vec<(String, String)>,
    /// Where the IdP shows why a login failed, tried in order.
    pub errors: Vec<Selector>,
}

/// "A form matching X is submitted with fields Y", for pages after the login.
pub struct Rule {
    pub form: Selector,
    pub fields: Vec<(String, String)>,
    /// The phase its submission is timed under (`consent`, `logout`).
    pub phase: String,
}

/// A browser session: one cookie jar, the hops so far.
pub struct Browser {
    client: Http,
    max_hops: usize,
    hops: Vec<String>,
    redactor: Redactor,
}

enum Next {
    Get(Url),
    Submit(FormData),
}

/// One answer of the walk.
struct Hop {
    url: Url,
    status: u16,
    location: Option<String>,
    /// Empty for a redirect.
    body: String,
}

/// What a page asks for.
enum Decision {
    Login(FormData),
    /// The login form came back, with the IdP's message if it shows one.
    LoginAgain(Option<String>),
    Rule(FormData, String),
    /// What the page holds, and (after the login) a `pages:` rule that would get past it.
    NoMatch(String, Option<String>),
}

impl Browser {
    pub fn new(client: Http, max_hops: usize, redactor: Redactor) -> Self {
        Browser {
            client,
            max_hops,
            hops: Vec::new(),
            redactor,
        }
    }

    /// Hops so far, for messages: `GET /auth 303; GET /interaction/x 200; ...`.
    fn trail(&self) -> String {
        let skip = self.hops.len().saturating_sub(TRAIL);
        let mut s = self.hops[skip..].join("; ");
        if skip > 0 {
            s = format!("…; {s}");
        }
        s
    }

    fn fail(&self, reason: Reason, msg: String) -> StepError {
        if self.hops.is_empty() {
            StepError::new(reason, msg)
        } else {
            StepError::new(reason, format!("{msg}\n  hops: {}", self.trail()))
        }
    }

    /// Walks from `start` until a redirect to `target`; returns that redirect's URL.
    /// `login`: the form to fill once; `rules`: forms to submit on later pages. With
    /// `stop_on_unmatched`, a page nothing matches ends the walk (a logout's last page).
    pub async fn walk(
        &mut self,
        start: Url,
        target: Option<&Url>,
        login: Option<&LoginPlan>,
        rules: &[Rule],
        first_phase: &str,
        obs: &mut Observation,
    ) -> Result<Option<Url>, StepError> {
        let mut next = Next::Get(start);
        let mut phase = first_phase.to_string();
        let mut login_submitted = false;
        loop {
            if self.hops.len() >= self.max_hops {
                return Err(self.fail(
                    Reason::LoginForm,
                    format!(
                        "no redirect to the redirect URI after {} requests",
                        self.max_hops
                    ),
                ));
            }
            let Hop {
                url,
                status,
                location,
                body,
            } = self.fetch(&next, &phase, obs).await?;
            if (300..400).contains(&status) {
                let to = self.redirect_target(&url, status, location)?;
                if target.is_some_and(|t| same_endpoint(&to, t)) {
                    return Ok(Some(to));
                }
                next = Next::Get(to);
                continue;
            }

            let decision = decide(&url, &body, login, login_submitted, rules);
            if !(200..300).contains(&status) {
                let reason = if matches!(decision, Decision::LoginAgain(_)) {
                    Reason::Auth
                } else {
                    Reason::HttpStatus
                };
                let why = describe_error_page(&url, &body, login, &self.redactor);
                return Err(self.fail(
                    reason,
                    format!("HTTP {status} at {}{why}", strip_query(url.as_str())),
                ));
            }
            match decision {
                Decision::Login(form) => {
                    login_submitted = true;
                    phase = "login".into();
                    next = Next::Submit(form);
                }
                Decision::Rule(form, p) => {
                    phase = p;
                    next = Next::Submit(form);
                }
                Decision::LoginAgain(shown) => return Err(self.login_failed(shown)),
                Decision::NoMatch(..) if target.is_none() => return Ok(None),
                Decision::NoMatch(why, hint) => {
                    let msg = match login {
                        Some(l) if !login_submitted => format!(
                            "no login form matching `{}` at {}: {why}",
                            l.form_src,
                            strip_query(url.as_str())
                        ),
                        _ => unmatched(&url, &why, hint.as_deref()),
                    };
                    // The page may echo what was typed into it.
                    return Err(self.fail(Reason::LoginForm, self.redactor.redact(&msg)));
                }
            }
        }
    }

    /// Sends one request of the walk (timed under `phase`, logged as a hop) and reads the
    /// page, unless it is a redirect.
    async fn fetch(
        &mut self,
        next: &Next,
        phase: &str,
        obs: &mut Observation,
    ) -> Result<Hop, StepError> {
        let (method, url, headers, body) = match next {
            Next::Get(u) => (Method::GET, u.clone(), HeaderMap::new(), Bytes::new()),
            Next::Submit(f) if f.method == "POST" => {
                let mut h = HeaderMap::new();
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&f.fields)
                    .finish();
                (Method::POST, f.action.clone(), h, Bytes::from(body))
            }
            Next::Submit(f) => {
                let mut u = f.action.clone();
                u.query_pairs_mut().clear().extend_pairs(&f.fields);
                (Method::GET, u, HeaderMap::new(), Bytes::new())
            }
        };
        let started = Instant::now();
        let ex = self
            .client
            .send(method.clone(), &url, headers, body)
            .await
            .map_err(|e| self.fail_transport(phase, url.as_str(), &e))?;
        let status = ex.status;
        let location = ex
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = if (300..400).contains(&status) {
            String::new()
        } else {
            String::from_utf8_lossy(&ex.body).into_owned()
        };
        let took = started.elapsed();
        add_phase(obs, phase, took);
        self.record(method.as_str(), &url, status, took);
        Ok(Hop {
            url,
            status,
            location,
            body,
        })
    }

    /// Where a redirect answer points (`Location` may be relative).
    fn redirect_target(
        &self,
        url: &Url,
        status: u16,
        location: Option<String>,
    ) -> Result<Url, StepError> {
        let Some(loc) = location else {
            return Err(self.fail(
                Reason::HttpStatus,
                format!(
                    "HTTP {status} without a Location header at {}",
                    strip_query(url.as_str())
                ),
            ));
        };
        url.join(&loc).map_err(|e| {
            self.fail(
                Reason::HttpStatus,
                format!("invalid redirect `{}`: {e}", strip_query(&loc)),
            )
        })
    }

    /// The login form came back: `auth`, quoting the IdP's message.
    fn login_failed(&self, shown: Option<String>) -> StepError {
        let shown = shown
            .map(|t| format!(": the IdP says \"{}\"", self.quote(&t)))
            .unwrap_or_default();
        self.fail(
            Reason::Auth,
            format!("the login form came back after the credentials were submitted (wrong username or password?){shown}"),
        )
    }

    /// Text from the IdP's page for a message: redacted (it may echo the credentials), then cut.
    fn quote(&self, text: &str) -> String {
        self.redactor
            .redact_and_cut(text, super::flows::EXCERPT_CHARS)
    }

    fn record(&mut self, method: &str, url: &Url, status: u16, took: Duration) {
        let shown = self.redactor.redact(&strip_query(url.as_str()));
        tracing::debug!(method, url = %shown, status, ms = took.as_millis() as u64, "oidc hop");
        let path = if url.path().is_empty() {
            "/"
        } else {
            url.path()
        };
        self.hops.push(format!("{method} {path} {status}"));
    }

    fn fail_transport(&self, phase: &str, url: &str, e: &TransportError) -> StepError {
        let err = transport_error(phase, url, e);
        self.fail(err.reason, err.message)
    }
}

/// A page after the login that no rule matches: what it holds, and a rule for it.
fn unmatched(url: &Url, why: &str, hint: Option<&str>) -> String {
    let hint = hint.map(|h| format!("\n{h}")).unwrap_or_default();
    format!(
        "the page at {} matches no rule in `pages` (add one for it): {why}{hint}",
        strip_query(url.as_str())
    )
}

/// Same scheme, host, port and path: the redirect reached its target.
fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

static USERNAME_INPUT: LazyLock<Selector> = LazyLock::new(|| {
    Selector::parse("input[type=text], input[type=email], input:not([type])").expect("selector")
});
static PASSWORD_INPUT: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("input[type=password]").expect("selector"));

/// Reads the page (synchronously: the parsed page must not live across an await).
fn decide(
    url: &Url,
    body: &str,
    login: Option<&LoginPlan>,
    login_submitted: bool,
    rules: &[Rule],
) -> Decision {
    let page = Page::parse(url.clone(), body);
    if let Some(plan) = login {
        let found = page.find(&plan.form);
        let with_credentials = found.iter().find(|f| credential_fields(f, plan).is_ok());
        if login_submitted {
            // Only the login form with its fields is the login form again; a consent form
            // that a broad login selector also matches is left to the rules.
            if with_credentials.is_some() {
                return Decision::LoginAgain(error_text(&page, &plan.errors));
            }
        } else if let Some(form) = with_credentials.or(found.first()) {
            return match fill_login(form, plan) {
                Ok(f) => Decision::Login(f),
                Err(why) => Decision::NoMatch(why, None),
            };
        }
    }
    for rule in rules {
        if let Some(mut form) = page.form(&rule.form) {
            for (k, v) in &rule.fields {
                form.set(k, v);
            }
            return Decision::Rule(form, rule.phase.clone());
        }
    }
    let title = page
        .title()
        .map(|t| format!("page \"{t}\", "))
        .unwrap_or_default();
    Decision::NoMatch(
        format!("{title}{}", page.describe_forms()),
        super::suggest::rule_for(&page),
    )
}

/// The first text the IdP shows where a failed login's reason goes.
fn error_text(page: &Page, errors: &[Selector]) -> Option<String> {
    errors.iter().find_map(|s| page.text(s))
}

/// The names of the form's username and password fields (configured, or guessed: the first
/// text/email input and the password input); an error when the form lacks either.
fn credential_fields(form: &Found<'_>, plan: &LoginPlan) -> Result<(String, String), String> {
    let data = form.data();
    let user_field = match &plan.username_field {
        Some(f) => f.clone(),
        None => form.control_name(&USERNAME_INPUT).ok_or_else(|| {
            format!(
                "the login form has no text field for the username ({})",
                fields(&data)
            )
        })?,
    };
    let pass_field = match &plan.password_field {
        Some(f) => f.clone(),
        None => form
            .control_name(&PASSWORD_INPUT)
            .ok_or_else(|| format!("the login form has no password field ({})", fields(&data)))?,
    };
    for (what, name) in [("username", &user_field), ("password", &pass_field)] {
        if !data.has(name) {
            return Err(format!(
                "the login form has no {what} field `{name}` ({})",
                fields(&data)
            ));
        }
    }
    Ok((user_field, pass_field))
}

/// Puts the credentials into the login form; a configured field it lacks means the IdP's UI
/// changed (or the scenario names the wrong field).
fn fill_login(found: &Found<'_>, plan: &LoginPlan) -> Result<FormData, String> {
    let (user_field, pass_field) = credential_fields(found, plan)?;
    let mut form = found.data();
    form.set(&user_field, &plan.username);
    form.set(&pass_field, &plan.password);
    for (k, v) in &plan.extra {
        form.set(k, v);
    }
    Ok(form)
}

fn fields(form: &FormData) -> String {
    format!("its fields: {}", form.names().join(", "))
}

static DEFAULT_SELECTORS: LazyLock<Vec<Selector>> = LazyLock::new(|| {
    DEFAULT_ERRORS
        .iter()
        .map(|s| Selector::parse(s).expect("selector"))
        .collect()
});
static PRE: LazyLock<Selector> = LazyLock::new(|| Selector::parse("pre").expect("selector"));

/// `: title "…", "error text"` for an error page.
fn describe_error_page(
    url: &Url,
    body: &str,
    login: Option<&LoginPlan>,
    redactor: &Redactor,
) -> String {
    let page = Page::parse(url.clone(), body);
    let mut parts = Vec::new();
    if let Some(t) = page.title() {
        parts.push(format!("page \"{t}\""));
    }
    let error = match login {
        Some(l) => error_text(&page, &l.errors),
        None => error_text(&page, &DEFAULT_SELECTORS),
    }
    .or_else(|| page.text(&PRE));
    if let Some(e) = error {
        // Redacted before it is cut: the page may echo the submitted credentials.
        let cut = redactor.redact_and_cut(&e, super::flows::EXCERPT_CHARS);
        parts.push(format!("\"{cut}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(html: &str) -> Page {
        Page::parse(Url::parse("http://idp.test/login").unwrap(), html)
    }

    fn plan(form: &str, user: Option<&str>, pass: Option<&str>) -> LoginPlan {
        LoginPlan {
            form: Selector::parse(form).unwrap(),
            form_src: form.into(),
            username_field: user.map(str::to_string),
            password_field: pass.map(str::to_string),
            username: "alice".into(),
            password: "s3cret-pw-Xy".into(),
            extra: Vec::new(),
            errors: DEFAULT_SELECTORS.clone(),
        }
    }

    #[test]
    fn the_default_error_selectors_find_common_templates_messages() {
        let cases = [
            // Keycloak (login.ftl): the field error, not the page's other text.
            (
                r#"<div class="alert-warning"><span class="kc-feedback-text"></span></div><form id="kc-form-login"><input id="username" name="username"><span id="input-error" class="kc-input-error" aria-live="polite">Invalid username or password.</span></form>"#,
                "Invalid username or password.",
            ),
            (
                r#"<div class="alert-error pf-m-danger"><span class="kc-feedback-text">Account is disabled, contact your administrator.</span></div>"#,
                "Account is disabled, contact your administrator.",
            ),
            // Dex.
            (
                r#"<div id="login-error" class="dex-error-box"> Invalid Email Address and password. </div>"#,
                "Invalid Email Address and password.",
            ),
            // Django: a non-field error list, ahead of a generic alert elsewhere.
            (
                r#"<div role="alert">Cookies help us</div><ul class="errorlist nonfield"><li>Please enter a correct username and password.</li></ul>"#,
                "Please enter a correct username and password.",
            ),
            (
                r#"<p class="errornote">Please correct the error below.</p>"#,
                "Please correct the error below.",
            ),
            // Zitadel.
            (
                r#"<div class="lgn-error"><i class="lgn-icon-exclamation-circle-solid lgn-warn"></i><p class="lgn-error-message">Password is invalid</p></div>"#,
                "Password is invalid",
            ),
            // Auth0.
            (
                r#"<span id="error-element-password" class="ulp-input-error-message" data-error-code="wrong-credentials"><span class="ulp-input-error-icon"></span> Wrong email or password</span>"#,
                "Wrong email or password",
            ),
            // ASP.NET Core Identity / Duende.
            (
                r#"<div class="alert alert-danger"><strong>Error</strong><div class="danger validation-summary-errors"><ul><li>Invalid username or password</li></ul></div></div>"#,
                "Invalid username or password",
            ),
            // Generic.
            (r#"<p class="error">Nope</p>"#, "Nope"),
        ];
        for (html, want) in cases {
            assert_eq!(
                error_text(&page(html), &DEFAULT_SELECTORS).as_deref(),
                Some(want),
                "{html}"
            );
        }
        assert_eq!(
            error_text(&page("<p>Sign in</p>"), &DEFAULT_SELECTORS),
            None
        );
    }

    #[test]
    fn only_a_form_with_both_credential_fields_is_the_login_form_again() {
        let login = r#"<form method=post><input name=csrf type=hidden value=1>
            <input type=text name=username><input type=password name=password>
            <input type=submit value="Log in"></form>"#;
        let consent = r#"<form method=post><input name=csrf type=hidden value=1>
            <button name=allow value=yes>Allow</button></form>"#;
        let rule = Rule {
            form: Selector::parse("button[name=allow]").unwrap(),
            fields: Vec::new(),
            phase: "consent".into(),
        };
        let url = Url::parse("http://idp.test/x").unwrap();
        for p in [
            plan("form[method=post]", None, None),
            plan("form[method=post]", Some("username"), Some("password")),
        ] {
            let d = decide(&url, login, Some(&p), false, std::slice::from_ref(&rule));
            let Decision::Login(f) = d else {
                panic!("the login form is filled")
            };
            assert!(f.fields.contains(&("username".into(), "alice".into())));
            assert!(matches!(
                decide(&url, login, Some(&p), true, std::slice::from_ref(&rule)),
                Decision::LoginAgain(None)
            ));
            let d = decide(&url, consent, Some(&p), true, std::slice::from_ref(&rule));
            let Decision::Rule(f, phase) = d else {
                panic!("the consent form goes to the rules")
            };
            assert_eq!(
                (f.names(), phase.as_str()),
                (vec!["csrf", "allow"], "consent")
            );
            // Without a rule for it: no match, with a suggestion.
            let Decision::NoMatch(why, hint) = decide(&url, consent, Some(&p), true, &[]) else {
                panic!("no rule matches")
            };
            assert!(
                why.contains("<button name=allow value=yes>Allow</button>"),
                "{why}"
            );
            assert!(hint.unwrap().contains("- form: 'button[name=allow]'"));
        }
        // Configured field names the form lacks: not the login form again either.
        let p = plan("form[method=post]", Some("login"), Some("password"));
        assert!(matches!(
            decide(&url, login, Some(&p), true, &[]),
            Decision::NoMatch(..)
        ));
    }

    #[test]
    fn the_idps_message_is_quoted_redacted_and_cut() {
        let redactor = Redactor::new();
        redactor.add("password", "s3cret-pw-Xy");
        let b = Browser::new(Http::for_tests(), 5, redactor);
        let long = format!("you typed s3cret-pw-Xy {}", "x".repeat(400));
        let e = b.login_failed(Some(long));
        assert_eq!(e.reason, Reason::Auth);
        assert!(
            e.message
                .contains("the IdP says \"you typed [redacted:password] xx"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("s3cret-pw-Xy"));
        assert!(e.message.chars().count() < 350, "{}", e.message);
        assert!(e.message.contains("…\""), "{}", e.message);
    }
}
