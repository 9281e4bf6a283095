//! Notices when what the expected records come from changes, so that the DNS proof derives
//! them again only then, not every round. PowerDNS has to be polled, the cluster need not
//! be: on a Sovereign with thousands of Services, listing them every round would load the
//! apiserver that external-dns's own start-up sync is competing for.
//!
//! After a derivation, one watch per source kind (metadata only) starts from the resource
//! version of its lists, so no change made since is missed and nothing is listed twice. A
//! change, or a watch that fails (the apiserver gone, the resource version too old), marks
//! the records stale: the next round derives them again through the retry policy, which
//! rides out an outage and names a refusal as the derivation always has, and then watches
//! anew. A source kind that is not served (the Gateway API CRDs not installed yet) cannot be
//! watched into existence, so while one is missing the records are derived again every
//! [`UNSERVED_REFRESH`].
//!
//! The watches are also how the proof hears from the apiserver between derivations: one the
//! apiserver ends on time, a bookmark (about one a minute), or an event, says it answered
//! then ([`Changes::last_heard`]). A quiet watch says nothing for a while (up to a minute
//! over HTTP/2, where a dead connection fails it within 25 s of pings unanswered; up to
//! [`crate::retry::WATCH_TIMEOUT_SECS`] over HTTP/1.1), so an outage found by the next
//! derivation is taken to have begun at the last word heard: the proof's clock pauses from
//! there, erring towards patience rather than failing on time the apiserver did not answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Api, DynamicObject, WatchEvent, WatchParams};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::expected::{Derived, Scope};

/// How often the records are derived again while a source kind is not served.
pub const UNSERVED_REFRESH: Duration = Duration::from_secs(60);

/// The watches of one derivation's sources; dropping it ends them.
pub struct Changes {
    stale: Arc<AtomicBool>,
    heard: Heard,
    refresh_at: Option<Instant>,
    _watches: JoinSet<()>,
}

impl Changes {
    /// Watches the sources of `derived` for a change from its lists on. Without a resource
    /// version to start from (nothing was listed), nothing is watched and nothing changes
    /// unless a kind is unserved.
    /// Each watch asks the apiserver for `watch_secs` (see [`crate::retry::watch_timeout_secs`]).
    pub fn watch(
        client: &Client,
        derived: &Derived,
        scope: &Scope,
        watch_secs: u32,
        now: Instant,
    ) -> Changes {
        let stale = Arc::new(AtomicBool::new(false));
        let heard = Heard(Arc::new(Mutex::new(now)));
        let mut watches = JoinSet::new();
        if let Some(version) = &derived.resource_version {
            for resource in &derived.sources {
                let api = scope.api(client, resource);
                let watch = until_changed(
                    api,
                    version.clone(),
                    watch_secs,
                    stale.clone(),
                    heard.clone(),
                );
                watches.spawn(watch);
            }
        }
        Changes {
            stale,
            heard,
            refresh_at: derived.unserved.then(|| now + UNSERVED_REFRESH),
            _watches: watches,
        }
    }

    /// Whether the records must be derived again.
    pub fn stale(&self, now: Instant) -> bool {
        self.stale.load(Ordering::Relaxed) || self.refresh_at.is_some_and(|at| now >= at)
    }

