//! The rendered kit: a snapshot per provider and per chart/CNI variant, plus assertions on
//! the parsed documents for the things the field failures taught (probes, timeout flag,
//! Cilium policy) and for what must never happen (secrets in output, unlabelled objects).

use std::path::PathBuf;

use crate::support::kits::*;
use catalyst_bootstrap::render::{self, Kit};
use catalyst_bootstrap::spec;
use serde_json::{Value, json};

#[test]
fn snapshot_of_each_provider() {
    for (name, dns) in all_providers() {
        insta::assert_snapshot!(
            format!("provider_{name}"),
            kit("cilium", "", dns).to_multi_doc()
        );
    }
}

#[test]
fn snapshot_without_cilium() {
    insta::assert_snapshot!("cni_calico", kit("calico", "", PDNS).to_multi_doc());
}

#[test]
fn snapshot_of_a_wrapper_chart() {
    insta::assert_snapshot!(
        "chart_wrapper",
        kit("cilium", WRAPPER_CHART, PDNS).to_multi_doc()
    );
}

#[test]
fn snapshot_of_an_oci_chart() {
    insta::assert_snapshot!("chart_oci", kit("cilium", OCI_CHART, PDNS).to_multi_doc());
}

#[test]
fn files_are_numbered_in_apply_order_and_cilium_adds_its_policy() {
    let names =
        |k: &Kit| -> Vec<String> { k.manifests.iter().map(|m| m.file_name.clone()).collect() };
    assert_eq!(
        names(&kit("cilium", "", PDNS)),
        [
            "10-namespace.yaml",
            "11-chart-source.yaml",
            "12-external-dns.yaml",
            "13-networkpolicy.yaml",
            "14-ciliumnetworkpolicy.yaml"
        ]
    );
    assert_eq!(
        names(&kit("calico", "", PDNS)),
        [
            "10-namespace.yaml",
            "11-chart-source.yaml",
            "12-external-dns.yaml",
            "13-networkpolicy.yaml"
        ]
    );
}

#[test]
fn probes_are_tuned_and_restate_http_get() {
    let v = values(&kit("cilium", "", PDNS));
    assert_eq!(
        v["livenessProbe"],
        json!({
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 180,
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
            "successThreshold": 1
        })
    );
    assert_eq!(
        v["readinessProbe"],
        json!({
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
            "successThreshold": 1
        })
    );
}

#[test]
fn probe_overrides_from_the_spec_reach_the_values() {
    let probes = "
    probes:
      liveness: {initialDelaySeconds: 240, periodSeconds: 20}";
    let v = values(&kit("cilium", probes, PDNS));
    assert_eq!(v["livenessProbe"]["initialDelaySeconds"], 240);
    assert_eq!(v["livenessProbe"]["periodSeconds"], 20);
    // Unset fields keep their defaults, and the map is still complete.
    assert_eq!(v["livenessProbe"]["failureThreshold"], 3);
    assert_eq!(v["livenessProbe"]["httpGet"]["path"], "/healthz");
}

#[test]
fn request_timeout_flag_follows_the_external_dns_version() {
    let args = |version: &str| {
        let pin = format!("\n    version: {version}");
        extra_args(&values(&kit("cilium", &pin, PDNS)))
    };
    let v20 = args("v0.20.0");
    assert!(
        v20.contains(&"--request-timeout=120s".to_owned()),
        "{v20:?}"
    );
    assert!(
        !v20.iter()
            .any(|a| a.starts_with("--kube-api-request-timeout"))
    );
    for version in ["v0.21.0", "v0.22.0"] {
        let a = args(version);
        assert!(
            a.contains(&"--kube-api-request-timeout=120s".to_owned()),
            "{version}: {a:?}"
        );
        assert!(!a.iter().any(|x| x.starts_with("--request-timeout")));
    }
    assert_eq!(
        values(&kit("cilium", "\n    version: v0.21.0", PDNS))["image"]["tag"],
        "v0.21.0"
    );
}

