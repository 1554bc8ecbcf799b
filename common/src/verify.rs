//! The verification decision: the same code decides at the edge and in the control plane.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::allowance::{CreditState, LimitState};
use crate::json::JsonObject;
use crate::query::Query;
use crate::{EdgeEntry, KeyStatus, PresentedKey, RateLimit, Timestamp};

/// What a verification concluded. The wire names are DESIGN's verify API codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerdictCode {
    /// The key may be used for this request.
    Valid,
    /// Missing, over-long, badly shaped, or a wrong checksum: no lookup was made.
    Malformed,
    /// Well formed but unknown.
    NotFound,
    /// Permanently revoked.
    Revoked,
    /// Temporarily disabled.
    Disabled,
    /// Past its expiry, or a rotated-away secret past its grace period.
    Expired,
    /// The key lacks the scope the route requires.
    ForbiddenScope,
    /// The client IP is outside the key's allowed networks.
    ForbiddenIp,
    /// Over the key's rate limit.
    RateLimited,
    /// Too few credits left (the key's or its owner's) for the request's cost.
    UsageExceeded,
}

impl VerdictCode {
    /// The wire name, e.g. `NOT_FOUND`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Malformed => "MALFORMED",
            Self::NotFound => "NOT_FOUND",
            Self::Revoked => "REVOKED",
            Self::Disabled => "DISABLED",
            Self::Expired => "EXPIRED",
            Self::ForbiddenScope => "FORBIDDEN_SCOPE",
            Self::ForbiddenIp => "FORBIDDEN_IP",
            Self::RateLimited => "RATE_LIMITED",
            Self::UsageExceeded => "USAGE_EXCEEDED",
        }
    }

    /// The HTTP status the proxy answers with: 200, 401 for credentials that do not work
    /// (including disabled), 403 for a working key refused for this request, 429 when limited.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            Self::Valid => 200,
            Self::Malformed | Self::NotFound | Self::Revoked | Self::Disabled | Self::Expired => {
                401
            }
            Self::ForbiddenScope | Self::ForbiddenIp => 403,
            Self::RateLimited | Self::UsageExceeded => 429,
        }
    }

    /// A sentence for a problem+json `detail`; never mentions the key itself.
    #[must_use]
    pub fn detail(self) -> &'static str {
        match self {
            Self::Valid => "The key is valid.",
            Self::Malformed => "No API key was presented, or it is not a well-formed key.",
            Self::NotFound => "The API key is not known.",
            Self::Revoked => "The API key has been revoked.",
            Self::Disabled => "The API key is disabled.",
            Self::Expired => "The API key has expired.",
            Self::ForbiddenScope => "The API key lacks the scope this request requires.",
            Self::ForbiddenIp => "The API key may not be used from this IP address.",
            Self::RateLimited => "The API key is over its rate limit; retry after the reset time.",
            Self::UsageExceeded => "The API key has too few credits left for this request.",
        }
    }
}

/// What the request brings besides the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's address (`CF-Connecting-IP` at the edge), if known.
    pub client_ip: Option<IpAddr>,
    /// The scope the route requires, if any.
    pub required_scope: Option<String>,
    /// The permission query the request must satisfy, if any (with a scope, both must hold).
    pub required_permission: Option<Query>,
    /// The workspaces whose keys may be used; empty means any. A key of another workspace is
    /// answered exactly like an unknown key (`NOT_FOUND`, naming nothing).
    pub workspaces: Vec<String>,
}

/// The state of a key's rate-limit window after counting this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitState {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Unix seconds when the window resets.
    pub reset: i64,
}

impl RateLimitState {
    /// Seconds until the window resets, at least 1 (the `Retry-After` value).
    #[must_use]
    pub fn retry_after(&self, now: i64) -> i64 {
        (self.reset - now).max(1)
    }
}

