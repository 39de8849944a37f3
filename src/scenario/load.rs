//! Loading scenario files: read, deserialize with locations, validate every reference, and
//! compile steps for the runner. Every error of every file is collected.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::{IndexMap, IndexSet};

use super::diagnostic::{Diagnostic, SourceLines};
use super::location::LocationIndex;
use super::model::{Retry, Scenario, Step};
use super::ranges::{self, OutOfRange};
use super::yaml::{self, SyntaxError, YamlError};
use crate::assert::{parse_assertion, parse_capture, Assertion, Query};
use crate::secrets::read_secret;
use crate::steps::{StepKind, KINDS};
use crate::suggest::closest;
use crate::template::{Expr, Template};
use crate::units::HINT_MARK;

/// Default time limit of one step attempt.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time limit of a whole run when the schedule gives none.
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// Most static labels a scenario may carry.
const MAX_LABELS: usize = 8;
/// Label names flowprobe itself uses.
const RESERVED_LABELS: &[&str] = &[
    "scenario", "step", "kind", "reason", "outcome", "phase", "quantile", "le", "version", "job",
    "instance",
];

/// What the loader needs besides the files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--var k=v`: overrides (or adds) scenario vars.
    pub vars: BTreeMap<String, String>,
    /// Check that every secret's source can be read now.
    pub check_secrets: bool,
}

/// A capture, parsed.
#[derive(Debug, Clone)]
pub struct CompiledCapture {
    pub name: String,
    pub query: Query,
    pub secret: bool,
}

/// A step ready to run.
#[derive(Debug, Clone)]
pub struct CompiledStep {
    pub name: String,
    pub kind: StepKind,
    pub captures: Vec<CompiledCapture>,
    /// Assertions with their `file:line:column`.
    pub assertions: Vec<(Assertion, String)>,
    pub timeout: Duration,
    pub retry: Option<Retry>,
    /// `file:line` of the step.
    pub location: String,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub file: PathBuf,
    pub scenario: Scenario,
    /// Vars after `--var` overrides, in declaration order.
    pub vars: Vec<(String, String)>,
    pub steps: Vec<CompiledStep>,
    pub finally: Vec<CompiledStep>,
    /// Limit of a whole run (`schedule.timeout`, else 60s).
    pub timeout: Duration,
    /// Parsed `thresholds:`, evaluated over `run --iterations`.
    pub thresholds: Vec<crate::thresholds::Threshold>,
}

impl LoadedScenario {
    pub fn name(&self) -> &str {
        &self.scenario.name
    }
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
                if let Some(first) = seen_names.get(&sc.scenario.name) {
                    // The file parsed a moment ago; only this rare error reads it again.
                    let pos = yaml::parse(src)
                        .map(|root| LocationIndex::build(&root).nearest("name"))
                        .unwrap_or_else(|_| LocationIndex::default().nearest("name"));
                    errors.push(Diagnostic::new(
                        &display,
                        src,
                        pos.line,
                        pos.column,
                        format!(
                            "scenario name `{}` is already used by {first}",
                            sc.scenario.name
                        ),
                    ));
                } else {
                    seen_names.insert(sc.scenario.name.clone(), display.clone());
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

/// Parsers put a hint after [`HINT_MARK`] in their messages (e.g. the range of a number); a hint
/// given by the caller comes first.
fn split_hint(message: String, hint: Option<String>) -> (String, Option<String>) {
    match message.split_once(HINT_MARK) {
        Some((m, h)) => (m.to_string(), hint.or_else(|| Some(h.to_string()))),
        None => (message, hint),
    }
}

/// Did-you-mean lookups per file: each compares up to a thousand names, and a file with tens of
/// thousands of wrong references must still validate in linear time.
const SUGGESTIONS_PER_FILE: usize = 200;

struct Checker<'a> {
    file: &'a str,
    lines: SourceLines<'a>,
    idx: LocationIndex,
    errors: Vec<Diagnostic>,
    /// Did-you-mean lookups left for this file.
    suggestions_left: usize,
}

impl Checker<'_> {
    /// The closest candidate, while this file's budget of lookups lasts.
    fn suggest<'c>(
        &mut self,
        name: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> Option<String> {
        self.suggestions_left = self.suggestions_left.checked_sub(1)?;
        closest(name, candidates)
    }

