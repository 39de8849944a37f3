//! The verification query: its rows as a JSON array of objects (the step's body, so
//! `jsonpath "$[0].n"` works) and their count (`rows`).

use tokio_postgres::Client;

use super::conn::pg_error;
use crate::observation::Observation;
use crate::outcome::Reason;
use crate::steps::StepError;

/// Runs `sql` (one row-returning statement) and records its rows. A query that fails in a
/// restored database is an `integrity` failure: the backup lacks what the check expects.
pub(super) async fn run(
    client: &Client,
    sql: &str,
    restored: bool,
    at: &str,
    obs: &mut Observation,
) -> Result<(), StepError> {
    let inner = sql.trim().trim_end_matches(';');
    let wrapped = format!("SELECT coalesce(json_agg(q), '[]'::json)::text FROM ({inner}) AS q");
    let row = client.query_one(wrapped.as_str(), &[]).await.map_err(|e| {
        let mut err = pg_error(&format!("query on {at}"), &e);
        if restored && e.as_db_error().is_some() && err.reason != Reason::Auth {
            err.reason = Reason::Integrity;
            err.message = format!("restored database: {}", err.message);
        }
        err
    })?;
    let text: String = row
        .try_get(0)
        .map_err(|e| StepError::new(Reason::Internal, format!("query result: {e}")))?;
    let rows = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    obs.outputs.insert("rows".into(), rows.into());
    obs.body = text.into_bytes();
    Ok(())
}
