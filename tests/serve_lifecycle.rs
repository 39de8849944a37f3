//! `flowprobe serve` start and stop: SIGTERM during a run lets it finish — its `finally` step
//! really reaches the backend — and exits 0 without starting new runs; the shutdown grace
//! bounds the wait; invalid scenarios or flags stop it at start-up with exit code 2; and
//! `--shard` replicas split the scenarios disjointly and completely.

mod support;

use std::collections::BTreeSet;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use support::backend::Backend;
use support::flowprobe_bin;
use support::prometheus::{http_get, scenario_dir, wait_until, Prober};

const SLOW_WITH_FINALLY: &str = r#"
name: slow
schedule: {interval: 1s, timeout: 20s}
steps:
  - name: slow
    http: {url: "${{ vars.api }}/delay/2500"}
finally:
  - name: cleanup
    http: {url: "${{ vars.api }}/echo"}
"#;

fn wait_exit(probe: &mut Prober, timeout: Duration) -> ExitStatus {
    wait_until(timeout, "flowprobe serve to exit", || {
        probe.guard.child.try_wait().ok().flatten()
    })
}

#[test]
fn sigterm_lets_the_run_in_flight_finish_with_its_finally_and_exits_0() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[("slow.yaml", SLOW_WITH_FINALLY)]);
    let var = format!("api={}", api.url());
    let mut probe = Prober::start(
        &[&scenarios],
        &["--var", &var, "--shutdown-grace", "20s"],
        &[],
        &dir.path().join("serve.log"),
    );
    assert_eq!(http_get(probe.port, "/readyz", None).unwrap().0, 200);
    wait_until(Duration::from_secs(10), "the slow step to start", || {
        (api.hits("/delay/2500") == 1).then_some(())
    });
    assert_eq!(api.hits("/echo"), 0, "finally ran before the step ended");
    let t = Instant::now();
    probe.guard.signal("TERM");
    // Draining: no longer ready, still answering.
    wait_until(Duration::from_secs(2), "readyz to turn 503", || {
        let (code, _, _) = http_get(probe.port, "/readyz", None).ok()?;
        (code == 503).then_some(())
    });
    let status = wait_exit(&mut probe, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", probe.log_text());
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "exited before the run finished"
    );
    assert_eq!(
        api.hits("/echo"),
        1,
        "the finally step did not run:\n{}",
        probe.log_text()
    );
    assert_eq!(
        api.hits("/delay/2500"),
        1,
        "a new run started after SIGTERM"
    );
    let log = probe.log_text();
    assert!(
        log.contains("SIGTERM") && log.contains("all runs finished"),
        "{log}"
    );
}

#[test]
fn the_shutdown_grace_bounds_the_wait() {
    let api = Backend::start("api");
    let slow = SLOW_WITH_FINALLY.replace("/delay/2500", "/delay/8000");
    let (dir, scenarios) = scenario_dir(&[("slow.yaml", &slow)]);
    let var = format!("api={}", api.url());
    let mut probe = Prober::start(
        &[&scenarios],
        &["--var", &var, "--shutdown-grace", "1s"],
        &[],
        &dir.path().join("serve.log"),
    );
    wait_until(Duration::from_secs(10), "the slow step to start", || {
        (api.hits("/delay/8000") == 1).then_some(())
    });
    let t = Instant::now();
    probe.guard.signal("INT");
    let status = wait_exit(&mut probe, Duration::from_secs(6));
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        probe.log_text().contains("after the shutdown grace"),
        "{}",
        probe.log_text()
    );
}

