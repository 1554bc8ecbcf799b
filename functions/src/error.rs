//! The API's errors and their one wire format, RFC 9457 problem+json.

use keyward_common::{FieldError, Problem, ProblemCode};

use crate::permission::Permission;

/// Every way a request can fail. Internal causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing or invalid credentials.
    #[error("unauthorized")]
    Unauthorized(&'static str),
    /// 403: valid credentials without the permission.
    #[error("forbidden")]
    Forbidden(Permission),
    /// 403: the change would give a key management permissions its caller does not hold.
    #[error("permission escalation")]
    PermissionEscalation(Vec<String>),
    /// 403: a root key used from an address it does not allow.
    #[error("forbidden ip")]
    ForbiddenIp,
    /// 404: no such route, key, or workspace for this caller.
    #[error("not found")]
    NotFound,
    /// 405: the route exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed(String),
    /// 400: invalid fields or parameters.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 400: the body is not JSON (or not an object).
    #[error("invalid json")]
    InvalidJson(String),
    /// 400: a cursor that was tampered with or belongs to another listing.
    #[error("invalid cursor")]
    InvalidCursor,
    /// 415: a body that is not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 413: a body over the route's limit (bytes).
    #[error("payload too large")]
    PayloadTooLarge(usize),
    /// 409: the key is revoked.
    #[error("key revoked")]
    KeyRevoked,
    /// 409: the workspace's key cap.
    #[error("key limit reached")]
    KeyLimitReached(u64),
    /// 412: `If-Match` does not match, or a concurrent change won.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 409: a role with this name exists.
    #[error("role exists")]
    RoleExists(String),
    /// 409: keys that are not revoked hold the role.
    #[error("role in use")]
    RoleInUse(String),
    /// 409: the same `Idempotency-Key` is being served right now.
    #[error("idempotency in progress")]
    IdempotencyInProgress,
    /// 422: the `Idempotency-Key` was used with another request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// 500: logged with the request id.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::VersionConflict => Self::PreconditionFailed,
            StoreError::LimitReached => Self::KeyLimitReached(0),
            StoreError::Duplicate => Self::Internal(anyhow::anyhow!(
                "a generated key id or hash collided with an existing one"
            )),
            StoreError::UnknownRole(name) => Self::Validation(vec![FieldError::new(
                "roles",
                format!("no role named `{name}` in this workspace"),
            )]),
            StoreError::RoleExists(name) => Self::RoleExists(name),
            StoreError::RoleInUse(name) => Self::RoleInUse(name),
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

impl ApiError {
    /// The problem+json body (without request id).
    #[must_use]
    pub fn problem(&self) -> Problem {
        match self {
            Self::Unauthorized(detail) => Problem::of(ProblemCode::Unauthorized, *detail),
            Self::Forbidden(p) => Problem::of(
                ProblemCode::Forbidden,
                format!("The credentials lack the `{}` permission.", p.as_str()),
            ),
            Self::PermissionEscalation(names) => Problem::of(
                ProblemCode::PermissionEscalation,
                format!(
                    "This would grant management permissions you do not hold: {}. Management \
                     permissions (`api.*`) can only be granted by a caller that holds them.",
                    names.join(", ")
                ),
            ),
            Self::ForbiddenIp => Problem::of(
                ProblemCode::Forbidden,
                "The root key may not be used from this IP address.",
            ),
            Self::NotFound => {
                Problem::of(ProblemCode::NotFound, "Nothing here for these credentials.")
            }
            Self::MethodNotAllowed(allow) => Problem::of(
                ProblemCode::MethodNotAllowed,
                format!("This path answers {allow} only."),
            ),
            Self::Validation(errors) => Problem::validation(errors.clone()),
            Self::InvalidJson(detail) => Problem::of(ProblemCode::InvalidJson, detail.clone()),
            Self::InvalidCursor => Problem::of(
                ProblemCode::InvalidCursor,
                "The cursor is not valid for this listing: start again without it.",
            ),
            Self::UnsupportedMediaType => Problem::of(
                ProblemCode::UnsupportedMediaType,
                "Send the body as `Content-Type: application/json`.",
            ),
            Self::PayloadTooLarge(max) => Problem::of(
                ProblemCode::PayloadTooLarge,
                format!("The body is larger than {} KiB.", max / 1024),
            ),
            Self::KeyRevoked => Problem::of(
                ProblemCode::KeyRevoked,
                "The key is revoked; revoked keys cannot be changed.",
            ),
            Self::KeyLimitReached(cap) => Problem::of(
                ProblemCode::KeyLimitReached,
                if *cap > 0 {
                    format!(
                        "The workspace already has {cap} keys that are not revoked; revoke one first."
                    )
                } else {
                    "The workspace has reached its key limit; revoke a key first.".to_owned()
                },
            ),
            Self::PreconditionFailed => Problem::of(
                ProblemCode::PreconditionFailed,
                "It changed since you read it: fetch it again and retry with its ETag.",
            ),
            Self::RoleExists(name) => Problem::of(
                ProblemCode::RoleExists,
                format!("A role named `{name}` already exists; PATCH it instead."),
            ),
            Self::RoleInUse(name) => Problem::of(
                ProblemCode::RoleInUse,
                format!(
                    "Keys that are not revoked hold the role `{name}`: take it off them (or revoke \
                     them) first. `GET /keys?role={name}` lists them."
                ),
            ),
            Self::IdempotencyInProgress => Problem::of(
                ProblemCode::IdempotencyInProgress,
                "A request with this Idempotency-Key is still being served; retry in a moment.",
            ),
            Self::IdempotencyKeyReused => Problem::of(
                ProblemCode::IdempotencyKeyReused,
                "This Idempotency-Key was used with a different request; use a new key for a new \
                 request.",
            ),
            Self::Internal(_) => Problem::of(
                ProblemCode::Internal,
                "Something went wrong on our side; quote the request id to support.",
            ),
        }
    }
}

/// A configuration value that is missing or invalid. Messages name the variable, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} must be set")]
    Missing(&'static str),
    /// A variable has a value that cannot be used.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is accepted.
        why: String,
    },
}
