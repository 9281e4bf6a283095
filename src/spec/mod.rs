//! The Sovereign spec: its types, how it is loaded over the defaults, and its validation.
//! README.md ("The Sovereign spec") is the user-facing reference for every field.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod checker;
mod decode;
pub mod formats;
mod load;
mod parsed;
pub mod schema;
mod tree;
mod validate;

pub use load::{DEFAULTS_LABEL, EMBEDDED_DEFAULTS, Loaded, load};
pub use parsed::{ApiUrl, Nameserver};

use formats::Release;

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
///
/// Loaded, it holds the chosen [`Provider`]; as decoded from the file, before validation
/// has checked that exactly the chosen provider's block is set, it holds the [`Dns`]
/// blocks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Sovereign")]
pub struct Sovereign<D = Provider> {
    /// The spec's API version; exactly `catalyst.openova.io/v1alpha1`.
    pub api_version: String,
    /// Exactly `Sovereign`.
    pub kind: String,
    /// The Sovereign's name and extra labels.
    pub metadata: Metadata,
    /// The cluster, its external-dns, the DNS provider and how the records are verified.
    pub spec: SovereignSpec<D>,
}

impl Sovereign<Dns> {
    /// The spec with the provider validation chose in place of the blocks.
    pub(crate) fn with_provider(self, provider: Provider) -> Sovereign {
        let Sovereign {
            api_version,
            kind,
            metadata,
            spec:
                SovereignSpec {
                    domain,
                    cni,
                    external_dns,
                    dns: _,
                    verify,
                },
        } = self;
        Sovereign {
            api_version,
            kind,
            metadata,
            spec: SovereignSpec {
                domain,
                cni,
                external_dns,
                dns: provider,
                verify,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The Sovereign's name (an RFC 1123 label); names it in the labels of every kit object.
    #[schemars(example = &"example")]
    pub name: String,
    /// Extra labels on every kit object, on the HelmChart Flux makes from the HelmRelease
    /// and on external-dns's pods (for example a Flux sharding key). The tool's own labels
    /// (`app.kubernetes.io/managed-by`, `catalyst.openova.io/sovereign`,
    /// `applyset.kubernetes.io/*`) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(example = BTreeMap::from([("sharding.fluxcd.io/key", "shard-a")]))]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "SovereignSpec")]
pub struct SovereignSpec<D = Provider> {
    /// The DNS zone the Sovereign owns (a lowercase DNS name with at least two labels, no
    /// trailing dot); always external-dns's first domain filter.
    #[schemars(example = &"example.openova.io")]
    pub domain: String,
    /// The cluster's CNI plugin (an RFC 1123 label); `cilium` adds a CiliumNetworkPolicy to
    /// the kit, any other name does not.
    #[schemars(example = &"calico")]
    pub cni: String,
    /// external-dns: its release, chart, sources, record ownership, timings, probes and
    /// resources.
    pub external_dns: ExternalDns,
    pub dns: D,
    pub verify: Verify,
}

impl<D> SovereignSpec<D> {
    pub fn uses_cilium(&self) -> bool {
        self.cni == "cilium"
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDns {
    /// The external-dns image tag, `vMAJOR.MINOR.PATCH`.
    #[schemars(with = "String", example = &"v0.21.0")]
    pub version: Release,
    /// The Helm chart that installs external-dns.
    pub chart: Chart,
    /// The Namespace of the kit (an RFC 1123 label), where every namespaced object goes.
    pub namespace: String,
    /// The HelmRelease and Helm release name (an RFC 1123 label of at most 53 characters).
    pub release_name: String,
    /// external-dns's `--source`s: at least one, each once.
    #[schemars(example = ["service", "ingress"])]
    pub sources: Vec<String>,
    /// Domain filters added after `spec.domain`, each once.
    #[serde(default)]
    #[schemars(example = ["openova.io"])]
    pub domain_filters: Vec<String>,
    /// How external-dns treats records it owns.
    #[schemars(example = Policy::Sync)]
    pub policy: Policy,
    /// The owner id in external-dns's TXT ownership records: 1 to 63 letters, digits, `-`,
    /// `_` or `.`.
    pub txt_owner_id: String,
    /// The prefix of the TXT ownership records: letters, digits, `-`, `_`, `.` and
    /// `%{record_type}`.
    #[schemars(example = &"%{record_type}-owner.")]
    pub txt_prefix: String,
    /// The annotation prefix external-dns reads: a DNS name followed by `/`. Releases before
    /// v0.20.0 have no --annotation-prefix flag and must keep the legacy prefix.
    #[schemars(example = &"external-dns.kubernetes.io/")]
    pub annotation_prefix: String,
    /// external-dns's sync interval (a positive Go duration).
    #[schemars(example = &"30s")]
    pub interval: String,
    /// Timeout of each Kubernetes API request external-dns makes (a positive Go duration).
    #[schemars(example = &"3m")]
    pub request_timeout: String,
    /// The HelmRelease's and chart source's `spec.interval` (a positive Go duration).
    #[schemars(example = &"1h")]
    pub reconcile_interval: String,
    /// external-dns's probes, rendered as complete maps (Helm replaces a probe map whole).
    pub probes: Probes,
    /// external-dns's resource requests and limits.
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// The chart's name (an RFC 1123 label).
    #[schemars(example = &"bp-external-dns")]
    pub name: String,
    /// The exact chart version (semver).
    #[schemars(example = &"1.1.7")]
    pub version: String,
    /// `http(s)://` for a Helm repository (a HelmRepository), `oci://` for an OCI registry
    /// path (an OCIRepository of `<repository>/<name>`).
    #[schemars(example = &"oci://ghcr.io/org/charts")]
    pub repository: String,
    /// When not empty, the upstream chart's values are nested under this key (wrapper charts).
    #[serde(default)]
    #[schemars(example = &"external-dns")]
    pub values_key: String,
}

impl Chart {
    pub fn is_oci(&self) -> bool {
        self.repository.starts_with("oci://")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probes {
    /// external-dns's liveness probe. An initialDelaySeconds below 60 renders with a
    /// warning: the start-up cache sync waits up to 60 s.
    pub liveness: Probe,
    /// external-dns's readiness probe.
    pub readiness: Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// Seconds before the first probe.
    pub initial_delay_seconds: u32,
    /// Seconds between probes, at least 1.
    #[schemars(range(min = 1))]
    pub period_seconds: u32,
    /// Seconds a probe may take, at least 1.
    #[schemars(range(min = 1))]
    pub timeout_seconds: u32,
    /// Failed probes in a row that count as a failure, at least 1.
    #[schemars(range(min = 1))]
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Each request at most its limit.
    #[serde(default)]
    pub requests: ResourceList,
    /// At least each request.
    #[serde(default)]
    pub limits: ResourceList,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    /// A positive Kubernetes quantity.
    #[schemars(example = &"500m")]
    pub cpu: Option<String>,
    /// A positive Kubernetes quantity.
    #[schemars(example = &"128Mi")]
    pub memory: Option<String>,
}

/// The DNS provider external-dns writes to. Exactly the block named by `provider` is set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// The DNS provider external-dns writes to; exactly the block of that name is set.
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
    /// The chosen provider's block, taken out of the others; `None` when it is not set.
    pub(crate) fn take_selected(self) -> Option<Provider> {
        Some(match self.provider {
            ProviderKind::Pdns => Provider::Pdns(self.pdns?),
            ProviderKind::Webhook => Provider::Webhook(self.webhook?),
            ProviderKind::Cloudflare => Provider::Cloudflare(self.cloudflare?),
            ProviderKind::Hetzner => Provider::Hetzner(self.hetzner?),
            ProviderKind::Aws => Provider::Aws(self.aws?),
            ProviderKind::Google => Provider::Google(self.google?),
            ProviderKind::Azure => Provider::Azure(self.azure?),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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

/// The DNS provider external-dns writes to, with its settings: the block that
/// `spec.dns.provider` chose.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    Pdns(Pdns),
    Webhook(Webhook),
    Cloudflare(Cloudflare),
    Hetzner(Hetzner),
    Aws(Aws),
    Google(Google),
    Azure(Azure),
}

impl Provider {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Pdns(_) => ProviderKind::Pdns,
            Provider::Webhook(_) => ProviderKind::Webhook,
            Provider::Cloudflare(_) => ProviderKind::Cloudflare,
            Provider::Hetzner(_) => ProviderKind::Hetzner,
            Provider::Aws(_) => ProviderKind::Aws,
            Provider::Google(_) => ProviderKind::Google,
            Provider::Azure(_) => ProviderKind::Azure,
        }
    }
}

/// Serialized as the file writes it: `provider` and that provider's block.
impl Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let kind = self.kind();
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("provider", &kind)?;
        match self {
            Provider::Pdns(x) => map.serialize_entry(kind.as_str(), x)?,
            Provider::Webhook(x) => map.serialize_entry(kind.as_str(), x)?,
            Provider::Cloudflare(x) => map.serialize_entry(kind.as_str(), x)?,
            Provider::Hetzner(x) => map.serialize_entry(kind.as_str(), x)?,
            Provider::Aws(x) => map.serialize_entry(kind.as_str(), x)?,
            Provider::Google(x) => map.serialize_entry(kind.as_str(), x)?,
            Provider::Azure(x) => map.serialize_entry(kind.as_str(), x)?,
        }
        map.end()
    }
}

impl SecretKeyRef {
    /// A reference for the schema's examples.
    fn example(name: &str, key: &str) -> Self {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }
}

/// A key in a Kubernetes Secret in the external-dns namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name (an RFC 1123 subdomain).
    pub name: String,
    /// The key in the Secret: letters, digits, `-`, `_` or `.`.
    pub key: String,
}

/// external-dns's in-tree PowerDNS provider.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pdns {
    /// The PowerDNS API (http or https URL, no user info); `--pdns-server`.
    #[schemars(with = "String", example = &"http://powerdns.powerdns.svc:8081")]
    pub api_url: ApiUrl,
    /// `--pdns-server-id` (external-dns defaults to `localhost`).
    #[schemars(example = &"localhost")]
    pub server_id: Option<String>,
    /// The PowerDNS API key, passed as env `EXTERNAL_DNS_PDNS_API_KEY`.
    #[schemars(example = SecretKeyRef::example("powerdns-api", "api-key"))]
    pub api_key_secret_ref: SecretKeyRef,
}

/// A PowerDNS webhook provider running as a sidecar (a third-party image).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// The sidecar's image.
    #[schemars(example = Image::example("ghcr.io/org/pdns-webhook", "v1.2.3"))]
    pub image: Image,
    /// The PowerDNS API (http or https URL, no user info); sidecar env `PDNS_API_URL`.
    #[schemars(with = "String", example = &"http://powerdns.powerdns.svc:8081")]
    pub api_url: ApiUrl,
    /// Sidecar env `PDNS_SERVER_ID`.
    #[schemars(example = &"localhost")]
    pub server_id: Option<String>,
    /// The PowerDNS API key, sidecar env `PDNS_API_KEY`.
    #[schemars(example = SecretKeyRef::example("powerdns-api", "api-key"))]
    pub api_key_secret_ref: SecretKeyRef,
    /// The port the sidecar serves the webhook API on, on localhost; not 7979 or 8080
    /// (taken in the pod).
    pub port: Option<u16>,
}

/// external-dns's default `--webhook-provider-url` port.
pub const DEFAULT_WEBHOOK_PORT: u16 = 8888;

impl Webhook {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_WEBHOOK_PORT)
    }
}

impl Image {
    /// An image for the schema's examples.
    fn example(repository: &str, tag: &str) -> Self {
        Image {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// The image repository, e.g. `ghcr.io/org/image`.
    pub repository: String,
    /// The image tag, e.g. `v1.2.3`.
    pub tag: String,
}

/// Cloudflare DNS.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cloudflare {
    /// The Cloudflare API token, env `CF_API_TOKEN`.
    #[schemars(example = SecretKeyRef::example("cloudflare-api", "token"))]
    pub api_token_secret_ref: SecretKeyRef,
    /// `--cloudflare-proxied`.
    #[serde(default)]
    pub proxied: bool,
}

/// Hetzner DNS, a webhook sidecar in recent external-dns releases.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hetzner {
    /// The webhook sidecar's image.
    #[schemars(example = Image::example("ghcr.io/mconfalonieri/external-dns-hetzner-webhook", "v0.8.0"))]
    pub image: Image,
    /// The Hetzner DNS API token, sidecar env `HETZNER_API_KEY`.
    #[schemars(example = SecretKeyRef::example("hetzner-dns", "api-token"))]
    pub api_token_secret_ref: SecretKeyRef,
}

/// AWS Route 53.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aws {
    /// The AWS region, env `AWS_DEFAULT_REGION`.
    #[schemars(example = &"eu-central-1")]
    pub region: String,
    /// `--aws-zone-type`.
    pub zone_type: Option<ZoneType>,
    pub credentials_secret_ref: AwsCredentialsRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsRef {
    /// The Secret's name (an RFC 1123 subdomain).
    #[schemars(example = &"route53")]
    pub name: String,
    /// The key holding the access key id, env `AWS_ACCESS_KEY_ID`.
    #[schemars(example = &"access-key-id")]
    pub access_key_id_key: String,
    /// The key holding the secret access key, env `AWS_SECRET_ACCESS_KEY`; another key than
    /// accessKeyIdKey.
    #[schemars(example = &"secret-access-key")]
    pub secret_access_key_key: String,
}

/// Google Cloud DNS.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Google {
    /// The Google Cloud project id, `--google-project`.
    #[schemars(example = &"openova-dns")]
    pub project: String,
    /// A service-account JSON key, mounted as a file.
    #[schemars(example = SecretKeyRef::example("clouddns", "credentials.json"))]
    pub credentials_secret_ref: SecretKeyRef,
}

