//! From the model as written to a [`LoadedScenario`]: names, labels, secrets, vars, defaults,
//! each step's kind, captures and assertions, thresholds — every problem reported at its place.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexSet;

use super::check::{check_serialized, check_template, is_name, is_scenario_name, Checker};
use super::check::{Scope, Visible};
use super::load::LoadOptions;
use super::model::{Defaults, Scenario, Step};
use super::ranges::{self, Problems};
use super::validated::{CompiledCapture, CompiledStep, LoadedScenario};
use crate::assert::{parse_assertion, parse_capture, Literal, Query};
use crate::labels::{is_label_name, RESERVED_LABELS};
use crate::secrets::read_secret;
use crate::steps::{StepKind, KINDS};

/// Default time limit of one step attempt.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time limit of a whole run when the schedule gives none.
pub const DEFAULT_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);
/// Most static labels a scenario may carry.
const MAX_LABELS: usize = 8;

/// Names a template may refer to before any step runs.
struct Names {
    vars: IndexSet<String>,
    secrets: IndexSet<String>,
}

impl Names {
    /// The scope of vars and `defaults:`: no steps.
    fn before_steps<'a>(&'a self, none: &'a Visible) -> Scope<'a> {
        Scope {
            vars: &self.vars,
            secrets: &self.secrets,
            steps: none,
            own: None,
            steps_allowed: false,
        }
    }
}

/// Validates a deserialized scenario; `None` (with errors in `c`) when it cannot run.
pub(super) fn scenario(
    c: &mut Checker,
    sc: Scenario,
    opts: &LoadOptions,
) -> Option<LoadedScenario> {
    c.problems(ranges::check_scenario(&sc));
    check_identity(c, &sc);
    let secrets = check_secrets(c, &sc, opts);
    let (vars, var_names) = compile_vars(c, &sc, &secrets, opts);
    let names = Names {
        vars: var_names,
        secrets,
    };
    let defaults = sc.defaults.clone().unwrap_or_default();
    check_defaults(c, &defaults, &names);
    if sc.steps.is_empty() {
        c.at("steps", 0, "a scenario needs at least one step", None);
    }
    let (steps, finally, names_seen) = compile_steps(c, &sc, &defaults, &names);
    let thresholds = compile_thresholds(c, &sc.thresholds, &names_seen);
    if !c.errors.is_empty() {
        return None;
    }
    let timeout = sc
        .schedule
        .as_ref()
        .and_then(|s| s.timeout)
        .map_or(DEFAULT_SCENARIO_TIMEOUT, |d| d.0);
    Some(LoadedScenario {
        file: PathBuf::from(c.file),
        name: sc.name,
        description: sc.description,
        labels: sc.labels,
        schedule: sc.schedule,
        secrets: sc.secrets,
        slo: sc.slo,
        vars,
        steps,
        finally,
        timeout,
        thresholds,
    })
}

/// The scenario's name, labels and schedule.
fn check_identity(c: &mut Checker, sc: &Scenario) {
    if !is_scenario_name(&sc.name) {
        c.at(
            "name",
            0,
            format!("invalid scenario name `{}`", sc.name),
            Some("use lower-case letters, digits and `-` (it becomes the `scenario` label)".into()),
        );
    }
    if sc.labels.len() > MAX_LABELS {
        c.at("labels", 0, format!("at most {MAX_LABELS} labels"), None);
    }
    for k in sc.labels.keys() {
        if !is_label_name(k) || RESERVED_LABELS.contains(&k.as_str()) {
            c.at_key(
                &format!("labels.{k}"),
                format!("`{k}` cannot be a label name"),
                Some(format!("reserved: {}", RESERVED_LABELS.join(", "))),
            );
        }
    }
    if let Some(s) = &sc.schedule {
        if s.jitter.is_some_and(|j| j.0 >= s.interval.0) {
            c.at(
                "schedule.jitter",
                0,
                "jitter must be shorter than the interval",
                None,
            );
        }
    }
}

