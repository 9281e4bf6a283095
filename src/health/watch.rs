//! The wait engine: watches the targets and their pods, re-judges on every change, and
//! returns as soon as everything is ready, a workload has failed, or a budget ran out.
//!
//! Watches, not polls: a verdict follows the event that decides it without delay. The only
//! timers are the deadlines themselves (timeout, outage budget, end of a symptom's grace
//! period) and, during an outage, a probe that notices the apiserver is back.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{BoxStream, SelectAll, StreamExt, select_all};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::core::SelectorExt;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::time::Instant;

use super::clock::{Budget, WaitClock};
use super::diagnose::{Diagnosis, NOT_READY, Subject, diagnose, error_text};
use super::judge::{Health, pod_symptom};
use super::pressure::{self, Pressure};
use super::ride::{self, Verdict};
use super::target::{
    Object, Target, TargetKind, chart_ref, crash_key, helm_chart_resource, helm_release_resource,
    judge_failure, judge_object, judge_with_pods, pod_namespace,
};
use crate::exit::Exit;
use crate::retry::{Class, RetryPolicy, classify};

/// Asks the apiserver to end each watch before the client's read timeout
/// ([`crate::retry::READ_TIMEOUT`]) would cut it as idle; the watcher then resumes it.
const WATCH_TIMEOUT_SECS: u32 = 25;
/// How long the reachability probe may wait for an answer. A saturated apiserver answers,
/// late (`/readyz` took up to 12.4 s under the test world's 2 % CPU quota): a late answer
/// is an answer, and only time without one counts against the outage budget. The client's
/// read timeout bounds it as well.
const PROBE_TIMEOUT: Duration = crate::retry::READ_TIMEOUT;

pub type EventSink = Arc<dyn Fn(&HealthEvent) + Send + Sync>;

/// Budgets and reporting of [`wait_until_healthy`].
#[derive(Clone)]
pub struct WaitOptions {
    /// How long workloads may take to turn healthy, counting only time the apiserver
    /// answered.
    pub timeout: Duration,
    /// How long the apiserver may stay unreachable in one stretch.
    pub unreachable_budget: Duration,
    /// How long a pod symptom (image pull error, crash loop with few restarts, ...) may
    /// last before it fails the wait.
    pub grace: Duration,
    /// Watch reconnection and reachability-probe delays: first and largest.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub on_event: Option<EventSink>,
    /// Whether the wait may replace a pod of the kit's release that waits out a long
    /// kubelet back-off after the apiserver calmed down (`up` and `repair`; never `wait`).
    pub cut_backoff: bool,
    /// How the apiserver has answered this run (the client's own timings and the wait's
    /// `/readyz` reads): the run's [`RetryPolicy::pressure`].
    pub pressure: Pressure,
}

impl Default for WaitOptions {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        WaitOptions {
            timeout: Duration::from_secs(5 * 60),
            unreachable_budget: policy.unreachable_budget,
            grace: Duration::from_secs(60),
            reconnect_min: policy.min_delay,
            reconnect_max: policy.max_delay,
            on_event: None,
            cut_backoff: false,
            pressure: policy.pressure().clone(),
        }
    }
}

impl Debug for WaitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitOptions")
            .field("timeout", &self.timeout)
            .field("unreachable_budget", &self.unreachable_budget)
            .field("grace", &self.grace)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("cut_backoff", &self.cut_backoff)
            .finish_non_exhaustive()
    }
}

impl WaitOptions {
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_backoff_cut(mut self, cut: bool) -> Self {
        self.cut_backoff = cut;
        self
    }

    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Takes the outage budget and delays from the policy every other apiserver call uses.
    pub fn with_retry_policy(mut self, policy: &RetryPolicy) -> Self {
        self.unreachable_budget = policy.unreachable_budget;
        self.reconnect_min = policy.min_delay;
        self.reconnect_max = policy.max_delay;
        self.pressure = policy.pressure().clone();
        self
    }

    pub fn on_event(mut self, sink: impl Fn(&HealthEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(sink));
        self
    }
}

