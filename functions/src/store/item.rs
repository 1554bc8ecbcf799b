//! The DynamoDB item layout: attribute names and the item <-> [`StoredKey`] conversion.
//!
//! Public because the `sync` function reads DynamoDB stream images of the same items: it
//! implements [`ItemRead`] for its image type and calls [`stored_key_from_item`].
//!
//! Layout (one table, `PK`/`SK`, GSI `GSI1` on `GSI1PK`/`GSI1SK`, TTL attribute `ttl`):
//! - key item `WS#{ws}` / `KEY#{key_id}`: every [`KeyRecord`] field, timestamps as Number (Unix
//!   seconds), `scopes`, `roles` (absent when empty) and `allowed_ips` as Lists of Strings (a String Set cannot be empty),
//!   `meta` as a JSON **string** (keeps number/bool/nesting exactly, and stays one opaque value),
//!   `rate_limit` as a Map `{limit: N, period_s: N}`, plus `hash`, optional `previous_hash` +
//!   `previous_retires_at`, `version`, and `GSI1PK`=`OWNER#{ws}#{owner_id}`/`GSI1SK`=`KEY#{id}`
//!   when the key has an owner.
//! - hash item `HASH#{sha256}` / `HASH`: `workspace`, `key_id`, `status`, `version`, and for a
//!   rotated-away secret in its grace period `retires_at` and `ttl` (= `retires_at` + 1 day).
//!   Several limits: `rate_limits` as a JSON **string** (absent when none; an item written
//!   before it existed has only `rate_limit`, read as the limit named `default`). Credits, on
//!   key and owner items alike ([`credit`]): `credits_remaining` (Number: the last balance the
//!   edge reported or an operation set), `credits_refill` (JSON string), `credit_seq` (Number:
//!   operations recorded so far), `credit_op` (JSON string of the latest
//!   [`keyward_common::credits::CreditOp`], which the stream carries to the edge) and
//!   `balance_at_ms` (Number: when the edge's last applied balance report was made).
//! - role item `WS#{ws}` / `ROLE#{name}`: every [`keyward_common::RoleRecord`] field.
//! - owner item `WS#{ws}` / `OWNER#{owner_id}`: `workspace`, `owner_id`, `status`, `meta` and
//!   `rate_limits` as JSON strings, the credit attributes above, `created_at`, `updated_at`,
//!   `version`. `key_count` is not stored: it is counted on the owner index when shown.
//! - idempotency item `WS#{ws}` / `IDEM#{slot}`: `fingerprint`, `sealed` answer, `lease_until`,
//!   `ttl`.
//! - audit item `WS#{ws}` / `AUDIT#{unix_ms:013}#{random}`.
//! - usage item `WS#{ws}` / `USAGE#{key_id}#{day}`: `requests` that day, `workspace`, `key_id`, `day`.
//! - usage batch marker `USAGEBATCH#{batch_id}` / `REPORT#{index:04}`: a report counted, `ttl`.
//! - counter item `WS#{ws}` / `COUNTER`: `active_keys`, the number of keys not revoked.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use keyward_common::credits::{CreditOp, Credits, Refill};
use keyward_common::record::{NamedRateLimit, OwnerRecord, OwnerStatus};
use keyward_common::{
    EdgeEntry, KeyHash, KeyId, KeyRecord, KeyStatus, RateLimit, RoleRecord, Timestamp,
};

use super::{AuditEvent, HashRef};

/// Partition key attribute.
pub const PK: &str = "PK";
/// Sort key attribute.
pub const SK: &str = "SK";
/// The owner index.
pub const GSI1: &str = "GSI1";
/// Owner index partition key.
pub const GSI1PK: &str = "GSI1PK";
/// Owner index sort key.
pub const GSI1SK: &str = "GSI1SK";
/// DynamoDB TTL attribute.
pub const TTL: &str = "ttl";

/// Key item attributes (the [`KeyRecord`] field names).
pub mod key {
    pub const ID: &str = "id";
    pub const WORKSPACE: &str = "workspace";
    pub const NAME: &str = "name";
    pub const KEY_PREFIX: &str = "key_prefix";
    pub const SCOPES: &str = "scopes";
    pub const ROLES: &str = "roles";
    pub const OWNER_ID: &str = "owner_id";
    pub const META: &str = "meta";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const EXPIRES_AT: &str = "expires_at";
    pub const LAST_USED_AT: &str = "last_used_at";
    pub const ALLOWED_IPS: &str = "allowed_ips";
    pub const RATE_LIMIT: &str = "rate_limit";
    pub const RATE_LIMIT_LIMIT: &str = "limit";
    pub const RATE_LIMIT_PERIOD_S: &str = "period_s";
    pub const VERSION: &str = "version";
    pub const HASH: &str = "hash";
    pub const PREVIOUS_HASH: &str = "previous_hash";
    pub const PREVIOUS_RETIRES_AT: &str = "previous_retires_at";
    /// Present (`true`) on an imported key.
    pub const IMPORTED: &str = "imported";
    /// Every limit, as a JSON string.
    pub const RATE_LIMITS: &str = "rate_limits";
}

