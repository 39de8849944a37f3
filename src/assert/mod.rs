//! The one grammar shared by `assert:` and `capture:`: `<query> [not] <predicate> [value]`,
//! its parser, and its evaluation against an [`Observation`].

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use regex::Regex;
use serde_json::Value as Json;
use serde_json_path::JsonPath;

use crate::observation::Observation;
use crate::template::{self, Resolve};
use crate::units::{format_duration, parse_duration, parse_size, UnitError, HINT_MARK};

/// What to read from a step's observation.
#[derive(Debug, Clone)]
pub enum Query {
    Status,
    Header(String),
    Body,
    JsonPath(String, JsonPath),
    /// First capture group (or the whole match) of a regex over the body.
    Regex(String, Regex),
    Duration,
    CertificateExpiresIn,
    /// Duration of a named phase.
    Phase(String),
    /// A word of one step kind (`claim "sub"`, `reply 0`, `size`), with its argument.
    Own(&'static OwnQuery, Option<String>),
}

/// A query word a step kind defines, and where it reads the kind's outputs.
#[derive(Debug, PartialEq, Eq)]
pub struct OwnQuery {
    /// The word, e.g. `claim`, `reply`, `newest.age`.
    pub word: &'static str,
    pub arg: QueryArg,
    /// The output path it reads; [`ARG`] stands for the argument.
    pub reads: &'static [&'static str],
    /// The output is a number of seconds, compared with duration literals.
    pub seconds: bool,
}

/// In [`OwnQuery::reads`], the place of the query's argument.
pub const ARG: &str = "\u{0}arg";

/// What follows a kind's query word.
#[derive(Debug, PartialEq, Eq)]
pub enum QueryArg {
    None,
    /// A quoted string, e.g. `claim "sub"`; the text names it in messages (`claim name`).
    Quoted(&'static str),
    /// An index from 0 to `max`, e.g. `reply 1`.
    Index {
        max: usize,
    },
    /// A fixed word, e.g. `expires_in` in `token expires_in`.
    Word(&'static str),
}

impl OwnQuery {
    /// A word without an argument reading the output of the same name (`size`, `newest.age`).
    pub const fn output(word: &'static str, reads: &'static [&'static str]) -> OwnQuery {
        OwnQuery {
            word,
            arg: QueryArg::None,
            reads,
            seconds: false,
        }
    }

    /// The same, for an output that holds seconds.
    pub const fn seconds(word: &'static str, reads: &'static [&'static str]) -> OwnQuery {
        OwnQuery {
            word,
            arg: QueryArg::None,
            reads,
            seconds: true,
        }
    }

    fn path(&self, arg: Option<&str>) -> Vec<String> {
        self.reads
            .iter()
            .map(|seg| match (*seg == ARG, arg) {
                (true, Some(a)) => a.to_string(),
                _ => seg.to_string(),
            })
            .collect()
    }
}

/// Query words every kind may answer (each kind lists which it does).
const SHARED_WORDS: &[&str] = &[
    "status",
    "header",
    "body",
    "jsonpath",
    "regex",
    "duration",
    "certificate",
    "phase",
];

impl Query {
    /// The query's keyword, as step kinds list what they support.
    pub fn keyword(&self) -> &'static str {
        match self {
            Query::Status => "status",
            Query::Header(_) => "header",
            Query::Body => "body",
            Query::JsonPath(..) => "jsonpath",
            Query::Regex(..) => "regex",
            Query::Duration => "duration",
            Query::CertificateExpiresIn => "certificate",
            Query::Phase(_) => "phase",
            Query::Own(q, _) => q.word,
        }
    }

    /// True when the query yields a duration.
    pub fn is_duration(&self) -> bool {
        match self {
            Query::Duration | Query::CertificateExpiresIn | Query::Phase(_) => true,
            Query::Own(q, _) => q.seconds,
            _ => false,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Header(h) => write!(f, "header {h:?}"),
            Query::JsonPath(p, _) => write!(f, "jsonpath {p:?}"),
            Query::Regex(r, _) => write!(f, "regex {r:?}"),
            Query::CertificateExpiresIn => f.write_str("certificate expires_in"),
            Query::Phase(p) => write!(f, "phase {p:?}"),
            Query::Own(q, arg) => match (&q.arg, arg) {
                (QueryArg::Quoted(_), Some(a)) => write!(f, "{} {a:?}", q.word),
                (_, Some(a)) => write!(f, "{} {a}", q.word),
                (_, None) => f.write_str(q.word),
            },
            other => f.write_str(other.keyword()),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Eq => ord == Equal,
            Cmp::Ne => ord != Equal,
            Cmp::Lt => ord == Less,
            Cmp::Le => ord != Greater,
            Cmp::Gt => ord == Greater,
            Cmp::Ge => ord != Less,
        }
    }
}

/// The predicate of an assertion.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Cmp(Cmp),
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Exists,
    Includes,
    /// `count <cmp> N`: number of elements.
    Count(Cmp),
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Cmp(c) => f.write_str(c.symbol()),
            Predicate::Contains => f.write_str("contains"),
            Predicate::StartsWith => f.write_str("startsWith"),
            Predicate::EndsWith => f.write_str("endsWith"),
            Predicate::Matches => f.write_str("matches"),
            Predicate::Exists => f.write_str("exists"),
            Predicate::Includes => f.write_str("includes"),
            Predicate::Count(c) => write!(f, "count {}", c.symbol()),
        }
    }
}

