//! The arithmetic behind the burn-rate alerts: the SRE workbook's window pairs, what each one
//! means at a scenario's run cadence (failed runs needed, budget burnt), and when an objective
//! and a cadence cannot give meaningful alerts.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The windows every SLI is recorded over, shortest first.
pub const WINDOWS: [Duration; 7] = [
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(HOUR),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(6 * HOUR),
    Duration::from_secs(DAY),
    Duration::from_secs(3 * DAY),
];

/// Who is told when an alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Open a ticket for working hours.
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }

    /// Fewest failed runs in the long window that may fire an alert of this severity: a single
    /// failed run never pages, however low the cadence.
    fn min_failures(self) -> u64 {
        match self {
            Severity::Page => 2,
            Severity::Ticket => 1,
        }
    }
}

/// One multi-window alert of the workbook: fires when the error ratio over both windows is above
/// `factor` times the error budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    pub severity: Severity,
    pub factor: f64,
    pub long: Duration,
    pub short: Duration,
}

/// Page at 14.4x (1h, 5m) and 6x (6h, 30m); ticket at 3x (1d, 2h) and 1x (3d, 6h).
pub const BURN_WINDOWS: [BurnWindow; 4] = [
    BurnWindow {
        severity: Severity::Page,
        factor: 14.4,
        long: Duration::from_secs(HOUR),
        short: Duration::from_secs(5 * MINUTE),
    },
    BurnWindow {
        severity: Severity::Page,
        factor: 6.0,
        long: Duration::from_secs(6 * HOUR),
        short: Duration::from_secs(30 * MINUTE),
    },
    BurnWindow {
        severity: Severity::Ticket,
        factor: 3.0,
        long: Duration::from_secs(DAY),
        short: Duration::from_secs(2 * HOUR),
    },
    BurnWindow {
        severity: Severity::Ticket,
        factor: 1.0,
        long: Duration::from_secs(3 * DAY),
        short: Duration::from_secs(6 * HOUR),
    },
];

/// A budget smaller than this many failed runs per SLO window cannot be alerted on sensibly:
/// one failed run would burn more than a tenth of it.
const MIN_BUDGET_RUNS: f64 = 10.0;

/// What one burn window means for one objective at one cadence.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnPlan {
    pub window: BurnWindow,
    /// Short window actually used: the workbook's, lengthened to a recorded window that holds
    /// at least two runs, so the condition does not flap between runs.
    pub short: Duration,
    /// Error ratio above which both windows must be: `factor * (1 - objective)`.
    pub ratio: f64,
    /// Share of the whole SLO window's budget burnt when the alert fires (`factor * long / window`).
    pub budget_burnt: f64,
    /// Failed runs in the long window that fire the alert at this cadence; also the guard.
    pub failures_long: u64,
    /// Failed runs in the short window that satisfy its condition at this cadence.
    pub failures_short: u64,
}

/// The alerts of one objective, and why some were left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub burns: Vec<BurnPlan>,
    pub warnings: Vec<String>,
}

/// Runs that fit in `window` at one run every `interval`.
fn runs_in(window: Duration, interval: Duration) -> f64 {
    window.as_secs_f64() / interval.as_secs_f64()
}

/// Smallest integer count strictly above `x` (a ratio above the threshold needs one more).
fn count_above(x: f64) -> u64 {
    // Guard against 1.7279999 vs 1.728 noise before flooring.
    let x = (x * 1e9).round() / 1e9;
    x.floor() as u64 + 1
}

/// Works out every burn alert of an SLI with `objective` (e.g. 0.999) over `window` for a
/// scenario run every `interval`. `what` names the SLI in warnings.
pub fn plan(what: &str, objective: f64, window: Duration, interval: Duration) -> Plan {
    let budget = 1.0 - objective;
    let mut burns = Vec::new();
    let mut warnings = Vec::new();
    let budget_runs = budget * runs_in(window, interval);
    if budget_runs < MIN_BUDGET_RUNS {
        warnings.push(format!(
            "{what}: objective {} at one run every {} leaves a budget of {} failed runs in {}: \
             one failed run burns {} of it, so its alerts are noise or silence; run at least \
             every {} or lower the objective",
            percent(objective),
            prom_duration(interval),
            round_to(budget_runs, 2),
            prom_duration(window),
            percent(1.0 / budget_runs),
            prom_duration(Duration::from_secs_f64(
                (window.as_secs_f64() * budget / MIN_BUDGET_RUNS)
                    .floor()
                    .max(1.0)
            )),
        ));
    }
    for w in BURN_WINDOWS {
        let ratio = w.factor * budget;
        let runs_long = runs_in(w.long, interval);
        if ratio >= 1.0 {
            warnings.push(format!(
                "{what}: no {} alert at {}x over {}: objective {} leaves a budget of {}, and {}x \
                 of it is more than every run failing",
                w.severity.as_str(),
                w.factor,
                prom_duration(w.long),
                percent(objective),
                percent(budget),
                w.factor,
            ));
            continue;
        }
        let failures_long = count_above(ratio * runs_long).max(w.severity.min_failures());
        if (failures_long as f64) > runs_long.floor() {
            warnings.push(format!(
                "{what}: no {} alert at {}x over {}: at one run every {} that window holds {} \
                 run(s), fewer than the {} failed runs it needs",
                w.severity.as_str(),
                w.factor,
                prom_duration(w.long),
                prom_duration(interval),
                runs_long.floor(),
                failures_long,
            ));
            continue;
        }
        let short = WINDOWS
            .iter()
            .copied()
            .filter(|d| *d >= w.short && *d <= w.long)
            .find(|d| runs_in(*d, interval) >= 2.0)
            .unwrap_or(w.long);
        burns.push(BurnPlan {
            window: w,
            short,
            ratio,
            budget_burnt: w.factor * w.long.as_secs_f64() / window.as_secs_f64(),
            failures_long,
            failures_short: count_above(ratio * runs_in(short, interval)),
        });
    }
    Plan { burns, warnings }
}

