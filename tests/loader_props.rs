//! Property: no input panics the loader, and every error it returns is located. Thousands of
//! scenarios derived from `scenarios/*.yaml` by seeded mutations (byte flips, truncations,
//! spliced and duplicated lines, huge numbers, deep nesting, odd unicode, broken templates) are
//! loaded under `catch_unwind`. Fixed seeds: a failure reproduces with the seed it prints.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use flowprobe::scenario::{load_bytes, LoadOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Mutated inputs per seed file (about 10ms each in a debug build).
const CASES_PER_FILE: u64 = 60;

const HUGE_NUMBERS: &[&str] = &[
    "99999999999999999999",
    "1e30",
    "1e300",
    "1e400",
    "-1",
    "-1e300",
    ".inf",
    "-.inf",
    ".nan",
    "99999999999999999999d",
    "99999999999999999999w",
    "1e30s",
    "18446744073709551616",
    "0.0000000000000000001ms",
    "99999999999999999999TiB",
    "4294967296",
    "101%",
    "-5%",
];

const ODD_TEXT: &[&str] = &[
    "\u{0}",
    "\u{FEFF}",
    "\u{202E}",
    "\u{85}",
    "\u{2028}",
    "é",
    "𝔘𝔫𝔦",
    "e\u{301}\u{301}\u{301}",
    "\t",
    "\r",
    "\u{FFFD}",
    "🦀",
    "\\",
    "\"",
    "'",
    ": ",
    "- ",
    "&a ",
    "*a",
    "!!binary ",
    "? ",
    "|\n",
    "#",
];

const TEMPLATE_BITS: &[&str] = &[
    "${{",
    "}}",
    "${{ vars.",
    "${{ vars.nope }}",
    "${{ steps.a.b.c.d }}",
    "${{ steps..x }}",
    "${{${{ }}}}",
    "${{ env. }}",
    "${{ secrets.x",
    "${{ run.idd }}",
    "${{ uuid() }}",
    "${{ 🦀.x }}",
];

fn seed_files() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "too few seed scenarios: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&p).expect("readable scenario"))
        })
        .collect()
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

fn insert_at_random(rng: &mut StdRng, input: &mut Vec<u8>, text: &[u8]) {
    let at = rng.gen_range(0..=input.len());
    input.splice(at..at, text.iter().copied());
}

/// Replaces one run of digits (a number, or the number of a duration or size) with a huge one.
fn replace_number(rng: &mut StdRng, input: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..input.len())
        .filter(|&i| input[i].is_ascii_digit() && (i == 0 || !input[i - 1].is_ascii_digit()))
        .collect();
    let huge = HUGE_NUMBERS.choose(rng).expect("non-empty");
    match starts.choose(rng) {
        Some(&start) => {
            let end = (start..input.len())
                .find(|&i| !input[i].is_ascii_digit())
                .unwrap_or(input.len());
            input.splice(start..end, huge.bytes());
        }
        None => insert_at_random(rng, input, huge.as_bytes()),
    }
}

/// Puts a deeply nested flow collection after one `key: `.
fn deep_nesting(rng: &mut StdRng, input: &mut Vec<u8>) {
    let depth = rng.gen_range(50..3000);
    let (open, close) = if rng.gen_bool(0.5) {
        ("[", "]")
    } else {
        ("{a: ", "}")
    };
    let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
    let mut ls = lines(input);
    if ls.is_empty() {
        return;
    }
    let i = rng.gen_range(0..ls.len());
    let line = &mut ls[i];
    match line.windows(2).position(|w| w == b": ") {
        Some(p) => {
            line.truncate(p + 2);
            line.extend_from_slice(nested.as_bytes());
        }
        None => line.extend_from_slice(format!(" {nested}").as_bytes()),
    }
    *input = join(&ls);
}

