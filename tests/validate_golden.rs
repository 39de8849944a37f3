//! Load-time errors, rendered exactly: `file:line:column: error: message`, the source line, a
//! caret under the column and a hint, compared with golden files in `tests/golden/validate/`.
//! Every error of every file is reported, the exit code is 2, and `run` runs nothing.
//!
//! After an intended change of the output, rewrite the golden files with
//! `UPDATE_GOLDEN=1 cargo test --test validate_golden` and review the diff.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DIR: &str = "tests/golden/validate";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs flowprobe in the crate root (so paths in messages are relative and stable).
fn flowprobe(args: &[&str]) -> Output {
    Command::new(support::flowprobe_bin())
        .current_dir(root())
        .args(args)
        .env_remove("FLOWPROBE_GOLDEN_SURELY_UNSET")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run flowprobe")
}

fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(DIR))
        .expect("golden dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "golden cases missing: {files:?}");
    files
}

fn golden_path(case: &Path) -> PathBuf {
    case.with_extension("stderr")
}

fn relative(case: &Path) -> String {
    format!("{DIR}/{}", case.file_name().unwrap().to_string_lossy())
}

fn compare(golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
    assert_eq!(
        actual,
        expected,
        "output differs from {}:\n{actual}",
        golden.display()
    );
}

#[test]
fn each_invalid_file_matches_its_golden_diagnostics() {
    for case in cases() {
        let out = flowprobe(&["validate", &relative(&case)]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", case.display());
        assert!(
            out.stdout.is_empty(),
            "{}: stdout {:?}",
            case.display(),
            out.stdout
        );
        compare(&golden_path(&case), &stderr);
    }
}

/// Splits golden output into its diagnostics and its error count.
fn diagnostics_and_count(golden: &str) -> (String, usize) {
    let (body, last) = golden
        .trim_end()
        .rsplit_once('\n')
        .expect("diagnostics then a summary line");
    let n: usize = last
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary line: {last}"));
    (format!("{body}\n"), n)
}

#[test]
fn every_error_of_every_file_is_reported_and_nothing_runs() {
    let mut expected = String::new();
    let mut total = 0;
    for case in cases() {
        let golden = std::fs::read_to_string(golden_path(&case)).unwrap();
        let (diags, n) = diagnostics_and_count(&golden);
        expected.push_str(&diags);
        total += n;
    }
    assert!(total >= 15, "only {total} errors in the golden files");
    expected.push_str(&format!("{total} errors found; nothing was run\n"));

    // The same errors from `validate` on the directory, and from `run`, which runs nothing.
    for cmd in ["validate", "run"] {
        let out = flowprobe(&[cmd, DIR]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert_eq!(stderr, expected, "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd} printed {:?}", out.stdout);
    }
}

#[test]
fn a_valid_file_passes_validate_with_ok() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.yaml");
    std::fs::write(
        &file,
        "name: fine\nsteps:\n  - name: home\n    http: {url: \"https://shop.test/\"}\n",
    )
    .unwrap();
    let out = flowprobe(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, format!("OK {} (fine, 1 steps)\n", file.display()));
}
