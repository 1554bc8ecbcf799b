//! Create a key: a fresh secret, stored only as its hash, counted against the workspace's cap.

use keyward_common::credits::CreditTarget;
use keyward_common::{KeyId, KeyRecord, Timestamp};

use super::{Now, Target, WithSecret, audit_event, new_secret, no_key_escalation, random_bytes};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::key::NewKey;
use crate::store::StoredKey;

/// Creates the key `new` describes in the caller's workspace.
///
/// # Errors
/// 403 `permission_escalation` when the key would hold management permissions the caller does
/// not; 409 `key_limit_reached` at the cap; storage failures.
pub async fn create(
    app: &App,
    caller: &Caller,
    new: NewKey,
    now: Now,
) -> Result<WithSecret, ApiError> {
    let secret = new_secret(&new.prefix)?;
    let id = KeyId::new(now.ms, random_bytes::<10>()?);
    let at = Timestamp(now.secs());
    let record = KeyRecord {
        id: id.clone(),
        workspace: caller.workspace.clone(),
        name: new.name,
        key_prefix: secret.presented().display_prefix(),
        scopes: new.scopes,
        roles: new.roles,
        owner_id: new.owner_id,
        meta: new.meta,
        status: new.status,
        created_at: at,
        updated_at: at,
        expires_at: new.expires_at,
        last_used_at: None,
        permissions: Vec::new(),
        allowed_ips: new.allowed_ips,
        rate_limit: new.rate_limit,
        rate_limits: new.rate_limits,
        credits: new.credits,
        version: 1,
        imported: false,
    };
    no_key_escalation(app, caller, &record).await?;
    let credit = super::credits::settle(
        &Default::default(),
        CreditTarget::Key {
            workspace: caller.workspace.clone(),
            key_id: id.clone(),
        },
        None,
        record.credits.as_ref(),
        now,
    );
    let stored = StoredKey {
        record,
        hash: secret.hash(),
        previous: None,
        credit,
    };
    let audit = audit_event(caller, "key.create", Target::Key(&id), vec![], now)?;
    let cap = app.config.max_active_keys;
    app.store
        .create(&stored, &audit, cap)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::KeyLimitReached(_) => ApiError::KeyLimitReached(cap),
            other => other,
        })?;
    tracing::info!(key_id = %id, "key created");
    Ok(WithSecret {
        record: stored.record,
        secret,
    })
}
