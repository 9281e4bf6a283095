//! Playing Flux's helm-controller in the test world, which runs no Flux controllers: the
//! tests write HelmRelease status the way helm-controller does.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

pub fn helm_releases(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
    ));
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Writes the HelmRelease's status for its current generation with these conditions
/// (`(type, status, reason)`), echoing the reconcile request it acted on in
/// `status.lastHandledReconcileAt`, as helm-controller does.
pub async fn write_release_status(
    client: &kube::Client,
    ns: &str,
    name: &str,
    conditions: &[(&str, &str, &str)],
) {
    let api = helm_releases(client, ns);
    let release = api.get(name).await.expect("read HelmRelease");
    let generation = release.metadata.generation.unwrap_or(1);
    let handled = release
        .metadata
        .annotations
        .and_then(|a| a.get("reconcile.fluxcd.io/requestedAt").cloned());
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(type_, status, reason)| {
            json!({"type": type_, "status": status, "reason": reason,
                   "message": format!("test: {reason}"), "observedGeneration": generation,
                   "lastTransitionTime": "2026-01-01T00:00:00Z"})
        })
        .collect();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "observedGeneration": generation,
            "conditions": conditions,
            "lastHandledReconcileAt": handled,
        }})),
    )
    .await
    .expect("write HelmRelease status");
}
