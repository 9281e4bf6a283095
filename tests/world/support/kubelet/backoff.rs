//! The kubelet's container restart back-off (pkg/kubelet: `initialCrashLoopBackOff`,
//! `MaxContainerBackOff`, kuberuntime's `doBackOff`): the first restart after a crash is
//! immediate, then the wait starts at 10 s and doubles up to 300 s; a container that ran for
//! more than 10 minutes before it exited starts the schedule again.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A run longer than this resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);
/// The pod worker rechecks a back-off at most this long after the last check...
pub const MAX_REQUEUE: Duration = Duration::from_secs(60);

/// One container's back-off entry. `None` until its first crash, as the kubelet keeps no
/// entry for a container that never exited.
#[derive(Debug, Default, Clone)]
pub struct CrashBackoff {
    next: Option<Duration>,
}

impl CrashBackoff {
    /// The wait before restarting a container that just exited after running for `ran`.
    pub fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran > RESET_AFTER {
            self.next = None;
        }
        match self.next {
            None => {
                self.next = Some(INITIAL);
                Duration::ZERO
            }
            Some(wait) => {
                self.next = Some((wait * 2).min(MAX));
                wait
            }
        }
    }
}

/// The kubelet requeues a pod in back-off after the remaining time (at most a minute),
/// stretched by a random factor between 1.0 and 1.5 (pod_workers.go's jitter).
pub fn requeue_after(remaining: Duration, jitter: f64) -> Duration {
    remaining
        .min(MAX_REQUEUE)
        .mul_f64(1.0 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A duration as Go prints a `time.Duration` of whole seconds: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// The waiting message of a container in CrashLoopBackOff.
pub fn waiting_message(wait: Duration, container: &str, pod: &str, ns: &str, uid: &str) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}_{ns}({uid})",
        go_duration(wait)
    )
}
