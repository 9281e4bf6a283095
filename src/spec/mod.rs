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
mod provider;
pub mod schema;
mod tree;
mod validate;

pub use load::{DEFAULTS_LABEL, EMBEDDED_DEFAULTS, Loaded, load};
pub use parsed::{ApiUrl, Nameserver};
pub use provider::{
    Aws, AwsCredentialsRef, Azure, Cloudflare, DEFAULT_WEBHOOK_PORT, Dns, Google, Hetzner, Image,
    Pdns, Provider, ProviderKind, SecretKeyRef, Webhook, ZoneType,
};

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
