//! HTML forms of an IdP's pages, read with `scraper` the way a browser would submit them:
//! the form found by a CSS selector (the form itself or any element inside it), every
//! successful control serialized (hidden inputs included), the submit button the selector
//! matched — else the form's first one — as the submitter, field values set by name, and the
//! submit buttons listed for messages.

use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};
use url::Url;

/// A form ready to be submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormData {
    /// `GET` or `POST`.
    pub method: String,
    /// Absolute URL the form submits to.
    pub action: Url,
    /// Name/value pairs in document order.
    pub fields: Vec<(String, String)>,
}

impl FormData {
    /// True when a control with this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }

    /// Sets a field: the first control of that name gets the value (others of the same name
    /// are dropped); a name the form does not have is appended.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter().position(|(n, _)| n == name) {
            Some(i) => {
                self.fields[i].1 = value.to_string();
                let mut seen = false;
                self.fields.retain(|(n, _)| {
                    if n != name {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.fields.push((name.to_string(), value.to_string())),
        }
    }

    /// Names of the fields, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// A submit button (`<button>`, `<input type=submit>`), for messages and rule suggestions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// `button` or `input`.
    pub tag: String,
    /// The `type` attribute as written (lower case), empty when absent.
    pub kind: String,
    pub name: Option<String>,
    pub value: Option<String>,
    pub id: Option<String>,
    pub classes: Vec<String>,
    /// What a user reads on it: a button's text, an input's value.
    pub label: String,
}

/// Longest label shown for a button.
const LABEL_CHARS: usize = 40;

impl Button {
    /// `<button name=allow value=yes>Allow</button>`, `<input type=submit name=cancel value=Cancel>`.
    pub fn describe(&self) -> String {
        let mut attrs = String::new();
        if self.tag == "input" || !self.kind.is_empty() {
            attrs.push_str(&format!(" type={}", attr_value(&self.kind)));
        }
        for (k, v) in [("name", &self.name), ("value", &self.value)] {
            if let Some(v) = v {
                attrs.push_str(&format!(" {k}={}", attr_value(v)));
            }
        }
        if self.tag == "input" {
            return format!("<input{attrs}>");
        }
        let label: String = self.label.chars().take(LABEL_CHARS).collect();
        format!("<button{attrs}>{label}</button>")
    }
}

/// An attribute value as a reader would write it: bare when it is one plain word.
fn attr_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if plain {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('"', "&quot;"))
    }
}

/// A parsed HTML page. Not `Send`: analyse it and drop it before the next request.
pub struct Page {
    pub url: Url,
    doc: Html,
}

/// A form of a page, with the submit button a selector matched (if it matched one).
pub struct Found<'a> {
    page: &'a Page,
    form: ElementRef<'a>,
    clicked: Option<ElementRef<'a>>,
}

/// Parses a selector written in a scenario or a preset.
pub fn selector(src: &str) -> Result<Selector, String> {
    Selector::parse(src).map_err(|e| format!("invalid CSS selector `{src}`: {e}"))
}

static FORM: LazyLock<Selector> = LazyLock::new(|| Selector::parse("form").expect("selector"));
static CONTROLS: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("input, select, textarea, button").expect("selector"));

impl Page {
    pub fn parse(url: Url, html: &str) -> Page {
        Page {
            url,
            doc: Html::parse_document(html),
        }
    }

    /// The page's `<title>`, trimmed.
    pub fn title(&self) -> Option<String> {
        let sel = Selector::parse("title").ok()?;
        let t = collapse(&self.doc.select(&sel).next()?.text().collect::<String>());
        (!t.is_empty()).then_some(t)
    }

    /// Text of the first element matching `sel`, whitespace collapsed (an error message).
    pub fn text(&self, sel: &Selector) -> Option<String> {
        self.doc
            .select(sel)
            .map(|e| collapse(&e.text().collect::<String>()))
            .find(|t| !t.is_empty())
    }

