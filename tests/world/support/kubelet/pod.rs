//! One pod's life on the emulated node: a task per container running it, restarting it on
//! the back-off and probing it; one task writing the pod's status and its `Logs` object
//! whenever they change (so a slow apiserver never holds a container up); deletion with
//! the grace period, then the pod's deletion finished.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, Preconditions,
};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::events::{Recorder, Type};
use super::probe::{self, Kind, Thresholds, Timing};
use super::status::{self, State, Termination};
use super::{Host, KubeletConfig, backoff, env, logs};

/// The default PATH of an image's environment.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a container shows `terminated` before the kubelet's next sync moves it on.
const TERMINATED_SHOWN: Duration = Duration::from_secs(1);
/// How often the kubelet's status manager compares its status with the apiserver's.
const STATUS_RESYNC: Duration = Duration::from_secs(10);
/// How often a container whose configuration cannot be resolved yet is tried again.
const CONFIG_RETRY: Duration = Duration::from_secs(10);

/// What the pod's tasks share: the status the kubelet would report and each container's
/// log files (current run, previous run), both written out by the sync task.
struct Shared {
    status: status::Pod,
    logs: BTreeMap<String, (PathBuf, Option<PathBuf>)>,
}

struct PodRef {
    client: kube::Client,
    config: Arc<KubeletConfig>,
    pod: Pod,
    name: String,
    ns: String,
    uid: String,
    shared: Mutex<Shared>,
    changed: watch::Sender<u64>,
    events: Recorder,
    /// The pod's ports and the loopback port each is on ([`pod_ports`]).
    ports: Vec<(i32, u16)>,
}

impl PodRef {
    fn update(&self, f: impl FnOnce(&mut Shared)) {
        {
            let mut shared = self.shared.lock().expect("pod state");
            f(&mut shared);
            shared.status.refresh_readiness();
        }
        self.changed.send_modify(|n| *n += 1);
    }

    fn container(&self, index: usize, f: impl FnOnce(&mut status::Container)) {
        self.update(|s| f(&mut s.status.containers[index]));
    }
}

pub(super) async fn worker(
    client: kube::Client,
    config: Arc<KubeletConfig>,
    pod: Pod,
    pod_ip: String,
    mut updates: watch::Receiver<Option<Pod>>,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_always = spec.restart_policy.as_deref().unwrap_or("Always") == "Always";
    let containers = spec
        .containers
        .iter()
        .map(|c| status::Container::new(&c.name, c.image.as_deref().unwrap_or_default()))
        .collect();
    let (events, events_task) = Recorder::start(client.clone(), &pod);
    let (changed, changed_rx) = watch::channel(0);
    let this = Arc::new(PodRef {
        client: client.clone(),
        config,
        name: pod.metadata.name.clone().unwrap_or_default(),
        ns: pod.metadata.namespace.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        pod,
        ports: pod_ports(&spec.containers),
        shared: Mutex::new(Shared {
            status: status::Pod::new(super::HOST_IP, &pod_ip, containers, restart_always),
            logs: BTreeMap::new(),
        }),
        changed,
        events,
    });
    let sync = tokio::spawn(sync(this.clone(), changed_rx, updates.clone()));
    let (stop_tx, stop_rx) = watch::channel::<Option<Duration>>(None);
    let mut runs = JoinSet::new();
    if this.pod.metadata.deletion_timestamp.is_none() {
        for (index, container) in spec.containers.iter().enumerate() {
            runs.spawn(run_container(
                this.clone(),
                index,
                container.clone(),
                stop_rx.clone(),
            ));
        }
    }

    // Until the pod is deleted (gracefully: its grace period; at once: it is gone).
    let gone = loop {
        let current = updates.borrow_and_update().clone();
        match current {
            None => break true,
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                let grace = p
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0);
                stop_tx.send_replace(Some(Duration::from_secs(grace as u64)));
                break false;
            }
            Some(_) => {}
        }
        if updates.changed().await.is_err() {
            break true;
        }
    };
    if gone {
        stop_tx.send_replace(Some(Duration::ZERO));
    }
    while runs.join_next().await.is_some() {}
    this.update(|s| s.status.terminal = true);
    sync.abort();
    if !gone {
        finish_deletion(&this).await;
    }
    drop(this);
    let _ = events_task.await;
}

