//! Known failure signatures: text that shows up in events, termination messages and logs,
//! mapped to the cause in plain language. A table, so a new field failure is one more row.

use std::sync::LazyLock;

use regex::Regex;

/// One known failure.
#[derive(Debug, PartialEq, Eq)]
pub struct Signature {
    /// Stable identifier, for machine-readable output and tests.
    pub id: &'static str,
    /// Regular expressions; any of them matching identifies the failure.
    pub patterns: &'static [&'static str],
    pub cause: &'static str,
}

/// In the order a diagnosis lists them: the most specific first.
pub const SIGNATURES: &[Signature] = &[
    Signature {
        id: "apiserver-cache-sync",
        // v0.14: `failed to sync *v1.Node: context deadline exceeded`;
        // v0.22: `failed to sync *v1.Node after 1m0s: context deadline exceeded`.
        patterns: &[
            r"failed to sync .*context deadline exceeded",
            r"failed to sync \S+ after \d",
        ],
        cause: "external-dns could not finish its start-up cache sync within 60 s: the apiserver \
                is saturated, or egress to it is dropped by network policy (under Cilium the \
                apiserver is the kube-apiserver entity; 0.0.0.0/0 does not match it)",
    },
    Signature {
        id: "apiserver-egress",
        patterns: &[
            r"dial tcp [^\s:]+:(443|6443): (i/o timeout|connect: connection refused|connect: no route to host)",
        ],
        cause: "the pod cannot reach the apiserver: egress to it is dropped or refused (under \
                Cilium allow the kube-apiserver entity; an ipBlock 0.0.0.0/0 rule does not match it)",
    },
    Signature {
        id: "pdns-credentials",
        // external-dns v0.22 says `unable to list zones: Unauthorized`.
        patterns: &[
            r"unable to (list|fetch|patch) (zones?|records)\b.*\b(Unauthorized|Forbidden)\b",
            r"/api/v1/servers\S*.*\b(401|403)\b",
        ],
        cause: "PowerDNS rejected the API key (HTTP 401/403): the key external-dns uses does not \
                match the PowerDNS api-key; check the credentials Secret",
    },
    Signature {
        id: "pdns-unreachable",
        patterns: &[
            r"/api/v1/servers\S*: dial tcp \S+: connect: connection refused",
            r"unable to (list|fetch|patch|apply) (zones?|records|changes)\b.*(?i:connection refused)",
        ],
        cause: "PowerDNS is unreachable: nothing accepts connections at its API address \
                (--pdns-server, or a webhook sidecar's PDNS_API_URL): is PowerDNS running with \
                its API enabled, and are host and port right?",
    },
    Signature {
        id: "pdns-timeout",
        patterns: &[
            r"/api/v1/servers\S*: .*(i/o timeout|Client\.Timeout exceeded|no route to host)",
            r"/api/v1/servers\S*: dial tcp: lookup \S+.*no such host",
        ],
        cause: "PowerDNS cannot be reached from the pod: the connection times out or the name \
                does not resolve (network policy egress, a firewall, or a wrong --pdns-server host)",
    },
    Signature {
        id: "webhook-unreachable",
        // external-dns v0.22 at start: `failed to connect to webhook: <why>`.
        patterns: &[r"failed to connect to webhook"],
        cause: "external-dns cannot reach its webhook provider sidecar at \
                --webhook-provider-url: the sidecar is not running, or serves another port",
    },
    Signature {
        id: "webhook-server-error",
        // external-dns v0.22 on a webhook's 5xx: `failed to get records with code 500`.
        patterns: &[r"failed to (get records|apply changes|AdjustEndpoints) with code 5\d\d"],
        cause: "the webhook provider sidecar answers external-dns with server errors (HTTP \
                5xx): it cannot do its work against the DNS provider; its own log says why",
    },
    Signature {
        id: "external-dns-config",
        // external-dns v0.22 exits 1 at start with `config validation failed: <why>` or
        // `flag parsing error: <why>`, before it contacts the apiserver.
        patterns: &[r"config validation failed: ", r"flag parsing error: "],
        cause: "external-dns refused its configuration (its flags, from the kit and any values \
                override): fix the setting its log line names; waiting will not help",
    },
    Signature {
        id: "rbac",
        patterns: &[
            r#"is forbidden: User "system:serviceaccount:[^"]+" cannot (list|watch|get) resource"#,
        ],
        cause: "the service account lacks RBAC permission to read its sources: check the \
                ClusterRole and ClusterRoleBinding",
    },
    Signature {
        id: "image-pull",
        patterns: &[
            r"\b(ImagePullBackOff|ErrImagePull)\b",
            r"Failed to pull image",
            r"pull access denied",
            r"manifest unknown",
        ],
        cause: "the container image cannot be pulled: check the image repository and tag, that \
                the registry is reachable from the nodes, and its pull credentials \
                (imagePullSecrets)",
    },
    Signature {
        id: "invalid-image",
        patterns: &[r"\bInvalidImageName\b"],
        cause: "the image reference is malformed: check the image repository and tag",
    },
    Signature {
        id: "missing-config",
        patterns: &[
            r#"\b(secret|configmap) "[^"]+" not found"#,
            r#"couldn't find key \S+ in (Secret|ConfigMap)"#,
            r"\bCreateContainerConfigError\b",
        ],
        cause: "the container references a Secret or ConfigMap (or a key in one) that does not \
                exist: create it, or fix the reference",
    },
    Signature {
        id: "oom",
        patterns: &[r"\bOOMKilled\b"],
        cause: "the container ran out of memory and was killed: raise its memory limit",
    },
    Signature {
        id: "probe",
        patterns: &[r"\b(Liveness|Readiness|Startup) probe failed"],
        cause: "a health probe fails: the process does not answer on the probe's port and path \
                (it is crashing or still starting, or a values override dropped the probe's \
                httpGet path and port)",
    },
];

