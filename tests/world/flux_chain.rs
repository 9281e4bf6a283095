//! The whole chain with the real parts: `up` applies the kit, the real source-controller
//! fetches the upstream external-dns chart from the world's loopback Helm repository, the
//! real helm-controller installs it with the rendered values, and the world's kubelet runs
//! the real external-dns with the arguments and environment Helm rendered into the
//! Deployment, probing it as the pod spec says and reporting the pod's status, which
//! writes the records into PowerDNS. Nothing here writes HelmRelease or pod status: Flux
//! and the kubelet do.

use crate::support::flux::{Chain, namespace_with_api_key, run};
use crate::support::kubelet;
use crate::support::{World, flux, unique};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::LogParams;

/// `up` and friends may take a while on a busy 2-core machine: Flux's first chart fetch
/// and install happen inside this bound.
const TIMEOUT: &str = "5m";
/// The controllers' own logs, for a failure message.
fn controller_logs() -> String {
    let Ok(state) = std::env::var("CATALYST_TESTENV_DIR") else {
        return String::new();
    };
    ["source-controller", "helm-controller"]
        .iter()
        .map(|c| {
            let log = std::fs::read_to_string(format!("{state}/logs/{c}.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            format!(
                "--- {c} (last lines)\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn probe_of(container: &Container, liveness: bool) -> &Probe {
    let probe = if liveness {
        &container.liveness_probe
    } else {
        &container.readiness_probe
    };
    probe.as_ref().expect("the probe is rendered")
}

#[tokio::test]
async fn flux_installs_the_chart_with_the_rendered_values_and_up_proves_the_records() {
    let world = World::from_env();
    let client = world.kube().await;
    let chain = Chain::prepare(&world, &client, "chain", "192.0.2.44").await;
    let pods = chain.kubelet(&world, &client);
    let Chain {
        dir: _dir,
        name,
        release,
        spec,
        zone,
        hostname,
    } = chain;

    let (code, stdout, stderr) = run(&["up", "--timeout", TIMEOUT], &spec).await;
    let context = || {
        format!(
            "stdout:\n{stdout}\nstderr:\n{stderr}\n{}\n--- external-dns\n{}",
            controller_logs(),
            pods.logs()
        )
    };
    assert_eq!(code, 0, "{}", context());
    assert!(
        stdout.contains(&format!("ready         HelmRelease {name}/{release}")),
        "{}",
        context()
    );
    assert!(
        stdout.contains(&format!("in dns        {hostname} A")),
        "{}",
        context()
    );

    // Flux made the HelmChart from the release and source-controller fetched it from the
    // loopback repository.
    let helm_release = flux::helm_releases(&client, &name)
        .get(&release)
        .await
        .unwrap();
    let status = &helm_release.data["status"];
    assert_eq!(status["helmChart"], format!("{name}/{name}-{release}"));
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("a Ready condition");
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(
        status["history"][0]["chartVersion"], "1.21.1",
        "the pinned chart version is installed: {status}"
    );

    // The Deployment Helm created from the chart with the rendered values.
    let deployment = Api::<Deployment>::namespaced(client.clone(), &name)
        .get(&release)
        .await
        .expect("Helm created the Deployment");
    let labels = deployment.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(labels["helm.sh/chart"], "external-dns-1.21.1");
    assert_eq!(labels["catalyst.openova.io/sovereign"], name);
    let pod_spec = deployment.spec.unwrap().template.spec.unwrap();
    let container = pod_spec
        .containers
        .iter()
        .find(|c| c.name == "external-dns")
        .expect("the external-dns container");
    let liveness = probe_of(container, true);
    assert_eq!(liveness.initial_delay_seconds, Some(180));
    assert_eq!(liveness.period_seconds, Some(30));
    assert_eq!(liveness.failure_threshold, Some(3));
    let readiness = probe_of(container, false);
    assert_eq!(readiness.initial_delay_seconds, Some(30));
    // The kit's post-renderer: a failed run's log tail lands in the pod's status.
    assert_eq!(
        container.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    for probe in [liveness, readiness] {
        let http = probe.http_get.as_ref().expect("an httpGet probe");
        assert_eq!(http.path.as_deref(), Some("/healthz"));
        assert_eq!(http.port, IntOrString::String("http".into()));
    }
    let args = container.args.clone().unwrap_or_default();
    for expected in [
        "--txt-owner-id=openova".to_owned(),
        "--txt-prefix=_externaldns.".to_owned(),
        "--kube-api-request-timeout=120s".to_owned(),
        "--source=service".to_owned(),
        "--source=gateway-httproute".to_owned(),
        "--source=gateway-grpcroute".to_owned(),
        "--provider=pdns".to_owned(),
        "--registry=txt".to_owned(),
        format!("--domain-filter={zone}"),
        format!("--pdns-server={}", world.pdns_api_url),
    ] {
        assert!(args.contains(&expected), "{expected} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.contains(&world.pdns_api_key)),
        "the API key is never an argument"
    );
    let key_ref = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "EXTERNAL_DNS_PDNS_API_KEY")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("the API key comes from a Secret");
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("powerdns-api", "api-key")
    );

    // The records, with our ownership, were written by the external-dns the kubelet ran
    // from that Deployment, and PowerDNS answers them authoritatively.
    flux::assert_published(&world, &zone, &hostname, "192.0.2.44").await;
    let external_dns_log = pods.logs();
    assert!(
        external_dns_log.contains(&hostname),
        "the kubelet's external-dns wrote the record:\n{external_dns_log}"
    );

    // The pod as the kubelet reports it: the kit's labels on it, running, never restarted,
    // Ready through its readiness probe, and its log served through the apiserver.
    let pods_api = Api::<Pod>::namespaced(client.clone(), &name);
    let pod = flux::release_pod(&client, &name, &release).await;
    let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(pod_labels[kubelet::LABEL], "emulated", "{pod_labels:?}");
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{ready:?}");
    let container_status = &status.container_statuses.as_ref().unwrap()[0];
    assert!(container_status.ready && container_status.state.as_ref().unwrap().running.is_some());
    assert_eq!(container_status.restart_count, 0);
    let served = pods_api
        .logs(&pod.metadata.name.clone().unwrap(), &LogParams::default())
        .await
        .expect("the pod's log through the apiserver");
    assert!(
        served.contains(&hostname),
        "kubectl logs shows external-dns's own output:\n{served}"
    );

    // A rerun is safe and quick: nothing changes, the release is already Ready.
    let (code, stdout, stderr) = run(&["up", "--timeout", "60s"], &spec).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("unchanged").count(), 5, "{stdout}");

    pods.finish(&client, &name).await;
}

#[tokio::test]
async fn a_chart_version_that_does_not_exist_fails_with_fluxs_message_and_repair_recovers() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("chain-bad");
    let release = flux::chain_release(&name);
    let spec = flux::chain_sovereign_file(dir.path(), &name, Some("9.9.9"));
    namespace_with_api_key(&world, &client, &name).await;

    // source-controller gives up on the chart (Stalled) while helm-controller keeps
    // waiting for it: `up` fails as a workload failure with source-controller's message
    // instead of waiting out its timeout.
    let (code, stdout, stderr) = run(&["up", "--timeout", TIMEOUT], &spec).await;
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        controller_logs()
    );
    assert_eq!(code, 4, "{context}");
    assert!(
        stderr.contains("no 'external-dns' chart with version matching '9.9.9' found"),
        "Flux's own message is shown: {context}"
    );
    assert!(stderr.contains("InvalidChartReference"), "{context}");
    assert!(!stderr.contains("timed out"), "{context}");

    // `status` judges as the wait did: failed (exit 4, go and repair), not progressing
    // (exit 5, which would send automation back to waiting). Its answer is an answer, not
    // an error of the command.
    let (code, stdout, stderr) = run(&["status"], &spec).await;
    let context = format!("status stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(code, 4, "{context}");
    assert!(
        stdout.contains(&format!(
            "failed        HelmRelease {name}/{release}: InvalidChartReference"
        )),
        "{context}"
    );
    assert!(
        stdout.contains("no 'external-dns' chart with version matching '9.9.9' found"),
        "{context}"
    );
    assert!(stderr.contains("0 of 1 ready; done in"), "{context}");
    assert!(!stderr.contains("error:"), "{context}");

    // Fixed spec (the pinned version): `repair` applies it and Flux recovers.
    let spec = flux::chain_sovereign_file(dir.path(), &name, None);
    let pods = world.kubelet(&client, &name, dir.path().join("pods"));
    let (code, stdout, stderr) = run(&["repair", "--timeout", TIMEOUT], &spec).await;
    assert_eq!(
        code,
        0,
        "stdout:\n{stdout}\nstderr:\n{stderr}\n{}",
        controller_logs()
    );
    assert!(
        stdout.contains(&format!("ready         HelmRelease {name}/{release}")),
        "{stdout}"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &name)
        .get(&release)
        .await
        .expect("Helm created the Deployment after the fix");
    assert_eq!(
        deployment.metadata.labels.unwrap_or_default()["helm.sh/chart"],
        "external-dns-1.21.1"
    );

    pods.finish(&client, &name).await;
}
