//! Pure judgments of one object's health from its status, as the controllers that own it
//! report it. No I/O: the wait engine feeds these from its watch caches.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::DynamicObject;
use serde_json::Value;

/// Where one object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Not ready yet, and nothing says it will not get there.
    Progressing {
        reason: String,
    },
    /// It will not get ready without a change: waiting longer is pointless.
    Failed {
        reason: String,
        message: String,
    },
}

impl Health {
    pub fn progressing(reason: impl Into<String>) -> Health {
        Health::Progressing {
            reason: reason.into(),
        }
    }

    pub fn failed(reason: impl Into<String>, message: impl Into<String>) -> Health {
        Health::Failed {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Health::Ready)
    }

    /// One line for a progress display.
    pub fn describe(&self) -> String {
        match self {
            Health::Ready => "ready".to_owned(),
            Health::Progressing { reason } => reason.clone(),
            Health::Failed { reason, message } => format!("{reason}: {message}"),
        }
    }
}

/// What a HelmRelease without conditions means in practice: nobody reconciles it.
pub const HELM_RELEASE_NO_STATUS: &str = "no status yet: is Flux helm-controller running?";

/// The hint for a release whose remediation retries are used up: Flux will not try again
/// until the failure counters are reset.
pub const RETRIES_EXHAUSTED_HINT: &str =
    "retries exhausted: reset with `catalyst-bootstrap repair`";

/// A condition in the metav1.Condition shape Flux uses.
struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
    observed_generation: Option<i64>,
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<Condition<'a>> {
    let c = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some(Condition {
        status: c["status"].as_str().unwrap_or("Unknown"),
        reason: c["reason"].as_str().unwrap_or(""),
        message: c["message"].as_str().unwrap_or(""),
        observed_generation: c["observedGeneration"].as_i64(),
    })
}

/// Judges a helm.toolkit.fluxcd.io/v2 HelmRelease (helm-controller v1.x semantics).
///
/// Ready needs Ready=True for the current generation: a Ready=True left over from an
/// earlier spec says nothing about this one, and an empty status is not success.
/// Stalled=True is helm-controller's own verdict that it gave up (RetriesExceeded,
/// MissingRollbackTarget, AccessDenied, InvalidCELExpression).
/// Flux's reconcile request annotation; Flux echoes the value in
/// `status.lastHandledReconcileAt` once it has acted on it.
pub const RECONCILE_REQUEST_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

pub fn judge_helm_release(hr: &DynamicObject) -> Health {
    let spec = &hr.data["spec"];
    let status = &hr.data["status"];
    if spec["suspend"].as_bool() == Some(true) {
        return Health::failed(
            "Suspended",
            "the HelmRelease is suspended, so Flux will not reconcile it: resume it with \
             `flux resume helmrelease`",
        );
    }
    let has_conditions = status["conditions"]
        .as_array()
        .is_some_and(|c| !c.is_empty());
    if !has_conditions {
        return Health::progressing(HELM_RELEASE_NO_STATUS);
    }
    // A reconcile request (`repair`, `flux reconcile`) makes the status stale until Flux
    // reports it handled: judging the old status would fail a release Flux is retrying.
    if let Some(requested) = hr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION))
        && status["lastHandledReconcileAt"].as_str() != Some(requested.as_str())
    {
        return Health::progressing(format!(
            "Flux has not handled the reconcile request of {requested} yet"
        ));
    }
    // Custom resources always carry a generation; 0 only when a test omits it.
    let generation = hr.metadata.generation.unwrap_or(0);
    let status_observed = status["observedGeneration"].as_i64();
    let observed = |c: &Condition| c.observed_generation.or(status_observed).unwrap_or(-1);

    let ready = condition(status, "Ready");
    if let Some(stalled) = condition(status, "Stalled")
        && stalled.status == "True"
        && observed(&stalled) >= generation
    {
        let mut message = stalled.message.to_owned();
        // The Stalled message only counts attempts; Ready carries the error itself.
        if let Some(r) = &ready
            && r.status == "False"
            && !r.message.is_empty()
        {
            message = join(&message, r.message);
        }
        if stalled.reason == "RetriesExceeded" {
            message = join(&message, RETRIES_EXHAUSTED_HINT);
        }
        return Health::failed(or(stalled.reason, "Stalled"), message);
    }
    let Some(ready) = ready else {
        return Health::progressing("Flux has not reported readiness yet (no Ready condition)");
    };
    let seen = observed(&ready);
    if seen < generation {
        return Health::progressing(format!(
            "Flux has not seen generation {generation} yet (last observed: {seen})"
        ));
    }
    match ready.status {
        "True" => Health::Ready,
        "False" if ready.reason == "RetriesExceeded" || retries_exhausted(spec, status) => {
            Health::failed(
                or(ready.reason, "Failed"),
                join(ready.message, RETRIES_EXHAUSTED_HINT),
            )
        }
        "False" => Health::progressing(format!(
            "{}: {} (Flux will retry)",
            or(ready.reason, "NotReady"),
            ready.message
        )),
        _ => {
            let reconciling = condition(status, "Reconciling").filter(|c| c.status == "True");
            let message = reconciling.map_or(ready.message, |c| c.message);
            Health::progressing(format!(
                "reconciling: {}",
                or(message, "Flux is working on it")
            ))
        }
    }
}

