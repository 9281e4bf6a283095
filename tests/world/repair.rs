//! `repair` against the real test world: the kit is applied by the real `apply`, the test
//! plays helm-controller (HelmRelease status) and Helm (the chart's Deployment, with
//! Helm's release annotations), kube-controller-manager rolls Deployments out, and kwok
//! crash-loops the pods labelled with `FAULT_LABEL`.

use std::time::Duration;

use crate::support::{FAULT_LABEL, World, crash_loop_stage, unique};
use catalyst_bootstrap::apply::{self, ApplyOptions, MANAGED_BY_LABEL};
use catalyst_bootstrap::health::Target;
use catalyst_bootstrap::health::judge::pod_symptom;
use catalyst_bootstrap::render;
use catalyst_bootstrap::repair::{
    Action, FIELD_MANAGER, HELM_RELEASE_NAME, HELM_RELEASE_NAMESPACE, REQUESTED_AT, RESET_AT,
    RESTARTED_AT, RepairReport, repair,
};
use catalyst_bootstrap::retry::RetryPolicy;
use catalyst_bootstrap::spec;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Generous: the world shares two cores with builds.
const SETTLE: Duration = Duration::from_secs(60);
const RELEASE: &str = "external-dns";
const TOKEN: &str = "2026-03-01T12:00:00Z";

fn releases() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
    ))
}

fn policy() -> RetryPolicy {
    RetryPolicy::default().with_unreachable_budget(Duration::from_secs(60))
}

/// One test's namespace (also its Sovereign name), and the crash-loop stage it installed.
struct Scratch {
    client: Client,
    ns: String,
    stage: Option<String>,
}

impl Scratch {
    async fn new(prefix: &str) -> Scratch {
        let world = World::from_env();
        Scratch {
            client: world.kube().await,
            ns: unique(prefix),
            stage: None,
        }
    }

    /// Applies the local Sovereign's kit with external-dns in this namespace, as `apply`
    /// does.
    async fn apply_kit(&self) {
        let world = World::from_env();
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(&world.local_spec)
            .unwrap()
            .replace("  name: local", &format!("  name: {}", self.ns))
            .replace(
                "  cni: cilium\n",
                &format!(
                    "  cni: cilium\n  externalDns:\n    namespace: {}\n",
                    self.ns
                ),
            );
        let path = dir.path().join("sovereign.yaml");
        std::fs::write(&path, text).unwrap();
        let loaded = spec::load(&path, None).expect("the local spec is valid");
        let kit = render::render(&loaded.sovereign).unwrap();
        let desired = apply::parse(
            kit.manifests
                .iter()
                .map(|m| (m.file_name.as_str(), m.yaml.as_str())),
        )
        .unwrap();
        apply::apply(
            &self.client,
            &desired,
            &ApplyOptions::new(&self.ns, &self.ns).with_retry(policy()),
        )
        .await
        .expect("apply the kit");
    }

    async fn create_namespace(&self) {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": self.ns}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
    }

    fn helm_releases(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &releases())
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn targets(&self) -> Vec<Target> {
        vec![Target::helm_release(&self.ns, RELEASE).with_release_pods(&self.ns, RELEASE, RELEASE)]
    }

    async fn repair(&self) -> RepairReport {
        repair(&self.client, &self.targets(), &policy(), || {
            TOKEN.to_owned()
        })
        .await
        .expect("repair")
    }

    async fn release(&self) -> DynamicObject {
        self.helm_releases().get(RELEASE).await.unwrap()
    }

    /// Plays helm-controller: Ready, or Stalled with retries exhausted, for the current
    /// generation.
    async fn set_release_status(&self, ready: bool) {
        let conditions: &[(&str, &str, &str)] = if ready {
            &[("Ready", "True", "UpgradeSucceeded")]
        } else {
            &[
                ("Ready", "False", "RetriesExceeded"),
                ("Stalled", "True", "RetriesExceeded"),
            ]
        };
        crate::support::flux::write_release_status(&self.client, &self.ns, RELEASE, conditions)
            .await;
    }

