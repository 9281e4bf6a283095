//! Events as the kubelet records them: core/v1 Events about the pod (field path
//! `spec.containers{<name>}`), source `kubelet` on the node, and a repeat of the same
//! reason and message counted on the first Event (the event correlator's aggregation).
//! Written in order by one task per pod, so a slow apiserver never holds up a container.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

use super::NODE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Normal,
    Warning,
}

#[derive(Debug)]
struct Record {
    type_: Type,
    reason: &'static str,
    message: String,
    container: String,
}

/// Where a pod's events go.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Record>,
}

impl Recorder {
    pub fn start(client: kube::Client, pod: &Pod) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write(client, pod.clone(), rx));
        (Recorder { tx }, task)
    }

    pub fn emit(&self, type_: Type, reason: &'static str, container: &str, message: String) {
        let _ = self.tx.send(Record {
            type_,
            reason,
            message,
            container: container.to_owned(),
        });
    }
}

async fn write(client: kube::Client, pod: Pod, mut rx: mpsc::UnboundedReceiver<Record>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client, &ns);
    // (type, reason, message, container) -> (event name, count)
    let mut seen: HashMap<(Type, &'static str, String, String), (String, i32)> = HashMap::new();
    while let Some(r) = rx.recv().await {
        let now = super::status::now();
        let key = (r.type_, r.reason, r.message.clone(), r.container.clone());
        if let Some((event, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({"count": *count, "lastTimestamp": now.to_string()});
            if let Err(e) = api
                .patch(event, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                eprintln!("kubelet: counting event {event}: {e}");
            }
            continue;
        }
        let event_name = format!("{name}.{:016x}", fastrand::u64(..));
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
                "uid": pod.metadata.uid, "fieldPath": format!("spec.containers{{{}}}", r.container),
            },
            "reason": r.reason,
            "message": r.message,
            "type": format!("{:?}", r.type_),
            "source": {"component": "kubelet", "host": NODE},
            "reportingComponent": "kubelet",
            "reportingInstance": NODE,
            "firstTimestamp": now.to_string(),
            "lastTimestamp": now.to_string(),
            "count": 1,
        }))
        .expect("an Event");
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                seen.insert(key, (event_name, 1));
            }
            Err(e) => eprintln!("kubelet: recording event {} on pod {name}: {e}", r.reason),
        }
    }
}
