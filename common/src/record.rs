//! The key records: the control plane's [`KeyRecord`] and the edge's [`EdgeEntry`] in Workers KV.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::json::JsonObject;
use crate::{KeyId, Timestamp};

/// Current [`EdgeEntry`] schema number; bumped when the KV layout changes incompatibly.
pub const EDGE_SCHEMA: u8 = 1;

/// Lifecycle of a key. `Revoked` is final; `Disabled` can go back to `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Verifies.
    Active,
    /// Temporarily refused; PATCH can make it active again.
    Disabled,
    /// Permanently refused.
    Revoked,
}

impl KeyStatus {
    /// The lowercase wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Revoked => "revoked",
        }
    }

    /// Parses the lowercase wire name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// A fixed-window request allowance: `limit` requests per `period_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window, at least 1.
    pub limit: u32,
    /// Window length in seconds, 1..=86400.
    pub period_s: u32,
}

impl RateLimit {
    /// Longest window allowed.
    pub const MAX_PERIOD_S: u32 = 86_400;

    /// Checks the documented bounds.
    ///
    /// # Errors
    /// A message naming the bound that is broken.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.limit == 0 {
            Err("limit must be at least 1")
        } else if self.period_s == 0 || self.period_s > Self::MAX_PERIOD_S {
            Err("period_s must be between 1 and 86400")
        } else {
            Ok(())
        }
    }
}

/// One of several named fixed-window limits (`rate_limits`), on a key or an owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NamedRateLimit {
    /// `[a-z0-9][a-z0-9._-]{0,31}`, unique among the key's (or owner's) limits. The
    /// `rate_limit` shorthand is the limit named `default`.
    pub name: String,
    /// Units allowed per window, at least 1.
    pub limit: u32,
    /// Window length in seconds, 1..=2678400 (31 days).
    pub period_s: u32,
}

impl NamedRateLimit {
    /// Longest window allowed: 31 days.
    pub const MAX_PERIOD_S: u32 = 2_678_400;
    /// Most limits on one key or owner.
    pub const MAX_PER_TARGET: usize = 5;
    /// The name the `rate_limit` shorthand stands for.
    pub const DEFAULT_NAME: &'static str = "default";

    /// The window this limit counts in, as the one-limit type.
    #[must_use]
    pub fn window(&self) -> RateLimit {
        RateLimit {
            limit: self.limit,
            period_s: self.period_s,
        }
    }

    /// Checks the documented bounds.
    ///
    /// # Errors
    /// `(field, message)`: the field of the limit object and what is accepted.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let b = self.name.as_bytes();
        let name_ok = (1..=32).contains(&b.len())
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c));
        if !name_ok {
            Err(("name", "must match [a-z0-9][a-z0-9._-]{0,31}"))
        } else if self.limit == 0 {
            Err(("limit", "must be at least 1"))
        } else if self.period_s == 0 || self.period_s > Self::MAX_PERIOD_S {
            Err(("period_s", "must be between 1 and 2678400"))
        } else {
            Ok(())
        }
    }
}

/// Whether an owner may use its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OwnerStatus {
    /// Its keys verify (subject to their own status).
    #[default]
    Active,
    /// Every key of the owner answers `DISABLED`.
    Disabled,
}

/// An owner (the customer behind keys) as the management API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnerRecord {
    /// Owning workspace.
    pub workspace: String,
    /// The id keys name in `owner_id`.
    pub owner_id: String,
    /// `active` or `disabled`.
    pub status: OwnerStatus,
    /// Free-form JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// Limits shared by all the owner's keys.
    #[serde(default)]
    pub rate_limits: Vec<NamedRateLimit>,
    /// Credits shared by all the owner's keys.
    pub credits: Option<crate::credits::Credits>,
    /// Non-revoked keys naming this owner.
    pub key_count: u64,
    /// First PUT.
    pub created_at: Timestamp,
    /// Last PUT or credit change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version (also the `ETag`).
    pub version: u64,
}

