//! The front channel without a browser: a client with its own cookie jar follows each redirect
//! by hand (every hop logged and timed into a phase), fills and submits the login form, submits
//! follow-up pages (consent, logout confirmation) by the scenario's rules, and stops at the
//! redirect to the target URI (`redirect_uri`, `post_logout_redirect_uri`).

use std::time::{Duration, Instant};

use scraper::Selector;
use url::Url;

use super::client::{strip_query, transport_error};
use super::discovery::add_phase;
use super::form::{FormData, Page};
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::secrets::Redactor;
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
    /// Where the IdP shows why a login failed.
    pub error: Option<Selector>,
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
    client: reqwest::Client,
    max_hops: usize,
    hops: Vec<String>,
    redactor: Redactor,
}

enum Next {
    Get(Url),
    Submit(FormData),
}

/// What a page asks for.
enum Decision {
    Login(FormData),
    LoginAgain(Option<String>),
    Rule(FormData, String),
    NoMatch(String),
}

impl Browser {
    pub fn new(client: reqwest::Client, max_hops: usize, redactor: Redactor) -> Self {
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
            let (method, url, req) = match &next {
                Next::Get(u) => ("GET", u.clone(), self.client.get(u.clone())),
                Next::Submit(f) if f.method == "POST" => (
                    "POST",
                    f.action.clone(),
                    self.client.post(f.action.clone()).form(&f.fields),
                ),
                Next::Submit(f) => {
                    let mut u = f.action.clone();
                    u.query_pairs_mut().clear().extend_pairs(&f.fields);
                    ("GET", u.clone(), self.client.get(u))
                }
            };
            let started = Instant::now();
            let resp = req
                .send()
                .await
                .map_err(|e| self.fail_transport(&phase, url.as_str(), &e))?;
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = if (300..400).contains(&status) {
                String::new()
            } else {
                resp.text()
                    .await
                    .map_err(|e| self.fail_transport(&phase, url.as_str(), &e))?
            };
            let took = started.elapsed();
            add_phase(obs, &phase, took);
            self.record(method, &url, status, took);

            if (300..400).contains(&status) {
                let Some(loc) = location else {
                    return Err(self.fail(
                        Reason::HttpStatus,
                        format!(
                            "HTTP {status} without a Location header at {}",
                            strip_query(url.as_str())
                        ),
                    ));
                };
                // `Location` may be relative.
                let to = url.join(&loc).map_err(|e| {
                    self.fail(
                        Reason::HttpStatus,
                        format!("invalid redirect `{}`: {e}", strip_query(&loc)),
                    )
                })?;
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
                Decision::LoginAgain(shown) => {
                    let shown = shown
                        .map(|t| format!(": the IdP says \"{t}\""))
                        .unwrap_or_default();
                    return Err(self.fail(
                        Reason::Auth,
                        format!("the login form came back after the credentials were submitted (wrong username or password?){shown}"),
                    ));
                }
                Decision::Rule(form, p) => {
                    phase = p;
                    next = Next::Submit(form);
                }
                Decision::NoMatch(_) if target.is_none() => return Ok(None),
                Decision::NoMatch(why) => {
                    let msg = match login {
                        Some(l) if !login_submitted => format!(
                            "no login form matching `{}` at {}: {why}",
                            l.form_src,
                            strip_query(url.as_str())
                        ),
                        _ => format!(
                            "the page at {} matches no rule in `pages` (add one for it): {why}",
                            strip_query(url.as_str())
                        ),
                    };
                    return Err(self.fail(Reason::LoginForm, msg));
                }
            }
        }
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

    fn fail_transport(&self, phase: &str, url: &str, e: &reqwest::Error) -> StepError {
        let err = transport_error(phase, url, e);
        self.fail(err.reason, err.message)
    }
}

/// Same scheme, host, port and path: the redirect reached its target.
fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

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
        if let Some(form) = page.form(&plan.form) {
            if login_submitted {
                return Decision::LoginAgain(plan.error.as_ref().and_then(|s| page.text(s)));
            }
            return match fill_login(form, plan, &page) {
                Ok(f) => Decision::Login(f),
                Err(why) => Decision::NoMatch(why),
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
    Decision::NoMatch(format!("{title}{}", page.describe_forms()))
}

/// Puts the credentials into the login form; a configured field it lacks means the IdP's UI
/// changed (or the scenario names the wrong field).
fn fill_login(mut form: FormData, plan: &LoginPlan, page: &Page) -> Result<FormData, String> {
    let user_field = match &plan.username_field {
        Some(f) => f.clone(),
        None => guess_username_field(page, plan).ok_or_else(|| {
            format!(
                "the login form has no text field for the username ({})",
                fields(&form)
            )
        })?,
    };
    let pass_field = match &plan.password_field {
        Some(f) => f.clone(),
        None => guess_password_field(page, plan)
            .ok_or_else(|| format!("the login form has no password field ({})", fields(&form)))?,
    };
    for (what, name) in [("username", &user_field), ("password", &pass_field)] {
        if !form.has(name) {
            return Err(format!(
                "the login form has no {what} field `{name}` ({})",
                fields(&form)
            ));
        }
    }
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

fn guess_username_field(page: &Page, plan: &LoginPlan) -> Option<String> {
    let sel = Selector::parse("input[type=text], input[type=email], input:not([type])").ok()?;
    page.control_name(&plan.form, &sel)
}

fn guess_password_field(page: &Page, plan: &LoginPlan) -> Option<String> {
    let sel = Selector::parse("input[type=password]").ok()?;
    page.control_name(&plan.form, &sel)
}

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
    let error = login
        .and_then(|l| l.error.as_ref())
        .and_then(|s| page.text(s))
        .or_else(|| {
            Selector::parse(".error, [role=alert], pre")
                .ok()
                .and_then(|s| page.text(&s))
        });
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
