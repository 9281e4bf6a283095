//! The wait engine against the real test world: kube-apiserver, controller-manager and
//! scheduler run the Deployments, kwok plays the kubelet (Ready pods, or crash loops for
//! pods labelled with `FAULT_LABEL`), and the tests themselves play Flux's helm-controller
//! by writing HelmRelease status through the status subresource.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::support::{FAULT_LABEL, World, crash_loop_stage, unique};
use catalyst_bootstrap::health::pressure::Pressure;
use catalyst_bootstrap::health::{
    EventState, HealthError, HealthEvent, Logs, Target, WaitOptions, wait_until_healthy,
};
use catalyst_bootstrap::report::Sink;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Generous: the world shares two cores with builds.
const SETTLE: Duration = Duration::from_secs(60);

struct Scratch {
    client: Client,
    ns: String,
    stage: Option<String>,
}

impl Scratch {
    async fn new(prefix: &str) -> Scratch {
        let world = World::from_env();
        let client = world.kube().await;
        let ns = unique(prefix);
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        Scratch {
            client,
            ns,
            stage: None,
        }
    }

    /// Pods carrying the returned label value crash-loop.
    async fn crash_loop(&mut self) -> String {
        let id = unique("crash");
        self.stage = Some(crash_loop_stage(&self.client, &id).await);
        id
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

    async fn create_deployment(&self, name: &str, replicas: i32, labels: Value) {
        let mut pod_labels = labels;
        pod_labels["app"] = json!(name);
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {"containers": [{"name": "main", "image": "registry.invalid/main:1"}]}
                }
            }
        }))
        .unwrap();
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
    }

    fn helm_releases(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &helm_release_resource())
    }

    async fn create_helm_release(&self, name: &str) {
        let hr: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": name},
            "spec": {
                "interval": "10m",
                "chart": {"spec": {"chart": "external-dns",
                    "sourceRef": {"kind": "HelmRepository", "name": "external-dns"}}}
            }
        }))
        .unwrap();
        self.helm_releases()
            .create(&PostParams::default(), &hr)
            .await
            .expect("create HelmRelease (are the Flux CRDs installed?)");
    }

    /// Plays helm-controller: replaces the HelmRelease's status.
    async fn set_helm_release_status(&self, name: &str, status: Value) {
        self.helm_releases()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .expect("patch HelmRelease status");
    }

    /// The first pod whose labels match, once it exists.
    async fn pod(&self, selector: &str) -> Pod {
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns);
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap();
            if let Some(p) = list.items.into_iter().next() {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no pod {selector} within {SETTLE:?}: are controller-manager and scheduler up?"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn helm_release_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
    ))
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn ready_status(generation: i64) -> Value {
    json!({"observedGeneration": generation, "conditions": [
        condition("Ready", "True", "InstallSucceeded", "Helm install succeeded", generation)]})
}

type Wait = JoinHandle<Result<catalyst_bootstrap::health::Report, HealthError>>;

/// Starts a wait in the background; its progress events arrive on the receiver.
fn start_wait(
    client: &Client,
    targets: Vec<Target>,
    opts: WaitOptions,
) -> (Wait, mpsc::UnboundedReceiver<HealthEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let opts = opts.on_event(Sink::new(move |e: &HealthEvent| {
        let _ = tx.send(e.clone());
    }));
    let client = client.clone();
    let handle = tokio::spawn(async move { wait_until_healthy(&client, &targets, &opts).await });
    (handle, rx)
}

/// The next progress event of `resource` whose message contains `text`.
async fn event_saying(
    rx: &mut mpsc::UnboundedReceiver<HealthEvent>,
    resource: &str,
    text: &str,
) -> HealthEvent {
    let found = tokio::time::timeout(SETTLE, async {
        while let Some(e) = rx.recv().await {
            if e.resource == resource && e.message.contains(text) {
                return e;
            }
        }
        panic!("event stream ended before {resource} said {text:?}");
    })
    .await;
    found.unwrap_or_else(|_| panic!("{resource} never said {text:?} within {SETTLE:?}"))
}

