//! The wait engine: watches the targets and their pods, re-judges on every change, and
//! returns as soon as everything is ready, a workload has failed, or a budget ran out.
//!
//! Watches, not polls: a verdict follows the event that decides it without delay. The only
//! timers are the deadlines themselves (timeout, outage budget, end of a symptom's grace
//! period) and, during an outage, a probe that notices the apiserver is back.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{BoxStream, SelectAll, StreamExt, select_all};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::core::SelectorExt;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::time::Instant;

use super::clock::{Budget, WaitClock};
use super::diagnose::{NOT_READY, Subject, diagnose};
use super::judge::{Health, pod_symptom};
use super::outcome::{EventState, HealthError, HealthEvent, Pending, Report, WaitOptions};
use super::ride::Verdict;
use super::riding::{Basis, Ridden};
use super::streams::{Item, PROBE_TIMEOUT, Probe, ReconnectBackoff, Stream, find, watch_stream};
use super::target::{
    Object, Target, TargetKind, chart_ref, helm_chart_resource, helm_release_resource,
    judge_failure, judge_object, judge_with_pods, pod_namespace,
};

pub(super) enum ObjectStore {
    Deployment(Store<Deployment>),
    HelmRelease(Store<DynamicObject>),
}

/// A target's verdict and the pods a diagnosis should look at (culprit first).
pub(super) struct Judged {
    pub(super) health: Health,
    pub(super) pods: Vec<Arc<Pod>>,
}

pub(super) struct Engine<'a> {
    pub(super) client: Client,
    pub(super) targets: &'a [Target],
    pub(super) opts: &'a WaitOptions,
    /// Fed by [`Stream::Object`]`(i)`, one per target.
    pub(super) objects: Vec<ObjectStore>,
    /// Pods by namespace, fed by [`Stream::Pods`].
    pub(super) pods: Vec<(String, Store<Pod>)>,
    /// HelmCharts by namespace, for the HelmRelease targets, fed by [`Stream::Charts`].
    pub(super) charts: Vec<(String, Store<DynamicObject>)>,
    /// The streams whose stores hold a complete list.
    pub(super) synced: HashSet<Stream>,
    /// When each current pod symptom was first seen, by "uid/container/reason".
    pub(super) symptoms: HashMap<String, Instant>,
    pub(super) last_emitted: Vec<Option<(EventState, String)>>,
    pub(super) ready_at: Vec<Option<Duration>>,
    pub(super) clock: WaitClock,
    pub(super) last_error: String,
    /// Since when, and on what error, the apiserver has given no answer, and whether that
    /// has lasted long enough to be declared an outage (see [`super::streams::SILENCE`]).
    pub(super) silence: Option<super::streams::Silence>,
    pub(super) probe_delays: ReconnectBackoff,
    /// Failures judged transient, by key ("<pod uid>/<container>" for a crash loop,
    /// "<resource>: <message>" for a HelmRelease). A crash loop is judged again when its
    /// count grows, and every ride-out whenever the apiserver's condition changes.
    pub(super) ridden: HashMap<String, Ridden>,
    /// The last word on each failure ridden out, in the order they came.
    pub(super) ridden_out: Vec<(String, String)>,
    /// Crash loops judged by count (no known cause), by key: the restart count judged at,
    /// so the same crash is not diagnosed again.
    pub(super) by_count: HashMap<String, i32>,
    /// Pods replaced to cut a long back-off short (by uid): each once at most.
    pub(super) cut: HashSet<String>,
    /// HelmRelease ride-outs whose failure counters were reset (by key): once per cause.
    pub(super) reset: HashSet<String>,
    /// While something is ridden out: when to time the apiserver next.
    pub(super) next_sample: Option<Instant>,
}

