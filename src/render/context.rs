//! Everything the templates print, worked out from a validated Sovereign: which flags the
//! pinned external-dns takes, how each provider gets its credentials, which ports to open.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::external_dns::{self, AnnotationPrefixVia};
use crate::spec::{Image, Probe, Provider, ResourceList, SecretKeyRef, Sovereign};

#[derive(Debug, Serialize)]
pub(super) struct Context {
    pub sovereign: String,
    /// The spec's extra labels for every kit object, by key.
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
    pub release_name: String,
    pub reconcile_interval: String,
    pub source: ChartSource,
    /// The wrapper chart's key for the upstream values, if any.
    pub values_key: Option<String>,
    pub values: Values,
    pub network: Network,
}

#[derive(Debug, Serialize)]
pub(super) struct ChartSource {
    /// `HelmRepository` or `OCIRepository`.
    pub kind: &'static str,
    pub oci: bool,
    pub name: String,
    pub url: String,
    pub chart: String,
    pub version: String,
}

/// The upstream chart's values (charts/external-dns/values.yaml).
#[derive(Debug, Serialize)]
pub(super) struct Values {
    pub image_tag: String,
    /// external-dns's `--provider`.
    pub provider: &'static str,
    pub webhook: Option<Sidecar>,
    pub env: Vec<EnvVar>,
    pub volumes: Vec<SecretVolume>,
    pub sources: Vec<String>,
    pub domain_filters: Vec<String>,
    pub policy: &'static str,
    pub txt_owner_id: String,
    pub txt_prefix: String,
    pub interval: String,
    pub annotation_prefix: Option<String>,
    pub extra_args: Vec<String>,
    pub liveness: Probe,
    pub readiness: Probe,
    pub resources: Vec<ResourceSection>,
}

/// A webhook provider container beside external-dns.
#[derive(Debug, Serialize)]
pub(super) struct Sidecar {
    pub repository: String,
    pub tag: String,
    pub env: Vec<EnvVar>,
}

/// An environment variable: a plain value, or a key of a Secret.
#[derive(Debug, Serialize)]
pub(super) struct EnvVar {
    pub name: &'static str,
    pub value: Option<String>,
    pub secret: Option<SecretKeyRef>,
}

impl EnvVar {
    fn value(name: &'static str, value: impl Into<String>) -> Self {
        EnvVar {
            name,
            value: Some(value.into()),
            secret: None,
        }
    }

    fn secret(name: &'static str, secret_name: &str, key: &str) -> Self {
        EnvVar {
            name,
            value: None,
            secret: Some(SecretKeyRef {
                name: secret_name.to_owned(),
                key: key.to_owned(),
            }),
        }
    }
}

/// One key of a Secret mounted as a file.
#[derive(Debug, Serialize)]
pub(super) struct SecretVolume {
    pub name: &'static str,
    pub secret_name: String,
    pub key: String,
    pub file: &'static str,
    pub mount_path: &'static str,
}

#[derive(Debug, Serialize)]
pub(super) struct ResourceSection {
    pub name: &'static str,
    pub entries: Vec<ResourceEntry>,
}

#[derive(Debug, Serialize)]
pub(super) struct ResourceEntry {
    pub name: &'static str,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub(super) struct Network {
    /// The provider API's port, as Cilium writes ports (a string).
    pub provider_port_string: String,
    /// Provider ports the NetworkPolicy does not already open (443 and 6443 it does).
    pub extra_provider_ports: Vec<u16>,
    pub cilium_policy_name: String,
}

const GOOGLE_MOUNT: &str = "/etc/secrets/google";
const GOOGLE_FILE: &str = "credentials.json";
/// external-dns's default `--azure-config-file` is /etc/kubernetes/azure.json.
const AZURE_MOUNT: &str = "/etc/kubernetes";
const AZURE_FILE: &str = "azure.json";

