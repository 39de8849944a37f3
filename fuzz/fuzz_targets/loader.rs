//! Fuzz target: any bytes given to the scenario loader give a scenario or located errors,
//! never a panic.
#![no_main]

use flowprobe::scenario::{load_bytes, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(diagnostics) = load_bytes("fuzz.yaml", data, &LoadOptions::default()) {
        assert!(!diagnostics.is_empty(), "an error without a diagnostic");
        for d in &diagnostics {
            assert!(d.line >= 1 && d.column >= 1, "not located: {d}");
        }
    }
});
