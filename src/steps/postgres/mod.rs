//! The `postgres` step: run a query and expose its rows as a JSON array, and/or restore a plain
//! SQL dump (optionally gzip/zstd) from an earlier step's kept file into a scratch database of
//! this run, then run the verification query there. The scratch database is dropped by the
//! run's clean-up and swept by name prefix on later runs.

mod conn;
mod kind;
mod query;
mod restore;
mod split;

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::http::TlsSpec;
use super::redis::references_secret;
use super::{render_config, StepContext, StepError};
use crate::observation::Observation;
use crate::units::Dur;

pub use restore::DRILL_PREFIX;

/// A PostgreSQL query, or a restore drill.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// `postgres://user@host:5432/dbname`; `?sslmode=require` (or a `tls` block) for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Must come from a secret: `${{ secrets.pg_password }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `ca_file`, `cert_file` + `key_file`; a `tls` block means TLS is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Limit for connecting and logging in (default: the step's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Dur>,
    /// One row-returning statement; its rows become the body as a JSON array of objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Restore a dump into a scratch database first; `query` then runs in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreOp>,
}

/// Restore a plain SQL dump into a scratch database created for this run.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreOp {
    /// The dump: plain SQL, gzip or zstd (told by magic bytes), e.g. `${{ steps.fetch.file }}`.
    pub file: String,
    /// Scratch database name (default `flowprobe_drill_<run id>`); must start with
    /// `flowprobe_drill_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Drop scratch databases of other runs older than this before restoring (default 6h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_older_than: Option<Dur>,
}

fn is_template(s: &str) -> bool {
    s.contains("${{")
}

impl PostgresSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |p: &str, m: &str| errs.push((p.to_string(), m.to_string()));
        match self.url.as_deref() {
            None | Some("") => err("", "postgres step needs a `url`"),
            Some(u) if !is_template(u) => {
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                    err("url", "url must start with postgres:// or postgresql://");
                }
                if conn::url_password(u).is_some() {
                    err(
                        "url",
                        "no password in the url: give `password: ${{ secrets.NAME }}`",
                    );
                }
            }
            Some(_) => {}
        }
        if let Some(p) = &self.password {
            if !references_secret(p) {
                err(
                    "password",
                    "the password must come from a secret: `${{ secrets.NAME }}`",
                );
            }
        }
        if self.query.is_none() && self.restore.is_none() {
            err("", "postgres step needs a `query`, a `restore`, or both");
        }
        if let Some(t) = &self.tls {
            if t.insecure == Some(true) {
                err("tls.insecure", "`insecure` is not supported: use `ca_file`");
            }
            if t.cert_file.is_some() != t.key_file.is_some() {
                err("tls", "give both `cert_file` and `key_file`, or neither");
            }
        }
        if let Some(r) = &self.restore {
            if r.file.trim().is_empty() {
                err("restore.file", "restore needs a `file`");
            }
            if let Some(db) = r.database.as_deref().filter(|d| !is_template(d)) {
                if let Err(m) = restore::check_name(db) {
                    err("restore.database", &m);
                }
            }
        }
        errs
    }
}

/// Runs one attempt: connect, restore (if any), query (if any).
pub async fn execute(spec: &PostgresSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let target = conn::Target::from_spec(spec, ctx)?;
    let mut obs = Observation::default();
    let t = Instant::now();
    let client = target.connect(None).await?;
    obs.add_phase("connect", t.elapsed());
    let (client, restored) = match &spec.restore {
        Some(op) => {
            let (db, scratch) = restore::run(&target, &client, op, ctx, &mut obs).await?;
            obs.outputs.insert("database".into(), db.into());
            (scratch, true)
        }
        None => (client, false),
    };
    if let Some(q) = &spec.query {
        let sql = render_config(q, ctx.resolver)?;
        let t = Instant::now();
        query::run(&client, &sql, restored, &target.display, &mut obs).await?;
        obs.add_phase("query", t.elapsed());
    }
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(yaml: &str) -> String {
        let s: PostgresSpec = crate::scenario::yaml::from_str(yaml).unwrap();
        s.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn valid_specs_pass_and_mistakes_are_named() {
        for y in [
            "{url: 'postgres://drill@db:5432/postgres', password: '${{ secrets.pg }}', query: 'select 1'}",
            "{url: '${{ env.PG_URL }}', restore: {file: '${{ steps.fetch.file }}', database: 'flowprobe_drill_${{ run.id }}'}, query: 'select 1'}",
        ] {
            assert_eq!(messages(y), "", "{y}");
        }
        let m =
            messages("{url: 'postgres://u:hunter2@db/x', password: plain, tls: {insecure: true}}");
        assert!(m.contains("url: no password in the url"), "{m}");
        assert!(
            m.contains("password: the password must come from a secret"),
            "{m}"
        );
        assert!(m.contains("needs a `query`"), "{m}");
        assert!(m.contains("tls.insecure"), "{m}");
        assert!(!m.contains("hunter2"));
        let m = messages("{url: 'mysql://db', restore: {file: '', database: prod}}");
        assert!(m.contains("url must start with postgres://"), "{m}");
        assert!(m.contains("restore.file"), "{m}");
        assert!(m.contains("restore.database: "), "{m}");
    }
}
