//! Loading scenario files: read, deserialize with locations, validate every reference, and
//! compile steps for the runner. Every error of every file is collected.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::check::{split_hint, Checker, SUGGESTIONS_PER_FILE};
use super::diagnostic::{Diagnostic, SourceLines};
use super::location::LocationIndex;
use super::model::Scenario;
use super::validated::LoadedScenario;
use super::yaml::{self, SyntaxError, YamlError};
use crate::suggest::closest;

/// What the loader needs besides the files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--var k=v`: overrides (or adds) scenario vars.
    pub vars: BTreeMap<String, String>,
    /// Check that every secret's source can be read now.
    pub check_secrets: bool,
}

/// Lists the scenario files named by `paths`: files as given, directories searched
/// recursively for `*.yaml` / `*.yml`, sorted. Hidden entries (Kubernetes' `..data`) are skipped.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            collect_dir(p, &mut out).map_err(|e| {
                Diagnostic::new(
                    &p.display().to_string(),
                    "",
                    0,
                    0,
                    format!("cannot read directory: {e}"),
                )
            })?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Diagnostic::new(
                &p.display().to_string(),
                "",
                0,
                0,
                "no such file or directory",
            ));
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads and validates every scenario under `paths`. Returns all scenarios, or every error.
pub fn load_paths(
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<Vec<LoadedScenario>, Vec<Diagnostic>> {
    let files = expand_paths(paths).map_err(|d| vec![d])?;
    if files.is_empty() {
        return Err(vec![Diagnostic::new(
            &paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            "",
            0,
            0,
            "no scenario files (*.yaml, *.yml) found",
        )]);
    }
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    let mut seen_names: HashMap<String, String> = HashMap::new();
    for file in files {
        let display = file.display().to_string();
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                errors.push(Diagnostic::new(
                    &display,
                    "",
                    0,
                    0,
                    format!("cannot read file: {e}"),
                ));
                continue;
            }
        };
        let src = match decode_utf8(&display, &bytes) {
            Ok(s) => s,
            Err(d) => {
                errors.push(*d);
                continue;
            }
        };
        match load_source(&display, src, opts) {
            Ok(mut sc) => {
                sc.file = file.clone();
                if let Some(first) = seen_names.get(&sc.name) {
                    // The file parsed a moment ago; only this rare error reads it again.
                    let pos = yaml::parse(src)
                        .map(|root| LocationIndex::build(&root).nearest("name"))
                        .unwrap_or_else(|_| LocationIndex::default().nearest("name"));
                    errors.push(Diagnostic::new(
                        &display,
                        src,
                        pos.line,
                        pos.column,
                        format!("scenario name `{}` is already used by {first}", sc.name),
                    ));
                } else {
                    seen_names.insert(sc.name.clone(), display.clone());
                    loaded.push(sc);
                }
            }
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

/// The file's text, or an error at the line and column of its first byte that is not UTF-8.
fn decode_utf8<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Box<Diagnostic>> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by definition of `valid_up_to`.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix[line_start..].chars().count() + 1;
            let bad = bytes[e.valid_up_to()];
            let line_end = bytes[line_start..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| line_start + i);
            let mut d = Diagnostic::new(
                file,
                "",
                line,
                column,
                format!("the file is not UTF-8 text: byte 0x{bad:02x} is not valid here"),
            )
            .with_hint(Some("save the scenario as UTF-8".into()));
            d.source_line =
                Some(String::from_utf8_lossy(&bytes[line_start..line_end]).into_owned());
            Err(Box::new(d))
        }
    }
}

/// Decodes and validates one file's bytes (what `load_paths` does for each file).
pub fn load_bytes(
    file: &str,
    bytes: &[u8],
    opts: &LoadOptions,
) -> Result<LoadedScenario, Vec<Diagnostic>> {
    let src = decode_utf8(file, bytes).map_err(|d| vec![*d])?;
    load_source(file, src, opts)
}

/// A syntax error: the file is not one YAML document.
fn syntax_error(file: &str, lines: &SourceLines, e: &SyntaxError) -> Diagnostic {
    let (message, hint) = split_hint(e.message.clone(), None);
    Diagnostic::in_source(file, lines, e.line, e.column, message).with_hint(hint)
}

/// A value that does not deserialize, with its path, place and a "did you mean".
fn yaml_error(file: &str, lines: &SourceLines, e: &YamlError) -> Diagnostic {
    let (message, own_hint) = split_hint(e.text(), None);
    let hint = own_hint.or_else(|| unknown_field_hint(e));
    Diagnostic::in_source(file, lines, e.line, e.column, message).with_hint(hint)
}

/// For an unknown field `hedaers` among `a`, `headers` suggests `headers`.
fn unknown_field_hint(e: &YamlError) -> Option<String> {
    let u = e.unknown_field.as_ref()?;
    closest(&u.field, u.expected.iter().copied()).map(|s| format!("did you mean `{s}`?"))
}

/// The scenario and the index of where each of its values is written, from one parse.
fn deserialize(
    file: &str,
    src: &str,
    lines: &SourceLines,
) -> Result<(Scenario, LocationIndex), Vec<Diagnostic>> {
    let root = yaml::parse(src).map_err(|e| vec![syntax_error(file, lines, &e)])?;
    let scenario = yaml::from_node(&root).map_err(|errors: Vec<YamlError>| {
        errors
            .iter()
            .map(|e| yaml_error(file, lines, e))
            .collect::<Vec<_>>()
    })?;
    Ok((scenario, LocationIndex::build(&root)))
}

/// Deserializes and validates one file's text.
pub fn load_source(
    file: &str,
    src: &str,
    opts: &LoadOptions,
) -> Result<LoadedScenario, Vec<Diagnostic>> {
    let lines = SourceLines::new(src);
    let (scenario, idx) = deserialize(file, src, &lines)?;
    let mut c = Checker {
        file,
        lines,
        idx,
        errors: Vec::new(),
        suggestions_left: SUGGESTIONS_PER_FILE,
    };
    match super::compile::scenario(&mut c, scenario, opts) {
        Some(sc) if c.errors.is_empty() => Ok(sc),
        _ => Err(c.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_stops_after_the_files_budget() {
        let mut src = String::from("name: x\nvars:\n  base: b\n");
        let refs = SUGGESTIONS_PER_FILE + 50;
        for i in 0..refs {
            src.push_str(&format!("  v{i}: \"${{{{ vars.bse }}}}\"\n"));
        }
        src.push_str("steps:\n  - name: a\n    http: {url: 'http://x'}\n");
        let errors = load_source("x.yaml", &src, &LoadOptions::default()).unwrap_err();
        assert_eq!(errors.len(), refs);
        let hinted = errors.iter().filter(|d| d.hint.is_some()).count();
        assert_eq!(hinted, SUGGESTIONS_PER_FILE);
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `vars.base`?"));
        assert_eq!((errors[0].line, errors[0].column), (4, 8));
    }

    #[test]
    fn non_utf8_bytes_are_located_at_their_line_and_column() {
        let errors = load_bytes(
            "x.yaml",
            b"name: x\nsteps: caf\xc3\x28\n",
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].line, errors[0].column), (2, 11));
        assert_eq!(
            errors[0].source_line.as_deref(),
            Some("steps: caf\u{FFFD}(")
        );
    }
}
