//! Import keys a product already issued: each becomes a Keyward key with its own id and
//! settings, verified by its hash; a bad or duplicate item refuses only itself.

use keyward_common::{FieldError, KeyHash, KeyId, KeyRecord, Problem, ProblemCode, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Now, Target, audit_event, no_key_escalation, random_bytes};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::import::NewImport;
use crate::store::{StoreError, StoredKey};
use keyward_common::credits::CreditTarget;

/// The answer of an import: counts and one result per item, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// Items that became keys.
    pub created: usize,
    /// Items refused.
    pub refused: usize,
    /// One per item of the request.
    pub results: Vec<ImportResult>,
}

/// What became of one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// The item's position in the request's `keys`.
    pub index: usize,
    /// The new key's id, when created.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub id: Option<KeyId>,
    /// Why it was refused: `validation_failed`, `duplicate_key`, `permission_escalation`,
    /// `key_limit_reached`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// Imports `items` (already validated one by one; an `Err` item is refused as it is).
///
/// # Errors
/// Storage failures that are not about one item.
pub async fn import(
    app: &App,
    caller: &Caller,
    items: Vec<Result<NewImport, Vec<FieldError>>>,
    now: Now,
) -> Result<Imported, ApiError> {
    let mut results: Vec<ImportResult> = Vec::with_capacity(items.len());
    let mut writes: Vec<(StoredKey, crate::store::AuditEvent)> = Vec::new();
    let mut written_at: Vec<usize> = Vec::new();
    let mut seen: Vec<KeyHash> = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let refuse = |error: Problem| ImportResult {
            index,
            id: None,
            error: Some(error),
        };
        let new = match item {
            Ok(n) => n,
            Err(errors) => {
                results.push(refuse(Problem::validation(errors)));
                continue;
            }
        };
        if seen.contains(&new.hash) {
            results.push(refuse(duplicate("appears earlier in this request")));
            continue;
        }
        seen.push(new.hash.clone());
        let id = KeyId::new(now.ms, random_bytes::<10>()?);
        let record = record(caller, &new, id.clone(), now);
        let credits = record.credits;
        if let Err(e) = no_key_escalation(app, caller, &record).await {
            results.push(refuse(e.problem()));
            continue;
        }
        let audit = audit_event(caller, "key.import", Target::Key(&id), vec![], now)?;
        writes.push((
            StoredKey {
                record,
                hash: new.hash,
                previous: None,
                credit: super::credits::settle(
                    &Default::default(),
                    CreditTarget::Key {
                        workspace: caller.workspace.clone(),
                        key_id: id.clone(),
                    },
                    None,
                    credits.as_ref(),
                    now,
                ),
            },
            audit,
        ));
        written_at.push(results.len());
        results.push(ImportResult {
            index,
            id: Some(id),
            error: None,
        });
    }
    let call_audit = audit_event(caller, "keys.import", Target::Workspace, vec![], now)?;
    let outcomes = app
        .store
        .import(&writes, &call_audit, app.config.max_active_keys)
        .await?;
    for (slot, outcome) in written_at.into_iter().zip(outcomes) {
        let problem = match outcome {
            Ok(()) => continue,
            Err(StoreError::Duplicate) => duplicate("is already a key of Keyward"),
            Err(StoreError::LimitReached) => {
                ApiError::KeyLimitReached(app.config.max_active_keys).problem()
            }
            Err(e) => ApiError::from(e).problem(),
        };
        results[slot].id = None;
        results[slot].error = Some(problem);
    }
    let refused = results.iter().filter(|r| r.error.is_some()).count();
    tracing::info!(created = results.len() - refused, refused, "keys imported");
    Ok(Imported {
        created: results.len() - refused,
        refused,
        results,
    })
}

fn duplicate(why: &str) -> Problem {
    Problem::of(
        ProblemCode::DuplicateKey,
        format!("This key {why}: it was not imported again."),
    )
}

fn record(caller: &Caller, new: &NewImport, id: KeyId, now: Now) -> KeyRecord {
    let at = Timestamp(now.secs());
    let k = &new.key;
    KeyRecord {
        id,
        workspace: caller.workspace.clone(),
        name: k.name.clone(),
        key_prefix: new.display.clone(),
        scopes: k.scopes.clone(),
        roles: k.roles.clone(),
        permissions: Vec::new(),
        owner_id: k.owner_id.clone(),
        meta: k.meta.clone(),
        status: k.status,
        created_at: at,
        updated_at: at,
        expires_at: k.expires_at,
        last_used_at: None,
        allowed_ips: k.allowed_ips.clone(),
        rate_limit: k.rate_limit,
        rate_limits: k.rate_limits.clone(),
        credits: k.credits,
        version: 1,
        imported: true,
    }
}
