//! The protobuf exposition: length-delimited `io.prometheus.client.MetricFamily` messages,
//! written straight in the wire format (the handful of messages of Prometheus'
//! `metrics.proto` that we send). The step duration histogram carries native buckets beside its
//! classic ones; phase histograms are native-only; classic buckets carry exemplars (Prometheus
//! takes a native histogram's exemplars from them). The run duration histogram stays classic
//! only, so that a Prometheus ingesting native histograms still stores the `le` buckets the SLO
//! rules select. A family is written whole (its length precedes it) in two chunks: length and
//! header, then its metrics.

use std::ops::Deref;
use std::sync::Arc;

use hdrhistogram::Histogram;
use prometheus::{Encoder, ProtobufEncoder};

use super::family::Family;
use super::hist::{Exemplar, Hist};
use super::native::ZERO_THRESHOLD;
use super::series::{Lazy, ScenarioMetrics, Series};
use super::{lock, Metrics, QUANTILES};

fn varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    varint(b, (u64::from(field) << 3) | u64::from(wire));
}

fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, 0);
    varint(b, v);
}

/// `sint32`/`sint64` (zigzag).
fn sint(b: &mut Vec<u8>, field: u32, v: i64) {
    tag(b, field, 0);
    varint(b, ((v << 1) ^ (v >> 63)) as u64);
}

fn double(b: &mut Vec<u8>, field: u32, v: f64) {
    tag(b, field, 1);
    b.extend_from_slice(&v.to_le_bytes());
}

fn bytes(b: &mut Vec<u8>, field: u32, data: &[u8]) {
    tag(b, field, 2);
    varint(b, data.len() as u64);
    b.extend_from_slice(data);
}

fn message(b: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    build(&mut inner);
    bytes(b, field, &inner);
}

/// Bytes of `v` as a varint.
fn varint_len(v: u64) -> u64 {
    u64::from((64 - (v | 1).leading_zeros()).div_ceil(7))
}

/// A `LabelPair`, its length computed rather than buffered (the most frequent message).
fn label(b: &mut Vec<u8>, field: u32, name: &str, value: &str) {
    let (n, v) = (name.len() as u64, value.len() as u64);
    tag(b, field, 2);
    varint(b, 2 + varint_len(n) + n + varint_len(v) + v);
    bytes(b, 1, name.as_bytes());
    bytes(b, 2, value.as_bytes());
}

/// `google.protobuf.Timestamp` from unix seconds.
fn timestamp(b: &mut Vec<u8>, field: u32, secs: f64) {
    let whole = secs.floor();
    let (s, n) = (whole as u64, ((secs - whole) * 1e9) as u64);
    tag(b, field, 2);
    varint(b, 2 + varint_len(s) + varint_len(n));
    uint(b, 1, s);
    uint(b, 2, n);
}

fn exemplar(b: &mut Vec<u8>, field: u32, e: &Exemplar) {
    message(b, field, |x| {
        label(x, 1, "trace_id", e.run.trace_id());
        label(x, 1, "run_id", e.run.run_id());
        double(x, 2, e.value);
        timestamp(x, 3, e.at);
    });
}

/// The `MetricType` enum.
fn metric_type(kind: &str) -> u64 {
    match kind {
        "counter" => 0,
        "gauge" => 1,
        "summary" => 2,
        "histogram" => 4,
        _ => 3,
    }
}

/// A `Histogram` message: classic buckets (+Inf only when it has an exemplar), and native
/// buckets when the series keeps them.
fn histogram(b: &mut Vec<u8>, h: &Hist) {
    message(b, 7, |m| {
        uint(m, 1, h.count);
        double(m, 2, h.sum);
        let mut cumulative = 0;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += h.counts[i];
            message(m, 3, |bk| {
                uint(bk, 1, cumulative);
                double(bk, 2, *bound);
                if let Some(e) = h.exemplar(i) {
                    exemplar(bk, 3, e);
                }
            });
        }
        if let Some(e) = h.exemplar(h.bounds.len()) {
            message(m, 3, |bk| {
                uint(bk, 1, h.count);
                double(bk, 2, f64::INFINITY);
                exemplar(bk, 3, e);
            });
        }
        if let Some((schema, n)) = &h.native {
            sint(m, 5, i64::from(*schema));
            double(m, 6, ZERO_THRESHOLD);
            uint(m, 7, n.zero_count);
            let (spans, deltas) = n.spans_and_deltas();
            for s in spans {
                message(m, 12, |sp| {
                    sint(sp, 1, i64::from(s.offset));
                    uint(sp, 2, u64::from(s.length));
                });
            }
            for d in deltas {
                sint(m, 13, d);
            }
        }
        timestamp(m, 15, h.created);
    });
}

