//! The Sovereign spec: its types, how it is loaded over the defaults, and its validation.
//! README.md ("The Sovereign spec") is the user-facing reference for every field.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod decode;
pub mod formats;
mod load;
mod tree;
mod validate;

pub use load::{DEFAULTS_LABEL, EMBEDDED_DEFAULTS, Loaded, load};

pub const API_VERSION: &str = "catalyst.openova.io/v1alpha1";
pub const KIND: &str = "Sovereign";

/// Why a spec could not be loaded. Every variant is bad input.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("{file}: cannot read the file: {source}; expected a readable YAML file")]
    Unreadable {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// One or more problems, each printed on its own line.
    #[error("{}", lines(.0))]
    Invalid(Vec<Diagnostic>),
}

fn lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem (or warning) about the input, printed as
/// `<file>:<line>:<col>: <field.path>: <problem>; expected <expectation>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// Dotted field path such as `spec.externalDns.interval`, when the problem has one.
    pub path: Option<String>,
    pub problem: String,
    pub expected: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(path) = self.path.as_deref().filter(|p| !p.is_empty()) {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(expected) = &self.expected {
            write!(f, "; expected {expected}")?;
        }
        Ok(())
    }
}

/// A Sovereign: one k3s cluster and the bootstrap kit that brings its DNS up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sovereign {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: SovereignSpec,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    /// Extra labels on every kit object (for example a Flux sharding key); the tool's own
    /// labels cannot be overridden.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SovereignSpec {
    /// The DNS zone the Sovereign owns; external-dns's domain filter derives from it.
    pub domain: String,
    /// The cluster's CNI plugin; `cilium` adds a CiliumNetworkPolicy to the kit.
    pub cni: String,
    pub external_dns: ExternalDns,
    pub dns: Dns,
    pub verify: Verify,
}