/// What the edge stores in KV under `o:{workspace}:{owner_id}` ([`owner_kv_key`]): whether the
/// owner's keys may verify, and the shared limits and credit rule they all spend from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerEntry {
    /// The owner's version when this entry was produced; the edge keeps only the newest.
    pub version: u64,
    /// `disabled` refuses every key of the owner.
    pub status: OwnerStatus,
    /// Shared limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<NamedRateLimit>,
    /// Whether the owner has credits (their balance lives in the owner's Durable Object).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credited: bool,
}

/// The KV key of an owner's entry.
#[must_use]
pub fn owner_kv_key(workspace: &str, owner_id: &str) -> String {
    format!("o:{workspace}:{owner_id}")
}

/// Whether `owner_id` has the shape keys may name: 1–128 characters, none of them a control
/// character.
#[must_use]
pub fn valid_owner_id(owner_id: &str) -> bool {
    (1..=128).contains(&owner_id.chars().count()) && !owner_id.chars().any(char::is_control)
}

/// A key as the management API shows it. Never holds the secret or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRecord {
    /// Public id, `key_…`.
    pub id: KeyId,
    /// Owning workspace.
    pub workspace: String,
    /// Human-readable name.
    pub name: String,
    /// Display prefix, e.g. `kw_AbCdEf12…`: enough to recognise the key, useless to an attacker.
    pub key_prefix: String,
    /// Granted scopes (permissions).
    pub scopes: Vec<String>,
    /// Names of the workspace roles the key holds; their permissions add to `scopes`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Effective permissions: `scopes` plus the roles' permissions. Filled in when the API
    /// answers; never stored.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The customer or user this key belongs to in the API owner's system.
    pub owner_id: Option<String>,
    /// Free-form JSON object the API owner attaches.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// Lifecycle status.
    pub status: KeyStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change to settings or status.
    pub updated_at: Timestamp,
    /// When the key stops verifying, if ever.
    pub expires_at: Option<Timestamp>,
    /// Last time the edge saw the key used (reported in batches, so up to a few seconds late).
    pub last_used_at: Option<Timestamp>,
    /// Client networks allowed to use the key; empty means any.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["10.0.0.0/8"])))]
    pub allowed_ips: Vec<IpNet>,
    /// Request allowance, if limited: the limit named `default` of `rate_limits`, kept as the
    /// one-limit shorthand.
    pub rate_limit: Option<RateLimit>,
    /// Every limit of the key (≤ 5), `default` included.
    #[serde(default)]
    pub rate_limits: Vec<NamedRateLimit>,
    /// The key's own credits, if it has any (none: unlimited).
    #[serde(default)]
    pub credits: Option<crate::credits::Credits>,
    /// Optimistic-concurrency version, incremented by every change (also the `ETag`).
    pub version: u64,
    /// Whether the key was imported (it keeps its own format until rotated).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl KeyRecord {
    /// The short prefix (`kw`) from the display prefix (`kw_AbCdEf12…`).
    #[must_use]
    pub fn prefix(&self) -> &str {
        self.key_prefix
            .split_once('_')
            .map_or(&self.key_prefix, |(p, _)| p)
    }
}

/// A workspace role: a named set of permissions that keys hold by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleRecord {
    /// Owning workspace.
    pub workspace: String,
    /// `[a-z0-9][a-z0-9._-]{0,63}`, unique in the workspace; keys refer to it.
    pub name: String,
    /// What the role is for.
    pub description: Option<String>,
    /// Permissions every holder gets.
    pub permissions: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version (also the `ETag`).
    pub version: u64,
}