static COMPILED: LazyLock<Vec<(Vec<Regex>, &'static Signature)>> = LazyLock::new(|| {
    SIGNATURES
        .iter()
        .map(|s| {
            let patterns = s
                .patterns
                .iter()
                .map(|p| Regex::new(p).expect("signature patterns are valid"))
                .collect();
            (patterns, s)
        })
        .collect()
});

/// The signatures any of `texts` shows, each once, in table order.
pub fn match_signatures<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<&'static Signature> {
    let texts: Vec<&str> = texts.into_iter().collect();
    COMPILED
        .iter()
        .filter(|(patterns, _)| texts.iter().any(|t| patterns.iter().any(|p| p.is_match(t))))
        .map(|(_, s)| *s)
        .collect()
}

static SECRET_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)((?:api[-_]?key|token|password|passwd|secret|authorization)["']?\s*[:=]\s*["']?)(?:bearer\s+)?[^\s"',}&]+"#,
    )
    .expect("valid")
});

/// Masks values that look like credentials (`api-key=...`, `"token": "..."`,
/// `Authorization: Bearer ...`). Diagnoses quote logs and events, which a careless
/// program may have filled with its own secrets.
pub fn redact(text: &str) -> String {
    SECRET_VALUE
        .replace_all(text, "${1}<redacted>")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<&'static str> {
        match_signatures([text]).iter().map(|s| s.id).collect()
    }

    #[test]
    fn every_pattern_compiles_and_ids_are_unique() {
        assert_eq!(COMPILED.len(), SIGNATURES.len());
        let mut ids: Vec<_> = SIGNATURES.iter().map(|s| s.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), SIGNATURES.len());
    }

    #[test]
    fn cache_sync_timeouts_of_both_external_dns_generations() {
        for line in [
            "failed to sync *v1.Node: context deadline exceeded",
            r#"time="2026-01-01T00:00:00Z" level=fatal msg="failed to sync *v1.Node after 1m0s: context deadline exceeded""#,
            "failed to sync *v1.Service after 1m0s",
        ] {
            assert_eq!(ids(line), ["apiserver-cache-sync"], "{line}");
        }
        let cause =
            match_signatures(["failed to sync *v1.Node: context deadline exceeded"])[0].cause;
        assert!(cause.contains("kube-apiserver entity"));
        assert!(cause.contains("0.0.0.0/0 does not match it"));
    }

    #[test]
    fn powerdns_failures_as_external_dns_v0_22_logs_them() {
        // Captured from external-dns v0.22.0 against the test world's PowerDNS.
        assert_eq!(
            ids(r#"level=fatal msg="soft error\nunable to list zones: Unauthorized""#),
            ["pdns-credentials"]
        );
        assert_eq!(
            ids(
                r#"level=fatal msg="soft error\nunable to list zones: Get \"http://127.0.0.1:1/api/v1/servers/localhost/zones\": dial tcp 127.0.0.1:1: connect: connection refused""#
            ),
            ["pdns-unreachable"]
        );
        assert_eq!(
            ids(
                r#"Get "http://pdns.dns:8081/api/v1/servers/localhost/zones": dial tcp 10.0.0.7:8081: i/o timeout"#
            ),
            ["pdns-timeout"]
        );
        assert_eq!(
            ids(r#"PATCH http://pdns:8081/api/v1/servers/localhost/zones/x.: 403 Forbidden"#),
            ["pdns-credentials"]
        );
    }

    #[test]
    fn a_webhook_and_its_failures_as_external_dns_v0_22_and_the_sidecar_log_them() {
        assert_eq!(
            ids(
                r#"level=error msg="Failed to do run once: soft error\nfailed to get records with code 500 (consecutive soft errors: 1)""#
            ),
            ["webhook-server-error"]
        );
        assert_eq!(
            ids(
                r#"level=fatal msg="failed to connect to webhook: Get \"http://localhost:8888\": dial tcp [::1]:8888: connect: connection refused""#
            ),
            ["webhook-unreachable"]
        );
        assert_eq!(
            ids(
                r#"level=error msg="unable to fetch records: GET http://127.0.0.1:9/api/v1/servers/localhost/zones: Connection refused (os error 111)""#
            ),
            ["pdns-unreachable"]
        );
    }

    #[test]
    fn apiserver_egress_is_not_mistaken_for_powerdns() {
        assert_eq!(
            ids(
                r#"Get "https://10.96.0.1:443/api/v1/nodes?limit=500": dial tcp 10.96.0.1:443: i/o timeout"#
            ),
            ["apiserver-egress"]
        );
    }

    #[test]
    fn external_dns_refusing_its_configuration() {
        for line in [
            r#"time="2026-12-01T00:00:00Z" level=fatal msg="config validation failed: txt-prefix and txt-suffix are mutual exclusive""#,
            r#"level=fatal msg="flag parsing error: unknown long flag '--no-such-flag'""#,
        ] {
            assert_eq!(ids(line), ["external-dns-config"], "{line}");
        }
    }

    #[test]
    fn kubelet_and_rbac_signatures() {
        assert_eq!(
            ids("Back-off pulling image \"registry.invalid/x:1\": ImagePullBackOff"),
            ["image-pull"]
        );
        assert_eq!(
            ids("Failed to pull image \"x\": pull access denied"),
            ["image-pull"]
        );
        assert_eq!(
            ids("Error: secret \"pdns-credentials\" not found"),
            ["missing-config"]
        );
        assert_eq!(ids("InvalidImageName"), ["invalid-image"]);
        assert_eq!(ids("OOMKilled"), ["oom"]);
        assert_eq!(
            ids("Liveness probe failed: Get \"http://10.0.0.5:7979/healthz\": connection refused"),
            ["probe"]
        );
        assert_eq!(
            ids(
                r#"nodes is forbidden: User "system:serviceaccount:external-dns:external-dns" cannot list resource "nodes" in API group "" at the cluster scope"#
            ),
            ["rbac"]
        );
    }

    #[test]
    fn several_texts_give_each_cause_once_in_table_order() {
        let got = match_signatures([
            "Liveness probe failed: connection refused",
            "failed to sync *v1.Node: context deadline exceeded",
            "failed to sync *v1.Pod: context deadline exceeded",
        ]);
        let got: Vec<_> = got.iter().map(|s| s.id).collect();
        assert_eq!(got, ["apiserver-cache-sync", "probe"]);
        assert!(match_signatures(["all good", ""]).is_empty());
    }

    #[test]
    fn redact_masks_credential_values_only() {
        let cases = [
            ("--pdns-api-key=s3cr3t now", "--pdns-api-key=<redacted> now"),
            ("X-API-Key: s3cr3t", "X-API-Key: <redacted>"),
            (
                r#"{"token":"abc.def","user":"me"}"#,
                r#"{"token":"<redacted>","user":"me"}"#,
            ),
            ("Authorization: Bearer abc.def", "Authorization: <redacted>"),
            ("password=hunter2&x=1", "password=<redacted>&x=1"),
            (
                "Error: secret \"pdns\" not found",
                "Error: secret \"pdns\" not found",
            ),
            (
                "failed to sync *v1.Node: context deadline exceeded",
                "failed to sync *v1.Node: context deadline exceeded",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
