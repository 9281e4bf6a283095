//! What to tell the operator when a workload fails or a wait times out: recent events of
//! the object and its pods, probe failures, the previous container's last log lines, and
//! the known causes those texts point at. Best effort: each call has a short timeout, and
//! what cannot be fetched is named rather than fatal.
//!
//! Secrets stay out: nothing here reads pod specs (where env values live), and every
//! quoted text passes through [`redact`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};

use super::judge::{pod_name, pod_symptom};
use super::signatures::{Signature, match_signatures, redact};

/// How long one diagnostic call may take: a diagnosis must not hold up the verdict.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept in a diagnosis, newest first.
const MAX_EVENTS: usize = 20;
/// Log lines asked for; external-dns's fatal line is its last.
const LOG_TAIL: i64 = 50;
/// The reason a diagnosis of a target that did not fail, only did not get ready, carries.
pub const NOT_READY: &str = "NotReady";
/// Pods examined per target: the culprit, then a couple of others.
pub(crate) const MAX_PODS: usize = 3;

/// Everything known about why a target is not healthy.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// e.g. "Deployment external-dns/external-dns".
    pub resource: String,
    pub reason: String,
    pub message: String,
    /// The pods examined, the failed one first ("namespace/name").
    pub pods: Vec<String>,
    /// How the previous run of each failing container ended, with its termination message.
    pub terminations: Vec<String>,
    /// Recent events of the object and its pods, newest first, repeats merged.
    pub events: Vec<EventSummary>,
    /// Messages of `Unhealthy` events (failed liveness, readiness or startup probes).
    pub probe_failures: Vec<String>,
    pub logs: Option<Logs>,
    /// Known failures the texts above match, most specific first.
    pub causes: Vec<&'static Signature>,
    /// What judging the failure by its cause concluded beyond the signatures (e.g. that a
    /// cache-sync crash on a fast apiserver is dropped egress, not saturation).
    pub judgement: Option<String>,
    /// What could not be gathered, and why.
    pub gaps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    /// "Kind/name" of the object the event is about.
    pub object: String,
    /// Normal or Warning.
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last_seen: Option<Timestamp>,
}

/// A container's log (its previous run's, or the current run's), or why it could not be
/// read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logs {
    Previous {
        pod: String,
        container: String,
        lines: Vec<String>,
    },
    Current {
        pod: String,
        container: String,
        lines: Vec<String>,
    },
    Unavailable {
        pod: String,
        container: String,
        reason: String,
    },
}

/// What the wait engine knows about a target it gives up on.
pub(crate) struct Subject {
    pub resource: String,
    /// The kind as events name it in involvedObject.kind.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub reason: String,
    pub message: String,
    /// The pods to examine, the culprit first.
    pub pods: Vec<Arc<Pod>>,
}

