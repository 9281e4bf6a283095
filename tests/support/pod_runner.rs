//! A minimal kubelet for external-dns on the test world's fake node: kwok makes pods Ready
//! without running anything, so this runs the real external-dns binary for every running
//! external-dns pod on `kwok-node-0`, with that pod's container arguments and environment
//! (Secret, ConfigMap and field references resolved as the kubelet resolves them). Whatever
//! Helm rendered into the Deployment is therefore what syncs the records.
//!
//! Two things differ from a real node, because the process runs on the host rather than in
//! the pod's network namespace: `--kubeconfig` names a kubeconfig holding a token of the
//! pod's ServiceAccount (so the chart's RBAC is what grants access), and
//! `--metrics-address` binds a free loopback port instead of the pod's `:7979`.
//!
//! Shared by the tests (`mod pod_runner` in tests/support) and the demo
//! (examples/pod-runner.rs includes this file).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret, ServiceAccount};
use kube::Api;
use kube::config::Kubeconfig;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::process::{Child, Command};

/// The fake node whose pods are run.
pub const NODE: &str = "kwok-node-0";
/// The container of the chart's Deployment that runs external-dns.
pub const CONTAINER: &str = "external-dns";
/// How long the ServiceAccount tokens it requests live.
const TOKEN_SECONDS: i64 = 3600;

/// What to run and where.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The namespace whose pods are watched.
    pub namespace: String,
    /// A label selector for the external-dns pods, e.g. `app.kubernetes.io/name=external-dns`.
    pub selector: String,
    /// The external-dns binary.
    pub binary: PathBuf,
    /// A kubeconfig whose cluster (server and CA) the processes reach.
    pub kubeconfig: PathBuf,
    /// Where each process's kubeconfig and log (`<pod>.log`) go.
    pub work_dir: PathBuf,
}

/// Runs external-dns for the selected pods until dropped (or [`PodRunner::stop`]ped);
/// every process it started is killed then.
pub struct PodRunner {
    task: tokio::task::JoinHandle<()>,
    work_dir: PathBuf,
}

impl PodRunner {
    pub fn start(client: kube::Client, config: RunnerConfig) -> PodRunner {
        std::fs::create_dir_all(&config.work_dir).expect("pod runner work dir");
        let work_dir = config.work_dir.clone();
        let task = tokio::spawn(run(client, config));
        PodRunner { task, work_dir }
    }

    /// The external-dns log of one pod, empty when it never ran.
    pub fn log(&self, pod: &str) -> String {
        std::fs::read_to_string(self.work_dir.join(format!("{pod}.log"))).unwrap_or_default()
    }

    /// Every external-dns log written so far, each headed by its pod's name.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&self.work_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        entries.sort();
        for path in entries {
            out.push_str(&format!("--- {}\n", path.display()));
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
        out
    }