    /// Plays Helm: the chart's Deployment for the release, whose pods crash-loop when
    /// `crash` (then it also installs the kwok stage that makes them).
    async fn chart_deployment(&mut self, crash: bool, helm_annotations: bool) {
        let mut pod_labels = json!({"app.kubernetes.io/name": RELEASE,
                                    "app.kubernetes.io/instance": RELEASE});
        let selector = pod_labels.clone();
        if crash {
            let id = unique("crash");
            self.stage = Some(crash_loop_stage(&self.client, &id).await);
            pod_labels[FAULT_LABEL] = json!(id);
        }
        let annotations = if helm_annotations {
            json!({HELM_RELEASE_NAME: RELEASE, HELM_RELEASE_NAMESPACE: self.ns})
        } else {
            json!({})
        };
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": RELEASE, "annotations": annotations,
                         "labels": {"app.kubernetes.io/managed-by": "Helm"}},
            "spec": {
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {"containers": [{"name": "external-dns",
                        "image": "registry.k8s.io/external-dns/external-dns:v0.22.0"}]}
                }
            }
        }))
        .unwrap();
        self.deployments()
            .create(&PostParams::default(), &d)
            .await
            .expect("create the chart's Deployment");
    }

    /// Waits until the release has `pods` pods, all crash-looping (`crash`) or all Ready,
    /// and the Deployment controller has recorded its revision.
    async fn settle(&self, crash: bool, pods_wanted: usize) {
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns);
        let params = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let list = pods.list(&params).await.unwrap().items;
            let settled = list.len() == pods_wanted
                && list.iter().all(|p| {
                    if crash {
                        pod_symptom(p).is_some_and(|s| s.is_immediate())
                    } else {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    }
                });
            let revision = self
                .deployments()
                .get(RELEASE)
                .await
                .unwrap()
                .metadata
                .annotations
                .is_some_and(|a| a.contains_key("deployment.kubernetes.io/revision"));
            if settled && revision {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pods did not settle (crash: {crash}) within {SETTLE:?}: {list:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn cleanup(self) {
        if let Some(stage) = self.stage {
            let ar =
                ApiResource::from_gvk(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"));
            let _ = Api::<DynamicObject>::all_with(self.client.clone(), &ar)
                .delete(&stage, &DeleteParams::default())
                .await;
        }
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.ns, &DeleteParams::default())
            .await;
    }
}

fn annotations(obj: &DynamicObject) -> Value {
    json!(obj.metadata.annotations.clone().unwrap_or_default())
}

/// The fields a manager owns, as the apiserver records them.
fn owned_by(obj: &DynamicObject, manager: &str) -> Vec<(String, Value)> {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(manager))
        .map(|m| {
            (
                m.operation.clone().unwrap_or_default(),
                json!(m.fields_v1.as_ref().map(|f| &f.0)),
            )
        })
        .collect()
}

#[tokio::test]
async fn stalled_release_gets_a_reset_that_changes_nothing_else() {
    let scratch = Scratch::new("repair-reset").await;
    scratch.apply_kit().await;
    scratch.set_release_status(false).await;
    let before = scratch.release().await;

    let report = scratch.repair().await;
    assert_eq!(report.actions.len(), 1, "{report:#?}");
    let action = &report.actions[0];
    assert_eq!(action.action, Action::ResetFailures);
    assert_eq!(
        action.resource,
        format!("HelmRelease {}/{RELEASE}", scratch.ns)
    );
    assert!(action.reason.starts_with("RetriesExceeded"), "{action:?}");
    assert!(report.skipped.is_empty(), "{report:#?}");

    let after = scratch.release().await;
    let a = annotations(&after);
    assert_eq!(
        (a[REQUESTED_AT].as_str(), a[RESET_AT].as_str()),
        (Some(TOKEN), Some(TOKEN))
    );
    assert_eq!(after.data["spec"], before.data["spec"]);
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.metadata.labels, before.metadata.labels);
    // apply's field ownership is untouched; repair owns exactly its two annotations.
    assert_eq!(
        owned_by(&after, apply::FIELD_MANAGER),
        owned_by(&before, apply::FIELD_MANAGER)
    );
    assert_eq!(
        owned_by(&after, FIELD_MANAGER),
        [(
            "Update".to_owned(),
            // "." is the annotations map itself, which the kit does not declare.
            json!({"f:metadata": {"f:annotations": {
                ".": {}, format!("f:{REQUESTED_AT}"): {}, format!("f:{RESET_AT}"): {}}}})
        )]
    );

    // The next apply neither fights over nor removes them.
    scratch.apply_kit().await;
    let reapplied = scratch.release().await;
    assert_eq!(annotations(&reapplied)[RESET_AT], TOKEN);
    assert_eq!(reapplied.metadata.generation, before.metadata.generation);
    scratch.cleanup().await;
}

#[tokio::test]
async fn release_not_ready_gets_only_a_reconcile_request_and_a_ready_one_nothing() {
    let mut scratch = Scratch::new("repair-nudge").await;
    scratch.apply_kit().await;
    // No status: nobody has reconciled it yet.
    let before = scratch.release().await;
    let report = scratch.repair().await;
    assert_eq!(
        report.actions.iter().map(|a| a.action).collect::<Vec<_>>(),
        [Action::RequestReconcile],
        "{report:#?}"
    );
    assert!(
        report.actions[0].reason.contains("no status yet"),
        "{report:#?}"
    );
    let after = scratch.release().await;
    let a = annotations(&after);
    assert_eq!(a[REQUESTED_AT], TOKEN);
    assert!(a.get(RESET_AT).is_none(), "{a}");
    assert_eq!(after.data["spec"], before.data["spec"]);
    assert_eq!(after.metadata.generation, before.metadata.generation);

    // Healthy: Ready release, Ready pods. Repair changes nothing at all.
    scratch.set_release_status(true).await;
    scratch.chart_deployment(false, true).await;
    scratch.settle(false, 1).await;
    let release_rv = scratch.release().await.metadata.resource_version;
    let deployment_rv = scratch
        .deployments()
        .get(RELEASE)
        .await
        .unwrap()
        .metadata
        .resource_version;
    let report = scratch.repair().await;
    // Nothing done and nothing left alone: `repair` says there was nothing to repair.
    assert!(report.nothing_done(), "{report:#?}");
    assert!(report.skipped.is_empty(), "{report:#?}");
    assert_eq!(
        scratch.release().await.metadata.resource_version,
        release_rv
    );
    let deployment = scratch.deployments().get(RELEASE).await.unwrap();
    assert_eq!(deployment.metadata.resource_version, deployment_rv);
    scratch.cleanup().await;
}

