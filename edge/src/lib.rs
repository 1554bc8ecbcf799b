//! Keyward's edge verifier: a Cloudflare Worker that checks API keys from Workers KV.
//!
//! Build with `cargo xtask build-edge`; run locally with `wrangler dev` in `edge/` (the test
//! harness in `tests/src/edge.rs` does both). Routes, decided in one place ([`dispatch::Route`]):
//!
//! - `POST /v1/keys/verify`: the verify API for origins not behind the proxy;
//! - `POST /_keyward/sync`: signed KV writes from the control plane;
//! - `GET /_keyward/health`: liveness (503 naming the problem when misconfigured);
//! - anything else under `/_keyward/`: 404, never proxied;
//! - everything else: the proxy, which verifies the key and forwards to `ORIGIN_URL`.

mod allowance;
mod body;
mod cache;
mod check;
mod config;
mod dispatch;
mod js;
mod proxy;
mod respond;
mod sync;
mod usage;
mod writer;

use keyward_common::verify_api::{self, VerifyRequest};
use keyward_common::{Problem, ProblemCode};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{Context, Env, Request, Result, event, web_sys};

pub use allowance::Allowance;
pub use writer::KvWriter;

use crate::config::Config;
use crate::dispatch::{MAX_VERIFY_BODY, Route};

/// worker-build's `fetch` handler: used by the entry only to recover from a panic (see
/// `edge/js/entry.mjs`); it routes exactly as [`dispatch`] does.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let route = Route::of(&req.method(), dispatch::path_of(&req.url()));
    handle(route, req, env, ctx).await
}

