//! One retry policy for every apiserver call.
//!
//! A bootstrap runs while the control plane is still settling: the apiserver restarts, etcd
//! elects a leader, priority-and-fairness throttles a burst. Every call therefore goes through
//! [`with_retry`], which retries what time can fix (transport errors, timeouts, 429 and 5xx)
//! with capped exponential backoff and full jitter, honours Retry-After, and gives up only after
//! a budget of consecutive failure ([`RetryPolicy::unreachable_budget`], 5 minutes by default).
//! What time cannot fix (401, 403, 404, 409, 400/422, unknown kinds) fails at once.
//!
//! Writes are retried too: the tool only issues server-side apply, deletes with a UID
//! precondition, and repair's merge patches of fixed values with a UID precondition, all
//! safe to repeat.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::Retryable;

use crate::health::pressure::Pressure;
use crate::report::Sink;

mod classify;
mod client;
mod connection;
mod schedule;

use classify::permanent;
pub use classify::{Class, RetryError, classify, untrusted_certificate};
pub use client::{CONNECT_TIMEOUT, READ_TIMEOUT, Throttled, client, requests_sent};
pub use connection::{
    LONG_WATCH_SECS, PING_INTERVAL, PING_TIMEOUT, WATCH_TIMEOUT_SECS, watch_timeout_secs,
};
pub use schedule::{Jitter, Schedule};

/// Request counters, shared by every clone of a [`RetryPolicy`].
#[derive(Debug, Default)]
pub struct Stats {
    operations: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Calls of [`with_retry`].
    pub operations: u64,
    /// Attempts, i.e. requests sent to the apiserver.
    pub requests: u64,
    /// Attempts that repeated a failed one.
    pub retries: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            operations: self.operations.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// What is told before each retry: enough for a progress line or an NDJSON event.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    pub what: String,
    /// The attempt that just failed, from 1.
    pub attempt: u32,
    pub delay: Duration,
    /// How long the failures have lasted so far.
    pub failing_for: Duration,
    /// What the failed attempt got, as the client words it.
    pub error: String,
}

/// Backoff parameters, the failure budget and the shared counters.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First delay; each retry doubles it up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long consecutive transient failures may last before [`RetryError::Unreachable`].
    pub unreachable_budget: Duration,
    stats: Arc<Stats>,
    events: Sink<RetryEvent>,
    pressure: Pressure,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            unreachable_budget: Duration::from_secs(5 * 60),
            stats: Arc::default(),
            events: Sink::default(),
            pressure: Pressure::default(),
        }
    }
}

impl RetryPolicy {
    pub fn with_unreachable_budget(mut self, budget: Duration) -> Self {
        self.unreachable_budget = budget;
        self
    }

    pub fn with_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max.max(min);
        self
    }

    /// Where an event goes before every retry, e.g. to report "apiserver unreachable,
    /// retrying".
    pub fn on_event(mut self, sink: Sink<RetryEvent>) -> Self {
        self.events = sink;
        self
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How the apiserver has answered this run: the client from [`client`] records into
    /// it, the judgement of `wait`, `status` and `repair` reads it.
    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }
}

/// The delay before the next attempt: Retry-After is a minimum; the budget is a maximum, so
/// the last attempt happens as the budget runs out. `None` once the budget is spent.
fn next_delay(
    jittered: Duration,
    retry_after: Option<Duration>,
    remaining: Duration,
) -> Option<Duration> {
    if remaining.is_zero() {
        return None;
    }
    let wanted = retry_after.map_or(jittered, |ra| ra.max(jittered));
    Some(wanted.min(remaining))
}