/// A Prometheus duration (`5m`, `1h`, `3d`, `1m30s`); also how durations read in annotations
/// (`2.5s`, `300ms`: fractions only occur in thresholds, never in PromQL ranges).
pub fn prom_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", round_to(d.as_secs_f64() * 1e3, 3));
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", DAY), ("h", HOUR), ("m", MINUTE)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let rest = secs as f64 + f64::from(d.subsec_nanos()) / 1e9;
    if rest > 0.0 {
        out.push_str(&format!("{}s", round_to(rest, 3)));
    }
    out
}

/// `x` rounded to `digits` decimals, without trailing zeros.
pub fn round_to(x: f64, digits: usize) -> String {
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A ratio as a plain number for PromQL (`0.001`, not `0.0010000000000000009`).
pub fn number(x: f64) -> String {
    round_to(x, 10)
}

/// A ratio as a percentage for people (`99.9%`, `2%`, `0.14%`).
pub fn percent(ratio: f64) -> String {
    format!("{}%", round_to(ratio * 100.0, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    const THIRTY_DAYS: Duration = Duration::from_secs(30 * DAY);

    #[test]
    fn workbook_numbers_at_30s() {
        let p = plan("availability", 0.999, THIRTY_DAYS, secs(30));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.burns.len(), 4);
        let fast = &p.burns[0];
        assert_eq!(number(fast.ratio), "0.0144");
        assert_eq!(percent(fast.budget_burnt), "2%");
        // 120 runs an hour: 1.728 failures allowed, so the second one fires it.
        assert_eq!(fast.failures_long, 2);
        assert_eq!(fast.failures_short, 1);
        assert_eq!(fast.short, secs(300));
        let slow_page = &p.burns[1];
        assert_eq!(percent(slow_page.budget_burnt), "5%");
        assert_eq!(slow_page.failures_long, 5); // 720 runs * 0.006 = 4.32
        assert_eq!(percent(p.burns[2].budget_burnt), "10%");
        assert_eq!(p.burns[2].failures_long, 9); // 2880 * 0.003 = 8.64
        assert_eq!(percent(p.burns[3].budget_burnt), "10%");
        assert_eq!(p.burns[3].failures_long, 9); // 8640 * 0.001 = 8.64
    }

    #[test]
    fn low_cadence_never_pages_on_one_failure() {
        // One run every 10 minutes: 6 runs an hour, 14.4 * 0.001 * 6 < 1.
        let p = plan("availability", 0.999, THIRTY_DAYS, secs(600));
        let fast = &p.burns[0];
        assert_eq!(fast.failures_long, 2);
        // 5m holds no run and 30m only three: the short window grows to 30m.
        assert_eq!(fast.short, secs(1800));
        assert!(p.burns.iter().all(|b| b.failures_long >= 1));
        assert!(p
            .burns
            .iter()
            .filter(|b| b.window.severity == Severity::Page)
            .all(|b| b.failures_long >= 2));
    }

    #[test]
    fn four_nines_at_one_run_a_minute_warns() {
        let p = plan("availability", 0.9999, THIRTY_DAYS, secs(60));
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let w = &p.warnings[0];
        assert!(w.contains("99.99%"), "{w}");
        assert!(w.contains("4.32 failed runs in 30d"), "{w}");
        assert!(w.contains("burns 23.1481%"), "{w}");
        // 30d * 0.0001 / 10 = 25.92s
        assert!(w.contains("every 25s"), "{w}");
        assert!(plan("availability", 0.999, THIRTY_DAYS, secs(60))
            .warnings
            .is_empty());
    }

    #[test]
    fn impossible_alerts_are_left_out_with_a_warning() {
        // 90%: 14.4x the 10% budget is over 100%.
        let p = plan("availability", 0.9, THIRTY_DAYS, secs(30));
        assert_eq!(p.burns.len(), 3);
        assert!(
            p.warnings[0].contains("no page alert at 14.4x over 1h"),
            "{:?}",
            p.warnings
        );
        // One run an hour: the 1h window cannot hold two failed runs.
        let p = plan("availability", 0.99, THIRTY_DAYS, secs(3600));
        assert!(p.burns.iter().all(|b| b.window.long > secs(3600)));
        assert!(
            p.warnings.iter().any(|w| w.contains("holds 1 run(s)")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn formats() {
        assert_eq!(prom_duration(secs(90)), "1m30s");
        assert_eq!(prom_duration(secs(3 * DAY)), "3d");
        assert_eq!(prom_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(prom_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(prom_duration(Duration::from_millis(62500)), "1m2.5s");
        assert_eq!(number(1.0 - 0.999), "0.001");
        assert_eq!(number(14.4 * (1.0 - 0.999)), "0.0144");
        assert_eq!(percent(0.999), "99.9%");
    }
}