/// A literal on the right of a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string; may hold `${{ }}` templates, rendered at evaluation.
    Str(String),
    Num(f64),
    Dur(Duration),
    Size(u64),
    Bool(bool),
    Null,
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write!(f, "{s:?}"),
            Literal::Num(n) => write!(f, "{n}"),
            Literal::Dur(d) => f.write_str(&format_literal_duration(*d)),
            Literal::Size(s) => f.write_str(&crate::units::format_size(*s)),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// A duration as a user writes it: `14d`, not `14d0h`; `2m`, not `2m0s`.
fn format_literal_duration(d: Duration) -> String {
    let s = format_duration(d);
    for (unit, zero) in [("d", "0h"), ("m", "0s")] {
        if let Some(head) = s.strip_suffix(zero) {
            if head.ends_with(unit) {
                return head.to_string();
            }
        }
    }
    s
}

/// A parsed assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub source: String,
    pub query: Query,
    pub negated: bool,
    pub predicate: Predicate,
    pub expected: Option<Literal>,
    /// The `matches` regex, compiled once when it holds no template.
    matcher: Option<Regex>,
}

/// Why an assertion or a capture does not parse; `offset` is a byte offset into the source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

fn perr(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Op(Cmp),
}

/// Splits an assertion into words, quoted strings and operators, with their offsets.
fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' {
            let start = i;
            let mut s = String::new();
            i += 1;
            let mut closed = false;
            let mut chars = src[i..].char_indices();
            while let Some((j, ch)) = chars.next() {
                match ch {
                    '"' => {
                        i += j + 1;
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        Some((_, c @ ('"' | '\\'))) => s.push(c),
                        // Any other escape is kept, so `regex "id=(\d+)"` means `\d`.
                        Some((_, other)) => {
                            s.push('\\');
                            s.push(other);
                        }
                        None => break,
                    },
                    other => s.push(other),
                }
            }
            if !closed {
                return Err(perr(start, "unterminated string: expected a closing `\"`"));
            }
            out.push((Tok::Str(s), start));
        } else if b"=!<>".contains(&c) {
            let two = src.get(i..i + 2).unwrap_or("");
            let (op, len) = match two {
                "==" => (Cmp::Eq, 2),
                "!=" => (Cmp::Ne, 2),
                "<=" => (Cmp::Le, 2),
                ">=" => (Cmp::Ge, 2),
                _ if c == b'<' => (Cmp::Lt, 1),
                _ if c == b'>' => (Cmp::Gt, 1),
                _ => return Err(perr(i, "unknown operator: expected == != < <= > >=")),
            };
            out.push((Tok::Op(op), i));
            i += len;
        } else {
            let start = i;
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && !b"\"=!<>".contains(&bytes[i])
            {
                i += 1;
            }
            out.push((Tok::Word(src[start..i].to_string()), start));
        }
    }
    Ok(out)
}

const PREDICATE_WORDS: &[&str] = &[
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "exists",
    "includes",
    "count",
];

