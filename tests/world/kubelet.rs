//! The test world's kubelet (tests/world/support/kubelet): its back-off schedule, probe
//! thresholds and log handling on their own, and, on the world, a pod that crash-loops,
//! recovers and is probed, restarted by its liveness probe and deleted, each observed only
//! through the apiserver, as a client of a real node would see it.

use std::path::Path;
use std::time::Duration;

use crate::support::kubelet::{self, Image, Kubelet, KubeletConfig, SHELL_IMAGE};
use crate::support::{World, namespace};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

/// A generous bound that only catches a hang.
const HANG: Duration = Duration::from_secs(240);

fn start_kubelet(world: &World, client: &kube::Client, ns: &str, dir: &Path) -> Kubelet {
    Kubelet::start(
        client.clone(),
        KubeletConfig {
            namespace: ns.to_owned(),
            images: vec![Image::shell()],
            kubeconfig: world.kubeconfig.clone(),
            work_dir: dir.join("kubelet"),
            apiserver: None,
        },
    )
}

/// A pod for the world's kubelet running `script` in the shell image, with `extra` merged
/// into its container.
async fn create_pod(
    client: &kube::Client,
    ns: &str,
    name: &str,
    script: &str,
    extra: serde_json::Value,
) -> Pod {
    let mut container = json!({
        "name": "app",
        "image": format!("{SHELL_IMAGE}:1"),
        "args": ["-c", script],
        "ports": [{"name": "http", "containerPort": 8080}],
    });
    if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {kubelet::LABEL: "emulated"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 5},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

/// Every status the apiserver holds for the pod from now on, in order, until dropped.
fn record_statuses(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Pod> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut pods = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(pod)) = pods.next().await {
            if tx.send(pod).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (bounded) until `done` holds for a recorded status, keeping every one seen.
async fn until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Pod>,
    seen: &mut Vec<Pod>,
    what: &str,
    done: impl Fn(&Pod) -> bool,
) -> Pod {
    let found = tokio::time::timeout(HANG, async {
        while let Some(pod) = rx.recv().await {
            seen.push(pod.clone());
            if done(&pod) {
                return Some(pod);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(pod)) => pod,
        _ => panic!(
            "{what}: not seen; statuses: {:#?}",
            seen.iter().map(summary).collect::<Vec<_>>()
        ),
    }
}

fn container(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first().cloned())
        .unwrap_or_default()
}

fn condition(pod: &Pod, type_: &str) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn summary(pod: &Pod) -> String {
    let c = container(pod);
    let state = c.state.unwrap_or_default();
    let kind = match (&state.waiting, &state.running, &state.terminated) {
        (Some(w), _, _) => format!(
            "waiting {} {}",
            w.reason.clone().unwrap_or_default(),
            w.message.clone().unwrap_or_default()
        ),
        (_, Some(_), _) => "running".to_owned(),
        (_, _, Some(t)) => format!("terminated {}", t.exit_code),
        _ => "none".to_owned(),
    };
    let ready = condition(pod, "Ready")
        .map(|c| c.status)
        .unwrap_or_default();
    format!(
        "phase={:?} restarts={} ready={} {kind}",
        pod.status.as_ref().and_then(|s| s.phase.clone()),
        c.restart_count,
        ready
    )
}

async fn events_of(client: &kube::Client, ns: &str, pod: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await
        .expect("list events")
        .items
}

/// `kubectl logs` of the pod's container, through the apiserver and kwok.
async fn kubectl_logs(world: &World, ns: &str, pod: &str, previous: bool) -> String {
    let kubectl = std::env::var("KUBECTL_BIN").expect("KUBECTL_BIN from scripts/testenv env");
    let mut cmd = tokio::process::Command::new(kubectl);
    cmd.arg(format!("--kubeconfig={}", world.kubeconfig.display()))
        .args(["-n", ns, "logs", pod, "-c", "app"]);
    if previous {
        cmd.arg("--previous");
    }
    let out = cmd.output().await.expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl logs{}: {}",
        if previous { " --previous" } else { "" },
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_crash_looping_container_backs_off_as_the_kubelet_does_and_turns_ready_only_through_its_probe()
 {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "kubelet-crash").await;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let kubelet = start_kubelet(&world, &client, &ns, dir.path());
    let mut statuses = record_statuses(&client, &ns, "crasher");
    // Three runs fail with a configuration error; the fourth serves HTTP after 3 s.
    let script = format!(
        r#"n=$(( $(cat {runs} 2>/dev/null || echo 0) + 1 )); echo $n > {runs}
if [ $n -le 3 ]; then echo "run $n: starting" >&2; echo "run $n: invalid configuration" >&2; exit 1; fi
echo "run $n: serving in 3 s"; sleep 3
exec python3 -m http.server "$CATALYST_TESTENV_PORT_8080" --bind 127.0.0.1"#,
        runs = runs.display()
    );
    let created = create_pod(
        &client,
        &ns,
        "crasher",
        &script,
        json!({
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1,
                               "failureThreshold": 1, "successThreshold": 2},
        }),
    )
    .await;
    let uid = created.metadata.uid.clone().unwrap();
    let mut seen = Vec::new();

    let waiting = |restarts: i32, message: String| {
        move |p: &Pod| {
            let c = container(p);
            c.restart_count == restarts
                && c.state.and_then(|s| s.waiting).is_some_and(|w| {
                    w.reason.as_deref() == Some("CrashLoopBackOff")
                        && w.message.as_deref() == Some(message.as_str())
                })
        }
    };
    let message = |wait: &str| {
        format!("back-off {wait} restarting failed container=app pod=crasher_{ns}({uid})")
    };
    // The first crash restarts at once; the second waits 10 s, the third 20 s.
    let first = until(
        &mut statuses,
        &mut seen,
        "back-off 10s at restartCount 1",
        waiting(1, message("10s")),
    )
    .await;
    let last = container(&first)
        .last_state
        .unwrap()
        .terminated
        .expect("lastState.terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(
        last.message.as_deref(),
        Some("run 2: starting\nrun 2: invalid configuration\n"),
        "FallbackToLogsOnError: the run's log tail"
    );
    assert!(last.started_at.is_some() && last.finished_at.is_some() && last.container_id.is_some());
    assert!(!container(&first).ready && container(&first).started == Some(false));
    assert_eq!(
        first.status.as_ref().unwrap().phase.as_deref(),
        Some("Running"),
        "a restarting pod stays Running"
    );
    let ready = condition(&first, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("ContainersNotReady"))
    );
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app]")
    );

    until(
        &mut statuses,
        &mut seen,
        "back-off 20s at restartCount 2",
        waiting(2, message("20s")),
    )
    .await;
    // While it backs off, `logs` and `logs --previous` both show the run that ended.
    let previous = kubectl_logs(&world, &ns, "crasher", true).await;
    assert_eq!(previous, "run 3: starting\nrun 3: invalid configuration\n");

    let running = until(&mut statuses, &mut seen, "restartCount 3 running", |p| {
        let c = container(p);
        c.restart_count == 3 && c.state.and_then(|s| s.running).is_some()
    })
    .await;
    assert!(
        condition(&running, "Ready").unwrap().status == "False",
        "not ready before its probe passed"
    );
    let ready_pod = until(&mut statuses, &mut seen, "Ready", |p| {
        condition(p, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    let c = container(&ready_pod);
    assert!(c.ready && c.started == Some(true) && c.restart_count == 3);
    assert_eq!(
        condition(&ready_pod, "ContainersReady").unwrap().status,
        "True"
    );
    let started_at = c.state.unwrap().running.unwrap().started_at.unwrap().0;
    let ready_at = condition(&ready_pod, "Ready")
        .unwrap()
        .last_transition_time
        .unwrap()
        .0;
    assert!(
        ready_at.as_second() - started_at.as_second() >= 3,
        "Ready only once the server listened (3 s) and two probes passed: started {started_at}, ready {ready_at}"
    );
    assert!(
        seen.iter()
            .all(|p| condition(p, "Ready").is_none_or(|r| r.status != "True")
                || container(p).restart_count == 3),
        "never Ready while crash-looping"
    );

    let restarts: Vec<i32> = seen.iter().map(|p| container(p).restart_count).collect();
    assert!(
        restarts
            .windows(2)
            .all(|w| w[1] == w[0] || w[1] == w[0] + 1),
        "restartCount rises one at a time: {restarts:?}"
    );

    assert_eq!(
        kubectl_logs(&world, &ns, "crasher", false)
            .await
            .lines()
            .next(),
        Some("run 4: serving in 3 s")
    );
    assert_eq!(
        kubectl_logs(&world, &ns, "crasher", true).await,
        "run 3: starting\nrun 3: invalid configuration\n"
    );

    let events = events_of(&client, &ns, "crasher").await;
    let count = |reason: &str| {
        events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.count.unwrap_or(1))
            .sum::<i32>()
    };
    assert_eq!(count("Started"), 4, "{events:#?}");
    assert!(count("BackOff") >= 2, "{events:#?}");
    let back_off = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .unwrap();
    assert_eq!(
        back_off.message.as_deref(),
        Some(
            format!("Back-off restarting failed container app in pod crasher_{ns}({uid})").as_str()
        )
    );
    assert_eq!(back_off.type_.as_deref(), Some("Warning"));
    assert_eq!(
        back_off
            .source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("kubelet")
    );
    assert_eq!(
        back_off.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unhealthy")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Readiness probe failed: "))),
        "{events:#?}"
    );

    kubelet.finish(&client, &ns).await;
}

