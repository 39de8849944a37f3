//! The example scenarios in `scenarios/` are valid as shipped, and the ingress smoke scenario
//! passes against the local stack (nginx with TLS in front of the test backends) the way the
//! demo runs it.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::nginx::Ingress;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn flowprobe(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(support::flowprobe_bin())
        .current_dir(root())
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run flowprobe")
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_example_scenario_validates() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .expect("scenarios/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f == "ingress-smoke.yaml"), "{files:?}");
    // Secret sources exist only where the scenarios are deployed.
    let o = flowprobe(&["validate", "scenarios/", "--skip-secrets"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    for f in &files {
        assert!(
            stdout.contains(&format!("OK scenarios/{f} (")),
            "{f} not validated:\n{stdout}"
        );
    }
    // With its secret present, the smoke scenario validates fully, secrets included.
    let o = flowprobe(
        &["validate", "scenarios/ingress-smoke.yaml"],
        &[("SHOP_PROBE_PASSWORD", "x")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn ingress_smoke_passes_against_the_local_stack() {
    let ing = Ingress::start();
    let mut args = vec![
        "run".to_string(),
        "scenarios/ingress-smoke.yaml".to_string(),
    ];
    for (k, v) in ing.vars() {
        args.push("--var".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = flowprobe(&args, &[("SHOP_PROBE_PASSWORD", &ing.app_a.password)]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("PASS ingress-smoke "), "{stdout}");
    assert!(stdout.contains("(finally)"), "{stdout}");
    // It logged in through the ingress, used the token, and logged out in `finally`.
    assert_eq!(ing.app_a.logins(), 1);
    assert_eq!(ing.app_a.hits("/api/items/42"), 1);
    assert_eq!(ing.app_a.live_tokens(), 0);
    assert_eq!(ing.app_b.hits("/health"), 0);

    // The wrong password fails at login, with the API never called; the logout in `finally`
    // has no token to revoke and is skipped.
    let o = flowprobe(&args, &[("SHOP_PROBE_PASSWORD", "wrong")]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(ing.app_a.hits("/api/items/42"), 1);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{stdout}"))
            .to_string()
    };
    assert!(
        line("✗ login").contains("http_status assertion failed at "),
        "{stdout}"
    );
    assert!(line("- item").contains("skipped"), "{stdout}");
    assert!(
        line("- logout").ends_with("needs `steps.login.token`, which the run did not produce"),
        "{stdout}"
    );
    assert_eq!(
        ing.app_a.hits("/logout"),
        1,
        "only the first run logged out"
    );
}

/// What editors do with `flowprobe schema`: a JSON Schema validator (Python's `jsonschema`, from
/// the test venv) accepts every example scenario and rejects a step with two kinds, a misspelt
/// kind and an unknown field in a kind's settings.
#[test]
fn the_json_schema_accepts_the_examples_and_rejects_what_the_loader_rejects() {
    let o = flowprobe(&["schema"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, &o.stdout).unwrap();
    let script = r#"
import glob, json, sys, yaml, jsonschema
v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))
def errors(doc): return len(list(v.iter_errors(doc)))
for f in sorted(glob.glob("scenarios/*.yaml")):
    print("example", f, errors(yaml.safe_load(open(f))))
step = lambda **kw: {"name": "x", "steps": [dict(name="a", **kw)]}
print("two-kinds", errors(step(http={"url": "http://x"}, redis={"url": "redis://x"})))
print("misspelt-kind", errors(step(htp={"url": "http://x"})))
print("unknown-field", errors(step(http={"url": "http://x", "hedaers": {}})))
print("capture-forms", errors(step(http={"url": "http://x"}, capture={"a": "status", "b": {"query": "body", "secret": True}})))
"#;
    let out = Command::new(root().join(".venv/bin/python"))
        .current_dir(root())
        .args(["-c", script])
        .arg(&schema)
        .output()
        .expect("run the venv's python (scripts/setup.sh makes it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let examples: Vec<&str> = text.lines().filter(|l| l.starts_with("example ")).collect();
    assert!(examples.len() >= 6, "{text}");
    for line in examples {
        assert!(line.ends_with(" 0"), "schema rejects an example: {line}");
    }
    for case in ["two-kinds", "misspelt-kind", "unknown-field"] {
        let line = text.lines().find(|l| l.starts_with(case)).unwrap();
        assert!(!line.ends_with(" 0"), "schema accepts {case}: {text}");
    }
    assert!(text.contains("capture-forms 0"), "{text}");
}
