//! The `redis` step against a real redis-server (requirepass, an ACL user, a TLS port): the
//! round-trip, commands with `reply N`, TLS, failure reasons (auth, connect, tls, timeout,
//! cache), a server killed in the middle of a run, and keys never left behind.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use flowprobe::outcome::{Reason, ScenarioOutcome, StepStatus};
use flowprobe::run::run_scenario;
use flowprobe::scenario::load::load_source;
use flowprobe::scenario::LoadOptions;
use support::describe;
use support::redis::RedisServer;

/// A server plus secret files holding its passwords (secrets come from files, as mounted
/// Kubernetes Secrets do).
struct Fixture {
    redis: RedisServer,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default-pw"),
            format!("{}\n", redis.password),
        )
        .unwrap();
        std::fs::write(dir.path().join("acl-pw"), &redis.acl_password).unwrap();
        std::fs::write(dir.path().join("wrong-pw"), "not-the-password-7f3a").unwrap();
        Fixture { redis, dir }
    }

    fn secret(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vars(&self) -> BTreeMap<String, String> {
        let p = |n: &str| self.secret(n).display().to_string();
        BTreeMap::from([
            ("url".to_string(), self.redis.url()),
            ("tls_url".to_string(), self.redis.tls_url()),
            ("ca".to_string(), self.redis.ca_file().display().to_string()),
            ("user".to_string(), self.redis.acl_user.clone()),
            ("default_pw_file".to_string(), p("default-pw")),
            ("acl_pw_file".to_string(), p("acl-pw")),
            ("wrong_pw_file".to_string(), p("wrong-pw")),
        ])
    }

    /// Loads a scenario whose secrets section is templated with the fixture's files.
    async fn run(&self, yaml: &str) -> ScenarioOutcome {
        let sc =
            load(yaml, &self.vars()).unwrap_or_else(|e| panic!("scenario does not load:\n{e}"));
        run_scenario(&sc, 1).await
    }
}

