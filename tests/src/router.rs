//! The local stand-in for API Gateway: maps the management API's production method + path to
//! the function that serves it under `cargo lambda watch`.
//!
//! Only the routes of the operation table (`keyward_functions::operation::OPERATIONS`) exist, as behind the deployed HTTP API: any other path answers
//! 404 and a known path with another method answers 405 with `Allow`, both as problem+json.
//! A matched request is forwarded unchanged (method, headers, query string, streamed body, plus
//! the client address in `X-Forwarded-For`) to `{upstream}/lambda-url/{function}{path}`;
//! `cargo lambda watch` strips `/lambda-url/{function}`, so the function sees the production
//! path (`rawPath` `/v1/workspaces/acme/keys`) and parses its parameters from it.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyward_common::Problem;
use keyward_functions::Operation;
use keyward_functions::operation::{Access, OPERATIONS, Row};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The functions (binaries) that serve the operation table's rows to people: the management
/// functions and the console, without `usage` (the edge's route).
#[must_use]
pub fn management_functions() -> Vec<&'static str> {
    keyward_functions::operation::functions()
        .into_iter()
        .filter(|f| *f != Operation::ReportUsage.function())
        .collect()
}

/// What the route table says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Forward to this function.
    Function(&'static str),
    /// The path exists, the method does not: these methods do.
    MethodNotAllowed(Vec<&'static str>),
    /// No route has this path.
    NotFound,
}

/// Looks `method` + `path` up in the operation table ([`OPERATIONS`]), matching paths exactly as
/// API Gateway does (no stage prefix, no empty segments).
#[must_use]
pub fn resolve(method: &str, path: &str) -> Resolution {
    let matching: Vec<&Row> = OPERATIONS
        .iter()
        .filter(|r| path_matches(r.path, path))
        .collect();
    if matching.is_empty() {
        // API Gateway routes `/console/` as `/console`; only the console's public page relies on
        // it (management paths stay exact, so a client's stray slash is caught here).
        if let Some(trimmed) = path.strip_suffix('/').filter(|t| !t.is_empty())
            && let Some(r) = OPERATIONS
                .iter()
                .find(|r| r.access == Access::Public && r.method == method && r.path == trimmed)
        {
            return Resolution::Function(r.function);
        }
        return Resolution::NotFound;
    }
    match matching.iter().find(|r| r.method == method) {
        Some(r) => Resolution::Function(r.function),
        None => Resolution::MethodNotAllowed(matching.iter().map(|r| r.method).collect()),
    }
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) => {
                let is_param = w.starts_with('{') && w.ends_with('}');
                if (is_param && g.is_empty()) || (!is_param && w != g) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The router, serving on `127.0.0.1` until dropped.
#[derive(Debug)]
pub struct Router {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Router {
    /// Starts the router on a port chosen by the OS, forwarding to `upstream`
    /// (`http://127.0.0.1:{port}` of `cargo lambda watch`). Must run inside a tokio runtime,
    /// which then drives it.
    ///
    /// # Errors
    /// When no port can be bound or `upstream` is not an `http://host:port` base URL.
    pub async fn start(upstream: &str) -> Result<Self> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        upstream
            .parse::<Uri>()
            .with_context(|| format!("router upstream {upstream:?} is not a URL"))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the router's port")?;
        let addr = listener.local_addr()?;
        let proxy = Proxy {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let task = tokio::spawn(serve(listener, proxy));
        Ok(Self { addr, task })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the router listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every open connection.
        self.task.abort();
    }
}

#[derive(Debug, Clone)]
struct Proxy {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn serve(listener: TcpListener, proxy: Proxy) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("router: accept failed: {err}");
                continue;
            }
        };
        // Reap finished connections so the set does not grow for the life of the stack.
        while connections.try_join_next().is_some() {}
        let proxy = proxy.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
            });
            // A client hanging up mid-request is not the router's error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Proxy {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let path = req.uri().path().to_owned();
        match resolve(req.method().as_str(), &path) {
            Resolution::NotFound => problem(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("No route for {path}."),
                None,
            ),
            Resolution::MethodNotAllowed(allowed) => {
                let allow = allowed.join(", ");
                problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{} is not allowed on {path}; use {allow}.", req.method()),
                    Some(allow),
                )
            }
            Resolution::Function(function) => match self.forward(req, function, peer).await {
                Ok(response) => response,
                Err(err) => {
                    eprintln!("router: forwarding {path} to {function} failed: {err:#}");
                    problem(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        format!("The {function} function did not answer."),
                        None,
                    )
                }
            },
        }
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        function: &str,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>> {
        let (mut parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .context("reading the request body")?
            .to_bytes();
        strip_hop_by_hop(&mut parts.headers);
        add_forwarded_for(&mut parts.headers, peer);
        if std::str::from_utf8(&body).is_err() {
            // `cargo lambda watch`'s HTTP emulation refuses a body that is not UTF-8 with its own
            // 500; API Gateway hands such a body to the function base64-encoded. Do what API
            // Gateway does: invoke the function with the event it would send.
            return self.invoke(&parts, &body, function, peer).await;
        }
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = format!("{}/lambda-url/{function}{path_and_query}", self.upstream)
            .parse()
            .context("building the upstream URI")?;
        parts.version = hyper::Version::HTTP_11;
        let repeatable = repeatable(&parts.method, &parts.headers);
        let mut attempt = 1;
        loop {
            let request = Request::from_parts(clone_parts(&parts), Full::new(body.clone()));
            let response = self
                .client
                .request(request)
                .await
                .with_context(|| format!("calling {function} through cargo lambda watch"))?;
            let (mut head, answer) = response.into_parts();
            strip_hop_by_hop(&mut head.headers);
            if head.status != StatusCode::INTERNAL_SERVER_ERROR {
                return Ok(Response::from_parts(head, answer.boxed()));
            }
            let answer = answer
                .collect()
                .await
                .context("reading a 500 from cargo lambda watch")?
                .to_bytes();
            if !lost_by_the_emulator(&answer) {
                return Ok(Response::from_parts(head, full(answer)));
            }
            if repeatable && attempt < EMULATOR_ATTEMPTS {
                eprintln!(
                    "router: cargo lambda watch lost {function}'s answer to {} {}; sending \
                     it again (attempt {})",
                    parts.method,
                    parts.uri.path(),
                    attempt + 1
                );
                attempt += 1;
                continue;
            }
            eprintln!(
                "router: cargo lambda watch lost {function}'s answer to {} {}; not repeatable",
                parts.method,
                parts.uri.path()
            );
            return Ok(problem(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!(
                    "The local Lambda emulator lost the {function} function's answer; the \
                     request may have been applied. Send it again with the same \
                     Idempotency-Key, or read the resource to see."
                ),
                None,
            ));
        }
    }

    /// Invokes `function` with the API Gateway HTTP API (payload 2.0) event of a request whose
    /// body is binary, and turns its answer back into a response.
    async fn invoke(
        &self,
        parts: &hyper::http::request::Parts,
        body: &Bytes,
        function: &str,
        peer: SocketAddr,
    ) -> Result<Response<ProxyBody>> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut headers = serde_json::Map::new();
        for name in parts.headers.keys() {
            let joined: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            headers.insert(name.as_str().to_owned(), Value::from(joined.join(",")));
        }
        let path = parts.uri.path();
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": parts.uri.query().unwrap_or(""),
            "headers": headers,
            "requestContext": {
                "accountId": "local",
                "apiId": "local",
                "domainName": "127.0.0.1",
                "domainPrefix": "local",
                "requestId": format!("router-{}", std::process::id()),
                "routeKey": "$default",
                "stage": "$default",
                "time": "",
                "timeEpoch": 0,
                "http": {
                    "method": parts.method.as_str(),
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": peer.ip().to_string(),
                    "userAgent": "",
                },
            },
            "body": b64.encode(body),
            "isBase64Encoded": true,
        });
        let url: Uri = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.upstream
        )
        .parse()
        .context("building the invoke URI")?;
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(event.to_string())))
            .context("building the invoke request")?;
        let answer = self
            .client
            .request(request)
            .await
            .with_context(|| format!("invoking {function} through cargo lambda watch"))?
            .into_body()
            .collect()
            .await
            .context("reading the function's answer")?
            .to_bytes();
        let answer: Value =
            serde_json::from_slice(&answer).context("the function's answer is not JSON")?;
        let status = answer["statusCode"].as_u64().unwrap_or(502);
        let mut response = Response::builder().status(u16::try_from(status).unwrap_or(502));
        if let Some(map) = answer["headers"].as_object() {
            for (k, v) in map {
                if let Some(v) = v.as_str() {
                    response = response.header(k.as_str(), v);
                }
            }
        }
        let text = answer["body"].as_str().unwrap_or("");
        let bytes = if answer["isBase64Encoded"].as_bool() == Some(true) {
            Bytes::from(
                b64.decode(text)
                    .context("the function's body is not base64")?,
            )
        } else {
            Bytes::from(text.to_owned())
        };
        response
            .body(Full::new(bytes).map_err(|never| match never {}).boxed())
            .context("building the response")
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Appends the client address, as API Gateway does.
fn add_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {ip}"),
        _ => ip,
    };
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Ok(port) = HeaderValue::try_from(peer.port().to_string()) {
        headers.insert("x-forwarded-port", port);
    }
}

