//! What a wait is asked for and what it answers: its options, its progress events, its
//! report, and its errors with their exit codes.

use std::fmt::Debug;
use std::time::Duration;

use thiserror::Error;

use super::diagnose::Diagnosis;
use super::pressure::Pressure;
use crate::exit::Exit;
use crate::report::Sink;
use crate::retry::RetryPolicy;

/// Budgets and reporting of [`wait_until_healthy`].
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// How long workloads may take to turn healthy, counting only time the apiserver
    /// answered.
    pub timeout: Duration,
    /// How long the apiserver may stay unreachable in one stretch.
    pub unreachable_budget: Duration,
    /// How long a pod symptom (image pull error, crash loop with few restarts, ...) may
    /// last before it fails the wait.
    pub grace: Duration,
    /// Watch reconnection and reachability-probe delays: first and largest.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How long the apiserver may give no answer before the wait declares an outage
    /// ([`super::streams::SILENCE`]).
    pub silence: Duration,
    pub events: Sink<HealthEvent>,
    /// Whether the wait may replace a pod of the kit's release that waits out a long
    /// kubelet back-off after the apiserver calmed down (`up` and `repair`; never `wait`).
    pub cut_backoff: bool,
    /// How the apiserver has answered this run (the client's own timings and the wait's
    /// `/readyz` reads): the run's [`RetryPolicy::pressure`].
    pub pressure: Pressure,
}

impl Default for WaitOptions {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        WaitOptions {
            timeout: Duration::from_secs(5 * 60),
            unreachable_budget: policy.unreachable_budget,
            grace: Duration::from_secs(60),
            reconnect_min: policy.min_delay,
            reconnect_max: policy.max_delay,
            silence: super::streams::SILENCE,
            events: Sink::default(),
            cut_backoff: false,
            pressure: policy.pressure().clone(),
        }
    }
}

impl WaitOptions {
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_backoff_cut(mut self, cut: bool) -> Self {
        self.cut_backoff = cut;
        self
    }

    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Takes the outage budget and delays from the policy every other apiserver call uses.
    pub fn with_retry_policy(mut self, policy: &RetryPolicy) -> Self {
        self.unreachable_budget = policy.unreachable_budget;
        self.reconnect_min = policy.min_delay;
        self.reconnect_max = policy.max_delay;
        self.pressure = policy.pressure().clone();
        self
    }

    /// Where the wait's events go: a state change of a target, a wait for the apiserver.
    pub fn on_event(mut self, sink: Sink<HealthEvent>) -> Self {
        self.events = sink;
        self
    }
}

/// A change worth a progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// "Kind namespace/name", or "apiserver".
    pub resource: String,
    pub state: EventState,
    pub message: String,
    /// Since the wait started, wall clock.
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventState {
    Progressing,
    Ready,
    Failed,
    ApiserverUnreachable,
    ApiserverReachable,
    /// A failure time heals (a start-up crash loop on a saturated apiserver) is waited
    /// through.
    RidingOut,
    /// A pod waiting out a long kubelet back-off was replaced once the apiserver calmed.
    BackoffCut,
    /// A HelmRelease helm-controller gave up on during saturation had its failure counters
    /// reset once the apiserver calmed.
    ResetFailures,
}

/// A successful wait.
#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    /// Time the apiserver was unreachable, which did not count against the timeout.
    pub unreachable: Duration,
    /// Each target and when (since the start) it last turned ready.
    pub ready: Vec<(String, Duration)>,
    /// What was ridden out on the way, the last word on each (e.g. "external-dns restarted
    /// 4 times on its start-up cache sync; the apiserver answers in 2.3 s (saturated)").
    pub ridden_out: Vec<String>,
}

/// A target still not ready when the wait gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub resource: String,
    pub reason: String,
}

