//! Serve-mode benchmarks (figures printed, nothing asserted; not part of `cargo test`):
//!
//! - `scale`: 10,000 one-step HTTP scenarios at a 10 s interval in this one process (the
//!   scheduler, runner, metrics and HTTP server of `flowprobe serve`) against a local nginx:
//!   RSS, CPU, scheduling lag p50/p99 (goal: RSS ≤ 150 MiB, lag p99 ≤ 20 ms).
//! - `cost`: CPU-µs per HTTP probe with a new connection each against nginx `return 200` on
//!   loopback, side by side in one run, over HTTP and then HTTPS (a TLS handshake each, a
//!   throwaway CA, no session resumption): `flowprobe serve` with 200 one-step scenarios at 1 s;
//!   `wrk`'s own CPU per request with `Connection: close` (its children's CPU from the shell's
//!   `times`, over its request count); Prometheus blackbox_exporter driven through `/probe` at
//!   the same 200 probes/s. flowprobe and blackbox_exporter are read from /proc/PID/stat.
//!   Goals: flowprobe ≤ 2× wrk and ≤ 0.2× blackbox_exporter.
//! - `fidelity`: a target that answers exactly 50 ms after the request; the p50 and p99 that
//!   `flowprobe_step_latency_seconds` (`--latency-summary`) reports against 50 ms (goal: p99
//!   error ≤ 2 ms).
//!
//! `cargo bench --bench serve` runs all three (about four minutes); `cargo bench --bench
//! serve -- fidelity` runs one.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowprobe::scenario::{load_paths, LoadOptions};
use flowprobe::serve::http::App;
use flowprobe::serve::metrics::{Format, Metrics};
use flowprobe::serve::schedule::{Event, EventFn, Scheduler};
use hdrhistogram::Histogram;
use support::prometheus::{find, Prober};
use support::{find_program, free_port, wait_for_port, ChildGuard};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets as tests: nothing to do there.
        println!("serve benchmarks run with `cargo bench --bench serve`");
        return;
    }
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let run = |name: &str| chosen.is_empty() || chosen.contains(&name);
    if run("fidelity") {
        fidelity();
    }
    if run("cost") {
        cost();
    }
    if run("scale") {
        scale();
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15: indexes 11 and 12 after the state.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A passing run of `sc` in which every step took `d` with `phases`.
fn passing_run(
    sc: &flowprobe::scenario::LoadedScenario,
    d: Duration,
    phases: Vec<flowprobe::outcome::Phase>,
) -> flowprobe::outcome::ScenarioOutcome {
    use flowprobe::outcome::{ScenarioOutcome, StepOutcome, StepStatus};
    let steps = sc
        .steps
        .iter()
        .map(|st| StepOutcome {
            name: st.name.clone(),
            kind: st.kind.name(),
            status: StepStatus::Passed,
            cleanup: false,
            reason: None,
            message: None,
            duration: d,
            attempts: 1,
            phases: phases.clone(),
            assertions: Vec::new(),
            certificate_not_after: None,
            tls: None,
            connection: None,
            location: String::new(),
            span_id: None,
            started_at: None,
            http_status: None,
            attempt_spans: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    ScenarioOutcome {
        scenario: sc.name().to_string(),
        file: String::new(),
        run_id: String::new(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "00f067aa0ba902b7".into(),
        iteration: 1,
        started_at: std::time::SystemTime::now(),
        duration: d,
        success: true,
        reason: None,
        timed_out: false,
        message: None,
        cancelled: false,
        cleanup_errors: Vec::new(),
        labels: Default::default(),
        steps,
    }
}

/// Records [`flowprobe::serve::history::RETAINED_RUNS`] passing runs of every scenario, as a
/// long-running serve has: the /status history at its bound.
fn fill_history(app: &App, set: &[flowprobe::scenario::LoadedScenario]) {
    for sc in set {
        for i in 0..flowprobe::serve::history::RETAINED_RUNS {
            let mut out = passing_run(sc, Duration::from_millis(3), Vec::new());
            out.run_id = format!("{i}");
            app.finished(&Arc::new(out));
        }
    }
}

/// (VmRSS, VmHWM) in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// targets

/// nginx answering `200 ok` from memory on a free port (and, with a certificate, over TLS on
/// another): one worker, no access log.
struct StaticNginx {
    port: u16,
    tls_port: u16,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl StaticNginx {
    fn start() -> StaticNginx {
        StaticNginx::start_with_tls(None)
    }

    fn start_with_tls(cert: Option<&support::tls::CertFiles>) -> StaticNginx {
        let nginx = find_program("nginx").expect("nginx is installed (scripts/setup.sh)");
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path();
        std::fs::create_dir_all(p.join("logs")).expect("logs dir");
        let port = free_port();
        let tls_port = free_port();
        let tls = cert
            .map(|c| {
                format!(
                    "  server {{ listen 127.0.0.1:{tls_port} ssl backlog=4096; ssl_certificate {}; \
                     ssl_certificate_key {}; ssl_session_cache off; ssl_session_tickets off; \
                     location / {{ return 200 \"ok\\n\"; }} }}\n",
                    c.cert.display(),
                    c.key.display()
                )
            })
            .unwrap_or_default();
        let conf = format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/t1; proxy_temp_path {p}/t2;\n  \
             fastcgi_temp_path {p}/t3; uwsgi_temp_path {p}/t4; scgi_temp_path {p}/t5;\n  \
             server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ return 200 \"ok\\n\"; }} }}\n{tls}}}\n",
            p = p.display()
        );
        std::fs::write(p.join("nginx.conf"), conf).expect("nginx.conf");
        let mut cmd = Command::new(nginx);
        cmd.arg("-c")
            .arg(p.join("nginx.conf"))
            .arg("-p")
            .arg(p)
            .args(["-e", "stderr", "-g", "daemon off;"]);
        let guard = ChildGuard::spawn("nginx", cmd, &p.join("logs/stderr.log")).expect("nginx");
        wait_for_port(port, Duration::from_secs(5)).expect("nginx listens");
        if cert.is_some() {
            wait_for_port(tls_port, Duration::from_secs(5)).expect("nginx listens on TLS");
        }
        StaticNginx {
            port,
            tls_port,
            guard,
            _dir: dir,
        }
    }

    /// CPU of the master and its worker(s).
    fn cpu_seconds(&self) -> f64 {
        let master = self.guard.pid();
        let mut total = cpu_seconds(master);
        if let Ok(children) =
            std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        {
            for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
                total += cpu_seconds(pid);
            }
        }
        total
    }
}

/// A target that answers exactly `delay` after it has read a request, timed with a thread
/// sleep (tens of µs accurate), one thread per connection. Returns its port and the delays it
/// actually applied.
fn precise_target(delay: Duration) -> (u16, Arc<Mutex<Vec<Duration>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let applied = Arc::new(Mutex::new(Vec::new()));
    let log = applied.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || serve_delayed(conn, delay, &log));
        }
    });
    (port, applied)
}

