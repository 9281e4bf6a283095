//! A PowerDNS webhook for external-dns's `webhook` provider, the sidecar the kit renders for
//! `spec.dns.provider: webhook`, run by the world's kubelet for the sidecar's image
//! (examples/pdns-webhook.rs is its entrypoint).
//!
//! It speaks external-dns's webhook API (media type [`MEDIA_TYPE`]) on localhost port
//! `WEBHOOK_PORT`:
//!
//! - `GET /`: the negotiation, answered with the domain filter: the zones PowerDNS serves
//!   (each name with and without a leading dot, as external-dns's in-tree PowerDNS provider
//!   reports them); an empty filter when PowerDNS cannot be read, so external-dns starts
//!   and its own `--domain-filter` decides;
//! - `GET /records`: every rrset of every zone, as external-dns endpoints;
//! - `POST /records`: the plan's changes: `create` and `updateNew` replace their rrsets,
//!   `delete` deletes them, `updateOld` needs nothing (a replace carries the whole rrset),
//!   each in the longest zone that holds its name; 204 when done;
//! - `POST /adjustendpoints`: the endpoints as they came (PowerDNS takes what
//!   external-dns makes);
//!
//! and `GET /healthz` on the health port 8080 (the chart's `http-webhook`), which says
//! the process serves, nothing about PowerDNS. TXT ownership records are records like any
//! other. A PowerDNS error is an HTTP 500, which external-dns takes as a soft error and
//! retries on its next sync; the log says what PowerDNS answered.
//!
//! Configuration is the sidecar's environment as the kit renders it: `PDNS_API_URL`,
//! `PDNS_SERVER_ID` (default `localhost`), `PDNS_API_KEY` (from the Secret; never logged)
//! and `WEBHOOK_PORT` (default 8888). It listens on 127.0.0.1 only; in the test world a
//! pod port maps to the host port in `CATALYST_TESTENV_PORT_<port>`, as for every
//! container the world's kubelet runs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The webhook API's media type and version.
pub const MEDIA_TYPE: &str = "application/external.dns.webhook+json;version=1";
/// The chart's container port `http-webhook`, for `/healthz`.
pub const HEALTH_PORT: u16 = 8080;
/// external-dns's default webhook port.
pub const DEFAULT_PORT: u16 = 8888;
/// The TTL of an rrset whose endpoint names none (external-dns's PowerDNS provider's).
pub const DEFAULT_TTL: i64 = 300;
/// Record types whose contents PowerDNS wants fully qualified.
const TRAILING_DOT_TYPES: [&str; 7] = ["CNAME", "DNAME", "MX", "SRV", "NS", "PTR", "ALIAS"];

/// One external-dns endpoint (endpoint.Endpoint's JSON). Labels and provider-specific
/// properties are carried through unread.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub dns_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    pub record_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub set_identifier: String,
    #[serde(rename = "recordTTL", default, skip_serializing_if = "is_zero")]
    pub record_ttl: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_specific: Option<Value>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A plan's changes (plan.Changes' JSON).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    #[serde(default)]
    pub create: Option<Vec<Endpoint>>,
    #[serde(default)]
    pub update_old: Option<Vec<Endpoint>>,
    #[serde(default)]
    pub update_new: Option<Vec<Endpoint>>,
    #[serde(default)]
    pub delete: Option<Vec<Endpoint>>,
}

/// The sidecar's settings.
#[derive(Clone)]
pub struct Config {
    pub api_url: String,
    pub server_id: String,
    api_key: String,
    /// Where the webhook API and the health endpoint listen on 127.0.0.1.
    pub api_port: u16,
    pub health_port: u16,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_url", &self.api_url)
            .field("server_id", &self.server_id)
            .field("api_key", &"<set>")
            .field("api_port", &self.api_port)
            .field("health_port", &self.health_port)
            .finish()
    }
}

impl Config {
    /// From the environment `var` reads; what is missing or wrong, by variable name.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or(format!("{name} is not set"))
        };
        let port = |name: &str, value: &str| {
            value
                .parse::<u16>()
                .map_err(|_| format!("{name}: {value:?} is not a port"))
        };
        let api_url = required("PDNS_API_URL")?.trim_end_matches('/').to_owned();
        let api_key = required("PDNS_API_KEY")?;
        let server_id = var("PDNS_SERVER_ID")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let webhook_port = match var("WEBHOOK_PORT") {
            Some(v) => port("WEBHOOK_PORT", &v)?,
            None => DEFAULT_PORT,
        };
        // A pod port reached on the host where the world maps it.
        let host_port = |pod_port: u16| {
            let name = format!("CATALYST_TESTENV_PORT_{pod_port}");
            match var(&name) {
                Some(v) => port(&name, &v),
                None => Ok(pod_port),
            }
        };
        Ok(Config {
            api_url,
            server_id,
            api_key,
            api_port: host_port(webhook_port)?,
            health_port: host_port(HEALTH_PORT)?,
        })
    }
}

