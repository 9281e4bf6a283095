//! The field failure's look-alike that needs no saturation, end to end with the real parts:
//! real Flux installs the upstream chart and the world's kubelet runs the real external-dns.
//! external-dns failing its start-up cache sync while the apiserver is healthy but
//! external-dns's traffic to it is dropped fails after about two cache-sync windows, naming
//! dropped egress, although the crash comes while `up` proves DNS (external-dns answers
//! `/healthz` before its sync runs out, so its pod is Ready by then).
//!
//! Its own test binary: the scenarios judged under a CPU cap join it once the cap that
//! leaves the apiserver slow but answering can be found reliably (docs/reliability.md).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::flux::{self, namespace_with_api_key};
use crate::support::kubelet::{Kubelet, KubeletConfig};
use crate::support::{World, lb_service, unique};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `up --output json` in the background: its NDJSON events as they come, its stderr, and
/// its exit code when it ends.
struct Up {
    child: tokio::process::Child,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Up {
    fn start(spec: &Path, timeout: &str) -> Up {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"))
            .args(["up", "--timeout", timeout, "--output", "json", "--spec"])
            .arg(spec)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("catalyst-bootstrap runs");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (e, s) = (events.clone(), stderr.clone());
        let readers = vec![
            tokio::spawn(async move {
                while let Ok(Some(line)) = out.next_line().await {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        e.lock().unwrap().push(v);
                    }
                }
            }),
            tokio::spawn(async move {
                while let Ok(Some(line)) = err.next_line().await {
                    let mut s = s.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            }),
        ];
        Up {
            child,
            events,
            stderr,
            readers,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    async fn finish(mut self, bound: Duration) -> (i32, Vec<Value>, String) {
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("up did not end within {bound:?}"))
            .expect("up ends");
        for reader in self.readers.drain(..) {
            reader.await.expect("reading up's output");
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), self.events(), stderr)
    }
}

fn summary(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}: {}",
                e["phase"], e["state"], e["resource"], e["message"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Accepts connections and never answers: what a NetworkPolicy dropping egress looks like
/// from the pod.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("https://{addr}"), task)
}

#[tokio::test]
async fn the_same_crash_with_egress_dropped_on_a_healthy_apiserver_fails_after_two_cache_sync_windows()
 {
    // Judged by how fast the apiserver answers: no other test may load it meanwhile.
    crate::support::alone();
    let world = World::from_env();
    let client = world.kube().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("egress");
    let spec = flux::chain_sovereign_file(dir.path(), &name, None);
    let zone = format!("{name}.{}", world.pdns_zone);
    world.pdns().create_zone(&zone).await;
    namespace_with_api_key(&world, &client, &name).await;
    // A record is expected, so `up` is in its DNS proof when external-dns crashes: its pod
    // turns Ready before the cache sync has run out, and the judgement must go on.
    let hostname = format!("api.{zone}");
    lb_service(&client, &name, "api", &hostname, "192.0.2.62").await;
    let (hole, _hole) = black_hole().await;
    let pods = Kubelet::start(
        client.clone(),
        KubeletConfig {
            apiserver: Some(hole),
            ..world.kubelet_config(&name, dir.path().join("kubelet"))
        },
    );

    let started = Instant::now();
    let up = Up::start(&spec, "15m");
    let (code, events, stderr) = up.finish(Duration::from_secs(12 * 60)).await;
    let took = started.elapsed();
    let context = format!(
        "{}\nstderr:\n{stderr}\nexternal-dns:\n{}",
        summary(&events),
        pods.logs()
    );
    assert_eq!(code, 4, "{context}");
    // The diagnosis, on stderr and in the result event.
    let result = events
        .last()
        .map(|e| e["message"].to_string())
        .unwrap_or_default();
    for said in [&stderr, &result] {
        assert!(
            said.contains("judged by cause: not saturation: the apiserver answered this tool in "),
            "{context}"
        );
        assert!(
            said.contains("egress from the pod to the apiserver is being dropped")
                && said.contains("kube-apiserver entity"),
            "{context}"
        );
        assert!(
            said.contains("failed to sync"),
            "the diagnosis quotes external-dns's own line: {context}"
        );
    }
    // Not at the first crash (a saturated apiserver would look the same then), and long
    // before the timeout.
    assert!(took >= Duration::from_secs(120), "{took:?}: {context}");
    assert!(took < Duration::from_secs(8 * 60), "{took:?}: {context}");
    assert!(
        world
            .pdns()
            .rrset(&zone, &format!("{hostname}."), "A")
            .await
            .is_empty(),
        "{context}"
    );
    eprintln!("dropped egress: up failed after {:.0}s", took.as_secs_f64());
    pods.finish(&client, &name).await;
}