async fn finished(handle: Wait) -> Result<catalyst_bootstrap::health::Report, HealthError> {
    tokio::time::timeout(SETTLE * 2, handle)
        .await
        .expect("the wait did not return")
        .expect("the wait panicked")
}

fn failure(result: Result<catalyst_bootstrap::health::Report, HealthError>) -> HealthError {
    match result {
        Ok(report) => panic!("expected a failure, the wait succeeded: {report:?}"),
        Err(e) => e,
    }
}

fn opts(timeout: Duration) -> WaitOptions {
    WaitOptions::default()
        .with_timeout(timeout)
        .with_grace(Duration::from_secs(30))
}

#[tokio::test]
async fn a_deployment_created_mid_wait_is_waited_for_and_the_wait_returns_promptly_after_ready() {
    let scratch = Scratch::new("health-ready").await;
    let target = Target::deployment(&scratch.ns, "web");
    let resource = target.resource();
    let (handle, mut rx) = start_wait(&scratch.client, vec![target], opts(SETTLE));

    // The Deployment does not exist yet: that is progress, not an error.
    event_saying(&mut rx, &resource, "not created yet").await;
    assert!(!handle.is_finished());
    scratch.create_deployment("web", 2, json!({})).await;

    let report = finished(handle).await.expect("the Deployment turns ready");
    let returned = SystemTime::now();
    assert_eq!(report.ready.len(), 1);
    assert_eq!(report.ready[0].0, resource);

    // The last pod's Ready transition, in whole seconds (metav1.Time has no fraction).
    let pods = Api::<Pod>::namespaced(scratch.client.clone(), &scratch.ns)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    let last_ready = pods
        .items
        .iter()
        .map(|p| {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
                .unwrap_or_else(|| panic!("pod {:?} not Ready", p.metadata.name));
            SystemTime::from(ready.last_transition_time.as_ref().unwrap().0)
        })
        .max()
        .unwrap();
    let gap = returned.duration_since(last_ready).unwrap_or_default();
    // A watch reacts within milliseconds; a 2-3 s poll would not. Up to 1 s of the gap is
    // the truncation of the transition time.
    assert!(
        gap < Duration::from_secs(2),
        "the wait returned {gap:?} after the last pod turned Ready"
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_crash_looping_deployment_fails_the_wait_early_naming_the_pod() {
    let mut scratch = Scratch::new("health-crash").await;
    let id = scratch.crash_loop().await;
    let timeout = Duration::from_secs(120);
    let started = tokio::time::Instant::now();
    let (handle, _rx) = start_wait(
        &scratch.client,
        vec![Target::deployment(&scratch.ns, "crasher")],
        opts(timeout),
    );
    scratch
        .create_deployment("crasher", 1, json!({ FAULT_LABEL: id }))
        .await;

    let err = failure(finished(handle).await);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "failed after {took:?}, not early (timeout {timeout:?})"
    );
    assert_eq!(err.exit().code(), 4);
    let HealthError::WorkloadFailed { diagnosis } = err else {
        panic!("expected WorkloadFailed, got {err}");
    };
    let pod = scratch.pod("app=crasher").await;
    let pod_name = format!("{}/{}", scratch.ns, pod.metadata.name.unwrap());
    assert_eq!(
        diagnosis.resource,
        format!("Deployment {}/crasher", scratch.ns)
    );
    assert_eq!(diagnosis.reason, "CrashLoopBackOff");
    assert!(
        diagnosis.message.starts_with(&format!(
            "pod {pod_name}: container main is in CrashLoopBackOff"
        )),
        "{}",
        diagnosis.message
    );
    assert_eq!(diagnosis.pods.first(), Some(&pod_name));
    assert!(
        diagnosis.terminations[0].contains("exit code 1 (Error)"),
        "{:?}",
        diagnosis.terminations
    );
    // kwok serves no container logs; the diagnosis says so instead of failing.
    match &diagnosis.logs {
        Some(Logs::Unavailable { pod, reason, .. }) => {
            assert_eq!(pod, &pod_name);
            assert!(!reason.is_empty());
        }
        Some(Logs::Previous { pod, .. }) => assert_eq!(pod, &pod_name),
        Some(other) => panic!("a crash is diagnosed by the previous run's log: {other:?}"),
        None => panic!("a restarted container's log was not even tried"),
    }
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_cache_sync_crash_on_a_fast_apiserver_is_ridden_out_then_fails_as_dropped_egress_with_its_events_matched()
 {
    let mut scratch = Scratch::new("health-events").await;
    let id = scratch.crash_loop().await;
    scratch
        .create_deployment("external-dns", 1, json!({ FAULT_LABEL: id }))
        .await;
    let pod = scratch.pod("app=external-dns").await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": unique("probe")},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": scratch.ns,
            "name": pod.metadata.name, "uid": pod.metadata.uid},
        "type": "Warning",
        "reason": "Unhealthy",
        "message": "failed to sync *v1.Node: context deadline exceeded",
        "count": 3,
        "firstTimestamp": now.to_string(),
        "lastTimestamp": now.to_string(),
        "source": {"component": "kubelet"},
    }))
    .unwrap();
    Api::<Event>::namespaced(scratch.client.clone(), &scratch.ns)
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");

    let target = Target::deployment(&scratch.ns, "external-dns");
    let resource = target.resource();
    let started = std::time::Instant::now();
    let (handle, mut rx) = start_wait(
        &scratch.client,
        vec![target],
        opts(Duration::from_secs(300)),
    );
    // Judged by its cause: a cache-sync crash is what a saturated apiserver causes, so it
    // is ridden out until the apiserver has been fast for two cache-sync windows...
    let riding = event_saying(&mut rx, &resource, "another cache-sync window").await;
    assert_eq!(
        riding.state,
        catalyst_bootstrap::health::EventState::RidingOut
    );
    assert!(
        riding.message.starts_with(
            "main restarted 4 times on its start-up cache sync; the apiserver answers in "
        ),
        "{riding:?}"
    );
    // ...then it is not saturation but dropped egress, and the wait fails saying so.
    let result = tokio::time::timeout(Duration::from_secs(240), handle)
        .await
        .expect("the wait did not return")
        .expect("the wait panicked");
    let HealthError::WorkloadFailed { diagnosis } = failure(result) else {
        panic!("expected WorkloadFailed");
    };
    assert!(
        started.elapsed() >= catalyst_bootstrap::health::ride::FAST_PROOF,
        "not before two cache-sync windows"
    );
    let judgement = diagnosis.judgement.clone().unwrap_or_default();
    assert!(
        judgement.starts_with("not saturation: the apiserver answered this tool in ")
            && judgement.contains("egress from the pod to the apiserver is being dropped"),
        "{diagnosis}"
    );
    let ids: Vec<_> = diagnosis.causes.iter().map(|c| c.id).collect();
    assert_eq!(ids.first(), Some(&"apiserver-cache-sync"), "{diagnosis}");
    assert!(
        diagnosis.events.iter().any(|e| e.reason == "Unhealthy"
            && e.message == "failed to sync *v1.Node: context deadline exceeded"
            && e.count == 3),
        "{:?}",
        diagnosis.events
    );
    assert_eq!(
        diagnosis.probe_failures,
        [format!(
            "Pod/{}: failed to sync *v1.Node: context deadline exceeded",
            pod.metadata.name.unwrap()
        )]
    );
    let text = diagnosis.to_string();
    assert!(
        text.contains(
            "likely cause: external-dns could not finish its start-up cache sync within 60 s: \
             the apiserver is saturated, or egress to it is dropped by network policy (under \
             Cilium the apiserver is the kube-apiserver entity; 0.0.0.0/0 does not match it)"
        ),
        "{text}"
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_helm_release_created_mid_wait_succeeds_once_flux_reports_ready() {
    let scratch = Scratch::new("health-hr-ready").await;
    let target = Target::helm_release(&scratch.ns, "external-dns");
    let resource = target.resource();
    let (handle, mut rx) = start_wait(&scratch.client, vec![target], opts(SETTLE));

    event_saying(&mut rx, &resource, "not created yet").await;
    scratch.create_helm_release("external-dns").await;
    // Created, but no controller has written a status: not ready.
    event_saying(
        &mut rx,
        &resource,
        "no status yet: is Flux helm-controller running?",
    )
    .await;
    assert!(!handle.is_finished());

    scratch
        .set_helm_release_status("external-dns", ready_status(1))
        .await;
    let report = finished(handle).await.expect("Ready=True for generation 1");
    assert_eq!(report.ready[0].0, resource);
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_stalled_helm_release_fails_the_wait_with_the_repair_hint() {
    let scratch = Scratch::new("health-hr-stalled").await;
    scratch.create_helm_release("external-dns").await;
    scratch
        .set_helm_release_status(
            "external-dns",
            json!({"observedGeneration": 1, "conditions": [
                condition("Stalled", "True", "RetriesExceeded", "Failed to install after 1 attempt(s)", 1),
                condition("Ready", "False", "InstallFailed",
                    "Helm install failed for release external-dns: context deadline exceeded", 1),
            ]}),
        )
        .await;
    let (handle, _rx) = start_wait(
        &scratch.client,
        vec![Target::helm_release(&scratch.ns, "external-dns")],
        opts(Duration::from_secs(120)),
    );
    let err = failure(finished(handle).await);
    assert_eq!(err.exit().code(), 4);
    let HealthError::WorkloadFailed { diagnosis } = err else {
        panic!("expected WorkloadFailed, got {err}");
    };
    assert_eq!(diagnosis.reason, "RetriesExceeded");
    assert_eq!(
        diagnosis.message,
        "Failed to install after 1 attempt(s): Helm install failed for release external-dns: \
         context deadline exceeded: retries exhausted: reset with `catalyst-bootstrap repair`"
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_helm_release_ready_for_an_older_generation_keeps_the_wait_going() {
    let scratch = Scratch::new("health-hr-stale").await;
    scratch.create_helm_release("external-dns").await;
    // A spec change: generation 2, which Flux has not reconciled yet.
    scratch
        .helm_releases()
        .patch(
            "external-dns",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"interval": "5m"}})),
        )
        .await
        .unwrap();
    scratch
        .set_helm_release_status("external-dns", ready_status(1))
        .await;
    let target = Target::helm_release(&scratch.ns, "external-dns");
    let resource = target.resource();
    let (handle, mut rx) = start_wait(&scratch.client, vec![target], opts(SETTLE));

    let e = event_saying(&mut rx, &resource, "Flux has not seen generation 2 yet").await;
    assert_eq!(e.state, EventState::Progressing);
    // Ready=True was seen and judged, and the wait goes on.
    assert!(!handle.is_finished());

    scratch
        .set_helm_release_status("external-dns", ready_status(2))
        .await;
    finished(handle)
        .await
        .expect("ready once Flux observed generation 2");
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_crash_looping_release_pod_fails_the_helm_release_before_flux_gives_up() {
    let mut scratch = Scratch::new("health-hr-pods").await;
    let id = scratch.crash_loop().await;
    scratch.create_helm_release("external-dns").await;
    // The chart's Deployment, labelled the way the external-dns chart labels its pods.
    scratch
        .create_deployment(
            "external-dns",
            1,
            json!({ FAULT_LABEL: id, "app.kubernetes.io/name": "external-dns",
                    "app.kubernetes.io/instance": "external-dns" }),
        )
        .await;
    let target = Target::helm_release(&scratch.ns, "external-dns").with_release_pods(
        &scratch.ns,
        "external-dns",
        "external-dns",
    );
    let (handle, _rx) = start_wait(
        &scratch.client,
        vec![target],
        opts(Duration::from_secs(120)),
    );
    let HealthError::WorkloadFailed { diagnosis } = failure(finished(handle).await) else {
        panic!("expected WorkloadFailed");
    };
    assert_eq!(
        diagnosis.resource,
        format!("HelmRelease {}/external-dns", scratch.ns)
    );
    assert_eq!(diagnosis.reason, "CrashLoopBackOff");
    assert!(
        diagnosis
            .message
            .contains("container main is in CrashLoopBackOff")
    );
    scratch.cleanup().await;
}

#[tokio::test]
async fn a_pod_symptom_fails_the_wait_only_after_its_grace_period() {
    let scratch = Scratch::new("health-grace").await;
    // A label no kwok stage handles: the pod stays as the test writes it.
    let id = unique("manual");
    scratch
        .create_deployment("puller", 1, json!({ FAULT_LABEL: id }))
        .await;
    let pod = scratch.pod("app=puller").await;
    let name = pod.metadata.name.clone().unwrap();
    Api::<Pod>::namespaced(scratch.client.clone(), &scratch.ns)
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"phase": "Pending", "containerStatuses": [{
                "name": "main", "image": "registry.invalid/main:1", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"registry.invalid/main:1\""}}}]}}),
            ),
        )
        .await
        .expect("patch pod status");

    let grace = Duration::from_secs(3);
    let started = tokio::time::Instant::now();
    let (handle, mut rx) = start_wait(
        &scratch.client,
        vec![Target::deployment(&scratch.ns, "puller")],
        opts(Duration::from_secs(120)).with_grace(grace),
    );
    let resource = format!("Deployment {}/puller", scratch.ns);
    event_saying(&mut rx, &resource, "fails the wait if it lasts 3s").await;
    let HealthError::WorkloadFailed { diagnosis } = failure(finished(handle).await) else {
        panic!("expected WorkloadFailed");
    };
    let took = started.elapsed();
    // No event arrives after the pod was written: the engine's own grace timer decides.
    assert!(
        took >= grace,
        "failed after {took:?}, inside the grace period"
    );
    assert!(took < grace + Duration::from_secs(10), "took {took:?}");
    assert_eq!(diagnosis.reason, "ImagePullBackOff");
    assert!(diagnosis.causes.iter().any(|c| c.id == "image-pull"));
    scratch.cleanup().await;
}