/// Credit attributes of key and owner items.
pub mod credit {
    /// Last known balance (Number); absent: no credits.
    pub const REMAINING: &str = "credits_remaining";
    /// The refill rule (JSON string).
    pub const REFILL: &str = "credits_refill";
    /// Credit operations recorded (Number), each write that records one adds 1.
    pub const SEQ: &str = "credit_seq";
    /// The latest operation (JSON string of a `CreditOp`).
    pub const OP: &str = "credit_op";
    /// Unix ms of the edge report the balance came from (Number).
    pub const BALANCE_AT_MS: &str = "balance_at_ms";
}

/// Owner item attributes (`WS#{ws}` / `OWNER#{owner_id}`).
pub mod owner {
    pub const WORKSPACE: &str = "workspace";
    pub const OWNER_ID: &str = "owner_id";
    pub const STATUS: &str = "status";
    pub const META: &str = "meta";
    pub const RATE_LIMITS: &str = "rate_limits";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const VERSION: &str = "version";
}

/// Role item attributes (`WS#{ws}` / `ROLE#{name}`): the [`keyward_common::RoleRecord`] field
/// names; `permissions` is a List of Strings, timestamps are Numbers (Unix seconds).
pub mod role {
    pub const WORKSPACE: &str = "workspace";
    pub const NAME: &str = "name";
    pub const DESCRIPTION: &str = "description";
    pub const PERMISSIONS: &str = "permissions";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const VERSION: &str = "version";
    /// Keys that are not revoked holding the role (kept by the key writes, not by role
    /// updates; a role is deleted only at 0).
    pub const HOLDERS: &str = "holders";
}

/// Idempotency item attributes (`WS#{ws}` / `IDEM#{slot}`, removed by TTL a day later).
pub mod idem {
    pub const FINGERPRINT: &str = "fingerprint";
    /// The sealed answer (Binary), once there is one.
    pub const SEALED: &str = "sealed";
    pub const LEASE_UNTIL: &str = "lease_until";
}

/// Hash item attributes.
pub mod hash {
    pub const WORKSPACE: &str = "workspace";
    pub const KEY_ID: &str = "key_id";
    pub const STATUS: &str = "status";
    pub const VERSION: &str = "version";
    pub const RETIRES_AT: &str = "retires_at";
}

/// Audit item attributes.
pub mod audit {
    pub const ID: &str = "id";
    pub const AT: &str = "at";
    pub const ACTOR: &str = "actor";
    pub const ACTION: &str = "action";
    pub const KEY_ID: &str = "key_id";
    pub const ROLE: &str = "role";
    pub const WEBHOOK_ID: &str = "webhook_id";
    pub const OWNER_ID: &str = "owner_id";
    pub const CHANGED: &str = "changed";
    pub const REQUEST_ID: &str = "request_id";
    pub const SOURCE_IP: &str = "source_ip";
}

/// Usage item attributes (`WS#{ws}` / `USAGE#{key_id}#{day}`).
pub mod usage {
    pub const WORKSPACE: &str = "workspace";
    pub const KEY_ID: &str = "key_id";
    /// `YYYY-MM-DD`, UTC.
    pub const DAY: &str = "day";
    /// Requests counted that day.
    pub const REQUESTS: &str = "requests";
    /// Hourly items: the key's owner when counted.
    pub const OWNER_ID: &str = "owner_id";
    /// Hourly items: Unix seconds the UTC hour starts.
    pub const HOUR: &str = "hour";
    /// Hourly items: one Number per outcome, plus `credits_spent`, in this order.
    pub const COUNTS: [&str; 8] = [
        "valid",
        "rate_limited",
        "usage_exceeded",
        "forbidden",
        "disabled",
        "expired",
        "revoked",
        "credits_spent",
    ];
}

/// `USAGE#K#{key_id}#{hour:010}`: a key's counts in one UTC hour, for one key's usage.
#[must_use]
pub fn usage_key_hour_sk(key_id: &KeyId, hour: i64) -> String {
    format!("{USAGE_SK_PREFIX}K#{key_id}#{hour:010}")
}

/// `USAGE#H#{hour:010}#{key_id}`: the same counts again, ordered by hour, for the workspace's
/// usage over a time range (billing) without reading every key's history.
#[must_use]
pub fn usage_hour_key_sk(hour: i64, key_id: &KeyId) -> String {
    format!("{USAGE_SK_PREFIX}H#{hour:010}#{key_id}")
}

