//! What the loader's checks share: the checker that collects errors at their line and column
//! with a per-file budget of did-you-mean lookups, and the check of `${{ }}` templates against
//! what is visible where they are written.

use indexmap::{IndexMap, IndexSet};

use super::diagnostic::{Diagnostic, SourceLines};
use super::location::LocationIndex;
use super::ranges::Problem;
use crate::suggest::closest;
use crate::template::{Expr, Template};
use crate::units::HINT_MARK;

/// Parsers put a hint after [`HINT_MARK`] in their messages (e.g. the range of a number); a hint
/// given by the caller comes first.
pub(super) fn split_hint(message: String, hint: Option<String>) -> (String, Option<String>) {
    match message.split_once(HINT_MARK) {
        Some((m, h)) => (m.to_string(), hint.or_else(|| Some(h.to_string()))),
        None => (message, hint),
    }
}

/// Did-you-mean lookups per file: each compares up to a thousand names, and a file with tens of
/// thousands of wrong references must still validate in linear time.
pub(super) const SUGGESTIONS_PER_FILE: usize = 200;

pub(super) struct Checker<'a> {
    pub file: &'a str,
    pub lines: SourceLines<'a>,
    pub idx: LocationIndex,
    pub errors: Vec<Diagnostic>,
    /// Did-you-mean lookups left for this file.
    pub suggestions_left: usize,
}

impl Checker<'_> {
    /// The closest candidate, while this file's budget of lookups lasts.
    pub fn suggest<'c>(
        &mut self,
        name: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> Option<String> {
        self.suggestions_left = self.suggestions_left.checked_sub(1)?;
        closest(name, candidates)
    }

    /// An error at the value written at `path`, `offset` bytes into it.
    pub fn at(
        &mut self,
        path: &str,
        offset: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (message, hint) = split_hint(message.into(), hint);
        let pos = self.idx.nearest(path);
        let col = pos.column_at(offset);
        self.errors.push(
            Diagnostic::in_source(self.file, &self.lines, pos.line, col, message).with_hint(hint),
        );
    }

    /// An error at the key of the entry at `path` (for names of things).
    pub fn at_key(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let (message, hint) = split_hint(message.into(), hint);
        let pos = self.idx.key(path).unwrap_or_else(|| self.idx.nearest(path));
        self.errors.push(
            Diagnostic::in_source(self.file, &self.lines, pos.line, pos.column, message)
                .with_hint(hint),
        );
    }

    /// Reports what a check found, each problem at its path.
    pub fn problems(&mut self, found: Vec<Problem>) {
        for p in found {
            self.at(&p.path, 0, p.message, p.hint);
        }
    }
}

/// Names steps and vars can be referred to by.
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn is_scenario_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Steps by name, with the names their captures and outputs give (sets, so that a lookup does
/// not grow with the scenario).
pub(super) type Visible = IndexMap<String, IndexSet<String>>;

/// What a template at some place may refer to.
pub(super) struct Scope<'a> {
    pub vars: &'a IndexSet<String>,
    pub secrets: &'a IndexSet<String>,
    /// Steps visible here.
    pub steps: &'a Visible,
    /// The step being checked, for its own assertions (after every visible step).
    pub own: Option<(&'a str, &'a IndexSet<String>)>,
    /// Where step references are allowed at all.
    pub steps_allowed: bool,
}

impl Scope<'_> {
    fn step(&self, name: &str) -> Option<&IndexSet<String>> {
        self.steps.get(name).or_else(|| {
            self.own
                .filter(|(own, _)| *own == name)
                .map(|(_, names)| names)
        })
    }

    fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps
            .keys()
            .map(String::as_str)
            .chain(self.own.map(|(n, _)| n))
    }
}

pub(super) fn check_template(c: &mut Checker, path: &str, text: &str, scope: &Scope) {
    let t = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let hint = e.suggestion.map(|s| format!("did you mean `{s}`?"));
            c.at(path, e.offset, e.message, hint);
            return;
        }
    };
    for (expr, offset) in t.exprs() {
        match expr {
            Expr::Var(n) if !scope.vars.contains(n) => {
                let hint = c
                    .suggest(n, scope.vars.iter().map(String::as_str))
                    .map(|s| format!("did you mean `vars.{s}`?"));
                c.at(path, offset, format!("unknown var `{n}`"), hint);
            }
            Expr::Secret(n) if !scope.secrets.contains(n) => {
                let hint = c
                    .suggest(n, scope.secrets.iter().map(String::as_str))
                    .map(|s| format!("did you mean `secrets.{s}`?"))
                    .or_else(|| Some("declare it under `secrets:` with `env:` or `file:`".into()));
                c.at(path, offset, format!("unknown secret `{n}`"), hint);
            }
            Expr::Env(n) if std::env::var_os(n).is_none() => {
                c.at(
                    path,
                    offset,
                    format!("environment variable `{n}` is not set"),
                    None,
                );
            }
            Expr::Step { step, path: p } => {
                check_step_reference(c, path, offset, step, p.first(), scope)
            }
            _ => {}
        }
    }
}

/// A `steps.<step>.<first>...` reference at `offset` in the template at `path`: allowed here,
/// to a step visible here, to a name that step gives.
fn check_step_reference(
    c: &mut Checker,
    path: &str,
    offset: usize,
    step: &str,
    first: Option<&String>,
    scope: &Scope,
) {
    if !scope.steps_allowed {
        c.at(
            path,
            offset,
            format!("`steps.{step}` cannot be used here: vars are rendered before any step runs"),
            None,
        );
        return;
    }
    let Some(names) = scope.step(step) else {
        let hint = c
            .suggest(step, scope.step_names())
            .map(|s| format!("did you mean `steps.{s}`?"))
            .or_else(|| Some("a step can only use captures of steps that run before it".into()));
        c.at(path, offset, format!("unknown step `{step}`"), hint);
        return;
    };
    let Some(first) = first else { return };
    if names.contains(first) {
        return;
    }
    let hint = c
        .suggest(first, names.iter().map(String::as_str))
        .map(|s| format!("did you mean `steps.{step}.{s}`?"))
        .or_else(|| {
            Some(format!(
                "`{step}` provides: {}",
                if names.is_empty() {
                    "nothing (add a `capture:`)".to_string()
                } else {
                    names
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        });
    c.at(
        path,
        offset,
        format!("step `{step}` has no capture or output `{first}`"),
        hint,
    );
}

/// Visits every string leaf of a JSON value with its YAML path.
fn for_each_string(v: &serde_json::Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        serde_json::Value::String(s) => f(path, s),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                for_each_string(x, &format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                // Map keys can be templates too (`resolve: {"${{ vars.host }}": ...}`).
                if k.contains("${{") {
                    f(&p, k);
                }
                for_each_string(x, &p, f);
            }
        }
        _ => {}
    }
}

pub(super) fn check_serialized<T: serde::Serialize>(
    c: &mut Checker,
    path: &str,
    value: &T,
    scope: &Scope,
) {
    let Ok(json) = serde_json::to_value(value) else {
        return;
    };
    let mut found = Vec::new();
    for_each_string(&json, path, &mut |p, s| {
        if s.contains("${{") {
            found.push((p.to_string(), s.to_string()));
        }
    });
    for (p, s) in found {
        check_template(c, &p, &s, scope);
    }
}
