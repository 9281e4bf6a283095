//! Shared support for the tests that run against the local test world
//! (`scripts/testenv up`). Every accessor fails loudly when the world is not
//! there: a test that needs real components never passes or skips without them.
#![allow(dead_code)]

mod cleanup;
pub mod fault_proxy;
pub mod flux;
pub mod kits;
pub mod kubelet;
pub mod pdns_webhook;
pub mod saturate;
mod turn;

pub use turn::{alone, lend};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// PowerDNS's sqlite backend answers 500 ("database is locked") when two writes meet, so
/// the tests' own writes take turns: [`Pdns`]'s writes and [`World::external_dns_once`]
/// hold this lock, and a test writing by other means takes it with [`pdns_writing`].
static PDNS_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The turn to write into the world's PowerDNS, until dropped.
pub async fn pdns_writing() -> tokio::sync::MutexGuard<'static, ()> {
    PDNS_WRITES.lock().await
}

/// The running test world, as `scripts/testenv env` describes it.
pub struct World {
    pub kubeconfig: PathBuf,
    pub pdns_api_url: String,
    pub pdns_api_key: String,
    pub pdns_dns_addr: SocketAddr,
    pub pdns_zone: String,
    pub external_dns_bin: PathBuf,
    pub local_spec: PathBuf,
}

fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need the local test world. Start it with \
             `scripts/testenv up` and load its environment with `eval \"$(scripts/testenv env)\"`, \
             or run `scripts/test`, which does both."
        ),
    }
}