/// Counter item attribute: keys of the workspace that are not revoked.
pub const ACTIVE_KEYS: &str = "active_keys";
/// Sort key of the counter item.
pub const COUNTER_SK: &str = "COUNTER";
/// Sort key of a hash item.
pub const HASH_SK: &str = "HASH";
/// Sort-key prefix of key items.
pub const KEY_SK_PREFIX: &str = "KEY#";
/// Sort-key prefix of idempotency items.
pub const IDEM_SK_PREFIX: &str = "IDEM#";
/// Sort-key prefix of role items.
pub const ROLE_SK_PREFIX: &str = "ROLE#";
/// Sort-key prefix of owner items.
pub const OWNER_SK_PREFIX: &str = "OWNER#";
/// Sort-key prefix of audit items.
pub const AUDIT_SK_PREFIX: &str = "AUDIT#";
/// Sort-key prefix of usage items.
pub const USAGE_SK_PREFIX: &str = "USAGE#";
/// How long a usage batch's markers are kept (DynamoDB TTL): far longer than any edge retry.
pub const USAGE_BATCH_TTL_S: i64 = 2 * 86_400;
/// Extra time a retired hash item is kept before DynamoDB's TTL removes it.
pub const HASH_TTL_SLACK_S: i64 = 86_400;

/// `WS#{workspace}`.
#[must_use]
pub fn workspace_pk(workspace: &str) -> String {
    format!("WS#{workspace}")
}

/// `KEY#{key_id}`.
#[must_use]
pub fn key_sk(id: &KeyId) -> String {
    format!("{KEY_SK_PREFIX}{id}")
}

/// `AUDIT#{id}` (`id` is `{unix_ms:013}#{random}`).
#[must_use]
pub fn audit_sk(id: &str) -> String {
    format!("{AUDIT_SK_PREFIX}{id}")
}

/// `USAGE#{key_id}#{day}`.
#[must_use]
pub fn usage_sk(key_id: &KeyId, day: &str) -> String {
    format!("{USAGE_SK_PREFIX}{key_id}#{day}")
}

/// `USAGEBATCH#{batch_id}`: the markers of a usage batch's counted reports.
#[must_use]
pub fn usage_batch_pk(batch_id: &str) -> String {
    format!("USAGEBATCH#{batch_id}")
}

/// `REPORT#{index:04}`: one report of a usage batch, counted.
#[must_use]
pub fn usage_report_sk(index: usize) -> String {
    format!("REPORT#{index:04}")
}

/// `ROLE#{name}`.
#[must_use]
pub fn role_sk(name: &str) -> String {
    format!("{ROLE_SK_PREFIX}{name}")
}

/// `OWNER#{owner_id}`.
#[must_use]
pub fn owner_sk(owner_id: &str) -> String {
    format!("{OWNER_SK_PREFIX}{owner_id}")
}

/// `HASH#{sha256}`.
#[must_use]
pub fn hash_pk(hash: &KeyHash) -> String {
    format!("HASH#{hash}")
}

/// `OWNER#{workspace}#{owner_id}`.
#[must_use]
pub fn owner_pk(workspace: &str, owner_id: &str) -> String {
    format!("OWNER#{workspace}#{owner_id}")
}

/// A key as stored: the record plus its current hash and, during a rotation grace period, the
/// previous hash and when it retires (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    /// What the API shows.
    pub record: KeyRecord,
    /// SHA-256 of the current secret.
    pub hash: KeyHash,
    /// The rotated-away secret's hash and its retirement time, while it still verifies.
    pub previous: Option<(KeyHash, i64)>,
    /// Where its credit operations stand.
    pub credit: CreditState,
}

/// The bookkeeping of a key's or an owner's credits besides `credits` itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditState {
    /// Operations recorded so far (the latest one's `seq`); 0: none yet.
    pub seq: u64,
    /// The latest operation, as sent to the edge.
    pub op: Option<CreditOp>,
    /// When the edge report that set `remaining` was made (Unix ms).
    pub balance_at_ms: Option<i64>,
}

/// An owner as stored: the record (without `key_count`, counted when shown) and its credit
/// bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOwner {
    /// What the API shows (`key_count` 0 until counted).
    pub record: OwnerRecord,
    /// Where its credit operations stand.
    pub credit: CreditState,
}

impl StoredKey {
    /// Every hash of this key with the edge entry it should have: the current secret, and the
    /// previous one (retiring) during a grace period.
    #[must_use]
    pub fn edge_entries(&self) -> Vec<(KeyHash, EdgeEntry)> {
        let entry = EdgeEntry::for_key(&self.record);
        let mut out = vec![(self.hash.clone(), entry.clone())];
        if let Some((h, at)) = &self.previous {
            out.push((h.clone(), entry.retiring(*at)));
        }
        out
    }

    /// The hash items this key needs, as (hash, retires_at).
    #[must_use]
    pub fn hashes(&self) -> Vec<(KeyHash, Option<i64>)> {
        let mut out = vec![(self.hash.clone(), None)];
        if let Some((h, at)) = &self.previous {
            out.push((h.clone(), Some(*at)));
        }
        out
    }
}

