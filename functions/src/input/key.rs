//! Key request bodies (`POST /keys`, `PATCH /keys/{id}`, `POST /keys/{id}/rotate`) and their
//! validated forms.

use ipnet::IpNet;
use keyward_common::credits::Credits;
use keyward_common::record::NamedRateLimit;
use keyward_common::{FieldError, KeyRecord, KeyStatus, RateLimit, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::checks::{MAX_EXPIRES_IN, MAX_GRACE_S, MAX_NAME, ScopePolicy, expected};
use super::credits::{CREDITS_SHAPE, LIMITS_SHAPE, named_default};
use super::{Field, from_object};

type Json = Map<String, Value>;

/// `POST /keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1–128 printable characters.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub name: Field<String>,
    /// Up to 50 scopes of 1–64 characters `[A-Za-z0-9._:*-]`; default: the deployment's default set.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Field<Vec<String>>,
    /// Lifetime in seconds, 1 to 10 years (not with `expires_at`).
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub expires_in: Field<i64>,
    /// Expiry, in the future (not with `expires_in`): RFC 3339 or Unix seconds.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Field<Timestamp>,
    /// Up to 100 CIDRs or bare IP addresses (normalized to CIDR); empty = any.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Field<Vec<String>>,
    /// 1–128 characters: the key's owner in your system.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub owner_id: Field<String>,
    /// A JSON object of at most 4 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub meta: Field<Json>,
    /// One-limit shorthand: the limit named `default` of `rate_limits` (periods up to 31 days).
    #[serde(default)]
    #[schema(value_type = Option<RateLimit>)]
    pub rate_limit: Field<RateLimit>,
    /// Up to 5 limits `{name, limit, period_s}` (period 1 to 2678400 s), names unique; all apply.
    #[serde(default)]
    #[schema(value_type = Option<Vec<NamedRateLimit>>)]
    pub rate_limits: Field<Value>,
    /// The key's own credits: `remaining` (0 to 1000000000000) and an optional refill rule.
    #[serde(default)]
    #[schema(value_type = Option<Credits>)]
    pub credits: Field<Value>,
    /// Key prefix, 2–16 characters `[a-z0-9]`; default: the deployment's.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub prefix: Field<String>,
    /// Up to 10 role names of the workspace; their permissions add to `scopes`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub roles: Field<Vec<String>>,
    /// `active` (default) or `disabled`: a key created switched off, refused until enabled.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "disabled")]
    pub status: Field<String>,
}

/// `PATCH /keys/{id}` body: a value sets a field, `null` clears it (`expires_at`, `owner_id`,
/// `meta`, `rate_limit`; `allowed_ips` clears to `[]`), an absent field is kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// 1–128 printable characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    /// Replaces the scopes.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Field<Vec<String>>,
    /// `null` clears.
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub owner_id: Field<String>,
    /// `null` clears.
    #[serde(default)]
    #[schema(value_type = Option<Object>, nullable)]
    pub meta: Field<Json>,
    /// `null` clears (never expires).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, nullable)]
    pub expires_at: Field<Timestamp>,
    /// `null` clears to `[]` (any address).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, nullable)]
    pub allowed_ips: Field<Vec<String>>,
    /// Sets the limit named `default`; `null` removes it.
    #[serde(default)]
    #[schema(value_type = Option<RateLimit>, nullable)]
    pub rate_limit: Field<RateLimit>,
    /// Replaces every limit (up to 5); `null` or `[]` removes them all.
    #[serde(default)]
    #[schema(value_type = Option<Vec<NamedRateLimit>>, nullable)]
    pub rate_limits: Field<Value>,
    /// Replaces the credits (a different `remaining` sets the balance; only a new `refill`
    /// keeps it); `null` removes them (unlimited).
    #[serde(default)]
    #[schema(value_type = Option<Credits>, nullable)]
    pub credits: Field<Value>,
    /// `active` or `disabled` (revoke with DELETE).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "disabled")]
    pub status: Field<String>,
    /// Replaces the roles; `null` or `[]` clears.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, nullable)]
    pub roles: Field<Vec<String>>,
}

/// `POST /keys/{id}/rotate` body (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Seconds the old secret keeps verifying, 0 to 604800 (7 days); default 0 (stops at once).
    #[serde(default)]
    #[schema(value_type = Option<u32>)]
    pub grace_period_s: Field<i64>,
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
    /// The limit named `default`, if any.
    pub rate_limit: Option<RateLimit>,
    /// Every limit.
    pub rate_limits: Vec<NamedRateLimit>,
    /// Its own credits.
    pub credits: Option<Credits>,
    /// Key prefix (default applied).
    pub prefix: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// `Active`, or `Disabled` for a key created switched off.
    pub status: KeyStatus,
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
    /// The limit named `default` (set or removed), applied after `rate_limits`.
    pub rate_limit: Option<Option<RateLimit>>,
    /// Every limit.
    pub rate_limits: Option<Vec<NamedRateLimit>>,
    /// Credits.
    pub credits: Option<Option<Credits>>,
    /// Active or disabled.
    pub status: Option<KeyStatus>,
    /// Roles (`Some(vec![])` clears).
    pub roles: Option<Vec<String>>,
}

