//! Secret sources (env, file) read at the start of every run, and the redactor that keeps their
//! values — and credentials in echoed headers — out of everything the process prints or writes.

use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, LazyLock, RwLock};

use base64::Engine;
use regex::{Captures, Regex};

use crate::scenario::model::SecretSource;

/// The largest secret file read. A bigger one is a configuration mistake (a key file pointing
/// at a log, `/dev/zero`), and reading stops one byte past the limit.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret that could not be read. The message names the source, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{name}`: environment variable {var} is not set")]
    EnvUnset { name: String, var: String },
    #[error("secret `{name}`: cannot read file {path}: {why}")]
    File {
        name: String,
        path: String,
        why: String,
    },
    #[error("secret `{name}`: file {path} is larger than {limit} bytes")]
    TooLarge {
        name: String,
        path: String,
        limit: u64,
    },
    #[error("secret `{name}`: give exactly one of `env` or `file`")]
    NoSource { name: String },
}

/// Reads a secret's current value. Files are read anew each time, so rotation takes effect.
pub fn read_secret(name: &str, src: &SecretSource) -> Result<String, SecretError> {
    match (&src.env, &src.file) {
        (Some(var), None) => std::env::var(var).map_err(|_| SecretError::EnvUnset {
            name: name.to_string(),
            var: var.clone(),
        }),
        (None, Some(path)) => read_secret_file(name, path),
        _ => Err(SecretError::NoSource {
            name: name.to_string(),
        }),
    }
}

