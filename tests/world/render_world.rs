//! The rendered kit meets the real components: the apiserver accepts every
//! manifest against the real Flux and Cilium CRD schemas (server-side dry-run,
//! strict field validation), and the real external-dns binary accepts the
//! arguments that the upstream chart produces from the rendered values.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::kits::*;
use crate::support::{World, unique};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::pinned_kind;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Every provider and chart variant the kit supports, with the external-dns
/// overrides that select the variant. Provider endpoints point at loopback so
/// that no run sends traffic off this machine.
fn variants() -> Vec<(String, String, String, String)> {
    let mut out: Vec<(String, String, String, String)> = all_providers()
        .iter()
        .map(|(name, dns)| {
            (
                name.to_string(),
                "cilium".into(),
                String::new(),
                dns.replace("powerdns.powerdns.svc:8081", "127.0.0.1:9"),
            )
        })
        .collect();
    let pdns = PDNS.replace("powerdns.powerdns.svc:8081", "127.0.0.1:9");
    out.push((
        "calico".into(),
        "calico".into(),
        String::new(),
        pdns.clone(),
    ));
    out.push((
        "wrapper-chart".into(),
        "cilium".into(),
        WRAPPER_CHART.into(),
        pdns.clone(),
    ));
    out.push(("oci-chart".into(), "cilium".into(), OCI_CHART.into(), pdns));
    out
}

async fn dry_run_apply(client: &kube::Client, doc: &Value) -> Result<DynamicObject, String> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let types = obj
        .types
        .clone()
        .ok_or("manifest without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types).map_err(|e| e.to_string())?;
    let (resource, caps) = pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("{}: {e}", types.kind))?;
    let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    let name = obj.metadata.name.clone().ok_or("manifest without a name")?;
    let params = PatchParams::apply("catalyst-bootstrap")
        .force()
        .dry_run()
        .validation_strict();
    api.patch(&name, &params, &Patch::Apply(&obj))
        .await
        .map_err(|e| format!("{} {name}: {e}", types.kind))
}

#[tokio::test]
async fn every_rendered_kit_passes_server_side_dry_run_against_the_real_crd_schemas() {
    let world = World::from_env();
    let client = world.kube().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut failures = Vec::new();
    let mut checked = 0;
    for (variant, cni, external_dns, dns) in variants() {
        // A namespace of its own per variant, created for real: namespaced
        // objects cannot be dry-run into a namespace that does not exist.
        let ns = unique("rw-dry");
        let kit = kit(&cni, &format!("{external_dns}\n    namespace: {ns}"), &dns);
        for (file, doc) in docs(&kit) {
            let is_namespace = doc["kind"] == "Namespace";
            match dry_run_apply(&client, &doc).await {
                Ok(returned) => {
                    checked += 1;
                    assert_eq!(
                        returned.metadata.name.as_deref(),
                        doc["metadata"]["name"].as_str()
                    );
                    // The CRDs keep HelmRelease values verbatim: nothing pruned.
                    if doc["kind"] == "HelmRelease" {
                        assert_eq!(returned.data["spec"]["values"], doc["spec"]["values"]);
                    }
                }
                Err(e) => failures.push(format!("{variant}/{file}: {e}")),
            }
            if is_namespace {
                let ns_obj: Namespace = serde_json::from_value(doc.clone()).unwrap();
                namespaces
                    .patch(
                        &ns,
                        &PatchParams::apply("catalyst-bootstrap-test"),
                        &Patch::Apply(&ns_obj),
                    )
                    .await
                    .expect("create the variant's namespace");
            }
        }
        let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    }
    assert!(
        failures.is_empty(),
        "the apiserver refused rendered manifests:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 40, "only {checked} manifests were dry-run");
}

#[tokio::test]
async fn strict_dry_run_refuses_a_field_the_crd_schema_does_not_know() {
    // The check above can fail: a HelmRelease with a misspelt field is refused.
    let world = World::from_env();
    let client = world.kube().await;
    let kit = kit("cilium", "", PDNS);
    let mut release = doc(&kit, "12-external-dns.yaml");
    release["spec"]["intervall"] = "5m".into();
    let err = dry_run_apply(&client, &release)
        .await
        .expect_err("unknown field must be refused");
    assert!(err.contains("intervall"), "{err}");
}

/// Runs external-dns with the chart's arguments until it has parsed and
/// validated its configuration. Ok once its start-up banner (logged after
/// flag parsing and config validation) appears; Err with its output otherwise.
async fn external_dns_accepts(world: &World, args: &[String], env: &[Value]) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&world.external_dns_bin);
    for arg in args {
        // In the pod it serves metrics on all interfaces; here only loopback.
        if arg.starts_with("--metrics-address") {
            continue;
        }
        cmd.arg(arg);
    }
    cmd.arg("--metrics-address=127.0.0.1:0")
        .arg(format!("--kubeconfig={}", world.kubeconfig.display()));
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        // Cloud SDKs honour these: their calls end at a closed loopback port.
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9");
    for var in env {
        let name = var["name"].as_str().unwrap();
        // Secrets are resolved to placeholders; a Secret is never real here.
        let value = match var["value"].as_str() {
            Some(v) => v.to_owned(),
            None => format!("placeholder-for-{name}"),
        };
        cmd.env(name, value);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let fatal =
                line.contains("flag parsing error") || line.contains("config validation failed");
            let banner = line.contains("GitCommitShort=");
            seen.push(line);
            if fatal {
                return Err(());
            }
            if banner {
                return Ok(());
            }
        }
        Err(())
    })
    .await;
    let _ = child.kill().await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        _ => Err(seen.join("\n")),
    }
}