/// An item that does not have the documented layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored item attribute `{attribute}` is missing or malformed")]
pub struct ItemError {
    /// The offending attribute.
    pub attribute: &'static str,
}

/// Read access to an item's attributes, so the same conversion serves the SDK's items and
/// DynamoDB stream images (which use another `AttributeValue` type).
pub trait ItemRead {
    /// A String attribute.
    fn string(&self, name: &str) -> Option<&str>;
    /// A Number attribute, as its decimal text.
    fn number(&self, name: &str) -> Option<&str>;
    /// A List of Strings.
    fn string_list(&self, name: &str) -> Option<Vec<String>>;
    /// A Number inside a Map attribute (`rate_limit.limit`).
    fn map_number(&self, name: &str, field: &str) -> Option<&str>;
    /// Whether the attribute is present (and not NULL).
    fn has(&self, name: &str) -> bool;
}

impl ItemRead for HashMap<String, AttributeValue> {
    fn string(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_s().ok().map(String::as_str)
    }
    fn number(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_n().ok().map(String::as_str)
    }
    fn string_list(&self, name: &str) -> Option<Vec<String>> {
        match self.get(name)? {
            AttributeValue::L(items) => items
                .iter()
                .map(|v| v.as_s().ok().cloned())
                .collect::<Option<Vec<_>>>(),
            AttributeValue::Ss(items) => Some(items.clone()),
            _ => None,
        }
    }
    fn map_number(&self, name: &str, field: &str) -> Option<&str> {
        self.get(name)?
            .as_m()
            .ok()?
            .get(field)?
            .as_n()
            .ok()
            .map(String::as_str)
    }
    fn has(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| !matches!(v, AttributeValue::Null(_)))
    }
}

fn req_str<'a>(item: &'a impl ItemRead, name: &'static str) -> Result<&'a str, ItemError> {
    item.string(name).ok_or(ItemError { attribute: name })
}

fn num<T: std::str::FromStr>(item: &impl ItemRead, name: &'static str) -> Result<T, ItemError> {
    item.number(name)
        .and_then(|n| n.parse().ok())
        .ok_or(ItemError { attribute: name })
}

fn opt_num<T: std::str::FromStr>(
    item: &impl ItemRead,
    name: &'static str,
) -> Result<Option<T>, ItemError> {
    if item.has(name) {
        num(item, name).map(Some)
    } else {
        Ok(None)
    }
}

fn opt_time(item: &impl ItemRead, name: &'static str) -> Result<Option<Timestamp>, ItemError> {
    Ok(opt_num::<i64>(item, name)?.map(Timestamp))
}

fn hash_attr(item: &impl ItemRead, name: &'static str) -> Result<KeyHash, ItemError> {
    KeyHash::parse(req_str(item, name)?).map_err(|_| ItemError { attribute: name })
}

fn status_attr(item: &impl ItemRead, name: &'static str) -> Result<KeyStatus, ItemError> {
    KeyStatus::parse(req_str(item, name)?).ok_or(ItemError { attribute: name })
}

fn json_attr<T: serde::de::DeserializeOwned>(
    item: &impl ItemRead,
    name: &'static str,
) -> Result<Option<T>, ItemError> {
    item.string(name)
        .map(|text| serde_json::from_str(text).map_err(|_| ItemError { attribute: name }))
        .transpose()
}

/// Reads the credit attributes of a key or owner item.
///
/// # Errors
/// [`ItemError`] naming the first attribute that is malformed.
pub fn credits_from_item(
    item: &impl ItemRead,
) -> Result<(Option<Credits>, CreditState), ItemError> {
    let credits = match opt_num::<u64>(item, credit::REMAINING)? {
        Some(remaining) => Some(Credits {
            remaining,
            refill: json_attr::<Refill>(item, credit::REFILL)?,
        }),
        None => None,
    };
    let state = CreditState {
        seq: opt_num(item, credit::SEQ)?.unwrap_or(0),
        op: json_attr(item, credit::OP)?,
        balance_at_ms: opt_num(item, credit::BALANCE_AT_MS)?,
    };
    Ok((credits, state))
}

fn credits_to_item(
    item: &mut HashMap<String, AttributeValue>,
    credits: Option<&Credits>,
    state: &CreditState,
) {
    if let Some(c) = credits {
        item.insert(credit::REMAINING.into(), n(c.remaining));
        if let Some(r) = &c.refill {
            item.insert(
                credit::REFILL.into(),
                s(serde_json::to_string(r).unwrap_or_default()),
            );
        }
    }
    if state.seq > 0 {
        item.insert(credit::SEQ.into(), n(state.seq));
    }
    if let Some(op) = &state.op {
        item.insert(
            credit::OP.into(),
            s(serde_json::to_string(op).unwrap_or_default()),
        );
    }
    if let Some(at) = state.balance_at_ms {
        item.insert(credit::BALANCE_AT_MS.into(), n(at));
    }
}

