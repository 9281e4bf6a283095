//! The webhook variant of the whole chain (`spec.dns.provider: webhook`) with the real
//! parts: real Flux installs the upstream chart with the rendered values, and the world's
//! kubelet runs both containers of the chart's pod: the real external-dns with
//! `--provider=webhook` and the PowerDNS webhook (support/pdns_webhook.rs) as its sidecar,
//! each with the args, env, ports and probes Helm rendered. Every record reaches PowerDNS
//! through the sidecar.

use std::path::Path;

use crate::support::World;
use crate::support::flux::{self, Chain, run};
use crate::support::kubelet::{self, Kubelet};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;

/// As in the pdns chain: Flux's first chart fetch and install happen inside this bound.
const TIMEOUT: &str = "5m";

/// Turns the chain's Sovereign at `spec` into the webhook variant: the world's webhook
/// image, the same PowerDNS API (or `api_url` in its place), server id and API key Secret.
fn to_webhook(spec: &Path, api_url: Option<&str>) {
    let text = std::fs::read_to_string(spec).unwrap();
    let pdns_block = "    provider: pdns\n    pdns:\n";
    assert!(text.contains(pdns_block), "{text}");
    let mut text = text.replace(
        pdns_block,
        &format!(
            "    provider: webhook\n    webhook:\n      image: {{repository: {}, tag: dev}}\n",
            kubelet::PDNS_WEBHOOK_IMAGE
        ),
    );
    if let Some(url) = api_url {
        // The provider block's apiUrl (the verify block's stays: the proof reads PowerDNS).
        let (start, rest) = text
            .split_once("      apiUrl: ")
            .expect("the provider's apiUrl");
        let (_, rest) = rest.split_once('\n').unwrap();
        text = format!("{start}      apiUrl: {url}\n{rest}");
    }
    std::fs::write(spec, text).unwrap();
}

/// The webhook chain `unique(prefix)`, its Service answering at `ip`, and the kubelet
/// running its pods.
async fn webhook_chain(
    world: &World,
    client: &kube::Client,
    prefix: &str,
    api_url: Option<&str>,
    ip: &str,
) -> (Chain, Kubelet) {
    let chain = Chain::prepare(world, client, prefix, ip).await;
    to_webhook(&chain.spec, api_url);
    let pods = chain.kubelet(world, client);
    (chain, pods)
}

fn context(stdout: &str, stderr: &str, pods: &Kubelet) -> String {
    format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\n--- external-dns\n{}\n--- webhook\n{}",
        pods.container_logs("external-dns"),
        pods.container_logs("webhook")
    )
}