struct Cursor<'a> {
    toks: &'a [(Tok, usize)],
    pos: usize,
    end: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<&(Tok, usize)> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }
    fn peek(&self) -> Option<&(Tok, usize)> {
        self.toks.get(self.pos)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(self.end)
    }
    /// Expects `word` after the query word `after` (`expires_in` after `certificate`).
    fn fixed_word(&mut self, after: &str, word: &str) -> Result<(), ParseError> {
        let at = self.offset();
        match self.next() {
            Some((Tok::Word(w), _)) if w == word => Ok(()),
            _ => Err(perr(at, format!("expected `{word}` after `{after}`"))),
        }
    }

    fn string_arg(&mut self, what: &str) -> Result<(String, usize), ParseError> {
        let at = self.offset();
        match self.next() {
            Some((Tok::Str(s), o)) => Ok((s.clone(), *o)),
            _ => Err(perr(
                at,
                format!("expected a quoted {what} after the query"),
            )),
        }
    }
}

fn parse_query(c: &mut Cursor) -> Result<Query, ParseError> {
    let at = c.offset();
    let word = match c.next() {
        Some((Tok::Word(w), _)) => w.clone(),
        _ => {
            return Err(perr(
                at,
                "expected a query (status, header, body, jsonpath, ...)",
            ))
        }
    };
    Ok(match word.as_str() {
        "status" => Query::Status,
        "body" => Query::Body,
        "duration" => Query::Duration,
        "header" => Query::Header(c.string_arg("header name")?.0),
        "phase" => Query::Phase(c.string_arg("phase name")?.0),
        "jsonpath" => {
            let (p, o) = c.string_arg("JSONPath")?;
            let compiled =
                JsonPath::parse(&p).map_err(|e| perr(o, format!("invalid JSONPath {p:?}: {e}")))?;
            Query::JsonPath(p, compiled)
        }
        "regex" => {
            let (p, o) = c.string_arg("regular expression")?;
            let re = Regex::new(&p).map_err(|e| perr(o, format!("invalid regex {p:?}: {e}")))?;
            Query::Regex(p, re)
        }
        "certificate" => {
            c.fixed_word("certificate", "expires_in")?;
            Query::CertificateExpiresIn
        }
        other => {
            let own = crate::steps::registry::own_queries();
            match own.iter().find(|q| q.word == other) {
                Some(q) => Query::Own(q, own_arg(c, q)?),
                None => {
                    let words = SHARED_WORDS
                        .iter()
                        .copied()
                        .chain(own.iter().map(|q| q.word));
                    let hint = crate::suggest::closest(other, words)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(perr(at, format!("unknown query `{other}`{hint}")));
                }
            }
        }
    })
}

/// The argument after a kind's own query word.
fn own_arg(c: &mut Cursor, q: &OwnQuery) -> Result<Option<String>, ParseError> {
    match q.arg {
        QueryArg::None => Ok(None),
        QueryArg::Quoted(what) => Ok(Some(c.string_arg(what)?.0)),
        QueryArg::Word(w) => {
            c.fixed_word(q.word, w)?;
            Ok(None)
        }
        QueryArg::Index { max } => {
            let at = c.offset();
            let expected = || {
                perr(
                    at,
                    format!(
                        "expected a command index after `{}`, e.g. {} 1",
                        q.word, q.word
                    ),
                )
            };
            let Some((Tok::Word(w), _)) = c.next() else {
                return Err(expected());
            };
            match w.parse::<usize>() {
                Ok(n) if n <= max => Ok(Some(n.to_string())),
                Ok(_) => Err(perr(
                    at,
                    format!(
                        "{} index `{w}` is out of range{HINT_MARK}a {} index is between 0 and {max}",
                        q.word, q.word
                    ),
                )),
                Err(_) => Err(expected()),
            }
        }
    }
}

/// Largest magnitude of a number literal (beyond it, f64 loses whole numbers anyway).
pub const MAX_NUMBER: f64 = 1e15;

/// `n` as read from `written`, when it is within ±[`MAX_NUMBER`].
fn finite(n: f64, written: &str, offset: usize) -> Result<f64, ParseError> {
    if n.is_finite() && n.abs() <= MAX_NUMBER {
        Ok(n)
    } else {
        Err(perr(
            offset,
            format!(
                "number `{written}` is out of range{HINT_MARK}a number is between -1e15 and 1e15"
            ),
        ))
    }
}