fn limits_from_item(
    item: &impl ItemRead,
    name: &'static str,
) -> Result<Vec<NamedRateLimit>, ItemError> {
    Ok(json_attr(item, name)?.unwrap_or_default())
}

/// The limit named `default` among `limits`: what the `rate_limit` shorthand shows.
#[must_use]
pub fn default_limit(limits: &[NamedRateLimit]) -> Option<RateLimit> {
    limits
        .iter()
        .find(|l| l.name == NamedRateLimit::DEFAULT_NAME)
        .map(NamedRateLimit::window)
}

/// Reads a key item (from the SDK or a stream image).
///
/// # Errors
/// [`ItemError`] naming the first attribute that is missing or malformed.
pub fn stored_key_from_item(item: &impl ItemRead) -> Result<StoredKey, ItemError> {
    use key::*;
    let meta = match item.string(META) {
        Some(text) => Some(
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .map_err(|_| ItemError { attribute: META })?,
        ),
        None => None,
    };
    let rate_limit = if item.has(RATE_LIMIT) {
        let field = |f| {
            item.map_number(RATE_LIMIT, f)
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or(ItemError {
                    attribute: RATE_LIMIT,
                })
        };
        Some(RateLimit {
            limit: field(RATE_LIMIT_LIMIT)?,
            period_s: field(RATE_LIMIT_PERIOD_S)?,
        })
    } else {
        None
    };
    // Items written before `rate_limits` existed hold the one limit only.
    let rate_limits = if item.has(RATE_LIMITS) {
        limits_from_item(item, RATE_LIMITS)?
    } else {
        rate_limit
            .map(|rl| NamedRateLimit {
                name: NamedRateLimit::DEFAULT_NAME.to_owned(),
                limit: rl.limit,
                period_s: rl.period_s,
            })
            .into_iter()
            .collect()
    };
    let (credits, credit) = credits_from_item(item)?;
    let allowed_ips = item
        .string_list(ALLOWED_IPS)
        .unwrap_or_default()
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ItemError {
            attribute: ALLOWED_IPS,
        })?;
    let record = KeyRecord {
        id: KeyId::parse(req_str(item, ID)?).map_err(|_| ItemError { attribute: ID })?,
        workspace: req_str(item, WORKSPACE)?.to_owned(),
        name: req_str(item, NAME)?.to_owned(),
        key_prefix: req_str(item, KEY_PREFIX)?.to_owned(),
        scopes: item.string_list(SCOPES).unwrap_or_default(),
        roles: item.string_list(ROLES).unwrap_or_default(),
        permissions: Vec::new(),
        owner_id: item.string(OWNER_ID).map(str::to_owned),
        meta,
        status: status_attr(item, STATUS)?,
        created_at: Timestamp(num(item, CREATED_AT)?),
        updated_at: Timestamp(num(item, UPDATED_AT)?),
        expires_at: opt_time(item, EXPIRES_AT)?,
        last_used_at: opt_time(item, LAST_USED_AT)?,
        allowed_ips,
        rate_limit: default_limit(&rate_limits),
        rate_limits,
        credits,
        version: num(item, VERSION)?,
        imported: item.has(IMPORTED),
    };
    let previous = if item.has(PREVIOUS_HASH) {
        Some((
            hash_attr(item, PREVIOUS_HASH)?,
            num(item, PREVIOUS_RETIRES_AT)?,
        ))
    } else {
        None
    };
    Ok(StoredKey {
        record,
        hash: hash_attr(item, HASH)?,
        previous,
        credit,
    })
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn list(v: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::L(v.into_iter().map(AttributeValue::S).collect())
}

