//! Human output on the terminal: a line per step and a summary, coloured only for a TTY
//! without `NO_COLOR`.

use std::fmt::Write;

use super::Summary;
use crate::outcome::{ConnectionUse, Reason, ScenarioOutcome, StepOutcome, StepStatus};
use crate::units::format_duration;

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
}

/// One scenario run: a header line and a line per step.
pub fn render_outcome(o: &ScenarioOutcome, color: bool, show_iteration: bool) -> String {
    render_outcome_with(o, color, show_iteration, false)
}

/// The same; with `detail` (`-v`), each step that ran also shows its phases, its connection
/// and its TLS facts.
pub fn render_outcome_with(
    o: &ScenarioOutcome,
    color: bool,
    show_iteration: bool,
    detail: bool,
) -> String {
    let p = Paint(color);
    let mut s = String::new();
    write_header(&mut s, &p, o, show_iteration);
    let width = o
        .steps
        .iter()
        .map(|st| st.name.len())
        .max()
        .unwrap_or(0)
        .max(8);
    for st in &o.steps {
        write_step(&mut s, &p, st, width);
        if detail && st.status != StepStatus::Skipped {
            write_detail(&mut s, &p, st);
        }
    }
    for e in &o.cleanup_errors {
        let _ = writeln!(s, "  {} clean-up failed: {e}", p.red("!"));
    }
    if !o.success {
        // What to search the backend's traces for.
        let mut ids = format!("trace_id {}", o.trace_id);
        if let Some(span) = o.first_failure().and_then(|st| st.span_id.as_deref()) {
            let _ = write!(ids, "  span_id {span}");
        }
        let _ = writeln!(s, "  {}", p.dim(&ids));
    }
    s
}

/// PASS/FAIL, the scenario, its duration and file; then the run's own failure, if any.
fn write_header(s: &mut String, p: &Paint, o: &ScenarioOutcome, show_iteration: bool) {
    let mark = if o.success {
        p.green("PASS")
    } else {
        p.red("FAIL")
    };
    let iter = if show_iteration {
        format!(" #{}", o.iteration)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "{mark} {}{iter}  {}  {}",
        p.bold(&o.scenario),
        p.dim(&format_duration(o.duration)),
        p.dim(&o.file)
    );
    if let Some(m) = &o.message {
        // A failure of the run itself (no step failed) leads with its reason, as steps do.
        match o.run_level_failure() {
            Some(reason) => {
                let _ = writeln!(s, "  {} {} {m}", p.red("!"), p.red(reason.as_str()));
            }
            None => {
                let _ = writeln!(s, "  {} {m}", p.red("!"));
            }
        }
    }
}

/// A step's line, names padded to `width`, with why it was skipped or failed and its notes.
fn write_step(s: &mut String, p: &Paint, st: &StepOutcome, width: usize) {
    let (mark, dur) = match st.status {
        StepStatus::Passed => (p.green("✓"), format_duration(st.duration)),
        StepStatus::Failed => (p.red("✗"), format_duration(st.duration)),
        StepStatus::Skipped => (p.dim("-"), "skipped".to_string()),
    };
    let mut extra = String::new();
    if st.cleanup {
        extra.push_str(" (finally)");
    }
    if st.attempts > 1 {
        let _ = write!(extra, " after {} attempts", st.attempts);
    }
    let _ = write!(
        s,
        "  {mark} {:<width$}  {:>8}{}",
        st.name,
        dur,
        p.dim(&extra)
    );
    if let (StepStatus::Skipped, Some(why)) = (st.status, &st.message) {
        let _ = write!(s, "  {}", p.dim(why));
    }
    if let (StepStatus::Failed, Some(reason)) = (st.status, st.reason) {
        write_failure(s, p, reason, st.message.as_deref().unwrap_or(""));
    }
    for note in &st.notes {
        let _ = write!(s, "\n      {}", p.dim(&format!("note: {note}")));
    }
    s.push('\n');
}