/// A change worth a progress line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthEvent {
    /// "Kind namespace/name", or "apiserver".
    pub resource: String,
    pub state: EventState,
    pub message: String,
    /// Since the wait started, wall clock.
    #[serde(rename = "elapsed_s", serialize_with = "as_secs")]
    pub elapsed: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventState {
    Progressing,
    Ready,
    Failed,
    ApiserverUnreachable,
    ApiserverReachable,
    /// A failure time heals (a start-up crash loop on a saturated apiserver) is waited
    /// through.
    RidingOut,
    /// A pod waiting out a long kubelet back-off was replaced once the apiserver calmed.
    BackoffCut,
    /// A HelmRelease helm-controller gave up on during saturation had its failure counters
    /// reset once the apiserver calmed.
    ResetFailures,
}

impl EventState {
    /// The event's `state` (README: events), as it serializes.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Progressing => "progressing",
            EventState::Ready => "ready",
            EventState::Failed => "failed",
            EventState::ApiserverUnreachable => "apiserver-unreachable",
            EventState::ApiserverReachable => "apiserver-reachable",
            EventState::RidingOut => "riding-out",
            EventState::BackoffCut => "backoff-cut",
            EventState::ResetFailures => "reset-failures",
        }
    }
}

/// A successful wait.
#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    /// Time the apiserver was unreachable, which did not count against the timeout.
    pub unreachable: Duration,
    /// Each target and when (since the start) it last turned ready.
    pub ready: Vec<(String, Duration)>,
    /// What was ridden out on the way, the last word on each (e.g. "external-dns restarted
    /// 4 times on its start-up cache sync; the apiserver answers in 2.3 s (saturated)").
    pub ridden_out: Vec<String>,
}

/// A target still not ready when the wait gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub resource: String,
    pub reason: String,
}

#[derive(Debug, Error)]
pub enum HealthError {
    /// Exit 4 ([`Exit::WorkloadFailed`]).
    #[error("{diagnosis}")]
    WorkloadFailed { diagnosis: Box<Diagnosis> },
    /// Exit 5 ([`Exit::TimedOut`]).
    #[error(
        "timed out after {}s waiting for {}",
        waited.as_secs(),
        pending.iter().map(|p| format!("{} ({})", p.resource, p.reason)).collect::<Vec<_>>().join(", ")
    )]
    TimedOut {
        /// Time the apiserver answered; outages are not counted.
        waited: Duration,
        pending: Vec<Pending>,
        /// What the pending targets' events, pods and logs say.
        diagnoses: Vec<Diagnosis>,
    },
    /// Exit 6 ([`Exit::ApiserverUnreachable`]).
    #[error(
        "the apiserver has been unreachable for {}s, over the {}s budget; last error: {last_error}",
        unreachable_for.as_secs(),
        budget.as_secs()
    )]
    ApiserverUnreachable {
        unreachable_for: Duration,
        budget: Duration,
        last_error: String,
    },
    /// Exit 8 ([`Exit::PermissionDenied`]): 401 or 403 while watching.
    #[error("permission denied: cannot watch {what}: {message}")]
    Forbidden { what: String, message: String },
    /// Exit 1 ([`Exit::Internal`]): a permanent apiserver error other than a permission
    /// problem, e.g. the HelmRelease kind is not served because Flux's CRDs are missing.
    #[error("cannot watch {what}: {message}")]
    Api { what: String, message: String },
    /// Exit 5 ([`Exit::TimedOut`]), as for a missing object: the kind is not served, so
    /// nothing of it exists yet; its CRD comes with a component not installed (yet).
    #[error(
        "cannot watch {what}: the apiserver does not serve this kind: {crd}; expected the \
         CRD to be installed (apply the kit after it)"
    )]
    NotServed { what: String, crd: String },
    /// Exit 9 ([`Exit::TlsUntrusted`]): the apiserver's certificate was refused.
    #[error(
        "cannot watch {what}: TLS verification failed: the apiserver's certificate is not \
         trusted ({cause}); check the certificate-authority of the kubeconfig's cluster, or \
         pass --insecure-skip-tls-verify to skip verification (unsafe)"
    )]
    Tls { what: String, cause: String },
}

