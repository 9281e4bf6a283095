//! The pods' side of records that did not sync: the current log of each container that
//! takes part in writing them (external-dns, and the provider's webhook sidecar when there
//! is one) and the known failures those logs show. Gathered once, when the proof runs out
//! of time; a webhook that fails external-dns's requests says why only in its own log.

use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::external_dns::{EXTERNAL_DNS_CONTAINER, WEBHOOK_CONTAINER};
use crate::health::diagnose::{self, Logs};
use crate::health::signatures::{Signature, match_signatures};
use crate::health::{PodSelection, Target};
use crate::spec::Provider;

use super::LikelyCause;

/// Log lines quoted per container: enough for the last sync's errors.
const LOG_TAIL: i64 = 10;

/// One container's log and the known failures in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLog {
    pub logs: Logs,
    pub causes: Vec<&'static Signature>,
}

impl ContainerLog {
    /// A container's log, judged against the known failures.
    pub fn judged(logs: Logs) -> ContainerLog {
        let causes = match &logs {
            Logs::Previous { lines, .. } | Logs::Current { lines, .. } => {
                match_signatures(lines.iter().map(String::as_str))
            }
            Logs::Unavailable { .. } => Vec::new(),
        };
        ContainerLog { logs, causes }
    }

    fn container(&self) -> &str {
        match &self.logs {
            Logs::Previous { container, .. }
            | Logs::Current { container, .. }
            | Logs::Unavailable { container, .. } => container,
        }
    }
}

/// What the release's containers said when the proof ran out of time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub logs: Vec<ContainerLog>,
}

/// The containers of the chart's pod that write the records for `provider`.
pub fn writing_containers(provider: &Provider) -> &'static [&'static str] {
    match provider {
        Provider::Webhook(_) | Provider::Hetzner(_) => &[EXTERNAL_DNS_CONTAINER, WEBHOOK_CONTAINER],
        _ => &[EXTERNAL_DNS_CONTAINER],
    }
}

impl Evidence {
    /// Reads the current log of `containers` in the first running pod the targets select.
    /// Best effort, like every diagnosis: what cannot be read is named in its place.
    pub async fn gather(client: &Client, targets: &[Target], containers: &[&str]) -> Evidence {
        let Some((namespace, labels)) = targets.iter().find_map(|t| match &t.pods {
            PodSelection::Labels { namespace, labels } => Some((namespace, labels)),
            _ => None,
        }) else {
            return Evidence::default();
        };
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let listed = tokio::time::timeout(
            diagnose::CALL_TIMEOUT,
            pods.list(&ListParams::default().labels(&selector)),
        )
        .await;
        let Ok(Ok(list)) = listed else {
            return Evidence::default();
        };
        let running = |p: &&Pod| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        };
        let Some(pod) = list.items.iter().find(running).or(list.items.first()) else {
            return Evidence::default();
        };
        let mut logs = Vec::new();
        for container in containers {
            let read = diagnose::container_logs(client, pod, container, false, LOG_TAIL).await;
            logs.push(ContainerLog::judged(read));
        }
        Evidence { logs }
    }

    /// The cause the logs point at, when the proof found none of its own: a failure the
    /// webhook sidecar logs comes first (external-dns only sees its server errors), then
    /// one external-dns logs. Pure.
    pub fn refine(&self, cause: LikelyCause) -> LikelyCause {
        if cause != LikelyCause::ExternalDnsNotSynced {
            return cause;
        }
        let logged = |webhook: bool| {
            self.logs
                .iter()
                .filter(|l| (l.container() == WEBHOOK_CONTAINER) == webhook)
                .find_map(|l| Some((l.container().to_owned(), l.causes.first()?.cause)))
        };
        match (logged(true), logged(false)) {
            (Some((container, cause)), _) => LikelyCause::Webhook { container, cause },
            (None, Some((container, cause))) => LikelyCause::Logged { container, cause },
            (None, None) => cause,
        }
    }
}

/// Each log on lines of its own after the line it follows (the error's).
impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for log in &self.logs {
            write!(f, "\n{}", log.logs.to_string().trim_end_matches('\n'))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(container: &str, lines: &[&str]) -> ContainerLog {
        ContainerLog::judged(Logs::Current {
            pod: "ns/external-dns-1".into(),
            container: container.into(),
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        })
    }

    const SIDECAR_REFUSED: &str = r#"level=error msg="unable to fetch records: GET http://127.0.0.1:9/api/v1/servers/localhost/zones: Connection refused (os error 111)""#;
    const SERVER_ERROR: &str = r#"level=error msg="Failed to do run once: soft error\nfailed to get records with code 500 (consecutive soft errors: 2)""#;

    #[test]
    fn the_webhooks_own_log_names_the_cause_before_external_dnss() {
        let evidence = Evidence {
            logs: vec![
                current(EXTERNAL_DNS_CONTAINER, &[SERVER_ERROR]),
                current(WEBHOOK_CONTAINER, &[SIDECAR_REFUSED]),
            ],
        };
        let cause = evidence.refine(LikelyCause::ExternalDnsNotSynced);
        let LikelyCause::Webhook {
            container,
            cause: why,
        } = &cause
        else {
            panic!("{cause:?}");
        };
        assert_eq!(container, WEBHOOK_CONTAINER);
        assert!(why.starts_with("PowerDNS is unreachable"), "{why}");
        assert!(
            cause
                .to_string()
                .starts_with("the webhook provider sidecar (container webhook) cannot do its work: PowerDNS is unreachable"),
            "{cause}"
        );
        let text = evidence.to_string();
        assert!(
            text.contains("\n  log of ns/external-dns-1 container webhook:\n    level=error"),
            "{text}"
        );
    }

    #[test]
    fn external_dnss_log_speaks_when_the_sidecar_is_silent() {
        let evidence = Evidence {
            logs: vec![
                current(EXTERNAL_DNS_CONTAINER, &[SERVER_ERROR]),
                current(WEBHOOK_CONTAINER, &["level=info msg=serving"]),
            ],
        };
        let cause = evidence.refine(LikelyCause::ExternalDnsNotSynced);
        assert!(
            matches!(&cause, LikelyCause::Logged { container, cause }
                if container == EXTERNAL_DNS_CONTAINER && cause.contains("webhook provider sidecar answers")),
            "{cause:?}"
        );
    }

    #[test]
    fn logs_without_a_known_failure_or_a_cause_of_the_proofs_own_change_nothing() {
        let quiet = Evidence {
            logs: vec![current(
                EXTERNAL_DNS_CONTAINER,
                &["level=info msg=\"All records are already up to date\""],
            )],
        };
        assert_eq!(
            quiet.refine(LikelyCause::ExternalDnsNotSynced),
            LikelyCause::ExternalDnsNotSynced
        );
        let loud = Evidence {
            logs: vec![current(WEBHOOK_CONTAINER, &[SIDECAR_REFUSED])],
        };
        assert_eq!(
            loud.refine(LikelyCause::NotOwnedByThisExternalDns),
            LikelyCause::NotOwnedByThisExternalDns
        );
        assert_eq!(Evidence::default().to_string(), "");
    }

    #[test]
    fn webhook_providers_write_through_their_sidecar() {
        use crate::spec::{Cloudflare, SecretKeyRef};
        let cloudflare = Provider::Cloudflare(Cloudflare {
            api_token_secret_ref: SecretKeyRef {
                name: "cf".into(),
                key: "token".into(),
            },
            proxied: false,
        });
        assert_eq!(writing_containers(&cloudflare), [EXTERNAL_DNS_CONTAINER]);
    }
}
