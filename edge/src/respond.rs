//! Every answer the edge writes itself: problem+json refusals, JSON bodies and the shared headers.

use keyward_common::json;
use keyward_common::problem::CONTENT_TYPE;
use keyward_common::{Problem, ProblemCode, RateLimitState, Verdict};
use worker::{Headers, Response, Result, web_sys};

use crate::check::Checked;

thread_local! {
    /// `{status: 200, headers: {content-type: application/json}}`, built once per isolate: the
    /// `Response` constructor copies what it needs from an init, so one can serve every answer.
    static JSON_200: web_sys::ResponseInit = json_200_init();
}

fn json_200_init() -> web_sys::ResponseInit {
    let init = web_sys::ResponseInit::new();
    init.set_status(200);
    if let Ok(headers) = web_sys::Headers::new() {
        let _ = headers.set("content-type", "application/json");
        init.set_headers_headers(&headers);
    }
    init
}

/// The verify API's 200 answer: the verdict as JSON, built as a `web_sys::Response` directly
/// from one `ResponseInit` shared by every answer, so an answer costs one call into the runtime.
/// A limit's state is in the body (`ratelimit`, `ratelimits`), which is what the origin reads;
/// `X-RateLimit-*` headers are the proxy's, for the client (they cost a limited key's verify
/// answer three more calls, 7 % of its CPU in a profile, for a copy of the body's `ratelimit`).
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn verdict(checked: &Checked) -> Result<web_sys::Response> {
    let body = json::to_string(&checked.verdict);
    let resp =
        JSON_200.with(|init| web_sys::Response::new_with_opt_str_and_init(Some(&body), init))?;
    if cfg!(feature = "test-hooks") {
        kv_reads_header(&Headers(resp.headers()), checked)?;
    }
    Ok(resp)
}

/// A JSON `body` with `status`.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn json(body: String, status: u16) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// A problem+json answer.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn problem(problem: &Problem) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", CONTENT_TYPE)?;
    Ok(Response::ok(problem.to_json())?
        .with_status(problem.status)
        .with_headers(headers))
}

/// A 500 for a failure of ours; the cause is logged, never sent.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn internal(context: &str, err: &worker::Error) -> Result<Response> {
    worker::console_error!("{context}: {err}");
    problem(&Problem::of(
        ProblemCode::Internal,
        "The edge could not complete the request; try again.",
    ))
}

/// The proxy's refusal of a verdict: problem+json with the verdict code, its status, and
/// `WWW-Authenticate` (401), `Retry-After` (429) and the rate-limit headers.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn refusal(verdict: &Verdict, now: i64) -> Result<Response> {
    let code = verdict.code;
    let mut resp = problem(&Problem::new(
        code.http_status(),
        code.as_str(),
        code.detail(),
    ))?;
    let headers = resp.headers_mut();
    if code.http_status() == 401 {
        headers.set(
            "www-authenticate",
            r#"Bearer realm="keyward", error="invalid_token""#,
        )?;
    }
    // Out of credits with no refill due: no Retry-After (waiting does not help).
    if let Some(after) = verdict.retry_after(now) {
        headers.set("retry-after", &after.to_string())?;
    }
    if let Some(state) = &verdict.ratelimit {
        rate_limit_headers(headers, state)?;
    }
    Ok(resp)
}

/// Sets `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds).
///
/// # Errors
/// When the headers are immutable.
pub fn rate_limit_headers(headers: &Headers, state: &RateLimitState) -> Result<()> {
    headers.set("x-ratelimit-limit", &state.limit.to_string())?;
    headers.set("x-ratelimit-remaining", &state.remaining.to_string())?;
    headers.set("x-ratelimit-reset", &state.reset.to_string())
}

/// Adds the test build's `X-Keyward-Kv-Reads` header; the release build has no such header.
///
/// # Errors
/// When the headers are immutable.
pub fn kv_reads(headers: &Headers, checked: &Checked) -> Result<()> {
    kv_reads_header(headers, checked)
}

#[cfg(feature = "test-hooks")]
fn kv_reads_header(headers: &Headers, checked: &Checked) -> Result<()> {
    headers.set("x-keyward-kv-reads", &checked.kv_reads.to_string())?;
    // Cumulative per isolate, of the key's object: a test compares two answers to count the
    // round trips in between.
    if let Some(key_id) = &checked.verdict.key_id {
        let calls = crate::allowance::calls(&format!("k:{key_id}"));
        headers.set("x-keyward-allowance-calls", &calls.to_string())?;
    }
    Ok(())
}

/// Release builds count nothing.
#[cfg(not(feature = "test-hooks"))]
#[allow(clippy::unnecessary_wraps)]
fn kv_reads_header(_headers: &Headers, checked: &Checked) -> Result<()> {
    // Counted in every build; only test builds report it.
    let _ = checked.kv_reads;
    Ok(())
}
