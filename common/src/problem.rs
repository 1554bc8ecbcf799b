//! The RFC 9457 problem+json body every Keyward error answers with, on both sides.

use serde::{Deserialize, Serialize};

/// Media type of a [`Problem`] body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Base of the `type` URIs; `{BASE}{code}` documents one error.
pub const TYPE_BASE: &str = "https://keyward.dev/problems/";

/// Every `code` a Keyward problem+json can carry (the verify API's verdict codes are
/// [`crate::VerdictCode`]; the proxy answers refusals with those). One enum, so a code is never
/// a string literal typed in two places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// 400: invalid fields or parameters ([`Problem::validation`]).
    ValidationFailed,
    /// 400: a body that is not JSON.
    InvalidJson,
    /// 400: a cursor that was tampered with or belongs to another listing.
    InvalidCursor,
    /// 400: a request path the edge refuses to interpret (encoded `/`, `;`, ...).
    AmbiguousPath,
    /// 400: a permission query that does not parse (the verify API's `permission`).
    InvalidPermissionQuery,
    /// 401: missing or invalid credentials.
    Unauthorized,
    /// 401: a signed batch whose signature or timestamp does not verify.
    InvalidSignature,
    /// 403: valid credentials without the permission.
    Forbidden,
    /// 403: the change would grant management permissions the caller does not hold.
    PermissionEscalation,
    /// 403: no route rule allows the path and the edge's default is `deny`.
    RouteDenied,
    /// 404: nothing here for these credentials.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 409: the key is revoked.
    KeyRevoked,
    /// 409: the workspace's key cap.
    KeyLimitReached,
    /// 412: `If-Match` does not match.
    PreconditionFailed,
    /// 413: a body over the route's limit.
    PayloadTooLarge,
    /// 415: a body that is not `application/json`.
    UnsupportedMediaType,
    /// 500: a failure of ours, logged with the request id.
    Internal,
    /// 500: the deployment's configuration is invalid.
    Misconfigured,
    /// 502: the origin did not answer.
    OriginUnreachable,
    /// 503: sync batches are refused because no secret is configured.
    SyncNotConfigured,
    /// 409: a role with that name already exists.
    RoleExists,
    /// 409: a role that a key which is not revoked still holds.
    RoleInUse,
    /// 409: an imported key whose hash is already stored.
    DuplicateKey,
    /// 409: a request with the same `Idempotency-Key` is still being served.
    IdempotencyInProgress,
    /// 422: an `Idempotency-Key` reused with a different request.
    IdempotencyKeyReused,
}

impl ProblemCode {
    /// The wire value of `code`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::InvalidJson => "invalid_json",
            Self::InvalidCursor => "invalid_cursor",
            Self::AmbiguousPath => "ambiguous_path",
            Self::InvalidPermissionQuery => "invalid_permission_query",
            Self::Unauthorized => "unauthorized",
            Self::InvalidSignature => "invalid_signature",
            Self::Forbidden => "forbidden",
            Self::PermissionEscalation => "permission_escalation",
            Self::RouteDenied => "route_denied",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::KeyRevoked => "key_revoked",
            Self::KeyLimitReached => "key_limit_reached",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Internal => "internal",
            Self::Misconfigured => "misconfigured",
            Self::OriginUnreachable => "origin_unreachable",
            Self::SyncNotConfigured => "sync_not_configured",
            Self::RoleExists => "role_exists",
            Self::RoleInUse => "role_in_use",
            Self::DuplicateKey => "duplicate_key",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }

    /// The HTTP status that goes with the code.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::ValidationFailed
            | Self::InvalidJson
            | Self::InvalidCursor
            | Self::AmbiguousPath
            | Self::InvalidPermissionQuery => 400,
            Self::Unauthorized | Self::InvalidSignature => 401,
            Self::Forbidden | Self::PermissionEscalation | Self::RouteDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::KeyRevoked
            | Self::KeyLimitReached
            | Self::RoleExists
            | Self::RoleInUse
            | Self::DuplicateKey
            | Self::IdempotencyInProgress => 409,
            Self::IdempotencyKeyReused => 422,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Internal | Self::Misconfigured => 500,
            Self::OriginUnreachable => 502,
            Self::SyncNotConfigured => 503,
        }
    }
}

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field, as a JSON path into the request (`rate_limit.period_s`) or a parameter name.
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// An RFC 9457 problem details object with Keyward's `code` and `request_id` extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type (the HTTP reason phrase).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this occurrence, written for the caller.
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed` or `NOT_FOUND`.
    pub code: String,
    /// The request id, also in logs, to quote to support.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    /// Per-field validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with `status`, `code` and a caller-facing `detail`.
    #[must_use]
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{}", code.to_ascii_lowercase().replace('_', "-")),
            title: reason_phrase(status).to_owned(),
            status,
            detail: detail.into(),
            code: code.to_owned(),
            request_id: None,
            errors: Vec::new(),
        }
    }

    /// A problem with `code`'s status and wire value and a caller-facing `detail`.
    #[must_use]
    pub fn of(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self::new(code.status(), code.as_str(), detail)
    }

    /// A 400 naming the invalid fields.
    #[must_use]
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("Invalid request: check {}.", names.join(", "));
        Self {
            errors,
            ..Self::of(ProblemCode::ValidationFailed, detail)
        }
    }

    /// Adds the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// The JSON body.
    #[must_use]
    pub fn to_json(&self) -> String {
        crate::json::to_string(self)
    }
}

impl FieldError {
    /// A field error.
    #[must_use]
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The standard reason phrase for the statuses Keyward uses.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_the_rfc9457_members_and_code() {
        let p = Problem::new(404, "not_found", "No key key_x in this workspace.")
            .with_request_id("req-1");
        let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(json["type"], "https://keyward.dev/problems/not-found");
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["code"], "not_found");
        assert_eq!(json["request_id"], "req-1");
        assert!(json.get("errors").is_none());
    }

    #[test]
    fn a_code_gives_its_status_wire_value_and_type() {
        let p = Problem::of(ProblemCode::AmbiguousPath, "no");
        assert_eq!((p.status, p.code.as_str()), (400, "ambiguous_path"));
        assert_eq!(p.type_uri, "https://keyward.dev/problems/ambiguous-path");
        assert_eq!(
            Problem::of(ProblemCode::PayloadTooLarge, "").title,
            "Content Too Large"
        );
    }

    #[test]
    fn validation_problems_name_every_field() {
        let p = Problem::validation(vec![FieldError::new("name", "is required")]);
        assert_eq!(p.status, 400);
        assert!(p.detail.contains("name"));
        assert_eq!(p.errors[0].field, "name");
    }
}