pub(super) fn build(sovereign: &Sovereign) -> Context {
    let spec = &sovereign.spec;
    let e = &spec.external_dns;
    let release = e.version;

    let mut extra_args = vec![format!(
        "{}={}",
        external_dns::request_timeout_flag(release),
        e.request_timeout
    )];
    let via = external_dns::annotation_prefix_via(
        release,
        &e.chart.name,
        &e.chart.version,
        &e.chart.values_key,
    );
    if via == AnnotationPrefixVia::ExtraArg {
        extra_args.push(format!("--annotation-prefix={}", e.annotation_prefix));
    }

    let wiring = provider_wiring(&spec.dns);
    extra_args.extend(wiring.args);

    let chart = &e.chart;
    let source = if chart.is_oci() {
        ChartSource {
            kind: "OCIRepository",
            oci: true,
            name: e.release_name.clone(),
            // An OCI chart lives at <registry path>/<chart name>.
            url: format!("{}/{}", chart.repository.trim_end_matches('/'), chart.name),
            chart: chart.name.clone(),
            version: chart.version.clone(),
        }
    } else {
        ChartSource {
            kind: "HelmRepository",
            oci: false,
            name: e.release_name.clone(),
            url: chart.repository.clone(),
            chart: chart.name.clone(),
            version: chart.version.clone(),
        }
    };

    let mut domain_filters = vec![spec.domain.clone()];
    domain_filters.extend(e.domain_filters.iter().cloned());

    let extra_provider_ports = if [443, 6443].contains(&wiring.api_port) {
        Vec::new()
    } else {
        vec![wiring.api_port]
    };

    Context {
        sovereign: sovereign.metadata.name.clone(),
        labels: sovereign.metadata.labels.clone(),
        namespace: e.namespace.clone(),
        release_name: e.release_name.clone(),
        reconcile_interval: e.reconcile_interval.clone(),
        source,
        values_key: Some(chart.values_key.clone()).filter(|k| !k.is_empty()),
        values: Values {
            image_tag: e.version.to_string(),
            provider: wiring.provider,
            webhook: wiring.sidecar,
            env: wiring.env,
            volumes: wiring.volumes,
            sources: e.sources.clone(),
            domain_filters,
            policy: e.policy.as_str(),
            txt_owner_id: e.txt_owner_id.clone(),
            txt_prefix: e.txt_prefix.clone(),
            interval: e.interval.clone(),
            annotation_prefix: (via == AnnotationPrefixVia::ChartValue)
                .then(|| e.annotation_prefix.clone()),
            extra_args,
            liveness: e.probes.liveness,
            readiness: e.probes.readiness,
            resources: resource_sections(&e.resources.requests, &e.resources.limits),
        },
        network: Network {
            provider_port_string: wiring.api_port.to_string(),
            extra_provider_ports,
            cilium_policy_name: format!("{}-kube-apiserver", e.release_name),
        },
    }
}

/// How one provider is wired into the chart's values.
struct Wiring {
    provider: &'static str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    volumes: Vec<SecretVolume>,
    sidecar: Option<Sidecar>,
    /// The port of the provider's API, for the network policies.
    api_port: u16,
}

impl Wiring {
    fn new(provider: &'static str, api_port: u16) -> Self {
        Wiring {
            provider,
            args: Vec::new(),
            env: Vec::new(),
            volumes: Vec::new(),
            sidecar: None,
            api_port,
        }
    }
}

/// Cloud DNS APIs are HTTPS.
const HTTPS: u16 = 443;