/// What the edge stores in KV under `h:{sha256}`: just enough to decide, never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeEntry {
    /// Layout version, [`EDGE_SCHEMA`].
    pub schema: u8,
    /// The key's version when this entry was produced; the edge keeps only the newest.
    pub version: u64,
    /// Public key id.
    pub key_id: KeyId,
    /// Owning workspace.
    pub workspace: String,
    /// The key's owner in the API owner's system.
    pub owner_id: Option<String>,
    /// The key's short prefix (`kw`), checked against the presented key; empty for an imported
    /// key, which may have any format.
    pub prefix: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Names of the workspace roles the key holds; their permissions are separate KV entries
    /// (`r:{workspace}:{name}`, [`RoleEntry`]), so a role change is one write, not one per holder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The key's name, for the verify API's answer. Never on a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The key's `meta`, for the verify API's answer. Never on a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<JsonObject>,
    /// Lifecycle status; `revoked` makes this entry a tombstone.
    pub status: KeyStatus,
    /// Unix seconds after which the key is expired.
    pub expires_at: Option<i64>,
    /// For a secret replaced by rotation: Unix seconds when its grace period ends.
    pub retires_at: Option<i64>,
    /// Allowed client networks; empty means any.
    pub allowed_ips: Vec<IpNet>,
    /// Request allowance, if limited: the old one-limit form, applied only when `rate_limits` is
    /// empty (an entry written by an older control plane). New entries carry it as the limit
    /// named `default` inside `rate_limits` too, which is what the edge applies.
    pub rate_limit: Option<RateLimit>,
    /// Every limit of the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<NamedRateLimit>,
    /// Whether the key has its own credits (their balance lives in its Durable Object).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credited: bool,
}

impl EdgeEntry {
    /// The edge entry of a key's current secret (a revoked key's is a tombstone without its
    /// name and meta, see [`EdgeEntry::scrubbed`]).
    #[must_use]
    pub fn for_key(record: &KeyRecord) -> Self {
        Self {
            schema: EDGE_SCHEMA,
            version: record.version,
            key_id: record.id.clone(),
            workspace: record.workspace.clone(),
            owner_id: record.owner_id.clone(),
            // An imported key may have any format: nothing to compare but its hash.
            prefix: if record.imported {
                String::new()
            } else {
                record.prefix().to_owned()
            },
            scopes: record.scopes.clone(),
            roles: record.roles.clone(),
            name: Some(record.name.clone()),
            meta: record.meta.as_ref().map(JsonObject::from_map),
            status: record.status,
            expires_at: record.expires_at.map(Timestamp::unix),
            retires_at: None,
            allowed_ips: record.allowed_ips.clone(),
            rate_limit: record.rate_limit,
            rate_limits: record.rate_limits.clone(),
            credited: record.credits.is_some(),
        }
        .scrubbed()
    }

    /// The entry as it may be stored: a tombstone keeps no personal data (the key's name,
    /// meta, owner and allowed addresses), since it is kept for good. Other entries are
    /// unchanged.
    #[must_use]
    pub fn scrubbed(mut self) -> Self {
        if self.is_tombstone() {
            self.name = None;
            self.meta = None;
            self.owner_id = None;
            self.allowed_ips = Vec::new();
        }
        self
    }

    /// The entry for a secret that rotation replaced: same settings, stops at `retires_at`.
    #[must_use]
    pub fn retiring(mut self, retires_at: i64) -> Self {
        self.retires_at = Some(retires_at);
        self
    }

    /// Whether this entry is a revocation tombstone.
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        self.status == KeyStatus::Revoked
    }

    /// Whether this entry should replace `stored` in KV. A tombstone is never replaced (revoked is
    /// final); otherwise a higher version wins, and at the same version a tombstone wins.
    #[must_use]
    pub fn supersedes(&self, stored: &Self) -> bool {
        if stored.is_tombstone() {
            return false;
        }
        self.version > stored.version || (self.version == stored.version && self.is_tombstone())
    }

    /// When KV may forget this entry (Unix seconds), or `None` to keep it.
    ///
    /// Once a key's natural end has passed, the entry would only ever answer "expired", so a
    /// day later it can go; a key without an end keeps its entry (and its tombstone) for good.
    #[must_use]
    pub fn kv_expiration(&self) -> Option<i64> {
        const DAY: i64 = 86_400;
        let end = match (self.expires_at, self.retires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Times come from signed batches, but a far-future one must not overflow.
        end.map(|t| t.saturating_add(DAY))
    }
}

