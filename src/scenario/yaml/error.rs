//! Errors of reading YAML: a syntax error, and located deserialization errors (path, line,
//! column, message; an unknown field's name and the expected ones as data), collected in a
//! sink so that one bad value does not hide the next.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

use super::path::Path;
use super::tree::Node;

/// The text is not YAML (or not one document of it); nothing else can be said about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A key that is not a field of the struct it is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub field: String,
    pub expected: &'static [&'static str],
}

/// One value that could not be deserialized, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub struct YamlError {
    /// Where in the document, `steps[1].http.url` style; empty at the top.
    pub path: String,
    pub line: usize,
    pub column: usize,
    /// What is wrong, without the path.
    pub message: String,
    /// Set for an unknown field, for a "did you mean".
    pub unknown_field: Option<UnknownField>,
}

impl YamlError {
    /// The message after its path: `steps[0].timeout: invalid duration ...`.
    pub fn text(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

impl From<SyntaxError> for YamlError {
    fn from(e: SyntaxError) -> Self {
        YamlError {
            path: String::new(),
            line: e.line,
            column: e.column,
            message: e.message,
            unknown_field: None,
        }
    }
}

/// What went wrong, before it is given a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem {
    Custom(String),
    UnknownField(UnknownField),
    MissingField(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Custom(m) => f.write_str(m),
            Problem::MissingField(name) => write!(f, "missing field `{name}`"),
            Problem::UnknownField(u) => {
                write!(f, "unknown field `{}`, ", u.field)?;
                match u.expected {
                    [] => f.write_str("there are no fields"),
                    [one] => write!(f, "expected `{one}`"),
                    [a, b] => write!(f, "expected `{a}` or `{b}`"),
                    many => {
                        let list: Vec<String> = many.iter().map(|n| format!("`{n}`")).collect();
                        write!(f, "expected one of {}", list.join(", "))
                    }
                }
            }
        }
    }
}

/// The error type of the deserializer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum DeError {
    /// Raised by a visitor; the node being deserialized gives it its place.
    #[error("{0}")]
    Unlocated(Problem),
    /// Placed at the innermost node it concerns.
    #[error("{0}")]
    Located(Box<YamlError>),
    /// Already in the sink: callers only stop.
    #[error("already reported")]
    Reported,
}

impl serde::de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Unlocated(Problem::Custom(msg.to_string()))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::Unlocated(Problem::UnknownField(UnknownField {
            field: field.to_string(),
            expected,
        }))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::Unlocated(Problem::MissingField(field))
    }
}

/// `problem` placed at `node`, whose path is `path`.
pub(super) fn locate(problem: Problem, node: &Node, path: &Path) -> YamlError {
    let message = problem.to_string();
    YamlError {
        path: path.to_string(),
        line: node.mark.line,
        column: node.mark.column,
        message,
        unknown_field: match problem {
            Problem::UnknownField(u) => Some(u),
            _ => None,
        },
    }
}

/// Errors found so far (each once), muted while a failed value is retried as null; and the
/// keys of struct fields whose value failed, hidden when the struct is read again.
#[derive(Default)]
pub(super) struct Sink {
    errors: RefCell<Vec<YamlError>>,
    seen: RefCell<HashSet<(usize, usize, String)>>,
    muted: Cell<usize>,
    hidden: RefCell<HashSet<*const Node>>,
}

impl Sink {
    pub(super) fn push(&self, e: YamlError) {
        if self.muted.get() > 0 {
            return;
        }
        if self.seen.borrow_mut().insert((e.line, e.column, e.text())) {
            self.errors.borrow_mut().push(e);
        }
    }

    /// Records `e` (raised while deserializing `node` at `path`) unless it already is.
    pub(super) fn record(&self, e: DeError, node: &Node, path: &Path) {
        match e {
            DeError::Unlocated(p) => self.push(locate(p, node, path)),
            DeError::Located(y) => self.push(*y),
            DeError::Reported => {}
        }
    }

    /// Runs `f` without recording what it finds.
    pub(super) fn muted<T>(&self, f: impl FnOnce() -> T) -> T {
        self.muted.set(self.muted.get() + 1);
        let out = f();
        self.muted.set(self.muted.get() - 1);
        out
    }

    /// Hides a struct field (by its key node) whose value cannot be read.
    pub(super) fn hide(&self, key: &Node) {
        self.hidden.borrow_mut().insert(key as *const Node);
    }

    pub(super) fn is_hidden(&self, key: &Node) -> bool {
        self.hidden.borrow().contains(&(key as *const Node))
    }

    pub(super) fn hidden_count(&self) -> usize {
        self.hidden.borrow().len()
    }

    /// Every error, in the order they are written in the file.
    pub(super) fn into_errors(self) -> Vec<YamlError> {
        let mut errors = self.errors.into_inner();
        errors.sort_by_key(|e| (e.line, e.column));
        errors
    }

    pub(super) fn is_empty(&self) -> bool {
        self.errors.borrow().is_empty()
    }
}
