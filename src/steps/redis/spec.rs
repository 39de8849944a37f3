//! What a `redis` step says — where the cache is (one node by URL, a Redis Cluster by its
//! nodes, or a primary found through Sentinel), how to log in, what to check — and the
//! load-time checks of those settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::nodes::{parse_node, url_password};
use crate::steps::http::TlsSpec;
use crate::template::{Expr, Template};
use crate::units::{Dur, Size};

/// Largest round-trip value.
pub(super) const MAX_VALUE_SIZE: u64 = 64 << 20;

/// A Redis check: connect (one node, a cluster, or the primary Sentinel names; ACL user,
/// password from a secret, db, TLS), then a round-trip, commands, or both (round-trip first).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// One node: `redis://host:6379/0` or `rediss://host:6380` (TLS). A password in the URL
    /// must be a secret template; prefer `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Redis Cluster: some or all of its nodes as `host:port` (or redis:// / rediss:// URLs);
    /// an entry may hold several, comma-separated. The slot map is discovered from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Vec<String>>,
    /// Sentinel: the sentinels and the master name; the step probes the current primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelSpec>,
    /// `replica` (with `sentinel`): the round-trip's value is also read from every replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_from: Option<ReadFrom>,
    /// ACL user name (Redis 6+); without it the `default` user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password: must come from a secret, e.g. `${{ secrets.redis_password }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Database index (overrides the URL's `/N`; not with `cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<i64>,
    /// TLS to the data nodes: CA file, client certificate, `insecure: true`. With `cluster` or
    /// `sentinel` it turns TLS on (`tls: {}` for the system roots); with `url` it needs rediss://.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Limit for TCP + TLS + AUTH (default: the step's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// Limit for each command's reply (default: the step's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<Dur>,
    /// SET with expiry, GET and byte-exact compare, TTL check, DEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roundtrip: Option<Roundtrip>,
    /// Commands run in order, e.g. `[[SET, k, v, EX, 60], [GET, k]]`; replies are
    /// `reply 0`, `reply 1`, ... in assertions and `steps.NAME.replies.N` in templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<RedisArg>>,
}

/// The sentinels to ask for the current primary, and how to log in to them (their own user,
/// password and TLS; the data nodes use the step's).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelSpec {
    /// Sentinels as `host:port` (or redis:// / rediss:// URLs); an entry may hold several,
    /// comma-separated. Asked all at once; the first answer counts.
    pub nodes: Vec<String>,
    /// The monitored master's name (`sentinel monitor NAME ...`).
    pub master: String,
    /// ACL user on the sentinels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password of the sentinels: must come from a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// TLS to the sentinels (turns TLS on for host:port entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Where the round-trip's value is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// The primary only.
    #[default]
    Primary,
    /// The primary, then every replica the sentinels list (catches broken replication).
    Replica,
}

/// The round-trip's key, value and expiry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Roundtrip {
    /// Key (default `flowprobe:<run.id>:<random>`, so concurrent runs never collide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Value written and read back (default: random bytes, new each run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Size of the random value (default 32B); not with `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    /// Expiry set with the value and checked with PTTL (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Dur>,
}

/// One argument of a command: a string (may use templates) or a number.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RedisArg {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// True when `s` takes its value from a secret (`${{ secrets.NAME }}`), so it is never written
/// in plain text in a scenario.
pub(crate) fn references_secret(s: &str) -> bool {
    Template::parse(s)
        .map(|t| t.exprs().any(|(e, _)| matches!(e, Expr::Secret(_))))
        .unwrap_or(false)
}

/// (field path suffix, message) pairs.
type Problems = Vec<(String, String)>;

fn push(errs: &mut Problems, path: &str, msg: impl Into<String>) {
    errs.push((path.to_string(), msg.into()));
}