#[tokio::test]
async fn external_dns_accepts_the_arguments_the_chart_renders_for_every_provider() {
    let world = World::from_env();
    let chart = std::path::PathBuf::from(
        std::env::var("EXTERNAL_DNS_CHART_DIR")
            .expect("EXTERNAL_DNS_CHART_DIR is not set: run `eval \"$(scripts/testenv env)\"`"),
    );
    let helm = std::path::PathBuf::from(
        std::env::var("HELM_BIN")
            .expect("HELM_BIN is not set: run `eval \"$(scripts/testenv env)\"`"),
    );
    let mut failures = Vec::new();
    for (variant, cni, external_dns, dns) in variants() {
        let kit = kit(&cni, &external_dns, &dns);
        let mut chart_values = values(&kit);
        // A wrapper chart hands the nested values to the upstream chart.
        if variant == "wrapper-chart" {
            chart_values = chart_values["external-dns"].clone();
        }
        let (args, env) = chart_container(&chart, &helm, &chart_values);
        assert!(
            args.iter().any(|a| a.starts_with("--txt-owner-id=openova")),
            "{variant}: {args:?}"
        );
        if let Err(output) = external_dns_accepts(&world, &args, &env).await {
            failures.push(format!("{variant}: {args:?}\n{output}"));
        }
    }
    assert!(
        failures.is_empty(),
        "external-dns refused its configuration:\n{}",
        failures.join("\n\n")
    );
}

#[tokio::test]
async fn the_argument_check_catches_a_flag_external_dns_does_not_know() {
    let world = World::from_env();
    let chart = std::env::var("EXTERNAL_DNS_CHART_DIR").expect("EXTERNAL_DNS_CHART_DIR");
    let helm = std::env::var("HELM_BIN").expect("HELM_BIN");
    let mut chart_values = values(&kit("cilium", "", PDNS));
    chart_values["extraArgs"]
        .as_array_mut()
        .unwrap()
        .push("--pdns-tls-enabled".into());
    let (args, env) = chart_container(Path::new(&chart), Path::new(&helm), &chart_values);
    let refused = external_dns_accepts(&world, &args, &env).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|out| out.contains("pdns-tls-enabled")),
        "{refused:?}"
    );
}
