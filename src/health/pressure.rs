//! How the apiserver answers this tool: the time each request took to be answered (or to
//! fail), as the tool's own client measured it. That is what tells a crash loop time will
//! heal from one it will not: external-dns failing its start-up cache sync while the
//! apiserver answers the tool slowly is a saturated apiserver (ride it out); the same crash
//! while the apiserver answers in milliseconds is egress to it being dropped (fail).
//!
//! "Slow" is defined on the requests of a window of [`WINDOW`]: slow when it holds at least
//! [`MIN_SAMPLES`] requests and at least half of them took [`SLOW`] or longer, or were
//! throttled (429) or failed without an answer (a timeout, a refused or reset connection).
//! Measured on the test world (docs/reliability.md, "Calibration of the saturated world"):
//! small reads (`/readyz`, one namespace, a namespace's pods, its HelmReleases) take 5-8 ms
//! from curl and about 50 ms through this tool's client when the apiserver is free, and
//! 0.19-1.3 s (mostly 0.3-0.4 s) under the calibrated 1 % CPU cap, more while external-dns's
//! own LISTs compete; 150 ms lies between. While a failure is judged the tool reads
//! `/readyz` every few seconds, so a window holds enough requests to be judged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request answered this slowly counts as slow.
pub const SLOW: Duration = Duration::from_millis(150);
/// A window with fewer requests than this is not called slow (one late answer is not
/// saturation).
pub const MIN_SAMPLES: usize = 3;
/// The window whose median decides whether the apiserver is slow.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Answers further apart than this are not one stretch of evidence: what the apiserver
/// did between them is unknown.
pub const MAX_GAP: Duration = WINDOW;
/// Samples older than this are forgotten.
const KEEP: Duration = Duration::from_secs(15 * 60);
/// At most this many samples are kept (the oldest go first).
const MAX_SAMPLES: usize = 4096;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    /// 429, or 503 with Retry-After: the apiserver's own throttling.
    Throttled,
    /// No answer: a timeout, a refused or reset connection.
    Failed,
}

/// One request as the tool saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it ended.
    pub at: Instant,
    pub took: Duration,
    pub outcome: Outcome,
}

impl Sample {
    fn is_slow(&self) -> bool {
        self.outcome != Outcome::Answered || self.took >= SLOW
    }
}

/// What one run of the tool has seen of the apiserver: the samples of every request its
/// client sent (and of the `/readyz` reads), shared by the client's timing layer and the
/// judgement. One per run, made with its [`crate::retry::RetryPolicy`]; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Pressure {
    samples: Arc<Mutex<VecDeque<Sample>>>,
    /// The HTTP version of the latest answer: 0 before any, else 1 or 2.
    protocol: Arc<AtomicU8>,
}

impl Pressure {
    /// Notes the HTTP version an answer came over (what ALPN settled on with the apiserver,
    /// or with a proxy in between).
    pub fn heard_over(&self, version: http::Version) {
        let major = if version == http::Version::HTTP_2 {
            2
        } else {
            1
        };
        self.protocol.store(major, Ordering::Relaxed);
    }

    /// The HTTP version of the latest answer, once there has been one.
    pub fn protocol(&self) -> Option<http::Version> {
        match self.protocol.load(Ordering::Relaxed) {
            0 => None,
            2 => Some(http::Version::HTTP_2),
            _ => Some(http::Version::HTTP_11),
        }
    }

    /// Records a request that started at `started` and ended now.
    pub fn record(&self, started: Instant, outcome: Outcome) {
        let now = Instant::now();
        let sample = Sample {
            at: now,
            took: now.saturating_duration_since(started),
            outcome,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while samples.len() >= MAX_SAMPLES
            || samples
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) > KEEP)
        {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// What has been seen so far.
    pub fn view(&self) -> View {
        View {
            samples: self
                .samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect(),
        }
    }

    /// Reads `/readyz` once, recording how long the answer took (a late answer is an
    /// answer: at most `timeout`, then it counts as none).
    pub async fn time_readyz(self, client: kube::Client, timeout: Duration) {
        let Ok(request) = http::Request::get(READYZ).body(Vec::new()) else {
            return;
        };
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, client.request_text(request)).await {
            Ok(Ok(_)) => Outcome::Answered,
            Ok(Err(kube::Error::Api(e))) if e.code == 429 => Outcome::Throttled,
            // Not ready, but it answered.
            Ok(Err(kube::Error::Api(_))) => Outcome::Answered,
            Ok(Err(_)) | Err(_) => Outcome::Failed,
        };
        self.record(started, outcome);
    }

    /// The apiserver's condition now, for judging a failure, on fresh figures: when the
    /// window ending now holds fewer than [`MIN_SAMPLES`] requests (a quiet wait sends
    /// little, and its last requests may come from before the apiserver changed), as many
    /// `/readyz` reads as are missing are timed first, at once.
    pub async fn fresh_condition(&self, client: &kube::Client, timeout: Duration) -> Condition {
        let have = self.view().window_ending(Instant::now()).count();
        let reads = (have..MIN_SAMPLES).map(|_| self.clone().time_readyz(client.clone(), timeout));
        futures::future::join_all(reads).await;
        self.view().condition(Instant::now())
    }
}