#[tokio::test]
async fn up_proves_the_records_external_dns_writes_through_the_webhook_sidecar() {
    let world = World::from_env();
    let client = world.kube().await;
    let (chain, pods) = webhook_chain(&world, &client, "hook", None, "192.0.2.45").await;
    let Chain {
        dir: _dir,
        name,
        release,
        spec,
        zone,
        hostname,
    } = chain;

    let (code, stdout, stderr) = run(&["up", "--timeout", TIMEOUT], &spec).await;
    let why = || context(&stdout, &stderr, &pods);
    assert_eq!(code, 0, "{}", why());
    assert!(
        stdout.contains(&format!("in dns        {hostname} A")),
        "{}",
        why()
    );

    // The chart's pod: external-dns told to use the webhook on localhost, and the sidecar
    // with the kit's environment, its key from the Secret.
    let deployment = Api::<Deployment>::namespaced(client.clone(), &name)
        .get(&release)
        .await
        .expect("Helm created the Deployment");
    let pod_spec = deployment.spec.unwrap().template.spec.unwrap();
    let names: Vec<&str> = pod_spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["external-dns", "webhook"]);
    let args = pod_spec.containers[0].args.clone().unwrap_or_default();
    for expected in [
        "--provider=webhook",
        "--webhook-provider-url=http://localhost:8888",
        "--registry=txt",
    ] {
        assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
    }
    let sidecar = &pod_spec.containers[1];
    assert_eq!(
        sidecar.image.as_deref(),
        Some(format!("{}:dev", kubelet::PDNS_WEBHOOK_IMAGE).as_str())
    );
    let env: Vec<(&str, Option<&str>)> = sidecar
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env,
        [
            ("PDNS_API_URL", Some(world.pdns_api_url.as_str())),
            ("PDNS_SERVER_ID", Some("localhost")),
            ("PDNS_API_KEY", None),
            ("WEBHOOK_PORT", Some("8888")),
        ]
    );
    let ports: Vec<i32> = sidecar
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [8080], "the chart's http-webhook port");
    assert!(
        sidecar
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .is_some(),
        "the chart probes the sidecar"
    );

    // In PowerDNS with its ownership TXT, answered over DNS.
    flux::assert_published(&world, &zone, &hostname, "192.0.2.45").await;

    // Written through the sidecar: its log has the changes, record and ownership TXT.
    let sidecar_log = pods.container_logs("webhook");
    assert!(
        sidecar_log.contains(&format!("CREATE: {hostname} A 192.0.2.45")),
        "{}",
        why()
    );
    assert!(
        sidecar_log.contains(&format!("CREATE: _externaldns.a-{hostname} TXT")),
        "{}",
        why()
    );
    assert!(
        !sidecar_log.contains(&world.pdns_api_key),
        "the key is never logged"
    );

    // Both containers as the kubelet reports them: running, ready, never restarted, each
    // with its own log served through the apiserver.
    let pod = flux::release_pod(&client, &name, &release).await;
    let pod_name = pod.metadata.name.clone().unwrap();
    let status = pod.status.unwrap();
    let statuses = status.container_statuses.unwrap();
    let mut seen: Vec<&str> = statuses.iter().map(|c| c.name.as_str()).collect();
    seen.sort_unstable();
    assert_eq!(seen, ["external-dns", "webhook"]);
    for c in &statuses {
        assert!(c.ready, "{c:?}");
        assert!(c.state.as_ref().unwrap().running.is_some(), "{c:?}");
        assert_eq!(c.restart_count, 0, "{c:?}");
    }
    let pods_api = Api::<Pod>::namespaced(client.clone(), &name);
    let served = pods_api
        .logs(
            &pod_name,
            &LogParams {
                container: Some("webhook".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect("the sidecar's log through the apiserver");
    assert!(
        served.contains(&format!("CREATE: {hostname} A")),
        "{served}"
    );

    pods.finish(&client, &name).await;
}

#[tokio::test]
async fn a_webhook_that_cannot_reach_powerdns_ends_up_with_exit_7_and_its_own_log() {
    let world = World::from_env();
    let client = world.kube().await;
    // A loopback port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed_url = format!("http://127.0.0.1:{closed}");
    let (chain, pods) = webhook_chain(
        &world,
        &client,
        "hook-down",
        Some(&closed_url),
        "192.0.2.46",
    )
    .await;
    let Chain {
        dir: _dir,
        name,
        spec,
        zone,
        hostname,
        ..
    } = chain;

    let (code, stdout, stderr) = run(&["up", "--timeout", "90s"], &spec).await;
    let why = || context(&stdout, &stderr, &pods);
    assert_eq!(code, 7, "{}", why());
    assert!(
        stderr.contains(&format!("{hostname} A: not in PowerDNS")),
        "{}",
        why()
    );
    assert!(
        stderr.contains("likely cause: the webhook provider sidecar (container webhook)"),
        "the cause names the webhook: {}",
        why()
    );
    assert!(stderr.contains("PowerDNS is unreachable"), "{}", why());
    // The diagnosis quotes the sidecar's own log, not only external-dns's.
    assert!(stderr.contains("container webhook:"), "{}", why());
    assert!(
        stderr.contains(&format!(
            "127.0.0.1:{closed}/api/v1/servers/localhost/zones"
        )),
        "{}",
        why()
    );
    assert!(!stderr.contains(&world.pdns_api_key), "{}", why());
    assert!(
        world
            .pdns()
            .rrset(&zone, &format!("{hostname}."), "A")
            .await
            .is_empty()
    );

    pods.finish(&client, &name).await;
}
