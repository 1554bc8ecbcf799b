//! Credit operations on keys and owners: each change of a target's credits is recorded as one
//! [`CreditOp`] with the next `seq`, in the same write, so the table's stream carries it to the
//! edge, which applies each `seq` once and in order.
//!
//! A settings change (create, PATCH, owner PUT) records `set` when `remaining` differs from the
//! stored balance, `configure` when only the refill rule changes (the balance the edge is
//! spending is kept), and `remove` when the credits go. `POST …/credits` records the operation
//! it names; `increment` and `decrement` need credits to exist (400 on `op` otherwise, as Unkey
//! answers), `set` gives credits to a key or owner that had none.

use keyward_common::credits::{CreditOp, CreditOpKind, CreditTarget, Credits};
use keyward_common::{FieldError, KeyId, KeyStatus};

use super::{Commit, Now, commit, load};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::credits::CreditChange;
use crate::store::{CreditState, StoreError};

/// How often an operation is tried again when a concurrent change wins the race: operations
/// are relative to the stored balance, so trying again on a fresh read is correct.
const TRIES: usize = 5;

/// `state` with `op` recorded as the next operation.
#[must_use]
pub fn record(
    state: &CreditState,
    target: CreditTarget,
    op: CreditOpKind,
    value: u64,
    credits: Option<&Credits>,
    now: Now,
) -> CreditState {
    let seq = state.seq + 1;
    CreditState {
        seq,
        op: Some(CreditOp {
            target,
            seq,
            op,
            value,
            refill: credits.and_then(|c| c.refill),
            at: now.secs(),
        }),
        balance_at_ms: state.balance_at_ms,
    }
}

/// The bookkeeping after credits change from `before` to `after` by a settings write.
#[must_use]
pub fn settle(
    state: &CreditState,
    target: CreditTarget,
    before: Option<&Credits>,
    after: Option<&Credits>,
    now: Now,
) -> CreditState {
    let op = match (before, after) {
        (None, None) => return state.clone(),
        (Some(_), None) => (CreditOpKind::Remove, 0),
        (None, Some(a)) => (CreditOpKind::Set, a.remaining),
        (Some(b), Some(a)) if b.remaining != a.remaining => (CreditOpKind::Set, a.remaining),
        (Some(b), Some(a)) if b.refill != a.refill => (CreditOpKind::Configure, 0),
        (Some(_), Some(_)) => return state.clone(),
    };
    record(state, target, op.0, op.1, after, now)
}

/// `credits` after `change`.
///
/// # Errors
/// 400 on `op` for an increment or decrement of something without credits.
pub fn apply(credits: Option<Credits>, change: CreditChange) -> Result<Credits, ApiError> {
    match (credits, change.op) {
        (Some(c), op) => Ok(Credits {
            remaining: op.apply(c.remaining, change.value),
            refill: c.refill,
        }),
        (None, CreditOpKind::Set) => Ok(Credits {
            remaining: change.value,
            refill: None,
        }),
        (None, _) => Err(ApiError::Validation(vec![FieldError::new(
            "op",
            "there are no credits to change: give some with `set` (or in the settings) first",
        )])),
    }
}

/// Applies `change` to key `id`'s credits; answers the remaining credits it leaves.
///
/// # Errors
/// 400 on `op` (no credits to increment or decrement), 404, 409 `key_revoked`, 412 when
/// concurrent changes keep winning.
pub async fn key(
    app: &App,
    caller: &Caller,
    id: &KeyId,
    change: CreditChange,
    now: Now,
) -> Result<u64, ApiError> {
    for _ in 0..TRIES {
        let before = load(app, caller, id).await?;
        if before.record.status == KeyStatus::Revoked {
            return Err(ApiError::KeyRevoked);
        }
        let credits = apply(before.record.credits, change)?;
        let mut after = before.clone();
        after.record.credits = Some(credits);
        let target = CreditTarget::Key {
            workspace: caller.workspace.clone(),
            key_id: id.clone(),
        };
        after.credit = record(
            &before.credit,
            target,
            change.op,
            change.value,
            Some(&credits),
            now,
        );
        let c = Commit {
            before: &before,
            action: "key.credits",
            changed: vec!["credits".to_owned()],
            active_delta: 0,
        };
        match commit(app, caller, c, &mut after, now).await {
            Ok(()) => {
                tracing::info!(key_id = %id, seq = after.credit.seq, "key credits changed");
                return Ok(credits.remaining);
            }
            Err(ApiError::PreconditionFailed) => {}
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::VersionConflict.into())
}
