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
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen_futures::JsFuture;
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
        Err(err) => return misconfigured(&err),
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

/// A verify request read from its body: the key (a missing or non-string key is simply not a
/// well-formed key: MALFORMED, not a 400) and the context to check it in.
struct VerifyRequest {
    key: Option<String>,
    context: RequestContext,
}

/// Parses the verify API's body; a body that is not the expected JSON is a 400 problem.
fn parse_verify(text: &str) -> std::result::Result<VerifyRequest, Box<Problem>> {
    let bad = |field: &str, message: &str| {
        Box::new(Problem::validation(vec![FieldError::new(field, message)]))
    };
    let Ok(body) = serde_json::from_str::<VerifyBody>(text) else {
        return Err(bad(
            "body",
            "must be a JSON object {\"key\", \"scope\"?, \"ip\"?}",
        ));
    };
    let client_ip = match body.ip.as_deref().map(|ip| ip.trim().parse::<IpAddr>()) {
        Some(Err(_)) => return Err(bad("ip", "must be an IPv4 or IPv6 address")),
        Some(Ok(ip)) => Some(ip),
        None => None,
    };
    Ok(VerifyRequest {
        key: body.key.as_str().map(str::to_owned),
        context: RequestContext {
            client_ip,
            required_scope: body.scope.filter(|s| !s.is_empty()),
        },
    })
}

/// `POST /v1/keys/verify`: always 200 with the verdict, except for a body that is not JSON.
async fn verify_api(
    req: web_sys::Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
) -> Result<web_sys::Response> {
    let text = JsFuture::from(req.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    verify_text(&text, env, ctx, config).await
}

async fn verify_text(
    text: &str,
    env: &Env,
    ctx: &Context,
    config: &Config,
) -> Result<web_sys::Response> {
    let verify = match parse_verify(text) {
        Ok(v) => v,
        Err(problem) => return respond::problem(&problem).map(Into::into),
    };
    match check::check(env, ctx, config, verify.key.as_deref(), &verify.context).await {
        Ok(checked) => respond::verdict(&checked),
        Err(err) => respond::internal("verifying a key", &err).map(Into::into),
    }
}

/// The verify API's synchronous lane, called by `edge/js/entry.mjs` with the body already read:
/// the answer when it needs no I/O (a bad body, a malformed key, or a key in this isolate's
/// cache without a rate limit), else `undefined`, and the entry calls [`verify_body`].
///
/// A synchronous call skips the future/promise round trips of an async handler: a warm verify
/// is one call into Rust and one back out.
#[wasm_bindgen(js_name = verifyNow)]
#[must_use]
pub fn verify_now(
    body: &str,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> Option<web_sys::Response> {
    let config = config::cached(&env).ok()?;
    let verify = match parse_verify(body) {
        Ok(v) => v,
        Err(problem) => return respond::problem(&problem).ok().map(Into::into),
    };
    let checked = check::check_now(
        &Context::new(ctx),
        &config,
        verify.key.as_deref(),
        &verify.context,
    )?;
    respond::verdict(&checked).ok()
}

/// The verify API for a body the entry has already read (see [`verify_now`]).
///
/// # Errors
/// Only if the runtime fails to build a response.
#[wasm_bindgen(js_name = verifyBody)]
pub async fn verify_body(
    body: String,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> std::result::Result<web_sys::Response, JsValue> {
    let ctx = Context::new(ctx);
    let result = match config::cached(&env) {
        Ok(config) => verify_text(&body, &env, &ctx, &config).await,
        Err(err) => misconfigured(&err),
    };
    result.map_err(JsValue::from)
}

fn misconfigured(err: &config::ConfigError) -> Result<web_sys::Response> {
    worker::console_error!("configuration: {err}");
    respond::problem(&Problem::new(
        500,
        "misconfigured",
        "The edge is misconfigured; see its logs.",
    ))
    .map(Into::into)
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
