//! DNS sync verification against the real test world: PowerDNS and the real external-dns
//! binary. Tests share the world and run in parallel, so each uses its own namespace and
//! hostnames, and scopes the derivation of expected records to its namespace
//! (`VerifyOptions::scope`), so other tests' Services do not count.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{World, delete_namespace, lb_service, namespace, unique};
use catalyst_bootstrap::dns::{
    self, DnsError, DnsEvent, ExpectedRecord, LikelyCause, PdnsClient, RecordType, Scope, Verdict,
    VerifyOptions,
};
use catalyst_bootstrap::exit::Exit;
use catalyst_bootstrap::report::Sink;
use catalyst_bootstrap::spec::Sovereign;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::json;

/// The world's Sovereign with `edit` applied to its text and `extra` appended under spec.
fn sovereign(
    world: &World,
    edit: impl Fn(String) -> String,
    extra: &str,
) -> (Sovereign, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&world.local_spec).unwrap();
    let path: PathBuf = dir.path().join("sovereign.yaml");
    std::fs::write(&path, format!("{}\n{extra}", edit(text).trim_end())).unwrap();
    let loaded = catalyst_bootstrap::spec::load(&path, None).expect("the test Sovereign loads");
    (loaded.sovereign, dir)
}

type Events = Arc<Mutex<Vec<DnsEvent>>>;

/// The proof's PowerDNS client and nameserver, from the spec and the environment.
fn verifier(sov: &Sovereign) -> dns::Verifier {
    dns::Verifier::new(&sov.spec.verify).expect("the key is set")
}

fn options(ns: &str, timeout: Duration) -> (VerifyOptions, Events) {
    let events: Events = Arc::default();
    let sink = events.clone();
    let opts = VerifyOptions {
        timeout,
        scope: Scope {
            namespace: Some(ns.to_owned()),
        },
        events: Sink::new(move |e: &DnsEvent| sink.lock().unwrap().push(e.clone())),
        ..VerifyOptions::default()
    };
    (opts, events)
}

#[tokio::test]
async fn after_a_real_external_dns_run_the_records_are_verified_and_served() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-ok").await;
    let host = format!("{}.{}", unique("web"), world.pdns_zone);
    lb_service(&client, &ns, "web", &host, "192.0.2.81").await;
    // A second type from the same Service: the target annotation wins over the status.
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let dual = format!("{}.{}", unique("dual"), world.pdns_zone);
    lb_service(&client, &ns, "dual", &dual, "192.0.2.1").await;
    api.patch(
        "dual",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
            "external-dns.alpha.kubernetes.io/target": "192.0.2.82,2001:db8::82"
        }}})),
    )
    .await
    .unwrap();
    world.external_dns_once(&ns).await;

    let extra = format!("    hostnames: [{host}]\n");
    let (sov, _dir) = sovereign(&world, |t| t, &extra);
    assert!(
        sov.spec.verify.nameserver.is_some(),
        "answers are checked too"
    );
    let (opts, events) = options(&ns, Duration::from_secs(30));
    let report = dns::verify_until_synced(&client, &sov, &verifier(&sov), opts)
        .await
        .expect("synced after external-dns ran");

    let mut got: Vec<(String, RecordType, Vec<String>, Verdict)> = report
        .records
        .iter()
        .map(|r| {
            (
                r.record.hostname.clone(),
                r.record.rtype,
                r.record.targets.clone(),
                r.verdict.clone(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (
            host.clone(),
            RecordType::A,
            vec!["192.0.2.81".to_owned()],
            Verdict::Verified,
        ),
        (
            dual.clone(),
            RecordType::A,
            vec!["192.0.2.82".to_owned()],
            Verdict::Verified,
        ),
        (
            dual.clone(),
            RecordType::Aaaa,
            vec!["2001:db8::82".to_owned()],
            Verdict::Verified,
        ),
        (host.clone(), RecordType::Any, vec![], Verdict::Verified),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        report.zone_reads,
        u64::from(report.rounds),
        "one zone read per round"
    );
    let events = events.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| e.hostname == format!("{host} A") && e.state == "verified"),
        "{events:?}"
    );
    delete_namespace(&client, &ns).await;
}