/// The outcome of verifying one key for one request, as the verify API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub valid: bool,
    /// Why.
    pub code: VerdictCode,
    /// The key's id, when the key was found (also when it is refused).
    pub key_id: Option<String>,
    /// The key's workspace, when found.
    pub workspace: Option<String>,
    /// The key's owner, when found.
    pub owner_id: Option<String>,
    /// The key's name, when found (a revoked key's entry no longer has it).
    #[serde(default)]
    pub name: Option<String>,
    /// The key's `meta`, when found and set.
    #[serde(default)]
    pub meta: Option<JsonObject>,
    /// The key's scopes, when found (empty otherwise).
    pub scopes: Vec<String>,
    /// The roles the key holds, when found.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Effective permissions: the scopes plus the permissions of every role found.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The key's expiry, when it has one.
    pub expires_at: Option<Timestamp>,
    /// The tightest rate-limit window after this request (the one with the fewest units
    /// left), when the key or its owner is limited: what `X-RateLimit-*` report.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ratelimit: Option<RateLimitState>,
    /// Every limit of the key and of its owner after this request (`scope`: `key`|`owner`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ratelimits: Vec<LimitState>,
    /// The credits left for this key — the fewer of the key's and its owner's (`scope` says
    /// whose) — when either has credits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub credits: Option<CreditState>,
}

impl Verdict {
    /// A verdict that names no key (malformed or unknown).
    #[must_use]
    pub fn anonymous(code: VerdictCode) -> Self {
        Self {
            valid: false,
            code,
            key_id: None,
            workspace: None,
            owner_id: None,
            name: None,
            meta: None,
            scopes: Vec::new(),
            roles: Vec::new(),
            permissions: Vec::new(),
            expires_at: None,
            ratelimit: None,
            ratelimits: Vec::new(),
            credits: None,
        }
    }

    fn about(entry: &EdgeEntry, permissions: Vec<String>, code: VerdictCode) -> Self {
        Self {
            valid: code == VerdictCode::Valid,
            code,
            key_id: Some(entry.key_id.as_str().to_owned()),
            workspace: Some(entry.workspace.clone()),
            owner_id: entry.owner_id.clone(),
            name: entry.name.clone(),
            meta: entry.meta.clone(),
            scopes: entry.scopes.clone(),
            roles: entry.roles.clone(),
            permissions,
            expires_at: entry.expires_at.map(Timestamp),
            ratelimit: None,
            ratelimits: Vec::new(),
            credits: None,
        }
    }

    /// The HTTP status for the proxy.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// Applies the rate-limit count, the last check: a valid verdict becomes `RATE_LIMITED` when
    /// the window was already used up. The state is reported either way.
    #[must_use]
    pub fn with_rate_limit(mut self, state: RateLimitState, allowed: bool) -> Self {
        if self.valid && !allowed {
            self.valid = false;
            self.code = VerdictCode::RateLimited;
        }
        self.ratelimit = Some(state);
        self
    }
}

impl Verdict {
    /// Applies the allowance, the last check: a valid verdict becomes `refusal` (when there is
    /// one), and the limits' and credits' states are reported either way; `ratelimit` becomes
    /// the tightest limit.
    #[must_use]
    pub fn with_allowance(
        mut self,
        refusal: Option<VerdictCode>,
        limits: Vec<LimitState>,
        credits: Option<CreditState>,
    ) -> Self {
        if let Some(code) = refusal.filter(|_| self.valid) {
            self.valid = false;
            self.code = code;
        }
        self.ratelimit = limits
            .iter()
            .min_by_key(|l| (l.remaining, l.reset))
            .map(|l| RateLimitState {
                limit: l.limit,
                remaining: l.remaining,
                reset: l.reset,
            });
        self.ratelimits = limits;
        self.credits = credits;
        self
    }

    /// Seconds to the `Retry-After` of a 429: to the tightest window's end when limited, to
    /// the next refill when out of credits (`None` when no refill is due).
    #[must_use]
    pub fn retry_after(&self, now: i64) -> Option<i64> {
        match self.code {
            VerdictCode::RateLimited => self
                .ratelimits
                .iter()
                .filter(|l| l.remaining == 0)
                .map(|l| l.reset)
                .max()
                .or(self.ratelimit.map(|r| r.reset))
                .map(|reset| (reset - now).max(1)),
            VerdictCode::UsageExceeded => self
                .credits
                .and_then(|c| c.refill_at)
                .map(|t| (t - now).max(1)),
            _ => None,
        }
    }
}

