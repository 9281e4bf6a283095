//! `catalyst-bootstrap wait` and `up` as automation runs them: the real binary against the
//! test world, with the HelmRelease status written by the test where Flux would write it.

use std::path::Path;
use std::time::Duration;

use crate::support::{World, unique};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

fn binary(args: &[&str], spec: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"));
    cmd.args(args).arg("--spec").arg(spec).kill_on_drop(true);
    cmd
}

/// Plays helm-controller: Ready (or not) for the current generation, Stalled when asked.
async fn set_release_status(
    client: &kube::Client,
    ns: &str,
    ready: &str,
    reason: &str,
    stalled: bool,
) {
    let mut conditions = vec![("Ready", ready, reason)];
    if stalled {
        conditions.push(("Stalled", "True", reason));
    }
    crate::support::flux::write_release_status(client, ns, "external-dns", &conditions).await;
}

/// Once the kit's HelmRelease lands, does what Flux and Helm would: installs external-dns's
/// Deployment (whose pods kwok runs) and reports the release Ready.
async fn install_like_flux_and_helm(client: &kube::Client, ns: &str) {
    let api = crate::support::flux::helm_releases(client, ns);
    for _ in 0..200 {
        if api.get_opt("external-dns").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::support::flux::create_chart_deployment(client, ns, json!({})).await;
    // As helm-controller, which reports a release seconds after it appears: long enough
    // for the wait, which starts right after the apply, to see it without a status first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_release_status(client, ns, "True", "InstallSucceeded", false).await;
}

#[tokio::test]
async fn up_waits_for_the_helm_release_and_succeeds_once_it_is_ready() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("up");
    let spec = world.sovereign_file(dir.path(), &name, "");

    let up = binary(&["up", "--timeout", "60s"], &spec).output();
    let helper = install_like_flux_and_helm(&client, &name);
    let (out, ()) = tokio::join!(up, helper);
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("created       HelmRelease {name}/external-dns")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ready         HelmRelease {name}/external-dns")),
        "{stdout}"
    );
    assert!(
        stderr.contains("no status yet"),
        "progress named the wait: {stderr}"
    );
    // No Service announces a name here: the proof had nothing to find, and says it read
    // PowerDNS all the same.
    assert!(
        format!("{stdout}{stderr}")
            .contains("no DNS records expected yet; PowerDNS answers and takes the API key"),
        "{stdout}\n{stderr}"
    );

    // A rerun is quick and safe: nothing changes and the release is already Ready.
    let out = binary(&["up", "--timeout", "10s"], &spec)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.matches("unchanged").count(), 5, "{stdout}");

    // Stalled with retries exhausted is a workload failure, at once.
    set_release_status(&client, &name, "False", "RetriesExceeded", true).await;
    let out = binary(&["wait", "--timeout", "60s"], &spec)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("RetriesExceeded") || stderr.contains("retries"),
        "{stderr}"
    );

    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn wait_times_out_with_exit_5_naming_what_is_pending() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("wait-to");
    let spec = world.sovereign_file(dir.path(), &name, "");
    let out = binary(&["up", "--timeout", "2s"], &spec)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "timed out after 2s waiting for HelmRelease {name}/external-dns"
        )),
        "{stderr}"
    );
    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

/// Every stdout line of a `--output json` run, checked against the documented schema.
fn events(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stdout);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for event in &events {
        let object = event.as_object().expect("each event is an object");
        for key in object.keys() {
            assert!(
                [
                    "ts",
                    "phase",
                    "resource",
                    "state",
                    "message",
                    "attempt",
                    "exit_code",
                    "requests",
                    "retries",
                    "records_verified",
                    "elapsed_s"
                ]
                .contains(&key.as_str()),
                "undocumented field {key} in {event}"
            );
        }
        assert!(
            event["ts"]
                .as_str()
                .is_some_and(|ts| ts.parse::<jiff::Timestamp>().is_ok()),
            "{event}"
        );
        assert!(
            [
                "apply", "retry", "wait", "dns", "status", "repair", "result"
            ]
            .contains(&event["phase"].as_str().unwrap()),
            "{event}"
        );
        assert!(
            event["state"].is_string() && event["message"].is_string(),
            "{event}"
        );
        assert!(
            event["elapsed_s"].as_f64().is_some_and(|s| s >= 0.0),
            "{event}"
        );
        if let Some(attempt) = event.get("attempt") {
            assert!(attempt.as_u64().is_some_and(|a| a >= 1), "{event}");
        }
    }
    let last = events.last().expect("at least the result event");
    assert_eq!(last["phase"], "result", "the stream ends with the result");
    assert!(last["exit_code"].is_u64());
    events
}

