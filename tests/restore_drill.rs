//! Restore drills against a real PostgreSQL (initdb on a free loopback port) and a real
//! S3-compatible server (s3s-fs): the newest backup is fetched, verified against its checksum
//! sidecar, decompressed to the end, restored into a scratch database and checked by a query.
//! Cut, flipped, mis-summed and half-failing dumps, and a query finding no rows, each fail
//! with their reason; no scratch database and no scratch file is left behind.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use async_compression::tokio::write::GzipEncoder;
use flowprobe::outcome::{Reason, ScenarioOutcome, StepStatus};
use flowprobe::run::run_scenario;
use sha2::{Digest, Sha256};
use support::postgres::PgServer;
use support::s3::S3Server;
use support::{describe, flowprobe_bin, load_scenario, ChildGuard};
use tokio::io::AsyncWriteExt;

const HOUR: Duration = Duration::from_secs(3600);

/// A pg_dump-style plain dump of a table with `n` orders.
fn dump(n: u32) -> String {
    let mut rows = String::new();
    for i in 1..=n {
        rows.push_str(&format!("{i}\tcustomer {i}\t{}.50\n", i * 10));
    }
    format!(
        "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\
         SET standard_conforming_strings = on;\n\
         SELECT pg_catalog.set_config('search_path', '', false);\n\n\
         CREATE TABLE public.orders (\n    id integer NOT NULL,\n    customer text,\n    total numeric(10,2)\n);\n\n\
         CREATE FUNCTION public.total_of(i integer) RETURNS numeric\n    LANGUAGE sql\n    AS $$ SELECT total FROM public.orders WHERE id = i; $$;\n\n\
         COPY public.orders (id, customer, total) FROM stdin;\n{rows}\\.\n\n\
         ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);\n\n\
         --\n-- PostgreSQL database dump complete\n--\n\n"
    )
}

async fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzipEncoder::new(Vec::new());
    e.write_all(data).await.unwrap();
    e.shutdown().await.unwrap();
    e.into_inner()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

struct Fixture {
    s3: S3Server,
    pg: PgServer,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let (s3, pg) = (S3Server::start(), PgServer::start());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sk"), &s3.secret_key).unwrap();
        std::fs::write(dir.path().join("pg"), &pg.password).unwrap();
        std::fs::write(dir.path().join("wrong"), "not-the-password").unwrap();
        Fixture { s3, pg, dir }
    }

    /// Seeds a backup and (unless `sidecar` is None) its `.sha256` sidecar.
    fn backup(&self, key: &str, bytes: &[u8], sidecar: Option<String>, age: Duration) {
        self.s3.seed(key, bytes, age);
        if let Some(sum) = sidecar {
            let name = key.rsplit('/').next().unwrap();
            let text = format!("{sum}  {name}\n");
            self.s3.seed(&format!("{key}.sha256"), text.as_bytes(), age);
        }
    }

    /// The drill scenario: `query` and `asserts` for the restore step; `pw` names the secret.
    async fn drill(&self, query: &str, asserts: &str, pw: &str) -> ScenarioOutcome {
        let yaml = self.drill_yaml(query, asserts, pw);
        let sc = load_scenario("drill.yaml", &yaml, BTreeMap::new());
        run_scenario(&sc, 1).await
    }

    fn drill_yaml(&self, query: &str, asserts: &str, pw: &str) -> String {
        let p = |n: &str| self.dir.path().join(n).display().to_string();
        format!(
            "name: drill\nsecrets:\n  sk: {{file: '{}'}}\n  pg: {{file: '{}'}}\n\
             steps:\n\
             - name: fetch\n  s3:\n    endpoint: '{}'\n    bucket: '{}'\n    access_key_id: '{}'\n\
             \x20   secret_access_key: '${{{{ secrets.sk }}}}'\n\
             \x20   get: {{newest: db/, checksum_sidecar: .sha256, decompress: true, keep: true}}\n\
             \x20 assert: ['age < 26h']\n\
             - name: restore\n  postgres:\n    url: '{}'\n    password: '${{{{ secrets.pg }}}}'\n\
             \x20   restore: {{file: '${{{{ steps.fetch.file }}}}'}}\n    query: \"{query}\"\n\
             \x20 assert: {asserts}\n",
            p("sk"),
            p(pw),
            self.s3.endpoint(),
            self.s3.bucket,
            self.s3.access_key,
            self.pg.url(),
        )
    }

    /// Nothing left: no scratch database, no scratch file of `run`.
    fn assert_clean(&self, o: &ScenarioOutcome) {
        assert_eq!(self.pg.databases("flowprobe_drill_"), Vec::<String>::new());
        let prefix = format!("flowprobe-{}-", o.run_id);
        let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert!(left.is_empty(), "scratch files left: {left:?}");
    }
}