#[tokio::test]
async fn a_failing_liveness_probe_kills_and_restarts_the_container_and_deletion_honours_the_grace_period()
 {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "kubelet-live").await;
    let dir = tempfile::tempdir().unwrap();
    let kubelet = start_kubelet(&world, &client, &ns, dir.path());
    let mut statuses = record_statuses(&client, &ns, "prober");
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    // Serves /alive until the first run removes it after 3 s; later runs keep it.
    let script = format!(
        r#"cd {dir}; if [ ! -e first-done ]; then touch alive first-done; (sleep 3; rm -f alive) & else touch alive; fi
trap 'echo "stopping on SIGTERM"; kill $server; exit 0' TERM
python3 -m http.server "$CATALYST_TESTENV_PORT_8080" --bind 127.0.0.1 & server=$!
while true; do sleep 0.2; done"#,
        dir = served.display()
    );
    create_pod(&client, &ns, "prober", &script, json!({
        "livenessProbe": {"httpGet": {"path": "/alive", "port": "http"}, "initialDelaySeconds": 1,
                          "periodSeconds": 1, "failureThreshold": 2},
    }))
    .await;
    let mut seen = Vec::new();
    let restarted = until(
        &mut statuses,
        &mut seen,
        "restarted after its liveness probe failed",
        |p| {
            let c = container(p);
            c.restart_count == 1 && c.state.and_then(|s| s.running).is_some()
        },
    )
    .await;
    let last = container(&restarted)
        .last_state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 0, "the trap ended it on SIGTERM: {last:?}");
    assert_eq!(
        last.message, None,
        "terminationMessagePolicy File: no message"
    );
    assert!(
        container(&restarted).ready,
        "no readiness probe: ready while it runs"
    );
    let events = events_of(&client, &ns, "prober").await;
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message.as_deref()
                == Some("Container app failed liveness probe, will be restarted")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Unhealthy")
                && e.message.as_deref().is_some_and(
                    |m| m == "Liveness probe failed: HTTP probe failed with statuscode: 404"
                )),
        "{events:#?}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let log = pods
        .logs(
            "prober",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(log.contains("stopping on SIGTERM"), "{log}");

    // A graceful deletion: SIGTERM, the process ends, the kubelet finishes the deletion.
    pods.delete("prober", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while pods.get_opt("prober").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the kubelet finishes the deletion");
    let events = events_of(&client, &ns, "prober").await;
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message.as_deref() == Some("Stopping container app")),
        "{events:#?}"
    );
    let logs = kubelet.logs();
    assert_eq!(logs.matches("stopping on SIGTERM").count(), 2, "{logs}");

    kubelet.finish(&client, &ns).await;
}

