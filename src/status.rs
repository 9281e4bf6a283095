//! `status`: one look at the kit's workloads, judged exactly as `wait` judges them, that
//! changes nothing and waits for nothing. Only GETs and LISTs, each through
//! [`crate::retry::with_retry`].

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::{Api, Client};

use crate::exit::Exit;
use crate::health::diagnose::{Subject, diagnose};
use crate::health::judge::{Health, waits_on_chart};
use crate::health::ride::Verdict;
use crate::health::target::{
    Object, chart_ref, helm_chart_resource, helm_release_resource, judge_failure, judge_object,
    judge_with_pods, pod_namespace,
};
use crate::health::{Target, TargetKind};
use crate::retry::{RetryError, RetryPolicy, list_selected, with_retry};

/// A snapshot cannot tell how long a pod symptom has lasted, so it gives none the grace
/// period `wait` gives: an image pull back-off or a crash loop seen now is a failure now.
const SNAPSHOT_GRACE: Duration = Duration::ZERO;

/// Where one resource stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    Progressing,
    Failed,
    /// The object does not exist (the kit is not applied, or Flux has not created it).
    Missing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Progressing => "progressing",
            State::Failed => "failed",
            State::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    /// "Kind namespace/name", as `wait` names it.
    pub resource: String,
    pub state: State,
    pub message: String,
}

impl ResourceStatus {
    fn judged(resource: String, health: Health) -> ResourceStatus {
        let (state, message) = match health {
            Health::Ready => (State::Ready, "ready".to_owned()),
            Health::Progressing { reason } => (State::Progressing, reason),
            Health::Failed { reason, message } => (State::Failed, format!("{reason}: {message}")),
        };
        ResourceStatus {
            resource,
            state,
            message,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// One entry per target, in the order given.
    pub resources: Vec<ResourceStatus>,
}

impl StatusReport {
    /// Every resource is ready.
    pub fn healthy(&self) -> bool {
        self.resources.iter().all(|r| r.state == State::Ready)
    }

    /// The exit code of `status`, so automation can branch without parsing output:
    ///
    /// - 0 ([`Exit::Success`]): every resource is ready.
    /// - 4 ([`Exit::WorkloadFailed`]): at least one resource failed, i.e. waiting will not
    ///   help: look at it, or run `repair`.
    /// - 5 ([`Exit::TimedOut`]): nothing failed, but something is progressing or missing.
    ///   `status` is `wait` with a zero timeout, and this is what `wait` reports when its
    ///   time runs out without a clearer cause: the next step is to wait (or `apply`, for a
    ///   missing object), not to repair. Folding this into 4 would send automation to
    ///   `repair` for a release that is merely still installing.
    pub fn exit(&self) -> Exit {
        let any = |s: State| self.resources.iter().any(|r| r.state == s);
        if any(State::Failed) {
            Exit::WorkloadFailed
        } else if self.healthy() {
            Exit::Success
        } else {
            Exit::TimedOut
        }
    }
}

pub async fn status(
    client: &Client,
    targets: &[Target],
    policy: &RetryPolicy,
) -> Result<StatusReport, RetryError> {
    let mut resources = Vec::with_capacity(targets.len());
    for target in targets {
        resources.push(look(client, target, policy).await?);
    }
    Ok(StatusReport { resources })
}

async fn look(
    client: &Client,
    target: &Target,
    policy: &RetryPolicy,
) -> Result<ResourceStatus, RetryError> {
    let resource = target.resource();
    let what = format!("get {resource}");
    let (object, selector) = match target.kind {
        TargetKind::HelmRelease => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &target.namespace, &helm_release_resource());
            let Some(hr) = with_retry(policy, &what, || api.get_opt(&target.name)).await? else {
                return Ok(missing(resource));
            };
            // The chart is read only when the release waits on it, as the wait's verdict
            // would then be the chart's.
            let chart = match chart_ref(&hr).filter(|_| waits_on_chart(&hr)) {
                Some((ns, name)) => {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), ns, &helm_chart_resource());
                    let what = format!("get HelmChart {ns}/{name}");
                    with_retry(policy, &what, || api.get_opt(name)).await?
                }
                None => None,
            };
            let release = Object::HelmRelease {
                release: &hr,
                chart: chart.as_ref(),
            };
            judge_object(target, release)
        }
        TargetKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
            match with_retry(policy, &what, || api.get_opt(&target.name)).await? {
                Some(d) => judge_object(target, Object::Deployment(&d)),
                None => return Ok(missing(resource)),
            }
        }
    };
    let (Some(selector), Some(namespace)) = (selector, pod_namespace(target)) else {
        return Ok(ResourceStatus::judged(resource, object));
    };
    let pods: Vec<Pod> = list_selected(client, namespace, &selector, policy).await?;
    let pairs: Vec<(&Pod, Duration)> = pods.iter().map(|p| (p, Duration::ZERO)).collect();
    let judged = judge_with_pods(target, object, &pairs, SNAPSHOT_GRACE);
    let culprit = judged.culprit.map(|c| &pods[c]);
    let health = by_cause(client, target, judged.health, culprit, policy).await;
    Ok(ResourceStatus::judged(resource, health))
}