/// The domain filter of `GET /`: each zone with and without a leading dot.
pub fn domain_filter(zones: &[String]) -> Value {
    let include: Vec<String> = zones
        .iter()
        .map(|z| z.trim_end_matches('.'))
        .flat_map(|z| [z.to_owned(), format!(".{z}")])
        .collect();
    if include.is_empty() {
        json!({})
    } else {
        json!({ "include": include })
    }
}

/// A zone's rrsets (PowerDNS's zone JSON) as endpoints; disabled records are left out.
pub fn endpoints_of_zone(zone: &Value) -> Vec<Endpoint> {
    let mut endpoints = Vec::new();
    for rrset in zone["rrsets"].as_array().into_iter().flatten() {
        let targets: Vec<String> = rrset["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["disabled"] != json!(true))
            .filter_map(|r| r["content"].as_str())
            .map(|c| c.trim_end_matches('.').to_owned())
            .collect();
        if targets.is_empty() {
            continue;
        }
        let record_type = match rrset["type"].as_str().unwrap_or_default() {
            "ALIAS" => "CNAME",
            t => t,
        };
        endpoints.push(Endpoint {
            dns_name: rrset["name"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_owned(),
            targets,
            record_type: record_type.to_owned(),
            record_ttl: rrset["ttl"].as_i64().unwrap_or_default(),
            ..Endpoint::default()
        });
    }
    endpoints
}

/// The zone among `zones` that holds `name`: the longest whose suffix it is.
pub fn zone_of<'a>(name: &str, zones: &'a [String]) -> Option<&'a str> {
    let name = fqdn(name);
    zones
        .iter()
        .map(String::as_str)
        .filter(|z| {
            let z = z.trim_end_matches('.');
            name == format!("{z}.") || name.ends_with(&format!(".{z}."))
        })
        .max_by_key(|z| z.len())
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// The PATCH bodies that apply `changes`, by zone, and the endpoints no zone holds.
pub fn patches(changes: &Changes, zones: &[String]) -> (BTreeMap<String, Value>, Vec<String>) {
    let mut rrsets: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    let replace = changes.create.iter().chain(&changes.update_new).flatten();
    let delete = changes.delete.iter().flatten();
    let all = replace
        .map(|e| (e, "REPLACE"))
        .chain(delete.map(|e| (e, "DELETE")));
    for (endpoint, changetype) in all {
        let Some(zone) = zone_of(&endpoint.dns_name, zones) else {
            unplaced.push(format!("{} {}", endpoint.dns_name, endpoint.record_type));
            continue;
        };
        let mut rrset = json!({
            "name": fqdn(&endpoint.dns_name),
            "type": endpoint.record_type,
            "changetype": changetype,
        });
        if changetype == "REPLACE" {
            let qualified = TRAILING_DOT_TYPES.contains(&endpoint.record_type.as_str());
            let records: Vec<Value> = endpoint
                .targets
                .iter()
                .map(|t| if qualified { fqdn(t) } else { t.clone() })
                .map(|content| json!({"content": content, "disabled": false}))
                .collect();
            rrset["records"] = json!(records);
            rrset["ttl"] = json!(if endpoint.record_ttl > 0 {
                endpoint.record_ttl
            } else {
                DEFAULT_TTL
            });
        }
        rrsets.entry(zone.to_owned()).or_default().push(rrset);
    }
    let bodies = rrsets
        .into_iter()
        .map(|(zone, rrsets)| (zone, json!({ "rrsets": rrsets })))
        .collect();
    (bodies, unplaced)
}

/// Whether an `Accept` header admits the webhook's media type.
pub fn accepts(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    accept.split(',').any(|range| {
        let range = range.trim();
        let without_q: String = range
            .split(';')
            .map(str::trim)
            .filter(|p| !p.starts_with("q="))
            .collect::<Vec<_>>()
            .join(";");
        without_q == MEDIA_TYPE || range.starts_with("*/*")
    })
}

/// One log line, in the key=value form external-dns and its webhooks write.
pub fn log(level: &str, message: &str) {
    println!(
        "time=\"{}\" level={level} msg={:?}",
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        message
    );
}

/// A failed PowerDNS request, in one line: what was asked and what came back.
#[derive(Debug)]
pub struct PdnsFailure(String);

impl std::fmt::Display for PdnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// PowerDNS's REST API.
pub struct Pdns {
    http: reqwest::Client,
    config: Config,
}

impl Pdns {
    pub fn new(config: Config) -> Pdns {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Pdns { http, config }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/servers/{}{path}",
            self.config.api_url, self.config.server_id
        )
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PdnsFailure> {
        let url = self.url(path);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("X-API-Key", &self.config.api_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let asked = format!("{method} {url}");
        let response = request
            .send()
            .await
            .map_err(|e| PdnsFailure(format!("{asked}: {}", transport_error(&e))))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let said = text.trim();
            return Err(PdnsFailure(format!("{asked}: {status} {said}")));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The names of the zones the server serves.
    pub async fn zones(&self) -> Result<Vec<String>, PdnsFailure> {
        let listed = self.send(reqwest::Method::GET, "/zones", None).await?;
        Ok(listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|z| z["name"].as_str().map(str::to_owned))
            .collect())
    }

    pub async fn records(&self) -> Result<Vec<Endpoint>, PdnsFailure> {
        let mut endpoints = Vec::new();
        for zone in self.zones().await? {
            let read = self
                .send(reqwest::Method::GET, &format!("/zones/{zone}"), None)
                .await?;
            endpoints.extend(endpoints_of_zone(&read));
        }
        Ok(endpoints)
    }

    pub async fn apply(&self, changes: &Changes) -> Result<(), PdnsFailure> {
        let zones = self.zones().await?;
        let (bodies, unplaced) = patches(changes, &zones);
        for name in unplaced {
            log(
                "warning",
                &format!("no zone in PowerDNS holds {name}; left out"),
            );
        }
        for (zone, body) in bodies {
            self.send(
                reqwest::Method::PATCH,
                &format!("/zones/{zone}"),
                Some(&body),
            )
            .await?;
        }
        Ok(())
    }
}

/// A transport error with its innermost cause, which says why (`connection refused`).
fn transport_error(e: &reqwest::Error) -> String {
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        why = cause.to_string();
        source = cause.source();
    }
    if e.is_timeout() {
        format!("timeout: {why}")
    } else {
        why
    }
}

type Body = Full<Bytes>;

fn answer(status: StatusCode, body: Option<Value>) -> Response<Body> {
    let mut response = Response::builder().status(status);
    let bytes = match body {
        Some(body) => {
            response = response.header("Content-Type", MEDIA_TYPE);
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    response.body(Full::new(bytes)).expect("a response")
}

fn describe(changes: &Changes) -> Vec<String> {
    let kinds = [
        ("CREATE", &changes.create),
        ("UPDATE-OLD", &changes.update_old),
        ("UPDATE-NEW", &changes.update_new),
        ("DELETE", &changes.delete),
    ];
    kinds
        .iter()
        .flat_map(|(kind, endpoints)| {
            endpoints.iter().flatten().map(move |e| {
                format!(
                    "{kind}: {} {} {}",
                    e.dns_name,
                    e.record_type,
                    e.targets.join(" ")
                )
            })
        })
        .collect()
}

async fn handle(pdns: Arc<Pdns>, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let accept = request
        .headers()
        .get("Accept")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let failed = |what: &str, e: PdnsFailure| {
        log("error", &format!("{what}: {e}"));
        answer(StatusCode::INTERNAL_SERVER_ERROR, None)
    };
    let response = match (&method, path.as_str()) {
        (&Method::GET, "/") if !accepts(accept.as_deref()) => {
            answer(StatusCode::NOT_ACCEPTABLE, None)
        }
        (&Method::GET, "/") => {
            let zones = pdns.zones().await.unwrap_or_else(|e| {
                log(
                    "error",
                    &format!("unable to list zones for the domain filter: {e}"),
                );
                Vec::new()
            });
            answer(StatusCode::OK, Some(domain_filter(&zones)))
        }
        (&Method::GET, "/records") => match pdns.records().await {
            Ok(endpoints) => answer(StatusCode::OK, Some(json!(endpoints))),
            Err(e) => failed("unable to fetch records", e),
        },
        (&Method::POST, "/records") => match serde_json::from_slice::<Changes>(&body) {
            Err(e) => {
                log("error", &format!("changes that do not decode: {e}"));
                answer(StatusCode::BAD_REQUEST, None)
            }
            Ok(changes) => {
                for line in describe(&changes) {
                    log("info", &line);
                }
                match pdns.apply(&changes).await {
                    Ok(()) => answer(StatusCode::NO_CONTENT, None),
                    Err(e) => failed("unable to apply changes", e),
                }
            }
        },
        (&Method::POST, "/adjustendpoints") => {
            match serde_json::from_slice::<Vec<Endpoint>>(&body) {
                Ok(endpoints) => answer(StatusCode::OK, Some(json!(endpoints))),
                Err(e) => {
                    log("error", &format!("endpoints that do not decode: {e}"));
                    answer(StatusCode::BAD_REQUEST, None)
                }
            }
        }
        _ => answer(StatusCode::NOT_FOUND, None),
    };
    Ok(response)
}

async fn health(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let status = if request.uri().path() == "/healthz" {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok(Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"ok")))
        .expect("a response"))
}

async fn serve<F, R>(listener: tokio::net::TcpListener, service: F)
where
    F: Fn(Request<Incoming>) -> R + Clone + Send + 'static,
    R: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(service))
                .await;
        });
    }
}

