//! Clean-up always runs: a run that put an object into a real s3s-fs and set a key in a real
//! redis, then hangs in a slow step, is cancelled when the shutdown grace (1 s) runs out — and its
//! `finally` step and clean-ups still delete what it created before `serve` exits 0. `run`
//! does the same on SIGINT, and exits 1 (a cancelled run is not a pass).

mod support;

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::backend::Backend;
use support::prometheus::{scenario_dir, wait_until, Prober};
use support::redis::RedisServer;
use support::s3::S3Server;
use support::{flowprobe_bin, ChildGuard};

const SCENARIO: &str = r#"
name: leaves-nothing
schedule: {interval: 2s, timeout: 5m}
secrets:
  sk: {file: "@DIR@/sk"}
  pw: {file: "@DIR@/pw"}
steps:
  - name: upload
    s3:
      endpoint: "${{ vars.endpoint }}"
      bucket: "${{ vars.bucket }}"
      access_key_id: "${{ vars.ak }}"
      secret_access_key: "${{ secrets.sk }}"
      put: {key: "probes/${{ run.id }}.bin", size: 4KiB}
  - name: cache
    redis:
      url: "${{ vars.redis }}"
      password: "${{ secrets.pw }}"
      commands:
        - [SET, "probe:${{ run.id }}", v, EX, 600]
  - name: slow
    http: {url: "${{ vars.api }}/delay/60000"}
    timeout: 2m
finally:
  - name: tell
    http: {url: "${{ vars.api }}/echo"}
"#;

struct Stack {
    s3: S3Server,
    redis: RedisServer,
    api: Backend,
    dir: tempfile::TempDir,
    _secrets: tempfile::TempDir,
    scenarios: std::path::PathBuf,
}

impl Stack {
    fn start() -> Stack {
        let s3 = S3Server::start();
        let redis = RedisServer::start();
        let api = Backend::start("api");
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(secrets.path().join("sk"), &s3.secret_key).unwrap();
        std::fs::write(secrets.path().join("pw"), &redis.password).unwrap();
        let text = SCENARIO.replace("@DIR@", &secrets.path().display().to_string());
        let (dir, scenarios) = scenario_dir(&[("leaves-nothing.yaml", &text)]);
        Stack {
            s3,
            redis,
            api,
            dir,
            _secrets: secrets,
            scenarios,
        }
    }

    fn var_args(&self) -> Vec<String> {
        [
            ("endpoint", self.s3.endpoint()),
            ("bucket", self.s3.bucket.clone()),
            ("ak", self.s3.access_key.clone()),
            ("redis", self.redis.url()),
            ("api", self.api.url()),
        ]
        .into_iter()
        .flat_map(|(k, v)| ["--var".to_string(), format!("{k}={v}")])
        .collect()
    }

    /// Waits until the run has created its object and key and hangs in the slow step.
    fn wait_for_the_slow_step(&self, log: impl Fn() -> String) {
        wait_until(Duration::from_secs(30), "the slow step to start", || {
            (self.api.hits("/delay/60000") == 1).then_some(())
        });
        assert_eq!(self.s3.objects().len(), 1, "no object was put:\n{}", log());
        assert_eq!(
            self.redis.keys("probe:*").len(),
            1,
            "no key was set:\n{}",
            log()
        );
        assert_eq!(self.api.hits("/echo"), 0, "finally ran too early");
    }

    fn assert_nothing_left(&self, log: &str) {
        assert!(
            self.s3.objects().is_empty(),
            "objects left: {:?}\n{log}",
            self.s3.objects()
        );
        assert!(
            self.redis.keys("probe:*").is_empty(),
            "keys left: {:?}\n{log}",
            self.redis.keys("probe:*")
        );
        assert_eq!(
            self.api.hits("/echo"),
            1,
            "the finally step did not run:\n{log}"
        );
    }
}

fn wait_exit(child: &mut ChildGuard, timeout: Duration) -> ExitStatus {
    wait_until(timeout, "flowprobe to exit", || {
        child.child.try_wait().ok().flatten()
    })
}

#[test]
fn serve_cancels_a_run_past_the_grace_and_its_cleanup_still_deletes_what_it_created() {
    let stack = Stack::start();
    let vars = stack.var_args();
    let mut args: Vec<&str> = vars.iter().map(String::as_str).collect();
    args.extend(["--shutdown-grace", "1s", "--cleanup-grace", "10s"]);
    let log = stack.dir.path().join("serve.log");
    let mut probe = Prober::start(&[&stack.scenarios], &args, &[], &log);
    stack.wait_for_the_slow_step(|| probe.log_text());

    let t = Instant::now();
    probe.guard.signal("TERM");
    let status = wait_exit(&mut probe.guard, Duration::from_secs(20));
    let took = t.elapsed();
    let text = probe.log_text();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        took >= Duration::from_millis(900),
        "did not wait for the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(12), "took {took:?}:\n{text}");
    stack.assert_nothing_left(&text);
    assert!(text.contains("cancelling them"), "{text}");
    assert!(text.contains("cancelled runs cleaned up"), "{text}");
}

#[test]
fn run_cancelled_by_sigint_cleans_up_and_exits_1() {
    let stack = Stack::start();
    let report = stack.dir.path().join("report.json");
    let mut cmd = Command::new(flowprobe_bin());
    cmd.arg("run")
        .arg(&stack.scenarios)
        .args(stack.var_args())
        .args(["--report", &format!("json={}", report.display())])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    let log = stack.dir.path().join("run.log");
    let mut child = ChildGuard::spawn("flowprobe run", cmd, &log).unwrap();
    stack.wait_for_the_slow_step(|| child.log_text());

    child.signal("INT");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let text = child.log_text();
    assert_eq!(status.code(), Some(1), "{text}");
    stack.assert_nothing_left(&text);
    assert!(text.contains("FAIL leaves-nothing"), "{text}");
    assert!(text.contains("cancelled"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let run = &json["runs"][0];
    assert_eq!(run["cancelled"], true, "{json}");
    assert_eq!(run["success"], false, "{json}");
}