fn failed(o: &ScenarioOutcome) -> (String, Option<Reason>, String) {
    let s = o
        .first_failure()
        .unwrap_or_else(|| panic!("passed:\n{}", describe(o)));
    (
        s.name.clone(),
        s.reason,
        s.message.clone().unwrap_or_default(),
    )
}

const COUNT: &str = "select count(*) as n, sum(total) as total from public.orders";
const ASSERT_COUNT: &str = "['jsonpath \"$[0].n\" == 3', 'rows == 1', 'phase \"apply\" < 1m']";

#[tokio::test]
async fn the_newest_backup_restores_and_verifies_and_nothing_is_left() {
    let f = Fixture::start();
    let old = dump(1);
    f.backup(
        "db/old.sql",
        old.as_bytes(),
        Some(sha256(old.as_bytes())),
        30 * HOUR,
    );
    let new = gzip(dump(3).as_bytes()).await;
    f.backup("db/new.sql.gz", &new, Some(sha256(&new)), HOUR);
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    assert!(o.success, "{}", describe(&o));
    let fetch = &o.steps[0];
    assert!(
        fetch.phases.iter().any(|p| p.name == "verify"),
        "{}",
        describe(&o)
    );
    assert!(o.steps[1].phases.iter().any(|p| p.name == "query"));
    f.assert_clean(&o);
}

#[tokio::test]
async fn cut_flipped_and_mis_summed_backups_are_integrity_failures() {
    let f = Fixture::start();
    let good = gzip(dump(3).as_bytes()).await;
    let cut = good[..good.len() - 20].to_vec();
    f.backup("db/a.sql.gz", &cut, Some(sha256(&cut)), HOUR);
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    let (step, reason, msg) = failed(&o);
    assert_eq!(
        (step.as_str(), reason),
        ("fetch", Some(Reason::Integrity)),
        "{msg}"
    );
    assert!(msg.contains("decompress"), "{msg}");
    f.assert_clean(&o);

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    f.backup("db/a.sql.gz", &flipped, Some(sha256(&good)), HOUR);
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    let (step, reason, msg) = failed(&o);
    assert_eq!(
        (step.as_str(), reason),
        ("fetch", Some(Reason::Integrity)),
        "{msg}"
    );
    assert!(msg.contains("checksum sidecar"), "{msg}");

    f.backup("db/a.sql.gz", &good, Some("0".repeat(64)), HOUR);
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    let (_, reason, msg) = failed(&o);
    assert_eq!(reason, Some(Reason::Integrity), "{msg}");
    f.assert_clean(&o);
}

#[tokio::test]
async fn a_dump_cut_between_statements_or_failing_half_way_is_integrity() {
    let f = Fixture::start();
    let text = dump(3);
    let cut = &text[..text.find("ALTER TABLE").unwrap()];
    f.backup(
        "db/b.sql",
        cut.as_bytes(),
        Some(sha256(cut.as_bytes())),
        HOUR,
    );
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    let (step, reason, msg) = failed(&o);
    assert_eq!(
        (step.as_str(), reason),
        ("restore", Some(Reason::Integrity)),
        "{msg}"
    );
    assert!(msg.contains("cut"), "{msg}");
    f.assert_clean(&o);

    let bad = text.replace(
        "ALTER TABLE ONLY public.orders",
        "ALTER TABLE ONLY public.missing",
    );
    f.backup(
        "db/b.sql",
        bad.as_bytes(),
        Some(sha256(bad.as_bytes())),
        HOUR,
    );
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    let (step, reason, msg) = failed(&o);
    assert_eq!(
        (step.as_str(), reason),
        ("restore", Some(Reason::Integrity)),
        "{msg}"
    );
    assert!(msg.contains("missing"), "{msg}");
    f.assert_clean(&o);
}

