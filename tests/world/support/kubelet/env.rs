//! What the kubelet gives a container from the API: its environment (plain values,
//! `$(VAR)` references, keys of Secrets and ConfigMaps, pod fields) and, because the
//! world's containers run on the host rather than in a pod, a kubeconfig holding a token of
//! the pod's ServiceAccount in place of the projected token volume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret, ServiceAccount};
use kube::Api;
use kube::config::Kubeconfig;

/// How long the ServiceAccount tokens it requests live.
const TOKEN_SECONDS: i64 = 3600;

/// The container's environment as the kubelet builds it: plain values, `$(VAR)` references
/// to earlier variables, and keys of Secrets, ConfigMaps and pod fields.
pub async fn resolve_env(
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
        // The kubelet's words for a missing Secret or key.
        let Some(secret) = secret else {
            return if r.optional == Some(true) {
                Ok(None)
            } else {
                Err(format!("secret \"{}\" not found", r.name))
            };
        };
        let value = secret
            .data
            .and_then(|d| d.get(&r.key).cloned())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "couldn't find key {} in Secret {namespace}/{}",
                r.key, r.name
            )),
        };
    }
    if let Some(r) = &from.config_map_key_ref {
        let map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("reading ConfigMap {}: {e}", r.name))?;
        let Some(map) = map else {
            return if r.optional == Some(true) {
                Ok(None)
            } else {
                Err(format!("configmap \"{}\" not found", r.name))
            };
        };
        let value = map.data.and_then(|d| d.get(&r.key).cloned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "couldn't find key {} in ConfigMap {namespace}/{}",
                r.key, r.name
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
pub fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
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
pub async fn write_kubeconfig(
    client: &kube::Client,
    cluster: &Path,
    server_override: Option<&str>,
    dir: &Path,
    pod: &Pod,
) -> Result<PathBuf, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
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
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(&account, &Default::default(), &request)
        .await
        .map_err(|e| format!("requesting a token for ServiceAccount {account}: {e}"))?
        .status
        .map(|s| s.token)
        .ok_or("the token request returned no token")?;
    let (server, ca) = cluster_of(cluster)?;
    let server = server_override.map_or(server, str::to_owned);
    let text = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "world", "cluster": {"server": server,
                                                   "certificate-authority-data": ca}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "world", "user": account,
                                                 "namespace": namespace}}],
        "current-context": "pod",
    })
    .to_string();
    let path = dir.join(format!("{name}.kubeconfig"));
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
