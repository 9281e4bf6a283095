//! What the kit relies on about external-dns releases and its upstream Helm chart
//! (kubernetes-sigs/external-dns; checked against v0.22.0 and chart 1.21.1).

use crate::spec::formats::{Release, SemVer};

/// Every `--source` value external-dns v0.22.0 accepts (source/types/types.go).
pub const KNOWN_SOURCES: [&str; 25] = [
    "ambassador-host",
    "connector",
    "contour-httpproxy",
    "crd",
    "empty",
    "f5-transportserver",
    "f5-virtualserver",
    "fake",
    "gateway-grpcroute",
    "gateway-httproute",
    "gateway-tcproute",
    "gateway-tlsroute",
    "gateway-udproute",
    "gloo-proxy",
    "ingress",
    "istio-gateway",
    "istio-virtualservice",
    "kong-tcpingress",
    "node",
    "openshift-route",
    "pod",
    "service",
    "skipper-routegroup",
    "traefik-proxy",
    "unstructured",
];

/// `--request-timeout` was deprecated for `--kube-api-request-timeout` in v0.21.0.
pub const KUBE_API_REQUEST_TIMEOUT_SINCE: Release = Release::new(0, 21, 0);

/// `--annotation-prefix` exists from v0.20.0 (chart 1.20.0 exposed it the same release).
pub const ANNOTATION_PREFIX_FLAG_SINCE: Release = Release::new(0, 20, 0);

/// The prefix external-dns read before v0.22.0 changed its default to
/// `external-dns.kubernetes.io/` (with no fallback: records can be deleted on upgrade).
pub const LEGACY_ANNOTATION_PREFIX: &str = "external-dns.alpha.kubernetes.io/";

/// The upstream chart's `annotationPrefix` value exists from chart 1.20.0.
const CHART_ANNOTATION_PREFIX_SINCE: (u64, u64, u64) = (1, 20, 0);

/// The upstream chart's name; wrapper charts have other names.
pub const UPSTREAM_CHART: &str = "external-dns";

/// The container port (named `http`) that serves /healthz and /metrics.
pub const METRICS_PORT: u16 = 7979;

/// The chart's name for external-dns's own container.
pub const EXTERNAL_DNS_CONTAINER: &str = "external-dns";

/// The chart's name for the webhook provider's sidecar container.
pub const WEBHOOK_CONTAINER: &str = "webhook";

/// The container port the chart gives a webhook sidecar for its health and metrics.
pub const WEBHOOK_HEALTH_PORT: u16 = 8080;

/// The flag that sets the Kubernetes API request timeout in `release`.
pub fn request_timeout_flag(release: Release) -> &'static str {
    if release >= KUBE_API_REQUEST_TIMEOUT_SINCE {
        "--kube-api-request-timeout"
    } else {
        "--request-timeout"
    }
}

/// How the annotation prefix reaches external-dns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationPrefixVia {
    /// The chart's `annotationPrefix` value.
    ChartValue,
    /// An `--annotation-prefix=` entry in `extraArgs`.
    ExtraArg,
    /// Not passed: the release has no flag and reads the legacy prefix anyway.
    BuiltIn,
}

/// Chooses how to pass the annotation prefix. Validation has already refused a
/// non-legacy prefix for a release without the flag.
pub fn annotation_prefix_via(
    release: Release,
    chart_name: &str,
    chart_version: &str,
    values_key: &str,
) -> AnnotationPrefixVia {
    if release < ANNOTATION_PREFIX_FLAG_SINCE {
        return AnnotationPrefixVia::BuiltIn;
    }
    let (major, minor, patch) = CHART_ANNOTATION_PREFIX_SINCE;
    let chart_has_value = chart_name == UPSTREAM_CHART
        && values_key.is_empty()
        && SemVer::parse(chart_version).is_some_and(|v| {
            v >= SemVer {
                major,
                minor,
                patch,
                pre: Vec::new(),
            }
        });
    if chart_has_value {
        AnnotationPrefixVia::ChartValue
    } else {
        AnnotationPrefixVia::ExtraArg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(s: &str) -> Release {
        Release::parse_tag(s).unwrap()
    }

    #[test]
    fn timeout_flag_follows_the_v0_21_rename() {
        for (version, flag) in [
            ("v0.20.0", "--request-timeout"),
            ("v0.20.9", "--request-timeout"),
            ("v0.21.0", "--kube-api-request-timeout"),
            ("v0.22.0", "--kube-api-request-timeout"),
        ] {
            assert_eq!(request_timeout_flag(release(version)), flag, "{version}");
        }
    }

    #[test]
    fn annotation_prefix_uses_the_chart_value_only_where_it_exists() {
        use AnnotationPrefixVia::*;
        for (r, name, version, key, via) in [
            ("v0.22.0", "external-dns", "1.21.1", "", ChartValue),
            ("v0.22.0", "external-dns", "1.19.0", "", ExtraArg),
            (
                "v0.22.0",
                "bp-external-dns",
                "1.1.7",
                "external-dns",
                ExtraArg,
            ),
            ("v0.19.0", "external-dns", "1.21.1", "", BuiltIn),
        ] {
            assert_eq!(
                annotation_prefix_via(release(r), name, version, key),
                via,
                "{r} {name} {version}"
            );
        }
    }

    #[test]
    fn known_sources_are_sorted_and_unique() {
        assert!(KNOWN_SOURCES.windows(2).all(|w| w[0] < w[1]));
    }
}