#[test]
fn invalid_scenarios_and_flags_stop_it_at_start_up() {
    let (dir, scenarios) = scenario_dir(&[(
        "bad.yaml",
        "name: bad\nsteps:\n  - name: x\n    http: {url: \"${{ vars.nope }}\"}\n",
    )]);
    let run = |args: &[&str]| {
        std::process::Command::new(flowprobe_bin())
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .output()
            .unwrap()
    };
    let out = run(&[scenarios.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:4") && err.contains("nope"), "{err}");

    let (_ok_dir, ok) = scenario_dir(&[(
        "ok.yaml",
        "name: ok\nlabels: {location: x}\nsteps:\n  - name: x\n    http: {url: \"http://127.0.0.1:9/\"}\n",
    )]);
    let ok = ok.to_str().unwrap();
    for (args, needle) in [
        (vec![ok, "--label", "scenario=x"], "set by flowprobe"),
        (vec![ok, "--label", "location=y"], "also a --label"),
        (vec![ok, "--shard", "3/3"], "INDEX/COUNT"),
        (vec![ok, "--buckets", "fast"], "bucket"),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    drop(dir);
}

#[test]
fn shards_split_the_scenarios_disjointly_and_completely() {
    let files: Vec<(String, String)> = (0..24)
        .map(|i| {
            (
                format!("s{i}.yaml"),
                format!("name: probe-{i}\nschedule: {{interval: 1h}}\nsteps:\n  - name: x\n    http: {{url: \"http://127.0.0.1:9/\"}}\n"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (dir, scenarios) = scenario_dir(&refs);
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for index in 0..3 {
        let shard = format!("{index}/3");
        let probe = Prober::start(
            &[&scenarios],
            &["--shard", &shard],
            &[],
            &dir.path().join(format!("serve-{index}.log")),
        );
        let status = probe.status();
        assert_eq!(status["shard"], shard.as_str());
        let names = probe.scenario_names();
        assert!(
            !names.is_empty() && names.len() < 24,
            "shard {shard}: {names:?}"
        );
        // Only this shard's scenarios have series.
        let text = probe.scrape();
        let with_series = support::prometheus::find(&text, "flowprobe_runs_total", &[])
            .iter()
            .filter_map(|s| s.label("scenario").map(String::from))
            .collect::<BTreeSet<_>>();
        assert_eq!(with_series, names.iter().cloned().collect::<BTreeSet<_>>());
        total += names.len();
        seen.extend(names);
    }
    assert_eq!(total, 24, "a scenario ran in two shards");
    assert_eq!(seen.len(), 24, "a scenario ran in no shard");
}

#[test]
fn serve_flags_come_from_flowprobe_environment_variables() {
    let api = Backend::start("api");
    let (dir, scenarios) = scenario_dir(&[(
        "quick.yaml",
        "name: quick\nschedule: {interval: 1s}\nsteps:\n  - name: home\n    http: {url: \"${{ vars.api }}/health\"}\n",
    )]);
    let port = support::free_port();
    let mut cmd = std::process::Command::new(flowprobe_bin());
    cmd.arg("serve")
        .arg(&scenarios)
        .args(["--var", &format!("api={}", api.url())])
        .env_remove("RUST_LOG")
        .env("FLOWPROBE_LISTEN", format!("127.0.0.1:{port}"))
        .env("FLOWPROBE_LABELS", "location=env-test,zone=z1")
        .env("FLOWPROBE_LOG_FORMAT", "json")
        .env("FLOWPROBE_SHUTDOWN_GRACE", "3s");
    let mut guard =
        support::ChildGuard::spawn("flowprobe serve", cmd, &dir.path().join("serve.log")).unwrap();
    support::wait_for_port(port, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", guard.log_text()));
    let metrics = wait_until(Duration::from_secs(10), "a run to be counted", || {
        let (_, _, body) = http_get(port, "/metrics", None).ok()?;
        let labels = [
            ("scenario", "quick"),
            ("outcome", "success"),
            ("location", "env-test"),
            ("zone", "z1"),
        ];
        let runs = support::prometheus::value(&body, "flowprobe_runs_total", &labels)?;
        (runs >= 1.0).then_some(body)
    });
    assert!(metrics.contains("zone=\"z1\""), "{metrics}");
    // JSON logs: every stderr line parses.
    let log = guard.log_text();
    assert!(
        log.lines()
            .filter(|l| !l.is_empty())
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
    guard.signal("TERM");
    let status = wait_until(Duration::from_secs(10), "serve to exit", || {
        guard.child.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(0));
}
