//! Server-side apply, ownership and prune against the real test world (`scripts/testenv up`):
//! a real kube-apiserver with the Flux, Cilium and Gateway API CRDs. Every test works in its
//! own namespace and Sovereign name, so they run in parallel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{World, unique};
use catalyst_bootstrap::apply::{
    self, ApplyError, ApplyEvent, ApplyOptions, ApplyReport, Desired, GROUP_KINDS_ANNOTATION,
    ID_LABEL, MANAGED_BY_LABEL, Outcome, PART_OF_LABEL, SOVEREIGN_LABEL, TOOLING_ANNOTATION,
};
use catalyst_bootstrap::exit::Exit;
use catalyst_bootstrap::report::Sink;
use catalyst_bootstrap::retry::{self, RetryError, RetryEvent, RetryPolicy};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::json;

/// A client built as the tool builds it: per-request timeouts and the Retry-After layer.
async fn client_as(world: &World, impersonate: Option<&str>) -> Client {
    let kubeconfig = Kubeconfig::read_from(&world.kubeconfig).expect("reading KUBECONFIG");
    let mut cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig of the test world");
    cfg.auth_info.impersonate = impersonate.map(str::to_owned);
    retry::client(cfg, &Default::default()).expect("kube client")
}

async fn admin() -> Client {
    client_as(&World::from_env(), None).await
}

fn options(sovereign: &str, namespace: &str) -> ApplyOptions {
    ApplyOptions::new(sovereign, namespace)
        .with_retry(RetryPolicy::default().with_unreachable_budget(Duration::from_secs(60)))
}

/// The kit's objects: (file, apiVersion, kind, plural, name, namespaced).
const OBJECTS: [(&str, &str, &str, &str, &str, bool); 5] = [
    (
        "00-namespace.yaml",
        "v1",
        "Namespace",
        "namespaces",
        "",
        false,
    ),
    (
        "10-helmrepository.yaml",
        "source.toolkit.fluxcd.io/v1",
        "HelmRepository",
        "helmrepositories",
        "external-dns",
        true,
    ),
    (
        "20-helmrelease.yaml",
        "helm.toolkit.fluxcd.io/v2",
        "HelmRelease",
        "helmreleases",
        "external-dns",
        true,
    ),
    (
        "30-networkpolicy.yaml",
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        "external-dns-egress",
        true,
    ),
    (
        "31-ciliumnetworkpolicy.yaml",
        "cilium.io/v2",
        "CiliumNetworkPolicy",
        "ciliumnetworkpolicies",
        "external-dns-apiserver",
        true,
    ),
];

/// A small external-dns kit in `ns`, written as the renderer would, file by file. Flux objects
/// are suspended so that a Flux controller, should one run in the world, leaves them alone.
fn kit_files(ns: &str, replicas: u32) -> Vec<(String, String)> {
    let docs = [
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: external-dns
  namespace: {ns}
spec:
  interval: 1h
  url: https://kubernetes-sigs.github.io/external-dns/
  suspend: true
"
        ),
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: external-dns
  namespace: {ns}
spec:
  interval: 10m
  suspend: true
  chart:
    spec:
      chart: external-dns
      version: 1.19.0
      sourceRef:
        kind: HelmRepository
        name: external-dns
  values:
    provider:
      name: pdns
    replicaCount: {replicas}
"
        ),
        format!(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: external-dns-egress
  namespace: {ns}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: external-dns
  policyTypes: [Egress]
  egress:
    - ports:
        - port: 53
          protocol: UDP
"
        ),
        format!(
            "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: external-dns-apiserver
  namespace: {ns}
spec:
  endpointSelector:
    matchLabels:
      app.kubernetes.io/name: external-dns
  egress:
    - toEntities: [kube-apiserver]
"
        ),
    ];
    OBJECTS
        .iter()
        .zip(docs)
        .map(|(o, doc)| (o.0.to_owned(), doc))
        .collect()
}

