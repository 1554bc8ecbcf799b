//! `POST /_keyward/sync`: signed batches of key and role entries from the control plane into KV.
//!
//! The body is read up to 1 MiB (413 beyond, before any signature work); only a batch whose
//! HMAC signature and timestamp verify is parsed at all. Items go, grouped by hash shard, to
//! the shards' `KvWriter` Durable Objects concurrently; each writes an item only when it
//! supersedes what that hash last had (a higher version; a tombstone is never replaced), one
//! write per hash at a time, so replays, late deliveries and a backfill racing a revocation
//! cannot bring back an old or revoked key (see `writer`). Role writes (`r:{workspace}:{name}`)
//! go the same way, sharded by their KV key; a tombstone's name and meta are dropped before
//! anything is stored.

use futures_util::future::try_join_all;
use keyward_common::sync::{
    MAX_BATCH_ITEMS, SIGNATURE_HEADER, SyncBatch, SyncOutcome, SyncResponse, TIMESTAMP_HEADER,
    verify_signature,
};
use keyward_common::time::unix_seconds;
use keyward_common::{FieldError, Problem, ProblemCode};
use worker::{Env, Request, Response, Result};

use crate::check::{evict, evict_role, now_ms};
use crate::config::Config;
use crate::dispatch::MAX_SYNC_BODY;
use crate::writer::{SHARDS, ShardBatch, role_shard_of, shard_of, write_shard};
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
                "the body must be a sync batch: {\"items\": [{\"hash\", \"entry\"}], \"roles\"?: [{\"workspace\", \"name\", \"entry\"}]}",
            )]));
        }
    };
    if batch.len() > MAX_BATCH_ITEMS {
        return respond::problem(&Problem::validation(vec![FieldError::new(
            "items",
            format!("at most {MAX_BATCH_ITEMS} items and roles per batch"),
        )]));
    }
    if let Some(i) = batch.roles.iter().position(|r| r.kv_key().is_none()) {
        return respond::problem(&Problem::validation(vec![FieldError::new(
            format!("roles[{i}]"),
            "a role needs a workspace of [A-Za-z0-9_-] and a name of [a-z0-9][a-z0-9._-]*",
        )]));
    }
    match apply(env, batch).await {
        Ok(response) => respond::json(&response, 200),
        Err(err) => respond::internal("applying a sync batch", &err),
    }
}

/// Sends every shard's writes to its writer at once (at most [`SHARDS`] requests in flight) and
/// puts the outcomes back in batch order.
async fn apply(env: &Env, batch: SyncBatch) -> Result<SyncResponse> {
    // Per shard: the batch positions of its writes (key writes, then role writes) and the writes.
    let mut shards: Vec<(Vec<usize>, Vec<usize>, ShardBatch)> =
        vec![(Vec::new(), Vec::new(), ShardBatch::default()); SHARDS];
    let (keys, roles) = (batch.items.len(), batch.roles.len());
    let hashes: Vec<_> = batch.items.iter().map(|i| i.hash.clone()).collect();
    let role_keys: Vec<String> = batch.roles.iter().filter_map(|r| r.kv_key()).collect();
    for (index, mut item) in batch.items.into_iter().enumerate() {
        let (indexes, _, shard) = &mut shards[shard_of(&item.hash)];
        // A tombstone is kept for good: it keeps no personal data, whatever the sender sent.
        item.entry = item.entry.scrubbed();
        indexes.push(index);
        shard.items.push(item);
    }
    for (index, (role, kv_key)) in batch.roles.into_iter().zip(&role_keys).enumerate() {
        let (_, indexes, shard) = &mut shards[role_shard_of(kv_key)];
        indexes.push(index);
        shard.roles.push(role);
    }
    let writes = shards
        .into_iter()
        .enumerate()
        .filter(|(_, (k, r, _))| !k.is_empty() || !r.is_empty())
        .map(|(shard, (key_indexes, role_indexes, writes))| async move {
            write_shard(env, shard, writes)
                .await
                .map(|outcomes| (key_indexes, role_indexes, outcomes))
        });
    let mut response = SyncResponse {
        outcomes: vec![SyncOutcome::Stale; keys],
        role_outcomes: vec![SyncOutcome::Stale; roles],
        ..SyncResponse::default()
    };
    for (key_indexes, role_indexes, outcomes) in try_join_all(writes).await? {
        if outcomes.len() != key_indexes.len() + role_indexes.len() {
            return Err(worker::Error::RustError(
                "a KV writer answered a different number of outcomes".into(),
            ));
        }
        let (key_outcomes, role_outcomes) = outcomes.split_at(key_indexes.len());
        for (index, outcome) in key_indexes.into_iter().zip(key_outcomes) {
            response.outcomes[index] = *outcome;
        }
        for (index, outcome) in role_indexes.into_iter().zip(role_outcomes) {
            response.role_outcomes[index] = *outcome;
        }
    }
    // This isolate forgets what it cached for the written keys and roles; others age out in
    // seconds.
    for hash in &hashes {
        evict(hash);
    }
    for kv_key in &role_keys {
        evict_role(kv_key);
    }
    Ok(response)
}
