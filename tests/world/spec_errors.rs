//! Bad input through the real binary: each malformed spec must exit 3, name the field (and
//! where it is, when that is known) on stderr, and write nothing to stdout.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::cargo_bin_cmd;

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/clusters/_template/sovereign.yaml"
);

/// A valid spec; every case below breaks one thing in it. Line numbers in the cases
/// refer to this text.
const BASE: &str = "\
apiVersion: catalyst.openova.io/v1alpha1
kind: Sovereign
metadata:
  name: example
spec:
  domain: example.openova.io
  cni: cilium
  externalDns:
    interval: 1m
    probes:
      liveness:
        initialDelaySeconds: 180
  dns:
    provider: pdns
    pdns:
      apiUrl: http://powerdns.powerdns.svc:8081
      apiKeySecretRef:
        name: powerdns-api
        key: api-key
  verify:
    apiKeyEnv: PDNS_API_KEY
    nameserver: 127.0.0.1:53
";

/// BASE with `from` replaced by `to`; `from` must occur exactly once.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "`{from}` must occur once in BASE"
    );
    BASE.replace(from, to)
}

/// BASE with `lines` inserted after the line that is exactly `after`.
fn insert(after: &str, lines: &str) -> String {
    edit(&format!("{after}\n"), &format!("{after}\n{lines}\n"))
}

enum Input {
    Missing,
    Text(String),
}

struct Case {
    name: &'static str,
    spec: Input,
    /// Replaces the repository's defaults file for this case.
    defaults: Option<String>,
    /// Substrings stderr must contain, typically `sovereign.yaml:LINE:COL: field.path`.
    expect: Vec<&'static str>,
    /// Substrings stderr must not contain (credentials must never be echoed).
    forbid: Vec<&'static str>,
}

