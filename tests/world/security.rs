//! A canary secret in every credential path the tool touches (the PowerDNS key by
//! `apiKeyEnv` and by `apiKeyFile`, a kubeconfig token, a client key, literal credentials a
//! spec must not hold, Secrets in the cluster that the kit only references) must never show
//! in stdout, stderr, rendered files, Kubernetes Events, or the argv of the tool's processes.
//! catalyst-bootstrap starts no processes of its own (no `Command::new` in src/), so the
//! argv checked is the tool's own, read from /proc while it runs, together with any child
//! it might have.

use std::path::Path;
use std::time::Duration;

use crate::support::{World, unique};
use k8s_openapi::api::core::v1::{Event, Secret};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_catalyst-bootstrap");

/// One run: exit code and everything printed.
struct Ran {
    code: Option<i32>,
    output: String,
    argv_seen: Vec<String>,
}

/// Runs the binary, reading its argv (and that of any child) from /proc while it runs.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("the binary starts");
    let pid = child.id().expect("a pid");
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(own) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            seen.push(String::from_utf8_lossy(&own).replace('\0', " "));
            for child in children(pid) {
                if let Ok(argv) = std::fs::read(format!("/proc/{child}/cmdline")) {
                    seen.push(String::from_utf8_lossy(&argv).replace('\0', " "));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    });
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("finishes within 120 s")
        .unwrap();
    let argv_seen = watcher.await.unwrap();
    Ran {
        code: out.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        argv_seen,
    }
}

