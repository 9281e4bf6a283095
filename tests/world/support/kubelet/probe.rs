//! Probes as the kubelet's prober runs them (pkg/kubelet/prober): nothing until
//! `initialDelaySeconds` after the container started, then one probe every
//! `periodSeconds` with `timeoutSeconds` to answer; the result flips only after
//! `failureThreshold` (or `successThreshold`) equal results in a row. Readiness starts as
//! a failure, liveness as a success. An HTTP probe succeeds on 200 <= status < 400.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Liveness,
    Readiness,
}

impl Kind {
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// A probe's timing and thresholds, with the API's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.map_or(default, |v| v.max(0) as u64))
        };
        let count = |v: Option<i32>, default: u32| v.map_or(default, |v| v.max(1) as u32);
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// What a probe checks, with its port resolved to the container port it names.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Http {
        path: String,
        port: i32,
        scheme: String,
    },
    Tcp {
        port: i32,
    },
    /// Exec and gRPC probes: not emulated (the world's containers use none).
    Unsupported(&'static str),
}

impl Action {
    pub fn of(probe: &Probe, named_ports: &[(String, i32)]) -> Result<Action, String> {
        let port = |p: &IntOrString| match p {
            IntOrString::Int(n) => Ok(*n),
            IntOrString::String(name) => named_ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .ok_or_else(|| format!("port {name:?} is not a named port of the container")),
        };
        if let Some(http) = &probe.http_get {
            return Ok(Action::Http {
                path: http.path.clone().unwrap_or_else(|| "/".to_owned()),
                port: port(&http.port)?,
                scheme: http.scheme.clone().unwrap_or_else(|| "HTTP".to_owned()),
            });
        }
        if let Some(tcp) = &probe.tcp_socket {
            return Ok(Action::Tcp {
                port: port(&tcp.port)?,
            });
        }
        if probe.exec.is_some() {
            return Ok(Action::Unsupported("exec"));
        }
        Ok(Action::Unsupported("grpc"))
    }
}

/// The thresholds of one probe over one container run.
#[derive(Debug, Clone)]
pub struct Thresholds {
    success_needed: u32,
    failure_needed: u32,
    /// The current result: readiness starts failed, liveness succeeded.
    pub healthy: bool,
    streak: u32,
    streak_of_success: bool,
}

impl Thresholds {
    pub fn new(kind: Kind, timing: &Timing) -> Thresholds {
        let healthy = kind == Kind::Liveness;
        Thresholds {
            success_needed: timing.success_threshold,
            failure_needed: timing.failure_threshold,
            healthy,
            streak: 0,
            streak_of_success: healthy,
        }
    }

    /// Records one probe result; returns the new result when it flipped.
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if success == self.streak_of_success {
            self.streak += 1;
        } else {
            self.streak_of_success = success;
            self.streak = 1;
        }
        let needed = if success {
            self.success_needed
        } else {
            self.failure_needed
        };
        if success != self.healthy && self.streak >= needed {
            self.healthy = success;
            return Some(success);
        }
        None
    }
}

/// Runs one probe against `host_port` (where the container port is on the host); `Err`
/// carries the failure as the kubelet words it in the `Unhealthy` event.
pub async fn run(action: &Action, host_port: u16, timeout: Duration) -> Result<(), String> {
    let addr = format!("127.0.0.1:{host_port}");
    match action {
        Action::Http { path, scheme, .. } => {
            let url = format!("{}://{addr}{path}", scheme.to_lowercase());
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .danger_accept_invalid_certs(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?;
            match client
                .get(&url)
                .header("User-Agent", "kube-probe/1.35")
                .send()
                .await
            {
                Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
                Ok(r) => Err(format!(
                    "HTTP probe failed with statuscode: {}",
                    r.status().as_u16()
                )),
                Err(e) if e.is_timeout() => Err(format!(
                    "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )),
                Err(e) if e.is_connect() => Err(format!(
                    "Get \"{url}\": dial tcp {addr}: connect: connection refused"
                )),
                Err(e) => Err(format!("Get \"{url}\": {e}")),
            }
        }
        Action::Tcp { .. } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {e}")),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            }
        }
        Action::Unsupported(what) => Err(format!(
            "{what} probes are not emulated by the test world's kubelet"
        )),
    }
}