impl<'a> Engine<'a> {
    fn new(
        client: &Client,
        targets: &'a [Target],
        opts: &'a WaitOptions,
        start: Instant,
    ) -> (Engine<'a>, SelectAll<BoxStream<'static, Item>>) {
        let mut streams = Vec::new();
        let mut objects = Vec::new();
        let watch_secs = crate::retry::watch_timeout_secs(&opts.pressure);
        for (id, t) in targets.iter().enumerate() {
            let config = watcher::Config::default()
                .fields(&format!("metadata.name={}", t.name))
                .timeout(watch_secs);
            match t.kind {
                TargetKind::Deployment => {
                    let writer = Writer::<Deployment>::default();
                    objects.push(ObjectStore::Deployment(writer.as_reader()));
                    let api = Api::namespaced(client.clone(), &t.namespace);
                    streams.push(watch_stream(Stream::Object(id), api, config, writer, opts));
                }
                TargetKind::HelmRelease => {
                    let ar = helm_release_resource();
                    let writer = Writer::<DynamicObject>::new(ar.clone());
                    objects.push(ObjectStore::HelmRelease(writer.as_reader()));
                    let api = Api::namespaced_with(client.clone(), &t.namespace, &ar);
                    streams.push(watch_stream(Stream::Object(id), api, config, writer, opts));
                }
            }
        }
        let mut pods: Vec<(String, Store<Pod>)> = Vec::new();
        for t in targets {
            let Some(ns) = pod_namespace(t) else { continue };
            if pods.iter().any(|(n, _)| n == ns) {
                continue;
            }
            let writer = Writer::<Pod>::default();
            pods.push((ns.to_owned(), writer.as_reader()));
            let config = watcher::Config::default().timeout(watch_secs);
            let api = Api::namespaced(client.clone(), ns);
            let id = Stream::Pods(pods.len() - 1);
            streams.push(watch_stream(id, api, config, writer, opts));
        }
        let mut charts: Vec<(String, Store<DynamicObject>)> = Vec::new();
        for t in targets.iter().filter(|t| t.kind == TargetKind::HelmRelease) {
            if charts.iter().any(|(n, _)| *n == t.namespace) {
                continue;
            }
            let ar = helm_chart_resource();
            let writer = Writer::<DynamicObject>::new(ar.clone());
            charts.push((t.namespace.clone(), writer.as_reader()));
            let config = watcher::Config::default().timeout(watch_secs);
            let api = Api::namespaced_with(client.clone(), &t.namespace, &ar);
            let id = Stream::Charts(charts.len() - 1);
            streams.push(watch_stream(id, api, config, writer, opts));
        }
        let engine = Engine {
            client: client.clone(),
            targets,
            opts,
            synced: HashSet::new(),
            objects,
            pods,
            charts,
            symptoms: HashMap::new(),
            last_emitted: vec![None; targets.len()],
            ready_at: vec![None; targets.len()],
            clock: WaitClock::new(start, opts.timeout, opts.unreachable_budget),
            last_error: String::new(),
            silence: None,
            probe_delays: ReconnectBackoff::new(opts.reconnect_min, opts.reconnect_max),
            ridden: HashMap::new(),
            ridden_out: Vec::new(),
            by_count: HashMap::new(),
            cut: Default::default(),
            reset: Default::default(),
            next_sample: None,
        };
        (engine, select_all(streams))
    }

    pub(super) fn emit(&self, resource: String, state: EventState, message: String, now: Instant) {
        self.opts.events.emit(&HealthEvent {
            resource,
            state,
            message,
            elapsed: self.clock.elapsed(now),
        });
    }

    /// The run so far, as a successful wait reports it.
    fn report(&self, now: Instant) -> Report {
        Report {
            elapsed: self.clock.elapsed(now),
            unreachable: self.clock.paused(now),
            ready: self
                .targets
                .iter()
                .zip(&self.ready_at)
                .map(|(t, at)| (t.resource(), at.unwrap_or_default()))
                .collect(),
            ridden_out: self.ridden_out.iter().map(|(_, why)| why.clone()).collect(),
        }
    }

    fn pod_store(&self, namespace: &str) -> Option<(Stream, &Store<Pod>)> {
        self.pods
            .iter()
            .enumerate()
            .find(|(_, (ns, _))| ns == namespace)
            .map(|(j, (_, store))| (Stream::Pods(j), store))
    }

