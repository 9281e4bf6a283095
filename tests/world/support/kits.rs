//! Sovereign specs for every DNS provider and the helpers that render and read
//! their kits; shared by the snapshot tests and the tests on the test world.

use std::path::Path;

use catalyst_bootstrap::render::{self, Kit};
use catalyst_bootstrap::spec;
use serde_json::Value;

pub const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clusters/_template/sovereign.yaml"
);

pub const PDNS: &str = "
    provider: pdns
    pdns:
      apiUrl: http://powerdns.powerdns.svc:8081
      serverId: localhost
      apiKeySecretRef: {name: powerdns-api, key: api-key}";

pub const WEBHOOK: &str = "
    provider: webhook
    webhook:
      image: {repository: ghcr.io/example/external-dns-pdns-webhook, tag: v1.2.3}
      apiUrl: https://pdns.example.net:8443
      serverId: localhost
      apiKeySecretRef: {name: powerdns-api, key: api-key}
      port: 8888";

pub const CLOUDFLARE: &str = "
    provider: cloudflare
    cloudflare:
      apiTokenSecretRef: {name: cloudflare-api, key: token}
      proxied: true";

pub const HETZNER: &str = "
    provider: hetzner
    hetzner:
      image: {repository: ghcr.io/mconfalonieri/external-dns-hetzner-webhook, tag: v0.8.0}
      apiTokenSecretRef: {name: hetzner-dns, key: api-token}";

pub const AWS: &str = "
    provider: aws
    aws:
      region: eu-central-1
      zoneType: public
      credentialsSecretRef:
        name: route53
        accessKeyIdKey: access-key-id
        secretAccessKeyKey: secret-access-key";

pub const GOOGLE: &str = "
    provider: google
    google:
      project: openova-dns
      credentialsSecretRef: {name: clouddns, key: credentials.json}";

pub const AZURE: &str = "
    provider: azure
    azure:
      subscriptionId: 0a1b2c3d-4e5f-6789-abcd-ef0123456789
      resourceGroup: dns-rg
      configSecretRef: {name: azure-dns, key: azure.json}";

/// External-dns overrides for a wrapper chart that nests the upstream values (as
/// bp-external-dns does).
pub const WRAPPER_CHART: &str = "
    chart:
      name: bp-external-dns
      version: 1.1.7
      repository: https://charts.openova.io/
      valuesKey: external-dns";

/// External-dns overrides for a chart served from an OCI registry.
pub const OCI_CHART: &str = "
    chart:
      repository: oci://ghcr.io/openova-io/charts";

/// A Sovereign with the given CNI, external-dns overrides and `spec.dns` body.
pub fn sovereign(cni: &str, external_dns: &str, dns: &str) -> String {
    format!(
        "apiVersion: catalyst.openova.io/v1alpha1
kind: Sovereign
metadata:
  name: example
spec:
  domain: example.openova.io
  cni: {cni}
  externalDns:
    domainFilters: [openova.io]{external_dns}
  dns:{dns}
"
    )
}

pub fn load_and_render(spec_yaml: &str) -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sovereign.yaml");
    std::fs::write(&path, spec_yaml).unwrap();
    let loaded = spec::load(&path, Some(Path::new(TEMPLATE)))
        .unwrap_or_else(|e| panic!("spec must be valid:\n{e}\n{spec_yaml}"));
    render::render(&loaded.sovereign).unwrap()
}

pub fn kit(cni: &str, external_dns: &str, dns: &str) -> Kit {
    load_and_render(&sovereign(cni, external_dns, dns))
}

/// Every manifest parsed back, by file name.
pub fn docs(kit: &Kit) -> Vec<(String, Value)> {
    kit.manifests
        .iter()
        .map(|m| {
            let doc: Value = serde_saphyr::from_str(&m.yaml)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", m.file_name));
            (m.file_name.clone(), doc)
        })
        .collect()
}

pub fn doc(kit: &Kit, file_name: &str) -> Value {
    docs(kit)
        .into_iter()
        .find(|(name, _)| name == file_name)
        .unwrap_or_else(|| panic!("no {file_name} in the kit"))
        .1
}

/// The upstream chart's values from the HelmRelease.
pub fn values(kit: &Kit) -> Value {
    doc(kit, "12-external-dns.yaml")["spec"]["values"].clone()
}

pub fn extra_args(values: &Value) -> Vec<String> {
    values["extraArgs"]
        .as_array()
        .expect("extraArgs is a list")
        .iter()
        .map(|a| a.as_str().expect("each extraArg is a string").to_owned())
        .collect()
}

pub fn all_providers() -> [(&'static str, &'static str); 7] {
    [
        ("pdns", PDNS),
        ("webhook", WEBHOOK),
        ("cloudflare", CLOUDFLARE),
        ("hetzner", HETZNER),
        ("aws", AWS),
        ("google", GOOGLE),
        ("azure", AZURE),
    ]
}

/// The external-dns container of the Deployment that `helm template` renders
/// from the upstream chart with these values: its args and environment.
pub fn chart_container(
    world_chart: &Path,
    helm: &Path,
    values: &Value,
) -> (Vec<String>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_vec(values).unwrap()).unwrap();
    let out = std::process::Command::new(helm)
        .args(["template", "external-dns"])
        .arg(world_chart)
        .args(["--namespace", "external-dns", "-f"])
        .arg(&values_file)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template refused the values: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifests = String::from_utf8(out.stdout).unwrap();
    let deployment = manifests
        .split("\n---")
        .filter_map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .find(|d| d["kind"] == "Deployment")
        .expect("the chart renders a Deployment");
    let container = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "external-dns")
        .expect("external-dns container")
        .clone();
    let args = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let env = container["env"].as_array().cloned().unwrap_or_default();
    (args, env)
}
