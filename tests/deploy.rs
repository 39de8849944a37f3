//! `deploy/` stays deployable: every kustomization renders with `kubectl kustomize` and the
//! result validates offline against the Kubernetes schemas (`kubernetes-validate --strict`;
//! the prometheus-operator kinds, which it has no schema for, are checked here instead); the
//! committed PrometheusRule is what `flowprobe slo` generates now; the scenarios in the base
//! are the examples; the Grafana dashboard only queries metrics the prober exports or the
//! rules record; the Deployment keeps its hardening.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_yaml::Value;

/// Kinds kubernetes-validate has no schema for (CRDs), and what checks them instead.
const SKIPPED_KINDS: &[(&str, &str)] = &[
    (
        "PrometheusRule",
        "spec passes `promtool check rules`; equals `flowprobe slo` output",
    ),
    (
        "ServiceMonitor",
        "selector and port checked against the rendered Service",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// Every directory under deploy/ with a kustomization.yaml, sorted.
fn kustomizations() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let file = dir.join("kustomization.yaml");
        // A Component is only ever rendered as part of a kustomization that includes it.
        let component =
            std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\nkind: Component"));
        if file.is_file() && !component {
            out.push(dir.to_path_buf());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    }
    let mut out = Vec::new();
    walk(&deploy(), &mut out);
    out
}

fn kubectl() -> PathBuf {
    support::find_program("kubectl").expect("kubectl (with its built-in kustomize) is installed")
}

fn validator() -> PathBuf {
    let p = root().join(".venv/bin/kubernetes-validate");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    p
}

/// `kubectl kustomize DIR` as YAML documents.
fn render(dir: &Path) -> Vec<Value> {
    let out = Command::new(kubectl())
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("")
}

fn find<'a>(docs: &'a [Value], k: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {k} {name} rendered"))
}

/// Runs kubernetes-validate --strict on `docs`; returns (success, output).
fn validate(docs: &[&Value]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let out = Command::new(validator())
        .args(["--strict"])
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !text.contains("ERROR"), text)
}

#[test]
fn every_kustomization_renders_and_validates_offline() {
    let dirs = kustomizations();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.strip_prefix(deploy()).unwrap().display().to_string())
        .collect();
    for expected in [
        "base",
        "overlays/smoke-test",
        "overlays/multi-location/eu-west",
        "overlays/multi-location/us-east",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    let skipped: Vec<&str> = SKIPPED_KINDS.iter().map(|(k, _)| *k).collect();
    for dir in &dirs {
        let docs = render(dir);
        assert!(!docs.is_empty(), "{} renders nothing", dir.display());
        let checked: Vec<&Value> = docs
            .iter()
            .filter(|d| !skipped.contains(&kind(d)))
            .collect();
        let (ok, out) = validate(&checked);
        assert!(ok, "{} does not validate:\n{out}", dir.display());
        // Every checked document was seen by the validator (nothing silently unknown).
        assert_eq!(
            out.matches(" passed for resource ").count(),
            checked.len(),
            "{}:\n{out}",
            dir.display()
        );
        for d in docs.iter().filter(|d| skipped.contains(&kind(d))) {
            check_operator_kind(d, &docs);
        }
    }
}

