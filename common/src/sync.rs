//! Signed batches between the control plane and the edge: edge-entry sync and usage reports.
//!
//! A batch is signed with HMAC-SHA256 over `"{timestamp}.{body}"` with a shared secret, sent as
//! `X-Keyward-Timestamp: {unix seconds}` and `X-Keyward-Signature: v1={hex}`; the receiver refuses
//! a bad signature or a timestamp more than [`MAX_SKEW_S`] seconds away from its clock.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::credits::CreditOp;
use crate::record::{
    OwnerEntry, RoleEntry, owner_kv_key, role_kv_key, valid_owner_id, valid_role_name,
    valid_workspace,
};
use crate::{EdgeEntry, KeyHash, KeyId};

/// Header carrying the signing time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Keyward-Timestamp";
/// Header carrying the signature, `v1={hex}`.
pub const SIGNATURE_HEADER: &str = "X-Keyward-Signature";
/// Largest accepted difference between the signing time and the receiver's clock.
pub const MAX_SKEW_S: i64 = 300;
/// Most items one batch may carry.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// One KV write: the entry for a key hash (an upsert, or a tombstone when the entry is revoked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncItem {
    /// SHA-256 of the secret: the KV key is `h:{hash}`. Never the secret itself.
    pub hash: KeyHash,
    /// The entry to store if it is newer than what is there.
    pub entry: EdgeEntry,
}

/// One role KV write: the entry of role `name` of `workspace` (`r:{workspace}:{name}`), an
/// upsert or, when the role was deleted, a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSyncItem {
    /// The role's workspace.
    pub workspace: String,
    /// The role's name.
    pub name: String,
    /// The entry to store if it supersedes what is there.
    pub entry: RoleEntry,
}

impl RoleSyncItem {
    /// The KV key the item writes, or `None` when the workspace or name has a shape the
    /// control plane never produces (the edge refuses the batch rather than write odd keys).
    #[must_use]
    pub fn kv_key(&self) -> Option<String> {
        (valid_workspace(&self.workspace) && valid_role_name(&self.name))
            .then(|| role_kv_key(&self.workspace, &self.name))
    }
}

/// One owner to write at the edge under `o:{workspace}:{owner_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerSyncItem {
    /// Owning workspace.
    pub workspace: String,
    /// The owner's id.
    pub owner_id: String,
    /// What to store.
    pub entry: OwnerEntry,
}

impl OwnerSyncItem {
    /// The KV key to write, or `None` when the workspace or id could not be the control
    /// plane's (refused, never written).
    #[must_use]
    pub fn kv_key(&self) -> Option<String> {
        (valid_workspace(&self.workspace) && valid_owner_id(&self.owner_id))
            .then(|| owner_kv_key(&self.workspace, &self.owner_id))
    }
}

/// A batch of KV writes from the `sync` function (or backfill) to the edge.
///
/// Wire form: `{"items": [{"hash", "entry"}], "roles": [{"workspace", "name", "entry":
/// {"version", "created_at", "permissions", "deleted"}}]}`; `roles` may be left out (a batch
/// without it is what an edge before roles accepted). At most [`MAX_BATCH_ITEMS`] writes in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBatch {
    /// The key writes, applied independently.
    pub items: Vec<SyncItem>,
    /// The role writes, applied independently of each other and of the key writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSyncItem>,
    /// Owners to write (`o:{ws}:{owner_id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<OwnerSyncItem>,
    /// Credit operations for keys' and owners' Durable Objects, in the order they were made
    /// (per target, ascending `seq`). The edge applies them before the batch's KV writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_ops: Vec<CreditOp>,
}

impl SyncBatch {
    /// A batch of key writes only.
    #[must_use]
    pub fn keys(items: Vec<SyncItem>) -> Self {
        Self {
            items,
            ..Self::default()
        }
    }

    /// Key and role writes together.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len() + self.roles.len() + self.owners.len() + self.credit_ops.len()
    }

    /// Whether the batch writes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the edge did with each item of a batch, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Written (it was newer, or nothing was stored).
    Applied,
    /// Not written: what is stored is newer or a tombstone.
    Stale,
}

/// The edge's answer to a sync batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// One outcome per key item, in order.
    pub outcomes: Vec<SyncOutcome>,
    /// One outcome per role item, in order (left out when the batch had none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_outcomes: Vec<SyncOutcome>,
    /// One per owner of the batch, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_outcomes: Vec<SyncOutcome>,
    /// One per credit operation of the batch, in order: `stale` when that `seq` was applied
    /// already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_outcomes: Vec<SyncOutcome>,
}

