//! The management operations: functions of the app, the caller, typed input and `now`, returning
//! domain values. HTTP maps to and from them in [`crate::http`], one place.

pub mod create;
pub mod credits;
pub mod get;
pub mod import;
pub mod list_audit;
pub mod list_keys;
pub mod owners;
pub mod revoke;
pub mod roles;
pub mod rotate;
pub mod update;
pub mod usage;
pub mod webhooks;

use keyward_common::{KeyId, KeyRecord, SecretKey, Timestamp};

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::permission::escalation;
use crate::store::{AuditEvent, Position, Replace, StoredKey, effective_permissions};

/// The time a request is served at, read once by the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Unix milliseconds.
    pub ms: u64,
}

impl Now {
    /// Unix seconds.
    #[must_use]
    pub fn secs(self) -> i64 {
        keyward_common::time::unix_seconds(self.ms)
    }
}

/// A key with the secret that was just made for it, shown this once.
#[derive(Debug)]
pub struct WithSecret {
    /// The key.
    pub record: KeyRecord,
    /// Its new secret.
    pub secret: SecretKey,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
    Ok(b)
}

fn new_secret(prefix: &str) -> Result<SecretKey, ApiError> {
    let mut failed = false;
    let secret = SecretKey::generate(prefix, |buf: &mut [u8]| {
        if getrandom::fill(buf).is_err() {
            failed = true;
        }
    })
    .map_err(|e| anyhow::anyhow!("generating a key: {e}"))?;
    if failed {
        return Err(anyhow::anyhow!("OS random source failed").into());
    }
    Ok(secret)
}

/// What an audit event is about.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Key(&'a KeyId),
    Role(&'a str),
    Webhook(&'a str),
    Owner(&'a str),
    /// The workspace as a whole (an import call).
    Workspace,
}

fn audit_event(
    caller: &Caller,
    action: &str,
    target: Target<'_>,
    changed: Vec<String>,
    now: Now,
) -> Result<AuditEvent, ApiError> {
    let rand = random_bytes::<8>()?;
    Ok(AuditEvent {
        id: format!("{:013}#{}", now.ms, hex::encode(rand)),
        workspace: caller.workspace.clone(),
        at: Timestamp(now.secs()),
        actor: caller.actor.clone(),
        action: action.to_owned(),
        key_id: match target {
            Target::Key(id) => Some(id.to_string()),
            _ => None,
        },
        role: match target {
            Target::Role(name) => Some(name.to_owned()),
            _ => None,
        },
        webhook_id: match target {
            Target::Webhook(id) => Some(id.to_owned()),
            _ => None,
        },
        owner_id: match target {
            Target::Owner(id) => Some(id.to_owned()),
            _ => None,
        },
        changed,
        request_id: caller.request_id.clone(),
        source_ip: caller.source_ip.clone(),
    })
}

/// Where a listing resumes: the position in `cursor` (a previous page's `next_cursor`), which
/// must be bound to the caller's workspace and the same `filters`.
fn resume(
    app: &App,
    caller: &Caller,
    filters: &str,
    cursor: Option<&str>,
) -> Result<Option<Position>, ApiError> {
    cursor
        .map(|c| {
            crate::cursor::decode(&app.config.cursor_secret, &caller.workspace, filters, c)
                .map_err(|()| ApiError::InvalidCursor)
        })
        .transpose()
}

/// The `next_cursor` for a page that ended at `next`.
fn next_cursor(
    app: &App,
    caller: &Caller,
    filters: &str,
    next: Option<Position>,
) -> Option<String> {
    next.map(|p| crate::cursor::encode(&app.config.cursor_secret, &caller.workspace, filters, &p))
}

/// The caller's key `id`, or 404.
async fn load(app: &App, caller: &Caller, id: &KeyId) -> Result<StoredKey, ApiError> {
    app.store
        .get(&caller.workspace, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// 412 unless `expected` (from `If-Match`) is absent or the current version.
fn check_version(expected: Option<u64>, current: u64) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != current => Err(ApiError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// 403 `permission_escalation` when `record`'s effective permissions (scopes and roles) hold
/// management permissions the caller does not.
async fn no_key_escalation(app: &App, caller: &Caller, record: &KeyRecord) -> Result<(), ApiError> {
    let effective = effective_permissions(
        app.store.as_ref(),
        &record.workspace,
        &record.scopes,
        &record.roles,
    )
    .await?;
    no_escalation(caller, &effective)
}

/// Fills in each record's effective `permissions`, reading each role once.
///
/// # Errors
/// Storage failures.
pub async fn show_permissions(app: &App, records: &mut [KeyRecord]) -> Result<(), ApiError> {
    let mut roles: Vec<(String, Vec<String>)> = Vec::new();
    for r in records.iter_mut() {
        let mut out = r.scopes.clone();
        for name in &r.roles {
            if !roles.iter().any(|(n, _)| n == name) {
                let perms = app
                    .store
                    .get_role(&r.workspace, name)
                    .await?
                    .map(|role| role.permissions)
                    .unwrap_or_default();
                roles.push((name.clone(), perms));
            }
            let perms = roles.iter().find(|(n, _)| n == name).map(|(_, p)| p);
            for p in perms.into_iter().flatten() {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        r.permissions = out;
    }
    Ok(())
}

/// 403 `permission_escalation` when `scopes` hold management permissions the caller does not.
fn no_escalation(caller: &Caller, scopes: &[String]) -> Result<(), ApiError> {
    let beyond = escalation(&caller.permissions, scopes);
    if beyond.is_empty() {
        Ok(())
    } else {
        Err(ApiError::PermissionEscalation(beyond))
    }
}

/// A change of one key to write.
struct Commit<'a> {
    before: &'a StoredKey,
    action: &'a str,
    changed: Vec<String>,
    active_delta: i64,
}

/// Writes `after` over `change.before`: its version bumped and `updated_at` set to `now`, with an
/// audit event naming the changed fields, in one store transaction.
async fn commit(
    app: &App,
    caller: &Caller,
    change: Commit<'_>,
    after: &mut StoredKey,
    now: Now,
) -> Result<(), ApiError> {
    after.record.version += 1;
    after.record.updated_at = Timestamp(now.secs());
    let audit = audit_event(
        caller,
        change.action,
        Target::Key(&after.record.id),
        change.changed,
        now,
    )?;
    app.store
        .replace(Replace {
            before: change.before,
            after,
            audit: &audit,
            active_delta: change.active_delta,
        })
        .await?;
    Ok(())
}
