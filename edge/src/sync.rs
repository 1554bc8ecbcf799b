//! `POST /_keyward/sync`: signed batches of edge entries from the control plane into KV.
//!
//! The body is read up to 1 MiB (413 beyond, before any signature work); only a batch whose
//! HMAC signature and timestamp verify is parsed at all. Items go, grouped by hash shard, to
//! the shards' `KvWriter` Durable Objects concurrently; each writes an item only when it
//! supersedes what that hash last had (a higher version; a tombstone is never replaced), one
//! write per hash at a time, so replays, late deliveries and a backfill racing a revocation
//! cannot bring back an old or revoked key (see `writer`).

use futures_util::future::try_join_all;
use keyward_common::sync::{
    MAX_BATCH_ITEMS, SIGNATURE_HEADER, SyncBatch, SyncItem, SyncOutcome, SyncResponse,
    TIMESTAMP_HEADER, verify_signature,
};
use keyward_common::time::unix_seconds;
use keyward_common::{FieldError, Problem, ProblemCode};
use worker::{Env, Request, Response, Result};

use crate::check::{evict, now_ms};
use crate::config::Config;
use crate::dispatch::MAX_SYNC_BODY;
use crate::writer::{SHARDS, shard_of, write_shard};
use crate::{body, respond};

/// Applies a signed batch.
///
/// # Errors
/// Only if the runtime fails to build a response; KV failures become a 500 answer.
pub async fn handle(req: Request, env: &Env, cfg: &Config) -> Result<Response> {
    let Some(secret) = cfg.sync_secret.as_ref() else {
        return respond::problem(&Problem::of(
            ProblemCode::SyncNotConfigured,
            "This edge has no SYNC_SECRET; it accepts no sync batches.",
        ));
    };
    let Some(body) = body::read_bytes(req.inner(), MAX_SYNC_BODY).await? else {
        return respond::problem(&Problem::of(
            ProblemCode::PayloadTooLarge,
            format!("A sync batch is at most {MAX_SYNC_BODY} bytes; send smaller batches."),
        ));
    };
    let now = unix_seconds(now_ms());
    let headers = req.headers();
    if let Err(err) = verify_signature(
        secret.expose(),
        headers.get(TIMESTAMP_HEADER)?.as_deref(),
        headers.get(SIGNATURE_HEADER)?.as_deref(),
        &body,
        now,
    ) {
        return respond::problem(&Problem::of(ProblemCode::InvalidSignature, err.to_string()));
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
    match apply(env, batch.items).await {
        Ok(outcomes) => respond::json(&SyncResponse { outcomes }, 200),
        Err(err) => respond::internal("applying a sync batch", &err),
    }
}

/// Sends every shard's items to its writer at once (at most [`SHARDS`] requests in flight) and
/// puts the outcomes back in batch order.
async fn apply(env: &Env, items: Vec<SyncItem>) -> Result<Vec<SyncOutcome>> {
    let mut shards: Vec<(Vec<usize>, Vec<SyncItem>)> = vec![(Vec::new(), Vec::new()); SHARDS];
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let (indexes, shard_items) = &mut shards[shard_of(&item.hash)];
        indexes.push(index);
        shard_items.push(item);
    }
    let hashes: Vec<_> = shards
        .iter()
        .flat_map(|(_, items)| items.iter().map(|i| i.hash.clone()))
        .collect();
    let writes = shards
        .into_iter()
        .enumerate()
        .filter(|(_, (indexes, _))| !indexes.is_empty())
        .map(|(shard, (indexes, items))| async move {
            write_shard(env, shard, items)
                .await
                .map(|outcomes| (indexes, outcomes))
        });
    let mut outcomes = vec![SyncOutcome::Stale; count];
    for (indexes, shard_outcomes) in try_join_all(writes).await? {
        if shard_outcomes.len() != indexes.len() {
            return Err(worker::Error::RustError(
                "a KV writer answered a different number of outcomes".into(),
            ));
        }
        for (index, outcome) in indexes.into_iter().zip(shard_outcomes) {
            outcomes[index] = outcome;
        }
    }
    // This isolate forgets what it cached for the written hashes; others age out in seconds.
    for hash in &hashes {
        evict(hash);
    }
    Ok(outcomes)
}
