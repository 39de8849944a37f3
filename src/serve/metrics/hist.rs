//! One histogram series: classic buckets over fixed bounds (with the latest exemplar per
//! bucket), optionally native buckets beside them, and its text lines (Prometheus text or
//! OpenMetrics with exemplars and `_created`).

use std::fmt::Write as _;
use std::sync::Arc;

use super::fmt_f64;
use super::native::Native;
use super::series::Run;

/// The latest observation of a bucket, for OpenMetrics and protobuf exemplars.
#[derive(Debug, Clone)]
pub struct Exemplar {
    pub run: Run,
    pub value: f64,
    /// Unix seconds.
    pub at: f64,
}

/// A histogram series. Classic counts are per bucket (not cumulative); +Inf is `count`.
#[derive(Debug, Clone)]
pub struct Hist {
    pub bounds: Arc<[f64]>,
    pub counts: Box<[u64]>,
    pub sum: f64,
    pub count: u64,
    /// Unix seconds when the series started (OpenMetrics `_created`).
    pub created: f64,
    /// (bucket position, its latest exemplar); position `bounds.len()` is +Inf.
    pub exemplars: Vec<(u16, Exemplar)>,
    /// Native buckets and their schema, for the protobuf exposition.
    pub native: Option<(i8, Native)>,
}

impl Hist {
    pub fn new(bounds: &Arc<[f64]>, native_schema: Option<i8>, created: f64) -> Hist {
        Hist {
            bounds: bounds.clone(),
            counts: vec![0; bounds.len()].into_boxed_slice(),
            sum: 0.0,
            count: 0,
            created,
            exemplars: Vec::new(),
            native: native_schema.map(|s| (s, Native::default())),
        }
    }

    /// A native-only histogram (no classic buckets; all share one empty bounds slice).
    pub fn native_only(schema: i8, created: f64) -> Hist {
        static NONE: std::sync::OnceLock<Arc<[f64]>> = std::sync::OnceLock::new();
        let bounds = NONE.get_or_init(|| Arc::from(Vec::new()));
        Hist::new(bounds, Some(schema), created)
    }

    pub fn observe(&mut self, v: f64, run: Option<&Run>, at: f64) {
        let pos = self.bounds.iter().position(|b| v <= *b);
        if let Some(i) = pos {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
        if let Some((schema, n)) = self.native.as_mut() {
            n.observe(v, *schema);
        }
        let (Some(run), false) = (run, self.bounds.is_empty()) else {
            return;
        };
        let pos = u16::try_from(pos.unwrap_or(self.bounds.len())).unwrap_or(u16::MAX);
        let e = Exemplar {
            run: run.clone(),
            value: v,
            at,
        };
        match self.exemplars.binary_search_by_key(&pos, |(p, _)| *p) {
            Ok(i) => self.exemplars[i].1 = e,
            Err(i) => self.exemplars.insert(i, (pos, e)),
        }
    }

    pub fn exemplar(&self, pos: usize) -> Option<&Exemplar> {
        let pos = u16::try_from(pos).ok()?;
        self.exemplars
            .binary_search_by_key(&pos, |(p, _)| *p)
            .ok()
            .map(|i| &self.exemplars[i].1)
    }

    /// Writes `_bucket`, `_sum`, `_count` (and in OpenMetrics `_created` and exemplars) with
    /// `labels` (already rendered, non-empty).
    pub fn write(&self, out: &mut String, name: &str, labels: &str, om: bool) {
        let mut cumulative = 0;
        let les = self.bounds.iter().map(|b| crate::prom_float::canonical(*b));
        let les = les.chain(std::iter::once("+Inf".to_string()));
        for (i, le) in les.enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            let n = if i == self.bounds.len() {
                self.count
            } else {
                cumulative
            };
            let _ = write!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
            if let (true, Some(e)) = (om, self.exemplar(i)) {
                write_exemplar(out, e);
            }
            out.push('\n');
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", fmt_f64(self.sum));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
        if om {
            let _ = writeln!(out, "{name}_created{{{labels}}} {}", fmt_f64(self.created));
        }
    }
}

/// ` # {trace_id="…",run_id="…"} value timestamp` (OpenMetrics).
fn write_exemplar(out: &mut String, e: &Exemplar) {
    let _ = write!(
        out,
        " # {{trace_id=\"{}\",run_id=\"{}\"}} {} {}",
        super::escape(e.run.trace_id()),
        super::escape(e.run.run_id()),
        fmt_f64(e.value),
        fmt_f64(e.at)
    );
}
