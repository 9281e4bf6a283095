//! The test world's kubelet for the pods that must really run: kwok leaves pods labelled
//! [`LABEL`] alone (testenv excludes them from every pod Stage), and this runs their
//! containers as host processes on the fake node `kwok-node-0` and owns their status, as
//! a node's kubelet does:
//!
//! - pod status: phase, the kubelet's conditions (PodReadyToStartContainers, Initialized,
//!   ContainersReady, Ready, with `ContainersNotReady` and the unready containers), and per
//!   container `state`, `lastState.terminated` (exit code, `Completed`/`Error`, start and
//!   finish, the termination message per `terminationMessagePolicy`), `restartCount`
//!   (rising when the next run starts), `ready` and `started`; written again when someone
//!   else changes it (the node lifecycle controller marks pods not ready when the node's
//!   heartbeat lags), as the kubelet's status manager does;
//! - restarts on the kubelet's back-off ([`backoff`]), with the `CrashLoopBackOff` waiting
//!   message;
//! - liveness and readiness probes exactly as the pod spec states them ([`probe`]): a
//!   failed liveness probe kills and restarts the container, readiness alone makes it
//!   ready;
//! - events as the kubelet words them (`Pulled`, `Created`, `Started`, `Unhealthy`,
//!   `Killing`, `BackOff`, `Failed`);
//! - logs in CRI format, one file per run, served by kwok through the apiserver (a `Logs`
//!   object per pod), so `kubectl logs [--previous]` works as on a real node;
//! - deletion: SIGTERM, SIGKILL after the grace period, then the pod's deletion finished.
//!
//! Where a host process cannot be a pod, it differs, and says so here: the container's
//! image is a host binary ([`Image`]); each container port is a free loopback port (the
//! process learns it from `CATALYST_TESTENV_PORT_<containerPort>`, external-dns from
//! `--metrics-address`; the containers of a pod share its ports, and the localhost port of
//! external-dns's `--webhook-provider-url` is one of them, the URL naming its host port); external-dns gets `--kubeconfig` with a token of the pod's
//! ServiceAccount in place of the projected token volume; the pod IP is a label only;
//! `terminationMessagePath` is not mounted, so under `File` the message is empty (what
//! external-dns, which never writes it, gets on a real node too).
//!
//! Shared by the tests (`support::kubelet`) and the demo (examples/kubelet.rs).
#![allow(dead_code)]

pub mod backoff;
pub mod env;
pub mod events;
pub mod logs;
mod pod;
pub mod probe;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The fake node whose pods are run.
pub const NODE: &str = "kwok-node-0";
/// Pods with this label are run by this kubelet (testenv's `KUBELET_LABEL`).
pub const LABEL: &str = "testenv.catalyst.openova.io/kubelet";
/// The node's InternalIP (kwok's `--node-ip`).
pub const HOST_IP: &str = "127.0.0.1";
/// An image whose entrypoint is the host's `/bin/sh`, for test containers.
pub const SHELL_IMAGE: &str = "catalyst-testenv/sh";
/// The image of the world's PowerDNS webhook sidecar (examples/pdns-webhook.rs).
pub const PDNS_WEBHOOK_IMAGE: &str = "catalyst-testenv/pdns-webhook";

/// What an image's process needs from the host to stand in for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// external-dns: `--kubeconfig` for the pod's ServiceAccount and `--metrics-address`
    /// on the host port of its container port 7979.
    ExternalDns,
    /// Anything else: a default PATH, and each container port's host port in
    /// `CATALYST_TESTENV_PORT_<containerPort>`.
    Plain,
}

/// A container image the world can run: its repository (any tag) and the host binary
/// that is its entrypoint.
#[derive(Debug, Clone)]
pub struct Image {
    pub repository: String,
    pub entrypoint: PathBuf,
    pub host: Host,
}

impl Image {
    pub fn external_dns(binary: PathBuf) -> Image {
        Image {
            repository: "registry.k8s.io/external-dns/external-dns".to_owned(),
            entrypoint: binary,
            host: Host::ExternalDns,
        }
    }

    /// The PowerDNS webhook for external-dns's webhook provider (examples/pdns-webhook.rs).
    pub fn pdns_webhook(binary: PathBuf) -> Image {
        Image {
            repository: PDNS_WEBHOOK_IMAGE.to_owned(),
            entrypoint: binary,
            host: Host::Plain,
        }
    }

    /// The webhook's binary beside `exe`, a binary of the same build: cargo puts examples
    /// in `<profile>/examples/`, tests in `<profile>/deps/`.
    pub fn pdns_webhook_beside(exe: &std::path::Path) -> PathBuf {
        let dir = exe.parent().expect("a binary's directory");
        let profile = if dir.ends_with("examples") || dir.ends_with("deps") {
            dir.parent().expect("the profile's directory")
        } else {
            dir
        };
        profile.join("examples").join("pdns-webhook")
    }

    pub fn shell() -> Image {
        Image {
            repository: SHELL_IMAGE.to_owned(),
            entrypoint: PathBuf::from("/bin/sh"),
            host: Host::Plain,
        }
    }

