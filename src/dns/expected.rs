//! The records external-dns should have written, derived from what it reads: annotated
//! LoadBalancer Services, Ingresses, and Gateway API routes, within the domain filters;
//! plus spec.verify.hostnames. Every apiserver call goes through [`with_retry`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::retry::{RetryError, RetryPolicy, with_retry};
use crate::spec::Sovereign;

/// The record type external-dns writes for a set of targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    /// spec.verify.hostnames: existence only, any of A, AAAA or CNAME.
    Any,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Any => "ANY",
        }
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rrset external-dns should have written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedRecord {
    /// Lowercase, without a trailing dot.
    pub hostname: String,
    pub rtype: RecordType,
    /// Sorted; empty for [`RecordType::Any`].
    pub targets: Vec<String>,
    /// `service/ns/name`, `ingress/ns/name`, `httproute/ns/name`, `grpcroute/ns/name`, `spec`.
    pub source: String,
    /// The PowerDNS zone holding the name (see [`Filters::zone_of`]).
    pub zone: String,
}

/// IPv4 → A, IPv6 → AAAA, anything else is a hostname → CNAME.
pub fn classify_target(target: &str) -> RecordType {
    match target.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => RecordType::A,
        Ok(IpAddr::V6(_)) => RecordType::Aaaa,
        Err(_) => RecordType::Cname,
    }
}

/// Which names external-dns manages: spec.domain plus spec.externalDns.domainFilters.
#[derive(Debug, Clone)]
pub struct Filters {
    domains: Vec<String>,
    primary: String,
}

impl Filters {
    pub fn new(sovereign: &Sovereign) -> Filters {
        let norm = |d: &str| d.trim_end_matches('.').to_ascii_lowercase();
        let primary = norm(&sovereign.spec.domain);
        let mut domains = vec![primary.clone()];
        domains.extend(
            sovereign
                .spec
                .external_dns
                .domain_filters
                .iter()
                .map(|d| norm(d)),
        );
        Filters { domains, primary }
    }

    fn within(name: &str, domain: &str) -> bool {
        name == domain || name.ends_with(&format!(".{domain}"))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.domains.iter().any(|d| Self::within(name, d))
    }

    /// The zone to read for a name: spec.domain when the name is under it, else the longest
    /// matching domain filter. (A filter naming a subdomain of a zone is read as that zone
    /// only when it is under spec.domain; other filters are taken to be zones.)
    pub fn zone_of(&self, name: &str) -> Option<String> {
        if Self::within(name, &self.primary) {
            return Some(self.primary.clone());
        }
        self.domains
            .iter()
            .filter(|d| Self::within(name, d))
            .max_by_key(|d| d.len())
            .cloned()
    }
}

/// Limits derivation, e.g. to one namespace so that parallel tests sharing a cluster do not
/// see each other's Services.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub namespace: Option<String>,
}

impl Scope {
    /// The objects of `resource` within the scope.
    pub fn api(&self, client: &Client, resource: &ApiResource) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        }
    }
}

/// Every expected record, cluster-wide.
pub async fn expected_records(
    client: &Client,
    sovereign: &Sovereign,
    policy: &RetryPolicy,
) -> Result<Vec<ExpectedRecord>, RetryError> {
    let derived = expected_records_in(client, sovereign, policy, &Scope::default()).await?;
    Ok(derived.records)
}

/// The expected records, and what a watch for their change needs.
#[derive(Debug, Default)]
pub struct Derived {
    pub records: Vec<ExpectedRecord>,
    /// The kinds the records were derived from (Gateways included once a route is accepted
    /// by one).
    pub sources: Vec<ApiResource>,
    /// The resource version of the first list: resource versions are the datastore's
    /// revision, one for the whole cluster, so a watch of any source kind from it sees every
    /// change made since any of the lists.
    pub resource_version: Option<String>,
    /// Whether a source's kind is not served (the Gateway API CRDs not installed): it may be
    /// later, which no watch can tell.
    pub unserved: bool,
}

/// Accumulates (hostname, type) → targets per source, then flattens.
#[derive(Default)]
struct Collector {
    records: BTreeMap<(String, RecordType, String), BTreeSet<String>>,
}

