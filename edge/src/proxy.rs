//! Proxy mode: a request whose key verifies goes on to `ORIGIN_URL` at its normalised path, with
//! the key stripped, every header that could pass for ours dropped, all identity headers set
//! (and signed when `ORIGIN_SECRET` is set); the body streams through; the origin's answer comes
//! back unchanged (plus rate-limit headers).

use keyward_common::credentials::{Presented, extract};
use keyward_common::origin::{
    Identity, SIGNATURE_HEADER, TIMESTAMP_HEADER, is_reserved_header, sign_request,
};
use keyward_common::route::{Access, NormalizedPath, normalize_path};
use keyward_common::time::unix_seconds;
use keyward_common::{Problem, ProblemCode, RequestContext, Verdict};
use wasm_bindgen::JsValue;
use worker::{Context, Env, Headers, Response, Result, web_sys};

use crate::check::{Checked, check, check_now, now_ms};
use crate::config::Config;
use crate::dispatch::path_and_query;
use crate::{js, respond};

/// Headers never forwarded: the key carriers, `Host`, and anything an origin could read as one
/// of our identity headers (`X_Keyward_Owner` included).
fn is_stripped(name: &str, presented: &Presented) -> bool {
    let name = name.to_ascii_lowercase().replace('_', "-");
    name == "x-api-key"
        || name == "host"
        || is_reserved_header(&name)
        || (name == "authorization" && presented.from_authorization)
}

/// What the proxy needs of a request before its key is checked.
struct Prepared {
    path: NormalizedPath,
    query: Option<String>,
    presented: Presented,
    request: RequestContext,
    cost: u32,
}

impl Prepared {
    /// The presented key, unless two carriers disagree (then none: `MALFORMED`).
    fn key(&self) -> Option<&str> {
        if self.presented.conflicting {
            None
        } else {
            self.presented.key.as_deref()
        }
    }

    /// [`check_now`] of this request: `None` when its answer needs I/O.
    fn check_now(&self, env: &Env, ctx: &Context, cfg: &Config) -> Option<Checked> {
        check_now(env, ctx, cfg, self.key(), &self.request, self.cost)
    }

    /// [`check`] of this request.
    async fn check(&self, env: &Env, ctx: &Context, cfg: &Config) -> Result<Checked> {
        check(env, ctx, cfg, self.key(), &self.request, self.cost).await
    }
}

/// Normalises the path, applies the route rules and reads the key and client address: no I/O.
/// `Err` is the refusal to answer at once (an ambiguous path, a denied route).
fn prepare(
    req: &web_sys::Request,
    cfg: &Config,
) -> Result<std::result::Result<Prepared, web_sys::Response>> {
    let url = req.url();
    let (raw_path, query) = path_and_query(&url);
    let path = match normalize_path(raw_path) {
        Ok(p) => p,
        Err(err) => {
            return own(respond::problem(&Problem::of(
                ProblemCode::AmbiguousPath,
                format!("The request path is refused: {err}. Send it without that encoding."),
            )))
            .map(Err);
        }
    };
    let method = req.method();
    let (required_permission, cost) = match cfg.routes.access(&method, &path) {
        Access::Deny => {
            return own(respond::problem(&Problem::of(
                ProblemCode::RouteDenied,
                "No route rule allows this path, and this edge denies unmatched paths.",
            )))
            .map(Err);
        }
        Access::AnyKey => (None, None),
        Access::Rule { query, cost } => (Some(query.clone()), cost),
    };
    let headers = req.headers();
    let presented = extract(
        headers.get("authorization")?.as_deref(),
        headers.get("x-api-key")?.as_deref(),
    );
    let request = RequestContext {
        client_ip: headers
            .get("cf-connecting-ip")?
            .and_then(|ip| ip.trim().parse().ok()),
        required_scope: None,
        required_permission,
        workspaces: cfg.allowed_workspaces.clone(),
    };
    Ok(Ok(Prepared {
        path,
        query: query.filter(|q| !q.is_empty()).map(str::to_owned),
        presented,
        request,
        cost: cost.unwrap_or(1),
    }))
}

