//! What this run put: the SHA-256 and size of every object a run uploaded, so a later `get`
//! of the same object verifies the bytes without the scenario passing checksums around.
//! Entries are keyed by run id, endpoint, bucket and key, and removed by the clean-up that
//! deletes the object.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The fingerprint of an uploaded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub sha256: String,
    pub size: u64,
}

fn book() -> &'static Mutex<HashMap<String, Put>> {
    static BOOK: OnceLock<Mutex<HashMap<String, Put>>> = OnceLock::new();
    BOOK.get_or_init(Default::default)
}

fn id(run: &str, endpoint: &str, bucket: &str, key: &str) -> String {
    format!("{run}\n{endpoint}\n{bucket}\n{key}")
}

pub fn record(run: &str, endpoint: &str, bucket: &str, key: &str, put: Put) {
    if let Ok(mut b) = book().lock() {
        b.insert(id(run, endpoint, bucket, key), put);
    }
}

pub fn lookup(run: &str, endpoint: &str, bucket: &str, key: &str) -> Option<Put> {
    book()
        .lock()
        .ok()?
        .get(&id(run, endpoint, bucket, key))
        .cloned()
}

pub fn forget(run: &str, endpoint: &str, bucket: &str, key: &str) {
    if let Ok(mut b) = book().lock() {
        b.remove(&id(run, endpoint, bucket, key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_per_run_and_forgotten() {
        let p = Put {
            sha256: "ab".into(),
            size: 2,
        };
        record("r1", "e", "b", "k", p.clone());
        assert_eq!(lookup("r1", "e", "b", "k"), Some(p));
        assert_eq!(lookup("r2", "e", "b", "k"), None);
        forget("r1", "e", "b", "k");
        assert_eq!(lookup("r1", "e", "b", "k"), None);
    }
}
