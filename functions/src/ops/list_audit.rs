//! List the workspace's audit events, newest first.

use super::{next_cursor, resume};
use crate::api::AuditList;
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;

/// The query parameters it takes.
pub const PARAMS: &[&str] = &["limit", "cursor"];

/// What audit cursors are bound to besides the workspace.
const FILTERS: &str = "audit";

/// One page of the caller's audit events.
///
/// # Errors
/// 400 `invalid_cursor`; storage failures.
pub async fn list_audit(
    app: &App,
    caller: &Caller,
    limit: usize,
    cursor: Option<String>,
) -> Result<AuditList, ApiError> {
    let after = resume(app, caller, FILTERS, cursor.as_deref())?;
    let page = app
        .store
        .list_audit(&caller.workspace, limit, after.as_ref())
        .await?;
    let next_cursor = next_cursor(app, caller, FILTERS, page.next);
    Ok(AuditList {
        has_more: next_cursor.is_some(),
        data: page.items,
        next_cursor,
    })
}