impl HealthError {
    pub fn exit(&self) -> Exit {
        match self {
            HealthError::WorkloadFailed { .. } => Exit::WorkloadFailed,
            HealthError::TimedOut { .. } => Exit::TimedOut,
            HealthError::ApiserverUnreachable { .. } => Exit::ApiserverUnreachable,
            HealthError::Forbidden { .. } => Exit::PermissionDenied,
            HealthError::Api { .. } => Exit::Internal,
            HealthError::NotServed { .. } => Exit::TimedOut,
            HealthError::Tls { .. } => Exit::TlsUntrusted,
        }
    }
}

/// What a watch stream reports to the engine; the objects themselves land in its store.
#[derive(Debug)]
enum Tick {
    /// A (re)list is starting. Emitted before any request, so it proves nothing.
    Init,
    /// The store holds a complete list.
    Synced,
    /// An object changed.
    Changed,
}

type Item = (usize, Result<Tick, watcher::Error>);

/// Watch reconnection pacing. kube's `StreamBackoff` resets its backoff on every `Ok`, and
/// a watcher yields `Ok(Init)` before each relist attempt, so during an outage the delay
/// would never grow. This one ignores resets and starts over only after a quiet period.
/// Equal jitter (half fixed, half random) keeps every delay within the maximum, so
/// watches resume promptly once the apiserver is back.
struct ReconnectBackoff {
    builder: backon::ExponentialBuilder,
    inner: backon::ExponentialBackoff,
    last: Option<Instant>,
    quiet: Duration,
}

impl ReconnectBackoff {
    fn new(min: Duration, max: Duration) -> Self {
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max.max(min))
            .without_max_times();
        ReconnectBackoff {
            inner: backon::BackoffBuilder::build(builder),
            builder,
            last: None,
            quiet: 2 * max.max(min),
        }
    }
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t > self.quiet) {
            self.inner = backon::BackoffBuilder::build(self.builder);
        }
        self.last = Some(now);
        let delay = self.inner.next()?;
        Some(delay / 2 + delay.mul_f64(fastrand::f64() / 2.0))
    }
}

impl Backoff for ReconnectBackoff {
    fn reset(&mut self) {}
}

fn watch_stream<K>(
    id: usize,
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

enum ObjectStore {
    Deployment(Store<Deployment>),
    HelmRelease(Store<DynamicObject>),
}

/// A target's verdict and the pods a diagnosis should look at (culprit first).
struct Judged {
    health: Health,
    pods: Vec<Arc<Pod>>,
}

type Probe = Pin<Box<dyn Future<Output = Result<(), kube::Error>> + Send>>;

struct Engine<'a> {
    client: Client,
    targets: &'a [Target],
    opts: &'a WaitOptions,
    /// Stream `i` < targets.len() feeds `objects[i]`; the next ones feed `pods` in order,
    /// the last ones `charts`.
    objects: Vec<ObjectStore>,
    pods: Vec<(String, Store<Pod>)>,
    /// HelmCharts by namespace, for the HelmRelease targets.
    charts: Vec<(String, Store<DynamicObject>)>,
    synced: Vec<bool>,
    /// When each current pod symptom was first seen, by "uid/container/reason".
    symptoms: HashMap<String, Instant>,
    last_emitted: Vec<Option<(EventState, String)>>,
    ready_at: Vec<Option<Duration>>,
    clock: WaitClock,
    last_error: String,
    probe_delays: ReconnectBackoff,
    /// Failures judged transient, by key ("<pod uid>/<container>" for a crash loop,
    /// "<resource>: <message>" for a HelmRelease). A crash loop is judged again when its
    /// count grows, and every ride-out whenever the apiserver's condition changes.
    ridden: HashMap<String, Ridden>,
    /// The last word on each failure ridden out, in the order they came.
    ridden_out: Vec<(String, String)>,
    /// Crash loops judged by count (no known cause), by key: the restart count judged at,
    /// so the same crash is not diagnosed again.
    by_count: HashMap<String, i32>,
    /// Pods replaced to cut a long back-off short (by uid): each once at most.
    cut: std::collections::HashSet<String>,
    /// HelmRelease ride-outs whose failure counters were reset (by key): once per cause.
    reset: std::collections::HashSet<String>,
    /// While something is ridden out: when to time the apiserver next.
    next_sample: Option<Instant>,
}

