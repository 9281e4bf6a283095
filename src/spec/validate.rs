//! Semantic checks of a decoded Sovereign. Every check runs, so one pass reports every
//! problem; the loader turns each field path into a file position.

use std::collections::{BTreeMap, HashSet};

use super::checker::Checker;
use super::formats::{self, SemVer};
use super::{
    API_VERSION, Aws, AwsCredentialsRef, Azure, Cloudflare, Dns, ExternalDns, Google, Hetzner,
    KIND, Pdns, Probe, Provider, ProviderKind, ResourceList, Sovereign, Verify, Webhook,
};
use crate::apply::{MANAGED_BY_LABEL, SOVEREIGN_LABEL};
use crate::external_dns::{
    ANNOTATION_PREFIX_FLAG_SINCE, KNOWN_SOURCES, LEGACY_ANNOTATION_PREFIX, METRICS_PORT,
    WEBHOOK_HEALTH_PORT,
};

/// Below this, a liveness probe can fire before external-dns's start-up cache sync, which
/// waits up to a hardcoded 60 s, has had its chance.
pub const CACHE_SYNC_SECONDS: u32 = 60;

/// A problem at a field path, before it is given a file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub problem: String,
    pub expected: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// Checks the decoded spec and, when it holds the chosen provider's block, gives the
/// loaded spec with that [`Provider`]; the report's errors say what is wrong otherwise.
pub fn validate(sovereign: Sovereign<Dns>) -> (Report, Option<Sovereign>) {
    let mut c = Checker::default();
    if sovereign.api_version != API_VERSION {
        c.error(
            "apiVersion",
            format!("unsupported apiVersion `{}`", sovereign.api_version),
            format!("`{API_VERSION}`"),
        );
    }
    if sovereign.kind != KIND {
        c.error(
            "kind",
            format!("unsupported kind `{}`", sovereign.kind),
            format!("`{KIND}`"),
        );
    }
    c.label("metadata.name", &sovereign.metadata.name, 63);
    labels(&mut c, &sovereign.metadata.labels);
    let spec = &sovereign.spec;
    c.domain("spec.domain", &spec.domain);
    c.label("spec.cni", &spec.cni, 63);
    external_dns(&mut c, &spec.external_dns, &spec.domain);
    let provider = dns(&mut c, spec.dns.clone());
    let mut zones = vec![spec.domain.as_str()];
    zones.extend(spec.external_dns.domain_filters.iter().map(String::as_str));
    verify(&mut c, &spec.verify, &zones);
    (c.report, provider.map(|p| sovereign.with_provider(p)))
}

/// Labels the tool sets itself; a spec may not override them.
const OWN_LABELS: [&str; 2] = [MANAGED_BY_LABEL, SOVEREIGN_LABEL];
/// The ApplySet convention reserves this prefix for the tool's ownership labels.
const APPLYSET_PREFIX: &str = "applyset.kubernetes.io/";

fn labels(c: &mut Checker, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        let path = format!("metadata.labels.{key}");
        if !formats::is_label_key(key) {
            c.error(
                &path,
                format!("`{key}` is not a Kubernetes label key"),
                "an optional DNS-subdomain prefix and `/`, then at most 63 letters, digits, \
                 `-`, `_` or `.`, starting and ending with a letter or digit \
                 (e.g. `sharding.fluxcd.io/key`)",
            );
        } else if OWN_LABELS.contains(&key.as_str()) || key.starts_with(APPLYSET_PREFIX) {
            c.error(
                &path,
                format!("`{key}` is a label catalyst-bootstrap sets itself"),
                format!(
                    "a key other than {} and the `{APPLYSET_PREFIX}` labels",
                    OWN_LABELS.map(|k| format!("`{k}`")).join(", ")
                ),
            );
        }
        if !formats::is_label_value(value) {
            c.error(
                &path,
                format!("`{value}` is not a Kubernetes label value"),
                "empty, or at most 63 letters, digits, `-`, `_` or `.`, starting and ending \
                 with a letter or digit",
            );
        }
    }
}

