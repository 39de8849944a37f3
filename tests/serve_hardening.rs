//! `flowprobe serve`'s endpoints hold up against clients that hold on: a connection that sends
//! nothing or half a request is closed after `--header-read-timeout`, connections beyond
//! `--max-connections` are closed at once and counted while `/metrics` answers again as soon as
//! the idle ones go, shutdown still closes idle connections, and one rejected scenario edit is
//! one failed reload however often it is reloaded unchanged.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use support::backend::Backend;
use support::prometheus::{reloads, scenario_dir, value, wait_until, Prober};

const WAIT: Duration = Duration::from_secs(30);

/// A scenario that runs every second against nothing (it fails; these tests are about the
/// endpoints, not the runs).
const IDLE_SCENARIO: &str =
    "name: idle\nschedule: {interval: 1s}\nsteps:\n  - name: x\n    http: {url: \"http://127.0.0.1:9/\"}\n";

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to flowprobe serve");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    s
}

/// How the server ended a connection we keep reading: Some(time since `since`) once it closed
/// it (EOF or reset), None while it is still open `within` after it.
fn closed_since(s: &mut TcpStream, since: Instant, within: Duration) -> Option<Duration> {
    let start = since;
    let mut buf = [0u8; 1024];
    while start.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn start(dir: &Path, scenarios: &Path, args: &[&str], env: &[(&str, &str)]) -> Prober {
    Prober::start(&[scenarios], args, env, &dir.join("serve.log"))
}

#[test]
fn silent_and_half_sent_requests_are_closed_after_the_header_read_timeout() {
    let (dir, scenarios) = scenario_dir(&[("idle.yaml", IDLE_SCENARIO)]);
    let probe = start(
        dir.path(),
        &scenarios,
        &["--header-read-timeout", "700ms"],
        &[],
    );

    let opened = Instant::now();
    let mut silent = connect(probe.port);
    let mut partial = connect(probe.port);
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("send half a request");
    let silent_after = closed_since(&mut silent, opened, Duration::from_secs(5))
        .expect("a silent connection is closed");
    let partial_after = closed_since(&mut partial, opened, Duration::from_secs(5))
        .expect("a connection with half a request is closed");
    for (what, after) in [("silent", silent_after), ("partial", partial_after)] {
        // Not at once (the timeout applies), and not much later than it.
        assert!(
            after >= Duration::from_millis(400) && after < Duration::from_secs(3),
            "{what} connection closed after {after:?}"
        );
    }

    // A client that sends its request in time is served.
    let text = probe.scrape();
    assert!(
        text.contains("flowprobe_http_connections_refused_total 0"),
        "{text}"
    );
    // A keep-alive client gets its answer, then idles and is closed too.
    let mut keep = connect(probe.port);
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("send a request");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match keep.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if got.windows(3).any(|w| w == b"ok\n") {
                    break false;
                }
            }
            Err(e) => panic!("keep-alive request: {e}"),
        }
    };
    assert!(!closed, "answered and left open for the next request");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        closed_since(&mut keep, Instant::now(), Duration::from_secs(5)).is_some(),
        "an idle keep-alive connection is closed after the timeout"
    );
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once_and_counted() {
    let (dir, scenarios) = scenario_dir(&[("idle.yaml", IDLE_SCENARIO)]);
    // Set through the environment, as in a Kubernetes Deployment; a long header timeout, so
    // only the cap closes anything here.
    let probe = start(
        dir.path(),
        &scenarios,
        &[],
        &[
            ("FLOWPROBE_MAX_CONNECTIONS", "4"),
            ("FLOWPROBE_HEADER_READ_TIMEOUT", "60s"),
        ],
    );
    // Wait until nothing is left of the harness's readiness probe.
    wait_until(WAIT, "one open connection (the scrape itself)", || {
        let t = probe.scrape();
        (value(&t, "flowprobe_http_connections_open", &[]) == Some(1.0)).then_some(())
    });

    // The scrape's own connection is released just after its answer: give it a moment.
    std::thread::sleep(Duration::from_millis(300));

    // Cap + 3 connections that send nothing: within a second (the header timeout is a minute)
    // 3 are closed, the cap's worth stay open.
    let mut all: Vec<TcpStream> = (0..7).map(|_| connect(probe.port)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let closed: Vec<bool> = all
        .iter_mut()
        .map(|s| closed_since(s, Instant::now(), Duration::from_millis(100)).is_some())
        .collect();
    assert_eq!(closed, [false, false, false, false, true, true, true]);
    let idle: Vec<TcpStream> = all.drain(..4).collect();
    // While the cap is taken, a scrape is refused as well.
    assert!(support::prometheus::http_get(probe.port, "/metrics", None).is_err());

    drop(idle);
    let text = wait_until(
        WAIT,
        "/metrics to answer once the idle connections go",
        || {
            support::prometheus::http_get(probe.port, "/metrics", None)
                .ok()
                .filter(|(code, _, _)| *code == 200)
                .map(|(_, _, body)| body)
        },
    );
    let refused = value(&text, "flowprobe_http_connections_refused_total", &[])
        .expect("the refused-connections counter");
    assert!(
        (4.0..=10.0).contains(&refused),
        "3 extra connections and at least one refused scrape, counted {refused}"
    );
    support::prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn shutdown_closes_idle_connections_and_exits() {
    let (dir, scenarios) = scenario_dir(&[("idle.yaml", IDLE_SCENARIO)]);
    let mut probe = start(
        dir.path(),
        &scenarios,
        &["--header-read-timeout", "60s"],
        &[],
    );
    let mut idle = connect(probe.port);
    probe.scrape();
    let stopped = Instant::now();
    probe.guard.signal("TERM");
    let status = wait_until(WAIT, "flowprobe serve to exit", || {
        probe.guard.child.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status}: {}", probe.log_text());
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "an idle connection held shutdown for {:?}",
        stopped.elapsed()
    );
    assert!(closed_since(&mut idle, Instant::now(), Duration::from_secs(1)).is_some());
    let log = probe.log_text();
    assert!(!log.contains("did not stop"), "{log}");
}

/// Writes a file atomically (temp file renamed over it), as editors and kubelet do.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over the file");
}

#[test]
fn one_rejected_edit_counts_once_however_often_it_is_reloaded() {
    let api = Backend::start("api");
    let health = "name: alpha\nschedule: {interval: 1s}\nsteps:\n  - name: health\n    http: {url: \"${{ vars.api }}/health\"}\n";
    let (dir, scenarios) = scenario_dir(&[("a.yaml", health)]);
    let var = format!("api={}", api.url());
    let probe = start(
        dir.path(),
        &scenarios,
        &["--var", &var, "--watch-interval", "200ms", "-vv"],
        &[],
    );
    let skipped_lines = |p: &Prober| p.log_text().matches("reload skipped").count();

    let broken = "name: gamma\nsteps:\n  - name: x\n    htp: {url: \"http://127.0.0.1:9/\"}\n";
    write_atomic(&scenarios.join("c.yaml"), broken);
    wait_until(WAIT, "the rejected edit to be counted", || {
        (reloads(&probe.scrape(), "failure") == 1.0).then_some(())
    });
    let rejected_at = probe.status()["last_reload"]["at"].clone();

    // SIGHUP with nothing changed: not a second failure.
    probe.guard.signal("HUP");
    wait_until(WAIT, "the SIGHUP reload to be skipped", || {
        (skipped_lines(&probe) >= 1).then_some(())
    });
    // The same content written again (a new mtime, the poller reloads): not one either.
    write_atomic(&scenarios.join("c.yaml"), broken);
    wait_until(WAIT, "the rewrite to be skipped", || {
        (skipped_lines(&probe) >= 2).then_some(())
    });
    let t = probe.scrape();
    assert_eq!(reloads(&t, "failure"), 1.0, "{}", probe.log_text());
    assert_eq!(reloads(&t, "success"), 0.0);
    assert_eq!(probe.status()["last_reload"]["at"], rejected_at);
    assert_eq!(
        probe.log_text().matches("reload rejected").count(),
        1,
        "the rejection is logged as an error once"
    );

    // A different broken edit is a new rejection.
    write_atomic(
        &scenarios.join("c.yaml"),
        "name: gamma\nsteps:\n  - name: y\n    htp: {url: \"http://127.0.0.1:9/\"}\n",
    );
    wait_until(WAIT, "the second rejected edit to be counted", || {
        (reloads(&probe.scrape(), "failure") == 2.0).then_some(())
    });
    // Fixed: applied. Broken again the first way: counted again (it is a new edit).
    write_atomic(&scenarios.join("c.yaml"), &health.replace("alpha", "gamma"));
    wait_until(WAIT, "the fix to be applied", || {
        (reloads(&probe.scrape(), "success") == 1.0).then_some(())
    });
    write_atomic(&scenarios.join("c.yaml"), broken);
    wait_until(
        WAIT,
        "the old broken edit, made again, to be counted",
        || (reloads(&probe.scrape(), "failure") == 3.0).then_some(()),
    );
    assert_eq!(probe.scenario_names(), vec!["alpha", "gamma"]);
}

#[test]
fn limits_of_zero_are_refused_at_start_up() {
    let (_dir, scenarios) = scenario_dir(&[("idle.yaml", IDLE_SCENARIO)]);
    for (flag, value) in [("--max-connections", "0"), ("--header-read-timeout", "0s")] {
        let out = std::process::Command::new(support::flowprobe_bin())
            .arg("serve")
            .arg(&scenarios)
            .args(["--listen", "127.0.0.1:0", flag, value])
            .output()
            .expect("run flowprobe serve");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }
}