async fn by_cause(
    client: &Client,
    target: &Target,
    health: Health,
    culprit: Option<&Pod>,
    policy: &RetryPolicy,
) -> Health {
    if !matches!(health, Health::Failed { .. }) {
        return health;
    }
    let (reason, message) = match &health {
        Health::Failed { reason, message } => (reason.clone(), message.clone()),
        _ => unreachable!("checked above"),
    };
    let subject = Subject {
        resource: target.resource(),
        kind: target.kind.as_str(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        reason,
        message,
        pods: culprit
            .map(|p| std::sync::Arc::new(p.clone()))
            .into_iter()
            .collect(),
    };
    let diagnosis = diagnose(client, subject).await;
    let condition = policy
        .pressure()
        .fresh_condition(client, crate::retry::READ_TIMEOUT)
        .await;
    match judge_failure(target, &health, culprit, &diagnosis, condition).0 {
        Verdict::RideOut { why } => Health::progressing(format!("riding out: {why}")),
        Verdict::Fail { judgement: Some(j) } => match health {
            Health::Failed { reason, message } => {
                Health::failed(reason, format!("{message}; judged by cause: {j}"))
            }
            other => other,
        },
        Verdict::Fail { judgement: None } | Verdict::ByCount => health,
    }
}

fn missing(resource: String) -> ResourceStatus {
    ResourceStatus {
        resource,
        state: State::Missing,
        message: "not created".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(states: &[State]) -> StatusReport {
        StatusReport {
            resources: states
                .iter()
                .enumerate()
                .map(|(i, s)| ResourceStatus {
                    resource: format!("HelmRelease ns/r{i}"),
                    state: *s,
                    message: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn exit_codes_tell_failed_from_not_yet() {
        use State::*;
        let cases = [
            (vec![Ready, Ready], Exit::Success, true),
            (vec![], Exit::Success, true),
            (vec![Ready, Failed], Exit::WorkloadFailed, false),
            (
                vec![Missing, Failed, Progressing],
                Exit::WorkloadFailed,
                false,
            ),
            (vec![Ready, Progressing], Exit::TimedOut, false),
            (vec![Missing], Exit::TimedOut, false),
        ];
        for (states, exit, healthy) in cases {
            let r = report(&states);
            assert_eq!((r.exit(), r.healthy()), (exit, healthy), "{states:?}");
        }
    }

    #[test]
    fn verdicts_map_to_states_with_their_reasons() {
        let r = ResourceStatus::judged(
            "HelmRelease ns/x".into(),
            Health::failed("RetriesExceeded", "too many"),
        );
        assert_eq!(
            (r.state, r.message.as_str()),
            (State::Failed, "RetriesExceeded: too many")
        );
        let r = ResourceStatus::judged("x".into(), Health::progressing("no pods yet"));
        assert_eq!(
            (r.state, r.message.as_str()),
            (State::Progressing, "no pods yet")
        );
        let r = missing("x".into());
        assert_eq!(
            (r.state, r.message.as_str()),
            (State::Missing, "not created")
        );
    }
}