fn provider_wiring(provider: &Provider) -> Wiring {
    let sidecar = |image: &Image, env| Sidecar {
        repository: image.repository.clone(),
        tag: image.tag.clone(),
        env,
    };
    match provider {
        Provider::Pdns(p) => {
            let mut w = Wiring::new("pdns", p.api_url.port());
            w.args.push(format!("--pdns-server={}", p.api_url));
            if let Some(id) = &p.server_id {
                w.args.push(format!("--pdns-server-id={id}"));
            }
            // external-dns reads every flag from EXTERNAL_DNS_<FLAG>, keeping the key off argv.
            let r = &p.api_key_secret_ref;
            w.env
                .push(EnvVar::secret("EXTERNAL_DNS_PDNS_API_KEY", &r.name, &r.key));
            w
        }
        Provider::Webhook(p) => {
            let mut w = Wiring::new("webhook", p.api_url.port());
            w.args.push(format!(
                "--webhook-provider-url=http://localhost:{}",
                p.port()
            ));
            let mut env = vec![EnvVar::value("PDNS_API_URL", p.api_url.as_str())];
            if let Some(id) = &p.server_id {
                env.push(EnvVar::value("PDNS_SERVER_ID", id));
            }
            let r = &p.api_key_secret_ref;
            env.push(EnvVar::secret("PDNS_API_KEY", &r.name, &r.key));
            env.push(EnvVar::value("WEBHOOK_PORT", p.port().to_string()));
            w.sidecar = Some(sidecar(&p.image, env));
            w
        }
        Provider::Cloudflare(p) => {
            let mut w = Wiring::new("cloudflare", HTTPS);
            if p.proxied {
                w.args.push("--cloudflare-proxied".to_owned());
            }
            let r = &p.api_token_secret_ref;
            w.env.push(EnvVar::secret("CF_API_TOKEN", &r.name, &r.key));
            w
        }
        Provider::Hetzner(p) => {
            let mut w = Wiring::new("webhook", HTTPS);
            w.args.push(format!(
                "--webhook-provider-url=http://localhost:{}",
                crate::spec::DEFAULT_WEBHOOK_PORT
            ));
            let r = &p.api_token_secret_ref;
            let env = vec![EnvVar::secret("HETZNER_API_KEY", &r.name, &r.key)];
            w.sidecar = Some(sidecar(&p.image, env));
            w
        }
        Provider::Aws(p) => {
            let mut w = Wiring::new("aws", HTTPS);
            if let Some(zone_type) = p.zone_type {
                w.args
                    .push(format!("--aws-zone-type={}", zone_type.as_str()));
            }
            let r = &p.credentials_secret_ref;
            w.env.push(EnvVar::value("AWS_DEFAULT_REGION", &p.region));
            w.env.push(EnvVar::secret(
                "AWS_ACCESS_KEY_ID",
                &r.name,
                &r.access_key_id_key,
            ));
            w.env.push(EnvVar::secret(
                "AWS_SECRET_ACCESS_KEY",
                &r.name,
                &r.secret_access_key_key,
            ));
            w
        }
        Provider::Google(p) => {
            let mut w = Wiring::new("google", HTTPS);
            w.args.push(format!("--google-project={}", p.project));
            w.env.push(EnvVar::value(
                "GOOGLE_APPLICATION_CREDENTIALS",
                format!("{GOOGLE_MOUNT}/{GOOGLE_FILE}"),
            ));
            w.volumes.push(SecretVolume {
                name: "google-credentials",
                secret_name: p.credentials_secret_ref.name.clone(),
                key: p.credentials_secret_ref.key.clone(),
                file: GOOGLE_FILE,
                mount_path: GOOGLE_MOUNT,
            });
            w
        }
        Provider::Azure(p) => {
            let mut w = Wiring::new("azure", HTTPS);
            w.args
                .push(format!("--azure-config-file={AZURE_MOUNT}/{AZURE_FILE}"));
            w.args
                .push(format!("--azure-resource-group={}", p.resource_group));
            w.args
                .push(format!("--azure-subscription-id={}", p.subscription_id));
            w.volumes.push(SecretVolume {
                name: "azure-config",
                secret_name: p.config_secret_ref.name.clone(),
                key: p.config_secret_ref.key.clone(),
                file: AZURE_FILE,
                mount_path: AZURE_MOUNT,
            });
            w
        }
    }
}

fn resource_sections(requests: &ResourceList, limits: &ResourceList) -> Vec<ResourceSection> {
    [("requests", requests), ("limits", limits)]
        .into_iter()
        .filter_map(|(name, list)| {
            let entries: Vec<ResourceEntry> = [("cpu", &list.cpu), ("memory", &list.memory)]
                .into_iter()
                .filter_map(|(name, value)| {
                    value.as_ref().map(|v| ResourceEntry {
                        name,
                        value: v.clone(),
                    })
                })
                .collect();
            (!entries.is_empty()).then_some(ResourceSection { name, entries })
        })
        .collect()
}