/// As the kubelet ends a graceful deletion: the final status, then the deletion with grace
/// period 0 and the pod's UID as precondition.
async fn finish_deletion(this: &PodRef) {
    let pods: Api<Pod> = Api::namespaced(this.client.clone(), &this.ns);
    let status = this.shared.lock().expect("pod state").status.api();
    for attempt in 0..30 {
        let written = pods
            .patch_status(
                &this.name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"status": status})),
            )
            .await;
        let deleted = match written {
            Ok(_) => {
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(this.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                pods.delete(&this.name, &params).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match deleted {
            Ok(()) => return,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
            Err(e) => {
                eprintln!(
                    "kubelet: finishing the deletion of pod {} (attempt {attempt}): {e}",
                    this.name
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes the pod's status whenever it changes, or when the apiserver's copy differs
/// from it (checked on every watch event and every 10 s), and the pod's `Logs` object
/// whenever a container's log files change.
async fn sync(
    this: Arc<PodRef>,
    mut changed: watch::Receiver<u64>,
    mut pod: watch::Receiver<Option<Pod>>,
) {
    let pods: Api<Pod> = Api::namespaced(this.client.clone(), &this.ns);
    let logs_api: Api<DynamicObject> = Api::namespaced_with(
        this.client.clone(),
        &this.ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Logs"),
            "logs",
        ),
    );
    let mut sent_status = None;
    let mut acked: Option<u64> = None;
    let mut sent_logs = BTreeMap::new();
    let mut resync = tokio::time::interval(STATUS_RESYNC);
    loop {
        let (want, differs, logs) = {
            let shared = this.shared.lock().expect("pod state");
            let current = pod.borrow().clone();
            // Only a copy newer than the kubelet's own last write can be someone else's
            // change (resource versions of etcd and kine are increasing numbers).
            let newer = current
                .as_ref()
                .and_then(|p| p.metadata.resource_version.as_deref()?.parse::<u64>().ok())
                .is_some_and(|rv| acked.is_none_or(|acked| rv > acked));
            (
                shared.status.api(),
                newer
                    && shared
                        .status
                        .differs_from(current.as_ref().and_then(|p| p.status.as_ref())),
                shared.logs.clone(),
            )
        };
        let mut failed = false;
        // The logs first: once a client sees a container's new state, its logs match it.
        if logs != sent_logs {
            match logs_api
                .patch(
                    &this.name,
                    &PatchParams::apply("kubelet").force(),
                    &Patch::Apply(logs_object(&this, &logs)),
                )
                .await
            {
                Ok(_) => sent_logs = logs,
                Err(e) => {
                    eprintln!("kubelet: publishing the logs of pod {}: {e}", this.name);
                    failed = true;
                }
            }
        }
        if sent_status.as_ref() != Some(&want) || differs {
            match pods
                .patch_status(
                    &this.name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"status": want})),
                )
                .await
            {
                Ok(written) => {
                    sent_status = Some(want);
                    acked = written
                        .metadata
                        .resource_version
                        .as_deref()
                        .and_then(|rv| rv.parse().ok());
                }
                Err(e) => {
                    eprintln!("kubelet: writing the status of pod {}: {e}", this.name);
                    failed = true;
                }
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            r = pod.changed() => if r.is_err() { return },
            _ = resync.tick() => {}
        }
    }
}

fn logs_object(
    this: &PodRef,
    logs: &BTreeMap<String, (PathBuf, Option<PathBuf>)>,
) -> serde_json::Value {
    let entries: Vec<_> = logs
        .iter()
        .map(|(container, (current, previous))| {
            let mut entry = json!({"containers": [container], "logsFile": current});
            if let Some(previous) = previous {
                entry["previousLogsFile"] = json!(previous);
            }
            entry
        })
        .collect();
    json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Logs",
        "metadata": {
            "name": this.name,
            "namespace": this.ns,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": this.name, "uid": this.uid}],
        },
        "spec": {"logs": entries},
    })
}

/// One container's runs, restarts and probes until the pod stops it (`stop` carries the
/// grace period).
async fn run_container(
    this: Arc<PodRef>,
    index: usize,
    container: Container,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let name = container.name.clone();
    let image = container.image.clone().unwrap_or_default();
    let ports = this.ports.clone();
    let grace_default = this
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0) as u64;
    let policy = this
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".to_owned());
    let mut crash = backoff::CrashBackoff::default();
    let mut runs = 0;
    let mut known = Known::default();
    loop {
        if stop.borrow().is_some() {
            return;
        }
        let mut command = match prepare(&this, &container, &ports, &mut known).await {
            Ok(c) => c,
            Err((reason, message)) => {
                if not_started(&this, index, &name, reason, message, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let restart_count = runs;
        let file = logs::run_file(
            &this.config.work_dir,
            &this.ns,
            &this.name,
            &this.uid,
            &name,
            restart_count,
        );
        std::fs::create_dir_all(file.parent().expect("a log dir")).expect("log dir");
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let message = format!("failed to start container {name:?}: {e}");
                if not_started(&this, index, &name, "RunContainerError", message, &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let group = Group(child.id());
        let mut copies = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            copies.spawn(logs::copy_stream(out, "stdout", file.clone()));
        }
        if let Some(err) = child.stderr.take() {
            copies.spawn(logs::copy_stream(err, "stderr", file.clone()));
        }
        let started_at = status::now();
        let started = Instant::now();
        let container_id = format!(
            "containerd://{:016x}{:016x}{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..),
            fastrand::u64(..)
        );
        this.events.emit(
            Type::Normal,
            "Pulled",
            &name,
            format!("Container image \"{image}\" already present on machine"),
        );
        this.events.emit(
            Type::Normal,
            "Created",
            &name,
            format!("Created container: {name}"),
        );
        this.events.emit(
            Type::Normal,
            "Started",
            &name,
            format!("Started container {name}"),
        );
        this.update(|s| {
            let c = &mut s.status.containers[index];
            c.state = State::Running {
                started_at,
                container_id: container_id.clone(),
            };
            c.restart_count = restart_count;
            c.started = true;
            c.ready = false;
            c.ever_started = true;
            let previous = s.logs.get(&name).map(|(current, _)| current.clone());
            s.logs.insert(name.clone(), (file.clone(), previous));
        });
        eprintln!(
            "kubelet: started container {name} of pod {}/{} (pid {}, run {restart_count})",
            this.ns,
            this.name,
            child.id().unwrap_or(0)
        );

        // Probes of this run.
        let mut probes = JoinSet::new();
        let (liveness_failed, mut liveness_rx) = mpsc::channel::<()>(1);
        if let Some(p) = &container.readiness_probe {
            probes.spawn(probe_loop(
                this.clone(),
                index,
                Kind::Readiness,
                p.clone(),
                container.clone(),
                ports.clone(),
                None,
            ));
        } else {
            // No readiness probe: ready as soon as it runs.
            this.container(index, |c| c.ready = true);
        }
        if let Some(p) = &container.liveness_probe {
            probes.spawn(probe_loop(
                this.clone(),
                index,
                Kind::Liveness,
                p.clone(),
                container.clone(),
                ports.clone(),
                Some(liveness_failed),
            ));
        }

        let (exit, stopping) = tokio::select! {
            exit = child.wait() => (exit, false),
            _ = liveness_rx.recv() => {
                this.events.emit(Type::Normal, "Killing", &name, format!("Container {name} failed liveness probe, will be restarted"));
                (terminate(&mut child, Duration::from_secs(grace_default)).await, false)
            }
            grace = wait_stop(&mut stop) => {
                this.events.emit(Type::Normal, "Killing", &name, format!("Stopping container {name}"));
                (terminate(&mut child, grace).await, true)
            }
        };
        probes.abort_all();
        drop(group);
        // The output a process wrote before it ended is in its log before anyone reads it.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while copies.join_next().await.is_some() {}
        })
        .await;
        let ran = started.elapsed();
        let exit_code = match exit {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
            Err(_) => 128 + 9,
        };
        let fallback =
            container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        let message = if fallback && exit_code != 0 {
            logs::termination_tail(&std::fs::read_to_string(&file).unwrap_or_default())
        } else {
            String::new()
        };
        let termination = Termination {
            exit_code,
            message,
            started_at,
            finished_at: status::now(),
            container_id,
        };
        eprintln!(
            "kubelet: container {name} of pod {}/{} exited with {exit_code} after {:.1}s",
            this.ns,
            this.name,
            ran.as_secs_f64()
        );
        this.container(index, |c| {
            c.state = State::Terminated(termination.clone());
            c.ready = false;
            c.started = false;
        });
        runs += 1;
        let restarts = match policy.as_str() {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ => true,
        };
        if stopping || !restarts {
            return;
        }
        if stopped_within(&mut stop, TERMINATED_SHOWN).await.is_some() {
            return;
        }
        let wait = crash.after_exit(ran);
        this.update(|s| {
            let c = &mut s.status.containers[index];
            c.last = Some(termination.clone());
            if !wait.is_zero() {
                c.state = State::Waiting {
                    reason: "CrashLoopBackOff".to_owned(),
                    message: Some(backoff::waiting_message(
                        wait, &name, &this.name, &this.ns, &this.uid,
                    )),
                };
            }
            // While it waits, `logs` and `logs --previous` both show the run that ended.
            s.logs
                .insert(name.clone(), (file.clone(), Some(file.clone())));
        });
        if wait.is_zero() {
            continue;
        }
        let back_off = format!(
            "Back-off restarting failed container {name} in pod {}_{}({})",
            this.name, this.ns, this.uid
        );
        let deadline = Instant::now() + wait;
        loop {
            this.events
                .emit(Type::Warning, "BackOff", &name, back_off.clone());
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            if stopped_within(
                &mut stop,
                backoff::requeue_after(remaining, fastrand::f64()),
            )
            .await
            .is_some()
            {
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    }
}

/// What a container's first run read from the apiserver, kept for its restarts: a kubelet
/// serves a restart's Secret and ConfigMap values from its watch-based caches and the
/// ServiceAccount token from its token manager (refreshed at 80 % of its life, far beyond
/// a test), so restarting a crashed container sends the apiserver nothing, and a saturated
/// apiserver does not delay it. (A Secret changed after the first run is not seen by the
/// restarts here, as it would be through a kubelet's cache.)
#[derive(Default)]
struct Known {
    env: Option<BTreeMap<String, String>>,
    kubeconfig: Option<PathBuf>,
}

/// The command of the container's next run, as the kubelet and the runtime build it:
/// its environment resolved, `command` replacing the image's entrypoint, `$(VAR)`
/// expanded in command and args. `Err` is the waiting reason and message.
async fn prepare(
    this: &PodRef,
    container: &Container,
    ports: &[(i32, u16)],
    known: &mut Known,
) -> Result<Command, (&'static str, String)> {
    let image_name = container.image.clone().unwrap_or_default();
    let env = match &known.env {
        Some(env) => env.clone(),
        None => env::resolve_env(&this.client, &this.ns, &this.pod, container)
            .await
            .map_err(|e| ("CreateContainerConfigError", e))?,
    };
    known.env = Some(env.clone());
    let image = this.config.image(&image_name);
    let expand = |s: &String| env::expand(s, &env);
    let mut argv: Vec<String> = match (&container.command, image) {
        (Some(command), _) if !command.is_empty() => command.iter().map(expand).collect(),
        (_, Some(image)) => vec![image.entrypoint.display().to_string()],
        (_, None) => {
            return Err((
                "ErrImagePull",
                format!("the test world has no host binary for image \"{image_name}\""),
            ));
        }
    };
    argv.extend(container.args.iter().flatten().map(expand));
    let host = image.map_or(Host::Plain, |i| i.host);
    let mut process_env = env.clone();
    match host {
        Host::ExternalDns => {
            let kubeconfig = match &known.kubeconfig {
                Some(path) => path.clone(),
                None => env::write_kubeconfig(
                    &this.client,
                    &this.config.kubeconfig,
                    this.config.apiserver.as_deref(),
                    &this.config.work_dir,
                    &this.pod,
                )
                .await
                .map_err(|e| ("CreateContainerConfigError", e))?,
            };
            known.kubeconfig = Some(kubeconfig.clone());
            let metrics = ports
                .iter()
                .find(|(p, _)| *p == METRICS_PORT)
                .map(|(_, h)| *h)
                .unwrap_or_else(|| env::free_loopback_port().expect("a free port"));
            // The webhook sidecar is on the pod's loopback port's host port.
            for arg in argv.iter_mut() {
                if let Some(port) = webhook_port(arg)
                    && let Some((_, host)) = ports.iter().find(|(p, _)| *p == port)
                {
                    *arg = format!("{WEBHOOK_URL_FLAG}http://127.0.0.1:{host}");
                }
            }
            argv.push(format!("--kubeconfig={}", kubeconfig.display()));
            argv.push(format!("--metrics-address=127.0.0.1:{metrics}"));
        }
        Host::Plain => {
            process_env
                .entry("PATH".to_owned())
                .or_insert_with(|| PATH.to_owned());
        }
    }
    for (container_port, host_port) in ports {
        process_env.insert(
            format!("CATALYST_TESTENV_PORT_{container_port}"),
            host_port.to_string(),
        );
    }
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(process_env)
        .current_dir(&this.config.work_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A container's processes are one group, ended with it (as its PID namespace is).
        .process_group(0)
        .kill_on_drop(true);
    Ok(command)
}

/// external-dns's flag naming its webhook provider.
const WEBHOOK_URL_FLAG: &str = "--webhook-provider-url=";
/// external-dns's metrics and health port.
const METRICS_PORT: i32 = 7979;

/// The localhost port an external-dns argument `--webhook-provider-url=http://localhost:N`
/// reaches its sidecar on.
fn webhook_port(arg: &str) -> Option<i32> {
    let url = arg.strip_prefix(WEBHOOK_URL_FLAG)?;
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    matches!(host, "localhost" | "127.0.0.1")
        .then(|| port.parse().ok())
        .flatten()
}

/// The pod's ports, each on a loopback port of its own for the pod's lifetime: every
/// container port, and the localhost port external-dns reaches its webhook sidecar on.
/// The containers of a pod share its network, so each container learns all of them.
fn pod_ports(containers: &[Container]) -> Vec<(i32, u16)> {
    let declared = containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten().map(|p| p.container_port));
    let webhook = containers
        .iter()
        .flat_map(|c| c.args.iter().flatten())
        .filter_map(|a| webhook_port(a));
    let mut ports: Vec<i32> = declared.chain(webhook).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
        .into_iter()
        .map(|p| (p, env::free_loopback_port().expect("a free port")))
        .collect()
}

/// One probe of one container run: waits `initialDelaySeconds`, then probes every
/// `periodSeconds`; readiness sets the container's `ready`, a liveness failure past its
/// threshold is reported on `liveness_failed` (once: the run ends).
async fn probe_loop(
    this: Arc<PodRef>,
    index: usize,
    kind: Kind,
    spec: k8s_openapi::api::core::v1::Probe,
    container: Container,
    ports: Vec<(i32, u16)>,
    liveness_failed: Option<mpsc::Sender<()>>,
) {
    let timing = Timing::of(&spec);
    let named: Vec<(String, i32)> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.clone()?, p.container_port)))
        .collect();
    let action = probe::Action::of(&spec, &named);
    let mut thresholds = Thresholds::new(kind, &timing);
    tokio::time::sleep(timing.initial_delay).await;
    let mut period = tokio::time::interval(timing.period);
    loop {
        period.tick().await;
        let result = match &action {
            Err(e) => Err(e.clone()),
            Ok(action) => {
                let port = match action {
                    probe::Action::Http { port, .. } | probe::Action::Tcp { port } => *port,
                    probe::Action::Unsupported(_) => 0,
                };
                let host_port = ports
                    .iter()
                    .find(|(p, _)| *p == port)
                    .map(|(_, h)| *h)
                    .unwrap_or(1);
                probe::run(action, host_port, timing.timeout).await
            }
        };
        if let Err(why) = &result {
            this.events.emit(
                Type::Warning,
                "Unhealthy",
                &container.name,
                format!("{} probe failed: {why}", kind.title()),
            );
        }
        if let Some(healthy) = thresholds.observe(result.is_ok()) {
            match kind {
                Kind::Readiness => this.container(index, |c| c.ready = healthy),
                Kind::Liveness if !healthy => {
                    if let Some(tx) = &liveness_failed {
                        let _ = tx.send(()).await;
                    }
                    return;
                }
                Kind::Liveness => {}
            }
        }
    }
}

