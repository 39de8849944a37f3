//! Serve mode's `/status`: each scenario's last outcome, run counts and next run, as a JSON
//! document or, for a browser that asks for `text/html`, as a page. Everything on the page is
//! escaped; outcome messages are already redacted by the runner.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::http::{App, ScenarioState};
use crate::outcome::{ScenarioOutcome, StepStatus};
use crate::report::escape_markup as esc;

/// The head of the page: its style sheet, before any content.
const HTML_HEAD: &str = concat!(
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>flowprobe status</title>",
    "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}",
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}",
    ".passed{color:#080}.failed{color:#b00}.skipped{color:#888}pre{margin:0;white-space:pre-wrap}</style>",
    "</head><body>\n"
);

impl App {
    /// The `/status` document with every retained run.
    pub fn status_json(&self) -> Value {
        self.status_doc(crate::serve::history::RETAINED_RUNS)
    }

    /// The `/status` document with at most `history` runs per scenario (see
    /// [`crate::serve::status_schema`]).
    pub fn status_doc(&self, history: usize) -> Value {
        let now = SystemTime::now();
        let scenarios: Vec<Value> = self
            .read()
            .iter()
            .map(|(name, s)| {
                json!({
                    "name": name,
                    "file": s.file,
                    "labels": s.labels,
                    "interval_seconds": s.interval.as_secs_f64(),
                    "jitter_seconds": s.jitter.as_secs_f64(),
                    "timeout_seconds": s.timeout.as_secs_f64(),
                    "steps": s.steps.iter().map(|(n, k)| json!({"name": n, "kind": k})).collect::<Vec<_>>(),
                    "next_run": s.next_run.map(rfc3339),
                    "running": s.running,
                    "runs": self.metrics.counts(name).unwrap_or_default(),
                    "last_run_failure": s.last.as_deref().and_then(run_failure_json),
                    "last_run": s.last.as_deref(),
                    "last_failure": s.history.last_failure().map(|o| &**o),
                    "uptime": s.history.uptime(now),
                    "history": s.history.runs(history),
                })
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "ready": self.is_ready(),
            "started_at": rfc3339(self.started),
            "shard": self.shard.map(|s| s.to_string()),
            "labels": self.metrics.const_labels().iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "generated_at": rfc3339(now),
            "last_reload": self.last_reload(),
            "otlp_export": self.otlp_counts(),
            "scenarios": scenarios,
        })
    }

    /// The `/status` page for people.
    pub fn status_html(&self) -> String {
        let mut h = String::with_capacity(16 * 1024);
        h.push_str(HTML_HEAD);
        self.html_header(&mut h);
        h.push_str("<table><tr><th>scenario</th><th>last run</th><th>reason</th><th>duration</th><th>finished</th><th>next run</th><th>runs ok / failed / skipped</th></tr>\n");
        let map = self.read();
        for (name, s) in map.iter() {
            self.html_summary_row(&mut h, name, s);
        }
        h.push_str("</table>\n");
        for (name, s) in map.iter() {
            html_scenario(&mut h, name, s);
        }
        h.push_str("</body></html>\n");
        h
    }

    /// The version, readiness, start and shard, and the result of the last reload.
    fn html_header(&self, h: &mut String) {
        let _ = write!(
            h,
            "<h1>flowprobe {}</h1>\n<p>{} · started {}{}</p>\n",
            esc(env!("CARGO_PKG_VERSION")),
            if self.is_ready() {
                "ready"
            } else {
                "not ready"
            },
            esc(&rfc3339(self.started)),
            self.shard
                .map(|s| format!(" · shard {}", esc(&s.to_string())))
                .unwrap_or_default()
        );
        if let Some(r) = self.last_reload() {
            let _ = writeln!(
                h,
                "<p>last reload {}: {}</p>",
                esc(&rfc3339(r.at)),
                if r.success {
                    "applied"
                } else {
                    "rejected, the previous scenarios keep running"
                }
            );
            for e in &r.errors {
                let _ = writeln!(h, "<pre class=\"failed\">{}</pre>", esc(e));
            }
        }
    }

    /// A scenario's row in the summary table.
    fn html_summary_row(&self, h: &mut String, name: &str, s: &ScenarioState) {
        let (state, reason, duration, finished) = match &s.last {
            None => (
                "never".to_string(),
                String::new(),
                String::new(),
                String::new(),
            ),
            Some(o) => (
                if o.success { "passed" } else { "failed" }.to_string(),
                o.reason.map(|r| r.to_string()).unwrap_or_default(),
                crate::units::format_duration(o.duration),
                rfc3339(o.started_at + o.duration),
            ),
        };
        let counts = self.metrics.counts(name).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#{n}\">{n}</a>{running}</td><td class=\"{st}\">{st}</td><td>{r}</td><td>{d}</td><td>{f}</td><td>{next}</td><td>{} / {} / {}</td></tr>",
            counts.success,
            counts.failure,
            counts.skipped,
            n = esc(name),
            running = if s.running { " (running)" } else { "" },
            st = esc(&state),
            r = esc(&reason),
            d = esc(&duration),
            f = esc(&finished),
            next = esc(&s.next_run.map(rfc3339).unwrap_or_default()),
        );
    }
}