/// A failure being ridden out, and what its judgement rests on.
struct Ridden {
    target: usize,
    /// The restart count it was judged at (0 for a HelmRelease).
    restarts: i32,
    why: String,
    basis: Basis,
    /// The apiserver's condition, by kind, when `why` was last announced.
    announced: Stage,
}

/// The kind of the apiserver's condition a ride-out rests on: a change is announced, new
/// figures of the same kind are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Unknown,
    Slow,
    Recovered,
    Fast,
}

fn stage(condition: &pressure::Condition) -> Stage {
    match condition {
        pressure::Condition::Unknown => Stage::Unknown,
        pressure::Condition::Slow { .. } => Stage::Slow,
        pressure::Condition::Fast {
            slow_before: true, ..
        } => Stage::Recovered,
        pressure::Condition::Fast { .. } => Stage::Fast,
    }
}

enum Basis {
    Crash {
        pod: Arc<Pod>,
        container: String,
        causes: Vec<&'static super::signatures::Signature>,
        logs_read: bool,
    },
    Release {
        message: String,
    },
}

impl Ridden {
    fn judge(&self, condition: pressure::Condition) -> Verdict {
        match &self.basis {
            Basis::Crash {
                container,
                causes,
                logs_read,
                ..
            } => ride::crash_loop(container, self.restarts, causes, *logs_read, condition),
            Basis::Release { message } => ride::helm_release(message, condition),
        }
    }
}

/// While a failure is ridden out the apiserver is timed this often (a `/readyz` read), so
/// the judgement has fresh figures even when the wait itself sends nothing.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

fn reason_of(health: &Health) -> &str {
    match health {
        Health::Failed { reason, .. } => reason,
        _ => "",
    }
}

