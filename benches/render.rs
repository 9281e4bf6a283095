//! Rendering speed: one kit, and the kits of 1,000 Sovereigns. Specs are loaded and
//! validated outside the timed part; the figure is the renderer's own.

use std::hint::black_box;
use std::path::Path;

use catalyst_bootstrap::render;
use catalyst_bootstrap::spec::{self, Sovereign};
use criterion::{Criterion, criterion_group, criterion_main};

/// A pdns Sovereign like the test world's, named `name` with zone `domain`.
fn spec_text(name: &str, domain: &str) -> String {
    format!(
        "apiVersion: catalyst.openova.io/v1alpha1
kind: Sovereign
metadata:
  name: {name}
spec:
  domain: {domain}
  cni: cilium
  dns:
    provider: pdns
    pdns:
      apiUrl: http://powerdns.powerdns.svc:8081
      serverId: localhost
      apiKeySecretRef:
        name: powerdns-api
        key: api-key
  verify:
    apiUrl: http://127.0.0.1:8081
    serverId: localhost
    apiKeyEnv: PDNS_API_KEY
"
    )
}

fn load(dir: &Path, name: &str, domain: &str) -> Sovereign {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, spec_text(name, domain)).expect("write spec");
    spec::load(&path, None).expect("valid spec").sovereign
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = load(dir.path(), "local", "sovereign.test");
    c.bench_function("render_one_kit", |b| {
        b.iter(|| render::render(black_box(&one)).expect("render"))
    });

    let many: Vec<Sovereign> = (0..1000)
        .map(|i| {
            load(
                dir.path(),
                &format!("s{i:04}"),
                &format!("s{i:04}.openova.io"),
            )
        })
        .collect();
    let mut group = c.benchmark_group("render_1000_sovereigns");
    group.sample_size(10);
    group.bench_function("render_1000_sovereigns", |b| {
        b.iter(|| {
            for sovereign in &many {
                black_box(render::render(sovereign).expect("render"));
            }
        })
    });
    group.finish();
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