/// The PowerDNS webhook example, built with the tests (`cargo test` builds examples).
pub fn pdns_webhook_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = kubelet::Image::pdns_webhook_beside(&exe);
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test` builds it; a run of one test target alone needs \
         `--example pdns-webhook` beside `--test world`",
        bin.display()
    );
    bin
}

fn existing_file(var: &str) -> PathBuf {
    let path = PathBuf::from(required(var));
    assert!(
        path.is_file(),
        "{var} points at {}, which does not exist: is the test world still up? (`scripts/testenv status`)",
        path.display()
    );
    path
}

impl World {
    /// The world, with a shared turn on it for this test ([`alone`] takes it alone).
    pub fn from_env() -> World {
        turn::share();
        // kube and reqwest share one rustls provider (ring); install it once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        cleanup::install(existing_file("KUBECTL_BIN"), existing_file("KUBECONFIG"));
        World {
            kubeconfig: existing_file("KUBECONFIG"),
            pdns_api_url: required("PDNS_API_URL"),
            pdns_api_key: required("PDNS_API_KEY"),
            pdns_dns_addr: required("PDNS_DNS_ADDR")
                .parse()
                .expect("PDNS_DNS_ADDR must be ip:port"),
            pdns_zone: required("PDNS_ZONE"),
            external_dns_bin: existing_file("EXTERNAL_DNS_BIN"),
            local_spec: existing_file("CATALYST_LOCAL_SPEC"),
        }
    }

    pub async fn kube(&self) -> kube::Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("reading KUBECONFIG");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig of the test world");
        kube::Client::try_from(config).expect("kube client")
    }

    pub fn pdns(&self) -> Pdns {
        Pdns {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            base: format!("{}/api/v1/servers/localhost", self.pdns_api_url),
            key: self.pdns_api_key.clone(),
        }
    }

    /// The world's kubelet for the labelled pods of `ns`: the real external-dns for
    /// external-dns's image, with its run logs under `work_dir`.
    pub fn kubelet(&self, client: &kube::Client, ns: &str, work_dir: PathBuf) -> kubelet::Kubelet {
        kubelet::Kubelet::start(client.clone(), self.kubelet_config(ns, work_dir))
    }

    /// What [`World::kubelet`] runs, for a test that changes part of it.
    pub fn kubelet_config(&self, ns: &str, work_dir: PathBuf) -> kubelet::KubeletConfig {
        kubelet::KubeletConfig {
            namespace: ns.to_owned(),
            images: vec![
                kubelet::Image::external_dns(self.external_dns_bin.clone()),
                kubelet::Image::pdns_webhook(pdns_webhook_bin()),
            ],
            kubeconfig: self.kubeconfig.clone(),
            work_dir,
            apiserver: None,
        }
    }

    /// Runs the real external-dns once over the Services of `ns`, writing into the world's
    /// PowerDNS with owner `openova` and prefix `_externaldns.`; panics (with its log) when
    /// it fails. Returns its log.
    pub async fn external_dns_once(&self, ns: &str) -> String {
        let _writing = pdns_writing().await;
        let mut cmd = tokio::process::Command::new(&self.external_dns_bin);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args([
                "--source=service",
                "--provider=pdns",
                "--registry=txt",
                "--txt-owner-id=openova",
                "--txt-prefix=_externaldns.",
                "--policy=upsert-only",
                "--annotation-prefix=external-dns.alpha.kubernetes.io/",
                "--once",
                "--metrics-address=127.0.0.1:0",
            ])
            .arg(format!("--namespace={ns}"))
            .arg(format!("--domain-filter={}", self.pdns_zone))
            .arg(format!("--pdns-server={}", self.pdns_api_url))
            // The key travels in the environment, never in argv.
            .env("EXTERNAL_DNS_PDNS_API_KEY", &self.pdns_api_key)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("external-dns --once finishes within 120 s")
            .expect("external-dns runs");
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "external-dns failed:\n{log}");
        log
    }

    /// The world's Sovereign renamed to `name`, in namespace and domain `name.<zone>` of its
    /// own (so tests do not see each other's objects or records), with `external_dns` lines
    /// added under spec.externalDns; written to `dir/sovereign.yaml`.
    pub fn sovereign_file(&self, dir: &std::path::Path, name: &str, external_dns: &str) -> PathBuf {
        let spec = std::fs::read_to_string(&self.local_spec)
            .unwrap()
            .replace("  name: local", &format!("  name: {name}"))
            .replace("  domain: ", &format!("  domain: {name}."))
            .replace(
                "  cni: cilium\n",
                &format!("  cni: cilium\n  externalDns:\n    namespace: {name}\n{external_dns}"),
            );
        let path = dir.join("sovereign.yaml");
        std::fs::write(&path, spec).unwrap();
        path
    }

    /// The world's kubeconfig pointed at a loopback port nothing listens on, written to
    /// `dir/kubeconfig`: an apiserver that stays unreachable.
    pub fn unreachable_kubeconfig(&self, dir: &std::path::Path) -> PathBuf {
        let kubeconfig = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let server = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server in the kubeconfig")
            .to_owned();
        let path = dir.join("kubeconfig");
        std::fs::write(&path, kubeconfig.replace(&server, "https://127.0.0.1:1")).unwrap();
        path
    }

    /// The world's state directory (`CATALYST_TESTENV_DIR`): pki/, pids/, logs/.
    pub fn testenv_dir(&self) -> PathBuf {
        PathBuf::from(required("CATALYST_TESTENV_DIR"))
    }

    /// The world's CA (ca.crt, ca.key) and admin client certificate (admin.crt, admin.key).
    pub fn pki_dir(&self) -> PathBuf {
        self.testenv_dir().join("pki")
    }

    /// `https://127.0.0.1:<port>` of the world's apiserver.
    pub fn apiserver_url(&self) -> String {
        std::fs::read_to_string(&self.kubeconfig)
            .unwrap()
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server in the kubeconfig")
            .to_owned()
    }

    /// The pid of a world process (`kube-apiserver`, `pdns`, ...), from its pid file.
    pub fn pid(&self, process: &str) -> u32 {
        let file = self
            .testenv_dir()
            .join("pids")
            .join(format!("{process}.pid"));
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e}: is the test world up?", file.display()))
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Starts a second kube-apiserver with the world's apiserver's own arguments (same etcd,
    /// certificates and admission) on a free loopback port, plus `extra_args`, logging to
    /// `log`; killed when the returned child is dropped. Returns the child and its port.
    pub fn second_apiserver(
        &self,
        extra_args: &[String],
        log: &Path,
    ) -> (tokio::process::Child, u16) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid("kube-apiserver")))
            .expect("the world's kube-apiserver is running");
        let mut argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let port = kubelet::env::free_loopback_port().expect("a free loopback port");
        for arg in argv.iter_mut() {
            if arg.starts_with("--secure-port=") {
                *arg = format!("--secure-port={port}");
            }
        }
        argv.extend_from_slice(extra_args);
        let log = std::fs::File::create(log).unwrap();
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start a second kube-apiserver");
        (child, port)
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to a world process.
    pub fn signal(&self, process: &str, signal: &str) {
        turn::assert_alone("signalling a world process");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid(process).to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {process}");
    }

    /// Stops a world process, keeps it down for `down`, and starts it again with its
    /// original arguments (`scripts/testenv restart`), returning once it answers again.
    pub async fn restart(&self, process: &str, down: Duration) {
        turn::assert_alone("restarting a world process");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testenv");
        let out = tokio::process::Command::new(script)
            .args(["restart", process, &down.as_secs().to_string()])
            .env("CATALYST_TESTENV_DIR", self.testenv_dir())
            .output()
            .await
            .expect("scripts/testenv restart runs");
        assert!(
            out.status.success(),
            "restarting {process}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fully qualified name inside the world's zone, with a trailing dot.
    pub fn fqdn(&self, label: &str) -> String {
        format!("{label}.{}.", self.pdns_zone)
    }
}

/// A name no other test (or earlier run) uses: tests share one world.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}-{:x}{n}", nanos ^ std::process::id());
    cleanup::remember(&name);
    name
}

/// The PowerDNS REST API of the test world.
pub struct Pdns {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Pdns {
    pub async fn zone(&self, zone: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/zones/{zone}.", self.base))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .expect("GET zone");
        assert!(resp.status().is_success(), "GET zone: {}", resp.status());
        resp.json().await.expect("zone JSON")
    }

