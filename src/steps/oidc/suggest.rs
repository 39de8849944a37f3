//! A `pages:` rule for a page after the login that no rule matches: the one that submits the
//! page's first submit button that does not cancel, deny or go back, written as YAML for the
//! failure message. Only a selector that really selects that form and button is suggested.

use super::form::{selector, Button, Found, Page};

/// Words (or word starts) of a button that declines: it is never the one suggested.
const DECLINE_STEMS: &[&str] = &[
    "cancel", "deny", "denied", "decline", "abort", "reject", "refuse", "disallow",
];
const DECLINE_WORDS: &[&str] = &["no", "not", "back", "never"];

/// The hint for the failure message, or `None` when the page has no button to suggest.
pub fn rule_for(page: &Page) -> Option<String> {
    let forms = page.forms();
    let buttons: Vec<(usize, usize, Button)> = forms
        .iter()
        .enumerate()
        .flat_map(|(f, form)| {
            form.buttons()
                .into_iter()
                .enumerate()
                .map(move |(n, b)| (f, n, b))
        })
        .collect();
    let (f, n, button) = buttons.iter().find(|(_, _, b)| !declines(b))?;
    let expected = forms[*f].data_with_button(*n)?;
    let all: Vec<&Button> = buttons.iter().map(|(_, _, b)| b).collect();
    let chosen = candidates(&forms[*f], button, &all)
        .into_iter()
        .find(|c| selector(c).is_ok_and(|s| page.form(&s).as_ref() == Some(&expected)))?;
    let label = if button.label.is_empty() {
        button.describe()
    } else {
        format!("\"{}\"", button.label)
    };
    Some(format!(
        "  a rule that submits {label}; add it to the step:\n    pages:\n      - form: {}",
        yaml_quote(&chosen)
    ))
}

/// True when the button's name, value, id or label says no.
fn declines(b: &Button) -> bool {
    [&b.name, &b.value, &b.id, &Some(b.label.clone())]
        .into_iter()
        .flatten()
        .flat_map(|t| words(t))
        .any(|w| {
            DECLINE_WORDS.contains(&w.as_str()) || DECLINE_STEMS.iter().any(|s| w.starts_with(s))
        })
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Selectors for the button, most telling first: its name (and value when another button
/// shares the name), its id, its form's id, a fixed hidden input of its form, its classes.
fn candidates(form: &Found<'_>, b: &Button, all: &[&Button]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(name) = &b.name {
        let shared = all.iter().filter(|o| o.name == b.name).count() > 1;
        match &b.value {
            Some(v) if shared => out.push(format!(
                "{}{}{}",
                b.tag,
                attr("name", name),
                attr("value", v)
            )),
            _ => out.push(format!("{}{}", b.tag, attr("name", name))),
        }
    }
    if let Some(id) = &b.id {
        out.push(format!("{}{}", b.tag, attr("id", id)));
    }
    if let Some(id) = form.id() {
        out.push(format!("form{}", attr("id", id)));
    }
    for (name, value) in form.hidden() {
        if is_fixed(&name, &value) {
            out.push(format!(
                "input{}{}",
                attr("name", &name),
                attr("value", &value)
            ));
        }
    }
    if !b.classes.is_empty() && b.classes.iter().all(|c| is_ident(c)) {
        out.push(format!("{}.{}", b.tag, b.classes.join(".")));
    }
    out
}

/// A hidden input that looks the same on every visit (`prompt=consent`), not a token.
fn is_fixed(name: &str, value: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let tokenish = [
        "csrf",
        "xsrf",
        "token",
        "state",
        "nonce",
        "session",
        "authenticity",
    ]
    .iter()
    .any(|t| n.contains(t));
    !tokenish
        && !value.is_empty()
        && value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
}

/// `[name=value]`, the value quoted unless it is a CSS identifier.
fn attr(name: &str, value: &str) -> String {
    if is_ident(value) {
        format!("[{name}={value}]")
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("[{name}=\"{escaped}\"]")
    }
}

/// A CSS identifier that needs no quoting: a letter or `_`, then letters, digits, `-`, `_`.
fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_')
}

