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
use worker::{Context, Env, Headers, Response, Result, web_sys};

use crate::check::{check, now_ms};
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
    let url = req.url();
    let (raw_path, query) = path_and_query(&url);
    let path = match normalize_path(raw_path) {
        Ok(p) => p,
        Err(err) => {
            return own(respond::problem(&Problem::of(
                ProblemCode::AmbiguousPath,
                format!("The request path is refused: {err}. Send it without that encoding."),
            )));
        }
    };
    let method = req.method();
    let (required_permission, cost) = match cfg.routes.access(&method, &path) {
        Access::Deny => {
            return own(respond::problem(&Problem::of(
                ProblemCode::RouteDenied,
                "No route rule allows this path, and this edge denies unmatched paths.",
            )));
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
    let key = if presented.conflicting {
        None
    } else {
        presented.key.as_deref()
    };
    let checked = match check(env, ctx, cfg, key, &request, cost.unwrap_or(1)).await {
        Ok(c) => c,
        Err(err) => return own(respond::internal("verifying a key", &err)),
    };
    let now = unix_seconds(now_ms());
    let resp = if checked.verdict.valid {
        let target = Target {
            path: &path,
            query: query.filter(|q| !q.is_empty()),
        };
        match forward(&req, cfg, &presented, &checked.verdict, &target, now).await {
            // A fetched response's headers are immutable: copied (one call) only when ours are
            // added, else the origin's answer goes back as it came.
            Ok(resp) if checked.verdict.ratelimit.is_some() || cfg!(feature = "test-hooks") => {
                with_own_headers(resp)?
            }
            Ok(resp) => return Ok(resp),
            Err(err) => {
                worker::console_error!("forwarding to the origin: {err}");
                own(respond::problem(&Problem::of(
                    ProblemCode::OriginUnreachable,
                    "The origin did not answer.",
                )))?
            }
        }
    } else {
        own(respond::refusal(&checked.verdict, now))?
    };
    let headers = Headers(resp.headers());
    if let Some(state) = &checked.verdict.ratelimit {
        respond::rate_limit_headers(&headers, state)?;
    }
    respond::kv_reads(&headers, &checked)?;
    Ok(resp)
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

async fn forward(
    req: &web_sys::Request,
    cfg: &Config,
    presented: &Presented,
    verdict: &Verdict,
    target: &Target<'_>,
    now: i64,
) -> Result<web_sys::Response> {
    let origin = cfg
        .origin_url
        .as_deref()
        .ok_or_else(|| worker::Error::RustError("ORIGIN_URL is not set".into()))?;
    let request_target = target.request_target();
    // The client's headers copied in one call, then the few to strip deleted by name: no
    // header value crosses into WASM.
    let headers = Headers(web_sys::Headers::new_with_headers(&req.headers())?);
    let stripped: Vec<String> = headers
        .keys()
        .filter(|name| is_stripped(name, presented))
        .collect();
    for name in &stripped {
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
    let request =
        web_sys::Request::new_with_str_and_init(&format!("{origin}{request_target}"), &init)?;
    js::fetch(&request).await
}

/// The origin's answer with headers of its own (a copy, made in one call), so ours can be
/// added; the body streams through.
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
