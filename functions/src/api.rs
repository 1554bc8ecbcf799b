//! Response bodies of the management API (records come from `keyward_common`).

use keyward_common::record::OwnerRecord;
use keyward_common::{KeyRecord, RoleRecord, SecretKey};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::AuditEvent;

/// Create and rotate answer: the record plus the secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyWithSecret {
    /// The key's record.
    #[serde(flatten)]
    pub record: KeyRecord,
    /// The secret key. Store it now: it is never shown again.
    #[schema(value_type = String, example = "kw_AbCdEf12GhIjKl34MnOpQr56StUvWx78Yz0aBc")]
    pub key: SecretKey,
    /// Reminder that the secret is shown once.
    #[schema(example = "Store this key now: it will not be shown again.")]
    pub warning: &'static str,
}

/// One page of keys, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// The keys.
    pub data: Vec<KeyRecord>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// The events.
    pub data: Vec<AuditEvent>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of roles, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// The roles.
    pub data: Vec<RoleRecord>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of owners, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerList {
    /// The owners.
    pub data: Vec<OwnerRecord>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A credit operation's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditsLeft {
    /// Credits remaining after the operation, computed from the last balance the edge
    /// reported (requests the edge admits meanwhile are not in it yet).
    pub remaining: u64,
}