fn parse_literal(tok: &(Tok, usize)) -> Result<Literal, ParseError> {
    let (t, o) = tok;
    match t {
        Tok::Str(s) => Ok(Literal::Str(s.clone())),
        Tok::Word(w) => match w.as_str() {
            "true" => Ok(Literal::Bool(true)),
            "false" => Ok(Literal::Bool(false)),
            "null" => Ok(Literal::Null),
            _ => {
                if let Ok(n) = w.parse::<f64>() {
                    return finite(n, w, *o).map(Literal::Num);
                }
                match parse_duration(w) {
                    Ok(d) => return Ok(Literal::Dur(d)),
                    Err(e @ UnitError::DurationRange(_)) => return Err(perr(*o, e.to_string())),
                    Err(_) => {}
                }
                match parse_size(w) {
                    Ok(s) => return Ok(Literal::Size(s)),
                    Err(e @ UnitError::SizeRange(_)) => return Err(perr(*o, e.to_string())),
                    Err(_) => {}
                }
                if let Some(p) = w.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()) {
                    return finite(p / 100.0, w, *o).map(Literal::Num);
                }
                Err(perr(
                    *o,
                    format!("`{w}` is not a value: quote strings (\"{w}\"), or write a number, duration (300ms) or size (64KiB)"),
                ))
            }
        },
        Tok::Op(_) => Err(perr(*o, "expected a value, found an operator")),
    }
}

fn parse_cmp(c: &mut Cursor, after: &str) -> Result<Cmp, ParseError> {
    let at = c.offset();
    match c.next() {
        Some((Tok::Op(op), _)) => Ok(*op),
        _ => Err(perr(
            at,
            format!("expected == != < <= > >= after `{after}`"),
        )),
    }
}

/// Parses only the query part (captures).
pub fn parse_capture(src: &str) -> Result<Query, ParseError> {
    let toks = tokenize(src)?;
    let mut c = Cursor {
        toks: &toks,
        pos: 0,
        end: src.len(),
    };
    let q = parse_query(&mut c)?;
    if let Some((_, o)) = c.peek() {
        return Err(perr(
            *o,
            "unexpected text after the query: a capture is only a query",
        ));
    }
    Ok(q)
}

/// Parses `<query> [not] <predicate> [value]`.
pub fn parse_assertion(src: &str) -> Result<Assertion, ParseError> {
    let toks = tokenize(src)?;
    let mut c = Cursor {
        toks: &toks,
        pos: 0,
        end: src.len(),
    };
    let query = parse_query(&mut c)?;
    let mut negated = false;
    if matches!(c.peek(), Some((Tok::Word(w), _)) if w == "not") {
        negated = true;
        c.next();
    }
    let at = c.offset();
    let predicate = match c.next() {
        Some((Tok::Op(op), _)) => Predicate::Cmp(*op),
        Some((Tok::Word(w), _)) => match w.as_str() {
            "contains" => Predicate::Contains,
            "startsWith" => Predicate::StartsWith,
            "endsWith" => Predicate::EndsWith,
            "matches" => Predicate::Matches,
            "exists" => Predicate::Exists,
            "includes" => Predicate::Includes,
            "count" => Predicate::Count(parse_cmp(&mut c, "count")?),
            other => {
                let hint = crate::suggest::closest(other, PREDICATE_WORDS.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(perr(at, format!("unknown predicate `{other}`{hint}")));
            }
        },
        _ => {
            return Err(perr(
                at,
                "expected a predicate: == != < <= > >= contains startsWith endsWith matches exists includes count",
            ))
        }
    };
    let expected = if predicate == Predicate::Exists {
        None
    } else {
        let at = c.offset();
        let tok = c
            .next()
            .ok_or_else(|| perr(at, format!("expected a value after `{predicate}`")))?;
        Some(parse_literal(tok)?)
    };
    if let Some((_, o)) = c.peek() {
        return Err(perr(*o, "unexpected text after the value"));
    }
    check_types(&query, &predicate, expected.as_ref(), src, &toks)?;
    let matcher = match (&predicate, &expected) {
        (Predicate::Matches, Some(Literal::Str(re))) if !re.contains("${{") => Regex::new(re).ok(),
        _ => None,
    };
    Ok(Assertion {
        source: src.to_string(),
        query,
        negated,
        predicate,
        expected,
        matcher,
    })
}

/// Load-time checks that catch the common mistakes (`duration < 300`, a bad regex).
fn check_types(
    q: &Query,
    p: &Predicate,
    lit: Option<&Literal>,
    src: &str,
    toks: &[(Tok, usize)],
) -> Result<(), ParseError> {
    let value_at = toks.last().map(|t| t.1).unwrap_or(src.len());
    match (p, lit) {
        (Predicate::Count(_), Some(Literal::Num(n))) if n.fract() == 0.0 && *n >= 0.0 => Ok(()),
        (Predicate::Count(_), _) => Err(perr(value_at, "`count` compares with a whole number")),
        (Predicate::Matches, Some(Literal::Str(re))) => {
            if !re.contains("${{") {
                Regex::new(re).map_err(|e| perr(value_at, format!("invalid regex: {e}")))?;
            }
            Ok(())
        }
        (Predicate::Matches, _) => Err(perr(value_at, "`matches` takes a quoted regex")),
        (Predicate::Cmp(_), Some(Literal::Num(_))) if q.is_duration() => Err(perr(
            value_at,
            format!("`{q}` is a duration: compare it with a duration such as 300ms or 14d"),
        )),
        _ => Ok(()),
    }
}

/// The value a query read, for comparison and display. JSON is borrowed from the
/// observation where it can be, so reading a large document copies nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// The query found nothing (no such header, no JSONPath match).
    Missing,
    Json(Cow<'a, Json>),
    Dur(Duration),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Missing => f.write_str("<none>"),
            Value::Json(j) => match j.as_ref() {
                Json::String(s) => write!(f, "{s:?}"),
                other => write!(f, "{other}"),
            },
            Value::Dur(d) => f.write_str(&format_duration(*d)),
        }
    }
}

