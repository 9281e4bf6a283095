//! Faults on the test world: `up` through the real binary while the apiserver freezes,
//! restarts, throttles for real or through the fault proxy, while PowerDNS is down and while
//! external-dns starts late. Each scenario ends with `up` succeeding, every kit object
//! existing exactly once with the rendered spec, an event stream that says what happened
//! (retries counted), and a request rate within the budget README.md documents.
//!
//! Scenarios that stop a world process (apiserver frozen or restarted, PowerDNS stopped)
//! hold the world exclusively; the others share it and run concurrently, in one test.
//!
//! Each scenario prints one `fault-matrix {json}` line (`cargo test --test faults --
//! --nocapture`), the source of the table in docs/reliability.md.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::fault_proxy::{Fault, FaultProxy, Protocols, ProxyStats, Upstream, Window};
use crate::support::saturate::{self, Saturation};
use crate::support::{World, lb_service, unique};
use catalyst_bootstrap::health::SILENCE;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::Notify;

/// The request budget README.md documents: at most this many apiserver requests in any
/// 10 s, so on average at most a tenth of it per second over any run.
const BUDGET_PER_10S: u64 = 100;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A scenario's own Sovereign (namespace and domain `<name>.<zone>`), a PowerDNS zone for
/// its domain, and the hostname external-dns is to publish there.
struct Scenario {
    world: World,
    client: kube::Client,
    name: String,
    spec: PathBuf,
    host: String,
    dir: tempfile::TempDir,
}

impl Scenario {
    async fn new(prefix: &str) -> Scenario {
        let world = World::from_env();
        let client = world.kube().await;
        let dir = tempfile::tempdir().unwrap();
        let name = unique(prefix);
        let spec = world.sovereign_file(dir.path(), &name, "");
        let domain = format!("{name}.{}", world.pdns_zone);
        world.pdns().create_zone(&domain).await;
        Scenario {
            host: format!("web.{domain}"),
            world,
            client,
            name,
            spec,
            dir,
        }
    }

    /// A proxy in front of the world's apiserver and a kubeconfig for the tool through it.
    async fn proxy(&self, windows: Vec<Window>) -> (FaultProxy, PathBuf) {
        let proxy = FaultProxy::start(Upstream::world(&self.world), windows).await;
        let kubeconfig = proxy.kubeconfig(&self.world.kubeconfig, self.dir.path());
        (proxy, kubeconfig)
    }

    /// `up --output json` through `kubeconfig`, with a timeout generous enough that the
    /// outcome follows from behaviour, not from a race.
    fn up(&self, kubeconfig: &Path) -> Running {
        Running::start(&self.spec, kubeconfig, "5m")
    }

    /// Plays Flux and Helm (the world runs no Flux controllers) once the kit's HelmRelease
    /// exists: creates the chart's Deployment (kwok runs its pod) and a LoadBalancer Service
    /// announcing the scenario's hostname, and reports the release Ready.
    async fn install_like_flux_and_helm(&self) {
        let releases = crate::support::flux::helm_releases(&self.client, &self.name);
        patiently("the kit's HelmRelease", || async {
            releases.get_opt("external-dns").await.ok().flatten()
        })
        .await;
        crate::support::flux::create_chart_deployment(&self.client, &self.name, json!({})).await;
        lb_service(&self.client, &self.name, "web", &self.host, "192.0.2.90").await;
        crate::support::flux::write_release_status(
            &self.client,
            &self.name,
            "external-dns",
            &[("Ready", "True", "InstallSucceeded")],
        )
        .await;
    }

    /// The real external-dns, once, over the scenario's namespace.
    async fn external_dns(&self) {
        self.world.external_dns_once(&self.name).await;
    }