    /// Starts the grace clock of each new pod symptom and forgets cleared ones.
    fn observe_symptoms(&mut self, now: Instant) {
        let mut current = HashMap::new();
        for (_, store) in &self.pods {
            for pod in store.state() {
                if let Some(key) = symptom_key(&pod) {
                    let since = self.symptoms.get(&key).copied().unwrap_or(now);
                    current.insert(key, since);
                }
            }
        }
        self.symptoms = current;
    }

    fn persisted(&self, pod: &Pod, now: Instant) -> Duration {
        symptom_key(pod)
            .and_then(|k| self.symptoms.get(&k))
            .map_or(Duration::ZERO, |since| {
                now.saturating_duration_since(*since)
            })
    }

    /// The next moment a symptom's grace period ends.
    fn next_grace_end(&self, now: Instant) -> Option<Instant> {
        self.symptoms
            .values()
            .map(|since| *since + self.opts.grace)
            .filter(|end| *end > now)
            .min()
    }

    fn judge(&self, i: usize, now: Instant) -> Judged {
        let target = &self.targets[i];
        if !self.synced.contains(&Stream::Object(i)) {
            return Judged {
                health: Health::progressing("waiting for the apiserver's first answer"),
                pods: Vec::new(),
            };
        }
        let not_created = || Judged {
            health: Health::progressing("not created yet"),
            pods: Vec::new(),
        };
        let (object, selector) = match &self.objects[i] {
            ObjectStore::Deployment(store) => {
                let Some(d) = find(store, &target.name) else {
                    return not_created();
                };
                judge_object(target, Object::Deployment(&d))
            }
            ObjectStore::HelmRelease(store) => {
                let Some(hr) = find(store, &target.name) else {
                    return not_created();
                };
                let chart = self.chart_of(&hr);
                judge_object(
                    target,
                    Object::HelmRelease {
                        release: &hr,
                        chart: chart.as_deref(),
                    },
                )
            }
        };
        let (Some(selector), Some(ns)) = (selector, pod_namespace(target)) else {
            return Judged {
                health: object,
                pods: Vec::new(),
            };
        };
        let pods: Vec<Arc<Pod>> = match self.pod_store(ns) {
            Some((id, store)) if self.synced.contains(&id) => store
                .state()
                .into_iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                .filter(|p| selector.matches(p.labels()))
                .collect(),
            _ => Vec::new(),
        };
        let pairs: Vec<(&Pod, Duration)> = pods
            .iter()
            .map(|p| (p.as_ref(), self.persisted(p, now)))
            .collect();
        let judged = judge_with_pods(target, object, &pairs, self.opts.grace);
        let culprit = judged.culprit.map(|c| pods[c].clone());
        Judged {
            health: self.riding_out(judged.health, culprit.as_deref(), &target.resource()),
            pods: judged.examine.iter().map(|&k| pods[k].clone()).collect(),
        }
    }

    fn report_changes(&mut self, judged: &[Judged], now: Instant) {
        for (i, j) in judged.iter().enumerate() {
            let (state, message) = match &j.health {
                Health::Ready => (EventState::Ready, "ready".to_owned()),
                Health::Progressing { reason } => (EventState::Progressing, reason.clone()),
                Health::Failed { reason, message } => {
                    (EventState::Failed, format!("{reason}: {message}"))
                }
            };
            if state == EventState::Ready
                && self.last_emitted[i].as_ref().map(|l| l.0) != Some(state)
            {
                self.ready_at[i] = Some(self.clock.elapsed(now));
            }
            let entry = Some((state, message.clone()));
            if self.last_emitted[i] != entry {
                self.last_emitted[i] = entry;
                self.emit(self.targets[i].resource(), state, message, now);
            }
        }
    }

    fn subject(&self, i: usize, judged: &Judged) -> Subject {
        let t = &self.targets[i];
        let (reason, message) = match &judged.health {
            Health::Failed { reason, message } => (reason.clone(), message.clone()),
            Health::Progressing { reason } => (NOT_READY.to_owned(), reason.clone()),
            Health::Ready => ("Ready".to_owned(), String::new()),
        };
        Subject {
            resource: t.resource(),
            kind: t.kind.as_str(),
            namespace: t.namespace.clone(),
            name: t.name.clone(),
            reason,
            message,
            pods: judged.pods.clone(),
        }
    }