/// The pod spec of a workload (Deployment, StatefulSet, DaemonSet, Job; CronJob's job template).
fn pod_spec(doc: &Value) -> Option<&Value> {
    match kind(doc) {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => {
            Some(&doc["spec"]["template"]["spec"])
        }
        "CronJob" => Some(&doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// The paths `flowprobe serve` answers, which probes may use.
const SERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/status"];

#[test]
fn every_workload_of_every_overlay_has_the_image_can_read_its_secrets_and_probes_real_paths() {
    let mut workloads = 0;
    for dir in kustomizations() {
        let docs = render(&dir);
        for doc in &docs {
            let Some(pod) = pod_spec(doc) else { continue };
            workloads += 1;
            let what = format!(
                "{} {} in {}",
                kind(doc),
                doc["metadata"]["name"].as_str().unwrap_or("?"),
                dir.display()
            );
            let ctx = &pod["securityContext"];
            let uid = ctx["runAsUser"].as_u64();
            let fs_group = ctx["fsGroup"].as_u64();
            for c in pod["containers"].as_sequence().expect("containers") {
                let image = c["image"].as_str().unwrap_or("");
                assert!(
                    image.starts_with("registry.example.com/flowprobe:"),
                    "{what}: image `{image}` is not the configured one"
                );
                let ports: Vec<&str> = c["ports"]
                    .as_sequence()
                    .map(|p| p.iter().filter_map(|p| p["name"].as_str()).collect())
                    .unwrap_or_default();
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    let get = &c[probe]["httpGet"];
                    if get.is_null() {
                        continue;
                    }
                    let path = get["path"].as_str().unwrap_or("");
                    assert!(
                        SERVED_PATHS.contains(&path),
                        "{what}: {probe} path `{path}`"
                    );
                    let port = get["port"].as_str().unwrap_or("");
                    assert!(
                        ports.contains(&port),
                        "{what}: {probe} port `{port}` is not declared"
                    );
                }
            }
            for v in pod["volumes"].as_sequence().into_iter().flatten() {
                let secret = &v["secret"];
                if secret.is_null() {
                    continue;
                }
                // Secret files are owned by root, group fsGroup when one is set.
                let mode = secret["defaultMode"].as_u64().unwrap_or(0o644);
                let readable = uid == Some(0)
                    || mode & 0o004 != 0
                    || (fs_group.is_some() && mode & 0o040 != 0);
                assert!(
                    readable,
                    "{what}: user {uid:?} cannot read secret volume `{}` (mode {mode:o}, fsGroup {fs_group:?})",
                    v["name"].as_str().unwrap_or("?")
                );
            }
        }
    }
    assert!(workloads >= 5, "only {workloads} workloads rendered");
}

#[test]
fn the_validator_rejects_what_it_should() {
    let docs = render(&deploy().join("base"));
    let mut bad = find(&docs, "Deployment", "flowprobe").clone();
    bad["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = Value::from("oops");
    let (ok, out) = validate(&[&bad]);
    assert!(!ok, "an unknown field passed --strict:\n{out}");
}

/// The checks standing in for a CRD schema.
fn check_operator_kind(doc: &Value, docs: &[Value]) {
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    match kind(doc) {
        "PrometheusRule" => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("rules.yaml");
            std::fs::write(&file, serde_yaml::to_string(&doc["spec"]).unwrap()).unwrap();
            let promtool = support::find_program("promtool").expect("promtool is installed");
            let out = Command::new(promtool)
                .args(["check", "rules"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "PrometheusRule spec rejected:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let keys: Vec<&str> = mapping_keys(doc);
            assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"]);
        }
        "ServiceMonitor" => {
            let spec = &doc["spec"];
            let selector = spec["selector"]["matchLabels"].as_mapping().unwrap();
            let services: Vec<&Value> = docs
                .iter()
                .filter(|d| kind(d) == "Service")
                .filter(|s| {
                    selector
                        .iter()
                        .all(|(k, v)| s["metadata"]["labels"][k.as_str().unwrap()] == *v)
                })
                .collect();
            assert_eq!(
                services.len(),
                1,
                "ServiceMonitor must select exactly one Service"
            );
            let ports: Vec<&str> = services[0]["spec"]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for e in spec["endpoints"].as_sequence().unwrap() {
                let port = e["port"].as_str().unwrap();
                assert!(
                    ports.contains(&port),
                    "endpoint port {port} not in {ports:?}"
                );
                assert_eq!(e["path"], "/metrics");
            }
            for k in mapping_keys(spec) {
                assert!(
                    ["selector", "endpoints", "namespaceSelector", "jobLabel"].contains(&k),
                    "unexpected ServiceMonitor field {k}"
                );
            }
        }
        other => panic!("no check for {other}"),
    }
}

fn mapping_keys(v: &Value) -> Vec<&str> {
    v.as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect()
}

#[test]
fn committed_prometheusrule_is_what_flowprobe_slo_generates() {
    let out = Command::new(support::flowprobe_bin())
        .current_dir(root())
        .args([
            "slo",
            "--format",
            "prometheus-operator",
            "deploy/base/scenarios",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(deploy().join("base/prometheusrule.yaml")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "deploy/base/prometheusrule.yaml is stale: regenerate it with\n  flowprobe slo --format \
         prometheus-operator deploy/base/scenarios -o deploy/base/prometheusrule.yaml"
    );
    let rule: Value = serde_yaml::from_str(&committed).unwrap();
    let groups: Vec<&str> = rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(groups.contains(&"flowprobe-prober"), "{groups:?}");
    assert!(
        groups.iter().any(|g| g.starts_with("flowprobe-slo-")),
        "no SLO group: {groups:?}"
    );
}

#[test]
fn base_scenarios_are_the_examples_and_all_in_the_configmap() {
    let dir = deploy().join("base/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in &files {
        let deployed = std::fs::read_to_string(dir.join(f)).unwrap();
        let example = std::fs::read_to_string(root().join("scenarios").join(f))
            .unwrap_or_else(|_| panic!("deploy/base/scenarios/{f} has no twin in scenarios/"));
        assert!(
            deployed == example,
            "deploy/base/scenarios/{f} differs from scenarios/{f}: copy it again"
        );
    }
    let docs = render(&deploy().join("base"));
    let cm = docs
        .iter()
        .find(|d| {
            kind(d) == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("flowprobe-scenarios-"))
        })
        .expect("scenarios ConfigMap (with a content hash)");
    let keys: Vec<&str> = mapping_keys(&cm["data"]);
    assert_eq!(keys, files.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label
/// names or label values.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let no_strings = Regex::new(r#""[^"]*""#).unwrap().replace_all(expr, "\"\"");
    let no_ranges = Regex::new(r"\[[^\]]*\]")
        .unwrap()
        .replace_all(&no_strings, "");
    let no_groupings = Regex::new(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)")
        .unwrap()
        .replace_all(&no_ranges, "");
    let no_matchers = Regex::new(r"\{[^}]*\}")
        .unwrap()
        .replace_all(&no_groupings, "");
    let ident = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    const NOT_METRICS: &[&str] = &[
        "sum",
        "max",
        "min",
        "avg",
        "rate",
        "increase",
        "histogram_quantile",
        "time",
        "sort_desc",
        "count",
        "label_values",
        "and",
        "or",
        "unless",
        // Label names: the second argument of Grafana's label_values().
        "scenario",
        "location",
        "step",
        "vector",
    ];
    ident
        .find_iter(&no_matchers)
        .map(|m| m.as_str().to_string())
        .filter(|m| !NOT_METRICS.contains(&m.as_str()) && !m.starts_with("__"))
        .collect()
}

#[test]
fn dashboard_queries_only_metrics_the_prober_exports() {
    use flowprobe::serve::metrics as m;
    let text =
        std::fs::read_to_string(deploy().join("base/dashboards/flowprobe-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    let mut exprs: Vec<String> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");

    let exported = [
        m::RUNS_TOTAL,
        m::SCENARIO_SUCCESS,
        m::LAST_RUN_TIMESTAMP_SECONDS,
        m::LAST_SUCCESS_TIMESTAMP_SECONDS,
        m::STEP_FAILURES_TOTAL,
        m::STEP_RETRIES_TOTAL,
        m::STEP_LATENCY_SECONDS,
        m::CERTIFICATE_EXPIRY_TIMESTAMP_SECONDS,
        m::BUILD_INFO,
        m::RUN_FAILURES_TOTAL,
        m::RUNS_SKIPPED_TOTAL,
        m::CONFIG_INFO,
        m::CONFIG_RELOADS_TOTAL,
        m::CONFIG_LAST_RELOAD_SUCCESS,
        m::SCENARIO_INFO,
        // Prometheus' own series for each scrape target.
        "up",
    ];
    let histograms = [
        m::RUN_DURATION_SECONDS,
        m::STEP_DURATION_SECONDS,
        m::PHASE_DURATION_SECONDS,
    ];
    let mut known: BTreeSet<String> = exported.iter().map(|s| s.to_string()).collect();
    for h in histograms {
        // The native histogram's own series (protobuf scrapes).
        known.insert(h.to_string());
        for suffix in ["_bucket", "_count", "_sum"] {
            known.insert(format!("{h}{suffix}"));
        }
    }
    // Series the generated SLO rules record.
    let rule: Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy().join("base/prometheusrule.yaml")).unwrap(),
    )
    .unwrap();
    for g in rule["spec"]["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            if let Some(name) = r["record"].as_str() {
                known.insert(name.to_string());
            }
        }
    }

    let mut used = BTreeSet::new();
    for e in &exprs {
        for name in metric_names(e) {
            assert!(
                known.contains(&name),
                "dashboard queries `{name}`, which nothing exports: {e}"
            );
            used.insert(name);
        }
    }
    // The four views the dashboard exists for.
    for needed in [
        "flowprobe_runs_total",
        "flowprobe_step_duration_seconds_bucket",
        "flowprobe_step_failures_total",
        "scenario:flowprobe_runs_failure:ratio_rate1h",
    ] {
        assert!(used.contains(needed), "dashboard never queries {needed}");
    }
}

#[test]
fn metric_name_extraction_sees_through_promql() {
    let names = metric_names(
        "sum by (scenario, le) (rate(flowprobe_x_bucket{scenario=~\"a|b\",le=\"0.5\"}[5m])) \
         / on (scenario) (1 - scenario:y:objective{scenario=\"a\"}) and time() - z",
    );
    let expected: BTreeSet<String> = ["flowprobe_x_bucket", "scenario:y:objective", "z"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn the_prober_pods_are_hardened_and_probed() {
    let docs = render(&deploy().join("base"));
    let dep = find(&docs, "Deployment", "flowprobe");
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 9478);
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--listen=0.0.0.0:9478"), "{args:?}");
    let grace = args
        .iter()
        .find_map(|a| a.strip_prefix("--shutdown-grace="))
        .expect("--shutdown-grace set");
    let grace = flowprobe::units::parse_duration(grace).unwrap().as_secs();
    let cleanup = args
        .iter()
        .find_map(|a| a.strip_prefix("--cleanup-grace="))
        .expect("--cleanup-grace set");
    let cleanup = flowprobe::units::parse_duration(cleanup).unwrap().as_secs();
    // The longest shutdown: the grace, then the cancelled runs' clean-up, then 5 s for the
    // HTTP server to close.
    let longest = grace + cleanup + 5;
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        termination > longest,
        "termination grace {termination}s <= longest shutdown {longest}s"
    );
    // The scenarios come from the generated ConfigMap, mounted where serve reads them.
    let cm = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "scenarios")
        .unwrap();
    assert!(cm["configMap"]["name"]
        .as_str()
        .unwrap()
        .starts_with("flowprobe-scenarios-"));
    assert!(args.contains(&"/etc/flowprobe/scenarios"));
    let secret = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secrets")
        .unwrap();
    assert_eq!(secret["secret"]["secretName"], "flowprobe-secrets");
    for k in [
        "ServiceAccount",
        "Service",
        "NetworkPolicy",
        "PodDisruptionBudget",
    ] {
        find(&docs, k, "flowprobe");
    }
}

#[test]
fn the_smoke_test_is_a_postsync_hook_running_flowprobe_run() {
    let docs = render(&deploy().join("overlays/smoke-test"));
    let job = find(&docs, "Job", "flowprobe-smoke-test");
    assert_eq!(
        job["metadata"]["annotations"]["argocd.argoproj.io/hook"],
        "PostSync"
    );
    assert_eq!(job["spec"]["backoffLimit"], 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(pod["containers"][0]["args"][0], "run");
    // The Job reads the same (hash-named) ConfigMap as the prober.
    let dep = find(&docs, "Deployment", "flowprobe");
    let cm = |pod: &Value| {
        pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "scenarios")
            .unwrap()["configMap"]["name"]
            .clone()
    };
    assert_eq!(cm(pod), cm(&dep["spec"]["template"]["spec"]));
}

#[test]
fn multi_location_shards_every_scenario_once_per_location() {
    for location in ["eu-west", "us-east"] {
        let docs = render(&deploy().join("overlays/multi-location").join(location));
        assert!(
            !docs.iter().any(|d| kind(d) == "Deployment"),
            "the sharded StatefulSet replaces the Deployment"
        );
        let sts = find(&docs, "StatefulSet", "flowprobe");
        let replicas = sts["spec"]["replicas"].as_u64().unwrap();
        assert!(replicas > 1);
        let c = &sts["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> = c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.contains(&format!("--shard=$(SHARD_INDEX)/{replicas}").as_str()),
            "shard count must equal replicas: {args:?}"
        );
        assert!(args.contains(&"--label=location=$(LOCATION)"), "{args:?}");
        let env = c["env"].as_sequence().unwrap();
        let var = |name: &str| env.iter().find(|e| e["name"] == name).unwrap().clone();
        assert_eq!(var("LOCATION")["value"], location);
        assert_eq!(
            var("SHARD_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['apps.kubernetes.io/pod-index']"
        );
        // Every workload mounts the generated (hash-named) ConfigMap in its own namespace.
        let cm = sts["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "scenarios")
            .unwrap()["configMap"]["name"]
            .clone();
        assert!(
            cm.as_str().unwrap().starts_with("flowprobe-scenarios-"),
            "{cm:?}"
        );
        assert!(docs
            .iter()
            .all(|d| kind(d) == "Namespace" || d["metadata"]["namespace"] == "flowprobe"));
        // Scraped once: only the prober Service matches the ServiceMonitor (checked above);
        // the headless Service exists for stable pod names.
        find(&docs, "Service", "flowprobe-shards");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_and_non_root() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].contains(" AS build"));
    assert!(
        froms[1].contains("distroless"),
        "small final image: {}",
        froms[1]
    );
    let user = text
        .lines()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("USER set");
    assert!(!user.contains("root") || user.contains("nonroot"), "{user}");
    assert!(
        user.trim_start_matches("USER ").starts_with("65532"),
        "{user}"
    );
    assert!(text.contains("cargo build --release --locked --bin flowprobe"));
}

/// A plain HTTP/1.0 GET on 127.0.0.1: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Sample names (`name{...} value` lines) of a Prometheus exposition.
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn the_deployed_prober_exports_what_the_dashboard_and_rules_query() {
    // The base's Deployment args and scenarios, run for real against the local ingress stack:
    // only the mount path and the listen address are swapped for loopback ones.
    let ing = support::nginx::Ingress::start();
    let docs = render(&deploy().join("base"));
    let dep = find(&docs, "Deployment", "flowprobe");
    let port = support::free_port();
    let scenarios = deploy().join("base/scenarios");
    let mut args: Vec<String> = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| match a.as_str().unwrap() {
            "/etc/flowprobe/scenarios" => scenarios.display().to_string(),
            l if l.starts_with("--listen=") => format!("--listen=127.0.0.1:{port}"),
            other => other.to_string(),
        })
        .collect();
    for (k, v) in ing.vars() {
        if k != "username" {
            args.push(format!("--var={k}={v}"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(support::flowprobe_bin());
    cmd.args(&args);
    let mut serve =
        support::ChildGuard::spawn("serve", cmd, &dir.path().join("serve.log")).unwrap();
    support::wait_for_port(port, std::time::Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", serve.log_text()));
    assert_eq!(http_get(port, "/healthz").0, 200);

    // The first run comes within one interval (30s) plus jitter (5s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let metrics = loop {
        let (status, body) = http_get(port, "/metrics");
        assert_eq!(status, 200);
        // A run happened: one of the scenario's run counters left 0.
        if body.lines().any(|l| {
            l.starts_with("flowprobe_runs_total{") && l.contains("shop-slo") && !l.ends_with(" 0")
        }) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run within 60s:\n{}\n{body}",
            serve.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(http_get(port, "/readyz").0, 200);
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("flowprobe_runs_total{") && l.contains("outcome=\"failure\""))
        .unwrap();
    assert!(
        failed.ends_with(" 0"),
        "the example scenario failed locally: {failed}\n{}",
        serve.log_text()
    );

    let names = sample_names(&metrics);
    use flowprobe::serve::metrics as m;
    // Not in a first text scrape: counters created on their first increment, and native
    // histograms (their bare name), which only the protobuf exposition carries.
    let later = [
        m::STEP_FAILURES_TOTAL,
        m::STEP_RETRIES_TOTAL,
        m::RUN_FAILURES_TOTAL,
        m::RUNS_SKIPPED_TOTAL,
        m::STEP_DURATION_SECONDS,
        m::PHASE_DURATION_SECONDS,
    ];
    // Everything the dashboard queries that the prober (not a rule) provides.
    let text =
        std::fs::read_to_string(deploy().join("base/dashboards/flowprobe-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            for name in metric_names(t["expr"].as_str().unwrap()) {
                // `up` is Prometheus' own, not the prober's.
                if !name.contains(':') && name != "up" && !later.contains(&name.as_str()) {
                    assert!(
                        names.contains(&name),
                        "dashboard queries {name}; the scrape has {names:?}"
                    );
                }
            }
        }
    }
    // Every series the SLO rules select exists, the latency bucket with exactly their `le`.
    let rule: Value = serde_yaml::from_str(
        &std::fs::read_to_string(deploy().join("base/prometheusrule.yaml")).unwrap(),
    )
    .unwrap();
    let selector = Regex::new(r#"(flowprobe_[a-z_]+)\{([^}]*)\}"#).unwrap();
    let mut checked = 0;
    for g in rule["spec"]["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            for cap in selector.captures_iter(r["expr"].as_str().unwrap()) {
                let matchers: Vec<&str> = cap[2].split(',').collect();
                let found = metrics.lines().any(|l| {
                    l.starts_with(&format!("{}{{", &cap[1]))
                        && matchers.iter().all(|m| l.contains(m))
                });
                assert!(
                    found,
                    "no series for {}{{{}}} in the scrape",
                    &cap[1], &cap[2]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked}");
    assert!(
        metrics.contains("le=\"1.0\""),
        "the 1s SLO threshold is a bucket"
    );

    // Prometheus 3 stores `le` and `quantile` in float form (`le="1"` becomes `le="1.0"`), so
    // a selector works on 2 and 3 alike only when it uses that form, and the exposition does
    // too. Every such string the rules and the dashboard select is exposed verbatim, and each
    // one in either place is canonical: a whole number always has `.0` (or an exponent).
    let float_label = Regex::new(r#"\b(le|quantile)=\\?"([^"\\]*)\\?""#).unwrap();
    let canonical = |v: &str| {
        matches!(v, "+Inf" | "-Inf" | "NaN")
            || (v.parse::<f64>().is_ok() && (v.contains('.') || v.contains('e')))
    };
    let rules_text = std::fs::read_to_string(deploy().join("base/prometheusrule.yaml")).unwrap();
    let mut selected = 0;
    for source in [&rules_text, &text] {
        for cap in float_label.captures_iter(source) {
            let (label, value) = (&cap[1], &cap[2]);
            assert!(
                canonical(value),
                "selector {label}=\"{value}\" is not in Prometheus 3 form"
            );
            let exposed = format!("{label}=\"{value}\"");
            assert!(
                metrics.contains(&exposed),
                "{exposed} is selected but not exposed"
            );
            selected += 1;
        }
    }
    assert!(selected >= 4, "only {selected} le/quantile selectors found");
    let mut exposed = 0;
    for cap in float_label.captures_iter(&metrics) {
        assert!(
            canonical(&cap[2]),
            "exposed {}=\"{}\" is not in Prometheus 3 form",
            &cap[1],
            &cap[2]
        );
        exposed += 1;
    }
    assert!(exposed > 20, "{exposed}");

    // SIGTERM: it drains and exits well within the pod's termination grace.
    let started = std::time::Instant::now();
    serve.signal("TERM");
    let status = loop {
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed().as_secs() < 40,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}\n{}", serve.log_text());
}
