//! The wait's watch streams, tagged with the [`Stream`] they feed, their reconnection
//! pacing, and the probe that notices the end of an outage.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::diagnose::error_text;
use super::outcome::{EventState, HealthError, WaitOptions};
use super::watch::Engine;
use crate::retry::{Class, Jitter, Schedule, classify};

/// How long the reachability probe may wait for an answer. A saturated apiserver answers,
/// late (`/readyz` took up to 12.4 s under the test world's 2 % CPU quota): a late answer
/// is an answer, and only time without one counts against the outage budget. The client's
/// read timeout bounds it as well.
pub(super) const PROBE_TIMEOUT: Duration = crate::retry::READ_TIMEOUT;

/// How long the apiserver may give no answer after a watch or a probe failed before the
/// wait declares an outage (the `apiserver-unreachable` event). A lost connection is not an
/// unreachable apiserver: under saturation the apiserver misses HTTP/2 pings and takes tens
/// of seconds to complete a new connection's TLS handshake (47.9 s, seen on the test
/// world's 1 % cap while external-dns's informers listed 7,000 objects), and then answers.
/// Whether declared or not, time without an answer pauses the health clock from the first
/// failure (nothing can be judged while the cluster cannot be seen) and is counted against
/// the outage budget from then: only the event waits.
pub const SILENCE: Duration = Duration::from_secs(60);

/// Time without an answer from the apiserver.
#[derive(Debug, Clone)]
pub(super) struct Silence {
    since: Instant,
    first_error: String,
    declared: bool,
}

/// What a watch stream reports to the engine; the objects themselves land in its store.
#[derive(Debug)]
pub(super) enum Tick {
    /// A (re)list is starting. Emitted before any request, so it proves nothing.
    Init,
    /// The store holds a complete list.
    Synced,
    /// An object changed.
    Changed,
}

/// Which store a stream feeds: the object of target `i`, the pods of the `i`-th pod
/// namespace, or the HelmCharts of the `i`-th release namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Stream {
    Object(usize),
    Pods(usize),
    Charts(usize),
}

pub(super) type Item = (Stream, Result<Tick, watcher::Error>);

/// Watch reconnection pacing. kube's `StreamBackoff` resets its backoff on every `Ok`, and
/// a watcher yields `Ok(Init)` before each relist attempt, so during an outage the delay
/// would never grow. This one ignores resets and starts over only after a quiet period.
/// Equal jitter (half fixed, half random) keeps every delay within the maximum, so
/// watches resume promptly once the apiserver is back.
pub(super) struct ReconnectBackoff {
    /// The schedule as it starts, to start over from after a quiet period.
    first: Schedule,
    schedule: Schedule,
    last: Option<Instant>,
    quiet: Duration,
}

impl ReconnectBackoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        let first = Schedule::new(min, max, Jitter::Equal);
        ReconnectBackoff {
            schedule: first.clone(),
            first,
            last: None,
            quiet: 2 * max.max(min),
        }
    }

    /// The next reconnection delay.
    pub(super) fn delay(&mut self) -> Duration {
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t > self.quiet) {
            self.schedule = self.first.clone();
        }
        self.last = Some(now);
        self.schedule.next_delay()
    }
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.delay())
    }
}

impl Backoff for ReconnectBackoff {
    fn reset(&mut self) {}
}

pub(super) fn watch_stream<K>(
    id: Stream,
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    opts: &WaitOptions,
) -> BoxStream<'static, Item>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let backoff = ReconnectBackoff::new(opts.reconnect_min, opts.reconnect_max);
    reflector::reflector(writer, watcher(api, config).backoff(backoff))
        .map(move |r| {
            let tick = r.map(|e| match e {
                watcher::Event::Init => Tick::Init,
                watcher::Event::InitDone => Tick::Synced,
                _ => Tick::Changed,
            });
            (id, tick)
        })
        .boxed()
}

pub(super) type Probe = Pin<Box<dyn Future<Output = Result<(), kube::Error>> + Send>>;

pub(super) fn reachability_probe(client: Client, delay: Duration) -> Probe {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(kube::Error::Service(
                format!(
                    "GET /version: no answer within {}s",
                    PROBE_TIMEOUT.as_secs()
                )
                .into(),
            )),
        }
    })
}

pub(super) fn find<K>(store: &Store<K>, name: &str) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.find(|o| o.meta().name.as_deref() == Some(name))
}

