//! The one backoff schedule: a delay that doubles from a first value up to a cap, with the
//! jitter its user needs. Apiserver calls ([`super::with_retry`], full jitter), watch
//! reconnections (equal jitter), CRD waits and DNS rounds (no jitter) all parameterise it.

use std::time::Duration;

/// How a delay is spread around its exponential value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// The exponential value itself: for waits on something that is not a contended
    /// server (a CRD being installed, PowerDNS being polled).
    None,
    /// Half fixed, half random: never more than the value, never less than half of it, so
    /// reconnections resume promptly once the apiserver is back.
    Equal,
    /// A uniform draw below the value, at least `floor`: spreads the retries of many
    /// clients best, while the floor keeps a retry from hammering at once.
    Full { floor: Duration },
}

/// Delays doubling from `first` to `max`, jittered; endless.
#[derive(Debug, Clone)]
pub struct Schedule {
    current: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Schedule {
    pub fn new(first: Duration, max: Duration, jitter: Jitter) -> Schedule {
        Schedule {
            current: first,
            max: max.max(first),
            jitter,
        }
    }

    /// The delay for a draw `unit` in [0, 1).
    fn jittered(&self, unit: f64) -> Duration {
        let value = self.current;
        match self.jitter {
            Jitter::None => value,
            Jitter::Equal => value / 2 + value.mul_f64(unit.clamp(0.0, 1.0) / 2.0),
            Jitter::Full { floor } => floor.max(value.mul_f64(unit.clamp(0.0, 1.0))),
        }
    }

    /// The next delay. The schedule never ends, so callers need no fallback.
    pub fn next_delay(&mut self) -> Duration {
        self.step(fastrand::f64())
    }

    fn step(&mut self, unit: f64) -> Duration {
        let delay = self.jittered(unit);
        self.current = (self.current * 2).min(self.max);
        delay
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut s = Schedule::new(250 * MS, 2000 * MS, Jitter::None);
        let delays: Vec<Duration> = (0..6).map(|_| s.next_delay()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000, 2000].map(|ms| ms * MS));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let cases = [
            (Jitter::Equal, 0.0, 400 * MS),
            (Jitter::Equal, 0.999, 800 * MS),
            (Jitter::Full { floor: 200 * MS }, 0.0, 200 * MS),
            (Jitter::Full { floor: 200 * MS }, 0.5, 400 * MS),
        ];
        for (jitter, unit, expected) in cases {
            let s = Schedule::new(800 * MS, 10_000 * MS, jitter);
            let got = s.jittered(unit);
            assert!(
                got.abs_diff(expected) <= MS,
                "{jitter:?} at {unit}: {got:?}"
            );
            assert!(got <= 800 * MS, "never above the value: {got:?}");
        }
    }
}