/// One `Metric` of a family: the scenario's labels, `extra` labels, and its value.
fn metric(
    family: &mut Vec<u8>,
    m: &ScenarioMetrics,
    extra: &[(&str, &str)],
    value: impl FnOnce(&mut Vec<u8>),
) {
    message(family, 4, |b| {
        for (k, v) in &m.pairs {
            label(b, 1, k, v);
        }
        for (k, v) in extra {
            label(b, 1, k, v);
        }
        value(b);
    });
}

fn counter(b: &mut Vec<u8>, v: u64, created: f64) {
    message(b, 3, |c| {
        double(c, 1, v as f64);
        timestamp(c, 3, created);
    });
}

fn gauge(b: &mut Vec<u8>, v: f64) {
    message(b, 2, |g| double(g, 1, v));
}

fn lazy(family: &mut Vec<u8>, m: &ScenarioMetrics, extra: &[(&str, &str)], c: Lazy) {
    if let Some((n, created)) = c {
        metric(family, m, extra, |b| counter(b, n, created));
    }
}

/// Appends the scenario's metrics of a per-scenario family.
fn run_family(family: Family, f: &mut Vec<u8>, m: &ScenarioMetrics, s: &Series) {
    match family {
        Family::Runs => {
            metric(f, m, &[("outcome", "success")], |b| {
                counter(b, s.success, m.created)
            });
            metric(f, m, &[("outcome", "failure")], |b| {
                counter(b, s.failure, m.created)
            });
        }
        Family::Skipped => lazy(f, m, &[], s.skipped),
        Family::RunDuration => metric(f, m, &[], |b| histogram(b, &s.run_duration)),
        Family::RunFailures => {
            for (r, n, created) in s.run_failures.iter() {
                metric(f, m, &[("reason", r.as_str())], |b| counter(b, n, created));
            }
        }
        Family::Success => {
            if let Some(ok) = s.last_success {
                metric(f, m, &[], |b| gauge(b, f64::from(u8::from(ok))));
            }
        }
        Family::LastRun => {
            if let Some(t) = s.last_run {
                metric(f, m, &[], |b| gauge(b, t));
            }
        }
        Family::LastSuccess => {
            if let Some(t) = s.last_success_at {
                metric(f, m, &[], |b| gauge(b, t));
            }
        }
        Family::Info => {
            metric(f, m, &[("file", &s.file), ("interval", &s.interval)], |b| {
                gauge(b, 1.0)
            });
        }
        _ => {}
    }
}

/// Appends the scenario's metrics of a per-step family.
fn step_family(family: Family, f: &mut Vec<u8>, m: &ScenarioMetrics, s: &Series) {
    for (step, st) in &s.steps {
        let sk = [("step", step.as_str()), ("kind", st.kind)];
        match family {
            Family::StepDuration => metric(f, m, &sk, |b| histogram(b, &st.duration)),
            Family::StepFailures => {
                for (r, n, created) in st.failures.iter() {
                    let labels = [sk[0], sk[1], ("reason", r.as_str())];
                    metric(f, m, &labels, |b| counter(b, n, created));
                }
            }
            Family::StepRetries => lazy(f, m, &sk[..1], st.retries),
            Family::PhaseDuration => {
                for (phase, h) in &st.phases {
                    let labels = [sk[0], ("phase", &**phase)];
                    metric(f, m, &labels, |b| histogram(b, h));
                }
            }
            Family::CertExpiry => {
                if let Some(t) = st.cert_not_after {
                    metric(f, m, &sk[..1], |b| gauge(b, t as f64));
                }
            }
            Family::TlsVersion => {
                if let Some(v) = &st.tls_version {
                    let labels = [sk[0], ("version", v)];
                    metric(f, m, &labels, |b| gauge(b, 1.0));
                }
            }
            _ => {}
        }
    }
}

