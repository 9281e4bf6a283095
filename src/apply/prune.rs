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
                opts.emit(ApplyEvent::Object(&result));
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
