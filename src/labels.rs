//! Metric label names: which names a user may give (`labels:` in a scenario, `serve --label`),
//! and the ones flowprobe sets itself.

/// Label names flowprobe sets itself, which no constant or static label may take.
pub const RESERVED_LABELS: &[&str] = &[
    "scenario", "step", "kind", "reason", "outcome", "phase", "quantile", "le", "version",
    "revision", "result", "job", "instance", "hash", "file", "interval",
];

/// A Prometheus label name that is not reserved for Prometheus itself (`__name__`).
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_prometheus_rules() {
        assert!(is_label_name("team"));
        assert!(is_label_name("_tier2"));
        assert!(!is_label_name("2fa"));
        assert!(!is_label_name("__name__"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name(""));
    }
}