/// The processes whose parent is `pid`, from every thread's children list.
fn children(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn assert_clean(what: &str, ran: &Ran, code: i32, canary: &str) {
    assert_eq!(ran.code, Some(code), "{what}: {}", ran.output);
    assert_not_leaked(what, ran, canary);
}

fn assert_not_leaked(what: &str, ran: &Ran, canary: &str) {
    assert!(
        !ran.output.contains(canary),
        "{what}: the canary was printed:\n{}",
        ran.output
    );
    assert!(!ran.argv_seen.is_empty(), "{what}: argv was never read");
    for argv in &ran.argv_seen {
        assert!(
            !argv.contains(canary),
            "{what}: the canary is in argv: {argv}"
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Replaces the value of the first `key: value` line of a kubeconfig.
fn set(text: &str, key: &str, value: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} in the kubeconfig"));
    let indent = &line[..line.len() - line.trim_start().len()];
    text.replacen(line, &format!("{indent}{key}: {value}"), 1)
}

#[tokio::test]
async fn a_canary_credential_never_leaves_its_path() {
    let world = World::from_env();
    let client = world.kube().await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let canary = format!("canary-{}", unique("secret"));
    let name = unique("canary");
    let zone = format!("{name}.{}", world.pdns_zone);
    world.pdns().create_zone(&zone).await;

    // The world's Sovereign with one record to prove, so the DNS proof reads PowerDNS.
    let spec_path = world.sovereign_file(d, &name, "");
    let text = std::fs::read_to_string(&spec_path).unwrap();
    let text = format!("{}\n    hostnames: [probe.{zone}]\n", text.trim_end());
    std::fs::write(&spec_path, &text).unwrap();
    let spec = spec_path.display().to_string();
    let key_file = d.join("pdns-api-key");
    std::fs::write(&key_file, format!("{canary}\n")).unwrap();
    let file_spec = d.join("file-key.yaml");
    assert!(text.contains("    apiKeyEnv: PDNS_API_KEY"));
    std::fs::write(
        &file_spec,
        text.replace(
            "    apiKeyEnv: PDNS_API_KEY",
            &format!("    apiKeyFile: {}", key_file.display()),
        ),
    )
    .unwrap();
    let file_spec = file_spec.display().to_string();
    let key_env = [("PDNS_API_KEY", canary.as_str())];

    // render: text and --out, the key only ever a Secret reference.
    let ran = run(&["render", "--spec", &spec], &key_env).await;
    assert_clean("render", &ran, 0, &canary);
    assert!(ran.output.contains("secretKeyRef"), "{}", ran.output);
    let out_dir = d.join("kit");
    let out = out_dir.display().to_string();
    let ran = run(&["render", "--spec", &file_spec, "--out", &out], &[]).await;
    assert_clean("render --out", &ran, 0, &canary);
    for file in std::fs::read_dir(&out_dir).unwrap().flatten() {
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains(&canary), "{}", file.path().display());
    }

    // Apply, then a Secret holding the canary where the kit references it, and the
    // workloads made healthy as Flux and kwok would.
    for output in ["text", "json"] {
        let ran = run(&["apply", "--spec", &spec, "--output", output], &key_env).await;
        assert_clean(&format!("apply --output {output}"), &ran, 0, &canary);
    }
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "powerdns-api"},
        "stringData": {"api-key": canary}
    }))
    .unwrap();
    kube::Api::<Secret>::namespaced(client.clone(), &name)
        .create(&Default::default(), &secret)
        .await
        .expect("create the canary Secret");
    crate::support::flux::play_healthy_release(&client, &name).await;

    // The key is wrong for PowerDNS: the DNS proof fails (7) whichever way it came.
    for output in ["text", "json"] {
        crate::support::flux::pods_ready(&client, &name).await;
        let args = [
            "up",
            "--spec",
            &spec,
            "--timeout",
            "10s",
            "--output",
            output,
        ];
        let ran = run(&args, &key_env).await;
        assert_clean(&format!("up --output {output}"), &ran, 7, &canary);
        crate::support::flux::pods_ready(&client, &name).await;
        let args = [
            "wait",
            "--spec",
            &file_spec,
            "--timeout",
            "10s",
            "--output",
            output,
        ];
        let ran = run(&args, &[]).await;
        assert_clean(
            &format!("wait, key file, --output {output}"),
            &ran,
            7,
            &canary,
        );
        crate::support::flux::pods_ready(&client, &name).await;
        let args = [
            "repair",
            "--spec",
            &spec,
            "--timeout",
            "10s",
            "--output",
            output,
        ];
        let ran = run(&args, &key_env).await;
        assert_clean(&format!("repair --output {output}"), &ran, 7, &canary);
        let ran = run(&["status", "--spec", &spec, "--output", output], &key_env).await;
        // Ready, or progressing when the fake node's heartbeat lags on a busy machine.
        assert!(
            matches!(ran.code, Some(0 | 5)),
            "status --output {output}: {}",
            ran.output
        );
        assert_not_leaked(&format!("status --output {output}"), &ran, &canary);
    }

    // Kubeconfig credentials: a token the apiserver refuses, a client key that is no key.
    let kubeconfig = std::fs::read_to_string(&world.kubeconfig).unwrap();
    let start = kubeconfig.find("users:").unwrap();
    let end = kubeconfig.find("contexts:").unwrap();
    let token_kc = d.join("token-kubeconfig");
    std::fs::write(
        &token_kc,
        format!(
            "{}users:\n- name: admin\n  user:\n    token: {canary}\n{}",
            &kubeconfig[..start],
            &kubeconfig[end..]
        ),
    )
    .unwrap();
    let key_kc = d.join("key-kubeconfig");
    let pem = format!("-----BEGIN EC PRIVATE KEY-----\n{canary}\n-----END EC PRIVATE KEY-----\n");
    std::fs::write(
        &key_kc,
        set(&kubeconfig, "client-key-data", &b64(pem.as_bytes())),
    )
    .unwrap();
    let broken_kc = d.join("broken-kubeconfig");
    std::fs::write(
        &broken_kc,
        set(&kubeconfig, "client-key-data", &format!("{canary}: [")),
    )
    .unwrap();
    for (kc, code) in [(&token_kc, 8), (&key_kc, 3), (&broken_kc, 3)] {
        let kc = kc.display().to_string();
        for output in ["text", "json"] {
            let args = [
                "apply",
                "--spec",
                &spec,
                "--kubeconfig",
                &kc,
                "--output",
                output,
            ];
            let ran = run(&args, &key_env).await;
            assert_clean(
                &format!("apply with {kc} --output {output}"),
                &ran,
                code,
                &canary,
            );
        }
    }

    // Literal credentials in a spec are refused without being echoed, for every provider.
    for (provider, block) in [
        (
            "pdns",
            format!("apiUrl: http://127.0.0.1:1\n      apiKey: {canary}"),
        ),
        ("cloudflare", format!("apiToken: {canary}")),
        (
            "aws",
            format!("region: eu-central-1\n      secretAccessKey: {canary}"),
        ),
        (
            "pdns",
            format!(
                "apiUrl: http://admin:{canary}@127.0.0.1:1\n      apiKeySecretRef: {{name: p, key: k}}"
            ),
        ),
    ] {
        let literal = d.join(format!("literal-{provider}.yaml"));
        let start = text.find("  dns:\n").expect("spec.dns");
        let end = text.find("  verify:\n").expect("spec.verify");
        std::fs::write(
            &literal,
            format!(
                "{}  dns:\n    provider: {provider}\n    {provider}:\n      {block}\n{}",
                &text[..start],
                &text[end..]
            ),
        )
        .unwrap();
        let literal = literal.display().to_string();
        let ran = run(&["render", "--spec", &literal], &[]).await;
        assert_clean(
            &format!("literal credential ({provider})"),
            &ran,
            3,
            &canary,
        );
    }

    // Nothing the tool did put the canary into an Event.
    for ns in [name.as_str(), "default", "kube-system"] {
        let events = kube::Api::<Event>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await
            .unwrap();
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains(&canary), "an Event in {ns} holds the canary");
    }
    crate::support::delete_namespace(&client, &name).await;
}

#[test]
fn the_tool_starts_no_processes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    !text.contains("Command::new") && !text.contains("process::Command"),
                    "{} starts a process: extend the argv check in tests/security.rs to it",
                    path.display()
                );
            }
        }
    }
}