    /// Every object of the rendered kit exists exactly once (listed cluster-wide by the
    /// Sovereign label), with the rendered labels and every rendered spec field.
    async fn assert_kit_exactly_once(&self) {
        let loaded = catalyst_bootstrap::spec::load(&self.spec, None).unwrap();
        let kit = catalyst_bootstrap::render::render(&loaded.sovereign).unwrap();
        let selector = format!("catalyst.openova.io/sovereign={}", self.name);
        for m in &kit.manifests {
            let want: Value = serde_saphyr::from_str(&m.yaml).unwrap();
            let ar = ApiResource::from_gvk(&m.object.gvk);
            let listed = Api::<DynamicObject>::all_with(self.client.clone(), &ar)
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap_or_else(|e| panic!("list {}: {e}", m.kind()));
            let found: Vec<(Option<String>, Option<String>)> = listed
                .items
                .iter()
                .map(|o| (o.metadata.namespace.clone(), o.metadata.name.clone()))
                .collect();
            assert_eq!(
                found,
                vec![(m.namespace().map(str::to_owned), Some(m.name().to_owned()))],
                "{} of the kit exists exactly once",
                m.kind()
            );
            let live = serde_json::to_value(&listed.items[0]).unwrap();
            assert_subset(
                &want["metadata"]["labels"],
                &live["metadata"]["labels"],
                m.kind(),
            );
            assert_subset(&want["spec"], &live["spec"], m.kind());
        }
    }

    async fn cleanup(&self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &Default::default())
            .await;
    }
}

/// Every field of `want` is in `got` with the same value (the apiserver adds defaults).
fn assert_subset(want: &Value, got: &Value, path: &str) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                assert_subset(v, g.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"));
            }
        }
        (Value::Null, _) => {}
        _ => assert_eq!(want, got, "{path}"),
    }
}

/// Retries a stand-in's read until it yields something (the stand-in is not under test).
async fn patiently<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..1200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what} did not appear within 5 minutes");
}

/// A running `up`, its NDJSON events collected as they arrive.
struct Running {
    child: tokio::process::Child,
    events: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
    reader: tokio::task::JoinHandle<()>,
    stderr: tokio::task::JoinHandle<String>,
}

/// A finished run.
struct Run {
    code: Option<i32>,
    events: Vec<Value>,
    stderr: String,
}

impl Running {
    fn start(spec: &Path, kubeconfig: &Path, timeout: &str) -> Running {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_catalyst-bootstrap"))
            .args(["up", "--output", "json", "--timeout", timeout, "--spec"])
            .arg(spec)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("catalyst-bootstrap runs");
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (sink, notify) = (events.clone(), arrived.clone());
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                sink.lock().unwrap().push(event);
                notify.notify_waiters();
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        Running {
            child,
            events,
            arrived,
            reader,
            stderr,
        }
    }

    /// Waits for the first event matching `pred`; panics if the run ends without one.
    async fn until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let notified = self.arrived.notified();
            {
                let events = self.events.lock().unwrap();
                if let Some(e) = events.iter().find(|e| pred(e)) {
                    return e.clone();
                }
                if let Some(last) = events.last().filter(|e| e["phase"] == "result") {
                    panic!("the run ended before {what}: {last}");
                }
            }
            notified.await;
        }
    }

    async fn finish(mut self) -> Run {
        let status = self.child.wait().await.unwrap();
        self.reader.await.unwrap();
        let stderr = self.stderr.await.unwrap();
        let events = self.events.lock().unwrap().clone();
        Run {
            code: status.code(),
            events,
            stderr,
        }
    }
}

fn phase(phase: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["phase"] == phase
}

impl Run {
    fn result(&self) -> &Value {
        let last = self.events.last().expect("at least the result event");
        assert_eq!(last["phase"], "result", "the last event is the result");
        last
    }

    /// Asserts `up` succeeded: exit 0 and a result event saying so.
    fn assert_succeeded(&self) {
        let result = self.result();
        assert_eq!(
            (
                self.code,
                result["exit_code"].as_i64(),
                result["state"].as_str()
            ),
            (Some(0), Some(0), Some("succeeded")),
            "up succeeds: {result}\nstderr:\n{}",
            self.stderr
        );
    }

    /// (requests, retries) from the result event's counters, which its summary states too.
    fn counted(&self) -> (u64, u64) {
        let result = self.result();
        let field = |name: &str| {
            result[name]
                .as_u64()
                .unwrap_or_else(|| panic!("the result event counts {name}: {result}"))
        };
        let (requests, retries) = (field("requests"), field("retries"));
        let message = result["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{requests} apiserver requests, {retries} retries")),
            "the summary says the same: {message}"
        );
        (requests, retries)
    }

    fn elapsed_s(&self) -> f64 {
        self.result()["elapsed_s"].as_f64().unwrap()
    }

    fn count(&self, phase: &str, state: &str) -> usize {
        self.events
            .iter()
            .filter(|e| e["phase"] == phase && e["state"] == state)
            .count()
    }

    fn any(&self, pred: impl Fn(&Value) -> bool) -> bool {
        self.events.iter().any(pred)
    }

    /// The retry events agree with the retries the result counts.
    fn assert_retries_honest(&self) -> u64 {
        let (_, retries) = self.counted();
        assert_eq!(
            self.count("retry", "retrying") as u64,
            retries,
            "one retry event per counted retry"
        );
        retries
    }
}

