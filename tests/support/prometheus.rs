//! The Prometheus side of the harness: `flowprobe serve` started as a scrape target, plain
//! HTTP GETs to scrape it, a small parser of the text exposition, `promtool check metrics`, and
//! a real Prometheus server (Debian's `prometheus`) on a free loopback port with its own
//! storage directory, queried through its HTTP API.
//!
//! ```ignore
//! let probe = prometheus::Prober::start(&dir, &["--watch-interval", "200ms"], &[]);
//! let text = probe.scrape();
//! prometheus::check_metrics(&text).unwrap();
//! let runs = prometheus::value(&text, "flowprobe_runs_total", &[("scenario", "x"), ("outcome", "success")]);
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_program, flowprobe_bin, free_port, wait_for_port, ChildGuard};

/// An HTTP/1.0 GET to 127.0.0.1:`port` (no chunking, the server closes at the end):
/// (status, content-type, body).
pub fn http_get(
    port: u16,
    path_and_query: &str,
    accept: Option<&str>,
) -> Result<(u16, String, String), String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect :{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{accept}\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok((status, content_type, body.to_string()))
}

/// One sample of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the sample lines of a text exposition (comments skipped; label values unescaped).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.to_string(),
                labels: Vec::new(),
                value: parse_value(v.trim())?,
            });
        }
    };
    let mut labels = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut end = None;
    loop {
        // label name up to '='
        let mut key = String::new();
        for (i, c) in chars.by_ref() {
            if c == '}' {
                end = Some(i);
                break;
            }
            if c == '=' {
                break;
            }
            if c != ',' {
                key.push(c);
            }
        }
        if end.is_some() {
            break;
        }
        // opening quote
        chars.next();
        let mut value = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
    let end = end?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(rest[end + 1..].trim())?,
    })
}

fn parse_value(v: &str) -> Option<f64> {
    match v.split_whitespace().next()? {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        x => x.parse().ok(),
    }
}

/// Samples named `name` whose labels include all of `labels`.
pub fn find(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    parse(text)
        .into_iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .collect()
}

/// The value of the single sample named `name` with `labels`; None when there is none.
/// Panics when the labels match several samples.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = find(text, name, labels);
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} samples: {found:?}",
        found.len()
    );
    found.first().map(|s| s.value)
}

/// `flowprobe_config_reloads_total{result}` in an exposition; -1 when absent.
pub fn reloads(text: &str, result: &str) -> f64 {
    value(
        text,
        "flowprobe_config_reloads_total",
        &[("result", result)],
    )
    .unwrap_or(-1.0)
}

/// Runs `promtool check metrics` on an exposition: Ok when it reports nothing.
pub fn check_metrics(text: &str) -> Result<(), String> {
    let promtool =
        find_program("promtool").ok_or("promtool is not installed: run scripts/setup.sh")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("promtool stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| format!("promtool stdin: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics ({}): {report}", out.status))
    }
}

/// Polls `f` every 100 ms until it returns Some, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `flowprobe serve` on a free loopback port, stopped by PID when dropped.
pub struct Prober {
    pub port: u16,
    pub guard: ChildGuard,
}

