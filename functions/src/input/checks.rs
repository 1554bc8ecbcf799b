//! The field checks request bodies share: bounds, shapes and the deployment's scope policy.

use std::net::IpAddr;

use ipnet::IpNet;
use keyward_common::Timestamp;
use keyward_common::verify::is_management;
use serde_json::{Map, Value};

use super::{Errors, Field};

/// Longest `name` and `owner_id`, in characters.
pub const MAX_NAME: usize = 128;
/// Most scopes on a key.
pub const MAX_SCOPES: usize = 50;
/// Longest scope, in characters.
pub const MAX_SCOPE_LEN: usize = 64;
/// Most `allowed_ips` entries.
pub const MAX_IPS: usize = 100;
/// Largest serialized `meta`, in bytes.
pub const MAX_META_BYTES: usize = 4096;
/// Longest `expires_in`: ten years.
pub const MAX_EXPIRES_IN: i64 = 10 * 365 * 86_400;
/// Longest rotation grace period: seven days.
pub const MAX_GRACE_S: i64 = 7 * 86_400;

/// Most roles one key holds.
pub const MAX_ROLES: usize = 10;
/// Longest role description.
pub const MAX_DESCRIPTION: usize = 1024;
/// What a role name must look like, for error messages.
pub const ROLE_NAME_RULE: &str = "must be 1-64 characters: a-z or 0-9 first, then a-z 0-9 . _ -";

/// Whether `name` is a role name: `[a-z0-9][a-z0-9._-]{0,63}`.
#[must_use]
pub fn valid_role_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

/// Scope policy from configuration.
#[derive(Debug, Clone, Copy)]
pub struct ScopePolicy<'a> {
    /// Used when create names no scopes.
    pub defaults: &'a [String],
    /// The allowed set, if restricted.
    pub allowed: Option<&'a [String]>,
}

/// Whether a scope has the allowed shape.
#[must_use]
pub fn valid_scope(s: &str) -> bool {
    (1..=MAX_SCOPE_LEN).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._:*-".contains(&c))
}

/// Whether a scope is allowed by the deployment's allowed set. Management permissions (`api.*`)
/// are outside that set: who may grant them is the caller's own power (see
/// [`crate::permission::escalation`]).
#[must_use]
pub fn scope_allowed(s: &str, allowed: Option<&[String]>) -> bool {
    is_management(s) || allowed.is_none_or(|a| a.iter().any(|x| x == s))
}

/// Checks a path workspace: 1–64 characters `[A-Za-z0-9_-]`.
#[must_use]
pub fn valid_workspace(ws: &str) -> bool {
    keyward_common::record::valid_workspace(ws)
}

impl Errors {
    /// 1–`max` characters without control characters.
    pub fn text(&mut self, field: &str, v: String, max: usize) -> Option<String> {
        let len = v.chars().count();
        if len == 0 || len > max {
            self.add(field, format!("must be 1-{max} characters"));
            None
        } else if v.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
            None
        } else {
            Some(v)
        }
    }

    /// A text field that may be cleared: `Some(None)` for `null`.
    pub fn text_field(
        &mut self,
        field: &str,
        f: Field<String>,
        max: usize,
    ) -> Option<Option<String>> {
        match self.take(field, f, "a string")? {
            None => Some(None),
            Some(v) => self.text(field, v, max).map(Some),
        }
    }

    /// Scopes: shape, count, the allowed set; duplicates dropped.
    pub fn scopes(&mut self, list: Vec<String>, policy: ScopePolicy<'_>) -> Option<Vec<String>> {
        self.permissions("scopes", list, policy)
    }

    /// Permissions of a key (`scopes`) or a role (`permissions`) in field `name`: shape,
    /// count, the allowed set; duplicates dropped.
    pub fn permissions(
        &mut self,
        name: &str,
        list: Vec<String>,
        policy: ScopePolicy<'_>,
    ) -> Option<Vec<String>> {
        if list.len() > MAX_SCOPES {
            self.add(name, format!("must hold at most {MAX_SCOPES} permissions"));
            return None;
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            let field = format!("{name}[{i}]");
            if !valid_scope(&s) {
                self.add(&field, "must be 1-64 characters of A-Z a-z 0-9 . _ : * -");
                return None;
            }
            if !scope_allowed(&s, policy.allowed) {
                self.add(&field, "is not one of the deployment's allowed scopes");
                return None;
            }
            if !out.contains(&s) {
                out.push(s);
            }
        }
        Some(out)
    }

    /// Role names a key holds: at most [`MAX_ROLES`], each a valid name; duplicates dropped.
    /// Whether they exist is checked when the key is written.
    pub fn roles(&mut self, list: Vec<String>) -> Option<Vec<String>> {
        if list.len() > MAX_ROLES {
            self.add("roles", format!("must hold at most {MAX_ROLES} roles"));
            return None;
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (i, r) in list.into_iter().enumerate() {
            if !valid_role_name(&r) {
                self.add(&format!("roles[{i}]"), ROLE_NAME_RULE);
                return None;
            }
            if !out.contains(&r) {
                out.push(r);
            }
        }
        Some(out)
    }

    /// IP addresses and CIDRs, normalized to networks; duplicates dropped.
    pub fn ips(&mut self, list: Vec<String>) -> Option<Vec<IpNet>> {
        if list.len() > MAX_IPS {
            self.add(
                "allowed_ips",
                format!("must hold at most {MAX_IPS} entries"),
            );
            return None;
        }
        let mut out: Vec<IpNet> = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let net = s
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from));
            match net {
                Ok(n) => {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
                Err(_) => {
                    self.add(
                        &format!("allowed_ips[{i}]"),
                        "must be an IP address or CIDR (10.0.0.0/8, 2001:db8::/32)",
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A JSON object of at most [`MAX_META_BYTES`].
    pub fn meta(&mut self, map: Map<String, Value>) -> Option<Map<String, Value>> {
        if serde_json::to_string(&map).map_or(usize::MAX, |s| s.len()) > MAX_META_BYTES {
            self.add("meta", "must be at most 4096 bytes serialized");
            return None;
        }
        Some(map)
    }

    /// An expiry in the future.
    pub fn expires_at(&mut self, t: Timestamp, now: i64) -> Option<Timestamp> {
        if t.unix() <= now {
            self.add("expires_at", "must be in the future");
            None
        } else {
            Some(t)
        }
    }
}

/// What a type check says about a field, for people.
pub mod expected {
    /// Strings.
    pub const STRING: &str = "a string";
    /// Arrays of strings.
    pub const STRINGS: &str = "an array of strings";
    /// `meta`.
    pub const OBJECT: &str = "a JSON object";
    /// Durations.
    pub const SECONDS: &str = "a whole number of seconds";
    /// `rate_limit`.
    pub const RATE_LIMIT: &str = "an object {limit, period_s} of whole numbers";
    /// Times.
    pub const TIME: &str = "an RFC 3339 date-time or Unix seconds";
}
