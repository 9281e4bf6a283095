//! Server-side apply of a bootstrap kit, with ApplySet ownership and prune.
//!
//! [`apply`] resolves every kind first (waiting for CRDs that are still being installed), so
//! that a typo or a missing component never leaves half a kit behind; then applies in kind
//! order, records ownership in the ApplySet parent, and prunes members that left the kit.
//! Every apiserver call goes through [`crate::retry`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use thiserror::Error;

use crate::exit::Exit;
use crate::report::Sink;
use crate::retry::{RetryError, RetryPolicy, with_retry};

mod applyset;
mod crds;
mod diff;
mod manifest;
mod prune;

use prune::{PruneScope, prune};

pub use applyset::{
    ApplySet, GROUP_KINDS_ANNOTATION, GroupKind, ID_LABEL, MANAGED_BY_LABEL, NAMESPACES_ANNOTATION,
    PART_OF_LABEL, SOVEREIGN_LABEL, TOOL, TOOLING_ANNOTATION, applyset_id, tooling,
};
pub use crds::{CrdSource, KNOWN_CRDS, MissingCrd};
pub use manifest::{Desired, in_apply_order, parse, rank};

/// The one field manager of every write. A fixed name keeps field ownership stable across
/// runs and versions of the tool.
pub const FIELD_MANAGER: &str = "catalyst-bootstrap";

/// How long to wait for an unserved kind's CRD by default.
pub const DEFAULT_CRD_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Who owns the objects, and how to apply them.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The Sovereign's name: labels every object and names the parent
    /// `catalyst-bootstrap-<sovereign>`. A DNS label.
    pub sovereign: String,
    /// Namespace of the ApplySet parent ConfigMap. It may be one the kit creates.
    pub parent_namespace: String,
    /// Server-side dry run: nothing is written and nothing is pruned.
    pub dry_run: bool,
    pub crd_timeout: Duration,
    pub retry: RetryPolicy,
    events: Sink<ApplyEvent>,
}