/// Judges a HelmRelease together with the HelmChart helm-controller made for it
/// (`status.helmChart`), when that chart is known.
///
/// A chart source-controller has given up on (Stalled: no such chart version, a chart
/// reference that cannot resolve) leaves the release at Ready=False `SourceNotReady` for
/// good: helm-controller keeps waiting for the chart and never fails the release itself.
/// The chart's verdict counts only once helm-controller has seen the release's current
/// generation (it updates the chart before it checks it) and handled any reconcile
/// request, and only for the chart's own current generation.
pub fn judge_helm_release_with_chart(hr: &DynamicObject, chart: Option<&DynamicObject>) -> Health {
    let health = judge_helm_release(hr);
    let Some(chart) = chart else { return health };
    if !matches!(health, Health::Progressing { .. }) || !waits_on_chart(hr) {
        return health;
    }
    let chart_status = &chart.data["status"];
    let chart_generation = chart.metadata.generation.unwrap_or(0);
    match condition(chart_status, "Stalled") {
        Some(stalled)
            if stalled.status == "True"
                && stalled
                    .observed_generation
                    .or(chart_status["observedGeneration"].as_i64())
                    .is_some_and(|g| g >= chart_generation) =>
        {
            Health::failed(
                or(stalled.reason, "Stalled"),
                format!(
                    "source-controller gave up on HelmChart {}/{}: {}",
                    chart.metadata.namespace.as_deref().unwrap_or_default(),
                    chart.metadata.name.as_deref().unwrap_or_default(),
                    stalled.message
                ),
            )
        }
        _ => health,
    }
}

/// Whether helm-controller, having seen the release's current generation and handled any
/// reconcile request, holds it at Ready=False `SourceNotReady`: then the verdict of the
/// chart it waits on (`status.helmChart`) is the release's.
pub fn waits_on_chart(hr: &DynamicObject) -> bool {
    let status = &hr.data["status"];
    let generation = hr.metadata.generation.unwrap_or(0);
    let waits = condition(status, "Ready").is_some_and(|r| {
        r.status == "False"
            && r.reason == SOURCE_NOT_READY
            && r.observed_generation
                .or(status["observedGeneration"].as_i64())
                .is_some_and(|g| g >= generation)
    });
    let pending_request = hr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION))
        .is_some_and(|r| status["lastHandledReconcileAt"].as_str() != Some(r.as_str()));
    waits && !pending_request
}

/// helm-controller's Ready reason while the release's chart source is not ready.
const SOURCE_NOT_READY: &str = "SourceNotReady";

/// helm-controller's own rule (api/v2 `RetriesExhausted`): the remediation of the last
/// attempted action (install or upgrade) allows `retries` retries, a negative number
/// meaning unlimited, and is exhausted once the failures exceed them. The RetryOnFailure
/// strategy retries forever instead of remediating.
fn retries_exhausted(spec: &Value, status: &Value) -> bool {
    let (action, failures) = match status["lastAttemptedReleaseAction"].as_str() {
        Some("install") => (&spec["install"], &status["installFailures"]),
        Some("upgrade") => (&spec["upgrade"], &status["upgradeFailures"]),
        _ => return false,
    };
    if action["strategy"]["name"] == "RetryOnFailure" {
        return false;
    }
    let retries = action["remediation"]["retries"].as_i64().unwrap_or(0);
    retries >= 0 && failures.as_i64().unwrap_or(0) > retries
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}: {b}"),
    }
}

/// Judges a Deployment the way `kubectl rollout status` does: the controller has seen the
/// current spec, every replica is updated and available, and no old replica is left.
pub fn judge_deployment(d: &Deployment) -> Health {
    let Some(status) = &d.status else {
        return Health::progressing("no status yet: is kube-controller-manager running?");
    };
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Health::progressing(format!(
            "the Deployment controller has not seen generation {generation} yet"
        ));
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if let Some(c) = progressing
        && c.status == "False"
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Health::failed(
            "ProgressDeadlineExceeded",
            c.message.clone().unwrap_or_default(),
        );
    }
    let spec = d.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    let pending = if updated < want {
        format!("{updated} of {want} replicas updated")
    } else if total > updated {
        format!("{} old replicas pending termination", total - updated)
    } else if available < want {
        format!("{available} of {want} replicas available")
    } else {
        return Health::Ready;
    };
    if paused {
        Health::progressing(format!("{pending}; the Deployment is paused (spec.paused)"))
    } else {
        Health::progressing(pending)
    }
}