#[tokio::test]
async fn the_timeout_lists_every_pending_target() {
    let scratch = Scratch::new("health-timeout").await;
    scratch.create_helm_release("external-dns").await;
    // Pods no kwok stage handles never turn ready.
    scratch
        .create_deployment("stuck", 1, json!({ FAULT_LABEL: unique("never") }))
        .await;
    let timeout = Duration::from_secs(3);
    let started = tokio::time::Instant::now();
    let (handle, _rx) = start_wait(
        &scratch.client,
        vec![
            Target::helm_release(&scratch.ns, "external-dns"),
            Target::deployment(&scratch.ns, "stuck"),
        ],
        opts(timeout),
    );
    let err = failure(finished(handle).await);
    assert!(started.elapsed() >= timeout);
    assert_eq!(err.exit().code(), 5);
    let HealthError::TimedOut {
        waited,
        pending,
        diagnoses,
    } = err
    else {
        panic!("expected TimedOut, got {err}");
    };
    assert!(waited >= timeout);
    let pending: Vec<(String, String)> = pending
        .into_iter()
        .map(|p| (p.resource, p.reason))
        .collect();
    assert_eq!(
        pending[0],
        (
            format!("HelmRelease {}/external-dns", scratch.ns),
            "no status yet: is Flux helm-controller running?".to_owned()
        )
    );
    assert_eq!(pending[1].0, format!("Deployment {}/stuck", scratch.ns));
    assert!(
        pending[1].1.contains("replicas available"),
        "{:?}",
        pending[1]
    );
    assert_eq!(diagnoses.len(), 2);
    // The stuck Deployment's unready pod is examined.
    assert_eq!(diagnoses[1].pods.len(), 1, "{}", diagnoses[1]);
    scratch.cleanup().await;
}