impl Collector {
    fn add(&mut self, filters: &Filters, hostname: &str, targets: &[String], source: &str) {
        let host = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        // Wildcards are left out: their TXT names depend on --txt-wildcard-replacement.
        if host.is_empty() || host.starts_with('*') || !filters.matches(&host) {
            return;
        }
        for t in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let rtype = classify_target(t);
            let t = match rtype {
                RecordType::Cname => t.trim_end_matches('.').to_ascii_lowercase(),
                _ => t.to_owned(),
            };
            self.records
                .entry((host.clone(), rtype, source.to_owned()))
                .or_default()
                .insert(t);
        }
    }

    fn finish(self, filters: &Filters) -> Vec<ExpectedRecord> {
        self.records
            .into_iter()
            .filter_map(|((hostname, rtype, source), targets)| {
                Some(ExpectedRecord {
                    zone: filters.zone_of(&hostname)?,
                    hostname,
                    rtype,
                    targets: targets.into_iter().collect(),
                    source,
                })
            })
            .collect()
    }
}

fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn lb_ingress_targets(
    ingress: Option<&Vec<k8s_openapi::api::core::v1::LoadBalancerIngress>>,
) -> Vec<String> {
    ingress
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect()
}

/// Expected records limited by `scope`.
/// How many objects one list request asks for (the client-go pager's and kube-runtime's
/// page size). A page is judged and dropped before the next is read, so what a derivation
/// holds does not grow with the cluster.
pub const LIST_PAGE: u32 = 500;

/// Derives the expected records from the sources external-dns reads, each listed a page at
/// a time.
pub async fn expected_records_in(
    client: &Client,
    sovereign: &Sovereign,
    policy: &RetryPolicy,
    scope: &Scope,
) -> Result<Derived, RetryError> {
    loop {
        match derive(client, sovereign, policy, scope).await {
            // Only a continue token is answered 410 by a list: the apiserver keeps one for
            // about five minutes (until it compacts). A listing slower than that starts
            // again from a fresh snapshot, so nothing of the older one is expected.
            Err(RetryError::Api { code: 410, .. }) => continue,
            other => return other,
        }
    }
}