/// Waiting reasons that do not clear up by themselves.
pub const FAILING_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
    "CreateContainerError",
];

/// A crash loop with this many restarts has already failed repeatedly: no grace.
pub const CRASH_LOOP_RESTARTS: i32 = 3;

/// Something wrong with a pod that fails the wait once it persists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symptom {
    /// None for pod-level symptoms (Unschedulable).
    pub container: Option<String>,
    pub reason: String,
    pub message: String,
    pub restarts: i32,
    /// How the previous run of the container ended, e.g. "exit code 1 (Error)".
    pub last_termination: Option<String>,
    /// The message the previous run left (its termination log), when any.
    pub last_message: Option<String>,
}

impl Symptom {
    /// Fails at once, without waiting out the grace period.
    pub fn is_immediate(&self) -> bool {
        self.reason == "CrashLoopBackOff" && self.restarts >= CRASH_LOOP_RESTARTS
    }

    fn describe(&self, pod: &str) -> String {
        let mut s = match &self.container {
            Some(c) => format!("pod {pod}: container {c} is in {}", self.reason),
            None => format!("pod {pod} is {}", self.reason),
        };
        if self.restarts > 0 {
            s.push_str(&format!(" after {} restarts", self.restarts));
        }
        if let Some(t) = &self.last_termination {
            s.push_str(&format!(" (last run: {t})"));
        }
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

fn container_symptom(cs: &ContainerStatus) -> Option<Symptom> {
    let waiting = cs.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if !FAILING_WAITING_REASONS.contains(&reason) {
        return None;
    }
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    Some(Symptom {
        container: Some(cs.name.clone()),
        reason: reason.to_owned(),
        message: waiting.message.clone().unwrap_or_default(),
        restarts: cs.restart_count,
        last_termination: last.map(|t| match &t.reason {
            Some(r) => format!("exit code {} ({r})", t.exit_code),
            None => format!("exit code {}", t.exit_code),
        }),
        last_message: last
            .and_then(|t| t.message.clone())
            .filter(|m| !m.is_empty()),
    })
}

/// The most serious symptom of a pod, if any: an immediate one before one that needs
/// the grace period, init containers before app containers.
pub fn pod_symptom(pod: &Pod) -> Option<Symptom> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let mut symptoms: Vec<Symptom> = containers.filter_map(container_symptom).collect();
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(c) = unschedulable {
        symptoms.push(Symptom {
            container: None,
            reason: "Unschedulable".to_owned(),
            message: c.message.clone().unwrap_or_default(),
            restarts: 0,
            last_termination: None,
            last_message: None,
        });
    }
    // Stable: among equals the first (init containers first) wins.
    symptoms.sort_by_key(|s| !s.is_immediate());
    symptoms.into_iter().next()
}

pub fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn is_terminal(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Judges one pod. `persisted` is how long its current symptom has been observed; a
/// symptom fails the pod once it outlasts `grace` (an image pull can recover when the
/// registry comes back), except a crash loop that has already restarted several times.
pub fn judge_pod(pod: &Pod, persisted: Duration, grace: Duration) -> Health {
    let name = pod_name(pod);
    if pod.metadata.deletion_timestamp.is_some() {
        return Health::progressing(format!("pod {name} is terminating"));
    }
    if let Some(s) = pod_symptom(pod) {
        if s.is_immediate() || persisted >= grace {
            return Health::failed(s.reason.clone(), s.describe(&name));
        }
        return Health::progressing(format!(
            "{} (fails the wait if it lasts {}s)",
            s.describe(&name),
            grace.as_secs()
        ));
    }
    let status = pod.status.as_ref();
    if is_terminal(pod) {
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        return Health::progressing(format!("pod {name} has ended (phase {phase})"));
    }
    let conditions = status.and_then(|s| s.conditions.as_ref());
    let cond = |t: &str| conditions.into_iter().flatten().find(|c| c.type_ == t);
    if cond("Ready").is_some_and(|c| c.status == "True") {
        return Health::Ready;
    }
    if cond("PodScheduled").is_none_or(|c| c.status != "True") {
        return Health::progressing(format!("pod {name} is not scheduled yet"));
    }
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|cs| {
            let reason = cs.state.as_ref()?.waiting.as_ref()?.reason.as_deref()?;
            Some(format!("container {} is {reason}", cs.name))
        });
    match waiting {
        Some(w) => Health::progressing(format!("pod {name}: {w}")),
        None => Health::progressing(format!("pod {name} is not ready yet")),
    }
}

/// The health of a set of pods, and which pod decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodsHealth {
    pub health: Health,
    /// Index (into the slice given) of the failed or first unready pod.
    pub culprit: Option<usize>,
    /// What the first unready pod is waiting for, e.g. a symptom still in its grace
    /// period: worth showing while the object itself is progressing.
    pub note: Option<String>,
}