    /// The HelmChart named in the release's `status.helmChart` (`namespace/name`), once
    /// its namespace's watch has synced.
    fn chart_of(&self, hr: &DynamicObject) -> Option<Arc<DynamicObject>> {
        let (ns, name) = chart_ref(hr)?;
        let (k, (_, store)) = self.charts.iter().enumerate().find(|(_, (n, _))| n == ns)?;
        self.synced
            .contains(&Stream::Charts(k))
            .then(|| find(store, name))
            .flatten()
    }
}

fn symptom_key(pod: &Pod) -> Option<String> {
    let s = pod_symptom(pod)?;
    Some(format!(
        "{}/{}/{}",
        pod.metadata.uid.as_deref().unwrap_or_default(),
        s.container.as_deref().unwrap_or_default(),
        s.reason
    ))
}

/// Waits until every target is healthy.
///
/// Returns early with [`HealthError::WorkloadFailed`] when a target fails (a pod symptom
/// after its grace period, a stalled HelmRelease, a Deployment past its progress
/// deadline), with [`HealthError::TimedOut`] when `opts.timeout` of reachable time passes,
/// and with [`HealthError::ApiserverUnreachable`] when one outage outlasts
/// `opts.unreachable_budget`. Targets that do not exist yet are waited for.
pub async fn wait_until_healthy(
    client: &Client,
    targets: &[Target],
    opts: &WaitOptions,
) -> Result<Report, HealthError> {
    let (report, ()) = wait_then_watch(client, targets, opts, |_| async {}).await?;
    Ok(report)
}