pub(crate) async fn diagnose(client: &Client, subject: Subject) -> Diagnosis {
    let mut gaps = Vec::new();
    let mut raw_events = Vec::new();
    let mut queries = vec![(
        subject.namespace.clone(),
        subject.kind,
        subject.name.clone(),
    )];
    for pod in subject.pods.iter().take(MAX_PODS) {
        queries.push((
            pod.metadata.namespace.clone().unwrap_or_default(),
            "Pod",
            pod.metadata.name.clone().unwrap_or_default(),
        ));
    }
    for (namespace, kind, name) in queries {
        match events_for(client, &namespace, kind, &name).await {
            Ok(mut events) => raw_events.append(&mut events),
            Err(e) => gaps.push(format!("events of {kind}/{name} unavailable: {e}")),
        }
    }
    let events = summarize_events(&raw_events);
    let probe_failures = probe_failures(&events);

    let mut terminations = Vec::new();
    let mut logs = None;
    for pod in subject.pods.iter().take(MAX_PODS) {
        let Some(symptom) = pod_symptom(pod) else {
            continue;
        };
        let Some(container) = symptom.container.clone() else {
            continue;
        };
        if let Some(t) = &symptom.last_termination {
            let mut line = format!("{} container {container}: last run {t}", pod_name(pod));
            if let Some(m) = &symptom.last_message {
                line.push_str(": ");
                line.push_str(&redact(m.trim()));
            }
            terminations.push(line);
        }
        // Only the failing container's log: one is enough to match a signature, and
        // each read costs a round trip through the kubelet.
        if logs.is_none() && symptom.restarts > 0 {
            logs = Some(container_logs(client, pod, &container, true, LOG_TAIL).await);
        }
    }

    let log_lines: &[String] = match &logs {
        Some(Logs::Previous { lines, .. } | Logs::Current { lines, .. }) => lines,
        _ => &[],
    };
    let texts = std::iter::once(subject.message.as_str())
        .chain(terminations.iter().map(String::as_str))
        .chain(events.iter().map(|e| e.message.as_str()))
        .chain(events.iter().map(|e| e.reason.as_str()))
        .chain(log_lines.iter().map(String::as_str));
    let causes = match_signatures(texts);

    Diagnosis {
        resource: subject.resource,
        reason: subject.reason,
        message: redact(&subject.message),
        pods: subject.pods.iter().map(|p| pod_name(p)).collect(),
        terminations,
        events,
        probe_failures,
        logs,
        causes,
        judgement: None,
        gaps,
    }
}

async fn events_for(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<Vec<Event>, String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind={kind},involvedObject.name={name}"
    ));
    match tokio::time::timeout(CALL_TIMEOUT, api.list(&lp)).await {
        Ok(Ok(list)) => Ok(list.items),
        Ok(Err(e)) => Err(error_text(&e)),
        Err(_) => Err(format!("no answer within {}s", CALL_TIMEOUT.as_secs())),
    }
}

/// The last `tail` lines of a container's log: its previous run's, or the current one's.
pub(crate) async fn container_logs(
    client: &Client,
    pod: &Pod,
    container: &str,
    previous: bool,
    tail: i64,
) -> Logs {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let lp = LogParams {
        container: Some(container.to_owned()),
        previous,
        tail_lines: Some(tail),
        ..LogParams::default()
    };
    let result = match tokio::time::timeout(CALL_TIMEOUT, api.logs(&name, &lp)).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(error_text(&e)),
        Err(_) => Err(format!("no answer within {}s", CALL_TIMEOUT.as_secs())),
    };
    let pod = pod_name(pod);
    let container = container.to_owned();
    match result {
        Ok(text) => {
            let lines = text.lines().map(redact).collect();
            if previous {
                Logs::Previous {
                    pod,
                    container,
                    lines,
                }
            } else {
                Logs::Current {
                    pod,
                    container,
                    lines,
                }
            }
        }
        Err(reason) => Logs::Unavailable {
            pod,
            container,
            reason: redact(&reason),
        },
    }
}

/// An error in one line: kube's Display of an API error repeats the whole Status.
pub(crate) fn error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => format!("HTTP {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}

fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.first_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Newest first, one line per (object, reason, message) with the counts summed, at most
/// [`MAX_EVENTS`]. Kubernetes already merges repeats into one Event, but not across the
/// event series a restarted kubelet starts anew.
pub fn summarize_events(events: &[Event]) -> Vec<EventSummary> {
    let mut merged: Vec<EventSummary> = Vec::new();
    let mut index: HashMap<(String, String, String), usize> = HashMap::new();
    for e in events {
        let object = format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or(""),
            e.involved_object.name.as_deref().unwrap_or("")
        );
        let reason = e.reason.clone().unwrap_or_default();
        let message = redact(e.message.as_deref().unwrap_or("").trim());
        let count = e
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(e.count)
            .unwrap_or(1);
        let seen = last_seen(e);
        let key = (object.clone(), reason.clone(), message.clone());
        match index.get(&key) {
            Some(&i) => {
                merged[i].count += count;
                merged[i].last_seen = merged[i].last_seen.max(seen);
            }
            None => {
                index.insert(key, merged.len());
                merged.push(EventSummary {
                    object,
                    type_: e.type_.clone().unwrap_or_default(),
                    reason,
                    message,
                    count,
                    last_seen: seen,
                });
            }
        }
    }
    // Option orders None first; reversed, undated events go last.
    merged.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
    merged.truncate(MAX_EVENTS);
    merged
}