async fn derive(
    client: &Client,
    sovereign: &Sovereign,
    policy: &RetryPolicy,
    scope: &Scope,
) -> Result<Derived, RetryError> {
    let edns = &sovereign.spec.external_dns;
    let filters = Filters::new(sovereign);
    let prefix = &edns.annotation_prefix;
    let hostname_key = format!("{prefix}hostname");
    let target_key = format!("{prefix}target");
    let has = |s: &str| edns.sources.iter().any(|x| x == s);
    let mut out = Collector::default();
    let mut derived = Derived::default();

    if has("service") {
        let mut pages = Pages::new(namespaced::<Service>(client, scope), "list Services");
        while let Some(page) = pages.next(policy).await? {
            for svc in page {
                let spec = svc.spec.as_ref();
                if spec.and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
                    continue;
                }
                let ann = svc.metadata.annotations.clone().unwrap_or_default();
                let Some(hosts) = ann.get(&hostname_key) else {
                    continue;
                };
                // external-dns's order: target annotation, externalIPs, load balancer status.
                let targets = match ann.get(&target_key) {
                    Some(t) => comma_list(t),
                    None => match spec.and_then(|s| s.external_ips.clone()) {
                        Some(ips) if !ips.is_empty() => ips,
                        _ => lb_ingress_targets(
                            svc.status
                                .as_ref()
                                .and_then(|s| s.load_balancer.as_ref())
                                .and_then(|lb| lb.ingress.as_ref()),
                        ),
                    },
                };
                let source = format!("service/{}", key(&svc.metadata));
                for host in comma_list(hosts) {
                    out.add(&filters, &host, &targets, &source);
                }
            }
        }
        derived.listed(ApiResource::erase::<Service>(&()), pages.version);
    }

    if has("ingress") {
        let mut pages = Pages::new(namespaced::<Ingress>(client, scope), "list Ingresses");
        while let Some(page) = pages.next(policy).await? {
            for ing in page {
                let ann = ing.metadata.annotations.clone().unwrap_or_default();
                let targets = match ann.get(&target_key) {
                    Some(t) => comma_list(t),
                    None => ing
                        .status
                        .as_ref()
                        .and_then(|s| s.load_balancer.as_ref())
                        .and_then(|lb| lb.ingress.as_ref())
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                        .collect(),
                };
                let spec = ing.spec.as_ref();
                let hosts = spec
                    .and_then(|s| s.rules.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.host.clone())
                    .chain(
                        spec.and_then(|s| s.tls.as_ref())
                            .into_iter()
                            .flatten()
                            .flat_map(|t| t.hosts.clone().unwrap_or_default()),
                    );
                let source = format!("ingress/{}", key(&ing.metadata));
                for host in hosts {
                    out.add(&filters, &host, &targets, &source);
                }
            }
        }
        derived.listed(ApiResource::erase::<Ingress>(&()), pages.version);
    }

    let mut gateways = GatewayCache::default();
    for (source, kind) in [
        ("gateway-httproute", "HTTPRoute"),
        ("gateway-grpcroute", "GRPCRoute"),
    ] {
        if !has(source) {
            continue;
        }
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GATEWAY_GROUP, "v1", kind));
        let what = format!("list {kind}s");
        let mut pages = Pages::new(scope.api(client, &resource), &what);
        loop {
            let page = match pages.next(policy).await {
                Ok(Some(page)) => page,
                Ok(None) => {
                    derived.listed(resource, pages.version);
                    break;
                }
                // The Gateway API CRDs are not installed: no routes for external-dns to read.
                Err(RetryError::NotFound { .. } | RetryError::NotServed { .. }) => {
                    derived.unserved = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            for route in page {
                let route_ns = route.metadata.namespace.clone().unwrap_or_default();
                let source = format!("{}/{}", kind.to_ascii_lowercase(), key(&route.metadata));
                let hostnames = str_list(&route.data["spec"]["hostnames"]);
                for gw_ref in accepted_gateways(&route.data, &route_ns) {
                    let Some(gw) = gateways.get(client, policy, &gw_ref).await? else {
                        continue;
                    };
                    let targets = match gw.annotations.get(&target_key) {
                        Some(t) => comma_list(t),
                        None => gw.addresses.clone(),
                    };
                    for host in narrow(&hostnames, &gw.listener_hosts) {
                        out.add(&filters, &host, &targets, &source);
                    }
                }
            }
        }
    }

    // Gateways matter only through the routes accepted by them: with none, a Gateway's
    // change changes no record, and a route that comes is seen by its own kind's watch.
    if !gateways.seen.is_empty() {
        derived.sources.push(gateway_resource());
    }
    derived.records = out.finish(&filters);
    for host in &sovereign.spec.verify.hostnames {
        let hostname = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(zone) = filters.zone_of(&hostname) {
            derived.records.push(ExpectedRecord {
                hostname,
                rtype: RecordType::Any,
                targets: vec![],
                source: "spec".into(),
                zone,
            });
        }
    }
    Ok(derived)
}

impl Derived {
    /// Notes `resource` as a source, listed at `version` (the first list's version is the
    /// one watched from).
    fn listed(&mut self, resource: ApiResource, version: Option<String>) {
        if self.sources.is_empty() {
            self.resource_version = version;
        }
        self.sources.push(resource);
    }
}

/// One kind's list, read [`LIST_PAGE`] objects at a time through the retry policy.
struct Pages<'a, K> {
    api: Api<K>,
    what: &'a str,
    /// The next page's request; `None` once the last page has been read.
    next: Option<ListParams>,
    /// The resource version every page is served at (the first page's).
    version: Option<String>,
}