/// How the engine takes what its streams and its probe report.
impl Engine<'_> {
    /// The apiserver answered: ends a silence, and the outage if one was declared.
    fn reached(&mut self, now: Instant, probe: &mut Option<Probe>) {
        *probe = None;
        let outage = self.clock.reachable(now);
        if let (Some(outage), Some(silence)) = (outage, self.silence.take())
            && silence.declared
        {
            self.emit(
                "apiserver".to_owned(),
                EventState::ApiserverReachable,
                format!(
                    "reachable again after {:.1}s; the health clock resumes",
                    outage.as_secs_f64()
                ),
                now,
            );
        }
    }

    /// A transient failure: starts a silence (the health clock pauses, the outage budget
    /// runs), declared an outage once it has lasted [`WaitOptions::silence`]; a probe notices its end.
    fn unreachable(&mut self, error: String, now: Instant, probe: &mut Option<Probe>) {
        let first = self.silence.is_none();
        if first {
            self.clock.unreachable(now);
        }
        let silence = self.silence.get_or_insert_with(|| Silence {
            since: now,
            first_error: error.clone(),
            declared: false,
        });
        let silent = now.saturating_duration_since(silence.since);
        if !silence.declared && silent >= self.opts.silence {
            silence.declared = true;
            let message = if silence.first_error == error {
                error.clone()
            } else {
                format!("{}; then {error}", silence.first_error)
            };
            self.emit(
                "apiserver".to_owned(),
                EventState::ApiserverUnreachable,
                format!(
                    "no answer for {:.0}s: {message}; the health clock is paused since the \
                     first failure",
                    silent.as_secs_f64()
                ),
                now,
            );
        }
        self.last_error = error;
        if probe.is_none() {
            // The first probe goes at once: most silences are one dropped watch.
            let delay = if first {
                Duration::ZERO
            } else {
                self.probe_delays.delay()
            };
            *probe = Some(reachability_probe(self.client.clone(), delay));
        }
    }

    pub(super) fn on_item(
        &mut self,
        (id, item): Item,
        now: Instant,
        probe: &mut Option<Probe>,
    ) -> Result<(), HealthError> {
        match item {
            Ok(Tick::Init) => Ok(()),
            Ok(Tick::Synced) => {
                self.synced.insert(id);
                self.reached(now, probe);
                Ok(())
            }
            Ok(Tick::Changed) => {
                self.reached(now, probe);
                Ok(())
            }
            Err(e) => self.on_watch_error(id, e, now, probe),
        }
    }

    fn stream_name(&self, id: Stream) -> String {
        match id {
            Stream::Object(i) => self.targets[i].resource(),
            Stream::Pods(i) => format!("Pods in {}", self.pods[i].0),
            Stream::Charts(i) => format!("HelmCharts in {}", self.charts[i].0),
        }
    }

    fn on_watch_error(
        &mut self,
        id: Stream,
        e: watcher::Error,
        now: Instant,
        probe: &mut Option<Probe>,
    ) -> Result<(), HealthError> {
        let inner = match e {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => e,
            // 410 Gone: the watcher relists by itself; an ordinary event on a busy cluster.
            watcher::Error::WatchError(status) if status.code == 410 => return Ok(()),
            watcher::Error::WatchError(status) => kube::Error::Api(status),
            watcher::Error::NoResourceVersion => return Ok(()),
        };
        match classify(&inner) {
            Class::Transient { .. } => {
                self.unreachable(error_text(&inner), now, probe);
                Ok(())
            }
            Class::Permanent => {
                let what = self.stream_name(id);
                let message = error_text(&inner);
                match &inner {
                    kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
                        Err(HealthError::Forbidden { what, message })
                    }
                    // A list or watch of a kind nobody serves: its CRD is not installed.
                    kube::Error::Api(s) if s.code == 404 => {
                        let crd = crd_of(&what);
                        Err(HealthError::NotServed { what, crd })
                    }
                    _ => match crate::retry::untrusted_certificate(&inner) {
                        Some(cause) => Err(HealthError::Tls { what, cause }),
                        None => Err(HealthError::Api { what, message }),
                    },
                }
            }
        }
    }

    pub(super) fn on_probe(
        &mut self,
        result: Result<(), kube::Error>,
        now: Instant,
        probe: &mut Option<Probe>,
    ) {
        *probe = None;
        match result {
            Err(e) if matches!(classify(&e), Class::Transient { .. }) => {
                self.unreachable(error_text(&e), now, probe)
            }
            // Any other answer, even a refusal, came from a live apiserver.
            _ => self.reached(now, probe),
        }
    }
}

/// The CRD behind a watched kind (`what` starts with the kind, or its plural), and who
/// installs it.
fn crd_of(what: &str) -> String {
    let kind = what.split_whitespace().next().unwrap_or_default();
    crate::apply::KNOWN_CRDS
        .iter()
        .find(|c| c.kind == kind || kind.strip_suffix('s') == Some(c.kind))
        .map(|c| {
            format!(
                "its CRD {} is not installed; it comes from {}",
                c.crd, c.installer
            )
        })
        .unwrap_or_else(|| format!("no CRD serves {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_grows_and_ignores_resets() {
        let mut b = ReconnectBackoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first: Vec<Duration> = (0..6).map(|_| b.next().unwrap()).collect();
        Backoff::reset(&mut b);
        let later = b.next().unwrap();
        assert!(first[0] <= Duration::from_millis(100), "{first:?}");
        assert!(
            first.iter().all(|d| *d >= Duration::from_millis(50)),
            "{first:?}"
        );
        // Still backed off after the reset: past the cap's lower half.
        assert!(later >= Duration::from_millis(500), "{later:?}");
        assert!(later <= Duration::from_secs(1), "{later:?}");
    }
}