    /// An error at the value written at `path`, `offset` bytes into it.
    fn at(&mut self, path: &str, offset: usize, message: impl Into<String>, hint: Option<String>) {
        let (message, hint) = split_hint(message.into(), hint);
        let pos = self.idx.nearest(path);
        let col = pos.column_at(offset);
        self.errors.push(
            Diagnostic::in_source(self.file, &self.lines, pos.line, col, message).with_hint(hint),
        );
    }

    /// An error at the key of the entry at `path` (for names of things).
    fn at_key(&mut self, path: &str, message: impl Into<String>, hint: Option<String>) {
        let (message, hint) = split_hint(message.into(), hint);
        let pos = self.idx.key(path).unwrap_or_else(|| self.idx.nearest(path));
        self.errors.push(
            Diagnostic::in_source(self.file, &self.lines, pos.line, pos.column, message)
                .with_hint(hint),
        );
    }

    fn out_of_range(&mut self, found: Vec<OutOfRange>) {
        for f in found {
            self.at(&f.path, 0, f.message, Some(f.hint));
        }
    }
}

/// Names steps and vars can be referred to by.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_scenario_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Steps by name, with the names their captures and outputs give (sets, so that a lookup does
/// not grow with the scenario).
type Visible = IndexMap<String, IndexSet<String>>;

/// What a template at some place may refer to.
struct Scope<'a> {
    vars: &'a IndexSet<String>,
    secrets: &'a IndexSet<String>,
    /// Steps visible here.
    steps: &'a Visible,
    /// The step being checked, for its own assertions (after every visible step).
    own: Option<(&'a str, &'a IndexSet<String>)>,
    /// Where step references are allowed at all.
    steps_allowed: bool,
}

impl Scope<'_> {
    fn step(&self, name: &str) -> Option<&IndexSet<String>> {
        self.steps.get(name).or_else(|| {
            self.own
                .filter(|(own, _)| *own == name)
                .map(|(_, names)| names)
        })
    }

    fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps
            .keys()
            .map(String::as_str)
            .chain(self.own.map(|(n, _)| n))
    }
}