/// Judges the pods of one workload. Pods that ended or are being deleted are skipped:
/// their controller replaces them. With `require_ready` the set is Ready only when it has
/// pods and all of them are; without, it is Ready unless a pod failed.
pub fn judge_pods(pods: &[(&Pod, Duration)], grace: Duration, require_ready: bool) -> PodsHealth {
    let mut live: Vec<usize> = (0..pods.len())
        .filter(|&i| !is_terminal(pods[i].0) && pods[i].0.metadata.deletion_timestamp.is_none())
        .collect();
    live.sort_by_key(|&i| pods[i].0.metadata.name.clone());
    let judged: Vec<(usize, Health)> = live
        .iter()
        .map(|&i| (i, judge_pod(pods[i].0, pods[i].1, grace)))
        .collect();
    if let Some((i, h)) = judged
        .iter()
        .find(|(_, h)| matches!(h, Health::Failed { .. }))
    {
        return PodsHealth {
            health: h.clone(),
            culprit: Some(*i),
            note: None,
        };
    }
    let ready = judged.iter().filter(|(_, h)| h.is_ready()).count();
    let unready = judged.iter().find(|(_, h)| !h.is_ready());
    let health = match unready {
        _ if !require_ready => Health::Ready,
        None if judged.is_empty() => Health::progressing("no pods yet"),
        None => Health::Ready,
        Some((_, h)) => Health::progressing(format!(
            "{ready} of {} pods ready; {}",
            judged.len(),
            h.describe()
        )),
    };
    PodsHealth {
        health,
        culprit: unready.map(|(i, _)| *i),
        note: unready.map(|(_, h)| h.describe()),
    }
}

