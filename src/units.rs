//! Duration (`300ms`, `2s`, `14d`) and size (`64KiB`) literals: parsing, formatting and serde.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest duration any literal may hold (ten years): every field has its own, narrower range.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);
/// Largest size any literal may hold (1024TiB): every field has its own, narrower range.
pub const MAX_SIZE: u64 = 1 << 50;

/// Separates a serde error message from its hint; the loader shows the part after it as the
/// diagnostic's hint.
pub const HINT_MARK: &str = "\nhint: ";

/// Why a duration or size literal did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid duration `{0}`: expected a number and a unit, e.g. 300ms, 2s, 5m, 1h, 14d")]
    Duration(String),
    #[error("invalid size `{0}`: expected a number and a unit, e.g. 512B, 64KiB, 1MiB, 2GB")]
    Size(String),
    #[error("duration `{0}` is out of range\nhint: a duration is between 0s and 3650d")]
    DurationRange(String),
    #[error("size `{0}` is out of range\nhint: a size is between 0B and 1024TiB")]
    SizeRange(String),
}

/// Splits `12.5ms` into (12.5, "ms").
fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    // Longer than any sensible literal: not worth parsing (and keeps the work bounded).
    if s.len() > 64 {
        return None;
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n: f64 = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

/// Parses `300ms`, `2s`, `1.5m`, `1h`, `14d`, `250us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration(s.to_string());
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        "w" => n * 7.0 * 86400.0,
        _ => return Err(err()),
    };
    duration_from_secs(secs).ok_or_else(|| UnitError::DurationRange(s.trim().to_string()))
}

/// Seconds as a duration, when they lie in 0..=[`MAX_DURATION`] (NaN and infinities do not).
pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    if !(0.0..=MAX_DURATION.as_secs_f64()).contains(&secs) {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// Bytes as a size, when they are a whole number in 0..=[`MAX_SIZE`].
fn size_from_f64(bytes: f64) -> Option<u64> {
    if !(0.0..=MAX_SIZE as f64).contains(&bytes) {
        return None;
    }
    // In range and finite, so the cast is exact after rounding.
    Some(bytes.round() as u64)
}

/// Parses `64KiB`, `1MiB`, `10MB`, `512B`; a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size(s.to_string());
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(err()),
    };
    size_from_f64(n * mult).ok_or_else(|| UnitError::SizeRange(s.trim().to_string()))
}

/// Formats a duration the way people write them: `850ms`, `1.24s`, `2m5s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1e3)
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1e3)
    } else {
        let secs = d.as_secs();
        if secs < 86_400 {
            format!("{}m{}s", secs / 60, secs % 60)
        } else {
            format!("{}d{}h", secs / 86_400, (secs % 86_400) / 3600)
        }
    }
}

/// Formats bytes with a binary unit: `64KiB`, `1.5MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0}{}", UNITS[i])
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// A number as people write it: `1e30` rather than thirty-one digits.
pub fn number_text(n: f64) -> String {
    if n.is_finite() && n.abs() >= 1e15 {
        format!("{n:e}")
    } else {
        n.to_string()
    }
}

/// A duration written in a scenario (`30s`). Deserializes from a string or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

/// A size written in a scenario (`64KiB`). Deserializes from a string or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

/// Reads a duration or size from a string or a number inside the visitor, so that a bad value
/// is reported at its own line and column (an untagged enum would buffer the value and lose it).
struct UnitVisitor<T> {
    expecting: &'static str,
    from_str: fn(&str) -> Result<T, UnitError>,
    from_num: fn(f64) -> Result<T, UnitError>,
}

impl<T> serde::de::Visitor<'_> for UnitVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_num)(v as f64).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        (self.from_num)(v as f64).map_err(E::custom)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        (self.from_num)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a duration such as 300ms, 2s or 14d",
            from_str: |s| parse_duration(s).map(Dur),
            from_num: |n| {
                duration_from_secs(n)
                    .map(Dur)
                    .ok_or_else(|| UnitError::DurationRange(number_text(n)))
            },
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            expecting: "a size such as 512B, 64KiB or 1MiB",
            from_str: |s| parse_size(s).map(Size),
            from_num: |n| {
                if n.fract() != 0.0 && n.is_finite() {
                    return Err(UnitError::Size(n.to_string()));
                }
                size_from_f64(n)
                    .map(Size)
                    .ok_or_else(|| UnitError::SizeRange(number_text(n)))
            },
        })
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

fn literal_schema(description: &str, pattern: &str) -> schemars::Schema {
    schemars::json_schema!({
        "description": description,
        "anyOf": [
            {"type": "string", "pattern": pattern},
            {"type": "number", "minimum": 0}
        ]
    })
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        literal_schema(
            "A duration: 300ms, 2s, 5m, 1h, 14d (a bare number is seconds)",
            r"^[0-9.]+\s*(ns|us|µs|ms|s|m|h|d|w)?$",
        )
    }
}

impl JsonSchema for Size {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        literal_schema(
            "A size: 512B, 64KiB, 1MiB, 10MB (a bare number is bytes)",
            r"^[0-9.]+\s*(B|KiB|MiB|GiB|TiB|KB|kB|MB|GB|TB)?$",
        )
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("14d").unwrap(),
            Duration::from_secs(14 * 86400)
        );
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(parse_size("2TiB").unwrap(), 2 << 40);
    }

    #[test]
    fn out_of_range_literals_are_errors_not_panics() {
        for d in [
            "1e30",
            "99999999999999999999d",
            "1e300w",
            "3651d",
            "inf",
            "NaN",
        ] {
            assert!(parse_duration(d).is_err(), "{d}");
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(UnitError::DurationRange(_))
        ));
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
        for s in ["99999999999999999999GiB", "1025TiB"] {
            assert!(matches!(parse_size(s), Err(UnitError::SizeRange(_))), "{s}");
        }
        // Exponents are not part of the literal syntax.
        assert!(matches!(parse_size("1e30"), Err(UnitError::Size(_))));
        assert_eq!(parse_size("1024TiB").unwrap(), MAX_SIZE);
        assert_eq!(duration_from_secs(f64::INFINITY), None);
        assert_eq!(duration_from_secs(-1.0), None);
        assert!(parse_duration(&"9".repeat(100)).is_err());
    }

    #[test]
    fn numbers_out_of_range_fail_to_deserialize() {
        use crate::scenario::yaml::from_str;
        for text in ["1e30", "-1", ".inf", "1e300"] {
            let err = from_str::<Dur>(text).unwrap_err()[0].to_string();
            assert!(err.contains("out of range"), "{text}: {err}");
        }
        let err = from_str::<Size>("1e30").unwrap_err()[0].to_string();
        assert!(err.contains("between 0B and 1024TiB"), "{err}");
        assert_eq!(from_str::<Dur>("90").unwrap().0.as_secs(), 90);
    }

    #[test]
    fn formatting_round_trips_common_values() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(1240)), "1.24s");
        assert_eq!(format_size(65536), "64KiB");
        assert_eq!(parse_size(&format_size(1 << 20)).unwrap(), 1 << 20);
    }
}
