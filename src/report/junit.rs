//! The JUnit XML report: a testsuite per scenario run, a testcase per step, failure text.

use std::fmt::Write;

use crate::outcome::{ScenarioOutcome, StepStatus};

use super::escape_markup as esc;

/// Renders the report document.
pub fn render(outcomes: &[ScenarioOutcome]) -> String {
    let many_iterations = outcomes.iter().any(|o| o.iteration > 1);
    let tests: usize = outcomes.iter().map(|o| o.steps.len()).sum();
    let failures: usize = outcomes
        .iter()
        .flat_map(|o| &o.steps)
        .filter(|s| s.status == StepStatus::Failed)
        .count();
    let time: f64 = outcomes.iter().map(|o| o.duration.as_secs_f64()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"flowprobe\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">"
    );
    for o in outcomes {
        let name = if many_iterations {
            format!("{} #{}", o.scenario, o.iteration)
        } else {
            o.scenario.clone()
        };
        let fails = o
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .count();
        let skips = o
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Skipped)
            .count();
        let ts = humantime::format_rfc3339_seconds(o.started_at);
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" errors=\"0\" skipped=\"{skips}\" time=\"{:.3}\" timestamp=\"{ts}\" file=\"{}\">",
            esc(&name),
            o.steps.len(),
            o.duration.as_secs_f64(),
            esc(&o.file)
        );
        let _ = writeln!(
            x,
            "    <properties><property name=\"run_id\" value=\"{}\"/><property name=\"iteration\" value=\"{}\"/></properties>",
            esc(&o.run_id),
            o.iteration
        );
        if let Some(m) = &o.message {
            let _ = writeln!(x, "    <system-err>{}</system-err>", esc(m));
        }
        for s in &o.steps {
            let case_name = if s.cleanup {
                format!("{} (finally)", s.name)
            } else {
                s.name.clone()
            };
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}.{}\" time=\"{:.3}\" file=\"{}\"",
                esc(&case_name),
                esc(&o.scenario),
                s.kind,
                s.duration.as_secs_f64(),
                esc(&s.location)
            );
            match s.status {
                StepStatus::Passed => x.push_str("/>\n"),
                StepStatus::Skipped => match &s.message {
                    Some(m) => {
                        let _ = writeln!(x, "><skipped message=\"{}\"/></testcase>", esc(m));
                    }
                    None => x.push_str("><skipped/></testcase>\n"),
                },
                StepStatus::Failed => {
                    let reason = s.reason.map(|r| r.as_str()).unwrap_or("internal");
                    let msg = s.message.as_deref().unwrap_or("");
                    let first = msg.lines().next().unwrap_or("");
                    let _ = write!(
                        x,
                        ">\n      <failure type=\"{reason}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                        esc(&format!("{reason}: {first}")),
                        esc(msg)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
