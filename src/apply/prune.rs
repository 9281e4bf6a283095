//! Prune: members of the kit's ApplySet that left the kit are deleted, each with its UID
//! as precondition; an object without the ApplySet's part-of label is never touched.

use std::collections::{BTreeSet, HashMap, HashSet};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::{Client, ResourceExt};

use super::{
    ApplyError, ApplyEvent, ApplyOptions, ApplySet, GroupKind, Key, ObjectResult, Outcome,
    PART_OF_LABEL, crds,
};
use crate::retry::{RetryPolicy, with_retry};

pub(super) struct PruneScope<'a> {
    pub(super) set: &'a ApplySet,
    pub(super) kinds: &'a BTreeSet<GroupKind>,
    pub(super) namespaces: &'a BTreeSet<String>,
    pub(super) current: &'a HashSet<Key>,
    pub(super) known: &'a HashMap<GroupKind, crds::Resolved>,
}

/// Deletes members of the set that are not in the current kit. Membership is the part-of
/// label alone: an object without it is never touched, whatever other labels it has.
pub(super) async fn prune(
    client: &Client,
    opts: &ApplyOptions,
    scope: &PruneScope<'_>,
) -> Result<Vec<ObjectResult>, ApplyError> {
    let policy = &opts.retry;
    let set = scope.set;
    let selector = format!("{PART_OF_LABEL}={}", set.id);
    let list_params = ListParams::default().labels(&selector);
    let mut out = Vec::new();
    for gk in scope.kinds {
        let resolved = match scope.known.get(gk) {
            Some(r) => r.clone(),
            None => match crds::resolve_group_kind(client, policy, &gk.group, &gk.kind).await? {
                Some(r) => r,
                // Nothing serves the kind any more, so no object of it exists.
                None => continue,
            },
        };
        let apis: Vec<Api<DynamicObject>> = if resolved.namespaced {
            scope
                .namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, &resolved.resource))
                .collect()
        } else {
            vec![Api::all_with(client.clone(), &resolved.resource)]
        };
        for api in apis {
            let listed = with_retry(policy, &format!("list {gk} of {}", set.parent_name), || {
                api.list(&list_params)
            })
            .await?;
            for obj in listed.items {
                // The selector has already done this; a deletion must not rest on one check.
                if obj.labels().get(PART_OF_LABEL) != Some(&set.id) {
                    continue;
                }
                let key = (gk.clone(), obj.namespace(), obj.name_any());
                if scope.current.contains(&key) {
                    continue;
                }
                let mut result = ObjectResult {
                    api_version: resolved.resource.api_version.clone(),
                    kind: gk.kind.clone(),
                    namespace: key.1,
                    name: key.2,
                    outcome: Outcome::WouldPrune,
                    changed: Vec::new(),
                };
                if gk.group.is_empty() && gk.kind == "Namespace" {
                    result.outcome = Outcome::Orphaned;
                } else if !opts.dry_run {
                    delete(policy, &api, &result, obj.uid()).await?;
                    result.outcome = Outcome::Pruned;
                }
                opts.events.emit_with(|| ApplyEvent::Object(result.clone()));
                out.push(result);
            }
        }
    }
    Ok(out)
}

