//! `flowprobe serve` reloads: a valid change is applied (new series at 0, removed series gone,
//! counters of unchanged scenarios kept), an invalid one is rejected, logged and counted once
//! while the old set keeps running, SIGHUP reloads, and a Kubernetes ConfigMap update (the
//! atomic `..data` symlink swap) is picked up.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use support::backend::Backend;
use support::prometheus::{reloads, scenario_dir, value, wait_until, Prober};

const WAIT: Duration = Duration::from_secs(30);

fn health(name: &str, extra_step: Option<&str>) -> String {
    let mut s = format!(
        "name: {name}\nschedule: {{interval: 1s}}\nsteps:\n  - name: health\n    http: {{url: \"${{{{ vars.api }}}}/health\"}}\n"
    );
    if let Some(step) = extra_step {
        s.push_str(&format!(
            "  - name: {step}\n    http: {{url: \"${{{{ vars.api }}}}/text\"}}\n"
        ));
    }
    s
}

/// Writes a file atomically (a hidden temp file renamed over it), as editors and kubelet do,
/// so the poller never sees half a file.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn runs(text: &str, scenario: &str) -> Option<f64> {
    value(
        text,
        "flowprobe_runs_total",
        &[("scenario", scenario), ("outcome", "success")],
    )
}

/// The `hash` of the one `flowprobe_config_info` series: 12 hex digits.
fn config_hash(text: &str) -> String {
    let found = support::prometheus::find(text, "flowprobe_config_info", &[]);
    assert_eq!(found.len(), 1, "one config_info series: {found:?}");
    assert_eq!(found[0].value, 1.0);
    let hash = found[0].label("hash").unwrap_or("").to_string();
    assert!(
        hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    hash
}

#[test]
fn valid_changes_apply_and_invalid_ones_keep_the_old_set() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[("a.yaml", &health("alpha", None))]);
    let var = format!("api={}", api.url());
    let probe = Prober::start(
        &[&scenarios],
        &["--var", &var, "--watch-interval", "200ms", "-vv"],
        &[],
        &dir.path().join("serve.log"),
    );
    let before = wait_until(WAIT, "alpha to run twice", || {
        runs(&probe.scrape(), "alpha").filter(|n| *n >= 2.0)
    });
    let first = probe.scrape();
    let first_hash = config_hash(&first);
    let first_loaded = value(
        &first,
        "flowprobe_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .expect("load time exported");
    let info =
        support::prometheus::find(&first, "flowprobe_scenario_info", &[("scenario", "alpha")]);
    assert_eq!(info.len(), 1, "{first}");
    assert_eq!(info[0].label("interval"), Some("1s"));
    assert!(
        info[0].label("file").is_some_and(|f| f.ends_with("a.yaml")),
        "{info:?}"
    );
    let build = support::prometheus::find(&first, "flowprobe_build_info", &[]);
    assert_eq!(build.len(), 1, "{first}");
    assert_eq!(build[0].label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert!(
        build[0].label("revision").is_some_and(|r| !r.is_empty()),
        "{build:?}"
    );

    // A valid change: a new scenario appears with its series at 0.
    write_atomic(&scenarios.join("b.yaml"), &health("beta", Some("text")));
    let t = wait_until(WAIT, "beta to be loaded", || {
        let t = probe.scrape();
        value(
            &t,
            "flowprobe_step_duration_seconds_count",
            &[("scenario", "beta"), ("step", "text")],
        )
        .map(|_| t)
    });
    assert_eq!(reloads(&t, "success"), 1.0);
    assert_eq!(
        value(&t, "flowprobe_config_last_reload_success", &[]),
        Some(1.0)
    );
    // The GitOps audit trail: the set's hash changed with the files, and the load time moved.
    let second_hash = config_hash(&t);
    assert_ne!(second_hash, first_hash);
    assert!(
        value(
            &t,
            "flowprobe_config_last_reload_success_timestamp_seconds",
            &[]
        )
        .unwrap()
            > first_loaded
    );
    assert!(
        runs(&t, "alpha").unwrap() >= before,
        "alpha's counter was reset"
    );

    // An invalid change: rejected, logged, counted; both scenarios keep running.
    write_atomic(
        &scenarios.join("c.yaml"),
        "name: gamma\nsteps:\n  - name: x\n    htp: {url: \"http://127.0.0.1:9/\"}\n",
    );
    let t = wait_until(WAIT, "the invalid reload to be counted", || {
        let t = probe.scrape();
        (reloads(&t, "failure") >= 1.0).then_some(t)
    });
    assert_eq!(
        value(&t, "flowprobe_config_last_reload_success", &[]),
        Some(0.0)
    );
    assert!(!t.contains("scenario=\"gamma\""));
    assert_eq!(
        config_hash(&t),
        second_hash,
        "a rejected set is not the running one"
    );
    let status = probe.status();
    assert_eq!(status["last_reload"]["success"], false);
    let errors = status["last_reload"]["errors"].to_string();
    assert!(
        errors.contains("c.yaml") && errors.contains("htp"),
        "{errors}"
    );
    assert_eq!(probe.scenario_names(), vec!["alpha", "beta"]);
    let alpha = runs(&t, "alpha").unwrap();
    wait_until(WAIT, "alpha to keep running", || {
        (runs(&probe.scrape(), "alpha")? > alpha + 1.0).then_some(())
    });
    let log = probe.log_text();
    assert!(
        log.contains("reload rejected") && log.contains("c.yaml"),
        "{log}"
    );

    // SIGHUP reloads; the files are unchanged, so it is the same rejection, not a new one.
    probe.guard.signal("HUP");
    wait_until(WAIT, "the SIGHUP reload", || {
        probe.log_text().contains("reload skipped").then_some(())
    });
    assert_eq!(reloads(&probe.scrape(), "failure"), 1.0);

    // Fixed, and beta removed: gamma comes, beta's series go, alpha's counter goes on.
    let alpha = runs(&probe.scrape(), "alpha").unwrap();
    std::fs::remove_file(scenarios.join("b.yaml")).unwrap();
    write_atomic(&scenarios.join("c.yaml"), &health("gamma", None));
    let t = wait_until(WAIT, "gamma to be loaded", || {
        let t = probe.scrape();
        runs(&t, "gamma").map(|_| t)
    });
    assert!(!t.contains("scenario=\"beta\""), "{t}");
    assert!(runs(&t, "alpha").unwrap() >= alpha);
    assert_eq!(reloads(&t, "success"), 2.0);
    assert_eq!(
        value(&t, "flowprobe_config_last_reload_success", &[]),
        Some(1.0)
    );
    assert_eq!(probe.scenario_names(), vec!["alpha", "gamma"]);
}

#[test]
fn a_configmap_symlink_swap_is_picked_up() {
    let api = Backend::start("api");
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    // What kubelet makes of a ConfigMap volume: a timestamped directory, `..data` pointing
    // at it, and one symlink per key through `..data`.
    let v1 = mount.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(v1.join("a.yaml"), health("cm-a", None)).unwrap();
    symlink("..2026_01_01_00_00_00.000000001", mount.join("..data")).unwrap();
    symlink("..data/a.yaml", mount.join("a.yaml")).unwrap();

    let var = format!("api={}", api.url());
    let probe = Prober::start(
        &[&mount],
        &["--var", &var, "--watch-interval", "200ms"],
        &[],
        &dir.path().join("serve.log"),
    );
    let before = wait_until(WAIT, "cm-a to run twice", || {
        runs(&probe.scrape(), "cm-a").filter(|n| *n >= 2.0)
    });

    // The update: a new timestamped directory, `..data` swapped atomically by rename, new
    // keys linked, the old directory removed.
    let v2 = mount.join("..2026_01_01_00_05_00.000000002");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("a.yaml"), health("cm-a", Some("second"))).unwrap();
    std::fs::write(v2.join("b.yaml"), health("cm-b", None)).unwrap();
    symlink("..2026_01_01_00_05_00.000000002", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    symlink("..data/b.yaml", mount.join("b.yaml")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();

    let t = wait_until(WAIT, "the new ConfigMap version", || {
        let t = probe.scrape();
        let second = value(
            &t,
            "flowprobe_step_duration_seconds_count",
            &[("scenario", "cm-a"), ("step", "second")],
        );
        (second.is_some() && runs(&t, "cm-b").is_some()).then_some(t)
    });
    assert!(
        runs(&t, "cm-a").unwrap() >= before,
        "cm-a's counter was reset"
    );
    assert_eq!(reloads(&t, "failure"), 0.0);
    assert!(reloads(&t, "success") >= 1.0);
    // The new step runs.
    wait_until(WAIT, "the new step to run", || {
        let n = value(
            &probe.scrape(),
            "flowprobe_step_duration_seconds_count",
            &[("scenario", "cm-a"), ("step", "second")],
        )?;
        (n >= 1.0).then_some(())
    });
}