/// Azure DNS.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Azure {
    /// The subscription id (a UUID), `--azure-subscription-id`.
    #[schemars(example = &"0a1b2c3d-4e5f-6789-abcd-ef0123456789")]
    pub subscription_id: String,
    /// The resource group, `--azure-resource-group`.
    #[schemars(example = &"dns-rg")]
    pub resource_group: String,
    /// An `azure.json` file, mounted at /etc/kubernetes/azure.json.
    #[schemars(example = SecretKeyRef::example("azure-dns", "azure.json"))]
    pub config_secret_ref: SecretKeyRef,
}

/// How catalyst-bootstrap itself reaches PowerDNS to check that records exist.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// The PowerDNS API (http or https URL, no user info).
    pub api_url: String,
    /// The PowerDNS server id, usually `localhost`.
    pub server_id: String,
    /// Environment variable holding the PowerDNS API key (exclusive with `apiKeyFile`;
    /// `null` drops the default).
    pub api_key_env: Option<String>,
    /// Absolute path of a file holding the PowerDNS API key (exclusive with `apiKeyEnv`;
    /// setting it drops the default `apiKeyEnv`).
    #[schemars(example = &"/run/secrets/pdns-api-key")]
    pub api_key_file: Option<String>,
    /// `ip:port` of the authoritative DNS listener to query.
    #[schemars(with = "Option<String>", example = &"127.0.0.1:53", example = &"[::1]:5353")]
    pub nameserver: Option<Nameserver>,
    /// Names that must be in PowerDNS, each under `spec.domain` or a domain filter.
    #[serde(default)]
    #[schemars(example = ["api.example.openova.io"])]
    pub hostnames: Vec<String>,
    /// external-dns's metrics URL (http or https); empty when not checked.
    #[serde(default)]
    #[schemars(example = &"http://127.0.0.1:7979/metrics")]
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