impl RedisSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs = Problems::new();
        self.check_target(&mut errs);
        check_secret(&mut errs, "password", self.password.as_deref());
        check_tls_pair(&mut errs, "tls", self.tls.as_ref());
        if let Some(db) = self.db {
            if db < 0 {
                push(&mut errs, "db", format!("db must be 0 or more, got {db}"));
            }
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if d.is_some_and(|d| d.0.is_zero()) {
                push(&mut errs, name, format!("{name} must be greater than 0"));
            }
        }
        if self.roundtrip.is_none() && self.commands.is_empty() {
            push(
                &mut errs,
                "",
                "redis step needs `roundtrip`, `commands`, or both",
            );
        }
        if let Some(rt) = &self.roundtrip {
            check_roundtrip(&mut errs, rt);
        }
        check_commands(&mut errs, &self.commands);
        errs
    }

    /// Exactly one of url / cluster / sentinel, each well-formed; `read_from` only where it works.
    fn check_target(&self, errs: &mut Problems) {
        let given = [
            self.url.is_some(),
            self.cluster.is_some(),
            self.sentinel.is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            0 => push(
                errs,
                "",
                "redis step needs `url` (one node), `cluster` (Redis Cluster nodes) or `sentinel`",
            ),
            1 => {}
            _ => push(
                errs,
                "",
                "give one of `url`, `cluster` and `sentinel`, not several",
            ),
        }
        if let Some(u) = &self.url {
            check_url(errs, u, self.tls.is_some());
        }
        if let Some(nodes) = &self.cluster {
            check_nodes(errs, "cluster", nodes, "tls", self.tls.is_some());
            if self.db.is_some() {
                push(errs, "db", "Redis Cluster has only database 0: remove `db`");
            }
        }
        if let Some(s) = &self.sentinel {
            check_nodes(
                errs,
                "sentinel.nodes",
                &s.nodes,
                "sentinel.tls",
                s.tls.is_some(),
            );
            if s.master.trim().is_empty() {
                push(
                    errs,
                    "sentinel.master",
                    "the master's name must not be empty",
                );
            }
            check_secret(errs, "sentinel.password", s.password.as_deref());
            check_tls_pair(errs, "sentinel.tls", s.tls.as_ref());
        }
        if self.read_from == Some(ReadFrom::Replica) {
            if self.sentinel.is_none() {
                push(
                    errs,
                    "read_from",
                    "`read_from: replica` needs `sentinel` (the replicas come from the sentinels)",
                );
            }
            if self.roundtrip.is_none() {
                push(
                    errs,
                    "read_from",
                    "`read_from: replica` reads the round-trip's key: add `roundtrip`",
                );
            }
        }
    }
}

fn check_secret(errs: &mut Problems, path: &str, value: Option<&str>) {
    if value.is_some_and(|pw| !references_secret(pw)) {
        push(
            errs,
            path,
            format!(
                "the password must come from a secret: `{}: ${{{{ secrets.NAME }}}}`",
                last(path)
            ),
        );
    }
}

fn last(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn check_tls_pair(errs: &mut Problems, path: &str, tls: Option<&TlsSpec>) {
    if let Some(t) = tls {
        if t.cert_file.is_some() != t.key_file.is_some() {
            push(
                errs,
                path,
                "a client certificate needs both `cert_file` and `key_file`",
            );
        }
    }
}

fn check_url(errs: &mut Problems, u: &str, has_tls: bool) {
    if u.starts_with("${{") {
        return;
    }
    if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
        let hint = if u.starts_with("redis+cluster") || u.contains(',') {
            " (for Redis Cluster, list its nodes: `cluster: [host:port, ...]`)"
        } else {
            ""
        };
        push(
            errs,
            "url",
            format!("url must start with redis:// or rediss://, got `{u}`{hint}"),
        );
    }
    check_url_password(errs, "url", u);
    if u.starts_with("redis://") && has_tls {
        push(errs, "tls", "`tls` needs a rediss:// URL");
    }
}

fn check_url_password(errs: &mut Problems, path: &str, u: &str) {
    if let Some(pw) = url_password(u) {
        if !references_secret(pw) {
            push(
                errs,
                path,
                "the URL holds a plain-text password: use `password: ${{ secrets.NAME }}`",
            );
        }
    }
}

