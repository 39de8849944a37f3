//! "Did you mean `x`?": the nearest known name by edit distance.

/// Levenshtein distance between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names longer than this get no suggestion (the distance costs the product of the lengths).
const MAX_NAME_LEN: usize = 64;
/// At most this many candidates are compared, so a suggestion costs the same for a scenario of
/// ten vars and one of a hundred thousand.
const MAX_CANDIDATES: usize = 1000;

/// The candidate closest to `name`, if it is close enough to be a likely typo. Only the first
/// [`MAX_CANDIDATES`] candidates are considered.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    if name.len() > MAX_NAME_LEN {
        return None;
    }
    let len = name.chars().count();
    let limit = (len / 3).max(2);
    candidates
        .into_iter()
        .take(MAX_CANDIDATES)
        .filter(|c| *c != name && c.len() <= MAX_NAME_LEN * 4)
        // Lengths differing by more than the limit cannot be within it.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        assert_eq!(distance("hedaers", "headers"), 2);
        assert_eq!(
            closest("hedaers", ["url", "headers", "method"]).as_deref(),
            Some("headers")
        );
        assert_eq!(closest("zzzzzz", ["url", "headers"]), None);
    }

    #[test]
    fn work_is_bounded_for_huge_inputs() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(closest(&long, [long.as_str(), "x"]), None);
        // A match beyond the first MAX_CANDIDATES is not looked for.
        let many: Vec<String> = (0..MAX_CANDIDATES).map(|i| format!("zz{i}zz")).collect();
        let late = many.iter().map(String::as_str).chain(["headers"]);
        assert_eq!(closest("hedaers", late), None);
        let early = ["headers"].into_iter().chain(many.iter().map(String::as_str));
        assert_eq!(closest("hedaers", early).as_deref(), Some("headers"));
    }
}