/// Secret names and sources (read now with `check_secrets`).
fn check_secrets(c: &mut Checker, sc: &Scenario, opts: &LoadOptions) -> IndexSet<String> {
    for (name, source) in &sc.secrets {
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
    sc.secrets.keys().cloned().collect()
}

/// Vars in order, `--var` overrides applied; each may use earlier vars, env, secrets, run.*.
fn compile_vars(
    c: &mut Checker,
    sc: &Scenario,
    secrets: &IndexSet<String>,
    opts: &LoadOptions,
) -> (Vec<(String, String)>, IndexSet<String>) {
    let mut names: IndexSet<String> = IndexSet::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let no_steps = Visible::new();
    for (k, v) in &sc.vars {
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
                vars: &names,
                secrets,
                steps: &no_steps,
                own: None,
                steps_allowed: false,
            };
            check_template(c, &format!("vars.{k}"), &value, &scope);
        }
        names.insert(k.clone());
        vars.push((k.clone(), value));
    }
    for (k, v) in &opts.vars {
        if !sc.vars.contains_key(k) {
            names.insert(k.clone());
            vars.push((k.clone(), v.clone()));
        }
    }
    (vars, names)
}

/// `defaults:`: each kind's own checks and templates (which cannot name steps).
fn check_defaults(c: &mut Checker, defaults: &Defaults, names: &Names) {
    let none = Visible::new();
    let scope = names.before_steps(&none);
    for kind in &defaults.kinds {
        let path = format!("defaults.{}", kind.name());
        let mut problems = Problems::new(&path);
        kind.check_ranges(&mut problems);
        c.problems(problems.into_vec());
        check_serialized(c, &path, &kind.spec_json(), &scope);
    }
}

type Compiled = (Vec<CompiledStep>, Vec<CompiledStep>, IndexSet<String>);

/// Steps, then `finally` (which sees every step); also returns every step name.
fn compile_steps(c: &mut Checker, sc: &Scenario, defaults: &Defaults, names: &Names) -> Compiled {
    let mut visible = Visible::new();
    let mut seen: IndexSet<String> = IndexSet::new();
    let (mut steps, mut finally) = (Vec::new(), Vec::new());
    for (section, list) in [("steps", &sc.steps), ("finally", &sc.finally)] {
        for (i, step) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            check_step_name(c, &path, step, &mut seen);
            let Some(cs) = compile_step(c, &path, step, defaults, names, &visible) else {
                continue;
            };
            // A duplicate name keeps the first step's entry (it is an error anyway).
            if !visible.contains_key(&cs.name) {
                visible.insert(cs.name.clone(), provided_names(&cs));
            }
            if section == "steps" {
                steps.push(cs);
            } else {
                finally.push(cs);
            }
        }
    }
    (steps, finally, seen)
}

fn check_step_name(c: &mut Checker, path: &str, step: &Step, seen: &mut IndexSet<String>) {
    let name_path = format!("{path}.name");
    if !is_name(&step.name) {
        c.at(
            &name_path,
            0,
            format!("invalid step name `{}`", step.name),
            Some("use letters, digits, `_` and `-` (it is used in `steps.NAME` references)".into()),
        );
    } else if !seen.insert(step.name.clone()) {
        c.at(
            &name_path,
            0,
            format!("duplicate step name `{}`", step.name),
            None,
        );
    }
}

fn compile_step(
    c: &mut Checker,
    path: &str,
    step: &Step,
    defaults: &Defaults,
    names: &Names,
    visible: &Visible,
) -> Option<CompiledStep> {
    c.problems(ranges::check_step(path, step));
    let written = one_kind(c, path, step)?;
    let scope = Scope {
        vars: &names.vars,
        secrets: &names.secrets,
        steps: visible,
        own: None,
        steps_allowed: true,
    };
    let kind_path = format!("{path}.{}", written.name());
    // Templates and numbers where they are written; the kind's other checks on the spec with
    // defaults merged in.
    check_serialized(c, &kind_path, &written.spec_json(), &scope);
    let mut problems = Problems::new(&kind_path);
    written.check_ranges(&mut problems);
    let kind = written.merged_over(&defaults.kinds);
    kind.validate(&mut problems);
    c.problems(problems.into_vec());
    let captures = compile_captures(c, path, step, &kind);
    // Assertions may also use this step's own captures.
    let own_names: IndexSet<String> = captures
        .iter()
        .map(|k| k.name.clone())
        .chain(kind.outputs().iter().map(|s| s.to_string()))
        .collect();
    let assert_scope = Scope {
        own: Some((&step.name, &own_names)),
        ..scope
    };
    let assertions = compile_assertions(c, path, step, &kind, &assert_scope);
    // Ranges of the step's own retry and of `defaults.retry` are checked where each is written.
    let line = c.idx.nearest(path).line;
    Some(CompiledStep {
        name: step.name.clone(),
        kind,
        captures,
        assertions,
        timeout: step
            .timeout
            .or(defaults.timeout)
            .map_or(DEFAULT_STEP_TIMEOUT, |d| d.0),
        retry: step.retry.clone().or_else(|| defaults.retry.clone()),
        location: format!("{}:{line}", c.file),
    })
}