    /// The form matched by `sel`: the first matching element that is a form or belongs to one.
    pub fn form(&self, sel: &Selector) -> Option<FormData> {
        self.find(sel).first().map(Found::data)
    }

    /// Every form `sel` matches (a form, or an element belonging to it), each once, in the
    /// order of the matches. A matched submit button is the one "clicked".
    pub fn find(&self, sel: &Selector) -> Vec<Found<'_>> {
        let mut found: Vec<Found<'_>> = Vec::new();
        for el in self.doc.select(sel) {
            let Some(form) = self.owner_form(el) else {
                continue;
            };
            if found.iter().any(|f| f.form.id() == form.id()) {
                continue;
            }
            let clicked = is_submit(el).then_some(el);
            found.push(Found {
                page: self,
                form,
                clicked,
            });
        }
        found
    }

    /// Every form of the page, in document order.
    pub fn forms(&self) -> Vec<Found<'_>> {
        self.find(&FORM)
    }

    /// One entry per form on the page: where it goes, its field names and its submit buttons
    /// (for messages when nothing matched: the IdP's UI may have changed).
    pub fn describe_forms(&self) -> String {
        let forms: Vec<String> = self.forms().iter().map(Found::describe).collect();
        if forms.is_empty() {
            "no form on the page".to_string()
        } else {
            format!("forms on the page: {}", forms.join("; "))
        }
    }

    /// The form an element belongs to: the one its `form="id"` attribute names, else the
    /// element itself when it is a form, else its nearest form ancestor.
    fn owner_form<'a>(&'a self, el: ElementRef<'a>) -> Option<ElementRef<'a>> {
        if let Some(owner) = el.value().attr("form") {
            return self
                .doc
                .select(&FORM)
                .find(|f| f.value().attr("id") == Some(owner));
        }
        if el.value().name() == "form" {
            return Some(el);
        }
        el.ancestors()
            .filter_map(ElementRef::wrap)
            .find(|a| a.value().name() == "form")
    }
}

impl<'a> Found<'a> {
    /// The form as a browser would submit it.
    pub fn data(&self) -> FormData {
        self.serialize(self.clicked)
    }

    /// The form as submitted with its `n`th submit button (see [`Found::buttons`]).
    pub fn data_with_button(&self, n: usize) -> Option<FormData> {
        let button = self.submit_controls().into_iter().nth(n)?;
        Some(self.serialize(Some(button)))
    }

