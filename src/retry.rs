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
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use kube::client::{ClientBuilder, DynBody};
use thiserror::Error;

use crate::exit::Exit;
use crate::health::pressure::Pressure;

/// How long one request may take to connect, and then to answer. kube has no read timeout by
/// default, so a frozen apiserver would hang a request forever; the apiserver's own request
/// timeout is 60 s, and a healthy one answers our small requests in well under a second.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Tunes a kube [`kube::Config`] for [`with_retry`]: per-request timeouts, and kube's own retry
/// layer off, so that one policy (this one) decides, and [`Stats`] counts every request.
///
/// Watches through a client built from this config must ask the server to end them within
/// [`READ_TIMEOUT`] (e.g. `watcher::Config::default().timeout(25)`), or they are cut off as idle.
pub fn client_config_tuned(mut cfg: kube::Config) -> kube::Config {
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    cfg.read_timeout = Some(READ_TIMEOUT);
    cfg.write_timeout = Some(READ_TIMEOUT);
    // Count the read timeout from when the request was sent, not from when its pooled
    // connection went idle (kube's documentation of `read_timeout` recommends this).
    cfg.reset_reader_on_write = true;
    cfg.default_retry = false;
    cfg
}

/// A client built from [`client_config_tuned`] that also surfaces the Retry-After header.
///
/// kube turns a 429 into an [`kube::Error::Api`] built from the body and drops the headers,
/// and the apiserver's throttling filters (max-in-flight, priority and fairness) answer in plain
/// text with only the header. A small layer turns such answers into a [`Throttled`] error that
/// [`classify`] reads.
///
/// Every request the client sends is counted in [`requests_sent`]: watches, their relists
/// and reachability probes too, which do not go through [`with_retry`].
///
/// Every request is also timed into `pressure` (see [`crate::health::pressure`]): give it
/// the run's [`RetryPolicy::pressure`], so the judgement sees what this client saw.
pub fn client(cfg: kube::Config, pressure: &Pressure) -> Result<kube::Client, kube::Error> {
    let builder = ClientBuilder::try_from(client_config_tuned(cfg))?;
    Ok(builder
        .with_layer(&tower::util::MapResultLayer::new(
            surface_retry_after::<Box<DynBody>>,
        ))
        .with_layer(&tower::util::MapRequestLayer::new(
            |request: http::Request<kube::client::Body>| {
                REQUESTS_SENT.fetch_add(1, Ordering::Relaxed);
                request
            },
        ))
        .with_layer(&tower::layer::layer_fn(|inner| Timed {
            inner,
            pressure: pressure.clone(),
        }))
        .build())
}

/// Records how long each request took to be answered (its response headers, for a watch)
/// in [`crate::health::pressure`], and how it ended.
#[derive(Clone)]
struct Timed<S> {
    inner: S,
    pressure: Pressure,
}

impl<S, B> tower::Service<http::Request<kube::client::Body>> for Timed<S>
where
    S: tower::Service<
            http::Request<kube::client::Body>,
            Response = http::Response<B>,
            Error = tower::BoxError,
        >,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        use crate::health::pressure::{Outcome, READYZ};
        let started = Instant::now();
        // The timed `/readyz` reads record themselves.
        let timed = request.uri().path() != READYZ;
        let answer = self.inner.call(request);
        let pressure = self.pressure.clone();
        Box::pin(async move {
            let result = answer.await;
            if !timed {
                return result;
            }
            let outcome = match &result {
                Ok(r) if r.status() == http::StatusCode::TOO_MANY_REQUESTS => Outcome::Throttled,
                Ok(_) => Outcome::Answered,
                Err(e) if e.downcast_ref::<Throttled>().is_some() => Outcome::Throttled,
                Err(_) => Outcome::Failed,
            };
            pressure.record(started, outcome);
            result
        })
    }
}

/// Requests sent by clients from [`client`] in this process (the command's one client).
static REQUESTS_SENT: AtomicU64 = AtomicU64::new(0);