/// Asserts the budget and prints the scenario's line of the fault matrix.
fn report(scenario: &str, injected: &str, run: &Run, proxy: Option<ProxyStats>) {
    let (requests, retries) = run.counted();
    let elapsed = run.elapsed_s();
    let rate = requests as f64 / elapsed;
    // A run shorter than 10 s may send its 100 at once.
    let per_second = BUDGET_PER_10S as f64 / 10.0;
    assert!(
        requests as f64 / elapsed.max(10.0) <= per_second,
        "{scenario}: {requests} requests in {elapsed:.1}s is over the budget of {per_second}/s"
    );
    if let Some(p) = proxy {
        assert!(
            p.peak_per_10s <= BUDGET_PER_10S,
            "{scenario}: {} requests within 10 s, over the budget of {BUDGET_PER_10S}",
            p.peak_per_10s
        );
        // Honest counts: every request the proxy saw, watches included, was counted. A
        // request written onto a connection as it breaks counts as sent but never arrives:
        // allow a couple of those, never fewer counted than seen.
        assert!(
            (p.requests..=p.requests + 2).contains(&requests),
            "{scenario}: the tool counted {requests} requests, the apiserver side saw {}",
            p.requests
        );
    }
    let line = json!({
        "scenario": scenario,
        "injected": injected,
        "exit_code": run.result()["exit_code"],
        "requests": requests,
        "retries": retries,
        "elapsed_s": (elapsed * 10.0).round() / 10.0,
        "requests_per_s": (rate * 100.0).round() / 100.0,
        "unreachable_events": run.count("wait", "apiserver-unreachable"),
        "proxy": proxy,
    });
    println!("fault-matrix {line}");
}

/// Resumes a frozen world process whatever happens to the test.
struct Thaw<'a>(&'a World, &'static str);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        self.0.signal(self.1, "CONT");
    }
}

/// How long after `since` the run reported the apiserver unreachable; panics when it has
/// not within `bound` (a hang, or a freeze not noticed at all).
async fn noticed(up: &Running, since: Instant, bound: Duration) -> Duration {
    let unreachable = |e: &Value| e["state"] == "apiserver-unreachable";
    tokio::time::timeout(bound, up.until("the outage noticed", unreachable))
        .await
        .unwrap_or_else(|_| panic!("no apiserver-unreachable within {bound:?}"));
    since.elapsed()
}

/// Every request the proxy received came over `version`, and every watch among them (at
/// least one) asked for `watch_secs`.
fn assert_every_request_over(proxy: &FaultProxy, version: hyper::Version, watch_secs: u32) {
    let arrivals = proxy.arrivals();
    assert!(
        arrivals.iter().all(|a| a.version == version),
        "every request came over {version:?}: {arrivals:?}"
    );
    let watches: Vec<Option<u32>> = arrivals.iter().filter_map(|a| a.watch_timeout).collect();
    assert!(
        !watches.is_empty() && watches.iter().all(|t| *t == Some(watch_secs)),
        "watches over {version:?} ask for {watch_secs}s: {watches:?}"
    );
}

/// A freeze is met within an HTTP/2 keep-alive ping's interval and timeout (25 s) and
/// declared an outage once the apiserver has given no answer for [`SILENCE`] since, at the
/// end of the reachability probe then running (each ends within 30 s: a new connection's
/// handshake times out after 10 s); this bound leaves room for a busy machine and catches
/// connections that are not pinged (their 300 s watches would notice a freeze only when
/// they end).
const NOTICED_BOUND: Duration = Duration::from_secs(25 + SILENCE.as_secs() + 30);
/// How long the freezes of the wait last: past [`NOTICED_BOUND`], so they are declared.
const FREEZE: Duration = Duration::from_secs(NOTICED_BOUND.as_secs() + 20);