/// Reads at most [`MAX_SECRET_FILE_BYTES`] + 1 bytes, so an endless file cannot eat memory.
fn read_secret_file(name: &str, path: &str) -> Result<String, SecretError> {
    let file_error = |why: String| SecretError::File {
        name: name.to_string(),
        path: path.to_string(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| file_error(e.kind().to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(e.kind().to_string()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::TooLarge {
            name: name.to_string(),
            path: path.to_string(),
            limit: MAX_SECRET_FILE_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| file_error("not UTF-8 text".into()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Replaces known secret values, in every form they travel in, with `[redacted:name]`, and
/// blanks the values of credential headers (`Authorization`, `Cookie`, ...) in echoed text.
///
/// Cloning shares the list, so a value registered by one step (a captured token) is redacted
/// in every reader of the run.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (form, name), longest form first.
    entries: Arc<RwLock<Vec<(String, String)>>>,
}

/// RFC 3986 percent-encoding of everything but unreserved characters, with upper- or
/// lower-case hex digits (both are valid, and servers echo either).
fn percent_encode_strict(value: &str, lower: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// JSON escaping as ASCII-only serializers write it (`\u00e9`, `\/`): Python's `json.dumps`,
/// PHP's `json_encode`.
fn json_ascii_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out
}

/// How the `url` crate (and so reqwest) writes `value` in a path, a path segment, a query
/// (special and other schemes) and a password.
fn url_forms(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(base) = url::Url::parse("http://x/") else {
        return out;
    };
    let mut u = base.clone();
    u.set_path(&format!("/{value}"));
    out.push(u.path()[1..].to_string());
    let mut u = base.clone();
    if let Ok(mut segments) = u.path_segments_mut() {
        segments.clear().push(value);
    }
    out.push(u.path()[1..].to_string());
    let mut u = base.clone();
    u.set_query(Some(value));
    out.extend(u.query().map(str::to_string));
    if let Ok(mut u) = url::Url::parse("other://x/") {
        u.set_query(Some(value));
        out.extend(u.query().map(str::to_string));
    }
    let mut u = base;
    if u.set_username("u").is_ok() && u.set_password(Some(value)).is_ok() {
        out.extend(u.password().map(str::to_string));
    }
    out
}

/// base64 and base64url, padded and not.
fn base64_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    vec![
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ]
}

/// `value` escaped as inside a JSON string.
fn json_escape(value: &str) -> String {
    let json = serde_json::Value::from(value).to_string();
    json[1..json.len() - 1].to_string()
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Shortest base64 run, in characters, registered for a value inside a longer base64 text.
const MIN_BASE64_INTERIOR_CHARS: usize = 8;

/// `bytes` as they look in the middle of any longer base64 or base64url text (`Basic
/// base64(user:secret)` for any user, a JWT payload, an encoded document): for each of the 3
/// alignments, the characters that depend on `bytes` alone.
fn base64_interior_forms(bytes: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut out = Vec::new();
    for (offset, skip) in [(0usize, 0usize), (1, 2), (2, 3)] {
        let mut buf = vec![0u8; offset];
        buf.extend_from_slice(bytes);
        // Characters whose 6 bits all come from `buf`; the last partial one depends on what
        // follows.
        let keep = buf.len() * 8 / 6;
        if keep < skip + MIN_BASE64_INTERIOR_CHARS {
            continue;
        }
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&buf);
            out.push(encoded[skip..keep].to_string());
        }
    }
    out
}

/// Every form of `value` the redactor looks for: raw, JSON-escaped (once, and twice as in a
/// JSON document quoted inside another), percent-encoded as query, form (once and twice),
/// path and strict RFC 3986, base64 and base64url.
pub fn encoded_forms(value: &str) -> Vec<String> {
    let json = json_escape(value);
    let form = form_encode(value);
    let mut out = vec![value.to_string(), json_escape(&json), json];
    out.push(json_ascii_escape(value));
    out.push(form_encode(&form));
    out.push(form);
    out.extend(url_forms(value));
    out.push(percent_encode_strict(value, false));
    out.push(percent_encode_strict(value, true));
    out.extend(base64_forms(value.as_bytes()));
    out.extend(base64_interior_forms(value.as_bytes()));
    out
}

/// Characters that split a value written into a URL (or a form) into separate parameters or
/// segments, each of which a server may echo alone.
const URL_DELIMITERS: &[char] = &['&', '=', '/', '?', '#', ';'];

/// Pieces between URL delimiters this long (in characters) or longer are redacted on their own.
const MIN_PIECE_CHARS: usize = 8;

/// The pieces of `value` a URL would split it into (a secret typed into a query with a `&`
/// arrives as two parameters), long enough to be worth hiding on their own.
fn url_pieces(value: &str) -> Vec<&str> {
    let pieces: Vec<&str> = value.split(URL_DELIMITERS).collect();
    if pieces.len() < 2 {
        return Vec::new();
    }
    pieces
        .into_iter()
        .filter(|p| p.chars().count() >= MIN_PIECE_CHARS)
        .collect()
}

/// Values shorter than this are still redacted; empty values are ignored.
const MIN_LEN: usize = 1;

/// Headers whose values are credentials wherever they appear.
const CREDENTIAL_HEADERS: &str = r"proxy-authorization|authorization|set-cookie|cookie";

/// `"authorization": "Bearer x"` (also `,` or `=>` between, as in tuples and hashes), in
/// double or single quotes, or with escaped quotes (JSON inside a JSON string).
/// Compiles the redactor's patterns now (at start-up), so that no step's duration includes it.
pub fn warm() {
    LazyLock::force(&QUOTED_MEMBER);
    LazyLock::force(&HEADER_LINE);
    LazyLock::force(&KEY_VALUE);
    LazyLock::force(&ONLY_MARKER);
    LazyLock::force(&SCHEME);
}

static QUOTED_MEMBER: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let names = CREDENTIAL_HEADERS;
    let sep = r"\s*(?::|,|=>)\s*";
    [
        format!(r#"(?i)(?P<head>"(?:{names})"{sep}")(?P<value>(?:[^"\\]|\\.)*)(?P<tail>")"#),
        format!(r#"(?i)(?P<head>'(?:{names})'{sep}')(?P<value>(?:[^'\\]|\\.)*)(?P<tail>')"#),
        format!(
            r#"(?i)(?P<head>\\"(?:{names})\\"{sep}\\")(?P<value>(?:[^\\]|\\[^"])*?)(?P<tail>\\")"#
        ),
    ]
    .iter()
    .map(|p| Regex::new(p).expect("the credential member patterns are valid"))
    .collect()
});

/// `Authorization: Bearer x` to the end of the line (or of an escaped line, or an HTML tag).
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(?P<head>\b(?:{CREDENTIAL_HEADERS})[ \t]*:[ \t]*)(?P<value>(?:[^\r\n<\\]|\\[^rn])+)(?P<tail>)"
    ))
    .expect("the credential header pattern is valid")
});

