//! The restore drill: a scratch database named with a fixed prefix, created for this run and
//! dropped by the run's clean-up (earlier runs' leftovers are swept by age), into which a
//! plain SQL dump is applied statement by statement, COPY data through `copy_in`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use futures_util::SinkExt;
use tokio::io::AsyncBufReadExt;
use tokio_postgres::Client;

use super::conn::{pg_error, Target};
use super::split::{Piece, Splitter};
use super::RestoreOp;
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::decompress;
use crate::steps::{render_config, StepContext, StepError};

/// Every scratch database starts with this, so leftovers can be found and swept.
pub const DRILL_PREFIX: &str = "flowprobe_drill_";
const DEFAULT_SWEEP: Duration = Duration::from_secs(6 * 3600);
/// COPY data is sent in chunks of about this size.
const COPY_CHUNK: usize = 64 << 10;

/// Scratch databases of runs in flight in this process (never swept).
#[derive(Default)]
struct Live(Mutex<HashSet<String>>);

impl Live {
    fn set(&self, name: &str, live: bool) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if live {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }

    fn has(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }
}

/// A scratch database name: the prefix, then lower-case letters, digits and `_`, at most 63.
pub fn check_name(name: &str) -> Result<(), String> {
    if !name.starts_with(DRILL_PREFIX) || name.len() == DRILL_PREFIX.len() {
        return Err(format!(
            "the scratch database name must start with `{DRILL_PREFIX}`"
        ));
    }
    if name.len() > 63
        || !name
            .chars()
            .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Err("the scratch database name takes at most 63 of a-z, 0-9 and _".into());
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Creates the scratch database, applies the dump, and returns its name and a client on it.
pub(super) async fn run(
    target: &Target,
    admin: &Client,
    op: &RestoreOp,
    ctx: &StepContext<'_>,
    obs: &mut Observation,
) -> Result<(String, Client), StepError> {
    let name = match &op.database {
        Some(d) => render_config(d, ctx.resolver)?
            .replace('-', "_")
            .to_lowercase(),
        None => format!(
            "{DRILL_PREFIX}{}",
            run_id(ctx)?.replace('-', "_").to_lowercase()
        ),
    };
    check_name(&name).map_err(|m| StepError::new(Reason::Config, format!("{name}: {m}")))?;
    let file = render_config(&op.file, ctx.resolver)?;
    let live = ctx.shared.get::<Live>();
    let older = op.sweep_older_than.map(|d| d.0).unwrap_or(DEFAULT_SWEEP);
    let swept = sweep(admin, &live, older).await?;
    if swept > 0 {
        tracing::info!(swept, "swept old scratch databases");
    }
    let t = Instant::now();
    live.set(&name, true);
    drop_later(target, ctx, &name);
    let at = &target.display;
    // Two statements: CREATE DATABASE cannot run in the implicit transaction of a batch.
    for sql in [
        format!("CREATE DATABASE \"{name}\""),
        format!(
            "COMMENT ON DATABASE \"{name}\" IS 'flowprobe restore drill {}'",
            unix_now()
        ),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .map_err(|e| pg_error(&format!("create database {name} on {at}"), &e))?;
    }
    let scratch = target.connect(Some(&name)).await?;
    let statements = apply(&scratch, Path::new(&file)).await?;
    obs.add_phase("apply", t.elapsed());
    obs.outputs.insert("statements".into(), statements.into());
    Ok((name, scratch))
}

fn run_id(ctx: &StepContext<'_>) -> Result<String, StepError> {
    ctx.resolver
        .resolve(&crate::template::Expr::RunId)
        .map_err(|e| StepError::new(Reason::Internal, e.0))
}

/// Registers dropping the scratch database at the end of the run (also on failure).
fn drop_later(target: &Target, ctx: &StepContext<'_>, name: &str) {
    let (target, name) = (target.clone(), name.to_string());
    let live = ctx.shared.get::<Live>();
    ctx.cleanups.register(
        format!("postgres drop database {name}"),
        move || async move {
            let admin = target.connect(None).await.map_err(|e| e.message)?;
            let dropped = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .map_err(|e| pg_error(&format!("drop database {name}"), &e).message);
            live.set(&name, false);
            dropped
        },
    );
}

/// Drops scratch databases not in use by this process whose creation (from their comment)
/// is older than `older` or unknown. Returns how many were dropped.
async fn sweep(admin: &Client, live: &Live, older: Duration) -> Result<u64, StepError> {
    let rows = admin
        .query(
            "SELECT datname::text, coalesce(shobj_description(oid, 'pg_database'), '') \
             FROM pg_database WHERE starts_with(datname, $1)",
            &[&DRILL_PREFIX],
        )
        .await
        .map_err(|e| pg_error("sweep: list databases", &e))?;
    let now = unix_now();
    let mut n = 0;
    for row in rows {
        let (name, comment): (String, String) = (row.get(0), row.get(1));
        let created = comment
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        let old = created.is_none_or(|c| now.saturating_sub(c) > older.as_secs());
        if !old || live.has(&name) || check_name(&name).is_err() {
            continue;
        }
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .map_err(|e| pg_error(&format!("sweep: drop database {name}"), &e))?;
        n += 1;
    }
    Ok(n)
}

fn integrity(message: String) -> StepError {
    StepError::new(Reason::Integrity, message)
}

/// Applies the dump at `path` (plain, gzip or zstd) statement by statement; returns how many
/// statements ran. A statement the server rejects, or a cut dump, is an `integrity` failure.
async fn apply(client: &Client, path: &Path) -> Result<u64, StepError> {
    let (_, mut reader) = decompress::open(path)
        .await
        .map_err(|e| StepError::new(Reason::Config, format!("dump {}: {e}", path.display())))?;
    let mut splitter = Splitter::default();
    let (mut line, mut pieces) = (Vec::new(), Vec::new());
    let mut copy = Copy::default();
    let (mut lineno, mut statements) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| integrity(format!("dump: reading line {}: {e}", lineno + 1)))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let text = std::str::from_utf8(&line)
            .map_err(|_| integrity(format!("dump: line {lineno} is not UTF-8")))?;
        splitter.push(text, &mut pieces);
        for piece in pieces.drain(..) {
            statements += copy.handle(client, piece, lineno).await?;
        }
    }
    splitter
        .finish()
        .map_err(|m| integrity(format!("dump: {m} (after line {lineno})")))?;
    Ok(statements)
}

