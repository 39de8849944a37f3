//! "Did you mean `x`?": the nearest known name by edit distance.

/// Levenshtein distance between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let mut rows = (Vec::new(), Vec::new());
    bounded_distance(&a, b, usize::MAX, &mut rows)
}

/// The distance between `a` and `b`, or any value above `limit` as soon as it is certain to
/// exceed it. `rows` is scratch space reused across calls.
fn bounded_distance(
    a: &[char],
    b: &str,
    limit: usize,
    rows: &mut (Vec<usize>, Vec<usize>),
) -> usize {
    let (prev, cur) = rows;
    prev.clear();
    prev.extend(0..=a.len());
    for (j, cb) in b.chars().enumerate() {
        cur.clear();
        cur.push(j + 1);
        for (i, ca) in a.iter().enumerate() {
            let cost = usize::from(ca != &cb);
            let best = (prev[i] + cost).min(prev[i + 1] + 1).min(cur[i] + 1);
            cur.push(best);
        }
        // Every later row is at least this row's minimum.
        if cur.iter().min().is_some_and(|m| *m > limit) {
            return limit.saturating_add(1);
        }
        std::mem::swap(prev, cur);
    }
    prev[a.len()]
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
    let chars: Vec<char> = name.chars().collect();
    let limit = (chars.len() / 3).max(2);
    let mut rows = (Vec::new(), Vec::new());
    let mut best: Option<(usize, &str)> = None;
    for c in candidates.into_iter().take(MAX_CANDIDATES) {
        // Lengths differing by more than the limit cannot be within it.
        if c == name || c.len() > (MAX_NAME_LEN + limit) * 4 {
            continue;
        }
        if c.chars().count().abs_diff(chars.len()) > limit {
            continue;
        }
        let d = bounded_distance(&chars, c, limit, &mut rows);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_and_ignores_strangers() {
        assert_eq!(distance("hedaers", "headers"), 2);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        let mut rows = (Vec::new(), Vec::new());
        let a: Vec<char> = "aaaaaaaa".chars().collect();
        assert!(bounded_distance(&a, "bbbbbbbb", 2, &mut rows) > 2);
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
        let early = ["headers"]
            .into_iter()
            .chain(many.iter().map(String::as_str));
        assert_eq!(closest("hedaers", early).as_deref(), Some("headers"));
    }
}
