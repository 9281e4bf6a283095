//! Flux in the test world. The world runs the real source-controller and helm-controller as
//! a Flux shard: they act only on objects labelled `SHARD_LABEL: SHARD`
//! (`chain_sovereign_file` gives a Sovereign whose kit carries it). Every other kit is left
//! to tests that play helm-controller themselves, writing HelmRelease status the way
//! helm-controller does (`write_release_status`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
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
    let conditions: Vec<(&str, &str, &str, String)> = conditions
        .iter()
        .map(|(type_, status, reason)| (*type_, *status, *reason, format!("test: {reason}")))
        .collect();
    write_release_conditions(client, ns, name, &conditions).await;
}

/// [`write_release_status`] with each condition's message (`(type, status, reason,
/// message)`).
pub async fn write_release_conditions(
    client: &kube::Client,
    ns: &str,
    name: &str,
    conditions: &[(&str, &str, &str, String)],
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
        .map(|(type_, status, reason, message)| {
            json!({"type": type_, "status": status, "reason": reason,
                   "message": message, "observedGeneration": generation,
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

/// The Deployment the upstream chart renders for release `external-dns`, reduced to what
/// the wait looks at (its pods' labels), with `extra_pod_labels` (such as a kwok fault
/// stage's) on its pods. kwok runs its pods on the fake node.
pub async fn create_chart_deployment(client: &kube::Client, ns: &str, extra_pod_labels: Value) {
    let labels = json!({"app.kubernetes.io/name": "external-dns",
                        "app.kubernetes.io/instance": "external-dns"});
    let mut pod_labels = labels.clone();
    if let (Some(pod), Some(extra)) = (pod_labels.as_object_mut(), extra_pod_labels.as_object()) {
        pod.extend(extra.clone());
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "external-dns"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "external-dns",
                    "image": "registry.k8s.io/external-dns/external-dns:v0.22.0"}]}
            }
        }
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&Default::default(), &deployment)
        .await
        .expect("create the chart's Deployment");
}

/// Plays Flux and Helm for a kit in `ns`: the chart's Deployment, a Ready HelmRelease
/// `external-dns`, and a Ready pod, so a command gets as far as the DNS proof.
pub async fn play_healthy_release(client: &kube::Client, ns: &str) {
    create_chart_deployment(client, ns, json!({})).await;
    write_release_status(
        client,
        ns,
        "external-dns",
        &[("Ready", "True", "InstallSucceeded")],
    )
    .await;
    pods_ready(client, ns).await;
}