/// A node list (`cluster`, `sentinel.nodes`): not empty, each entry `host:port` or a
/// redis:// / rediss:// URL (templates are checked when rendered), one TLS mode.
fn check_nodes(errs: &mut Problems, path: &str, nodes: &[String], tls_path: &str, has_tls: bool) {
    if nodes.is_empty() {
        push(errs, path, "needs at least one node (host:port)");
    }
    let (mut plain, mut secure) = (false, false);
    for (i, entry) in nodes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if entry.contains("${{") {
            continue;
        }
        for node in split_nodes(entry) {
            match node.split_once("://") {
                Some(("redis", _)) => plain = true,
                Some(("rediss", _)) => secure = true,
                Some((scheme, _)) => {
                    push(
                        errs,
                        &p,
                        format!(
                            "a node is host:port or a redis:// or rediss:// URL, got {scheme}://"
                        ),
                    );
                    continue;
                }
                None => {}
            }
            check_url_password(errs, &p, node);
            if let Err(m) = parse_node(node, false) {
                push(errs, &p, m);
            }
        }
    }
    if plain && secure {
        push(errs, path, "mixes redis:// and rediss:// nodes");
    }
    if plain && has_tls {
        push(
            errs,
            tls_path,
            "`tls` does not go with redis:// nodes (use host:port or rediss://)",
        );
    }
}