#[tokio::test]
async fn a_query_finding_no_rows_is_an_assertion_and_a_wrong_password_is_auth() {
    let f = Fixture::start();
    let text = dump(3);
    f.backup(
        "db/c.sql",
        text.as_bytes(),
        Some(sha256(text.as_bytes())),
        HOUR,
    );
    let o = f
        .drill(
            "select id from public.orders where total > 1000",
            "['rows > 0']",
            "pg",
        )
        .await;
    let (step, reason, _) = failed(&o);
    assert_eq!(
        (step.as_str(), reason),
        ("restore", Some(Reason::Assertion))
    );
    f.assert_clean(&o);

    let o = f.drill(COUNT, ASSERT_COUNT, "wrong").await;
    let (step, reason, msg) = failed(&o);
    assert_eq!(
        (step.as_str(), reason),
        ("restore", Some(Reason::Auth)),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert!(!describe(&o).contains("not-the-password"));
    f.assert_clean(&o);
    assert_eq!(o.steps[0].status, StepStatus::Passed);
}

#[tokio::test]
async fn leftover_scratch_databases_of_earlier_runs_are_swept() {
    let f = Fixture::start();
    f.pg.psql("postgres", "create database flowprobe_drill_leftover");
    let text = dump(3);
    f.backup(
        "db/d.sql",
        text.as_bytes(),
        Some(sha256(text.as_bytes())),
        HOUR,
    );
    let o = f.drill(COUNT, ASSERT_COUNT, "pg").await;
    assert!(o.success, "{}", describe(&o));
    f.assert_clean(&o);
}

/// Scratch files of the object `name` (any run).
fn scratch_files(name: &str) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("flowprobe-") && n.ends_with(&format!("-{name}")))
        .collect()
}

#[test]
fn sigterm_during_the_restore_still_drops_the_database_and_removes_the_file() {
    let f = Fixture::start();
    let slow = dump(3).replace(
        "ALTER TABLE ONLY",
        "SELECT pg_sleep(60);\n\nALTER TABLE ONLY",
    );
    let name = "sigterm-drill.sql";
    f.backup(
        &format!("db/{name}"),
        slow.as_bytes(),
        Some(sha256(slow.as_bytes())),
        HOUR,
    );
    let file = f.dir.path().join("drill.yaml");
    std::fs::write(&file, f.drill_yaml(COUNT, ASSERT_COUNT, "pg")).unwrap();
    let mut cmd = std::process::Command::new(flowprobe_bin());
    cmd.arg("run").arg(&file).env_remove("RUST_LOG");
    let mut child = ChildGuard::spawn("flowprobe run", cmd, &f.dir.path().join("run.log")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // The restore is in pg_sleep: the scratch database exists and the file is there.
    loop {
        let sleeping = f.pg.psql(
            "postgres",
            "select count(*) from pg_stat_activity where query like 'SELECT pg_sleep%'",
        );
        if sleeping.trim() == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no restore:\n{}",
            child.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.pg.databases("flowprobe_drill_").len(), 1);
    assert_eq!(scratch_files(name).len(), 1);
    child.signal("TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running:\n{}",
            child.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = child.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("cancelled"), "{log}");
    assert_eq!(
        f.pg.databases("flowprobe_drill_"),
        Vec::<String>::new(),
        "{log}"
    );
    assert_eq!(scratch_files(name), Vec::<String>::new(), "{log}");
}