/// Until a pod in `ns` is Ready, so a short `--timeout` is spent on the DNS proof alone.
/// (kwok's `pod-ready-again` stage restores Ready, as a kubelet does, when the node
/// controller marked the pod not Ready after a late heartbeat of the fake node.)
pub async fn pods_ready(client: &kube::Client, ns: &str) {
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    for _ in 0..600 {
        let list = pods.list(&Default::default()).await.expect("list pods");
        if list.items.iter().any(ready) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no Ready pod of external-dns in {ns} after 60 s: is kwok running?");
}

/// The label, and its value, that put objects in the world's Flux shard (scripts/testenv).
pub const SHARD_LABEL: &str = "sharding.fluxcd.io/key";
pub const SHARD: &str = "catalyst-flux-chain";

/// The Helm release (and HelmRelease) name of `chain_sovereign_file(_, name, _)`. Each
/// test needs its own: the upstream chart names its ClusterRole and ClusterRoleBinding
/// after the release alone, so releases of one name in two namespaces share them, and
/// uninstalling one takes the other's permissions away.
pub fn chain_release(name: &str) -> String {
    format!("external-dns-{name}")
}

/// The world's Sovereign for the real chain (`CATALYST_KUBELET_SPEC`: in the Flux shard, its
/// chart from the world's loopback Helm repository, its pods run by the world's kubelet),
/// renamed to `name`, in namespace and domain `name.<zone>` of its own with release
/// `chain_release(name)`, with `chart_version` pinned when given; written to
/// `dir/sovereign.yaml`.
pub fn chain_sovereign_file(dir: &Path, name: &str, chart_version: Option<&str>) -> PathBuf {
    let source = match std::env::var("CATALYST_KUBELET_SPEC") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "CATALYST_KUBELET_SPEC is not set: these tests need the local test world with its Flux \
             controllers. Start it with `scripts/testenv up` and load its environment with \
             `eval \"$(scripts/testenv env)\"`, or run `scripts/test`."
        ),
    };
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("reading {source}: {e}; is the test world still up?"));
    assert!(
        text.contains(&format!("{SHARD_LABEL}: {SHARD}")),
        "{source} does not put the kit in the Flux shard"
    );
    assert!(
        text.contains(&format!("{}: emulated", super::kubelet::LABEL)),
        "{source} does not give the kit's pods to the world's kubelet"
    );
    let mut text = text
        .replace("  name: local", &format!("  name: {name}"))
        .replace("  domain: ", &format!("  domain: {name}."))
        .replace(
            "  externalDns:\n",
            &format!(
                "  externalDns:\n    namespace: {name}\n    releaseName: {}\n",
                chain_release(name)
            ),
        );
    if let Some(version) = chart_version {
        text = text.replace(
            "      repository: ",
            &format!("      version: {version}\n      repository: "),
        );
    }
    let path = dir.join("sovereign.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Sovereign of the real chain, ready for `up`: its spec (`chain_sovereign_file`) in a
/// directory of its own, its namespace with the PowerDNS API key, its zone in PowerDNS, and a
/// LoadBalancer Service `api` in it whose hostname external-dns is to publish. Its pods are
/// the caller's to run (`World::kubelet`, or a kubelet of its own configuration).
pub struct Chain {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub release: String,
    pub spec: PathBuf,
    pub zone: String,
    pub hostname: String,
}

impl Chain {
    /// Prepares the chain `unique(prefix)`, its Service answering at `ip`.
    pub async fn prepare(
        world: &super::World,
        client: &kube::Client,
        prefix: &str,
        ip: &str,
    ) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let name = super::unique(prefix);
        let spec = chain_sovereign_file(dir.path(), &name, None);
        let zone = format!("{name}.{}", world.pdns_zone);
        world.pdns().create_zone(&zone).await;
        namespace_with_api_key(world, client, &name).await;
        let hostname = format!("api.{zone}");
        super::lb_service(client, &name, "api", &hostname, ip).await;
        Chain {
            dir,
            release: chain_release(&name),
            name,
            spec,
            zone,
            hostname,
        }
    }

    /// The world's kubelet for this chain's pods, its work under the chain's directory.
    pub fn kubelet(&self, world: &super::World, client: &kube::Client) -> super::kubelet::Kubelet {
        world.kubelet(client, &self.name, self.dir.path().join("pods"))
    }
}

/// Runs catalyst-bootstrap with `args` and `--spec spec`; its exit code, stdout and stderr.
pub async fn run(args: &[&str], spec: &Path) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"))
        .args(args)
        .arg("--spec")
        .arg(spec)
        .kill_on_drop(true)
        .output()
        .await
        .expect("catalyst-bootstrap runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The namespace with the PowerDNS API key Secret the kit refers to, as an operator
/// provides it before `up`.
pub async fn namespace_with_api_key(world: &super::World, client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("create namespace");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "powerdns-api"},
        "stringData": {"api-key": world.pdns_api_key},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), name)
        .create(&Default::default(), &secret)
        .await
        .expect("create the PowerDNS API key Secret");
}

/// The release's pod (the chart's Deployment runs one).
pub async fn release_pod(client: &kube::Client, ns: &str, release: &str) -> Pod {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("app.kubernetes.io/instance={release}")),
        )
        .await
        .unwrap()
        .items
        .pop()
        .expect("the release's pod")
}

/// `hostname`'s A record is `ip` in PowerDNS with our ownership TXT (in either registry
/// format), and the authoritative server answers it.
pub async fn assert_published(world: &super::World, zone: &str, hostname: &str, ip: &str) {
    let pdns = world.pdns();
    assert_eq!(pdns.rrset(zone, &format!("{hostname}."), "A").await, [ip]);
    let mut owners = pdns
        .rrset(zone, &format!("_externaldns.{hostname}."), "TXT")
        .await;
    owners.extend(
        pdns.rrset(zone, &format!("_externaldns.a-{hostname}."), "TXT")
            .await,
    );
    assert!(
        owners
            .iter()
            .any(|t| t.contains("external-dns/owner=openova")),
        "ownership TXT: {owners:?}"
    );
    let (answer, authoritative) = super::dns_query(
        world.pdns_dns_addr,
        &format!("{hostname}."),
        hickory_proto::rr::RecordType::A,
    )
    .await;
    assert_eq!(answer, [ip]);
    assert!(authoritative);
}