/// The key item of `key`, with table and index keys.
#[must_use]
pub fn key_to_item(key: &StoredKey) -> HashMap<String, AttributeValue> {
    use key::*;
    let r = &key.record;
    let mut item = HashMap::new();
    item.insert(PK.into(), s(workspace_pk(&r.workspace)));
    item.insert(SK.into(), s(key_sk(&r.id)));
    item.insert(ID.into(), s(r.id.as_str()));
    item.insert(WORKSPACE.into(), s(&r.workspace));
    item.insert(NAME.into(), s(&r.name));
    item.insert(KEY_PREFIX.into(), s(&r.key_prefix));
    item.insert(SCOPES.into(), list(r.scopes.iter().cloned()));
    if !r.roles.is_empty() {
        item.insert(ROLES.into(), list(r.roles.iter().cloned()));
    }
    if r.imported {
        item.insert(IMPORTED.into(), AttributeValue::Bool(true));
    }
    if let Some(owner) = &r.owner_id {
        item.insert(OWNER_ID.into(), s(owner));
        item.insert(GSI1PK.into(), s(owner_pk(&r.workspace, owner)));
        item.insert(GSI1SK.into(), s(key_sk(&r.id)));
    }
    if let Some(meta) = &r.meta {
        item.insert(
            META.into(),
            s(serde_json::to_string(meta).unwrap_or_default()),
        );
    }
    item.insert(STATUS.into(), s(r.status.as_str()));
    item.insert(CREATED_AT.into(), n(r.created_at.unix()));
    item.insert(UPDATED_AT.into(), n(r.updated_at.unix()));
    if let Some(t) = r.expires_at {
        item.insert(EXPIRES_AT.into(), n(t.unix()));
    }
    if let Some(t) = r.last_used_at {
        item.insert(LAST_USED_AT.into(), n(t.unix()));
    }
    item.insert(
        ALLOWED_IPS.into(),
        list(r.allowed_ips.iter().map(ToString::to_string)),
    );
    if !r.rate_limits.is_empty() {
        item.insert(
            RATE_LIMITS.into(),
            s(serde_json::to_string(&r.rate_limits).unwrap_or_default()),
        );
    }
    credits_to_item(&mut item, r.credits.as_ref(), &key.credit);
    if let Some(rl) = r.rate_limit {
        item.insert(
            RATE_LIMIT.into(),
            AttributeValue::M(HashMap::from([
                (RATE_LIMIT_LIMIT.to_owned(), n(rl.limit)),
                (RATE_LIMIT_PERIOD_S.to_owned(), n(rl.period_s)),
            ])),
        );
    }
    item.insert(VERSION.into(), n(r.version));
    item.insert(HASH.into(), s(key.hash.as_str()));
    if let Some((h, at)) = &key.previous {
        item.insert(PREVIOUS_HASH.into(), s(h.as_str()));
        item.insert(PREVIOUS_RETIRES_AT.into(), n(at));
    }
    item
}

/// The hash item pointing at `key` for `hash`; `retires_at` for a rotated-away secret.
#[must_use]
pub fn hash_to_item(
    key: &StoredKey,
    hash: &KeyHash,
    retires_at: Option<i64>,
) -> HashMap<String, AttributeValue> {
    let r = &key.record;
    let mut item = HashMap::from([
        (PK.to_owned(), s(hash_pk(hash))),
        (SK.to_owned(), s(HASH_SK)),
        (hash::WORKSPACE.to_owned(), s(&r.workspace)),
        (hash::KEY_ID.to_owned(), s(r.id.as_str())),
        (hash::STATUS.to_owned(), s(r.status.as_str())),
        (hash::VERSION.to_owned(), n(r.version)),
    ]);
    if let Some(at) = retires_at {
        item.insert(hash::RETIRES_AT.to_owned(), n(at));
        item.insert(TTL.to_owned(), n(at + HASH_TTL_SLACK_S));
    }
    item
}

/// Reads a hash item.
///
/// # Errors
/// [`ItemError`] naming the first attribute that is missing or malformed.
pub fn hash_ref_from_item(item: &impl ItemRead) -> Result<HashRef, ItemError> {
    Ok(HashRef {
        workspace: req_str(item, hash::WORKSPACE)?.to_owned(),
        key_id: KeyId::parse(req_str(item, hash::KEY_ID)?).map_err(|_| ItemError {
            attribute: hash::KEY_ID,
        })?,
        status: status_attr(item, hash::STATUS)?,
        retires_at: opt_num(item, hash::RETIRES_AT)?,
    })
}

/// The audit item of `event`.
#[must_use]
pub fn audit_to_item(event: &AuditEvent) -> HashMap<String, AttributeValue> {
    use audit::*;
    let mut item = HashMap::from([
        (PK.to_owned(), s(workspace_pk(&event.workspace))),
        (SK.to_owned(), s(audit_sk(&event.id))),
        (ID.to_owned(), s(&event.id)),
        (AT.to_owned(), n(event.at.unix())),
        (ACTOR.to_owned(), s(&event.actor)),
        (ACTION.to_owned(), s(&event.action)),
        (CHANGED.to_owned(), list(event.changed.iter().cloned())),
        (REQUEST_ID.to_owned(), s(&event.request_id)),
    ]);
    if let Some(ip) = &event.source_ip {
        item.insert(SOURCE_IP.to_owned(), s(ip));
    }
    if let Some(id) = &event.key_id {
        item.insert(KEY_ID.to_owned(), s(id));
    }
    if let Some(role) = &event.role {
        item.insert(ROLE.to_owned(), s(role));
    }
    if let Some(hook) = &event.webhook_id {
        item.insert(WEBHOOK_ID.to_owned(), s(hook));
    }
    if let Some(owner) = &event.owner_id {
        item.insert(OWNER_ID.to_owned(), s(owner));
    }
    item
}

