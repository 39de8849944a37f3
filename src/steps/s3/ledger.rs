//! What this run put: the SHA-256 and size of every object a run uploaded, so a later `get`
//! of the same object verifies the bytes without the scenario passing checksums around.
//! Entries are keyed by run id, endpoint, bucket and key, and removed by the clean-up that
//! deletes the object.

use std::collections::HashMap;
use std::sync::Mutex;

/// The fingerprint of an uploaded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub sha256: String,
    pub size: u64,
}

/// The fingerprints of what runs put, until their clean-up forgets them; one per process, in
/// the steps' [`Shared`](crate::steps::Shared) state.
#[derive(Default)]
pub struct Ledger(Mutex<HashMap<String, Put>>);

fn id(run: &str, endpoint: &str, bucket: &str, key: &str) -> String {
    format!("{run}\n{endpoint}\n{bucket}\n{key}")
}

impl Ledger {
    pub fn record(&self, run: &str, endpoint: &str, bucket: &str, key: &str, put: Put) {
        if let Ok(mut b) = self.0.lock() {
            b.insert(id(run, endpoint, bucket, key), put);
        }
    }

    pub fn lookup(&self, run: &str, endpoint: &str, bucket: &str, key: &str) -> Option<Put> {
        self.0
            .lock()
            .ok()?
            .get(&id(run, endpoint, bucket, key))
            .cloned()
    }

    pub fn forget(&self, run: &str, endpoint: &str, bucket: &str, key: &str) {
        if let Ok(mut b) = self.0.lock() {
            b.remove(&id(run, endpoint, bucket, key));
        }
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
        let ledger = Ledger::default();
        ledger.record("r1", "e", "b", "k", p.clone());
        assert_eq!(ledger.lookup("r1", "e", "b", "k"), Some(p));
        assert_eq!(ledger.lookup("r2", "e", "b", "k"), None);
        ledger.forget("r1", "e", "b", "k");
        assert_eq!(ledger.lookup("r1", "e", "b", "k"), None);
    }
}
