//! Riding out: the failures judged transient, what each judgement rests on, how they
//! are judged again as the apiserver's condition changes, and what `up` and `repair` do
//! once it has calmed (cut a long back-off, reset a HelmRelease's failure counters).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DynamicObject;
use tokio::time::Instant;

use super::diagnose::{Diagnosis, Logs, Subject, error_text};
use super::judge::{Health, pod_symptom};
use super::outcome::EventState;
use super::pressure;
use super::ride::{self, Verdict};
use super::streams::PROBE_TIMEOUT;
use super::streams::find;
use super::target::{crash_key, helm_release_resource, judge_failure};
use super::watch::{Engine, Judged, ObjectStore};

/// A failure being ridden out, and what its judgement rests on.
pub(super) struct Ridden {
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

pub(super) enum Basis {
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
    pub(super) fn judge(&self, condition: pressure::Condition) -> Verdict {
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

impl Basis {
    /// A crash-looping container's ride-out rests on the causes its diagnosis found.
    pub(super) fn crash(pod: &Arc<Pod>, diagnosis: &Diagnosis) -> Basis {
        Basis::Crash {
            pod: pod.clone(),
            container: crash_key(pod).map(|c| c.2).unwrap_or_default(),
            causes: diagnosis.causes.clone(),
            logs_read: matches!(diagnosis.logs, Some(Logs::Previous { .. })),
        }
    }

    /// What a judged target's ride-out rests on: its crash-looping culprit, or the
    /// HelmRelease's failure message.
    pub(super) fn of(judged: &Judged, diagnosis: &Diagnosis) -> Basis {
        match (judged.pods.first(), &judged.health) {
            (Some(pod), Health::Failed { reason, .. }) if reason == "CrashLoopBackOff" => {
                Basis::crash(pod, diagnosis)
            }
            (_, Health::Failed { message, .. }) => Basis::Release {
                message: message.clone(),
            },
            (_, Health::Progressing { reason }) => Basis::Release {
                message: reason.clone(),
            },
            (_, Health::Ready) => Basis::Release {
                message: String::new(),
            },
        }
    }
}

impl Engine<'_> {
    /// A failure already judged transient stays progressing until it changes (a crash
    /// loop's restart count grows, a HelmRelease's message changes).
    pub(super) fn riding_out(
        &self,
        health: Health,
        culprit: Option<&Pod>,
        resource: &str,
    ) -> Health {
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
    pub(super) fn judge_cause(
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
    pub(super) fn unjudged_crash(&self, judged: &[Judged]) -> Option<(usize, Arc<Pod>)> {
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
    pub(super) fn crash_subject(&self, i: usize, pod: &Arc<Pod>) -> (Health, Subject) {
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

    pub(super) fn ride_out(
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

    pub(super) fn remember(&mut self, key: &str, why: &str) {
        match self.ridden_out.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = why.to_owned(),
            None => self.ridden_out.push((key.to_owned(), why.to_owned())),
        }
    }

    /// Judges every ride-out again on the apiserver's current condition: the first that
    /// now fails (a cache-sync crash while the apiserver has been fast for two cache-sync
    /// windows) is returned with what the judgement says; one whose cause is unknown once
    /// the apiserver is fast goes back to being judged by its count.
    pub(super) fn rejudge(
        &mut self,
        now: Instant,
    ) -> Option<(usize, Option<Arc<Pod>>, Option<String>)> {
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
    pub(super) async fn sample(&mut self, now: Instant) {
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
    pub(super) async fn reset_stalled_releases(&mut self, condition: &pressure::Condition) {
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
}
