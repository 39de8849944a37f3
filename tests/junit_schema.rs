//! The JUnit report of a real `flowprobe run` against a real local backend validates with
//! `xmllint --schema` against the JUnit schema Jenkins' xUnit plugin validates reports with
//! (tests/schema/jenkins-junit-10.xsd, unmodified, MIT licence in its header; from
//! github.com/jenkinsci/xunit-plugin, src/main/resources/org/jenkinsci/plugins/xunit/types/
//! model/xsd/junit-10.xsd at 8c515de2804b3fd591a3b0f1ff8908a1b1a41887) — passing, failing and
//! erroring steps, a run-level failure, iterations and thresholds. The JSON report of the
//! run-level failure names it as well.
//!
//! No published Jenkins/Ant schema declares `file` and `line` on `<testcase>` (pytest's and
//! GitLab's attributes, which flowprobe writes): the raw report must fail validation on exactly
//! those two attributes and nothing else, and validate fully without them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::backend::Backend;
use support::prometheus::wait_until;

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/schema/jenkins-junit-10.xsd"
);

fn xmllint() -> PathBuf {
    support::find_program("xmllint")
        .expect("xmllint is not installed (Debian libxml2-utils): run scripts/setup.sh")
}

/// `xmllint --noout --schema SCHEMA file`: Ok, or the validity errors it printed.
fn validate(file: &Path) -> Result<(), Vec<String>> {
    let out = Command::new(xmllint())
        .args(["--noout", "--schema", SCHEMA])
        .arg(file)
        .output()
        .expect("run xmllint");
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(stderr
        .lines()
        .filter(|l| !l.ends_with("fails to validate"))
        .map(String::from)
        .collect())
}

/// The report without the `file` and `line` attributes of its testcases.
fn without_testcase_locations(xml: &str) -> String {
    let re = regex::Regex::new(r#"(<testcase [^>]*?) file="[^"]*"( line="[0-9]+")?"#)
        .expect("valid regex");
    re.replace_all(xml, "$1").into_owned()
}

/// Validates a report as described in the module comment; returns its text.
fn assert_valid(report: &Path) -> String {
    let xml = std::fs::read_to_string(report).expect("read the JUnit report");
    let errors = validate(report).expect_err("the schema knows no testcase file/line");
    let only_locations = regex::Regex::new(
        r"Element 'testcase', attribute '(file|line)': The attribute '(file|line)' is not allowed\.$",
    )
    .expect("valid regex");
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(
            only_locations.is_match(e),
            "unexpected schema error: {e}\n{xml}"
        );
    }
    let stripped = report.with_extension("stripped.xml");
    std::fs::write(&stripped, without_testcase_locations(&xml)).expect("write stripped copy");
    if let Err(errors) = validate(&stripped) {
        panic!("schema errors:\n{}\n{xml}", errors.join("\n"));
    }
    xml
}

fn flowprobe_run(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(support::flowprobe_bin());
    cmd.arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    cmd
}

/// The `<testcase>` named `name` and the names of its child elements.
fn case<'a>(doc: &'a roxmltree::Document<'a>, name: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
        .unwrap_or_else(|| panic!("no testcase {name}"))
}

fn child<'a>(node: roxmltree::Node<'a, 'a>, tag: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children().find(|n| n.has_tag_name(tag))
}

/// 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(file).expect("read scenario");
    let i = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {}", file.display()));
    (i + 1).to_string()
}