impl Patch {
    /// Writes the patch over `record`; returns the names of the fields whose value changed.
    pub fn apply(self, record: &mut KeyRecord) -> Vec<String> {
        fn set<T: PartialEq>(
            name: &str,
            slot: &mut T,
            value: Option<T>,
            changed: &mut Vec<String>,
        ) {
            if let Some(v) = value
                && *slot != v
            {
                *slot = v;
                changed.push(name.to_owned());
            }
        }
        let mut changed = Vec::new();
        set("name", &mut record.name, self.name, &mut changed);
        set("scopes", &mut record.scopes, self.scopes, &mut changed);
        set("roles", &mut record.roles, self.roles, &mut changed);
        set(
            "owner_id",
            &mut record.owner_id,
            self.owner_id,
            &mut changed,
        );
        set("meta", &mut record.meta, self.meta, &mut changed);
        set(
            "expires_at",
            &mut record.expires_at,
            self.expires_at,
            &mut changed,
        );
        set(
            "allowed_ips",
            &mut record.allowed_ips,
            self.allowed_ips,
            &mut changed,
        );
        let mut limits = self
            .rate_limits
            .unwrap_or_else(|| record.rate_limits.clone());
        if let Some(rl) = self.rate_limit {
            let at = limits
                .iter()
                .position(|l| l.name == NamedRateLimit::DEFAULT_NAME);
            match (rl, at) {
                (Some(rl), Some(i)) => limits[i] = named_default(rl),
                (Some(rl), None) => limits.insert(0, named_default(rl)),
                (None, Some(i)) => {
                    limits.remove(i);
                }
                (None, None) => {}
            }
        }
        let shorthand = crate::store::item::default_limit(&limits);
        set(
            "rate_limit",
            &mut record.rate_limit,
            Some(shorthand),
            &mut changed,
        );
        set(
            "rate_limits",
            &mut record.rate_limits,
            Some(limits),
            &mut changed,
        );
        set("credits", &mut record.credits, self.credits, &mut changed);
        set("status", &mut record.status, self.status, &mut changed);
        changed
    }
}

/// A create field's value: `null` and absent are the same.
fn flat<T>(v: Option<Option<T>>) -> Option<T> {
    v.flatten()
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
    let (req, mut f) = from_object::<CreateKeyRequest>(body)?;
    // For create, `null` means the same as leaving the field out (except for `name`).
    let name = match req.name {
        Field::Null => {
            f.add("name", "must be a string");
            None
        }
        other => {
            flat(f.take("name", other, expected::STRING)).and_then(|n| f.text("name", n, MAX_NAME))
        }
    };
    let scopes = flat(f.take("scopes", req.scopes, expected::STRINGS))
        .and_then(|s| f.scopes(s, policy))
        .unwrap_or_else(|| policy.defaults.to_vec());
    let expires_in = match flat(f.take("expires_in", req.expires_in, expected::SECONDS)) {
        Some(s) if (1..=MAX_EXPIRES_IN).contains(&s) => Some(s),
        Some(_) => {
            f.add(
                "expires_in",
                format!("must be between 1 and {MAX_EXPIRES_IN} seconds (10 years)"),
            );
            None
        }
        None => None,
    };
    let expires_at = flat(f.take("expires_at", req.expires_at, expected::TIME))
        .and_then(|t| f.expires_at(t, now));
    let allowed_ips = flat(f.take("allowed_ips", req.allowed_ips, expected::STRINGS))
        .and_then(|l| f.ips(l))
        .unwrap_or_default();
    let owner_id = flat(f.take("owner_id", req.owner_id, expected::STRING))
        .and_then(|o| f.text("owner_id", o, MAX_NAME));
    let meta = flat(f.take("meta", req.meta, expected::OBJECT)).and_then(|m| f.meta(m));
    let rate_limit = flat(f.take("rate_limit", req.rate_limit, expected::RATE_LIMIT))
        .and_then(|r| f.rate_limit(r));
    let rate_limits = flat(f.take("rate_limits", req.rate_limits, LIMITS_SHAPE))
        .and_then(|v| f.rate_limits("rate_limits", v));
    let rate_limits = if f.has("rate_limit") || f.has("rate_limits") {
        Vec::new()
    } else {
        f.merge_limits(rate_limit, rate_limits).unwrap_or_default()
    };
    let credits =
        flat(f.take("credits", req.credits, CREDITS_SHAPE)).and_then(|v| f.credits("credits", v));
    let prefix = match flat(f.take("prefix", req.prefix, expected::STRING)) {
        Some(p) if keyward_common::key::validate_prefix(&p).is_ok() => p,
        Some(_) => {
            f.add("prefix", "must be 2-16 characters of a-z 0-9");
            default_prefix.to_owned()
        }
        None => default_prefix.to_owned(),
    };
    let roles = flat(f.take("roles", req.roles, expected::STRINGS))
        .and_then(|r| f.roles(r))
        .unwrap_or_default();
    let status = match flat(f.take("status", req.status, expected::STRING)).as_deref() {
        None | Some("active") => KeyStatus::Active,
        Some("disabled") => KeyStatus::Disabled,
        Some(_) => {
            f.add("status", "must be active or disabled");
            KeyStatus::Active
        }
    };
    if name.is_none() && !f.has("name") {
        f.add("name", "is required");
    }
    let expires_at = match (expires_in, expires_at) {
        (Some(_), Some(_)) => {
            f.add("expires_at", "give expires_in or expires_at, not both");
            None
        }
        (Some(s), None) => Some(Timestamp(now).plus(s)),
        (None, at) => at,
    };
    f.done(NewKey {
        name: name.unwrap_or_default(),
        scopes,
        expires_at,
        allowed_ips,
        owner_id,
        meta,
        rate_limit: crate::store::item::default_limit(&rate_limits),
        rate_limits,
        credits,
        prefix,
        roles,
        status,
    })
}