impl Prober {
    /// Starts `flowprobe serve PATHS --listen 127.0.0.1:PORT ARGS` with extra environment
    /// variables; its log goes to `log`. Waits until the port accepts connections.
    pub fn start(paths: &[&Path], args: &[&str], env: &[(&str, &str)], log: &Path) -> Prober {
        Prober::try_start(paths, args, env, log).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(
        paths: &[&Path],
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Prober, String> {
        let port = free_port();
        let mut cmd = Command::new(flowprobe_bin());
        cmd.arg("serve")
            .args(paths)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut guard = ChildGuard::spawn("flowprobe serve", cmd, log)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if wait_for_port(port, Duration::from_millis(200)).is_ok() {
                return Ok(Prober { port, guard });
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                return Err(format!(
                    "flowprobe serve exited with {status}:\n{}",
                    guard.log_text()
                ));
            }
            if Instant::now() > deadline {
                guard.stop();
                return Err(format!(
                    "flowprobe serve did not listen:\n{}",
                    guard.log_text()
                ));
            }
        }
    }

    /// GET /metrics.
    pub fn scrape(&self) -> String {
        let (status, ctype, body) =
            http_get(self.port, "/metrics", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{body}");
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        body
    }

    /// GET /status as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (status, _, body) =
            http_get(self.port, "/status", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// Names of the scenarios in /status.
    pub fn scenario_names(&self) -> Vec<String> {
        self.status()["scenarios"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A counter or gauge from a fresh scrape (0 when absent).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        value(&self.scrape(), name, labels).unwrap_or(0.0)
    }

    pub fn log_text(&self) -> String {
        self.guard.log_text()
    }
}

/// A real Prometheus server scraping `targets` every second, stopped by PID when dropped.
pub struct PrometheusServer {
    pub port: u16,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts `prometheus` with job `flowprobe` over `targets` (`127.0.0.1:PORT`).
    pub fn start(targets: &[String]) -> Result<PrometheusServer, String> {
        PrometheusServer::start_with_rules(targets, None)
    }

    /// Like [`PrometheusServer::start`], also evaluating the rule file `rules` every second.
    pub fn start_with_rules(
        targets: &[String],
        rules: Option<&Path>,
    ) -> Result<PrometheusServer, String> {
        PrometheusServer::start_with_flags(targets, rules, &[])
    }

    /// Like [`PrometheusServer::start_with_rules`], with extra command-line flags
    /// (`--enable-feature=native-histograms,exemplar-storage`).
    pub fn start_with_flags(
        targets: &[String],
        rules: Option<&Path>,
        flags: &[&str],
    ) -> Result<PrometheusServer, String> {
        let program = find_program("prometheus")
            .ok_or("prometheus is not installed: run scripts/setup.sh")?;
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rule_files = rules
            .map(|r| format!("rule_files: ['{}']\n", r.display()))
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: flowprobe\n    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(|e| format!("config: {e}"))?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&program);
            cmd.arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join(format!("data-{port}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .args(flags);
            let log = dir.path().join(format!("prometheus-{port}.log"));
            let mut guard = ChildGuard::spawn("prometheus", cmd, &log)?;
            match wait_for_port(port, Duration::from_secs(20)) {
                Ok(()) => {
                    return Ok(PrometheusServer {
                        port,
                        guard,
                        _dir: dir,
                    })
                }
                Err(e) => {
                    guard.stop();
                    last = format!("{e}\n{}", guard.log_text());
                }
            }
        }
        Err(format!("prometheus did not start: {last}"))
    }

    /// An instant query through the HTTP API: the `data.result` array.
    pub fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let (status, _, body) = http_get(self.port, &format!("/api/v1/query?query={q}"), None)?;
        if status != 200 {
            return Err(format!("query {promql}: HTTP {status}: {body}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        v["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no data.result in {body}"))
    }

    /// Values of `label` on the series `matcher` selects (Grafana's `label_values()`).
    pub fn label_values(&self, label: &str, matcher: &str) -> Result<Vec<String>, String> {
        let m: String = url::form_urlencoded::byte_serialize(matcher.as_bytes()).collect();
        let path = format!("/api/v1/label/{label}/values?match[]={m}");
        let (status, _, body) = http_get(self.port, &path, None)?;
        if status != 200 {
            return Err(format!("{path}: HTTP {status}: {body}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        Ok(v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// GET an API path (`/api/v1/query_exemplars?...`): its `data`.
    pub fn api(&self, path_and_query: &str) -> Result<serde_json::Value, String> {
        let (status, _, body) = http_get(self.port, path_and_query, None)?;
        if status != 200 {
            return Err(format!("{path_and_query}: HTTP {status}: {body}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        Ok(v["data"].clone())
    }

    /// The health of each scrape target, from the API.
    pub fn targets(&self) -> String {
        http_get(self.port, "/api/v1/targets", None)
            .map(|(_, _, b)| b)
            .unwrap_or_else(|e| e)
    }

    pub fn log_text(&self) -> String {
        self.guard.log_text()
    }
}

/// A directory of scenario files for a test.
pub fn scenario_dir(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scenarios");
    std::fs::create_dir_all(&path).expect("scenario dir");
    for (name, text) in files {
        std::fs::write(path.join(name), text).expect("write scenario");
    }
    (dir, path)
}
