//! From a presented key to a verdict: parse (no I/O) → SHA-256 → isolate cache → KV → `verify`
//! → rate limit. The decision itself is `keyward_common::verify`; this module only fetches.

use std::cell::RefCell;

use keyward_common::{EdgeEntry, KeyHash, PresentedKey, RequestContext, Verdict, VerdictCode};
use worker::{Context, Env, Result};

use crate::cache::{CAPACITY, LookupCache};
use crate::config::{Config, KV_BINDING, KV_CACHE_TTL_S};
use crate::{ratelimit, usage};

thread_local! {
    static CACHE: RefCell<LookupCache> = RefCell::new(LookupCache::new(CAPACITY));
}

/// Forgets the cached lookup of `hash` in this isolate.
pub fn evict(hash: &KeyHash) {
    CACHE.with_borrow_mut(|c| c.evict(hash.as_str()));
}

/// A verdict and what it cost.
#[derive(Debug)]
pub struct Checked {
    /// The decision, with the rate-limit state when the key is limited.
    pub verdict: Verdict,
    /// KV reads made for it (0 for a malformed key or a cache hit): reported by `test-hooks`.
    pub kv_reads: u32,
}

/// Milliseconds since the Unix epoch.
#[must_use]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn now_ms() -> u64 {
    // `Date.now()` without a `Date` object: one call into the runtime.
    worker::js_sys::Date::now() as u64
}

/// Checks `key` for a request with `request` context, counting it against the rate limit and
/// in usage when it is valid.
///
/// # Errors
/// When KV or the rate limiter fails, or a stored entry does not parse: the caller fails closed.
pub async fn check(
    env: &Env,
    ctx: &Context,
    cfg: &Config,
    key: Option<&str>,
    request: &RequestContext,
) -> Result<Checked> {
    let Some(presented) = parse(key) else {
        return Ok(malformed());
    };
    let now_ms = now_ms();
    let (entry, kv_reads) = lookup(env, cfg, &presented.hash(), now_ms).await?;
    let mut verdict = keyward_common::verify(&presented, entry.as_ref(), request, secs(now_ms));
    // A found key with a limit always reports its window; only a still-valid request counts.
    if let Some((entry, limit)) = entry
        .as_ref()
        .filter(|_| verdict.key_id.is_some())
        .and_then(|e| Some((e, e.rate_limit.as_ref()?)))
    {
        let peek = !verdict.valid;
        let hit = ratelimit::hit(env, entry.key_id.as_str(), limit, peek).await?;
        verdict = verdict.with_rate_limit(hit.state, hit.allowed || peek);
    }
    record_usage(ctx, cfg, entry.as_ref(), &verdict, now_ms);
    Ok(Checked { verdict, kv_reads })
}

/// [`check`] for the verdicts that need no I/O: a malformed key, or a key whose lookup is in
/// this isolate's cache and that has no rate limit. `None` means [`check`] is needed.
pub fn check_now(
    ctx: &Context,
    cfg: &Config,
    key: Option<&str>,
    request: &RequestContext,
) -> Option<Checked> {
    let Some(presented) = parse(key) else {
        return Some(malformed());
    };
    let now_ms = now_ms();
    let entry = CACHE.with_borrow_mut(|c| c.get(presented.hash().as_str(), now_ms))?;
    if entry.as_ref().is_some_and(|e| e.rate_limit.is_some()) {
        return None;
    }
    let verdict = keyward_common::verify(&presented, entry.as_ref(), request, secs(now_ms));
    record_usage(ctx, cfg, entry.as_ref(), &verdict, now_ms);
    Some(Checked {
        verdict,
        kv_reads: 0,
    })
}

fn parse(key: Option<&str>) -> Option<PresentedKey> {
    key.and_then(|k| PresentedKey::parse(k).ok())
}

fn malformed() -> Checked {
    Checked {
        verdict: Verdict::anonymous(VerdictCode::Malformed),
        kv_reads: 0,
    }
}

fn secs(now_ms: u64) -> i64 {
    keyward_common::time::unix_seconds(now_ms)
}

/// Counts a valid request of a found key in usage.
fn record_usage(
    ctx: &Context,
    cfg: &Config,
    entry: Option<&EdgeEntry>,
    verdict: &Verdict,
    now_ms: u64,
) {
    if let Some(entry) = entry.filter(|_| verdict.valid) {
        usage::record(
            ctx,
            cfg.usage_url.as_deref(),
            cfg.usage_secret.as_ref(),
            cfg.usage_flush_ms,
            (&entry.key_id, &entry.workspace),
            now_ms,
        );
    }
}

async fn lookup(
    env: &Env,
    cfg: &Config,
    hash: &KeyHash,
    now_ms: u64,
) -> Result<(Option<EdgeEntry>, u32)> {
    if let Some(hit) = CACHE.with_borrow_mut(|c| c.get(hash.as_str(), now_ms)) {
        return Ok((hit, 0));
    }
    let text = env
        .kv(KV_BINDING)?
        .get(&hash.kv_key())
        .cache_ttl(KV_CACHE_TTL_S)
        .text()
        .await
        .map_err(|e| worker::Error::RustError(format!("reading {hash:?} from KV: {e}")))?;
    let entry: Option<EdgeEntry> = text
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| worker::Error::RustError(format!("KV entry {hash:?} does not parse: {e}")))?;
    let ttl = if entry.is_some() {
        cfg.cache_ttl_ms
    } else {
        cfg.negative_cache_ttl_ms
    };
    CACHE.with_borrow_mut(|c| c.insert(hash.as_str(), entry.clone(), now_ms, ttl));
    Ok((entry, 1))
}