#[test]
fn passing_failing_erroring_and_threshold_cases_validate() {
    let api = Backend::start("api");
    let dir = tempfile::tempdir().expect("temp dir");
    let base = api.url();
    let pass = dir.path().join("pass.yaml");
    std::fs::write(
        &pass,
        format!(
            "name: pass\nsteps:\n  - name: health\n    http: {{url: \"{base}/health\"}}\n    assert: [\"status == 200\"]\nthresholds:\n  - \"success_rate >= 99%\"\n  - \"max(steps.health.duration) < 1ms\"\n"
        ),
    )
    .expect("write pass.yaml");
    let fail = dir.path().join("fail.yaml");
    std::fs::write(
        &fail,
        format!(
            "name: fail\nsteps:\n  - name: status\n    http: {{url: \"{base}/status/503\"}}\n    assert: [\"status == 200\"]\n  - name: never\n    http: {{url: \"{base}/health\"}}\n"
        ),
    )
    .expect("write fail.yaml");
    let refused = dir.path().join("refused.yaml");
    std::fs::write(
        &refused,
        "name: refused\nsteps:\n  - name: nothing-there\n    http: {url: \"http://127.0.0.1:9/\"}\n",
    )
    .expect("write refused.yaml");

    let report = dir.path().join("junit.xml");
    let out = flowprobe_run(
        dir.path(),
        &[
            "pass.yaml",
            "fail.yaml",
            "refused.yaml",
            "--report",
            &format!("junit={}", report.display()),
        ],
    )
    .output()
    .expect("run flowprobe");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let xml = assert_valid(&report);

    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let root = doc.root_element();
    // 4 steps + 2 thresholds; the 503 and the breached threshold fail, the refused connect errs.
    assert_eq!(root.attribute("tests"), Some("6"), "{xml}");
    assert_eq!(root.attribute("failures"), Some("2"), "{xml}");
    assert_eq!(root.attribute("errors"), Some("1"), "{xml}");
    let status = case(&doc, "status");
    let failure = child(status, "failure").expect("a wrong status is a <failure>");
    assert_eq!(failure.attribute("type"), Some("http_status"));
    assert_eq!(status.attribute("file"), Some("fail.yaml"));
    assert_eq!(
        status.attribute("line"),
        Some(line_of(&fail, "- name: status").as_str())
    );
    assert!(child(case(&doc, "never"), "skipped").is_some());
    let error =
        child(case(&doc, "nothing-there"), "error").expect("a refused connect is an <error>");
    assert_eq!(error.attribute("type"), Some("connect"));
    assert!(case(&doc, "health").children().all(|n| !n.is_element()));

    let breached = case(&doc, "max(steps.health.duration) < 1ms");
    assert_eq!(breached.attribute("classname"), Some("pass.thresholds"));
    assert_eq!(
        breached.attribute("line"),
        Some(line_of(&pass, "max(steps.health.duration)").as_str())
    );
    assert_eq!(
        child(breached, "failure").and_then(|f| f.attribute("type")),
        Some("threshold")
    );
    assert!(child(case(&doc, "success_rate >= 99%"), "failure").is_none());
}

#[test]
fn a_run_level_failure_in_a_later_iteration_validates() {
    let api = Backend::start("api");
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("token");
    std::fs::write(&secret, "tok-junit-5ecr3t\n").expect("write the secret");
    let scenario = dir.path().join("secret.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: secret\nsecrets:\n  token: {{file: \"{}\"}}\nsteps:\n  - name: slow\n    http:\n      url: \"{}/delay/1500\"\n      headers: {{x-token: \"${{{{ secrets.token }}}}\"}}\n",
            secret.display(),
            api.url()
        ),
    )
    .expect("write secret.yaml");
    let report = dir.path().join("junit.xml");
    let json_report = dir.path().join("report.json");
    let mut child_process = flowprobe_run(
        dir.path(),
        &[
            "secret.yaml",
            "--iterations",
            "2",
            "--jobs",
            "1",
            "--report",
            &format!("junit={}", report.display()),
            "--report",
            &format!("json={}", json_report.display()),
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("start flowprobe run");
    // The first iteration has read the secret once its request arrives; then it goes away.
    wait_until(
        Duration::from_secs(30),
        "the first iteration's request",
        || (api.hits("/delay/1500") >= 1).then_some(()),
    );
    std::fs::remove_file(&secret).expect("remove the secret");
    let status = child_process.wait().expect("wait for flowprobe run");
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        api.hits("/delay/1500"),
        1,
        "the second iteration must not run its step"
    );

    let xml = assert_valid(&report);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let suites: Vec<_> = doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap_or(""))
        .collect();
    assert_eq!(suites, ["secret #1", "secret #2"]);
    assert!(case(&doc, "slow #1").children().all(|n| !n.is_element()));
    assert!(child(case(&doc, "slow #2"), "skipped").is_some());
    let run = case(&doc, "(run) #2");
    let error = child(run, "error").expect("a secret that cannot be read is an <error>");
    assert_eq!(error.attribute("type"), Some("config"));
    assert!(
        error.text().unwrap_or("").contains("cannot read file"),
        "{xml}"
    );
    assert_eq!(run.attribute("file"), Some("secret.yaml"));
    assert!(!xml.contains("(run) #1"));
    assert!(!xml.contains("tok-junit-5ecr3t"));

    // The JSON report of the same runs names the run-level failure too.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_report).expect("read JSON report"))
            .expect("valid JSON");
    assert!(doc["runs"][0].get("run_failure").is_none(), "{doc:#}");
    let second = &doc["runs"][1];
    assert_eq!(second["reason"], "config", "{doc:#}");
    assert_eq!(second["run_failure"]["reason"], "config");
    assert!(second["run_failure"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("cannot read file")));
}
