//! What the health judgement looks at, and the one judgement of a target that `wait`,
//! `status` and `repair` share: a target's object (a Deployment, or a HelmRelease with the
//! HelmChart it waits on), then its pods, then, for a failure, its cause.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::Selector;

use super::diagnose::{Diagnosis, MAX_PODS};
use super::judge::{
    Health, combine, judge_deployment, judge_helm_release_with_chart, judge_pod, judge_pods,
    pod_symptom,
};
use super::pressure;
use super::ride::{self, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Deployment,
    /// helm.toolkit.fluxcd.io/v2 HelmRelease.
    HelmRelease,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Deployment => "Deployment",
            TargetKind::HelmRelease => "HelmRelease",
        }
    }
}

/// Which pods belong to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodSelection {
    /// Only the object itself is judged.
    None,
    /// The pods the Deployment's own selector picks; they can fail it early, and its
    /// rollout status decides readiness.
    OfDeployment,
    /// Pods in `namespace` carrying all `labels`; any can fail the target, and all must be
    /// ready (at least one).
    Labels {
        namespace: String,
        labels: BTreeMap<String, String>,
    },
}

/// One thing to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    pub namespace: String,
    pub name: String,
    pub pods: PodSelection,
}

impl Target {
    /// A Deployment and its pods.
    pub fn deployment(namespace: &str, name: &str) -> Target {
        Target {
            kind: TargetKind::Deployment,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            pods: PodSelection::OfDeployment,
        }
    }

    /// A HelmRelease alone; see [`Target::with_release_pods`].
    pub fn helm_release(namespace: &str, name: &str) -> Target {
        Target {
            kind: TargetKind::HelmRelease,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            pods: PodSelection::None,
        }
    }

    /// Also judges the pods of the Helm release, labelled the way Helm charts label them
    /// (the external-dns chart: app.kubernetes.io/name=external-dns,
    /// app.kubernetes.io/instance=<release>). A crash-looping pod then fails the wait
    /// while Flux itself still waits out its own timeout.
    pub fn with_release_pods(mut self, namespace: &str, release: &str, app: &str) -> Target {
        self.pods = PodSelection::Labels {
            namespace: namespace.to_owned(),
            labels: BTreeMap::from([
                ("app.kubernetes.io/name".to_owned(), app.to_owned()),
                ("app.kubernetes.io/instance".to_owned(), release.to_owned()),
            ]),
        };
        self
    }

    /// "Kind namespace/name", as progress and errors name it.
    pub fn resource(&self) -> String {
        format!("{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

pub(crate) fn helm_release_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
    ))
}

/// The HelmCharts helm-controller makes from a HelmRelease's chart template.
pub(crate) fn helm_chart_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "source.toolkit.fluxcd.io",
        "v1",
        "HelmChart",
    ))
}

/// The one judgement of a failed target by its cause, for `wait`, `status` and `repair`:
/// a crash-looping container from the causes its diagnosis found and the apiserver's
/// condition, a HelmRelease from its failure message. Returns the verdict and the key a
/// ride-out is remembered by (with the restart count it was judged at).
pub(crate) fn judge_failure(
    target: &Target,
    health: &Health,
    culprit: Option<&Pod>,
    diagnosis: &Diagnosis,
    condition: pressure::Condition,
) -> (Verdict, Option<(String, i32)>) {
    let Health::Failed { reason, message } = health else {
        return (Verdict::Fail { judgement: None }, None);
    };
    if reason == "CrashLoopBackOff"
        && let Some((key, restarts, container)) = culprit.and_then(crash_key)
    {
        let logs_read = matches!(diagnosis.logs, Some(super::diagnose::Logs::Previous { .. }));
        let verdict = ride::crash_loop(
            &container,
            restarts,
            &diagnosis.causes,
            logs_read,
            condition,
        );
        return (verdict, Some((key, restarts)));
    }
    if target.kind == TargetKind::HelmRelease {
        let key = format!("{}: {message}", target.resource());
        return (ride::helm_release(message, condition), Some((key, 0)));
    }
    (Verdict::Fail { judgement: None }, None)
}

/// A crash-looping container's ride-out key and restart count.
pub(crate) fn crash_key(pod: &Pod) -> Option<(String, i32, String)> {
    let s = pod_symptom(pod)?;
    if s.reason != "CrashLoopBackOff" {
        return None;
    }
    let container = s.container.unwrap_or_default();
    Some((
        format!(
            "{}/{container}",
            pod.metadata.uid.as_deref().unwrap_or_default()
        ),
        s.restarts,
        container,
    ))
}