fn parse(files: &[(String, String)]) -> Vec<Desired> {
    apply::parse(files.iter().map(|(f, y)| (f.as_str(), y.as_str()))).expect("test kit parses")
}

fn without(files: &[(String, String)], dropped: &[&str]) -> Vec<(String, String)> {
    files
        .iter()
        .filter(|(f, _)| !dropped.contains(&f.as_str()))
        .cloned()
        .collect()
}

fn dynamic(
    client: &Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// The live kit objects: (kind, resourceVersion, generation), or None when absent.
async fn live(client: &Client, ns: &str) -> Vec<(String, Option<(String, i64)>)> {
    let mut out = Vec::new();
    for (_, api_version, kind, plural, name, namespaced) in OBJECTS {
        let name = if name.is_empty() { ns } else { name };
        let api = dynamic(client, api_version, kind, plural, namespaced.then_some(ns));
        let obj = api.get_opt(name).await.expect("reading a kit object");
        let version = obj.map(|o| {
            (
                o.metadata.resource_version.clone().unwrap_or_default(),
                o.metadata.generation.unwrap_or_default(),
            )
        });
        out.push((kind.to_owned(), version));
    }
    out
}

fn outcomes(report: &ApplyReport) -> Vec<(String, Outcome)> {
    report
        .objects
        .iter()
        .map(|o| (format!("{}/{}", o.kind, o.name), o.outcome))
        .collect()
}

fn outcome_of(report: &ApplyReport, kind: &str) -> Outcome {
    let found: Vec<Outcome> = report
        .objects
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| o.outcome)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} in {:?}", outcomes(report));
    found[0]
}

async fn parent(client: &Client, ns: &str, sovereign: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(&format!("catalyst-bootstrap-{sovereign}"))
        .await
        .expect("reading the parent")
}

fn annotation(cm: &ConfigMap, key: &str) -> String {
    cm.annotations().get(key).cloned().unwrap_or_default()
}

async fn delete_namespace(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

async fn create_namespace(client: &Client, ns: &str) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("creating a namespace");
}

const ALL_KINDS: &str = "CiliumNetworkPolicy.cilium.io,HelmRelease.helm.toolkit.fluxcd.io,\
HelmRepository.source.toolkit.fluxcd.io,Namespace,NetworkPolicy.networking.k8s.io";

