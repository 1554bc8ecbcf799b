//! Caller authentication: a bearer JWT (algorithm fixed by configuration) or a root Keyward key.

use std::net::IpAddr;

use jsonwebtoken::{Validation, decode};
use keyward_common::verify::scope_covers;
use keyward_common::{EdgeEntry, PresentedKey, RequestContext, VerdictCode, verify};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::App;

/// What an operation requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `api.key.create`.
    Create,
    /// `api.key.view` (get, list, audit).
    View,
    /// `api.key.update` (patch, rotate).
    Update,
    /// `api.key.delete` (revoke).
    Delete,
}

impl Permission {
    /// The permission string in JWT `permissions` and root-key scopes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "api.key.create",
            Self::View => "api.key.view",
            Self::Update => "api.key.update",
            Self::Delete => "api.key.delete",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `jwt:{sub}` or `key:{key_id}`, as written to audit events.
    pub actor: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    workspace: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// The bearer token of an `Authorization` header value, if it is one.
fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Authenticates the caller for `permission` in `workspace`.
///
/// # Errors
/// 401 for missing or invalid credentials, 404 when they belong to another workspace, 403 when
/// they lack the permission.
pub async fn authenticate(
    app: &App,
    authorization: Option<&str>,
    workspace: &str,
    permission: Permission,
    client_ip: Option<IpAddr>,
    now: i64,
) -> Result<Caller, ApiError> {
    let token = bearer(authorization).ok_or(ApiError::Unauthorized(
        "Send `Authorization: Bearer <token>` with a JWT or a root key.",
    ))?;
    match PresentedKey::parse(token) {
        Ok(key) => root_key(app, &key, workspace, permission, client_ip, now).await,
        Err(_) => jwt(app, token, workspace, permission),
    }
}

fn jwt(
    app: &App,
    token: &str,
    workspace: &str,
    permission: Permission,
) -> Result<Caller, ApiError> {
    let cfg = &app.config.jwt;
    // One algorithm only: `none` and algorithm confusion (an HS token against an RS key) fail here.
    let mut validation = Validation::new(cfg.algorithm);
    validation.set_issuer(&[&cfg.issuer]);
    validation.set_audience(&[&cfg.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let claims = match decode::<Claims>(token, &cfg.key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            tracing::info!(reason = %e, "bearer token refused");
            return Err(ApiError::Unauthorized(
                "The bearer token is not valid: check its signature, algorithm, issuer, audience and expiry.",
            ));
        }
    };
    if claims.workspace != workspace {
        return Err(ApiError::NotFound);
    }
    if !claims
        .permissions
        .iter()
        .any(|p| scope_covers(p, permission.as_str()))
    {
        return Err(ApiError::Forbidden(permission));
    }
    Ok(Caller {
        actor: format!("jwt:{}", claims.sub),
    })
}

async fn root_key(
    app: &App,
    key: &PresentedKey,
    workspace: &str,
    permission: Permission,
    client_ip: Option<IpAddr>,
    now: i64,
) -> Result<Caller, ApiError> {
    let unknown = || ApiError::Unauthorized("The API key is not valid.");
    let hash = key.hash();
    let Some(href) = app.store.find_hash(&hash).await? else {
        return Err(unknown());
    };
    let Some(stored) = app.store.get(&href.workspace, &href.key_id).await? else {
        return Err(unknown());
    };
    let entry = if stored.hash == hash {
        EdgeEntry::for_key(&stored.record)
    } else {
        match &stored.previous {
            Some((h, at)) if *h == hash => EdgeEntry::for_key(&stored.record).retiring(*at),
            _ => return Err(unknown()),
        }
    };
    let ctx = RequestContext {
        client_ip,
        required_scope: Some(permission.as_str().to_owned()),
    };
    let verdict = verify(key, Some(&entry), &ctx, now);
    match verdict.code {
        VerdictCode::Valid | VerdictCode::ForbiddenScope | VerdictCode::ForbiddenIp
            if stored.record.workspace != workspace =>
        {
            Err(ApiError::NotFound)
        }
        VerdictCode::Valid => Ok(Caller {
            actor: format!("key:{}", stored.record.id),
        }),
        VerdictCode::ForbiddenScope => Err(ApiError::Forbidden(permission)),
        VerdictCode::ForbiddenIp => Err(ApiError::ForbiddenIp),
        code => Err(ApiError::Unauthorized(code.detail())),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn only_bearer_headers_carry_a_token() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
