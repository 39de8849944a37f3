//! Validation time of large generated scenarios (1 MiB and 5 MiB: many steps, vars,
//! captures, assertions and thresholds), valid and full of typos, printed as a table.
//! Validation must stay linear in the file size: `cargo bench --bench validate`.

use std::fmt::Write;
use std::time::{Duration, Instant};

use flowprobe::scenario::load::load_source;
use flowprobe::scenario::location::LocationIndex;
use flowprobe::scenario::{yaml, LoadOptions};

const MIB: usize = 1 << 20;

/// One step that uses two vars, the previous step's capture, and its own capture. With
/// `typos`, every reference is slightly wrong, so each one costs a located error and a
/// did-you-mean lookup.
fn push_step(out: &mut String, i: usize, typos: bool) {
    let t = if typos { "x" } else { "" };
    let prev = if i == 0 {
        String::new()
    } else {
        format!("?prev=${{{{ steps.s{}.token{t} }}}}", i - 1)
    };
    write!(
        out,
        "  - name: s{i}\n    \
         http:\n      \
         url: \"${{{{ vars.base }}}}/item/${{{{ vars.v{i}{t} }}}}{prev}\"\n      \
         headers: {{X-Req: \"${{{{ vars.w{i} }}}}\"}}\n    \
         capture:\n      \
         token: jsonpath \"$.token\"\n    \
         assert:\n      \
         - status == 200\n      \
         - duration < 2s\n      \
         - jsonpath \"$.id\" == \"${{{{ steps.s{i}.token{t} }}}}\"\n"
    )
    .expect("writing to a String cannot fail");
}

/// A scenario of at least `size` bytes.
fn scenario(size: usize, typos: bool) -> (String, usize) {
    // About 330 bytes per step with its two vars.
    let steps = size / 330 + 1;
    let mut out = String::with_capacity(size + 4096);
    out.push_str("name: big\nvars:\n  base: https://shop.test\n");
    for i in 0..steps {
        writeln!(
            out,
            "  v{i}: \"item-{i}\"\n  w{i}: \"${{{{ vars.v{i} }}}}-w\""
        )
        .expect("writing to a String cannot fail");
    }
    out.push_str("steps:\n");
    for i in 0..steps {
        push_step(&mut out, i, typos);
    }
    out.push_str("thresholds:\n");
    for i in (0..steps).step_by(100) {
        writeln!(out, "  - p95(steps.s{i}.duration) < 1s").expect("String write");
    }
    (out, steps)
}

/// Time of the passes over the text alone: the one parse into nodes, their deserialization,
/// and the location index built from the same nodes.
fn time_passes(src: &str) -> (Duration, Duration, Duration) {
    let start = Instant::now();
    let root = yaml::parse(src).expect("the generated scenario parses");
    let parse = start.elapsed();
    let start = Instant::now();
    let parsed: Result<flowprobe::scenario::Scenario, _> = yaml::from_node(&root);
    let deserialize = start.elapsed();
    assert!(parsed.is_ok(), "the generated scenario deserializes");
    let start = Instant::now();
    let _ = LocationIndex::build(&root);
    (parse, deserialize, start.elapsed())
}

fn time_validation(src: &str) -> (Duration, Result<usize, usize>) {
    let start = Instant::now();
    let result = load_source("big.yaml", src, &LoadOptions::default());
    let elapsed = start.elapsed();
    (elapsed, result.map(|s| s.steps.len()).map_err(|e| e.len()))
}

fn main() {
    println!(
        "{:<8} {:<7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}  result",
        "size", "kind", "steps", "bytes", "validate", "(parse", "deser", "locate)"
    );
    for (label, size) in [("1 MiB", MIB), ("5 MiB", 5 * MIB)] {
        for typos in [false, true] {
            let (src, steps) = scenario(size, typos);
            let (elapsed, result) = time_validation(&src);
            let (parse, deserialize, locate) = time_passes(&src);
            let kind = if typos { "typos" } else { "valid" };
            let outcome = match result {
                Ok(n) => format!("ok, {n} steps"),
                Err(n) => format!("{n} errors"),
            };
            println!(
                "{label:<8} {kind:<7} {steps:>7} {:>10} {:>8.2}s {:>8.2}s {:>8.2}s {:>8.2}s  {outcome}",
                src.len(),
                elapsed.as_secs_f64(),
                parse.as_secs_f64(),
                deserialize.as_secs_f64(),
                locate.as_secs_f64()
            );
        }
    }
}
