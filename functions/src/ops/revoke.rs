//! Revoke a key: permanent, immediate, idempotent; with erasure, its personal data goes too.

use keyward_common::{KeyId, KeyRecord, KeyStatus};

use super::{Commit, Now, check_version, commit, load};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;

/// What an erased key's name becomes.
pub const ERASED_NAME: &str = "(erased)";

/// Revokes key `id`; revoking again answers the same revoked record and writes nothing. With
/// `erase` (a privacy request) it also removes the key's personal data — name, meta, owner id,
/// allowed IPs — keeping its id, times and status; an already revoked key can be erased too.
/// Audit events hold only the names of changed fields, never their values, so they keep no
/// personal data to erase; the edge keeps only the tombstone.
///
/// # Errors
/// 404, 412 on a version mismatch or a concurrent change.
pub async fn revoke(
    app: &App,
    caller: &Caller,
    id: &KeyId,
    erase: bool,
    expected: Option<u64>,
    now: Now,
) -> Result<KeyRecord, ApiError> {
    let before = load(app, caller, id).await?;
    let revoked = before.record.status == KeyStatus::Revoked;
    let erased = |r: &KeyRecord| {
        r.name == ERASED_NAME
            && r.meta.is_none()
            && r.owner_id.is_none()
            && r.allowed_ips.is_empty()
    };
    if revoked && (!erase || erased(&before.record)) {
        return Ok(before.record);
    }
    check_version(expected, before.record.version)?;
    let mut after = before.clone();
    after.record.status = KeyStatus::Revoked;
    let mut changed = if revoked {
        vec![]
    } else {
        vec!["status".to_owned()]
    };
    if erase {
        after.record.name = ERASED_NAME.to_owned();
        after.record.meta = None;
        after.record.owner_id = None;
        after.record.allowed_ips = Vec::new();
        changed.extend(["name", "meta", "owner_id", "allowed_ips"].map(String::from));
    }
    let change = Commit {
        before: &before,
        action: if erase { "key.erased" } else { "key.revoke" },
        changed,
        active_delta: if revoked { 0 } else { -1 },
    };
    commit(app, caller, change, &mut after, now).await?;
    tracing::info!(key_id = %id, erase, "key revoked");
    Ok(after.record)
}
