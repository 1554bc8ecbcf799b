//! Get one key.

use keyward_common::{KeyId, KeyRecord};

use super::load;
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;

/// The caller's key `id`.
///
/// # Errors
/// 404 when the workspace has no such key.
pub async fn get(app: &App, caller: &Caller, id: &KeyId) -> Result<KeyRecord, ApiError> {
    Ok(load(app, caller, id).await?.record)
}