/// What the proxy decided for a checked request.
enum Decided {
    /// Our own answer (a refusal), headers included.
    Own(web_sys::Response),
    /// Forward this request to the origin; `true`: add our headers ([`own_headers`]) to its
    /// answer.
    Forward(web_sys::Request, bool),
}

fn decide(
    req: &web_sys::Request,
    cfg: &Config,
    prepared: &Prepared,
    checked: &Checked,
) -> Result<Decided> {
    let now = unix_seconds(now_ms());
    if !checked.verdict.valid {
        let resp = own(respond::refusal(&checked.verdict, now))?;
        own_headers(&Headers(resp.headers()), checked)?;
        return Ok(Decided::Own(resp));
    }
    let target = Target {
        path: &prepared.path,
        query: prepared.query.as_deref(),
    };
    let request = forward_request(
        req,
        cfg,
        &prepared.presented,
        &checked.verdict,
        &target,
        now,
    )?;
    // A fetched response's headers are immutable: copied (one call) only when ours are added,
    // else the origin's answer goes back as it came.
    let add = checked.verdict.ratelimit.is_some() || cfg!(feature = "test-hooks");
    Ok(Decided::Forward(request, add))
}

/// Our headers on an answer: the tightest rate limit's state, and the test build's counters.
fn own_headers(headers: &Headers, checked: &Checked) -> Result<()> {
    if let Some(state) = &checked.verdict.ratelimit {
        respond::rate_limit_headers(headers, state)?;
    }
    respond::kv_reads(headers, checked)
}

/// The proxy's synchronous lane, for `dispatch`: when the key's answer needs no I/O (a refusal
/// before any check, a malformed key, a key in this isolate's cache spent wholly from its
/// leases), our answer (a `Response`) or the request to forward with the headers to add to the
/// origin's answer (`[Request, Headers | undefined]`, which the entry fetches); else `None`, and
/// the request takes the async path ([`handle`]).
pub fn now(req: &web_sys::Request, env: &Env, ctx: &Context, cfg: &Config) -> Option<JsValue> {
    let prepared = match prepare(req, cfg).ok()? {
        Ok(p) => p,
        Err(refusal) => return Some(refusal.into()),
    };
    let checked = prepared.check_now(env, ctx, cfg)?;
    match decide(req, cfg, &prepared, &checked).ok()? {
        Decided::Own(resp) => Some(resp.into()),
        Decided::Forward(request, add) => {
            let extra = if add {
                let headers = Headers(web_sys::Headers::new().ok()?);
                own_headers(&headers, &checked).ok()?;
                headers.0.into()
            } else {
                JsValue::UNDEFINED
            };
            Some(js_sys::Array::of2(&request, &extra).into())
        }
    }
}

/// Verifies the request's key and forwards it to the origin, or answers the refusal. Works on
/// the runtime's own request and response objects (no worker-rs wrappers): a forwarded answer
/// goes back as the origin sent it.
///
/// # Errors
/// Only if the runtime fails to build a response; I/O failures become a 500/502 answer.
pub async fn handle(
    req: web_sys::Request,
    env: &Env,
    ctx: &Context,
    cfg: &Config,
) -> Result<web_sys::Response> {
    let prepared = match prepare(&req, cfg)? {
        Ok(p) => p,
        Err(refusal) => return Ok(refusal),
    };
    let checked = match prepared.check(env, ctx, cfg).await {
        Ok(c) => c,
        Err(err) => return own(respond::internal("verifying a key", &err)),
    };
    match decide(&req, cfg, &prepared, &checked)? {
        Decided::Own(resp) => Ok(resp),
        Decided::Forward(request, add) => match js::fetch(&request).await {
            Ok(resp) if add => {
                let resp = with_own_headers(resp)?;
                own_headers(&Headers(resp.headers()), &checked)?;
                Ok(resp)
            }
            Ok(resp) => Ok(resp),
            Err(err) => origin_unreachable(&err.to_string()),
        },
    }
}