/// A TCP relay in front of the real apiserver that the test can cut and restore: an
/// outage as a client sees one (connections dropped, new ones closed at once), without
/// stopping the apiserver the other tests share.
struct Relay {
    port: u16,
    up: Arc<Mutex<bool>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(Mutex::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !*up2.lock().unwrap() {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                conns2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay {
            port,
            up,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        *self.up.lock().unwrap() = false;
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        *self.up.lock().unwrap() = true;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A client built the way the CLI builds one (tuned timeouts, the Retry-After layer, every
/// request timed into `pressure`), talking to the apiserver through `port` on localhost.
async fn client_via(port: u16, pressure: &Pressure) -> (Client, String) {
    let world = World::from_env();
    let kubeconfig = Kubeconfig::read_from(&world.kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    let upstream = config.cluster_url.authority().unwrap().to_string();
    config.cluster_url = format!("https://127.0.0.1:{port}").parse().unwrap();
    (
        catalyst_bootstrap::retry::client(config, pressure).expect("client"),
        upstream,
    )
}

/// The wait of the outage tests, reading what their client (from [`client_via`] with the
/// same `pressure`) saw of the apiserver, as the CLI's wait does.
fn outage_opts(
    timeout: Duration,
    unreachable_budget: Duration,
    pressure: &Pressure,
) -> WaitOptions {
    let mut o = opts(timeout);
    o.pressure = pressure.clone();
    o.unreachable_budget = unreachable_budget;
    o.reconnect_min = Duration::from_millis(100);
    o.reconnect_max = Duration::from_millis(500);
    // Declared at once: these tests are about the clocks, not about a slow apiserver.
    o.silence = Duration::ZERO;
    o
}

#[tokio::test]
async fn an_apiserver_outage_pauses_the_health_clock_and_the_wait_rides_it_out() {
    let scratch = Scratch::new("health-outage").await;
    scratch.create_helm_release("external-dns").await;
    let pressure = Pressure::default();
    let (_, upstream) = client_via(0, &pressure).await;
    let relay = Relay::start(upstream).await;
    let (client, _) = client_via(relay.port, &pressure).await;

    let timeout = Duration::from_secs(3);
    let outage = Duration::from_secs(4);
    let target = Target::helm_release(&scratch.ns, "external-dns");
    let resource = target.resource();
    let (handle, mut rx) = start_wait(
        &client,
        vec![target],
        outage_opts(timeout, Duration::from_secs(60), &pressure),
    );
    event_saying(&mut rx, &resource, "no status yet").await;

    relay.cut();
    let e = event_saying(&mut rx, "apiserver", "the health clock is paused").await;
    assert_eq!(e.state, EventState::ApiserverUnreachable);
    // Longer than the whole health timeout: only an outage, so the wait must not time out.
    tokio::time::sleep(outage).await;
    assert!(!handle.is_finished(), "the wait gave up during the outage");
    // Flux reports Ready while the tool cannot see it.
    scratch
        .set_helm_release_status("external-dns", ready_status(1))
        .await;
    relay.restore();
    let e = event_saying(&mut rx, "apiserver", "reachable again").await;
    assert_eq!(e.state, EventState::ApiserverReachable);

    let report = finished(handle).await.expect("ready after the outage");
    // More wall time than the health timeout, yet no TimedOut: the outage did not count.
    assert!(report.elapsed > timeout, "{report:?}");
    assert!(report.unreachable >= outage, "{report:?}");
    scratch.cleanup().await;
}

#[tokio::test]
async fn an_apiserver_that_stays_unreachable_ends_the_wait_after_its_own_budget() {
    let pressure = Pressure::default();
    let (_, upstream) = client_via(0, &pressure).await;
    let relay = Relay::start(upstream).await;
    relay.cut();
    let (client, _) = client_via(relay.port, &pressure).await;
    let budget = Duration::from_secs(2);
    let started = tokio::time::Instant::now();
    let (handle, _rx) = start_wait(
        &client,
        vec![Target::deployment("default", "never-reached")],
        // The health timeout is shorter, and must not fire: nothing could be judged.
        outage_opts(Duration::from_millis(500), budget, &pressure),
    );
    let err = failure(finished(handle).await);
    let took = started.elapsed();
    assert_eq!(err.exit().code(), 6, "{err}");
    let HealthError::ApiserverUnreachable {
        unreachable_for,
        last_error,
        ..
    } = err
    else {
        panic!("expected ApiserverUnreachable, got {err}");
    };
    assert!(unreachable_for >= budget);
    assert!(took < budget + Duration::from_secs(5), "took {took:?}");
    assert!(!last_error.is_empty());
}