    /// The form's `id` attribute.
    pub fn id(&self) -> Option<&'a str> {
        self.form.value().attr("id")
    }

    /// The name of the first control of this form matching `control`.
    pub fn control_name(&self, control: &Selector) -> Option<String> {
        self.page
            .doc
            .select(control)
            .filter(|c| self.owns(*c))
            .find_map(|c| c.value().attr("name").map(str::to_string))
    }

    /// Hidden inputs of the form: (name, value).
    pub fn hidden(&self) -> Vec<(String, String)> {
        self.controls()
            .filter(|c| {
                c.value().name() == "input"
                    && c.value()
                        .attr("type")
                        .is_some_and(|t| t.eq_ignore_ascii_case("hidden"))
            })
            .filter_map(|c| {
                let v = c.value();
                Some((v.attr("name")?.to_string(), v.attr("value")?.to_string()))
            })
            .collect()
    }

    /// The form's enabled submit buttons, in document order.
    pub fn buttons(&self) -> Vec<Button> {
        self.submit_controls()
            .into_iter()
            .map(|el| {
                let v = el.value();
                let attr = |a: &str| v.attr(a).map(str::to_string);
                let label = match v.name() {
                    "input" => v.attr("value").unwrap_or_default().to_string(),
                    _ => collapse(&el.text().collect::<String>()),
                };
                Button {
                    tag: v.name().to_string(),
                    kind: v.attr("type").unwrap_or_default().to_ascii_lowercase(),
                    name: attr("name").filter(|n| !n.is_empty()),
                    value: attr("value"),
                    id: attr("id").filter(|i| !i.is_empty()),
                    classes: v.classes().map(str::to_string).collect(),
                    label: collapse(&label),
                }
            })
            .collect()
    }

    /// `#id POST /path [fields] buttons: <button ...>`, for messages.
    fn describe(&self) -> String {
        let data = self.data();
        let id = self.id().map(|i| format!("#{i} ")).unwrap_or_default();
        let buttons: Vec<String> = self.buttons().iter().map(Button::describe).collect();
        let buttons = if buttons.is_empty() {
            String::new()
        } else {
            format!(" buttons: {}", buttons.join(", "))
        };
        format!(
            "{id}{} {} [{}]{buttons}",
            data.method,
            data.action.path(),
            data.names().join(", ")
        )
    }

    /// A control belongs to the form by its `form="id"` attribute, or else by being inside it.
    fn owns(&self, el: ElementRef<'_>) -> bool {
        match el.value().attr("form") {
            Some(owner) => Some(owner) == self.id(),
            None => el.ancestors().any(|a| a.id() == self.form.id()),
        }
    }

    /// The form's controls, in document order.
    fn controls(&self) -> impl Iterator<Item = ElementRef<'a>> + '_ {
        self.page.doc.select(&CONTROLS).filter(|el| self.owns(*el))
    }

    fn submit_controls(&self) -> Vec<ElementRef<'a>> {
        self.controls()
            .filter(|el| is_submit(*el) && el.value().attr("disabled").is_none())
            .collect()
    }

    /// Every successful control, `clicked` (or the first submit button) as the submitter.
    fn serialize(&self, clicked: Option<ElementRef<'a>>) -> FormData {
        let form = self.form.value();
        let method = match form.attr("method") {
            Some(m) if m.eq_ignore_ascii_case("post") => "POST",
            _ => "GET",
        };
        let action = form
            .attr("action")
            .filter(|a| !a.trim().is_empty())
            .and_then(|a| self.page.url.join(a.trim()).ok())
            .unwrap_or_else(|| self.page.url.clone());
        let mut fields = Vec::new();
        let mut submitter: Option<(String, String)> = None;
        let mut submitter_seen = false;
        for el in self.controls() {
            let v = el.value();
            if v.attr("disabled").is_some() {
                continue;
            }
            let name = v.attr("name").unwrap_or_default();
            if is_submit(el) {
                // The clicked button, else the first one, is the submitter; its name/value goes along.
                let chosen = match clicked {
                    Some(c) => c.id() == el.id(),
                    None => !submitter_seen,
                };
                submitter_seen = true;
                if chosen && !name.is_empty() {
                    submitter = Some((name.to_string(), v.attr("value").unwrap_or("").into()));
                }
                continue;
            }
            if !name.is_empty() {
                fields.extend(control_values(el, name));
            }
        }
        fields.extend(submitter);
        FormData {
            method: method.into(),
            action,
            fields,
        }
    }
}

/// The name/value pairs one (non-submit) control contributes.
fn control_values(el: ElementRef<'_>, name: &str) -> Vec<(String, String)> {
    let v = el.value();
    let kind = v.attr("type").unwrap_or("").to_ascii_lowercase();
    match v.name() {
        "input" => match kind.as_str() {
            "button" | "reset" | "file" => Vec::new(),
            "checkbox" | "radio" if v.attr("checked").is_none() => Vec::new(),
            "checkbox" | "radio" => vec![(name.into(), v.attr("value").unwrap_or("on").into())],
            _ => vec![(name.into(), v.attr("value").unwrap_or("").into())],
        },
        "textarea" => vec![(name.into(), el.text().collect())],
        "select" => selected_options(el)
            .into_iter()
            .map(|value| (name.to_string(), value))
            .collect(),
        _ => Vec::new(),
    }
}

