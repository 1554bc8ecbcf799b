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
use keyward_common::credits::{CreditOp, CreditTarget};
use keyward_common::json;
use keyward_common::record::{valid_owner_id, valid_workspace};
use keyward_common::sync::{
    MAX_BATCH_ITEMS, SIGNATURE_HEADER, SyncBatch, SyncOutcome, SyncResponse, TIMESTAMP_HEADER,
    verify_signature,
};
use keyward_common::time::unix_seconds;
use keyward_common::{FieldError, Problem, ProblemCode};
use worker::{Env, Request, Response, Result};

use crate::check::{evict, evict_owner, evict_role, now_ms};
use crate::config::Config;
use crate::dispatch::MAX_SYNC_BODY;
use crate::writer::{SHARDS, ShardBatch, role_shard_of, shard_of, write_shard};
use crate::{allowance, body, respond};

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
    let batch: SyncBatch = match std::str::from_utf8(&body)
        .ok()
        .and_then(|text| json::from_str(text).ok())
    {
        Some(b) => b,
        None => {
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
    if let Some(i) = batch
        .credit_ops
        .iter()
        .position(|op| !valid_target(&op.target))
    {
        return respond::problem(&Problem::validation(vec![FieldError::new(
            format!("credit_ops[{i}].target"),
            "a target needs a workspace of [A-Za-z0-9_-] (and an owner_id of 1-128 characters)",
        )]));
    }
    if let Some(i) = batch.owners.iter().position(|o| o.kv_key().is_none()) {
        return respond::problem(&Problem::validation(vec![FieldError::new(
            format!("owners[{i}]"),
            "an owner needs a workspace of [A-Za-z0-9_-] and an owner_id of 1-128 characters",
        )]));
    }
    if let Some(i) = batch.roles.iter().position(|r| r.kv_key().is_none()) {
        return respond::problem(&Problem::validation(vec![FieldError::new(
            format!("roles[{i}]"),
            "a role needs a workspace of [A-Za-z0-9_-] and a name of [a-z0-9][a-z0-9._-]*",
        )]));
    }
    match apply(env, batch).await {
        Ok(response) => respond::json(json::to_string(&response), 200),
        Err(err) => respond::internal("applying a sync batch", &err),
    }
}

/// Whether a credit operation's target could be the control plane's (others are refused,
/// never sent to an object).
fn valid_target(target: &CreditTarget) -> bool {
    match target {
        CreditTarget::Key { workspace, .. } => valid_workspace(workspace),
        CreditTarget::Owner {
            workspace,
            owner_id,
        } => valid_workspace(workspace) && valid_owner_id(owner_id),
    }
}

/// One shard's writes and their batch positions (key, role, owner writes).
type ShardWrites = (Vec<usize>, Vec<usize>, Vec<usize>, ShardBatch);

/// Sends every shard's writes to its writer at once (at most [`SHARDS`] requests in flight) and
/// puts the outcomes back in batch order.
async fn apply(env: &Env, batch: SyncBatch) -> Result<SyncResponse> {
    // Credit operations first, so a key or owner that gains credits in this batch has them
    // before its entry says so. Targets go concurrently, each target's operations in order.
    let credit_outcomes = apply_credit_ops(env, &batch.credit_ops).await?;
    // Per shard: the batch positions of its writes (key, role, owner writes) and the writes.
    let mut shards: Vec<ShardWrites> =
        vec![(Vec::new(), Vec::new(), Vec::new(), ShardBatch::default()); SHARDS];
    let (keys, roles, owners) = (batch.items.len(), batch.roles.len(), batch.owners.len());
    let owner_keys: Vec<String> = batch.owners.iter().filter_map(|o| o.kv_key()).collect();
    let hashes: Vec<_> = batch.items.iter().map(|i| i.hash.clone()).collect();
    let role_keys: Vec<String> = batch.roles.iter().filter_map(|r| r.kv_key()).collect();
    for (index, mut item) in batch.items.into_iter().enumerate() {
        let (indexes, _, _, shard) = &mut shards[shard_of(&item.hash)];
        // A tombstone is kept for good: it keeps no personal data, whatever the sender sent.
        item.entry = item.entry.scrubbed();
        indexes.push(index);
        shard.items.push(item);
    }
    for (index, (role, kv_key)) in batch.roles.into_iter().zip(&role_keys).enumerate() {
        let (_, indexes, _, shard) = &mut shards[role_shard_of(kv_key)];
        indexes.push(index);
        shard.roles.push(role);
    }
    for (index, (owner, kv_key)) in batch.owners.into_iter().zip(&owner_keys).enumerate() {
        let (_, _, indexes, shard) = &mut shards[role_shard_of(kv_key)];
        indexes.push(index);
        shard.owners.push(owner);
    }
    let writes = shards
        .into_iter()
        .enumerate()
        .filter(|(_, (k, r, o, _))| !k.is_empty() || !r.is_empty() || !o.is_empty())
        .map(
            |(shard, (key_indexes, role_indexes, owner_indexes, writes))| async move {
                write_shard(env, shard, writes)
                    .await
                    .map(|outcomes| (key_indexes, role_indexes, owner_indexes, outcomes))
            },
        );
    let mut response = SyncResponse {
        outcomes: vec![SyncOutcome::Stale; keys],
        role_outcomes: vec![SyncOutcome::Stale; roles],
        owner_outcomes: vec![SyncOutcome::Stale; owners],
        credit_outcomes,
    };
    for (key_indexes, role_indexes, owner_indexes, outcomes) in try_join_all(writes).await? {
        if outcomes.len() != key_indexes.len() + role_indexes.len() + owner_indexes.len() {
            return Err(worker::Error::RustError(
                "a KV writer answered a different number of outcomes".into(),
            ));
        }
        let (key_outcomes, rest) = outcomes.split_at(key_indexes.len());
        let (role_outcomes, owner_outcomes) = rest.split_at(role_indexes.len());
        for (index, outcome) in owner_indexes.into_iter().zip(owner_outcomes) {
            response.owner_outcomes[index] = *outcome;
        }
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
    for kv_key in &owner_keys {
        evict_owner(kv_key);
    }
    Ok(response)
}

/// Sends each credit operation to its target's object: targets concurrently, one target's
/// operations one after another in batch order (ascending `seq`). `stale` for a `seq` the
/// object had applied already.
async fn apply_credit_ops(env: &Env, ops: &[CreditOp]) -> Result<Vec<SyncOutcome>> {
    let mut by_target: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let name = op.target.object_name();
        match by_target.iter_mut().find(|(n, _)| *n == name) {
            Some((_, indexes)) => indexes.push(i),
            None => by_target.push((name, vec![i])),
        }
    }
    let runs = by_target.into_iter().map(|(_, indexes)| async move {
        let mut out = Vec::with_capacity(indexes.len());
        for i in indexes {
            let applied = allowance::apply_op(env, &ops[i]).await?;
            out.push((i, applied));
        }
        Ok::<_, worker::Error>(out)
    });
    let mut outcomes = vec![SyncOutcome::Stale; ops.len()];
    for run in try_join_all(runs).await? {
        for (i, applied) in run {
            if applied {
                outcomes[i] = SyncOutcome::Applied;
            }
        }
    }
    Ok(outcomes)
}