/// One random mutation; returns its name for the failure report.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, donor: &[u8]) -> &'static str {
    match rng.gen_range(0..9) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                if input.is_empty() {
                    break;
                }
                let i = rng.gen_range(0..input.len());
                input[i] = rng.gen();
            }
            "byte flips"
        }
        1 => {
            let at = rng.gen_range(0..=input.len());
            input.truncate(at);
            "truncation"
        }
        2 => {
            let donor_lines = lines(donor);
            let mut ls = lines(input);
            let line = donor_lines.choose(rng).cloned().unwrap_or_default();
            let at = rng.gen_range(0..=ls.len());
            ls.insert(at, line);
            *input = join(&ls);
            "spliced line"
        }
        3 => {
            replace_number(rng, input);
            "huge number"
        }
        4 => {
            deep_nesting(rng, input);
            "deep nesting"
        }
        5 => {
            let text = ODD_TEXT.choose(rng).expect("non-empty");
            insert_at_random(rng, input, text.as_bytes());
            "odd unicode"
        }
        6 => {
            let mut ls = lines(input);
            if !ls.is_empty() {
                let i = rng.gen_range(0..ls.len());
                let copy = ls[i].clone();
                ls.insert(i + 1, copy);
            }
            *input = join(&ls);
            "duplicated line (key)"
        }
        7 => {
            let bit = TEMPLATE_BITS.choose(rng).expect("non-empty");
            insert_at_random(rng, input, bit.as_bytes());
            "template"
        }
        _ => {
            let mut ls = lines(input);
            if ls.len() > 1 {
                let (a, b) = (rng.gen_range(0..ls.len()), rng.gen_range(0..ls.len()));
                ls.swap(a, b);
            }
            *input = join(&ls);
            "swapped lines"
        }
    }
}

/// Loads `input`; `Err` describes a panic or an error without a place.
fn check(input: &[u8]) -> Result<usize, String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let errors = match load_bytes("mutant.yaml", input, &LoadOptions::default()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        };
        // Rendering must not panic either (carets under odd characters).
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        (errors, rendered)
    }));
    let (errors, _) = result.map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("panicked: {msg}")
    })?;
    let line_count = input.split(|b| *b == b'\n').count();
    for d in &errors {
        if d.file != "mutant.yaml" || d.line == 0 || d.column == 0 || d.line > line_count {
            return Err(format!("not located at a line of the file: {d}"));
        }
    }
    Ok(errors.len())
}

#[test]
fn mutated_scenarios_never_panic_and_every_error_is_located() {
    let files = seed_files();
    let mut failures = Vec::new();
    let (mut loaded, mut rejected) = (0, 0);
    for (index, (name, original)) in files.iter().enumerate() {
        for case in 0..CASES_PER_FILE {
            let seed = (index as u64) << 32 | case;
            let mut rng = StdRng::seed_from_u64(seed);
            let donor = &files[rng.gen_range(0..files.len())].1;
            let mut input = original.clone();
            let mut applied = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                applied.push(mutate(&mut rng, &mut input, donor));
            }
            match check(&input) {
                Ok(0) => loaded += 1,
                Ok(_) => rejected += 1,
                Err(why) => failures.push(format!(
                    "{name} seed {seed} ({}): {why}\ninput: {:?}",
                    applied.join(", "),
                    String::from_utf8_lossy(&input[..input.len().min(300)])
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The mutations must exercise both outcomes, or the test proves little.
    assert!(
        loaded > 0 && rejected > loaded,
        "loaded {loaded}, rejected {rejected}"
    );
}

#[test]
fn targeted_inputs_are_located_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"\xff\xfe",
        b"name: x\nsteps:\n  - name: a\n    http: {url: 'http://x'}\n    timeout: 1e30\n",
        b"name: x\nsteps:\n  - name: a\n    http: {url: 'http://x'}\n    retry: {attempts: 99999999999}\n",
        b"name: x\nsteps:\n  - name: a\n    http: {url: 'http://x'}\n    retry: {attempts: 2, backoff: .nan}\n",
        b"name: x\nschedule: {interval: 99999999999999999999d}\nsteps: []\n",
        b"name: x\nsteps:\n  - name: a\n    http: {url: 'http://x'}\nthresholds: ['p95(duration) < 99999999999999999999w']\n",
        b"name: x\nslo: {availability: 1e400%}\nsteps: []\n",
        b"name: x\nvars: {a: '${{ vars.a }}', a: b}\nsteps: []\n",
        b"name: x\nsteps:\n  - name: a\xc3\n",
    ];
    for input in cases {
        match check(input) {
            Ok(n) => assert!(n > 0, "{:?} loaded", String::from_utf8_lossy(input)),
            Err(why) => panic!("{:?}: {why}", String::from_utf8_lossy(input)),
        }
    }
}
