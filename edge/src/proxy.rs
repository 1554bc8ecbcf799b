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
    method: String,
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

/// Normalises the path of `url`, applies the route rules to it and `method`, and reads the key
/// and client address: no I/O. `Err` is the refusal to answer at once (an ambiguous path, a
/// denied route).
fn prepare(
    req: &web_sys::Request,
    url: &str,
    method: String,
    cfg: &Config,
) -> Result<std::result::Result<Prepared, web_sys::Response>> {
    let (raw_path, query) = path_and_query(url);
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
        method,
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
    /// Forward the request to the origin as this says; `true`: add our headers
    /// ([`own_headers`]) to its answer.
    Forward(Forward, bool),
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
    let forward = Forward::of(req, cfg, prepared, &checked.verdict, now)?;
    // A fetched response's headers are immutable: copied (one call) only when ours are added,
    // else the origin's answer goes back as it came.
    let add = checked.verdict.ratelimit.is_some() || cfg!(feature = "test-hooks");
    Ok(Decided::Forward(forward, add))
}

/// Our headers on an answer: the tightest rate limit's state, and the test build's counters.
fn own_headers(headers: &Headers, checked: &Checked) -> Result<()> {
    if let Some(state) = &checked.verdict.ratelimit {
        respond::rate_limit_headers(headers, state)?;
    }
    respond::kv_reads(headers, checked)
}

/// The proxy's synchronous lane, for `dispatch` (which has read the request's `url` and
/// `method`): when the key's answer needs no I/O (a refusal before any check, a malformed key, a
/// key in this isolate's cache spent wholly from its leases), our answer (a `Response`), or the
/// forward plan ([`Forward::encode`], a string) that the entry applies and sends, alone or as
/// `[plan, Headers]` with the headers to add to the origin's answer; else `None`, and the
/// request takes the async path ([`handle`]).
pub fn now(
    req: &web_sys::Request,
    url: &str,
    method: String,
    env: &Env,
    ctx: &Context,
    cfg: &Config,
) -> Option<JsValue> {
    let prepared = match prepare(req, url, method, cfg).ok()? {
        Ok(p) => p,
        Err(refusal) => return Some(refusal.into()),
    };
    let checked = prepared.check_now(env, ctx, cfg)?;
    // Past this point the request has spent: it is answered here, whatever happens (`None`
    // would check it again on the async path).
    let answer = decide(req, cfg, &prepared, &checked).and_then(|decided| match decided {
        Decided::Own(resp) => Ok(resp.into()),
        Decided::Forward(forward, add) => {
            let plan = JsValue::from_str(&forward.encode());
            if add {
                extra_headers(&checked).map(|extra| js_sys::Array::of2(&plan, &extra).into())
            } else {
                Ok(plan)
            }
        }
    });
    match answer {
        Ok(answer) => Some(answer),
        Err(err) => own(respond::internal("forwarding", &err))
            .ok()
            .map(Into::into),
    }
}