fn serve_delayed(mut conn: TcpStream, delay: Duration, log: &Mutex<Vec<Duration>>) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let read_at = Instant::now();
    let until = read_at + delay;
    // Sleep most of it, then spin: a loaded machine wakes sleepers late.
    let spin = Duration::from_millis(2);
    if delay > spin {
        std::thread::sleep(delay - spin);
    }
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    let _ = conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nok\n",
    );
    let answered = read_at.elapsed();
    if let Ok(mut l) = log.lock() {
        l.push(answered);
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

fn write_scenarios(dir: &Path, n: usize, interval: &str, url: &str) -> PathBuf {
    let path = dir.join("scenarios");
    std::fs::create_dir_all(&path).expect("scenario dir");
    for i in 0..n {
        std::fs::write(
            path.join(format!("s{i:05}.yaml")),
            format!(
                "name: probe-{i:05}\nschedule: {{interval: {interval}}}\nsteps:\n  - name: get\n    http: {{url: \"{url}\"}}\n    assert: [\"status == 200\"]\n"
            ),
        )
        .expect("write scenario");
    }
    path
}

fn ms(d: u64) -> f64 {
    d as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// fidelity

fn fidelity() {
    println!("\n== fidelity: a target answering after exactly 50 ms ==");
    let (port, applied) = precise_target(Duration::from_millis(50));
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://127.0.0.1:{port}/slow");
    let scenarios = write_scenarios(dir.path(), 5, "100ms", &url);
    let probe = Prober::start(
        &[&scenarios],
        &["--latency-summary"],
        &[],
        &dir.path().join("serve.log"),
    );
    let window = Duration::from_secs(40);
    std::thread::sleep(window);
    let text = probe.scrape();
    let truth: Vec<Duration> = applied.lock().map(|v| v.clone()).unwrap_or_default();
    let mut server = Histogram::<u64>::new(3).expect("histogram");
    for d in &truth {
        let _ = server.record(d.as_micros() as u64);
    }
    println!(
        "target: {} requests, answered after p50 {:.3} ms, p99 {:.3} ms (server-side truth)",
        truth.len(),
        ms(server.value_at_quantile(0.5)),
        ms(server.value_at_quantile(0.99))
    );
    let mut worst: f64 = 0.0;
    for s in find(
        &text,
        "flowprobe_step_latency_seconds",
        &[("quantile", "0.5")],
    ) {
        let sc = s.label("scenario").unwrap_or("").to_string();
        let q = |quantile: &str| {
            find(
                &text,
                "flowprobe_step_latency_seconds",
                &[("scenario", &sc), ("quantile", quantile)],
            )
            .first()
            .map(|s| s.value * 1000.0)
            .unwrap_or(f64::NAN)
        };
        let count = find(
            &text,
            "flowprobe_step_latency_seconds_count",
            &[("scenario", &sc)],
        )
        .first()
        .map(|s| s.value)
        .unwrap_or(0.0);
        let (p50, p99) = (q("0.5"), q("0.99"));
        worst = worst.max((p99 - 50.0).abs()).max((p50 - 50.0).abs());
        println!(
            "{sc}: {count:.0} runs, reported p50 {p50:.3} ms (error {:+.3} ms), p99 {p99:.3} ms (error {:+.3} ms)",
            p50 - 50.0,
            p99 - 50.0
        );
    }
    println!("worst |reported - 50 ms| over p50/p99: {worst:.3} ms (goal ≤ 2 ms)");
}

// ---------------------------------------------------------------------------------------------
// cost per probe

/// Probes per second in both the serve and blackbox_exporter measurements.
const COST_SCENARIOS: usize = 200;
/// Seconds measured at that rate: 3,000 probes, a few hundred CPU ticks per figure.
const COST_SECONDS: u64 = 15;

/// CPU per probe of one prober: microseconds of user + system time over the probes done.
struct Cost {
    cpu_us: f64,
    done: f64,
    failed: f64,
    wall: Duration,
}

impl Cost {
    fn per_probe(&self) -> f64 {
        self.cpu_us / self.done.max(1.0)
    }

    fn line(&self, who: &str, unit: &str) -> String {
        format!(
            "{who:<20} {:>8.0} CPU-µs per {unit} ({:.0} done, {:.0} failed, {:.3} CPU-s in {:.1} s)",
            self.per_probe(),
            self.done,
            self.failed,
            self.cpu_us / 1e6,
            self.wall.as_secs_f64()
        )
    }
}

fn cost() {
    println!(
        "\n== cost per probe, a new connection each: flowprobe serve ({COST_SCENARIOS} scenarios × 1 s) \
         vs wrk (Connection: close) vs blackbox_exporter ({COST_SCENARIOS} probes/s) =="
    );
    let ca = support::tls::TestCa::new("flowprobe-bench-ca");
    let cert = ca.issue(&["127.0.0.1"]);
    let nginx = StaticNginx::start_with_tls(Some(&cert));
    let ca_file = ca.ca_file().display().to_string();
    let targets = [
        ("HTTP", format!("http://127.0.0.1:{}/", nginx.port), None),
        (
            "HTTPS",
            format!("https://127.0.0.1:{}/", nginx.tls_port),
            Some(ca_file.as_str()),
        ),
    ];
    for (label, url, ca) in targets {
        println!("\n-- {label} ({url}) --");
        let wrk = wrk_cost(&url);
        println!("{}", wrk.line("wrk", "request"));
        let bb = blackbox_cost(&url, ca);
        println!("{}", bb.line("blackbox_exporter", "probe"));
        let fp = flowprobe_cost(&url, ca);
        println!("{}", fp.line("flowprobe serve", "probe"));
        println!(
            "{label}: flowprobe / wrk = {:.2} (goal ≤ 2); flowprobe / blackbox_exporter = {:.2} (goal ≤ 0.2)",
            fp.per_probe() / wrk.per_probe(),
            fp.per_probe() / bb.per_probe()
        );
    }
    println!("nginx used {:.3} CPU-s in all", nginx.cpu_seconds());
}

/// wrk's own CPU per request: one thread, one connection, `Connection: close` (so a new TCP
/// connection, and TLS handshake, per request), CPU read by the shell's `times` after it exits.
fn wrk_cost(url: &str) -> Cost {
    let wrk = find_program("wrk").expect("wrk is installed (scripts/setup.sh)");
    let script = format!(
        "'{}' -t1 -c1 -d10s -H 'Connection: close' '{url}' && times",
        wrk.display()
    );
    let t = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("run wrk");
    let wall = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "30052 requests in 10.00s, 4.64MB read"
    let done = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    let failed = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .count() as f64;
    // `times` prints the shell's user/system times, then its children's: "0m1.234s 0m0.567s".
    let children = text.lines().last().unwrap_or("");
    let cpu_us: f64 = children.split_whitespace().map(shell_time_us).sum();
    if done == 0.0 {
        println!(
            "wrk printed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Cost {
        cpu_us,
        done,
        failed,
        wall,
    }
}

/// `1m2.345s` → microseconds.
fn shell_time_us(t: &str) -> f64 {
    let Some((m, s)) = t.trim_end_matches('s').split_once('m') else {
        return 0.0;
    };
    (m.parse::<f64>().unwrap_or(0.0) * 60.0 + s.parse::<f64>().unwrap_or(0.0)) * 1e6
}

/// blackbox_exporter driven through `/probe` like Prometheus drives it (one kept-alive
/// connection), paced at [`COST_SCENARIOS`] probes a second.
fn blackbox_cost(target: &str, ca_file: Option<&str>) -> Cost {
    let dir = tempfile::tempdir().expect("temp dir");
    let bb = find_program("prometheus-blackbox-exporter")
        .or_else(|| find_program("blackbox_exporter"))
        .expect("prometheus-blackbox-exporter is installed (scripts/setup.sh)");
    let cfg = dir.path().join("blackbox.yml");
    let tls = ca_file
        .map(|ca| format!("      tls_config: {{ca_file: '{ca}'}}\n"))
        .unwrap_or_default();
    std::fs::write(
        &cfg,
        format!("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n{tls}"),
    )
    .expect("blackbox config");
    let bb_port = free_port();
    let mut cmd = Command::new(bb);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{bb_port}"))
        .arg("--log.level=warn");
    let guard =
        ChildGuard::spawn("blackbox_exporter", cmd, &dir.path().join("bb.log")).expect("blackbox");
    wait_for_port(bb_port, Duration::from_secs(10)).expect("blackbox listens");
    let path = format!(
        "/probe?module=http_2xx&target={}",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    let mut driver = KeepAlive::connect(bb_port);
    for _ in 0..20 {
        let _ = driver.get(&path);
    }
    let probes = COST_SCENARIOS as u64 * COST_SECONDS;
    let gap = Duration::from_secs(1) / COST_SCENARIOS as u32;
    let cpu0 = cpu_seconds(guard.pid());
    let t = Instant::now();
    let mut ok = 0.0;
    for i in 0..probes {
        let due = t + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if driver.get(&path).contains("probe_success 1") {
            ok += 1.0;
        }
    }
    let wall = t.elapsed();
    let cpu = cpu_seconds(guard.pid()) - cpu0;
    Cost {
        cpu_us: cpu * 1e6,
        done: probes as f64,
        failed: probes as f64 - ok,
        wall,
    }
}

/// `flowprobe serve` with [`COST_SCENARIOS`] one-step scenarios at 1 s, counted through its
/// own runs_total, logging at warn like blackbox_exporter.
fn flowprobe_cost(url: &str, ca_file: Option<&str>) -> Cost {
    let dir = tempfile::tempdir().expect("temp dir");
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(&scenarios).expect("scenario dir");
    let tls = ca_file
        .map(|ca| format!(", tls: {{ca_file: \"{ca}\"}}"))
        .unwrap_or_default();
    for i in 0..COST_SCENARIOS {
        std::fs::write(
            scenarios.join(format!("s{i:05}.yaml")),
            format!(
                "name: probe-{i:05}\nschedule: {{interval: 1s}}\nsteps:\n  - name: get\n    http: {{url: \"{url}\"{tls}}}\n    assert: [\"status == 200\"]\n"
            ),
        )
        .expect("write scenario");
    }
    let probe = Prober::start(
        &[&scenarios],
        &[],
        &[("RUST_LOG", "flowprobe=warn")],
        &dir.path().join("serve.log"),
    );
    let runs = |outcome: Option<&str>| -> f64 {
        let labels: Vec<(&str, &str)> = outcome.map(|o| ("outcome", o)).into_iter().collect();
        find(&probe.scrape(), "flowprobe_runs_total", &labels)
            .iter()
            .map(|s| s.value)
            .sum()
    };
    // Let every scenario's grid start (first runs spread over one interval).
    std::thread::sleep(Duration::from_millis(2500));
    let (runs0, failed0) = (runs(None), runs(Some("failure")));
    let cpu0 = cpu_seconds(probe.guard.pid());
    let t = Instant::now();
    // No scrape in between.
    std::thread::sleep(Duration::from_millis(COST_SECONDS * 1000 + 200));
    let cpu = cpu_seconds(probe.guard.pid()) - cpu0;
    let wall = t.elapsed();
    Cost {
        cpu_us: cpu * 1e6,
        done: runs(None) - runs0,
        failed: runs(Some("failure")) - failed0,
        wall,
    }
}

// ---------------------------------------------------------------------------------------------
// scale

fn scale() {
    println!("\n== scale: 10,000 one-step HTTP scenarios at 10 s in one process ==");
    let nginx = StaticNginx::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("http://127.0.0.1:{}/", nginx.port);
    let scenarios = write_scenarios(dir.path(), 10_000, "10s", &url);
    let me = std::process::id();
    let (rss_start, _) = rss_mib(me);
    // As in `flowprobe serve`: an info event per run is formatted (here into a sink).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("flowprobe=info"))
        .with_writer(std::io::sink)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let t = Instant::now();
        let set = load_paths(&[scenarios], &LoadOptions::default()).expect("valid scenarios");
        let load_time = t.elapsed();
        let (rss_loaded, _) = rss_mib(me);
        let metrics = Arc::new(Metrics::new(&[], &[]).expect("metrics"));
        metrics.sync(&set);
        let (rss_metrics, _) = rss_mib(me);
        let app = Arc::new(App::new(metrics.clone(), None));
        app.sync(&set);
        let (rss_status, _) = rss_mib(me);
        fill_history(&app, &set);
        let (rss_history, _) = rss_mib(me);
        let (rss_before_runs, _) = rss_mib(me);
        fill_metrics(&metrics, &set);
        println!(
            "metrics after 30 runs of every scenario (durations over 1–300 ms, 5 phases): +{:.1} MiB",
            rss_mib(me).0 - rss_before_runs
        );
        println!(
            "loaded 10,000 scenarios in {:.2} s; RSS {rss_start:.1} MiB at start, {rss_loaded:.1} loaded, \
             {rss_metrics:.1} with metrics series, {rss_status:.1} with /status entries, \
             {rss_history:.1} with a full run history ({} runs each)",
            load_time.as_secs_f64(),
            flowprobe::serve::history::RETAINED_RUNS
        );

        // The serve wiring, plus a lag recorder.
        let lags = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
        let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ev_app, ev_lags, ev_measuring) = (app.clone(), lags.clone(), measuring.clone());
        let on_event: EventFn = Arc::new(move |e: Event<'_>| match e {
            Event::Scheduled { name, at } => {
                let wall = std::time::SystemTime::now()
                    + at.saturating_duration_since(tokio::time::Instant::now());
                ev_app.set_next_run(name, wall);
            }
            Event::Started { name, lag, .. } => {
                ev_app.set_running(name);
                if ev_measuring.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(mut h) = ev_lags.lock() {
                        let _ = h.record(lag.as_micros() as u64);
                    }
                }
            }
            Event::Skipped { name } => ev_app.metrics.record_skipped(name),
            Event::Finished { outcome } => {
                ev_app.metrics.record(outcome);
                ev_app.finished(outcome);
            }
        });
        let scheduler = Scheduler::new(64, flowprobe::serve::schedule::runner(Default::default()), on_event);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http_port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, flowprobe::serve::http::router(app)).await;
        });
        scheduler.apply(set.into_iter().map(Arc::new).collect());
        println!("RSS {:.1} MiB with 10,000 scheduling loops", rss_mib(me).0);

        // The first interval spreads the first runs; measure the next ones.
        tokio::time::sleep(Duration::from_secs(12)).await;
        measuring.store(true, std::sync::atomic::Ordering::Relaxed);
        let runs_before = total(&metrics);
        let cpu0 = cpu_seconds(me);
        let nginx_cpu0 = nginx.cpu_seconds();
        let measure = Duration::from_secs(60);
        let t = Instant::now();
        let mut rss_max: f64 = 0.0;
        while t.elapsed() < measure {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rss_max = rss_max.max(rss_mib(me).0);
        }
        let elapsed = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(me) - cpu0;
        let nginx_cpu = nginx.cpu_seconds() - nginx_cpu0;
        let runs_after = total(&metrics);
        measuring.store(false, std::sync::atomic::Ordering::Relaxed);
        let (success, failure, skipped) = (
            runs_after.0 - runs_before.0,
            runs_after.1 - runs_before.1,
            runs_after.2 - runs_before.2,
        );
        let h = lags.lock().map(|h| h.clone()).expect("lags");
        println!(
            "{:.0} s measured: {} runs ({:.0}/s), {} failed, {} skipped",
            elapsed,
            success + failure,
            (success + failure) as f64 / elapsed,
            failure,
            skipped
        );
        println!(
            "CPU {:.1} s = {:.0}% of one core ({:.1}% of the 2-core machine); nginx {:.0}% of a core",
            cpu,
            cpu / elapsed * 100.0,
            cpu / elapsed * 50.0,
            nginx_cpu / elapsed * 100.0
        );
        println!(
            "scheduling lag (due → started, {} runs): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (goal p99 ≤ 20 ms)",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        );
        println!("RSS max {rss_max:.1} MiB while running (goal ≤ 150 MiB; metrics' goal ≤ 64 MiB)");

        // One scrape of the whole exposition in each format, streamed.
        for (format, accept) in [
            ("text", None),
            ("openmetrics", Some("application/openmetrics-text;version=1.0.0")),
            ("protobuf", Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")),
        ] {
            let t = Instant::now();
            let (bytes, lines) =
                tokio::task::spawn_blocking(move || count_scrape(http_port, accept))
                    .await
                    .expect("scrape task");
            let (rss_after, hwm) = rss_mib(me);
            let lines = if format == "protobuf" { String::new() } else { format!(", {lines} lines") };
            println!(
                "/metrics {format}: {:.1} MiB ({:.2} KB per scenario, goal ≤ 3 KB in text){lines} in {:.2} s (goal ≤ 1 s; streamed, read and discarded); RSS {rss_after:.1} MiB after, peak {hwm:.1} MiB",
                bytes as f64 / 1048576.0,
                bytes as f64 / 10_000.0 / 1000.0,
                t.elapsed().as_secs_f64()
            );
        }
        scheduler.shutdown(Duration::from_secs(10)).await;
        // The encoders alone, with the scheduler stopped.
        for format in [Format::Text, Format::OpenMetrics, Format::Protobuf] {
            let t = Instant::now();
            let bytes: usize = Metrics::chunks(metrics.clone(), format).map(|c| c.len()).sum();
            println!(
                "render {format:?} without load: {:.1} MiB in {:.2} s",
                bytes as f64 / 1048576.0,
                t.elapsed().as_secs_f64()
            );
        }
    });
    runtime.shutdown_background();
}

