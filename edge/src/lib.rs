//! Keyward's edge verifier: a Cloudflare Worker that checks API keys from Workers KV.
//!
//! Build with `cargo xtask build-edge`; run locally with `wrangler dev` in `edge/` (the test
//! harness in `tests/src/edge.rs` does both). Routes:
//!
//! - `POST /v1/keys/verify`: the verify API for origins not behind the proxy;
//! - `POST /_keyward/sync`: signed KV writes from the control plane;
//! - `GET /_keyward/health`: liveness;
//! - anything else under `/_keyward/`: 404, never proxied;
//! - everything else: the proxy, which verifies the key and forwards to `ORIGIN_URL`.

mod cache;
mod check;
mod config;
mod credentials;
mod proxy;
mod ratelimit;
mod respond;
mod sync;
mod usage;

use std::net::IpAddr;

use keyward_common::{FieldError, Problem, RequestContext};
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Context, Env, Request, Result, event, web_sys};

pub use ratelimit::RateLimiter;

use crate::config::Config;

/// The verify API's path.
const VERIFY_PATH: &str = "/v1/keys/verify";
/// Prefix of the internal routes, never proxied.
const INTERNAL_PREFIX: &str = "/_keyward/";

/// Routes by method and path. The hot paths stay close to the runtime: the request is only
/// wrapped in `worker::Request` for the proxy and the sync route, and the verify API answers
/// with a `web_sys::Response` built directly (see `respond::verdict`).
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let config = match config::cached(&env) {
        Ok(c) => c,
        Err(err) => {
            worker::console_error!("configuration: {err}");
            return respond::problem(&Problem::new(
                500,
                "misconfigured",
                "The edge is misconfigured; see its logs.",
            ))
            .map(Into::into);
        }
    };
    let method = req.method();
    let url = req.url();
    let path = path_of(&url);
    match (method.as_str(), path) {
        ("POST", VERIFY_PATH) => verify_api(req, &env, &ctx, &config).await,
        (_, VERIFY_PATH) => method_not_allowed("POST"),
        ("POST", "/_keyward/sync") => sync::handle(Request::from(req), &env, &config)
            .await
            .map(Into::into),
        (_, "/_keyward/sync") => method_not_allowed("POST"),
        ("GET" | "HEAD", "/_keyward/health") => {
            respond::json(&serde_json::json!({ "status": "ok" }), 200).map(Into::into)
        }
        (_, "/_keyward/health") => method_not_allowed("GET, HEAD"),
        (_, p) if p.starts_with(INTERNAL_PREFIX) || p == "/_keyward" => {
            respond::problem(&Problem::new(404, "not_found", "No such internal route."))
                .map(Into::into)
        }
        _ => proxy::handle(Request::from(req), &env, &ctx, &config)
            .await
            .map(Into::into),
    }
}

/// The path of a serialized URL (`scheme://host[:port]/path?query#fragment`), percent-encoded
/// as sent.
fn path_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// 405 problem+json with `Allow`.
fn method_not_allowed(allow: &str) -> Result<web_sys::Response> {
    let mut resp = respond::problem(&Problem::new(
        405,
        "method_not_allowed",
        "This route does not accept this method; see the Allow header.",
    ))?;
    resp.headers_mut().set("allow", allow)?;
    Ok(resp.into())
}

/// The verify API's body: `{key, scope?, ip?}`.
#[derive(Debug, serde::Deserialize)]
struct VerifyBody {
    #[serde(default)]
    key: serde_json::Value,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    ip: Option<String>,
}

/// `POST /v1/keys/verify`: always 200 with the verdict, except for a body that is not JSON.
async fn verify_api(
    req: web_sys::Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
) -> Result<web_sys::Response> {
    let bad = |field: &str, message: &str| {
        respond::problem(&Problem::validation(vec![FieldError::new(field, message)]))
            .map(Into::into)
    };
    let text = JsFuture::from(req.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    let Ok(body) = serde_json::from_str::<VerifyBody>(&text) else {
        return bad(
            "body",
            "must be a JSON object {\"key\", \"scope\"?, \"ip\"?}",
        );
    };
    let client_ip = match body.ip.as_deref().map(|ip| ip.trim().parse::<IpAddr>()) {
        Some(Err(_)) => return bad("ip", "must be an IPv4 or IPv6 address"),
        Some(Ok(ip)) => Some(ip),
        None => None,
    };
    let request = RequestContext {
        client_ip,
        required_scope: body.scope.filter(|s| !s.is_empty()),
    };
    // A missing or non-string key is simply not a well-formed key: MALFORMED, not a 400.
    match check::check(env, ctx, config, body.key.as_str(), &request).await {
        Ok(checked) => respond::verdict(&checked),
        Err(err) => respond::internal("verifying a key", &err).map(Into::into),
    }
}

fn js_error(err: JsValue) -> worker::Error {
    worker::Error::from(err)
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn path_of_a_url_drops_origin_query_and_fragment() {
        assert_eq!(
            path_of("https://api.example.com/v1/keys/verify"),
            "/v1/keys/verify"
        );
        assert_eq!(path_of("http://127.0.0.1:8787/a/b?c=d#e"), "/a/b");
        assert_eq!(path_of("http://127.0.0.1:8787"), "/");
        assert_eq!(path_of("http://h/?q"), "/");
        assert_eq!(path_of("http://h/%5Fkeyward/x"), "/%5Fkeyward/x");
    }
}