/// The step's one kind, or an error that lists the kinds.
fn one_kind(c: &mut Checker, path: &str, step: &Step) -> Option<StepKind> {
    if let [kind] = step.kinds.as_slice() {
        return Some(kind.clone());
    }
    let msg = if step.kinds.is_empty() {
        format!("step `{}` has no kind", step.name)
    } else {
        let written: Vec<&str> = step.kinds.iter().map(StepKind::name).collect();
        format!(
            "step `{}` has several kinds: {}",
            step.name,
            written.join(", ")
        )
    };
    let hint = format!("give exactly one of: {}", KINDS.join(", "));
    c.at(path, 0, msg, Some(hint));
    None
}

fn compile_captures(
    c: &mut Checker,
    path: &str,
    step: &Step,
    kind: &StepKind,
) -> Vec<CompiledCapture> {
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
                check_query_supported(c, &qpath, &q, kind);
                captures.push(CompiledCapture {
                    name: cname.clone(),
                    query: q,
                    secret: cap.secret,
                });
            }
            Err(e) => c.at(&qpath, e.offset, e.message, None),
        }
    }
    captures
}

fn compile_assertions(
    c: &mut Checker,
    path: &str,
    step: &Step,
    kind: &StepKind,
    scope: &Scope,
) -> Vec<(crate::assert::Assertion, String)> {
    let mut assertions = Vec::new();
    for (i, text) in step.assert.iter().enumerate() {
        let apath = format!("{path}.assert[{i}]");
        let a = match parse_assertion(text) {
            Ok(a) => a,
            Err(e) => {
                c.at(&apath, e.offset, e.message, None);
                continue;
            }
        };
        check_query_supported(c, &apath, &a.query, kind);
        if let Some(Literal::Str(s)) = &a.expected {
            if s.contains("${{") {
                // Offsets of the template inside the assertion text.
                let base = text.find(s.as_str()).unwrap_or(0);
                let before = c.errors.len();
                check_template(c, &apath, s, scope);
                for d in &mut c.errors[before..] {
                    d.column += base;
                }
            }
        }
        let pos = c.idx.nearest(&apath);
        // Where the assertion text starts (after a quote, if quoted).
        assertions.push((a, format!("{}:{}:{}", c.file, pos.line, pos.column_at(0))));
    }
    assertions
}

/// What `steps.NAME.*` may name after a step: its captures and its kind's outputs.
fn provided_names(cs: &CompiledStep) -> IndexSet<String> {
    cs.captures
        .iter()
        .map(|k| k.name.clone())
        .chain(cs.kind.outputs().iter().map(|s| s.to_string()))
        .collect()
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

/// `thresholds:` parsed, every step they name known, each with its `file:line:column`.
fn compile_thresholds(
    c: &mut Checker,
    written: &[String],
    steps: &IndexSet<String>,
) -> Vec<crate::run::thresholds::Threshold> {
    let (parsed, problems) = crate::run::thresholds::compile(written, steps);
    for (i, offset, message, hint) in problems {
        c.at(&format!("thresholds[{i}]"), offset, message, hint);
    }
    let mut thresholds = Vec::new();
    for (i, mut t) in parsed {
        let pos = c.idx.nearest(&format!("thresholds[{i}]"));
        t.location = format!("{}:{}:{}", c.file, pos.line, pos.column);
        thresholds.push(t);
    }
    thresholds
}