impl ApplyOptions {
    pub fn new(sovereign: impl Into<String>, parent_namespace: impl Into<String>) -> Self {
        ApplyOptions {
            sovereign: sovereign.into(),
            parent_namespace: parent_namespace.into(),
            dry_run: false,
            crd_timeout: DEFAULT_CRD_TIMEOUT,
            retry: RetryPolicy::default(),
            events: Sink::default(),
        }
    }

    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn with_crd_timeout(mut self, timeout: Duration) -> Self {
        self.crd_timeout = timeout;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Where the apply's events go as it progresses, e.g. to print or emit NDJSON events.
    pub fn on_event(mut self, sink: Sink<ApplyEvent>) -> Self {
        self.events = sink;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    /// Applying changed no declared field (status and server metadata aside). The
    /// resourceVersion then stays too, except on a custom resource's first update after
    /// creation, when the apiserver persists its read-time status defaults.
    Unchanged,
    Pruned,
    /// Would be pruned, in a dry run.
    WouldPrune,
    /// No longer in the kit, but kept: a Namespace, whose deletion would delete everything in
    /// it, including objects that are not ours. It stays recorded in the ApplySet, and is
    /// reported on every run until someone deletes it.
    Orphaned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectResult {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub outcome: Outcome,
    /// JSON-pointer paths that changed (or would), status and server metadata aside.
    pub changed: Vec<String>,
}

impl ObjectResult {
    pub fn describe(&self) -> String {
        manifest::describe(&self.kind, self.namespace.as_deref(), &self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub applyset_id: String,
    /// `namespace/name` of the parent ConfigMap.
    pub parent: String,
    pub dry_run: bool,
    /// Applied objects in apply order, then pruned ones.
    pub objects: Vec<ObjectResult>,
}

impl ApplyReport {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.objects.iter().filter(|o| o.outcome == outcome).count()
    }
}

#[derive(Debug, Clone)]
pub enum ApplyEvent {
    /// A kind is not served yet; the wait for its CRD has started.
    WaitingForCrd(MissingCrd),
    /// An object was applied or pruned (or would be).
    Object(ObjectResult),
}

/// Why an apply failed. [`ApplyError::exit`] maps each to the tool's exit code.
#[derive(Debug, Error)]
pub enum ApplyError {
    /// A manifest is not a valid Kubernetes object, names a kind no built-in API serves, or
    /// mismatches its kind's scope. Exit 3 (bad input).
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },
    /// The sovereign or parent namespace is not a valid name. Exit 3 (bad input).
    #[error("invalid apply options: {0}")]
    Options(String),
    /// A kind's CRD did not appear in time. Exit 5 (timed out): the cause is a component that
    /// has not (yet) installed it, which the message names.
    #[error(
        "gave up after {}s waiting for kind {} ({}): its CRD {} is not installed; it comes from {}",
        waited.as_secs(), missing.kind, missing.api_version, missing.crd, missing.installer
    )]
    CrdTimeout {
        missing: MissingCrd,
        waited: Duration,
    },
    /// The parent ConfigMap belongs to another tool's ApplySet. Exit 3 (bad input): choose
    /// another sovereign name or parent namespace.
    #[error("ConfigMap {parent} is the ApplySet parent of {tooling}, not of catalyst-bootstrap")]
    ForeignApplySet { parent: String, tooling: String },
    /// An apiserver call failed: exit 6 when unreachable, 8 when forbidden or unauthorized,
    /// 3 when the apiserver rejected a manifest as invalid, else 1 (see [`RetryError::exit`]).
    #[error(transparent)]
    Api(#[from] RetryError),
}

impl ApplyError {
    pub fn exit(&self) -> Exit {
        match self {
            ApplyError::Manifest { .. }
            | ApplyError::Options(_)
            | ApplyError::ForeignApplySet { .. } => Exit::BadInput,
            ApplyError::CrdTimeout { .. } => Exit::TimedOut,
            ApplyError::Api(e) => e.exit(),
        }
    }
}

/// A kit object ready to apply.
struct Member<'a> {
    desired: &'a Desired,
    resolved: crds::Resolved,
    /// The manifest with our ownership labels.
    object: DynamicObject,
}

impl Member<'_> {
    fn api(&self, client: &Client) -> Api<DynamicObject> {
        match self.desired.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resolved.resource),
            None => Api::all_with(client.clone(), &self.resolved.resource),
        }
    }

    fn group_kind(&self) -> GroupKind {
        GroupKind::new(&self.desired.gvk.group, &self.desired.gvk.kind)
    }

    fn is_namespace(&self) -> bool {
        self.desired.gvk.group.is_empty() && self.desired.gvk.kind == "Namespace"
    }

    fn result(&self, outcome: Outcome) -> ObjectResult {
        ObjectResult {
            api_version: self.desired.gvk.api_version(),
            kind: self.desired.gvk.kind.clone(),
            namespace: self.desired.namespace().map(str::to_owned),
            name: self.desired.name().to_owned(),
            outcome,
            changed: Vec::new(),
        }
    }
}

type Key = (GroupKind, Option<String>, String);

