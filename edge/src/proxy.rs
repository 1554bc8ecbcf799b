//! Proxy mode: a request whose key verifies goes on to `ORIGIN_URL` with the key stripped and
//! the key's identity added; the origin's answer comes back unchanged (plus rate-limit headers).

use keyward_common::{Problem, RequestContext, Verdict, route::required_scope};
use worker::{
    Context, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, Result,
};

use crate::check::{check, now_ms};
use crate::config::Config;
use crate::credentials::{Presented, extract};
use crate::respond;

/// Headers never forwarded: the key carriers, and anything pretending to be our identity headers.
fn is_stripped(name: &str, presented: &Presented) -> bool {
    name == "x-api-key"
        || name == "host"
        || name.starts_with("x-keyward-")
        || (name == "authorization" && presented.from_authorization)
}

/// Verifies the request's key and forwards it to the origin, or answers the refusal.
///
/// # Errors
/// Only if the runtime fails to build a response; I/O failures become a 500/502 answer.
pub async fn handle(req: Request, env: &Env, ctx: &Context, cfg: &Config) -> Result<Response> {
    let headers = req.headers();
    let presented = extract(
        headers.get("authorization")?.as_deref(),
        headers.get("x-api-key")?.as_deref(),
    );
    let method = req.method();
    let path = req.path();
    let request = RequestContext {
        client_ip: headers
            .get("cf-connecting-ip")?
            .and_then(|ip| ip.trim().parse().ok()),
        required_scope: required_scope(&cfg.rules, method.as_ref(), &path).map(str::to_owned),
    };
    let key = if presented.conflicting {
        None
    } else {
        presented.key.as_deref()
    };
    let checked = match check(env, ctx, cfg, key, &request).await {
        Ok(c) => c,
        Err(err) => return respond::internal("verifying a key", &err),
    };
    let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
    let mut resp = if checked.verdict.valid {
        match forward(req, cfg, &presented, &checked.verdict).await {
            Ok(resp) => resp,
            Err(err) => {
                worker::console_error!("forwarding to the origin: {err}");
                respond::problem(&Problem::new(
                    502,
                    "origin_unreachable",
                    "The origin did not answer.",
                ))?
            }
        }
    } else {
        respond::refusal(&checked.verdict, now)?
    };
    if let Some(state) = &checked.verdict.ratelimit {
        respond::rate_limit_headers(resp.headers_mut(), state)?;
    }
    respond::kv_reads(&mut resp, checked.kv_reads)?;
    Ok(resp)
}

async fn forward(
    mut req: Request,
    cfg: &Config,
    presented: &Presented,
    verdict: &Verdict,
) -> Result<Response> {
    let origin = cfg
        .origin_url
        .as_deref()
        .ok_or_else(|| worker::Error::RustError("ORIGIN_URL is not set".into()))?;
    let url = req.url()?;
    let target = match url.query() {
        Some(q) => format!("{origin}{}?{q}", url.path()),
        None => format!("{origin}{}", url.path()),
    };
    let headers = Headers::new();
    for (name, value) in req.headers().entries() {
        if !is_stripped(&name, presented) {
            headers.append(&name, &value)?;
        }
    }
    let identity = [
        ("x-keyward-key-id", verdict.key_id.clone()),
        ("x-keyward-workspace", verdict.workspace.clone()),
        ("x-keyward-owner", verdict.owner_id.clone()),
        ("x-keyward-scopes", Some(verdict.scopes.join(","))),
    ];
    for (name, value) in identity {
        if let Some(value) = value {
            headers.set(name, &value)?;
        }
    }
    let method = req.method();
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        let body = req.bytes().await?;
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    let resp = Fetch::Request(Request::new_with_init(&target, &init)?)
        .send()
        .await?;
    // A fetched response's headers are immutable: copy them so ours can be added.
    let copied = Headers::new();
    for (name, value) in resp.headers().entries() {
        copied.append(&name, &value)?;
    }
    Ok(resp.with_headers(copied))
}