    /// The contents of one rrset in the zone, empty when it is absent.
    pub async fn rrset(&self, zone: &str, name: &str, rtype: &str) -> Vec<String> {
        let zone = self.zone(zone).await;
        zone["rrsets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["name"] == name && r["type"] == rtype)
            .flat_map(|r| r["records"].as_array().cloned().unwrap_or_default())
            .filter_map(|rec| rec["content"].as_str().map(str::to_owned))
            .collect()
    }

    /// Creates a zone (without trailing dot in `zone`), so a test can own one.
    pub async fn create_zone(&self, zone: &str) {
        let _writing = pdns_writing().await;
        let resp = self
            .http
            .post(format!("{}/zones", self.base))
            .header("X-API-Key", &self.key)
            .json(&json!({"name": format!("{zone}."), "kind": "Native",
                          "nameservers": [format!("ns1.{zone}.")]}))
            .send()
            .await
            .expect("POST zone");
        assert_eq!(resp.status().as_u16(), 201, "create zone {zone}");
    }

    pub async fn replace_rrset(&self, zone: &str, name: &str, rtype: &str, contents: &[&str]) {
        let _writing = pdns_writing().await;
        let records: Vec<Value> = contents
            .iter()
            .map(|c| json!({"content": c, "disabled": false}))
            .collect();
        let body = json!({"rrsets": [{
            "name": name, "type": rtype, "ttl": 60, "changetype": "REPLACE", "records": records,
        }]});
        let resp = self
            .http
            .patch(format!("{}/zones/{zone}.", self.base))
            .header("X-API-Key", &self.key)
            .json(&body)
            .send()
            .await
            .expect("PATCH zone");
        let status = resp.status();
        assert_eq!(
            status.as_u16(),
            204,
            "PATCH zone: {status}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
}

/// One non-recursive query over UDP to an authoritative server: the answer
/// section's record data as text, and whether the server claimed authority.
pub async fn dns_query(server: SocketAddr, name: &str, rtype: RecordType) -> (Vec<String>, bool) {
    let mut query = Message::query();
    query.add_query(hickory_proto::op::Query::query(
        Name::from_ascii(name).expect("DNS name"),
        rtype,
    ));
    query.metadata.recursion_desired = false;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("DNS answer within 5 s")
        .unwrap();
    let answer = Message::from_vec(&buf[..len]).expect("DNS message");
    assert_eq!(answer.metadata.id, query.metadata.id, "DNS answer id");
    let records = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.data.to_string())
        .collect();
    (records, answer.metadata.authoritative)
}

/// The label that hands a pod to a test's own kwok stage instead of the
/// default pod-ready stage (see `start_kwok` in scripts/testenv).
pub const FAULT_LABEL: &str = "fault.catalyst.openova.io/stage";

/// Installs a kwok Stage that puts every container of the pods labelled
/// `FAULT_LABEL=<id>` into CrashLoopBackOff, with a restart count and the
/// last terminated state a real kubelet reports. Returns the stage's name.
pub async fn crash_loop_stage(client: &kube::Client, id: &str) -> String {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"));
    let name = format!("crash-loop-{id}");
    let template = r#"{{ $now := Now }}
conditions:
- type: Ready
  status: "False"
  reason: ContainersNotReady
  lastTransitionTime: {{ $now | Quote }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 4
  state:
    waiting:
      reason: CrashLoopBackOff
      message: back-off 1m20s restarting failed container
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"#;
    let stage: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": format!(".metadata.labels[\"{FAULT_LABEL}\"]"), "operator": "In", "values": [id]},
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.podIP", "operator": "DoesNotExist"}
            ]},
            "next": {"statusTemplate": template}
        }
    }))
    .unwrap();
    kube::Api::<DynamicObject>::all_with(client.clone(), &resource)
        .create(&PostParams::default(), &stage)
        .await
        .expect("create kwok stage (is kwok running with --enable-crds=Stage?)");
    name
}

/// A namespace no other test uses.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    let name = unique(prefix);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    kube::Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .expect("create namespace");
    name
}

pub async fn delete_namespace(client: &kube::Client, name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let _ = kube::Api::<Namespace>::all(client.clone())
        .delete(name, &Default::default())
        .await;
}

/// A LoadBalancer Service with external-dns's hostname annotation, its load balancer
/// address published in its status the way a cloud controller would.
pub async fn lb_service(client: &kube::Client, ns: &str, name: &str, hostname: &str, ip: &str) {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Patch, PatchParams};
    let services: kube::Api<Service> = kube::Api::namespaced(client.clone(), ns);
    let service: Service = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {"external-dns.alpha.kubernetes.io/hostname": hostname}
        },
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    services
        .create(&Default::default(), &service)
        .await
        .expect("create Service");
    services
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})),
        )
        .await
        .expect("set load balancer status");
}
