//! The JUnit XML report, as CI tools (Jenkins, GitLab, GitHub test reporters) read it: a
//! testsuite per scenario run (`name #2` for later iterations), a testcase per step, one more
//! for a failure that belongs to the run and not to a step, and a testsuite of the declared
//! thresholds of each scenario. Transport and set-up problems are `<error>`, everything the
//! target answered wrongly is `<failure>`; step notes go to the testcase's `<system-out>`.
//! The run's `trace_id` is a property of its testsuite; a failed step's `<system-out>` names
//! its span (the schema allows no properties on a testcase).

use std::fmt::Write;

use crate::outcome::{Reason, ScenarioOutcome, StepOutcome, StepStatus};
use crate::run::thresholds::ThresholdResult;

use super::escape_markup as esc;

/// Name of the testcase of a failure that belongs to the run, not to a step.
pub const RUN_CASE: &str = "(run)";

/// How a testcase ended, as JUnit knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Passed,
    Skipped(Option<String>),
    /// `<failure>`: the target answered, wrongly (status, assertion, auth, integrity, ...).
    Failure {
        kind: String,
        message: String,
        detail: String,
    },
    /// `<error>`: the check could not be made (DNS, connect, TLS, timeout, config, a bug).
    Error {
        kind: String,
        message: String,
        detail: String,
    },
}

/// One `<testcase>`.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    classname: String,
    time: f64,
    file: String,
    line: Option<u32>,
    verdict: Verdict,
    /// Lines for `<system-out>`.
    out: Vec<String>,
}

/// Counts of a list of cases: (tests, failures, errors, skipped).
fn counts(cases: &[Case]) -> (usize, usize, usize, usize) {
    let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
    (
        cases.len(),
        count(|v| matches!(v, Verdict::Failure { .. })),
        count(|v| matches!(v, Verdict::Error { .. })),
        count(|v| matches!(v, Verdict::Skipped(_))),
    )
}

/// Reasons reported as `<error>`: the probe could not reach a verdict on the target's answer.
fn is_error(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Dns
            | Reason::Connect
            | Reason::Tls
            | Reason::Timeout
            | Reason::Config
            | Reason::Internal
    )
}

/// Splits `file:line` or `file:line:column` into the file and the line.
fn split_location(location: &str) -> (&str, Option<u32>) {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut rest = location;
    let mut numbers = Vec::new();
    while numbers.len() < 2 {
        match rest.rsplit_once(':') {
            Some((head, tail)) if numeric(tail) => {
                numbers.push(tail);
                rest = head;
            }
            _ => break,
        }
    }
    // The line is the first number after the file name.
    let line = numbers.last().and_then(|n| n.parse().ok());
    (rest, line)
}

fn verdict_of(reason: Reason, message: &str) -> Verdict {
    let first = message.lines().next().unwrap_or("");
    let kind = reason.as_str().to_string();
    let summary = format!("{reason}: {first}");
    if is_error(reason) {
        Verdict::Error {
            kind,
            message: summary,
            detail: message.to_string(),
        }
    } else {
        Verdict::Failure {
            kind,
            message: summary,
            detail: message.to_string(),
        }
    }
}

fn step_case(o: &ScenarioOutcome, s: &StepOutcome, suffix: &str) -> Case {
    let (file, line) = split_location(&s.location);
    let name = if s.cleanup {
        format!("{} (finally){suffix}", s.name)
    } else {
        format!("{}{suffix}", s.name)
    };
    let verdict = match s.status {
        StepStatus::Passed => Verdict::Passed,
        StepStatus::Skipped => Verdict::Skipped(s.message.clone()),
        StepStatus::Failed => verdict_of(
            s.reason.unwrap_or(Reason::Internal),
            s.message.as_deref().unwrap_or(""),
        ),
    };
    let mut out = s.notes.clone();
    if let (StepStatus::Failed, Some(span)) = (s.status, &s.span_id) {
        out.push(format!("trace_id={} span_id={span}", o.trace_id));
    }
    Case {
        name,
        classname: format!("{}.{}", o.scenario, s.kind),
        time: s.duration.as_secs_f64(),
        file: if file.is_empty() {
            o.file.clone()
        } else {
            file.to_string()
        },
        line,
        verdict,
        out,
    }
}

