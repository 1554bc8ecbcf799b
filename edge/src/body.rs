//! Request bodies read with a size limit: a declared `Content-Length` over the limit is refused
//! before reading, and a streamed body is read chunk by chunk and abandoned as soon as it
//! passes the limit, so an oversized body is never buffered whole into WASM.

use futures_util::StreamExt;
use worker::{Request, Result, web_sys};

/// The body's bytes, or `None` when it is larger than `limit` bytes.
///
/// # Errors
/// When the body stream fails.
pub async fn read_bytes(req: &web_sys::Request, limit: usize) -> Result<Option<Vec<u8>>> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    if req.body().is_none() {
        return Ok(Some(Vec::new()));
    }
    // `Clone::clone` copies the JS reference; `Request.clone()` would tee the body.
    let mut request = Request::from(Clone::clone(req));
    let mut stream = request.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The body as text (invalid UTF-8 replaced, as `Request.text()` does), or `None` when it is
/// larger than `limit` bytes.
///
/// # Errors
/// When the body stream fails.
pub async fn read_text(req: &web_sys::Request, limit: usize) -> Result<Option<String>> {
    Ok(read_bytes(req, limit)
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}