/// `authorization=Bearer%20x` in a query, a form or a `key=value` log line.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(?P<head>\b(?:{CREDENTIAL_HEADERS})=)(?P<value>"(?:[^"\\]|\\.)*"|(?:[A-Za-z][\w-]*(?:\+|%20| ))?[^&\s"<,]*)(?P<tail>)"#
    ))
    .expect("the credential key=value pattern is valid")
});

/// A value that is nothing but a redaction marker, kept: it says which secret was there.
static ONLY_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z][\w-]*(?: |\+|%20))?\[redacted(?::[^\]\s]*)?\]$")
        .expect("the marker pattern is valid")
});

/// The scheme word of an `Authorization` value (`Bearer`, `Basic`), kept for the reader.
static SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?i)(?P<scheme>basic|bearer|digest|negotiate|ntlm|token|aws4-hmac-sha256)(?P<sep> |\+|%20)")
        .expect("the scheme pattern is valid")
});

/// Replaces a credential value, keeping a known scheme word and values already redacted.
fn blank_value(caps: &Captures<'_>) -> String {
    let head = &caps["head"];
    let value = &caps["value"];
    let tail = &caps["tail"];
    let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
    let inner = if quoted {
        &value[1..value.len() - 1]
    } else {
        value
    };
    if ONLY_MARKER.is_match(inner.trim_end()) {
        return format!("{head}{value}{tail}");
    }
    let scheme = SCHEME
        .captures(inner)
        .map(|c| format!("{}{}", &c["scheme"], &c["sep"]))
        .unwrap_or_default();
    let q = if quoted { "\"" } else { "" };
    format!("{head}{q}{scheme}[redacted]{q}{tail}")
}

/// Blanks every credential header value in `text`.
fn blank_credential_headers(text: &str) -> String {
    let mut out = text.to_string();
    for re in QUOTED_MEMBER.iter() {
        out = re.replace_all(&out, blank_value).into_owned();
    }
    out = HEADER_LINE.replace_all(&out, blank_value).into_owned();
    KEY_VALUE.replace_all(&out, blank_value).into_owned()
}

/// Byte ranges of `text` covered by any registered form, merged where they touch or overlap,
/// each with the name of the form that starts it (longest first at equal starts).
fn covered_ranges(text: &str, entries: &[(String, String)]) -> Vec<(Range<usize>, String)> {
    let mut hits: Vec<(Range<usize>, String)> = cut_ranges(text, entries);
    for (value, name) in entries {
        for (at, _) in text.match_indices(value.as_str()) {
            hits.push((at..at + value.len(), name.clone()));
        }
    }
    hits.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut merged: Vec<(Range<usize>, String)> = Vec::new();
    for (range, name) in hits {
        match merged.last_mut() {
            Some((last, _)) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push((range, name)),
        }
    }
    merged
}

/// The mark that ends text cut short (by [`Redactor::redact_and_cut`], response excerpts).
const CUT_MARK: char = '…';

/// The shortest beginning of a secret that is redacted right before a [`CUT_MARK`].
const MIN_CUT_PREFIX_CHARS: usize = 4;

/// The longest beginning of `form` (at least [`MIN_CUT_PREFIX_CHARS`], shorter than the whole
/// form) that `before` ends with: what is left of a secret cut before it was redacted.
fn cut_prefix_len(before: &str, form: &str) -> Option<usize> {
    let (lead_end, _) = form.char_indices().nth(MIN_CUT_PREFIX_CHARS)?;
    let lead = &form[..lead_end];
    let mut from = before.len().saturating_sub(form.len().saturating_sub(1));
    while !before.is_char_boundary(from) {
        from += 1;
    }
    let tail = &before[from..];
    tail.match_indices(lead)
        .map(|(at, _)| &tail[at..])
        .find(|rest| form.starts_with(rest))
        .map(str::len)
}

