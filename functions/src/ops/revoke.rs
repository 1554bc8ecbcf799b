//! Revoke a key: permanent, immediate, idempotent.

use keyward_common::{KeyId, KeyRecord, KeyStatus};

use super::{Commit, Now, check_version, commit, load};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;

/// Revokes key `id`; revoking again answers the same revoked record and writes nothing.
///
/// # Errors
/// 404, 412 on a version mismatch or a concurrent change.
pub async fn revoke(
    app: &App,
    caller: &Caller,
    id: &KeyId,
    expected: Option<u64>,
    now: Now,
) -> Result<KeyRecord, ApiError> {
    let before = load(app, caller, id).await?;
    if before.record.status == KeyStatus::Revoked {
        return Ok(before.record);
    }
    check_version(expected, before.record.version)?;
    let mut after = before.clone();
    after.record.status = KeyStatus::Revoked;
    let change = Commit {
        before: &before,
        action: "key.revoke",
        changed: vec!["status".into()],
        active_delta: -1,
    };
    commit(app, caller, change, &mut after, now).await?;
    tracing::info!(key_id = %id, "key revoked");
    Ok(after.record)
}