/// An object's own health combined with its pods'. A failed pod is the more specific
/// verdict, so it wins over the object's; while the object progresses, what its pods
/// wait for is added.
pub fn combine(object: Health, pods: &PodsHealth) -> Health {
    match (object, &pods.health) {
        (_, failed @ Health::Failed { .. }) => failed.clone(),
        (object @ Health::Failed { .. }, _) => object,
        (Health::Progressing { reason }, pod_health) => {
            let detail = match pod_health {
                Health::Progressing { reason } => Some(reason),
                _ => pods.note.as_ref(),
            };
            match detail {
                Some(d) if !reason.contains(d.as_str()) => {
                    Health::progressing(format!("{reason}; {d}"))
                }
                _ => Health::Progressing { reason },
            }
        }
        (Health::Ready, pod_health) => pod_health.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hr(generation: i64, spec: Value, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "external-dns", "namespace": "flux-system", "generation": generation},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str, gen_: i64) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "observedGeneration": gen_, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    fn progressing_reason(h: &Health) -> &str {
        match h {
            Health::Progressing { reason } => reason,
            other => panic!("expected Progressing, got {other:?}"),
        }
    }

    fn failed(h: &Health) -> (&str, &str) {
        match h {
            Health::Failed { reason, message } => (reason, message),
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn helm_release_without_status_or_conditions_is_not_ready() {
        for status in [
            json!(null),
            json!({}),
            json!({"observedGeneration": -1}),
            json!({"conditions": []}),
        ] {
            let h = judge_helm_release(&hr(1, json!({}), status.clone()));
            assert_eq!(
                progressing_reason(&h),
                HELM_RELEASE_NO_STATUS,
                "status {status}"
            );
        }
    }

    #[test]
    fn helm_release_ready_for_the_current_generation_is_ready() {
        let status = json!({"conditions": [cond("Ready", "True", "InstallSucceeded", "ok", 2)]});
        assert_eq!(judge_helm_release(&hr(2, json!({}), status)), Health::Ready);
    }

    #[test]
    fn helm_release_falls_back_to_status_observed_generation() {
        let mut c = cond("Ready", "True", "UpgradeSucceeded", "ok", 0);
        c.as_object_mut().unwrap().remove("observedGeneration");
        let ready = json!({"observedGeneration": 3, "conditions": [c.clone()]});
        assert_eq!(judge_helm_release(&hr(3, json!({}), ready)), Health::Ready);
        let stale = json!({"observedGeneration": 2, "conditions": [c]});
        let h = judge_helm_release(&hr(3, json!({}), stale));
        assert!(progressing_reason(&h).contains("has not seen generation 3"));
    }

    #[test]
    fn helm_release_ready_for_an_older_generation_keeps_waiting() {
        let status = json!({"observedGeneration": 1,
            "conditions": [cond("Ready", "True", "InstallSucceeded", "ok", 1)]});
        let h = judge_helm_release(&hr(2, json!({}), status));
        assert_eq!(
            progressing_reason(&h),
            "Flux has not seen generation 2 yet (last observed: 1)"
        );
    }

    #[test]
    fn helm_release_stalled_fails_with_the_ready_error_and_the_repair_hint() {
        let status = json!({"conditions": [
            cond("Stalled", "True", "RetriesExceeded", "Failed to install after 1 attempt(s)", 1),
            cond("Ready", "False", "InstallFailed", "context deadline exceeded", 1),
        ]});
        let h = judge_helm_release(&hr(1, json!({}), status));
        let (reason, message) = failed(&h);
        assert_eq!(reason, "RetriesExceeded");
        assert_eq!(
            message,
            "Failed to install after 1 attempt(s): context deadline exceeded: retries exhausted: \
             reset with `catalyst-bootstrap repair`"
        );
    }

    #[test]
    fn helm_release_stalled_for_other_reasons_fails_without_the_retry_hint() {
        let status = json!({"conditions": [
            cond("Stalled", "True", "MissingRollbackTarget", "Failed to perform remediation", 1),
        ]});
        let h = judge_helm_release(&hr(1, json!({}), status));
        assert_eq!(
            failed(&h),
            ("MissingRollbackTarget", "Failed to perform remediation")
        );
    }

    #[test]
    fn helm_release_stalled_on_an_older_generation_is_not_final() {
        let status = json!({"conditions": [
            cond("Stalled", "True", "RetriesExceeded", "Failed to install after 1 attempt(s)", 1),
            cond("Ready", "False", "InstallFailed", "boom", 1),
        ]});
        let h = judge_helm_release(&hr(2, json!({}), status));
        assert!(progressing_reason(&h).contains("generation 2"));
    }

    #[test]
    fn helm_release_stalled_false_is_ignored() {
        let status = json!({"conditions": [
            cond("Stalled", "False", "", "", 1),
            cond("Ready", "True", "InstallSucceeded", "ok", 1),
        ]});
        assert_eq!(judge_helm_release(&hr(1, json!({}), status)), Health::Ready);
    }

    #[test]
    fn helm_release_ready_false_with_retries_exceeded_reason_fails() {
        let status =
            json!({"conditions": [cond("Ready", "False", "RetriesExceeded", "gave up", 1)]});
        let h = judge_helm_release(&hr(1, json!({}), status));
        let (reason, message) = failed(&h);
        assert_eq!(reason, "RetriesExceeded");
        assert!(message.ends_with(RETRIES_EXHAUSTED_HINT), "{message}");
    }

    #[test]
    fn helm_release_failure_counters_follow_flux_remediation_rules() {
        let ready_false = cond("Ready", "False", "UpgradeFailed", "timed out", 1);
        let case = |spec: Value, action: &str, install: i64, upgrade: i64| {
            judge_helm_release(&hr(
                1,
                spec,
                json!({"lastAttemptedReleaseAction": action, "failures": install + upgrade,
                       "installFailures": install, "upgradeFailures": upgrade,
                       "conditions": [ready_false.clone()]}),
            ))
        };
        let retries3 = json!({"upgrade": {"remediation": {"retries": 3}}});
        // Three failures with three retries: one retry is still to come.
        let h = case(retries3.clone(), "upgrade", 0, 3);
        assert!(progressing_reason(&h).contains("Flux will retry"), "{h:?}");
        // Four failures: the retries are exhausted.
        let h = case(retries3.clone(), "upgrade", 0, 4);
        assert_eq!(failed(&h).0, "UpgradeFailed");
        assert!(failed(&h).1.contains("catalyst-bootstrap repair"));
        // Install failures do not count against the upgrade remediation.
        let h = case(retries3, "upgrade", 9, 1);
        assert!(matches!(h, Health::Progressing { .. }), "{h:?}");
        // Default retries are 0: the first failure exhausts them.
        let h = case(json!({}), "install", 1, 0);
        assert!(matches!(h, Health::Failed { .. }), "{h:?}");
        // Negative retries mean unlimited.
        let h = case(
            json!({"install": {"remediation": {"retries": -1}}}),
            "install",
            50,
            0,
        );
        assert!(matches!(h, Health::Progressing { .. }), "{h:?}");
        // RetryOnFailure never remediates, so it never runs out.
        let h = case(
            json!({"install": {"strategy": {"name": "RetryOnFailure"}}}),
            "install",
            5,
            0,
        );
        assert!(matches!(h, Health::Progressing { .. }), "{h:?}");
        // No attempted action recorded: nothing to count against.
        let h = case(json!({}), "", 3, 3);
        assert!(matches!(h, Health::Progressing { .. }), "{h:?}");
    }

    #[test]
    fn helm_release_unknown_or_reconciling_is_progressing() {
        let status = json!({"conditions": [
            cond("Reconciling", "True", "Progressing", "Running 'install' action with timeout of 5m0s", 1),
            cond("Ready", "Unknown", "Progressing", "Running 'install' action with timeout of 5m0s", 1),
        ]});
        let h = judge_helm_release(&hr(1, json!({}), status));
        assert_eq!(
            progressing_reason(&h),
            "reconciling: Running 'install' action with timeout of 5m0s"
        );
    }

    #[test]
    fn helm_release_without_a_ready_condition_is_progressing() {
        let status = json!({"conditions": [cond("Released", "True", "InstallSucceeded", "", 1)]});
        let h = judge_helm_release(&hr(1, json!({}), status));
        assert!(progressing_reason(&h).contains("no Ready condition"));
    }

    #[test]
    fn suspended_helm_release_fails() {
        let status = json!({"conditions": [cond("Ready", "Unknown", "Progressing", "", 1)]});
        let h = judge_helm_release(&hr(1, json!({"suspend": true}), status));
        assert_eq!(failed(&h).0, "Suspended");
    }

    fn chart(generation: i64, conditions: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": "ns-external-dns", "namespace": "ns", "generation": generation},
            "status": {"observedGeneration": generation, "conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn helm_release_waiting_on_a_stalled_chart_fails_with_the_chart_message() {
        let waiting = hr(
            2,
            json!({}),
            json!({"conditions": [cond("Ready", "False", "SourceNotReady",
                "HelmChart 'ns/ns-external-dns' is not ready: invalid chart reference", 2)]}),
        );
        let stalled = chart(
            3,
            json!([cond(
                "Stalled",
                "True",
                "InvalidChartReference",
                "invalid chart reference: no 'external-dns' chart with version matching '9.9.9' found",
                3
            )]),
        );
        let verdict = judge_helm_release_with_chart(&waiting, Some(&stalled));
        let (reason, message) = failed(&verdict);
        assert_eq!(reason, "InvalidChartReference");
        assert!(
            message.contains("HelmChart ns/ns-external-dns"),
            "{message}"
        );
        assert!(message.contains("'9.9.9'"), "{message}");

        // Without the chart, or with the chart's verdict for an older spec, keep waiting.
        assert!(matches!(
            judge_helm_release_with_chart(&waiting, None),
            Health::Progressing { .. }
        ));
        let outdated = chart(
            4,
            json!([cond("Stalled", "True", "InvalidChartReference", "old", 3)]),
        );
        assert!(matches!(
            judge_helm_release_with_chart(&waiting, Some(&outdated)),
            Health::Progressing { .. }
        ));
        // A release helm-controller has not seen in its new generation may get a new chart.
        let unseen = hr(
            3,
            json!({}),
            json!({"conditions": [cond("Ready", "False", "SourceNotReady", "m", 2)]}),
        );
        assert!(matches!(
            judge_helm_release_with_chart(&unseen, Some(&stalled)),
            Health::Progressing { .. }
        ));
        // A ready release is ready whatever its chart says.
        let ready = hr(
            2,
            json!({}),
            json!({"conditions": [cond("Ready", "True", "InstallSucceeded", "", 2)]}),
        );
        assert!(judge_helm_release_with_chart(&ready, Some(&stalled)).is_ready());
    }

    fn deployment(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    fn dep(replicas: i32, generation: i64, status: Value) -> Deployment {
        deployment(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "x"}]}}},
            "status": status,
        }))
    }

    #[test]
    fn deployment_rollout_complete_is_ready() {
        let d = dep(
            2,
            3,
            json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                   "availableReplicas": 2, "readyReplicas": 2}),
        );
        assert_eq!(judge_deployment(&d), Health::Ready);
    }

    #[test]
    fn deployment_with_zero_replicas_is_ready_at_once() {
        let d = dep(0, 1, json!({"observedGeneration": 1}));
        assert_eq!(judge_deployment(&d), Health::Ready);
    }

    #[test]
    fn deployment_rollout_in_progress_says_what_it_waits_for() {
        let cases = [
            (json!(null), "no status yet"),
            (
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
                "has not seen generation 3",
            ),
            (
                json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2}),
                "1 of 2 replicas updated",
            ),
            (
                json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
                "1 old replicas pending termination",
            ),
            (
                json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
                "1 of 2 replicas available",
            ),
        ];
        for (status, want) in cases {
            let h = judge_deployment(&dep(2, 3, status.clone()));
            assert!(
                progressing_reason(&h).contains(want),
                "{status}: {h:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn deployment_past_its_progress_deadline_fails() {
        let d = dep(
            1,
            1,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        assert_eq!(
            judge_deployment(&d),
            Health::failed(
                "ProgressDeadlineExceeded",
                "ReplicaSet \"web-1\" has timed out progressing."
            )
        );
    }

    #[test]
    fn paused_deployment_says_so() {
        let mut d = dep(
            1,
            1,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0}),
        );
        d.spec.as_mut().unwrap().paused = Some(true);
        assert!(progressing_reason(&judge_deployment(&d)).contains("paused"));
    }

    fn pod(name: &str, status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "x"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn waiting(reason: &str, restarts: i32) -> Value {
        json!({"phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "web", "image": "x", "imageID": "", "ready": false,
                "restartCount": restarts,
                "state": {"waiting": {"reason": reason, "message": "back-off 1m20s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "message": "failed to sync *v1.Node: context deadline exceeded"}}}]})
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn crash_loop_with_enough_restarts_fails_at_once() {
        let p = pod("web-1", waiting("CrashLoopBackOff", CRASH_LOOP_RESTARTS));
        let h = judge_pod(&p, Duration::ZERO, GRACE);
        let (reason, message) = failed(&h);
        assert_eq!(reason, "CrashLoopBackOff");
        assert_eq!(
            message,
            "pod ns/web-1: container web is in CrashLoopBackOff after 3 restarts (last run: \
             exit code 1 (Error)): back-off 1m20s restarting failed container"
        );
        let s = pod_symptom(&p).unwrap();
        assert_eq!(
            s.last_message.as_deref(),
            Some("failed to sync *v1.Node: context deadline exceeded")
        );
    }

    #[test]
    fn failing_waiting_reasons_fail_only_after_the_grace_period() {
        for reason in FAILING_WAITING_REASONS {
            let p = pod("web-1", waiting(reason, 1));
            let early = judge_pod(&p, GRACE - Duration::from_secs(1), GRACE);
            assert!(
                progressing_reason(&early).contains("fails the wait if it lasts 30s"),
                "{reason}: {early:?}"
            );
            let late = judge_pod(&p, GRACE, GRACE);
            assert_eq!(failed(&late).0, *reason);
        }
    }

    #[test]
    fn ordinary_waiting_reasons_are_progressing() {
        let p = pod("web-1", waiting("ContainerCreating", 0));
        let h = judge_pod(&p, Duration::from_secs(3600), GRACE);
        assert_eq!(
            progressing_reason(&h),
            "pod ns/web-1: container web is ContainerCreating"
        );
    }

    #[test]
    fn init_container_symptoms_count() {
        let mut status = waiting("PodInitializing", 0);
        status["initContainerStatuses"] = json!([{"name": "init", "image": "x", "imageID": "",
            "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]);
        let h = judge_pod(&pod("web-1", status), Duration::ZERO, GRACE);
        assert!(
            failed(&h)
                .1
                .contains("container init is in CrashLoopBackOff")
        );
    }

    #[test]
    fn an_immediate_symptom_wins_over_one_in_grace() {
        let mut status = waiting("ImagePullBackOff", 0);
        status["containerStatuses"].as_array_mut().unwrap().push(
            json!({"name": "sidecar", "image": "x", "imageID": "", "ready": false,
                "restartCount": 7, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}),
        );
        let s = pod_symptom(&pod("web-1", status)).unwrap();
        assert_eq!(
            (s.container.as_deref(), s.reason.as_str()),
            (Some("sidecar"), "CrashLoopBackOff")
        );
    }

    #[test]
    fn unschedulable_pod_fails_after_grace() {
        let status = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"}]});
        let p = pod("web-1", status);
        assert!(matches!(
            judge_pod(&p, Duration::ZERO, GRACE),
            Health::Progressing { .. }
        ));
        assert_eq!(
            judge_pod(&p, GRACE, GRACE),
            Health::failed(
                "Unschedulable",
                "pod ns/web-1 is Unschedulable: 0/1 nodes are available"
            )
        );
    }

    #[test]
    fn ready_pending_and_terminating_pods() {
        let ready = pod(
            "web-1",
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}]}),
        );
        assert_eq!(judge_pod(&ready, Duration::ZERO, GRACE), Health::Ready);
        let pending = pod("web-2", json!({"phase": "Pending"}));
        assert!(
            progressing_reason(&judge_pod(&pending, Duration::ZERO, GRACE))
                .contains("not scheduled")
        );
        let mut terminating = pod("web-3", waiting("CrashLoopBackOff", 9));
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(
            progressing_reason(&judge_pod(&terminating, Duration::ZERO, GRACE))
                .contains("terminating")
        );
    }

    #[test]
    fn pod_sets_name_the_failed_pod_and_skip_ended_ones() {
        let ok = pod(
            "web-a",
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}]}),
        );
        let bad = pod("web-b", waiting("CrashLoopBackOff", 4));
        let ended = pod("web-c", json!({"phase": "Failed", "reason": "Evicted"}));
        let set = [
            (&ended, Duration::ZERO),
            (&bad, Duration::ZERO),
            (&ok, Duration::ZERO),
        ];
        let h = judge_pods(&set, GRACE, false);
        assert_eq!(h.culprit, Some(1));
        assert!(failed(&h.health).1.starts_with("pod ns/web-b:"));

        let healthy = [(&ended, Duration::ZERO), (&ok, Duration::ZERO)];
        let h = judge_pods(&healthy, GRACE, true);
        assert_eq!((h.health, h.culprit, h.note), (Health::Ready, None, None));
        assert_eq!(judge_pods(&[], GRACE, false).health, Health::Ready);
        assert_eq!(
            judge_pods(&[], GRACE, true).health,
            Health::progressing("no pods yet")
        );
    }

    #[test]
    fn pod_sets_report_the_first_unready_pod() {
        let ok = pod(
            "web-a",
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}]}),
        );
        let pulling = pod("web-d", waiting("ImagePullBackOff", 0));
        let mixed = [(&ok, Duration::ZERO), (&pulling, Duration::ZERO)];
        let h = judge_pods(&mixed, GRACE, true);
        assert_eq!(h.culprit, Some(1));
        assert!(
            progressing_reason(&h.health).starts_with(
                "1 of 2 pods ready; pod ns/web-d: container web is in ImagePullBackOff"
            )
        );
        // Without require_ready the set does not hold readiness up, but says what it sees.
        let h = judge_pods(&mixed, GRACE, false);
        assert_eq!(h.health, Health::Ready);
        assert!(h.note.unwrap().contains("fails the wait if it lasts 30s"));
    }

    #[test]
    fn combine_prefers_pod_failures_then_object_state() {
        let pods = |health: Health, note: Option<&str>| PodsHealth {
            health,
            culprit: None,
            note: note.map(str::to_owned),
        };
        let f = Health::failed("CrashLoopBackOff", "pod");
        let of = Health::failed("Stalled", "hr");
        let p = Health::progressing("0 of 1 replicas available");
        assert_eq!(combine(p.clone(), &pods(f.clone(), None)), f);
        assert_eq!(
            combine(of.clone(), &pods(Health::progressing("x"), None)),
            of
        );
        assert_eq!(
            combine(
                p.clone(),
                &pods(Health::Ready, Some("pod ns/a is not ready yet"))
            ),
            Health::progressing("0 of 1 replicas available; pod ns/a is not ready yet")
        );
        assert_eq!(
            combine(p.clone(), &pods(Health::progressing("no pods yet"), None)),
            Health::progressing("0 of 1 replicas available; no pods yet")
        );
        assert_eq!(combine(p.clone(), &pods(Health::Ready, None)), p);
        assert_eq!(
            combine(
                Health::Ready,
                &pods(Health::progressing("no pods yet"), None)
            ),
            Health::progressing("no pods yet")
        );
        assert_eq!(
            combine(Health::Ready, &pods(Health::Ready, Some("ignored"))),
            Health::Ready
        );
    }
    #[test]
    fn a_reconcile_request_not_yet_handled_makes_the_status_stale() {
        let mut hr: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "x", "namespace": "n", "generation": 1,
                         "annotations": {RECONCILE_REQUEST_ANNOTATION: "t1"}},
            "spec": {},
            "status": {"observedGeneration": 1, "conditions": [
                {"type": "Stalled", "status": "True", "reason": "RetriesExceeded", "message": "m",
                 "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": "False", "reason": "RetriesExceeded", "message": "m",
                 "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        assert!(matches!(
            judge_helm_release(&hr),
            Health::Progressing { .. }
        ));
        hr.data["status"]["lastHandledReconcileAt"] = "t1".into();
        assert!(matches!(judge_helm_release(&hr), Health::Failed { .. }));
    }
}