/// A container's process group: when its first process has ended (or the kubelet goes
/// away), whatever it left running is killed, as the runtime does when a container's
/// PID 1 exits.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) of the process group this kubelet created for the container.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

/// SIGTERM, then SIGKILL once the grace period is over.
async fn terminate(
    child: &mut Child,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(exit) => exit,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

/// Waits until the pod stops its containers; the grace period.
async fn wait_stop(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        if let Some(grace) = *stop.borrow_and_update() {
            return grace;
        }
        if stop.changed().await.is_err() {
            return Duration::ZERO;
        }
    }
}

/// Sleeps `d` unless the pod stops its containers first (then their grace period).
/// A container that could not be started: waiting with `reason`, a `Failed` event, and
/// another try after [`CONFIG_RETRY`], as the kubelet's sync loop does. True when the pod
/// was stopped meanwhile.
async fn not_started(
    this: &PodRef,
    index: usize,
    name: &str,
    reason: &str,
    message: String,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> bool {
    this.container(index, |c| {
        c.state = State::Waiting {
            reason: reason.to_owned(),
            message: Some(message.clone()),
        };
    });
    this.events
        .emit(Type::Warning, "Failed", name, format!("Error: {message}"));
    stopped_within(stop, CONFIG_RETRY).await.is_some()
}

async fn stopped_within(
    stop: &mut watch::Receiver<Option<Duration>>,
    d: Duration,
) -> Option<Duration> {
    tokio::select! {
        grace = wait_stop(stop) => Some(grace),
        _ = tokio::time::sleep(d) => None,
    }
}
