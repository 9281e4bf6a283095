//! How the client reaches the apiserver: HTTP/2 where it offers it (through ALPN, as every
//! kube-apiserver does), with keep-alive pings on every connection, on kube's own TLS
//! configuration, credentials and headers. kube's own builder speaks HTTP/1.1 only.
//!
//! The pings are what notices a stopped or wedged apiserver: the apiserver process answers
//! them, not the kernel, so a SIGSTOPped apiserver stops answering within [`PING_TIMEOUT`]
//! while its TCP connections still look alive. hyper then closes the connection, every
//! request and watch on it fails, and that failure starts an outage as any other does. With
//! the connection itself watched, watches can last as long as the apiserver allows
//! ([`LONG_WATCH_SECS`]) instead of being renewed before an idle read times out.
//!
//! Where a proxy in between speaks HTTP/1.1 only, ALPN settles on HTTP/1.1: there are no
//! pings, so watches are renewed every [`WATCH_TIMEOUT_SECS`] and the read timeout notices
//! a silent connection, as before ([`watch_timeout_secs`] picks by what the answers came over).

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use super::client::{CONNECT_TIMEOUT, READ_TIMEOUT};
use crate::health::pressure::Pressure;

/// How often every HTTP/2 connection is pinged, idle or not.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long a ping may go unanswered before the connection is closed as dead. A late answer
/// is still an answer: in the test world's calibrated saturation (3,000 Services, the
/// apiserver capped at 1 % of a core while a client lists them all, as external-dns's cache
/// sync does) pings took 10-14 s to be answered, so 20 s leaves room, and a frozen apiserver
/// is noticed within [`PING_INTERVAL`] + [`PING_TIMEOUT`] (25 s) without a request being sent.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// What a watch over HTTP/2 asks for: five minutes, then the watcher resumes it from its
/// last resource version (bookmarks keep that fresh).
pub const LONG_WATCH_SECS: u32 = 300;
/// What a watch over HTTP/1.1 asks for: the apiserver ends it before the client's read
/// timeout would cut it as idle, and the watcher resumes it.
pub const WATCH_TIMEOUT_SECS: u32 = 25;

/// The `timeoutSeconds` a watch should ask for: long over HTTP/2, whose pings notice a dead
/// connection; short over HTTP/1.1, or before anything has been answered.
pub fn watch_timeout_secs(pressure: &Pressure) -> u32 {
    if pressure.protocol() == Some(http::Version::HTTP_2) {
        LONG_WATCH_SECS
    } else {
        WATCH_TIMEOUT_SECS
    }
}

/// The service kube's builder makes, and [`stack`] too.
pub(super) type Stack = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// The connection stack under the client's own layers: kube's base URI, credentials and
/// extra headers on a hyper client that offers HTTP/2 and HTTP/1.1, pings HTTP/2
/// connections, and times out connecting ([`CONNECT_TIMEOUT`], TCP and TLS) and reading
/// ([`READ_TIMEOUT`]; on HTTP/2 the ping answers keep a healthy connection reading).
///
/// A kubeconfig with a proxy URL goes through kube's own builder (HTTP/1.1), which says so
/// when this build cannot speak to that proxy.
pub(super) fn stack(cfg: kube::Config) -> Result<ClientBuilder<Stack>, kube::Error> {
    if cfg.proxy_url.is_some() {
        return ClientBuilder::try_from(super::client::client_config_tuned(cfg));
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = &cfg.tls_server_name {
        let name = name
            .clone()
            .try_into()
            .map_err(|e| kube::Error::Service(format!("tls-server-name {name:?}: {e}").into()))?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut connector =
        hyper_timeout::TimeoutConnector::new(tls.enable_all_versions().wrap_connector(http));
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_read_timeout(Some(READ_TIMEOUT));
    connector.set_write_timeout(Some(READ_TIMEOUT));
    // Count the read timeout from when a request was written, not from when its pooled
    // connection went idle.
    connector.set_reset_reader_on_write(true);
    let hyper = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build::<_, Body>(connector);
    let service = ServiceBuilder::new()
        .layer(cfg.base_uri_layer())
        .option_layer(cfg.auth_layer()?)
        .layer(cfg.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper)
        .map_response(|response: Response<hyper::body::Incoming>| {
            response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>)
        });
    Ok(ClientBuilder::new(
        BoxService::new(service),
        cfg.default_namespace,
    ))
}