/// The tool talks to the apiserver itself, so the freeze is met by its HTTP/2 pings going
/// unanswered while the connection still looks alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_frozen_for_two_minutes_during_the_wait() {
    crate::support::alone();
    let s = Scenario::new("fault-freeze").await;
    let up = s.up(&s.world.kubeconfig);
    up.until("the wait", phase("wait")).await;

    s.world.signal("kube-apiserver", "STOP");
    let frozen = Instant::now();
    let thaw = Thaw(&s.world, "kube-apiserver");
    let noticed = noticed(&up, frozen, FREEZE).await;
    tokio::time::sleep(FREEZE.saturating_sub(frozen.elapsed())).await;
    drop(thaw);

    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let unreachable = run
        .events
        .iter()
        .find(|e| e["state"] == "apiserver-unreachable")
        .unwrap_or_else(|| panic!("the freeze is reported: {:?}", run.events));
    assert_eq!(unreachable["phase"], "wait");
    assert!(
        run.count("wait", "apiserver-reachable") >= 1,
        "the end of the freeze is reported"
    );
    println!(
        "freeze-noticed apiserver SIGSTOP: {:.1}s",
        noticed.as_secs_f64()
    );
    assert!(
        noticed < NOTICED_BOUND,
        "the freeze was noticed {noticed:?} after it began"
    );
    run.assert_retries_honest();
    s.assert_kit_exactly_once().await;
    report(
        &format!("apiserver frozen {} s during the wait", FREEZE.as_secs()),
        &format!(
            "SIGSTOP kube-apiserver for {} s once the wait has started; declared an outage after {:.1}s",
            FREEZE.as_secs(),
            noticed.as_secs_f64()
        ),
        &run,
        None,
    );
    s.cleanup().await;
}

/// A saturated apiserver answers late, and a late answer is an answer: in the calibrated
/// saturated world (3,000 load Services, kube-apiserver capped at 1 % of a core) with a
/// client listing every Service over and over, as external-dns's cache sync does, about
/// 45 s of a quiet wait pass without `apiserver-unreachable`: the pings are answered in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_apiserver_answers_its_pings_and_is_not_unreachable() {
    crate::support::alone();
    let s = Scenario::new("fault-slow").await;
    let load = saturate::load(&s.world, SATURATION_LOAD);
    let up = s.up(&s.world.kubeconfig);
    up.until("the wait", phase("wait")).await;

    let cap = Saturation::with(&s.world, SATURATION_QUOTA, SECS(240), false);
    let capped = Instant::now();
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::all(s.world.kube().await);
    let lister = tokio::spawn(async move {
        loop {
            let _ = services.list(&ListParams::default()).await;
        }
    });
    tokio::time::sleep(SECS(10)).await;
    let median = saturate::readyz_median(&s.world.kube().await).await;
    tokio::time::sleep(SECS(45).saturating_sub(capped.elapsed())).await;
    lister.abort();
    cap.lift();
    let held = capped.elapsed();
    drop(load);

    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    assert!(
        median >= Duration::from_millis(100),
        "the cap did not slow the apiserver: /readyz median {median:?}"
    );
    let unreachable: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["state"] == "apiserver-unreachable")
        .collect();
    assert!(
        unreachable.is_empty(),
        "a slow apiserver (/readyz median {median:?}) was called unreachable: {unreachable:?}"
    );
    println!(
        "saturated {SATURATION_QUOTA}% for {:.1}s (/readyz median {median:?}): no outage",
        held.as_secs_f64()
    );
    run.assert_retries_honest();
    s.assert_kit_exactly_once().await;
    report(
        "apiserver saturated during the wait",
        &format!(
            "{SATURATION_LOAD} load Services, kube-apiserver capped at {SATURATION_QUOTA}% of a \
             core for {:.0} s and listed in a loop, once the wait has started (/readyz median \
             {} ms, {} = unanswered)",
            held.as_secs_f64(),
            median.as_millis(),
            saturate::READYZ_LIMIT.as_millis()
        ),
        &run,
        None,
    );
    s.cleanup().await;
}

/// The calibrated saturated world (docs/reliability.md): this many load Services ...
const SATURATION_LOAD: u32 = 3000;
/// ... and kube-apiserver capped at this share of one core.
const SATURATION_QUOTA: u32 = 1;