/// A control that submits its form when clicked.
fn is_submit(el: ElementRef<'_>) -> bool {
    let v = el.value();
    let kind = v.attr("type").unwrap_or("").to_ascii_lowercase();
    match v.name() {
        "button" => kind.is_empty() || kind == "submit",
        "input" => kind == "submit" || kind == "image",
        _ => false,
    }
}

fn selected_options(select: ElementRef<'_>) -> Vec<String> {
    let Ok(opt) = Selector::parse("option") else {
        return Vec::new();
    };
    let options: Vec<ElementRef<'_>> = select.select(&opt).collect();
    let value = |o: &ElementRef<'_>| {
        o.value()
            .attr("value")
            .map(str::to_string)
            .unwrap_or_else(|| collapse(&o.text().collect::<String>()))
    };
    let chosen: Vec<String> = options
        .iter()
        .filter(|o| o.value().attr("selected").is_some())
        .map(value)
        .collect();
    if !chosen.is_empty() {
        return chosen;
    }
    if select.value().attr("multiple").is_some() {
        return Vec::new();
    }
    options.first().map(value).into_iter().collect()
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"<!DOCTYPE html><html><head><title> Sign-in </title></head><body>
      <p class="error">Invalid   login</p>
      <form id="other" action="/search"><input name="q"></form>
      <form autocomplete="off" action="/interaction/abc" method="post">
        <input type="hidden" name="prompt" value="login"/>
        <input required type="text" name="login" value="">
        <input required type="password" name="password">
        <input type="checkbox" name="remember" value="yes">
        <input type="checkbox" name="terms" checked>
        <select name="lang"><option value="en">English</option><option value="de" selected>Deutsch</option></select>
        <textarea name="note">hi</textarea>
        <input type="text" name="off" disabled value="x">
        <button type="submit" name="action" value="signin">Sign-in</button>
        <button type="submit" name="action" value="cancel">Cancel</button>
      </form>
      <form id="op.logoutForm" method="post" action="/session/end/confirm">
        <input type="hidden" name="xsrf" value="t0k"/>
      </form>
      <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes</button>
    </body></html>"#;

    fn page() -> Page {
        Page::parse(
            Url::parse("http://127.0.0.1:4000/interaction/abc").unwrap(),
            LOGIN,
        )
    }

    #[test]
    fn finds_the_form_around_a_matching_element_and_serializes_it() {
        let p = page();
        let f = p
            .form(&selector("input[name=prompt][value=login]").unwrap())
            .expect("login form");
        assert_eq!(f.method, "POST");
        assert_eq!(f.action.as_str(), "http://127.0.0.1:4000/interaction/abc");
        assert_eq!(
            f.fields,
            [
                ("prompt", "login"),
                ("login", ""),
                ("password", ""),
                ("terms", "on"),
                ("lang", "de"),
                ("note", "hi"),
                ("action", "signin"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!(p.form(&selector("input[name=nope]").unwrap()).is_none());
    }

    #[test]
    fn controls_outside_the_form_join_it_by_the_form_attribute() {
        let f = page()
            .form(&selector(r#"form[id="op.logoutForm"]"#).unwrap())
            .unwrap();
        assert_eq!(f.action.path(), "/session/end/confirm");
        assert_eq!(f.names(), ["xsrf", "logout"]);
    }

    #[test]
    fn a_form_without_method_or_action_is_a_get_to_the_page() {
        let p = Page::parse(
            Url::parse("http://h/p?x=1").unwrap(),
            "<form><input name=a value=1></form>",
        );
        let f = p.form(&selector("form").unwrap()).unwrap();
        assert_eq!(
            (f.method.as_str(), f.action.as_str()),
            ("GET", "http://h/p?x=1")
        );
    }

    #[test]
    fn set_replaces_or_appends() {
        let mut f = page()
            .form(&selector("input[name=login]").unwrap())
            .unwrap();
        f.set("login", "alice");
        f.set("action", "cancel");
        f.set("extra", "1");
        assert!(f.fields.contains(&("login".into(), "alice".into())));
        assert_eq!(f.fields.iter().filter(|(n, _)| n == "action").count(), 1);
        assert_eq!(
            f.fields.last().unwrap(),
            &("extra".to_string(), "1".to_string())
        );
    }

    #[test]
    fn a_selector_matching_a_submit_button_clicks_it() {
        let p = page();
        let f = p
            .form(&selector("button[value=cancel]").unwrap())
            .expect("the form of the button");
        assert_eq!(
            f.fields.last().unwrap(),
            &("action".into(), "cancel".into())
        );
        assert_eq!(f.fields.iter().filter(|(n, _)| n == "action").count(), 1);
        // A button outside its form, joined by `form=`, is found and clicked too.
        let f = p.form(&selector("button[name=logout]").unwrap()).unwrap();
        assert_eq!(f.action.path(), "/session/end/confirm");
        assert_eq!(f.names(), ["xsrf", "logout"]);
        // Matching the form itself: the first submit button is the submitter.
        let found = p.find(&selector("input[name=login]").unwrap());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].data().fields.last().unwrap(),
            &("action".into(), "signin".into())
        );
        assert_eq!(
            found[0].data_with_button(1).unwrap().fields.last().unwrap(),
            &("action".into(), "cancel".into())
        );
        assert!(found[0].data_with_button(2).is_none());
    }

    #[test]
    fn find_returns_each_matched_form_once_in_match_order() {
        let p = page();
        let found = p.find(&selector("input").unwrap());
        let actions: Vec<String> = found
            .iter()
            .map(|f| f.data().action.path().to_string())
            .collect();
        assert_eq!(
            actions,
            ["/search", "/interaction/abc", "/session/end/confirm"]
        );
        assert_eq!(p.forms().len(), 3);
        assert_eq!(
            found[1].hidden(),
            [("prompt".to_string(), "login".to_string())]
        );
    }

    #[test]
    fn buttons_are_listed_with_their_names_values_and_labels() {
        let p = page();
        let login = &p.find(&selector("input[name=login]").unwrap())[0];
        let b = login.buttons();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (
                b[1].name.as_deref(),
                b[1].value.as_deref(),
                b[1].label.as_str()
            ),
            (Some("action"), Some("cancel"), "Cancel")
        );
        assert_eq!(
            b[0].describe(),
            "<button type=submit name=action value=signin>Sign-in</button>"
        );
        let input = Page::parse(
            Url::parse("http://h/").unwrap(),
            r#"<form method=post><input type=submit name=deny value="No thanks"><input type=submit disabled name=x></form>"#,
        );
        let b = input.forms()[0].buttons();
        assert_eq!(b.len(), 1, "a disabled button is not listed");
        assert_eq!(
            b[0].describe(),
            r#"<input type=submit name=deny value="No thanks">"#
        );
        let d = p.describe_forms();
        assert!(
            d.contains("buttons: <button type=submit name=action value=signin>Sign-in</button>, <button type=submit name=action value=cancel>Cancel</button>"),
            "{d}"
        );
        assert!(
            d.contains("#op.logoutForm POST /session/end/confirm [xsrf, logout] buttons: <button type=submit name=logout value=yes>Yes</button>"),
            "{d}"
        );
    }

    #[test]
    fn title_text_and_descriptions() {
        let p = page();
        assert_eq!(p.title().as_deref(), Some("Sign-in"));
        assert_eq!(
            p.text(&selector(".error").unwrap()).as_deref(),
            Some("Invalid login")
        );
        let d = p.describe_forms();
        assert!(d.contains("#other GET /search [q]"), "{d}");
        assert!(
            d.contains("POST /interaction/abc [prompt, login, password"),
            "{d}"
        );
        assert!(selector("input[").is_err());
    }
}
