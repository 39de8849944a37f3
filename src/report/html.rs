//! The HTML report (`run --report html=FILE`): one self-contained file, no script, no external
//! asset, that opens offline from a CI artifact: the summary, the threshold verdicts, the
//! failures (with each failed assertion's `file:line`, actual and expected), and every run with
//! its steps and a waterfall of their network phases. Everything is escaped; outcome messages
//! are already redacted by the runner.

use std::fmt::Write as _;

use super::{escape_markup as esc, Summary};
use crate::outcome::{ScenarioOutcome, StepOutcome, StepStatus};
use crate::run::thresholds::ThresholdResult;
use crate::units::format_duration as dur;

const CSS: &str = include_str!("../serve/status_page.css");

fn status_word(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}

fn run_word(o: &ScenarioOutcome) -> String {
    match (o.success, o.reason) {
        (true, _) => "passed".into(),
        (false, Some(r)) => format!("failed ({r})"),
        (false, None) => "failed".into(),
    }
}

/// Renders the report document.
pub fn render(outcomes: &[ScenarioOutcome], thresholds: &[ThresholdResult]) -> String {
    let mut h = String::with_capacity(32 * 1024 + outcomes.len() * 4096);
    let s = Summary::of(outcomes);
    let _ = write!(
        h,
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<meta name=\"color-scheme\" content=\"light dark\">",
            "<title>flowprobe report: {} of {} runs failed</title><style>{}</style></head>\n<body>\n",
            "<header><h1>flowprobe report</h1><p class=\"muted\">flowprobe {} · {}</p></header>\n",
            "<section id=\"summary\" aria-label=\"summary\"><p class=\"summary\">",
            "<span id=\"runs\">{} runs</span><span id=\"passed\" class=\"passed\">{} passed</span>",
            "<span id=\"failed\" class=\"failed\">{} failed</span><span>{} retried steps</span></p></section>\n"
        ),
        s.failed,
        s.runs,
        CSS,
        esc(env!("CARGO_PKG_VERSION")),
        esc(&humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
        s.runs,
        s.passed,
        s.failed,
        s.retried_steps,
    );
    thresholds_table(&mut h, thresholds);
    failures(&mut h, outcomes);
    h.push_str("<section id=\"all-runs\"><h2>Runs</h2>\n");
    for (i, o) in outcomes.iter().enumerate() {
        run_section(&mut h, i, o);
    }
    h.push_str("</section>\n</body></html>\n");
    h
}

