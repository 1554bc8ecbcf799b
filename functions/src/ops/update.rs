//! Update a key's settings (PATCH): only the fields the patch names, one version later.

use keyward_common::credits::CreditTarget;
use keyward_common::record::NamedRateLimit;
use keyward_common::{FieldError, KeyId, KeyRecord, KeyStatus};

use super::{Commit, Now, check_version, commit, load, no_key_escalation};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::key::Patch;

/// Applies `patch` to key `id`, if its version is still `expected` (when given).
///
/// # Errors
/// 403 `permission_escalation` when the key holds, or would hold, management permissions the
/// caller does not; 404, 409 `key_revoked`, 412 on a version mismatch or a concurrent change.
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &KeyId,
    patch: Patch,
    expected: Option<u64>,
    now: Now,
) -> Result<KeyRecord, ApiError> {
    let before = load(app, caller, id).await?;
    if before.record.status == KeyStatus::Revoked {
        return Err(ApiError::KeyRevoked);
    }
    check_version(expected, before.record.version)?;
    // Changing a key more powerful than oneself is taking it over (a disabled admin key could be
    // re-enabled, an expiry lifted); so is raising a key's power above one's own.
    no_key_escalation(app, caller, &before.record).await?;
    let mut after = before.clone();
    let changed = patch.apply(&mut after.record);
    if after.record.rate_limits.len() > NamedRateLimit::MAX_PER_TARGET {
        return Err(ApiError::Validation(vec![FieldError::new(
            "rate_limit",
            "the key would have more than 5 limits: remove one with rate_limits first",
        )]));
    }
    no_key_escalation(app, caller, &after.record).await?;
    after.credit = super::credits::settle(
        &before.credit,
        CreditTarget::Key {
            workspace: caller.workspace.clone(),
            key_id: id.clone(),
        },
        before.record.credits.as_ref(),
        after.record.credits.as_ref(),
        now,
    );
    if changed.is_empty() {
        return Ok(before.record);
    }
    let change = Commit {
        before: &before,
        action: "key.update",
        changed,
        active_delta: 0,
    };
    commit(app, caller, change, &mut after, now).await?;
    Ok(after.record)
}