/// The 502 answered when the origin cannot be reached; the cause is logged, never sent.
///
/// # Errors
/// Only if the runtime fails to build a response.
pub fn origin_unreachable(err: &str) -> Result<web_sys::Response> {
    worker::console_error!("forwarding to the origin: {err}");
    own(respond::problem(&Problem::of(
        ProblemCode::OriginUnreachable,
        "The origin did not answer.",
    )))
}

/// One of our own answers as the runtime's response (its headers stay mutable).
fn own(resp: Result<Response>) -> Result<web_sys::Response> {
    resp.map(Into::into)
}

/// Where a verified request goes on the origin: the normalised path and the query as sent.
struct Target<'a> {
    path: &'a NormalizedPath,
    query: Option<&'a str>,
}

impl Target<'_> {
    /// The request target, `path[?query]`: what the origin receives, and what is signed.
    fn request_target(&self) -> String {
        match self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.to_string(),
        }
    }
}

/// The request to send to the origin: the client's, at the normalised target, with the key
/// carriers and every header that could pass for ours stripped and our identity headers set.
fn forward_request(
    req: &web_sys::Request,
    cfg: &Config,
    presented: &Presented,
    verdict: &Verdict,
    target: &Target<'_>,
    now: i64,
) -> Result<web_sys::Request> {
    let origin = cfg
        .origin_url
        .as_deref()
        .ok_or_else(|| worker::Error::RustError("ORIGIN_URL is not set".into()))?;
    let request_target = target.request_target();
    // The client's headers copied in one call, their names read in one string (a header name
    // never holds a line break), then the few to strip deleted by name: no header value crosses
    // into WASM.
    let headers = Headers(web_sys::Headers::new_with_headers(&req.headers())?);
    let names = String::from(js_sys::Array::from(&headers.0.keys()).join("\n"));
    for name in names.split('\n').filter(|n| is_stripped(n, presented)) {
        headers.delete(name)?;
    }
    let identity = Identity::new(
        verdict.key_id.as_deref().unwrap_or_default(),
        verdict.workspace.as_deref().unwrap_or_default(),
        verdict.owner_id.as_deref(),
        // The effective permissions (scopes plus the key's roles'): what the origin may check.
        &verdict.permissions,
    );
    for (name, value) in identity.headers() {
        headers.set(name, value)?;
    }
    let method = req.method();
    if let Some(secret) = &cfg.origin_secret {
        let signature = sign_request(secret.expose(), now, &method, &request_target, &identity);
        headers.set(TIMESTAMP_HEADER, &now.to_string())?;
        headers.set(SIGNATURE_HEADER, &signature)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(&method);
    init.set_headers(&headers.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if method != "GET" && method != "HEAD" {
        // The body streams through: it is never read into WASM memory.
        if let Some(body) = req.body() {
            init.set_body(&body);
        }
    }
    Ok(web_sys::Request::new_with_str_and_init(
        &format!("{origin}{request_target}"),
        &init,
    )?)
}

/// The origin's answer with headers of its own (a copy, made in one call), so ours can be
/// added; the body streams through. (The entry does the same for the synchronous lane.)
fn with_own_headers(resp: web_sys::Response) -> Result<web_sys::Response> {
    let init = web_sys::ResponseInit::new();
    init.set_status(resp.status());
    init.set_status_text(&resp.status_text());
    init.set_headers_headers(&web_sys::Headers::new_with_headers(&resp.headers())?);
    Ok(web_sys::Response::new_with_opt_readable_stream_and_init(
        resp.body().as_ref(),
        &init,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_our_headers_and_the_key_carriers_is_stripped() {
        let from_auth = Presented {
            key: Some("kw_x".into()),
            from_authorization: true,
            conflicting: false,
        };
        for name in [
            "x-keyward-owner",
            "X_Keyward_Owner",
            "x_keyward_key_id",
            "X-KEYWARD-SIGNATURE",
            "x_api_key",
            "authorization",
            "host",
        ] {
            assert!(is_stripped(name, &from_auth), "{name}");
        }
        let other_auth = Presented {
            from_authorization: false,
            ..from_auth
        };
        assert!(!is_stripped("authorization", &other_auth));
        assert!(!is_stripped("x-custom", &other_auth));
    }
}
