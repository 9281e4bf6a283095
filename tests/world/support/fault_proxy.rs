//! A fault-injecting proxy between catalyst-bootstrap and a real kube-apiserver.
//!
//! The apiserver speaks only TLS, and a 429 or 503 cannot be injected into a TLS stream from
//! outside, so the proxy terminates TLS: it serves HTTP/1.1 and HTTP/2 on 127.0.0.1 with a
//! certificate for 127.0.0.1 signed by the world's CA (so the tool verifies it like the real
//! apiserver), and forwards every request to the apiserver as a client of its own. A client
//! certificate cannot be forwarded through TLS termination, so the proxy authenticates
//! upstream with an identity the test chooses (the world's admin, or another user); the
//! tool's own certificate ends at the proxy.
//!
//! A schedule of [`Window`]s, each a start offset, a duration, a [`Fault`] and the share of
//! requests it hits, decides what happens to each request; everything else is forwarded
//! unchanged, watches included (their bodies stream through). Every request and every
//! injected fault is counted, so tests can compare the tool's own counts with what the
//! apiserver side saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What the proxy does to a request that falls in a fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded after this delay.
    Latency(Duration),
    /// Answered 429 with a Retry-After header, as the apiserver's max-in-flight filter does.
    Status429 { retry_after: u32 },
    /// Answered 503 with a plain-text body and no Retry-After, as a load balancer in front
    /// of a restarting apiserver does.
    Status503,
    /// The connection (HTTP/1.1) or stream (HTTP/2) is dropped without an answer.
    Reset,
    /// Accepted and never answered: only the client's own timeout ends it.
    BlackHole,
}

/// `fault` hits `ratio` (0..=1) of the requests from `start` to `start + duration`, counted
/// from [`FaultProxy::start`] or the last [`FaultProxy::set_schedule`].
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Duration,
    pub duration: Duration,
    pub fault: Fault,
    pub ratio: f64,
}

impl Window {
    pub fn new(start: Duration, duration: Duration, fault: Fault) -> Window {
        Window {
            start,
            duration,
            fault,
            ratio: 1.0,
        }
    }

    pub fn ratio(mut self, ratio: f64) -> Window {
        self.ratio = ratio;
        self
    }
}

/// What the proxy offers its clients through ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/2 and HTTP/1.1, as the apiserver does.
    Both,
    /// HTTP/1.1 only, as an HTTP/1.1-only proxy in front of an apiserver would.
    Http1Only,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: Instant,
    pub method: hyper::Method,
    pub version: hyper::Version,
    /// For a watch, the `timeoutSeconds` it asked for (`Some(None)` when it asked none).
    pub watch_timeout: Option<Option<u32>>,
}

/// Who the proxy is to the apiserver.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `https://127.0.0.1:<port>`
    pub url: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Upstream {
    /// The world's apiserver, reached as the world's admin.
    pub fn world(world: &super::World) -> Upstream {
        let pki = world.pki_dir();
        Upstream {
            url: world.apiserver_url(),
            ca: pki.join("ca.crt"),
            cert: pki.join("admin.crt"),
            key: pki.join("admin.key"),
        }
    }
}

/// What the proxy saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProxyStats {
    /// Every request received.
    pub requests: u64,
    /// Of those, watches (`watch=true`/`watch=1`).
    pub watches: u64,
    pub latency: u64,
    pub status_429: u64,
    pub status_503: u64,
    pub resets: u64,
    pub black_holes: u64,
    /// Forwarded requests the apiserver did not answer (refused, reset, gone).
    pub upstream_errors: u64,
    /// The largest number of requests received within any 10-second window.
    pub peak_per_10s: u64,
    /// Connections opened while the proxy was frozen whose TLS handshake never finished:
    /// the client gave up on each, so the request it was opened for never arrived.
    pub stalled_handshakes: u64,
}

#[derive(Default)]
struct Counters {
    latency: AtomicU64,
    status_429: AtomicU64,
    status_503: AtomicU64,
    resets: AtomicU64,
    black_holes: AtomicU64,
    upstream_errors: AtomicU64,
    stalled_handshakes: AtomicU64,
}

struct Schedule {
    since: Instant,
    windows: Vec<Window>,
    /// Requests that met an open window: the index into the draw sequence.
    drawn: u64,
}

impl Schedule {
    fn new(windows: Vec<Window>) -> Schedule {
        Schedule {
            since: Instant::now(),
            windows,
            drawn: 0,
        }
    }
}

