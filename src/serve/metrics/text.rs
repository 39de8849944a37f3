//! The text expositions, Prometheus 0.0.4 and OpenMetrics 1.0, written lazily in chunks of
//! about 64 KiB: registry metrics first, then each family over all scenarios. OpenMetrics adds
//! `_created` to counters and histograms, exemplars on buckets, and `# EOF`. Phase histograms
//! are native-only and so appear in the protobuf exposition only.

use std::fmt::Write as _;
use std::ops::Deref;
use std::sync::Arc;

use hdrhistogram::Histogram;
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use super::family::Family;
use super::series::{Lazy, ScenarioMetrics, Series};
use super::{escape, fmt_f64, lock, Metrics, CHUNK_BYTES, QUANTILES};

/// Iterator over the text exposition's chunks (see [`Metrics::render_chunks`]).
pub struct RenderChunks<M: Deref<Target = Metrics>> {
    metrics: M,
    om: bool,
    scenarios: Vec<Arc<ScenarioMetrics>>,
    /// None: the registry part is next.
    family: Option<usize>,
    pos: usize,
    header_done: bool,
    slot: u64,
    scratch: Option<Histogram<u64>>,
}

impl<M: Deref<Target = Metrics>> RenderChunks<M> {
    pub(super) fn new(metrics: M, om: bool) -> RenderChunks<M> {
        let scenarios = metrics.read().values().cloned().collect();
        let slot = metrics.slot();
        RenderChunks {
            scenarios,
            slot,
            metrics,
            om,
            family: None,
            pos: 0,
            header_done: false,
            scratch: Histogram::new(3).ok(),
        }
    }

    fn shown(&self, family: Family) -> bool {
        match family {
            Family::PhaseDuration => false,
            Family::StepLatency => self.metrics.latency_summary,
            _ => true,
        }
    }
}

impl<M: Deref<Target = Metrics>> Iterator for RenderChunks<M> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let Some(fi) = self.family else {
            self.family = Some(0);
            return Some(self.metrics.registry_text(self.om));
        };
        let mut out = String::with_capacity(CHUNK_BYTES + 4096);
        let mut fi = fi;
        while fi < Family::ALL.len() && out.len() < CHUNK_BYTES {
            let family = Family::ALL[fi];
            if self.pos < self.scenarios.len() && self.shown(family) {
                let m = self.scenarios[self.pos].clone();
                let start = out.len();
                self.write_scenario(family, &m, &mut out);
                if out.len() > start && !self.header_done {
                    let (name, kind, help) = family.meta();
                    let name = if self.om { family.om_name() } else { name };
                    let header = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
                    out.insert_str(start, &header);
                    self.header_done = true;
                }
                self.pos += 1;
            } else {
                fi += 1;
                self.pos = 0;
                self.header_done = false;
            }
        }
        if fi >= Family::ALL.len() && self.om && self.family != Some(usize::MAX) {
            out.push_str("# EOF\n");
            fi = usize::MAX;
        }
        self.family = Some(fi);
        (!out.is_empty()).then_some(out)
    }
}

impl<M: Deref<Target = Metrics>> RenderChunks<M> {
    fn write_scenario(&mut self, family: Family, m: &ScenarioMetrics, out: &mut String) {
        let w = Writer {
            out,
            name: family.meta().0,
            om: self.om,
            created: m.created,
        };
        let l = &m.labels;
        let s = lock(&m.series);
        match family {
            Family::StepLatency => {
                if let Some(scratch) = self.scratch.as_mut() {
                    write_step_latency(w, l, &s, self.slot, scratch);
                }
            }
            Family::StepDuration
            | Family::StepFailures
            | Family::StepRetries
            | Family::PhaseDuration
            | Family::CertExpiry
            | Family::TlsVersion => write_step_family(family, w, l, &s),
            _ => write_run_family(family, w, l, &s),
        }
    }
}

/// Where and how a family's lines are written.
struct Writer<'a> {
    out: &'a mut String,
    name: &'static str,
    om: bool,
    /// The scenario's `_created`, for counters that exist from the start.
    created: f64,
}

impl Writer<'_> {
    fn line(&mut self, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{}{{{labels}}} {value}", self.name);
    }

    /// A counter sample, and in OpenMetrics its `_created`.
    fn counter(&mut self, labels: &str, value: u64, created: f64) {
        self.line(labels, value);
        if self.om {
            let base = self.name.strip_suffix("_total").unwrap_or(self.name);
            let _ = writeln!(self.out, "{base}_created{{{labels}}} {}", fmt_f64(created));
        }
    }

    fn lazy(&mut self, labels: &str, c: Lazy) {
        if let Some((n, created)) = c {
            self.counter(labels, n, created);
        }
    }
}