    /// Stops watching and kills the processes, waiting until they are gone.
    pub async fn stop(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One process, keyed by its pod's uid.
struct Running {
    pod: String,
    child: Child,
    /// The loopback port of its metrics and `/healthz`.
    metrics: u16,
}

async fn run(client: kube::Client, config: RunnerConfig) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &config.namespace);
    let watch = watcher::Config::default()
        .labels(&config.selector)
        .fields(&format!("spec.nodeName={NODE}"));
    let mut events = watcher(pods.clone(), watch)
        .default_backoff()
        .applied_objects()
        .boxed();
    // Pods that should run, and the processes that do, both by pod uid.
    let mut wanted: HashMap<String, Pod> = HashMap::new();
    let mut running: HashMap<String, Running> = HashMap::new();
    // Every few seconds: processes that exited start again (as the kubelet restarts a
    // container), pods that could not start yet (say, their Secret is not there) are
    // retried, and processes whose pod is gone (a deletion the watch missed) stop.
    let mut check = tokio::time::interval(Duration::from_secs(3));
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                let pod = match event {
                    Ok(pod) => pod,
                    Err(e) => {
                        eprintln!("pod runner: watch error (retrying): {e}");
                        continue;
                    }
                };
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if should_run(&pod) {
                    if !running.contains_key(&uid) {
                        start_for(&client, &config, &pod, &mut running).await;
                    }
                    wanted.insert(uid, pod);
                } else {
                    wanted.remove(&uid);
                    stop_for(&uid, &mut running, "is going away").await;
                }
            }
            _ = check.tick() => {
                for uid in running.keys().cloned().collect::<Vec<_>>() {
                    let name = running[&uid].pod.clone();
                    let current = pods.get_opt(&name).await;
                    let present = match &current {
                        Ok(Some(p)) => p.metadata.uid.as_deref() == Some(uid.as_str()) && should_run(p),
                        Ok(None) => false,
                        // The apiserver is not answering: leave things as they are.
                        Err(_) => true,
                    };
                    if let (true, Ok(Some(pod))) = (present, &current) {
                        report_readiness(&pods, pod, running[&uid].metrics).await;
                    }
                    if !present {
                        wanted.remove(&uid);
                        stop_for(&uid, &mut running, "is gone").await;
                    } else if let Some(entry) = running.get_mut(&uid)
                        && let Ok(Some(status)) = entry.child.try_wait()
                    {
                        eprintln!("pod runner: external-dns of pod {name} exited ({status}); restarting it");
                        running.remove(&uid);
                    }
                }
                for (uid, pod) in &wanted {
                    if !running.contains_key(uid) {
                        start_for(&client, &config, pod, &mut running).await;
                    }
                }
            }
        }
    }
}

async fn stop_for(uid: &str, running: &mut HashMap<String, Running>, why: &str) {
    if let Some(mut gone) = running.remove(uid) {
        eprintln!(
            "pod runner: pod {} {why}: stopping its external-dns",
            gone.pod
        );
        let _ = gone.child.kill().await;
    }
}

fn should_run(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

async fn start_for(
    client: &kube::Client,
    config: &RunnerConfig,
    pod: &Pod,
    running: &mut HashMap<String, Running>,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    match spawn(client, config, pod).await {
        Ok((child, metrics)) => {
            eprintln!(
                "pod runner: running external-dns for pod {}/{name} (pid {})",
                config.namespace,
                child.id().unwrap_or(0)
            );
            running.insert(
                uid,
                Running {
                    pod: name,
                    child,
                    metrics,
                },
            );
        }
        Err(e) => eprintln!("pod runner: cannot run pod {name} yet: {e}"),
    }
}

async fn spawn(
    client: &kube::Client,
    config: &RunnerConfig,
    pod: &Pod,
) -> Result<(Child, u16), String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
    let container = spec
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)
        .ok_or_else(|| format!("the pod has no container named {CONTAINER}"))?;
    let env = resolve_env(client, &config.namespace, pod, container).await?;
    let kubeconfig = write_kubeconfig(client, config, pod).await?;
    let metrics = free_loopback_port()?;

    let log_path = config.work_dir.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;

    let mut cmd = Command::new(&config.binary);
    // The container's command is the image's entrypoint (external-dns); only args are set.
    cmd.args(container.args.iter().flatten())
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--metrics-address=127.0.0.1:{metrics}"))
        // Exactly the pod's environment (credentials included), nothing of the runner's.
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", config.binary.display()))?;
    Ok((child, metrics))
}

/// As the kubelet does from the readiness probe: once external-dns answers `/healthz`, the
/// pod is Ready. kwok only marks a pod Ready once, and the node lifecycle controller marks
/// every pod of the fake node not ready whenever kwok's node heartbeat lags on a busy
/// machine; nothing would mark it Ready again.
async fn report_readiness(pods: &Api<Pod>, pod: &Pod, metrics: u16) {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready {
        return;
    }
    let healthy = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{metrics}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if !healthy {
        return;
    }
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let patch = serde_json::json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
    ]}});
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match pods
        .patch_status(
            name,
            &Default::default(),
            &kube::api::Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => eprintln!("pod runner: pod {name} is ready again (external-dns answers /healthz)"),
        Err(e) => eprintln!("pod runner: cannot report pod {name} ready: {e}"),
    }
}