#[tokio::test]
async fn apply_creates_every_object_and_a_rerun_changes_nothing() {
    let client = admin().await;
    let ns = unique("cb-apply");
    let sovereign = unique("sov");
    let kit = parse(&kit_files(&ns, 1));
    let opts = options(&sovereign, &ns);

    let first = apply::apply(&client, &kit, &opts)
        .await
        .expect("first apply");
    let kinds: Vec<(String, Outcome)> = first
        .objects
        .iter()
        .map(|o| (o.kind.clone(), o.outcome))
        .collect();
    assert_eq!(
        kinds,
        OBJECTS
            .iter()
            .map(|o| (o.2.to_owned(), Outcome::Created))
            .collect::<Vec<_>>(),
        "every object created, in kind order"
    );

    // Ownership: every object carries the set's id and our labels, under our field manager.
    let expected_id = apply::applyset_id(
        &format!("catalyst-bootstrap-{sovereign}"),
        &ns,
        "ConfigMap",
        "",
    );
    assert_eq!(first.applyset_id, expected_id);
    for (_, api_version, kind, plural, name, namespaced) in OBJECTS {
        let name = if name.is_empty() { ns.as_str() } else { name };
        let obj = dynamic(
            &client,
            api_version,
            kind,
            plural,
            namespaced.then_some(&ns),
        )
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{kind} {name} exists: {e}"));
        let labels = obj.labels();
        assert_eq!(labels.get(PART_OF_LABEL), Some(&expected_id), "{kind}");
        assert_eq!(
            labels.get(MANAGED_BY_LABEL).map(String::as_str),
            Some("catalyst-bootstrap")
        );
        assert_eq!(labels.get(SOVEREIGN_LABEL), Some(&sovereign));
        let managers: Vec<_> = obj
            .managed_fields()
            .iter()
            .filter(|m| m.operation.as_deref() == Some("Apply"))
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(
            managers,
            ["catalyst-bootstrap"],
            "{kind} applied by our field manager only"
        );
    }
    let cm = parent(&client, &ns, &sovereign)
        .await
        .expect("the ApplySet parent exists");
    assert_eq!(cm.labels().get(ID_LABEL), Some(&expected_id));
    assert_eq!(annotation(&cm, GROUP_KINDS_ANNOTATION), ALL_KINDS);
    assert_eq!(annotation(&cm, TOOLING_ANNOTATION), apply::tooling());

    let before = live(&client, &ns).await;
    assert!(before.iter().all(|(_, v)| v.is_some()));
    let requests_before = opts.retry.stats().snapshot().requests;
    let second = apply::apply(&client, &kit, &opts)
        .await
        .expect("second apply");
    assert!(
        second
            .objects
            .iter()
            .all(|o| o.outcome == Outcome::Unchanged && o.changed.is_empty()),
        "{:?}",
        outcomes(&second)
    );
    assert_eq!(second.objects.len(), OBJECTS.len(), "nothing pruned");
    let after_second = live(&client, &ns).await;
    for ((kind, was), (_, now)) in before.iter().zip(&after_second) {
        let (was, now) = (was.as_ref().unwrap(), now.as_ref().unwrap());
        assert_eq!(was.1, now.1, "{kind}: generation unchanged");
        // On a custom resource's first update after creation the apiserver persists the status
        // defaults it had applied only on read (Flux: status.observedGeneration = -1), which
        // bumps the resourceVersion once; every other kind keeps it.
        if !matches!(kind.as_str(), "HelmRepository" | "HelmRelease") {
            assert_eq!(was.0, now.0, "{kind}: resourceVersion unchanged");
        }
    }
    let third = apply::apply(&client, &kit, &opts)
        .await
        .expect("third apply");
    assert_eq!(
        third.count(Outcome::Unchanged),
        OBJECTS.len(),
        "{:?}",
        outcomes(&third)
    );
    assert_eq!(
        live(&client, &ns).await,
        after_second,
        "resourceVersion and generation unchanged, for every kind"
    );
    assert!(
        opts.retry.stats().snapshot().requests > requests_before,
        "requests are counted"
    );

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_rerun_restores_a_deleted_object() {
    let client = admin().await;
    let ns = unique("cb-restore");
    let sovereign = unique("sov");
    let kit = parse(&kit_files(&ns, 1));
    let opts = options(&sovereign, &ns);
    apply::apply(&client, &kit, &opts)
        .await
        .expect("first apply");

    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    policies
        .delete("external-dns-egress", &DeleteParams::default())
        .await
        .expect("deleting the NetworkPolicy");
    assert!(
        policies
            .get_opt("external-dns-egress")
            .await
            .unwrap()
            .is_none()
    );

    let rerun = apply::apply(&client, &kit, &opts).await.expect("rerun");
    for o in &rerun.objects {
        let expected = if o.kind == "NetworkPolicy" {
            Outcome::Created
        } else {
            Outcome::Unchanged
        };
        assert_eq!(o.outcome, expected, "{}", o.describe());
    }
    let restored = policies.get("external-dns-egress").await.expect("restored");
    assert_eq!(
        restored.spec.and_then(|s| s.policy_types),
        Some(vec!["Egress".to_owned()])
    );

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn dropped_manifests_are_pruned_and_nothing_else_is() {
    let client = admin().await;
    let ns = unique("cb-prune");
    let sovereign = unique("sov");
    let files = kit_files(&ns, 1);
    let opts = options(&sovereign, &ns);
    apply::apply(&client, &parse(&files), &opts)
        .await
        .expect("first apply");

    // Someone else's policy with our managed-by and sovereign labels, but not in the set.
    let foreign: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "foreign-policy", "labels": {
            MANAGED_BY_LABEL: "catalyst-bootstrap", SOVEREIGN_LABEL: sovereign,
        }},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }))
    .unwrap();
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
    policies
        .create(&PostParams::default(), &foreign)
        .await
        .expect("creating the foreign policy");

    let smaller = without(
        &files,
        &["30-networkpolicy.yaml", "31-ciliumnetworkpolicy.yaml"],
    );
    let report = apply::apply(&client, &parse(&smaller), &opts)
        .await
        .expect("apply without policies");
    assert_eq!(outcome_of(&report, "NetworkPolicy"), Outcome::Pruned);
    assert_eq!(outcome_of(&report, "CiliumNetworkPolicy"), Outcome::Pruned);
    assert_eq!(
        report.count(Outcome::Unchanged),
        3,
        "{:?}",
        outcomes(&report)
    );
    let state = live(&client, &ns).await;
    assert_eq!(
        state[3],
        ("NetworkPolicy".to_owned(), None),
        "our NetworkPolicy is gone"
    );
    assert_eq!(
        state[4],
        ("CiliumNetworkPolicy".to_owned(), None),
        "our CiliumNetworkPolicy is gone"
    );
    assert!(
        policies.get_opt("foreign-policy").await.unwrap().is_some(),
        "an object without our part-of label survives"
    );
    let cm = parent(&client, &ns, &sovereign).await.unwrap();
    assert_eq!(
        annotation(&cm, GROUP_KINDS_ANNOTATION),
        "HelmRelease.helm.toolkit.fluxcd.io,HelmRepository.source.toolkit.fluxcd.io,Namespace"
    );

    // A Namespace that leaves the kit is reported, never deleted: it holds the foreign policy.
    let no_namespace = without(&smaller, &["00-namespace.yaml"]);
    let report = apply::apply(&client, &parse(&no_namespace), &opts)
        .await
        .expect("apply without the namespace");
    assert_eq!(outcome_of(&report, "Namespace"), Outcome::Orphaned);
    let namespace = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await
        .expect("namespace kept");
    assert!(namespace.metadata.deletion_timestamp.is_none());
    assert!(policies.get_opt("foreign-policy").await.unwrap().is_some());
    let cm = parent(&client, &ns, &sovereign).await.unwrap();
    assert!(
        annotation(&cm, GROUP_KINDS_ANNOTATION).contains("Namespace"),
        "still recorded"
    );

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_what_would_change() {
    let client = admin().await;
    let ns = unique("cb-dry");
    let sovereign = unique("sov");
    let files = kit_files(&ns, 1);
    let opts = options(&sovereign, &ns);

    let dry = apply::apply(&client, &parse(&files), &opts.clone().with_dry_run(true))
        .await
        .expect("dry run on an empty cluster");
    assert!(dry.dry_run);
    assert_eq!(
        dry.count(Outcome::Created),
        OBJECTS.len(),
        "{:?}",
        outcomes(&dry)
    );
    assert!(
        live(&client, &ns).await.iter().all(|(_, v)| v.is_none()),
        "nothing created"
    );
    assert!(
        parent(&client, &ns, &sovereign).await.is_none(),
        "no parent written"
    );

    apply::apply(&client, &parse(&files), &opts)
        .await
        .expect("real apply");
    let before = live(&client, &ns).await;

    // Change the HelmRelease and drop the NetworkPolicy: the diff tells, and writes nothing.
    let changed = without(&kit_files(&ns, 2), &["30-networkpolicy.yaml"]);
    let diff = apply::apply(&client, &parse(&changed), &opts.clone().with_dry_run(true))
        .await
        .expect("diff");
    assert!(diff.dry_run);
    let release = diff
        .objects
        .iter()
        .find(|o| o.kind == "HelmRelease")
        .unwrap();
    assert_eq!(release.outcome, Outcome::Configured);
    assert_eq!(release.changed, ["/spec/values/replicaCount"]);
    assert_eq!(outcome_of(&diff, "NetworkPolicy"), Outcome::WouldPrune);
    for kind in ["Namespace", "HelmRepository", "CiliumNetworkPolicy"] {
        assert_eq!(outcome_of(&diff, kind), Outcome::Unchanged, "{kind}");
    }
    assert_eq!(
        live(&client, &ns).await,
        before,
        "the diff wrote nothing and pruned nothing"
    );
    let cm = parent(&client, &ns, &sovereign).await.unwrap();
    assert_eq!(annotation(&cm, GROUP_KINDS_ANNOTATION), ALL_KINDS);

    delete_namespace(&client, &ns).await;
}

