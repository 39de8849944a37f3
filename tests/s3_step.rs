//! The `s3` step against a real S3-compatible server (s3s-fs, SigV4 really checked): put/get
//! round-trips verified by SHA-256, head, list and backup freshness, sweep, presigned upload
//! through a real nginx, failure reasons (auth, connect, storage, integrity), the memory of a
//! 64 MiB streamed multipart upload, and a bucket left empty.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use flowprobe::outcome::{Reason, ScenarioOutcome, StepStatus};
use flowprobe::run::run_scenario;
use flowprobe::scenario::LoadedScenario;
use support::s3::S3Server;
use support::{describe, load_scenario};

const MIB: u64 = 1 << 20;

/// Connection settings every s3 step here uses.
const CONN: &str = "endpoint: '${{ vars.endpoint }}', bucket: '${{ vars.bucket }}', \
                    access_key_id: '${{ vars.ak }}', secret_access_key: '${{ secrets.sk }}'";

struct Fixture {
    s3: S3Server,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let s3 = S3Server::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sk"), format!("{}\n", s3.secret_key)).unwrap();
        std::fs::write(dir.path().join("wrong-sk"), "wrong-secret-key-9c1e").unwrap();
        Fixture { s3, dir }
    }

    fn secret(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vars(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("endpoint".to_string(), self.s3.endpoint()),
            ("bucket".to_string(), self.s3.bucket.clone()),
            ("ak".to_string(), self.s3.access_key.clone()),
            (
                "sk_file".to_string(),
                self.secret("sk").display().to_string(),
            ),
            (
                "wrong_sk_file".to_string(),
                self.secret("wrong-sk").display().to_string(),
            ),
        ])
    }

    /// `yaml` with `@CONN@` expanded and `@var@` placeholders (secret sources) filled in.
    fn load(&self, yaml: &str, extra: &[(&str, String)]) -> LoadedScenario {
        let mut vars = self.vars();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.clone());
        }
        let mut text = yaml.replace("@CONN@", CONN);
        for (k, v) in &vars {
            text = text.replace(&format!("@{k}@"), v);
        }
        load_scenario("s3.yaml", &text, vars)
    }

    async fn run(&self, yaml: &str) -> ScenarioOutcome {
        run_scenario(&self.load(yaml, &[]), 1).await
    }
}

const SECRETS: &str = "
secrets:
  sk: {file: '@sk_file@'}
  wrong_sk: {file: '@wrong_sk_file@'}
";

fn message(o: &ScenarioOutcome) -> String {
    o.first_failure()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn upload_get_head_list_and_delete_pass_and_leave_nothing() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: upload-verify{SECRETS}
steps:
  - name: upload
    s3: {{@CONN@, put: {{size: 256KiB, content_type: application/octet-stream}}}}
    assert: [status == 200, size == 256KiB, 'etag exists', 'checksum matches \"^[0-9a-f]{{64}}$\"']
  - name: note
    s3: {{@CONN@, put: {{key: 'flowprobe/${{{{ run.id }}}}/note.json', body: '{{\"ok\": true}}'}}}}
  - name: download
    s3: {{@CONN@, get: {{key: '${{{{ steps.upload.key }}}}'}}}}
    assert: ['checksum == \"${{{{ steps.upload.checksum }}}}\"', size == 256KiB, age < 1m, 'phase \"first_byte\" < 5s']
  - name: read-note
    s3: {{@CONN@, get: {{key: 'flowprobe/${{{{ run.id }}}}/note.json'}}}}
    assert: ['jsonpath \"$.ok\" == true']
  - name: head
    s3: {{@CONN@, head: {{key: '${{{{ steps.upload.key }}}}'}}}}
    assert: [size == 262144, 'etag == \"${{{{ steps.upload.etag }}}}\"', age < 1m]
  - name: list
    s3: {{@CONN@, list: {{prefix: 'flowprobe/${{{{ run.id }}}}/'}}}}
    assert: [count == 2, newest.age < 1m, newest.size > 0]
  - name: delete
    s3: {{@CONN@, delete: {{key: 'flowprobe/${{{{ run.id }}}}/note.json'}}}}
    assert: [status == 204]
"
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(o.steps[0].phases[0].name, "upload");
    assert!(o.cleanup_errors.is_empty(), "{:?}", o.cleanup_errors);
    assert!(
        f.s3.objects().is_empty(),
        "left behind: {:?}",
        f.s3.objects()
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_auth_and_never_shown() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: s3-auth{SECRETS}
steps:
  - name: upload
    s3:
      endpoint: ${{{{ vars.endpoint }}}}
      bucket: ${{{{ vars.bucket }}}}
      access_key_id: ${{{{ vars.ak }}}}
      secret_access_key: ${{{{ secrets.wrong_sk }}}}
      put: {{size: 1KiB}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Auth), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("PutObject") && m.contains("SignatureDoesNotMatch"),
        "{m}"
    );
    assert!(
        m.contains(&format!("s3://{}/flowprobe/", f.s3.bucket)),
        "{m}"
    );
    let all = format!("{}{:?}", describe(&o), o);
    assert!(
        !all.contains("wrong-secret-key-9c1e") && !all.contains(&f.s3.secret_key),
        "{all}"
    );
    assert!(f.s3.objects().is_empty());
}