/// Applies the kit and prunes what left it. With `opts.dry_run`, reports what would happen
/// (see [`diff`]).
pub async fn apply(
    client: &Client,
    kit: &[Desired],
    opts: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    validate(opts)?;
    let set = ApplySet::new(&opts.sovereign, &opts.parent_namespace);
    let policy = &opts.retry;

    let members = resolve_all(client, kit, opts, &set).await?;
    let current: HashSet<Key> = members
        .iter()
        .map(|m| {
            (
                m.group_kind(),
                m.desired.namespace().map(str::to_owned),
                m.desired.name().to_owned(),
            )
        })
        .collect();
    let current_kinds: BTreeSet<GroupKind> = members.iter().map(Member::group_kind).collect();
    let current_namespaces: BTreeSet<String> = members
        .iter()
        .filter_map(|m| m.desired.namespace().map(str::to_owned))
        .collect();

    let parents: Api<ConfigMap> = Api::namespaced(client.clone(), &set.parent_namespace);
    let parent_id = format!("{}/{}", set.parent_namespace, set.parent_name);
    let previous = with_retry(
        policy,
        &format!("read ApplySet parent ConfigMap {parent_id}"),
        || parents.get_opt(&set.parent_name),
    )
    .await?;
    let recorded = previous
        .as_ref()
        .map(applyset::recorded)
        .unwrap_or_default();
    if let Some(tooling) = recorded.foreign_tooling {
        return Err(ApplyError::ForeignApplySet {
            parent: parent_id,
            tooling,
        });
    }
    // Prune looks at everything either run may have created.
    let all_kinds: BTreeSet<GroupKind> = recorded
        .group_kinds
        .union(&current_kinds)
        .cloned()
        .collect();
    let mut all_namespaces: BTreeSet<String> = recorded
        .namespaces
        .union(&current_namespaces)
        .cloned()
        .collect();
    all_namespaces.insert(set.parent_namespace.clone());

    let mut objects = Vec::new();
    // Namespaces that a dry run found missing: their contents cannot be dry-run on the server.
    let mut would_create = HashSet::new();
    // Namespaces go first because the parent may live in one of them. Namespaces are never
    // pruned, so one applied before the parent records it is never lost track of.
    let (namespaces, others): (Vec<&Member>, Vec<&Member>) =
        members.iter().partition(|m| m.is_namespace());
    for member in namespaces {
        let result = apply_one(client, policy, member, opts.dry_run, &would_create).await?;
        if opts.dry_run && result.outcome == Outcome::Created {
            would_create.insert(result.name.clone());
        }
        opts.events.emit_with(|| ApplyEvent::Object(result.clone()));
        objects.push(result);
    }
    if !opts.dry_run {
        // Record the superset first: if this run dies midway, the next one still prunes
        // what this one may have created.
        write_parent(client, policy, &set, &all_kinds, &all_namespaces).await?;
    }
    for member in others {
        let result = apply_one(client, policy, member, opts.dry_run, &would_create).await?;
        opts.events.emit_with(|| ApplyEvent::Object(result.clone()));
        objects.push(result);
    }

    let known: HashMap<GroupKind, crds::Resolved> = members
        .iter()
        .map(|m| (m.group_kind(), m.resolved.clone()))
        .collect();
    let scope = PruneScope {
        set: &set,
        kinds: &all_kinds,
        namespaces: &all_namespaces,
        current: &current,
        known: &known,
    };
    let pruned = prune(client, opts, &scope).await?;
    let mut final_kinds = current_kinds;
    for p in pruned.iter().filter(|p| p.outcome == Outcome::Orphaned) {
        final_kinds.insert(GroupKind::new("", &p.kind));
    }
    if !opts.dry_run {
        write_parent(client, policy, &set, &final_kinds, &current_namespaces).await?;
    }
    objects.extend(pruned);
    Ok(ApplyReport {
        applyset_id: set.id,
        parent: parent_id,
        dry_run: opts.dry_run,
        objects,
    })
}

fn validate(opts: &ApplyOptions) -> Result<(), ApplyError> {
    for (what, name) in [
        ("sovereign", &opts.sovereign),
        ("parent namespace", &opts.parent_namespace),
    ] {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !ok {
            return Err(ApplyError::Options(format!(
                "{what} {name:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"
            )));
        }
    }
    Ok(())
}