/// A scenario's section: its file and interval, and its last run step by step.
fn html_scenario(h: &mut String, name: &str, s: &ScenarioState) {
    let _ = writeln!(
        h,
        "<h2 id=\"{n}\">{n}</h2>\n<p>{file} · every {i}{j}</p>",
        n = esc(name),
        file = esc(&s.file),
        i = esc(&crate::units::format_duration(s.interval)),
        j = if s.jitter.is_zero() {
            String::new()
        } else {
            format!(
                " (jitter {})",
                esc(&crate::units::format_duration(s.jitter))
            )
        }
    );
    let Some(o) = &s.last else {
        h.push_str("<p>not run yet</p>\n");
        return;
    };
    if let Some(reason) = o.run_level_failure() {
        let _ = writeln!(
            h,
            "<p class=\"failed\">the run failed before or between its steps: {}</p>",
            esc(reason.as_str())
        );
    }
    let _ = writeln!(h, "<p>trace id {}</p>", esc(&o.trace_id));
    if let Some(m) = &o.message {
        let _ = writeln!(h, "<pre class=\"failed\">{}</pre>", esc(m));
    }
    html_steps(h, o);
    for e in &o.cleanup_errors {
        let _ = writeln!(h, "<pre class=\"failed\">clean-up: {}</pre>", esc(e));
    }
}

/// The table of a run's steps.
fn html_steps(h: &mut String, o: &ScenarioOutcome) {
    h.push_str("<table><tr><th>step</th><th>kind</th><th>result</th><th>reason</th><th>duration</th><th>attempts</th><th>message</th><th>notes</th></tr>\n");
    for st in &o.steps {
        let status = match st.status {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        };
        let _ = writeln!(
            h,
            "<tr><td>{}{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>",
            esc(&st.name),
            if st.cleanup { " (finally)" } else { "" },
            esc(st.kind),
            esc(&st.reason.map(|r| r.to_string()).unwrap_or_default()),
            esc(&crate::units::format_duration(st.duration)),
            st.attempts,
            esc(st.message.as_deref().unwrap_or("")),
            esc(&st.notes.join("\n")),
        );
    }
    h.push_str("</table>\n");
}

/// `{"reason", "message"}` of a run that failed on its own (no step failed), else None.
fn run_failure_json(o: &ScenarioOutcome) -> Option<Value> {
    o.run_level_failure()
        .map(|reason| json!({"reason": reason, "message": o.message}))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// True when the client prefers HTML (a browser) to JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().starts_with("text/html"))
}

/// `/status`: the page for a browser that asks for HTML, else the JSON document.
pub(super) async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: axum::extract::Query<crate::serve::status_page::StatusQuery>,
) -> Response {
    if wants_html(&headers) {
        crate::serve::status_page::page(&app)
    } else {
        axum::Json(app.status_doc(query.history_limit())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Reason, StepOutcome};
    use crate::serve::metrics::Metrics;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    fn app_with_last_run(last: ScenarioOutcome) -> App {
        let sc = crate::scenario::load::load_source(
            "t.yaml",
            "name: shop\nsteps:\n  - name: home\n    http: {url: \"http://127.0.0.1:9/\"}\n",
            &crate::scenario::LoadOptions::default(),
        )
        .expect("valid scenario");
        let metrics = Arc::new(Metrics::new(&[], &[]).expect("metrics"));
        metrics.sync(std::slice::from_ref(&sc));
        let app = App::new(metrics, None);
        app.sync(&[sc]);
        app.finished(&Arc::new(last));
        app
    }

    fn outcome(success: bool, step: StepStatus, reason: Option<Reason>) -> ScenarioOutcome {
        let step = StepOutcome {
            reason: None,
            notes: vec!["response body cut at max_body <1 KiB>".into()],
            ..crate::outcome::fixtures::step("home", step)
        };
        ScenarioOutcome {
            success,
            reason,
            message: (!success).then(|| "secret `pw`: cannot read file /run/pw <x>".to_string()),
            ..crate::outcome::fixtures::run("shop", vec![step])
        }
    }

    #[test]
    fn status_shows_a_run_level_failure_and_step_notes() {
        let app = app_with_last_run(outcome(false, StepStatus::Skipped, Some(Reason::Config)));
        let doc = app.status_json();
        let sc = &doc["scenarios"][0];
        assert_eq!(sc["last_run_failure"]["reason"], "config");
        assert_eq!(
            sc["last_run_failure"]["message"],
            "secret `pw`: cannot read file /run/pw <x>"
        );
        assert_eq!(
            sc["last_run"]["steps"][0]["notes"][0],
            "response body cut at max_body <1 KiB>"
        );
        let html = app.status_html();
        assert!(
            html.contains("the run failed before or between its steps: config"),
            "{html}"
        );
        assert!(
            html.contains("cannot read file /run/pw &lt;x&gt;"),
            "{html}"
        );
        assert!(html.contains("<pre>response body cut at max_body &lt;1 KiB&gt;</pre>"));
    }

    #[test]
    fn status_has_no_run_level_failure_when_a_step_failed_or_the_run_passed() {
        let app = app_with_last_run(outcome(false, StepStatus::Failed, Some(Reason::Connect)));
        assert!(app.status_json()["scenarios"][0]["last_run_failure"].is_null());
        assert!(!app.status_html().contains("before or between its steps"));
        let app = app_with_last_run(outcome(true, StepStatus::Passed, None));
        assert!(app.status_json()["scenarios"][0]["last_run_failure"].is_null());
    }

    #[test]
    fn negotiates_html_only_when_asked() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, "application/json".parse().expect("header"));
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            "application/xhtml+xml, text/html;q=0.9, */*;q=0.8"
                .parse()
                .expect("header"),
        );
        assert!(wants_html(&h));
    }
}
