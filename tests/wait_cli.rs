//! `catalyst-bootstrap wait` and `up` as automation runs them: the real binary against the
//! test world, with the HelmRelease status written by the test where Flux would write it.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;
use support::{World, unique};

fn spec_for(world: &World, dir: &Path, name: &str) -> std::path::PathBuf {
    let spec = std::fs::read_to_string(&world.local_spec)
        .unwrap()
        .replace("  name: local", &format!("  name: {name}"))
        .replace(
            "  cni: cilium\n",
            &format!("  cni: cilium\n  externalDns:\n    namespace: {name}\n"),
        );
    let path = dir.join("sovereign.yaml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn binary(args: &[&str], spec: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"));
    cmd.args(args).arg("--spec").arg(spec).kill_on_drop(true);
    cmd
}

/// Writes the HelmRelease status as helm-controller would.
async fn set_release_status(
    client: &kube::Client,
    ns: &str,
    ready: &str,
    reason: &str,
    stalled: bool,
) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let generation = api
        .get("external-dns")
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap();
    let now = "2026-01-01T00:00:00Z";
    let mut conditions = vec![json!({
        "type": "Ready", "status": ready, "reason": reason, "message": format!("test: {reason}"),
        "observedGeneration": generation, "lastTransitionTime": now,
    })];
    if stalled {
        conditions.push(json!({
            "type": "Stalled", "status": "True", "reason": reason, "message": "test: stalled",
            "observedGeneration": generation, "lastTransitionTime": now,
        }));
    }
    api.patch_status(
        "external-dns",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"observedGeneration": generation, "conditions": conditions}}),
        ),
    )
    .await
    .expect("write HelmRelease status");
}

/// The Deployment the upstream chart renders for release `external-dns`, reduced to what
/// the wait looks at: its pods' labels.
async fn chart_deployment(client: &kube::Client, ns: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    let labels = json!({"app.kubernetes.io/name": "external-dns", "app.kubernetes.io/instance": "external-dns"});
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "external-dns"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "external-dns", "image": "registry.k8s.io/external-dns/external-dns:v0.22.0"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&Default::default(), &deployment)
        .await
        .expect("create the chart's Deployment");
}

#[tokio::test]
async fn up_waits_for_the_helm_release_and_succeeds_once_it_is_ready() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("up");
    let spec = spec_for(&world, dir.path(), &name);

    let up = binary(&["up", "--timeout", "60s"], &spec).output();
    let helper = async {
        // The kit lands, then Flux (here: the test) reports the release Ready.
        let releases = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &name, &releases);
        for _ in 0..200 {
            if api.get_opt("external-dns").await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What Helm would install: external-dns's Deployment, whose pods kwok runs.
        chart_deployment(&client, &name).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        set_release_status(&client, &name, "True", "InstallSucceeded", false).await;
    };
    let (out, ()) = tokio::join!(up, helper);
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("created       HelmRelease {name}/external-dns")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ready         HelmRelease {name}/external-dns")),
        "{stdout}"
    );
    assert!(
        stderr.contains("no status yet"),
        "progress named the wait: {stderr}"
    );

    // A rerun is quick and safe: nothing changes and the release is already Ready.
    let out = binary(&["up", "--timeout", "10s"], &spec)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.matches("unchanged").count(), 5, "{stdout}");

    // Stalled with retries exhausted is a workload failure, at once.
    set_release_status(&client, &name, "False", "RetriesExceeded", true).await;
    let out = binary(&["wait", "--timeout", "60s"], &spec)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("RetriesExceeded") || stderr.contains("retries"),
        "{stderr}"
    );

    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn wait_times_out_with_exit_5_naming_what_is_pending() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("wait-to");
    let spec = spec_for(&world, dir.path(), &name);
    let out = binary(&["up", "--timeout", "2s"], &spec)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "timed out after 2s waiting for HelmRelease {name}/external-dns"
        )),
        "{stderr}"
    );
    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}
