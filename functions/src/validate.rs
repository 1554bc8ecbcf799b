//! Request bodies and query parameters: their documented shapes and the checks that turn them
//! into validated values, collecting one [`FieldError`] per bad field.

use std::net::IpAddr;

use ipnet::IpNet;
use keyward_common::{FieldError, KeyStatus, RateLimit, Timestamp};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;

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
/// The permissions a root key's scopes may hold; always allowed as scopes.
pub const PERMISSION_PREFIX: &str = "api.key.";

type Json = Map<String, Value>;

/// `POST /keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateKeyRequest {
    /// 1–128 printable characters.
    name: String,
    /// Up to 50 scopes of 1–64 characters `[A-Za-z0-9._:*-]`; default: the deployment's default set.
    scopes: Option<Vec<String>>,
    /// Lifetime in seconds, 1 to 10 years (not with `expires_at`).
    expires_in: Option<u64>,
    /// Expiry, in the future (not with `expires_in`): RFC 3339 or Unix seconds.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// Up to 100 CIDRs or bare IP addresses (normalized to CIDR); empty = any.
    allowed_ips: Option<Vec<String>>,
    /// 1–128 characters: the key's owner in your system.
    owner_id: Option<String>,
    /// A JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    meta: Option<Json>,
    /// Request allowance.
    rate_limit: Option<RateLimit>,
    /// Key prefix, 2–16 characters `[a-z0-9]`; default: the deployment's.
    prefix: Option<String>,
}

/// `PATCH /keys/{id}` body: a value sets a field, `null` clears it (`expires_at`, `owner_id`,
/// `meta`, `rate_limit`; `allowed_ips` clears to `[]`), an absent field is kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UpdateKeyRequest {
    /// 1–128 printable characters.
    name: Option<String>,
    /// Replaces the scopes.
    scopes: Option<Vec<String>>,
    /// `null` clears.
    #[schema(value_type = Option<String>, nullable)]
    owner_id: Option<Option<String>>,
    /// `null` clears.
    #[schema(value_type = Option<Object>, nullable)]
    meta: Option<Option<Json>>,
    /// `null` clears (never expires).
    #[schema(value_type = Option<String>, format = DateTime, nullable)]
    expires_at: Option<Option<Timestamp>>,
    /// `null` clears to `[]` (any address).
    #[schema(value_type = Option<Vec<String>>, nullable)]
    allowed_ips: Option<Option<Vec<String>>>,
    /// `null` clears (unlimited).
    #[schema(value_type = Option<RateLimit>, nullable)]
    rate_limit: Option<Option<RateLimit>>,
    /// `active` or `disabled` (revoke with DELETE).
    #[schema(value_type = Option<String>, example = "disabled")]
    status: Option<KeyStatus>,
}

/// `POST /keys/{id}/rotate` body (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RotateKeyRequest {
    /// Seconds the old secret keeps verifying, 0 to 604800 (7 days); default 0 (stops at once).
    grace_period_s: Option<u32>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// Name.
    pub name: String,
    /// Scopes (defaults applied).
    pub scopes: Vec<String>,
    /// Absolute expiry.
    pub expires_at: Option<Timestamp>,
    /// Normalized networks.
    pub allowed_ips: Vec<IpNet>,
    /// Owner.
    pub owner_id: Option<String>,
    /// Metadata.
    pub meta: Option<Json>,
    /// Allowance.
    pub rate_limit: Option<RateLimit>,
    /// Key prefix (default applied).
    pub prefix: String,
}

/// A validated PATCH: `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    /// New name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// Owner.
    pub owner_id: Option<Option<String>>,
    /// Metadata.
    pub meta: Option<Option<Json>>,
    /// Expiry.
    pub expires_at: Option<Option<Timestamp>>,
    /// Networks (`Some(vec![])` clears).
    pub allowed_ips: Option<Vec<IpNet>>,
    /// Allowance.
    pub rate_limit: Option<Option<RateLimit>>,
    /// Active or disabled.
    pub status: Option<KeyStatus>,
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

/// Whether a scope is allowed by the deployment's allowed set.
#[must_use]
pub fn scope_allowed(s: &str, allowed: Option<&[String]>) -> bool {
    s.starts_with(PERMISSION_PREFIX) || allowed.is_none_or(|a| a.iter().any(|x| x == s))
}

