//! The pod status the kubelet reports (kubelet_pods.go `generateAPIPodStatus`,
//! `convertToAPIContainerStatuses`, pkg/kubelet/status): phase, the kubelet's conditions
//! with their reasons and messages, and per container `state`, `lastState`,
//! `restartCount`, `ready` and `started`. Timestamps are whole seconds, as the API stores
//! them, so a status read back compares equal to the one written.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Now, to the second.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).expect("a valid second")
}

/// How one container run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Termination {
    /// The process's exit code, 128 + the signal for one killed by a signal (137, 143).
    pub exit_code: i32,
    pub message: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub container_id: String,
}

impl Termination {
    /// The runtime's reason: `Completed` for exit 0, `Error` otherwise.
    pub fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn api(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            exit_code: self.exit_code,
            // containerd reports a killed process by its exit code (137, 143) alone.
            signal: None,
            reason: Some(self.reason().to_owned()),
            message: Some(self.message.clone()).filter(|m| !m.is_empty()),
            started_at: Some(Time(self.started_at)),
            finished_at: Some(Time(self.finished_at)),
            container_id: Some(self.container_id.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Termination),
}

/// What the kubelet knows of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: State,
    pub last: Option<Termination>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
    /// Whether any run of it has started, for the pod's phase.
    pub ever_started: bool,
}

impl Container {
    pub fn new(name: &str, image: &str) -> Container {
        Container {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: image_id(image),
            state: State::Waiting {
                reason: "ContainerCreating".to_owned(),
                message: None,
            },
            last: None,
            restart_count: 0,
            ready: false,
            started: false,
            ever_started: false,
        }
    }

    fn api(&self) -> ContainerStatus {
        let state = match &self.state {
            State::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            State::Running { started_at, .. } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            State::Terminated(t) => ContainerState {
                terminated: Some(t.api()),
                ..Default::default()
            },
        };
        let container_id = match &self.state {
            State::Running { container_id, .. } => Some(container_id.clone()),
            State::Terminated(t) => Some(t.container_id.clone()),
            State::Waiting { .. } => None,
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id,
            state: Some(state),
            last_state: Some(ContainerState {
                terminated: self.last.as_ref().map(Termination::api),
                ..Default::default()
            }),
            ready: self.ready,
            started: Some(self.started),
            restart_count: self.restart_count,
            ..Default::default()
        }
    }
}

/// The image digest a runtime reports; the world's images are host binaries, so a stable
/// stand-in derived from the name.
fn image_id(image: &str) -> String {
    let repository = image.split([':', '@']).next().unwrap_or(image);
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in image.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{repository}@sha256:{hash:016x}{hash:016x}{hash:016x}{hash:016x}")
}

/// What the kubelet knows of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub host_ip: String,
    pub pod_ip: String,
    pub start_time: Timestamp,
    pub containers: Vec<Container>,
    /// When the pod's sandbox was ready and its (absent) init containers done.
    pub initialized_at: Timestamp,
    /// Whether every container was ready at the last change, and when that changed.
    pub ready: (bool, Timestamp),
    pub restart_always: bool,
    /// Set once the pod is being deleted and its containers have stopped.
    pub terminal: bool,
}

impl Pod {
    pub fn new(
        host_ip: &str,
        pod_ip: &str,
        containers: Vec<Container>,
        restart_always: bool,
    ) -> Pod {
        let now = now();
        Pod {
            host_ip: host_ip.to_owned(),
            pod_ip: pod_ip.to_owned(),
            start_time: now,
            containers,
            initialized_at: now,
            ready: (false, now),
            restart_always,
            terminal: false,
        }
    }

    /// Records a change of a container's readiness in the pod's Ready conditions.
    pub fn refresh_readiness(&mut self) {
        let all = self.containers.iter().all(|c| c.ready);
        if all != self.ready.0 {
            self.ready = (all, now());
        }
    }

    /// The kubelet's `getPhase`.
    pub fn phase(&self) -> &'static str {
        let running = self
            .containers
            .iter()
            .any(|c| matches!(c.state, State::Running { .. }));
        let restarting = self.restart_always
            && self
                .containers
                .iter()
                .any(|c| c.ever_started && !self.terminal);
        if self.terminal {
            let all_ok = self.containers.iter().all(|c| match &c.state {
                State::Terminated(t) => t.exit_code == 0,
                _ => false,
            });
            return if all_ok { "Succeeded" } else { "Failed" };
        }
        if running || restarting {
            "Running"
        } else {
            "Pending"
        }
    }

    /// The status the kubelet writes (the fields it owns; PodScheduled and qosClass stay
    /// as the scheduler and the apiserver set them).
    pub fn api(&self) -> PodStatus {
        let unready: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let (ready, since) = self.ready;
        let ready_condition = |type_: &str| PodCondition {
            type_: type_.to_owned(),
            status: if ready { "True" } else { "False" }.to_owned(),
            reason: (!ready).then(|| "ContainersNotReady".to_owned()),
            message: (!ready)
                .then(|| format!("containers with unready status: [{}]", unready.join(" "))),
            last_transition_time: Some(Time(since)),
            ..Default::default()
        };
        let plain = |type_: &str, status: bool| PodCondition {
            type_: type_.to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            last_transition_time: Some(Time(self.initialized_at)),
            ..Default::default()
        };
        PodStatus {
            phase: Some(self.phase().to_owned()),
            conditions: Some(vec![
                plain("PodReadyToStartContainers", !self.terminal),
                plain("Initialized", true),
                ready_condition("Ready"),
                ready_condition("ContainersReady"),
            ]),
            container_statuses: Some(self.containers.iter().map(Container::api).collect()),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: Some(self.pod_ip.clone()),
            pod_ips: Some(vec![PodIP {
                ip: self.pod_ip.clone(),
            }]),
            start_time: Some(Time(self.start_time)),
            ..Default::default()
        }
    }

    /// Whether `current` (the status in the apiserver) differs from what the kubelet
    /// would write, in the fields it owns: someone else (the node lifecycle controller
    /// marking pods not ready when the node's heartbeat lags) changed them.
    pub fn differs_from(&self, current: Option<&PodStatus>) -> bool {
        let Some(current) = current else { return true };
        let want = self.api();
        let owned = |s: &PodStatus| {
            let mut conditions: Vec<(String, String)> = s
                .conditions
                .iter()
                .flatten()
                .filter(|c| c.type_ != "PodScheduled")
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect();
            conditions.sort();
            (
                s.phase.clone(),
                conditions,
                s.container_statuses.clone(),
                s.pod_ip.clone(),
            )
        };
        owned(current) != owned(&want)
    }
}