/// A step's phases and connection, then its TLS facts, each on a dimmed line.
fn write_detail(s: &mut String, p: &Paint, st: &StepOutcome) {
    if !st.phases.is_empty() {
        let phases: Vec<String> = st
            .phases
            .iter()
            .map(|ph| format!("{} {}", ph.name, format_duration(ph.duration)))
            .collect();
        let conn = match st.connection {
            Some(ConnectionUse::New) => " (new connection)",
            Some(ConnectionUse::Reused) => " (reused connection)",
            None => "",
        };
        let line = format!("phases: {}{conn}", phases.join(" · "));
        let _ = writeln!(s, "      {}", p.dim(&line));
    }
    if let Some(tls) = &st.tls {
        let alpn = tls
            .alpn
            .as_deref()
            .map(|a| format!(" {a}"))
            .unwrap_or_default();
        let mut line = format!("tls: {} {}{alpn}", tls.version, tls.cipher);
        if let Some(c) = tls.earliest_expiry() {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.not_after);
            let _ = write!(
                line,
                " · chain of {}, first expiry {} ({})",
                tls.chain.len(),
                humantime::format_rfc3339_seconds(at),
                c.subject
            );
        }
        let _ = writeln!(s, "      {}", p.dim(&line));
    }
}

/// A failed step's reason and message, the message's further lines indented below.
fn write_failure(s: &mut String, p: &Paint, reason: Reason, msg: &str) {
    let mut lines = msg.lines();
    let first = lines.next().unwrap_or("");
    let red = p.red(reason.as_str());
    match first
        .strip_prefix(reason.as_str())
        .filter(|r| r.starts_with(' '))
    {
        // "assertion failed at ..." already names the reason: no "assertion assertion".
        Some(rest) => {
            let _ = write!(s, "  {red}{rest}");
        }
        None => {
            let _ = write!(s, "  {red} {first}");
        }
    }
    for l in lines {
        let _ = write!(s, "\n      {l}");
    }
}

/// The closing summary; `wall` is the elapsed time of the whole command.
pub fn render_summary(
    outcomes: &[ScenarioOutcome],
    wall: std::time::Duration,
    color: bool,
) -> String {
    let p = Paint(color);
    let sum = Summary::of(outcomes);
    let mut s = format!(
        "\n{} run{}: {} passed, {} failed",
        sum.runs,
        if sum.runs == 1 { "" } else { "s" },
        if sum.passed > 0 {
            p.green(&sum.passed.to_string())
        } else {
            "0".into()
        },
        if sum.failed > 0 {
            p.red(&sum.failed.to_string())
        } else {
            "0".into()
        },
    );
    if sum.retried_steps > 0 {
        let n = sum.retried_steps;
        let steps = if n == 1 { "step" } else { "steps" };
        let _ = write!(s, " ({n} {steps} passed after a retry)");
    }
    let _ = writeln!(s, " in {}", format_duration(wall));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::fixtures::{run, step};
    use crate::outcome::{CertificateFacts, Phase, TlsFacts};
    use std::time::Duration;

    #[test]
    fn verbose_output_shows_phases_connection_and_tls_facts() {
        let mut st = step("home", StepStatus::Passed);
        st.phases = vec![
            Phase {
                name: "connect".into(),
                duration: Duration::from_millis(2),
            },
            Phase {
                name: "tls".into(),
                duration: Duration::from_millis(7),
            },
        ];
        st.connection = Some(ConnectionUse::New);
        let cert = |subject: &str, not_after| CertificateFacts {
            subject: subject.into(),
            issuer: "CN=root".into(),
            not_after,
        };
        st.tls = Some(TlsFacts {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            alpn: Some("h2".into()),
            chain: vec![
                cert("CN=shop.test", 2_000_000_000),
                cert("CN=mid", 1_900_000_000),
            ],
        });
        let o = run("shop", vec![st]);
        let plain = render_outcome(&o, false, false);
        assert!(!plain.contains("phases:"), "{plain}");
        let text = render_outcome_with(&o, false, false, true);
        assert!(
            text.contains("phases: connect 2ms · tls 7ms (new connection)"),
            "{text}"
        );
        assert!(
            text.contains("tls: TLSv1.3 TLS13_AES_128_GCM_SHA256 h2 · chain of 2, first expiry 2030-03-17T17:46:40Z (CN=mid)"),
            "{text}"
        );
    }
}