fn crd_json(group: &str, kind: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    }))
    .unwrap()
}

fn widget_kit(ns: &str, group: &str, kind: &str) -> Vec<(String, String)> {
    vec![
        (
            "00-namespace.yaml".to_owned(),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        ),
        (
            "50-thing.yaml".to_owned(),
            format!(
                "apiVersion: {group}/v1\nkind: {kind}\nmetadata:\n  name: thing\n  namespace: {ns}\nspec:\n  size: 3\n"
            ),
        ),
    ]
}

#[tokio::test]
async fn a_missing_crd_is_waited_for_until_it_is_installed() {
    let client = admin().await;
    let ns = unique("cb-crd");
    // A group of its own, so no earlier run's CRD can already serve it.
    let group = format!("{}.test.catalyst.openova.io", unique("w"));
    let waiting: Arc<Mutex<Vec<String>>> = Arc::default();
    let heard = waiting.clone();
    let opts = options(&unique("sov"), &ns)
        .with_crd_timeout(Duration::from_secs(90))
        .on_event(Sink::new(move |e: &ApplyEvent| {
            if let ApplyEvent::WaitingForCrd(missing) = e {
                heard
                    .lock()
                    .unwrap()
                    .push(format!("{} from {}", missing.crd, missing.installer));
            }
        }));

    // Install the CRD once the apply has started waiting for it.
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let installer = {
        let (crds, waiting, group) = (crds.clone(), waiting.clone(), group.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while waiting.lock().unwrap().is_empty() {
                assert!(Instant::now() < deadline, "the apply never started waiting");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            crds.create(
                &PostParams::default(),
                &crd_json(&group, "Widget", "widgets"),
            )
            .await
            .expect("installing the CRD");
        })
    };
    let result = apply::apply(&client, &parse(&widget_kit(&ns, &group, "Widget")), &opts).await;
    installer.await.expect("the installer task");
    let report = result.expect("apply succeeds once the CRD is there");

    assert_eq!(
        *waiting.lock().unwrap(),
        [format!(
            "widgets.{group} from no component catalyst-bootstrap knows of"
        )]
    );
    assert_eq!(outcome_of(&report, "Widget"), Outcome::Created);
    let widget = dynamic(
        &client,
        &format!("{group}/v1"),
        "Widget",
        "widgets",
        Some(&ns),
    )
    .get("thing")
    .await
    .expect("the widget exists");
    assert_eq!(widget.data["spec"]["size"], 3);

    delete_namespace(&client, &ns).await;
    let _ = crds
        .delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn a_crd_that_never_comes_fails_naming_it_and_writes_nothing() {
    let client = admin().await;
    let ns = unique("cb-nocrd");
    let group = format!("{}.test.catalyst.openova.io", unique("g"));
    let opts = options(&unique("sov"), &ns).with_crd_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let err = apply::apply(&client, &parse(&widget_kit(&ns, &group, "Gadget")), &opts)
        .await
        .expect_err("no CRD serves Gadget");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "waited the timeout"
    );
    assert!(matches!(err, ApplyError::CrdTimeout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("gadgets.{group}")), "{message}");
    assert!(
        message.contains(&format!("Gadget ({group}/v1)")),
        "{message}"
    );
    assert_eq!(err.exit(), Exit::TimedOut);
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(&ns)
        .await
        .unwrap();
    assert!(
        namespace.is_none(),
        "kinds are resolved before anything is written"
    );
}

