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
use std::rc::Rc;

use keyward_common::{FieldError, Problem, RequestContext};
use worker::{Context, Env, Request, Response, Result, RouteContext, Router, event};

pub use ratelimit::RateLimiter;

use crate::config::Config;

/// What every route handler gets besides the request.
#[derive(Debug)]
struct App {
    ctx: Context,
    config: Config,
}

type Route = RouteContext<Rc<App>>;

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(err) => {
            worker::console_error!("configuration: {err}");
            return respond::problem(&Problem::new(
                500,
                "misconfigured",
                "The edge is misconfigured; see its logs.",
            ));
        }
    };
    router(Rc::new(App { ctx, config })).run(req, env).await
}

fn router<'a>(app: Rc<App>) -> Router<'a, Rc<App>> {
    Router::with_data(app)
        .post_async("/v1/keys/verify", verify_api)
        .post_async("/_keyward/sync", |req, rc: Route| async move {
            sync::handle(req, &rc.env, &rc.data.config).await
        })
        .get("/_keyward/health", |_, _| {
            respond::json(&serde_json::json!({ "status": "ok" }), 200)
        })
        .or_else_any_method("/_keyward/*rest", |_, _| {
            respond::problem(&Problem::new(404, "not_found", "No such internal route."))
        })
        .or_else_any_method_async("/", proxy_route)
        .or_else_any_method_async("/*path", proxy_route)
}

async fn proxy_route(req: Request, rc: Route) -> Result<Response> {
    proxy::handle(req, &rc.env, &rc.data.ctx, &rc.data.config).await
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
async fn verify_api(mut req: Request, rc: Route) -> Result<Response> {
    let bad = |field: &str, message: &str| {
        respond::problem(&Problem::validation(vec![FieldError::new(field, message)]))
    };
    let body: VerifyBody = match serde_json::from_slice(&req.bytes().await?) {
        Ok(b) => b,
        Err(_) => {
            return bad(
                "body",
                "must be a JSON object {\"key\", \"scope\"?, \"ip\"?}",
            );
        }
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
    let key = body.key.as_str();
    let app = &rc.data;
    let checked = match check::check(&rc.env, &app.ctx, &app.config, key, &request).await {
        Ok(c) => c,
        Err(err) => return respond::internal("verifying a key", &err),
    };
    let mut resp = respond::json(&checked.verdict, 200)?;
    if let Some(state) = &checked.verdict.ratelimit {
        respond::rate_limit_headers(resp.headers_mut(), state)?;
    }
    respond::kv_reads(&mut resp, checked.kv_reads)?;
    Ok(resp)
}