/// Every connection through the proxy stalls for [`FREEZE`] mid-wait (TCP still open, nothing
/// read or written, HTTP/2 pings unanswered, new handshakes stuck): noticed by the pings,
/// ridden out, and the watches, over HTTP/2, asked for long timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_noticed_by_its_pings() {
    let s = Scenario::new("fault-stall").await;
    let (proxy, kubeconfig) = s.proxy(vec![]).await;
    let up = s.up(&kubeconfig);
    up.until("the wait", phase("wait")).await;

    proxy.freeze();
    let frozen = Instant::now();
    let noticed = noticed(&up, frozen, FREEZE).await;
    tokio::time::sleep(FREEZE.saturating_sub(frozen.elapsed())).await;
    proxy.thaw();

    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    assert!(
        run.count("wait", "apiserver-reachable") >= 1,
        "the end of the stall is reported: {:?}",
        run.events
    );
    println!(
        "freeze-noticed connection stalled: {:.1}s",
        noticed.as_secs_f64()
    );
    assert!(
        noticed < NOTICED_BOUND,
        "the stall was noticed {noticed:?} after it began"
    );
    assert_every_request_over(
        &proxy,
        hyper::Version::HTTP_2,
        catalyst_bootstrap::retry::LONG_WATCH_SECS,
    );
    run.assert_retries_honest();
    s.assert_kit_exactly_once().await;
    // The requests sent while every connection stalled never reached the proxy (their
    // connections' handshakes or frames were never read), so the proxy's count is only a
    // floor here: the budget is checked on the tool's count and the proxy's busiest 10 s.
    let stats = proxy.stats();
    let (requests, _) = run.counted();
    assert!(
        stats.stalled_handshakes >= 1 && requests >= stats.requests,
        "new connections stalled too, and nothing seen went uncounted: {stats:?}, {requests} counted"
    );
    assert!(stats.peak_per_10s <= BUDGET_PER_10S, "{stats:?}");
    report(
        &format!(
            "every connection stalled {} s during the wait",
            FREEZE.as_secs()
        ),
        &format!(
            "the proxy reads and writes nothing for {} s once the wait has started; declared an outage after {:.1}s",
            FREEZE.as_secs(),
            noticed.as_secs_f64()
        ),
        &run,
        None,
    );
    s.cleanup().await;
}

