//! Fuzz target: `${{ }}` templates parse or fail with an offset inside the text, and a parsed
//! template renders.
#![no_main]

use flowprobe::template::{Expr, RenderError, Resolve, Template};
use libfuzzer_sys::fuzz_target;

struct Echo;

impl Resolve for Echo {
    fn resolve(&self, expr: &Expr) -> Result<String, RenderError> {
        match expr {
            Expr::Env(_) => Err(RenderError("no env in fuzzing".into())),
            other => Ok(other.to_string()),
        }
    }
}

fuzz_target!(|text: &str| {
    match Template::parse(text) {
        Ok(t) => {
            for (_, offset) in t.exprs() {
                assert!(offset < text.len(), "offset {offset} past the text");
            }
            let _ = t.render(&Echo);
        }
        Err(e) => assert!(e.offset <= text.len(), "offset {} past the text", e.offset),
    }
});