/// Waits as [`wait_until_healthy`] does, then runs the follow-up `then` makes from that
/// first healthy report (`up`'s DNS proof) while the same judgement keeps watching.
///
/// A workload healthy once is not healthy for good: external-dns is Ready before its
/// start-up cache sync has run its 60 s, and the crash comes after. While the follow-up
/// runs, a failure is judged by its cause exactly as before: ridden out while time heals
/// it, failing the whole run (and dropping the follow-up) when it will not. The follow-up
/// owns the time from then on (the wait's own timeout no longer applies); an outage over
/// the unreachable budget still ends the run. Returns the last report, which holds what
/// was ridden out during the follow-up too, and the follow-up's output.
pub async fn wait_then_watch<F, T>(
    client: &Client,
    targets: &[Target],
    opts: &WaitOptions,
    then: impl FnOnce(&Report) -> F,
) -> Result<(Report, T), HealthError>
where
    F: Future<Output = T>,
{
    let start = Instant::now();
    let (mut engine, mut streams) = Engine::new(client, targets, opts, start);
    if opts.pressure.protocol() == Some(http::Version::HTTP_11) {
        engine.emit(
            "apiserver".to_owned(),
            EventState::Progressing,
            format!(
                "reached over HTTP/1.1 only (no HTTP/2 on the way, so no keep-alive pings): \
                 watches are renewed every {}s so that a silent connection is noticed",
                crate::retry::WATCH_TIMEOUT_SECS
            ),
            start,
        );
    }
    let mut probe: Option<Probe> = None;
    let mut then = Some(then);
    let mut follow_up: Option<Pin<Box<F>>> = None;
    loop {
        let now = Instant::now();
        engine.observe_symptoms(now);
        let judged: Vec<Judged> = (0..targets.len()).map(|i| engine.judge(i, now)).collect();
        engine.report_changes(&judged, now);

        if let Some(then) = then.take_if(|_| judged.iter().all(|j| j.health.is_ready())) {
            let report = engine.report(now);
            let mut next = Box::pin(then(&report));
            if let Some(out) = next.as_mut().now_or_never() {
                return Ok((report, out));
            }
            follow_up = Some(next);
        }
        if let Some((i, pod, judgement)) = engine.rejudge(now) {
            let mut diagnosis = match pod {
                Some(pod) => diagnose(client, engine.crash_subject(i, &pod).1).await,
                None => diagnose(client, engine.subject(i, &judged[i])).await,
            };
            diagnosis.judgement = judgement;
            return Err(HealthError::WorkloadFailed {
                diagnosis: Box::new(diagnosis),
            });
        }
        // A crash loop is judged by its cause as soon as it shows (and again as its count
        // grows): transient causes are ridden out, permanent ones fail now, unknown ones
        // are left to the count.
        if let Some((i, pod)) = engine.unjudged_crash(&judged) {
            let (health, subject) = engine.crash_subject(i, &pod);
            let mut diagnosis = diagnose(client, subject).await;
            let condition = opts.pressure.fresh_condition(client, PROBE_TIMEOUT).await;
            let now = Instant::now();
            let (verdict, key) =
                judge_failure(&targets[i], &health, Some(&pod), &diagnosis, condition);
            let Some((key, restarts)) = key else { continue };
            match verdict {
                Verdict::RideOut { why } => {
                    let basis = Basis::crash(&pod, &diagnosis);
                    engine.ride_out(i, key, restarts, why, basis, now)
                }
                Verdict::ByCount => {
                    engine.by_count.insert(key, restarts);
                }
                Verdict::Fail { judgement } => {
                    diagnosis.judgement = judgement;
                    return Err(HealthError::WorkloadFailed {
                        diagnosis: Box::new(diagnosis),
                    });
                }
            }
            continue;
        }
        if let Some(i) = judged
            .iter()
            .position(|j| matches!(j.health, Health::Failed { .. }))
        {
            let mut diagnosis = diagnose(client, engine.subject(i, &judged[i])).await;
            let condition = opts.pressure.fresh_condition(client, PROBE_TIMEOUT).await;
            let now = Instant::now();
            match engine.judge_cause(i, &judged[i], &diagnosis, condition) {
                (Verdict::RideOut { why }, Some((key, restarts))) => {
                    let basis = Basis::of(&judged[i], &diagnosis);
                    engine.ride_out(i, key, restarts, why, basis, now);
                    continue;
                }
                (Verdict::Fail { judgement }, _) => diagnosis.judgement = judgement,
                (Verdict::RideOut { .. } | Verdict::ByCount, _) => {}
            }
            return Err(HealthError::WorkloadFailed {
                diagnosis: Box::new(diagnosis),
            });
        }
        match engine.clock.budget(now) {
            Budget::Running => {}
            Budget::TimedOut { .. } if follow_up.is_some() => {}
            Budget::TimedOut { waited } => {
                let mut pending = Vec::new();
                let mut diagnoses = Vec::new();
                for (i, j) in judged.iter().enumerate() {
                    if let Health::Progressing { reason } = &j.health {
                        pending.push(Pending {
                            resource: targets[i].resource(),
                            reason: reason.clone(),
                        });
                        diagnoses.push(diagnose(client, engine.subject(i, j)).await);
                    }
                }
                return Err(HealthError::TimedOut {
                    waited,
                    pending,
                    diagnoses,
                });
            }
            Budget::Unreachable { for_ } => {
                return Err(HealthError::ApiserverUnreachable {
                    unreachable_for: for_,
                    budget: opts.unreachable_budget,
                    last_error: engine.last_error.clone(),
                });
            }
        }

        // Once the follow-up runs, the wait's own deadline has no say.
        let deadline = match follow_up {
            Some(_) => now + Duration::from_secs(3600),
            None => engine.clock.deadline(),
        };
        let wake = match engine.next_grace_end(now) {
            Some(grace_end) => grace_end.min(deadline),
            None => deadline,
        };
        tokio::select! {
            out = async { follow_up.as_mut().expect("guarded").await }, if follow_up.is_some() => {
                return Ok((engine.report(Instant::now()), out));
            }
            Some(item) = streams.next() => {
                engine.on_item(item, Instant::now(), &mut probe)?;
            }
            result = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                engine.on_probe(result, Instant::now(), &mut probe);
            }
            _ = tokio::time::sleep_until(engine.next_sample.unwrap_or(wake)), if engine.next_sample.is_some() => {
                engine.sample(Instant::now()).await;
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
