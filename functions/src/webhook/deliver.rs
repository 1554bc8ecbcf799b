//! One delivery attempt: resolve and check the endpoint's address again, connect to exactly
//! that address, POST the signed event, never follow a redirect, give up after a timeout. The
//! receiver's body is never read beyond its status, so a slow or huge answer costs nothing.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::signature::sign;
use super::target;

/// How long one attempt may take, connection included: a test event, or a retry.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The same for a first attempt, made in the stream's path: a receiver slower than this is
/// tried again from the retry queue (same `webhook-id`), so it cannot hold up other endpoints'
/// events.
pub const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// One signed event ready to send.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// `webhook-id`: the same on every attempt.
    pub id: &'a str,
    /// `webhook-timestamp` (Unix seconds) of this attempt.
    pub timestamp: i64,
    /// `{type, timestamp, data}`.
    pub body: &'a Value,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The receiver's status, when it answered.
    pub response_code: Option<u16>,
    /// Whether it was a 2xx.
    pub delivered: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// Why it failed (refused address, timeout, connection error, status).
    pub error: Option<String>,
}

/// Sends `message` to `url`, signed with `key` (the decoded secret), waiting at most
/// `timeout`.
pub async fn attempt(
    url: &str,
    key: &[u8],
    message: &Message<'_>,
    allow_loopback: bool,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let elapsed =
        |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let fail = |error: String| Outcome {
        response_code: None,
        delivered: false,
        latency_ms: elapsed(started),
        error: Some(error),
    };
    let parsed = match target::parse(url, allow_loopback) {
        Ok(u) => u,
        Err(e) => return fail(format!("url {e}")),
    };
    let addr = match target::resolve(&parsed, allow_loopback).await {
        Ok(a) => a,
        Err(e) => return fail(format!("url {e}")),
    };
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("client: {e}")),
    };
    let body = serde_json::to_vec(message.body).unwrap_or_default();
    let signature = sign(key, message.id, message.timestamp, &body);
    let sent = client
        .post(parsed)
        .header("content-type", "application/json")
        .header("user-agent", "Keyward-Webhooks/1")
        .header("webhook-id", message.id)
        .header("webhook-timestamp", message.timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) => {
            let code = r.status().as_u16();
            let delivered = r.status().is_success();
            Outcome {
                response_code: Some(code),
                delivered,
                latency_ms: elapsed(started),
                error: (!delivered).then(|| format!("the receiver answered {code}")),
            }
        }
        Err(e) if e.is_timeout() => fail(format!("no answer within {} s", timeout.as_secs())),
        Err(e) if e.is_connect() => fail("could not connect".to_owned()),
        Err(_) => fail("the request failed".to_owned()),
    }
}