/// The path of the apiserver's readiness endpoint, read to time the apiserver while a
/// failure is judged: [`Pressure::time_readyz`] records it itself, so the client's own
/// timing layer leaves it out (a client without that layer still gets the figures).
pub const READYZ: &str = "/readyz";

/// A copy of the samples at one moment, judged without further requests.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Oldest first.
    pub samples: Vec<Sample>,
}

impl View {
    fn window_ending(&self, end: Instant) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| s.at <= end && end.saturating_duration_since(s.at) < WINDOW)
    }

    /// The median answer time of the window ending at `end`, if it holds any request.
    pub fn median(&self, end: Instant) -> Option<Duration> {
        let mut took: Vec<Duration> = self.window_ending(end).map(|s| s.took).collect();
        if took.is_empty() {
            return None;
        }
        took.sort();
        Some(took[(took.len() - 1) / 2])
    }

    /// Whether the window ending at `end` was slow (see the module's definition).
    fn slow_at(&self, end: Instant) -> bool {
        let (slow, all) = self.window_ending(end).fold((0, 0), |(slow, all), s| {
            (slow + usize::from(s.is_slow()), all + 1)
        });
        all >= MIN_SAMPLES && slow * 2 >= all
    }

    /// The last moment a window was slow, up to `now`.
    pub fn last_slow(&self, now: Instant) -> Option<Instant> {
        self.samples
            .iter()
            .rev()
            .filter(|s| s.at <= now)
            .map(|s| s.at)
            .find(|at| self.slow_at(*at))
    }

    /// The apiserver's condition at `now`: slow while the window of its latest requests is
    /// slow (however long ago they were: no newer answer says otherwise), else fast for as
    /// long as an unbroken stretch of answers says so (see [`View::fast_since`]).
    pub fn condition(&self, now: Instant) -> Condition {
        let Some(latest) = self
            .samples
            .iter()
            .rev()
            .find(|s| s.at <= now)
            .map(|s| s.at)
        else {
            return Condition::Unknown;
        };
        let median = self.median(latest);
        if self.slow_at(latest) {
            let count = |o: Outcome| {
                self.window_ending(latest)
                    .filter(|s| s.outcome == o)
                    .count()
            };
            return Condition::Slow {
                median,
                throttled: count(Outcome::Throttled),
                failed: count(Outcome::Failed),
            };
        }
        Condition::Fast {
            median,
            for_: latest.saturating_duration_since(self.fast_since(latest)),
            slow_before: self.last_slow(now).is_some(),
        }
    }

    /// When the stretch of fast answers ending with the sample at `latest` began: it goes
    /// back through samples in fast windows no further apart than [`MAX_GAP`]. A quiet wait
    /// (long watches over HTTP/2 send nothing for minutes) is no evidence either way, so
    /// "fast for" never spans time in which nothing was measured.
    fn fast_since(&self, latest: Instant) -> Instant {
        let mut since = latest;
        for s in self.samples.iter().rev().filter(|s| s.at < latest) {
            if since.saturating_duration_since(s.at) > MAX_GAP || self.slow_at(s.at) {
                break;
            }
            since = s.at;
        }
        since
    }
}

/// The apiserver as the tool saw it at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Nothing measured yet.
    Unknown,
    /// The last window was slow.
    Slow {
        median: Option<Duration>,
        throttled: usize,
        failed: usize,
    },
    /// The last window was fast, and has been `for_` (since the last slow window, or since
    /// the first request when none was slow).
    Fast {
        median: Option<Duration>,
        for_: Duration,
        slow_before: bool,
    },
}