#[derive(Debug, Error)]
pub enum HealthError {
    /// Exit 4 ([`Exit::WorkloadFailed`]).
    #[error("{diagnosis}")]
    WorkloadFailed { diagnosis: Box<Diagnosis> },
    /// Exit 5 ([`Exit::TimedOut`]).
    #[error(
        "timed out after {}s waiting for {}",
        waited.as_secs(),
        pending.iter().map(|p| format!("{} ({})", p.resource, p.reason)).collect::<Vec<_>>().join(", ")
    )]
    TimedOut {
        /// Time the apiserver answered; outages are not counted.
        waited: Duration,
        pending: Vec<Pending>,
        /// What the pending targets' events, pods and logs say.
        diagnoses: Vec<Diagnosis>,
    },
    /// Exit 6 ([`Exit::ApiserverUnreachable`]).
    #[error(
        "the apiserver has been unreachable for {}s, over the {}s budget; last error: {last_error}",
        unreachable_for.as_secs(),
        budget.as_secs()
    )]
    ApiserverUnreachable {
        unreachable_for: Duration,
        budget: Duration,
        last_error: String,
    },
    /// Exit 8 ([`Exit::PermissionDenied`]): 401 or 403 while watching.
    #[error("permission denied: cannot watch {what}: {message}")]
    Forbidden { what: String, message: String },
    /// Exit 1 ([`Exit::Internal`]): a permanent apiserver error other than a permission
    /// problem, e.g. the HelmRelease kind is not served because Flux's CRDs are missing.
    #[error("cannot watch {what}: {message}")]
    Api { what: String, message: String },
    /// Exit 5 ([`Exit::TimedOut`]), as for a missing object: the kind is not served, so
    /// nothing of it exists yet; its CRD comes with a component not installed (yet).
    #[error(
        "cannot watch {what}: the apiserver does not serve this kind: {crd}; expected the \
         CRD to be installed (apply the kit after it)"
    )]
    NotServed { what: String, crd: String },
    /// Exit 9 ([`Exit::TlsUntrusted`]): the apiserver's certificate was refused.
    #[error(
        "cannot watch {what}: TLS verification failed: the apiserver's certificate is not \
         trusted ({cause}); check the certificate-authority of the kubeconfig's cluster, or \
         pass --insecure-skip-tls-verify to skip verification (unsafe)"
    )]
    Tls { what: String, cause: String },
}

impl HealthError {
    pub fn exit(&self) -> Exit {
        match self {
            HealthError::WorkloadFailed { .. } => Exit::WorkloadFailed,
            HealthError::TimedOut { .. } => Exit::TimedOut,
            HealthError::ApiserverUnreachable { .. } => Exit::ApiserverUnreachable,
            HealthError::Forbidden { .. } => Exit::PermissionDenied,
            HealthError::Api { .. } => Exit::Internal,
            HealthError::NotServed { .. } => Exit::TimedOut,
            HealthError::Tls { .. } => Exit::TlsUntrusted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_documented_exit_codes() {
        let diagnosis = Diagnosis::default();
        let cases = [
            (
                HealthError::WorkloadFailed {
                    diagnosis: Box::new(diagnosis),
                },
                4,
            ),
            (
                HealthError::TimedOut {
                    waited: Duration::ZERO,
                    pending: vec![],
                    diagnoses: vec![],
                },
                5,
            ),
            (
                HealthError::ApiserverUnreachable {
                    unreachable_for: Duration::ZERO,
                    budget: Duration::ZERO,
                    last_error: String::new(),
                },
                6,
            ),
            (
                HealthError::Forbidden {
                    what: String::new(),
                    message: String::new(),
                },
                8,
            ),
            (
                HealthError::Api {
                    what: String::new(),
                    message: String::new(),
                },
                1,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit().code(), code, "{e:?}");
        }
    }

    #[test]
    fn timed_out_lists_what_is_pending() {
        let e = HealthError::TimedOut {
            waited: Duration::from_secs(300),
            pending: vec![Pending {
                resource: "HelmRelease flux-system/external-dns".into(),
                reason: "no status yet: is Flux helm-controller running?".into(),
            }],
            diagnoses: vec![],
        };
        assert_eq!(
            e.to_string(),
            "timed out after 300s waiting for HelmRelease flux-system/external-dns (no status \
             yet: is Flux helm-controller running?)"
        );
    }

    #[test]
    fn event_states_serialize_as_the_readme_names_them() {
        // The states README.md's output table names.
        for (state, name) in [
            (EventState::ApiserverUnreachable, "apiserver-unreachable"),
            (EventState::RidingOut, "riding-out"),
            (EventState::BackoffCut, "backoff-cut"),
            (EventState::ResetFailures, "reset-failures"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), name);
        }
    }
}