fn thresholds_table(h: &mut String, thresholds: &[ThresholdResult]) {
    if thresholds.is_empty() {
        return;
    }
    h.push_str("<section id=\"thresholds\"><h2>Thresholds</h2><table><thead><tr><th>scenario</th><th>threshold</th><th>measured</th><th>samples</th><th>verdict</th><th>where</th></tr></thead><tbody>\n");
    for t in thresholds {
        let verdict = if t.passed { "passed" } else { "failed" };
        let _ = writeln!(
            h,
            "<tr class=\"threshold {verdict}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{verdict}\">{verdict}</td><td>{}</td></tr>",
            esc(&t.scenario),
            esc(&t.threshold),
            esc(&t.display),
            t.samples,
            esc(&t.location),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn failures(h: &mut String, outcomes: &[ScenarioOutcome]) {
    let failed: Vec<(usize, &ScenarioOutcome)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.success)
        .collect();
    if failed.is_empty() {
        return;
    }
    h.push_str("<section id=\"failures\"><h2>Failures</h2>\n");
    for (i, o) in failed {
        let _ = writeln!(
            h,
            "<article class=\"failure\" data-scenario=\"{n}\"><h3><a href=\"#run-{i}\">{n}</a> (iteration {}): {}</h3>\n<p class=\"trace\">trace id <code>{}</code></p>",
            o.iteration,
            esc(&run_word(o)),
            esc(&o.trace_id),
            n = esc(&o.scenario),
        );
        if let Some(m) = &o.message {
            let _ = writeln!(h, "<pre class=\"bad\">{}</pre>", esc(m));
        }
        for st in o.steps.iter().filter(|s| s.status == StepStatus::Failed) {
            failed_step(h, st);
        }
        for e in &o.cleanup_errors {
            let _ = writeln!(h, "<pre class=\"bad\">clean-up: {}</pre>", esc(e));
        }
        h.push_str("</article>\n");
    }
    h.push_str("</section>\n");
}

fn failed_step(h: &mut String, st: &StepOutcome) {
    let _ = writeln!(
        h,
        "<p>step <strong>{}</strong> ({}) at {}: {} after {} attempt(s){}</p><pre class=\"bad\">{}</pre>",
        esc(&st.name),
        esc(st.kind),
        esc(&st.location),
        esc(&st.reason.map(|r| r.to_string()).unwrap_or_default()),
        st.attempts,
        st.span_id
            .as_deref()
            .map(|s| format!(" · span id <code>{}</code>", esc(s)))
            .unwrap_or_default(),
        esc(st.message.as_deref().unwrap_or("")),
    );
    let failed: Vec<_> = st.assertions.iter().filter(|a| !a.passed).collect();
    if failed.is_empty() {
        return;
    }
    h.push_str("<table class=\"assertions\"><thead><tr><th>assertion</th><th>where</th><th>actual</th><th>expected</th></tr></thead><tbody>\n");
    for a in failed {
        let _ = writeln!(
            h,
            "<tr class=\"assertion failed\"><td><code>{}</code></td><td class=\"where\">{}</td><td class=\"actual\"><pre>{}</pre></td><td class=\"expected\"><pre>{}</pre></td></tr>",
            esc(&a.assertion),
            esc(&a.location),
            esc(&a.actual),
            esc(&a.expected),
        );
    }
    h.push_str("</tbody></table>\n");
}

fn run_section(h: &mut String, i: usize, o: &ScenarioOutcome) {
    let _ = writeln!(
        h,
        "<details class=\"run {cls}\" id=\"run-{i}\" data-scenario=\"{n}\"{open}><summary><span class=\"badge {cls}\">{w}</span> {n} · iteration {} · {} · started {} · run id {} · trace id {}</summary>",
        o.iteration,
        esc(&dur(o.duration)),
        esc(&humantime::format_rfc3339_millis(o.started_at).to_string()),
        esc(&o.run_id),
        esc(&o.trace_id),
        cls = if o.success { "passed" } else { "failed" },
        w = esc(&run_word(o)),
        n = esc(&o.scenario),
        open = if o.success { "" } else { " open" },
    );
    h.push_str("<table class=\"steps\"><thead><tr><th>step</th><th>kind</th><th>result</th><th>reason</th><th>duration</th><th>attempts</th><th>phases</th><th>message</th></tr></thead><tbody>\n");
    for st in &o.steps {
        let phases: Vec<String> = st
            .phases
            .iter()
            .map(|p| format!("{} {}", p.name, dur(p.duration)))
            .collect();
        let _ = writeln!(
            h,
            "<tr class=\"step {s}\"><td>{}{}</td><td>{}</td><td class=\"{s}\">{s}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            esc(&st.name),
            if st.cleanup { " (finally)" } else { "" },
            esc(st.kind),
            esc(&st.reason.map(|r| r.to_string()).unwrap_or_default()),
            esc(&dur(st.duration)),
            st.attempts,
            esc(&phases.join(", ")),
            esc([st.message.clone().unwrap_or_default(), st.notes.join("\n")].join("\n").trim()),
            s = status_word(st.status),
        );
    }
    h.push_str("</tbody></table>\n");
    waterfall(h, o);
    h.push_str("</details>\n");
}

/// An inline SVG: one row per step at its offset in the run, its phases inside the bar.
fn waterfall(h: &mut String, o: &ScenarioOutcome) {
    let total = o
        .steps
        .iter()
        .map(|s| s.duration.as_secs_f64())
        .sum::<f64>()
        .max(1e-6);
    const W: f64 = 600.0;
    const ROW: f64 = 22.0;
    let _ = writeln!(
        h,
        "<svg class=\"waterfall-chart\" viewBox=\"0 0 {W} {}\" width=\"100%\" role=\"img\" aria-label=\"waterfall of {}\">",
        o.steps.len() as f64 * ROW + 2.0,
        esc(&o.scenario)
    );
    let mut at = 0.0;
    for (i, st) in o.steps.iter().enumerate() {
        let d = st.duration.as_secs_f64();
        let (x, y) = (at / total * W, i as f64 * ROW + 2.0);
        let s = status_word(st.status);
        let _ = writeln!(
            h,
            "<g class=\"wf-step {s}\" data-step=\"{n}\"><title>{n} {s} {}</title><rect class=\"bar {s}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\"/>",
            esc(&dur(st.duration)),
            (d / total * W).max(1.0),
            ROW - 6.0,
            n = esc(&st.name),
        );
        let mut px = x;
        for p in &st.phases {
            let pw = p.duration.as_secs_f64() / total * W;
            let class: String = p
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let _ = writeln!(
                h,
                "<rect class=\"phase phase-{class}\" x=\"{px:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\"><title>{} / {} {}</title></rect>",
                y + 4.0,
                pw.max(0.5),
                ROW - 14.0,
                esc(&st.name),
                esc(&p.name),
                esc(&dur(p.duration)),
            );
            px += pw;
        }
        h.push_str("</g>\n");
        at += d;
    }
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{fixtures, AssertionOutcome, Phase};
    use std::time::Duration;

    fn failing() -> ScenarioOutcome {
        let mut step = fixtures::step("api <x>", StepStatus::Failed);
        step.message = Some("status 500 [redacted]".into());
        step.phases = vec![Phase {
            name: "first_byte".into(),
            duration: Duration::from_millis(3),
        }];
        step.assertions = vec![AssertionOutcome {
            assertion: "status == 200".into(),
            passed: false,
            actual: "500".into(),
            expected: "200".into(),
            location: "shop.yaml:7:9".into(),
        }];
        fixtures::run(
            "shop",
            vec![fixtures::step("home", StepStatus::Passed), step],
        )
    }

    #[test]
    fn shows_failures_with_where_actual_and_expected_and_escapes() {
        let ok = fixtures::run("ok", vec![fixtures::step("home", StepStatus::Passed)]);
        let html = render(&[ok, failing()], &[]);
        assert!(html.contains("<span id=\"failed\" class=\"failed\">1 failed</span>"));
        assert!(
            html.contains("<td class=\"where\">shop.yaml:7:9</td>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"actual\"><pre>500</pre></td>"));
        assert!(html.contains("<td class=\"expected\"><pre>200</pre></td>"));
        assert!(html.contains("api &lt;x&gt;") && !html.contains("api <x>"));
        assert!(html.contains("class=\"phase phase-first_byte\""));
        assert!(html.contains("trace id <code>0af7651916cd43dd8448eb211c80319c</code>"));
        assert!(html.contains("span id <code>b7ad6b7169203331</code>"));
        assert_eq!(html.matches("<details class=\"run").count(), 2);
        assert!(
            !html.contains("<script") && !html.contains("http://") && !html.contains("https://")
        );
    }

    #[test]
    fn shows_threshold_verdicts() {
        let t = ThresholdResult {
            scenario: "shop".into(),
            threshold: "p95 < 100ms".into(),
            location: "shop.yaml:4:5".into(),
            measured: Some(0.2),
            display: "200ms".into(),
            samples: 3,
            passed: false,
        };
        let html = render(&[failing()], &[t]);
        assert!(html.contains("<tr class=\"threshold failed\"><td>shop</td><td>p95 &lt; 100ms</td><td>200ms</td><td>3</td>"), "{html}");
    }
}