/// Resolves every kind (waiting for CRDs) and prepares the objects, in apply order.
async fn resolve_all<'a>(
    client: &Client,
    kit: &'a [Desired],
    opts: &ApplyOptions,
    set: &ApplySet,
) -> Result<Vec<Member<'a>>, ApplyError> {
    let mut ordered: Vec<&Desired> = kit.iter().collect();
    ordered.sort_by_key(|d| d.rank());
    let mut cache: HashMap<&GroupVersionKind, crds::Resolved> = HashMap::new();
    let mut members = Vec::new();
    for desired in ordered {
        let resolved = match cache.get(&desired.gvk) {
            Some(r) => r.clone(),
            None => {
                let r = crds::resolve(
                    client,
                    &opts.retry,
                    &desired.gvk,
                    &desired.file_name,
                    opts.crd_timeout,
                    |missing| {
                        opts.events
                            .emit_with(|| ApplyEvent::WaitingForCrd(missing.clone()))
                    },
                )
                .await?;
                cache.insert(&desired.gvk, r.clone());
                r
            }
        };
        let scope_error = match (resolved.namespaced, desired.namespace()) {
            (true, None) => Some("is namespaced and needs metadata.namespace"),
            (false, Some(_)) => Some("is cluster-scoped and must not set metadata.namespace"),
            _ => None,
        };
        if let Some(problem) = scope_error {
            return Err(ApplyError::Manifest {
                file: desired.file_name.clone(),
                message: format!(
                    "{}: kind {} {problem}",
                    desired.describe(),
                    desired.gvk.kind
                ),
            });
        }
        let mut object = desired.object.clone();
        let labels = object.metadata.labels.get_or_insert_with(Default::default);
        for (key, value) in set.member_labels() {
            labels.insert(key.to_owned(), value.to_owned());
        }
        // Server-maintained fields in a manifest (say, one exported from a cluster) would make
        // the apply fail or fight the server.
        object.metadata.resource_version = None;
        object.metadata.uid = None;
        object.metadata.managed_fields = None;
        object.metadata.creation_timestamp = None;
        members.push(Member {
            desired,
            resolved,
            object,
        });
    }
    Ok(members)
}

async fn apply_one(
    client: &Client,
    policy: &RetryPolicy,
    member: &Member<'_>,
    dry_run: bool,
    would_create: &HashSet<String>,
) -> Result<ObjectResult, ApplyError> {
    let mut result = member.result(Outcome::Created);
    if dry_run
        && member
            .desired
            .namespace()
            .is_some_and(|ns| would_create.contains(ns))
    {
        return Ok(result);
    }
    let api = member.api(client);
    let name = member.desired.name();
    let id = member.desired.describe();
    let before = with_retry(policy, &format!("read {id}"), || api.get_opt(name)).await?;
    // Forcing is safe and intended: these fields are ours by definition of the kit, and an
    // apply conflict only arises when another manager owns the same field (someone edited it
    // by hand). The Kubernetes server-side apply documentation advises controllers to force;
    // we restore the declared state as a controller would.
    let params = PatchParams {
        dry_run,
        ..PatchParams::apply(FIELD_MANAGER).force()
    };
    let patch = Patch::Apply(&member.object);
    let after = with_retry(policy, &format!("apply {id}"), || {
        api.patch(name, &params, &patch)
    })
    .await?;
    if let Some(before) = before {
        result.changed = diff::changed_paths(&before, &after);
        // Applying identical content does not write, so the resourceVersion stays. Content
        // decides too: a dry run writes nothing either way, and on the first update after
        // creation the apiserver persists defaults it had only applied on read (status
        // defaults of custom resources, e.g. Flux's `status.observedGeneration: -1`), which
        // bumps the resourceVersion although nothing declared changed.
        let same_version =
            !dry_run && before.metadata.resource_version == after.metadata.resource_version;
        result.outcome = if same_version || result.changed.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Configured
        };
    }
    Ok(result)
}