#[tokio::test]
async fn an_unknown_access_key_is_auth() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: s3-key{SECRETS}
steps:
  - name: list
    s3: {{endpoint: '${{{{ vars.endpoint }}}}', bucket: '${{{{ vars.bucket }}}}', access_key_id: nobody, secret_access_key: '${{{{ secrets.sk }}}}', list: {{}}}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Auth), "{}", describe(&o));
}

/// The connector's failures keep their reasons through the SDK: a name that does not resolve
/// is `dns`, and TLS spoken to a plain-HTTP store is `tls`.
#[tokio::test]
async fn an_unknown_name_is_dns_and_tls_to_a_plain_port_is_tls() {
    let f = Fixture::start();
    for (endpoint, reason) in [
        ("http://no-such-store.invalid:9000".to_string(), Reason::Dns),
        (format!("https://127.0.0.1:{}", f.s3.port), Reason::Tls),
    ] {
        let o = f
            .run(&format!(
                "name: s3-net{SECRETS}
steps:
  - name: upload
    s3: {{endpoint: '{endpoint}', bucket: b, access_key_id: x, secret_access_key: '${{{{ secrets.sk }}}}', put: {{}}}}
"
            ))
            .await;
        assert_eq!(o.reason, Some(reason), "{endpoint}: {}", describe(&o));
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_connect() {
    let f = Fixture::start();
    let port = support::free_port();
    let o = f
        .run(&format!(
            "name: s3-down{SECRETS}
steps:
  - name: upload
    s3: {{endpoint: 'http://127.0.0.1:{port}', bucket: b, access_key_id: x, secret_access_key: '${{{{ secrets.sk }}}}', put: {{}}}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    assert!(
        message(&o).contains(&format!("127.0.0.1:{port}")),
        "{}",
        message(&o)
    );
}

#[tokio::test]
async fn a_missing_bucket_is_storage() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: s3-nobucket{SECRETS}
steps:
  - name: list
    s3: {{endpoint: '${{{{ vars.endpoint }}}}', bucket: no-such-bucket, access_key_id: '${{{{ vars.ak }}}}', secret_access_key: '${{{{ secrets.sk }}}}', list: {{prefix: backups/}}}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Storage), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("ListObjectsV2 s3://no-such-bucket/backups/*") && m.contains("NoSuchBucket"),
        "{m}"
    );
}

#[tokio::test]
async fn a_wrong_expected_checksum_is_integrity_and_the_object_is_still_deleted() {
    let f = Fixture::start();
    let wrong = "0".repeat(64);
    let o = f
        .run(&format!(
            "name: s3-checksum{SECRETS}
steps:
  - name: upload
    s3: {{@CONN@, put: {{body: hello}}}}
  - name: download
    s3: {{@CONN@, get: {{key: '${{{{ steps.upload.key }}}}', checksum: 'sha256:{wrong}'}}}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Integrity), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("differ from the expected checksum") && m.contains(&wrong),
        "{m}"
    );
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_overwritten_behind_the_probes_back_is_integrity() {
    // A Redis BLPOP holds the run between upload and download while the test rewrites the
    // stored file, so the order is certain without sleeping.
    let f = Fixture::start();
    let redis = support::redis::RedisServer::start();
    std::fs::write(f.secret("redis-pw"), &redis.password).unwrap();
    let sc = f.load(
        "name: s3-overwritten
secrets:
  sk: {file: '@sk_file@'}
  redis_pw: {file: '@redis_pw_file@'}
steps:
  - name: upload
    s3: {@CONN@, put: {key: 'flowprobe/${{ run.id }}/doc.bin', size: 100KiB}}
  - name: hold
    redis: {url: '${{ vars.redis }}', password: '${{ secrets.redis_pw }}', command_timeout: 20s, commands: [[BLPOP, flowprobe-gate, 15]]}
    assert: ['reply 0 count == 2']
  - name: download
    s3: {@CONN@, get: {key: '${{ steps.upload.key }}'}}
",
        &[
            ("redis", redis.url()),
            ("redis_pw_file", f.secret("redis-pw").display().to_string()),
        ],
    );
    let run = tokio::spawn(async move { run_scenario(&sc, 1).await });
    tokio::task::block_in_place(|| redis.wait_for_blocked_client(Duration::from_secs(10))).unwrap();
    let stored = f.s3.objects();
    assert_eq!(stored.len(), 1, "{stored:?}");
    std::fs::write(f.s3.object_path(&stored[0]), vec![b'x'; 100 * 1024]).unwrap();
    let mut admin = redis.admin();
    redis::cmd("LPUSH")
        .arg("flowprobe-gate")
        .arg("go")
        .exec(&mut admin)
        .unwrap();
    let o = run.await.unwrap();
    assert_eq!(o.steps[1].status, StepStatus::Passed, "{}", describe(&o));
    assert_eq!(o.reason, Some(Reason::Integrity), "{}", describe(&o));
    let m = message(&o);
    assert!(
        m.contains("differ from what this run put (102400 bytes)"),
        "{m}"
    );
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
    assert!(redis.keys("*").is_empty());
}

#[tokio::test]
async fn the_sweep_deletes_only_old_objects_under_its_prefix() {
    let f = Fixture::start();
    let hour = Duration::from_secs(3600);
    f.s3.seed("flowprobe/dead-run-1/a.bin", b"old", 3 * hour);
    f.s3.seed("flowprobe/dead-run-2/b.bin", b"old", 2 * hour);
    f.s3.seed("flowprobe/live-run/c.bin", b"new", Duration::from_secs(30));
    f.s3.seed("backups/db/keep.dump", b"not a probe object", 48 * hour);
    let o = f
        .run(&format!(
            "name: s3-sweep{SECRETS}
steps:
  - name: sweep
    s3: {{@CONN@, sweep: {{prefix: flowprobe/, older_than: 1h}}}}
  - name: after
    s3: {{@CONN@, list: {{prefix: flowprobe/}}}}
    assert: [count == 1, 'newest.key == \"flowprobe/live-run/c.bin\"']
"
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(
        f.s3.objects(),
        ["backups/db/keep.dump", "flowprobe/live-run/c.bin"]
    );
}

#[tokio::test]
async fn a_sweep_runs_before_an_upload_and_reports_what_it_swept() {
    let f = Fixture::start();
    f.s3.seed(
        "flowprobe/leaked/x.bin",
        b"leaked by a killed prober",
        Duration::from_secs(7200),
    );
    let sc = f.load(
        &format!(
            "name: s3-sweep-put{SECRETS}
steps:
  - name: upload
    s3: {{@CONN@, sweep: {{prefix: flowprobe/, older_than: 1h}}, put: {{size: 1KiB}}}}
"
        ),
        &[],
    );
    let o = run_scenario(&sc, 1).await;
    assert!(o.success, "{}", describe(&o));
    let names: Vec<_> = o.steps[0].phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sweep", "upload", "dns", "connect"]);
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
}

#[tokio::test]
async fn backup_freshness_reads_the_newest_object() {
    let f = Fixture::start();
    let hour = Duration::from_secs(3600);
    let backup = vec![7u8; 2 * MIB as usize];
    f.s3.seed("backups/db/2024-01-01.dump", &backup, 50 * hour);
    f.s3.seed(
        "backups/db/2024-01-02.dump",
        &backup,
        26 * hour + Duration::from_secs(600),
    );
    let scenario = format!(
        "name: backup-freshness{SECRETS}
steps:
  - name: newest-backup
    s3: {{@CONN@, list: {{prefix: backups/db/}}}}
    assert: [newest.age < 26h, newest.size > 1MiB]
"
    );
    let stale = f.run(&scenario).await;
    assert_eq!(
        stale.reason,
        Some(Reason::Assertion),
        "{}",
        describe(&stale)
    );
    assert!(
        message(&stale).contains("newest.age < 26h"),
        "{}",
        message(&stale)
    );

    f.s3.seed("backups/db/2024-01-03.dump", &backup, 2 * hour);
    let fresh = f.run(&scenario).await;
    assert!(fresh.success, "{}", describe(&fresh));

    f.s3.seed("backups/db/2024-01-04.dump", b"truncated", hour);
    let small = f.run(&scenario).await;
    assert!(
        message(&small).contains("newest.size > 1MiB"),
        "{}",
        describe(&small)
    );
    assert_eq!(f.s3.objects().len(), 4, "listing never deletes");
}

#[test]
fn plain_text_secret_keys_are_load_errors() {
    let text = "name: bad
steps:
  - name: up
    s3:
      bucket: b
      access_key_id: AKIAEXAMPLE
      secret_access_key: wJalrXUtnFEMIK7MDENG
      put: {}
";
    let e =
        flowprobe::scenario::load::load_source("s3.yaml", text, &Default::default()).unwrap_err();
    let all = e
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("s3.yaml:7:") && all.contains("must come from a secret"),
        "{all}"
    );
}

/// Peak resident memory (VmHWM, KiB) of a `flowprobe run` of `file`, read from /proc while
/// it runs; also returns its exit code and output.
fn peak_rss_kib(file: &Path) -> (u64, Option<i32>, String) {
    let mut child = Command::new(support::flowprobe_bin())
        .arg("run")
        .arg(file)
        .arg("--no-color")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let code = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (peak, code, text)
}

#[test]
fn a_64mib_multipart_upload_streams_without_holding_the_payload() {
    let f = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let scenario = |size: &str| {
        let mut text = format!(
            "name: big-upload{SECRETS}
defaults: {{timeout: 120s}}
schedule: {{interval: 1h, timeout: 300s}}
steps:
  - name: upload
    s3: {{@CONN@, put: {{size: {size}}}}}
    assert: [size == {size}]
  - name: download
    s3: {{@CONN@, get: {{key: '${{{{ steps.upload.key }}}}'}}}}
    assert: [size == {size}]
"
        )
        .replace("@CONN@", CONN);
        for (k, v) in f.vars() {
            text = text
                .replace(&format!("@{k}@"), &v)
                .replace(&format!("${{{{ vars.{k} }}}}"), &v);
        }
        let p = dir.path().join(format!("{size}.yaml"));
        std::fs::write(&p, text).unwrap();
        p
    };
    let (baseline, code, out) = peak_rss_kib(&scenario("64KiB"));
    assert_eq!(code, Some(0), "{out}");
    let (big, code, out) = peak_rss_kib(&scenario("64MiB"));
    assert_eq!(code, Some(0), "{out}");
    let over = big.saturating_sub(baseline);
    eprintln!("peak RSS: baseline {baseline} KiB, 64MiB upload+download {big} KiB, +{over} KiB");
    // Holding the payload once would add 64 MiB; twice, 128 MiB. Parts are 8 MiB.
    assert!(
        over < 48 * 1024,
        "the 64 MiB upload added {over} KiB to the peak RSS"
    );
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
    assert!(
        f.s3.pending_parts().is_empty(),
        "{:?}",
        f.s3.pending_parts()
    );
}

#[tokio::test]
async fn a_multipart_upload_reports_its_parts_and_verifies() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: multipart{SECRETS}
defaults: {{timeout: 60s}}
steps:
  - name: upload
    s3: {{@CONN@, put: {{size: 11MiB, multipart_threshold: 5MiB, part_size: 5MiB}}}}
    assert: [size == 11MiB, 'etag endsWith \"-3\"']
  - name: download
    s3: {{@CONN@, get: {{key: '${{{{ steps.upload.key }}}}'}}}}
"
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    let phases: Vec<_> = o.steps[0].phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["create", "parts", "complete", "dns", "connect"]);
    assert!(f.s3.objects().is_empty());
}

#[tokio::test]
async fn a_presigned_upload_goes_through_the_ingress() {
    use support::nginx::{Nginx, NginxConfig, Site};
    let f = Fixture::start();
    let ca = support::tls::TestCa::new("s3 ingress CA");
    let nginx = Nginx::start(NginxConfig {
        sites: vec![Site::tls("s3.test", ca.issue(&["s3.test"]), f.s3.port)],
    })
    .unwrap();
    // The URL is signed for https://s3.test (what browsers see); `resolve` sends it to nginx,
    // which passes Host: s3.test on to s3s-fs, so the signature holds.
    let o = run_scenario(
        &f.load(
            &format!(
                "name: presigned{SECRETS}
steps:
  - name: browser-upload
    s3:
      endpoint: https://s3.test
      bucket: ${{{{ vars.bucket }}}}
      access_key_id: ${{{{ vars.ak }}}}
      secret_access_key: ${{{{ secrets.sk }}}}
      tls: {{ca_file: '${{{{ vars.ca }}}}'}}
      presign: {{method: PUT, size: 512KiB, content_type: image/png, resolve: {{s3.test: '127.0.0.1:${{{{ vars.port }}}}'}}}}
    assert: [status == 200, size == 512KiB]
  - name: browser-download
    s3:
      endpoint: https://s3.test
      bucket: ${{{{ vars.bucket }}}}
      access_key_id: ${{{{ vars.ak }}}}
      secret_access_key: ${{{{ secrets.sk }}}}
      tls: {{ca_file: '${{{{ vars.ca }}}}'}}
      presign: {{key: '${{{{ steps.browser-upload.key }}}}', resolve: {{s3.test: '127.0.0.1:${{{{ vars.port }}}}'}}}}
    assert: [status == 200, 'checksum == \"${{{{ steps.browser-upload.checksum }}}}\"']
"
            ),
            &[
                ("ca", ca.ca_file().display().to_string()),
                ("port", nginx.port.to_string()),
            ],
        ),
        1,
    )
    .await;
    assert!(o.success, "{}\n{}", describe(&o), nginx.log_text());
    let log = nginx.access_log_with(&[
        "s3.test \"PUT /probe-artifacts/flowprobe/",
        "s3.test \"DELETE /probe-artifacts/flowprobe/",
    ]);
    assert!(
        log.contains("s3.test \"PUT /probe-artifacts/flowprobe/"),
        "{log}"
    );
    assert!(
        log.contains("s3.test \"DELETE /probe-artifacts/flowprobe/"),
        "the clean-up went through the ingress too: {log}"
    );
    assert!(!format!("{o:?}").contains("X-Amz-Signature="), "{o:?}");
    let marker = format!("\"00-{}-", o.trace_id);
    for line in log.lines().filter(|l| l.contains("/probe-artifacts/")) {
        assert!(
            line.contains(&marker),
            "presigned requests carry {marker}: {line}"
        );
    }
    assert!(o.cleanup_errors.is_empty(), "{:?}", o.cleanup_errors);
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
}

#[tokio::test]
async fn requests_carry_traceparent_and_report_their_connection_over_http_and_tls() {
    use flowprobe::outcome::ConnectionUse;
    use support::nginx::{Nginx, NginxConfig, Site};
    let f = Fixture::start();
    let ca = support::tls::TestCa::new("s3 tls CA");
    // nginx terminates TLS and passes Host as sent, so s3s-fs checks the SigV4 signature on
    // what the step really sent, `traceparent` (added unsigned, after signing) included.
    let nginx = Nginx::start(NginxConfig {
        sites: vec![Site::tls("127.0.0.1", ca.issue(&["127.0.0.1"]), f.s3.port).host_as_sent()],
    })
    .unwrap();
    let sc = f.load(
        &format!(
            "name: s3-net{SECRETS}
steps:
  - name: plain
    s3: {{@CONN@, put: {{size: 16KiB}}}}
  - name: tls
    s3:
      endpoint: https://127.0.0.1:${{{{ vars.port }}}}
      bucket: ${{{{ vars.bucket }}}}
      access_key_id: ${{{{ vars.ak }}}}
      secret_access_key: ${{{{ secrets.sk }}}}
      tls: {{ca_file: '${{{{ vars.ca }}}}'}}
      put: {{size: 16KiB}}
    assert: ['phase \"tls\" < 5s']
"
        ),
        &[
            ("ca", ca.ca_file().display().to_string()),
            ("port", nginx.port.to_string()),
        ],
    );
    let o = run_scenario(&sc, 1).await;
    assert!(o.success, "{}\n{}", describe(&o), nginx.log_text());
    let took = |step: usize, name: &str| {
        o.steps[step]
            .phases
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no phase {name}: {:?}", o.steps[step]))
            .duration
    };
    for step in 0..2 {
        assert!(
            took(step, "connect") > Duration::ZERO,
            "{:?}",
            o.steps[step]
        );
        assert!(
            took(step, "dns") < Duration::from_millis(50),
            "an IP address: no lookup"
        );
        assert_eq!(o.steps[step].connection, Some(ConnectionUse::New));
    }
    assert!(o.steps[0].phases.iter().all(|p| p.name != "tls"));
    assert!(o.steps[0].tls.is_none());
    assert!(took(1, "tls") > Duration::ZERO);
    let facts = o.steps[1].tls.as_ref().expect("TLS facts");
    assert!(facts.version.starts_with("TLSv1."), "{facts:?}");
    assert_eq!(facts.alpn.as_deref(), Some("http/1.1"), "{facts:?}");
    assert!(facts.chain[0].subject.contains("127.0.0.1"), "{facts:?}");
    assert!(facts.chain[0].issuer.contains("s3 tls CA"), "{facts:?}");
    // Every request through nginx (the upload and its clean-up) carried the run's trace.
    let marker = format!("\"00-{}-", o.trace_id);
    let log = nginx.access_log_with(&["\"PUT /probe-artifacts/", "\"DELETE /probe-artifacts/"]);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("/probe-artifacts/"))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(
        lines.iter().all(|l| l.contains(&marker)),
        "{marker} in every line of:\n{log}"
    );
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_short_by_the_timeout_is_aborted_and_removed() {
    let f = Fixture::start();
    let sc = f.load(
        &format!(
            "name: s3-cut{SECRETS}
steps:
  - name: upload
    timeout: 3s
    s3: {{@CONN@, put: {{size: 512MiB, part_size: 5MiB}}}}
"
        ),
        &[],
    );
    let run = tokio::spawn(async move { run_scenario(&sc, 1).await });
    // Watch the server's part files while the upload runs.
    let mut most_parts = 0;
    while !run.is_finished() {
        most_parts = most_parts.max(f.s3.pending_parts().len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let o = run.await.unwrap();
    assert_eq!(o.reason, Some(Reason::Timeout), "{}", describe(&o));
    assert!(most_parts > 0, "no part was uploaded before the timeout");
    assert!(o.cleanup_errors.is_empty(), "{:?}", o.cleanup_errors);
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
    assert!(
        f.s3.pending_parts().is_empty(),
        "parts of the aborted upload: {:?}",
        f.s3.pending_parts()
    );
}

#[test]
fn credentials_come_from_the_default_provider_chain_without_secrets_in_the_scenario() {
    let f = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.yaml");
    std::fs::write(
        &file,
        format!(
            "name: s3-chain
steps:
  - name: upload
    s3: {{endpoint: '{}', bucket: '{}', put: {{size: 4KiB}}}}
  - name: download
    s3: {{endpoint: '{}', bucket: '{}', get: {{key: '${{{{ steps.upload.key }}}}'}}}}
",
            f.s3.endpoint(),
            f.s3.bucket,
            f.s3.endpoint(),
            f.s3.bucket
        ),
    )
    .unwrap();
    let run = |secret: &str| {
        let out = Command::new(support::flowprobe_bin())
            .args(["run", "--no-color"])
            .arg(&file)
            .env("AWS_ACCESS_KEY_ID", &f.s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "eu-central-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&f.s3.secret_key);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run("wrong-env-secret-55");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("auth") && text.contains("SignatureDoesNotMatch"),
        "{text}"
    );
    assert!(!text.contains("wrong-env-secret-55"), "{text}");
    assert!(f.s3.objects().is_empty(), "{:?}", f.s3.objects());
}
