//! Reading a request: its facts (id, client address, time), query parameters, JSON body and
//! `If-Match`.

use std::time::{SystemTime, UNIX_EPOCH};

use keyward_common::time::unix_millis;
use lambda_http::http::{HeaderValue, header};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest import body accepted (1,000 keys with their settings).
pub const MAX_IMPORT_BODY: usize = 2 * 1024 * 1024;

/// Per-request facts, gathered before anything can fail.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// API Gateway's or Lambda's request id, or a generated one.
    pub request_id: String,
    /// The client's address, as API Gateway saw it.
    pub source_ip: Option<String>,
    /// When the request arrived, Unix milliseconds.
    pub now_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, unix_millis)
}

fn generated_request_id() -> String {
    let mut b = [0u8; 16];
    // A request id only needs to be unique; the clock is a fine fallback.
    if getrandom::fill(&mut b).is_err() {
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    hex::encode(b)
}

/// The facts of `req`.
#[must_use]
pub fn context(req: &Request) -> Ctx {
    let (gw_id, source_ip) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => (c.request_id.clone(), c.http.source_ip.clone()),
        _ => (None, None),
    };
    let request_id = gw_id
        .filter(|s| !s.is_empty())
        .or_else(|| {
            req.lambda_context_ref()
                .map(|c| c.request_id.clone())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(generated_request_id);
    Ctx {
        request_id,
        source_ip,
        now_ms: now_ms(),
    }
}

/// Parses `If-Match`: `"3"`, `W/"3"`, `3` or `*` (`None` = any version).
///
/// # Errors
/// 412 for anything else.
pub fn if_match(value: Option<&HeaderValue>) -> Result<Option<Option<u64>>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    // A header that is no entity tag is a malformed request, not a precondition that failed.
    let malformed = || {
        ApiError::Validation(vec![keyward_common::FieldError::new(
            "If-Match",
            "must be an ETag this API sent (\"3\") or *",
        )])
    };
    let text = v.to_str().map_err(|_| malformed())?.trim();
    if text == "*" {
        return Ok(Some(None));
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>()
        .map(|n| Some(Some(n)))
        .map_err(|_| malformed())
}

/// The version `If-Match` names, if it names one (`*` and no header: any).
///
/// # Errors
/// 400 naming `If-Match` for a malformed header.
pub fn expected_version(req: &Request) -> Result<Option<u64>, ApiError> {
    Ok(if_match(req.headers().get(header::IF_MATCH))?.flatten())
}

/// The JSON object body of `req`; with `required` = false an empty body is an empty object.
///
/// # Errors
/// 413 over [`MAX_BODY`], 415 without `Content-Type: application/json`, 400 `invalid_json` for
/// a body that is not a JSON object (bytes that are not UTF-8 included).
pub fn json_body(req: &Request, required: bool) -> Result<Map<String, Value>, ApiError> {
    json_body_within(req, required, MAX_BODY)
}

/// [`json_body`] with another size limit.
///
/// # Errors
/// As [`json_body`], 413 over `max`.
pub fn json_body_within(
    req: &Request,
    required: bool,
    max: usize,
) -> Result<Map<String, Value>, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > max {
        return Err(ApiError::PayloadTooLarge(max));
    }
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    if empty && !required {
        return Ok(Map::new());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" {
        return Err(ApiError::UnsupportedMediaType);
    }
    if empty {
        return Err(ApiError::InvalidJson(
            "The request needs a JSON object body.".into(),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidJson(
            "The body must be a JSON object.".into(),
        )),
        Err(e) => Err(ApiError::InvalidJson(format!(
            "The body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_strong_weak_and_bare_versions() {
        let v = |s: &str| if_match(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(v("\"3\"").unwrap(), Some(Some(3)));
        assert_eq!(v("W/\"3\"").unwrap(), Some(Some(3)));
        assert_eq!(v("3").unwrap(), Some(Some(3)));
        assert_eq!(v("*").unwrap(), Some(None));
        assert!(v("\"x\"").is_err());
    }
}