fn case(name: &'static str, spec: String, expect: &[&'static str]) -> Case {
    Case {
        name,
        spec: Input::Text(spec),
        defaults: None,
        expect: expect.to_vec(),
        forbid: Vec::new(),
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "missing file",
            spec: Input::Missing,
            defaults: None,
            expect: vec!["sovereign.yaml: cannot read the file"],
            forbid: vec![],
        },
        case(
            "empty file",
            String::new(),
            &["sovereign.yaml: the file is empty"],
        ),
        case(
            "comment-only file",
            "# nothing here yet\n\n# still nothing\n".into(),
            &["sovereign.yaml: the file holds no YAML document, only comments"],
        ),
        case(
            "syntax error",
            edit("  cni: cilium", "  cni: [cilium"),
            &["sovereign.yaml:8:14: YAML syntax error"],
        ),
        case(
            "duplicate key",
            insert("  cni: cilium", "  cni: calico"),
            &["sovereign.yaml:8:3: YAML syntax error: duplicate mapping key"],
        ),
        case(
            "document is a list",
            "- apiVersion: catalyst.openova.io/v1alpha1\n".into(),
            &["sovereign.yaml:1:1: the document is not a mapping"],
        ),
        case(
            "wrong apiVersion",
            edit(
                "catalyst.openova.io/v1alpha1",
                "catalyst.openova.io/v1beta1",
            ),
            &["sovereign.yaml:1:13: apiVersion: unsupported apiVersion"],
        ),
        case(
            "missing apiVersion",
            edit("apiVersion: catalyst.openova.io/v1alpha1\n", ""),
            &["sovereign.yaml:1:1: apiVersion: is required but missing"],
        ),
        case(
            "wrong kind",
            edit("kind: Sovereign", "kind: Sovereigns"),
            &["sovereign.yaml:2:7: kind: unsupported kind `Sovereigns`; expected `Sovereign`"],
        ),
        case(
            "bad label key",
            insert("  name: example", "  labels:\n    Shard.Example/key: a"),
            &[
                "sovereign.yaml:5:3: metadata.labels.Shard.Example/key: `Shard.Example/key` is not a Kubernetes label key",
            ],
        ),
        case(
            "label value not a string",
            insert("  name: example", "  labels:\n    tier: 1"),
            &["sovereign.yaml:6:11: metadata.labels.tier: found the number 1"],
        ),
        case(
            "bad label value",
            insert("  name: example", "  labels:\n    tier: -gold-"),
            &["metadata.labels.tier: `-gold-` is not a Kubernetes label value"],
        ),
        case(
            "label overriding the tool's own",
            insert(
                "  name: example",
                "  labels:\n    catalyst.openova.io/sovereign: other\n    applyset.kubernetes.io/part-of: x",
            ),
            &[
                "metadata.labels.catalyst.openova.io/sovereign: `catalyst.openova.io/sovereign` is a label catalyst-bootstrap sets itself",
                "metadata.labels.applyset.kubernetes.io/part-of: `applyset.kubernetes.io/part-of` is a label catalyst-bootstrap sets itself",
            ],
        ),
        case(
            "bad metadata.name",
            edit("name: example", "name: Example_1"),
            &["sovereign.yaml:4:9: metadata.name: `Example_1` is not a valid name"],
        ),
        case(
            "missing metadata.name",
            edit("metadata:\n  name: example\n", "metadata: {}\n"),
            &["sovereign.yaml:3:1: metadata.name: is required but missing"],
        ),
        case(
            "unknown field with suggestion",
            edit("initialDelaySeconds: 180", "intialDelaySeconds: 180"),
            &[
                "sovereign.yaml:12:9: spec.externalDns.probes.liveness.intialDelaySeconds: \
                 unknown field `intialDelaySeconds`, did you mean `initialDelaySeconds`?",
            ],
        ),
        case(
            "unknown field without suggestion",
            insert("  cni: cilium", "  replicas: 3"),
            &["sovereign.yaml:8:3: spec.replicas: unknown field `replicas`; expected one of"],
        ),
        case(
            "bad domain",
            edit("domain: example.openova.io", "domain: example"),
            &["sovereign.yaml:6:11: spec.domain: `example` is not a domain name"],
        ),
        case(
            "bad domain filter",
            insert(
                "    interval: 1m",
                "    domainFilters: [openova.io, bad_domain.io]",
            ),
            &["sovereign.yaml:10:33: spec.externalDns.domainFilters[1]: `bad_domain.io`"],
        ),
        case(
            "bad cni name",
            edit("cni: cilium", "cni: Cilium!"),
            &["sovereign.yaml:7:8: spec.cni: `Cilium!` is not a valid name"],
        ),
        case(
            "bad duration",
            edit("interval: 1m", "interval: 1 minute"),
            &[
                "sovereign.yaml:9:15: spec.externalDns.interval: `1 minute` is not a positive duration; expected a Go duration",
            ],
        ),
        case(
            "zero duration",
            insert("    interval: 1m", "    requestTimeout: 0s"),
            &[
                "sovereign.yaml:10:21: spec.externalDns.requestTimeout: `0s` is not a positive duration",
            ],
        ),
        case(
            "bad version pin",
            insert("  externalDns:", "    version: 0.22.0"),
            &[
                "sovereign.yaml:9:14: spec.externalDns.version: `0.22.0` is not a release pin; expected `vMAJOR.MINOR.PATCH`",
            ],
        ),
        case(
            "version YAML reads as a number",
            insert("  externalDns:", "    version: 0.22"),
            &[
                "sovereign.yaml:9:14: spec.externalDns.version: found the number 0.22",
                "put it in quotes",
            ],
        ),
        case(
            "bad chart version",
            insert("  externalDns:", "    chart: {version: latest}"),
            &[
                "sovereign.yaml:9:22: spec.externalDns.chart.version: `latest` is not a semantic version",
            ],
        ),
        case(
            "bad chart repository scheme",
            insert(
                "  externalDns:",
                "    chart: {repository: \"ftp://charts.example.io\"}",
            ),
            &[
                "spec.externalDns.chart.repository: `ftp://charts.example.io` has an unsupported scheme; expected a URL starting with http:// or https:// or oci://",
            ],
        ),
        case(
            "bad values key",
            insert("  externalDns:", "    chart: {valuesKey: \"external dns\"}"),
            &["spec.externalDns.chart.valuesKey: `external dns` is not a Helm values key"],
        ),
        case(
            "bad namespace",
            insert("  externalDns:", "    namespace: External_DNS"),
            &[
                "sovereign.yaml:9:16: spec.externalDns.namespace: `External_DNS` is not a valid name",
            ],
        ),
        case(
            "bad policy",
            insert("  externalDns:", "    policy: delete-everything"),
            &[
                "sovereign.yaml:9:13: spec.externalDns.policy: unknown value `delete-everything`; expected one of `sync`, `upsert-only`, `create-only`",
            ],
        ),
        case(
            "unknown source",
            insert("  externalDns:", "    sources: [service, ingres]"),
            &[
                "sovereign.yaml:9:24: spec.externalDns.sources[1]: unknown external-dns source `ingres`, did you mean `ingress`?",
            ],
        ),
        case(
            "duplicate source",
            insert("  externalDns:", "    sources: [service, service]"),
            &["spec.externalDns.sources[1]: `service` is listed twice"],
        ),
        case(
            "empty sources",
            insert("  externalDns:", "    sources: []"),
            &["spec.externalDns.sources: no sources given"],
        ),
        case(
            "bad annotation prefix",
            insert(
                "  externalDns:",
                "    annotationPrefix: external-dns.alpha.kubernetes.io",
            ),
            &[
                "spec.externalDns.annotationPrefix: `external-dns.alpha.kubernetes.io` is not an annotation prefix",
            ],
        ),
        case(
            "annotation prefix the pinned release cannot take",
            insert(
                "  externalDns:",
                "    version: v0.19.0\n    annotationPrefix: external-dns.kubernetes.io/",
            ),
            &[
                "spec.externalDns.annotationPrefix: external-dns v0.19.0 has no --annotation-prefix flag",
            ],
        ),
        case(
            "zero period",
            insert(
                "        initialDelaySeconds: 180",
                "        periodSeconds: 0",
            ),
            &[
                "sovereign.yaml:13:24: spec.externalDns.probes.liveness.periodSeconds: 0 is not allowed; expected a whole number of at least 1",
            ],
        ),
        case(
            "negative probe delay",
            edit("initialDelaySeconds: 180", "initialDelaySeconds: -5"),
            &[
                "sovereign.yaml:12:30: spec.externalDns.probes.liveness.initialDelaySeconds: the number -5 is out of range",
            ],
        ),
        case(
            "probe delay is not a number",
            edit("initialDelaySeconds: 180", "initialDelaySeconds: soon"),
            &[
                "sovereign.yaml:12:30: spec.externalDns.probes.liveness.initialDelaySeconds: found a string; expected a whole number",
            ],
        ),
        case(
            "bad quantity",
            insert(
                "  externalDns:",
                "    resources: {requests: {memory: 64MB}}",
            ),
            &[
                "spec.externalDns.resources.requests.memory: `64MB` is not a positive Kubernetes quantity",
            ],
        ),
        case(
            "request above limit",
            insert(
                "  externalDns:",
                "    resources: {requests: {memory: 512Mi}}",
            ),
            &["spec.externalDns.resources.requests.memory: the memory request is above its limit"],
        ),
        case(
            "unknown provider",
            edit("provider: pdns", "provider: powerdns"),
            &[
                "sovereign.yaml:14:15: spec.dns.provider: unknown value `powerdns`; expected one of `pdns`, `webhook`",
            ],
        ),
        case(
            "other provider's block present",
            insert(
                "        key: api-key",
                "    cloudflare:\n      apiTokenSecretRef: {name: cf, key: token}",
            ),
            &[
                "sovereign.yaml:20:5: spec.dns.cloudflare: a `cloudflare` block is set but spec.dns.provider is `pdns`",
            ],
        ),
        case(
            "missing provider block",
            edit("provider: pdns", "provider: aws"),
            &[
                "spec.dns.aws: spec.dns.provider is `aws` but there is no `aws` block",
                "spec.dns.pdns: a `pdns` block is set but spec.dns.provider is `aws`",
            ],
        ),
        case(
            "missing secret reference",
            edit(
                "      apiKeySecretRef:\n        name: powerdns-api\n        key: api-key\n",
                "",
            ),
            &["sovereign.yaml:15:5: spec.dns.pdns.apiKeySecretRef: is required but missing"],
        ),
        case(
            "missing provider field",
            edit("      apiUrl: http://powerdns.powerdns.svc:8081\n", ""),
            &["spec.dns.pdns.apiUrl: is required but missing"],
        ),
        Case {
            name: "literal credential",
            spec: Input::Text(insert(
                "      apiUrl: http://powerdns.powerdns.svc:8081",
                "      apiKey: hunter2-s3cret",
            )),
            defaults: None,
            expect: vec![
                "sovereign.yaml:17:7: spec.dns.pdns.apiKey: a literal credential is refused",
                "`...SecretRef`",
                "expected a reference instead: `apiKeySecretRef`",
            ],
            forbid: vec!["hunter2"],
        },
        Case {
            name: "credential in a URL",
            spec: Input::Text(edit(
                "http://powerdns.powerdns.svc:8081",
                "http://admin:hunter2@powerdns.powerdns.svc:8081",
            )),
            defaults: None,
            expect: vec!["sovereign.yaml:16:15: spec.dns.pdns.apiUrl: the URL carries credentials"],
            forbid: vec!["hunter2"],
        },
        case(
            "bad secret name",
            edit("name: powerdns-api", "name: PowerDNS_API"),
            &[
                "sovereign.yaml:18:15: spec.dns.pdns.apiKeySecretRef.name: `PowerDNS_API` is not a Secret name",
            ],
        ),
        case(
            "bad secret key",
            edit("key: api-key", "key: api key"),
            &[
                "sovereign.yaml:19:14: spec.dns.pdns.apiKeySecretRef.key: `api key` is not a Secret key",
            ],
        ),
        case(
            "bad URL",
            edit(
                "http://powerdns.powerdns.svc:8081",
                "powerdns.powerdns.svc:8081",
            ),
            &[
                "sovereign.yaml:16:15: spec.dns.pdns.apiUrl: `powerdns.powerdns.svc:8081` is not a URL",
            ],
        ),
        case(
            "webhook port taken by metrics",
            edit(
                "    provider: pdns\n    pdns:\n      apiUrl: http://powerdns.powerdns.svc:8081\n",
                "    provider: webhook\n    webhook:\n      image: {repository: ghcr.io/x/pdns-webhook, tag: v1.0.0}\n      port: 7979\n      apiUrl: http://powerdns.powerdns.svc:8081\n",
            ),
            &["sovereign.yaml:17:13: spec.dns.webhook.port: 7979 is taken in the pod"],
        ),
        case(
            "bad AWS region",
            edit(
                "    provider: pdns\n    pdns:\n      apiUrl: http://powerdns.powerdns.svc:8081\n      apiKeySecretRef:\n        name: powerdns-api\n        key: api-key\n",
                "    provider: aws\n    aws:\n      region: Frankfurt\n      credentialsSecretRef: {name: route53, accessKeyIdKey: id, secretAccessKeyKey: key}\n",
            ),
            &["sovereign.yaml:16:15: spec.dns.aws.region: `Frankfurt` is not an AWS region"],
        ),
        case(
            "bad Azure subscription id",
            edit(
                "    provider: pdns\n    pdns:\n      apiUrl: http://powerdns.powerdns.svc:8081\n      apiKeySecretRef:\n        name: powerdns-api\n        key: api-key\n",
                "    provider: azure\n    azure:\n      subscriptionId: my-subscription\n      resourceGroup: dns\n      configSecretRef: {name: azure, key: azure.json}\n",
            ),
            &[
                "sovereign.yaml:16:23: spec.dns.azure.subscriptionId: `my-subscription` is not a subscription id",
            ],
        ),
        case(
            "bad nameserver",
            edit("nameserver: 127.0.0.1:53", "nameserver: localhost:53"),
            &[
                "sovereign.yaml:22:17: spec.verify.nameserver: `localhost:53` is not an ip:port address",
            ],
        ),
        case(
            "both apiKeyEnv and apiKeyFile",
            insert(
                "    apiKeyEnv: PDNS_API_KEY",
                "    apiKeyFile: /run/secrets/pdns-api-key",
            ),
            &[
                "sovereign.yaml:22:17: spec.verify.apiKeyFile: both apiKeyEnv and apiKeyFile are set",
            ],
        ),
        case(
            "neither apiKeyEnv nor apiKeyFile",
            edit("apiKeyEnv: PDNS_API_KEY", "apiKeyEnv: null"),
            &["spec.verify.apiKeyEnv: neither apiKeyEnv nor apiKeyFile is set"],
        ),
        case(
            "relative apiKeyFile",
            edit("apiKeyEnv: PDNS_API_KEY", "apiKeyFile: secrets/key"),
            &[
                "sovereign.yaml:21:17: spec.verify.apiKeyFile: `secrets/key` is not an absolute path",
            ],
        ),
        case(
            "hostname outside the zones",
            insert(
                "    nameserver: 127.0.0.1:53",
                "    hostnames: [api.example.com]",
            ),
            &[
                "sovereign.yaml:23:17: spec.verify.hostnames[0]: `api.example.com` is outside the zones",
            ],
        ),
        case(
            "bad metrics URL",
            insert(
                "    nameserver: 127.0.0.1:53",
                "    metricsUrl: \"localhost:7979/metrics\"",
            ),
            &["spec.verify.metricsUrl: `localhost:7979/metrics` is not a URL"],
        ),
        case(
            "every problem is reported at once",
            edit("domain: example.openova.io", "domain: example")
                .replace("interval: 1m", "interval: 1x")
                .replace("initialDelaySeconds: 180", "initialDelaySecs: 180")
                .replace("127.0.0.1:53", "nowhere"),
            &[
                "sovereign.yaml:6:11: spec.domain",
                "sovereign.yaml:9:15: spec.externalDns.interval",
                "sovereign.yaml:12:9: spec.externalDns.probes.liveness.initialDelaySecs",
                "sovereign.yaml:22:17: spec.verify.nameserver",
            ],
        ),
        case(
            "values refused while decoding do not hide the others",
            insert("  externalDns:", "    version: v0.22")
                .replace("http://powerdns.powerdns.svc:8081", "ftp://powerdns")
                .replace("127.0.0.1:53", "nowhere")
                .replace("domain: example.openova.io", "domain: example"),
            &[
                "sovereign.yaml:6:11: spec.domain",
                "sovereign.yaml:9:14: spec.externalDns.version: `v0.22` is not a release pin; expected `vMAJOR.MINOR.PATCH`",
                "spec.dns.pdns.apiUrl: `ftp://powerdns` has an unsupported scheme; expected a URL starting with http:// or https://",
                "sovereign.yaml:23:17: spec.verify.nameserver: `nowhere` is not an ip:port address; expected an IP address and port",
            ],
        ),
        Case {
            name: "invalid defaults file",
            spec: Input::Text(BASE.to_owned()),
            defaults: Some(
                std::fs::read_to_string(TEMPLATE)
                    .unwrap()
                    .replace("    interval: 1m\n", "    intervall: 1m\n"),
            ),
            expect: vec![
                "defaults.yaml:",
                "spec.externalDns.intervall: unknown field `intervall`, did you mean `interval`?",
            ],
            forbid: vec![],
        },
        Case {
            name: "value from the defaults file is located there",
            spec: Input::Text(BASE.to_owned()),
            defaults: Some(
                std::fs::read_to_string(TEMPLATE)
                    .unwrap()
                    .replace("txtOwnerId: openova", "txtOwnerId: \"open ova\""),
            ),
            expect: vec!["defaults.yaml:", "spec.externalDns.txtOwnerId: `open ova`"],
            forbid: vec!["sovereign.yaml:"],
        },
        Case {
            name: "empty defaults file",
            spec: Input::Text(BASE.to_owned()),
            defaults: Some(String::new()),
            expect: vec!["defaults.yaml: the file is empty"],
            forbid: vec![],
        },
    ]
}