fn external_dns(c: &mut Checker, e: &ExternalDns, domain: &str) {
    let p = "spec.externalDns";
    let chart = &e.chart;
    c.label(&format!("{p}.chart.name"), &chart.name, 63);
    if SemVer::parse(&chart.version).is_none() {
        c.error(
            &format!("{p}.chart.version"),
            format!("`{}` is not a semantic version", chart.version),
            "an exact chart version such as `1.21.1`",
        );
    }
    c.url(
        &format!("{p}.chart.repository"),
        &chart.repository,
        &["http", "https", "oci"],
    );
    let key_ok = chart
        .values_key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !key_ok {
        c.error(
            &format!("{p}.chart.valuesKey"),
            format!("`{}` is not a Helm values key", chart.values_key),
            "empty, or letters, digits, `-` and `_` (e.g. `external-dns`)",
        );
    }

    c.label(&format!("{p}.namespace"), &e.namespace, 63);
    // Helm limits release names to 53 characters.
    c.label(&format!("{p}.releaseName"), &e.release_name, 53);

    if e.sources.is_empty() {
        c.error(
            &format!("{p}.sources"),
            "no sources given".to_owned(),
            "at least one external-dns source",
        );
    }
    let mut seen = HashSet::new();
    for (i, source) in e.sources.iter().enumerate() {
        let path = format!("{p}.sources[{i}]");
        if !KNOWN_SOURCES.contains(&source.as_str()) {
            let hint = super::decode::suggest(source, &KNOWN_SOURCES)
                .map(|s| format!(", did you mean `{s}`?"))
                .unwrap_or_default();
            c.error(
                &path,
                format!("unknown external-dns source `{source}`{hint}"),
                format!("one of {}", KNOWN_SOURCES.join(", ")),
            );
        } else if !seen.insert(source) {
            c.error(
                &path,
                format!("`{source}` is listed twice"),
                "each source once",
            );
        }
    }

    let mut filters = HashSet::from([domain]);
    for (i, filter) in e.domain_filters.iter().enumerate() {
        let path = format!("{p}.domainFilters[{i}]");
        if c.domain(&path, filter) && !filters.insert(filter) {
            c.error(
                &path,
                format!("`{filter}` is already a filter (spec.domain is always one)"),
                "only filters beyond spec.domain, each once",
            );
        }
    }

    let owner_ok = !e.txt_owner_id.is_empty()
        && e.txt_owner_id.len() <= 63
        && e.txt_owner_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !owner_ok {
        c.error(
            &format!("{p}.txtOwnerId"),
            format!("`{}` is not a usable TXT owner id", e.txt_owner_id),
            "1 to 63 letters, digits, `-`, `_` or `.`",
        );
    }
    let prefix_ok = !e.txt_prefix.is_empty()
        && e.txt_prefix
            .replace("%{record_type}", "")
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !prefix_ok {
        c.error(
            &format!("{p}.txtPrefix"),
            format!("`{}` is not a usable TXT record prefix", e.txt_prefix),
            "letters, digits, `-`, `_`, `.` and `%{record_type}`, e.g. `_externaldns.`",
        );
    }

    let annotation_path = format!("{p}.annotationPrefix");
    let prefix_host = e.annotation_prefix.strip_suffix('/');
    if !prefix_host.is_some_and(formats::is_rfc1123_subdomain) {
        c.error(
            &annotation_path,
            format!("`{}` is not an annotation prefix", e.annotation_prefix),
            "a DNS subdomain followed by `/`, e.g. `external-dns.alpha.kubernetes.io/`",
        );
    } else if e.version < ANNOTATION_PREFIX_FLAG_SINCE
        && e.annotation_prefix != LEGACY_ANNOTATION_PREFIX
    {
        c.error(
            &annotation_path,
            format!(
                "external-dns {} has no --annotation-prefix flag and always reads `{LEGACY_ANNOTATION_PREFIX}`",
                e.version
            ),
            format!(
                "`{LEGACY_ANNOTATION_PREFIX}`, or external-dns {ANNOTATION_PREFIX_FLAG_SINCE} or later"
            ),
        );
    }

    c.duration(&format!("{p}.interval"), &e.interval);
    c.duration(&format!("{p}.requestTimeout"), &e.request_timeout);
    c.duration(&format!("{p}.reconcileInterval"), &e.reconcile_interval);

    probe(c, &format!("{p}.probes.liveness"), &e.probes.liveness);
    probe(c, &format!("{p}.probes.readiness"), &e.probes.readiness);
    let delay = e.probes.liveness.initial_delay_seconds;
    if delay < CACHE_SYNC_SECONDS {
        c.warn(
            &format!("{p}.probes.liveness.initialDelaySeconds"),
            format!(
                "{delay} s is below {CACHE_SYNC_SECONDS} s: external-dns's start-up informer cache \
                 sync waits up to a hardcoded 60 s, and a liveness probe that fires earlier \
                 restarts it into CrashLoopBackOff on a slow apiserver"
            ),
            "at least 60 (the default is 180)",
        );
    }

    resources(c, &format!("{p}.resources"), &e.resources);
}

fn probe(c: &mut Checker, path: &str, probe: &Probe) {
    let fields = [
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, value) in fields {
        if value == 0 {
            c.error(
                &format!("{path}.{field}"),
                "0 is not allowed".to_owned(),
                "a whole number of at least 1",
            );
        }
    }
}