/// The kubelet reports failed probes as events with reason Unhealthy.
pub fn probe_failures(events: &[EventSummary]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.reason == "Unhealthy")
        .map(|e| format!("{}: {}", e.object, e.message))
        .collect()
}

/// As a diagnosis quotes it: a heading line and the lines indented under it, or why the
/// log could not be read; each line indented by two and ending with a newline.
impl fmt::Display for Logs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (which, pod, container, lines) = match self {
            Logs::Previous {
                pod,
                container,
                lines,
            } => ("previous log", pod, container, lines),
            Logs::Current {
                pod,
                container,
                lines,
            } => ("log", pod, container, lines),
            Logs::Unavailable {
                pod,
                container,
                reason,
            } => {
                return writeln!(
                    f,
                    "  logs unavailable: {reason} ({pod} container {container})"
                );
            }
        };
        writeln!(f, "  {which} of {pod} container {container}:")?;
        for l in lines {
            writeln!(f, "    {l}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == NOT_READY {
            writeln!(f, "{} is not ready", self.resource)?;
        } else {
            writeln!(f, "{} failed: {}", self.resource, self.reason)?;
        }
        if !self.message.is_empty() {
            writeln!(f, "  {}", self.message)?;
        }
        if let Some(judgement) = &self.judgement {
            writeln!(f, "  judged by cause: {judgement}")?;
        }
        for cause in &self.causes {
            writeln!(f, "  likely cause: {}", cause.cause)?;
        }
        for t in &self.terminations {
            writeln!(f, "  {t}")?;
        }
        if !self.probe_failures.is_empty() {
            writeln!(f, "  probe failures:")?;
            for p in &self.probe_failures {
                writeln!(f, "    {p}")?;
            }
        }
        if !self.events.is_empty() {
            writeln!(f, "  recent events (newest first):")?;
            for e in &self.events {
                let times = if e.count > 1 {
                    format!(" (x{})", e.count)
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "    {} {} {}{times}: {}",
                    e.type_, e.reason, e.object, e.message
                )?;
            }
        }
        if let Some(logs) = &self.logs {
            write!(f, "{logs}")?;
        }
        for g in &self.gaps {
            writeln!(f, "  {g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, reason: &str, message: &str, count: i32, last: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "ns"},
            "type": "Warning",
            "reason": reason,
            "message": message,
            "count": count,
            "lastTimestamp": last,
        }))
        .unwrap()
    }

    #[test]
    fn events_are_newest_first_and_repeats_are_merged() {
        let events = [
            event(
                "a",
                "BackOff",
                "Back-off restarting failed container",
                3,
                "2026-01-01T00:00:10Z",
            ),
            event(
                "b",
                "Unhealthy",
                "Liveness probe failed: timeout",
                2,
                "2026-01-01T00:00:30Z",
            ),
            event(
                "c",
                "BackOff",
                "Back-off restarting failed container",
                4,
                "2026-01-01T00:00:20Z",
            ),
            event(
                "d",
                "Pulled",
                "Container image already present",
                1,
                "2026-01-01T00:00:05Z",
            ),
        ];
        let s = summarize_events(&events);
        let got: Vec<_> = s.iter().map(|e| (e.reason.as_str(), e.count)).collect();
        assert_eq!(got, [("Unhealthy", 2), ("BackOff", 7), ("Pulled", 1)]);
        assert_eq!(
            s[1].last_seen,
            Some("2026-01-01T00:00:20Z".parse().unwrap())
        );
        assert_eq!(s[0].object, "Pod/web-1");
    }

    #[test]
    fn series_and_event_time_are_used_when_present() {
        let mut newer = event("a", "X", "series", 1, "2026-01-01T00:00:00Z");
        newer.series = Some(
            serde_json::from_value(
                json!({"count": 9, "lastObservedTime": "2026-01-01T00:05:00.000000Z"}),
            )
            .unwrap(),
        );
        let mut undated = event("b", "Y", "undated", 1, "2026-01-01T00:00:00Z");
        undated.last_timestamp = None;
        let older = event("c", "Z", "older", 1, "2026-01-01T00:01:00Z");
        let s = summarize_events(&[undated, older, newer]);
        let got: Vec<_> = s.iter().map(|e| (e.reason.as_str(), e.count)).collect();
        assert_eq!(got, [("X", 9), ("Z", 1), ("Y", 1)]);
    }

    #[test]
    fn events_are_capped_and_redacted() {
        let events: Vec<Event> = (0..30)
            .map(|i| {
                event(
                    &format!("e{i}"),
                    "Failed",
                    &format!("attempt {i} with api-key=hunter{i}"),
                    1,
                    &format!("2026-01-01T00:00:{i:02}Z"),
                )
            })
            .collect();
        let s = summarize_events(&events);
        assert_eq!(s.len(), MAX_EVENTS);
        assert_eq!(s[0].message, "attempt 29 with api-key=<redacted>");
        assert!(s.iter().all(|e| !e.message.contains("hunter")));
    }

    #[test]
    fn probe_failures_come_from_unhealthy_events() {
        let s = summarize_events(&[
            event(
                "a",
                "Unhealthy",
                "Readiness probe failed: HTTP 503",
                1,
                "2026-01-01T00:00:01Z",
            ),
            event("b", "BackOff", "Back-off", 1, "2026-01-01T00:00:02Z"),
        ]);
        assert_eq!(
            probe_failures(&s),
            ["Pod/web-1: Readiness probe failed: HTTP 503"]
        );
    }

    #[test]
    fn a_target_that_only_did_not_get_ready_is_not_called_failed() {
        let d = Diagnosis {
            resource: "HelmRelease flux-system/external-dns".into(),
            reason: NOT_READY.into(),
            message: "no status yet: is Flux helm-controller running?".into(),
            gaps: vec!["events of HelmRelease/external-dns unavailable: HTTP 403: no".into()],
            ..Diagnosis::default()
        };
        assert_eq!(
            d.to_string(),
            "HelmRelease flux-system/external-dns is not ready\n  no status yet: is Flux \
             helm-controller running?\n  events of HelmRelease/external-dns unavailable: HTTP 403: no\n"
        );
    }

    #[test]
    fn display_names_cause_events_and_missing_logs() {
        let d = Diagnosis {
            resource: "Deployment ns/web".into(),
            reason: "CrashLoopBackOff".into(),
            message: "pod ns/web-1: container web is in CrashLoopBackOff".into(),
            pods: vec!["ns/web-1".into()],
            terminations: vec!["ns/web-1 container web: last run exit code 1 (Error)".into()],
            events: summarize_events(&[event(
                "a",
                "Unhealthy",
                "failed to sync *v1.Node: context deadline exceeded",
                2,
                "2026-01-01T00:00:01Z",
            )]),
            probe_failures: vec![],
            logs: Some(Logs::Unavailable {
                pod: "ns/web-1".into(),
                container: "web".into(),
                reason: "the kubelet does not serve logs".into(),
            }),
            causes: match_signatures(["failed to sync *v1.Node: context deadline exceeded"]),
            judgement: Some("not saturation: the apiserver answered in 3 ms".into()),
            gaps: vec![],
        };
        let text = d.to_string();
        assert!(
            text.starts_with("Deployment ns/web failed: CrashLoopBackOff\n"),
            "{text}"
        );
        assert!(
            text.contains("likely cause: external-dns could not finish its start-up cache sync")
        );
        assert!(
            text.contains("\n  judged by cause: not saturation: the apiserver answered in 3 ms\n"),
            "{text}"
        );
        assert!(text.contains(
            "Warning Unhealthy Pod/web-1 (x2): failed to sync *v1.Node: context deadline exceeded"
        ));
        assert!(text.contains("logs unavailable: the kubelet does not serve logs"));
    }
}