/// Deletes with the listed object's UID as precondition, so that an object recreated since
/// (by someone else) is not deleted in its place. Already gone counts as done.
async fn delete(
    policy: &RetryPolicy,
    api: &Api<DynamicObject>,
    object: &ObjectResult,
    uid: Option<String>,
) -> Result<(), ApplyError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let what = format!("prune {}", object.describe());
    with_retry(policy, &what, || async {
        match api.delete(&object.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use http::Method;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::discovery::ApiResource;
    use serde_json::{Value, json};

    use super::*;
    use crate::recorded::{Seen, apiserver, exchange, not_found};

    const CONFIGMAPS: &str = "/api/v1/namespaces/ns/configmaps";

    fn resolved<K: kube::Resource<DynamicType = ()>>(
        namespaced: bool,
    ) -> (GroupKind, crds::Resolved) {
        let resource = ApiResource::erase::<K>(&());
        let kind = GroupKind::new(&resource.group, &resource.kind);
        (
            kind,
            crds::Resolved {
                resource,
                namespaced,
            },
        )
    }

    fn object(kind: &str, name: &str, uid: &str, part_of: Option<&str>) -> Value {
        let mut metadata = json!({"name": name, "uid": uid, "resourceVersion": "5"});
        if kind != "Namespace" {
            metadata["namespace"] = json!("ns");
        }
        if let Some(id) = part_of {
            metadata["labels"] = json!({PART_OF_LABEL: id});
        }
        json!({"apiVersion": "v1", "kind": kind, "metadata": metadata})
    }

    fn list(items: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "9"},
               "items": items})
    }

    /// Prunes a set whose current kit holds only ConfigMap ns/kept, with `script` answering.
    async fn prune_with(
        dry_run: bool,
        script: Vec<crate::recorded::Exchange>,
    ) -> (Vec<(String, Outcome)>, Vec<Seen>) {
        let set = ApplySet::new("example", "ns");
        let kinds: BTreeSet<GroupKind> = [
            GroupKind::new("", "ConfigMap"),
            GroupKind::new("", "Namespace"),
        ]
        .into();
        let namespaces: BTreeSet<String> = ["ns".to_owned()].into();
        let current: HashSet<Key> = [(
            GroupKind::new("", "ConfigMap"),
            Some("ns".to_owned()),
            "kept".to_owned(),
        )]
        .into();
        let known: HashMap<GroupKind, crds::Resolved> =
            [resolved::<ConfigMap>(true), resolved::<Namespace>(false)].into();
        let scope = PruneScope {
            set: &set,
            kinds: &kinds,
            namespaces: &namespaces,
            current: &current,
            known: &known,
        };
        let (client, answering) = apiserver(script);
        let opts = ApplyOptions::new("example", "ns").with_dry_run(dry_run);
        let results = prune(&client, &opts, &scope).await.unwrap();
        drop(client);
        let outcomes = results
            .iter()
            .map(|r| (r.name.clone(), r.outcome))
            .collect();
        (outcomes, answering.await.unwrap())
    }

    /// The lists of a set with one member gone from the kit, and `delete`'s answer to its
    /// deletion when one is expected.
    fn members(id: &str, delete: Option<(u16, Value)>) -> Vec<crate::recorded::Exchange> {
        let mut script = vec![
            exchange(
                Method::GET,
                CONFIGMAPS,
                200,
                list(vec![
                    object("ConfigMap", "kept", "u-kept", Some(id)),
                    object("ConfigMap", "gone", "u-gone", Some(id)),
                    // Listed although the selector should have left it out: still not ours.
                    object("ConfigMap", "foreign", "u-foreign", Some("applyset-other")),
                    object("ConfigMap", "unlabelled", "u-unlabelled", None),
                ]),
            ),
            exchange(
                Method::GET,
                "/api/v1/namespaces",
                200,
                list(vec![object("Namespace", "old-ns", "u-ns", Some(id))]),
            ),
        ];
        if let Some((status, answer)) = delete {
            let path = format!("{CONFIGMAPS}/gone");
            script.insert(1, exchange(Method::DELETE, &path, status, answer));
        }
        script
    }

    #[tokio::test]
    async fn a_member_that_left_the_kit_is_deleted_with_its_uid_and_nothing_else_is() {
        let id = ApplySet::new("example", "ns").id;
        let deleted = object("ConfigMap", "gone", "u-gone", Some(&id));
        let (outcomes, seen) = prune_with(false, members(&id, Some((200, deleted)))).await;
        assert_eq!(
            outcomes,
            [
                ("gone".to_owned(), Outcome::Pruned),
                ("old-ns".to_owned(), Outcome::Orphaned)
            ]
        );
        assert_eq!(
            seen[0].query("labelSelector"),
            Some(format!("applyset.kubernetes.io%2Fpart-of%3D{id}").as_str())
        );
        assert_eq!(seen[1].body["preconditions"], json!({"uid": "u-gone"}));
        assert_eq!(seen[1].body["propagationPolicy"], json!("Background"));
    }

    #[tokio::test]
    async fn a_dry_run_lists_and_deletes_nothing() {
        let id = ApplySet::new("example", "ns").id;
        let (outcomes, seen) = prune_with(true, members(&id, None)).await;
        assert_eq!(
            outcomes,
            [
                ("gone".to_owned(), Outcome::WouldPrune),
                ("old-ns".to_owned(), Outcome::Orphaned)
            ]
        );
        assert!(seen.iter().all(|s| s.method == Method::GET), "{seen:?}");
    }

    #[tokio::test]
    async fn a_member_already_gone_counts_as_pruned() {
        let id = ApplySet::new("example", "ns").id;
        let gone = not_found("configmaps", "gone");
        let (outcomes, _) = prune_with(false, members(&id, Some((404, gone)))).await;
        assert_eq!(outcomes[0], ("gone".to_owned(), Outcome::Pruned));
    }
}
