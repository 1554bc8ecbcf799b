//! List the workspace's audit events, newest first.

use crate::api::AuditList;
use crate::app::App;
use crate::auth::Caller;
use crate::cursor;
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
    let secret = &app.config.cursor_secret;
    let ws = &caller.workspace;
    let after = match cursor {
        None => None,
        Some(c) => {
            Some(cursor::decode(secret, ws, FILTERS, &c).map_err(|()| ApiError::InvalidCursor)?)
        }
    };
    let page = app.store.list_audit(ws, limit, after.as_ref()).await?;
    let next_cursor = page.next.map(|p| cursor::encode(secret, ws, FILTERS, &p));
    Ok(AuditList {
        has_more: next_cursor.is_some(),
        data: page.items,
        next_cursor,
    })
}
