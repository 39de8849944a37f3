//! Float label values (`le`, `quantile`) in the canonical form Prometheus 3 stores them in.
//!
//! Prometheus 3 normalises the `le` of classic histograms and the `quantile` of summaries at
//! ingestion: `le="1"` is stored as `le="1.0"`. A rule selecting `le="1"` then matches nothing,
//! silently. Exposing the canonical string, and selecting that same string in rules and
//! dashboards, makes Prometheus 2 (which stores what it reads) and 3 agree.
//!
//! The form is Go's `strconv.FormatFloat(v, 'g', -1, 64)` with `.0` added to whole numbers:
//! `1.0`, `0.25`, `2.5`, `100000.0`, `1e+06`, `5e-05`, `+Inf`.
//! (Prometheus' own `labels.FormatOpenMetricsFloat`.)

/// The canonical label string of `v`.
pub fn canonical(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0.0".into();
    }
    // Shortest round-trip digits and the decimal exponent, from Rust's `{:e}` ("2.5e0").
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if v < 0.0 { "-" } else { "" };
    // Go's 'g' with the shortest precision switches to exponent form outside 1e-4 ..< 1e6.
    if !(-4..6).contains(&exp) {
        let e_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{e_sign}{:02}", exp.abs());
    }
    let plain = format!("{v}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn matches_what_prometheus_3_stores() {
        // Pairs from Prometheus 3's normalisation of classic histogram and summary labels.
        for (v, s) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-1.0, "-1.0"),
            (0.25, "0.25"),
            (2.5, "2.5"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00005, "5e-05"),
            (30.0, "30.0"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (999999.0, "999999.0"),
            (1e21, "1e+21"),
            (123456789.0, "1.23456789e+08"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(canonical(v), s, "{v}");
        }
    }

    #[test]
    fn round_trips() {
        for v in [0.3, 0.7, 1.5, 2.5, 7.0, 60.0, 0.005, 1234.5678, 1e-7] {
            assert_eq!(canonical(v).parse::<f64>().ok(), Some(v));
        }
    }
}