/// Through a proxy that speaks HTTP/1.1 only there are no pings: the run says so once and
/// renews its watches every 25 s, as before HTTP/2, and still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_only_path_works_with_renewing_watches() {
    let s = Scenario::new("fault-http1").await;
    let proxy =
        FaultProxy::start_with(Upstream::world(&s.world), vec![], Protocols::Http1Only).await;
    let kubeconfig = proxy.kubeconfig(&s.world.kubeconfig, s.dir.path());
    let up = s.up(&kubeconfig);
    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let said: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("HTTP/1.1"))
        })
        .collect();
    assert_eq!(said.len(), 1, "said once: {said:?}");
    assert_eq!(
        (&said[0]["phase"], &said[0]["resource"]),
        (&json!("wait"), &json!("apiserver"))
    );
    assert_every_request_over(
        &proxy,
        hyper::Version::HTTP_11,
        catalyst_bootstrap::retry::WATCH_TIMEOUT_SECS,
    );
    run.assert_retries_honest();
    report(
        "an HTTP/1.1-only proxy on the way",
        "the proxy offers HTTP/1.1 only (ALPN)",
        &run,
        Some(proxy.stats()),
    );
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_frozen_during_dns_verification_longer_than_the_timeout() {
    crate::support::alone();
    let s = Scenario::new("fault-freeze-dns").await;
    // The freeze outlasts --timeout: only time the apiserver answered may count against it.
    let up = Running::start(&s.spec, &s.world.kubeconfig, "30s");
    s.install_like_flux_and_helm().await;
    up.until("the DNS proof", |e| {
        e["phase"] == "dns" && e["state"] == "missing"
    })
    .await;

    s.world.signal("kube-apiserver", "STOP");
    let thaw = Thaw(&s.world, "kube-apiserver");
    tokio::time::sleep(FREEZE).await;
    drop(thaw);

    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    run.assert_retries_honest();
    // The proof lists nothing while its sources are unchanged, so the freeze is met by the
    // watches (the wait's and the proof's), not by retried reads: it shows as an outage.
    let outage: Vec<&str> = run
        .events
        .iter()
        .filter(|e| e["resource"] == "apiserver")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(
        outage,
        ["apiserver-unreachable", "apiserver-reachable"],
        "the frozen apiserver shows as one outage: {:?}",
        run.events
    );
    s.assert_kit_exactly_once().await;
    report(
        &format!(
            "apiserver frozen {} s during DNS verification (--timeout 30s)",
            FREEZE.as_secs()
        ),
        &format!(
            "SIGSTOP kube-apiserver for {} s once the DNS proof has started; external-dns runs after",
            FREEZE.as_secs()
        ),
        &run,
        None,
    );
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_restarted_during_apply() {
    crate::support::alone();
    let s = Scenario::new("fault-restart").await;
    // Latency stretches the apply to seconds, so the restart lands inside it.
    let (proxy, kubeconfig) = s
        .proxy(vec![Window::new(
            SECS(0),
            SECS(30),
            Fault::Latency(Duration::from_millis(700)),
        )])
        .await;
    let up = s.up(&kubeconfig);
    proxy.wait_for_method(hyper::Method::PATCH).await;
    s.world.restart("kube-apiserver", SECS(0)).await;

    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let retries = run.assert_retries_honest();
    assert!(retries >= 1, "the restart cost retries: {:?}", run.events);
    assert!(
        run.any(|e| e["phase"] == "retry"
            && e["resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("apply"))),
        "an apply request was retried: {:?}",
        run.events
    );
    let stats = proxy.stats();
    assert!(stats.upstream_errors >= 1, "{stats:?}");
    s.assert_kit_exactly_once().await;
    report(
        "apiserver restarted during apply",
        "kube-apiserver stopped and started again at the first apply request (700 ms latency stretches the apply)",
        &run,
        Some(stats),
    );
    s.cleanup().await;
}

async fn half_of_all_requests_answered_429_or_503_for_two_minutes() {
    let s = Scenario::new("fault-storm").await;
    let storm = SECS(120);
    let (proxy, kubeconfig) = s
        .proxy(vec![
            Window::new(SECS(0), storm, Fault::Status429 { retry_after: 1 }).ratio(0.25),
            Window::new(SECS(0), storm, Fault::Status503).ratio(0.25),
        ])
        .await;
    let started = Instant::now();
    let up = s.up(&kubeconfig);
    // The release turns Ready late in the storm, so the whole wait and the DNS proof run
    // through it.
    up.until("the wait", phase("wait")).await;
    tokio::time::sleep(storm.saturating_sub(started.elapsed() + SECS(10))).await;
    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let retries = run.assert_retries_honest();
    let stats = proxy.stats();
    assert!(stats.status_429 > 0 && stats.status_503 > 0, "{stats:?}");
    assert!(retries > 0, "the storm cost retries");
    assert!(
        run.any(|e| e["phase"] == "retry" && e["message"].as_str().unwrap_or("").contains("429")),
        "a 429 is named in the retry events"
    );
    s.assert_kit_exactly_once().await;
    report(
        "half of all requests answered 429 or 503 for 2 min",
        "fault proxy: 25% 429 (Retry-After 1), 25% 503 (plain text), 120 s",
        &run,
        Some(stats),
    );
    s.cleanup().await;
}

async fn connections_reset_black_holed_and_slowed_for_40s() {
    let s = Scenario::new("fault-reset").await;
    let rough = SECS(40);
    let (proxy, kubeconfig) = s
        .proxy(vec![
            Window::new(SECS(0), rough, Fault::Reset).ratio(0.3),
            Window::new(SECS(0), rough, Fault::BlackHole).ratio(0.1),
            Window::new(SECS(0), rough, Fault::Latency(Duration::from_millis(500))).ratio(0.2),
        ])
        .await;
    let started = Instant::now();
    let up = s.up(&kubeconfig);
    up.until("the wait", phase("wait")).await;
    tokio::time::sleep(rough.saturating_sub(started.elapsed() + SECS(5))).await;
    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let retries = run.assert_retries_honest();
    let stats = proxy.stats();
    assert!(stats.resets > 0 && stats.latency > 0, "{stats:?}");
    assert!(retries > 0, "resets cost retries");
    s.assert_kit_exactly_once().await;
    report(
        "connections reset, black-holed and slowed for 40 s",
        "fault proxy: 30% reset, 10% never answered, 20% 500 ms latency, 40 s",
        &run,
        Some(stats),
    );
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powerdns_stopped_for_30s_during_dns_verification() {
    crate::support::alone();
    let s = Scenario::new("fault-pdns").await;
    let (proxy, kubeconfig) = s.proxy(vec![]).await;
    let up = s.up(&kubeconfig);
    s.install_like_flux_and_helm().await;
    up.until("the DNS proof", |e| {
        e["phase"] == "dns" && e["state"] == "missing"
    })
    .await;
    // Down for 30 s, then external-dns writes the records.
    s.world.restart("pdns", SECS(30)).await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    assert!(
        run.any(|e| e["phase"] == "dns"
            && e["state"] == "unchecked"
            && e["message"].as_str().unwrap_or("").contains("unreachable")),
        "the events say PowerDNS was unreachable: {:?}",
        run.events
    );
    assert!(run.count("dns", "verified") >= 1);
    run.assert_retries_honest();
    s.assert_kit_exactly_once().await;
    report(
        "PowerDNS stopped 30 s during DNS verification",
        "pdns_server killed at the first DNS round, started again 30 s later",
        &run,
        Some(proxy.stats()),
    );
    s.cleanup().await;
}

async fn external_dns_starting_late() {
    let s = Scenario::new("fault-late").await;
    let (proxy, kubeconfig) = s.proxy(vec![]).await;
    let up = s.up(&kubeconfig);
    s.install_like_flux_and_helm().await;
    up.until("the DNS proof", |e| {
        e["phase"] == "dns" && e["state"] == "missing"
    })
    .await;
    tokio::time::sleep(SECS(20)).await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let missing_at = run
        .events
        .iter()
        .position(|e| e["phase"] == "dns" && e["state"] == "missing");
    let verified_at = run
        .events
        .iter()
        .position(|e| e["phase"] == "dns" && e["state"] == "verified");
    assert!(
        matches!((missing_at, verified_at), (Some(m), Some(v)) if m < v),
        "missing, then verified: {:?}",
        run.events
    );
    run.assert_retries_honest();
    s.assert_kit_exactly_once().await;
    report(
        "external-dns starting late",
        "external-dns runs 20 s after the DNS proof began",
        &run,
        Some(proxy.stats()),
    );
    s.cleanup().await;
}

/// A second kube-apiserver on the world's etcd with room for one request at a time, as a
/// user outside system:masters (which both in-flight filters exempt).
struct TinyApiserver {
    _process: tokio::process::Child,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

const FAULT_USER: &str = "catalyst-fault-user";

async fn tiny_apiserver(world: &World, client: &kube::Client) -> TinyApiserver {
    let dir = tempfile::tempdir().unwrap();
    let pki = world.pki_dir();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.path().join("ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "user.key",
        "-out",
        "user.csr",
        "-subj",
        &format!("/O=catalyst-fault-testers/CN={FAULT_USER}"),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "user.csr",
        "-CA",
        pki.join("ca.crt").to_str().unwrap(),
        "-CAkey",
        pki.join("ca.key").to_str().unwrap(),
        "-CAcreateserial",
        "-CAserial",
        "user.srl",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "user.crt",
    ]);
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": FAULT_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": FAULT_USER}]
    }))
    .unwrap();
    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone())
        .patch(
            FAULT_USER,
            &kube::api::PatchParams::apply("catalyst-fault-tests").force(),
            &kube::api::Patch::Apply(binding),
        )
        .await
        .expect("bind the fault user to cluster-admin");

    // The world's apiserver's own argv, on another port, with tiny in-flight limits and
    // priority and fairness off so the classic max-in-flight filter answers 429.
    let (process, port) = world.second_apiserver(
        &[
            "--max-requests-inflight=1",
            "--max-mutating-requests-inflight=1",
            "--enable-priority-and-fairness=false",
        ]
        .map(String::from),
        &dir.path().join("apiserver.log"),
    );

    let b64 = |p: &Path| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap())
    };
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: tiny\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {}\nusers:\n- name: {FAULT_USER}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: tiny\n  context: {{cluster: tiny, user: {FAULT_USER}}}\ncurrent-context: tiny\n",
            b64(&pki.join("ca.crt")),
            b64(&dir.path().join("user.crt")),
            b64(&dir.path().join("user.key")),
        ),
    )
    .unwrap();
    let tiny = TinyApiserver {
        _process: process,
        kubeconfig,
        _dir: dir,
    };
    let c = tiny.client().await;
    patiently("the second apiserver", || async {
        c.apiserver_version().await.ok()
    })
    .await;
    tiny
}