#[tokio::test]
async fn json_output_is_a_stream_of_documented_events_ending_in_the_result() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("json");
    let spec = world.sovereign_file(dir.path(), &name, "");
    let up = binary(&["up", "--timeout", "60s", "--output", "json"], &spec).output();
    let helper = install_like_flux_and_helm(&client, &name);
    let (out, ()) = tokio::join!(up, helper);
    let out = out.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events(&out.stdout);
    let created: Vec<_> = events
        .iter()
        .filter(|e| e["phase"] == "apply" && e["state"] == "created")
        .collect();
    assert_eq!(created.len(), 5, "{events:?}");
    let release = format!("HelmRelease {name}/external-dns");
    assert!(
        events.iter().any(|e| e["phase"] == "wait"
            && e["resource"] == release.as_str()
            && e["state"] == "ready"),
        "{events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(
        (last["state"].as_str(), last["exit_code"].as_u64()),
        (Some("succeeded"), Some(0))
    );
    let message = last["message"].as_str().unwrap();
    // The figures are fields of the result, as its summary states them.
    let requests = last["requests"].as_u64().expect("requests counted");
    let retries = last["retries"].as_u64().expect("retries counted");
    assert!(requests > 0, "{last}");
    assert!(
        message.contains(&format!("{requests} apiserver requests, {retries} retries")),
        "{last}"
    );
    // No record is expected of this kit: the proof ended with none verified.
    assert_eq!(last["records_verified"], 0, "{last}");
    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn json_output_counts_retries_against_an_unreachable_apiserver() {
    let world = World::from_env();
    let dir = tempfile::tempdir().unwrap();
    let dead = world.unreachable_kubeconfig(dir.path());
    let spec = world.sovereign_file(dir.path(), &unique("json-dead"), "");
    let out = binary(
        &[
            "up",
            "--output",
            "json",
            "--unreachable-timeout",
            "2s",
            "--kubeconfig",
            dead.to_str().unwrap(),
        ],
        &spec,
    )
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let events = events(&out.stdout);
    let retries: Vec<u64> = events
        .iter()
        .filter(|e| e["phase"] == "retry")
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert!(retries.len() >= 2, "{events:?}");
    assert!(
        retries.windows(2).all(|w| w[1] > w[0]),
        "attempts count up: {retries:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["exit_code"], 6);
    // A failed run counts too: every attempt was a request, each repeat a retry.
    assert!(
        last["retries"]
            .as_u64()
            .is_some_and(|r| r >= retries.len() as u64),
        "{last}"
    );
    assert!(last.get("records_verified").is_none(), "{last}");
}

#[tokio::test]
async fn a_crash_looping_external_dns_fails_the_wait_early_with_a_diagnosis() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("crash");
    let spec = world.sovereign_file(dir.path(), &name, "");
    let out = binary(&["apply"], &spec).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let fault = unique("fault");
    crate::support::crash_loop_stage(&client, &fault).await;
    crate::support::flux::create_chart_deployment(
        &client,
        &name,
        json!({crate::support::FAULT_LABEL: fault}),
    )
    .await;

    let started = std::time::Instant::now();
    let out = binary(&["wait", "--timeout", "5m"], &spec)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "failed early, not at the 5 min timeout"
    );
    assert!(stderr.contains("CrashLoopBackOff"), "{stderr}");
    assert!(stderr.contains("external-dns-"), "names the pod: {stderr}");
    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

async fn release_annotations(client: &kube::Client, ns: &str) -> serde_json::Value {
    let release = crate::support::flux::helm_releases(client, ns)
        .get("external-dns")
        .await
        .unwrap();
    serde_json::to_value(release.metadata.annotations.unwrap_or_default()).unwrap()
}

