//! `status` against the real test world: one look, judged as `wait` judges, that writes
//! nothing. The test plays helm-controller (HelmRelease status) and Helm (Deployments);
//! kube-controller-manager and kwok run the pods, crash-looping those labelled with
//! `FAULT_LABEL`.

use std::time::Duration;

use crate::support::flux::write_release_status;
use crate::support::{FAULT_LABEL, World, crash_loop_stage, unique};
use catalyst_bootstrap::exit::Exit;
use catalyst_bootstrap::health::Target;
use catalyst_bootstrap::retry::RetryPolicy;
use catalyst_bootstrap::status::{State, StatusReport, status};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Generous: the world shares two cores with builds.
const SETTLE: Duration = Duration::from_secs(60);

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

async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = unique(prefix);
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    ns
}

async fn create_release(client: &Client, ns: &str) {
    let hr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "external-dns"},
        "spec": {"interval": "10m", "chart": {"spec": {"chart": "external-dns",
            "sourceRef": {"kind": "HelmRepository", "name": "external-dns"}}}}
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &releases())
        .create(&PostParams::default(), &hr)
        .await
        .expect("create HelmRelease");
}

/// A Deployment whose pods carry `labels`.
async fn create_deployment(client: &Client, ns: &str, name: &str, labels: Value) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/main:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .expect("create Deployment");
}

/// The resourceVersion of every object in the namespace that status reads.
async fn versions(client: &Client, ns: &str) -> Vec<Option<String>> {
    let mut versions = Vec::new();
    let hrs = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &releases());
    for hr in hrs.list(&Default::default()).await.unwrap() {
        versions.push(hr.metadata.resource_version);
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    for d in deployments.list(&Default::default()).await.unwrap() {
        versions.push(d.metadata.resource_version);
    }
    versions
}

fn states(report: &StatusReport) -> Vec<(&str, State)> {
    report
        .resources
        .iter()
        .map(|r| (r.resource.as_str(), r.state))
        .collect()
}

/// Looks until `done` holds (the world needs a moment to run pods), then once more to
/// prove the look itself wrote nothing.
async fn look_until(
    client: &Client,
    ns: &str,
    targets: &[Target],
    done: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let report = status(client, targets, &policy()).await.expect("status");
        if done(&report) {
            let before = versions(client, ns).await;
            let again = status(client, targets, &policy()).await.expect("status");
            assert_eq!(versions(client, ns).await, before, "status wrote something");
            assert_eq!(states(&again), states(&report));
            return again;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status did not settle within {SETTLE:?}: {report:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn status_reports_ready_failed_and_missing_and_writes_nothing() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "status").await;
    let crash = unique("crash");
    let stage = crash_loop_stage(&client, &crash).await;

    let release = Target::helm_release(&ns, "external-dns").with_release_pods(
        &ns,
        "external-dns",
        "external-dns",
    );
    let healthy = Target::deployment(&ns, "healthy");
    let crashing = Target::deployment(&ns, "crashing");
    let absent = Target::deployment(&ns, "absent");
    let targets = [
        release.clone(),
        healthy.clone(),
        crashing.clone(),
        absent.clone(),
    ];

    // Nothing created yet: everything missing, nothing failed, so "not yet" (exit 5).
    let report = status(&client, &targets, &policy()).await.expect("status");
    assert!(
        report
            .resources
            .iter()
            .all(|r| r.state == State::Missing && r.message == "not created"),
        "{report:#?}"
    );
    assert_eq!(report.exit(), Exit::TimedOut);

    create_release(&client, &ns).await;
    let release_labels = json!({"app.kubernetes.io/name": "external-dns",
                                "app.kubernetes.io/instance": "external-dns"});
    let mut chart_labels = release_labels.clone();
    chart_labels["app"] = json!("external-dns");
    create_deployment(&client, &ns, "external-dns", chart_labels).await;
    create_deployment(&client, &ns, "healthy", json!({"app": "healthy"})).await;
    create_deployment(
        &client,
        &ns,
        "crashing",
        json!({"app": "crashing", FAULT_LABEL: crash}),
    )
    .await;
    write_release_status(
        &client,
        &ns,
        "external-dns",
        &[("Ready", "True", "InstallSucceeded")],
    )
    .await;

    let report = look_until(&client, &ns, &targets, |r| {
        r.resources[0].state == State::Ready
            && r.resources[1].state == State::Ready
            && r.resources[2].state == State::Failed
    })
    .await;
    assert_eq!(
        states(&report),
        [
            (release.resource().as_str(), State::Ready),
            (healthy.resource().as_str(), State::Ready),
            (crashing.resource().as_str(), State::Failed),
            (absent.resource().as_str(), State::Missing),
        ]
    );
    assert!(
        report.resources[2]
            .message
            .starts_with(&format!("CrashLoopBackOff: pod {ns}/crashing-")),
        "{report:#?}"
    );
    assert!(!report.healthy());
    assert_eq!(report.exit(), Exit::WorkloadFailed);

    // The healthy pair alone is healthy: exit 0.
    let pair = [release.clone(), healthy.clone()];
    let report = look_until(&client, &ns, &pair, StatusReport::healthy).await;
    assert_eq!(report.exit(), Exit::Success);

    // Retries exhausted: the release failed, with the hint to repair.
    write_release_status(
        &client,
        &ns,
        "external-dns",
        &[
            ("Ready", "False", "RetriesExceeded"),
            ("Stalled", "True", "RetriesExceeded"),
        ],
    )
    .await;
    let report = look_until(&client, &ns, &pair, |r| {
        r.resources[0].state == State::Failed
    })
    .await;
    assert!(
        report.resources[0]
            .message
            .contains("catalyst-bootstrap repair"),
        "{report:#?}"
    );
    assert_eq!(report.exit(), Exit::WorkloadFailed);

    // Reconciling: progressing, and nothing failed, so "not yet".
    write_release_status(
        &client,
        &ns,
        "external-dns",
        &[("Ready", "Unknown", "Progressing")],
    )
    .await;
    let report = look_until(&client, &ns, &pair, |r| {
        r.resources[0].state == State::Progressing
    })
    .await;
    assert!(
        report.resources[0].message.starts_with("reconciling"),
        "{report:#?}"
    );
    assert_eq!(report.exit(), Exit::TimedOut);

    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"));
    let _ = Api::<DynamicObject>::all_with(client.clone(), &ar)
        .delete(&stage, &DeleteParams::default())
        .await;
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await;
}
