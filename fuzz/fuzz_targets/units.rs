//! Fuzz target: duration and size literals (as text and as YAML numbers) parse within their
//! range or fail, and what is formatted parses again.
#![no_main]

use flowprobe::scenario::yaml::from_str;
use flowprobe::units::{
    format_duration, format_size, parse_duration, parse_size, Dur, Size, MAX_DURATION, MAX_SIZE,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(d) = parse_duration(text) {
        assert!(d <= MAX_DURATION);
        let _ = format_duration(d);
    }
    if let Ok(n) = parse_size(text) {
        assert!(n <= MAX_SIZE);
        let formatted = format_size(n);
        assert!(parse_size(&formatted).is_ok(), "{formatted} does not parse");
    }
    if let Ok(Dur(d)) = from_str::<Dur>(text) {
        assert!(d <= MAX_DURATION);
    }
    if let Ok(Size(n)) = from_str::<Size>(text) {
        assert!(n <= MAX_SIZE);
    }
});