/// Every request sent to the apiserver so far by clients from [`client`], whatever sent it:
/// [`Stats`] counts only [`with_retry`]'s attempts.
pub fn requests_sent() -> u64 {
    REQUESTS_SENT.load(Ordering::Relaxed)
}

fn surface_retry_after<B>(
    result: Result<http::Response<B>, tower::BoxError>,
) -> Result<http::Response<B>, tower::BoxError> {
    let response = result?;
    let status = response.status().as_u16();
    if !matches!(status, 429 | 503) {
        return Ok(response);
    }
    let header = response.headers().get(http::header::RETRY_AFTER);
    match header
        .and_then(|h| h.to_str().ok())
        .and_then(parse_retry_after)
    {
        Some(retry_after) => Err(Box::new(Throttled {
            status,
            retry_after,
        })),
        None => Ok(response),
    }
}

/// Retry-After in delta-seconds, the form the apiserver sends (it never sends an HTTP date).
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A 429 or 503 answer that carried a Retry-After header.
#[derive(Debug, Error)]
#[error("HTTP {status} from the apiserver, retry after {}s", retry_after.as_secs())]
pub struct Throttled {
    pub status: u16,
    pub retry_after: Duration,
}

/// Request counters, shared by every clone of a [`RetryPolicy`].
#[derive(Debug, Default)]
pub struct Stats {
    operations: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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

/// What an observer hears before each retry: enough for a progress line or an NDJSON event.
#[derive(Debug, Clone)]
pub struct RetryEvent<'a> {
    pub what: &'a str,
    /// The attempt that just failed, from 1.
    pub attempt: u32,
    pub delay: Duration,
    /// How long the failures have lasted so far.
    pub failing_for: Duration,
    pub error: &'a kube::Error,
}

type Observer = Arc<dyn Fn(&RetryEvent<'_>) + Send + Sync>;

/// Backoff parameters, the failure budget and the shared counters.
#[derive(Clone)]
pub struct RetryPolicy {
    /// First delay; each retry doubles it up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long consecutive transient failures may last before [`RetryError::Unreachable`].
    pub unreachable_budget: Duration,
    stats: Arc<Stats>,
    observer: Option<Observer>,
    pressure: Pressure,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            unreachable_budget: Duration::from_secs(5 * 60),
            stats: Arc::default(),
            observer: None,
            pressure: Pressure::default(),
        }
    }
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("unreachable_budget", &self.unreachable_budget)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
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

    /// Called before every retry, e.g. to report "apiserver unreachable, retrying".
    pub fn with_observer(
        mut self,
        observer: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
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

/// A call that failed for good. `what` names the call, e.g. `apply HelmRelease flux-system/x`.
#[derive(Debug, Error)]
pub enum RetryError {
    #[error(
        "{what}: the apiserver stayed unreachable, throttling or failing for {}s ({attempts} attempts); last error: {last}",
        elapsed.as_secs()
    )]
    Unreachable {
        what: String,
        elapsed: Duration,
        attempts: u32,
        last: String,
    },
    #[error("{what}: forbidden: cannot {verb} {resource}: {message}")]
    Forbidden {
        what: String,
        verb: String,
        resource: String,
        message: String,
    },
    #[error("{what}: unauthorized (HTTP 401): {message}")]
    Unauthorized { what: String, message: String },
    /// 400 or 422: the request (in practice, a manifest) was rejected.
    #[error("{what}: rejected as invalid: {message}")]
    Invalid { what: String, message: String },
    #[error("{what}: not found: {message}")]
    NotFound { what: String, message: String },
    #[error("{what}: conflict: {message}")]
    Conflict { what: String, message: String },
    /// Discovery found no such kind or group.
    #[error("{what}: not served by the apiserver: {message}")]
    NotServed { what: String, message: String },
    #[error("{what}: HTTP {code}: {message}")]
    Api {
        what: String,
        code: u16,
        message: String,
    },
    /// The server's certificate was refused: TLS verification is on, and the kubeconfig's
    /// certificate authority does not vouch for it.
    #[error(
        "{what}: TLS verification failed: the apiserver's certificate is not trusted ({cause}); \
         check the certificate-authority of the kubeconfig's cluster, or pass \
         --insecure-skip-tls-verify to skip verification (unsafe)"
    )]
    Tls { what: String, cause: String },
    /// A failure on our side that retrying cannot fix: TLS setup, credentials plugin,
    /// an undecodable answer.
    #[error("{what}: {message}")]
    Client { what: String, message: String },
}