/// Validates a PATCH body.
///
/// # Errors
/// Every invalid or unknown field.
pub fn patch(body: Json, policy: ScopePolicy<'_>, now: i64) -> Result<Patch, Vec<FieldError>> {
    let (req, mut f) = from_object::<UpdateKeyRequest>(body)?;
    let mut p = Patch::default();
    for (field, null) in [
        ("name", req.name == Field::Null),
        ("scopes", req.scopes == Field::Null),
        ("status", req.status == Field::Null),
    ] {
        if null {
            f.add(field, "cannot be null");
        }
    }
    if let Some(Some(n)) = f.take("name", req.name, expected::STRING) {
        p.name = f.text("name", n, MAX_NAME);
    }
    if let Some(Some(s)) = f.take("scopes", req.scopes, expected::STRINGS) {
        p.scopes = f.scopes(s, policy);
    }
    match f.take("status", req.status, expected::STRING) {
        Some(Some(s)) if s == "active" => p.status = Some(KeyStatus::Active),
        Some(Some(s)) if s == "disabled" => p.status = Some(KeyStatus::Disabled),
        Some(Some(s)) if s == "revoked" => {
            f.add("status", "must be active or disabled; revoke with DELETE");
        }
        Some(Some(_)) => f.add("status", "must be active or disabled"),
        _ => {}
    }
    p.owner_id = f.text_field("owner_id", req.owner_id, MAX_NAME);
    p.meta = match f.take("meta", req.meta, expected::OBJECT) {
        Some(Some(m)) => f.meta(m).map(Some),
        other => other,
    };
    p.expires_at = match f.take("expires_at", req.expires_at, expected::TIME) {
        Some(Some(t)) => f.expires_at(t, now).map(Some),
        other => other,
    };
    p.allowed_ips = match f.take("allowed_ips", req.allowed_ips, expected::STRINGS) {
        Some(Some(l)) => f.ips(l),
        Some(None) => Some(Vec::new()),
        None => None,
    };
    p.roles = match f.take("roles", req.roles, expected::STRINGS) {
        Some(Some(r)) => f.roles(r),
        Some(None) => Some(Vec::new()),
        None => None,
    };
    let rate_limit = match f.take("rate_limit", req.rate_limit, expected::RATE_LIMIT) {
        Some(Some(r)) => f.rate_limit(r).map(Some),
        other => other,
    };
    let rate_limits = match f.take("rate_limits", req.rate_limits, LIMITS_SHAPE) {
        Some(Some(v)) => f.rate_limits("rate_limits", v).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    match (rate_limits, rate_limit) {
        (None, rl) => p.rate_limit = rl,
        (Some(list), None) => p.rate_limits = Some(list.unwrap_or_default()),
        (Some(list), Some(Some(rl))) => {
            p.rate_limits = f.merge_limits(Some(rl), list);
        }
        (Some(list), Some(None)) => {
            let mut list = list.unwrap_or_default();
            list.retain(|l| l.name != NamedRateLimit::DEFAULT_NAME);
            p.rate_limits = Some(list);
        }
    }
    p.credits = match f.take("credits", req.credits, CREDITS_SHAPE) {
        Some(Some(v)) => f.credits("credits", v).map(Some),
        other => other.map(|_| None),
    };
    f.done(p)
}

/// Validates a rotate body; returns the grace period in seconds.
///
/// # Errors
/// An invalid or unknown field.
pub fn rotate(body: Json) -> Result<i64, Vec<FieldError>> {
    let (req, mut f) = from_object::<RotateKeyRequest>(body)?;
    let grace = match f.take("grace_period_s", req.grace_period_s, expected::SECONDS) {
        Some(Some(s)) if (0..=MAX_GRACE_S).contains(&s) => s,
        Some(Some(_)) => {
            f.add(
                "grace_period_s",
                format!("must be between 0 and {MAX_GRACE_S} seconds (7 days)"),
            );
            0
        }
        _ => 0,
    };
    f.done(grace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::valid_workspace;
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
                json!({"name": "n", "rate_limit": {"limit": 1, "period_s": 2_678_401}}),
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