/// The entry's dispatcher, called for every request: decides the route ([`Route::of`]) and
/// answers with one of
/// - for the verify API, the largest body the entry may read (a number) before calling
///   [`verify_now`]: the synchronous lane, which skips the future/promise round trips of an
///   async handler;
/// - for the proxy, when the key's answer needs no I/O ([`proxy::now`]): our refusal (a
///   `Response`), or the forward plan (a string; `[plan, Headers]` with headers to add to the
///   origin's answer), which the entry applies to the request and fetches itself;
/// - else a promise of the response.
#[wasm_bindgen(js_name = dispatch)]
#[must_use]
pub fn dispatch_request(
    req: web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> JsValue {
    let (url, method) = (req.url(), req.method());
    let route = Route::of(&method, dispatch::path_of(&url));
    if route == Route::Verify {
        return JsValue::from_f64(f64::from(
            u32::try_from(MAX_VERIFY_BODY).unwrap_or(u32::MAX),
        ));
    }
    let ctx = Context::new(ctx);
    if route == Route::Proxy
        && let Some(answer) = config::cached(&env)
            .ok()
            .and_then(|config| proxy::now(&req, &url, method, &env, &ctx, &config))
    {
        return answer;
    }
    wasm_bindgen_futures::future_to_promise(async move {
        handle(route, req, env, ctx)
            .await
            .map(JsValue::from)
            .map_err(JsValue::from)
    })
    .into()
}

async fn handle(
    route: Route,
    req: web_sys::Request,
    env: Env,
    ctx: Context,
) -> Result<web_sys::Response> {
    let config = match config::cached(&env) {
        Ok(c) => c,
        Err(err) => return misconfigured(&err, route == Route::Health),
    };
    match route {
        Route::Verify => {
            let body = body::read_text(&req, MAX_VERIFY_BODY).await?;
            verify_text(body.as_deref(), &env, &ctx, &config).await
        }
        Route::Sync => sync::handle(Request::from(req), &env, &config)
            .await
            .map(Into::into),
        Route::Health => respond::json(r#"{"status":"ok"}"#.to_owned(), 200).map(Into::into),
        Route::MethodNotAllowed(allow) => method_not_allowed(allow),
        Route::UnknownInternal => respond::problem(&Problem::of(
            ProblemCode::NotFound,
            "No such internal route.",
        ))
        .map(Into::into),
        Route::Proxy => proxy::handle(req, &env, &ctx, &config).await,
    }
}

/// 405 problem+json with `Allow`.
fn method_not_allowed(allow: &str) -> Result<web_sys::Response> {
    let mut resp = respond::problem(&Problem::of(
        ProblemCode::MethodNotAllowed,
        "This route does not accept this method; see the Allow header.",
    ))?;
    resp.headers_mut().set("allow", allow)?;
    Ok(resp.into())
}

/// Parses the verify API's body (`None`: over [`MAX_VERIFY_BODY`], a 413).
fn parse_verify(text: Option<&str>) -> std::result::Result<VerifyRequest, Box<Problem>> {
    let Some(text) = text else {
        return Err(Box::new(Problem::of(
            ProblemCode::PayloadTooLarge,
            format!("The verify body is larger than {MAX_VERIFY_BODY} bytes."),
        )));
    };
    verify_api::parse(text)
}

async fn verify_text(
    text: Option<&str>,
    env: &Env,
    ctx: &Context,
    config: &Config,
) -> Result<web_sys::Response> {
    let verify = match parse_verify(text) {
        Ok(v) => v,
        Err(problem) => return respond::problem(&problem).map(Into::into),
    };
    match check::check(
        env,
        ctx,
        config,
        verify.key.as_deref(),
        &verify.context,
        verify.cost,
    )
    .await
    {
        Ok(checked) => respond::verdict(&checked),
        Err(err) => respond::internal("verifying a key", &err).map(Into::into),
    }
}

/// The verify API's synchronous lane, called by `edge/js/entry.mjs` with the body already read
/// (`undefined` when it was over the limit [`dispatch`] gave): the answer when it needs no I/O
/// (a bad or oversized body, a malformed key, or a key in this isolate's cache without a rate
/// limit), else `undefined`, and the entry calls [`verify_body`].
#[wasm_bindgen(js_name = verifyNow)]
#[must_use]
pub fn verify_now(
    body: Option<String>,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> Option<web_sys::Response> {
    let config = config::cached(&env).ok()?;
    let verify = match parse_verify(body.as_deref()) {
        Ok(v) => v,
        Err(problem) => return respond::problem(&problem).ok().map(Into::into),
    };
    let checked = check::check_now(
        &env,
        &Context::new(ctx),
        &config,
        verify.key.as_deref(),
        &verify.context,
        verify.cost,
    )?;
    respond::verdict(&checked).ok()
}

/// The proxy's 502 when the origin cannot be reached, for the entry's synchronous lane (the
/// reason is logged, never sent); `None` only if the runtime fails to build a response.
#[wasm_bindgen(js_name = originUnreachable)]
#[must_use]
pub fn origin_unreachable(reason: String) -> Option<web_sys::Response> {
    proxy::origin_unreachable(&reason).ok()
}

/// The verify API for a body the entry has already read (see [`verify_now`]).
///
/// # Errors
/// Only if the runtime fails to build a response.
#[wasm_bindgen(js_name = verifyBody)]
pub async fn verify_body(
    body: Option<String>,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> std::result::Result<web_sys::Response, JsValue> {
    let ctx = Context::new(ctx);
    let result = match config::cached(&env) {
        Ok(config) => verify_text(body.as_deref(), &env, &ctx, &config).await,
        Err(err) => misconfigured(&err, false),
    };
    result.map_err(JsValue::from)
}

/// The answer of a misconfigured edge: a generic 500 for callers, and for the health check a
/// 503 naming the problem (a var and a rule, never a secret), so a deployment's or the local
/// stack's start-up check stops with the reason.
fn misconfigured(err: &config::ConfigError, health: bool) -> Result<web_sys::Response> {
    worker::console_error!("configuration: {err}");
    let problem = if health {
        Problem::new(503, ProblemCode::Misconfigured.as_str(), err.to_string())
    } else {
        Problem::of(
            ProblemCode::Misconfigured,
            "The edge is misconfigured; see its logs.",
        )
    };
    respond::problem(&problem).map(Into::into)
}
