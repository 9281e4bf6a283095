//! The client's layers: per-request timeouts, the Retry-After header surfaced as a
//! [`Throttled`] error, every request counted and timed into the run's [`Pressure`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::client::DynBody;
use thiserror::Error;

use crate::health::pressure::Pressure;

/// How long one request may take to connect, and then to answer. kube has no read timeout by
/// default, so a frozen apiserver would hang a request forever; the apiserver's own request
/// timeout is 60 s, and a healthy one answers our small requests in well under a second.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Tunes a kube [`kube::Config`] for kube's own builder (used where the kubeconfig names a
/// proxy): per-request timeouts, and kube's own retry layer off, so that one policy (this
/// one) decides, and every request is counted.
pub(super) fn client_config_tuned(mut cfg: kube::Config) -> kube::Config {
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
///
/// Over HTTP/2 a connection's ping answers keep its reads alive, so the read timeout no
/// longer bounds a request: each waits at most [`READ_TIMEOUT`] for its answer's headers
/// (a watch's come at once), over either protocol.
pub fn client(cfg: kube::Config, pressure: &Pressure) -> Result<kube::Client, kube::Error> {
    Ok(super::connection::stack(cfg)?
        .with_layer(&tower::timeout::TimeoutLayer::new(READ_TIMEOUT))
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
            if let Ok(r) = &result {
                pressure.heard_over(r.version());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_delta_seconds() {
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
}
