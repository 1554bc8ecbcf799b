//! Storage behind a small trait: DynamoDB in production, in memory for handler tests.

use std::collections::BTreeMap;

use async_trait::async_trait;
use keyward_common::sync::BalanceReport;
use keyward_common::{KeyHash, KeyId, KeyRecord, KeyStatus, RoleRecord, Timestamp};
use serde::Serialize;

pub mod dynamo;
pub mod item;
pub mod memory;
pub mod usage;
pub mod webhook;

pub use item::{CreditState, StoredKey, StoredOwner};

/// Where a hash points: the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRef {
    /// The key's workspace.
    pub workspace: String,
    /// The key.
    pub key_id: KeyId,
    /// The key's status when the hash item was last written.
    pub status: KeyStatus,
    /// For a rotated-away secret: when it stops verifying.
    pub retires_at: Option<i64>,
}

/// One audit event: who did what to which key or role. Never holds a secret or a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// `{unix_ms:013}#{random}`: sorts by time.
    pub id: String,
    /// The workspace.
    #[serde(skip)]
    pub workspace: String,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// `jwt:{sub}` or `key:{key_id}`.
    pub actor: String,
    /// `key.create`, `key.update`, `key.revoke`, `key.rotate`, `key.import`, `key.erase`,
    /// `role.create`, `role.update`, `role.delete`, `key.credits`, `owner.create`,
    /// `owner.update` or `owner.credits`.
    pub action: String,
    /// The key acted on (key actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The role acted on (role actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The webhook endpoint acted on (webhook actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The owner acted on (owner actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Names of the fields that changed.
    pub changed: Vec<String>,
    /// The request that did it.
    pub request_id: String,
    /// The caller's address, when known.
    pub source_ip: Option<String>,
}

/// A kept idempotent request (`WS#{ws}` / `IDEM#{slot}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    /// What the first request was ([`crate::http::idempotency::fingerprint`]).
    pub fingerprint: String,
    /// Its sealed answer, once it has one.
    pub sealed: Option<Vec<u8>>,
    /// Until when the first request holds the key while it runs (Unix seconds).
    pub lease_until: i64,
}

/// What claiming an idempotency slot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemClaim {
    /// The slot is ours: run the request.
    Claimed,
    /// Another request holds or answered it.
    Existing(IdemRecord),
}

/// One key's counts in one UTC hour, as the usage items hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageHour {
    /// The key.
    pub key_id: KeyId,
    /// The key's owner when the requests were counted.
    pub owner_id: Option<String>,
    /// Unix seconds the UTC hour starts.
    pub hour: i64,
    /// The counts.
    pub counts: keyward_common::sync::OutcomeCounts,
}

/// An opaque position in a listing: the sort/index key attributes of the last item returned.
pub type Position = BTreeMap<String, String>;

/// A list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuery {
    /// The workspace listed.
    pub workspace: String,
    /// Only keys with this status.
    pub status: Option<KeyStatus>,
    /// Only keys of this owner (uses the owner index).
    pub owner_id: Option<String>,
    /// Only keys holding this role.
    pub role: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Continue after this position.
    pub after: Option<Position>,
}

/// One page of results, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, when there is one.
    pub next: Option<Position>,
}

/// A replacement of a key item, conditional on the version that was read.
#[derive(Debug, Clone, Copy)]
pub struct Replace<'a> {
    /// The key as read; the write fails unless the stored version is still this one's.
    pub before: &'a StoredKey,
    /// The key as it should be (version already incremented).
    pub after: &'a StoredKey,
    /// The audit event written with it.
    pub audit: &'a AuditEvent,
    /// Change of the workspace's non-revoked key count (-1 on revoke).
    pub active_delta: i64,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The workspace already has the maximum number of keys that are not revoked.
    #[error("the workspace has reached its key limit")]
    LimitReached,
    /// The key changed since it was read (or concurrently): nothing was written.
    #[error("the key changed since it was read")]
    VersionConflict,
    /// A generated id or hash already exists (astronomically unlikely): nothing was written.
    #[error("a generated key id or hash already exists")]
    Duplicate,
    /// A key names a role the workspace does not have (or no longer has).
    #[error("no role named {0}")]
    UnknownRole(String),
    /// A role with this name exists.
    #[error("role {0} exists")]
    RoleExists(String),
    /// Keys that are not revoked hold the role.
    #[error("role {0} is in use")]
    RoleInUse(String),
    /// Anything else: I/O, throttling, a malformed item.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The control plane's storage. Every mutation is atomic: all of its items or none.