/// Our headers for the origin's answer, as a `Headers` the entry adds.
fn extra_headers(checked: &Checked) -> Result<web_sys::Headers> {
    let headers = web_sys::Headers::new()?;
    own_headers(&Headers(headers.clone()), checked)?;
    Ok(headers)
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
    let prepared = match prepare(&req, &req.url(), req.method(), cfg)? {
        Ok(p) => p,
        Err(refusal) => return Ok(refusal),
    };
    let checked = match prepared.check(env, ctx, cfg).await {
        Ok(c) => c,
        Err(err) => return own(respond::internal("verifying a key", &err)),
    };
    match decide(&req, cfg, &prepared, &checked)? {
        Decided::Own(resp) => Ok(resp),
        Decided::Forward(forward, add) => match js::fetch(&forward.request(&req)?).await {
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

/// How a verified request goes to the origin, decided here: the client's request at the
/// normalised target on `ORIGIN_URL`, with the key carriers and every header that could pass
/// for ours stripped and our identity headers set; the body streams through (never read into
/// WASM memory). Applied by [`Forward::request`] on the async path, and by the entry on the
/// synchronous lane from [`Forward::encode`].
#[derive(Debug, PartialEq, Eq)]
struct Forward {
    /// `ORIGIN_URL` + the normalised path + `?query` as sent.
    url: String,
    method: String,
    /// The client's headers to drop, by name as the runtime lists them.
    strip: Vec<String>,
    /// Our headers to set, after the strip.
    set: Vec<(&'static str, String)>,
}

impl Forward {
    fn of(
        req: &web_sys::Request,
        cfg: &Config,
        prepared: &Prepared,
        verdict: &Verdict,
        now: i64,
    ) -> Result<Self> {
        let origin = cfg
            .origin_url
            .as_deref()
            .ok_or_else(|| worker::Error::RustError("ORIGIN_URL is not set".into()))?;
        let request_target = match &prepared.query {
            Some(q) => format!("{}?{q}", prepared.path),
            None => prepared.path.to_string(),
        };
        let identity = Identity::new(
            verdict.key_id.as_deref().unwrap_or_default(),
            verdict.workspace.as_deref().unwrap_or_default(),
            verdict.owner_id.as_deref(),
            // The effective permissions (scopes plus the key's roles'): what the origin may
            // check.
            &verdict.permissions,
        );
        let mut set: Vec<(&'static str, String)> = identity
            .headers()
            .into_iter()
            .map(|(name, value)| (name, value.to_owned()))
            .collect();
        if let Some(secret) = &cfg.origin_secret {
            let signature = sign_request(
                secret.expose(),
                now,
                &prepared.method,
                &request_target,
                &identity,
            );
            set.push((TIMESTAMP_HEADER, now.to_string()));
            set.push((SIGNATURE_HEADER, signature));
        }
        // The client's header names in one string (a name never holds a line break): no header
        // value crosses into WASM.
        let names = String::from(js_sys::Array::from(&req.headers().keys()).join("\n"));
        let strip = names
            .split('\n')
            .filter(|n| !n.is_empty() && is_stripped(n, &prepared.presented))
            .map(str::to_owned)
            .collect();
        Ok(Self {
            url: format!("{origin}{request_target}"),
            method: prepared.method.clone(),
            strip,
            set,
        })
    }

    /// The plan as one string for the entry (`edge/js/entry.mjs`, `forward`): lines of the URL,
    /// the method, the names to strip (space-separated), then each header to set as a name line
    /// and a value line. No part can hold a line break or a name a space: a serialized URL has
    /// none, a method and a header name are tokens, and every value we set is visible ASCII
    /// ([`Identity`], hex, digits).
    fn encode(&self) -> String {
        let mut out = format!("{}\n{}\n{}", self.url, self.method, self.strip.join(" "));
        for (name, value) in &self.set {
            out.push('\n');
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
        }
        out
    }

    /// The plan applied to `req`: the request to send (the async path's).
    fn request(&self, req: &web_sys::Request) -> Result<web_sys::Request> {
        let headers = web_sys::Headers::new_with_headers(&req.headers())?;
        for name in &self.strip {
            headers.delete(name)?;
        }
        for (name, value) in &self.set {
            headers.set(name, value)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(&self.method);
        init.set_headers(&headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        if self.method != "GET"
            && self.method != "HEAD"
            && let Some(body) = req.body()
        {
            init.set_body(&body);
        }
        Ok(web_sys::Request::new_with_str_and_init(&self.url, &init)?)
    }
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

    #[test]
    fn a_forward_plan_reads_back_as_the_entry_reads_it() {
        let forward = Forward {
            url: "https://origin.example/v1/items/1?a=b%20c".into(),
            method: "POST".into(),
            strip: vec!["authorization".into(), "x_keyward_owner".into()],
            set: vec![
                ("x-keyward-key-id", "key_1".into()),
                ("x-keyward-owner", String::new()),
            ],
        };
        let plan = forward.encode();
        // As `forward` in edge/js/entry.mjs splits it.
        let lines: Vec<&str> = plan.split('\n').collect();
        assert_eq!(lines[0], forward.url);
        assert_eq!(lines[1], "POST");
        assert_eq!(
            lines[2].split(' ').collect::<Vec<_>>(),
            ["authorization", "x_keyward_owner"]
        );
        let set: Vec<(&str, &str)> = lines[3..].chunks(2).map(|c| (c[0], c[1])).collect();
        assert_eq!(
            set,
            [("x-keyward-key-id", "key_1"), ("x-keyward-owner", "")]
        );
        let nothing = Forward {
            strip: Vec::new(),
            set: Vec::new(),
            ..forward
        }
        .encode();
        assert_eq!(nothing.split('\n').nth(2), Some(""));
    }
}