async fn write_parent(
    client: &Client,
    policy: &RetryPolicy,
    set: &ApplySet,
    kinds: &BTreeSet<GroupKind>,
    namespaces: &BTreeSet<String>,
) -> Result<(), ApplyError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &set.parent_namespace);
    let body = set.parent_body(kinds, namespaces);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&body);
    let what = format!(
        "record the ApplySet in ConfigMap {}/{}",
        set.parent_namespace, set.parent_name
    );
    with_retry(policy, &what, || {
        api.patch(&set.parent_name, &params, &patch)
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The ApplySet parent's bookkeeping against recorded apiserver answers.

    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::recorded::{Seen, apiserver, exchange};

    const PARENT: &str = "/api/v1/namespaces/kube-system/configmaps/catalyst-bootstrap-demo";

    fn kinds() -> BTreeSet<GroupKind> {
        [
            GroupKind::new("helm.toolkit.fluxcd.io", "HelmRelease"),
            GroupKind::new("", "ConfigMap"),
        ]
        .into()
    }

    fn namespaces() -> BTreeSet<String> {
        ["kube-system".to_owned(), "external-dns".to_owned()].into()
    }

    async fn write(
        script: Vec<crate::recorded::Exchange>,
    ) -> (Result<(), ApplyError>, Vec<Seen>, u64) {
        let set = ApplySet::new("demo", "kube-system");
        let mut policy = RetryPolicy::default();
        policy.min_delay = Duration::from_millis(1);
        policy.max_delay = Duration::from_millis(1);
        let (client, answering) = apiserver(script);
        let written = write_parent(&client, &policy, &set, &kinds(), &namespaces()).await;
        drop(client);
        let retries = policy.stats().snapshot().retries;
        (
            written,
            answering.await.expect("the recorded apiserver"),
            retries,
        )
    }

    #[tokio::test]
    async fn the_parent_records_the_sets_kinds_and_other_namespaces_by_server_side_apply() {
        let set = ApplySet::new("demo", "kube-system");
        let stored = set.parent_body(&kinds(), &namespaces());
        let (written, seen, retries) =
            write(vec![exchange(Method::PATCH, PARENT, 200, stored)]).await;
        written.expect("the parent is written");
        assert_eq!(retries, 0);
        let [patch] = seen.as_slice() else {
            panic!("one request, got {seen:?}");
        };
        assert_eq!(patch.query("fieldManager"), Some(FIELD_MANAGER));
        assert_eq!(patch.query("force"), Some("true"));
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        let metadata = &patch.body["metadata"];
        assert_eq!(metadata["name"], "catalyst-bootstrap-demo");
        assert_eq!(metadata["labels"][ID_LABEL], set.id.as_str());
        assert_eq!(metadata["labels"][SOVEREIGN_LABEL], "demo");
        // Kinds sorted as text, as kubectl writes them; the parent's own namespace is not
        // an additional one.
        assert_eq!(
            metadata["annotations"][GROUP_KINDS_ANNOTATION],
            "ConfigMap,HelmRelease.helm.toolkit.fluxcd.io"
        );
        assert_eq!(
            metadata["annotations"][NAMESPACES_ANNOTATION],
            "external-dns"
        );
        assert_eq!(metadata["annotations"][TOOLING_ANNOTATION], tooling());
    }

    #[tokio::test]
    async fn a_parent_write_answered_503_is_retried_and_one_refused_as_invalid_is_not() {
        let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "message": "the server is currently unable to handle the request",
                                 "reason": "ServiceUnavailable", "code": 503});
        let stored = ApplySet::new("demo", "kube-system").parent_body(&kinds(), &namespaces());
        let (written, seen, retries) = write(vec![
            exchange(Method::PATCH, PARENT, 503, unavailable),
            exchange(Method::PATCH, PARENT, 200, stored),
        ])
        .await;
        written.expect("written on the second try");
        assert_eq!((seen.len(), retries), (2, 1));
        assert_eq!(seen[0].body, seen[1].body, "the same patch again");

        let invalid = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "message": "ConfigMap \"catalyst-bootstrap-demo\" is invalid",
                             "reason": "Invalid", "code": 422});
        let (written, seen, retries) =
            write(vec![exchange(Method::PATCH, PARENT, 422, invalid)]).await;
        let err = written.expect_err("refused");
        assert_eq!((seen.len(), retries), (1, 0));
        assert_eq!(err.exit(), Exit::BadInput);
        assert_eq!(
            err.to_string(),
            "record the ApplySet in ConfigMap kube-system/catalyst-bootstrap-demo: rejected as \
             invalid: ConfigMap \"catalyst-bootstrap-demo\" is invalid"
        );
    }
}