#[test]
fn values_carry_the_spec_settings() {
    let v = values(&kit("cilium", "", PDNS));
    assert_eq!(v["image"], json!({"tag": "v0.22.0"}));
    assert_eq!(v["provider"], json!({"name": "pdns"}));
    assert_eq!(
        v["sources"],
        json!(["gateway-httproute", "gateway-grpcroute", "service"])
    );
    assert_eq!(
        v["domainFilters"],
        json!(["example.openova.io", "openova.io"])
    );
    assert_eq!(v["policy"], "upsert-only");
    assert_eq!(v["registry"], "txt");
    assert_eq!(v["txtOwnerId"], "openova");
    assert_eq!(v["txtPrefix"], "_externaldns.");
    assert_eq!(v["interval"], "1m");
    assert_eq!(v["annotationPrefix"], "external-dns.alpha.kubernetes.io/");
    assert_eq!(
        extra_args(&v),
        [
            "--kube-api-request-timeout=120s",
            "--pdns-server=http://powerdns.powerdns.svc:8081",
            "--pdns-server-id=localhost"
        ]
    );
    assert_eq!(
        v["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
}

#[test]
fn each_provider_gets_its_flags_env_and_mounts() {
    let v = |dns| values(&kit("cilium", "", dns));
    let env_names = |v: &Value, pointer: &str| -> Vec<String> {
        v.pointer(pointer)
            .and_then(Value::as_array)
            .map(|env| {
                env.iter()
                    .map(|e| e["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let webhook = v(WEBHOOK);
    assert_eq!(webhook["provider"]["name"], "webhook");
    assert_eq!(
        webhook["provider"]["webhook"]["image"],
        json!({"repository": "ghcr.io/example/external-dns-pdns-webhook", "tag": "v1.2.3"})
    );
    assert_eq!(
        env_names(&webhook, "/provider/webhook/env"),
        [
            "PDNS_API_URL",
            "PDNS_SERVER_ID",
            "PDNS_API_KEY",
            "WEBHOOK_PORT"
        ]
    );
    assert!(extra_args(&webhook).contains(&"--webhook-provider-url=http://localhost:8888".into()));

    let cloudflare = v(CLOUDFLARE);
    assert_eq!(env_names(&cloudflare, "/env"), ["CF_API_TOKEN"]);
    assert!(extra_args(&cloudflare).contains(&"--cloudflare-proxied".into()));

    let hetzner = v(HETZNER);
    assert_eq!(hetzner["provider"]["name"], "webhook");
    assert_eq!(
        env_names(&hetzner, "/provider/webhook/env"),
        ["HETZNER_API_KEY"]
    );

    let aws = v(AWS);
    assert_eq!(
        env_names(&aws, "/env"),
        [
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY"
        ]
    );
    assert!(extra_args(&aws).contains(&"--aws-zone-type=public".into()));

    let google = v(GOOGLE);
    assert!(extra_args(&google).contains(&"--google-project=openova-dns".into()));
    assert_eq!(
        google["env"],
        json!([{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                "value": "/etc/secrets/google/credentials.json"}])
    );
    assert_eq!(
        google["extraVolumes"][0]["secret"],
        json!({"secretName": "clouddns",
               "items": [{"key": "credentials.json", "path": "credentials.json"}]})
    );
    assert_eq!(
        google["extraVolumeMounts"][0]["mountPath"],
        "/etc/secrets/google"
    );

    let azure = v(AZURE);
    let args = extra_args(&azure);
    assert!(args.contains(&"--azure-resource-group=dns-rg".into()));
    assert!(args.contains(&"--azure-subscription-id=0a1b2c3d-4e5f-6789-abcd-ef0123456789".into()));
    assert_eq!(
        azure["extraVolumeMounts"][0]["mountPath"],
        "/etc/kubernetes"
    );
    assert_eq!(
        azure["extraVolumes"][0]["secret"]["items"][0]["path"],
        "azure.json"
    );
}

/// Credentials must only be referenced: an env var that carries one takes it from a
/// Secret, and no argument names one.
#[test]
fn no_credential_is_ever_a_literal_value_or_an_argument() {
    let credential_env = |name: &str| {
        ["KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|w| name.contains(w))
    };
    for (provider, dns) in all_providers() {
        let v = values(&kit("cilium", "", dns));
        let mut envs: Vec<&Value> = Vec::new();
        for pointer in ["/env", "/provider/webhook/env"] {
            if let Some(list) = v.pointer(pointer).and_then(Value::as_array) {
                envs.extend(list);
            }
        }
        for env in envs {
            let name = env["name"].as_str().unwrap();
            if credential_env(name) {
                assert!(
                    env.get("value").is_none() && env["valueFrom"]["secretKeyRef"].is_object(),
                    "{provider}: {name} must come from a secretKeyRef: {env}"
                );
            }
        }
        for arg in extra_args(&v) {
            let lower = arg.to_lowercase();
            for word in ["api-key", "apikey", "token", "secret", "password"] {
                assert!(
                    !lower.contains(word),
                    "{provider}: argument {arg} names a credential"
                );
            }
        }
    }
}

/// A Sovereign in a Flux shard: extra labels on every kit object and on the HelmChart
/// helm-controller makes from the release.
const SHARD_LABELS: &str = "  labels:\n    sharding.fluxcd.io/key: shard-a\n    team: dns\n";

fn with_labels(spec: String) -> String {
    spec.replacen(
        "  name: example\n",
        &format!("  name: example\n{SHARD_LABELS}"),
        1,
    )
}

#[test]
fn snapshot_with_extra_labels() {
    let labelled = load_and_render(&with_labels(sovereign("cilium", "", PDNS)));
    insta::assert_snapshot!("metadata_labels", labelled.to_multi_doc());
    for (file, doc) in docs(&labelled) {
        let labels = &doc["metadata"]["labels"];
        assert_eq!(labels["sharding.fluxcd.io/key"], "shard-a", "{file}");
        assert_eq!(labels["team"], "dns", "{file}");
        assert_eq!(labels["catalyst.openova.io/sovereign"], "example", "{file}");
    }
    let release = doc(&labelled, "12-external-dns.yaml");
    assert_eq!(
        release["spec"]["chart"]["metadata"]["labels"],
        json!({"sharding.fluxcd.io/key": "shard-a", "team": "dns"})
    );
    // Without extra labels the chart template has no metadata at all.
    let plain = doc(&kit("cilium", "", PDNS), "12-external-dns.yaml");
    assert!(plain["spec"]["chart"].get("metadata").is_none(), "{plain}");
}

#[test]
fn every_object_carries_the_kit_labels() {
    for (provider, dns) in all_providers() {
        for cni in ["cilium", "calico"] {
            for (file, doc) in docs(&kit(cni, "", dns)) {
                let labels = &doc["metadata"]["labels"];
                assert_eq!(
                    labels["app.kubernetes.io/managed-by"], "catalyst-bootstrap",
                    "{provider}/{cni}/{file}"
                );
                assert_eq!(
                    labels["catalyst.openova.io/sovereign"], "example",
                    "{provider}/{cni}/{file}"
                );
            }
        }
    }
}

#[test]
fn manifests_describe_their_objects() {
    let kit = kit("cilium", "", PDNS);
    let api_versions: Vec<String> = kit.manifests.iter().map(|m| m.api_version()).collect();
    let identity: Vec<(&str, &str, &str, Option<&str>)> = kit
        .manifests
        .iter()
        .zip(&api_versions)
        .map(|(m, api_version)| (api_version.as_str(), m.kind(), m.name(), m.namespace()))
        .collect();
    assert_eq!(
        identity,
        [
            ("v1", "Namespace", "external-dns", None),
            (
                "source.toolkit.fluxcd.io/v1",
                "HelmRepository",
                "external-dns",
                Some("external-dns")
            ),
            (
                "helm.toolkit.fluxcd.io/v2",
                "HelmRelease",
                "external-dns",
                Some("external-dns")
            ),
            (
                "networking.k8s.io/v1",
                "NetworkPolicy",
                "external-dns",
                Some("external-dns")
            ),
            (
                "cilium.io/v2",
                "CiliumNetworkPolicy",
                "external-dns-kube-apiserver",
                Some("external-dns")
            ),
        ]
    );
    let stream = kit.to_multi_doc();
    assert_eq!(stream.matches("---\n").count(), 5);
    let parsed: Vec<Value> = serde_saphyr::from_multiple(&stream).unwrap();
    assert_eq!(parsed.len(), 5);
}

#[test]
fn helm_release_points_at_the_helm_repository() {
    let kit = kit("cilium", "", PDNS);
    let source = doc(&kit, "11-chart-source.yaml");
    assert_eq!(
        source["spec"]["url"],
        "https://kubernetes-sigs.github.io/external-dns/"
    );
    assert_eq!(source["spec"]["interval"], "10m");
    let release = doc(&kit, "12-external-dns.yaml");
    assert_eq!(
        release["spec"]["chart"]["spec"],
        json!({
            "chart": "external-dns",
            "version": "1.21.1",
            "sourceRef": {"kind": "HelmRepository", "name": "external-dns", "namespace": "external-dns"}
        })
    );
    assert_eq!(release["spec"]["releaseName"], "external-dns");
    assert_eq!(release["spec"]["install"]["remediation"]["retries"], 3);
    assert_eq!(release["spec"]["upgrade"]["remediation"]["retries"], 3);
}

#[test]
fn an_oci_repository_is_referenced_by_chart_ref() {
    // A trailing slash on the repository is tolerated.
    let oci = format!("{OCI_CHART}/");
    let kit = kit("cilium", &oci, PDNS);
    let source = doc(&kit, "11-chart-source.yaml");
    assert_eq!(source["kind"], "OCIRepository");
    assert_eq!(source["apiVersion"], "source.toolkit.fluxcd.io/v1");
    assert_eq!(
        source["spec"]["url"],
        "oci://ghcr.io/openova-io/charts/external-dns"
    );
    assert_eq!(source["spec"]["ref"]["tag"], "1.21.1");
    let release = doc(&kit, "12-external-dns.yaml");
    assert!(release["spec"].get("chart").is_none());
    assert_eq!(
        release["spec"]["chartRef"],
        json!({"kind": "OCIRepository", "name": "external-dns", "namespace": "external-dns"})
    );
}

#[test]
fn a_wrapper_chart_gets_the_values_nested_and_the_prefix_as_a_flag() {
    let kit = kit("cilium", WRAPPER_CHART, PDNS);
    let release = doc(&kit, "12-external-dns.yaml");
    let values = release["spec"]["values"].as_object().unwrap();
    assert_eq!(values.keys().collect::<Vec<_>>(), ["external-dns"]);
    let inner = &values["external-dns"];
    assert_eq!(inner["livenessProbe"]["initialDelaySeconds"], 180);
    // The wrapper's own chart version is unknown, so its annotationPrefix value may not
    // exist: the flag always works.
    assert!(inner.get("annotationPrefix").is_none());
    assert!(
        extra_args(inner)
            .contains(&"--annotation-prefix=external-dns.alpha.kubernetes.io/".to_owned())
    );
    assert_eq!(release["spec"]["chart"]["spec"]["chart"], "bp-external-dns");
}

#[test]
fn network_policies_open_the_apiserver_dns_and_the_provider_api() {
    let kit = kit("cilium", "", PDNS);
    let np = doc(&kit, "13-networkpolicy.yaml");
    let pods = json!({"app.kubernetes.io/name": "external-dns", "app.kubernetes.io/instance": "external-dns"});
    assert_eq!(np["spec"]["podSelector"]["matchLabels"], pods);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 7979);
    let egress = np["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress[0]["to"][0]["ipBlock"]["cidr"], "0.0.0.0/0");
    let ports = |rule: &Value| -> Vec<(String, i64)> {
        rule["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["protocol"].as_str().unwrap().to_owned(),
                    p["port"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        ports(&egress[0]),
        [("TCP".into(), 443), ("TCP".into(), 6443)]
    );
    assert_eq!(ports(&egress[1]), [("UDP".into(), 53), ("TCP".into(), 53)]);
    assert_eq!(ports(&egress[2]), [("TCP".into(), 8081)]);
    assert_eq!(egress.len(), 3);

    let cnp = doc(&kit, "14-ciliumnetworkpolicy.yaml");
    assert_eq!(cnp["spec"]["endpointSelector"]["matchLabels"], pods);
    let rules = cnp["spec"]["egress"].as_array().unwrap();
    assert_eq!(rules[0]["toEntities"], json!(["kube-apiserver"]));
    assert_eq!(
        rules[0]["toPorts"][0]["ports"],
        json!([{"port": "443", "protocol": "TCP"}, {"port": "6443", "protocol": "TCP"}])
    );
    assert_eq!(
        rules[1]["toEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        "kube-system"
    );
    assert_eq!(rules[2]["toEntities"], json!(["world", "cluster"]));
    assert_eq!(rules[2]["toPorts"][0]["ports"][0]["port"], "8081");

    // A cloud provider's API is HTTPS, which the apiserver rule already opens.
    let np = doc(
        &self::kit("cilium", "", CLOUDFLARE),
        "13-networkpolicy.yaml",
    );
    assert_eq!(np["spec"]["egress"].as_array().unwrap().len(), 2);
}

/// The top-level keys of the upstream chart's values.schema.json (chart 1.21.1). The
/// schema allows other keys, so a misspelt one would be silently ignored by Helm.
const CHART_VALUE_KEYS: [&str; 61] = [
    "affinity",
    "annotationFilter",
    "annotationPrefix",
    "automountServiceAccountToken",
    "commonLabels",
    "deploymentAnnotations",
    "deploymentStrategy",
    "dnsConfig",
    "dnsPolicy",
    "domainFilters",
    "enableGatewayListenerSets",
    "enabled",
    "env",
    "excludeDomains",
    "extraArgs",
    "extraContainers",
    "extraVolumeMounts",
    "extraVolumes",
    "fullnameOverride",
    "gatewayNamespace",
    "global",
    "image",
    "imagePullSecrets",
    "initContainers",
    "interval",
    "labelFilter",
    "livenessProbe",
    "logFormat",
    "logLevel",
    "managedRecordTypes",
    "nameOverride",
    "namespaceOverride",
    "namespaced",
    "nodeSelector",
    "podAnnotations",
    "podLabels",
    "podSecurityContext",
    "policy",
    "priorityClassName",
    "provider",
    "rbac",
    "readinessProbe",
    "registry",
    "replicaCount",
    "resources",
    "revisionHistoryLimit",
    "secretConfiguration",
    "securityContext",
    "service",
    "serviceAccount",
    "serviceMonitor",
    "shareProcessNamespace",
    "sourceNamespace",
    "sources",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "triggerLoopOnEvent",
    "txtOwnerId",
    "txtPrefix",
    "txtSuffix",
];

/// What the upstream schema constrains about the keys the kit sets.
#[test]
fn values_fit_the_upstream_chart_schema() {
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    for (provider, dns) in all_providers() {
        let v = values(&kit("cilium", "", dns));
        for key in keys(&v) {
            assert!(
                CHART_VALUE_KEYS.contains(&key.as_str()),
                "{provider}: unknown value {key}"
            );
        }
        // image has additionalProperties: false.
        for key in keys(&v["image"]) {
            assert!(
                ["repository", "tag", "pullPolicy"].contains(&key.as_str()),
                "{provider}: image.{key}"
            );
        }
        assert!(["create-only", "sync", "upsert-only"].contains(&v["policy"].as_str().unwrap()));
        assert!(["txt", "aws-sd", "dynamodb", "noop"].contains(&v["registry"].as_str().unwrap()));
        for probe in ["livenessProbe", "readinessProbe"] {
            assert!(
                v[probe]["httpGet"]["port"].is_string(),
                "{provider}: {probe} port must be a string"
            );
            for field in [
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
            ] {
                assert!(
                    v[probe][field].is_u64(),
                    "{provider}: {probe}.{field} must be an integer"
                );
            }
        }
        for section in ["requests", "limits"] {
            if let Some(list) = v["resources"].get(section) {
                for (name, quantity) in list.as_object().unwrap() {
                    assert!(
                        quantity.is_string(),
                        "{provider}: resources.{section}.{name} must be a string"
                    );
                }
            }
        }
        let args = extra_args(&v);
        let mut unique = args.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            args.len(),
            "{provider}: extraArgs must be unique"
        );
        assert!(v["provider"]["name"].is_string());
        if let Some(webhook) = v["provider"].get("webhook") {
            assert!(
                webhook["image"]["repository"].is_string() && webhook["image"]["tag"].is_string()
            );
            assert!(webhook["env"].is_array());
        }
        for list in [
            "env",
            "extraVolumes",
            "extraVolumeMounts",
            "sources",
            "domainFilters",
        ] {
            assert!(
                v.get(list).is_none_or(Value::is_array),
                "{provider}: {list} must be a list"
            );
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    let spec = sovereign("cilium", "", AWS);
    assert_eq!(load_and_render(&spec), load_and_render(&spec));
}

/// clusters/example/bootstrap-kit must be what the current code renders from
/// clusters/example/sovereign.yaml.
#[test]
fn committed_example_kit_is_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spec_path = root.join("clusters/example/sovereign.yaml");
    let kit_dir = root.join("clusters/example/bootstrap-kit");
    let loaded = spec::load(&spec_path, None).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let kit = render::render(&loaded.sovereign).unwrap();
    let regenerate = "regenerate with: cargo run -- render --spec clusters/example/sovereign.yaml \
                      --out clusters/example/bootstrap-kit";
    for manifest in &kit.manifests {
        let committed = std::fs::read_to_string(kit_dir.join(&manifest.file_name))
            .unwrap_or_else(|e| panic!("{}: {e}; {regenerate}", manifest.file_name));
        assert!(
            committed == manifest.yaml,
            "{} differs from what render produces; {regenerate}",
            manifest.file_name
        );
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&kit_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let expected: Vec<String> = kit.manifests.iter().map(|m| m.file_name.clone()).collect();
    assert_eq!(on_disk, expected, "stale files in the kit; {regenerate}");
}

#[test]
fn the_kit_hands_apply_its_objects_and_the_wait_its_release() {
    let kit = kit("cilium", "", PDNS);
    // The objects are parsed once, while rendering; they are what its text says.
    let reparsed = catalyst_bootstrap::apply::parse(
        kit.manifests
            .iter()
            .map(|m| (m.file_name.as_str(), m.yaml.as_str())),
    )
    .unwrap();
    assert_eq!(kit.clone().into_desired().unwrap().0, reparsed);
    let releases: Vec<(Option<&str>, &str)> = kit
        .manifests
        .iter()
        .filter(|m| m.kind() == "HelmRelease")
        .map(|m| (m.namespace(), m.name()))
        .collect();
    let targets: Vec<(Option<&str>, &str)> = kit
        .targets
        .iter()
        .map(|t| (Some(t.namespace.as_str()), t.name.as_str()))
        .collect();
    assert_eq!(targets, releases);
    assert!(
        kit.targets
            .iter()
            .all(|t| t.kind == catalyst_bootstrap::health::TargetKind::HelmRelease)
    );
}
