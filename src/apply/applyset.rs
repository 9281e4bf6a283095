//! Ownership in the ApplySet format of KEP-3659, so that our objects are recognisable (and
//! prunable) by kubectl as well: a parent ConfigMap identifies the set and records which
//! group-kinds and namespaces its members live in; each member carries the set's id.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
pub const GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const SOVEREIGN_LABEL: &str = "catalyst.openova.io/sovereign";
pub const TOOL: &str = "catalyst-bootstrap";

/// `catalyst-bootstrap/v<version>`, the tooling annotation's value.
pub fn tooling() -> String {
    format!("{TOOL}/v{}", env!("CARGO_PKG_VERSION"))
}

/// The id of the ApplySet whose parent is the given object, as KEP-3659 defines it:
/// `applyset-<base64url, unpadded, of sha256("<name>.<namespace>.<kind>.<group>")>-v1`.
pub fn applyset_id(name: &str, namespace: &str, kind: &str, group: &str) -> String {
    let gknn = format!("{name}.{namespace}.{kind}.{group}");
    let digest = ring::digest::digest(&ring::digest::SHA256, gknn.as_bytes());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    format!("applyset-{b64}-v1")
}

/// A kind in a group, written `Kind.group` (just `Kind` for the core group), as in the
/// contains-group-kinds annotation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    pub fn new(group: &str, kind: &str) -> GroupKind {
        GroupKind {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }

    fn parse(text: &str) -> Option<GroupKind> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let (kind, group) = text.split_once('.').unwrap_or((text, ""));
        Some(GroupKind::new(group, kind))
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.group.as_str() {
            "" => write!(f, "{}", self.kind),
            group => write!(f, "{}.{group}", self.kind),
        }
    }
}

/// The set of one Sovereign's bootstrap objects, identified by its parent ConfigMap.
#[derive(Debug, Clone)]
pub struct ApplySet {
    pub sovereign: String,
    pub parent_name: String,
    pub parent_namespace: String,
    pub id: String,
}

impl ApplySet {
    pub fn new(sovereign: &str, parent_namespace: &str) -> ApplySet {
        let parent_name = format!("{TOOL}-{sovereign}");
        ApplySet {
            id: applyset_id(&parent_name, parent_namespace, "ConfigMap", ""),
            sovereign: sovereign.to_owned(),
            parent_name,
            parent_namespace: parent_namespace.to_owned(),
        }
    }

    /// Labels every member carries. Only part-of decides membership; the other two are for
    /// people and selectors.
    pub fn member_labels(&self) -> [(&'static str, &str); 3] {
        [
            (PART_OF_LABEL, self.id.as_str()),
            (MANAGED_BY_LABEL, TOOL),
            (SOVEREIGN_LABEL, self.sovereign.as_str()),
        ]
    }

    /// The parent as a server-side apply body, recording the given group-kinds and the
    /// namespaces (other than its own) that members live in.
    pub fn parent_body(
        &self,
        group_kinds: &BTreeSet<GroupKind>,
        namespaces: &BTreeSet<String>,
    ) -> Value {
        // Sorted as text, as kubectl writes it.
        let mut kinds: Vec<String> = group_kinds.iter().map(ToString::to_string).collect();
        kinds.sort();
        let mut annotations = json!({
            TOOLING_ANNOTATION: tooling(),
            GROUP_KINDS_ANNOTATION: kinds.join(","),
        });
        let others: Vec<&str> = namespaces
            .iter()
            .map(String::as_str)
            .filter(|ns| *ns != self.parent_namespace)
            .collect();
        if !others.is_empty() {
            annotations[NAMESPACES_ANNOTATION] = json!(others.join(","));
        }
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.parent_name,
                "namespace": self.parent_namespace,
                "labels": {
                    ID_LABEL: self.id,
                    MANAGED_BY_LABEL: TOOL,
                    SOVEREIGN_LABEL: self.sovereign,
                },
                "annotations": annotations,
            },
        })
    }
}

/// What an existing parent records.
#[derive(Debug, Default)]
pub struct Recorded {
    pub group_kinds: BTreeSet<GroupKind>,
    pub namespaces: BTreeSet<String>,
    /// The tooling annotation, when it names another tool.
    pub foreign_tooling: Option<String>,
}

pub fn recorded(parent: &ConfigMap) -> Recorded {
    let annotation = |key: &str| {
        parent
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
            .unwrap_or_default()
    };
    let tooling = annotation(TOOLING_ANNOTATION);
    let ours = tooling.is_empty() || tooling.split('/').next() == Some(TOOL);
    Recorded {
        group_kinds: annotation(GROUP_KINDS_ANNOTATION)
            .split(',')
            .filter_map(GroupKind::parse)
            .collect(),
        namespaces: annotation(NAMESPACES_ANNOTATION)
            .split(',')
            .map(str::trim)
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned)
            .collect(),
        foreign_tooling: (!ours).then(|| tooling.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn id_follows_kep_3659() {
        // Expected value computed independently (Python hashlib + base64.urlsafe_b64encode).
        assert_eq!(
            applyset_id("catalyst-bootstrap-demo", "kube-system", "ConfigMap", ""),
            "applyset-n-ZbS2j6qi9uJa_YBOO_E0MJlcDKt5JxCRgMptfYIZ8-v1"
        );
        let set = ApplySet::new("demo", "kube-system");
        assert_eq!(set.parent_name, "catalyst-bootstrap-demo");
        assert_eq!(
            set.id,
            "applyset-n-ZbS2j6qi9uJa_YBOO_E0MJlcDKt5JxCRgMptfYIZ8-v1"
        );
        assert!(set.id.len() <= 63, "a label value");
    }

    #[test]
    fn parent_records_sorted_group_kinds_and_other_namespaces() {
        let set = ApplySet::new("demo", "kube-system");
        let kinds = [
            GroupKind::new("networking.k8s.io", "NetworkPolicy"),
            GroupKind::new("", "Namespace"),
            GroupKind::new("helm.toolkit.fluxcd.io", "HelmRelease"),
        ]
        .into_iter()
        .collect();
        let namespaces = ["kube-system".to_owned(), "external-dns".to_owned()]
            .into_iter()
            .collect();
        let body = set.parent_body(&kinds, &namespaces);
        let annotations = &body["metadata"]["annotations"];
        assert_eq!(
            annotations[GROUP_KINDS_ANNOTATION],
            "HelmRelease.helm.toolkit.fluxcd.io,Namespace,NetworkPolicy.networking.k8s.io"
        );
        assert_eq!(annotations[NAMESPACES_ANNOTATION], "external-dns");
        assert_eq!(
            annotations[TOOLING_ANNOTATION],
            format!("catalyst-bootstrap/v{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(body["metadata"]["labels"][ID_LABEL], set.id.as_str());

        let mut cm = ConfigMap::default();
        let as_map =
            |v: &Value| -> BTreeMap<String, String> { serde_json::from_value(v.clone()).unwrap() };
        cm.metadata.annotations = Some(as_map(annotations));
        let back = recorded(&cm);
        assert_eq!(back.group_kinds, kinds);
        assert_eq!(
            back.namespaces,
            ["external-dns".to_owned()].into_iter().collect()
        );
        assert_eq!(back.foreign_tooling, None);
    }

    #[test]
    fn another_tools_parent_is_recognised() {
        let mut cm = ConfigMap::default();
        cm.metadata.annotations =
            Some([(TOOLING_ANNOTATION.to_owned(), "kubectl/v1.35".to_owned())].into());
        assert_eq!(
            recorded(&cm).foreign_tooling.as_deref(),
            Some("kubectl/v1.35")
        );
    }
}