fn check_template(c: &mut Checker, path: &str, text: &str, scope: &Scope) {
    let t = match Template::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let hint = e.suggestion.map(|s| format!("did you mean `{s}`?"));
            c.at(path, e.offset, e.message, hint);
            return;
        }
    };
    for (expr, offset) in t.exprs() {
        match expr {
            Expr::Var(n) if !scope.vars.contains(n) => {
                let hint = c
                    .suggest(n, scope.vars.iter().map(String::as_str))
                    .map(|s| format!("did you mean `vars.{s}`?"));
                c.at(path, offset, format!("unknown var `{n}`"), hint);
            }
            Expr::Secret(n) if !scope.secrets.contains(n) => {
                let hint = c
                    .suggest(n, scope.secrets.iter().map(String::as_str))
                    .map(|s| format!("did you mean `secrets.{s}`?"))
                    .or_else(|| Some("declare it under `secrets:` with `env:` or `file:`".into()));
                c.at(path, offset, format!("unknown secret `{n}`"), hint);
            }
            Expr::Env(n) if std::env::var_os(n).is_none() => {
                c.at(
                    path,
                    offset,
                    format!("environment variable `{n}` is not set"),
                    None,
                );
            }
            Expr::Step { step, path: p } => {
                if !scope.steps_allowed {
                    c.at(
                        path,
                        offset,
                        format!("`steps.{step}` cannot be used here: vars are rendered before any step runs"),
                        None,
                    );
                    continue;
                }
                match scope.step(step) {
                    None => {
                        let hint = c
                            .suggest(step, scope.step_names())
                            .map(|s| format!("did you mean `steps.{s}`?"))
                            .or_else(|| {
                                Some(
                                    "a step can only use captures of steps that run before it"
                                        .into(),
                                )
                            });
                        c.at(path, offset, format!("unknown step `{step}`"), hint);
                    }
                    Some(names) => {
                        let Some(first) = p.first() else { continue };
                        if !names.contains(first) {
                            let hint = c
                                .suggest(first, names.iter().map(String::as_str))
                                .map(|s| format!("did you mean `steps.{step}.{s}`?"))
                                .or_else(|| {
                                    Some(format!(
                                        "`{step}` provides: {}",
                                        if names.is_empty() {
                                            "nothing (add a `capture:`)".to_string()
                                        } else {
                                            names
                                                .iter()
                                                .map(String::as_str)
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        }
                                    ))
                                });
                            c.at(
                                path,
                                offset,
                                format!("step `{step}` has no capture or output `{first}`"),
                                hint,
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Visits every string leaf of a JSON value with its YAML path.
fn for_each_string(v: &serde_json::Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        serde_json::Value::String(s) => f(path, s),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                for_each_string(x, &format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                // Map keys can be templates too (`resolve: {"${{ vars.host }}": ...}`).
                if k.contains("${{") {
                    f(&p, k);
                }
                for_each_string(x, &p, f);
            }
        }
        _ => {}
    }
}

fn check_serialized<T: serde::Serialize>(c: &mut Checker, path: &str, value: &T, scope: &Scope) {
    let Ok(json) = serde_json::to_value(value) else {
        return;
    };
    let mut found = Vec::new();
    for_each_string(&json, path, &mut |p, s| {
        if s.contains("${{") {
            found.push((p.to_string(), s.to_string()));
        }
    });
    for (p, s) in found {
        check_template(c, &p, &s, scope);
    }
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
    c.out_of_range(ranges::check_scenario(&scenario));

    if !is_scenario_name(&scenario.name) {
        c.at(
            "name",
            0,
            format!("invalid scenario name `{}`", scenario.name),
            Some("use lower-case letters, digits and `-` (it becomes the `scenario` label)".into()),
        );
    }
    if scenario.labels.len() > MAX_LABELS {
        c.at("labels", 0, format!("at most {MAX_LABELS} labels"), None);
    }
    for k in scenario.labels.keys() {
        if !is_label_name(k) || RESERVED_LABELS.contains(&k.as_str()) {
            c.at_key(
                &format!("labels.{k}"),
                format!("`{k}` cannot be a label name"),
                Some(format!("reserved: {}", RESERVED_LABELS.join(", "))),
            );
        }
    }
    if let Some(s) = &scenario.schedule {
        if let Some(j) = s.jitter {
            if j.0 >= s.interval.0 {
                c.at(
                    "schedule.jitter",
                    0,
                    "jitter must be shorter than the interval",
                    None,
                );
            }
        }
    }

    // Secrets: names and sources.
    let secret_names: IndexSet<String> = scenario.secrets.keys().cloned().collect();
    for (name, source) in &scenario.secrets {
        let path = format!("secrets.{name}");
        if source.env.is_some() == source.file.is_some() {
            c.at(
                &path,
                0,
                format!("secret `{name}`: give exactly one of `env` or `file`"),
                None,
            );
        } else if opts.check_secrets {
            if let Err(e) = read_secret(name, source) {
                let field = if source.env.is_some() { "env" } else { "file" };
                c.at(&format!("{path}.{field}"), 0, e.to_string(), None);
            }
        }
    }

    // Vars: in order; each may use earlier vars, env, secrets and run.*.
    let mut var_names: IndexSet<String> = IndexSet::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let no_steps = Visible::new();
    for (k, v) in &scenario.vars {
        if !is_name(k) {
            c.at_key(
                &format!("vars.{k}"),
                format!("invalid var name `{k}`"),
                None,
            );
        }
        let value = opts.vars.get(k).cloned().unwrap_or_else(|| v.clone());
        if !opts.vars.contains_key(k) {
            let scope = Scope {
                vars: &var_names,
                secrets: &secret_names,
                steps: &no_steps,
                own: None,
                steps_allowed: false,
            };
            check_template(&mut c, &format!("vars.{k}"), &value, &scope);
        }
        var_names.insert(k.clone());
        vars.push((k.clone(), value));
    }
    for (k, v) in &opts.vars {
        if !scenario.vars.contains_key(k) {
            var_names.insert(k.clone());
            vars.push((k.clone(), v.clone()));
        }
    }

    let defaults = scenario.defaults.clone().unwrap_or_default();
    if let Some(http) = &defaults.http {
        let scope = Scope {
            vars: &var_names,
            secrets: &secret_names,
            steps: &no_steps,
            own: None,
            steps_allowed: false,
        };
        check_serialized(&mut c, "defaults.http", http, &scope);
    }

    if scenario.steps.is_empty() {
        c.at("steps", 0, "a scenario needs at least one step", None);
    }

    // Steps, then finally (which sees every step).
    let mut visible = Visible::new();
    let mut names_seen: IndexSet<String> = IndexSet::new();
    let mut compiled = Vec::new();
    let mut compiled_finally = Vec::new();
    for (section, list) in [("steps", &scenario.steps), ("finally", &scenario.finally)] {
        for (i, step) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            if let Some(cs) = compile_step(
                &mut c,
                &path,
                step,
                &defaults,
                &var_names,
                &secret_names,
                &visible,
                &mut names_seen,
                file,
            ) {
                // A duplicate name keeps the first step's entry (it is an error anyway).
                if !visible.contains_key(&cs.name) {
                    visible.insert(cs.name.clone(), provided_names(&cs));
                }
                if section == "steps" {
                    compiled.push(cs);
                } else {
                    compiled_finally.push(cs);
                }
            }
        }
    }

    // Thresholds: parsed now, and every step they name exists.
    let (parsed, problems) = crate::thresholds::compile(&scenario.thresholds, &names_seen);
    for (i, offset, message, hint) in problems {
        c.at(&format!("thresholds[{i}]"), offset, message, hint);
    }
    let mut thresholds = Vec::new();
    for (i, mut t) in parsed {
        let pos = c.idx.nearest(&format!("thresholds[{i}]"));
        t.location = format!("{file}:{}:{}", pos.line, pos.column);
        thresholds.push(t);
    }

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let timeout = scenario
        .schedule
        .as_ref()
        .and_then(|s| s.timeout)
        .map(|d| d.0)
        .unwrap_or(DEFAULT_SCENARIO_TIMEOUT);
    Ok(LoadedScenario {
        file: PathBuf::from(file),
        scenario,
        vars,
        steps: compiled,
        finally: compiled_finally,
        timeout,
        thresholds,
    })
}

#[allow(clippy::too_many_arguments)]
fn compile_step(
    c: &mut Checker,
    path: &str,
    step: &Step,
    defaults: &super::model::Defaults,
    vars: &IndexSet<String>,
    secrets: &IndexSet<String>,
    visible: &Visible,
    names_seen: &mut IndexSet<String>,
    file: &str,
) -> Option<CompiledStep> {
    c.out_of_range(ranges::check_step(path, step));
    let name_path = format!("{path}.name");
    if !is_name(&step.name) {
        c.at(
            &name_path,
            0,
            format!("invalid step name `{}`", step.name),
            Some("use letters, digits, `_` and `-` (it is used in `steps.NAME` references)".into()),
        );
    } else if !names_seen.insert(step.name.clone()) {
        c.at(
            &name_path,
            0,
            format!("duplicate step name `{}`", step.name),
            None,
        );
    }

    // Exactly one kind key; each kind's own checks and template references.
    let scope = Scope {
        vars,
        secrets,
        steps: visible,
        own: None,
        steps_allowed: true,
    };
    let mut kinds: Vec<StepKind> = Vec::new();
    if let Some(h) = &step.http {
        let merged = match &defaults.http {
            Some(d) => h.merged_over(d),
            None => h.clone(),
        };
        check_kind(c, path, "http", h, merged.check(), &scope);
        kinds.push(StepKind::Http(merged));
    }
    if let Some(spec) = &step.oidc {
        check_kind(c, path, "oidc", spec, spec.check(), &scope);
        kinds.push(StepKind::Oidc(spec.clone()));
    }
    if let Some(spec) = &step.s3 {
        check_kind(c, path, "s3", spec, spec.check(), &scope);
        kinds.push(StepKind::S3(spec.clone()));
    }
    if let Some(spec) = &step.redis {
        check_kind(c, path, "redis", spec, spec.check(), &scope);
        kinds.push(StepKind::Redis(spec.clone()));
    }
    if kinds.len() != 1 {
        let msg = if kinds.is_empty() {
            format!("step `{}` has no kind", step.name)
        } else {
            format!(
                "step `{}` has several kinds: {}",
                step.name,
                kinds
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        c.at(
            path,
            0,
            msg,
            Some(format!("give exactly one of: {}", KINDS.join(", "))),
        );
        return None;
    }
    let kind = kinds.remove(0);

    let mut captures = Vec::new();
    for (cname, cap) in &step.capture {
        let cpath = format!("{path}.capture.{cname}");
        if !is_name(cname) {
            c.at_key(&cpath, format!("invalid capture name `{cname}`"), None);
        }
        // `{query, secret}` form: the query sits one level deeper.
        let qpath = if c.idx.value(&format!("{cpath}.query")).is_some() {
            format!("{cpath}.query")
        } else {
            cpath.clone()
        };
        match parse_capture(&cap.query) {
            Ok(q) => {
                check_query_supported(c, &qpath, &q, &kind);
                captures.push(CompiledCapture {
                    name: cname.clone(),
                    query: q,
                    secret: cap.secret,
                });
            }
            Err(e) => c.at(&qpath, e.offset, e.message, None),
        }
    }

    // Assertions may also use this step's own captures.
    let own_names: IndexSet<String> = captures
        .iter()
        .map(|k| k.name.clone())
        .chain(kind.outputs().iter().map(|s| s.to_string()))
        .collect();
    let assert_scope = Scope {
        vars,
        secrets,
        steps: visible,
        own: Some((&step.name, &own_names)),
        steps_allowed: true,
    };
    let mut assertions = Vec::new();
    for (i, text) in step.assert.iter().enumerate() {
        let apath = format!("{path}.assert[{i}]");
        match parse_assertion(text) {
            Ok(a) => {
                check_query_supported(c, &apath, &a.query, &kind);
                if let Some(crate::assert::Literal::Str(s)) = &a.expected {
                    if s.contains("${{") {
                        // Offsets of the template inside the assertion text.
                        let base = text.find(s.as_str()).unwrap_or(0);
                        let before = c.errors.len();
                        check_template(c, &apath, s, &assert_scope);
                        for d in &mut c.errors[before..] {
                            d.column += base;
                        }
                    }
                }
                let pos = c.idx.nearest(&apath);
                // Where the assertion text starts (after a quote, if quoted).
                assertions.push((a, format!("{file}:{}:{}", pos.line, pos.column_at(0))));
            }
            Err(e) => c.at(&apath, e.offset, e.message, None),
        }
    }

    // Ranges of the step's own retry and of `defaults.retry` are checked where each is written.
    let retry = step.retry.clone().or_else(|| defaults.retry.clone());
    let line = c.idx.nearest(path).line;
    Some(CompiledStep {
        name: step.name.clone(),
        kind,
        captures,
        assertions,
        timeout: step
            .timeout
            .or(defaults.timeout)
            .map(|d| d.0)
            .unwrap_or(DEFAULT_STEP_TIMEOUT),
        retry,
        location: format!("{file}:{line}"),
    })
}

/// What `steps.NAME.*` may name after a step: its captures and its kind's outputs.
fn provided_names(cs: &CompiledStep) -> IndexSet<String> {
    cs.captures
        .iter()
        .map(|k| k.name.clone())
        .chain(cs.kind.outputs().iter().map(|s| s.to_string()))
        .collect()
}

/// Reports a kind's own check results and checks the templates in its spec.
fn check_kind<T: serde::Serialize>(
    c: &mut Checker,
    path: &str,
    key: &str,
    spec: &T,
    problems: Vec<(String, String)>,
    scope: &Scope,
) {
    for (sub, msg) in problems {
        let p = if sub.is_empty() {
            format!("{path}.{key}")
        } else {
            format!("{path}.{key}.{sub}")
        };
        c.at(&p, 0, msg, None);
    }
    check_serialized(c, &format!("{path}.{key}"), spec, scope);
}

fn check_query_supported(c: &mut Checker, path: &str, q: &Query, kind: &StepKind) {
    let kw = q.keyword();
    if !kind.queries().contains(&kw) {
        c.at(
            path,
            0,
            format!("a {} step has no `{kw}` query", kind.name()),
            Some(format!(
                "{} steps answer: {}",
                kind.name(),
                kind.queries().join(", ")
            )),
        );
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