/// Replaces `@name@` placeholders in the secrets block with file paths (secret sources are
/// not templated), then loads with the fixture's vars.
fn load(
    yaml: &str,
    vars: &BTreeMap<String, String>,
) -> Result<flowprobe::scenario::LoadedScenario, String> {
    let mut text = yaml.to_string();
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    let opts = LoadOptions {
        vars: vars.clone(),
        check_secrets: true,
    };
    load_source("redis.yaml", &text, &opts).map_err(|d| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn phases(o: &ScenarioOutcome, step: usize) -> Vec<String> {
    o.steps[step]
        .phases
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

const SECRETS: &str = "
secrets:
  default_pw: {file: '@default_pw_file@'}
  acl_pw: {file: '@acl_pw_file@'}
  wrong_pw: {file: '@wrong_pw_file@'}
";

#[tokio::test]
async fn roundtrip_as_acl_user_passes_and_leaves_no_key() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: cache-rt{SECRETS}
steps:
  - name: cache
    redis:
      url: ${{{{ vars.url }}}}
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      db: 3
      roundtrip: {{ttl: 30s, size: 4KiB}}
    assert:
      - duration < 5s
      - phase \"get\" < 2s
"
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    assert_eq!(
        phases(&o, 0),
        ["dns", "connect", "setup", "set", "get", "ttl", "del"]
    );
    // The stages of the connection the step used: TCP connect and AUTH/SELECT take time, an
    // IP address needs no lookup to speak of, and there is no TLS.
    let step = &o.steps[0];
    let took = |name: &str| {
        step.phases
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .duration
    };
    assert!(took("connect") > Duration::ZERO, "{step:?}");
    assert!(took("setup") > Duration::ZERO, "{step:?}");
    assert!(took("dns") < Duration::from_millis(50), "{step:?}");
    assert!(step.tls.is_none(), "{step:?}");
    assert_eq!(
        step.connection,
        Some(flowprobe::outcome::ConnectionUse::New)
    );
    assert!(f.redis.keys_in(3, "*").is_empty(), "keys left in db 3");
    assert!(f.redis.keys("*").is_empty(), "keys left in db 0");
}

#[tokio::test]
async fn a_host_name_goes_through_the_system_resolver_and_its_lookup_is_timed() {
    let f = Fixture::start();
    let url = f.redis.url().replace("127.0.0.1", "localhost");
    let o = f
        .run(&format!(
            "name: cache-localhost{SECRETS}
steps:
  - name: cache
    redis:
      url: {url}
      password: ${{{{ secrets.default_pw }}}}
      roundtrip: {{}}
"
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    let step = &o.steps[0];
    let took = |name: &str| {
        step.phases
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .duration
    };
    assert!(took("dns") > Duration::ZERO, "{step:?}");
    assert!(took("connect") > Duration::ZERO, "{step:?}");
    // The stages come one after the other, within the step's time.
    let stages = took("dns") + took("connect") + took("setup");
    assert!(stages <= step.duration, "{step:?}");
}

#[tokio::test]
async fn roundtrip_outputs_feed_later_steps_and_the_key_holds_the_run_id() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: cache-out{SECRETS}
steps:
  - name: cache
    redis:
      url: ${{{{ vars.url }}}}
      password: ${{{{ secrets.default_pw }}}}
      roundtrip: {{value: 'hello-${{{{ run.id }}}}', ttl: 45s}}
  - name: check
    redis:
      url: ${{{{ vars.url }}}}
      password: ${{{{ secrets.default_pw }}}}
      commands:
        - [ECHO, '${{{{ steps.cache.key }}}}']
        - [ECHO, '${{{{ steps.cache.ttl }}}}']
    assert:
      - reply 0 startsWith \"flowprobe:\"
      - reply 0 contains \"${{{{ run.id }}}}\"
      - reply 1 > 40
      - reply 1 <= 45
"
        ))
        .await;
    assert!(o.success, "{}", describe(&o));
    assert!(f.redis.keys("*").is_empty());
}

#[tokio::test]
async fn commands_give_replies_and_created_keys_are_deleted_even_after_a_failure() {
    let f = Fixture::start();
    {
        let mut admin = f.redis.admin();
        redis::cmd("SET")
            .arg("preexisting")
            .arg("keep me")
            .exec(&mut admin)
            .unwrap();
    }
    let yaml = |expect: &str| {
        format!(
            "name: cache-cmds{SECRETS}
steps:
  - name: cmds
    redis:
      url: ${{{{ vars.url }}}}
      username: ${{{{ vars.user }}}}
      password: ${{{{ secrets.acl_pw }}}}
      commands:
        - [SET, 'probe:${{{{ run.id }}}}:a', v1, EX, 60]
        - [GET, 'probe:${{{{ run.id }}}}:a']
        - [INCRBY, 'probe:${{{{ run.id }}}}:n', 5]
        - [HSET, 'probe:${{{{ run.id }}}}:h', f, 1, g, 2]
        - [HGETALL, 'probe:${{{{ run.id }}}}:h']
        - [APPEND, preexisting, '!']
    capture:
      got: reply 1
    assert:
      - reply 0 == \"OK\"
      - reply 1 == \"{expect}\"
      - reply 2 == 5
      - reply 4 count == 4
"
        )
    };
    let ok = f.run(&yaml("v1")).await;
    assert!(ok.success, "{}", describe(&ok));
    assert_eq!(
        phases(&ok, 0),
        ["dns", "connect", "setup", "set", "get", "incrby", "hset", "hgetall", "append"]
    );
    assert_eq!(
        f.redis.keys("*"),
        ["preexisting"],
        "only the key that existed before is left"
    );

    let failed = f.run(&yaml("v2")).await;
    assert!(!failed.success);
    assert_eq!(
        failed.reason,
        Some(Reason::Assertion),
        "{}",
        describe(&failed)
    );
    let msg = failed.steps[0].message.clone().unwrap_or_default();
    assert!(msg.contains("reply 1") && msg.contains("\"v1\""), "{msg}");
    assert_eq!(
        f.redis.keys("*"),
        ["preexisting"],
        "keys of a failed run are deleted too"
    );
    let mut admin = f.redis.admin();
    let kept: String = redis::cmd("GET")
        .arg("preexisting")
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        kept, "keep me!!",
        "the pre-existing key is changed by the commands, never deleted"
    );
}