/// Checks a path workspace: 1–64 characters `[A-Za-z0-9_-]`.
#[must_use]
pub fn valid_workspace(ws: &str) -> bool {
    (1..=64).contains(&ws.len())
        && ws
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn typed<T: DeserializeOwned>(&mut self, field: &str, v: Value, expected: &str) -> Option<T> {
        match serde_json::from_value(v) {
            Ok(x) => Some(x),
            Err(e) => {
                let msg = e.to_string();
                // serde's message for a nested unknown field is useful; a type mismatch is not.
                if msg.starts_with("unknown field") {
                    self.err(field, msg);
                } else {
                    self.err(field, format!("must be {expected}"));
                }
                None
            }
        }
    }

    fn text(&mut self, field: &str, v: Value, max: usize) -> Option<String> {
        let s: String = self.typed(field, v, "a string")?;
        let len = s.chars().count();
        if len == 0 || len > max {
            self.err(field, format!("must be 1-{max} characters"));
            None
        } else if s.chars().any(char::is_control) {
            self.err(field, "must not contain control characters");
            None
        } else {
            Some(s)
        }
    }

    fn scopes(&mut self, v: Value, policy: ScopePolicy<'_>) -> Option<Vec<String>> {
        let list: Vec<String> = self.typed("scopes", v, "an array of strings")?;
        if list.len() > MAX_SCOPES {
            self.err("scopes", format!("must hold at most {MAX_SCOPES} scopes"));
            return None;
        }
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            let field = format!("scopes[{i}]");
            if !valid_scope(&s) {
                self.err(&field, "must be 1-64 characters of A-Z a-z 0-9 . _ : * -");
                return None;
            }
            if !scope_allowed(&s, policy.allowed) {
                self.err(&field, "is not one of the deployment's allowed scopes");
                return None;
            }
            if !out.contains(&s) {
                out.push(s);
            }
        }
        Some(out)
    }

    fn ips(&mut self, v: Value) -> Option<Vec<IpNet>> {
        let list: Vec<String> = self.typed("allowed_ips", v, "an array of strings")?;
        if list.len() > MAX_IPS {
            self.err(
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
                    self.err(
                        &format!("allowed_ips[{i}]"),
                        "must be an IP address or CIDR (10.0.0.0/8, 2001:db8::/32)",
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn meta(&mut self, v: Value) -> Option<Json> {
        let Value::Object(map) = v else {
            self.err("meta", "must be a JSON object");
            return None;
        };
        if serde_json::to_string(&map).map_or(usize::MAX, |s| s.len()) > MAX_META_BYTES {
            self.err("meta", "must be at most 4096 bytes serialized");
            return None;
        }
        Some(map)
    }

    fn rate_limit(&mut self, v: Value) -> Option<RateLimit> {
        let rl: RateLimit = self.typed(
            "rate_limit",
            v,
            "an object {limit, period_s} of whole numbers",
        )?;
        match rl.validate() {
            Ok(()) => Some(rl),
            Err(msg) => {
                self.err("rate_limit", msg);
                None
            }
        }
    }

    fn expires_at(&mut self, v: Value, now: i64) -> Option<Timestamp> {
        let t: Timestamp = self.typed("expires_at", v, "an RFC 3339 date-time or Unix seconds")?;
        if t.unix() <= now {
            self.err("expires_at", "must be in the future");
            None
        } else {
            Some(t)
        }
    }

    fn unknown(&mut self, field: &str) {
        self.err(field, "is not a known field");
    }

    fn done<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

/// Validates a create body.
///
/// # Errors
/// Every invalid, missing or unknown field.
pub fn create(
    body: Json,
    policy: ScopePolicy<'_>,
    default_prefix: &str,
    now: i64,
) -> Result<NewKey, Vec<FieldError>> {
    let mut f = Fields { errors: Vec::new() };
    let mut key = NewKey {
        name: String::new(),
        scopes: policy.defaults.to_vec(),
        expires_at: None,
        allowed_ips: Vec::new(),
        owner_id: None,
        meta: None,
        rate_limit: None,
        prefix: default_prefix.to_owned(),
    };
    let mut name = None;
    let mut expires_in = None;
    let mut expires_at = None;
    for (k, v) in body {
        // For create, `null` means the same as leaving the field out.
        if v.is_null() && k != "name" {
            if !KNOWN_CREATE.contains(&k.as_str()) {
                f.unknown(&k);
            }
            continue;
        }
        match k.as_str() {
            "name" => name = f.text("name", v, MAX_NAME),
            "scopes" => {
                if let Some(s) = f.scopes(v, policy) {
                    key.scopes = s;
                }
            }
            "expires_in" => match f.typed::<i64>("expires_in", v, "a whole number of seconds") {
                Some(s) if (1..=MAX_EXPIRES_IN).contains(&s) => expires_in = Some(s),
                Some(_) => f.err(
                    "expires_in",
                    format!("must be between 1 and {MAX_EXPIRES_IN} seconds (10 years)"),
                ),
                None => {}
            },
            "expires_at" => expires_at = f.expires_at(v, now),
            "allowed_ips" => key.allowed_ips = f.ips(v).unwrap_or_default(),
            "owner_id" => key.owner_id = f.text("owner_id", v, MAX_NAME),
            "meta" => key.meta = f.meta(v),
            "rate_limit" => key.rate_limit = f.rate_limit(v),
            "prefix" => match f.typed::<String>("prefix", v, "a string") {
                Some(p) if keyward_common::key::validate_prefix(&p).is_ok() => key.prefix = p,
                Some(_) => f.err("prefix", "must be 2-16 characters of a-z 0-9"),
                None => {}
            },
            other => f.unknown(other),
        }
    }
    match name {
        Some(n) => key.name = n,
        None if !f.errors.iter().any(|e| e.field == "name") => f.err("name", "is required"),
        None => {}
    }
    match (expires_in, expires_at) {
        (Some(_), Some(_)) => f.err("expires_at", "give expires_in or expires_at, not both"),
        (Some(s), None) => key.expires_at = Some(Timestamp(now).plus(s)),
        (None, at) => key.expires_at = at,
    }
    f.done(key)
}

const KNOWN_CREATE: [&str; 9] = [
    "name",
    "scopes",
    "expires_in",
    "expires_at",
    "allowed_ips",
    "owner_id",
    "meta",
    "rate_limit",
    "prefix",
];

/// Validates a PATCH body.
///
/// # Errors
/// Every invalid or unknown field.
pub fn patch(body: Json, policy: ScopePolicy<'_>, now: i64) -> Result<Patch, Vec<FieldError>> {
    let mut f = Fields { errors: Vec::new() };
    let mut p = Patch::default();
    for (k, v) in body {
        let null = v.is_null();
        match k.as_str() {
            "name" | "scopes" | "status" if null => f.err(&k, "cannot be null"),
            "name" => p.name = f.text("name", v, MAX_NAME),
            "scopes" => p.scopes = f.scopes(v, policy),
            "status" => match f.typed::<String>("status", v, "a string") {
                Some(s) if s == "active" => p.status = Some(KeyStatus::Active),
                Some(s) if s == "disabled" => p.status = Some(KeyStatus::Disabled),
                Some(s) if s == "revoked" => {
                    f.err("status", "must be active or disabled; revoke with DELETE");
                }
                Some(_) => f.err("status", "must be active or disabled"),
                None => {}
            },
            "owner_id" if null => p.owner_id = Some(None),
            "owner_id" => p.owner_id = f.text("owner_id", v, MAX_NAME).map(Some),
            "meta" if null => p.meta = Some(None),
            "meta" => p.meta = f.meta(v).map(Some),
            "expires_at" if null => p.expires_at = Some(None),
            "expires_at" => p.expires_at = f.expires_at(v, now).map(Some),
            "allowed_ips" if null => p.allowed_ips = Some(Vec::new()),
            "allowed_ips" => p.allowed_ips = f.ips(v),
            "rate_limit" if null => p.rate_limit = Some(None),
            "rate_limit" => p.rate_limit = f.rate_limit(v).map(Some),
            other => f.unknown(other),
        }
    }
    f.done(p)
}

/// Validates a rotate body; returns the grace period in seconds.
///
/// # Errors
/// An invalid or unknown field.
pub fn rotate(body: Json) -> Result<i64, Vec<FieldError>> {
    let mut f = Fields { errors: Vec::new() };
    let mut grace = 0;
    for (k, v) in body {
        match k.as_str() {
            "grace_period_s" if v.is_null() => {}
            "grace_period_s" => {
                match f.typed::<i64>("grace_period_s", v, "a whole number of seconds") {
                    Some(s) if (0..=MAX_GRACE_S).contains(&s) => grace = s,
                    Some(_) => f.err(
                        "grace_period_s",
                        format!("must be between 0 and {MAX_GRACE_S} seconds (7 days)"),
                    ),
                    None => {}
                }
            }
            other => f.unknown(other),
        }
    }
    f.done(grace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn obj(v: Value) -> Json {
        v.as_object().unwrap().clone()
    }

    fn policy() -> ScopePolicy<'static> {
        ScopePolicy {
            defaults: &[],
            allowed: None,
        }
    }

    fn fields(r: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_full_create_body_is_accepted_and_normalized() {
        let k = create(
            obj(
                json!({"name": "ci", "scopes": ["read", "read", "api.key.view"],
                "expires_in": 60, "allowed_ips": ["10.1.2.3/8", "192.0.2.1", "2001:db8::1"],
                "owner_id": "u1", "meta": {"a": 1}, "rate_limit": {"limit": 5, "period_s": 60},
                "prefix": "sk"}),
            ),
            policy(),
            "kw",
            NOW,
        )
        .unwrap();
        assert_eq!(k.scopes, ["read", "api.key.view"]);
        assert_eq!(k.expires_at, Some(Timestamp(NOW + 60)));
        let ips: Vec<String> = k.allowed_ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::1/128"]);
        assert_eq!(k.prefix, "sk");
    }

    #[test]
    fn a_missing_name_and_unknown_fields_are_all_reported() {
        assert_eq!(
            fields(create(obj(json!({"nme": "x"})), policy(), "kw", NOW)),
            ["nme", "name"]
        );
    }

    #[test]
    fn create_bounds_are_enforced_field_by_field() {
        let long = "x".repeat(129);
        for (body, field) in [
            (json!({"name": ""}), "name"),
            (json!({"name": long}), "name"),
            (json!({"name": "a\u{7}b"}), "name"),
            (json!({"name": 5}), "name"),
            (json!({"name": "n", "scopes": ["bad scope"]}), "scopes[0]"),
            (json!({"name": "n", "scopes": "read"}), "scopes"),
            (json!({"name": "n", "expires_in": 0}), "expires_in"),
            (
                json!({"name": "n", "expires_in": 400_000_000}),
                "expires_in",
            ),
            (json!({"name": "n", "expires_at": NOW - 5}), "expires_at"),
            (json!({"name": "n", "expires_at": "soon"}), "expires_at"),
            (
                json!({"name": "n", "expires_in": 5, "expires_at": NOW + 50}),
                "expires_at",
            ),
            (
                json!({"name": "n", "allowed_ips": ["10.0.0.300"]}),
                "allowed_ips[0]",
            ),
            (json!({"name": "n", "owner_id": ""}), "owner_id"),
            (json!({"name": "n", "meta": [1]}), "meta"),
            (
                json!({"name": "n", "meta": {"x": "y".repeat(5000)}}),
                "meta",
            ),
            (
                json!({"name": "n", "rate_limit": {"limit": 0, "period_s": 5}}),
                "rate_limit",
            ),
            (
                json!({"name": "n", "rate_limit": {"limit": 1, "period_s": 86_401}}),
                "rate_limit",
            ),
            (
                json!({"name": "n", "rate_limit": {"limit": 1, "period_s": 1, "x": 1}}),
                "rate_limit",
            ),
            (json!({"name": "n", "prefix": "KW"}), "prefix"),
        ] {
            assert_eq!(
                fields(create(obj(body.clone()), policy(), "kw", NOW)),
                [field],
                "{body}"
            );
        }
    }

    #[test]
    fn scopes_outside_the_allowed_set_are_refused_but_permissions_are_always_allowed() {
        let allowed = vec!["read".to_owned()];
        let p = ScopePolicy {
            defaults: &[],
            allowed: Some(&allowed),
        };
        assert!(create(obj(json!({"name": "n", "scopes": ["write"]})), p, "kw", NOW).is_err());
        assert!(
            create(
                obj(json!({"name": "n", "scopes": ["read", "api.key.create"]})),
                p,
                "kw",
                NOW
            )
            .is_ok()
        );
    }

    #[test]
    fn patch_distinguishes_absent_null_and_value() {
        let p = patch(
            obj(json!({"owner_id": null, "meta": {"a": 1}, "allowed_ips": null})),
            policy(),
            NOW,
        )
        .unwrap();
        assert_eq!(p.owner_id, Some(None));
        assert!(matches!(p.meta, Some(Some(_))));
        assert_eq!(p.allowed_ips, Some(vec![]));
        assert_eq!(p.rate_limit, None);
        assert_eq!(p.name, None);
    }

    #[test]
    fn patch_refuses_revoked_status_and_null_names() {
        assert_eq!(
            fields(patch(obj(json!({"status": "revoked"})), policy(), NOW)),
            ["status"]
        );
        assert_eq!(
            fields(patch(obj(json!({"name": null})), policy(), NOW)),
            ["name"]
        );
    }

    #[test]
    fn grace_periods_beyond_seven_days_are_refused() {
        assert_eq!(rotate(obj(json!({"grace_period_s": 604_800}))), Ok(604_800));
        assert!(rotate(obj(json!({"grace_period_s": 604_801}))).is_err());
        assert!(rotate(obj(json!({"grace": 1}))).is_err());
    }

    #[test]
    fn workspaces_are_short_and_plain() {
        assert!(valid_workspace("acme_1-x"));
        assert!(!valid_workspace(""));
        assert!(!valid_workspace("a#b"));
        assert!(!valid_workspace(&"a".repeat(65)));
    }
}