    /// Makes the records stale: the next round derives them again.
    pub fn expire(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// When the apiserver last answered one of the watches (or, before any did, when the
    /// derivation they watch was made).
    pub fn last_heard(&self) -> Instant {
        self.heard.get()
    }
}

/// The last time a watch heard from the apiserver, shared by the watches.
#[derive(Clone)]
struct Heard(Arc<Mutex<Instant>>);

impl Heard {
    fn now(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn get(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Watches `api` from `version` until something changes or the watch fails, then marks
/// `stale`. A watch the apiserver ends on its timeout is renewed from the last version seen
/// (bookmarks keep it fresh).
async fn until_changed(
    api: Api<DynamicObject>,
    mut version: String,
    watch_secs: u32,
    stale: Arc<AtomicBool>,
    heard: Heard,
) {
    let params = WatchParams::default().timeout(watch_secs);
    loop {
        let Ok(events) = api.watch_metadata(&params, &version).await else {
            break;
        };
        heard.now();
        let mut events = events.boxed();
        loop {
            match events.try_next().await {
                // Ended on its timeout: renew.
                Ok(None) => {
                    heard.now();
                    break;
                }
                Ok(Some(WatchEvent::Bookmark(bookmark))) => {
                    heard.now();
                    version = bookmark.metadata.resource_version;
                }
                Ok(Some(
                    WatchEvent::Added(_) | WatchEvent::Modified(_) | WatchEvent::Deleted(_),
                ))
                | Ok(Some(WatchEvent::Error(_)))
                | Err(_) => {
                    stale.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    stale.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use http::Method;
    use k8s_openapi::api::core::v1::Service;
    use kube::api::ApiResource;
    use serde_json::json;

    use super::*;
    use crate::recorded::{Seen, apiserver, exchange};

    const SERVICES: &str = "/api/v1/namespaces/ns/services";

    fn derived(version: Option<&str>, unserved: bool) -> Derived {
        Derived {
            records: vec![],
            sources: vec![ApiResource::erase::<Service>(&())],
            resource_version: version.map(str::to_owned),
            unserved,
        }
    }

    fn scope() -> Scope {
        Scope {
            namespace: Some("ns".to_owned()),
        }
    }

    fn event(kind: &str, metadata: serde_json::Value) -> serde_json::Value {
        json!({"type": kind, "object": {"kind": "PartialObjectMetadata",
                                         "apiVersion": "meta.k8s.io/v1", "metadata": metadata}})
    }

    /// Watches the Services of a derivation at version 5 through an apiserver answering
    /// `script` until the records are stale (at most 10 s): the requests it saw, and whether
    /// the watches heard from it after the derivation.
    async fn watched_until_stale(script: Vec<crate::recorded::Exchange>) -> (Vec<Seen>, bool) {
        let (client, answering) = apiserver(script);
        let derived_at = Instant::now();
        let changes = Changes::watch(
            &client,
            &derived(Some("5"), false),
            &scope(),
            25,
            derived_at,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !changes.stale(Instant::now()) {
            assert!(Instant::now() < deadline, "never stale");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let heard = changes.last_heard() > derived_at;
        drop((changes, client));
        (answering.await.expect("the recorded apiserver"), heard)
    }

    #[tokio::test]
    async fn a_watch_from_the_lists_version_renews_from_its_bookmarks_until_a_change() {
        let (seen, heard) = watched_until_stale(vec![
            // Ends on its timeout after a bookmark: renewed from the bookmark's version.
            exchange(
                Method::GET,
                SERVICES,
                200,
                event("BOOKMARK", json!({"resourceVersion": "7"})),
            ),
            exchange(
                Method::GET,
                SERVICES,
                200,
                event(
                    "ADDED",
                    json!({"name": "web", "namespace": "ns", "resourceVersion": "8"}),
                ),
            ),
        ])
        .await;
        assert!(heard, "an answered watch is word from the apiserver");
        let asked: Vec<_> = seen
            .iter()
            .map(|s| (s.query("watch"), s.query("resourceVersion")))
            .collect();
        assert_eq!(
            asked,
            [(Some("true"), Some("5")), (Some("true"), Some("7"))]
        );
        assert!(
            seen.iter().all(|s| s.query("timeoutSeconds") == Some("25")
                && s.query("allowWatchBookmarks") == Some("true")),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_watch_the_apiserver_refuses_makes_the_records_stale() {
        let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "message": "too old resource version: 5 (9)", "reason": "Expired",
                          "code": 410});
        let (seen, _) = watched_until_stale(vec![exchange(Method::GET, SERVICES, 410, gone)]).await;
        assert_eq!(seen.len(), 1);
    }

    #[tokio::test]
    async fn an_unserved_source_is_derived_again_every_refresh_and_nothing_is_watched_unlisted() {
        let (client, answering) = apiserver(vec![]);
        let start = Instant::now();
        let changes = Changes::watch(&client, &derived(None, true), &scope(), 25, start);
        assert!(!changes.stale(start));
        assert!(!changes.stale(start + UNSERVED_REFRESH - Duration::from_millis(1)));
        assert!(changes.stale(start + UNSERVED_REFRESH));
        let quiet = Changes::watch(&client, &derived(None, false), &scope(), 25, start);
        assert!(!quiet.stale(start + UNSERVED_REFRESH * 10));
        drop((changes, quiet, client));
        assert!(answering.await.expect("the recorded apiserver").is_empty());
    }
}
