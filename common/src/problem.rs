//! The RFC 9457 problem+json body every Keyward error answers with, on both sides.

use serde::{Deserialize, Serialize};

/// Media type of a [`Problem`] body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// Base of the `type` URIs; `{BASE}{code}` documents one error.
pub const TYPE_BASE: &str = "https://keyward.dev/problems/";

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

    /// A 400 naming the invalid fields.
    #[must_use]
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("Invalid request: check {}.", names.join(", "));
        Self {
            errors,
            ..Self::new(400, "validation_failed", detail)
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
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
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
    fn validation_problems_name_every_field() {
        let p = Problem::validation(vec![FieldError::new("name", "is required")]);
        assert_eq!(p.status, 400);
        assert!(p.detail.contains("name"));
        assert_eq!(p.errors[0].field, "name");
    }
}