impl Condition {
    /// How it reads in a progress line: "the apiserver answers in 2.3 s (saturated)".
    pub fn describe(&self) -> String {
        let took = |m: &Option<Duration>| match m {
            Some(d) if *d >= Duration::from_secs(1) => format!("{:.1} s", d.as_secs_f64()),
            Some(d) => format!("{} ms", d.as_millis().max(1)),
            None => "(no answer yet)".to_owned(),
        };
        match self {
            Condition::Unknown => "the apiserver has not answered yet".to_owned(),
            Condition::Slow {
                median,
                throttled,
                failed,
            } => {
                let mut s = format!("the apiserver answers in {} (saturated", took(median));
                if *throttled > 0 {
                    s.push_str(&format!(", {throttled} throttled"));
                }
                if *failed > 0 {
                    s.push_str(&format!(", {failed} without an answer"));
                }
                s.push(')');
                s
            }
            Condition::Fast {
                median,
                for_,
                slow_before,
            } => format!(
                "the apiserver answers in {} and has for {}s{}",
                took(median),
                for_.as_secs(),
                if *slow_before {
                    " since it was slow"
                } else {
                    ""
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(start: Instant, samples: &[(u64, u64, Outcome)]) -> View {
        View {
            samples: samples
                .iter()
                .map(|(at_s, took_ms, outcome)| Sample {
                    at: start + Duration::from_secs(*at_s),
                    took: Duration::from_millis(*took_ms),
                    outcome: *outcome,
                })
                .collect(),
        }
    }

    use Outcome::*;

    #[test]
    fn nothing_measured_is_unknown() {
        let now = Instant::now();
        assert_eq!(View::default().condition(now), Condition::Unknown);
    }

    #[test]
    fn a_window_whose_median_is_a_second_or_more_is_slow() {
        let t0 = Instant::now();
        let v = view(
            t0,
            &[(1, 5, Answered), (2, 2300, Answered), (3, 2600, Answered)],
        );
        let c = v.condition(t0 + Duration::from_secs(4));
        assert_eq!(
            c,
            Condition::Slow {
                median: Some(Duration::from_millis(2300)),
                throttled: 0,
                failed: 0
            }
        );
        assert_eq!(c.describe(), "the apiserver answers in 2.3 s (saturated)");
    }

    #[test]
    fn throttling_and_requests_without_answer_count_as_slow() {
        let t0 = Instant::now();
        let v = view(
            t0,
            &[(1, 5, Answered), (2, 40, Throttled), (3, 30000, Failed)],
        );
        assert!(matches!(
            v.condition(t0 + Duration::from_secs(4)),
            Condition::Slow {
                throttled: 1,
                failed: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_fast_apiserver_is_fast_for_as_long_as_its_answers_say_so() {
        let t0 = Instant::now();
        let steady: Vec<(u64, u64, Outcome)> = (0..=26).map(|i| (i * 5, 3, Answered)).collect();
        assert_eq!(
            view(t0, &steady).condition(t0 + Duration::from_secs(130)),
            Condition::Fast {
                median: Some(Duration::from_millis(3)),
                for_: Duration::from_secs(130),
                slow_before: false
            }
        );
        // Answers a minute apart say nothing of the time between them.
        let sparse = view(
            t0,
            &[(0, 3, Answered), (60, 4, Answered), (130, 2, Answered)],
        );
        assert_eq!(
            sparse.condition(t0 + Duration::from_secs(130)),
            Condition::Fast {
                median: Some(Duration::from_millis(2)),
                for_: Duration::ZERO,
                slow_before: false
            }
        );
        let recovered = view(
            t0,
            &[
                (0, 3000, Answered),
                (5, 2500, Answered),
                (10, 2000, Answered),
                (35, 4, Answered),
                (40, 5, Answered),
                (50, 4, Answered),
                (70, 3, Answered),
            ],
        );
        // From the first fast answer after the slow window of 0-10 s.
        assert_eq!(
            recovered.condition(t0 + Duration::from_secs(70)),
            Condition::Fast {
                median: Some(Duration::from_millis(3)),
                for_: Duration::from_secs(35),
                slow_before: true
            }
        );
        assert_eq!(
            recovered.last_slow(t0 + Duration::from_secs(70)),
            Some(t0 + Duration::from_secs(10))
        );
    }

    #[test]
    fn without_newer_answers_the_last_verdict_stands() {
        let t0 = Instant::now();
        let v = view(
            t0,
            &[
                (0, 3000, Answered),
                (1, 3000, Answered),
                (2, 3000, Answered),
                (100, 3, Answered),
            ],
        );
        assert_eq!(
            v.last_slow(t0 + Duration::from_secs(200)),
            Some(t0 + Duration::from_secs(2))
        );
        // One fast answer after a silence: fast, but not for the silence before it or
        // the time since.
        assert!(matches!(
            v.condition(t0 + Duration::from_secs(200)),
            Condition::Fast { for_, slow_before: true, .. } if for_ == Duration::ZERO
        ));
        let silent = view(
            t0,
            &[
                (0, 3, Answered),
                (10, 3000, Answered),
                (11, 4000, Answered),
                (12, 3000, Answered),
            ],
        );
        assert!(
            matches!(
                silent.condition(t0 + Duration::from_secs(300)),
                Condition::Slow { .. }
            ),
            "no answer since it was slow: still slow"
        );
    }

    #[test]
    fn one_late_answer_is_not_saturation() {
        let t0 = Instant::now();
        let v = view(t0, &[(0, 4000, Answered), (1, 5, Answered)]);
        assert!(matches!(
            v.condition(t0 + Duration::from_secs(2)),
            Condition::Fast {
                slow_before: false,
                ..
            }
        ));
    }

    #[test]
    fn records_are_kept_in_order_and_each_run_has_its_own() {
        let pressure = Pressure::default();
        let started = Instant::now();
        pressure.record(started, Outcome::Answered);
        pressure.clone().record(started, Outcome::Failed);
        let v = pressure.view();
        assert_eq!(v.samples.len(), 2, "clones share the samples");
        assert!(v.samples.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(Pressure::default().view().samples.is_empty());
    }
}
