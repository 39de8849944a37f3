//! HTML forms of an IdP's pages, read with `scraper` the way a browser would submit them:
//! the form found by a CSS selector (the form itself or any element inside it), every
//! successful control serialized (hidden inputs included), the first submit button as the
//! submitter, and field values set by name.

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

/// A parsed HTML page. Not `Send`: analyse it and drop it before the next request.
pub struct Page {
    pub url: Url,
    doc: Html,
}

/// Parses a selector written in a scenario or a preset.
pub fn selector(src: &str) -> Result<Selector, String> {
    Selector::parse(src).map_err(|e| format!("invalid CSS selector `{src}`: {e}"))
}

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

    /// The form matched by `sel`: the first matching element that is a form or sits in one.
    pub fn form(&self, sel: &Selector) -> Option<FormData> {
        let form = self.doc.select(sel).find_map(enclosing_form)?;
        Some(self.serialize(form))
    }

    /// The name of the first control matching `control` inside the form matched by `form`.
    pub fn control_name(&self, form: &Selector, control: &Selector) -> Option<String> {
        let f = self.doc.select(form).find_map(enclosing_form)?;
        let id = f.value().attr("id");
        self.doc
            .select(control)
            .filter(|c| belongs_to(*c, f, id))
            .find_map(|c| c.value().attr("name").map(str::to_string))
    }

    /// One line per form on the page: where it goes and its field names (for messages when
    /// nothing matched: the IdP's UI may have changed).
    pub fn describe_forms(&self) -> String {
        let Ok(sel) = Selector::parse("form") else {
            return String::new();
        };
        let forms: Vec<String> = self
            .doc
            .select(&sel)
            .map(|f| {
                let data = self.serialize(f);
                let id = f
                    .value()
                    .attr("id")
                    .map(|i| format!("#{i} "))
                    .unwrap_or_default();
                format!(
                    "{id}{} {} [{}]",
                    data.method,
                    data.action.path(),
                    data.names().join(", ")
                )
            })
            .collect();
        if forms.is_empty() {
            "no form on the page".to_string()
        } else {
            format!("forms on the page: {}", forms.join("; "))
        }
    }

    fn serialize(&self, form: ElementRef<'_>) -> FormData {
        let method = match form.value().attr("method") {
            Some(m) if m.eq_ignore_ascii_case("post") => "POST",
            _ => "GET",
        };
        let action = form
            .value()
            .attr("action")
            .filter(|a| !a.trim().is_empty())
            .and_then(|a| self.url.join(a.trim()).ok())
            .unwrap_or_else(|| self.url.clone());
        let form_id = form.value().attr("id");
        let mut fields = Vec::new();
        let mut submitter: Option<(String, String)> = None;
        let mut submitter_seen = false;
        let Ok(controls) = Selector::parse("input, select, textarea, button") else {
            return FormData {
                method: method.into(),
                action,
                fields,
            };
        };
        for el in self.doc.select(&controls) {
            if !belongs_to(el, form, form_id) {
                continue;
            }
            let v = el.value();
            if v.attr("disabled").is_some() {
                continue;
            }
            let name = v.attr("name").unwrap_or_default();
            let tag = v.name();
            let kind = v.attr("type").unwrap_or("").to_ascii_lowercase();
            let is_submit = match tag {
                "button" => kind.is_empty() || kind == "submit",
                "input" => kind == "submit" || kind == "image",
                _ => false,
            };
            if is_submit {
                // The first submit button is the one "clicked"; its name/value goes along.
                if !submitter_seen {
                    submitter_seen = true;
                    if !name.is_empty() {
                        submitter = Some((name.to_string(), v.attr("value").unwrap_or("").into()));
                    }
                }
                continue;
            }
            if name.is_empty() {
                continue;
            }
            match tag {
                "input" => match kind.as_str() {
                    "button" | "reset" | "file" => {}
                    "checkbox" | "radio" => {
                        if v.attr("checked").is_some() {
                            fields.push((name.into(), v.attr("value").unwrap_or("on").into()));
                        }
                    }
                    _ => fields.push((name.into(), v.attr("value").unwrap_or("").into())),
                },
                "textarea" => fields.push((name.into(), el.text().collect())),
                "select" => {
                    for value in selected_options(el) {
                        fields.push((name.into(), value));
                    }
                }
                _ => {}
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

/// The element itself when it is a form, else its nearest form ancestor.
fn enclosing_form(el: ElementRef<'_>) -> Option<ElementRef<'_>> {
    if el.value().name() == "form" {
        return Some(el);
    }
    el.ancestors()
        .filter_map(ElementRef::wrap)
        .find(|a| a.value().name() == "form")
}

/// A control belongs to a form by its `form="id"` attribute, or else by being inside it.
fn belongs_to(el: ElementRef<'_>, form: ElementRef<'_>, form_id: Option<&str>) -> bool {
    match el.value().attr("form") {
        Some(owner) => Some(owner) == form_id,
        None => el.ancestors().any(|a| a.id() == form.id()),
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
