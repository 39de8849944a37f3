//! One trust model for every step kind: a CA that exists only in `SSL_CERT_FILE` (as a
//! corporate CA mounted by trust-manager would) is trusted by the http, oidc, s3, redis and tcp
//! steps without any `tls.ca_file`; without it, each fails with reason `tls`. Real nginx (TLS,
//! certificate for 127.0.0.1) in front of a backend and of s3s-fs, and a real redis-server with
//! TLS.

mod support;

use std::process::Command;

use support::backend::Backend;
use support::nginx::{Nginx, NginxConfig, Site};
use support::redis::RedisServer;
use support::s3::S3Server;
use support::tls::TestCa;

const SCENARIOS: [(&str, &str); 5] = [
    (
        "store",
        "name: store\nsecrets:\n  sk: {env: TRUST_TEST_S3_SECRET}\nsteps:\n  - name: put\n    s3: {endpoint: \"${{ vars.s3 }}\", bucket: \"${{ vars.bucket }}\", access_key_id: \"${{ vars.ak }}\", secret_access_key: \"${{ secrets.sk }}\", put: {key: \"trust/${{ run.id }}.bin\", size: 1KiB}}\n",
    ),
    (
        "web",
        "name: web\nsteps:\n  - name: health\n    http: {url: \"${{ vars.web }}/health\"}\n    assert: [status == 200]\n",
    ),
    (
        "cache",
        "name: cache\nsecrets:\n  pw: {env: TRUST_TEST_REDIS_PW}\nsteps:\n  - name: roundtrip\n    redis: {url: \"${{ vars.redis }}\", password: \"${{ secrets.pw }}\", roundtrip: {}}\n",
    ),
    (
        "socket",
        "name: socket\nsteps:\n  - name: handshake\n    tcp: {address: \"${{ vars.web_addr }}\", tls: {}}\n",
    ),
    // The backend has no discovery document: with the TLS handshake trusted the step fails
    // later, for another reason; untrusted, it fails with `tls`.
    (
        "idp",
        "name: idp\nsecrets:\n  cs: {env: TRUST_TEST_REDIS_PW}\nsteps:\n  - name: login\n    oidc: {issuer: \"${{ vars.web }}\", client_id: c, client_secret: \"${{ secrets.cs }}\", flow: client_credentials}\n",
    ),
];

/// Runs every scenario with `SSL_CERT_FILE` (and an empty `SSL_CERT_DIR`); returns each run's
/// (scenario, success, reason) from the JSON report.
fn run(
    cert_file: &std::path::Path,
    web: &str,
    redis: &RedisServer,
    s3: (&str, &S3Server),
) -> Vec<(String, bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in SCENARIOS {
        std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
    }
    let empty = dir.path().join("no-certs");
    std::fs::create_dir(&empty).unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(support::flowprobe_bin())
        .arg("run")
        .arg(dir.path())
        .args(["--var", &format!("web={web}")])
        .args([
            "--var",
            &format!("web_addr={}", web.trim_start_matches("https://")),
        ])
        .args(["--var", &format!("redis={}", redis.tls_url())])
        .args(["--var", &format!("s3={}", s3.0)])
        .args(["--var", &format!("bucket={}", s3.1.bucket)])
        .args(["--var", &format!("ak={}", s3.1.access_key)])
        .env("TRUST_TEST_S3_SECRET", &s3.1.secret_key)
        .args(["--report", &format!("json={}", report.display())])
        .env("SSL_CERT_FILE", cert_file)
        .env("SSL_CERT_DIR", &empty)
        .env("TRUST_TEST_REDIS_PW", &redis.password)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "no report:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scenario"].as_str().unwrap_or("").to_string(),
                r["success"].as_bool().unwrap_or(false),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_ca_only_in_ssl_cert_file_is_trusted_by_http_oidc_s3_redis_and_tcp() {
    let backend = Backend::start("web");
    let ca = TestCa::new("corporate CA");
    let nginx = Nginx::start(NginxConfig {
        sites: vec![Site::tls(
            "127.0.0.1",
            ca.issue(&["127.0.0.1"]),
            backend.port,
        )],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let web = format!("https://127.0.0.1:{}", nginx.port);
    let redis = RedisServer::start();
    let store = S3Server::start();
    let s3_tls = Nginx::start(NginxConfig {
        sites: vec![Site::tls("127.0.0.1", ca.issue(&["127.0.0.1"]), store.port).host_as_sent()],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let s3_url = format!("https://127.0.0.1:{}", s3_tls.port);

    // The system store replaced by a bundle of the two private CAs.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    let redis_ca = std::fs::read_to_string(redis.ca_file()).unwrap();
    std::fs::write(&bundle, format!("{}\n{redis_ca}", ca.ca_pem())).unwrap();
    let trusted = run(&bundle, &web, &redis, (&s3_url, &store));
    let get = |runs: &[(String, bool, String)], name: &str| {
        runs.iter()
            .find(|r| r.0 == name)
            .cloned()
            .unwrap_or_else(|| panic!("no run of {name}: {runs:?}"))
    };
    assert!(get(&trusted, "web").1, "{trusted:?}");
    assert!(get(&trusted, "cache").1, "{trusted:?}");
    assert!(get(&trusted, "store").1, "{trusted:?}");
    assert!(get(&trusted, "socket").1, "{trusted:?}");
    let idp = get(&trusted, "idp");
    assert!(
        !idp.1 && idp.2 != "tls",
        "the oidc step did not trust the CA: {trusted:?}"
    );

    // A store without them: every kind fails the handshake.
    let other = TestCa::new("some other CA");
    let untrusted = run(other.ca_file(), &web, &redis, (&s3_url, &store));
    for name in ["web", "cache", "idp", "store", "socket"] {
        let r = get(&untrusted, name);
        assert_eq!((r.1, r.2.as_str()), (false, "tls"), "{name}: {untrusted:?}");
    }
    assert!(backend.hits("/health") >= 1);
}
