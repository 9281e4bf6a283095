//! A recorded apiserver for unit tests: a `kube::Client` whose requests are checked, in
//! order, against a script of expected requests and the answers a real apiserver gave to
//! them, so the I/O around a decision is proven without a cluster.

use http::{Method, Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tokio::task::JoinHandle;

/// One expected request (method and path) and the answer to give it.
pub struct Exchange {
    method: Method,
    path: String,
    status: u16,
    answer: Value,
}

/// Expects `method path` and answers `status` with the JSON `answer`.
pub fn exchange(method: Method, path: &str, status: u16, answer: Value) -> Exchange {
    Exchange {
        method,
        path: path.to_owned(),
        status,
        answer,
    }
}

/// A request the client sent.
#[derive(Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub content_type: Option<String>,
    /// The JSON body, `Null` when there was none.
    pub body: Value,
}

impl Seen {
    /// The value of query parameter `key`, percent-decoding left out (the tests' values
    /// need none).
    pub fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.uri.split_once('?')?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    }
}

/// A client answering `script`; the handle gives every request seen once the client is
/// dropped, and panics on a request out of the script or one the script still expected.
pub fn apiserver(script: Vec<Exchange>) -> (Client, JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let answering = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut script = script.into_iter();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.expect("a request body").to_bytes();
            let request = Seen {
                method: parts.method,
                uri: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let Some(next) = script.next() else {
                panic!(
                    "a request the script does not hold: {} {}",
                    request.method, request.uri
                );
            };
            let path = request.uri.split('?').next().unwrap_or_default();
            assert_eq!(
                (&request.method, path),
                (&next.method, next.path.as_str()),
                "request {} of the script",
                seen.len() + 1
            );
            let answer = Response::builder()
                .status(next.status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(next.answer.to_string().into_bytes()))
                .expect("a response");
            respond.send_response(answer);
            seen.push(request);
        }
        let left: Vec<String> = script.map(|e| format!("{} {}", e.method, e.path)).collect();
        assert!(
            left.is_empty(),
            "requests the script expected but never got: {left:?}"
        );
        seen
    });
    (Client::new(service, "default"), answering)
}

/// The apiserver's answer for an object that does not exist.
pub fn not_found(kind: &str, name: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound",
        "details": {"name": name, "kind": kind}, "code": 404,
    })
}
