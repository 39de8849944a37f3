//! `flowprobe run` as a user runs it, against a real nginx ingress: exit codes 0/1/2, the
//! terminal output (and no colour on non-terminals or with NO_COLOR), `--jobs`, `--iterations`,
//! `--fail-fast`, `--var`, the JSON and JUnit reports parsed back, `-v`, and `flowprobe schema`.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::nginx::{Ingress, SHOP};

const DEFAULTS: &str = r#"
defaults:
  http:
    resolve: {shop.test: 127.0.0.1}
    tls: {ca_file: "${{ vars.ca }}"}
"#;

/// A temp dir of scenario files run against one ingress.
struct Setup {
    ing: Ingress,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            ing: Ingress::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `NAME.yaml` with `name: NAME`, the common defaults, and `body`.
    fn scenario(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&p, format!("name: {name}\n{DEFAULTS}{body}")).unwrap();
        p
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn vars(&self) -> Vec<String> {
        vec![
            "--var".into(),
            format!("shop={}", self.ing.https(SHOP)),
            "--var".into(),
            format!("ca={}", self.ing.ca.ca_file().display()),
        ]
    }

    /// `flowprobe run ARGS... --var shop=.. --var ca=..`
    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = vec!["run".into()];
        all.extend(args.iter().map(|s| s.to_string()));
        all.extend(self.vars());
        flowprobe(&all, &[])
    }
}