/// The role item of `role`, without its holder count (key writes keep that).
#[must_use]
pub fn role_to_item(r: &RoleRecord) -> HashMap<String, AttributeValue> {
    use role::*;
    let mut item = HashMap::from([
        (PK.to_owned(), s(workspace_pk(&r.workspace))),
        (SK.to_owned(), s(role_sk(&r.name))),
        (WORKSPACE.to_owned(), s(&r.workspace)),
        (NAME.to_owned(), s(&r.name)),
        (PERMISSIONS.to_owned(), list(r.permissions.iter().cloned())),
        (CREATED_AT.to_owned(), n(r.created_at.unix())),
        (UPDATED_AT.to_owned(), n(r.updated_at.unix())),
        (VERSION.to_owned(), n(r.version)),
    ]);
    if let Some(d) = &r.description {
        item.insert(DESCRIPTION.to_owned(), s(d));
    }
    item
}

/// Reads a role item.
///
/// # Errors
/// [`ItemError`] naming the first attribute that is missing or malformed.
pub fn role_from_item(item: &impl ItemRead) -> Result<RoleRecord, ItemError> {
    use role::*;
    Ok(RoleRecord {
        workspace: req_str(item, WORKSPACE)?.to_owned(),
        name: req_str(item, NAME)?.to_owned(),
        description: item.string(DESCRIPTION).map(str::to_owned),
        permissions: item.string_list(PERMISSIONS).unwrap_or_default(),
        created_at: Timestamp(num(item, CREATED_AT)?),
        updated_at: Timestamp(num(item, UPDATED_AT)?),
        version: num(item, VERSION)?,
    })
}

/// The owner item of `owner`.
#[must_use]
pub fn owner_to_item(o: &StoredOwner) -> HashMap<String, AttributeValue> {
    use owner::*;
    let r = &o.record;
    let mut item = HashMap::from([
        (PK.to_owned(), s(workspace_pk(&r.workspace))),
        (SK.to_owned(), s(owner_sk(&r.owner_id))),
        (WORKSPACE.to_owned(), s(&r.workspace)),
        (OWNER_ID.to_owned(), s(&r.owner_id)),
        (
            STATUS.to_owned(),
            s(match r.status {
                OwnerStatus::Active => "active",
                OwnerStatus::Disabled => "disabled",
            }),
        ),
        (CREATED_AT.to_owned(), n(r.created_at.unix())),
        (UPDATED_AT.to_owned(), n(r.updated_at.unix())),
        (VERSION.to_owned(), n(r.version)),
    ]);
    if let Some(meta) = &r.meta {
        item.insert(
            META.to_owned(),
            s(serde_json::to_string(meta).unwrap_or_default()),
        );
    }
    if !r.rate_limits.is_empty() {
        item.insert(
            RATE_LIMITS.to_owned(),
            s(serde_json::to_string(&r.rate_limits).unwrap_or_default()),
        );
    }
    credits_to_item(&mut item, r.credits.as_ref(), &o.credit);
    item
}

/// Reads an owner item (from the SDK or a stream image); `key_count` is left at 0.
///
/// # Errors
/// [`ItemError`] naming the first attribute that is missing or malformed.
pub fn owner_from_item(item: &impl ItemRead) -> Result<StoredOwner, ItemError> {
    use owner::*;
    let status = match req_str(item, STATUS)? {
        "active" => OwnerStatus::Active,
        "disabled" => OwnerStatus::Disabled,
        _ => return Err(ItemError { attribute: STATUS }),
    };
    let (credits, credit) = credits_from_item(item)?;
    Ok(StoredOwner {
        record: OwnerRecord {
            workspace: req_str(item, WORKSPACE)?.to_owned(),
            owner_id: req_str(item, OWNER_ID)?.to_owned(),
            status,
            meta: json_attr(item, META)?,
            rate_limits: limits_from_item(item, RATE_LIMITS)?,
            credits,
            key_count: 0,
            created_at: Timestamp(num(item, CREATED_AT)?),
            updated_at: Timestamp(num(item, UPDATED_AT)?),
            version: num(item, VERSION)?,
        },
        credit,
    })
}

