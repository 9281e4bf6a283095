//! The DNS provider blocks of the spec (`spec.dns`), and the [`Provider`] that validation
//! takes from them: the block `spec.dns.provider` chose.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ApiUrl;

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

/// Declares a provider block that reaches a PowerDNS API: its own fields, then the three
/// that say where the API is and which key it takes (one declaration for both blocks; the
/// decoder's unknown-field check needs plain fields, so they cannot be a flattened struct).
macro_rules! pdns_api_block {
    ($(#[$attr:meta])* pub struct $name:ident { $($(#[$field_attr:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($(#[$field_attr])* pub $field: $ty,)*
            /// The PowerDNS API: an http or https URL, no user info.
            #[schemars(with = "String", example = &"http://powerdns.powerdns.svc:8081")]
            pub api_url: ApiUrl,
            /// The PowerDNS server id (PowerDNS's own default is `localhost`).
            #[schemars(example = &"localhost")]
            pub server_id: Option<String>,
            /// The Secret key holding the PowerDNS API key.
            #[schemars(example = SecretKeyRef::example("powerdns-api", "api-key"))]
            pub api_key_secret_ref: SecretKeyRef,
        }
    };
}

pdns_api_block! {
    /// external-dns's in-tree PowerDNS provider: the API as `--pdns-server`, the server id
    /// as `--pdns-server-id`, the key as env `EXTERNAL_DNS_PDNS_API_KEY`.
    pub struct Pdns {}
}

pdns_api_block! {
    /// A PowerDNS webhook provider running as a sidecar (a third-party image): the API as
    /// the sidecar's env `PDNS_API_URL`, the server id as `PDNS_SERVER_ID`, the key as
    /// `PDNS_API_KEY`.
    pub struct Webhook {
        /// The sidecar's image.
        #[schemars(example = Image::example("ghcr.io/org/pdns-webhook", "v1.2.3"))]
        pub image: Image,
        /// The port the sidecar serves the webhook API on, on localhost; not 7979 or 8080
        /// (taken in the pod).
        pub port: Option<u16>,
    }
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