// The pure parts, without the world.
mod backoff {
    use crate::support::kubelet::backoff::*;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn first_restart_is_immediate_then_10s_doubling_to_300s() {
        let mut b = CrashBackoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.after_exit(S(1)).as_secs()).collect();
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_run_longer_than_ten_minutes_resets_the_schedule() {
        let mut b = CrashBackoff::default();
        for _ in 0..5 {
            b.after_exit(S(1));
        }
        assert_eq!(
            b.after_exit(S(600)),
            S(160),
            "exactly 10 minutes does not reset"
        );
        assert_eq!(b.after_exit(S(601)), Duration::ZERO);
        assert_eq!(b.after_exit(S(1)), S(10));
    }

    #[test]
    fn waiting_messages_print_durations_as_go_does() {
        let shown: Vec<String> = [10, 20, 40, 80, 160, 300]
            .iter()
            .map(|s| go_duration(S(*s)))
            .collect();
        assert_eq!(shown, ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s"]);
        assert_eq!(
            waiting_message(S(20), "external-dns", "ed-1", "ns", "u-1"),
            "back-off 20s restarting failed container=external-dns pod=ed-1_ns(u-1)"
        );
    }

    #[test]
    fn requeue_waits_at_most_a_jittered_minute() {
        assert_eq!(requeue_after(S(20), 0.0), S(20));
        assert_eq!(requeue_after(S(20), 1.0), S(30));
        assert_eq!(requeue_after(S(300), 0.0), S(60));
        assert_eq!(requeue_after(S(300), 1.0), S(90));
    }
}

mod probe {
    use crate::support::kubelet::probe::*;
    use k8s_openapi::api::core::v1::Probe;
    use std::time::Duration;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn defaults_are_the_apis() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn readiness_starts_failed_and_turns_ready_after_success_threshold() {
        let mut r = Thresholds::new(Kind::Readiness, &timing(2, 3));
        assert!(!r.healthy);
        assert_eq!(r.observe(true), None);
        assert_eq!(r.observe(false), None, "a failure breaks the streak");
        assert_eq!(r.observe(true), None);
        assert_eq!(r.observe(true), Some(true));
        assert_eq!(r.observe(true), None, "no flip while it stays ready");
    }