impl RetryError {
    /// Unreachable → 6; Forbidden and Unauthorized → 8; Invalid (the apiserver rejected what
    /// we sent, i.e. the manifest) → 3; an untrusted certificate → 9; anything else is
    /// unexpected → 1.
    pub fn exit(&self) -> Exit {
        match self {
            RetryError::Unreachable { .. } => Exit::ApiserverUnreachable,
            RetryError::Forbidden { .. } | RetryError::Unauthorized { .. } => {
                Exit::PermissionDenied
            }
            RetryError::Invalid { .. } => Exit::BadInput,
            RetryError::Tls { .. } => Exit::TlsUntrusted,
            RetryError::NotFound { .. }
            | RetryError::Conflict { .. }
            | RetryError::NotServed { .. }
            | RetryError::Api { .. }
            | RetryError::Client { .. } => Exit::Internal,
        }
    }
}

/// Whether time can fix an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry, after at least `retry_after` when the server said so.
    Transient {
        retry_after: Option<Duration>,
    },
    Permanent,
}

const TRANSIENT: Class = Class::Transient { retry_after: None };

/// Sorts an error into transient or permanent. Pure, so it is unit-tested on built errors.
pub fn classify(err: &kube::Error) -> Class {
    use kube::Error as E;
    match err {
        E::Api(status) => classify_status(status),
        E::Service(inner) => classify_transport(inner.as_ref()),
        E::HyperError(inner) => classify_transport(inner),
        E::ReadEvents(_) => TRANSIENT,
        _ => Class::Permanent,
    }
}

fn classify_status(status: &kube::core::Status) -> Class {
    // An etcd hiccup can surface under several codes; the text is what identifies it.
    let etcd_hiccup = [
        "etcdserver: leader changed",
        "etcdserver: request timed out",
    ]
    .iter()
    .any(|m| status.message.contains(m));
    let retry_after = status
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s.into()));
    match status.code {
        408 | 429 | 500 | 502 | 503 | 504 => Class::Transient { retry_after },
        _ if etcd_hiccup => Class::Transient { retry_after },
        _ => Class::Permanent,
    }
}

/// Transport failures (refused, reset, timed out, TLS handshake cut short) are transient,
/// except certificate problems, which the next attempt would meet again.
fn classify_transport(err: &(dyn StdError + 'static)) -> Class {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<Throttled>() {
            return Class::Transient {
                retry_after: Some(t.retry_after),
            };
        }
        next = e.source();
    }
    if certificate_error(err).is_some() {
        return Class::Permanent;
    }
    TRANSIENT
}

/// The rustls certificate error somewhere in an error's chain.
fn certificate_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e
            .downcast_ref::<rustls::Error>()
            .filter(|t| is_certificate_error(t))
        {
            return Some(tls);
        }
        // io::Error::source() skips its payload, which hyper-rustls nests two deep
        // (an io::Error in an io::Error); look at the payload itself.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = certificate_error(inner)
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// Why the server's certificate was refused, when that is what failed the request.
pub fn untrusted_certificate(err: &kube::Error) -> Option<String> {
    let tls = match err {
        kube::Error::Service(inner) => certificate_error(inner.as_ref()),
        kube::Error::HyperError(inner) => certificate_error(inner),
        _ => None,
    }?;
    Some(tls.to_string())
}

fn is_certificate_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