/// The nodes in one entry: several may be given comma- or space-separated (e.g. from one var).
pub(super) fn split_nodes(entry: &str) -> impl Iterator<Item = &str> {
    entry
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

fn check_roundtrip(errs: &mut Problems, rt: &Roundtrip) {
    if rt.value.is_some() && rt.size.is_some() {
        push(errs, "roundtrip", "give `value` or `size`, not both");
    }
    if let Some(s) = rt.size {
        if s.0 == 0 || s.0 > MAX_VALUE_SIZE {
            push(errs, "roundtrip.size", "size must be between 1B and 64MiB");
        }
    }
    if let Some(t) = rt.ttl {
        if t.0.as_millis() == 0 {
            push(errs, "roundtrip.ttl", "ttl must be at least 1ms");
        }
    }
}

fn check_commands(errs: &mut Problems, commands: &[Vec<RedisArg>]) {
    for (i, c) in commands.iter().enumerate() {
        match c.first() {
            None => push(errs, &format!("commands[{i}]"), "empty command"),
            Some(RedisArg::Str(name)) if !name.trim().is_empty() => {}
            Some(_) => push(
                errs,
                &format!("commands[{i}]"),
                "a command starts with its name, e.g. [GET, key]",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> RedisSpec {
        crate::scenario::yaml::from_str(yaml).unwrap()
    }

    fn messages(s: &RedisSpec) -> String {
        s.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_valid_spec_has_no_errors() {
        let s = spec(
            "{url: 'rediss://cache:6380/2', username: probe, password: '${{ secrets.pw }}', \
             tls: {ca_file: /ca.pem}, roundtrip: {ttl: 30s}, commands: [[SET, k, v, EX, 60], [GET, k]]}",
        );
        assert_eq!(messages(&s), "");
        assert_eq!(s.commands[0][4], RedisArg::Int(60));
    }

    #[test]
    fn plain_text_passwords_are_rejected() {
        let m = messages(&spec(
            "{url: 'redis://h:6379', password: hunter2, roundtrip: {}}",
        ));
        assert!(
            m.contains("password: the password must come from a secret"),
            "{m}"
        );
        let m = messages(&spec(
            "{url: 'redis://default:hunter2@h:6379', roundtrip: {}}",
        ));
        assert!(
            m.contains("url: the URL holds a plain-text password"),
            "{m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
        let ok = spec("{url: 'redis://default:${{ secrets.pw }}@h:6379', roundtrip: {}}");
        assert_eq!(messages(&ok), "");
        let env_only = spec("{url: 'redis://h', password: '${{ env.PW }}', roundtrip: {}}");
        assert!(messages(&env_only).contains("must come from a secret"));
    }

    #[test]
    fn structural_mistakes_are_reported() {
        let m = messages(&spec("{url: 'http://h', tls: {ca_file: x}}"));
        assert!(m.contains("redis:// or rediss://"), "{m}");
        assert!(m.contains("needs `roundtrip`, `commands`"), "{m}");
        let m = messages(&spec(
            "{url: 'redis://h', tls: {insecure: true}, commands: [[], [1, 2]]}",
        ));
        assert!(m.contains("tls: `tls` needs a rediss:// URL"), "{m}");
        assert!(m.contains("commands[0]: empty command"), "{m}");
        assert!(
            m.contains("commands[1]: a command starts with its name"),
            "{m}"
        );
        let m = messages(&spec(
            "{url: 'redis://h', db: -1, roundtrip: {value: x, size: 1KiB, ttl: 0s}}",
        ));
        assert!(m.contains("db must be 0 or more"), "{m}");
        assert!(m.contains("`value` or `size`"), "{m}");
        assert!(m.contains("ttl must be at least 1ms"), "{m}");
    }

    #[test]
    fn exactly_one_topology_is_given() {
        let m = messages(&spec("{roundtrip: {}}"));
        assert!(m.contains("needs `url` (one node), `cluster`"), "{m}");
        let m = messages(&spec(
            "{url: 'redis://h', cluster: ['a:1'], sentinel: {nodes: ['s:26379'], master: m}, roundtrip: {}}",
        ));
        assert!(
            m.contains("give one of `url`, `cluster` and `sentinel`"),
            "{m}"
        );
        let m = messages(&spec("{url: 'redis+cluster://a:1,b:2', roundtrip: {}}"));
        assert!(m.contains("cluster: [host:port, ...]"), "{m}");
    }

    #[test]
    fn cluster_nodes_are_checked() {
        let ok = spec(
            "{cluster: ['10.0.0.1:6379, 10.0.0.2:6379', 'redis-2.redis:6379', '${{ vars.more }}'], \
             username: probe, password: '${{ secrets.pw }}', tls: {ca_file: /ca.pem}, roundtrip: {}}",
        );
        assert_eq!(messages(&ok), "");
        let m = messages(&spec(
            "{cluster: ['a', 'b:x', 'http://c:1', 'redis://d:1', 'rediss://e:1', 'redis://u:pw@f:1'], db: 1, roundtrip: {}}",
        ));
        for want in [
            "cluster[0]: ",
            "cluster[1]: ",
            "cluster[2]: a node is host:port or a redis:// or rediss:// URL, got http://",
            "cluster[5]: the URL holds a plain-text password",
            "cluster: mixes redis:// and rediss:// nodes",
            "db: Redis Cluster has only database 0",
        ] {
            assert!(m.contains(want), "{want} not in:\n{m}");
        }
        assert!(
            !m.contains("cluster[3]") && !m.contains("cluster[4]"),
            "{m}"
        );
        let m = messages(&spec("{cluster: [], roundtrip: {}}"));
        assert!(m.contains("cluster: needs at least one node"), "{m}");
        let m = messages(&spec(
            "{cluster: ['redis://a:1'], tls: {insecure: true}, roundtrip: {}}",
        ));
        assert!(
            m.contains("tls: `tls` does not go with redis:// nodes"),
            "{m}"
        );
    }

    #[test]
    fn sentinel_settings_are_checked() {
        let ok = spec(
            "{sentinel: {nodes: ['s0:26379', 's1:26379'], master: mymaster, username: watcher, \
             password: '${{ secrets.spw }}', tls: {ca_file: /ca.pem}}, read_from: replica, \
             password: '${{ secrets.pw }}', db: 2, roundtrip: {}}",
        );
        assert_eq!(messages(&ok), "");
        assert_eq!(ok.read_from, Some(ReadFrom::Replica));
        let m = messages(&spec(
            "{sentinel: {nodes: [], master: ' ', password: plain, tls: {cert_file: c}}, commands: [[PING]]}",
        ));
        for want in [
            "sentinel.nodes: needs at least one node",
            "sentinel.master: the master's name must not be empty",
            "sentinel.password: the password must come from a secret: `password:",
            "sentinel.tls: a client certificate needs both",
        ] {
            assert!(m.contains(want), "{want} not in:\n{m}");
        }
        let m = messages(&spec(
            "{url: 'redis://h', read_from: replica, commands: [[PING]]}",
        ));
        assert!(
            m.contains("read_from: `read_from: replica` needs `sentinel`"),
            "{m}"
        );
        assert!(
            m.contains("read_from: `read_from: replica` reads the round-trip's key"),
            "{m}"
        );
        assert!(crate::scenario::yaml::from_str::<RedisSpec>(
            "{sentinel: {nodes: [a:1]}, roundtrip: {}}"
        )
        .is_err());
    }
}
