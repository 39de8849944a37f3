//! The network phases of a request — `dns`, `connect`, `tls`, `first_byte`, `body` — and how
//! they are summed over the hops of a step and written into its observation.

use std::time::Duration;

use crate::observation::Observation;

/// Phase names in the order they happen.
pub const NAMES: [&str; 5] = ["dns", "connect", "tls", "first_byte", "body"];

/// The timings of one request, or their sums over several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Set only when the request opened a connection.
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    /// Set only when the request opened a TLS connection.
    pub tls: Option<Duration>,
    /// Request sent → response head (the remainder of the time to the head).
    pub first_byte: Duration,
    pub body: Duration,
}

fn add_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x + y),
        (x, y) => x.or(y),
    }
}

impl Timings {
    /// Adds another request's timings, phase by phase.
    pub fn add(&mut self, o: &Timings) {
        self.dns = add_opt(self.dns, o.dns);
        self.connect = add_opt(self.connect, o.connect);
        self.tls = add_opt(self.tls, o.tls);
        self.first_byte += o.first_byte;
        self.body += o.body;
    }

    /// The phases that were measured, by name, in order.
    pub fn named(&self) -> Vec<(&'static str, Duration)> {
        let all = [
            self.dns,
            self.connect,
            self.tls,
            Some(self.first_byte),
            Some(self.body),
        ];
        NAMES
            .iter()
            .zip(all)
            .filter_map(|(n, d)| d.map(|d| (*n, d)))
            .collect()
    }

    /// The sum of every phase: the requests' time.
    pub fn total(&self) -> Duration {
        self.named().iter().map(|(_, d)| *d).sum()
    }

    /// Adds the phases to an observation, summing into phases of the same name already there.
    pub fn record(&self, obs: &mut Observation) {
        for (name, d) in self.named() {
            match obs.phases.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += d,
                None => obs.add_phase(name, d),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_phase_and_records_only_measured_ones() {
        let ms = Duration::from_millis;
        let mut t = Timings {
            dns: Some(ms(1)),
            connect: Some(ms(2)),
            tls: None,
            first_byte: ms(3),
            body: ms(4),
        };
        t.add(&Timings {
            first_byte: ms(5),
            body: ms(1),
            ..Timings::default()
        });
        assert_eq!(t.total(), ms(16));
        let mut obs = Observation::default();
        obs.add_phase("body", ms(10));
        t.record(&mut obs);
        let names: Vec<_> = obs.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["body", "dns", "connect", "first_byte"]);
        assert_eq!(obs.phase("body"), Some(ms(15)));
        assert_eq!(obs.phase("tls"), None);
    }
}