impl TinyApiserver {
    /// A client without kube's own retries, so every 429 is seen.
    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    }
}

async fn real_429s_from_tiny_in_flight_limits_under_load() {
    let s = Scenario::new("fault-inflight").await;
    let tiny = tiny_apiserver(&s.world, &s.client).await;
    let upstream = Upstream {
        url: std::fs::read_to_string(&tiny.kubeconfig)
            .unwrap()
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_owned))
            .unwrap(),
        ca: s.world.pki_dir().join("ca.crt"),
        cert: tiny._dir.path().join("user.crt"),
        key: tiny._dir.path().join("user.key"),
    };
    let proxy = FaultProxy::start(upstream, vec![]).await;
    let kubeconfig = proxy.kubeconfig(&tiny.kubeconfig, s.dir.path());

    // Background load: concurrent LISTs, until the tool has been throttled.
    let throttled = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let c = tiny.client().await;
        let (throttled, served) = (throttled.clone(), served.clone());
        load.push(tokio::spawn(async move {
            let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::all(c);
            loop {
                match api.list(&ListParams::default()).await {
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        }));
    }
    patiently("429s under the background load", || async {
        (throttled.load(Ordering::Relaxed) > 0).then_some(())
    })
    .await;

    let up = s.up(&kubeconfig);
    up.until("a throttled request retried", |e| {
        e["phase"] == "retry" && e["message"].as_str().unwrap_or("").contains("429")
    })
    .await;
    // The whole apply runs under the load; it stops once the wait has begun.
    up.until("the wait", phase("wait")).await;
    for task in load {
        task.abort();
    }
    s.install_like_flux_and_helm().await;
    s.external_dns().await;
    let run = up.finish().await;
    run.assert_succeeded();
    let retries = run.assert_retries_honest();
    assert!(retries >= 1);
    assert!(throttled.load(Ordering::Relaxed) > 0 && served.load(Ordering::Relaxed) > 0);
    s.assert_kit_exactly_once().await;
    report(
        "real 429s: tiny in-flight limits under load",
        "second kube-apiserver with --max-requests-inflight=1 --max-mutating-requests-inflight=1, 4 concurrent LIST loops",
        &run,
        Some(proxy.stats()),
    );
    s.cleanup().await;
}