#[tokio::test]
async fn crash_looping_release_deployment_is_restarted_once() {
    let mut scratch = Scratch::new("repair-restart").await;
    scratch.apply_kit().await;
    scratch.set_release_status(true).await;
    scratch.chart_deployment(true, true).await;
    scratch.settle(true, 1).await;
    let before = scratch.deployments().get(RELEASE).await.unwrap();

    let report = scratch.repair().await;
    assert_eq!(report.actions.len(), 1, "{report:#?}");
    let action = &report.actions[0];
    assert_eq!(action.action, Action::RolloutRestart);
    assert_eq!(
        action.resource,
        format!("Deployment {}/{RELEASE}", scratch.ns)
    );
    assert!(
        action
            .reason
            .contains("CrashLoopBackOff after 4 restarts on the current template"),
        "{action:?}"
    );

    let after = scratch.deployments().get(RELEASE).await.unwrap();
    let template = after
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        template.annotations.as_ref().unwrap()[RESTARTED_AT],
        TOKEN,
        "kubectl's restart annotation"
    );
    assert_eq!(
        after.metadata.generation,
        before.metadata.generation.map(|g| g + 1)
    );
    // The Deployment controller rolls out a new template: a second ReplicaSet.
    let replica_sets = Api::<ReplicaSet>::namespaced(scratch.client.clone(), &scratch.ns);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let count = replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        if count == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new ReplicaSet within {SETTLE:?} ({count})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The restarted pod crash-loops too (next to the old one, which the rollout keeps
    // until its replacement is available): the cause is not a passing one, so the next
    // repair does not restart again.
    scratch.settle(true, 2).await;
    let report = scratch.repair().await;
    assert!(report.nothing_done(), "{report:#?}");
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert!(
        report.skipped[0].reason.contains(&format!(
            "crash-loops again after the restart at {TOKEN}, less than 5m ago"
        )),
        "{report:#?}"
    );
    assert_eq!(
        scratch
            .deployments()
            .get(RELEASE)
            .await
            .unwrap()
            .metadata
            .generation,
        after.metadata.generation
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn objects_that_are_not_ours_are_left_alone() {
    // A stalled HelmRelease someone else manages, with a crash-looping Deployment.
    let mut scratch = Scratch::new("repair-foreign").await;
    scratch.create_namespace().await;
    let hr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": RELEASE, "labels": {MANAGED_BY_LABEL: "someone-else"}},
        "spec": {"interval": "10m", "chart": {"spec": {"chart": "external-dns",
            "sourceRef": {"kind": "HelmRepository", "name": "external-dns"}}}}
    }))
    .unwrap();
    scratch
        .helm_releases()
        .create(&PostParams::default(), &hr)
        .await
        .unwrap();
    scratch.set_release_status(false).await;
    scratch.chart_deployment(true, true).await;
    scratch.settle(true, 1).await;
    let release_rv = scratch.release().await.metadata.resource_version;
    let generation = scratch
        .deployments()
        .get(RELEASE)
        .await
        .unwrap()
        .metadata
        .generation;

    let report = scratch.repair().await;
    assert!(report.nothing_done(), "{report:#?}");
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert!(
        report.skipped[0]
            .reason
            .contains("not managed by catalyst-bootstrap"),
        "{report:#?}"
    );
    assert_eq!(
        scratch.release().await.metadata.resource_version,
        release_rv
    );
    let deployment = scratch.deployments().get(RELEASE).await.unwrap();
    assert_eq!(deployment.metadata.generation, generation);
    scratch.cleanup().await;
}

#[tokio::test]
async fn crash_looping_deployment_helm_did_not_create_for_our_release_is_left_alone() {
    let mut scratch = Scratch::new("repair-nohelm").await;
    scratch.apply_kit().await;
    scratch.set_release_status(true).await;
    // Same pod labels as the release's, but no Helm release annotations.
    scratch.chart_deployment(true, false).await;
    scratch.settle(true, 1).await;
    let generation = scratch
        .deployments()
        .get(RELEASE)
        .await
        .unwrap()
        .metadata
        .generation;

    let report = scratch.repair().await;
    assert!(report.nothing_done(), "{report:#?}");
    assert_eq!(report.skipped.len(), 1, "{report:#?}");
    assert!(
        report.skipped[0]
            .reason
            .contains("Helm did not create it for release"),
        "{report:#?}"
    );
    let deployment = scratch.deployments().get(RELEASE).await.unwrap();
    assert_eq!(deployment.metadata.generation, generation);
    scratch.cleanup().await;
}