/// How many times the router sends one repeatable request to `cargo lambda watch` when the
/// emulator loses the function's answer.
const EMULATOR_ATTEMPTS: u32 = 3;

/// Whether sending the request again cannot apply it twice: a read, or a write with an
/// `Idempotency-Key` (the function answers a repeat with its first answer).
fn repeatable(method: &hyper::Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    ) || headers.contains_key("idempotency-key")
}

/// Whether a 500 is `cargo lambda watch`'s own (its problem document, typed
/// `https://httpstatuses.com/500`, with no `code`), not the function's: under concurrent
/// invocations the emulator now and then answers so after the function has answered (its log
/// says `request handled … status 200`, the emulator's `response failed … 500` right after).
/// Every answer of a Keyward function carries a `code`.
fn lost_by_the_emulator(body: &[u8]) -> bool {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    doc.get("code").is_none()
        && doc
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("https://httpstatuses.com/"))
}

/// A copy of a request head to send again (`Parts` is not `Clone`: its extensions are not).
fn clone_parts(parts: &hyper::http::request::Parts) -> hyper::http::request::Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|n| match n {}).boxed()
}

fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    allow: Option<String>,
) -> Response<ProxyBody> {
    let body = Problem::new(status.as_u16(), code, detail).to_json();
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(keyward_common::problem::CONTENT_TYPE),
    );
    if let Some(allow) = allow.and_then(|a| HeaderValue::try_from(a).ok()) {
        headers.insert(header::ALLOW, allow);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn every_production_route_resolves_to_its_function() {
        let cases = [
            ("POST", "/v1/workspaces/acme/keys", "create-key"),
            ("GET", "/v1/workspaces/acme/keys", "list-keys"),
            ("GET", "/v1/workspaces/acme/keys/key_1", "get-key"),
            ("PATCH", "/v1/workspaces/acme/keys/key_1", "update-key"),
            ("DELETE", "/v1/workspaces/acme/keys/key_1", "revoke-key"),
            (
                "POST",
                "/v1/workspaces/acme/keys/key_1/rotate",
                "rotate-key",
            ),
            ("GET", "/v1/workspaces/acme/audit", "list-audit"),
            ("POST", "/v1/usage", "usage"),
            ("GET", "/console", "console"),
            ("GET", "/console/", "console"),
            ("GET", "/console/app.js", "console"),
        ];
        for (method, path, function) in cases {
            assert_eq!(
                resolve(method, path),
                Resolution::Function(function),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn paths_outside_the_api_are_not_found() {
        for path in [
            "/",
            "/v1",
            "/v1/workspaces",
            "/v1/workspaces/acme",
            "/v1/workspaces//keys",
            "/v1/workspaces/acme/keys/",
            "/v1/workspaces/acme/keys/key_1/rotate/now",
            "/v2/workspaces/acme/keys",
            "/lambda-url/create-key/v1/workspaces/acme/keys",
            "/console/views/keys.js",
            "/lambda-url/console/console",
        ] {
            assert_eq!(resolve("GET", path), Resolution::NotFound, "{path}");
        }
    }

    #[test]
    fn a_known_path_with_another_method_lists_the_allowed_ones() {
        assert_eq!(
            resolve("PUT", "/v1/workspaces/acme/keys/key_1"),
            Resolution::MethodNotAllowed(vec!["GET", "PATCH", "DELETE"])
        );
        assert_eq!(
            resolve("DELETE", "/v1/workspaces/acme/keys"),
            Resolution::MethodNotAllowed(vec!["POST", "GET"])
        );
        assert_eq!(
            resolve("GET", "/v1/workspaces/acme/keys/key_1/rotate"),
            Resolution::MethodNotAllowed(vec!["POST"])
        );
    }

    /// A stand-in for `cargo lambda watch`: answers every request with what it received.
    async fn echo_upstream() -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let headers: serde_json::Map<String, Value> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap())))
                            .collect();
                        let echo = json!({
                            "method": parts.method.as_str(),
                            "path": parts.uri.path(),
                            "query": parts.uri.query(),
                            "headers": headers,
                            "body": String::from_utf8_lossy(&body),
                        });
                        let response = Response::builder()
                            .status(StatusCode::CREATED)
                            .header("content-type", "application/json")
                            .header("etag", "\"7\"")
                            .body(Full::new(Bytes::from(echo.to_string())))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_matched_request_reaches_the_function_with_everything_the_client_sent() {
        let (upstream, _stub) = echo_upstream().await;
        let router = Router::start(&upstream).await.unwrap();
        let response = reqwest::Client::new()
            .patch(format!(
                "{}/v1/workspaces/acme/keys/key_1?dry=1&x=%20y",
                router.url()
            ))
            .header("authorization", "Bearer t")
            .header("if-match", "\"3\"")
            .header("x-forwarded-for", "203.0.113.9")
            .header("content-type", "application/json")
            .body(r#"{"name":"n"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["etag"], "\"7\"");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["method"], "PATCH");
        assert_eq!(
            echo["path"],
            "/lambda-url/update-key/v1/workspaces/acme/keys/key_1"
        );
        assert_eq!(echo["query"], "dry=1&x=%20y");
        assert_eq!(echo["body"], r#"{"name":"n"}"#);
        assert_eq!(echo["headers"]["authorization"], "Bearer t");
        assert_eq!(echo["headers"]["if-match"], "\"3\"");
        assert_eq!(echo["headers"]["content-type"], "application/json");
        assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_problem_json_without_reaching_a_function() {
        let (upstream, _stub) = echo_upstream().await;
        let router = Router::start(&upstream).await.unwrap();
        let client = reqwest::Client::new();

        let response = client
            .get(format!("{}/v1/nope", router.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert_eq!(body["status"], 404);

        let response = client
            .put(format!("{}/v1/workspaces/acme/keys/key_1", router.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET, PATCH, DELETE");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn an_unreachable_function_is_a_bad_gateway_not_a_hang() {
        let port = crate::process::free_port().unwrap();
        let router = Router::start(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let response = reqwest::Client::new()
            .get(format!("{}/v1/workspaces/acme/keys", router.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "bad_gateway");
    }

    #[test]
    fn only_the_emulators_own_500_is_taken_for_a_lost_answer() {
        let emulator =
            br#"{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}"#;
        assert!(lost_by_the_emulator(emulator));
        let ours = Problem::new(500, "internal", "Something went wrong.").to_json();
        assert!(!lost_by_the_emulator(ours.as_bytes()));
        let typed_but_coded = br#"{"type":"https://httpstatuses.com/500","code":"internal"}"#;
        assert!(!lost_by_the_emulator(typed_but_coded));
        let crashed = br#"{"errorType":"&alloc::string::String","errorMessage":"boom"}"#;
        assert!(!lost_by_the_emulator(crashed));
        assert!(!lost_by_the_emulator(b"Internal Server Error"));
    }

    #[test]
    fn only_reads_and_idempotent_writes_are_sent_again() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert("idempotency-key", HeaderValue::from_static("import-1"));
        assert!(repeatable(&hyper::Method::GET, &none));
        assert!(repeatable(&hyper::Method::HEAD, &none));
        assert!(repeatable(&hyper::Method::POST, &keyed));
        for method in [
            hyper::Method::POST,
            hyper::Method::PATCH,
            hyper::Method::PUT,
            hyper::Method::DELETE,
        ] {
            assert!(!repeatable(&method, &none), "{method}");
        }
    }
}