impl<'a> Value<'a> {
    fn owned(j: Json) -> Value<'a> {
        Value::Json(Cow::Owned(j))
    }

    fn borrowed(j: &'a Json) -> Value<'a> {
        Value::Json(Cow::Borrowed(j))
    }

    /// The JSON read, if the value is JSON.
    pub fn json(&self) -> Option<&Json> {
        match self {
            Value::Json(j) => Some(j.as_ref()),
            Value::Missing | Value::Dur(_) => None,
        }
    }

    /// True when the query found nothing.
    pub fn is_missing(&self) -> bool {
        matches!(self, Value::Missing)
    }

    /// The value as plain text for a capture (strings unquoted, JSON otherwise).
    pub fn to_capture_string(&self) -> Option<String> {
        match self {
            Value::Missing => None,
            Value::Json(j) => Some(as_text(j)),
            Value::Dur(d) => Some(format!("{}", d.as_secs_f64())),
        }
    }

    /// The value as JSON, so captures can be reached by path (`steps.x.claims.sub`).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Missing => Json::Null,
            Value::Json(j) => j.as_ref().clone(),
            Value::Dur(d) => serde_json::json!(d.as_secs_f64()),
        }
    }
}

/// Seconds reported by a server as a duration: negative or NaN is zero, too large saturates.
fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

/// Reads a query from an observation.
pub fn eval_query<'a>(q: &Query, obs: &'a Observation) -> Result<Value<'a>, String> {
    Ok(match q {
        Query::Status => obs
            .status
            .map(|s| Value::owned(Json::from(s)))
            .unwrap_or(Value::Missing),
        Query::Header(h) => obs
            .header(h)
            .map(|v| Value::owned(Json::String(v.to_string())))
            .unwrap_or(Value::Missing),
        Query::Body => Value::owned(Json::String(obs.body_text())),
        Query::JsonPath(src, path) => {
            let Some(doc) = obs.body_json() else {
                let why = if obs.body_truncated {
                    "the body was cut at the step's max_body"
                } else {
                    "the body is not JSON"
                };
                return Err(format!("jsonpath {src:?}: {why}"));
            };
            let nodes = path.query(doc).all();
            match nodes.len() {
                0 => Value::Missing,
                1 => Value::borrowed(nodes[0]),
                _ => Value::owned(Json::Array(nodes.into_iter().cloned().collect())),
            }
        }
        Query::Regex(_, re) => {
            let text = obs.body_text();
            match re.captures(&text) {
                Some(caps) => {
                    let m = caps.get(1).or_else(|| caps.get(0));
                    m.map(|m| Value::owned(Json::String(m.as_str().to_string())))
                        .unwrap_or(Value::Missing)
                }
                None => Value::Missing,
            }
        }
        Query::Duration => Value::Dur(obs.duration),
        Query::CertificateExpiresIn => match obs.cert_not_after {
            Some(t) => Value::Dur(
                t.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            ),
            None => return Err("no TLS certificate: the request did not use TLS".to_string()),
        },
        Query::Phase(p) => obs.phase(p).map(Value::Dur).unwrap_or(Value::Missing),
        Query::Own(q, arg) => match obs.output(&q.path(arg.as_deref())) {
            Some(Json::Number(n)) if q.seconds => {
                Value::Dur(saturating_secs(n.as_f64().unwrap_or(0.0)))
            }
            Some(_) if q.seconds => Value::Missing,
            Some(v) => Value::borrowed(v),
            None => Value::Missing,
        },
    })
}