/// Prefix of the management permissions (power over Keyward itself, `api.key.create`, ...).
pub const MANAGEMENT_PREFIX: &str = "api.";

/// Whether `name` is a management permission (or a pattern of them, `api.*`).
#[must_use]
pub fn is_management(name: &str) -> bool {
    name.starts_with(MANAGEMENT_PREFIX)
}

/// Whether `granted` covers `required`: equal, a `prefix.*` wildcard, or `*`. A bare `*` covers
/// every product permission and no management one: those are granted by name or by an `api.`
/// wildcard only, so a key holding `*` is never an admin.
///
/// `required` may itself be a pattern (`api.key.*`): then `granted` covers it when it covers
/// every name the pattern does.
#[must_use]
pub fn scope_covers(granted: &str, required: &str) -> bool {
    granted == required
        || (granted == "*" && !is_management(required))
        || granted.strip_suffix(".*").is_some_and(|p| {
            required
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// A key's effective permissions: its `scopes`, then each role's permissions, without
/// duplicates, in that order. A role that is missing or deleted contributes nothing.
#[must_use]
pub fn effective_permissions<'a>(
    scopes: &'a [String],
    roles: impl IntoIterator<Item = &'a [String]>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for p in scopes.iter().chain(roles.into_iter().flatten()) {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// Decides whether `presented`, whose KV lookup gave `entry`, may be used for a request with
/// context `ctx` at Unix time `now`, with the key's scopes as its only permissions (see
/// [`verify_with_permissions`] for a key whose roles were looked up).
#[must_use]
pub fn verify(
    presented: &PresentedKey,
    entry: Option<&EdgeEntry>,
    ctx: &RequestContext,
    now: i64,
) -> Verdict {
    let scopes = entry.map(|e| e.scopes.clone()).unwrap_or_default();
    verify_with_permissions(presented, entry, scopes, ctx, now)
}

/// Decides whether `presented`, whose KV lookup gave `entry` and whose effective permissions
/// (scopes plus its roles', [`effective_permissions`]) are `permissions`, may be used for a
/// request with context `ctx` at Unix time `now`.
///
/// Precedence: unknown (or another workspace than `ctx.workspaces` allows) → status (revoked,
/// disabled) → expiry → allowed IP → scope and permission query. The rate limit comes last and
/// is applied by the caller with [`Verdict::with_rate_limit`], only to verdicts that are still
/// valid, so refused requests never use up the allowance.
#[must_use]
pub fn verify_with_permissions(
    presented: &PresentedKey,
    entry: Option<&EdgeEntry>,
    permissions: Vec<String>,
    ctx: &RequestContext,
    now: i64,
) -> Verdict {
    // A prefix mismatch means the entry is not this key's (a mis-filed entry): treat as unknown.
    // An imported key's entry has no prefix: it may have any format, and a key in another format
    // than Keyward's matches only such an entry. A key of a workspace the caller did not allow is
    // unknown too: nothing about it is told.
    let Some(entry) = entry.filter(|e| {
        let shape_matches = if presented.is_foreign() {
            e.prefix.is_empty()
        } else {
            e.prefix.is_empty() || e.prefix == presented.prefix()
        };
        shape_matches && (ctx.workspaces.is_empty() || ctx.workspaces.contains(&e.workspace))
    }) else {
        return Verdict::anonymous(VerdictCode::NotFound);
    };
    let code = decide(entry, &permissions, ctx, now);
    Verdict::about(entry, permissions, code)
}

fn decide(
    entry: &EdgeEntry,
    permissions: &[String],
    ctx: &RequestContext,
    now: i64,
) -> VerdictCode {
    match entry.status {
        KeyStatus::Revoked => return VerdictCode::Revoked,
        KeyStatus::Disabled => return VerdictCode::Disabled,
        KeyStatus::Active => {}
    }
    let ended = |t: Option<i64>| t.is_some_and(|t| t <= now);
    if ended(entry.expires_at) || ended(entry.retires_at) {
        return VerdictCode::Expired;
    }
    if !entry.allowed_ips.is_empty()
        && !ctx
            .client_ip
            .is_some_and(|ip| entry.allowed_ips.iter().any(|net| net.contains(&ip)))
    {
        return VerdictCode::ForbiddenIp;
    }
    if let Some(required) = &ctx.required_scope
        && !permissions.iter().any(|g| scope_covers(g, required))
    {
        return VerdictCode::ForbiddenScope;
    }
    if ctx
        .required_permission
        .as_ref()
        .is_some_and(|q| !q.allows(permissions))
    {
        return VerdictCode::ForbiddenScope;
    }
    VerdictCode::Valid
}

/// The start and end of the fixed window containing `now` for `limit` (Unix seconds).
#[must_use]
pub fn rate_window(limit: &RateLimit, now: i64) -> (i64, i64) {
    let period = i64::from(limit.period_s.max(1));
    let start = now - now.rem_euclid(period);
    (start, start + period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyId, SecretKey, record::EDGE_SCHEMA};

    const NOW: i64 = 1_800_000_000;

    fn key() -> PresentedKey {
        let mut n = 0u8;
        SecretKey::generate("kw", |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_add(7);
                *x = n;
            }
        })
        .unwrap()
        .presented()
    }

    fn active() -> EdgeEntry {
        EdgeEntry {
            schema: EDGE_SCHEMA,
            version: 1,
            key_id: KeyId::new(1, [1; 10]),
            workspace: "acme".into(),
            owner_id: Some("user_1".into()),
            prefix: "kw".into(),
            scopes: vec!["read".into(), "billing.*".into()],
            roles: vec!["sender".into()],
            name: Some("main key".into()),
            meta: None,
            status: KeyStatus::Active,
            expires_at: None,
            retires_at: None,
            allowed_ips: vec!["10.0.0.0/8".parse().unwrap()],
            rate_limit: Some(RateLimit {
                limit: 5,
                period_s: 60,
            }),
            rate_limits: vec![],
            credited: false,
        }
    }

    fn ctx(ip: &str, scope: Option<&str>) -> RequestContext {
        RequestContext {
            client_ip: Some(ip.parse().unwrap()),
            required_scope: scope.map(Into::into),
            ..RequestContext::default()
        }
    }

    fn code(entry: &EdgeEntry, c: &RequestContext) -> VerdictCode {
        verify(&key(), Some(entry), c, NOW).code
    }

    #[test]
    fn an_active_key_from_an_allowed_ip_with_the_scope_is_valid() {
        let v = verify(&key(), Some(&active()), &ctx("10.1.2.3", Some("read")), NOW);
        assert!(v.valid);
        assert_eq!(v.code, VerdictCode::Valid);
        assert_eq!(v.owner_id.as_deref(), Some("user_1"));
    }

    #[test]
    fn an_unknown_key_is_not_found_and_names_no_key() {
        let v = verify(&key(), None, &RequestContext::default(), NOW);
        assert_eq!(v.code, VerdictCode::NotFound);
        assert_eq!(v.key_id, None);
        assert_eq!(v.http_status(), 401);
    }

    #[test]
    fn an_entry_with_another_prefix_is_not_this_key() {
        let mut e = active();
        e.prefix = "sk".into();
        assert_eq!(code(&e, &ctx("10.0.0.1", None)), VerdictCode::NotFound);
    }

    #[test]
    fn a_foreign_key_verifies_only_against_an_imported_entry() {
        let foreign = PresentedKey::parse_any("sk_live_0123456789abcdefghijklmnop").unwrap();
        let mut e = active();
        e.allowed_ips.clear();
        let c = RequestContext::default();
        assert_eq!(
            verify(&foreign, Some(&e), &c, NOW).code,
            VerdictCode::NotFound
        );
        e.prefix = String::new();
        let v = verify(&foreign, Some(&e), &c, NOW);
        assert!(v.valid);
        assert_eq!(v.key_id, Some(e.key_id.as_str().to_owned()));
    }

    #[test]
    fn a_keyward_key_imported_as_is_verifies_against_its_entry_without_prefix() {
        let mut e = active();
        e.prefix = String::new();
        assert_eq!(code(&e, &ctx("10.0.0.1", None)), VerdictCode::Valid);
    }

    #[test]
    fn status_comes_before_expiry_ip_and_scope() {
        let mut e = active();
        e.expires_at = Some(NOW - 1);
        e.status = KeyStatus::Revoked;
        assert_eq!(
            code(&e, &ctx("192.0.2.1", Some("admin"))),
            VerdictCode::Revoked
        );
        e.status = KeyStatus::Disabled;
        assert_eq!(
            code(&e, &ctx("192.0.2.1", Some("admin"))),
            VerdictCode::Disabled
        );
    }

    #[test]
    fn expiry_comes_before_ip_and_scope() {
        let mut e = active();
        e.expires_at = Some(NOW);
        assert_eq!(
            code(&e, &ctx("192.0.2.1", Some("admin"))),
            VerdictCode::Expired
        );
        e.expires_at = Some(NOW + 1);
        assert_ne!(
            code(&e, &ctx("10.0.0.1", Some("read"))),
            VerdictCode::Expired
        );
    }

    #[test]
    fn a_rotated_secret_expires_when_its_grace_ends() {
        let e = active().retiring(NOW);
        assert_eq!(
            code(&e, &ctx("10.0.0.1", Some("read"))),
            VerdictCode::Expired
        );
        let e = active().retiring(NOW + 60);
        assert_eq!(code(&e, &ctx("10.0.0.1", Some("read"))), VerdictCode::Valid);
    }

    #[test]
    fn ip_comes_before_scope() {
        assert_eq!(
            code(&active(), &ctx("192.0.2.1", Some("admin"))),
            VerdictCode::ForbiddenIp
        );
        let no_ip = RequestContext {
            client_ip: None,
            required_scope: None,
            ..RequestContext::default()
        };
        assert_eq!(code(&active(), &no_ip), VerdictCode::ForbiddenIp);
    }

    #[test]
    fn a_missing_scope_is_forbidden() {
        assert_eq!(
            code(&active(), &ctx("10.0.0.1", Some("admin"))),
            VerdictCode::ForbiddenScope
        );
        assert_eq!(
            code(&active(), &ctx("10.0.0.1", Some("billing.read"))),
            VerdictCode::Valid
        );
        assert_eq!(
            code(&active(), &ctx("10.0.0.1", Some("billingx"))),
            VerdictCode::ForbiddenScope
        );
    }

    #[test]
    fn scope_comes_before_rate_limit() {
        let v = verify(
            &key(),
            Some(&active()),
            &ctx("10.0.0.1", Some("admin")),
            NOW,
        );
        let state = RateLimitState {
            limit: 5,
            remaining: 0,
            reset: NOW + 10,
        };
        let v = v.with_rate_limit(state, false);
        assert_eq!(v.code, VerdictCode::ForbiddenScope);
        assert_eq!(v.ratelimit, Some(state));
    }

    #[test]
    fn an_exhausted_window_makes_a_valid_key_rate_limited() {
        let v = verify(&key(), Some(&active()), &ctx("10.0.0.1", Some("read")), NOW);
        let v = v.with_rate_limit(
            RateLimitState {
                limit: 5,
                remaining: 0,
                reset: NOW + 10,
            },
            false,
        );
        assert_eq!(v.code, VerdictCode::RateLimited);
        assert!(!v.valid);
        assert_eq!(v.http_status(), 429);
        assert_eq!(v.key_id.as_deref(), Some(active().key_id.as_str()));
    }

    #[test]
    fn every_code_maps_to_its_status() {
        use VerdictCode::*;
        for (c, s) in [
            (Valid, 200),
            (Malformed, 401),
            (NotFound, 401),
            (Revoked, 401),
            (Disabled, 401),
            (Expired, 401),
            (ForbiddenScope, 403),
            (ForbiddenIp, 403),
            (RateLimited, 429),
        ] {
            assert_eq!(c.http_status(), s);
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn verdicts_serialise_in_the_verify_api_shape() {
        let v = verify(&key(), Some(&active()), &ctx("10.0.0.1", Some("read")), NOW);
        let json = serde_json::to_value(&v).unwrap();
        for field in [
            "valid",
            "code",
            "key_id",
            "workspace",
            "owner_id",
            "name",
            "meta",
            "scopes",
            "roles",
            "permissions",
            "expires_at",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert!(json.get("ratelimit").is_none());
    }

    fn query_ctx(query: &str) -> RequestContext {
        RequestContext {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            required_permission: Some(Query::parse(query).unwrap()),
            ..RequestContext::default()
        }
    }

    #[test]
    fn role_permissions_count_towards_a_permission_query() {
        let e = active();
        let sender = vec!["sms.send".to_owned()];
        let perms = effective_permissions(&e.scopes, [sender.as_slice()]);
        assert_eq!(perms, ["read", "billing.*", "sms.send"]);
        let v = |q: &str, p: &[String]| {
            verify_with_permissions(&key(), Some(&e), p.to_vec(), &query_ctx(q), NOW).code
        };
        assert_eq!(v("sms.send", &perms), VerdictCode::Valid);
        assert_eq!(v("sms.send AND billing.read", &perms), VerdictCode::Valid);
        assert_eq!(v("sms.send AND admin", &perms), VerdictCode::ForbiddenScope);
        assert_eq!(v("admin OR read", &perms), VerdictCode::Valid);
        assert_eq!(v("sms.send", &e.scopes), VerdictCode::ForbiddenScope);
        let verdict =
            verify_with_permissions(&key(), Some(&e), perms.clone(), &query_ctx("read"), NOW);
        assert_eq!(verdict.permissions, perms);
        assert_eq!(verdict.roles, ["sender"]);
        assert_eq!(verdict.name.as_deref(), Some("main key"));
    }

    #[test]
    fn a_key_of_another_workspace_is_not_found_and_names_nothing() {
        let mut c = ctx("10.0.0.1", None);
        c.workspaces = vec!["other".into()];
        let v = verify(&key(), Some(&active()), &c, NOW);
        assert_eq!(v, Verdict::anonymous(VerdictCode::NotFound));
        c.workspaces.push("acme".into());
        assert_eq!(
            verify(&key(), Some(&active()), &c, NOW).code,
            VerdictCode::Valid
        );
    }

    #[test]
    fn a_scope_and_a_query_must_both_hold() {
        let mut c = query_ctx("read");
        c.required_scope = Some("admin".into());
        assert_eq!(code(&active(), &c), VerdictCode::ForbiddenScope);
        c.required_scope = Some("billing.read".into());
        assert_eq!(code(&active(), &c), VerdictCode::Valid);
    }

    #[test]
    fn windows_are_aligned_to_the_period() {
        let rl = RateLimit {
            limit: 5,
            period_s: 60,
        };
        assert_eq!(rate_window(&rl, 125), (120, 180));
    }

    #[test]
    fn a_bare_star_covers_product_permissions_and_no_management_one() {
        assert!(scope_covers("*", "sms.send"));
        assert!(scope_covers("*", "admin"));
        for management in ["api.key.create", "api.key.view", "api.*", "api.role.update"] {
            assert!(!scope_covers("*", management), "{management}");
        }
        assert!(scope_covers("api.*", "api.key.create"));
        assert!(scope_covers("api.key.*", "api.key.delete"));
        assert!(scope_covers("api.key.create", "api.key.create"));
    }

    #[test]
    fn a_wildcard_covers_a_narrower_pattern_but_not_a_broader_one() {
        assert!(scope_covers("api.*", "api.key.*"));
        assert!(!scope_covers("api.key.*", "api.*"));
        assert!(!scope_covers("api.key.create", "api.key.*"));
    }
}