/// The testcase of a run-level failure (a secret that cannot be read, the deadline passing
/// between steps, a bug), if the run had one.
fn run_case(o: &ScenarioOutcome, suffix: &str) -> Option<Case> {
    let reason = o.run_level_failure()?;
    let message = o.message.clone().unwrap_or_else(|| reason.to_string());
    let verdict = if o.cancelled {
        Verdict::Skipped(Some(format!("cancelled by shutdown: {message}")))
    } else {
        verdict_of(reason, &message)
    };
    Some(Case {
        name: format!("{RUN_CASE}{suffix}"),
        classname: o.scenario.clone(),
        time: o.duration.as_secs_f64(),
        file: o.file.clone(),
        line: None,
        verdict,
        out: Vec::new(),
    })
}

fn threshold_case(t: &ThresholdResult) -> Case {
    let (file, line) = split_location(&t.location);
    let verdict = if t.passed {
        Verdict::Passed
    } else {
        let message = format!(
            "threshold breached: {} measured {} over {} sample{}",
            t.threshold,
            t.display,
            t.samples,
            if t.samples == 1 { "" } else { "s" }
        );
        Verdict::Failure {
            kind: "threshold".into(),
            detail: format!("{message}\nat {}", t.location),
            message,
        }
    };
    Case {
        name: t.threshold.clone(),
        classname: format!("{}.thresholds", t.scenario),
        time: 0.0,
        file: file.to_string(),
        line,
        verdict,
        out: vec![format!("measured: {}", t.display)],
    }
}

fn write_case(x: &mut String, c: &Case) {
    let _ = write!(
        x,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\" file=\"{}\"",
        esc(&c.name),
        esc(&c.classname),
        c.time,
        esc(&c.file)
    );
    if let Some(line) = c.line {
        let _ = write!(x, " line=\"{line}\"");
    }
    if c.verdict == Verdict::Passed && c.out.is_empty() {
        x.push_str("/>\n");
        return;
    }
    x.push_str(">\n");
    match &c.verdict {
        Verdict::Passed => {}
        Verdict::Skipped(None) => x.push_str("      <skipped/>\n"),
        Verdict::Skipped(Some(m)) => {
            let _ = writeln!(x, "      <skipped message=\"{}\"/>", esc(m));
        }
        Verdict::Failure {
            kind,
            message,
            detail,
        } => {
            let _ = writeln!(
                x,
                "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                esc(kind),
                esc(message),
                esc(detail)
            );
        }
        Verdict::Error {
            kind,
            message,
            detail,
        } => {
            let _ = writeln!(
                x,
                "      <error type=\"{}\" message=\"{}\">{}</error>",
                esc(kind),
                esc(message),
                esc(detail)
            );
        }
    }
    if !c.out.is_empty() {
        let _ = writeln!(
            x,
            "      <system-out>{}</system-out>",
            esc(&c.out.join("\n"))
        );
    }
    x.push_str("    </testcase>\n");
}