#[async_trait]
pub trait KeyStore: webhook::WebhookStore + Send + Sync + std::fmt::Debug {
    /// Writes a new key, its hash item, the audit event, and counts it against `cap`.
    async fn create(&self, key: &StoredKey, audit: &AuditEvent, cap: u64)
    -> Result<(), StoreError>;
    /// Writes imported keys, each with its hash item and audit event, counted against `cap`,
    /// then `call_audit` (the import as a whole). One outcome per key, in order: a key whose
    /// hash exists is [`StoreError::Duplicate`], one naming a missing role
    /// [`StoreError::UnknownRole`], one over the cap [`StoreError::LimitReached`]; the others
    /// are written whatever happens to those.
    async fn import(
        &self,
        keys: &[(StoredKey, AuditEvent)],
        call_audit: &AuditEvent,
        cap: u64,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;
    /// Claims idempotency `slot` of `workspace` for a request with `fingerprint`, unless a
    /// request holds it (lease not over at `now`) or answered it (until `expires_at`).
    async fn idem_claim(
        &self,
        workspace: &str,
        slot: &str,
        fingerprint: &str,
        now: i64,
        lease_until: i64,
        expires_at: i64,
    ) -> Result<IdemClaim, StoreError>;
    /// Keeps the sealed answer of a claimed slot.
    async fn idem_complete(
        &self,
        workspace: &str,
        slot: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError>;
    /// Gives a claimed slot up (the request failed; a retry may run it again).
    async fn idem_release(&self, workspace: &str, slot: &str) -> Result<(), StoreError>;
    /// Reads a key (strongly consistent).
    async fn get(&self, workspace: &str, id: &KeyId) -> Result<Option<StoredKey>, StoreError>;
    /// Replaces a key and its hash items, with its audit event.
    async fn replace(&self, change: Replace<'_>) -> Result<(), StoreError>;
    /// Looks a secret's hash up.
    async fn find_hash(&self, hash: &KeyHash) -> Result<Option<HashRef>, StoreError>;
    /// Lists keys, newest first.
    async fn list_keys(&self, query: &KeyQuery) -> Result<Page<KeyRecord>, StoreError>;
    /// Writes a new role with its audit event ([`StoreError::RoleExists`] if the name is taken).
    async fn create_role(&self, role: &RoleRecord, audit: &AuditEvent) -> Result<(), StoreError>;
    /// Reads a role (strongly consistent).
    async fn get_role(&self, workspace: &str, name: &str)
    -> Result<Option<RoleRecord>, StoreError>;
    /// Replaces a role's settings if its stored version is still `before_version`; the count
    /// of keys holding it is kept.
    async fn update_role(
        &self,
        before_version: u64,
        after: &RoleRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Deletes a role at `role.version` unless a key that is not revoked holds it
    /// ([`StoreError::RoleInUse`]).
    async fn delete_role(&self, role: &RoleRecord, audit: &AuditEvent) -> Result<(), StoreError>;
    /// Lists roles by name.
    async fn list_roles(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<RoleRecord>, StoreError>;
    /// Reads an owner (strongly consistent), `key_count` not yet counted.
    async fn get_owner(
        &self,
        workspace: &str,
        owner_id: &str,
    ) -> Result<Option<StoredOwner>, StoreError>;
    /// Writes an owner with its audit event: a new one when `before` is `None` (a
    /// [`StoreError::VersionConflict`] if it exists by then), else over `before` if its stored
    /// version is still `before`'s. The balance the edge reported is kept unless `after`
    /// records a credit operation.
    async fn put_owner(
        &self,
        before: Option<&StoredOwner>,
        after: &StoredOwner,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Lists owners by id.
    async fn list_owners(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<StoredOwner>, StoreError>;
    /// Counts the keys that name `owner_id` and are not revoked.
    async fn count_owner_keys(&self, workspace: &str, owner_id: &str) -> Result<u64, StoreError>;
    /// Takes a balance the edge reported as the key's or owner's `credits.remaining`, only if
    /// it is about the latest credit operation (`report.seq` is the stored `credit_seq`) and
    /// newer than the balance stored (`at_ms`), in one conditional write. Whether it was taken.
    async fn apply_balance(&self, report: &BalanceReport) -> Result<bool, StoreError>;
    /// Lists audit events, newest first.
    async fn list_audit(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<AuditEvent>, StoreError>;
    /// Key `key_id`'s hourly counts with `from <= hour < to`, by hour.
    async fn key_usage(
        &self,
        workspace: &str,
        key_id: &KeyId,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageHour>, StoreError>;
    /// Every key's hourly counts with `from <= hour < to`, by hour then key; `None` when there
    /// are more than `max` (the caller asks for a shorter range).
    async fn workspace_usage(
        &self,
        workspace: &str,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<Option<Vec<UsageHour>>, StoreError>;
}

/// The roles a key counts as holding: none once it is revoked (a revoked key never stops a
/// role from being deleted).
#[must_use]
pub fn held_roles(key: &StoredKey) -> &[String] {
    if key.record.status == KeyStatus::Revoked {
        &[]
    } else {
        &key.record.roles
    }
}

/// The roles whose holder count a key write changes: `(gained, lost)`. Every write of a key
/// with roles checks the roles it gains exist, in the same transaction, so a key never holds a
/// deleted role.
#[must_use]
pub fn role_changes(before: Option<&StoredKey>, after: &StoredKey) -> (Vec<String>, Vec<String>) {
    let old = before.map(held_roles).unwrap_or_default();
    let new = held_roles(after);
    let gained = new.iter().filter(|r| !old.contains(r)).cloned().collect();
    let lost = old.iter().filter(|r| !new.contains(r)).cloned().collect();
    (gained, lost)
}

/// A key's effective permissions: its `scopes` plus the permissions of each of its `roles`
/// in `workspace` (a role that does not exist grants nothing), without duplicates.
///
/// # Errors
/// Storage failures.
pub async fn effective_permissions(
    store: &dyn KeyStore,
    workspace: &str,
    scopes: &[String],
    roles: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut out = scopes.to_vec();
    for name in roles {
        if let Some(role) = store.get_role(workspace, name).await? {
            for p in role.permissions {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    Ok(out)
}

/// One hash item a replacement writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashWrite {
    /// The hash.
    pub hash: KeyHash,
    /// When it retires (a rotated-away secret).
    pub retires_at: Option<i64>,
    /// Whether the item is new (written with `attribute_not_exists`).
    pub new: bool,
}

/// The hash items a replacement writes and deletes: every hash of `after` is written (new ones
/// conditionally), every hash only `before` had is deleted.
#[must_use]
pub fn hash_changes(change: &Replace<'_>) -> (Vec<HashWrite>, Vec<KeyHash>) {
    let before = change.before.hashes();
    let after = change.after.hashes();
    let writes = after
        .iter()
        .map(|(h, at)| HashWrite {
            hash: h.clone(),
            retires_at: *at,
            new: !before.iter().any(|(b, _)| b == h),
        })
        .collect();
    let deletes = before
        .into_iter()
        .filter(|(b, _)| !after.iter().any(|(h, _)| h == b))
        .map(|(b, _)| b)
        .collect();
    (writes, deletes)
}

/// Whether a balance report may replace the stored balance of something with credits `has`,
/// at operation `seq`, last reported at `at_ms`: it must be about that very operation and newer.
#[must_use]
pub fn balance_applies(report: &BalanceReport, has: bool, seq: u64, at_ms: Option<i64>) -> bool {
    has && report.seq == seq && at_ms.is_none_or(|at| report.at_ms > at)
}