pub(crate) fn pod_namespace(t: &Target) -> Option<&str> {
    match (&t.pods, t.kind) {
        (PodSelection::OfDeployment, TargetKind::Deployment) => Some(&t.namespace),
        (PodSelection::Labels { namespace, .. }, _) => Some(namespace),
        _ => None,
    }
}

/// The pods a Deployment target answers for: the Deployment's own selector, or the
/// target's label selection.
pub(crate) fn deployment_pods(pods: &PodSelection, deployment: &Deployment) -> Option<Selector> {
    match pods {
        PodSelection::OfDeployment => deployment
            .spec
            .as_ref()
            .and_then(|s| Selector::try_from(s.selector.clone()).ok()),
        other => selection(other),
    }
}

pub(crate) fn selection(pods: &PodSelection) -> Option<Selector> {
    match pods {
        PodSelection::Labels { labels, .. } => Selector::try_from(LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: None,
        })
        .ok(),
        _ => None,
    }
}

/// What is seen of a target's own object.
pub(crate) enum Object<'a> {
    Deployment(&'a Deployment),
    HelmRelease {
        release: &'a DynamicObject,
        /// The HelmChart named in the release's `status.helmChart`, when known.
        chart: Option<&'a DynamicObject>,
    },
}

/// The `namespace/name` of the HelmChart helm-controller made for a release.
pub(crate) fn chart_ref(hr: &DynamicObject) -> Option<(&str, &str)> {
    hr.data["status"]["helmChart"].as_str()?.split_once('/')
}

/// The object's verdict, and the selector of the pods the target answers for.
pub(crate) fn judge_object(target: &Target, object: Object<'_>) -> (Health, Option<Selector>) {
    match object {
        Object::Deployment(d) => (judge_deployment(d), deployment_pods(&target.pods, d)),
        Object::HelmRelease { release, chart } => (
            judge_helm_release_with_chart(release, chart),
            selection(&target.pods),
        ),
    }
}

/// A target's verdict from its object's and its pods'.
pub(crate) struct PodsJudged {
    pub health: Health,
    /// The pods a diagnosis should look at, by index: the culprit, then other pods that
    /// are not ready.
    pub examine: Vec<usize>,
    /// The pod that failed the target, if one did.
    pub culprit: Option<usize>,
}

/// Judges a target's pods, each with how long its current symptom has lasted, on top of
/// its object's verdict. Pods named by label are the workload itself and must be ready; a
/// Deployment's own pods can only fail it, its rollout status says when it is ready.
pub(crate) fn judge_with_pods(
    target: &Target,
    object: Health,
    pods: &[(&Pod, Duration)],
    grace: Duration,
) -> PodsJudged {
    let require_ready = matches!(target.pods, PodSelection::Labels { .. });
    let verdict = judge_pods(pods, grace, require_ready);
    let mut examine: Vec<usize> = verdict.culprit.into_iter().collect();
    for (k, (pod, persisted)) in pods.iter().enumerate() {
        if examine.len() >= MAX_PODS {
            break;
        }
        if Some(k) != verdict.culprit && !judge_pod(pod, *persisted, grace).is_ready() {
            examine.push(k);
        }
    }
    let culprit = matches!(verdict.health, Health::Failed { .. })
        .then_some(verdict.culprit)
        .flatten();
    PodsJudged {
        health: combine(object, &verdict),
        examine,
        culprit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::SelectorExt;

    #[test]
    fn targets_name_themselves_and_select_release_pods() {
        let t = Target::helm_release("flux-system", "external-dns").with_release_pods(
            "external-dns",
            "external-dns",
            "external-dns",
        );
        assert_eq!(t.resource(), "HelmRelease flux-system/external-dns");
        assert_eq!(pod_namespace(&t), Some("external-dns"));
        let sel = selection(&t.pods).unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(sel.matches(&labels(&[
            ("app.kubernetes.io/name", "external-dns"),
            ("app.kubernetes.io/instance", "external-dns"),
            ("pod-template-hash", "abc"),
        ])));
        assert!(!sel.matches(&labels(&[("app.kubernetes.io/name", "external-dns")])));

        let d = Target::deployment("ns", "web");
        assert_eq!(d.resource(), "Deployment ns/web");
        assert_eq!(pod_namespace(&d), Some("ns"));
        assert_eq!(pod_namespace(&Target::helm_release("ns", "x")), None);
    }
}
