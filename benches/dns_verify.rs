//! DNS proof speed: 10,000 expected records judged against a PowerDNS zone of 10,000
//! rrsets (plus their ownership TXT records). `compare` times the judgement alone on a
//! zone already read; `read_and_compare` adds reading the zone's JSON through the real
//! PowerDNS client from a loopback server, as one round of the proof does.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpListener;

use catalyst_bootstrap::dns::expected::{ExpectedRecord, RecordType};
use catalyst_bootstrap::dns::pdns::{ApiKey, PdnsClient, Zone, fqdn};
use catalyst_bootstrap::dns::{self, Verdict, txt};
use catalyst_bootstrap::spec::Verify;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const RECORDS: usize = 10_000;
const ZONE: &str = "sovereign.test";
const OWNER: &str = "openova";
const PREFIX: &str = "_externaldns.";

/// Every fourth record a CNAME, the rest A records with two addresses.
fn expected() -> Vec<ExpectedRecord> {
    (0..RECORDS)
        .map(|i| {
            let (rtype, targets) = if i % 4 == 0 {
                (RecordType::Cname, vec![format!("lb-{i}.elb.example.net")])
            } else {
                let (a, b) = (i / 250, i % 250);
                (
                    RecordType::A,
                    vec![format!("10.{a}.{b}.1"), format!("10.{a}.{b}.2")],
                )
            };
            ExpectedRecord {
                hostname: format!("host-{i}.{ZONE}"),
                rtype,
                targets,
                source: format!("service/apps/host-{i}"),
                zone: ZONE.to_owned(),
            }
        })
        .collect()
}

/// The zone as PowerDNS's API returns it: each record and its new-format ownership TXT.
fn zone_json(records: &[ExpectedRecord]) -> Value {
    let mut rrsets = Vec::with_capacity(records.len() * 2);
    for rec in records {
        let rtype = rec.rtype.as_str();
        let contents: Vec<String> = match rec.rtype {
            RecordType::Cname => rec.targets.iter().map(|t| fqdn(t)).collect(),
            _ => rec.targets.clone(),
        };
        rrsets.push(json!({
            "name": fqdn(&rec.hostname), "type": rtype, "ttl": 300,
            "records": contents.iter().map(|c| json!({"content": c, "disabled": false})).collect::<Vec<_>>(),
        }));
        let owner = format!(
            "\"heritage=external-dns,external-dns/owner={OWNER},external-dns/resource={}\"",
            rec.source
        );
        rrsets.push(json!({
            "name": fqdn(&txt::new_txt_name(PREFIX, &rec.hostname, rtype)), "type": "TXT", "ttl": 300,
            "records": [{"content": owner, "disabled": false}],
        }));
    }
    json!({"name": fqdn(ZONE), "kind": "Native", "rrsets": rrsets})
}

/// The same zone as the client's read of it.
fn zone(json: &Value) -> Zone {
    let mut zone = Zone::default();
    for rrset in json["rrsets"].as_array().expect("rrsets") {
        let contents = rrset["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["content"].as_str().expect("content").to_owned())
            .collect();
        zone.rrsets.insert(
            (
                rrset["name"].as_str().expect("name").to_owned(),
                rrset["type"].as_str().expect("type").to_owned(),
            ),
            contents,
        );
    }
    zone
}

/// Serves `body` to every request on a loopback port, one connection per request.
fn serve(body: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

fn benches(c: &mut Criterion) {
    let records = expected();
    let json = zone_json(&records);
    let read = zone(&json);
    let all_verified = |verdicts: &[Verdict]| verdicts.iter().all(|v| *v == Verdict::Verified);
    assert!(all_verified(
        &records
            .iter()
            .map(|r| dns::check_record(&read, r, OWNER, PREFIX))
            .collect::<Vec<_>>()
    ));

    let mut group = c.benchmark_group("verify_10000_records");
    group.sample_size(20);
    group.bench_function("compare", |b| {
        b.iter(|| {
            for rec in &records {
                black_box(dns::check_record(black_box(&read), rec, OWNER, PREFIX));
            }
        })
    });

    let port = serve(serde_json::to_vec(&json).expect("zone JSON"));
    let key_file = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key_file.path(), "bench-key").expect("write key");
    let verify = Verify {
        api_url: format!("http://127.0.0.1:{port}"),
        server_id: "localhost".into(),
        api_key_env: None,
        api_key_file: Some(key_file.path().display().to_string()),
        nameserver: None,
        hostnames: Vec::new(),
        metrics_url: String::new(),
    };
    let client = PdnsClient::new(&verify, ApiKey::from_verify(&verify).expect("key"))
        .expect("PowerDNS client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    group.bench_function("read_and_compare", |b| {
        b.iter(|| {
            let verdicts = runtime
                .block_on(dns::check_records(&client, &records, OWNER, PREFIX))
                .expect("zone read");
            assert!(all_verified(&verdicts));
        })
    });
    group.finish();
}

criterion_group!(dns_benches, benches);
criterion_main!(dns_benches);