/// The permanent error for a final failure.
fn permanent(what: &str, err: &kube::Error) -> RetryError {
    let what = what.to_owned();
    let status = match err {
        kube::Error::Api(status) => status,
        kube::Error::Discovery(e) => {
            return RetryError::NotServed {
                what,
                message: e.to_string(),
            };
        }
        other => {
            if let Some(cause) = untrusted_certificate(other) {
                return RetryError::Tls { what, cause };
            }
            return RetryError::Client {
                what,
                message: other.to_string(),
            };
        }
    };
    let message = status.message.clone();
    match status.code {
        401 => RetryError::Unauthorized { what, message },
        403 => {
            let (verb, resource) = forbidden_parts(status);
            RetryError::Forbidden {
                what,
                verb,
                resource,
                message,
            }
        }
        400 | 422 => RetryError::Invalid { what, message },
        404 => RetryError::NotFound { what, message },
        409 => RetryError::Conflict { what, message },
        code => RetryError::Api {
            what,
            code,
            message,
        },
    }
}

/// Verb and resource of a 403. The RBAC authorizer words its refusals as
/// `User "u" cannot <verb> resource "<resource>" in API group "<group>" ...`;
/// other authorizers may not, so fall back to the details the Status carries.
fn forbidden_parts(status: &kube::core::Status) -> (String, String) {
    let msg = &status.message;
    let verb = msg
        .split_once(" cannot ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("")
        .to_owned();
    let quoted_after = |marker: &str| {
        msg.split_once(marker)
            .and_then(|(_, rest)| rest.split('"').nth(1))
            .map(str::to_owned)
    };
    let resource = match (quoted_after(" resource "), quoted_after(" in API group ")) {
        (Some(r), Some(g)) if !g.is_empty() => format!("{r}.{g}"),
        (Some(r), _) => r,
        _ => status
            .details
            .as_ref()
            .map(|d| match d.group.as_str() {
                "" => d.kind.clone(),
                g => format!("{}.{g}", d.kind),
            })
            .unwrap_or_default(),
    };
    (verb, resource)
}

/// Full jitter (a uniform draw below the exponential delay) spreads the retries of many
/// clients best; the floor keeps a retry from hammering at once. `unit` is a draw in [0, 1).
fn full_jitter(backoff: Duration, floor: Duration, unit: f64) -> Duration {
    floor.max(backoff.mul_f64(unit.clamp(0.0, 1.0)))
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

    // backon supplies the capped exponential sequence; jitter, Retry-After and the budget are
    // applied in `adjust`, which sees the error.
    let backoff = ExponentialBuilder::new()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .without_max_times();
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
        let jittered = full_jitter(backoff?, policy.min_delay, fastrand::f64());
        let remaining = policy.unreachable_budget.saturating_sub(since.elapsed());
        next_delay(jittered, retry_after, remaining)
    })
    .notify(|e, delay| {
        stats.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(observer) = &policy.observer {
            observer(&RetryEvent {
                what,
                attempt: attempts.get(),
                delay,
                failing_for: first_failure.get().map_or(Duration::ZERO, |t| t.elapsed()),
                error: e,
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn surfaced_header_turns_a_throttled_answer_into_an_error() {
        let answer = |status: u16, retry_after: Option<&str>| {
            let mut b = http::Response::builder().status(status);
            if let Some(v) = retry_after {
                b = b.header("Retry-After", v);
            }
            surface_retry_after(Ok(b.body(()).unwrap()))
        };
        let err = answer(429, Some("4")).unwrap_err();
        let throttled = err.downcast_ref::<Throttled>().expect("a Throttled error");
        assert_eq!(throttled.retry_after, Duration::from_secs(4));
        assert!(answer(503, Some("1")).is_err());
        assert_eq!(answer(429, None).unwrap().status(), 429);
        assert_eq!(answer(500, Some("1")).unwrap().status(), 500);
        assert_eq!(answer(200, Some("1")).unwrap().status(), 200);
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
    fn full_jitter_stays_between_floor_and_backoff() {
        let ms = Duration::from_millis;
        assert_eq!(full_jitter(ms(1000), ms(100), 0.0), ms(100));
        assert_eq!(full_jitter(ms(1000), ms(100), 0.5), ms(500));
        assert!(full_jitter(ms(1000), ms(100), 0.999_999) <= ms(1000));
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
            .with_observer(move |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            });
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
