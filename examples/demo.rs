//! The demo: starts a real local stack on 127.0.0.1 (nginx as the TLS ingress in front of two
//! test backends, and whatever other services the example scenarios use), runs every scenario
//! in `scenarios/` with `target/debug/flowprobe run`, writes JSON and JUnit reports to
//! `target/demo/`, stops the stack and exits with flowprobe's exit code.
//!
//! Run it with `scripts/demo.sh` (builds flowprobe first). Extra arguments go to
//! `flowprobe run`, e.g. `scripts/demo.sh -v --iterations 3`.
//!
//! Adding a service: start it in `main` (keep the value alive until the end) and push one
//! [`Contribution`] with the `--var` pairs and environment its scenarios need.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use support::nginx::{Ingress, API, SHOP};

/// What one service of the stack gives `flowprobe run`.
struct Contribution {
    /// Shown in the stack summary.
    service: &'static str,
    /// One line about where it runs.
    summary: String,
    /// `--var NAME=VALUE` pairs (addresses, CA files, user names).
    vars: Vec<(String, String)>,
    /// Environment for flowprobe: secret sources (`secrets: {x: {env: NAME}}`).
    env: Vec<(String, String)>,
}

/// The ingress and its backends, as `scenarios/ingress-smoke.yaml` and `tcp-services.yaml` read
/// them.
fn ingress_contribution(ing: &Ingress) -> Contribution {
    Contribution {
        service: "ingress",
        summary: format!(
            "nginx (pid {}) on https://127.0.0.1:{}: {SHOP} -> app-a :{}, {API} -> app-b :{}",
            ing.nginx.pid(),
            ing.nginx.port,
            ing.app_a.port,
            ing.app_b.port
        ),
        vars: ing.vars(),
        env: vec![("SHOP_PROBE_PASSWORD".into(), ing.app_a.password.clone())],
    }
}

/// Redis for `scenarios/cache-roundtrip.yaml` and `tcp-services.yaml`: the TLS port, the
/// probe's ACL user.
fn redis_contribution(r: &support::redis::RedisServer) -> Contribution {
    Contribution {
        service: "redis",
        summary: format!(
            "redis-server (pid {}) on redis://127.0.0.1:{}, TLS rediss://127.0.0.1:{}",
            r.pid(),
            r.port,
            r.tls_port
        ),
        vars: vec![
            ("redis_url".into(), r.tls_url()),
            ("redis_user".into(), r.acl_user.clone()),
            ("redis_ca_file".into(), r.ca_file().display().to_string()),
            // `scenarios/tcp-services.yaml` speaks to the TLS port itself.
            ("redis_addr".into(), format!("127.0.0.1:{}", r.tls_port)),
        ],
        env: vec![("REDIS_PROBE_PASSWORD".into(), r.acl_password.clone())],
    }
}

/// dnsmasq for `scenarios/dns-resolution.yaml`: its local records and a missing name.
fn dns_contribution(d: &support::dnsmasq::Dnsmasq) -> Contribution {
    use support::dnsmasq::{APP, APP_ADDR, DOMAIN, MISSING};
    Contribution {
        service: "dns",
        summary: format!(
            "dnsmasq (pid {}) on udp+tcp {}: {APP} A {APP_ADDR}, {DOMAIN} MX, {MISSING} NXDOMAIN",
            d.pid(),
            d.server()
        ),
        vars: vec![
            ("dns_server".into(), d.server()),
            ("lookup_name".into(), APP.into()),
            ("lookup_addr".into(), APP_ADDR.into()),
            ("mx_domain".into(), DOMAIN.into()),
            ("retired_name".into(), MISSING.into()),
        ],
        env: Vec::new(),
    }
}

/// A 3-master Redis Cluster for `scenarios/cache-cluster.yaml`: its TLS ports, the ACL user.
fn redis_cluster_contribution(c: &support::redis_cluster::RedisCluster) -> Contribution {
    Contribution {
        service: "cluster",
        summary: format!(
            "3 redis-server cluster masters on {} (TLS {})",
            c.seeds(),
            c.tls_seeds()
        ),
        vars: vec![
            ("redis_cluster_nodes".into(), c.tls_seeds()),
            ("redis_cluster_user".into(), c.acl_user.clone()),
            (
                "redis_cluster_ca_file".into(),
                c.ca.ca_file().display().to_string(),
            ),
        ],
        env: vec![(
            "REDIS_CLUSTER_PROBE_PASSWORD".into(),
            c.acl_password.clone(),
        )],
    }
}

/// A primary, a replica and three sentinels for `scenarios/cache-sentinel.yaml`.
fn redis_sentinel_contribution(s: &support::redis_sentinel::SentinelSet) -> Contribution {
    Contribution {
        service: "sentinel",
        summary: format!(
            "primary :{}, replica :{}, sentinels {} watching `{}`",
            s.data[0].port,
            s.data[1].port,
            s.sentinel_nodes(),
            s.master
        ),
        vars: vec![
            ("redis_sentinels".into(), s.sentinel_nodes()),
            ("redis_master".into(), s.master.clone()),
            ("redis_sentinel_user".into(), s.acl_user.clone()),
        ],
        env: vec![
            (
                "REDIS_SENTINEL_PROBE_PASSWORD".into(),
                s.acl_password.clone(),
            ),
            ("SENTINEL_PASSWORD".into(), s.sentinel_password.clone()),
        ],
    }
}