    #[test]
    fn liveness_starts_healthy_and_fails_after_failure_threshold_in_a_row() {
        let mut l = Thresholds::new(Kind::Liveness, &timing(1, 3));
        assert!(l.healthy);
        assert_eq!(l.observe(false), None);
        assert_eq!(l.observe(false), None);
        assert_eq!(l.observe(true), None, "a success resets the count");
        assert_eq!(l.observe(false), None);
        assert_eq!(l.observe(false), None);
        assert_eq!(l.observe(false), Some(false));
    }

    #[test]
    fn named_ports_resolve_to_the_container_port() {
        let probe: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/healthz", "port": "http"}}))
        .unwrap();
        let ports = [("http".to_owned(), 7979)];
        assert_eq!(
            Action::of(&probe, &ports).unwrap(),
            Action::Http {
                path: "/healthz".into(),
                port: 7979,
                scheme: "HTTP".into()
            }
        );
        let unnamed: Probe = serde_json::from_value(serde_json::json!({
            "httpGet": {"path": "/", "port": "metrics"}}))
        .unwrap();
        assert!(Action::of(&unnamed, &ports).is_err());
    }
}

mod logs {
    use crate::support::kubelet::logs::*;

    #[test]
    fn cri_lines_carry_a_nanosecond_utc_timestamp_the_stream_and_the_full_tag() {
        let line = cri_line("stderr", "level=fatal msg=\"failed\"");
        let re = regex::Regex::new(
            r#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stderr F level=fatal msg="failed"\n$"#,
        )
        .unwrap();
        assert!(re.is_match(&line), "{line}");
        assert_eq!(text_of(&line), "level=fatal msg=\"failed\"\n");
    }