/// Runs `op` until it succeeds, fails permanently, or transient failures have lasted longer
/// than the policy's budget. `what` names the call in errors and events.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let stats = &policy.stats;
    stats.operations.fetch_add(1, Ordering::Relaxed);
    let first_failure: Cell<Option<Instant>> = Cell::new(None);
    let attempts = Cell::new(0u32);

    // The schedule supplies the jittered exponential sequence; Retry-After and the budget
    // are applied in `adjust`, which sees the error.
    let floor = policy.min_delay;
    let backoff = Schedule::new(policy.min_delay, policy.max_delay, Jitter::Full { floor });
    let result = (|| {
        attempts.set(attempts.get() + 1);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        op()
    })
    .retry(backoff)
    .sleep(tokio::time::sleep)
    .when(|e| matches!(classify(e), Class::Transient { .. }))
    .adjust(|e, backoff| {
        let since = first_failure.get().unwrap_or_else(Instant::now);
        first_failure.set(Some(since));
        let retry_after = match classify(e) {
            Class::Transient { retry_after } => retry_after,
            Class::Permanent => None,
        };
        let jittered = backoff?;
        let remaining = policy.unreachable_budget.saturating_sub(since.elapsed());
        next_delay(jittered, retry_after, remaining)
    })
    .notify(|e, delay| {
        stats.retries.fetch_add(1, Ordering::Relaxed);
        policy.events.emit_with(|| RetryEvent {
            what: what.to_owned(),
            attempt: attempts.get(),
            delay,
            failing_for: first_failure.get().map_or(Duration::ZERO, |t| t.elapsed()),
            error: e.to_string(),
        });
    })
    .await;

    result.map_err(|e| match classify(&e) {
        Class::Transient { .. } => RetryError::Unreachable {
            what: what.to_owned(),
            elapsed: first_failure.get().map_or(Duration::ZERO, |t| t.elapsed()),
            attempts: attempts.get(),
            last: e.to_string(),
        },
        Class::Permanent => permanent(what, &e),
    })
}

/// Lists the objects of a built-in kind that `selector` picks in `namespace`, through
/// [`with_retry`].
pub async fn list_selected<K>(
    client: &kube::Client,
    namespace: &str,
    selector: &kube::core::Selector,
    policy: &RetryPolicy,
) -> Result<Vec<K>, RetryError>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: kube::Api<K> = kube::Api::namespaced(client.clone(), namespace);
    let params = kube::api::ListParams::default().labels_from(selector);
    let what = format!("list {} in {namespace} ({selector})", K::plural(&()));
    Ok(with_retry(policy, &what, || api.list(&params)).await?.items)
}

