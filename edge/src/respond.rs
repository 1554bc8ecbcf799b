//! Every answer the edge writes itself: problem+json refusals, JSON bodies and the shared headers.

use keyward_common::problem::CONTENT_TYPE;
use keyward_common::{Problem, RateLimitState, Verdict};
use worker::{Headers, Response, Result};

/// A JSON body with `status`.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn json<T: serde::Serialize>(value: &T, status: u16) -> Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
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
    problem(&Problem::new(
        500,
        "internal",
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
    if let Some(state) = &verdict.ratelimit {
        if code.http_status() == 429 {
            headers.set("retry-after", &state.retry_after(now).to_string())?;
        }
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
#[cfg(feature = "test-hooks")]
pub fn kv_reads(resp: &mut Response, reads: u32) -> Result<()> {
    resp.headers_mut()
        .set("x-keyward-kv-reads", &reads.to_string())
}

/// Release builds count nothing.
///
/// # Errors
/// Never.
#[cfg(not(feature = "test-hooks"))]
#[allow(clippy::unnecessary_wraps)]
pub fn kv_reads(_resp: &mut Response, _reads: u32) -> Result<()> {
    Ok(())
}