/// Lays a case out as clusters/x/sovereign.yaml (+ defaults.yaml) in a fresh directory.
fn lay_out(case: &Case, dir: &Path) -> (PathBuf, PathBuf) {
    let spec = dir.join("clusters/x/sovereign.yaml");
    std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
    if let Input::Text(text) = &case.spec {
        std::fs::write(&spec, text).unwrap();
    }
    let defaults = match &case.defaults {
        Some(text) => {
            let path = dir.join("defaults.yaml");
            std::fs::write(&path, text).unwrap();
            path
        }
        None => PathBuf::from(TEMPLATE),
    };
    (spec, defaults)
}

fn render(spec: &Path, defaults: &Path, extra: &[&str]) -> Output {
    cargo_bin_cmd!("catalyst-bootstrap")
        .arg("render")
        .arg("--spec")
        .arg(spec)
        .arg("--defaults")
        .arg(defaults)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_base_spec_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let base = case("base", BASE.to_owned(), &[]);
    let (spec, defaults) = lay_out(&base, dir.path());
    let out = render(&spec, &defaults, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Renders one case: exit 3, nothing on stdout, every expected message on stderr, nothing
/// forbidden, every line an `error: ` line.
fn check(name: &str) {
    let case = cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case named {name:?}"));
    let dir = tempfile::tempdir().unwrap();
    let (spec, defaults) = lay_out(&case, dir.path());
    let out = render(&spec, &defaults, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(3) {
        problems.push(format!("exit code {:?}, expected 3", out.status.code()));
    }
    if !out.stdout.is_empty() {
        problems.push("stdout is not empty".to_owned());
    }
    for expected in &case.expect {
        if !stderr.contains(expected) {
            problems.push(format!("stderr lacks `{expected}`"));
        }
    }
    for forbidden in &case.forbid {
        if stderr.contains(forbidden) {
            problems.push(format!("stderr contains `{forbidden}`"));
        }
    }
    if !stderr.lines().all(|l| l.starts_with("error: ")) {
        problems.push("every stderr line must start with `error: `".to_owned());
    }
    assert!(
        problems.is_empty(),
        "{name}:\n  {}\n  stderr: {stderr}",
        problems.join("\n  ")
    );
}

/// Bad input exits 3 naming the field and writes nothing: one test per case of
/// [`cases`], each runnable alone (`cargo test --test spec_errors bad_nameserver`).
macro_rules! one_test_per_case {
    ($($test:ident: $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($name);
            }
        )*

        #[test]
        fn every_case_has_its_own_test() {
            let tested = [$($name),*];
            let all: Vec<&str> = cases().iter().map(|c| c.name).collect();
            assert_eq!(tested.as_slice(), all.as_slice());
        }
    };
}

one_test_per_case! {
    missing_file: "missing file",
    empty_file: "empty file",
    comment_only_file: "comment-only file",
    syntax_error: "syntax error",
    duplicate_key: "duplicate key",
    document_is_a_list: "document is a list",
    wrong_apiversion: "wrong apiVersion",
    missing_apiversion: "missing apiVersion",
    wrong_kind: "wrong kind",
    bad_label_key: "bad label key",
    label_value_not_a_string: "label value not a string",
    bad_label_value: "bad label value",
    label_overriding_the_tool_s_own: "label overriding the tool's own",
    bad_metadata_name: "bad metadata.name",
    missing_metadata_name: "missing metadata.name",
    unknown_field_with_suggestion: "unknown field with suggestion",
    unknown_field_without_suggestion: "unknown field without suggestion",
    bad_domain: "bad domain",
    bad_domain_filter: "bad domain filter",
    bad_cni_name: "bad cni name",
    bad_duration: "bad duration",
    zero_duration: "zero duration",
    bad_version_pin: "bad version pin",
    version_yaml_reads_as_a_number: "version YAML reads as a number",
    bad_chart_version: "bad chart version",
    bad_chart_repository_scheme: "bad chart repository scheme",
    bad_values_key: "bad values key",
    bad_namespace: "bad namespace",
    bad_policy: "bad policy",
    unknown_source: "unknown source",
    duplicate_source: "duplicate source",
    empty_sources: "empty sources",
    bad_annotation_prefix: "bad annotation prefix",
    annotation_prefix_the_pinned_release_cannot_take: "annotation prefix the pinned release cannot take",
    zero_period: "zero period",
    negative_probe_delay: "negative probe delay",
    probe_delay_is_not_a_number: "probe delay is not a number",
    bad_quantity: "bad quantity",
    request_above_limit: "request above limit",
    unknown_provider: "unknown provider",
    other_provider_s_block_present: "other provider's block present",
    missing_provider_block: "missing provider block",
    missing_secret_reference: "missing secret reference",
    missing_provider_field: "missing provider field",
    literal_credential: "literal credential",
    credential_in_a_url: "credential in a URL",
    bad_secret_name: "bad secret name",
    bad_secret_key: "bad secret key",
    bad_url: "bad URL",
    webhook_port_taken_by_metrics: "webhook port taken by metrics",
    bad_aws_region: "bad AWS region",
    bad_azure_subscription_id: "bad Azure subscription id",
    bad_nameserver: "bad nameserver",
    both_apikeyenv_and_apikeyfile: "both apiKeyEnv and apiKeyFile",
    neither_apikeyenv_nor_apikeyfile: "neither apiKeyEnv nor apiKeyFile",
    relative_apikeyfile: "relative apiKeyFile",
    hostname_outside_the_zones: "hostname outside the zones",
    bad_metrics_url: "bad metrics URL",
    every_problem_is_reported_at_once: "every problem is reported at once",
    values_refused_while_decoding_do_not_hide_the_others: "values refused while decoding do not hide the others",
    invalid_defaults_file: "invalid defaults file",
    value_from_the_defaults_file_is_located_there: "value from the defaults file is located there",
    empty_defaults_file: "empty defaults file",
}

/// What the loader says of a spec that is wrong in its shape: the kinds of error a JSON
/// Schema can state (unknown field, wrong type, missing field, a value outside an enum, a
/// number out of range, a provider block other than the chosen one).
const SHAPE_ERRORS: &[&str] = &[
    "unknown field",
    "found the number",
    "found a string",
    "unknown value",
    "unknown external-dns source",
    "is required but missing",
    "unsupported apiVersion",
    "unsupported kind",
    "is out of range",
    "is not allowed; expected a whole number",
    "block is set but spec.dns.provider",
];

/// The committed schema (`catalyst-bootstrap schema`) refuses every case of this corpus
/// that the loader refuses for its shape, and accepts the base spec: an editor shows the
/// same mistakes before the tool runs.
#[test]
fn the_schema_refuses_every_case_the_loader_refuses_for_its_shape() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/sovereign.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    let parse = |text: &str| serde_saphyr::from_str::<serde_json::Value>(text).ok();
    let base = parse(BASE).expect("BASE is YAML");
    let errors: Vec<String> = validator
        .iter_errors(&base)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "the schema refuses the base: {errors:?}");

    let mut tried = Vec::new();
    let mut failures = Vec::new();
    for case in cases() {
        let Input::Text(text) = &case.spec else {
            continue;
        };
        let shape = case
            .expect
            .iter()
            .any(|e| SHAPE_ERRORS.iter().any(|s| e.contains(s)));
        // Cases with defaults of their own test the defaults file, not the user's file.
        if !shape || case.defaults.is_some() {
            continue;
        }
        // Not YAML the schema could be applied to: the editor's YAML parser says so.
        let Some(doc) = parse(text) else {
            continue;
        };
        tried.push(case.name);
        if validator.is_valid(&doc) {
            failures.push(format!(
                "{}: the loader refuses it ({:?}), the schema accepts it",
                case.name, case.expect
            ));
        }
    }
    assert!(
        tried.len() >= 15,
        "only {} shape cases: {tried:?}",
        tried.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_input_leaves_the_output_directory_alone() {
    for case in cases().into_iter().take(12) {
        let dir = tempfile::tempdir().unwrap();
        let (spec, defaults) = lay_out(&case, dir.path());
        let out_dir = dir.path().join("kit");
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::write(out_dir.join("12-external-dns.yaml"), "previous\n").unwrap();
        let out = render(&spec, &defaults, &["--out", out_dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{}", case.name);
        let entries: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
        assert_eq!(entries.len(), 1, "{}: files were written", case.name);
        assert_eq!(
            std::fs::read_to_string(out_dir.join("12-external-dns.yaml")).unwrap(),
            "previous\n",
            "{}",
            case.name
        );
        let fresh = dir.path().join("fresh");
        let out = render(&spec, &defaults, &["--out", fresh.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{}", case.name);
        assert!(
            !fresh.exists(),
            "{}: the output directory was created",
            case.name
        );
    }
}

#[test]
fn a_short_liveness_delay_renders_with_a_warning_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let short = case(
        "short delay",
        edit("initialDelaySeconds: 180", "initialDelaySeconds: 30"),
        &[],
    );
    let (spec, defaults) = lay_out(&short, dir.path());
    let out = render(&spec, &defaults, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: ",
        ) && stderr.contains(
            "sovereign.yaml:12:30: spec.externalDns.probes.liveness.initialDelaySeconds: 30 s is below 60 s"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("cache sync") && stderr.contains("CrashLoopBackOff"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("initialDelaySeconds: 30\n"), "{stdout}");
}

#[test]
fn command_line_errors_exit_2() {
    let runs: [&[&str]; 5] = [
        &[],
        &["render"],
        &["render", "--spec"],
        &["render", "--spec", "x.yaml", "--bogus"],
        &["deploy"],
    ];
    for args in runs {
        let out = cargo_bin_cmd!("catalyst-bootstrap")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let help = cargo_bin_cmd!("catalyst-bootstrap")
        .args(["render", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--spec <FILE>"));
}