/// Records 30 runs of every scenario into the metrics alone: durations spread over 1–300 ms
/// and five phases, the native buckets' and exemplars' worst case for a one-step scenario.
fn fill_metrics(metrics: &Metrics, set: &[flowprobe::scenario::LoadedScenario]) {
    use flowprobe::outcome::Phase;
    for (n, sc) in set.iter().enumerate() {
        for i in 0..30u64 {
            let d = Duration::from_micros(1000 + (i * 7919 + n as u64 * 104_729) % 299_000);
            let phases: Vec<Phase> = ["dns", "connect", "tls", "first_byte", "body"]
                .iter()
                .map(|p| Phase {
                    name: p.to_string(),
                    duration: d / 5,
                })
                .collect();
            let mut out = passing_run(sc, d, phases);
            out.run_id = format!("{i:016x}");
            out.trace_id = format!("{:032x}", n as u64 * 1000 + i);
            out.span_id = format!("{:016x}", i + 1);
            metrics.record(&out);
        }
    }
}

/// Scrapes /metrics (in the format `accept` asks for) without keeping it: (bytes, lines).
fn count_scrape(port: u16, accept: Option<&str>) -> (usize, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n{accept}\r\n").as_bytes())
        .expect("request");
    let (mut bytes, mut lines) = (0, 0);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes += n;
                lines += buf[..n].iter().filter(|b| **b == b'\n').count();
            }
        }
    }
    (bytes, lines)
}

/// An HTTP/1.1 client on one kept-alive connection (Content-Length or chunked answers).
struct KeepAlive {
    port: u16,
    reader: std::io::BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(port: u16) -> KeepAlive {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        KeepAlive {
            port,
            reader: std::io::BufReader::new(s),
        }
    }

    /// GET `path`; the body ("" on any error).
    fn get(&mut self, path: &str) -> String {
        use std::io::BufRead;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        if self.reader.get_mut().write_all(req.as_bytes()).is_err() {
            return String::new();
        }
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return String::new();
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if l.starts_with("transfer-encoding:") && l.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                if self.reader.read_line(&mut size).unwrap_or(0) == 0 {
                    break;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if self.reader.read_exact(&mut chunk).is_err() || n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            if self.reader.read_exact(&mut body).is_err() {
                return String::new();
            }
        }
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// (success, failure, skipped) over all scenarios.
fn total(metrics: &Metrics) -> (u64, u64, u64) {
    metrics
        .scenario_names()
        .iter()
        .filter_map(|n| metrics.counts(n))
        .fold((0, 0, 0), |a, c| {
            (a.0 + c.success, a.1 + c.failure, a.2 + c.skipped)
        })
}