impl SyncResponse {
    /// Whether the answer has one outcome per write of `batch`.
    #[must_use]
    pub fn answers(&self, batch: &SyncBatch) -> bool {
        self.outcomes.len() == batch.items.len()
            && self.role_outcomes.len() == batch.roles.len()
            && self.owner_outcomes.len() == batch.owners.len()
            && self.credit_outcomes.len() == batch.credit_ops.len()
    }
}

/// Requests of one key in one UTC hour by outcome, as counted by one edge isolate since its
/// last report. Every verification the edge answers for a found key counts once, under the
/// outcome it got; `credits_spent` is what the admitted ones spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct OutcomeCounts {
    /// Admitted.
    pub valid: u64,
    /// Refused by a rate limit (the key's or its owner's).
    pub rate_limited: u64,
    /// Refused for lack of credits.
    pub usage_exceeded: u64,
    /// Refused for a missing permission or scope, or a client address outside `allowed_ips`.
    pub forbidden: u64,
    /// Refused because the key or its owner is disabled.
    pub disabled: u64,
    /// Refused because the key expired.
    pub expired: u64,
    /// Refused because the key is revoked.
    pub revoked: u64,
    /// Credits the admitted requests spent.
    pub credits_spent: u64,
}

impl OutcomeCounts {
    /// Adds `other` to `self`, saturating.
    pub fn add(&mut self, other: &Self) {
        self.valid = self.valid.saturating_add(other.valid);
        self.rate_limited = self.rate_limited.saturating_add(other.rate_limited);
        self.usage_exceeded = self.usage_exceeded.saturating_add(other.usage_exceeded);
        self.forbidden = self.forbidden.saturating_add(other.forbidden);
        self.disabled = self.disabled.saturating_add(other.disabled);
        self.expired = self.expired.saturating_add(other.expired);
        self.revoked = self.revoked.saturating_add(other.revoked);
        self.credits_spent = self.credits_spent.saturating_add(other.credits_spent);
    }