impl SovereignSpec {
    pub fn uses_cilium(&self) -> bool {
        self.cni == "cilium"
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDns {
    /// The external-dns image tag, `vMAJOR.MINOR.PATCH`.
    pub version: String,
    pub chart: Chart,
    pub namespace: String,
    pub release_name: String,
    pub sources: Vec<String>,
    /// Filters beyond `spec.domain`.
    #[serde(default)]
    pub domain_filters: Vec<String>,
    pub policy: Policy,
    pub txt_owner_id: String,
    pub txt_prefix: String,
    pub annotation_prefix: String,
    /// external-dns's sync interval (Go duration).
    pub interval: String,
    /// Timeout of each Kubernetes API request external-dns makes (Go duration).
    pub request_timeout: String,
    /// The HelmRelease's reconcile interval (Go duration).
    pub reconcile_interval: String,
    pub probes: Probes,
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    pub name: String,
    pub version: String,
    /// `http(s)://` for a Helm repository, `oci://` for an OCI registry path.
    pub repository: String,
    /// When not empty, the upstream chart's values are nested under this key (wrapper charts).
    #[serde(default)]
    pub values_key: String,
}

impl Chart {
    pub fn is_oci(&self) -> bool {
        self.repository.starts_with("oci://")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    Sync,
    UpsertOnly,
    CreateOnly,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Sync => "sync",
            Policy::UpsertOnly => "upsert-only",
            Policy::CreateOnly => "create-only",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probes {
    pub liveness: Probe,
    pub readiness: Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default)]
    pub limits: ResourceList,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

/// The DNS provider external-dns writes to. Exactly the block named by `provider` is set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    pub provider: ProviderKind,
    pub pdns: Option<Pdns>,
    pub webhook: Option<Webhook>,
    pub cloudflare: Option<Cloudflare>,
    pub hetzner: Option<Hetzner>,
    pub aws: Option<Aws>,
    pub google: Option<Google>,
    pub azure: Option<Azure>,
}

impl Dns {
    /// The chosen provider's settings; `None` only for a spec that failed validation.
    pub fn selected(&self) -> Option<ProviderConfig<'_>> {
        Some(match self.provider {
            ProviderKind::Pdns => ProviderConfig::Pdns(self.pdns.as_ref()?),
            ProviderKind::Webhook => ProviderConfig::Webhook(self.webhook.as_ref()?),
            ProviderKind::Cloudflare => ProviderConfig::Cloudflare(self.cloudflare.as_ref()?),
            ProviderKind::Hetzner => ProviderConfig::Hetzner(self.hetzner.as_ref()?),
            ProviderKind::Aws => ProviderConfig::Aws(self.aws.as_ref()?),
            ProviderKind::Google => ProviderConfig::Google(self.google.as_ref()?),
            ProviderKind::Azure => ProviderConfig::Azure(self.azure.as_ref()?),
        })
    }

    /// The provider blocks that are present, by name.
    pub fn present_blocks(&self) -> Vec<ProviderKind> {
        let present = [
            (ProviderKind::Pdns, self.pdns.is_some()),
            (ProviderKind::Webhook, self.webhook.is_some()),
            (ProviderKind::Cloudflare, self.cloudflare.is_some()),
            (ProviderKind::Hetzner, self.hetzner.is_some()),
            (ProviderKind::Aws, self.aws.is_some()),
            (ProviderKind::Google, self.google.is_some()),
            (ProviderKind::Azure, self.azure.is_some()),
        ];
        present
            .into_iter()
            .filter_map(|(kind, is_present)| is_present.then_some(kind))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Pdns,
    Webhook,
    Cloudflare,
    Hetzner,
    Aws,
    Google,
    Azure,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 7] = [
        ProviderKind::Pdns,
        ProviderKind::Webhook,
        ProviderKind::Cloudflare,
        ProviderKind::Hetzner,
        ProviderKind::Aws,
        ProviderKind::Google,
        ProviderKind::Azure,
    ];

    /// The spec's name, which is also the provider block's key.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Pdns => "pdns",
            ProviderKind::Webhook => "webhook",
            ProviderKind::Cloudflare => "cloudflare",
            ProviderKind::Hetzner => "hetzner",
            ProviderKind::Aws => "aws",
            ProviderKind::Google => "google",
            ProviderKind::Azure => "azure",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chosen provider's block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProviderConfig<'a> {
    Pdns(&'a Pdns),
    Webhook(&'a Webhook),
    Cloudflare(&'a Cloudflare),
    Hetzner(&'a Hetzner),
    Aws(&'a Aws),
    Google(&'a Google),
    Azure(&'a Azure),
}

/// A key in a Kubernetes Secret in the external-dns namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// external-dns's in-tree PowerDNS provider.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pdns {
    pub api_url: String,
    pub server_id: Option<String>,
    pub api_key_secret_ref: SecretKeyRef,
}

/// A PowerDNS webhook provider running as a sidecar (a third-party image).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub image: Image,
    pub api_url: String,
    pub server_id: Option<String>,
    pub api_key_secret_ref: SecretKeyRef,
    /// The port the sidecar serves the webhook API on, on localhost.
    pub port: Option<u16>,
}

/// external-dns's default `--webhook-provider-url` port.
pub const DEFAULT_WEBHOOK_PORT: u16 = 8888;

impl Webhook {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_WEBHOOK_PORT)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    pub repository: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cloudflare {
    pub api_token_secret_ref: SecretKeyRef,
    #[serde(default)]
    pub proxied: bool,
}

/// Hetzner DNS, a webhook sidecar in recent external-dns releases.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hetzner {
    pub image: Image,
    pub api_token_secret_ref: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Aws {
    pub region: String,
    pub zone_type: Option<ZoneType>,
    pub credentials_secret_ref: AwsCredentialsRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneType {
    Public,
    Private,
}

impl ZoneType {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneType::Public => "public",
            ZoneType::Private => "private",
        }
    }
}

/// A Secret holding an AWS access key pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsRef {
    pub name: String,
    pub access_key_id_key: String,
    pub secret_access_key_key: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Google {
    pub project: String,
    /// A service-account JSON key, mounted as a file.
    pub credentials_secret_ref: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Azure {
    pub subscription_id: String,
    pub resource_group: String,
    /// An `azure.json` file, mounted at /etc/kubernetes/azure.json.
    pub config_secret_ref: SecretKeyRef,
}

/// How catalyst-bootstrap itself reaches PowerDNS to check that records exist.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    pub api_url: String,
    pub server_id: String,
    /// Environment variable holding the PowerDNS API key (exclusive with `api_key_file`).
    pub api_key_env: Option<String>,
    /// File holding the PowerDNS API key (exclusive with `api_key_env`).
    pub api_key_file: Option<String>,
    /// `ip:port` of the authoritative DNS listener to query.
    pub nameserver: Option<String>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// external-dns's metrics URL; empty when not checked.
    #[serde(default)]
    pub metrics_url: String,
}

/// Mappings whose listed keys are alternatives: a Sovereign choosing one of them drops
/// the defaults' others when merging (see `tree::Node::merge`).
pub(crate) const EXCLUSIVE_GROUPS: &[(&str, &[&str])] = &[
    (
        "spec.dns",
        &[
            "pdns",
            "webhook",
            "cloudflare",
            "hetzner",
            "aws",
            "google",
            "azure",
        ],
    ),
    ("spec.verify", &["apiKeyEnv", "apiKeyFile"]),
];
