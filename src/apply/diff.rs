//! Comparing a live object with what applying would make of it.

use kube::api::DynamicObject;
use serde_json::Value;

/// Fields the server maintains; a difference there is not a change we made.
const SERVER_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
];

fn normalized(obj: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in SERVER_METADATA {
                meta.remove(key);
            }
        }
    }
    value
}

/// JSON-pointer paths (`/spec/values/replicas`) that differ between two versions of an
/// object, ignoring status and server-maintained metadata. Values are not reported: they
/// could hold credentials.
pub fn changed_paths(before: &DynamicObject, after: &DynamicObject) -> Vec<String> {
    let mut out = Vec::new();
    walk(
        &normalized(before),
        &normalized(after),
        String::new(),
        &mut out,
    );
    out
}

fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (x.get(key), y.get(key)) {
                    (Some(u), Some(v)) => walk(u, v, child, out),
                    _ => out.push(child),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                walk(u, v, format!("{path}/{i}"), out);
            }
        }
        _ if a != b => out.push(if path.is_empty() {
            "/".to_owned()
        } else {
            path
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ConfigMap as the server holds it at `generation`: its server fields change with it.
    fn config_map(generation: i64, label: &str, data: Value, phase: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": generation.to_string(), "uid": "u",
                         "generation": generation, "labels": {"app.kubernetes.io/name": label}},
            "data": data,
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn reports_changed_paths_and_ignores_server_fields() {
        let before = config_map(1, "x", serde_json::json!({"a": "1", "b": "2"}), "old");
        let after = config_map(2, "y", serde_json::json!({"a": "1", "c": "3"}), "new");
        assert_eq!(
            changed_paths(&before, &after),
            [
                "/data/b",
                "/data/c",
                "/metadata/labels/app.kubernetes.io~1name"
            ]
        );
        assert!(changed_paths(&before, &before).is_empty());
    }
}