#[tokio::test]
async fn tls_roundtrip_checks_the_certificate() {
    let f = Fixture::start();
    let scenario = |tls: &str| {
        format!(
            "name: cache-tls{SECRETS}
steps:
  - name: cache
    redis:
      url: ${{{{ vars.tls_url }}}}
      password: ${{{{ secrets.default_pw }}}}
      {tls}
      roundtrip: {{}}
"
        )
    };
    let trusted = f.run(&scenario("tls: {ca_file: '${{ vars.ca }}'}")).await;
    assert!(trusted.success, "{}", describe(&trusted));
    let step = &trusted.steps[0];
    assert_eq!(
        phases(&trusted, 0)[..4],
        ["dns", "connect", "tls", "setup"],
        "{step:?}"
    );
    let tls_took = step
        .phases
        .iter()
        .find(|p| p.name == "tls")
        .unwrap()
        .duration;
    assert!(tls_took > Duration::ZERO, "{step:?}");
    let facts = step.tls.as_ref().expect("TLS facts of the handshake");
    assert_eq!(facts.version, "TLSv1.3", "{facts:?}");
    assert!(facts.cipher.starts_with("TLS13_"), "{facts:?}");
    assert!(facts.chain[0].subject.contains("127.0.0.1"), "{facts:?}");
    assert!(step.certificate_not_after.is_some(), "{step:?}");

    let untrusted = f.run(&scenario("")).await;
    assert_eq!(
        untrusted.reason,
        Some(Reason::Tls),
        "{}",
        describe(&untrusted)
    );
    let msg = untrusted.steps[0].message.clone().unwrap_or_default();
    assert!(msg.contains("rediss://127.0.0.1"), "{msg}");

    let insecure = f.run(&scenario("tls: {insecure: true}")).await;
    assert!(insecure.success, "{}", describe(&insecure));
    assert!(f.redis.keys("*").is_empty());
}