fn flowprobe(args: &[String], env: &[(&str, &str)]) -> Output {
    Command::new(support::flowprobe_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .expect("run flowprobe")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

const PASS: &str = r#"
steps:
  - name: home
    http: {url: "${{ vars.shop }}/health"}
    assert: ['body == "ok"']
"#;

const FAIL: &str = r#"
steps:
  - name: ok
    http: {url: "${{ vars.shop }}/whoami"}
  - name: broken
    http: {url: "${{ vars.shop }}/status/503"}
    assert: ["status == 200"]
  - name: never
    http: {url: "${{ vars.shop }}/text"}
finally:
  - name: cleanup
    http: {url: "${{ vars.shop }}/echo", method: DELETE}
"#;

#[test]
fn exit_0_when_all_pass_with_a_line_per_step() {
    let s = Setup::new();
    let f = s.scenario("pass", PASS);
    let o = s.run(&[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = text(&o.stdout);
    assert!(out.starts_with("PASS pass  "), "{out}");
    assert!(out.contains("\n  ✓ home      "), "{out}");
    assert!(out.contains("\n1 run: 1 passed, 0 failed in "), "{out}");
    assert!(!out.contains('\x1b'), "colour on a pipe: {out:?}");
    assert!(o.stderr.is_empty(), "{}", show(&o));
    assert_eq!(s.ing.app_a.hits("/health"), 1);
}

#[test]
fn exit_1_when_a_step_fails_with_reason_and_message() {
    let s = Setup::new();
    let f = s.scenario("fail", FAIL);
    let o = s.run(&[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = text(&o.stdout);
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{out}"))
            .to_string()
    };
    assert!(
        line("FAIL fail  ").ends_with(&f.display().to_string()),
        "{out}"
    );
    assert!(line("  ✓ ok  ").len() > 12, "{out}");
    let broken = line("  ✗ broken  ");
    let loc = format!("{}:13:15", f.display());
    assert!(
        broken.ends_with(&format!(
            "http_status assertion failed at {loc}: `status == 200`"
        )),
        "{broken}"
    );
    assert!(
        out.contains("\n        actual:   503\n        expected: == 200\n"),
        "{out}"
    );
    assert!(
        out.contains("\n        response: {\"status\":503}\n"),
        "{out}"
    );
    assert!(line("  - never ").ends_with("skipped"), "{out}");
    assert!(line("  ✓ cleanup ").ends_with("(finally)"), "{out}");
    assert!(out.contains("\n1 run: 0 passed, 1 failed in "), "{out}");
    assert_eq!(s.ing.app_a.hits("/text"), 0);
    assert_eq!(s.ing.app_a.hits("/echo"), 1);
}

#[test]
fn exit_2_on_invalid_input_and_nothing_runs() {
    let s = Setup::new();
    s.scenario("a-valid", PASS);
    s.scenario(
        "b-invalid",
        r#"
steps:
  - name: home
    http: {url: "${{ vars.shop }}/health", methd: GET}
"#,
    );
    let o = s.run(&[&s.path("")]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(o.stdout.is_empty(), "{}", show(&o));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!(
            "{}:10:44: error: steps[0].http: unknown field `methd`",
            s.path("b-invalid.yaml")
        )),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `method`?"), "{err}");
    assert!(err.ends_with("1 error found; nothing was run\n"), "{err}");
    assert_eq!(
        s.ing.app_a.hits("/health"),
        0,
        "a valid file ran despite errors"
    );

    // A missing secret is invalid input too.
    let f = s.scenario(
        "c-secret",
        r#"
secrets:
  pw: {env: FLOWPROBE_CLI_TEST_UNSET}
steps:
  - name: home
    http: {url: "${{ vars.shop }}/health"}
"#,
    );
    let o = s.run(&[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(text(&o.stderr).contains("environment variable FLOWPROBE_CLI_TEST_UNSET is not set"));
    // Usage errors are not exit 1 either.
    let o = flowprobe(&["run".into()], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
}

#[test]
fn colour_only_on_a_terminal_without_no_color() {
    let s = Setup::new();
    let f = s.scenario("pass", PASS);
    let cmd = format!(
        "{} run {} {}",
        support::flowprobe_bin().display(),
        f.display(),
        s.vars().join(" ")
    );
    // `script` gives the command a pseudo-terminal.
    let on_tty = |env: &[(&str, &str)], extra: &str| {
        let o = Command::new("script")
            .args(["-qec", &format!("{cmd} {extra}"), "/dev/null"])
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .output()
            .expect("run script(1)");
        assert!(o.status.success(), "{}", show(&o));
        text(&o.stdout)
    };
    let coloured = on_tty(&[], "");
    assert!(coloured.contains("\x1b[32mPASS\x1b[0m"), "{coloured:?}");
    let plain = on_tty(&[("NO_COLOR", "1")], "");
    assert!(plain.contains("PASS pass"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "{plain:?}");
    let flag = on_tty(&[], "--no-color");
    assert!(!flag.contains('\x1b'), "{flag:?}");
    let never = on_tty(&[], "--color never");
    assert!(
        !never.contains('\x1b') && never.contains("PASS pass"),
        "{never:?}"
    );
    // An explicit `always` wins over NO_COLOR, also when stdout is not a terminal.
    let always = on_tty(&[("NO_COLOR", "1")], "--color always");
    assert!(always.contains("\x1b[32mPASS\x1b[0m"), "{always:?}");
    let piped = flowprobe(
        &[
            vec![
                "--color".into(),
                "always".into(),
                "run".into(),
                f.display().to_string(),
            ],
            s.vars(),
        ]
        .concat(),
        &[],
    );
    assert!(
        text(&piped.stdout).contains("\x1b[32mPASS"),
        "{}",
        show(&piped)
    );
    // On a terminal, --iterations shows a progress count on stderr, then clears it.
    let progress = on_tty(&[], "-n 3");
    assert!(
        progress.contains("[3/3] 3 passed, 0 failed"),
        "{progress:?}"
    );
    assert!(progress.contains("\r\x1b[K"), "{progress:?}");
    let once = on_tty(&[], "");
    assert!(
        !once.contains("[1/1]"),
        "no progress line for one run: {once:?}"
    );
}

#[test]
fn reports_go_to_new_directories() {
    let s = Setup::new();
    s.scenario("pass", PASS);
    let json = s.dir.path().join("out/deeper/report.json");
    let junit = s.dir.path().join("junit/report.xml");
    let o = s.run(&[
        &s.path("pass.yaml"),
        "--report",
        &format!("json={}", json.display()),
        "--report",
        &format!("junit={}", junit.display()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["runs"][0]["success"], true);
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testsuite"));
}

#[test]
fn completions_load_in_the_shell_and_the_man_page_names_every_command() {
    let o = flowprobe(&["completions".into(), "bash".into()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("flowprobe.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    // Real bash sources it and has a completion function registered for `flowprobe`.
    let check = Command::new("bash")
        .args([
            "-c",
            &format!("source {} && complete -p flowprobe", script.display()),
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", show(&check));
    assert!(
        text(&check.stdout).contains("flowprobe"),
        "{}",
        show(&check)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = flowprobe(&["completions".into(), shell.into()], &[]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", show(&o));
        let t = text(&o.stdout);
        assert!(
            t.contains("serve") && t.contains("validate"),
            "{shell}: {t}"
        );
    }
    let man = flowprobe(&["man".into()], &[]);
    assert_eq!(man.status.code(), Some(0), "{}", show(&man));
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH flowprobe 1"),
        "{page}"
    );
    for cmd in ["run", "validate", "serve", "slo", "schema", "completions"] {
        assert!(page.contains(cmd), "the man page does not name `{cmd}`");
    }
}

#[test]
fn jobs_limits_how_many_scenarios_run_at_once() {
    for jobs in [1usize, 3] {
        let s = Setup::new();
        for n in ["a", "b", "c"] {
            s.scenario(
                n,
                r#"
steps:
  - name: slow
    http: {url: "${{ vars.shop }}/delay/400"}
"#,
            );
        }
        let o = s.run(&[&s.path(""), "--jobs", &jobs.to_string()]);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert_eq!(s.ing.app_a.hits("/delay/400"), 3);
        assert_eq!(s.ing.app_a.max_in_flight(), jobs, "--jobs {jobs}");
    }
}

#[test]
fn iterations_run_each_scenario_n_times_with_distinct_run_ids() {
    let s = Setup::new();
    let f = s.scenario("pass", PASS);
    let json = s.path("report.json");
    let o = s.run(&[
        f.to_str().unwrap(),
        "--iterations",
        "3",
        "--report",
        &format!("json={json}"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(s.ing.app_a.hits("/health"), 3);
    let out = text(&o.stdout);
    for i in 1..=3 {
        assert!(out.contains(&format!("PASS pass #{i}  ")), "{out}");
    }
    assert!(out.contains("3 runs: 3 passed, 0 failed"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    let iterations: Vec<u64> = runs
        .iter()
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, [1, 2, 3]);
    let mut ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn fail_fast_starts_no_run_after_the_first_failure() {
    let s = Setup::new();
    let f = s.scenario(
        "fails",
        r#"
steps:
  - name: broken
    http: {url: "${{ vars.shop }}/status/500"}
"#,
    );
    let f = f.to_str().unwrap();
    let o = s.run(&[f, "--iterations", "4", "--fail-fast"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(s.ing.app_a.hits("/status/500"), 1);
    assert!(
        text(&o.stdout).contains("1 run: 0 passed, 1 failed"),
        "{}",
        show(&o)
    );
    let o = s.run(&[f, "--iterations", "4"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(s.ing.app_a.hits("/status/500"), 5);
}

#[test]
fn var_overrides_a_declared_default() {
    let s = Setup::new();
    let f = s.scenario(
        "override",
        r#"
vars:
  path: /status/500
steps:
  - name: home
    http: {url: "${{ vars.shop }}${{ vars.path }}"}
    assert: ["status == 200"]
"#,
    );
    let f = f.to_str().unwrap();
    assert_eq!(s.run(&[f]).status.code(), Some(1));
    let o = s.run(&[f, "--var", "path=/health"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(s.ing.app_a.hits("/status/500"), 1);
    assert_eq!(s.ing.app_a.hits("/health"), 1);
}

#[test]
fn junit_and_json_reports_parse_back_with_the_outcome() {
    let s = Setup::new();
    s.scenario("fail", FAIL);
    s.scenario("pass", PASS);
    let (json, junit) = (s.path("out/report.json"), s.path("out/junit.xml"));
    std::fs::create_dir(s.path("out")).unwrap();
    let o = s.run(&[
        &s.path(""),
        "--report",
        &format!("json={json}"),
        "--report",
        &format!("junit={junit}"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("5"));
    assert_eq!(root.attribute("failures"), Some("1"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["fail", "pass"]);
    let fail = suites[0];
    assert_eq!(fail.attribute("tests"), Some("4"));
    assert_eq!(fail.attribute("failures"), Some("1"));
    assert_eq!(fail.attribute("skipped"), Some("1"));
    assert!(fail.attribute("time").unwrap().parse::<f64>().is_ok());
    let cases: Vec<_> = fail
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let case_names: Vec<_> = cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(case_names, ["ok", "broken", "never", "cleanup (finally)"]);
    assert!(cases
        .iter()
        .all(|c| c.attribute("classname") == Some("fail.http")));
    let failure = cases[1]
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("broken has a <failure>");
    assert_eq!(failure.attribute("type"), Some("http_status"));
    assert!(failure
        .attribute("message")
        .unwrap()
        .starts_with("http_status: assertion failed at "));
    let body = failure.text().unwrap();
    assert!(
        body.contains("actual:   503") && body.contains("expected: == 200"),
        "{body}"
    );
    assert!(cases[2].children().any(|n| n.has_tag_name("skipped")));
    assert!(cases[0].children().all(|n| !n.is_element()));
    let pass_cases: Vec<_> = suites[1]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(pass_cases.len(), 1);
    assert!(pass_cases[0].children().all(|n| !n.is_element()));

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(
        doc["summary"],
        serde_json::json!({"runs": 2, "passed": 1, "failed": 1, "retried_steps": 0})
    );
    let run = &doc["runs"][0];
    assert_eq!(run["scenario"], "fail");
    assert_eq!(run["success"], false);
    assert_eq!(run["reason"], "http_status");
    let statuses: Vec<_> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["passed", "failed", "skipped", "passed"]);
    let broken = &run["steps"][1];
    assert_eq!(broken["reason"], "http_status");
    assert_eq!(broken["attempts"], 1);
    assert_eq!(broken["assertions"][0]["actual"], "503");
    assert_eq!(broken["assertions"][0]["passed"], false);
    assert!(broken["assertions"][0]["location"]
        .as_str()
        .unwrap()
        .ends_with("fail.yaml:13:15"));
    assert!(broken["duration"].as_f64().unwrap() > 0.0);
    assert!(broken["certificate_not_after"].as_u64().is_some());
    assert_eq!(run["steps"][3]["cleanup"], true);
    assert_eq!(doc["runs"][1]["success"], true);
}

#[test]
fn verbose_logs_go_to_stderr() {
    let s = Setup::new();
    let f = s.scenario("fail", FAIL);
    let quiet = s.run(&[f.to_str().unwrap()]);
    assert!(quiet.stderr.is_empty(), "{}", show(&quiet));
    let loud = s.run(&[f.to_str().unwrap(), "-v"]);
    let err = text(&loud.stderr);
    assert!(
        err.contains("step failed") && err.contains("http_status"),
        "{err}"
    );
    assert!(err.contains("run finished"), "{err}");
    assert!(!err.contains('\x1b'), "colour in logs on a pipe: {err:?}");
    // The terminal report is the same with or without logs.
    assert_eq!(loud.status.code(), Some(1));
}

#[test]
fn rust_log_trace_shows_flowprobe_detail_but_no_dependency_debug_logs() {
    let s = Setup::new();
    let f = s.scenario("fail", FAIL);
    let mut args: Vec<String> = vec!["run".into(), f.display().to_string()];
    args.extend(s.vars());
    let o = flowprobe(&args, &[("RUST_LOG", "trace")]);
    let err = text(&o.stderr);
    assert!(err.contains("DEBUG") || err.contains("TRACE"), "{err}");
    // hyper, reqwest and rustls log connections and headers at debug/trace, unredacted.
    for line in err.lines() {
        let dependency = ["hyper", "reqwest", "rustls", "h2::"]
            .iter()
            .any(|d| line.contains(d));
        let detailed = line.contains("DEBUG") || line.contains("TRACE");
        assert!(
            !(dependency && detailed),
            "a dependency's debug log: {line}"
        );
    }
}

#[test]
fn schema_is_json_naming_the_top_level_fields() {
    let o = flowprobe(&["schema".into()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).expect("schema is JSON");
    let props = schema["properties"].as_object().expect("properties");
    for field in [
        "name",
        "description",
        "labels",
        "schedule",
        "vars",
        "secrets",
        "defaults",
        "steps",
        "finally",
        "slo",
    ] {
        assert!(props.contains_key(field), "schema lacks `{field}`");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"name") && required.contains(&"steps"),
        "{required:?}"
    );
    assert_eq!(schema["additionalProperties"], false);
    let text = String::from_utf8(o.stdout).unwrap();
    for kind in [
        "\"http\"",
        "\"oidc\"",
        "\"s3\"",
        "\"redis\"",
        "\"dns\"",
        "\"tcp\"",
    ] {
        assert!(text.contains(kind), "schema lacks step kind {kind}");
    }
}

#[test]
fn a_failed_assertion_names_its_reason_once() {
    let s = Setup::new();
    let f = s.scenario(
        "wrong-backend",
        r#"
steps:
  - name: home
    http: {url: "${{ vars.shop }}/whoami"}
    assert:
      - jsonpath "$.backend" == "app-b"
"#,
    );
    let o = s.run(&[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = text(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("  ✗ home "))
        .unwrap_or_else(|| panic!("{out}"));
    let want = format!(
        "  assertion failed at {}:12:9: `jsonpath \"$.backend\" == \"app-b\"`",
        f.display()
    );
    assert!(line.ends_with(&want), "{line}");
    assert!(out.contains("\n        actual:   \"app-a\"\n"), "{out}");
}