struct State {
    upstream: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    schedule: Mutex<Schedule>,
    counters: Counters,
    /// Every request as it arrived: times for rates, methods for tests that act on the
    /// first write, versions and watch timeouts for what the client chose.
    arrivals: Mutex<Vec<Arrival>>,
    arrived: Notify,
    /// While set, every connection's reads and writes stall (new connections' handshakes
    /// too): the proxy neither reads requests nor answers HTTP/2 pings.
    frozen: Freeze,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    _certs: tempfile::TempDir,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn pem_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap_or_else(|e| panic!("key {}: {e}", path.display()))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A serving certificate for 127.0.0.1 signed by the CA in `ca_dir` (ca.crt, ca.key).
fn serving_cert(ca_dir: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let ca_crt = ca_dir.join("ca.crt");
    let ca_key = ca_dir.join("ca.key");
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "proxy.key",
            "-out",
            "proxy.csr",
            "-subj",
            "/CN=fault-proxy",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "proxy.csr",
            "-CA",
            ca_crt.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-CAcreateserial",
            "-CAserial",
            "proxy.srl",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "proxy.crt",
        ],
    );
    (dir.join("proxy.crt"), dir.join("proxy.key"))
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port in front of `upstream`, offering HTTP/2 and
    /// HTTP/1.1; the schedule's clock starts now.
    pub async fn start(upstream: Upstream, windows: Vec<Window>) -> FaultProxy {
        FaultProxy::start_with(upstream, windows, Protocols::Both).await
    }

    /// [`FaultProxy::start`], offering `protocols`.
    pub async fn start_with(
        upstream: Upstream,
        windows: Vec<Window>,
        protocols: Protocols,
    ) -> FaultProxy {
        let certs = tempfile::tempdir().unwrap();
        let ca_dir = upstream.ca.parent().expect("CA in a directory").to_owned();
        let (crt, key) = serving_cert(&ca_dir, certs.path());
        let mut server = rustls::ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pem_certs(&crt), pem_key(&key))
            .expect("proxy serving certificate");
        server.alpn_protocols = match protocols {
            Protocols::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Protocols::Http1Only => vec![b"http/1.1".to_vec()],
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));

        let mut roots = rustls::RootCertStore::empty();
        for c in pem_certs(&upstream.ca) {
            roots.add(c).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(pem_certs(&upstream.cert), pem_key(&upstream.key))
            .expect("upstream client certificate");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream: upstream.url.trim_end_matches('/').to_owned(),
            client,
            schedule: Mutex::new(Schedule::new(windows)),
            counters: Counters::default(),
            arrivals: Mutex::default(),
            arrived: Notify::new(),
            frozen: Freeze::default(),
        });
        let task = tokio::spawn(serve(listener, acceptor, protocols, state.clone()));
        FaultProxy {
            addr,
            state,
            task,
            _certs: certs,
        }
    }

    /// Replaces the schedule; offsets count from now.
    pub fn set_schedule(&self, windows: Vec<Window>) {
        *self.state.schedule.lock().unwrap() = Schedule::new(windows);
    }

    /// `kubeconfig` (the world's, or another with a CA, client cert and key) pointed at the
    /// proxy, written to `dir/kubeconfig-proxy`.
    pub fn kubeconfig(&self, kubeconfig: &Path, dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(kubeconfig).unwrap();
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("a server in the kubeconfig")
            .to_owned();
        let path = dir.join("kubeconfig-proxy");
        std::fs::write(
            &path,
            text.replace(&server, &format!("https://{}", self.addr)),
        )
        .unwrap();
        path
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.state.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let arrivals = self.state.arrivals.lock().unwrap();
        let times: Vec<Instant> = arrivals.iter().map(|a| a.at).collect();
        let mut peak = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= Duration::from_secs(10) {
                lo += 1;
            }
            peak = peak.max(hi - lo + 1);
        }
        ProxyStats {
            requests: arrivals.len() as u64,
            watches: arrivals
                .iter()
                .filter(|a| a.watch_timeout.is_some())
                .count() as u64,
            latency: n(&c.latency),
            status_429: n(&c.status_429),
            status_503: n(&c.status_503),
            resets: n(&c.resets),
            black_holes: n(&c.black_holes),
            upstream_errors: n(&c.upstream_errors),
            peak_per_10s: peak as u64,
            stalled_handshakes: n(&c.stalled_handshakes),
        }
    }

    /// Every request so far, as it arrived.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.lock().unwrap().clone()
    }

    /// Stalls every connection, open or new, until [`FaultProxy::thaw`]: what a connection
    /// black-holed on the way (or a wedged server) looks like to the client.
    pub fn freeze(&self) {
        self.state.frozen.set(true);
    }

    pub fn thaw(&self) {
        self.state.frozen.set(false);
    }

    /// Waits until the proxy has received a request with this method (e.g. the first PATCH
    /// of a server-side apply).
    pub async fn wait_for_method(&self, method: hyper::Method) {
        loop {
            let notified = self.state.arrived.notified();
            if self
                .state
                .arrivals
                .lock()
                .unwrap()
                .iter()
                .any(|a| a.method == method)
            {
                return;
            }
            notified.await;
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    protocols: Protocols,
    state: Arc<State>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tcp = Freezable {
                inner: tcp,
                freeze: state.frozen.clone(),
            };
            let frozen = tcp.freeze.is_set();
            let Ok(tls) = acceptor.accept(tcp).await else {
                if frozen {
                    state
                        .counters
                        .stalled_handshakes
                        .fetch_add(1, Ordering::Relaxed);
                }
                return;
            };
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if protocols == Protocols::Http1Only {
                builder = builder.http1_only();
            }
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

/// The switch that stalls every [`Freezable`] connection, with the wakers of those waiting.
#[derive(Clone, Default)]
struct Freeze(Arc<Mutex<(bool, Vec<std::task::Waker>)>>);

impl Freeze {
    fn set(&self, frozen: bool) {
        let wakers = {
            let mut state = self.0.lock().unwrap();
            state.0 = frozen;
            std::mem::take(&mut state.1)
        };
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    fn is_set(&self) -> bool {
        self.0.lock().unwrap().0
    }

    /// Ready unless frozen; when frozen, wakes `cx` on the thaw.
    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let mut state = self.0.lock().unwrap();
        if state.0 {
            state.1.push(cx.waker().clone());
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    }
}

/// A TCP connection that neither reads nor writes while its [`Freeze`] is set.
struct Freezable {
    inner: tokio::net::TcpStream,
    freeze: Freeze,
}

impl tokio::io::AsyncRead for Freezable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.freeze.poll(cx));
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Freezable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.freeze.poll(cx));
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.freeze.poll(cx));
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl State {
    /// The fault for a request arriving now. One draw per request is laid over the open
    /// windows' ratios in turn, so windows of 25% 429 and 25% 503 together hit half. The
    /// draws are the golden-ratio sequence, not random: evenly spread from the first
    /// request, so every window of a schedule hits within its first few requests (a run
    /// whose black holes stall the tool may send only a handful) and a scenario is
    /// reproducible.
    fn pick(&self) -> Option<Fault> {
        const GOLDEN: f64 = 0.618_033_988_749_894_9;
        let mut schedule = self.schedule.lock().unwrap();
        let at = schedule.since.elapsed();
        let open = |w: &Window| at >= w.start && at < w.start + w.duration;
        if !schedule.windows.iter().any(open) {
            return None;
        }
        schedule.drawn += 1;
        let mut draw = (schedule.drawn as f64 * GOLDEN).fract();
        for w in schedule.windows.iter().filter(|w| open(w)) {
            if draw < w.ratio {
                return Some(w.fault);
            }
            draw -= w.ratio;
        }
        None
    }
}

