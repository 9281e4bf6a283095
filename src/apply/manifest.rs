//! Rendered YAML documents turned into the objects to apply, in apply order.

use std::collections::HashSet;

use kube::api::{DynamicObject, GroupVersionKind};
use serde_json::Value;

use super::ApplyError;

/// One object of the kit, as the manifest describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The file (or other source) the document came from, for error messages.
    pub file_name: String,
    pub gvk: GroupVersionKind,
    pub object: DynamicObject,
}

impl Desired {
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object.metadata.namespace.as_deref()
    }

    /// `Kind namespace/name`, or `Kind name` for cluster-scoped objects.
    pub fn describe(&self) -> String {
        describe(&self.gvk.kind, self.namespace(), self.name())
    }

    /// Position in the apply order; see [`rank`].
    pub fn rank(&self) -> u8 {
        rank(&self.gvk.group, &self.gvk.kind)
    }
}

pub(crate) fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Apply order by kind: what others live in or refer to comes first. Namespaces hold
/// everything; CRDs must exist before their objects; configuration and Flux sources before
/// the HelmRelease that reads them; network policies last, so that a default-deny never
/// lands before the objects it is meant to let through have been declared.
pub fn rank(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("", "ServiceAccount" | "ConfigMap" | "Secret") | ("rbac.authorization.k8s.io", _) => 2,
        ("source.toolkit.fluxcd.io", _) => 3,
        ("helm.toolkit.fluxcd.io", "HelmRelease") | ("kustomize.toolkit.fluxcd.io", _) => 5,
        ("networking.k8s.io", "NetworkPolicy")
        | ("cilium.io", "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy") => 6,
        _ => 4,
    }
}

/// Parses `(file name, YAML)` pairs, each holding one or more documents, into objects sorted
/// by [`rank`] (stable, so the kit's own order holds within a rank). Fails on the first
/// document that is not a Kubernetes object, and on duplicates.
pub fn parse<'a, I>(docs: I) -> Result<Vec<Desired>, ApplyError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = Vec::new();
    for (file_name, yaml) in docs {
        let bad = |message: String| ApplyError::Manifest {
            file: file_name.to_owned(),
            message,
        };
        let values: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| bad(format!("not valid YAML: {e}")))?;
        for value in values.into_iter().filter(|v| !v.is_null()) {
            out.push(Desired::from_value(file_name, value).map_err(bad)?);
        }
    }
    in_apply_order(out)
}

/// The objects sorted by [`rank`] (stable), refusing an object given twice.
pub fn in_apply_order(mut objects: Vec<Desired>) -> Result<Vec<Desired>, ApplyError> {
    let mut seen = HashSet::new();
    for desired in &objects {
        let key = (
            desired.gvk.group.as_str(),
            desired.gvk.kind.as_str(),
            desired.namespace(),
            desired.name(),
        );
        if !seen.insert(key) {
            return Err(ApplyError::Manifest {
                file: desired.file_name.clone(),
                message: format!("{} appears more than once in the kit", desired.describe()),
            });
        }
    }
    objects.sort_by_key(Desired::rank);
    Ok(objects)
}

impl Desired {
    /// The object of one parsed document from `file_name`; the error says what it lacks.
    pub fn from_value(file_name: &str, value: Value) -> Result<Desired, String> {
        if !value.is_object() {
            return Err("a document is not a mapping".to_owned());
        }
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let api_version = text("/apiVersion").ok_or("a document has no apiVersion")?;
        let kind = text("/kind").ok_or("a document has no kind")?;
        if text("/metadata/name").is_none() {
            return Err(format!("a {kind} has no metadata.name"));
        }
        if kind.ends_with("List") && value.get("items").is_some_and(Value::is_array) {
            return Err(format!(
                "{kind}: lists are not supported, give each object its own document"
            ));
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        if version.is_empty() || version.contains('/') {
            return Err(format!(
                "{kind}: apiVersion {api_version:?} is not group/version"
            ));
        }
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let object: DynamicObject = serde_json::from_value(value)
            .map_err(|e| format!("{kind}: not a Kubernetes object: {e}"))?;
        Ok(Desired {
            file_name: file_name.to_owned(),
            gvk,
            object,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_kind_rank_and_keeps_kit_order_within_a_rank() {
        let docs = [
            (
                "30-policy.yaml",
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: demo}\n",
            ),
            (
                "20-release.yaml",
                "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: r, namespace: demo}\n",
            ),
            (
                "10-sources.yaml",
                "---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata: {name: b, namespace: demo}\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata: {name: a, namespace: demo}\n",
            ),
            (
                "00-ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n",
            ),
        ];
        let parsed = parse(docs).unwrap();
        let order: Vec<String> = parsed.iter().map(Desired::describe).collect();
        assert_eq!(
            order,
            [
                "Namespace demo",
                "HelmRepository demo/b",
                "OCIRepository demo/a",
                "HelmRelease demo/r",
                "NetworkPolicy demo/p"
            ]
        );
        assert_eq!(parsed[1].gvk.group, "source.toolkit.fluxcd.io");
        assert_eq!(parsed[0].gvk.group, "");
        assert_eq!(parsed[0].gvk.version, "v1");
    }

    fn error(yaml: &str) -> String {
        match parse([("f.yaml", yaml)]) {
            Err(e @ ApplyError::Manifest { .. }) => e.to_string(),
            other => panic!("expected a manifest error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_what_is_not_a_kubernetes_object() {
        assert!(error("kind: [unclosed").starts_with("f.yaml: not valid YAML"));
        assert_eq!(error("- a\n- b\n"), "f.yaml: a document is not a mapping");
        assert_eq!(
            error("kind: Namespace\nmetadata: {name: demo}\n"),
            "f.yaml: a document has no apiVersion"
        );
        assert_eq!(
            error("apiVersion: v1\nkind: Namespace\n"),
            "f.yaml: a Namespace has no metadata.name"
        );
        assert!(
            error("apiVersion: v1\nkind: List\nmetadata: {name: l}\nitems: []\n")
                .contains("lists are not supported")
        );
        assert!(
            error("apiVersion: a/b/c\nkind: X\nmetadata: {name: x}\n")
                .contains("is not group/version")
        );
        let twice = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n";
        assert_eq!(
            error(twice),
            "f.yaml: Namespace demo appears more than once in the kit"
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let parsed = parse([(
            "f.yaml",
            "---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n",
        )])
        .unwrap();
        assert_eq!(parsed.len(), 1);
    }
}