/// What the edge stores in KV under `r:{workspace}:{name}` for a role: its permissions, or a
/// tombstone once the role is deleted.
///
/// Entries are ordered by `(created_at, version)`: a role deleted and created again under the
/// same name is a new incarnation with a later `created_at`, so it replaces the old one's
/// tombstone, while a late write of the old incarnation never does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleEntry {
    /// The role's version when this entry was produced.
    pub version: u64,
    /// The role's creation time (Unix seconds): which incarnation of the name this is.
    #[serde(default)]
    pub created_at: i64,
    /// Permissions every holder gets (none when deleted).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Whether the role was deleted: a tombstone, granting nothing.
    #[serde(default)]
    pub deleted: bool,
}

impl RoleEntry {
    /// The entry of a role as stored now.
    #[must_use]
    pub fn for_role(role: &RoleRecord) -> Self {
        Self {
            version: role.version,
            created_at: role.created_at.unix(),
            permissions: role.permissions.clone(),
            deleted: false,
        }
    }

    /// The tombstone of a deleted role (the last version it had).
    #[must_use]
    pub fn tombstone(version: u64, created_at: i64) -> Self {
        Self {
            version,
            created_at,
            permissions: Vec::new(),
            deleted: true,
        }
    }

    /// The permissions the role grants: none once deleted.
    #[must_use]
    pub fn granted(&self) -> &[String] {
        if self.deleted { &[] } else { &self.permissions }
    }

    /// Whether this entry should replace `stored`: a later incarnation always does; within one
    /// incarnation a tombstone is never replaced, a higher version wins, and at the same version
    /// a tombstone wins.
    #[must_use]
    pub fn supersedes(&self, stored: &Self) -> bool {
        if self.created_at != stored.created_at {
            return self.created_at > stored.created_at;
        }
        if stored.deleted {
            return false;
        }
        self.version > stored.version || (self.version == stored.version && self.deleted)
    }
}

/// The KV key of a role's entry, `r:{workspace}:{name}`. Workspaces (`[A-Za-z0-9_-]`) and role
/// names (`[a-z0-9][a-z0-9._-]*`) hold no `:`, so the key names one role only.
#[must_use]
pub fn role_kv_key(workspace: &str, name: &str) -> String {
    format!("r:{workspace}:{name}")
}