/// The COPY in progress, its data gathered into chunks.
#[derive(Default)]
struct Copy {
    sink: Option<std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>>,
    buf: BytesMut,
}

impl Copy {
    /// Runs one piece of the dump; returns 1 for each statement run.
    async fn handle(&mut self, client: &Client, piece: Piece, line: u64) -> Result<u64, StepError> {
        let fail = |e: tokio_postgres::Error| {
            let err = pg_error(
                &format!("dump: the statement ending at line {line} fails"),
                &e,
            );
            match e.as_db_error() {
                Some(_) => integrity(err.message),
                None => err,
            }
        };
        match piece {
            Piece::Sql(sql) => client.batch_execute(&sql).await.map_err(fail)?,
            Piece::CopyStart(sql) => {
                self.sink = Some(Box::pin(client.copy_in(sql.as_str()).await.map_err(fail)?));
            }
            Piece::CopyData(data) => {
                self.buf.extend_from_slice(data.as_bytes());
                if self.buf.len() >= COPY_CHUNK {
                    self.flush().await.map_err(fail)?;
                }
                return Ok(0);
            }
            Piece::CopyEnd => {
                self.flush().await.map_err(fail)?;
                if let Some(mut sink) = self.sink.take() {
                    sink.as_mut().finish().await.map_err(fail)?;
                }
            }
            Piece::Meta(m) if m.starts_with("\\restrict") || m.starts_with("\\unrestrict") => {
                return Ok(0)
            }
            Piece::Meta(_) => {
                return Err(integrity(format!(
                    "dump: line {line} is a psql meta-command, which a restore drill cannot run"
                )))
            }
        }
        Ok(1)
    }

    async fn flush(&mut self) -> Result<(), tokio_postgres::Error> {
        if let Some(sink) = self.sink.as_mut() {
            if !self.buf.is_empty() {
                sink.send(self.buf.split().freeze()).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_have_the_prefix_and_safe_characters() {
        assert!(check_name("flowprobe_drill_abc_123").is_ok());
        assert!(check_name("drill_abc").is_err());
        assert!(check_name("flowprobe_drill_").is_err());
        assert!(check_name("flowprobe_drill_a\"b").is_err());
        assert!(check_name(&format!("flowprobe_drill_{}", "a".repeat(60))).is_err());
    }
}