/// A family with one or a few series per scenario (runs, their durations and failures, the
/// last run, the scenario's info).
fn write_run_family(family: Family, mut w: Writer<'_>, l: &str, s: &Series) {
    let created = w.created;
    match family {
        Family::Runs => {
            w.counter(&format!("{l},outcome=\"success\""), s.success, created);
            w.counter(&format!("{l},outcome=\"failure\""), s.failure, created);
        }
        Family::Skipped => w.lazy(l, s.skipped),
        Family::RunDuration => s.run_duration.write(w.out, w.name, l, w.om),
        Family::RunFailures => {
            for (r, n, created) in s.run_failures.iter() {
                w.counter(&format!("{l},reason=\"{}\"", r.as_str()), n, created);
            }
        }
        Family::Success => {
            if let Some(ok) = s.last_success {
                w.line(l, u8::from(ok));
            }
        }
        Family::LastRun => {
            if let Some(t) = s.last_run {
                w.line(l, fmt_f64(t));
            }
        }
        Family::LastSuccess => {
            if let Some(t) = s.last_success_at {
                w.line(l, fmt_f64(t));
            }
        }
        Family::Info => {
            let labels = format!(
                "{l},file=\"{}\",interval=\"{}\"",
                escape(&s.file),
                escape(&s.interval)
            );
            w.line(&labels, 1);
        }
        // Per-step families: `write_step_family` and `write_step_latency`.
        _ => {}
    }
}

/// A family with series per step (durations, failures, retries, certificates, TLS versions).
fn write_step_family(family: Family, mut w: Writer<'_>, l: &str, s: &Series) {
    for (step, st) in &s.steps {
        let step = escape(step);
        match family {
            Family::StepDuration => {
                let labels = format!("{l},{}", st.labels);
                st.duration.write(w.out, w.name, &labels, w.om);
            }
            Family::StepFailures => {
                for (r, n, created) in st.failures.iter() {
                    let labels = format!("{l},{},reason=\"{}\"", st.labels, r.as_str());
                    w.counter(&labels, n, created);
                }
            }
            Family::StepRetries => w.lazy(&format!("{l},step=\"{step}\""), st.retries),
            Family::CertExpiry => {
                if let Some(t) = st.cert_not_after {
                    w.line(&format!("{l},step=\"{step}\""), t);
                }
            }
            Family::TlsVersion => {
                if let Some(v) = &st.tls_version {
                    w.line(&format!("{l},step=\"{step}\",version=\"{}\"", escape(v)), 1);
                }
            }
            // Per-scenario families: `write_run_family`; latency: `write_step_latency`.
            _ => {}
        }
    }
}

/// Each step's windowed quantiles and its cumulative sum and count.
fn write_step_latency(
    mut w: Writer<'_>,
    l: &str,
    s: &Series,
    slot: u64,
    scratch: &mut Histogram<u64>,
) {
    for (step, st) in &s.steps {
        // NaN while the window is empty, as Prometheus summaries do.
        let q = st.window.quantiles(slot, scratch).unwrap_or([f64::NAN; 4]);
        let step = escape(step);
        for (quantile, v) in QUANTILES.iter().zip(q) {
            let labels = format!(
                "{l},step=\"{step}\",quantile=\"{}\"",
                crate::prom_float::canonical(*quantile)
            );
            w.line(&labels, fmt_f64(v));
        }
        let (sum, count, name) = (st.duration.sum, st.duration.count, w.name);
        let _ = writeln!(w.out, "{name}_sum{{{l},step=\"{step}\"}} {}", fmt_f64(sum));
        let _ = writeln!(w.out, "{name}_count{{{l},step=\"{step}\"}} {count}");
    }
}

impl Metrics {
    /// The registry's families (process, build, reloads, connections) as text.
    pub(super) fn registry_text(&self, om: bool) -> String {
        let families = self.registry.gather();
        if om {
            return openmetrics_registry(&families);
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::warn!(error = %e, "cannot encode process metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Counters and gauges of the registry in OpenMetrics: a counter family is named without
/// `_total`, its samples with it.
fn openmetrics_registry(families: &[MetricFamily]) -> String {
    let mut out = String::new();
    for mf in families {
        let name = mf.name();
        let (kind, family) = match mf.get_field_type() {
            MetricType::COUNTER => ("counter", name.strip_suffix("_total").unwrap_or(name)),
            MetricType::GAUGE => ("gauge", name),
            // The registry holds counters and gauges only.
            _ => continue,
        };
        let help = mf.help().replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        for m in mf.get_metric() {
            let labels: Vec<String> = m
                .get_label()
                .iter()
                .map(|p| format!("{}=\"{}\"", p.name(), escape(p.value())))
                .collect();
            let value = match kind {
                "counter" => m.get_counter().value(),
                _ => m.get_gauge().value(),
            };
            let sample = if kind == "counter" {
                format!("{family}_total")
            } else {
                name.to_string()
            };
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let _ = writeln!(out, "{sample}{labels} {}", fmt_f64(value));
        }
    }
    out
}