fn resources(c: &mut Checker, path: &str, r: &super::Resources) {
    let quantity = |c: &mut Checker, path: String, value: &Option<String>| {
        let value = value.as_deref()?;
        match formats::parse_quantity(value) {
            Some(q) if q > 0.0 => Some(q),
            _ => {
                c.error(
                    &path,
                    format!("`{value}` is not a positive Kubernetes quantity"),
                    "a quantity such as `50m`, `0.5`, `64Mi` or `1Gi`",
                );
                None
            }
        }
    };
    let list = |c: &mut Checker, part: &str, l: &ResourceList| {
        (
            quantity(c, format!("{path}.{part}.cpu"), &l.cpu),
            quantity(c, format!("{path}.{part}.memory"), &l.memory),
        )
    };
    let (req_cpu, req_mem) = list(c, "requests", &r.requests);
    let (lim_cpu, lim_mem) = list(c, "limits", &r.limits);
    for (name, request, limit) in [("cpu", req_cpu, lim_cpu), ("memory", req_mem, lim_mem)] {
        if let (Some(request), Some(limit)) = (request, limit)
            && request > limit
        {
            c.error(
                &format!("{path}.requests.{name}"),
                format!("the {name} request is above its limit"),
                format!("requests.{name} at most limits.{name}"),
            );
        }
    }
}

/// The chosen provider's block, checked; `None` (with the error recorded) when it is not set.
fn dns(c: &mut Checker, dns: Dns) -> Option<Provider> {
    let chosen = dns.provider;
    for present in dns.present_blocks() {
        if present != chosen {
            c.error(
                &format!("spec.dns.{present}"),
                format!(
                    "a `{present}` block is set but spec.dns.provider is `{chosen}`; \
                     only the chosen provider's block may be present"
                ),
                format!("only spec.dns.{chosen}, or spec.dns.provider: {present}"),
            );
        }
    }
    let p = format!("spec.dns.{chosen}");
    let provider = dns.take_selected();
    match &provider {
        None => c.error(
            &p,
            format!("spec.dns.provider is `{chosen}` but there is no `{chosen}` block"),
            format!("a spec.dns.{chosen} block ({})", required_fields(chosen)),
        ),
        Some(Provider::Pdns(x)) => pdns(c, &p, x),
        Some(Provider::Webhook(x)) => webhook(c, &p, x),
        Some(Provider::Cloudflare(x)) => cloudflare(c, &p, x),
        Some(Provider::Hetzner(x)) => hetzner(c, &p, x),
        Some(Provider::Aws(x)) => aws(c, &p, x),
        Some(Provider::Google(x)) => google(c, &p, x),
        Some(Provider::Azure(x)) => azure(c, &p, x),
    }
    provider
}

fn required_fields(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Pdns => "apiUrl, apiKeySecretRef",
        ProviderKind::Webhook => "image, apiUrl, apiKeySecretRef",
        ProviderKind::Cloudflare => "apiTokenSecretRef",
        ProviderKind::Hetzner => "image, apiTokenSecretRef",
        ProviderKind::Aws => "region, credentialsSecretRef",
        ProviderKind::Google => "project, credentialsSecretRef",
        ProviderKind::Azure => "subscriptionId, resourceGroup, configSecretRef",
    }
}

fn pdns(c: &mut Checker, p: &str, x: &Pdns) {
    if let Some(id) = &x.server_id {
        c.server_id(&format!("{p}.serverId"), id);
    }
    c.secret_ref(&format!("{p}.apiKeySecretRef"), &x.api_key_secret_ref);
}

fn webhook(c: &mut Checker, p: &str, x: &Webhook) {
    c.image(&format!("{p}.image"), &x.image);
    if let Some(id) = &x.server_id {
        c.server_id(&format!("{p}.serverId"), id);
    }
    c.secret_ref(&format!("{p}.apiKeySecretRef"), &x.api_key_secret_ref);
    match x.port {
        Some(0) => c.error(
            &format!("{p}.port"),
            "0 is not a port".to_owned(),
            "a port from 1 to 65535",
        ),
        Some(port) if port == METRICS_PORT || port == WEBHOOK_HEALTH_PORT => c.error(
            &format!("{p}.port"),
            format!(
                "{port} is taken in the pod (7979: external-dns metrics, 8080: webhook health)"
            ),
            "another port, e.g. 8888",
        ),
        _ => {}
    }
}

fn cloudflare(c: &mut Checker, p: &str, x: &Cloudflare) {
    c.secret_ref(&format!("{p}.apiTokenSecretRef"), &x.api_token_secret_ref);
}

fn hetzner(c: &mut Checker, p: &str, x: &Hetzner) {
    c.image(&format!("{p}.image"), &x.image);
    c.secret_ref(&format!("{p}.apiTokenSecretRef"), &x.api_token_secret_ref);
}

