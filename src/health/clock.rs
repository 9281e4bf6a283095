//! The two budgets of a wait. Workload health gets `timeout` of time during which the
//! apiserver answered: an outage pauses that clock, because nothing can be judged while
//! the cluster cannot be seen. Outages get their own budget of consecutive time.
//!
//! Pure: every method takes the current instant, so tests drive it with made-up times.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct WaitClock {
    start: Instant,
    timeout: Duration,
    unreachable_budget: Duration,
    /// Total length of the outages that have ended.
    paused: Duration,
    outage_since: Option<Instant>,
}

/// What the clock says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Running,
    /// Workload health has had its whole timeout of reachable time.
    TimedOut {
        waited: Duration,
    },
    /// The current outage has outlasted its budget.
    Unreachable {
        for_: Duration,
    },
}

impl WaitClock {
    pub fn new(start: Instant, timeout: Duration, unreachable_budget: Duration) -> WaitClock {
        WaitClock {
            start,
            timeout,
            unreachable_budget,
            paused: Duration::ZERO,
            outage_since: None,
        }
    }

    /// Records that the apiserver failed to answer. Returns true when this starts an outage.
    pub fn unreachable(&mut self, now: Instant) -> bool {
        if self.outage_since.is_some() {
            return false;
        }
        self.outage_since = Some(now);
        true
    }

    /// Records that the apiserver answered. Returns the length of the outage this ends.
    pub fn reachable(&mut self, now: Instant) -> Option<Duration> {
        let since = self.outage_since.take()?;
        let outage = now.saturating_duration_since(since);
        self.paused += outage;
        Some(outage)
    }

    pub fn is_unreachable(&self) -> bool {
        self.outage_since.is_some()
    }

    /// Wall-clock time since the wait started.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// Time spent unreachable, the current outage included.
    pub fn paused(&self, now: Instant) -> Duration {
        self.paused + self.current_outage(now)
    }

    fn current_outage(&self, now: Instant) -> Duration {
        self.outage_since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// The time the workload-health clock has run.
    pub fn health_elapsed(&self, now: Instant) -> Duration {
        self.elapsed(now).saturating_sub(self.paused(now))
    }

    pub fn budget(&self, now: Instant) -> Budget {
        if self.outage_since.is_some() {
            let for_ = self.current_outage(now);
            if for_ >= self.unreachable_budget {
                return Budget::Unreachable { for_ };
            }
            return Budget::Running;
        }
        let waited = self.health_elapsed(now);
        if waited >= self.timeout {
            return Budget::TimedOut { waited };
        }
        Budget::Running
    }

    /// When [`WaitClock::budget`] next changes if nothing else happens: the end of the
    /// outage budget during an outage, otherwise the end of the health timeout.
    pub fn deadline(&self) -> Instant {
        match self.outage_since {
            Some(since) => since + self.unreachable_budget,
            None => self.start + self.paused + self.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn clock() -> (WaitClock, Instant) {
        let t0 = Instant::now();
        (WaitClock::new(t0, 10 * S, 4 * S), t0)
    }

    #[test]
    fn times_out_after_the_timeout_without_outages() {
        let (c, t0) = clock();
        assert_eq!(c.budget(t0 + 9 * S), Budget::Running);
        assert_eq!(c.deadline(), t0 + 10 * S);
        assert_eq!(c.budget(t0 + 10 * S), Budget::TimedOut { waited: 10 * S });
    }

    #[test]
    fn an_outage_pauses_the_health_clock() {
        let (mut c, t0) = clock();
        assert!(c.unreachable(t0 + 2 * S));
        // A second failure during the same outage does not restart it.
        assert!(!c.unreachable(t0 + 3 * S));
        assert_eq!(c.health_elapsed(t0 + 5 * S), 2 * S);
        // The health timeout cannot fire during an outage, however long the wall clock runs.
        assert_eq!(c.budget(t0 + 5 * S), Budget::Running);
        assert_eq!(c.reachable(t0 + 5 * S), Some(3 * S));
        assert_eq!(c.reachable(t0 + 6 * S), None);
        assert_eq!(c.paused(t0 + 6 * S), 3 * S);
        assert_eq!(c.deadline(), t0 + 13 * S);
        assert_eq!(c.budget(t0 + 12 * S), Budget::Running);
        assert_eq!(c.budget(t0 + 13 * S), Budget::TimedOut { waited: 10 * S });
    }

    #[test]
    fn an_outage_longer_than_its_budget_is_reported() {
        let (mut c, t0) = clock();
        c.unreachable(t0 + S);
        assert_eq!(c.deadline(), t0 + 5 * S);
        assert_eq!(c.budget(t0 + 4 * S), Budget::Running);
        assert_eq!(c.budget(t0 + 5 * S), Budget::Unreachable { for_: 4 * S });
    }

    #[test]
    fn the_outage_budget_is_for_consecutive_time_only() {
        let (mut c, t0) = clock();
        // Three outages of 3 s each: 9 s unreachable in all, never 4 s in a row.
        for k in 0..3u32 {
            let start = t0 + (4 * k) * S;
            c.unreachable(start);
            assert_eq!(c.budget(start + 3 * S), Budget::Running);
            c.reachable(start + 3 * S);
        }
        let now = t0 + 12 * S;
        assert_eq!(c.paused(now), 9 * S);
        assert_eq!(c.health_elapsed(now), 3 * S);
        assert_eq!(c.budget(now), Budget::Running);
    }
}
