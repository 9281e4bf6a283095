//! Reading PowerDNS's REST API: one GET of a whole zone answers for any number of names.
//! The tool never writes to PowerDNS.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::DnsError;
use crate::spec::Verify;

/// The API key. Its Debug hides it, and no error or event ever formats it.
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// From spec.verify.apiKeyEnv or apiKeyFile (trimmed). Errors name the variable or the
    /// file, never the content.
    pub fn from_verify(v: &Verify) -> Result<ApiKey, DnsError> {
        let key = match (&v.api_key_env, &v.api_key_file) {
            (Some(env), _) => std::env::var(env).map_err(|_| DnsError::ApiKeyMissing {
                source_desc: format!("environment variable {env} is not set"),
            })?,
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| DnsError::ApiKeyMissing {
                    source_desc: format!(
                        "cannot read {}: {}",
                        PathBuf::from(file).display(),
                        e.kind()
                    ),
                })?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(DnsError::ApiKeyMissing {
                    source_desc: "neither spec.verify.apiKeyEnv nor apiKeyFile is set".into(),
                });
            }
        };
        if key.is_empty() {
            return Err(DnsError::ApiKeyMissing {
                source_desc: "the configured PowerDNS API key is empty".into(),
            });
        }
        Ok(ApiKey(key))
    }
}

/// Why a zone could not be read. Messages carry the URL's host and status, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdnsError {
    #[error("PowerDNS refused the API key (HTTP {status}): credentials wrong")]
    Credentials { status: u16 },
    #[error("zone {zone} does not exist on PowerDNS server {server_id} at {api_url}")]
    ZoneNotFound {
        zone: String,
        server_id: String,
        api_url: String,
    },
    #[error("PowerDNS at {api_url} unreachable: {message}")]
    Unreachable { api_url: String, message: String },
    #[error("no PowerDNS server {server_id} at {api_url} (spec.verify.serverId)")]
    ServerNotFound { server_id: String, api_url: String },
    /// `what`: "zone example.com." or "server localhost".
    #[error("PowerDNS answered HTTP {status} for {what}")]
    Http { what: String, status: u16 },
    #[error("PowerDNS zone {zone}: undecodable answer: {message}")]
    Decode { zone: String, message: String },
}

/// An error and its chain of causes, each said once.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// One read of a zone: rrsets by (name with trailing dot, lowercase; TYPE).
#[derive(Debug, Clone, Default)]
pub struct Zone {
    pub rrsets: HashMap<(String, String), Vec<String>>,
}

impl Zone {
    /// Contents of an rrset, disabled records left out; None when absent.
    pub fn get(&self, name: &str, rtype: &str) -> Option<&Vec<String>> {
        self.rrsets.get(&(fqdn(name), rtype.to_ascii_uppercase()))
    }
}

/// Lowercase with a trailing dot, the form PowerDNS uses for names.
pub fn fqdn(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

/// A set for comparisons: CNAME-like targets get a trailing dot, all lowercase.
pub fn target_set<S: AsRef<str>>(rtype: &str, targets: &[S]) -> BTreeSet<String> {
    targets
        .iter()
        .map(|t| match rtype {
            "CNAME" => fqdn(t.as_ref()),
            _ => t.as_ref().to_ascii_lowercase(),
        })
        .collect()
}

#[derive(Deserialize)]
struct ZoneJson {
    #[serde(default)]
    rrsets: Vec<RrsetJson>,
}

#[derive(Deserialize)]
struct RrsetJson {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    records: Vec<RecordJson>,
}

#[derive(Deserialize)]
struct RecordJson {
    content: String,
    #[serde(default)]
    disabled: bool,
}

/// A read-only PowerDNS client that counts its zone reads.
#[derive(Clone)]
pub struct PdnsClient {
    http: reqwest::Client,
    api_url: String,
    server_id: String,
    key: ApiKey,
    zone_reads: Arc<AtomicU64>,
}

impl std::fmt::Debug for PdnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdnsClient")
            .field("api_url", &self.api_url)
            .field("server_id", &self.server_id)
            .field("zone_reads", &self.zone_reads())
            .finish_non_exhaustive()
    }
}

impl PdnsClient {
    pub fn new(verify: &Verify, key: ApiKey) -> Result<PdnsClient, DnsError> {
        crate::connect::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| DnsError::Internal(format!("HTTP client: {e}")))?;
        Ok(PdnsClient {
            http,
            api_url: verify.api_url.trim_end_matches('/').to_owned(),
            server_id: verify.server_id.clone(),
            key,
            zone_reads: Arc::default(),
        })
    }

    /// GET requests sent for zones so far (shared by clones).
    pub fn zone_reads(&self) -> u64 {
        self.zone_reads.load(Ordering::Relaxed)
    }

    /// Sends an authenticated GET to `path` below the server's URL; a refused key is an
    /// error whatever was asked for.
    async fn get(&self, path: &str) -> Result<reqwest::Response, PdnsError> {
        let url = format!("{}/api/v1/servers/{}{path}", self.api_url, self.server_id);
        let resp = self
            .http
            .get(&url)
            .header("X-API-Key", &self.key.0)
            .send()
            .await
            .map_err(|e| PdnsError::Unreachable {
                api_url: self.api_url.clone(),
                // reqwest's message names the URL, which carries no secret; its causes say
                // why (refused, timed out, an untrusted certificate).
                message: with_causes(&e.without_url()),
            })?;
        match resp.status().as_u16() {
            status @ (401 | 403) => Err(PdnsError::Credentials { status }),
            _ => Ok(resp),
        }
    }

    /// Proves the server answers and takes the key, without reading any zone: what the DNS
    /// proof checks when no record is expected.
    pub async fn check_access(&self) -> Result<(), PdnsError> {
        let resp = self.get("").await?;
        match resp.status().as_u16() {
            200 => Ok(()),
            404 | 422 => Err(PdnsError::ServerNotFound {
                server_id: self.server_id.clone(),
                api_url: self.api_url.clone(),
            }),
            status => Err(PdnsError::Http {
                what: format!("server {}", self.server_id),
                status,
            }),
        }
    }

    /// The whole zone in one request.
    pub async fn zone(&self, zone: &str) -> Result<Zone, PdnsError> {
        let zone = fqdn(zone);
        self.zone_reads.fetch_add(1, Ordering::Relaxed);
        let resp = self.get(&format!("/zones/{zone}")).await?;
        match resp.status().as_u16() {
            200 => {}
            404 | 422 => {
                return Err(PdnsError::ZoneNotFound {
                    zone,
                    server_id: self.server_id.clone(),
                    api_url: self.api_url.clone(),
                });
            }
            status => {
                return Err(PdnsError::Http {
                    what: format!("zone {zone}"),
                    status,
                });
            }
        }
        let body: ZoneJson = resp.json().await.map_err(|e| PdnsError::Decode {
            zone: zone.clone(),
            message: e.without_url().to_string(),
        })?;
        let mut out = Zone::default();
        for rrset in body.rrsets {
            let contents = rrset
                .records
                .into_iter()
                .filter(|r| !r.disabled)
                .map(|r| r.content)
                .collect::<Vec<_>>();
            if contents.is_empty() {
                continue;
            }
            out.rrsets
                .entry((fqdn(&rrset.name), rrset.rtype.to_ascii_uppercase()))
                .or_default()
                .extend(contents);
        }
        Ok(out)
    }
}