/// Reads an audit item.
///
/// # Errors
/// [`ItemError`] naming the first attribute that is missing or malformed.
pub fn audit_from_item(item: &impl ItemRead, workspace: &str) -> Result<AuditEvent, ItemError> {
    use audit::*;
    Ok(AuditEvent {
        id: req_str(item, ID)?.to_owned(),
        workspace: workspace.to_owned(),
        at: Timestamp(num(item, AT)?),
        actor: req_str(item, ACTOR)?.to_owned(),
        action: req_str(item, ACTION)?.to_owned(),
        key_id: item.string(KEY_ID).map(str::to_owned),
        role: item.string(ROLE).map(str::to_owned),
        webhook_id: item.string(WEBHOOK_ID).map(str::to_owned),
        owner_id: item.string(OWNER_ID).map(str::to_owned),
        changed: item.string_list(CHANGED).unwrap_or_default(),
        request_id: req_str(item, REQUEST_ID)?.to_owned(),
        source_ip: item.string(SOURCE_IP).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_common::SecretKey;

    fn sample() -> StoredKey {
        let secret = SecretKey::generate("kw", |b: &mut [u8]| b.fill(7)).unwrap();
        let old = SecretKey::generate("kw", |b: &mut [u8]| b.fill(9)).unwrap();
        StoredKey {
            record: KeyRecord {
                id: KeyId::new(1_795_000_000_000, [3; 10]),
                workspace: "acme".into(),
                name: "ci".into(),
                key_prefix: secret.presented().display_prefix(),
                scopes: vec!["read".into()],
                roles: vec![],
                permissions: vec![],
                owner_id: Some("user_1".into()),
                meta: Some(serde_json::from_str(r#"{"plan":"pro","n":1.5}"#).unwrap()),
                status: KeyStatus::Disabled,
                created_at: Timestamp(1_795_000_000),
                updated_at: Timestamp(1_795_000_100),
                expires_at: Some(Timestamp(1_900_000_000)),
                last_used_at: None,
                allowed_ips: vec!["10.0.0.0/8".parse().unwrap()],
                rate_limit: Some(RateLimit {
                    limit: 5,
                    period_s: 60,
                }),
                rate_limits: vec![
                    NamedRateLimit {
                        name: "default".into(),
                        limit: 5,
                        period_s: 60,
                    },
                    NamedRateLimit {
                        name: "monthly".into(),
                        limit: 10_000,
                        period_s: 2_678_400,
                    },
                ],
                credits: Some(Credits {
                    remaining: 40,
                    refill: Some(Refill {
                        amount: 100,
                        interval: keyward_common::credits::Interval::Monthly,
                        day: Some(31),
                    }),
                }),
                version: 4,
                imported: false,
            },
            hash: secret.hash(),
            previous: Some((old.hash(), 1_795_000_500)),
            credit: CreditState {
                seq: 3,
                op: Some(CreditOp {
                    target: keyward_common::credits::CreditTarget::Key {
                        workspace: "acme".into(),
                        key_id: KeyId::new(1_795_000_000_000, [3; 10]),
                    },
                    seq: 3,
                    op: keyward_common::credits::CreditOpKind::Increment,
                    value: 5,
                    refill: None,
                    at: 1_795_000_050,
                }),
                balance_at_ms: Some(1_795_000_060_000),
            },
        }
    }

    #[test]
    fn a_key_item_round_trips_every_field() {
        let key = sample();
        let item = key_to_item(&key);
        assert_eq!(stored_key_from_item(&item).unwrap(), key);
        assert_eq!(item[GSI1PK].as_s().unwrap(), "OWNER#acme#user_1");
    }

    #[test]
    fn a_key_without_owner_is_not_in_the_owner_index() {
        let mut key = sample();
        key.record.owner_id = None;
        key.record.meta = None;
        key.record.rate_limit = None;
        key.record.rate_limits.clear();
        key.record.credits = None;
        key.credit = CreditState::default();
        key.previous = None;
        let item = key_to_item(&key);
        assert!(!item.contains_key(GSI1PK));
        assert_eq!(stored_key_from_item(&item).unwrap(), key);
    }

    #[test]
    fn a_key_item_from_before_rate_limits_reads_its_one_limit_as_default() {
        let key = sample();
        let mut item = key_to_item(&key);
        item.remove(key::RATE_LIMITS);
        let read = stored_key_from_item(&item).unwrap();
        assert_eq!(read.record.rate_limits.len(), 1);
        assert_eq!(read.record.rate_limits[0].name, "default");
        assert_eq!(read.record.rate_limit, key.record.rate_limit);
    }

    #[test]
    fn an_owner_item_round_trips_every_field() {
        let key = sample();
        let owner = StoredOwner {
            record: OwnerRecord {
                workspace: "acme".into(),
                owner_id: "cus/42 é".into(),
                status: OwnerStatus::Disabled,
                meta: key.record.meta.clone(),
                rate_limits: key.record.rate_limits.clone(),
                credits: key.record.credits,
                key_count: 0,
                created_at: Timestamp(1_795_000_000),
                updated_at: Timestamp(1_795_000_100),
                version: 2,
            },
            credit: key.credit.clone(),
        };
        let item = owner_to_item(&owner);
        assert_eq!(item[SK].as_s().unwrap(), "OWNER#cus/42 é");
        assert_eq!(owner_from_item(&item).unwrap(), owner);
    }

    #[test]
    fn a_retiring_hash_item_carries_its_ttl() {
        let key = sample();
        let (h, at) = key.previous.clone().unwrap();
        let item = hash_to_item(&key, &h, Some(at));
        assert_eq!(item[TTL].as_n().unwrap(), &(at + 86_400).to_string());
        let r = hash_ref_from_item(&item).unwrap();
        assert_eq!(r.retires_at, Some(at));
        assert_eq!(r.key_id, key.record.id);
    }
}
