//! Caller authentication: a bearer JWT (algorithm fixed by configuration) or a root Keyward key.

use std::net::IpAddr;

use jsonwebtoken::{Validation, decode, decode_header};
use keyward_common::credentials::bearer_token;
use keyward_common::verify::scope_covers;
use keyward_common::{EdgeEntry, PresentedKey, RequestContext, VerdictCode, verify};
use serde::Deserialize;

use crate::config::JwtConfig;
use crate::error::ApiError;
pub use crate::permission::Permission;
use crate::store::{KeyStore, effective_permissions};

/// An authenticated caller: who, with which permissions, from which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `jwt:{sub}` or `key:{key_id}`, as written to audit events.
    pub actor: String,
    /// The workspace it acts in (the path's, which its credentials belong to).
    pub workspace: String,
    /// Its own permissions: the JWT's `permissions` claim, or the root key's scopes.
    pub permissions: Vec<String>,
    /// The request's id, for audit events and logs.
    pub request_id: String,
    /// The client's address, when known.
    pub source_ip: Option<String>,
}

/// Who asks, before authentication: the request's credentials and where they come from.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The `Authorization` header's value.
    pub authorization: Option<&'a str>,
    /// The path's workspace.
    pub workspace: &'a str,
    /// The client's address, parsed.
    pub client_ip: Option<IpAddr>,
}

/// An authenticated identity, before the request facts are attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `jwt:{sub}` or `key:{key_id}`.
    pub actor: String,
    /// The JWT's `permissions` claim, or the root key's scopes.
    pub permissions: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    workspace: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// Authenticates the caller for `permission` in `workspace`.
///
/// # Errors
/// 401 for missing or invalid credentials, 404 when they belong to another workspace, 403 when
/// they lack the permission.
pub async fn authenticate(
    jwt_config: &JwtConfig,
    store: &dyn KeyStore,
    credentials: Credentials<'_>,
    permission: Permission,
    now: i64,
) -> Result<Identity, ApiError> {
    let token = credentials
        .authorization
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized(
            "Send `Authorization: Bearer <token>` with a JWT or a root key.",
        ))?;
    let workspace = credentials.workspace;
    match PresentedKey::parse(token) {
        Ok(key) => {
            root_key(
                store,
                &key,
                workspace,
                permission,
                credentials.client_ip,
                now,
            )
            .await
        }
        Err(_) => jwt(jwt_config, token, workspace, permission),
    }
}

fn jwt(
    cfg: &JwtConfig,
    token: &str,
    workspace: &str,
    permission: Permission,
) -> Result<Identity, ApiError> {
    let refused = |reason: &str| {
        tracing::info!(reason, "bearer token refused");
        ApiError::Unauthorized(
            "The bearer token is not valid: check its signature, algorithm, issuer, audience and expiry.",
        )
    };
    // The header is only read to pick the key; the algorithm is the configured one whatever the
    // header says, so `none` and algorithm confusion (an HS token against an RS key) fail below.
    let header = decode_header(token).map_err(|e| refused(&e.to_string()))?;
    let key = cfg
        .key_for(header.kid.as_deref())
        .ok_or_else(|| refused("no verification key has the token's kid"))?;
    let mut validation = Validation::new(cfg.algorithm);
    validation.set_issuer(&[&cfg.issuer]);
    validation.set_audience(&[&cfg.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    let claims = decode::<Claims>(token, key, &validation)
        .map_err(|e| refused(&e.to_string()))?
        .claims;
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
    Ok(Identity {
        actor: format!("jwt:{}", claims.sub),
        permissions: claims.permissions,
    })
}

async fn root_key(
    store: &dyn KeyStore,
    key: &PresentedKey,
    workspace: &str,
    permission: Permission,
    client_ip: Option<IpAddr>,
    now: i64,
) -> Result<Identity, ApiError> {
    let unknown = || ApiError::Unauthorized("The API key is not valid.");
    let hash = key.hash();
    let Some(href) = store.find_hash(&hash).await? else {
        return Err(unknown());
    };
    let Some(stored) = store.get(&href.workspace, &href.key_id).await? else {
        return Err(unknown());
    };
    let mut entry = if stored.hash == hash {
        EdgeEntry::for_key(&stored.record)
    } else {
        match &stored.previous {
            Some((h, at)) if *h == hash => EdgeEntry::for_key(&stored.record).retiring(*at),
            _ => return Err(unknown()),
        }
    };
    // A root key's power is its effective permissions: its scopes plus its roles'.
    let permissions = effective_permissions(
        store,
        &stored.record.workspace,
        &stored.record.scopes,
        &stored.record.roles,
    )
    .await?;
    entry.scopes.clone_from(&permissions);
    let ctx = RequestContext {
        client_ip,
        required_scope: Some(permission.as_str().to_owned()),
        ..RequestContext::default()
    };
    let verdict = verify(key, Some(&entry), &ctx, now);
    match verdict.code {
        VerdictCode::Valid | VerdictCode::ForbiddenScope | VerdictCode::ForbiddenIp
            if stored.record.workspace != workspace =>
        {
            Err(ApiError::NotFound)
        }
        VerdictCode::Valid => Ok(Identity {
            actor: format!("key:{}", stored.record.id),
            permissions,
        }),
        VerdictCode::ForbiddenScope => Err(ApiError::Forbidden(permission)),
        VerdictCode::ForbiddenIp => Err(ApiError::ForbiddenIp),
        code => Err(ApiError::Unauthorized(code.detail())),
    }
}
