//! Keyward's edge verifier: a Cloudflare Worker that checks API keys from Workers KV.

use worker::{Context, Env, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    Response::ok("keyward edge")
}