/// The container's environment as the kubelet builds it: plain values, `$(VAR)` references
/// to earlier variables, and keys of Secrets, ConfigMaps and pod fields.
async fn resolve_env(
    client: &kube::Client,
    namespace: &str,
    pod: &Pod,
    container: &Container,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        if let Some(value) = resolve_var(client, namespace, pod, var).await? {
            let value = expand(&value, &env);
            env.insert(var.name.clone(), value);
        }
    }
    Ok(env)
}

async fn resolve_var(
    client: &kube::Client,
    namespace: &str,
    pod: &Pod,
    var: &EnvVar,
) -> Result<Option<String>, String> {
    let Some(from) = &var.value_from else {
        return Ok(Some(var.value.clone().unwrap_or_default()));
    };
    if let Some(r) = &from.secret_key_ref {
        let secret = Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("reading Secret {}: {e}", r.name))?;
        let value = secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(&r.key).cloned())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "env {}: Secret {} has no key {}",
                var.name, r.name, r.key
            )),
        };
    }
    if let Some(r) = &from.config_map_key_ref {
        let map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("reading ConfigMap {}: {e}", r.name))?;
        let value = map
            .and_then(|m| m.data)
            .and_then(|d| d.get(&r.key).cloned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "env {}: ConfigMap {} has no key {}",
                var.name, r.name, r.key
            )),
        };
    }
    if let Some(r) = &from.field_ref {
        return field(pod, &r.field_path)
            .map(Some)
            .ok_or_else(|| format!("env {}: unsupported fieldRef {}", var.name, r.field_path));
    }
    Err(format!(
        "env {}: resourceFieldRef is not supported by the pod runner",
        var.name
    ))
}

/// The pod fields the downward API offers to environment variables.
fn field(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let from_map = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.as_ref()?.get(key).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec?.node_name.clone(),
        "spec.serviceAccountName" => spec?.service_account_name.clone(),
        "status.hostIP" => status?.host_ip.clone(),
        "status.podIP" => status?.pod_ip.clone(),
        _ => from_map(&meta.labels, "metadata.labels['")
            .or_else(|| from_map(&meta.annotations, "metadata.annotations['")),
    }
}

/// Expands `$(NAME)` with earlier variables; `$$` escapes, unknown names stay as written.
fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(v) = env.get(&inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A kubeconfig for the pod's ServiceAccount: the world's server and CA, and a token from
/// the TokenRequest API bound to the pod (as the kubelet projects it), in a 0600 file.
async fn write_kubeconfig(
    client: &kube::Client,
    config: &RunnerConfig,
    pod: &Pod,
) -> Result<PathBuf, String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned());
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {
            "audiences": [],
            "expirationSeconds": TOKEN_SECONDS,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name,
                               "uid": pod.metadata.uid},
        }
    }))
    .expect("TokenRequest");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &config.namespace)
        .create_token_request(&account, &Default::default(), &request)
        .await
        .map_err(|e| format!("requesting a token for ServiceAccount {account}: {e}"))?
        .status
        .map(|s| s.token)
        .ok_or("the token request returned no token")?;
    let (server, ca) = cluster_of(&config.kubeconfig)?;
    let text = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "world", "cluster": {"server": server,
                                                   "certificate-authority-data": ca}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "world", "user": account,
                                                 "namespace": config.namespace}}],
        "current-context": "pod",
    })
    .to_string();
    let path = config.work_dir.join(format!("{name}.kubeconfig"));
    write_private(&path, &text)?;
    Ok(path)
}

/// The server and CA data of the kubeconfig's current context.
fn cluster_of(path: &Path) -> Result<(String, String), String> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
    let context = kubeconfig
        .current_context
        .as_deref()
        .and_then(|c| kubeconfig.contexts.iter().find(|n| n.name == c))
        .and_then(|n| n.context.as_ref())
        .ok_or("the kubeconfig has no current context")?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or("the kubeconfig's context names no cluster")?;
    Ok((
        cluster.server.clone().unwrap_or_default(),
        cluster
            .certificate_authority_data
            .clone()
            .unwrap_or_default(),
    ))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

pub fn free_loopback_port() -> Result<u16, String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(socket.local_addr().map_err(|e| e.to_string())?.port())
}