#[cfg(test)]
mod tests {
    use super::classify::TRANSIENT;
    use super::*;
    use crate::exit::Exit;
    use kube::core::{Status, response::StatusDetails};

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    fn io(kind: std::io::ErrorKind) -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::from(kind)))
    }

    #[test]
    fn transport_failures_are_transient() {
        use std::io::ErrorKind::*;
        for kind in [
            ConnectionRefused,
            ConnectionReset,
            TimedOut,
            BrokenPipe,
            UnexpectedEof,
        ] {
            assert_eq!(classify(&io(kind)), TRANSIENT, "{kind:?}");
        }
        assert_eq!(
            classify(&kube::Error::ReadEvents(std::io::Error::from(
                ConnectionReset
            ))),
            TRANSIENT
        );
    }

    #[test]
    fn certificate_errors_are_permanent() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, cert);
        assert_eq!(
            classify(&kube::Error::Service(Box::new(wrapped))),
            Class::Permanent
        );
    }

    #[test]
    fn an_untrusted_certificate_nested_as_hyper_rustls_reports_it_is_named() {
        // hyper-rustls: io::Error(Other) around io::Error(InvalidData) around rustls.
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, cert);
        let outer = std::io::Error::other(inner);
        let err = kube::Error::Service(Box::new(outer));
        assert_eq!(classify(&err), Class::Permanent);
        let cause = untrusted_certificate(&err).expect("a certificate error");
        assert!(cause.contains("UnknownIssuer"), "{cause}");
        let e = permanent("list pods", &err);
        assert!(matches!(e, RetryError::Tls { .. }), "{e:?}");
        assert_eq!(e.exit(), Exit::TlsUntrusted);
        assert!(untrusted_certificate(&kube::Error::Service("refused".into())).is_none());
    }

    #[test]
    fn server_side_trouble_is_transient() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(&api(code, "", "busy")), TRANSIENT, "{code}");
        }
        let leader = api(0, "", "etcdserver: leader changed");
        assert_eq!(classify(&leader), TRANSIENT);
        let etcd_timeout = api(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
        );
        assert_eq!(classify(&etcd_timeout), TRANSIENT);
    }

    #[test]
    fn client_mistakes_are_permanent() {
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert_eq!(classify(&api(code, "", "no")), Class::Permanent, "{code}");
        }
        let discovery =
            kube::Error::Discovery(kube::error::DiscoveryError::MissingKind("Widget".into()));
        assert_eq!(classify(&discovery), Class::Permanent);
        let serde = kube::Error::SerdeError(serde_json::from_str::<u8>("x").unwrap_err());
        assert_eq!(classify(&serde), Class::Permanent);
    }

    #[test]
    fn retry_after_comes_from_the_status_body_or_the_header() {
        let details = StatusDetails {
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            uid: String::new(),
            causes: vec![],
            retry_after_seconds: 7,
        };
        let body = Status::failure("slow down", "TooManyRequests")
            .with_code(429)
            .with_details(details);
        assert_eq!(
            classify(&kube::Error::Api(body.boxed())),
            Class::Transient {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let header = kube::Error::Service(Box::new(Throttled {
            status: 429,
            retry_after: Duration::from_secs(3),
        }));
        assert_eq!(
            classify(&header),
            Class::Transient {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_the_budget_a_ceiling() {
        let s = Duration::from_secs;
        assert_eq!(next_delay(s(1), Some(s(5)), s(300)), Some(s(5)));
        assert_eq!(next_delay(s(8), Some(s(5)), s(300)), Some(s(8)));
        assert_eq!(next_delay(s(8), None, s(300)), Some(s(8)));
        assert_eq!(next_delay(s(8), Some(s(30)), s(2)), Some(s(2)));
        assert_eq!(next_delay(s(8), None, Duration::ZERO), None);
    }

    #[test]
    fn forbidden_names_verb_and_resource() {
        let status = Status::failure(
            r#"helmreleases.helm.toolkit.fluxcd.io "x" is forbidden: User "nobody" cannot patch resource "helmreleases" in API group "helm.toolkit.fluxcd.io" in the namespace "ns""#,
            "Forbidden",
        )
        .with_code(403);
        match permanent("apply", &kube::Error::Api(status.boxed())) {
            RetryError::Forbidden { verb, resource, .. } => {
                assert_eq!(verb, "patch");
                assert_eq!(resource, "helmreleases.helm.toolkit.fluxcd.io");
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        let core = Status::failure(
            r#"configmaps "c" is forbidden: User "nobody" cannot get resource "configmaps" in API group "" in the namespace "ns""#,
            "Forbidden",
        )
        .with_code(403);
        let err = permanent("read", &kube::Error::Api(core.boxed()));
        assert!(
            matches!(&err, RetryError::Forbidden { verb, resource, .. } if verb == "get" && resource == "configmaps")
        );
        assert_eq!(err.exit(), Exit::PermissionDenied);
    }

    fn quick() -> RetryPolicy {
        RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_millis(5))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let policy = quick();
        let calls = Cell::new(0);
        let got = with_retry(&policy, "get thing", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                match n {
                    1 => Err(io(std::io::ErrorKind::ConnectionRefused)),
                    2 => Err(api(503, "ServiceUnavailable", "not ready")),
                    _ => Ok(n),
                }
            }
        })
        .await
        .expect("third attempt succeeds");
        assert_eq!(got, 3);
        assert_eq!(
            policy.stats().snapshot(),
            StatsSnapshot {
                operations: 1,
                requests: 3,
                retries: 2
            }
        );
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let policy = quick();
        let err = with_retry(&policy, "create thing", || async {
            Err::<(), _>(api(422, "Invalid", "spec.x: Required value"))
        })
        .await
        .unwrap_err();
        assert!(matches!(&err, RetryError::Invalid { message, .. } if message.contains("spec.x")));
        assert_eq!(err.exit(), Exit::BadInput);
        assert_eq!(policy.stats().snapshot().requests, 1);
    }

    #[tokio::test]
    async fn the_budget_ends_an_outage_as_unreachable() {
        let events = Arc::new(AtomicU64::new(0));
        let seen = events.clone();
        let policy = quick()
            .with_unreachable_budget(Duration::from_millis(60))
            .on_event(Sink::new(move |_: &RetryEvent| {
                seen.fetch_add(1, Ordering::Relaxed);
            }));
        let started = Instant::now();
        let err = with_retry(&policy, "list things", || async {
            Err::<(), _>(io(std::io::ErrorKind::ConnectionRefused))
        })
        .await
        .unwrap_err();
        let RetryError::Unreachable { attempts, last, .. } = &err else {
            panic!("expected Unreachable, got {err:?}");
        };
        assert!(
            *attempts > 2,
            "retried within the budget, {attempts} attempts"
        );
        assert!(last.contains("refused"), "{last}");
        assert_eq!(err.exit(), Exit::ApiserverUnreachable);
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            events.load(Ordering::Relaxed),
            policy.stats().snapshot().retries
        );
    }
}