#[tokio::test]
async fn an_unknown_builtin_kind_is_a_bad_manifest_at_once() {
    let client = admin().await;
    let ns = unique("cb-typo");
    let files = [(
        "30-policy.yaml",
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicie\nmetadata:\n  name: p\n  namespace: {ns}\n"
        ),
    )];
    let kit = apply::parse(files.iter().map(|(f, y)| (*f, y.as_str()))).unwrap();
    let started = Instant::now();
    let err = apply::apply(&client, &kit, &options(&unique("sov"), &ns))
        .await
        .expect_err("no such kind");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not waited for"
    );
    assert_eq!(err.exit(), Exit::BadInput);
    assert_eq!(
        err.to_string(),
        "30-policy.yaml: the apiserver serves no kind NetworkPolicie in networking.k8s.io/v1"
    );
}

#[tokio::test]
async fn a_user_without_rights_gets_forbidden_naming_verb_and_resource() {
    let world = World::from_env();
    let client = client_as(&world, None).await;
    let ns = unique("cb-rbac");
    create_namespace(&client, &ns).await;
    let user = unique("nobody");
    let restricted = client_as(&world, Some(&user)).await;
    let files = without(&kit_files(&ns, 1), &["00-namespace.yaml"]);
    let kit = parse(&files);
    let opts = options(&unique("sov"), &ns);

    let forbidden = |err: ApplyError| match err {
        ApplyError::Api(RetryError::Forbidden {
            ref verb,
            ref resource,
            ..
        }) => {
            assert_eq!(err.exit(), Exit::PermissionDenied);
            (verb.clone(), resource.clone())
        }
        other => panic!("expected Forbidden, got {other:?}"),
    };
    let err = apply::apply(&restricted, &kit, &opts)
        .await
        .expect_err("no rights at all");
    assert_eq!(forbidden(err), ("get".to_owned(), "configmaps".to_owned()));

    // With read access to ConfigMaps, the first write is refused instead.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "read-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    let pp = PostParams::default();
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&pp, &role)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&pp, &binding)
        .await
        .unwrap();
    // The authorizer learns of new bindings through a watch: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let err = apply::apply(&restricted, &kit, &opts)
            .await
            .expect_err("still no write rights");
        let refused = forbidden(err);
        if refused.0 != "get" || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(refused, ("patch".to_owned(), "configmaps".to_owned()));
    assert!(
        live(&client, &ns)
            .await
            .iter()
            .all(|(kind, v)| kind == "Namespace" || v.is_none()),
        "nothing of the kit was written"
    );

    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn an_unreachable_apiserver_is_retried_until_the_budget_is_spent() {
    let world = World::from_env();
    let kubeconfig = Kubeconfig::read_from(&world.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    // Nothing listens on port 1: every connection is refused.
    cfg.cluster_url = "https://127.0.0.1:1".parse().unwrap();
    let client = retry::client(cfg, &Default::default()).unwrap();
    let retries = Arc::new(Mutex::new(0u32));
    let counted = retries.clone();
    let policy = RetryPolicy::default()
        .with_delays(Duration::from_millis(50), Duration::from_millis(500))
        .with_unreachable_budget(Duration::from_secs(2))
        .on_event(Sink::new(move |_: &RetryEvent| {
            *counted.lock().unwrap() += 1
        }));
    let ns = unique("cb-down");
    let opts = ApplyOptions::new(unique("sov"), &ns).with_retry(policy.clone());
    let started = Instant::now();
    let err = apply::apply(&client, &parse(&kit_files(&ns, 1)), &opts)
        .await
        .expect_err("nothing answers");
    let elapsed = started.elapsed();
    assert!(
        matches!(err, ApplyError::Api(RetryError::Unreachable { .. })),
        "{err:?}"
    );
    assert_eq!(err.exit(), Exit::ApiserverUnreachable);
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let stats = policy.stats().snapshot();
    assert!(stats.retries >= 2, "{stats:?}");
    assert_eq!(stats.requests, stats.retries + 1, "one call, retried");
    assert_eq!(
        u64::from(*retries.lock().unwrap()),
        stats.retries,
        "the observer heard every retry"
    );
}
