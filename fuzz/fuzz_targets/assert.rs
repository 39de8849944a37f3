//! Fuzz target: the assert/capture grammar (and thresholds) parse or fail with an offset
//! inside the text; a parsed assertion evaluates against an observation.
#![no_main]

use std::time::Duration;

use flowprobe::assert::{eval_query, parse_assertion, parse_capture};
use flowprobe::observation::Observation;
use flowprobe::template::{Expr, RenderError, Resolve};
use flowprobe::run::thresholds::Threshold;
use libfuzzer_sys::fuzz_target;

struct Fixed;

impl Resolve for Fixed {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError> {
        Ok(expr.to_string())
    }
}

fn observation() -> Observation {
    let mut o = Observation::default();
    o.status = Some(200);
    o.headers = vec![("content-type".into(), "application/json".into())];
    o.body = br#"{"id": 7, "roles": ["a", "b"], "token": "t", "n": 1e300}"#.to_vec();
    o.duration = Duration::from_millis(120);
    o
}

fuzz_target!(|text: &str| {
    let obs = observation();
    match parse_assertion(text) {
        Ok(a) => {
            let _ = a.check(&obs, &Fixed);
        }
        Err(e) => assert!(e.offset <= text.len(), "offset {} past the text", e.offset),
    }
    match parse_capture(text) {
        Ok(q) => {
            let _ = eval_query(&q, &obs);
        }
        Err(e) => assert!(e.offset <= text.len(), "offset {} past the text", e.offset),
    }
    if let Err(e) = Threshold::parse(text) {
        assert!(e.offset <= text.len(), "offset {} past the text", e.offset);
    }
});