/// The scenarios that share the world, run at once: the test harness runs only as many
/// tests at a time as there are cores, and these spend their time waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_resets_and_a_late_external_dns_at_once() {
    tokio::join!(
        half_of_all_requests_answered_429_or_503_for_two_minutes(),
        connections_reset_black_holed_and_slowed_for_40s(),
        real_429s_from_tiny_in_flight_limits_under_load(),
        external_dns_starting_late(),
    );
}

/// The proxy itself: HTTP/2 (what the tool speaks) as well as HTTP/1.1, and faults
/// answered and counted as scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_proxy_speaks_http2_and_injects_what_it_is_told() {
    let world = World::from_env();
    let proxy = FaultProxy::start(
        Upstream::world(&world),
        vec![Window::new(
            SECS(0),
            SECS(600),
            Fault::Status429 { retry_after: 3 },
        )],
    )
    .await;
    let ca = std::fs::read(world.pki_dir().join("ca.crt")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{}/version", proxy.addr);
    let throttled = http
        .get(&url)
        .send()
        .await
        .expect("an answer through the proxy");
    assert_eq!(throttled.version(), reqwest::Version::HTTP_2);
    assert_eq!(throttled.status().as_u16(), 429);
    assert_eq!(throttled.headers()["retry-after"], "3");

    proxy.set_schedule(vec![]);
    let version: Value = http
        .get(&url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .expect("forwarded to the apiserver as the world's admin")
        .json()
        .await
        .unwrap();
    assert!(version["gitVersion"].as_str().unwrap().starts_with("v1."));
    let stats = proxy.stats();
    assert_eq!((stats.requests, stats.status_429), (2, 1), "{stats:?}");
}
