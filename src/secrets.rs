//! Secret sources (env, file) read at the start of every run, and the redactor that keeps their
//! values out of everything the process prints or writes.

use std::sync::{Arc, RwLock};

use crate::scenario::model::SecretSource;

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
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| SecretError::File {
                name: name.to_string(),
                path: path.clone(),
                why: e.kind().to_string(),
            }),
        _ => Err(SecretError::NoSource {
            name: name.to_string(),
        }),
    }
}

/// Replaces known secret values, and their common encodings, with `[redacted:name]`.
///
/// Cloning shares the list, so a value registered by one step (a captured token) is redacted
/// in every reader of the run.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    entries: Arc<RwLock<Vec<(String, String)>>>,
}

/// RFC 3986 percent-encoding of everything but unreserved characters (as in URL paths).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Values shorter than this are still redacted; empty values are ignored.
const MIN_LEN: usize = 1;

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value under a name, plus its URL-encoded and JSON-escaped forms.
    pub fn add(&self, name: &str, value: &str) {
        if value.len() < MIN_LEN {
            return;
        }
        let mut forms = vec![value.to_string()];
        let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        forms.push(form);
        forms.push(percent_encode(value));
        if let Ok(json) = serde_json::to_string(value) {
            forms.push(json.trim_matches('"').to_string());
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        for f in forms {
            if !entries.iter().any(|(v, _)| *v == f) {
                entries.push((f, name.to_string()));
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        entries.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    }

    /// Returns `text` with every registered value replaced.
    pub fn redact(&self, text: &str) -> String {
        let Ok(entries) = self.entries.read() else {
            // A poisoned lock means a panic elsewhere; print nothing rather than risk a leak.
            return "[redacted]".to_string();
        };
        let mut out = text.to_string();
        for (value, name) in entries.iter() {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("[redacted:{name}]"));
            }
        }
        out
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
    fn redacts_values_and_encodings() {
        let r = Redactor::new();
        r.add("password", "p@ss word/1");
        let out =
            r.redact("user=alice&password=p%40ss+word%2F1 raw=p@ss word/1 path=/p%40ss%20word%2F1");
        assert!(!out.contains("p@ss"), "{out}");
        assert!(!out.contains("p%40ss"), "{out}");
        assert_eq!(out.matches("[redacted:password]").count(), 3);
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
}