/// One `<testsuite>`: its attributes, optional properties and system-err, its cases.
struct Suite {
    name: String,
    time: f64,
    timestamp: Option<String>,
    file: String,
    properties: Vec<(&'static str, String)>,
    err: Option<String>,
    cases: Vec<Case>,
}

fn write_suite(x: &mut String, s: &Suite) {
    let (tests, failures, errors, skipped) = counts(&s.cases);
    let _ = write!(
        x,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\"",
        esc(&s.name),
        s.time
    );
    if let Some(ts) = &s.timestamp {
        let _ = write!(x, " timestamp=\"{ts}\"");
    }
    let _ = writeln!(x, " file=\"{}\">", esc(&s.file));
    if !s.properties.is_empty() {
        x.push_str("    <properties>");
        for (name, value) in &s.properties {
            let _ = write!(x, "<property name=\"{name}\" value=\"{}\"/>", esc(value));
        }
        x.push_str("</properties>\n");
    }
    for c in &s.cases {
        write_case(x, c);
    }
    if let Some(e) = &s.err {
        let _ = writeln!(x, "    <system-err>{}</system-err>", esc(e));
    }
    x.push_str("  </testsuite>\n");
}

fn run_suite(o: &ScenarioOutcome, many_iterations: bool) -> Suite {
    let suffix = if many_iterations {
        format!(" #{}", o.iteration)
    } else {
        String::new()
    };
    let mut cases: Vec<Case> = o.steps.iter().map(|s| step_case(o, s, &suffix)).collect();
    cases.extend(run_case(o, &suffix));
    Suite {
        name: format!("{}{suffix}", o.scenario),
        time: o.duration.as_secs_f64(),
        timestamp: Some(humantime::format_rfc3339_seconds(o.started_at).to_string()),
        file: o.file.clone(),
        properties: vec![
            ("run_id", o.run_id.clone()),
            ("trace_id", o.trace_id.clone()),
            ("iteration", o.iteration.to_string()),
        ],
        err: o.message.clone(),
        cases,
    }
}

/// A suite of the thresholds of each scenario that declares some, in the order given.
fn threshold_suites(outcomes: &[ScenarioOutcome], thresholds: &[ThresholdResult]) -> Vec<Suite> {
    let mut suites: Vec<Suite> = Vec::new();
    for t in thresholds {
        let name = format!("{} thresholds", t.scenario);
        let case = threshold_case(t);
        match suites.iter_mut().find(|s| s.name == name) {
            Some(s) => s.cases.push(case),
            None => {
                let file = outcomes
                    .iter()
                    .find(|o| o.scenario == t.scenario)
                    .map(|o| o.file.clone())
                    .unwrap_or_else(|| case.file.clone());
                suites.push(Suite {
                    name,
                    time: 0.0,
                    timestamp: None,
                    file,
                    properties: Vec::new(),
                    err: None,
                    cases: vec![case],
                });
            }
        }
    }
    suites
}

/// Renders the report document: the runs, then the threshold verdicts.
pub fn render(outcomes: &[ScenarioOutcome], thresholds: &[ThresholdResult]) -> String {
    let many_iterations = outcomes.iter().any(|o| o.iteration > 1);
    let mut suites: Vec<Suite> = outcomes
        .iter()
        .map(|o| run_suite(o, many_iterations))
        .collect();
    suites.extend(threshold_suites(outcomes, thresholds));
    let all: Vec<Case> = suites.iter().flat_map(|s| s.cases.clone()).collect();
    let (tests, failures, errors, _) = counts(&all);
    let time: f64 = outcomes.iter().map(|o| o.duration.as_secs_f64()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"flowprobe\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    for s in &suites {
        write_suite(&mut x, s);
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn step(name: &str, status: StepStatus, reason: Option<Reason>, msg: &str) -> StepOutcome {
        StepOutcome {
            reason,
            message: (!msg.is_empty()).then(|| msg.to_string()),
            duration: Duration::from_millis(12),
            location: "dir/shop.yaml:27".into(),
            ..crate::outcome::fixtures::step(name, status)
        }
    }

    fn run(iteration: u32, steps: Vec<StepOutcome>) -> ScenarioOutcome {
        ScenarioOutcome {
            file: "dir/shop.yaml".into(),
            run_id: format!("run-{iteration}"),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            iteration,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(40),
            ..crate::outcome::fixtures::run("shop", steps)
        }
    }

    fn parse(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
    }

    fn case<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> roxmltree::Node<'a, 'a> {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no testcase {name}"))
    }

    #[test]
    fn locations_split_into_file_and_line() {
        assert_eq!(split_location("a/b.yaml:27"), ("a/b.yaml", Some(27)));
        assert_eq!(split_location("a/b.yaml:27:5"), ("a/b.yaml", Some(27)));
        assert_eq!(split_location("b.yaml"), ("b.yaml", None));
        assert_eq!(split_location("c:/x.yaml:3"), ("c:/x.yaml", Some(3)));
        assert_eq!(split_location(""), ("", None));
    }

    #[test]
    fn transport_problems_are_errors_and_wrong_answers_failures() {
        let o = run(
            1,
            vec![
                step(
                    "up",
                    StepStatus::Failed,
                    Some(Reason::Connect),
                    "connect: refused",
                ),
                step("ok", StepStatus::Passed, None, ""),
            ],
        );
        let mut o2 = run(
            1,
            vec![step(
                "status",
                StepStatus::Failed,
                Some(Reason::HttpStatus),
                "assertion failed at x\n  actual: 503",
            )],
        );
        o2.scenario = "api".into();
        let xml = render(&[o, o2], &[]);
        let doc = parse(&xml);
        let up = case(&doc, "up");
        let error = up
            .children()
            .find(|n| n.has_tag_name("error"))
            .expect("connect is an <error>");
        assert_eq!(error.attribute("type"), Some("connect"));
        assert!(up.children().all(|n| !n.has_tag_name("failure")));
        let status = case(&doc, "status");
        let failure = status
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("http_status is a <failure>");
        assert_eq!(
            failure.attribute("message"),
            Some("http_status: assertion failed at x")
        );
        assert_eq!(failure.text(), Some("assertion failed at x\n  actual: 503"));
        let root = doc.root_element();
        assert_eq!(root.attribute("tests"), Some("3"));
        assert_eq!(root.attribute("failures"), Some("1"));
        assert_eq!(root.attribute("errors"), Some("1"));
        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        assert_eq!(suites[0].attribute("errors"), Some("1"));
        assert_eq!(suites[0].attribute("failures"), Some("0"));
        // File and line are separate attributes.
        assert_eq!(up.attribute("file"), Some("dir/shop.yaml"));
        assert_eq!(up.attribute("line"), Some("27"));
    }

    #[test]
    fn the_trace_id_is_a_suite_property_and_a_failed_step_names_its_span() {
        let o = run(
            1,
            vec![
                step("ok", StepStatus::Passed, None, ""),
                step("bad", StepStatus::Failed, Some(Reason::Connect), "refused"),
            ],
        );
        let xml = render(&[o], &[]);
        let doc = parse(&xml);
        let prop = doc
            .descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("trace_id"));
        assert_eq!(
            prop.and_then(|p| p.attribute("value")),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let out = |name: &str| {
            case(&doc, name)
                .children()
                .find(|n| n.has_tag_name("system-out"))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        assert_eq!(
            out("bad").as_deref(),
            Some("trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=b7ad6b7169203331")
        );
        assert_eq!(out("ok"), None, "a passed step stays one line");
    }

    #[test]
    fn a_run_level_failure_is_its_own_failing_testcase() {
        let mut o = run(1, vec![step("home", StepStatus::Skipped, None, "")]);
        o.reason = Some(Reason::Config);
        o.message = Some("secret `pw`: environment variable PW is not set".into());
        let xml = render(&[o.clone()], &[]);
        let doc = parse(&xml);
        let c = case(&doc, RUN_CASE);
        let error = c
            .children()
            .find(|n| n.has_tag_name("error"))
            .expect("a config failure is an <error>");
        assert_eq!(error.attribute("type"), Some("config"));
        assert!(error.text().unwrap_or("").contains("PW is not set"));
        assert_eq!(c.attribute("classname"), Some("shop"));
        assert_eq!(c.attribute("file"), Some("dir/shop.yaml"));
        assert_eq!(doc.root_element().attribute("errors"), Some("1"));
        assert_eq!(doc.root_element().attribute("tests"), Some("2"));

        // The deadline passing between steps: `timeout`, an error too.
        o.reason = Some(Reason::Timeout);
        o.message = Some("scenario timed out after 1s".into());
        let xml = render(&[o.clone()], &[]);
        let doc = parse(&xml);
        let c = case(&doc, RUN_CASE);
        assert!(c
            .children()
            .any(|n| n.has_tag_name("error") && n.attribute("type") == Some("timeout")));

        // Cancelled by shutdown: says nothing about the target.
        o.cancelled = true;
        let xml = render(&[o], &[]);
        let doc = parse(&xml);
        assert!(case(&doc, RUN_CASE)
            .children()
            .any(|n| n.has_tag_name("skipped")));
        assert_eq!(doc.root_element().attribute("errors"), Some("0"));

        // A passing run and a run whose step failed have no run testcase.
        let xml = render(
            &[
                run(1, vec![step("a", StepStatus::Passed, None, "")]),
                run(
                    1,
                    vec![step("b", StepStatus::Failed, Some(Reason::Tls), "tls")],
                ),
            ],
            &[],
        );
        assert!(!xml.contains(RUN_CASE), "{xml}");
    }

    #[test]
    fn iterations_are_told_apart_and_notes_go_to_system_out() {
        let mut noted = step("home", StepStatus::Passed, None, "");
        noted.notes = vec!["response body cut at max_body (1 KiB) <x>".into()];
        let xml = render(
            &[
                run(1, vec![noted.clone()]),
                run(2, vec![step("home", StepStatus::Passed, None, "")]),
            ],
            &[],
        );
        let doc = parse(&xml);
        let names: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testsuite") || n.has_tag_name("testcase"))
            .map(|n| n.attribute("name").unwrap_or(""))
            .collect();
        assert_eq!(names, ["shop #1", "home #1", "shop #2", "home #2"]);
        let out = case(&doc, "home #1")
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .expect("notes in <system-out>");
        assert_eq!(
            out.text(),
            Some("response body cut at max_body (1 KiB) <x>")
        );
        assert!(case(&doc, "home #2").children().all(|n| !n.is_element()));
        // One run only: plain names.
        let xml = render(&[run(1, vec![noted])], &[]);
        assert!(xml.contains("testcase name=\"home\""), "{xml}");
    }

    #[test]
    fn each_threshold_is_a_testcase() {
        let verdict = |text: &str, passed: bool| ThresholdResult {
            scenario: "shop".into(),
            threshold: text.into(),
            location: "dir/shop.yaml:9:7".into(),
            measured: Some(0.612),
            display: "612ms".into(),
            samples: 20,
            passed,
        };
        let xml = render(
            &[run(1, vec![step("home", StepStatus::Passed, None, "")])],
            &[
                verdict("p95(run) < 500ms", false),
                verdict("max(home) < 2s", true),
            ],
        );
        let doc = parse(&xml);
        let suite = doc
            .descendants()
            .find(|n| n.attribute("name") == Some("shop thresholds"))
            .expect("a threshold suite");
        assert_eq!(suite.attribute("tests"), Some("2"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        let breached = case(&doc, "p95(run) < 500ms");
        assert_eq!(breached.attribute("classname"), Some("shop.thresholds"));
        assert_eq!(breached.attribute("file"), Some("dir/shop.yaml"));
        assert_eq!(breached.attribute("line"), Some("9"));
        let failure = breached
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("a breached threshold is a <failure>");
        assert_eq!(failure.attribute("type"), Some("threshold"));
        assert!(failure
            .attribute("message")
            .unwrap_or("")
            .contains("612ms over 20 samples"));
        assert!(case(&doc, "max(home) < 2s")
            .children()
            .all(|n| !n.has_tag_name("failure")));
        assert_eq!(doc.root_element().attribute("tests"), Some("3"));
        assert_eq!(doc.root_element().attribute("failures"), Some("1"));
    }
}