/// s3s-fs for `scenarios/upload-and-verify.yaml` and `backup-freshness.yaml`, with a fresh
/// backup seeded under `backups/db/`.
fn s3_contribution(s3: &support::s3::S3Server) -> Contribution {
    let backup = vec![0x5au8; 3 << 20];
    s3.seed(
        "backups/db/nightly.dump",
        &backup,
        std::time::Duration::from_secs(3 * 3600),
    );
    Contribution {
        service: "s3",
        summary: format!(
            "s3s-fs (pid {}) on {}, bucket {}",
            s3.pid(),
            s3.endpoint(),
            s3.bucket
        ),
        vars: vec![
            ("s3_endpoint".into(), s3.endpoint()),
            ("s3_bucket".into(), s3.bucket.clone()),
            ("s3_backup_bucket".into(), s3.bucket.clone()),
            ("s3_access_key_id".into(), s3.access_key.clone()),
        ],
        env: vec![("S3_SECRET_ACCESS_KEY".into(), s3.secret_key.clone())],
    }
}

/// PostgreSQL for `scenarios/restore-drill.yaml`, with a dump and its `.sha256` sidecar
/// uploaded (seeded) to s3s-fs under `backups/pg/`.
fn drill_contribution(
    pg: &support::postgres::PgServer,
    s3: &support::s3::S3Server,
) -> Contribution {
    use sha2::Digest;
    let mut rows = String::new();
    for i in 1..=100 {
        rows.push_str(&format!("{i}\tcustomer {i}\t{i}.50\n"));
    }
    let dump = format!(
        "--\n-- PostgreSQL database dump\n--\n\n\
         CREATE TABLE public.orders (id integer PRIMARY KEY, customer text, total numeric(10,2));\n\n\
         COPY public.orders (id, customer, total) FROM stdin;\n{rows}\\.\n\n\
         --\n-- PostgreSQL database dump complete\n--\n"
    );
    let age = std::time::Duration::from_secs(2 * 3600);
    s3.seed("backups/pg/nightly.sql", dump.as_bytes(), age);
    let sum = hex::encode(sha2::Sha256::digest(dump.as_bytes()));
    s3.seed(
        "backups/pg/nightly.sql.sha256",
        format!("{sum}  nightly.sql\n").as_bytes(),
        age,
    );
    Contribution {
        service: "postgres",
        summary: format!("postgres (pid {}) on 127.0.0.1:{}", pg.pid(), pg.port),
        vars: vec![("pg_url".into(), pg.url())],
        env: vec![("PG_DRILL_PASSWORD".into(), pg.password.clone())],
    }
}

/// The IdP, the API app and its nginx, as `scenarios/login-flow.yaml` reads them.
fn login_contribution(l: &support::api_app::LoginStack) -> Contribution {
    Contribution {
        service: "login",
        summary: format!(
            "oidc-provider (pid {}) at {}; {} -> api app :{} via nginx https://127.0.0.1:{}",
            l.idp.pid().unwrap_or(0),
            l.idp.issuer(),
            support::api_app::APP_HOST,
            l.app.port,
            l.nginx.port
        ),
        vars: l.vars(),
        env: l.env(),
    }
}

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = support::flowprobe_bin();
    if !bin.is_file() {
        eprintln!(
            "demo: {} not found: build it first (cargo build --bin flowprobe)",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let report_dir = root.join("target/demo");
    if let Err(e) = std::fs::create_dir_all(&report_dir) {
        eprintln!("demo: cannot create {}: {e}", report_dir.display());
        return ExitCode::from(2);
    }

    // The stack. Each value stops its processes when dropped, at the end of main.
    let ingress = Ingress::start();
    let redis = support::redis::RedisServer::start();
    let cluster = support::redis_cluster::RedisCluster::start();
    let sentinel = support::redis_sentinel::SentinelSet::start();
    let s3 = support::s3::S3Server::start();
    let login = support::api_app::LoginStack::start(&ingress.ca);
    let dns = support::dnsmasq::Dnsmasq::start();
    let pg = support::postgres::PgServer::start();
    let contributions = vec![
        ingress_contribution(&ingress),
        redis_contribution(&redis),
        dns_contribution(&dns),
        redis_cluster_contribution(&cluster),
        redis_sentinel_contribution(&sentinel),
        s3_contribution(&s3),
        login_contribution(&login),
        drill_contribution(&pg, &s3),
    ];

    println!("demo stack on 127.0.0.1:");
    for c in &contributions {
        println!("  {:<8} {}", c.service, c.summary);
    }
    println!();

    let json = report_dir.join("report.json");
    let junit = report_dir.join("junit.xml");
    // Reports of an earlier demo must not pass for this one's (invalid input writes none).
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(&junit);
    let mut cmd = Command::new(&bin);
    cmd.current_dir(&root)
        .arg("run")
        .arg("scenarios/")
        .arg("--report")
        .arg(format!("json={}", json.display()))
        .arg("--report")
        .arg(format!("junit={}", junit.display()));
    for c in &contributions {
        for (k, v) in &c.vars {
            cmd.arg("--var").arg(format!("{k}={v}"));
        }
        cmd.envs(c.env.iter().map(|(k, v)| (k, v)));
    }
    cmd.args(std::env::args_os().skip(1));
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot run {}: {e}", bin.display());
            return ExitCode::from(2);
        }
    };
    println!(
        "\nreports: {}\n         {}",
        json.display(),
        junit.display()
    );
    // What the probes left behind (only the seeded backups should remain).
    println!(
        "left behind: redis keys {:?}, cluster keys {:?}, sentinel-set keys {:?}, s3 objects {:?}, scratch databases {:?}",
        redis.keys("*"),
        cluster.keys("*"),
        sentinel.keys("*"),
        s3.objects(),
        pg.databases("flowprobe_drill_")
    );
    drop(login);
    drop(ingress);
    let code = status.code().unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