/// Ranges of text cut before it was redacted: a beginning of a registered form right before
/// each [`CUT_MARK`], the longest one found.
fn cut_ranges(text: &str, entries: &[(String, String)]) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    for (mark, _) in text.match_indices(CUT_MARK) {
        let before = &text[..mark];
        let longest = entries
            .iter()
            .filter_map(|(form, name)| cut_prefix_len(before, form).map(|n| (n, name)))
            .max_by_key(|(n, _)| *n);
        if let Some((n, name)) = longest {
            out.push((mark - n..mark, name.clone()));
        }
    }
    out
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value under a name, in every form of [`encoded_forms`], and so
    /// the pieces a URL would split it into.
    pub fn add(&self, name: &str, value: &str) {
        if value.len() < MIN_LEN {
            return;
        }
        let mut forms = encoded_forms(value);
        for piece in url_pieces(value) {
            forms.extend(encoded_forms(piece));
        }
        self.add_forms(name, forms);
    }

    /// Registers `secret`, and the HTTP Basic credentials `base64(user:secret)` it is sent in
    /// (base64 and base64url, padded and not), under `name`.
    pub fn add_basic(&self, name: &str, user: &str, secret: &str) {
        if secret.len() < MIN_LEN {
            return;
        }
        self.add(name, secret);
        self.add_forms(name, base64_forms(format!("{user}:{secret}").as_bytes()));
    }

    fn add_forms(&self, name: &str, forms: Vec<String>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        for f in forms {
            if !f.is_empty() && !entries.iter().any(|(v, _)| *v == f) {
                entries.push((f, name.to_string()));
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        entries.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    }

    /// Returns `text` with every registered value replaced and credential header values
    /// blanked.
    pub fn redact(&self, text: &str) -> String {
        let Ok(entries) = self.entries.read() else {
            // A poisoned lock means a panic elsewhere; print nothing rather than risk a leak.
            return "[redacted]".to_string();
        };
        let mut out = String::with_capacity(text.len());
        let mut from = 0;
        for (range, name) in covered_ranges(text, &entries) {
            out.push_str(&text[from..range.start]);
            out.push_str(&format!("[redacted:{name}]"));
            from = range.end;
        }
        out.push_str(&text[from..]);
        blank_credential_headers(&out)
    }

    /// The redacted text cut to `max_chars` characters (with `…` when cut): redacting first,
    /// so a secret across the cut cannot leave a piece no longer recognised.
    pub fn redact_and_cut(&self, text: &str, max_chars: usize) -> String {
        let redacted = self.redact(text);
        let mut cut: String = redacted.chars().take(max_chars).collect();
        if cut.len() < redacted.len() {
            cut.push('…');
        }
        cut
    }

    /// True when no secret is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.read().map(|e| e.is_empty()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backslash_sent_as_a_slash_in_a_path_is_redacted() {
        let r = Redactor::new();
        // Pieces too short to be registered on their own: only the whole sent form matches.
        r.add("pw", "Zk3\\q9 Tz");
        let url = reqwest::Url::parse("https://h/api/Zk3\\q9 Tz").unwrap();
        assert_eq!(url.path(), "/api/Zk3/q9%20Tz");
        let out = r.redact(url.as_str());
        assert_eq!(out, "https://h/api/[redacted:pw]");
    }

    /// Characters every encoding treats differently, around cores no encoding changes.
    const AWKWARD: &str = "k3y/+=! @&:\"\\é?#%'~";

    #[test]
    fn redacts_values_and_encodings() {
        let r = Redactor::new();
        r.add("password", "p@ss word/1");
        let out =
            r.redact("user=alice&password=p%40ss+word%2F1 raw=p@ss word/1 path=/p%40ss%20word%2F1");
        assert!(!out.contains("p@ss"), "{out}");
        assert!(!out.contains("p%40ss"), "{out}");
        assert_eq!(out.matches("[redacted:password]").count(), 3);
    }

    /// The forms reqwest really sends, produced by the url crate itself in each position.
    fn sent_forms(value: &str) -> Vec<(&'static str, String)> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let mut path = url::Url::parse("https://h/p/").unwrap();
        path.set_path(&format!("/p/{value}"));
        let mut pairs = url::Url::parse("https://h/").unwrap();
        pairs.query_pairs_mut().append_pair("k", value);
        let typed = url::Url::parse(&format!("https://h/?k={value}")).unwrap();
        vec![
            ("path", path.path()["/p/".len()..].to_string()),
            (
                "query pair",
                pairs.query().unwrap()["k=".len()..].to_string(),
            ),
            (
                "typed query",
                typed.query().unwrap()["k=".len()..].to_string(),
            ),
            ("json", serde_json::to_string(value).unwrap()),
            ("base64", STANDARD.encode(value)),
            ("base64url", URL_SAFE_NO_PAD.encode(value)),
        ]
    }

    #[test]
    fn every_form_the_url_crate_and_encoders_produce_is_redacted() {
        let value = AWKWARD.replace(['#', '?'], "");
        let r = Redactor::new();
        r.add("key", &value);
        for (form, sent) in sent_forms(&value) {
            let out = r.redact(&format!("before {sent} after"));
            assert!(!out.contains("k3y"), "{form} form `{sent}` shown: {out}");
            assert!(out.contains("[redacted:key]"), "{form}: {out}");
        }
    }

    #[test]
    fn pieces_a_url_splits_a_secret_into_are_redacted_alone() {
        let r = Redactor::new();
        r.add("key", "first-half&second-half=x");
        // Typed into `?k=...`, the server sees k=first-half and second-half=x.
        assert_eq!(r.redact("k: first-half"), "k: [redacted:key]");
        assert_eq!(r.redact("second-half"), "[redacted:key]");
        assert_eq!(
            r.redact("x"),
            "x",
            "short pieces are not worth hiding alone"
        );
    }

    #[test]
    fn a_value_inside_longer_base64_is_redacted_at_any_alignment() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let r = Redactor::new();
        let secret = "s3cr3t-value/with+stuff";
        r.add("s", secret);
        for prefix in ["", "a:", "bob:", "{\"password\":\""] {
            for encoded in [
                STANDARD.encode(format!("{prefix}{secret}\"}}")),
                URL_SAFE_NO_PAD.encode(format!("{prefix}{secret}")),
            ] {
                let out = r.redact(&encoded);
                assert!(out.contains("[redacted:s]"), "{prefix}: {encoded} → {out}");
                // What is left encodes the prefix, the suffix and a byte or two next to them.
                let left = out.replace("[redacted:s]", "");
                let around = (prefix.len() + 2) * 4 / 3 + 8;
                assert!(left.len() <= around, "{prefix}: too much left: {out}");
            }
        }
    }

    #[test]
    fn basic_credentials_are_redacted_for_the_paired_user() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let r = Redactor::new();
        r.add_basic("client-secret", "my-client", "s3cr3t!");
        for header in [
            STANDARD.encode("my-client:s3cr3t!"),
            URL_SAFE_NO_PAD.encode("my-client:s3cr3t!"),
        ] {
            let out = r.redact(&format!("got Basic {header} from"));
            assert_eq!(out, "got Basic [redacted:client-secret] from");
        }
        assert_eq!(r.redact("s3cr3t%21"), "[redacted:client-secret]");
    }

    #[test]
    fn overlapping_secrets_and_markers_are_not_mangled() {
        let r = Redactor::new();
        r.add("a", "abcdef");
        r.add("b", "defghi");
        r.add("short", "red");
        let out = r.redact("xx abcdefghi yy");
        assert_eq!(out, "xx [redacted:a] yy");
        assert!(
            !r.redact("abcdef").contains("[[redacted"),
            "markers are not re-scanned"
        );
    }

    #[test]
    fn credential_header_values_are_blanked_in_any_shape() {
        let r = Redactor::new();
        for (text, hidden) in [
            (
                "GET /\r\nAuthorization: Bearer abc.def\r\nHost: x",
                "abc.def",
            ),
            ("proxy-authorization: Basic Zm9vOmJhcg==", "Zm9vOmJhcg"),
            ("<td>Cookie: session=xyz123</td>", "xyz123"),
            (
                r#"{"headers":{"Set-Cookie":"sid=xyz123; Path=/","a":1}}"#,
                "xyz123",
            ),
            (
                r#"{"msg":"{\"authorization\":\"Bearer abc.def\"}"}"#,
                "abc.def",
            ),
            ("{'AUTHORIZATION': 'Bearer abc.def'}", "abc.def"),
            ("url?authorization=Bearer%20abc.def&x=1", "abc.def"),
            (
                "level=debug authorization=\"Bearer abc.def\" done",
                "abc.def",
            ),
        ] {
            let out = r.redact(text);
            assert!(!out.contains(hidden), "{text} → {out}");
            assert!(out.contains("[redacted]"), "{text} → {out}");
        }
        assert_eq!(
            r.redact("Authorization: Bearer abc"),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            r.redact("authorization response: denied"),
            "authorization response: denied"
        );
    }

    #[test]
    fn a_registered_value_keeps_its_name_in_a_credential_header() {
        let r = Redactor::new();
        r.add("token", "tok-123");
        assert_eq!(
            r.redact(r#"{"authorization":"Bearer tok-123"}"#),
            r#"{"authorization":"Bearer [redacted:token]"}"#
        );
    }

    #[test]
    fn cutting_after_redaction_leaves_no_piece_of_a_secret() {
        let r = Redactor::new();
        let secret = "0123456789abcdefghij";
        r.add("s", secret);
        let text = format!("{}{secret}{}", "x".repeat(190), "y".repeat(50));
        let out = r.redact_and_cut(&text, 200);
        assert!(!out.contains("0123"), "{out}");
        assert!(out.ends_with('…'), "{out}");
    }

    #[test]
    fn a_secret_cut_before_redaction_is_redacted_up_to_the_cut_mark() {
        let r = Redactor::new();
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        r.add("id_token", token);
        let excerpt = format!("response: {{\"t\": \"{}…\n  next", &token[..30]);
        let out = r.redact(&excerpt);
        assert_eq!(out, "response: {\"t\": \"[redacted:id_token]…\n  next");
        // Ordinary text before a cut mark stays.
        assert_eq!(r.redact("the answer was long…"), "the answer was long…");
        assert_eq!(
            r.redact("eyJ…"),
            "eyJ…",
            "shorter than the minimum: too common"
        );
    }

    #[test]
    fn clones_share_registered_values() {
        let r = Redactor::new();
        let r2 = r.clone();
        r2.add("token", "abc.def.ghi");
        assert_eq!(r.redact("Bearer abc.def.ghi"), "Bearer [redacted:token]");
    }

    #[test]
    fn reads_env_and_files_and_names_missing_sources() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "v1\n").unwrap();
        let src = SecretSource {
            env: None,
            file: Some(p.display().to_string()),
        };
        assert_eq!(read_secret("s", &src).unwrap(), "v1");
        std::fs::write(&p, "v2").unwrap();
        assert_eq!(read_secret("s", &src).unwrap(), "v2");
        let missing = SecretSource {
            env: Some("FLOWPROBE_TEST_SURELY_UNSET".into()),
            file: None,
        };
        let e = read_secret("pw", &missing).unwrap_err().to_string();
        assert!(e.contains("FLOWPROBE_TEST_SURELY_UNSET"), "{e}");
    }

    #[test]
    fn secret_files_over_64_kib_are_refused_without_reading_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let at_limit = dir.path().join("ok");
        std::fs::write(&at_limit, "k".repeat(MAX_SECRET_FILE_BYTES as usize)).unwrap();
        let src = |p: &std::path::Path| SecretSource {
            env: None,
            file: Some(p.display().to_string()),
        };
        assert_eq!(read_secret("s", &src(&at_limit)).unwrap().len(), 65536);
        let over = dir.path().join("big");
        std::fs::write(&over, "k".repeat(MAX_SECRET_FILE_BYTES as usize + 1)).unwrap();
        let e = read_secret("s", &src(&over)).unwrap_err();
        assert!(matches!(e, SecretError::TooLarge { .. }), "{e}");
        // Endless: only the limit plus one byte is read.
        let e = read_secret("s", &src(std::path::Path::new("/dev/zero"))).unwrap_err();
        assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    }
}