/// A YAML single-quoted scalar.
fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn page(html: &str) -> Page {
        Page::parse(Url::parse("http://idp.test/consent/x1").unwrap(), html)
    }

    /// The selector in the hint.
    fn suggested(html: &str) -> Option<String> {
        let hint = rule_for(&page(html))?;
        let line = hint
            .lines()
            .find_map(|l| l.trim().strip_prefix("- form: "))?;
        let inner = line.strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("''", "'"))
    }

    #[test]
    fn the_first_button_that_does_not_decline_is_suggested_by_name() {
        let html = r#"<title>Authorize</title><form method=post>
            <input type=hidden name=csrfmiddlewaretoken value=a8F3kq0>
            <input type=submit name=cancel value=Cancel>
            <button type=submit name=allow value=yes>Allow</button>
            <button type=submit name=deny value=no>Deny</button></form>"#;
        let hint = rule_for(&page(html)).unwrap();
        assert!(hint.contains("submits \"Allow\""), "{hint}");
        assert!(hint.contains("    pages:\n      - form: "), "{hint}");
        assert_eq!(suggested(html).as_deref(), Some("button[name=allow]"));
    }

    #[test]
    fn a_name_shared_by_several_buttons_takes_the_value_too() {
        let html = r#"<form method=post action="/consent">
            <button name=decision value="deny access">No</button>
            <button name=decision value="grant access">Yes, allow</button></form>"#;
        assert_eq!(
            suggested(html).as_deref(),
            Some(r#"button[name=decision][value="grant access"]"#)
        );
    }

    #[test]
    fn an_unnamed_button_is_reached_through_its_form() {
        // Dex-like: two forms, the approving one marked by a fixed hidden input.
        let html = r#"<form method=post><input type=hidden name=req value=r4nd0m>
            <input type=hidden name=approval value=approve><button type=submit>Grant Access</button></form>
            <form method=post><input type=hidden name=req value=r4nd0m>
            <input type=hidden name=approval value=rejected><button type=submit>Cancel</button></form>"#;
        assert_eq!(
            suggested(html).as_deref(),
            Some("input[name=approval][value=approve]")
        );
        // Keycloak-like: the form's id.
        let html =
            r#"<form id="kc-oauth" method=post><input type=submit id=kc-login value=Yes></form>"#;
        assert_eq!(suggested(html).as_deref(), Some("input[id=kc-login]"));
        let html = r#"<form id="consent.form" method=post><button>OK</button></form>"#;
        assert_eq!(
            suggested(html).as_deref(),
            Some(r#"form[id="consent.form"]"#)
        );
    }

    #[test]
    fn only_declining_buttons_or_none_suggest_nothing() {
        assert!(rule_for(&page("<form><button name=cancel>Cancel</button></form>")).is_none());
        assert!(rule_for(&page(r#"<form><input type=submit value="Not now"></form>"#)).is_none());
        assert!(rule_for(&page("<p>no form</p>")).is_none());
        // By its classes, when they pick that button...
        let html = r#"<form action=/a><button class="btn go">Go</button></form>"#;
        assert_eq!(suggested(html).as_deref(), Some("button.btn.go"));
        // ... but a selector that would pick another form's button is not suggested.
        let twin = r#"<form action=/a><button class=b>Cancel</button></form><form action=/b><button class=b>Go</button></form>"#;
        assert!(rule_for(&page(twin)).is_none());
    }

    #[test]
    fn declining_words_are_whole_words_or_stems() {
        let b = |label: &str| Button {
            tag: "button".into(),
            kind: String::new(),
            name: None,
            value: None,
            id: None,
            classes: Vec::new(),
            label: label.into(),
        };
        for no in [
            "Cancel",
            "Deny",
            "Reject all",
            "No",
            "Not now",
            "Go back",
            "Decline",
        ] {
            assert!(declines(&b(no)), "{no}");
        }
        for yes in [
            "Allow",
            "Continue",
            "Notify me",
            "Nobody else",
            "Yes",
            "Accept",
        ] {
            assert!(!declines(&b(yes)), "{yes}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(attr("value", "yes"), "[value=yes]");
        assert_eq!(attr("value", "a b\"c"), r#"[value="a b\"c"]"#);
        assert_eq!(yaml_quote("a'b"), "'a''b'");
    }
}
