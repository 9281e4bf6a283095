//! `catalyst-bootstrap apply` and `diff` as automation runs them: the real binary against
//! the test world's apiserver, judged by its output, its exit code and the cluster.

use std::path::Path;

use crate::support::{World, unique};
use assert_cmd::Command;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;

fn run(args: &[&str], spec: &Path) -> (i32, String, String) {
    let out = Command::cargo_bin("catalyst-bootstrap")
        .unwrap()
        .args(args)
        .arg("--spec")
        .arg(spec)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn apply_creates_then_changes_nothing_and_diff_shows_a_spec_change() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cli");
    let spec = world.sovereign_file(dir.path(), &name, "");

    let (code, stdout, stderr) = run(&["diff"], &spec);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("would create").count(), 5, "{stdout}");
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        "diff wrote to the cluster"
    );

    let (code, stdout, stderr) = run(&["apply"], &spec);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        format!("created       Namespace {name}"),
        format!("created       HelmRepository {name}/external-dns"),
        format!("created       HelmRelease {name}/external-dns"),
        format!("created       NetworkPolicy {name}/external-dns"),
        format!("created       CiliumNetworkPolicy {name}/external-dns-kube-apiserver"),
    ] {
        assert!(stdout.contains(&line), "missing {line:?} in\n{stdout}");
    }
    assert!(
        stderr.contains("apiserver requests"),
        "the run reports its requests: {stderr}"
    );

    let (code, stdout, stderr) = run(&["apply"], &spec);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("unchanged").count(), 5, "{stdout}");

    let changed = world.sovereign_file(dir.path(), &name, "    interval: 2m\n");
    let (code, stdout, stderr) = run(&["diff"], &changed);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("would change  HelmRelease {name}/external-dns"))
            && stdout.contains("/spec/values/interval"),
        "{stdout}"
    );
    let _ = Api::<Namespace>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn invalid_input_exits_3_and_writes_nothing() {
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cli-bad");
    let spec = world.sovereign_file(dir.path(), &name, "    policy: upsert\n");
    let (code, stdout, stderr) = run(&["apply"], &spec);
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("spec.externalDns.policy"), "{stderr}");
    assert!(
        Api::<Namespace>::all(client)
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        "an invalid spec must not be half-applied"
    );

    let good = world.sovereign_file(dir.path(), &name, "");
    let (code, _, stderr) = run(&["apply", "--kubeconfig", "/nonexistent/kubeconfig"], &good);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
    let (code, _, stderr) = run(&["apply", "--context", "no-such-context"], &good);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no-such-context"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_apiserver_exits_6_after_the_budget() {
    let world = World::from_env();
    let dir = tempfile::tempdir().unwrap();
    let dead = world.unreachable_kubeconfig(dir.path());
    let spec = world.sovereign_file(dir.path(), &unique("cli-dead"), "");
    let (code, _, stderr) = run(
        &[
            "apply",
            "--kubeconfig",
            dead.to_str().unwrap(),
            "--unreachable-timeout",
            "2s",
        ],
        &spec,
    );
    assert_eq!(code, 6, "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
}
