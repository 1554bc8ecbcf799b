//! The key records: the control plane's [`KeyRecord`] and the edge's [`EdgeEntry`] in Workers KV.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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
    /// Request allowance, if limited.
    pub rate_limit: Option<RateLimit>,
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
    /// Lifecycle status; `revoked` makes this entry a tombstone.
    pub status: KeyStatus,
    /// Unix seconds after which the key is expired.
    pub expires_at: Option<i64>,
    /// For a secret replaced by rotation: Unix seconds when its grace period ends.
    pub retires_at: Option<i64>,
    /// Allowed client networks; empty means any.
    pub allowed_ips: Vec<IpNet>,
    /// Request allowance, if limited.
    pub rate_limit: Option<RateLimit>,
}

impl EdgeEntry {
    /// The edge entry of a key's current secret.
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
            status: record.status,
            expires_at: record.expires_at.map(Timestamp::unix),
            retires_at: None,
            allowed_ips: record.allowed_ips.clone(),
            rate_limit: record.rate_limit,
        }
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
            status,
            expires_at: None,
            retires_at: None,
            allowed_ips: vec![],
            rate_limit: None,
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