/// The outcome of evaluating one assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub passed: bool,
    /// What the query read, for display.
    pub actual: String,
    /// What was expected, for display (templates rendered).
    pub expected: String,
}

fn as_f64(j: &Json) -> Option<f64> {
    match j {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        Json::Bool(_) | Json::Null | Json::Array(_) | Json::Object(_) => None,
    }
}

fn as_text(j: &Json) -> String {
    match j {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Expected literal after template rendering.
enum Expected {
    Json(Json),
    Dur(Duration),
}

fn compare(actual: &Value, cmp: Cmp, expected: &Expected) -> Result<bool, String> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (actual, expected) {
        (Value::Missing, Expected::Json(Json::Null)) => Some(Ordering::Equal),
        (Value::Missing, _) => return Ok(cmp == Cmp::Ne),
        (Value::Dur(a), Expected::Dur(b)) => Some(a.cmp(b)),
        (Value::Dur(_), Expected::Json(_)) => {
            return Err("a duration compares only with a duration literal (300ms)".into())
        }
        (Value::Json(a), Expected::Dur(b)) => {
            // Outputs such as `age` come as seconds.
            as_f64(a).and_then(|x| x.partial_cmp(&b.as_secs_f64()))
        }
        (Value::Json(a), Expected::Json(b)) => match (a.as_ref(), b) {
            (a, Json::Number(_)) => match (as_f64(a), as_f64(b)) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
            (Json::String(x), Json::String(y)) => Some(x.cmp(y)),
            (x, Json::String(y)) => Some(as_text(x).cmp(y)),
            (x, y) if matches!(cmp, Cmp::Eq | Cmp::Ne) => Some(if x == y {
                Ordering::Equal
            } else {
                Ordering::Less
            }),
            _ => None,
        },
    };
    match ord {
        Some(o) => Ok(cmp.holds(o)),
        None if matches!(cmp, Cmp::Eq) => Ok(false),
        None if matches!(cmp, Cmp::Ne) => Ok(true),
        None => Err(format!("cannot order {actual} against the expected value")),
    }
}

fn element_count(v: &Value) -> usize {
    match (v, v.json()) {
        (Value::Missing, _) => 0,
        (_, Some(Json::Array(a))) => a.len(),
        (_, Some(Json::Object(o))) => o.len(),
        (_, Some(Json::String(s))) => s.chars().count(),
        (_, Some(Json::Null)) => 0,
        _ => 1,
    }
}

impl Assertion {
    /// Evaluates the assertion; templates in the expected value are rendered with `resolver`.
    pub fn check(&self, obs: &Observation, resolver: &dyn Resolve) -> Check {
        let actual = eval_query(&self.query, obs);
        let expected = match &self.expected {
            None => Ok(None),
            Some(Literal::Str(s)) => template::render(s, resolver)
                .map(|r| Some(Expected::Json(Json::String(r))))
                .map_err(|e| e.0),
            Some(Literal::Num(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
                Ok(Some(Expected::Json(Json::from(*n as i64))))
            }
            Some(Literal::Num(n)) => Ok(Some(Expected::Json(serde_json::json!(n)))),
            Some(Literal::Size(n)) => Ok(Some(Expected::Json(Json::from(*n)))),
            Some(Literal::Bool(b)) => Ok(Some(Expected::Json(Json::Bool(*b)))),
            Some(Literal::Null) => Ok(Some(Expected::Json(Json::Null))),
            Some(Literal::Dur(d)) => Ok(Some(Expected::Dur(*d))),
        };
        let expected_text = match &expected {
            Ok(Some(Expected::Json(Json::String(s)))) => format!("{s:?}"),
            Ok(Some(Expected::Json(j))) => j.to_string(),
            Ok(Some(Expected::Dur(d))) => format_literal_duration(*d),
            Ok(None) => String::new(),
            Err(e) => format!("<{e}>"),
        };
        let expected_desc = if self.expected.is_some() {
            format!(
                "{}{} {expected_text}",
                if self.negated { "not " } else { "" },
                self.predicate
            )
        } else {
            format!(
                "{}{}",
                if self.negated { "not " } else { "" },
                self.predicate
            )
        };
        let (actual, expected) = match (actual, expected) {
            (Ok(a), Ok(e)) => (a, e),
            (Err(msg), _) | (_, Err(msg)) => {
                return Check {
                    passed: false,
                    actual: format!("<{msg}>"),
                    expected: expected_desc,
                }
            }
        };
        let result = self.apply(&actual, expected.as_ref());
        let passed = match result {
            Ok(b) => b != self.negated,
            Err(_) => false,
        };
        let actual_text = match (&result, &self.predicate) {
            (Err(e), _) => format!("{actual} ({e})"),
            (Ok(_), Predicate::Count(_)) => {
                format!("{} (count of {actual})", element_count(&actual))
            }
            _ => actual.to_string(),
        };
        Check {
            passed,
            actual: actual_text,
            expected: expected_desc,
        }
    }

    fn apply(&self, actual: &Value, expected: Option<&Expected>) -> Result<bool, String> {
        let exp_json = || match expected {
            Some(Expected::Json(j)) => Ok(j),
            _ => Err("expected a string or number".to_string()),
        };
        let text_pair = |f: fn(&str, &str) -> bool| -> Result<bool, String> {
            let e = as_text(exp_json()?);
            match actual {
                Value::Json(a) => Ok(f(&as_text(a), &e)),
                Value::Missing => Ok(false),
                Value::Dur(_) => Err("not text".into()),
            }
        };
        match &self.predicate {
            Predicate::Exists => Ok(!matches!(actual, Value::Missing)),
            Predicate::Cmp(c) => compare(
                actual,
                *c,
                expected.ok_or_else(|| "missing value".to_string())?,
            ),
            Predicate::Count(c) => {
                let n = element_count(actual) as f64;
                let want = as_f64(exp_json()?).ok_or("count needs a number")?;
                Ok(c.holds(n.total_cmp(&want)))
            }
            Predicate::Contains => match actual.json() {
                Some(Json::Array(items)) => {
                    let e = exp_json()?;
                    Ok(items.iter().any(|i| i == e || as_text(i) == as_text(e)))
                }
                _ => text_pair(|a, e| a.contains(e)),
            },
            Predicate::StartsWith => text_pair(|a, e| a.starts_with(e)),
            Predicate::EndsWith => text_pair(|a, e| a.ends_with(e)),
            Predicate::Matches => {
                let compiled;
                let re = match &self.matcher {
                    Some(re) => re,
                    None => {
                        compiled = Regex::new(&as_text(exp_json()?)).map_err(|e| e.to_string())?;
                        &compiled
                    }
                };
                match actual {
                    Value::Json(a) => Ok(re.is_match(&as_text(a))),
                    _ => Ok(false),
                }
            }
            Predicate::Includes => {
                let e = as_text(exp_json()?);
                match actual.json() {
                    Some(Json::Array(items)) => Ok(items.iter().any(|i| as_text(i) == e)),
                    // OAuth-style space-separated lists (`scope`) and single-valued `aud`.
                    Some(Json::String(s)) => Ok(s.split_whitespace().any(|w| w == e)),
                    Some(other) => Ok(as_text(other) == e),
                    None => Ok(false),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Expr, RenderError};

    struct NoVars;
    impl Resolve for NoVars {
        fn resolve(&self, e: &Expr) -> Result<String, RenderError> {
            match e {
                Expr::Var(v) if v == "user" => Ok("alice".into()),
                other => Err(RenderError(format!("no {other}"))),
            }
        }
    }

    fn obs(status: u16, body: &str) -> Observation {
        let mut o = Observation::default();
        o.status = Some(status);
        o.headers = vec![("content-type".into(), "application/json".into())];
        o.body = body.as_bytes().to_vec();
        o.duration = Duration::from_millis(120);
        o
    }

    fn check(src: &str, o: &Observation) -> Check {
        parse_assertion(src).unwrap().check(o, &NoVars)
    }

    #[test]
    fn status_and_headers() {
        let o = obs(200, "{}");
        assert!(check("status == 200", &o).passed);
        let c = check("status == 201", &o);
        assert!(!c.passed);
        assert_eq!(c.actual, "200");
        assert_eq!(c.expected, "== 201");
        assert!(check("status < 300", &o).passed);
        assert!(check(r#"header "Content-Type" startsWith "application/""#, &o).passed);
        assert!(check(r#"header "X-Nope" not exists"#, &o).passed);
        assert!(!check(r#"header "X-Nope" exists"#, &o).passed);
    }

    #[test]
    fn jsonpath_predicates_and_templates() {
        let o = obs(200, r#"{"user":"alice","roles":["a","b"],"n":3,"ok":true}"#);
        assert!(check(r#"jsonpath "$.user" == "${{ vars.user }}""#, &o).passed);
        assert!(check(r#"jsonpath "$.roles" includes "b""#, &o).passed);
        assert!(check(r#"jsonpath "$.roles" count == 2"#, &o).passed);
        assert!(check(r#"jsonpath "$.n" >= 3"#, &o).passed);
        assert!(check(r#"jsonpath "$.ok" == true"#, &o).passed);
        assert!(check(r#"jsonpath "$.user" matches "^al""#, &o).passed);
        assert!(check(r#"jsonpath "$.user" not contains "bob""#, &o).passed);
        let c = check(r#"jsonpath "$.user" == "bob""#, &o);
        assert_eq!((c.passed, c.actual.as_str()), (false, "\"alice\""));
        let c = check(r#"jsonpath "$.missing" == 1"#, &o);
        assert_eq!(c.actual, "<none>");
    }

    #[test]
    fn jsonpath_on_non_json_fails_with_reason() {
        let c = check(r#"jsonpath "$.a" exists"#, &obs(200, "<html>"));
        assert!(!c.passed);
        assert!(c.actual.contains("not JSON"), "{}", c.actual);
    }

    #[test]
    fn durations_and_regex() {
        let o = obs(200, "token=abc123;");
        assert!(check("duration < 300ms", &o).passed);
        assert!(!check("duration < 100ms", &o).passed);
        assert!(check(r#"regex "token=(\\w+)" == "abc123""#, &o).passed);
        assert!(check(r#"body contains "abc""#, &o).passed);
        assert!(check(r#"body endsWith ";""#, &o).passed);
    }

    #[test]
    fn parse_errors_have_offsets_and_hints() {
        let e = parse_assertion("stauts == 200").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("did you mean `status`"), "{}", e.message);
        let e = parse_assertion("status === 200").unwrap_err();
        assert!(e.offset >= 7, "{e:?}");
        let e = parse_assertion("duration < 300").unwrap_err();
        assert!(e.message.contains("duration"), "{}", e.message);
        let e = parse_assertion(r#"jsonpath "$[" == 1"#).unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(parse_assertion("status ==").is_err());
        assert!(parse_assertion(r#"body matches "(""#).is_err());
        assert!(parse_assertion("status == 200 extra").is_err());
        assert!(parse_assertion(r#"body contains "open"#).is_err());
    }

    #[test]
    fn out_of_range_literals_are_located_errors() {
        for (src, offset) in [
            ("status == 1e400", 10),
            ("status == inf", 10),
            ("status == NaN", 10),
            ("duration < 99999999999999999999d", 11),
            ("size > 1e30TiB", 7),
            ("reply 99999999999999999999 == 1", 6),
            ("reply 1000 exists", 6),
        ] {
            let e = parse_assertion(src).unwrap_err();
            assert_eq!(e.offset, offset, "{src}: {e:?}");
        }
        let e = parse_assertion("duration < 99999999999999999999d").unwrap_err();
        assert!(e.message.contains("between 0s and 3650d"), "{}", e.message);
        assert!(parse_assertion("reply 999 exists").is_ok());
    }

    #[test]
    fn huge_durations_from_a_server_saturate() {
        assert_eq!(saturating_secs(1e300), Duration::MAX);
        assert_eq!(saturating_secs(-5.0), Duration::ZERO);
        assert_eq!(saturating_secs(f64::NAN), Duration::ZERO);
        assert_eq!(saturating_secs(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn captures_are_bare_queries() {
        assert!(matches!(
            parse_capture(r#"jsonpath "$.id""#),
            Ok(Query::JsonPath(..))
        ));
        assert!(parse_capture("status == 200").is_err());
    }
}
