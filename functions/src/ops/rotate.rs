//! Rotate a key: a new secret, same id and settings; the old one may linger for a grace period.

use keyward_common::{KeyId, KeyStatus};

use super::{Commit, Now, WithSecret, check_version, commit, load, new_secret, no_key_escalation};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;

/// Gives key `id` a new secret; the old one verifies `grace` more seconds (0: stops at once).
///
/// # Errors
/// 403 `permission_escalation` when the key holds management permissions the caller does not (a
/// rotation hands over a working secret); 404, 409 `key_revoked`, 412.
pub async fn rotate(
    app: &App,
    caller: &Caller,
    id: &KeyId,
    grace: i64,
    expected: Option<u64>,
    now: Now,
) -> Result<WithSecret, ApiError> {
    let before = load(app, caller, id).await?;
    if before.record.status == KeyStatus::Revoked {
        return Err(ApiError::KeyRevoked);
    }
    check_version(expected, before.record.version)?;
    no_key_escalation(app, caller, &before.record).await?;
    // An imported key may have any format; its first rotation gives it Keyward's.
    let prefix = if before.record.imported {
        app.config.default_prefix.as_str()
    } else {
        before.record.prefix()
    };
    let secret = new_secret(prefix)?;
    let mut after = before.clone();
    after.record.imported = false;
    after.record.key_prefix = secret.presented().display_prefix();
    after.hash = secret.hash();
    // Any earlier grace secret is dropped: only the secret just replaced may linger.
    after.previous = (grace > 0).then(|| (before.hash.clone(), now.secs() + grace));
    let change = Commit {
        before: &before,
        action: "key.rotate",
        changed: vec!["key_prefix".into(), "secret".into()],
        active_delta: 0,
    };
    commit(app, caller, change, &mut after, now).await?;
    tracing::info!(key_id = %id, grace_period_s = grace, "key rotated");
    Ok(WithSecret {
        record: after.record,
        secret,
    })
}
