//! Sparse exponential ("native") histogram buckets as Prometheus defines them: bucket `i` of
//! schema `s` holds values in `(2^((i-1)/2^s), 2^(i/2^s)]`, plus a zero bucket; written as
//! spans and deltas in the protobuf exposition.

/// Values at or below this count in the zero bucket (client_golang's default, 2^-128).
pub const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// Observed buckets of one native histogram, sorted by index.
#[derive(Debug, Clone, Default)]
pub struct Native {
    pub zero_count: u64,
    /// (bucket index, count), sorted by index; only buckets that were hit.
    pub buckets: Vec<(i32, u32)>,
}

/// A run of consecutive buckets: `offset` from the end of the previous span (from 0 for the
/// first), `length` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// The bucket index of `v` (> 0) in `schema`.
pub fn bucket_index(v: f64, schema: i8) -> i32 {
    let scaled = v.log2() * f64::powi(2.0, i32::from(schema));
    // Saturating float-to-int: out-of-range values land in the outermost bucket.
    scaled.ceil() as i32
}

impl Native {
    pub fn observe(&mut self, v: f64, schema: i8) {
        // NaN and negative durations (none expected) count as zero too.
        if v.is_nan() || v <= ZERO_THRESHOLD {
            self.zero_count += 1;
            return;
        }
        let i = bucket_index(v, schema);
        match self.buckets.binary_search_by_key(&i, |(k, _)| *k) {
            Ok(p) => self.buckets[p].1 = self.buckets[p].1.saturating_add(1),
            Err(p) => self.buckets.insert(p, (i, 1)),
        }
    }

    /// Spans and count deltas (each bucket's count minus the previous bucket's).
    pub fn spans_and_deltas(&self) -> (Vec<Span>, Vec<i64>) {
        let mut spans: Vec<Span> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let (mut prev_index, mut prev_count) = (None::<i32>, 0i64);
        for (i, c) in &self.buckets {
            match (prev_index, spans.last_mut()) {
                (Some(p), Some(last)) if *i == p + 1 => last.length += 1,
                (Some(p), _) => spans.push(Span {
                    offset: i - p - 1,
                    length: 1,
                }),
                (None, _) => spans.push(Span {
                    offset: *i,
                    length: 1,
                }),
            }
            deltas.push(i64::from(*c) - prev_count);
            prev_index = Some(*i);
            prev_count = i64::from(*c);
        }
        (spans, deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_schema_boundaries() {
        // Schema 0: bucket 0 is (0.5, 1], bucket 1 is (1, 2].
        assert_eq!(bucket_index(1.0, 0), 0);
        assert_eq!(bucket_index(1.5, 0), 1);
        assert_eq!(bucket_index(0.75, 0), 0);
        // Schema 3: 8 buckets per power of two; 0.05 s lies in (2^(-35/8), 2^(-34/8)].
        assert_eq!(bucket_index(0.05, 3), -34);
        assert!(2f64.powf(-35.0 / 8.0) < 0.05 && 0.05 <= 2f64.powf(-34.0 / 8.0));
    }

    #[test]
    fn spans_and_deltas_describe_the_buckets() {
        let mut n = Native::default();
        for v in [1.0, 1.0, 1.5, 1.9, 8.0, 0.0] {
            n.observe(v, 0);
        }
        assert_eq!(n.zero_count, 1);
        assert_eq!(n.buckets, vec![(0, 2), (1, 2), (3, 1)]);
        let (spans, deltas) = n.spans_and_deltas();
        assert_eq!(
            spans,
            vec![
                Span {
                    offset: 0,
                    length: 2
                },
                Span {
                    offset: 1,
                    length: 1
                }
            ]
        );
        assert_eq!(deltas, vec![2, 0, -1]);
    }
}