    /// All requests counted, whatever their outcome.
    #[must_use]
    pub fn requests(&self) -> u64 {
        [
            self.valid,
            self.rate_limited,
            self.usage_exceeded,
            self.forbidden,
            self.disabled,
            self.expired,
            self.revoked,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// One key's use in one UTC hour, as counted by one edge isolate since its last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// Workspace of the key.
    pub workspace: String,
    /// The key.
    pub key_id: KeyId,
    /// The key's owner when the requests were counted (for `group_by=owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Unix seconds of the start of the UTC hour the requests fell in (a multiple of 3600).
    pub hour: i64,
    /// The counts.
    pub counts: OutcomeCounts,
    /// Unix seconds of the latest admitted request counted, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

/// A target's credit balance as its Durable Object last told an isolate: what the control
/// plane shows as `credits.remaining`. `seq` is the last credit operation the object had
/// applied; a report older than the control plane's latest operation says nothing about it and
/// is ignored, as is one older (`at`) than the balance already stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceReport {
    /// Whose credits.
    pub target: crate::credits::CreditTarget,
    /// Units left (leases handed to isolates count as spent until returned).
    pub remaining: u64,
    /// The last credit operation applied.
    pub seq: u64,
    /// When the object answered (Unix milliseconds).
    pub at_ms: i64,
}

/// Most reports one usage batch may carry; the edge splits larger flushes.
pub const MAX_USAGE_REPORTS: usize = 1000;

/// A batch of usage reports from the edge to the control plane's `usage` function.
///
/// `batch_id` makes delivery idempotent: the edge resends a batch it could not confirm
/// unchanged, with the same id, and the control plane counts each (batch, report) once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// Unique per batch, 8–64 characters `[A-Za-z0-9_-]`; the same on every retry.
    pub batch_id: String,
    /// The reports, at most [`MAX_USAGE_REPORTS`].
    pub reports: Vec<UsageReport>,
    /// Credit balances learnt since the last batch, the latest per target (at most
    /// [`MAX_USAGE_REPORTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub balances: Vec<BalanceReport>,
}

/// Whether `id` has the shape of a usage batch id.
#[must_use]
pub fn valid_batch_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Why a signed request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is absent.
    #[error("the request is not signed: {0} is missing")]
    Missing(&'static str),
    /// The timestamp is not a number.
    #[error("the signature timestamp is not Unix seconds")]
    BadTimestamp,
    /// The timestamp is too far from the receiver's clock (stale or replayed).
    #[error("the signature timestamp is more than 300 s away from the server clock")]
    Skewed,
    /// The signature does not match the body.
    #[error("the signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Keyward-Signature` value for `body` signed at `timestamp`.
#[must_use]
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks the headers of a signed request against its body at time `now`.
///
/// # Errors
/// A [`SignatureError`] for a missing header, a timestamp more than 300 s off, or a signature
/// that does not match (compared in constant time).
pub fn verify_signature(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff` cannot overflow, whatever the sender wrote (`i64::MIN` included).
    if now.abs_diff(ts) > MAX_SKEW_S.unsigned_abs() {
        return Err(SignatureError::Skewed);
    }
    let given = signature
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"sync-secret";
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_signed_body_verifies() {
        let sig = sign(SECRET, NOW, b"{}");
        assert_eq!(
            verify_signature(SECRET, Some(&NOW.to_string()), Some(&sig), b"{}", NOW + 299),
            Ok(())
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let sig = sign(SECRET, NOW, b"{}");
        let ts = NOW.to_string();
        assert_eq!(
            verify_signature(SECRET, Some(&ts), Some(&sig), b"{}", NOW + 301),
            Err(SignatureError::Skewed)
        );
        assert_eq!(
            verify_signature(SECRET, Some(&ts), Some(&sig), b"{}", NOW - 301),
            Err(SignatureError::Skewed)
        );
    }

    #[test]
    fn an_extreme_timestamp_is_skewed_not_an_overflow() {
        for ts in [i64::MIN, i64::MAX, i64::MIN + 1] {
            let sig = sign(SECRET, ts, b"{}");
            assert_eq!(
                verify_signature(SECRET, Some(&ts.to_string()), Some(&sig), b"{}", NOW),
                Err(SignatureError::Skewed)
            );
        }
    }

    #[test]
    fn missing_headers_and_other_secrets_are_refused() {
        let sig = sign(SECRET, NOW, b"{}");
        let ts = NOW.to_string();
        assert!(matches!(
            verify_signature(SECRET, None, Some(&sig), b"{}", NOW),
            Err(SignatureError::Missing(_))
        ));
        assert!(matches!(
            verify_signature(SECRET, Some(&ts), None, b"{}", NOW),
            Err(SignatureError::Missing(_))
        ));
        assert_eq!(
            verify_signature(b"other", Some(&ts), Some(&sig), b"{}", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, Some("soon"), Some(&sig), b"{}", NOW),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn the_timestamp_is_part_of_what_is_signed() {
        let sig = sign(SECRET, NOW, b"{}");
        let other = (NOW + 1).to_string();
        assert_eq!(
            verify_signature(SECRET, Some(&other), Some(&sig), b"{}", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_batch_without_roles_is_the_old_wire_form_and_roles_round_trip() {
        let batch = SyncBatch::keys(Vec::new());
        assert_eq!(serde_json::to_string(&batch).unwrap(), r#"{"items":[]}"#);
        let text = r#"{"items":[],"roles":[{"workspace":"acme","name":"sms-sender","entry":{"version":2,"created_at":1800000000,"permissions":["sms.send"],"deleted":false}}]}"#;
        let batch: SyncBatch = serde_json::from_str(text).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(serde_json::to_string(&batch).unwrap(), text);
        assert_eq!(
            batch.roles[0].kv_key().as_deref(),
            Some("r:acme:sms-sender")
        );
        let odd = RoleSyncItem {
            workspace: "a:b".into(),
            ..batch.roles[0].clone()
        };
        assert_eq!(odd.kv_key(), None);
    }

    proptest! {
        #[test]
        fn any_flipped_byte_fails(body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<usize>(), bit in 0u8..8) {
            let sig = sign(SECRET, NOW, &body);
            let ts = NOW.to_string();
            let mut tampered = body.clone();
            let i = idx % tampered.len();
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(verify_signature(SECRET, Some(&ts), Some(&sig), &tampered, NOW), Err(SignatureError::Mismatch));
            let mut sig_bytes = sig.clone().into_bytes();
            let j = 3 + idx % (sig_bytes.len() - 3);
            sig_bytes[j] = if sig_bytes[j] == b'0' { b'1' } else { b'0' };
            let bad_sig = String::from_utf8(sig_bytes).unwrap();
            prop_assert_eq!(verify_signature(SECRET, Some(&ts), Some(&bad_sig), &body, NOW), Err(SignatureError::Mismatch));
        }
    }
}
