//! Writing a response: JSON bodies with their headers, and the one problem+json form of errors.

use anyhow::Context as _;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::ApiError;

/// The `Content-Type` of JSON answers.
pub const JSON: &str = "application/json";
/// The `Content-Type` of CSV answers.
pub const CSV: &str = "text/csv; charset=utf-8";

/// A successful answer before it becomes a response.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// JSON body.
    pub body: String,
    /// `ETag`: the version of the record in the body.
    pub etag: Option<u64>,
    /// `Location` of a created resource.
    pub location: Option<String>,
    /// Whether this is a kept answer replayed to an `Idempotency-Key`.
    pub replayed: bool,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
}

impl Reply {
    /// `value` as JSON with `status`.
    ///
    /// # Errors
    /// When `value` cannot be serialized (a bug; logged as internal).
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            body: serde_json::to_string(value).context("serialising a response")?,
            etag: None,
            location: None,
            replayed: false,
            content_type: JSON,
        })
    }

    /// A CSV document (`text/csv`, downloaded as `filename`).
    #[must_use]
    pub fn csv(body: String) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            etag: None,
            location: None,
            replayed: false,
            content_type: CSV,
        }
    }

    /// With `ETag: "{version}"`.
    #[must_use]
    pub fn etag(mut self, version: u64) -> Self {
        self.etag = Some(version);
        self
    }

    /// With `Location`.
    #[must_use]
    pub fn location(mut self, url: String) -> Self {
        self.location = Some(url);
        self
    }

    /// The HTTP response.
    ///
    /// # Errors
    /// When a header value is invalid (a bug; logged as internal).
    pub fn into_response(self, request_id: &str) -> Result<Response<Body>, ApiError> {
        let mut b = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, self.content_type)
            .header("x-request-id", request_id)
            .header(header::CACHE_CONTROL, "no-store");
        if let Some(v) = self.etag {
            b = b.header(header::ETAG, format!("\"{v}\""));
        }
        if let Some(l) = self.location {
            b = b.header(header::LOCATION, l);
        }
        if self.replayed {
            b = b.header(super::idempotency::REPLAYED, "true");
        }
        b.body(Body::Text(self.body))
            .context("building a response")
            .map_err(ApiError::Internal)
    }
}

/// The problem+json response of `e`.
#[must_use]
pub fn problem_response(e: &ApiError, request_id: &str) -> Response<Body> {
    let problem = e.problem().with_request_id(request_id);
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, keyward_common::problem::CONTENT_TYPE)
        .header("x-request-id", request_id);
    match e {
        ApiError::Unauthorized(_) => b = b.header(header::WWW_AUTHENTICATE, "Bearer"),
        ApiError::MethodNotAllowed(allow) => b = b.header(header::ALLOW, allow.as_str()),
        _ => {}
    }
    b.body(Body::Text(problem.to_json()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}