fn message_of(health: &Health) -> &str {
    match health {
        Health::Failed { message, .. } => message,
        Health::Progressing { reason } => reason,
        Health::Ready => "",
    }
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
        for (id, t) in targets.iter().enumerate() {
            let config = watcher::Config::default()
                .fields(&format!("metadata.name={}", t.name))
                .timeout(WATCH_TIMEOUT_SECS);
            match t.kind {
                TargetKind::Deployment => {
                    let writer = Writer::<Deployment>::default();
                    objects.push(ObjectStore::Deployment(writer.as_reader()));
                    let api = Api::namespaced(client.clone(), &t.namespace);
                    streams.push(watch_stream(id, api, config, writer, opts));
                }
                TargetKind::HelmRelease => {
                    let ar = helm_release_resource();
                    let writer = Writer::<DynamicObject>::new(ar.clone());
                    objects.push(ObjectStore::HelmRelease(writer.as_reader()));
                    let api = Api::namespaced_with(client.clone(), &t.namespace, &ar);
                    streams.push(watch_stream(id, api, config, writer, opts));
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
            let config = watcher::Config::default().timeout(WATCH_TIMEOUT_SECS);
            let api = Api::namespaced(client.clone(), ns);
            streams.push(watch_stream(
                targets.len() + pods.len() - 1,
                api,
                config,
                writer,
                opts,
            ));
        }
        let mut charts: Vec<(String, Store<DynamicObject>)> = Vec::new();
        for t in targets.iter().filter(|t| t.kind == TargetKind::HelmRelease) {
            if charts.iter().any(|(n, _)| *n == t.namespace) {
                continue;
            }
            let ar = helm_chart_resource();
            let writer = Writer::<DynamicObject>::new(ar.clone());
            charts.push((t.namespace.clone(), writer.as_reader()));
            let config = watcher::Config::default().timeout(WATCH_TIMEOUT_SECS);
            let api = Api::namespaced_with(client.clone(), &t.namespace, &ar);
            let id = targets.len() + pods.len() + charts.len() - 1;
            streams.push(watch_stream(id, api, config, writer, opts));
        }
        let engine = Engine {
            client: client.clone(),
            targets,
            opts,
            synced: vec![false; streams.len()],
            objects,
            pods,
            charts,
            symptoms: HashMap::new(),
            last_emitted: vec![None; targets.len()],
            ready_at: vec![None; targets.len()],
            clock: WaitClock::new(start, opts.timeout, opts.unreachable_budget),
            last_error: String::new(),
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

    fn emit(&self, resource: String, state: EventState, message: String, now: Instant) {
        if let Some(sink) = &self.opts.on_event {
            sink(&HealthEvent {
                resource,
                state,
                message,
                elapsed: self.clock.elapsed(now),
            });
        }
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

    fn pod_store(&self, namespace: &str) -> Option<(usize, &Store<Pod>)> {
        self.pods
            .iter()
            .enumerate()
            .find(|(_, (ns, _))| ns == namespace)
            .map(|(j, (_, store))| (self.targets.len() + j, store))
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
        if !self.synced[i] {
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
            Some((id, store)) if self.synced[id] => store
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

    /// A failure already judged transient stays progressing until it changes (a crash
    /// loop's restart count grows, a HelmRelease's message changes).
    fn riding_out(&self, health: Health, culprit: Option<&Pod>, resource: &str) -> Health {
        let Health::Failed { message, .. } = &health else {
            return health;
        };
        let crash = culprit.and_then(crash_key);
        let ridden = match &crash {
            Some((key, restarts, _)) => self.ridden.get(key).filter(|r| r.restarts == *restarts),
            None => self.ridden.get(&format!("{resource}: {message}")),
        };
        match ridden {
            Some(r) => Health::progressing(format!("riding out: {}", r.why)),
            None => health,
        }
    }

    /// Judges a failure by its cause (see [`judge_failure`]).
    fn judge_cause(
        &self,
        i: usize,
        judged: &Judged,
        diagnosis: &Diagnosis,
        condition: pressure::Condition,
    ) -> (Verdict, Option<(String, i32)>) {
        judge_failure(
            &self.targets[i],
            &judged.health,
            judged.pods.first().map(|p| p.as_ref()),
            diagnosis,
            condition,
        )
    }

    /// The first crash-looping container of a target not yet judged at its restart count:
    /// a crash loop is judged by its cause as soon as it shows, not after a count.
    fn unjudged_crash(&self, judged: &[Judged]) -> Option<(usize, Arc<Pod>)> {
        judged.iter().enumerate().find_map(|(i, j)| {
            if j.health.is_ready() {
                return None;
            }
            j.pods.iter().find_map(|pod| {
                let (key, restarts, _) = crash_key(pod)?;
                let ridden = self
                    .ridden
                    .get(&key)
                    .is_some_and(|r| r.restarts == restarts);
                let counted = self.by_count.get(&key) == Some(&restarts);
                (!ridden && !counted).then(|| (i, pod.clone()))
            })
        })
    }

    /// The subject of a diagnosis of one crash-looping pod of target `i`.
    fn crash_subject(&self, i: usize, pod: &Arc<Pod>) -> (Health, Subject) {
        let symptom = pod_symptom(pod);
        let message = symptom.map(|s| s.message).unwrap_or_default();
        let health = Health::failed("CrashLoopBackOff", message.clone());
        let t = &self.targets[i];
        let subject = Subject {
            resource: t.resource(),
            kind: t.kind.as_str(),
            namespace: t.namespace.clone(),
            name: t.name.clone(),
            reason: "CrashLoopBackOff".to_owned(),
            message,
            pods: vec![pod.clone()],
        };
        (health, subject)
    }

    fn ride_out(
        &mut self,
        i: usize,
        key: String,
        restarts: i32,
        why: String,
        basis: Basis,
        now: Instant,
    ) {
        self.remember(&key, &why);
        self.ridden.insert(
            key,
            Ridden {
                target: i,
                restarts,
                why: why.clone(),
                basis,
                announced: stage(&self.opts.pressure.view().condition(now.into_std())),
            },
        );
        self.next_sample.get_or_insert(now);
        self.emit(self.targets[i].resource(), EventState::RidingOut, why, now);
    }

    fn remember(&mut self, key: &str, why: &str) {
        match self.ridden_out.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = why.to_owned(),
            None => self.ridden_out.push((key.to_owned(), why.to_owned())),
        }
    }

    /// Judges every ride-out again on the apiserver's current condition: the first that
    /// now fails (a cache-sync crash while the apiserver has been fast for two cache-sync
    /// windows) is returned with what the judgement says; one whose cause is unknown once
    /// the apiserver is fast goes back to being judged by its count.
    fn rejudge(&mut self, now: Instant) -> Option<(usize, Option<Arc<Pod>>, Option<String>)> {
        if self.ridden.is_empty() {
            return None;
        }
        let condition = self.opts.pressure.view().condition(now.into_std());
        let mut updates = Vec::new();
        let mut failed = None;
        for (key, r) in &self.ridden {
            match r.judge(condition) {
                Verdict::RideOut { why } => updates.push((key.clone(), Some(why))),
                Verdict::ByCount => updates.push((key.clone(), None)),
                Verdict::Fail { judgement } => {
                    let pod = match &r.basis {
                        Basis::Crash { pod, .. } => Some(pod.clone()),
                        Basis::Release { .. } => None,
                    };
                    failed = Some((r.target, pod, judgement));
                    break;
                }
            }
        }
        let now_stage = stage(&condition);
        for (key, why) in updates {
            match why {
                Some(why) => {
                    self.remember(&key, &why);
                    let Some(r) = self.ridden.get_mut(&key) else {
                        continue;
                    };
                    r.why = why.clone();
                    // A change of the apiserver's condition is worth a line; new figures
                    // of the same condition are not.
                    if r.announced != now_stage {
                        r.announced = now_stage;
                        let resource = self.targets[r.target].resource();
                        self.emit(resource, EventState::RidingOut, why, now);
                    }
                }
                None => {
                    if let Some(r) = self.ridden.remove(&key) {
                        self.by_count.insert(key, r.restarts);
                    }
                }
            }
        }
        failed
    }

    /// Times the apiserver while something is ridden out (the answer is recorded by the
    /// client itself), and, for `up` and `repair`, once the apiserver has calmed: replaces
    /// a pod of the release that waits out a long back-off, and resets the failure
    /// counters of a HelmRelease helm-controller gave up on while it was slow.
    async fn sample(&mut self, now: Instant) {
        self.next_sample = Some(now + SAMPLE_EVERY);
        let client = self.client.clone();
        tokio::spawn(
            self.opts
                .pressure
                .clone()
                .time_readyz(client, PROBE_TIMEOUT),
        );
        if !self.opts.cut_backoff {
            return;
        }
        let condition = self.opts.pressure.view().condition(now.into_std());
        let calm = matches!(condition, pressure::Condition::Fast { for_, slow_before: true, .. } if for_ >= ride::CALM);
        if !calm {
            return;
        }
        self.reset_stalled_releases(&condition).await;
        let mut waiting = Vec::new();
        for (_, store) in &self.pods {
            for pod in store.state() {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let Some((key, _, container)) = crash_key(&pod) else {
                    continue;
                };
                if !self.ridden.contains_key(&key) || self.cut.contains(&uid) {
                    continue;
                }
                let backoff = pod_symptom(&pod).and_then(|s| ride::stated_backoff(&s.message));
                if backoff.is_some_and(|b| b >= ride::CUT_BACKOFF_FROM) {
                    waiting.push((pod, uid, container, backoff.unwrap_or_default()));
                }
            }
        }
        for (pod, uid, container, backoff) in waiting {
            self.cut.insert(uid.clone());
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let params = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let result = Api::<Pod>::namespaced(self.client.clone(), &ns)
                .delete(&name, &params)
                .await;
            let message = match result {
                Ok(_) => format!(
                    "deleted pod {ns}/{name} so its ReplicaSet starts {container} now instead of \
                     after its {}s back-off: {}",
                    backoff.as_secs(),
                    condition.describe()
                ),
                Err(e) => format!(
                    "could not delete pod {ns}/{name} to cut its back-off: {}",
                    error_text(&e)
                ),
            };
            self.emit(
                format!("Pod {ns}/{name}"),
                EventState::BackoffCut,
                message,
                Instant::now(),
            );
        }
    }

    /// helm-controller retries no more once it has given up (Stalled, retries exhausted):
    /// a failure it gave up on because the apiserver was slow is ridden out, and once the
    /// apiserver is calm its counters are reset as `flux reconcile helmrelease --reset`
    /// does, at most once per cause, with the UID judged as precondition.
    async fn reset_stalled_releases(&mut self, condition: &pressure::Condition) {
        let mut due = Vec::new();
        for (key, r) in &self.ridden {
            if !matches!(r.basis, Basis::Release { .. }) || self.reset.contains(key) {
                continue;
            }
            let ObjectStore::HelmRelease(store) = &self.objects[r.target] else {
                continue;
            };
            if let Some(hr) = find(store, &self.targets[r.target].name) {
                due.push((key.clone(), r.target, hr));
            }
        }
        for (key, i, hr) in due {
            self.reset.insert(key);
            let target = &self.targets[i];
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &target.namespace,
                &helm_release_resource(),
            );
            let token = k8s_openapi::jiff::Timestamp::now().to_string();
            let patch = crate::repair::reset_patch(hr.metadata.uid.as_deref(), &token);
            let result = api
                .patch(
                    &target.name,
                    &crate::repair::write_params(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await;
            let message = match result {
                Ok(_) => format!(
                    "reset the failure counters so helm-controller tries again: {}",
                    condition.describe()
                ),
                Err(e) => format!("could not reset the failure counters: {}", error_text(&e)),
            };
            self.emit(
                target.resource(),
                EventState::ResetFailures,
                message,
                Instant::now(),
            );
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

    /// The apiserver answered: ends an outage.
    fn reached(&mut self, now: Instant, probe: &mut Option<Probe>) {
        *probe = None;
        if let Some(outage) = self.clock.reachable(now) {
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

    /// A transient failure: starts an outage (and a probe to notice its end).
    fn unreachable(&mut self, error: String, now: Instant, probe: &mut Option<Probe>) {
        let started = self.clock.unreachable(now);
        if started {
            self.emit(
                "apiserver".to_owned(),
                EventState::ApiserverUnreachable,
                format!("{error}; the health clock is paused"),
                now,
            );
        }
        self.last_error = error;
        if probe.is_none() {
            // The first probe goes at once: most outages are one dropped watch.
            let delay = if started {
                Duration::ZERO
            } else {
                self.probe_delays.next().unwrap_or(self.opts.reconnect_max)
            };
            *probe = Some(reachability_probe(self.client.clone(), delay));
        }
    }

    fn on_item(
        &mut self,
        (id, item): Item,
        now: Instant,
        probe: &mut Option<Probe>,
    ) -> Result<(), HealthError> {
        match item {
            Ok(Tick::Init) => Ok(()),
            Ok(Tick::Synced) => {
                self.synced[id] = true;
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

    fn stream_name(&self, id: usize) -> String {
        let pods = id.saturating_sub(self.targets.len());
        match self.targets.get(id) {
            Some(t) => t.resource(),
            None => match self.pods.get(pods) {
                Some((ns, _)) => format!("Pods in {ns}"),
                None => format!("HelmCharts in {}", self.charts[pods - self.pods.len()].0),
            },
        }
    }

    /// The HelmChart named in the release's `status.helmChart` (`namespace/name`), once
    /// its namespace's watch has synced.
    fn chart_of(&self, hr: &DynamicObject) -> Option<Arc<DynamicObject>> {
        let (ns, name) = chart_ref(hr)?;
        let first = self.targets.len() + self.pods.len();
        let (k, (_, store)) = self.charts.iter().enumerate().find(|(_, (n, _))| n == ns)?;
        self.synced[first + k].then(|| find(store, name)).flatten()
    }

    fn on_watch_error(
        &mut self,
        id: usize,
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

    fn on_probe(
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

fn reachability_probe(client: Client, delay: Duration) -> Probe {
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

fn find<K>(store: &Store<K>, name: &str) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.find(|o| o.meta().name.as_deref() == Some(name))
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
                    let basis = Basis::Crash {
                        pod: pod.clone(),
                        container: crash_key(&pod).map(|c| c.2).unwrap_or_default(),
                        causes: diagnosis.causes.clone(),
                        logs_read: matches!(
                            diagnosis.logs,
                            Some(super::diagnose::Logs::Previous { .. })
                        ),
                    };
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
                    let basis = match (judged[i].pods.first(), reason_of(&judged[i].health)) {
                        (Some(pod), "CrashLoopBackOff") => Basis::Crash {
                            pod: pod.clone(),
                            container: crash_key(pod).map(|c| c.2).unwrap_or_default(),
                            causes: diagnosis.causes.clone(),
                            logs_read: matches!(
                                diagnosis.logs,
                                Some(super::diagnose::Logs::Previous { .. })
                            ),
                        },
                        _ => Basis::Release {
                            message: message_of(&judged[i].health).to_owned(),
                        },
                    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_documented_exit_codes() {
        let diagnosis = Diagnosis {
            resource: String::new(),
            reason: String::new(),
            message: String::new(),
            pods: vec![],
            terminations: vec![],
            events: vec![],
            probe_failures: vec![],
            logs: None,
            causes: vec![],
            judgement: None,
            gaps: vec![],
        };
        let cases = [
            (
                HealthError::WorkloadFailed {
                    diagnosis: Box::new(diagnosis),
                },
                4,
            ),
            (
                HealthError::TimedOut {
                    waited: Duration::ZERO,
                    pending: vec![],
                    diagnoses: vec![],
                },
                5,
            ),
            (
                HealthError::ApiserverUnreachable {
                    unreachable_for: Duration::ZERO,
                    budget: Duration::ZERO,
                    last_error: String::new(),
                },
                6,
            ),
            (
                HealthError::Forbidden {
                    what: String::new(),
                    message: String::new(),
                },
                8,
            ),
            (
                HealthError::Api {
                    what: String::new(),
                    message: String::new(),
                },
                1,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit().code(), code, "{e:?}");
        }
    }

    #[test]
    fn timed_out_lists_what_is_pending() {
        let e = HealthError::TimedOut {
            waited: Duration::from_secs(300),
            pending: vec![Pending {
                resource: "HelmRelease flux-system/external-dns".into(),
                reason: "no status yet: is Flux helm-controller running?".into(),
            }],
            diagnoses: vec![],
        };
        assert_eq!(
            e.to_string(),
            "timed out after 300s waiting for HelmRelease flux-system/external-dns (no status \
             yet: is Flux helm-controller running?)"
        );
    }

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

    #[test]
    fn health_events_serialize_for_ndjson() {
        let e = HealthEvent {
            resource: "apiserver".into(),
            state: EventState::ApiserverUnreachable,
            message: "connection refused".into(),
            elapsed: Duration::from_millis(1500),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"resource":"apiserver","state":"apiserver-unreachable","message":"connection refused","elapsed_s":1.5}"#
        );
        // The states README.md's output table names.
        for (state, name) in [
            (EventState::RidingOut, "riding-out"),
            (EventState::BackoffCut, "backoff-cut"),
            (EventState::ResetFailures, "reset-failures"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), name);
        }
        use EventState::*;
        for state in [
            Progressing,
            Ready,
            Failed,
            ApiserverUnreachable,
            ApiserverReachable,
            RidingOut,
            BackoffCut,
            ResetFailures,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
