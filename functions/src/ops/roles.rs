//! Workspace roles: named permission sets that keys hold by name. Create, list, get, update,
//! delete; every change audited, none may hand over management power the caller lacks.

use keyward_common::{RoleRecord, Timestamp};

use super::{Now, Target, audit_event, check_version, next_cursor, no_escalation, resume};
use crate::api::RoleList;
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::role::{NewRole, RolePatch};

/// What role cursors are bound to besides the workspace.
const FILTERS: &str = "roles";

/// Creates a role.
///
/// # Errors
/// 403 `permission_escalation` when it would grant management permissions the caller does not
/// hold; 409 `role_exists`.
pub async fn create(
    app: &App,
    caller: &Caller,
    new: NewRole,
    now: Now,
) -> Result<RoleRecord, ApiError> {
    no_escalation(caller, &new.permissions)?;
    let at = Timestamp(now.secs());
    let role = RoleRecord {
        workspace: caller.workspace.clone(),
        name: new.name,
        description: new.description,
        permissions: new.permissions,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    let audit = audit_event(caller, "role.create", Target::Role(&role.name), vec![], now)?;
    app.store.create_role(&role, &audit).await?;
    tracing::info!(role = %role.name, "role created");
    Ok(role)
}

/// The caller's role `name`.
///
/// # Errors
/// 404 when the workspace has no such role.
pub async fn get(app: &App, caller: &Caller, name: &str) -> Result<RoleRecord, ApiError> {
    app.store
        .get_role(&caller.workspace, name)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Applies `patch` to role `name`, if its version is still `expected` (when given). Every
/// holder's verdict at the edge follows the new permissions.
///
/// # Errors
/// 403 `permission_escalation` when the role holds, or would hold, management permissions the
/// caller does not; 404; 412 on a version mismatch or a concurrent change.
pub async fn update(
    app: &App,
    caller: &Caller,
    name: &str,
    patch: RolePatch,
    expected: Option<u64>,
    now: Now,
) -> Result<RoleRecord, ApiError> {
    let before = get(app, caller, name).await?;
    check_version(expected, before.version)?;
    // Editing a role more powerful than oneself would let one strip or reshape an
    // administrator's power; raising it above one's own would be escalation.
    no_escalation(caller, &before.permissions)?;
    let mut after = before.clone();
    let mut changed = Vec::new();
    if let Some(d) = patch.description
        && d != after.description
    {
        after.description = d;
        changed.push("description".to_owned());
    }
    if let Some(p) = patch.permissions
        && p != after.permissions
    {
        after.permissions = p;
        changed.push("permissions".to_owned());
    }
    no_escalation(caller, &after.permissions)?;
    if changed.is_empty() {
        return Ok(before);
    }
    after.version += 1;
    after.updated_at = Timestamp(now.secs());
    let audit = audit_event(caller, "role.update", Target::Role(name), changed, now)?;
    app.store
        .update_role(before.version, &after, &audit)
        .await?;
    tracing::info!(role = %name, version = after.version, "role updated");
    Ok(after)
}

/// Deletes role `name` unless a key that is not revoked holds it.
///
/// # Errors
/// 404; 409 `role_in_use`; 412 on a version mismatch or a concurrent change.
pub async fn delete(
    app: &App,
    caller: &Caller,
    name: &str,
    expected: Option<u64>,
    now: Now,
) -> Result<RoleRecord, ApiError> {
    let role = get(app, caller, name).await?;
    check_version(expected, role.version)?;
    let audit = audit_event(caller, "role.delete", Target::Role(name), vec![], now)?;
    app.store.delete_role(&role, &audit).await?;
    tracing::info!(role = %name, "role deleted");
    Ok(role)
}

/// One page of the caller's roles, by name.
///
/// # Errors
/// 400 `invalid_cursor`; storage failures.
pub async fn list(
    app: &App,
    caller: &Caller,
    limit: usize,
    cursor: Option<String>,
) -> Result<RoleList, ApiError> {
    let after = resume(app, caller, FILTERS, cursor.as_deref())?;
    let page = app
        .store
        .list_roles(&caller.workspace, limit, after.as_ref())
        .await?;
    let next_cursor = next_cursor(app, caller, FILTERS, page.next);
    Ok(RoleList {
        has_more: next_cursor.is_some(),
        data: page.items,
        next_cursor,
    })
}
