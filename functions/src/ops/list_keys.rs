//! List keys, newest first, filtered by status, owner and role, with opaque signed cursors.

use keyward_common::{FieldError, KeyStatus};

use crate::api::KeyList;
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::checks::{MAX_NAME, ROLE_NAME_RULE, valid_role_name};
use crate::input::query::Query;
use crate::store::KeyQuery;

/// The query parameters it takes.
pub const PARAMS: &[&str] = &["limit", "cursor", "status", "owner_id", "role"];

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Page size, 1–100.
    pub limit: usize,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only keys with this status.
    pub status: Option<KeyStatus>,
    /// Only this owner's keys.
    pub owner_id: Option<String>,
    /// Only keys holding this role.
    pub role: Option<String>,
}

impl Input {
    /// From the query string.
    ///
    /// # Errors
    /// 400 naming every bad parameter.
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        let limit = q.limit()?;
        let mut errors = Vec::new();
        let status = match q.get("status") {
            None => None,
            Some(s) => KeyStatus::parse(s).or_else(|| {
                errors.push(FieldError::new(
                    "status",
                    "must be active, disabled or revoked",
                ));
                None
            }),
        };
        let owner_id = match q.get("owner_id") {
            Some(o) if o.is_empty() || o.chars().count() > MAX_NAME => {
                errors.push(FieldError::new("owner_id", "must be 1-128 characters"));
                None
            }
            o => o.map(str::to_owned),
        };
        let role = match q.get("role") {
            Some(r) if !valid_role_name(r) => {
                errors.push(FieldError::new("role", ROLE_NAME_RULE));
                None
            }
            r => r.map(str::to_owned),
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(Self {
            limit,
            cursor: q.cursor(),
            status,
            owner_id,
            role,
        })
    }

    /// What a cursor is bound to besides the workspace: the filters.
    fn filters(&self) -> String {
        format!(
            "status={}&owner_id={}&role={}",
            self.status.map_or("", KeyStatus::as_str),
            self.owner_id.as_deref().unwrap_or(""),
            self.role.as_deref().unwrap_or("")
        )
    }
}

/// One page of the caller's keys.
///
/// # Errors
/// 400 `invalid_cursor`; storage failures.
pub async fn list_keys(app: &App, caller: &Caller, input: Input) -> Result<KeyList, ApiError> {
    let filters = input.filters();
    let after = super::resume(app, caller, &filters, input.cursor.as_deref())?;
    let page = app
        .store
        .list_keys(&KeyQuery {
            workspace: caller.workspace.clone(),
            status: input.status,
            owner_id: input.owner_id,
            role: input.role,
            limit: input.limit,
            after,
        })
        .await?;
    let next_cursor = super::next_cursor(app, caller, &filters, page.next);
    let mut data = page.items;
    super::show_permissions(app, &mut data).await?;
    Ok(KeyList {
        has_more: next_cursor.is_some(),
        data,
        next_cursor,
    })
}
