//! The sliding window of step durations behind the opt-in `flowprobe_step_latency_seconds`
//! summary: raw samples per slot, quantiles through an hdrhistogram when scraped.

use std::collections::VecDeque;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::Rng;

use super::{QUANTILES, SLOT_SAMPLES, WINDOW_SLOTS};

/// Step durations of the last `WINDOW_SLOTS` × `SLOT`, as raw microsecond samples per
/// slot: a few bytes per run, where an hdrhistogram per slot would cost kilobytes per step.
/// Quantiles are computed through an hdrhistogram when scraped.
#[derive(Debug, Default)]
pub struct Window {
    /// (slot number, runs seen in it, samples)
    slots: VecDeque<(u64, u64, Vec<u32>)>,
}

impl Window {
    pub fn record(&mut self, slot: u64, d: Duration) {
        let micros = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        while self
            .slots
            .front()
            .is_some_and(|(s, _, _)| s + WINDOW_SLOTS <= slot)
        {
            self.slots.pop_front();
        }
        if self.slots.back().is_none_or(|(s, _, _)| *s != slot) {
            self.slots.push_back((slot, 0, Vec::new()));
        }
        if let Some((_, seen, samples)) = self.slots.back_mut() {
            *seen += 1;
            if samples.len() < SLOT_SAMPLES {
                samples.push(micros);
            } else {
                let j = rand::thread_rng().gen_range(0..*seen);
                if let Ok(j) = usize::try_from(j) {
                    if j < SLOT_SAMPLES {
                        samples[j] = micros;
                    }
                }
            }
        }
    }

    /// Quantiles in seconds over the slots still in the window, None without samples.
    pub fn quantiles(&self, slot: u64, scratch: &mut Histogram<u64>) -> Option<[f64; 4]> {
        scratch.reset();
        for (s, _, samples) in &self.slots {
            if s + WINDOW_SLOTS > slot {
                for v in samples {
                    // Grows to fit (auto-resize); saturate only if it cannot.
                    if scratch.record(u64::from(*v)).is_err() {
                        scratch.saturating_record(u64::from(*v));
                    }
                }
            }
        }
        if scratch.is_empty() {
            return None;
        }
        let mut out = [0.0; 4];
        for (o, v) in out.iter_mut().zip(scratch.value_at_quantiles(QUANTILES)) {
            // The middle of the value's bucket: at most half a bucket (0.05 %) off.
            *o = scratch.median_equivalent(v) as f64 / 1e6;
        }
        Some(out)
    }
}
