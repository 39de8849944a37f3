//! What a plain scalar means under the YAML 1.2 core schema: null, a boolean, an integer
//! (decimal, `0x`, `0o`), a float (`.inf`, `.nan`), or else a string — resolved the way
//! serde_yaml resolved it, so scenarios mean what they meant.

use std::num::ParseIntError;

/// A plain scalar's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Resolved<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Str(&'a str),
}

pub(super) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Leading zeros followed by digits (`0123`) are a string, not an octal or decimal number.
fn digits_but_not_number(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    t.len() > 1 && t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit())
}

/// An integer: an optional sign, then decimal digits, or `0x`, `0o` or `0b` and digits.
pub(super) fn parse_int<T>(
    text: &str,
    parse: fn(&str, u32) -> Result<T, ParseIntError>,
) -> Option<T> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (radix, digits) = [("0x", 16), ("0o", 8), ("0b", 2)]
        .iter()
        .find_map(|(prefix, radix)| rest.strip_prefix(prefix).map(|d| (*radix, d)))
        .unwrap_or((10, rest));
    if digits.is_empty() || digits.starts_with(['+', '-']) || digits_but_not_number(text) {
        return None;
    }
    if negative {
        parse(&format!("-{digits}"), radix).ok()
    } else {
        parse(digits, radix).ok()
    }
}

/// A float: finite decimal notation, `.inf`, `-.inf` or `.nan` (in three spellings each).
pub(super) fn parse_f64(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// The value of an untagged plain scalar.
pub(super) fn resolve(text: &str) -> Resolved<'_> {
    if is_null(text) {
        return Resolved::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Resolved::Bool(b);
    }
    if let Some(n) = parse_int(text, u64::from_str_radix) {
        return Resolved::U64(n);
    }
    if let Some(n) = parse_int(text, i64::from_str_radix) {
        return Resolved::I64(n);
    }
    if let Some(n) = parse_int(text, u128::from_str_radix) {
        return Resolved::U128(n);
    }
    if let Some(n) = parse_int(text, i128::from_str_radix) {
        return Resolved::I128(n);
    }
    if !digits_but_not_number(text) {
        if let Some(f) = parse_f64(text) {
            return Resolved::F64(f);
        }
    }
    Resolved::Str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_the_core_schema() {
        assert_eq!(resolve(""), Resolved::Null);
        assert_eq!(resolve("~"), Resolved::Null);
        assert_eq!(resolve("True"), Resolved::Bool(true));
        assert_eq!(resolve("8080"), Resolved::U64(8080));
        assert_eq!(resolve("+7"), Resolved::U64(7));
        assert_eq!(resolve("-3"), Resolved::I64(-3));
        assert_eq!(resolve("0x1F"), Resolved::U64(31));
        assert_eq!(resolve("0o17"), Resolved::U64(15));
        assert_eq!(resolve("-0x10"), Resolved::I64(-16));
        assert_eq!(
            resolve("99999999999999999999"),
            Resolved::U128(99_999_999_999_999_999_999)
        );
        assert_eq!(resolve("1.5"), Resolved::F64(1.5));
        assert_eq!(resolve("1e30"), Resolved::F64(1e30));
        assert_eq!(resolve("-.inf"), Resolved::F64(f64::NEG_INFINITY));
        assert!(matches!(resolve(".nan"), Resolved::F64(f) if f.is_nan()));
        // Not numbers: leading zeros, overflowing floats, words.
        assert_eq!(resolve("0123"), Resolved::Str("0123"));
        assert_eq!(resolve("1e400"), Resolved::Str("1e400"));
        assert_eq!(resolve("inf"), Resolved::Str("inf"));
        assert_eq!(resolve("0x"), Resolved::Str("0x"));
        assert_eq!(resolve("+-1"), Resolved::Str("+-1"));
        assert_eq!(resolve("yes"), Resolved::Str("yes"));
        assert_eq!(resolve("1.1"), Resolved::F64(1.1));
    }
}