fn is_watch(req: &Request<Incoming>) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain")
        .body(
            Full::new(Bytes::from_static(body.as_bytes()))
                .map_err(|e| match e {})
                .boxed(),
        )
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<ProxyBody>, BoxError> {
    let c = &state.counters;
    let watch_timeout = is_watch(&req).then(|| {
        req.uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|p| p.strip_prefix("timeoutSeconds=")?.parse().ok())
    });
    state.arrivals.lock().unwrap().push(Arrival {
        at: Instant::now(),
        method: req.method().clone(),
        version: req.version(),
        watch_timeout,
    });
    state.arrived.notify_waiters();
    match state.pick() {
        None => {}
        Some(Fault::Latency(delay)) => {
            c.latency.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
        Some(Fault::Status429 { retry_after }) => {
            c.status_429.fetch_add(1, Ordering::Relaxed);
            let body = format!(
                r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{{"retryAfterSeconds":{retry_after}}},"code":429}}"#
            );
            return Ok(Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("Content-Type", "application/json")
                .header("Retry-After", retry_after.to_string())
                .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
                .unwrap());
        }
        Some(Fault::Status503) => {
            c.status_503.fetch_add(1, Ordering::Relaxed);
            return Ok(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers",
            ));
        }
        Some(Fault::Reset) => {
            c.resets.fetch_add(1, Ordering::Relaxed);
            return Err("connection reset by the fault proxy".into());
        }
        Some(Fault::BlackHole) => {
            c.black_holes.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<Infallible>().await;
        }
    }
    forward(req, &state).await
}

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
];

async fn forward(req: Request<Incoming>, state: &State) -> Result<Response<ProxyBody>, BoxError> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = format!("{}{path}", state.upstream).parse()?;
    parts.version = hyper::Version::HTTP_11;
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    match state.client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => Ok(resp.map(|b| b.boxed())),
        Err(e) => {
            // The tool sees what it would see without the proxy: a dropped connection.
            state
                .counters
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            Err(Box::new(e))
        }
    }
}
