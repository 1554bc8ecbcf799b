//! From a presented key to a verdict: parse (no I/O) → SHA-256 → isolate cache → KV → the key's
//! roles (isolate cache, else KV, concurrently) → `verify` → rate limit. The decision itself is
//! `keyward_common::verify_with_permissions`; this module only fetches.
//!
//! KV reads: a warm key and its roles cost none; a cold key costs one read for its entry plus one
//! per role of it that this isolate has not cached (read at the same time). A role's entry is
//! shared by all its holders, so one read serves every key holding it for the cache TTL.
//!
//! Parsing accepts Keyward's format with a valid checksum and, for imported keys, any other
//! format ([`PresentedKey::parse_any`]): a Keyward key with a wrong checksum, or one typo away
//! from one, costs no read; a string of another format costs one read when unknown, and then
//! none while its miss is cached in this isolate, like an unknown Keyward key.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::future::try_join_all;
use keyward_common::allowance::{CreditState, LimitScope, LimitState, Refusal, Rules};
use keyward_common::credits::CreditTarget;
use keyward_common::record::{NamedRateLimit, OwnerEntry, OwnerStatus, owner_kv_key, role_kv_key};
use keyward_common::{
    EdgeEntry, KeyHash, PresentedKey, RequestContext, RoleEntry, Verdict, VerdictCode,
    effective_permissions, verify_with_permissions,
};
use worker::{Context, Env, Result};

use crate::cache::{CAPACITY, LookupCache};
use crate::config::{Config, KV_BINDING, KV_CACHE_TTL_S};
use crate::{allowance, js, usage};

thread_local! {
    /// Key entries, shared (`Rc`): a hit is not a copy of the entry (its `meta` included).
    static CACHE: RefCell<LookupCache<Rc<EdgeEntry>>> = RefCell::new(LookupCache::new(CAPACITY));
    static ROLES: RefCell<LookupCache<RoleEntry>> = RefCell::new(LookupCache::new(CAPACITY));
    static OWNERS: RefCell<LookupCache<OwnerEntry>> = RefCell::new(LookupCache::new(CAPACITY));
}

/// Forgets the cached owner entry under `kv_key` (`o:{workspace}:{owner_id}`) in this isolate.
pub fn evict_owner(kv_key: &str) {
    OWNERS.with_borrow_mut(|c| c.evict(kv_key));
}

/// Forgets the cached lookup of `hash` in this isolate.
pub fn evict(hash: &KeyHash) {
    CACHE.with_borrow_mut(|c| c.evict(hash.as_str()));
}

