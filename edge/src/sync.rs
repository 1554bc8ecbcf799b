//! `POST /_keyward/sync`: signed batches of edge entries from the control plane into KV.
//!
//! Only a batch whose HMAC signature and timestamp verify is read at all. Each item is written
//! only when it supersedes what KV holds (a higher version; a tombstone is never replaced), so
//! replays and late, out-of-order deliveries cannot bring back an old or revoked key.

use keyward_common::sync::{
    MAX_BATCH_ITEMS, SIGNATURE_HEADER, SyncBatch, SyncOutcome, SyncResponse, TIMESTAMP_HEADER,
    verify_signature,
};
use keyward_common::{EdgeEntry, FieldError, Problem};
use worker::{Env, Request, Response, Result};

use crate::check::{evict, now_ms};
use crate::config::{Config, KV_BINDING};
use crate::respond;

/// Smallest expiration KV accepts is 60 s ahead; keep a margin.
const MIN_EXPIRATION_AHEAD_S: i64 = 120;

/// Applies a signed batch.
///
/// # Errors
/// Only if the runtime fails to build a response; KV failures become a 500 answer.
pub async fn handle(mut req: Request, env: &Env, cfg: &Config) -> Result<Response> {
    let Some(secret) = cfg.sync_secret.as_deref() else {
        return respond::problem(&Problem::new(
            503,
            "sync_not_configured",
            "This edge has no SYNC_SECRET; it accepts no sync batches.",
        ));
    };
    let body = req.bytes().await?;
    let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
    let headers = req.headers();
    if let Err(err) = verify_signature(
        secret.as_bytes(),
        headers.get(TIMESTAMP_HEADER)?.as_deref(),
        headers.get(SIGNATURE_HEADER)?.as_deref(),
        &body,
        now,
    ) {
        return respond::problem(&Problem::new(401, "invalid_signature", err.to_string()));
    }
    let batch: SyncBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return respond::problem(&Problem::validation(vec![FieldError::new(
                "items",
                "the body must be a sync batch: {\"items\": [{\"hash\", \"entry\"}]}",
            )]));
        }
    };
    if batch.items.len() > MAX_BATCH_ITEMS {
        return respond::problem(&Problem::validation(vec![FieldError::new(
            "items",
            format!("at most {MAX_BATCH_ITEMS} items per batch"),
        )]));
    }
    let mut outcomes = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        match apply(env, &item.hash.kv_key(), &item.entry, now).await {
            Ok(outcome) => {
                evict(&item.hash);
                outcomes.push(outcome);
            }
            Err(err) => return respond::internal("applying a sync item", &err),
        }
    }
    respond::json(&SyncResponse { outcomes }, 200)
}

async fn apply(env: &Env, kv_key: &str, entry: &EdgeEntry, now: i64) -> Result<SyncOutcome> {
    let kv = env.kv(KV_BINDING)?;
    let stored = kv
        .get(kv_key)
        .text()
        .await
        .map_err(|e| worker::Error::RustError(format!("reading {kv_key}: {e}")))?;
    // An entry that no longer parses (an older schema) is replaced by anything newer.
    let stored: Option<EdgeEntry> = stored.and_then(|t| serde_json::from_str(&t).ok());
    if stored.as_ref().is_some_and(|s| !entry.supersedes(s)) {
        return Ok(SyncOutcome::Stale);
    }
    let mut put = kv
        .put(kv_key, serde_json::to_string(entry)?)
        .map_err(|e| worker::Error::RustError(format!("writing {kv_key}: {e}")))?;
    if let Some(at) = entry.kv_expiration() {
        let at = at.max(now + MIN_EXPIRATION_AHEAD_S);
        put = put.expiration(u64::try_from(at).unwrap_or(u64::MAX));
    }
    put.execute()
        .await
        .map_err(|e| worker::Error::RustError(format!("writing {kv_key}: {e}")))?;
    Ok(SyncOutcome::Applied)
}