    #[test]
    fn the_termination_message_is_the_last_80_lines_and_at_most_2_kib() {
        let log: String = (0..100)
            .map(|i| cri_line("stdout", &format!("line {i}")))
            .collect();
        let tail = termination_tail(&log);
        assert!(tail.starts_with("line 20\n"), "{tail}");
        assert!(tail.ends_with("line 99\n"));
        let long: String = (0..40)
            .map(|i| cri_line("stdout", &format!("{i:02}{}", "x".repeat(98))))
            .collect();
        let tail = termination_tail(&long);
        assert_eq!(tail.len(), MESSAGE_BYTES);
        assert!(tail.ends_with(&format!("39{}\n", "x".repeat(98))));
    }
}

mod status {
    use crate::support::kubelet::status::*;

    fn pod(states: Vec<State>) -> Pod {
        let containers = states
            .into_iter()
            .enumerate()
            .map(|(i, state)| {
                let mut c = Container::new(&format!("c{i}"), "registry.k8s.io/x:v1");
                c.ever_started = !matches!(&state, State::Waiting { reason, .. } if reason == "ContainerCreating");
                c.state = state;
                c
            })
            .collect();
        Pod::new("127.0.0.1", "10.0.1.2", containers, true)
    }

    fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    fn running() -> State {
        State::Running {
            started_at: now(),
            container_id: "containerd://1".into(),
        }
    }

    #[test]
    fn the_phase_is_pending_until_a_container_runs_and_running_while_it_restarts() {
        assert_eq!(pod(vec![waiting("ContainerCreating")]).phase(), "Pending");
        assert_eq!(pod(vec![running()]).phase(), "Running");
        assert_eq!(pod(vec![waiting("CrashLoopBackOff")]).phase(), "Running");
        let mut ended = pod(vec![State::Terminated(Termination {
            exit_code: 0,
            message: String::new(),
            started_at: now(),
            finished_at: now(),
            container_id: "containerd://1".into(),
        })]);
        ended.terminal = true;
        assert_eq!(ended.phase(), "Succeeded");
    }

    #[test]
    fn ready_conditions_name_the_unready_containers_and_turn_true_with_all_ready() {
        let mut p = pod(vec![running(), running()]);
        p.containers[0].ready = true;
        p.refresh_readiness();
        let status = p.api();
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [c1]")
        );
        p.containers[1].ready = true;
        p.refresh_readiness();
        let status = p.api();
        for type_ in ["Ready", "ContainersReady"] {
            let c = status
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == type_)
                .unwrap();
            assert_eq!(
                (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
                ("True", None, None)
            );
        }
    }

    #[test]
    fn a_status_read_back_from_the_apiserver_compares_equal_and_a_foreign_change_does_not() {
        let p = pod(vec![running()]);
        // Through JSON, as the apiserver returns it.
        let round_trip: k8s_openapi::api::core::v1::PodStatus =
            serde_json::from_value(serde_json::to_value(p.api()).unwrap()).unwrap();
        assert!(!p.differs_from(Some(&round_trip)));
        let mut ready = p.clone();
        ready.containers[0].ready = true;
        ready.refresh_readiness();
        let ready_status: k8s_openapi::api::core::v1::PodStatus =
            serde_json::from_value(serde_json::to_value(ready.api()).unwrap()).unwrap();
        assert!(!ready.differs_from(Some(&ready_status)));
        let mut node_marked = ready_status.clone();
        for c in node_marked.conditions.iter_mut().flatten() {
            if c.type_ == "Ready" {
                c.status = "False".into();
                c.reason = Some("NodeNotReady".into());
            }
        }
        assert!(
            ready.differs_from(Some(&node_marked)),
            "the node lifecycle controller's change is noticed"
        );
        assert!(p.differs_from(None));
    }

    #[test]
    fn the_termination_reason_is_completed_for_exit_0_and_error_otherwise() {
        let t = |exit_code| Termination {
            exit_code,
            message: String::new(),
            started_at: now(),
            finished_at: now(),
            container_id: String::new(),
        };
        assert_eq!(t(0).reason(), "Completed");
        assert_eq!(t(1).reason(), "Error");
        assert_eq!(t(143).reason(), "Error");
    }
}