impl<'a, K> Pages<'a, K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    fn new(api: Api<K>, what: &'a str) -> Self {
        Pages {
            api,
            what,
            next: Some(ListParams::default().limit(LIST_PAGE)),
            version: None,
        }
    }

    /// The next page's objects, `None` after the last.
    async fn next(&mut self, policy: &RetryPolicy) -> Result<Option<Vec<K>>, RetryError> {
        let Some(params) = self.next.take() else {
            return Ok(None);
        };
        let list = with_retry(policy, self.what, || self.api.list(&params)).await?;
        if self.version.is_none() {
            self.version = list.metadata.resource_version;
        }
        self.next = list
            .metadata
            .continue_
            .filter(|token| !token.is_empty())
            .map(|token| {
                ListParams::default()
                    .limit(LIST_PAGE)
                    .continue_token(&token)
            });
        Ok(Some(list.items))
    }
}

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

fn gateway_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GATEWAY_GROUP, "v1", "Gateway"))
}

fn namespaced<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn key(meta: &kube::api::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// (namespace, name) of the Gateways whose status.parents entry says Accepted=True.
fn accepted_gateways(route: &Value, route_ns: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = route["status"]["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Accepted" && c["status"] == "True")
        })
        .filter(|p| {
            let kind = p["parentRef"]["kind"].as_str().unwrap_or("Gateway");
            kind == "Gateway"
        })
        .filter_map(|p| {
            let r = &p["parentRef"];
            let name = r["name"].as_str()?.to_owned();
            let ns = r["namespace"].as_str().unwrap_or(route_ns).to_owned();
            Some((ns, name))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Listener narrowing, kept simple: a route's hostnames are kept when some listener of the
/// Gateway has no hostname or matches them (exactly, or `*.d` matching one label under d);
/// a route without hostnames takes the listeners' non-wildcard hostnames. sectionName and
/// port are not considered, so a route attached to one listener may be over-expected.
fn narrow(route_hosts: &[String], listener_hosts: &[Option<String>]) -> Vec<String> {
    if route_hosts.is_empty() {
        return listener_hosts.iter().flatten().cloned().collect();
    }
    let listener_matches = |host: &str, listener: &Option<String>| match listener {
        None => true,
        Some(l) if l == host => true,
        Some(l) => l.strip_prefix("*.").is_some_and(|d| {
            host.strip_suffix(d)
                .and_then(|h| h.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        }),
    };
    route_hosts
        .iter()
        .filter(|h| {
            listener_hosts.is_empty() || listener_hosts.iter().any(|l| listener_matches(h, l))
        })
        .cloned()
        .collect()
}

struct Gateway {
    annotations: BTreeMap<String, String>,
    addresses: Vec<String>,
    listener_hosts: Vec<Option<String>>,
}

/// Gateways read once per derivation.
#[derive(Default)]
struct GatewayCache {
    seen: HashMap<(String, String), Option<Gateway>>,
}

impl GatewayCache {
    async fn get(
        &mut self,
        client: &Client,
        policy: &RetryPolicy,
        gw_ref: &(String, String),
    ) -> Result<Option<&Gateway>, RetryError> {
        if !self.seen.contains_key(gw_ref) {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &gw_ref.0, &gateway_resource());
            let what = format!("get Gateway {}/{}", gw_ref.0, gw_ref.1);
            let gw = with_retry(policy, &what, || api.get_opt(&gw_ref.1))
                .await?
                .map(|gw| Gateway {
                    annotations: gw.metadata.annotations.clone().unwrap_or_default(),
                    addresses: gw.data["status"]["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a["value"].as_str().map(str::to_owned))
                        .collect(),
                    listener_hosts: gw.data["spec"]["listeners"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| l["hostname"].as_str().map(str::to_owned))
                        .collect(),
                });
            self.seen.insert(gw_ref.clone(), gw);
        }
        Ok(self.seen.get(gw_ref).and_then(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorded::{apiserver, exchange};
    use http::Method;
    use serde_json::json;

    const SERVICES: &str = "/api/v1/services";

    /// The example Sovereign (sources: the Gateway API routes and Services).
    fn example() -> Sovereign {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("clusters/example/sovereign.yaml");
        crate::spec::load(&path, None)
            .expect("the example spec loads")
            .sovereign
    }

    /// A page of Services at `version`: one annotated LoadBalancer Service named `name`,
    /// `continue_` to the next page.
    fn page(version: &str, name: &str, continue_: &str) -> Value {
        json!({"kind": "ServiceList", "apiVersion": "v1",
               "metadata": {"resourceVersion": version, "continue": continue_},
               "items": [{"metadata": {"name": name, "namespace": "web", "annotations": {
                   "external-dns.alpha.kubernetes.io/hostname":
                       format!("{name}.example.openova.io")}},
                   "spec": {"type": "LoadBalancer"},
                   "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}]})
    }

    fn unserved(kind: &str) -> crate::recorded::Exchange {
        let path = format!("/apis/gateway.networking.k8s.io/v1/{kind}");
        exchange(
            Method::GET,
            &path,
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"}),
        )
    }

    /// The records derived from the example Sovereign through an apiserver answering
    /// `script`, and the requests it saw.
    async fn derived_from(
        script: Vec<crate::recorded::Exchange>,
    ) -> (Derived, Vec<crate::recorded::Seen>) {
        let (client, answering) = apiserver(script);
        let derived = expected_records_in(
            &client,
            &example(),
            &crate::retry::RetryPolicy::default(),
            &Scope::default(),
        )
        .await
        .unwrap();
        drop(client);
        (derived, answering.await.unwrap())
    }

    fn hostnames(derived: &Derived) -> Vec<&str> {
        derived
            .records
            .iter()
            .map(|r| r.hostname.as_str())
            .collect()
    }

    #[tokio::test]
    async fn sources_are_listed_a_page_at_a_time_and_watched_from_the_first_pages_version() {
        let (derived, seen) = derived_from(vec![
            exchange(Method::GET, SERVICES, 200, page("40", "a", "after-a")),
            exchange(Method::GET, SERVICES, 200, page("40", "b", "")),
            unserved("httproutes"),
            unserved("grpcroutes"),
        ])
        .await;
        assert_eq!(
            hostnames(&derived),
            ["a.example.openova.io", "b.example.openova.io"]
        );
        assert_eq!(derived.resource_version.as_deref(), Some("40"));
        assert!(derived.unserved);
        let asked: Vec<_> = seen
            .iter()
            .map(|s| (s.query("limit"), s.query("continue")))
            .collect();
        assert_eq!(
            asked,
            [
                (Some("500"), None),
                (Some("500"), Some("after-a")),
                (Some("500"), None),
                (Some("500"), None)
            ]
        );
    }

    fn list(kind: &str, items: Value) -> Value {
        json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "40"},
               "items": items})
    }

    fn kinds(derived: &Derived) -> Vec<&str> {
        derived.sources.iter().map(|s| s.kind.as_str()).collect()
    }

    #[tokio::test]
    async fn gateways_are_a_source_only_once_a_route_is_accepted_by_one() {
        const HTTPROUTES: &str = "/apis/gateway.networking.k8s.io/v1/httproutes";
        const GRPCROUTES: &str = "/apis/gateway.networking.k8s.io/v1/grpcroutes";
        // No route: a Gateway's change would change no record, so none is watched.
        let (quiet, _) = derived_from(vec![
            exchange(Method::GET, SERVICES, 200, list("ServiceList", json!([]))),
            exchange(
                Method::GET,
                HTTPROUTES,
                200,
                list("HTTPRouteList", json!([])),
            ),
            exchange(
                Method::GET,
                GRPCROUTES,
                200,
                list("GRPCRouteList", json!([])),
            ),
        ])
        .await;
        assert_eq!(kinds(&quiet), ["Service", "HTTPRoute", "GRPCRoute"]);
        // A route accepted by a Gateway: the Gateway's addresses are the record's.
        let route = json!([{"metadata": {"name": "web", "namespace": "web"},
            "spec": {"hostnames": ["www.example.openova.io"]},
            "status": {"parents": [{"parentRef": {"name": "edge"},
                "conditions": [{"type": "Accepted", "status": "True"}]}]}}]);
        let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": "web"},
            "spec": {"listeners": [{"name": "http"}]},
            "status": {"addresses": [{"value": "192.0.2.9"}]}});
        let (routed, _) = derived_from(vec![
            exchange(Method::GET, SERVICES, 200, list("ServiceList", json!([]))),
            exchange(Method::GET, HTTPROUTES, 200, list("HTTPRouteList", route)),
            exchange(
                Method::GET,
                "/apis/gateway.networking.k8s.io/v1/namespaces/web/gateways/edge",
                200,
                gateway,
            ),
            exchange(
                Method::GET,
                GRPCROUTES,
                200,
                list("GRPCRouteList", json!([])),
            ),
        ])
        .await;
        assert_eq!(
            kinds(&routed),
            ["Service", "HTTPRoute", "GRPCRoute", "Gateway"]
        );
        assert_eq!(hostnames(&routed), ["www.example.openova.io"]);
        assert_eq!(routed.records[0].targets, ["192.0.2.9"]);
    }

    #[tokio::test]
    async fn a_listing_whose_continue_token_expired_starts_again_from_a_fresh_snapshot() {
        let expired = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "Expired", "code": 410,
            "message": "The provided continue parameter is too old to display a consistent list result."});
        let (derived, seen) = derived_from(vec![
            exchange(Method::GET, SERVICES, 200, page("40", "gone", "after-gone")),
            exchange(Method::GET, SERVICES, 410, expired),
            exchange(Method::GET, SERVICES, 200, page("90", "b", "")),
            unserved("httproutes"),
            unserved("grpcroutes"),
        ])
        .await;
        assert_eq!(seen.len(), 5);
        // Nothing of the older snapshot is expected, and the watch starts from the new one.
        assert_eq!(hostnames(&derived), ["b.example.openova.io"]);
        assert_eq!(derived.resource_version.as_deref(), Some("90"));
    }

    #[test]
    fn targets_are_classified_by_address_family() {
        assert_eq!(classify_target("192.0.2.1"), RecordType::A);
        assert_eq!(classify_target("2001:db8::1"), RecordType::Aaaa);
        assert_eq!(classify_target("lb.example.net"), RecordType::Cname);
        assert_eq!(classify_target("lb.example.net."), RecordType::Cname);
    }

    #[test]
    fn collector_splits_targets_by_type_and_filters_domains() {
        let filters = Filters {
            domains: vec!["example.com".into(), "other.org".into()],
            primary: "example.com".into(),
        };
        let mut c = Collector::default();
        let targets = [
            "192.0.2.1".to_owned(),
            "2001:db8::1".into(),
            "192.0.2.2".into(),
        ];
        c.add(&filters, "API.example.com.", &targets, "service/ns/a");
        c.add(&filters, "api.elsewhere.net", &targets, "service/ns/a");
        c.add(&filters, "*.example.com", &targets, "service/ns/a");
        c.add(
            &filters,
            "x.other.org",
            &["LB.Example.NET.".to_owned()],
            "ingress/ns/b",
        );
        let got = c.finish(&filters);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].hostname, "api.example.com");
        assert_eq!(got[0].rtype, RecordType::A);
        assert_eq!(got[0].targets, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(got[1].rtype, RecordType::Aaaa);
        assert_eq!(got[2].rtype, RecordType::Cname);
        assert_eq!(got[2].targets, ["lb.example.net"]);
        assert_eq!(got[2].zone, "other.org");
    }

    #[test]
    fn routes_count_only_accepted_gateway_parents_and_listeners_narrow() {
        let route = serde_json::json!({"status": {"parents": [
            {"parentRef": {"name": "gw"}, "conditions": [{"type": "Accepted", "status": "True"}]},
            {"parentRef": {"name": "no", "namespace": "x"}, "conditions": [{"type": "Accepted", "status": "False"}]},
            {"parentRef": {"name": "svc", "kind": "Service"}, "conditions": [{"type": "Accepted", "status": "True"}]}
        ]}});
        assert_eq!(
            accepted_gateways(&route, "ns"),
            [("ns".to_owned(), "gw".to_owned())]
        );
        let hosts = vec![
            "a.example.com".to_owned(),
            "b.other.com".into(),
            "x.y.example.com".into(),
        ];
        assert_eq!(
            narrow(&hosts, &[Some("*.example.com".into())]),
            ["a.example.com"]
        );
        assert_eq!(narrow(&hosts, &[None]).len(), 3);
        assert_eq!(
            narrow(&[], &[Some("l.example.com".into()), None]),
            ["l.example.com"]
        );
    }
}
