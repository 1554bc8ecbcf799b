//! List keys, newest first, filtered by status and owner, with opaque signed cursors.

use keyward_common::{FieldError, KeyStatus};

use crate::api::KeyList;
use crate::app::App;
use crate::auth::Caller;
use crate::cursor;
use crate::error::ApiError;
use crate::input::checks::MAX_NAME;
use crate::input::query::Query;
use crate::store::KeyQuery;

/// The query parameters it takes.
pub const PARAMS: &[&str] = &["limit", "cursor", "status", "owner_id"];

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
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(Self {
            limit,
            cursor: q.cursor(),
            status,
            owner_id,
        })
    }

    /// What a cursor is bound to besides the workspace: the filters.
    fn filters(&self) -> String {
        format!(
            "status={}&owner_id={}",
            self.status.map_or("", KeyStatus::as_str),
            self.owner_id.as_deref().unwrap_or("")
        )
    }
}

/// One page of the caller's keys.
///
/// # Errors
/// 400 `invalid_cursor`; storage failures.
pub async fn list_keys(app: &App, caller: &Caller, input: Input) -> Result<KeyList, ApiError> {
    let secret = &app.config.cursor_secret;
    let ws = &caller.workspace;
    let filters = input.filters();
    let after = match &input.cursor {
        None => None,
        Some(c) => {
            Some(cursor::decode(secret, ws, &filters, c).map_err(|()| ApiError::InvalidCursor)?)
        }
    };
    let page = app
        .store
        .list_keys(&KeyQuery {
            workspace: ws.clone(),
            status: input.status,
            owner_id: input.owner_id,
            limit: input.limit,
            after,
        })
        .await?;
    let next_cursor = page.next.map(|p| cursor::encode(secret, ws, &filters, &p));
    Ok(KeyList {
        has_more: next_cursor.is_some(),
        data: page.items,
        next_cursor,
    })
}