/// Forgets the cached role entry under `kv_key` (`r:{workspace}:{name}`) in this isolate.
pub fn evict_role(kv_key: &str) {
    ROLES.with_borrow_mut(|c| c.evict(kv_key));
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

/// Checks `key` for a request with `request` context, counting it (`cost` units) against the
/// rate limit and in usage when it is valid.
///
/// # Errors
/// When KV or the rate limiter fails, or a stored entry does not parse: the caller fails closed.
pub async fn check(
    env: &Env,
    ctx: &Context,
    cfg: &Config,
    key: Option<&str>,
    request: &RequestContext,
    cost: u32,
) -> Result<Checked> {
    let Some(presented) = parse(key) else {
        return Ok(malformed());
    };
    allowance::set_clock_offset(cfg.clock_offset_s);
    let now_ms = now_ms();
    let (entry, mut kv_reads) = lookup(env, cfg, &presented.hash(), now_ms).await?;
    // The roles and the owner are read at the same time (each only when not cached).
    let roles = async {
        match entry.as_deref() {
            Some(e) if needs_roles(e, request) => role_permissions(env, cfg, e, now_ms).await,
            Some(e) => Ok((e.scopes.clone(), 0)),
            None => Ok((Vec::new(), 0)),
        }
    };
    let owner = async {
        match entry.as_deref().filter(|e| in_workspaces(e, request)) {
            Some(e) => owner_of(env, cfg, e, now_ms).await,
            None => Ok((None, 0)),
        }
    };
    let ((permissions, role_reads), (owner, owner_reads)) =
        futures_util::future::try_join(roles, owner).await?;
    kv_reads += role_reads + owner_reads;
    let mut verdict = verify_with_permissions(
        &presented,
        entry.as_deref(),
        permissions,
        request,
        secs(now_ms),
    );
    let owner = owner.filter(|_| verdict.key_id.is_some());
    apply_owner_status(&mut verdict, owner.as_ref());
    let targets = entry
        .as_ref()
        .filter(|_| verdict.key_id.is_some())
        .map(|e| targets(e, owner.as_ref()))
        .unwrap_or_default();
    if !targets.is_empty() {
        let (refusal, limits, credits) = if verdict.valid {
            spend_all(env, ctx, &targets, cost).await?
        } else {
            // Refused before the allowance: spends nothing, reports the state.
            let mut states = States::default();
            for t in &targets {
                states.add(allowance::peek(env, ctx, t).await?);
            }
            (None, states.limits, states.credits)
        };
        verdict = verdict.with_allowance(refusal, limits, credits);
    }
    record_usage(ctx, cfg, entry.as_deref(), &verdict, cost, now_ms);
    Ok(Checked { verdict, kv_reads })
}

/// The limits and credits of a request's targets, merged: every limit, and the fewer credits.
#[derive(Debug, Default)]
struct States {
    limits: Vec<LimitState>,
    credits: Option<CreditState>,
}

impl States {
    fn add(&mut self, spent: allowance::Spent) {
        self.limits.extend(spent.limits);
        self.credits = match (self.credits, spent.credits) {
            (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
            (a, b) => a.or(b),
        };
    }
}

fn refusal_code(r: Refusal) -> VerdictCode {
    match r {
        Refusal::RateLimited => VerdictCode::RateLimited,
        Refusal::UsageExceeded => VerdictCode::UsageExceeded,
    }
}

/// Spends `cost` from the key, then from its owner; when the owner refuses, the key's spend is
/// given back.
async fn spend_all(
    env: &Env,
    ctx: &Context,
    targets: &[allowance::Target],
    cost: u32,
) -> Result<(Option<VerdictCode>, Vec<LimitState>, Option<CreditState>)> {
    let mut states = States::default();
    for (i, t) in targets.iter().enumerate() {
        let spent = allowance::spend(env, ctx, t, cost).await?;
        let refusal = spent.refusal;
        if refusal.is_none() {
            allowance::top_up(env, ctx, t);
        }
        states.add(spent);
        if let Some(r) = refusal {
            for earlier in &targets[..i] {
                allowance::refund(env, ctx, earlier, cost, allowance::clock_ms());
            }
            // The answer still shows the owner's state when the key refused.
            for later in &targets[i + 1..] {
                states.add(allowance::peek(env, ctx, later).await?);
            }
            return Ok((Some(refusal_code(r)), states.limits, states.credits));
        }
    }
    Ok((None, states.limits, states.credits))
}

/// A disabled owner refuses its keys like a disabled key: after a revoked or disabled key's own
/// status, before anything else.
fn apply_owner_status(verdict: &mut Verdict, owner: Option<&OwnerEntry>) {
    if owner.is_some_and(|o| o.status == OwnerStatus::Disabled)
        && matches!(
            verdict.code,
            VerdictCode::Valid
                | VerdictCode::Expired
                | VerdictCode::ForbiddenIp
                | VerdictCode::ForbiddenScope
        )
    {
        verdict.valid = false;
        verdict.code = VerdictCode::Disabled;
    }
}

/// The key's limits: `rate_limits`, else the old one-limit form as `default`.
fn key_rules(entry: &EdgeEntry) -> Rules {
    let limits = if entry.rate_limits.is_empty() {
        entry
            .rate_limit
            .map(|r| NamedRateLimit {
                name: NamedRateLimit::DEFAULT_NAME.to_owned(),
                limit: r.limit,
                period_s: r.period_s,
            })
            .into_iter()
            .collect()
    } else {
        entry.rate_limits.clone()
    };
    Rules {
        limits,
        credited: entry.credited,
    }
}

/// The allowances a request of `entry` spends from: the key's, then its owner's (each only when
/// limited or credited).
fn targets(entry: &EdgeEntry, owner: Option<&OwnerEntry>) -> Vec<allowance::Target> {
    let mut out = Vec::new();
    if entry.is_tombstone() {
        return out;
    }
    let rules = key_rules(entry);
    if rules.is_limited() {
        out.push(allowance::Target::new(
            CreditTarget::Key {
                workspace: entry.workspace.clone(),
                key_id: entry.key_id.clone(),
            },
            rules,
            LimitScope::Key,
        ));
    }
    if let (Some(owner), Some(owner_id)) = (owner, entry.owner_id.as_ref()) {
        let rules = Rules {
            limits: owner.rate_limits.clone(),
            credited: owner.credited,
        };
        if rules.is_limited() {
            out.push(allowance::Target::new(
                CreditTarget::Owner {
                    workspace: entry.workspace.clone(),
                    owner_id: owner_id.clone(),
                },
                rules,
                LimitScope::Owner,
            ));
        }
    }
    out
}

/// The key's owner entry (isolate cache, else KV): `None` when the key has none or it is not
/// stored. Returns the entry and the KV reads made.
async fn owner_of(
    env: &Env,
    cfg: &Config,
    entry: &EdgeEntry,
    now_ms: u64,
) -> Result<(Option<OwnerEntry>, u32)> {
    let Some(owner_id) = entry.owner_id.as_deref().filter(|_| !entry.is_tombstone()) else {
        return Ok((None, 0));
    };
    let kv_key = owner_kv_key(&entry.workspace, owner_id);
    if let Some(hit) = OWNERS.with_borrow_mut(|c| c.get(&kv_key, now_ms)) {
        return Ok((hit, 0));
    }
    let text = js::kv_get(env, KV_BINDING, &kv_key, Some(KV_CACHE_TTL_S))
        .await
        .map_err(|e| worker::Error::RustError(format!("reading {kv_key}: {e}")))?;
    let owner: Option<OwnerEntry> = text
        .map(|t| js::parse(&t, &format!("KV entry {kv_key}")))
        .transpose()?;
    // An absent owner entry is the common case (an owner with no settings), not a guess at an
    // unknown key: it is cached as long as a found one. A sync that writes it evicts it here.
    let ttl = cfg.cache_ttl_ms;
    OWNERS.with_borrow_mut(|c| c.insert(&kv_key, owner.clone(), now_ms, ttl));
    Ok((owner, 1))
}

/// [`check`] for the verdicts that need no I/O: a malformed key, or a key whose lookup (and its
/// roles') is in this isolate's cache and that has no rate limit. `None` means [`check`] is
/// needed.
pub fn check_now(
    env: &Env,
    ctx: &Context,
    cfg: &Config,
    key: Option<&str>,
    request: &RequestContext,
    cost: u32,
) -> Option<Checked> {
    let Some(presented) = parse(key) else {
        return Some(malformed());
    };
    allowance::set_clock_offset(cfg.clock_offset_s);
    let now_ms = now_ms();
    let entry = CACHE.with_borrow_mut(|c| c.get(presented.hash().as_str(), now_ms))?;
    let owner = match entry.as_deref().and_then(|e| e.owner_id.as_deref()) {
        Some(owner_id) if entry.as_deref().is_some_and(|e| in_workspaces(e, request)) => {
            let e = entry.as_deref()?;
            OWNERS.with_borrow_mut(|c| c.get(&owner_kv_key(&e.workspace, owner_id), now_ms))?
        }
        _ => None,
    };
    let permissions = match entry.as_deref() {
        Some(e) if needs_roles(e, request) => cached_role_permissions(e, now_ms)?,
        Some(e) => e.scopes.clone(),
        None => Vec::new(),
    };
    let mut verdict = verify_with_permissions(
        &presented,
        entry.as_deref(),
        permissions,
        request,
        secs(now_ms),
    );
    apply_owner_status(&mut verdict, owner.as_ref());
    let targets = entry
        .as_ref()
        .filter(|_| verdict.key_id.is_some())
        .map(|e| targets(e, owner.as_ref()))
        .unwrap_or_default();
    if !targets.is_empty() {
        // Only a valid request spent wholly from this isolate's leases answers here.
        if !verdict.valid {
            return None;
        }
        let mut states = States::default();
        for (i, t) in targets.iter().enumerate() {
            let Some(spent) = allowance::spend_now(t, cost, allowance::clock_ms()) else {
                for earlier in &targets[..i] {
                    allowance::unspend_now(earlier, cost, allowance::clock_ms());
                }
                return None;
            };
            states.add(spent);
        }
        for t in &targets {
            allowance::top_up(env, ctx, t);
        }
        verdict = verdict.with_allowance(None, states.limits, states.credits);
    }
    record_usage(ctx, cfg, entry.as_deref(), &verdict, cost, now_ms);
    Some(Checked {
        verdict,
        kv_reads: 0,
    })
}

/// The presented key, if it may be a key of any format: `None` is answered `MALFORMED` with no
/// KV read.
fn parse(key: Option<&str>) -> Option<PresentedKey> {
    key.and_then(|k| PresentedKey::parse_any(k).ok())
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

/// Counts a request of a found key in usage under its outcome, with the credits it spent.
fn record_usage(
    ctx: &Context,
    cfg: &Config,
    entry: Option<&EdgeEntry>,
    verdict: &Verdict,
    cost: u32,
    now_ms: u64,
) {
    if let Some(entry) = entry.filter(|_| verdict.key_id.is_some()) {
        let spent = if verdict.valid && verdict.credits.is_some() {
            u64::from(cost)
        } else {
            0
        };
        usage::record(
            ctx,
            cfg,
            usage::Counted {
                key_id: &entry.key_id,
                workspace: &entry.workspace,
                owner_id: entry.owner_id.as_deref(),
                code: verdict.code,
                credits_spent: spent,
            },
            now_ms,
        );
    }
}

/// Whether the verdict needs `entry`'s roles: it has some, is not a tombstone, and is of a
/// workspace the request allows (any other is answered as unknown, with no read).
fn needs_roles(entry: &EdgeEntry, request: &RequestContext) -> bool {
    !entry.roles.is_empty() && in_workspaces(entry, request)
}

/// Whether `entry` is a live key of a workspace the request allows (the others are answered
/// as unknown, with no further read).
fn in_workspaces(entry: &EdgeEntry, request: &RequestContext) -> bool {
    !entry.is_tombstone()
        && (request.workspaces.is_empty() || request.workspaces.contains(&entry.workspace))
}

fn role_keys(entry: &EdgeEntry) -> Vec<String> {
    entry
        .roles
        .iter()
        .map(|name| role_kv_key(&entry.workspace, name))
        .collect()
}

/// The key's effective permissions from cached role entries only; `None` when a role is not
/// cached.
fn cached_role_permissions(entry: &EdgeEntry, now_ms: u64) -> Option<Vec<String>> {
    let roles: Vec<Option<RoleEntry>> = ROLES.with_borrow_mut(|c| {
        role_keys(entry)
            .iter()
            .map(|k| c.get(k, now_ms))
            .collect::<Option<_>>()
    })?;
    Some(effective_permissions(
        &entry.scopes,
        roles.iter().flatten().map(RoleEntry::granted),
    ))
}

/// The key's effective permissions: its scopes plus the permissions of each of its roles that
/// exists (a missing or deleted role grants nothing), reading the roles this isolate has not
/// cached from KV concurrently. Returns the permissions and the KV reads made.
async fn role_permissions(
    env: &Env,
    cfg: &Config,
    entry: &EdgeEntry,
    now_ms: u64,
) -> Result<(Vec<String>, u32)> {
    let keys = role_keys(entry);
    let mut roles: Vec<Option<Option<RoleEntry>>> =
        ROLES.with_borrow_mut(|c| keys.iter().map(|k| c.get(k, now_ms)).collect());
    let missing: Vec<usize> = (0..keys.len()).filter(|&i| roles[i].is_none()).collect();
    if !missing.is_empty() {
        let reads = missing.iter().map(|&i| {
            let kv_key = &keys[i];
            async move {
                let text = js::kv_get(env, KV_BINDING, kv_key, Some(KV_CACHE_TTL_S))
                    .await
                    .map_err(|e| worker::Error::RustError(format!("reading {kv_key}: {e}")))?;
                text.map(|t| js::parse::<RoleEntry>(&t, &format!("KV entry {kv_key}")))
                    .transpose()
            }
        });
        let read = try_join_all(reads).await?;
        ROLES.with_borrow_mut(|c| {
            for (&i, role) in missing.iter().zip(&read) {
                let ttl = if role.is_some() {
                    cfg.cache_ttl_ms
                } else {
                    cfg.negative_cache_ttl_ms
                };
                c.insert(&keys[i], role.clone(), now_ms, ttl);
            }
        });
        for (i, role) in missing.iter().zip(read) {
            roles[*i] = Some(role);
        }
    }
    let permissions = effective_permissions(
        &entry.scopes,
        roles.iter().flatten().flatten().map(RoleEntry::granted),
    );
    Ok((
        permissions,
        u32::try_from(missing.len()).unwrap_or(u32::MAX),
    ))
}

async fn lookup(
    env: &Env,
    cfg: &Config,
    hash: &KeyHash,
    now_ms: u64,
) -> Result<(Option<Rc<EdgeEntry>>, u32)> {
    if let Some(hit) = CACHE.with_borrow_mut(|c| c.get(hash.as_str(), now_ms)) {
        return Ok((hit, 0));
    }
    let text = js::kv_get(env, KV_BINDING, &hash.kv_key(), Some(KV_CACHE_TTL_S))
        .await
        .map_err(|e| worker::Error::RustError(format!("reading {hash:?} from KV: {e}")))?;
    let entry: Option<Rc<EdgeEntry>> = text
        .map(|t| js::parse(&t, &format!("KV entry {hash:?}")).map(Rc::new))
        .transpose()?;
    let ttl = if entry.is_some() {
        cfg.cache_ttl_ms
    } else {
        cfg.negative_cache_ttl_ms
    };
    CACHE.with_borrow_mut(|c| c.insert(hash.as_str(), entry.clone(), now_ms, ttl));
    Ok((entry, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_common::SecretKey;

    fn keyward_key() -> SecretKey {
        SecretKey::generate("kw", |b: &mut [u8]| b.fill(9)).unwrap()
    }

    #[test]
    fn a_key_of_another_format_goes_on_to_a_lookup() {
        let key = parse(Some("sk_live_0123456789abcdefghijklmnop")).unwrap();
        assert!(key.is_foreign());
        assert_eq!(
            key.hash(),
            KeyHash::of("sk_live_0123456789abcdefghijklmnop")
        );
    }

    #[test]
    fn a_keyward_key_goes_on_to_a_lookup_as_keyward() {
        let key = keyward_key();
        assert!(!parse(Some(key.expose())).unwrap().is_foreign());
    }

    #[test]
    fn a_keyward_key_with_a_wrong_checksum_is_malformed_before_any_read() {
        let mut text = keyward_key().expose().to_owned();
        let last = text.pop().unwrap();
        text.push(if last == 'Z' { 'Y' } else { 'Z' });
        assert!(parse(Some(&text)).is_none());
    }

    #[test]
    fn text_no_format_allows_is_malformed_before_any_read() {
        for text in [
            "short",
            "two words, long enough",
            "ключ-ключ-ключ-ключ",
            &"x".repeat(257),
        ] {
            assert!(parse(Some(text)).is_none(), "{text}");
        }
        assert!(parse(None).is_none());
    }
}