/// The proof lists the cluster once, then only after a change: a Service that appears while
/// it waits is picked up through the watch, and the rounds between read PowerDNS alone.
#[tokio::test]
async fn the_proof_derives_the_records_again_only_after_their_sources_change() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-watch").await;
    let first = format!("{}.{}", unique("first"), world.pdns_zone);
    lb_service(&client, &ns, "first", &first, "192.0.2.91").await;

    let (sov, _dir) = sovereign(&world, |t| t, "");
    let (opts, _) = options(&ns, Duration::from_secs(60));
    let later = format!("{}.{}", unique("later"), world.pdns_zone);
    let verifier = verifier(&sov);
    let proof = dns::verify_until_synced(&client, &sov, &verifier, opts);
    let (report, ()) = tokio::join!(proof, async {
        // Quiet rounds first (the first record missing, nothing in the cluster changes),
        // then a new Service, then external-dns writes both.
        tokio::time::sleep(Duration::from_secs(8)).await;
        lb_service(&client, &ns, "later", &later, "192.0.2.92").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        world.external_dns_once(&ns).await;
    });
    let report = report.expect("both records verified");
    let hosts: Vec<&str> = report
        .records
        .iter()
        .map(|r| r.record.hostname.as_str())
        .collect();
    assert_eq!(hosts, [first.as_str(), later.as_str()]);
    eprintln!(
        "dns-proof rounds={} derivations={} zone_reads={}",
        report.rounds, report.derivations, report.zone_reads
    );
    // The first derivation, and one or two after the new Service (its creation and its
    // load balancer status are two changes, which one derivation may see together).
    assert!(
        (2..=3).contains(&report.derivations),
        "derived {} times in {} rounds",
        report.derivations,
        report.rounds
    );
    assert!(
        report.rounds >= report.derivations + 2,
        "rounds without a change read PowerDNS alone: {} rounds, {} derivations",
        report.rounds,
        report.derivations
    );
    assert_eq!(report.zone_reads, u64::from(report.rounds));
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn without_external_dns_the_wait_ends_not_synced_with_the_cause() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-none").await;
    let host = format!("{}.{}", unique("lonely"), world.pdns_zone);
    lb_service(&client, &ns, "web", &host, "192.0.2.83").await;
    let (sov, _dir) = sovereign(&world, |t| t, "");
    let (opts, events) = options(&ns, Duration::from_secs(2));
    let err = dns::verify_until_synced(&client, &sov, &verifier(&sov), opts)
        .await
        .unwrap_err();
    let DnsError::NotSynced {
        missing,
        likely_cause,
        ..
    } = &err
    else {
        panic!("expected NotSynced, got {err:?}");
    };
    assert_eq!(missing, &[(format!("{host} A"), Verdict::Missing)]);
    assert_eq!(likely_cause, &LikelyCause::ExternalDnsNotSynced);
    assert_eq!(err.exit(), Exit::DnsNotSynced);
    assert!(
        err.to_string()
            .contains("external-dns not running or still syncing its caches"),
        "{err}"
    );
    assert!(events.lock().unwrap().iter().any(|e| e.state == "missing"));
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_wrong_api_key_ends_not_synced_naming_credentials_and_is_never_shown() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-key").await;
    let host = format!("{}.{}", unique("locked"), world.pdns_zone);
    lb_service(&client, &ns, "web", &host, "192.0.2.84").await;
    // The wrong key comes from a file: setting an environment variable while other test
    // threads read the environment is unsound.
    let wrong = unique("wrong-key-SECRET");
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("key");
    std::fs::write(&key_file, format!("{wrong}\n")).unwrap();
    let (sov, _dir) = sovereign(
        &world,
        |t| {
            t.replace(
                "apiKeyEnv: PDNS_API_KEY",
                &format!("apiKeyFile: {}", key_file.display()),
            )
        },
        "",
    );
    let (opts, events) = options(&ns, Duration::from_secs(2));
    let err = dns::verify_until_synced(&client, &sov, &verifier(&sov), opts)
        .await
        .unwrap_err();
    let DnsError::NotSynced {
        missing,
        likely_cause,
        ..
    } = &err
    else {
        panic!("expected NotSynced, got {err:?}");
    };
    assert_eq!(likely_cause, &LikelyCause::PowerDnsUnreachableOrCredentials);
    assert_eq!(missing.len(), 1);
    assert!(
        matches!(&missing[0].1, Verdict::Unchecked { reason } if reason.contains("credentials wrong"))
    );
    let shown = format!("{err}\n{err:?}\n{:?}", events.lock().unwrap());
    assert!(
        shown.contains("PowerDNS unreachable or credentials wrong"),
        "{shown}"
    );
    assert!(!shown.contains(&wrong), "the wrong key leaked: {shown}");
    assert!(!shown.contains(&world.pdns_api_key), "the real key leaked");

    // A key variable that is not set is bad input (exit 3), named without a value.
    let (unset, _dir2) = sovereign(
        &world,
        |t| {
            t.replace(
                "apiKeyEnv: PDNS_API_KEY",
                "apiKeyEnv: CATALYST_DNS_TEST_NEVER_SET",
            )
        },
        "",
    );
    let Err(err) = dns::Verifier::new(&unset.spec.verify) else {
        panic!("a verifier without its key");
    };
    assert_eq!(err.exit(), Exit::BadInput, "{err}");
    assert!(
        err.to_string().contains("CATALYST_DNS_TEST_NEVER_SET"),
        "{err}"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_name_owned_by_another_owner_is_reported_and_left_alone() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-other").await;
    let host = format!("{}.{}", unique("taken"), world.pdns_zone);
    lb_service(&client, &ns, "web", &host, "192.0.2.85").await;
    let pdns = world.pdns();
    let other = r#""heritage=external-dns,external-dns/owner=someone-else,external-dns/resource=service/x/y""#;
    pdns.replace_rrset(&world.pdns_zone, &format!("{host}."), "A", &["192.0.2.99"])
        .await;
    pdns.replace_rrset(
        &world.pdns_zone,
        &format!("_externaldns.a-{host}."),
        "TXT",
        &[other],
    )
    .await;

    let (sov, _dir) = sovereign(&world, |t| t, "");
    let (opts, _) = options(&ns, Duration::from_secs(2));
    let err = dns::verify_until_synced(&client, &sov, &verifier(&sov), opts)
        .await
        .unwrap_err();
    let DnsError::NotSynced {
        missing,
        likely_cause,
        ..
    } = &err
    else {
        panic!("expected NotSynced, got {err:?}");
    };
    let owned = Verdict::OwnedByOther {
        owner: "someone-else".into(),
    };
    assert_eq!(missing, &[(format!("{host} A"), owned)]);
    assert_eq!(
        likely_cause,
        &LikelyCause::OwnedByOther {
            owner: "someone-else".into()
        }
    );
    assert_eq!(
        pdns.rrset(&world.pdns_zone, &format!("{host}."), "A").await,
        ["192.0.2.99"]
    );
    assert_eq!(
        pdns.rrset(&world.pdns_zone, &format!("_externaldns.a-{host}."), "TXT")
            .await,
        [other]
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_record_owned_in_the_old_txt_format_counts_as_owned() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-old").await;
    let host = format!("{}.{}", unique("legacy"), world.pdns_zone);
    lb_service(&client, &ns, "web", &host, "192.0.2.86").await;
    let pdns = world.pdns();
    let ours = format!(
        r#""heritage=external-dns,external-dns/owner=openova,external-dns/resource=service/{ns}/web""#
    );
    pdns.replace_rrset(&world.pdns_zone, &format!("{host}."), "A", &["192.0.2.86"])
        .await;
    // Only the v0.14-era name, without the type prefix.
    pdns.replace_rrset(
        &world.pdns_zone,
        &format!("_externaldns.{host}."),
        "TXT",
        &[&ours],
    )
    .await;

    let (sov, _dir) = sovereign(&world, |t| t, "");
    let (opts, _) = options(&ns, Duration::from_secs(20));
    let report = dns::verify_until_synced(&client, &sov, &verifier(&sov), opts)
        .await
        .expect("owned via the old format");
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.records[0].verdict, Verdict::Verified);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn ten_thousand_records_are_verified_with_one_zone_read() {
    let world = World::from_env();
    let zone = format!("{}.test", unique("big"));
    let ours = r#""heritage=external-dns,external-dns/owner=openova,external-dns/resource=service/ns/web""#;
    let mut rrsets = Vec::new();
    let mut records = Vec::new();
    for i in 0..10_000u32 {
        let host = format!("h{i}.{zone}");
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        rrsets.push(
            json!({"name": format!("{host}."), "type": "A", "ttl": 60, "changetype": "REPLACE",
            "records": [{"content": ip, "disabled": false}]}),
        );
        rrsets.push(
            json!({"name": format!("_externaldns.a-{host}."), "type": "TXT", "ttl": 60, "changetype": "REPLACE",
            "records": [{"content": ours, "disabled": false}]}),
        );
        records.push(ExpectedRecord {
            hostname: host,
            rtype: RecordType::A,
            targets: vec![ip],
            source: "service/ns/web".into(),
            zone: zone.clone(),
        });
    }
    let http = reqwest::Client::new();
    let zones_url = format!("{}/api/v1/servers/localhost/zones", world.pdns_api_url);
    let writing = crate::support::pdns_writing().await;
    let resp = http
        .post(&zones_url)
        .header("X-API-Key", &world.pdns_api_key)
        .json(&json!({"name": format!("{zone}."), "kind": "Native", "nameservers": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    // PowerDNS caps request bodies (webserver-max-bodysize, 2 MB): load in slices.
    for chunk in rrsets.chunks(2_000) {
        let resp = http
            .patch(format!("{zones_url}/{zone}."))
            .header("X-API-Key", &world.pdns_api_key)
            .json(&json!({"rrsets": chunk}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            204,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
    drop(writing);

    let (sov, _dir) = sovereign(&world, |t| t, "");
    let key = dns::ApiKey::from_verify(&sov.spec.verify).unwrap();
    let pdns = PdnsClient::new(&sov.spec.verify, key).unwrap();
    let verdicts = dns::check_records(&pdns, &records, "openova", "_externaldns.")
        .await
        .unwrap();
    assert_eq!(verdicts.len(), 10_000);
    assert!(verdicts.iter().all(|v| *v == Verdict::Verified));
    assert_eq!(pdns.zone_reads(), 1, "one GET for the whole zone");

    // A zone PowerDNS does not have is a clear error.
    let mut absent = records[0].clone();
    absent.zone = format!("{}.test", unique("absent"));
    let err = dns::check_records(&pdns, &[absent], "openova", "_externaldns.")
        .await
        .unwrap_err();
    assert!(matches!(err, dns::PdnsError::ZoneNotFound { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let _ = http
        .delete(format!("{zones_url}/{zone}."))
        .header("X-API-Key", &world.pdns_api_key)
        .send()
        .await;
}

#[tokio::test]
async fn ingresses_and_accepted_routes_are_expected_only_when_their_sources_are_on() {
    let world = World::from_env();
    let client = world.kube().await;
    let ns = namespace(&client, "dns-routes").await;
    let zone = &world.pdns_zone;
    let gvk = |kind| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.networking.k8s.io",
            "v1",
            kind,
        ))
    };
    let create = |res: ApiResource, obj: serde_json::Value| {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &res);
        async move {
            let o: DynamicObject = serde_json::from_value(obj).unwrap();
            let name = o.metadata.name.clone().unwrap();
            let status = o.data.get("status").cloned();
            api.create(&PostParams::default(), &o)
                .await
                .expect("create");
            if let Some(status) = status {
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .expect("status");
            }
        }
    };
    create(gvk("Gateway"), json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": "x", "listeners": [{"name": "web", "port": 80, "protocol": "HTTP", "hostname": format!("*.{zone}")}]},
        "status": {"addresses": [{"type": "IPAddress", "value": "192.0.2.90"}]}
    })).await;
    let accepted = |name: &str| {
        json!([{"parentRef": {"name": name}, "controllerName": "example.com/gw",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}])
    };
    let (ok_host, deep_host, refused_host) = (unique("route"), unique("a.deep"), unique("refused"));
    create(gvk("HTTPRoute"), json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "ok"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [format!("{ok_host}.{zone}"), format!("{deep_host}.{zone}")]},
        "status": {"parents": accepted("gw")}
    })).await;
    create(gvk("HTTPRoute"), json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "unaccepted"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [format!("{refused_host}.{zone}")]}
    })).await;
    let ingress_host = format!("{}.{zone}", unique("ing"));
    create(
        ApiResource::from_gvk(&GroupVersionKind::gvk("networking.k8s.io", "v1", "Ingress")),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "ing"},
            "spec": {"rules": [{"host": ingress_host}, {"host": "outside.example.org"}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.net"}]}}
        }),
    )
    .await;

    let policy = catalyst_bootstrap::retry::RetryPolicy::default();
    let scope = Scope {
        namespace: Some(ns.clone()),
    };
    // The template's sources: gateway-httproute, gateway-grpcroute, service (no ingress).
    let (sov, _dir) = sovereign(&world, |t| t, "");
    let derived = dns::expected_records_in(&client, &sov, &policy, &scope)
        .await
        .unwrap();
    // What the proof watches for a change: every source kind listed, and the routes'
    // Gateways, from the first list's resource version.
    let watched: Vec<&str> = derived.sources.iter().map(|r| r.plural.as_str()).collect();
    assert_eq!(
        watched,
        ["services", "httproutes", "grpcroutes", "gateways"]
    );
    assert!(derived.resource_version.is_some() && !derived.unserved);
    let got = derived.records;
    let summary: Vec<(String, RecordType, Vec<String>, String)> = got
        .into_iter()
        .map(|r| (r.hostname, r.rtype, r.targets, r.source))
        .collect();
    assert_eq!(
        summary,
        [(
            format!("{ok_host}.{zone}"),
            RecordType::A,
            vec!["192.0.2.90".to_owned()],
            format!("httproute/{ns}/ok")
        )],
        "the unaccepted route and the two-label name outside the *. listener are left out"
    );
    let (sov, _dir) = sovereign(&world, |t| t, "  externalDns:\n    sources: [ingress]\n");
    let got = dns::expected_records_in(&client, &sov, &policy, &scope)
        .await
        .unwrap()
        .records;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (
            got[0].hostname.as_str(),
            got[0].rtype,
            got[0].targets.as_slice(),
            got[0].source.as_str()
        ),
        (
            ingress_host.as_str(),
            RecordType::Cname,
            ["lb.example.net".to_owned()].as_slice(),
            format!("ingress/{ns}/ing").as_str()
        )
    );
    delete_namespace(&client, &ns).await;
}
