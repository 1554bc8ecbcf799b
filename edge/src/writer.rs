//! Monotonic KV writes: every sync write of an `h:{hash}` key entry or an `r:{workspace}:{name}`
//! role entry goes through the `KvWriter` Durable Object of its shard, which serialises
//! compare-and-write per KV key.
//!
//! A plain read-compare-write against KV cannot be made safe: two writers (a sync and a
//! backfill) can both read the old entry, and the one that writes last wins, even when it holds
//! the older version, so a fresh tombstone could be overwritten by an active entry. Here the
//! authority is the object's own storage (strongly consistent), and for each hash one write at
//! a time runs "compare with the authority → record the new entry → write KV": KV writes of one
//! hash are issued one after another, each after the previous one was acknowledged, and each
//! writes the newest entry the authority has seen. So the last KV write of a hash is always the
//! newest entry, and a tombstone is never replaced.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures_util::StreamExt;
use keyward_common::json::{self, FromJson, ToJson};
use keyward_common::record::OwnerEntry;
use keyward_common::sync::{OwnerSyncItem, RoleSyncItem, SyncItem, SyncOutcome};
use keyward_common::time::unix_seconds;
use keyward_common::{EdgeEntry, KeyHash, RoleEntry};
use wasm_bindgen::JsValue;
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

use crate::config::{KV_BINDING, KV_WRITER_BINDING};
use crate::js;

/// Number of writer objects; a hash's shard is its first hex digit.
pub const SHARDS: usize = 16;
/// Items of one shard's batch written to KV at once (distinct hashes; one hash is serial).
pub const WRITES_IN_FLIGHT: usize = 32;
/// Smallest expiration KV accepts is 60 s ahead; keep a margin.
const MIN_EXPIRATION_AHEAD_S: i64 = 120;

/// The shard of a hash, `0..SHARDS`.
#[must_use]
pub fn shard_of(hash: &KeyHash) -> usize {
    hash.as_str()
        .chars()
        .next()
        .and_then(|c| c.to_digit(16))
        .map_or(0, |d| d as usize % SHARDS)
}

/// The shard of a role's KV key, `0..SHARDS` (FNV-1a of the key: role names share prefixes).
#[must_use]
pub fn role_shard_of(kv_key: &str) -> usize {
    let hash = kv_key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash as usize % SHARDS
}

/// One writer's request: the items of its shard, in batch order (key writes, then role writes).
/// Wire form: `{"items": [...], "roles"?: [...], "owners"?: [...]}` (empty lists left out).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ShardBatch {
    /// Key writes.
    pub items: Vec<SyncItem>,
    /// Role writes.
    pub roles: Vec<RoleSyncItem>,
    /// Owner writes (`o:{workspace}:{owner_id}`), after the roles.
    pub owners: Vec<OwnerSyncItem>,
}

keyward_common::json_object!(read_write ShardBatch, skip {
    items: req,
    roles: skip_empty,
    owners: skip_empty,
});

/// An entry the writer keeps monotonic in KV.
trait Versioned: ToJson + FromJson + PartialEq {
    /// Whether `self` should replace `stored`.
    fn supersedes(&self, stored: &Self) -> bool;
    /// When KV may forget it (Unix seconds), or `None` to keep it.
    fn kv_expiration(&self) -> Option<i64>;
}

impl Versioned for EdgeEntry {
    fn supersedes(&self, stored: &Self) -> bool {
        EdgeEntry::supersedes(self, stored)
    }
    fn kv_expiration(&self) -> Option<i64> {
        EdgeEntry::kv_expiration(self)
    }
}

impl Versioned for OwnerEntry {
    /// Newest version wins; the same version again is written again (a retried batch).
    fn supersedes(&self, stored: &Self) -> bool {
        self.version > stored.version
    }
    fn kv_expiration(&self) -> Option<i64> {
        None
    }
}

impl Versioned for RoleEntry {
    fn supersedes(&self, stored: &Self) -> bool {
        RoleEntry::supersedes(self, stored)
    }
    fn kv_expiration(&self) -> Option<i64> {
        // Role entries (tombstones included) are a few bytes per role: kept for good.
        None
    }
}

