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
use worker::{
    Context, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, Result,
    web_sys,
};

use crate::check::{check, now_ms};
use crate::config::Config;
use crate::dispatch::path_and_query;
use crate::respond;

/// Headers never forwarded: the key carriers, `Host`, and anything an origin could read as one
/// of our identity headers (`X_Keyward_Owner` included).
fn is_stripped(name: &str, presented: &Presented) -> bool {
    let name = name.to_ascii_lowercase().replace('_', "-");
    name == "x-api-key"
        || name == "host"
        || is_reserved_header(&name)
        || (name == "authorization" && presented.from_authorization)
}

/// Verifies the request's key and forwards it to the origin, or answers the refusal.
///
/// # Errors
/// Only if the runtime fails to build a response; I/O failures become a 500/502 answer.
pub async fn handle(req: Request, env: &Env, ctx: &Context, cfg: &Config) -> Result<Response> {
    let url = req.inner().url();
    let (raw_path, query) = path_and_query(&url);
    let path = match normalize_path(raw_path) {
        Ok(p) => p,
        Err(err) => {
            return respond::problem(&Problem::of(
                ProblemCode::AmbiguousPath,
                format!("The request path is refused: {err}. Send it without that encoding."),
            ));
        }
    };
    let method = req.method();
    let (required_permission, cost) = match cfg.routes.access(method.as_ref(), &path) {
        Access::Deny => {
            return respond::problem(&Problem::of(
                ProblemCode::RouteDenied,
                "No route rule allows this path, and this edge denies unmatched paths.",
            ));
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
        Err(err) => return respond::internal("verifying a key", &err),
    };
    let now = unix_seconds(now_ms());
    let mut resp = if checked.verdict.valid {
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
            Ok(resp) => resp,
            Err(err) => {
                worker::console_error!("forwarding to the origin: {err}");
                respond::problem(&Problem::of(
                    ProblemCode::OriginUnreachable,
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
    respond::kv_reads(&mut resp, &checked)?;
    Ok(resp)
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
    req: &Request,
    cfg: &Config,
    presented: &Presented,
    verdict: &Verdict,
    target: &Target<'_>,
    now: i64,
) -> Result<Response> {
    let origin = cfg
        .origin_url
        .as_deref()
        .ok_or_else(|| worker::Error::RustError("ORIGIN_URL is not set".into()))?;
    let request_target = target.request_target();
    // The client's headers copied in one call, then the few to strip deleted by name: no
    // header value crosses into WASM.
    let headers = Headers(web_sys::Headers::new_with_headers(&req.inner().headers())?);
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
        let signature = sign_request(
            secret.expose(),
            now,
            method.as_ref(),
            &request_target,
            &identity,
        );
        headers.set(TIMESTAMP_HEADER, &now.to_string())?;
        headers.set(SIGNATURE_HEADER, &signature)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        // The body streams through: it is never read into WASM memory.
        init.with_body(req.inner().body().map(Into::into));
    }
    Fetch::Request(Request::new_with_init(
        &format!("{origin}{request_target}"),
        &init,
    )?)
    .send()
    .await
}

/// The origin's answer with headers of its own (a copy, made in one call), so ours can be added.
fn with_own_headers(resp: Response) -> Result<Response> {
    let copied = Headers(web_sys::Headers::new_with_headers(&resp.headers().0)?);
    Ok(resp.with_headers(copied))
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