/// Whether `workspace` has the shape the control plane allows: 1–64 `[A-Za-z0-9_-]`.
#[must_use]
pub fn valid_workspace(workspace: &str) -> bool {
    (1..=64).contains(&workspace.len())
        && workspace
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Whether `name` has the shape of a role name: `[a-z0-9][a-z0-9._-]{0,63}`.
#[must_use]
pub fn valid_role_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, status: KeyStatus) -> EdgeEntry {
        EdgeEntry {
            schema: EDGE_SCHEMA,
            version,
            key_id: KeyId::new(1, [0; 10]),
            workspace: "acme".into(),
            owner_id: None,
            prefix: "kw".into(),
            scopes: vec![],
            roles: vec![],
            name: None,
            meta: None,
            status,
            expires_at: None,
            retires_at: None,
            allowed_ips: vec![],
            rate_limit: None,
            rate_limits: vec![],
            credited: false,
        }
    }

    #[test]
    fn a_newer_version_replaces_an_older_one() {
        assert!(entry(3, KeyStatus::Active).supersedes(&entry(2, KeyStatus::Active)));
        assert!(!entry(2, KeyStatus::Active).supersedes(&entry(3, KeyStatus::Disabled)));
        assert!(!entry(3, KeyStatus::Active).supersedes(&entry(3, KeyStatus::Active)));
    }

    #[test]
    fn a_tombstone_is_never_replaced() {
        let tomb = entry(4, KeyStatus::Revoked);
        assert!(!entry(9, KeyStatus::Active).supersedes(&tomb));
        assert!(!entry(3, KeyStatus::Active).supersedes(&tomb));
        assert!(entry(4, KeyStatus::Revoked).supersedes(&entry(4, KeyStatus::Active)));
    }

    fn role(created_at: i64, version: u64, deleted: bool) -> RoleEntry {
        RoleEntry {
            version,
            created_at,
            permissions: if deleted {
                vec![]
            } else {
                vec!["sms.send".into()]
            },
            deleted,
        }
    }

    #[test]
    fn a_role_tombstone_is_never_replaced_by_its_own_incarnation() {
        let tomb = role(100, 3, true);
        assert!(!role(100, 9, false).supersedes(&tomb));
        assert!(!role(100, 3, false).supersedes(&tomb));
        assert!(role(100, 3, true).supersedes(&role(100, 3, false)));
        assert!(!role(100, 2, false).supersedes(&role(100, 3, false)));
        assert!(role(100, 4, false).supersedes(&role(100, 3, false)));
        assert!(tomb.granted().is_empty());
    }

    #[test]
    fn a_role_created_again_replaces_the_old_tombstone_and_not_the_other_way() {
        let tomb = role(100, 3, true);
        assert!(role(200, 1, false).supersedes(&tomb));
        assert!(!role(100, 9, false).supersedes(&role(200, 1, false)));
    }

    #[test]
    fn a_tombstone_keeps_no_name_or_meta() {
        let mut e = entry(2, KeyStatus::Revoked);
        e.name = Some("alice's key".into());
        e.meta = Some(JsonObject::from_map(&serde_json::Map::from_iter([(
            "email".into(),
            "a@x".into(),
        )])));
        let e = e.scrubbed();
        assert_eq!((e.name, e.meta), (None, None));
        let mut live = entry(2, KeyStatus::Disabled);
        live.name = Some("n".into());
        assert_eq!(live.scrubbed().name.as_deref(), Some("n"));
    }

    #[test]
    fn an_entry_written_before_roles_still_parses() {
        let old = r#"{"schema":1,"version":1,"key_id":"key_00000000000000000000000","workspace":"a","owner_id":null,"prefix":"kw","scopes":["x"],"status":"active","expires_at":null,"retires_at":null,"allowed_ips":[],"rate_limit":null}"#;
        let id = KeyId::new(1, [0; 10]).to_string();
        let old = old.replace("key_00000000000000000000000", &id);
        let e: EdgeEntry = serde_json::from_str(&old).unwrap();
        assert!(e.roles.is_empty() && e.name.is_none() && e.meta.is_none());
    }

    #[test]
    fn rate_limit_bounds_are_checked() {
        assert!(
            RateLimit {
                limit: 0,
                period_s: 60
            }
            .validate()
            .is_err()
        );
        assert!(
            RateLimit {
                limit: 1,
                period_s: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            RateLimit {
                limit: 1,
                period_s: 86_401
            }
            .validate()
            .is_err()
        );
        assert!(
            RateLimit {
                limit: 5,
                period_s: 60
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn entries_without_an_end_are_kept_forever() {
        assert_eq!(entry(1, KeyStatus::Revoked).kv_expiration(), None);
        let mut e = entry(1, KeyStatus::Active).retiring(1_000);
        e.expires_at = Some(5_000);
        assert_eq!(e.kv_expiration(), Some(1_000 + 86_400));
    }

    #[test]
    fn a_far_future_expiry_does_not_overflow_the_kv_expiration() {
        let mut e = entry(1, KeyStatus::Active);
        e.expires_at = Some(i64::MAX - 5);
        assert_eq!(e.kv_expiration(), Some(i64::MAX));
    }
}