/// The opt-in latency summary of each step.
fn step_latency(
    f: &mut Vec<u8>,
    m: &ScenarioMetrics,
    s: &Series,
    slot: u64,
    scratch: &mut Histogram<u64>,
) {
    for (step, st) in &s.steps {
        let q = st.window.quantiles(slot, scratch).unwrap_or([f64::NAN; 4]);
        metric(f, m, &[("step", step)], |b| {
            message(b, 4, |sm| {
                uint(sm, 1, st.duration.count);
                double(sm, 2, st.duration.sum);
                for (quantile, v) in QUANTILES.iter().zip(q) {
                    message(sm, 3, |qm| {
                        double(qm, 1, *quantile);
                        double(qm, 2, v);
                    });
                }
            });
        });
    }
}

/// Iterator over the protobuf exposition: the registry's families, then one chunk per family.
pub struct ProtoChunks<M: Deref<Target = Metrics>> {
    metrics: M,
    scenarios: Vec<Arc<ScenarioMetrics>>,
    /// None: the registry part is next.
    family: Option<usize>,
    /// The metrics of the family whose header was the last chunk.
    pending: Option<Vec<u8>>,
    slot: u64,
    scratch: Option<Histogram<u64>>,
}

impl<M: Deref<Target = Metrics>> ProtoChunks<M> {
    pub(super) fn new(metrics: M) -> ProtoChunks<M> {
        let scenarios = metrics.read().values().cloned().collect();
        let slot = metrics.slot();
        ProtoChunks {
            scenarios,
            slot,
            metrics,
            family: None,
            pending: None,
            scratch: Histogram::new(3).ok(),
        }
    }

    /// One family's length and header, its metrics left in `pending`; empty when it has no
    /// metric.
    fn encode(&mut self, family: Family) -> Vec<u8> {
        let mut f = Vec::new();
        for m in &self.scenarios {
            let s = lock(&m.series);
            match family {
                Family::StepLatency => {
                    if let (true, Some(scratch)) =
                        (self.metrics.latency_summary, self.scratch.as_mut())
                    {
                        step_latency(&mut f, m, &s, self.slot, scratch);
                    }
                }
                Family::StepDuration
                | Family::StepFailures
                | Family::StepRetries
                | Family::PhaseDuration
                | Family::CertExpiry
                | Family::TlsVersion => step_family(family, &mut f, m, &s),
                _ => run_family(family, &mut f, m, &s),
            }
        }
        if f.is_empty() {
            return f;
        }
        let (name, kind, help) = family.meta();
        let mut head = Vec::with_capacity(f.len() + 128);
        bytes(&mut head, 1, name.as_bytes());
        bytes(&mut head, 2, help.as_bytes());
        uint(&mut head, 3, metric_type(kind));
        // The length and header as one chunk, the metrics as the next: no copy of the body.
        let mut out = Vec::with_capacity(head.len() + 10);
        varint(&mut out, (head.len() + f.len()) as u64);
        out.extend_from_slice(&head);
        self.pending = Some(f);
        out
    }
}

impl<M: Deref<Target = Metrics>> Iterator for ProtoChunks<M> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if let Some(body) = self.pending.take() {
            return Some(body);
        }
        let Some(mut fi) = self.family else {
            self.family = Some(0);
            let mut buf = Vec::new();
            if let Err(e) = ProtobufEncoder::new().encode(&self.metrics.registry.gather(), &mut buf)
            {
                tracing::warn!(error = %e, "cannot encode process metrics");
            }
            return Some(buf);
        };
        while let Some(family) = Family::ALL.get(fi).copied() {
            fi += 1;
            self.family = Some(fi);
            let chunk = self.encode(family);
            if !chunk.is_empty() {
                return Some(chunk);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_lengths_match_the_encoding() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(varint_len(v), b.len() as u64, "{v}");
        }
        let (mut direct, mut buffered) = (Vec::new(), Vec::new());
        label(&mut direct, 1, "scenario", &"x".repeat(200));
        message(&mut buffered, 1, |l| {
            bytes(l, 1, b"scenario");
            bytes(l, 2, "x".repeat(200).as_bytes());
        });
        assert_eq!(direct, buffered);
        let (mut direct, mut buffered) = (Vec::new(), Vec::new());
        timestamp(&mut direct, 3, 1_764_672_000.25);
        message(&mut buffered, 3, |t| {
            uint(t, 1, 1_764_672_000);
            uint(t, 2, 250_000_000);
        });
        assert_eq!(direct, buffered);
    }
}