fn aws(c: &mut Checker, p: &str, x: &Aws) {
    // e.g. eu-central-1, us-gov-west-1
    let segments: Vec<&str> = x.region.split('-').collect();
    let region_ok = segments.len() >= 3
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && segments[0].len() == 2
        && segments[0].bytes().all(|b| b.is_ascii_lowercase())
        && segments[segments.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit());
    if !region_ok {
        c.error(
            &format!("{p}.region"),
            format!("`{}` is not an AWS region", x.region),
            "a region name such as `eu-central-1`",
        );
    }
    let r: &AwsCredentialsRef = &x.credentials_secret_ref;
    let rp = format!("{p}.credentialsSecretRef");
    c.secret_name(&format!("{rp}.name"), &r.name);
    c.secret_key(&format!("{rp}.accessKeyIdKey"), &r.access_key_id_key);
    c.secret_key(
        &format!("{rp}.secretAccessKeyKey"),
        &r.secret_access_key_key,
    );
    if r.access_key_id_key == r.secret_access_key_key {
        c.error(
            &format!("{rp}.secretAccessKeyKey"),
            "is the same key as accessKeyIdKey".to_owned(),
            "two different keys of the Secret",
        );
    }
}

fn google(c: &mut Checker, p: &str, x: &Google) {
    let project_ok = (6..=30).contains(&x.project.len())
        && x.project.as_bytes()[0].is_ascii_lowercase()
        && !x.project.ends_with('-')
        && x.project
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !project_ok {
        c.error(
            &format!("{p}.project"),
            format!("`{}` is not a Google Cloud project id", x.project),
            "6 to 30 lowercase letters, digits or `-`, starting with a letter",
        );
    }
    c.secret_ref(
        &format!("{p}.credentialsSecretRef"),
        &x.credentials_secret_ref,
    );
}

fn azure(c: &mut Checker, p: &str, x: &Azure) {
    if !formats::is_uuid(&x.subscription_id) {
        c.error(
            &format!("{p}.subscriptionId"),
            format!("`{}` is not a subscription id", x.subscription_id),
            "a UUID such as `00000000-0000-0000-0000-000000000000`",
        );
    }
    let group_ok = (1..=90).contains(&x.resource_group.len())
        && !x.resource_group.ends_with('.')
        && x.resource_group
            .chars()
            .all(|ch| ch.is_alphanumeric() || "-_.()".contains(ch));
    if !group_ok {
        c.error(
            &format!("{p}.resourceGroup"),
            format!("`{}` is not a resource group name", x.resource_group),
            "1 to 90 letters, digits, `-`, `_`, `.`, `(` or `)`, not ending in `.`",
        );
    }
    c.secret_ref(&format!("{p}.configSecretRef"), &x.config_secret_ref);
}

fn verify(c: &mut Checker, v: &Verify, zones: &[&str]) {
    let p = "spec.verify";
    c.url(&format!("{p}.apiUrl"), &v.api_url, &["http", "https"]);
    c.server_id(&format!("{p}.serverId"), &v.server_id);
    match (&v.api_key_env, &v.api_key_file) {
        (Some(_), Some(_)) => c.error(
            &format!("{p}.apiKeyFile"),
            "both apiKeyEnv and apiKeyFile are set".to_owned(),
            "exactly one of apiKeyEnv or apiKeyFile",
        ),
        (None, None) => c.error(
            &format!("{p}.apiKeyEnv"),
            "neither apiKeyEnv nor apiKeyFile is set".to_owned(),
            "exactly one of apiKeyEnv or apiKeyFile",
        ),
        (Some(env), None) if !formats::is_env_name(env) => c.error(
            &format!("{p}.apiKeyEnv"),
            format!("`{env}` is not an environment variable name"),
            "letters, digits and `_`, not starting with a digit, e.g. `PDNS_API_KEY`",
        ),
        (None, Some(file)) if !file.starts_with('/') => c.error(
            &format!("{p}.apiKeyFile"),
            format!("`{file}` is not an absolute path"),
            "an absolute file path such as `/run/secrets/pdns-api-key`",
        ),
        _ => {}
    }
    for (i, host) in v.hostnames.iter().enumerate() {
        let path = format!("{p}.hostnames[{i}]");
        if c.domain(&path, host)
            && !zones
                .iter()
                .any(|z| host == z || host.ends_with(&format!(".{z}")))
        {
            c.error(
                &path,
                format!("`{host}` is outside the zones external-dns manages"),
                format!("a name under {}", zones.join(" or ")),
            );
        }
    }
    if !v.metrics_url.is_empty() {
        c.url(
            &format!("{p}.metricsUrl"),
            &v.metrics_url,
            &["http", "https"],
        );
    }
}