/// Sends `batch` (all of one shard) to that shard's writer and returns the outcomes of its key
/// writes, then of its role writes, in order.
///
/// # Errors
/// When the namespace is not bound, the object cannot be reached, or it fails.
pub async fn write_shard(env: &Env, shard: usize, batch: ShardBatch) -> Result<Vec<SyncOutcome>> {
    let (status, text) = js::post_to_object(
        env,
        KV_WRITER_BINDING,
        &format!("kv-writer-{shard:x}"),
        "https://kv-writer/write",
        &json::to_string(&batch),
    )
    .await?;
    if status != 200 {
        return Err(worker::Error::RustError(format!(
            "the KV writer of shard {shard:x} answered {status}: {text}"
        )));
    }
    js::parse(&text, "the KV writer's answer")
}

/// A per-hash lock: at most one holder per hash at a time. Single-threaded (a Durable Object
/// runs one event at a time; only its awaits interleave), so `Rc`/`RefCell` suffice.
#[derive(Debug, Default)]
struct Locks {
    held: RefCell<HashMap<String, VecDeque<Waker>>>,
}

/// Releases its hash's lock when dropped (also when the write fails).
struct Held<'a> {
    locks: &'a Locks,
    hash: String,
}

impl Locks {
    async fn lock(&self, hash: &str) -> Held<'_> {
        let queued = Cell::new(false);
        poll_fn(|cx| {
            let mut held = self.held.borrow_mut();
            match held.get_mut(hash) {
                None => {
                    held.insert(hash.to_owned(), VecDeque::new());
                    Poll::Ready(())
                }
                Some(waiters) => {
                    if !queued.replace(true) {
                        waiters.push_back(cx.waker().clone());
                    } else if let Some(w) = waiters.iter_mut().find(|w| w.will_wake(cx.waker())) {
                        w.clone_from(cx.waker());
                    } else {
                        waiters.push_back(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        Held {
            locks: self,
            hash: hash.to_owned(),
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let waiters = self.locks.held.borrow_mut().remove(&self.hash);
        // Wake every waiter: the first to run takes the lock, the others queue again.
        for w in waiters.into_iter().flatten() {
            w.wake();
        }
    }
}

/// The Durable Object class (`KvWriter` in `wrangler.toml`), one instance per hash shard.
#[durable_object(fetch)]
pub struct KvWriter {
    state: State,
    env: Env,
    locks: Rc<Locks>,
}

impl std::fmt::Debug for KvWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvWriter").finish_non_exhaustive()
    }
}

impl DurableObject for KvWriter {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            locks: Rc::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(batch) = json::from_str::<ShardBatch>(&req.text().await?) else {
            return Response::error("not a shard batch", 400);
        };
        let now = unix_seconds(worker::Date::now().as_millis());
        let mut writes = Vec::with_capacity(batch.items.len() + batch.roles.len());
        for item in &batch.items {
            writes.push(futures_util::future::Either::Left(self.apply(
                item.hash.kv_key(),
                &item.entry,
                now,
            )));
        }
        for role in &batch.roles {
            let Some(kv_key) = role.kv_key() else {
                return Response::error("a role write with an invalid workspace or name", 400);
            };
            writes.push(futures_util::future::Either::Right(self.apply(
                kv_key,
                &role.entry,
                now,
            )));
        }
        // Distinct KV keys are written concurrently; `buffered` keeps the outcomes in order.
        let mut owner_writes = Vec::with_capacity(batch.owners.len());
        for owner in &batch.owners {
            let Some(kv_key) = owner.kv_key() else {
                return Response::error("an owner write with an invalid workspace or id", 400);
            };
            owner_writes.push(self.apply(kv_key, &owner.entry, now));
        }
        let writes = writes
            .into_iter()
            .map(futures_util::future::Either::Left)
            .chain(
                owner_writes
                    .into_iter()
                    .map(futures_util::future::Either::Right),
            );
        let outcomes: Vec<Result<SyncOutcome>> = futures_util::stream::iter(writes)
            .buffered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        let outcomes = outcomes.into_iter().collect::<Result<Vec<_>>>()?;
        Response::ok(json::to_string(&outcomes))
    }
}

impl KvWriter {
    /// Compare-and-write of one entry under `kv_key`, holding that key's lock throughout.
    async fn apply<T: Versioned>(
        &self,
        kv_key: String,
        entry: &T,
        now: i64,
    ) -> Result<SyncOutcome> {
        let _held = self.locks.lock(&kv_key).await;
        let storage = self.state.storage();
        // Stored as the same JSON text KV holds, so both always parse the same way.
        let stored = js::storage_get(&storage, &kv_key).await?;
        let authority = match stored.as_string() {
            Some(text) => Some(js::parse::<T>(
                &text,
                &format!("the stored entry of {kv_key}"),
            )?),
            None if !stored.is_undefined() => {
                return Err(worker::Error::RustError(format!(
                    "the stored entry of {kv_key} is not text"
                )));
            }
            // Written before this object kept the authority: what KV holds is all we know.
            None => kv_entry(&self.env, &kv_key).await?,
        };
        // The same entry again (a retried batch) is written again: its KV write may have failed.
        if authority
            .as_ref()
            .is_some_and(|a| a != entry && !entry.supersedes(a))
        {
            return Ok(SyncOutcome::Stale);
        }
        // The authority first: if the KV write then fails, a retry of this entry (equal to the
        // authority) is written again, and nothing older can pass the comparison meanwhile.
        let text = json::to_string(entry);
        storage.put_raw(&kv_key, JsValue::from_str(&text)).await?;
        let expiration = entry
            .kv_expiration()
            .map(|at| u64::try_from(at.max(now + MIN_EXPIRATION_AHEAD_S)).unwrap_or(u64::MAX));
        js::kv_put(&self.env, KV_BINDING, &kv_key, &text, expiration)
            .await
            .map_err(|e| worker::Error::RustError(format!("writing {kv_key}: {e}")))?;
        Ok(SyncOutcome::Applied)
    }
}

async fn kv_entry<T: FromJson>(env: &Env, kv_key: &str) -> Result<Option<T>> {
    let stored = js::kv_get(env, KV_BINDING, kv_key, None)
        .await
        .map_err(|e| worker::Error::RustError(format!("reading {kv_key}: {e}")))?;
    // An entry that no longer parses (an older schema) is replaced by anything newer.
    Ok(stored.and_then(|t| json::from_str(&t).ok()))
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::Context;

    use super::*;

    #[test]
    fn one_holder_per_hash_and_the_next_one_runs_after_release() {
        let locks = Locks::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut first = pin!(locks.lock("h:a"));
        let Poll::Ready(held) = first.as_mut().poll(&mut cx) else {
            panic!("a free lock is taken at once");
        };
        let mut second = pin!(locks.lock("h:a"));
        assert!(second.as_mut().poll(&mut cx).is_pending(), "held: wait");
        let mut other = pin!(locks.lock("h:b"));
        assert!(
            other.as_mut().poll(&mut cx).is_ready(),
            "another hash is free"
        );
        drop(held);
        assert!(second.as_mut().poll(&mut cx).is_ready(), "released: taken");
    }

    #[test]
    fn role_shards_spread_and_stay_in_range() {
        let shards: std::collections::HashSet<usize> = (0..64)
            .map(|i| role_shard_of(&format!("r:acme:role-{i}")))
            .collect();
        assert!(shards.iter().all(|s| *s < SHARDS));
        assert!(shards.len() > SHARDS / 2, "{shards:?}");
    }

    #[test]
    fn a_shard_batch_is_written_as_serde_wrote_it_and_read_back() {
        let batch = ShardBatch {
            items: Vec::new(),
            roles: vec![RoleSyncItem {
                workspace: "acme".into(),
                name: "r".into(),
                entry: RoleEntry::tombstone(2, 5),
            }],
            owners: Vec::new(),
        };
        let text = json::to_string(&batch);
        assert_eq!(
            text,
            r#"{"items":[],"roles":[{"workspace":"acme","name":"r","entry":{"version":2,"created_at":5,"permissions":[],"deleted":true}}]}"#
        );
        assert_eq!(json::from_str::<ShardBatch>(&text), Ok(batch));
    }

    #[test]
    fn shards_come_from_the_first_hex_digit() {
        let hash = |c: char| KeyHash::parse(&format!("{c}{}", "0".repeat(63))).unwrap();
        assert_eq!(shard_of(&hash('0')), 0);
        assert_eq!(shard_of(&hash('a')), 10);
        assert_eq!(shard_of(&hash('f')), 15);
    }
}
