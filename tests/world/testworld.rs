//! The test world itself works: the control plane schedules and runs pods
//! through kwok, PowerDNS serves what its API stores, and the real
//! external-dns binary writes records and ownership into PowerDNS.

use std::time::Duration;

use crate::support::{
    FAULT_LABEL, World, crash_loop_stage, delete_namespace, dns_query, lb_service, namespace,
    unique,
};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

#[tokio::test]
async fn control_plane_reports_its_pinned_version_and_a_ready_kwok_node() {
    let world = World::from_env();
    let client = world.kube().await;
    let version = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "35")
    );
    assert!(
        version.git_version.starts_with("v1.35."),
        "{}",
        version.git_version
    );

    let nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let ready = nodes.items.iter().any(|n| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    });
    assert!(ready, "no Ready node among {:?}", nodes.items.len());
}

#[tokio::test]
async fn a_deployment_gets_scheduled_and_ready_through_the_real_controllers() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "tw-deploy").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let completed = tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(
            deployments.clone(),
            "web",
            conditions::is_deployment_completed(),
        ),
    )
    .await;
    assert!(
        completed.is_ok(),
        "deployment did not complete its rollout in 90 s: are kube-controller-manager, kube-scheduler and kwok running?"
    );

    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2, "pods created by the ReplicaSet");
    for pod in &pods.items {
        let spec = pod.spec.as_ref().unwrap();
        assert!(
            spec.node_name
                .as_deref()
                .is_some_and(|n| n.starts_with("kwok-")),
            "pod scheduled onto a kwok node: {:?}",
            spec.node_name
        );
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(ready, "pod {:?} Ready", pod.metadata.name);
    }
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_test_stage_puts_labelled_pods_into_crash_loop_back_off() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "tw-crash").await;
    let id = unique("crash");
    crash_loop_stage(&client, &id).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "crasher", "labels": {FAULT_LABEL: id}},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let crash_looping = |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
                        && c.restart_count > 0
                })
            })
    };
    let seen = tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(pods.clone(), "crasher", crash_looping),
    )
    .await;
    assert!(
        seen.is_ok(),
        "the pod did not enter CrashLoopBackOff in 60 s"
    );
    let ready = pods
        .get("crasher")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn an_rrset_written_through_the_powerdns_api_is_answered_over_dns() {
    let world = World::from_env();
    let pdns = world.pdns();
    let name = world.fqdn(&unique("api"));
    pdns.replace_rrset(&world.pdns_zone, &name, "A", &["192.0.2.44", "192.0.2.45"])
        .await;
    pdns.replace_rrset(
        &world.pdns_zone,
        &name,
        "TXT",
        &["\"hello from the test world\""],
    )
    .await;

    let (mut a, authoritative) = dns_query(world.pdns_dns_addr, &name, RecordType::A).await;
    a.sort();
    assert_eq!(a, ["192.0.2.44", "192.0.2.45"]);
    assert!(authoritative, "PowerDNS answers for its zone with AA set");
    let (txt, _) = dns_query(world.pdns_dns_addr, &name, RecordType::TXT).await;
    assert_eq!(txt, ["hello from the test world"]);

    let (missing, _) = dns_query(
        world.pdns_dns_addr,
        &world.fqdn(&unique("absent")),
        RecordType::A,
    )
    .await;
    assert!(missing.is_empty(), "{missing:?}");
}

#[tokio::test]
async fn external_dns_turns_an_annotated_service_into_an_a_record_and_its_ownership_txt() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "tw-edns").await;
    let label = unique("web");
    let hostname = format!("{label}.{}", world.pdns_zone);

    lb_service(&client, &ns, "web", &hostname, "192.0.2.80").await;

    let log = world.external_dns_once(&ns).await;

    let pdns = world.pdns();
    let a = pdns
        .rrset(&world.pdns_zone, &format!("{hostname}."), "A")
        .await;
    assert_eq!(a, ["192.0.2.80"], "A record written by external-dns");
    let txt = pdns
        .rrset(
            &world.pdns_zone,
            &format!("_externaldns.a-{hostname}."),
            "TXT",
        )
        .await;
    assert_eq!(txt.len(), 1, "ownership TXT record: {txt:?}\n{log}");
    assert!(
        txt[0].contains("heritage=external-dns")
            && txt[0].contains("external-dns/owner=openova")
            && txt[0].contains(&format!("external-dns/resource=service/{ns}/web")),
        "{}",
        txt[0]
    );

    let (answer, _) = dns_query(world.pdns_dns_addr, &format!("{hostname}."), RecordType::A).await;
    assert_eq!(answer, ["192.0.2.80"]);
    delete_namespace(&client, &ns).await;
}

/// A test that fails cleans up too: the namespaces it made are deleted by the panic hook
/// (after their objects and events are printed), so the long-lived world keeps nothing of
/// it. Played here by a thread that makes a namespace, then panics.
#[tokio::test]
async fn a_failing_test_leaves_no_namespace_behind() {
    use k8s_openapi::api::core::v1::Namespace;
    let world = World::from_env();
    let client = world.kube().await;
    let turn = crate::support::lend();
    let made = std::thread::spawn(move || {
        turn.enter();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let world = World::from_env();
            let client = world.kube().await;
            let ns = namespace(&client, "failing").await;
            lb_service(&client, &ns, "web", "web.failing.test", "192.0.2.7").await;
            panic!("a test in namespace {ns} fails");
        })
    })
    .join();
    let message = made.expect_err("the thread panicked");
    let message = message.downcast_ref::<String>().expect("a panic message");
    let ns = message
        .split_whitespace()
        .nth(4)
        .expect("the namespace in the message")
        .to_owned();
    let found = Api::<Namespace>::all(client)
        .get_opt(&ns)
        .await
        .expect("read the namespace");
    let gone = found.is_none_or(|n| {
        n.metadata.deletion_timestamp.is_some()
            || n.status.and_then(|s| s.phase).as_deref() == Some("Terminating")
    });
    assert!(gone, "namespace {ns} was left behind");
}