#[tokio::test]
async fn status_answers_with_exit_codes_and_repair_resets_a_stalled_release() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("repair");
    let spec = world.sovereign_file(dir.path(), &name, "");
    let status = |spec: std::path::PathBuf| async move {
        let out = binary(&["status"], &spec).output().await.unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    // Nothing applied yet: missing, which waiting (or applying) fixes: exit 5.
    let (code, stdout) = status(spec.clone()).await;
    assert_eq!(code, Some(5), "{stdout}");
    assert!(stdout.starts_with("missing"), "{stdout}");

    assert_eq!(
        binary(&["apply"], &spec)
            .output()
            .await
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    crate::support::flux::create_chart_deployment(&client, &name, json!({})).await;
    set_release_status(&client, &name, "True", "InstallSucceeded", false).await;
    // kwok turns the pod Ready within moments; status never waits, so ask until it says so.
    // A generous bound: on a busy machine kwok's stages run late.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut ready = status(spec.clone()).await;
    while ready.0 != Some(0) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ready = status(spec.clone()).await;
    }
    assert_eq!(ready.0, Some(0), "{}", ready.1);
    assert!(ready.1.starts_with("ready"), "{}", ready.1);

    // Retries exhausted: status says failed (exit 4); repair resets it through Flux's
    // annotations, then waits; Flux (the test) answers the reset with a Ready release.
    set_release_status(&client, &name, "False", "RetriesExceeded", true).await;
    let (code, stdout) = status(spec.clone()).await;
    assert_eq!(code, Some(4), "{stdout}");
    assert!(stdout.starts_with("failed"), "{stdout}");

    let repair = binary(&["repair", "--timeout", "60s"], &spec).output();
    let flux = async {
        for _ in 0..200 {
            let annotations = release_annotations(&client, &name).await;
            if annotations.get("reconcile.fluxcd.io/resetAt").is_some() {
                set_release_status(&client, &name, "True", "UpgradeSucceeded", false).await;
                return annotations;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("repair never asked Flux for a reset");
    };
    let (out, annotations) = tokio::join!(repair, flux);
    let out = out.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        annotations["reconcile.fluxcd.io/resetAt"], annotations["reconcile.fluxcd.io/requestedAt"],
        "Flux only honours a reset that equals the reconcile request"
    );
    assert!(stderr.contains("reset-failures"), "{stderr}");
    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

/// A Sovereign of its own zone, with a LoadBalancer Service that external-dns should
/// publish, and the external-dns arguments the chart renders from the Sovereign's kit.
async fn dns_world(world: &World, dir: &Path) -> (String, std::path::PathBuf, Vec<String>, String) {
    let client = world.kube().await;
    let name = unique("e2e");
    let spec = world.sovereign_file(dir, &name, "");
    let zone = format!("{name}.{}", world.pdns_zone);
    world.pdns().create_zone(&zone).await;

    let app_ns = format!("{name}-app");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": app_ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .unwrap();
    let hostname = format!("web.{zone}");
    crate::support::lb_service(&client, &app_ns, "web", &hostname, "192.0.2.90").await;

    let loaded = catalyst_bootstrap::spec::load(&spec, None).unwrap();
    let kit = catalyst_bootstrap::render::render(&loaded.sovereign).unwrap();
    let values = crate::support::kits::values(&kit);
    let chart = std::env::var("EXTERNAL_DNS_CHART_DIR").expect("EXTERNAL_DNS_CHART_DIR");
    let helm = std::env::var("HELM_BIN").expect("HELM_BIN");
    let (args, _env) =
        crate::support::kits::chart_container(Path::new(&chart), Path::new(&helm), &values);
    (name, spec, args, hostname)
}

/// The real external-dns as the pod would run it: the chart's arguments, the key from the
/// environment, metrics on loopback, a kubeconfig instead of the in-cluster account.
fn external_dns(world: &World, args: &[String]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(&world.external_dns_bin);
    cmd.args(args.iter().filter(|a| !a.starts_with("--metrics-address")))
        .arg("--metrics-address=127.0.0.1:0")
        .arg(format!("--kubeconfig={}", world.kubeconfig.display()))
        .env("EXTERNAL_DNS_PDNS_API_KEY", &world.pdns_api_key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd.spawn().expect("external-dns starts")
}

#[tokio::test]
async fn up_succeeds_only_once_the_records_are_in_powerdns_and_answered_over_dns() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let (name, spec, args, hostname) = dns_world(&world, dir.path()).await;
    assert!(
        args.iter().any(|a| a == "--txt-owner-id=openova"),
        "{args:?}"
    );

    let up = binary(&["up", "--timeout", "90s"], &spec).output();
    let (out, mut running) = tokio::join!(up, async {
        install_like_flux_and_helm(&client, &name).await;
        // external-dns starts late, as on a fresh cluster: `up` keeps waiting for DNS.
        tokio::time::sleep(Duration::from_secs(2)).await;
        external_dns(&world, &args)
    });
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("in dns        {hostname} A")),
        "{stdout}"
    );
    let a = world
        .pdns()
        .rrset(
            &format!("{name}.{}", world.pdns_zone),
            &format!("{hostname}."),
            "A",
        )
        .await;
    assert_eq!(a, ["192.0.2.90"]);
    let (answer, _) = crate::support::dns_query(
        world.pdns_dns_addr,
        &format!("{hostname}."),
        hickory_proto::rr::RecordType::A,
    )
    .await;
    assert_eq!(answer, ["192.0.2.90"]);

    // With a wrong key for the tool's own check, `up` ends DNS-not-synced, naming the
    // cause, and never printing the key. Its 5 s go to the DNS proof only once the pod is
    // Ready again after any late heartbeat of the fake node.
    crate::support::flux::pods_ready(&client, &name).await;
    let canary = "canary-wrong-key-3f9a";
    let out = binary(&["up", "--timeout", "5s"], &spec)
        .env("PDNS_API_KEY", canary)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("credentials"), "{stderr}");
    assert!(!stderr.contains(canary) && !stdout.contains(canary));
    assert!(!stderr.contains(&world.pdns_api_key) && !stdout.contains(&world.pdns_api_key));
    let _ = running.kill().await;
    for ns in [name.clone(), format!("{name}-app")] {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    }
}