/// Serves the webhook API and the health endpoint until the process ends.
pub async fn run(config: Config) -> Result<(), String> {
    let bind = |port: u16| async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listening on {addr}: {e}"))
    };
    let api = bind(config.api_port).await?;
    let health_listener = bind(config.health_port).await?;
    log(
        "info",
        &format!(
            "PowerDNS webhook for server {:?} at {} serving on 127.0.0.1:{} (health on :{})",
            config.server_id, config.api_url, config.api_port, config.health_port
        ),
    );
    let pdns = Arc::new(Pdns::new(config));
    tokio::spawn(serve(health_listener, health));
    serve(api, move |request| handle(pdns.clone(), request)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|z| (*z).to_owned()).collect()
    }

    fn endpoint(name: &str, rtype: &str, targets: &[&str], ttl: i64) -> Endpoint {
        Endpoint {
            dns_name: name.into(),
            record_type: rtype.into(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            record_ttl: ttl,
            ..Endpoint::default()
        }
    }

    #[test]
    fn configuration_is_the_rendered_sidecar_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let config = Config::from_env(env(&[
            ("PDNS_API_URL", "http://127.0.0.1:8081/"),
            ("PDNS_API_KEY", "s3cr3t"),
            ("WEBHOOK_PORT", "8888"),
        ]))
        .unwrap();
        assert_eq!(config.api_url, "http://127.0.0.1:8081");
        assert_eq!(config.server_id, "localhost");
        assert_eq!((config.api_port, config.health_port), (8888, 8080));
        assert!(!format!("{config:?}").contains("s3cr3t"));

        let mapped = Config::from_env(env(&[
            ("PDNS_API_URL", "http://127.0.0.1:8081"),
            ("PDNS_API_KEY", "k"),
            ("PDNS_SERVER_ID", "ns1"),
            ("WEBHOOK_PORT", "8888"),
            ("CATALYST_TESTENV_PORT_8888", "40001"),
            ("CATALYST_TESTENV_PORT_8080", "40002"),
        ]))
        .unwrap();
        assert_eq!(mapped.server_id, "ns1");
        assert_eq!((mapped.api_port, mapped.health_port), (40001, 40002));

        assert_eq!(
            Config::from_env(env(&[("PDNS_API_URL", "http://x")])).unwrap_err(),
            "PDNS_API_KEY is not set"
        );
        assert_eq!(
            Config::from_env(env(&[
                ("PDNS_API_URL", "http://x"),
                ("PDNS_API_KEY", "k"),
                ("WEBHOOK_PORT", "web")
            ]))
            .unwrap_err(),
            "WEBHOOK_PORT: \"web\" is not a port"
        );
    }

    #[test]
    fn negotiation_answers_the_zones_as_the_domain_filter() {
        assert_eq!(
            domain_filter(&zones(&["example.com.", "b.example.com."])),
            json!({"include": ["example.com", ".example.com", "b.example.com", ".b.example.com"]})
        );
        assert_eq!(domain_filter(&[]), json!({}));
        assert!(accepts(Some(MEDIA_TYPE)));
        assert!(accepts(Some("text/html, */*;q=0.1")));
        assert!(accepts(None));
        assert!(!accepts(Some("application/json")));
        assert!(!accepts(Some(
            "application/external.dns.webhook+json;version=2"
        )));
    }

    #[test]
    fn zones_become_endpoints_with_ownership_txt_like_any_record() {
        let zone = json!({"name": "example.com.", "rrsets": [
            {"name": "api.example.com.", "type": "A", "ttl": 300,
             "records": [{"content": "192.0.2.1", "disabled": false},
                         {"content": "192.0.2.9", "disabled": true}]},
            {"name": "_externaldns.a-api.example.com.", "type": "TXT", "ttl": 300,
             "records": [{"content": "\"heritage=external-dns,external-dns/owner=openova\"", "disabled": false}]},
            {"name": "www.example.com.", "type": "ALIAS", "ttl": 60,
             "records": [{"content": "lb.example.net.", "disabled": false}]},
            {"name": "gone.example.com.", "type": "A", "ttl": 60,
             "records": [{"content": "192.0.2.2", "disabled": true}]},
        ]});
        assert_eq!(
            endpoints_of_zone(&zone),
            [
                endpoint("api.example.com", "A", &["192.0.2.1"], 300),
                endpoint(
                    "_externaldns.a-api.example.com",
                    "TXT",
                    &["\"heritage=external-dns,external-dns/owner=openova\""],
                    300
                ),
                endpoint("www.example.com", "CNAME", &["lb.example.net"], 60),
            ]
        );
        let wire = serde_json::to_value(endpoint("a.example.com", "A", &["192.0.2.1"], 0)).unwrap();
        assert_eq!(
            wire,
            json!({"dnsName": "a.example.com", "targets": ["192.0.2.1"], "recordType": "A"})
        );
        let wire =
            serde_json::to_value(endpoint("a.example.com", "A", &["192.0.2.1"], 60)).unwrap();
        assert_eq!(wire["recordTTL"], 60, "external-dns's field name: {wire}");
    }

    #[test]
    fn changes_patch_the_longest_zone_holding_each_name() {
        let changes: Changes = serde_json::from_value(json!({
            "create": [
                {"dnsName": "api.b.example.com", "targets": ["192.0.2.1"], "recordType": "A"},
                {"dnsName": "_externaldns.a-api.b.example.com", "targets": ["\"heritage=external-dns\""], "recordType": "TXT", "recordTTL": 60},
                {"dnsName": "api.elsewhere.org", "targets": ["192.0.2.3"], "recordType": "A"},
            ],
            "updateOld": [{"dnsName": "www.example.com", "targets": ["old.example.net"], "recordType": "CNAME"}],
            "updateNew": [{"dnsName": "www.example.com", "targets": ["lb.example.net"], "recordType": "CNAME", "labels": {"owner": "openova"}}],
            "delete": [{"dnsName": "old.b.example.com", "targets": ["192.0.2.7"], "recordType": "A"}],
        }))
        .unwrap();
        let (bodies, unplaced) = patches(&changes, &zones(&["example.com.", "b.example.com."]));
        assert_eq!(unplaced, ["api.elsewhere.org A"]);
        assert_eq!(
            bodies["b.example.com."],
            json!({"rrsets": [
                {"name": "api.b.example.com.", "type": "A", "changetype": "REPLACE", "ttl": 300,
                 "records": [{"content": "192.0.2.1", "disabled": false}]},
                {"name": "_externaldns.a-api.b.example.com.", "type": "TXT", "changetype": "REPLACE", "ttl": 60,
                 "records": [{"content": "\"heritage=external-dns\"", "disabled": false}]},
                {"name": "old.b.example.com.", "type": "A", "changetype": "DELETE"},
            ]})
        );
        assert_eq!(
            bodies["example.com."],
            json!({"rrsets": [
                {"name": "www.example.com.", "type": "CNAME", "changetype": "REPLACE", "ttl": 300,
                 "records": [{"content": "lb.example.net.", "disabled": false}]},
            ]})
        );
        assert_eq!(
            describe(&changes)[0],
            "CREATE: api.b.example.com A 192.0.2.1"
        );
        assert_eq!(
            zone_of("example.com", &zones(&["example.com."])),
            Some("example.com.")
        );
        assert_eq!(zone_of("notexample.com", &zones(&["example.com."])), None);
    }
}