    fn runs(&self, image: &str) -> bool {
        let repository = match image.rsplit_once('@') {
            Some((r, _)) => r,
            None => image,
        };
        let repository = match repository.rsplit_once(':') {
            Some((r, tag)) if !tag.contains('/') => r,
            _ => repository,
        };
        repository == self.repository
    }
}

/// What to run and where.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The namespace whose labelled pods on the node are run.
    pub namespace: String,
    /// The images it can run.
    pub images: Vec<Image>,
    /// A kubeconfig whose cluster (server and CA) the processes reach.
    pub kubeconfig: PathBuf,
    /// Where ServiceAccount kubeconfigs and container logs go.
    pub work_dir: PathBuf,
    /// The apiserver address external-dns's kubeconfig names instead of the cluster's,
    /// e.g. one that drops its traffic, as a NetworkPolicy dropping egress does.
    pub apiserver: Option<String>,
}

impl KubeletConfig {
    fn image(&self, image: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.runs(image))
    }
}

/// Runs the labelled pods of one namespace until dropped (or [`Kubelet::stop`]ped); every
/// process it started is killed then.
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
    work_dir: PathBuf,
}

impl Kubelet {
    pub fn start(client: kube::Client, config: KubeletConfig) -> Kubelet {
        std::fs::create_dir_all(&config.work_dir).expect("kubelet work dir");
        let work_dir = config.work_dir.clone();
        let task = tokio::spawn(run(client, Arc::new(config)));
        Kubelet { task, work_dir }
    }

    /// Every container log written so far (text, without CRI timestamps), each run headed
    /// by its file.
    pub fn logs(&self) -> String {
        self.logs_where(|_| true)
    }

    /// [`Kubelet::logs`] of the containers named `container` only.
    pub fn container_logs(&self, container: &str) -> String {
        self.logs_where(|file| {
            file.parent()
                .and_then(|dir| dir.file_name())
                .is_some_and(|name| name == container)
        })
    }

    fn logs_where(&self, keep: impl Fn(&std::path::Path) -> bool) -> String {
        let mut files = Vec::new();
        collect_logs(&self.work_dir, &mut files);
        files.retain(|f| keep(f));
        files.sort();
        let mut out = String::new();
        for path in files {
            out.push_str(&format!("--- {}\n", path.display()));
            out.push_str(&logs::text_of(
                &std::fs::read_to_string(&path).unwrap_or_default(),
            ));
        }
        out
    }

    /// Stops watching and kills the processes, waiting until they are gone.
    pub async fn stop(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }

    /// Deletes the namespace, lets the kubelet stop its pods' containers and finish their
    /// deletion (at most a minute), then stops it: on a node without a kubelet a deleted
    /// pod would stay Terminating, and its namespace with it.
    pub async fn finish(self, client: &kube::Client, namespace: &str) {
        use k8s_openapi::api::core::v1::Namespace;
        let _ = Api::<Namespace>::all(client.clone())
            .delete(namespace, &Default::default())
            .await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            match pods
                .list(&kube::api::ListParams::default().labels(LABEL))
                .await
            {
                Ok(list) if list.items.is_empty() => break,
                _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
        self.stop().await;
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn collect_logs(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_logs(&path, out);
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
}

/// The pod IPs handed out, one per pod, from a range kwok does not use.
fn next_pod_ip() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("10.0.{}.{}", 1 + (n / 250) % 200, 2 + n % 250)
}

async fn run(client: kube::Client, config: Arc<KubeletConfig>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
    let watch = watcher::Config::default()
        .labels(LABEL)
        .fields(&format!("spec.nodeName={NODE}"));
    let mut events = watcher(pods, watch).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut tasks = JoinSet::new();
    // The pods of a relist, to tell which went away while the watch was down.
    let mut listed: Option<HashSet<String>> = None;
    let deliver = |pod: Pod,
                   workers: &mut HashMap<String, watch::Sender<Option<Pod>>>,
                   tasks: &mut JoinSet<()>| {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        workers.retain(|_, tx| !tx.is_closed());
        if let Some(tx) = workers.get(&uid) {
            tx.send_replace(Some(pod));
        } else {
            let (tx, rx) = watch::channel(Some(pod.clone()));
            workers.insert(uid, tx);
            tasks.spawn(pod::worker(
                client.clone(),
                config.clone(),
                pod,
                next_pod_ip(),
                rx,
            ));
        }
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod)) => deliver(pod, &mut workers, &mut tasks),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(seen) = listed.as_mut() {
                    seen.insert(pod.metadata.uid.clone().unwrap_or_default());
                }
                deliver(pod, &mut workers, &mut tasks);
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(tx) = workers.remove(pod.metadata.uid.as_deref().unwrap_or_default()) {
                    tx.send_replace(None);
                }
            }
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = listed.take() {
                    workers.retain(|uid, tx| {
                        let keep = seen.contains(uid);
                        if !keep {
                            tx.send_replace(None);
                        }
                        keep
                    });
                }
            }
            Err(e) => eprintln!("kubelet: pod watch error (retrying): {e}"),
        }
    }
}
