//! Owners: the customer behind keys, with a status, metadata, and limits and credits shared by
//! all its keys. PUT (upsert, replacing the settings), get, list, credit operations; every
//! change audited.
//!
//! `key_count` (keys naming the owner that are not revoked) is counted on the owner index when
//! an owner is shown, not kept on the owner item: keys may name an owner that was never PUT, and
//! a counter kept by every key write could drift or create owner items no one asked for.

use keyward_common::Timestamp;
use keyward_common::credits::CreditTarget;
use keyward_common::record::OwnerRecord;

use super::{Now, Target, audit_event, check_version, next_cursor, resume};
use crate::api::OwnerList;
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::credits::{CreditChange, OwnerSettings};
use crate::store::{StoreError, StoredOwner};

/// What owner cursors are bound to besides the workspace.
const FILTERS: &str = "owners";
/// How often a credit operation is tried again after losing a race (see [`super::credits`]).
const TRIES: usize = 5;

/// Whether a PUT created the owner.
#[derive(Debug)]
pub struct Put {
    /// The owner as it now is.
    pub owner: OwnerRecord,
    /// Whether it is new.
    pub created: bool,
}

fn target(caller: &Caller, owner_id: &str) -> CreditTarget {
    CreditTarget::Owner {
        workspace: caller.workspace.clone(),
        owner_id: owner_id.to_owned(),
    }
}

async fn counted(app: &App, mut owner: StoredOwner) -> Result<OwnerRecord, ApiError> {
    owner.record.key_count = app
        .store
        .count_owner_keys(&owner.record.workspace, &owner.record.owner_id)
        .await?;
    Ok(owner.record)
}

/// Creates or replaces owner `owner_id`'s settings, if its version is still `expected` (when
/// given; an `If-Match` for an owner that does not exist fails).
///
/// # Errors
/// 412 on a version mismatch or a concurrent change.
pub async fn put(
    app: &App,
    caller: &Caller,
    owner_id: &str,
    settings: OwnerSettings,
    expected: Option<u64>,
    now: Now,
) -> Result<Put, ApiError> {
    let before = app.store.get_owner(&caller.workspace, owner_id).await?;
    let at = Timestamp(now.secs());
    let (mut after, action, changed) = match &before {
        None => {
            if expected.is_some() {
                return Err(ApiError::PreconditionFailed);
            }
            let record = OwnerRecord {
                workspace: caller.workspace.clone(),
                owner_id: owner_id.to_owned(),
                status: settings.status,
                meta: settings.meta,
                rate_limits: settings.rate_limits,
                credits: settings.credits,
                key_count: 0,
                created_at: at,
                updated_at: at,
                version: 1,
            };
            let owner = StoredOwner {
                credit: super::credits::settle(
                    &Default::default(),
                    target(caller, owner_id),
                    None,
                    record.credits.as_ref(),
                    now,
                ),
                record,
            };
            (owner, "owner.create", vec![])
        }
        Some(b) => {
            check_version(expected, b.record.version)?;
            let mut after = b.clone();
            let r = &mut after.record;
            let mut changed = Vec::new();
            if r.status != settings.status {
                r.status = settings.status;
                changed.push("status".to_owned());
            }
            if r.meta != settings.meta {
                r.meta = settings.meta;
                changed.push("meta".to_owned());
            }
            if r.rate_limits != settings.rate_limits {
                r.rate_limits = settings.rate_limits;
                changed.push("rate_limits".to_owned());
            }
            if r.credits != settings.credits {
                after.credit = super::credits::settle(
                    &b.credit,
                    target(caller, owner_id),
                    b.record.credits.as_ref(),
                    settings.credits.as_ref(),
                    now,
                );
                after.record.credits = settings.credits;
                changed.push("credits".to_owned());
            }
            if changed.is_empty() {
                return Ok(Put {
                    owner: counted(app, b.clone()).await?,
                    created: false,
                });
            }
            after.record.version += 1;
            after.record.updated_at = at;
            (after, "owner.update", changed)
        }
    };
    let audit = audit_event(caller, action, Target::Owner(owner_id), changed, now)?;
    app.store.put_owner(before.as_ref(), &after, &audit).await?;
    tracing::info!(version = after.record.version, action, "owner written");
    after.record.key_count = 0;
    Ok(Put {
        owner: counted(app, after).await?,
        created: before.is_none(),
    })
}

/// The caller's owner `owner_id`, with its `key_count`.
///
/// # Errors
/// 404 when the workspace has no such owner.
pub async fn get(app: &App, caller: &Caller, owner_id: &str) -> Result<OwnerRecord, ApiError> {
    let owner = app
        .store
        .get_owner(&caller.workspace, owner_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    counted(app, owner).await
}

/// One page of the caller's owners, by id, each with its `key_count`.
///
/// # Errors
/// 400 `invalid_cursor`; storage failures.
pub async fn list(
    app: &App,
    caller: &Caller,
    limit: usize,
    cursor: Option<String>,
) -> Result<OwnerList, ApiError> {
    let after = resume(app, caller, FILTERS, cursor.as_deref())?;
    let page = app
        .store
        .list_owners(&caller.workspace, limit, after.as_ref())
        .await?;
    let mut data = Vec::with_capacity(page.items.len());
    for o in page.items {
        data.push(counted(app, o).await?);
    }
    let next_cursor = next_cursor(app, caller, FILTERS, page.next);
    Ok(OwnerList {
        has_more: next_cursor.is_some(),
        data,
        next_cursor,
    })
}

/// Applies `change` to owner `owner_id`'s credits; answers the remaining credits it leaves.
///
/// # Errors
/// 400 on `op` (no credits to increment or decrement), 404, 412 when concurrent changes keep
/// winning.
pub async fn credits(
    app: &App,
    caller: &Caller,
    owner_id: &str,
    change: CreditChange,
    now: Now,
) -> Result<u64, ApiError> {
    for _ in 0..TRIES {
        let before = app
            .store
            .get_owner(&caller.workspace, owner_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let credits = super::credits::apply(before.record.credits, change)?;
        let mut after = before.clone();
        after.record.credits = Some(credits);
        after.credit = super::credits::record(
            &before.credit,
            target(caller, owner_id),
            change.op,
            change.value,
            Some(&credits),
            now,
        );
        after.record.version += 1;
        after.record.updated_at = Timestamp(now.secs());
        let audit = audit_event(
            caller,
            "owner.credits",
            Target::Owner(owner_id),
            vec!["credits".to_owned()],
            now,
        )?;
        match app.store.put_owner(Some(&before), &after, &audit).await {
            Ok(()) => {
                tracing::info!(seq = after.credit.seq, "owner credits changed");
                return Ok(credits.remaining);
            }
            Err(StoreError::VersionConflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::PreconditionFailed)
}