#[tokio::test]
async fn wrong_passwords_are_auth_failures_and_never_shown() {
    let f = Fixture::start();
    for user in ["", "username: ${{ vars.user }}"] {
        let o = f
            .run(&format!(
                "name: cache-auth{SECRETS}
steps:
  - name: cache
    redis:
      url: ${{{{ vars.url }}}}
      {user}
      password: ${{{{ secrets.wrong_pw }}}}
      roundtrip: {{}}
"
            ))
            .await;
        assert_eq!(o.reason, Some(Reason::Auth), "{}", describe(&o));
        let text = format!("{}{:?}", describe(&o), o);
        assert!(!text.contains("not-the-password-7f3a"), "{text}");
    }
    // No password at all: the server answers NOAUTH to the first command.
    let o = f
        .run(
            "name: cache-noauth
steps:
  - name: cache
    redis: {url: '${{ vars.url }}', commands: [[GET, x]]}
",
        )
        .await;
    assert_eq!(o.reason, Some(Reason::Auth), "{}", describe(&o));
    assert!(
        o.steps[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("NOAUTH"),
        "{}",
        describe(&o)
    );
}

#[test]
fn the_binary_reports_auth_without_the_password() {
    let f = Fixture::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.yaml");
    std::fs::write(
        &file,
        format!(
            "name: cache-auth-bin
secrets:
  pw: {{file: '{}'}}
steps:
  - name: cache
    redis: {{url: '{}', password: '${{{{ secrets.pw }}}}', roundtrip: {{}}}}
",
            f.secret("wrong-pw").display(),
            f.redis.url()
        ),
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let out = std::process::Command::new(support::flowprobe_bin())
        .arg("run")
        .arg(&file)
        .arg("--report")
        .arg(format!("json={}", report.display()))
        .arg("--no-color")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json = std::fs::read_to_string(&report).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        json.contains("\"reason\": \"auth\"") || json.contains("\"reason\":\"auth\""),
        "{json}"
    );
    for text in [&*stdout, &*stderr, &json] {
        assert!(!text.contains("not-the-password-7f3a"), "{text}");
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_a_connect_failure() {
    let f = Fixture::start();
    let port = support::free_port();
    let o = f
        .run(&format!(
            "name: cache-down{SECRETS}
steps:
  - name: cache
    redis: {{url: 'redis://127.0.0.1:{port}', password: '${{{{ secrets.default_pw }}}}', roundtrip: {{}}}}
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    let msg = o.steps[0].message.clone().unwrap_or_default();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("refused"),
        "{msg}"
    );
}

#[tokio::test]
async fn slow_replies_hit_the_command_timeout() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: cache-slow{SECRETS}
steps:
  - name: cache
    redis:
      url: ${{{{ vars.url }}}}
      password: ${{{{ secrets.default_pw }}}}
      command_timeout: 200ms
      commands: [[BLPOP, 'flowprobe:never', 5]]
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Timeout), "{}", describe(&o));
    assert!(
        o.steps[0].duration < Duration::from_secs(4),
        "{}",
        describe(&o)
    );
}

#[tokio::test]
async fn other_server_errors_are_cache_failures() {
    let f = Fixture::start();
    let o = f
        .run(&format!(
            "name: cache-wrongtype{SECRETS}
steps:
  - name: cache
    redis:
      url: ${{{{ vars.url }}}}
      password: ${{{{ secrets.default_pw }}}}
      commands: [[LPUSH, 'flowprobe:${{{{ run.id }}}}:list', a], [GET, 'flowprobe:${{{{ run.id }}}}:list']]
"
        ))
        .await;
    assert_eq!(o.reason, Some(Reason::Cache), "{}", describe(&o));
    let msg = o.steps[0].message.clone().unwrap_or_default();
    assert!(
        msg.contains("command 1 (GET)") && msg.contains("WRONGTYPE"),
        "{msg}"
    );
    assert!(
        f.redis.keys("*").is_empty(),
        "the list LPUSH made is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_fails_the_step_with_connect_and_reports_the_cleanup() {
    let mut f = Fixture::start();
    let vars = f.vars();
    let sc = load(
        &format!(
            "name: cache-killed{SECRETS}
steps:
  - name: before
    redis: {{url: '${{{{ vars.url }}}}', password: '${{{{ secrets.default_pw }}}}', roundtrip: {{}}}}
  - name: during
    redis:
      url: ${{{{ vars.url }}}}
      password: ${{{{ secrets.default_pw }}}}
      command_timeout: 20s
      commands:
        - [SET, 'flowprobe:${{{{ run.id }}}}:marker', x]
        - [BLPOP, 'flowprobe:gate', 15]
  - name: after
    redis: {{url: '${{{{ vars.url }}}}', password: '${{{{ secrets.default_pw }}}}', roundtrip: {{}}}}
"
        ),
        &vars,
    )
    .unwrap();
    let run = tokio::spawn(async move { run_scenario(&sc, 1).await });
    // Kill only once the step is really blocked inside the server.
    let blocked =
        tokio::task::block_in_place(|| f.redis.wait_for_blocked_client(Duration::from_secs(10)));
    blocked.unwrap();
    f.redis.kill();
    let o = run.await.unwrap();
    assert_eq!(o.steps[0].status, StepStatus::Passed, "{}", describe(&o));
    assert_eq!(o.steps[1].status, StepStatus::Failed, "{}", describe(&o));
    assert_eq!(o.reason, Some(Reason::Connect), "{}", describe(&o));
    let msg = o.steps[1].message.clone().unwrap_or_default();
    assert!(msg.contains("command 1 (BLPOP)"), "{msg}");
    assert_eq!(o.steps[2].status, StepStatus::Skipped);
    // The marker key could not be deleted: the run says so instead of hiding it.
    assert_eq!(o.cleanup_errors.len(), 1, "{:?}", o.cleanup_errors);
    assert!(
        o.cleanup_errors[0].contains(":marker"),
        "{:?}",
        o.cleanup_errors
    );
}

#[test]
fn plain_text_secrets_are_load_errors_with_locations() {
    let vars = BTreeMap::new();
    let e = load(
        "name: bad
steps:
  - name: cache
    redis:
      url: redis://default:hunter2@127.0.0.1:6379
      password: hunter2
      roundtrip: {}
",
        &vars,
    )
    .unwrap_err();
    assert!(e.contains("redis.yaml:5:"), "{e}");
    assert!(e.contains("redis.yaml:6:"), "{e}");
    assert!(e.contains("must come from a secret"), "{e}");
}
