//! `TestApp`: one helper per management endpoint, over HTTP, against a running control plane.
//!
//! Every secret a create or rotate answers with is remembered (shared by all clones), so a test
//! can check at the end that none of them reached a log line.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use keyward_cli::client::{Client, Connection, CreateKey, KeyWithSecret, ListKeys, Page};
use keyward_common::{KeyRecord, PresentedKey};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::control_plane::ControlPlane;

/// An answer of the API: status, headers and the JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    /// The raw body text.
    pub text: String,
}

impl ApiResponse {
    /// The problem's `code`, or `""`.
    #[must_use]
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The `Content-Type` header, or `""`.
    #[must_use]
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    /// A header as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `ETag` header, e.g. `"3"`.
    #[must_use]
    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// The record's `id`.
    #[must_use]
    pub fn id(&self) -> &str {
        self.body["id"].as_str().unwrap_or_default()
    }

    /// Panics with the whole answer unless the status is `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "expected {status}, got {}: {}",
            self.status, self.text
        );
        self
    }

    /// Panics unless this is a problem+json with `status` and `code`.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "expected {status} {code}, got: {}",
            self.text
        );
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "{status} {code} has content-type {:?}",
            self.content_type()
        );
        assert_eq!(
            self.body["status"], status,
            "problem body status: {}",
            self.text
        );
        self
    }
}

/// A client of the management API with one caller's credential.
#[derive(Debug, Clone)]
pub struct TestApp {
    base: String,
    client: reqwest::Client,
    token: Option<String>,
    secrets: Arc<Mutex<Vec<String>>>,
}

impl TestApp {
    /// A client of `plane` authenticating with `token` (a JWT or a root key).
    #[must_use]
    pub fn new(plane: &ControlPlane, token: Option<String>) -> Self {
        Self {
            base: plane.url(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()
                .expect("building an HTTP client"),
            token,
            secrets: Arc::default(),
        }
    }

    /// The same app (and secret record) with another caller's credential.
    #[must_use]
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// Base URL of the API.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every secret created or rotated through any clone of this app so far.
    #[must_use]
    pub fn secrets(&self) -> Vec<String> {
        self.secrets.lock().expect("secrets lock").clone()
    }

    /// The typed client (the one the `keyward` CLI uses) acting as this app's caller in `ws`.
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn client(&self, ws: &str) -> Client {
        Client::new(Connection {
            url: self.base.clone(),
            edge_url: None,
            token: self.token.clone().unwrap_or_default(),
            workspace: ws.to_owned(),
        })
        .expect("building the typed client")
    }

    /// Creates a key through the typed client; panics with the problem unless it is created.
    pub async fn new_key(&self, ws: &str, body: &CreateKey) -> KeyWithSecret {
        let created = self
            .client(ws)
            .create_key(body, None)
            .await
            .unwrap_or_else(|e| panic!("creating a key in {ws}: {e:?}"))
            .value;
        self.secrets
            .lock()
            .expect("secrets lock")
            .push(created.key.expose().to_owned());
        created
    }

    /// One key through the typed client; panics with the problem unless it is found.
    pub async fn key(&self, ws: &str, id: &str) -> KeyRecord {
        self.client(ws)
            .get_key(id)
            .await
            .unwrap_or_else(|e| panic!("getting {id} in {ws}: {e:?}"))
            .value
    }

    /// One page of keys through the typed client.
    pub async fn keys(&self, ws: &str, query: &ListKeys) -> Page<KeyRecord> {
        self.client(ws)
            .list_keys(query)
            .await
            .unwrap_or_else(|e| panic!("listing keys in {ws}: {e:?}"))
            .value
    }

    /// Revokes a key through the typed client and returns its record.
    pub async fn revoke(&self, ws: &str, id: &str) -> KeyRecord {
        self.client(ws)
            .revoke_key(id)
            .await
            .unwrap_or_else(|e| panic!("revoking {id} in {ws}: {e:?}"))
            .value
    }

    /// `POST /v1/workspaces/{ws}/keys`.
    pub async fn create_key(&self, ws: &str, body: &Value) -> ApiResponse {
        self.json(
            Method::POST,
            &format!("/v1/workspaces/{ws}/keys"),
            Some(body),
            &[],
        )
        .await
    }

    /// `GET /v1/workspaces/{ws}/keys/{id}`.
    pub async fn get_key(&self, ws: &str, id: &str) -> ApiResponse {
        self.json(
            Method::GET,
            &format!("/v1/workspaces/{ws}/keys/{id}"),
            None,
            &[],
        )
        .await
    }

    /// `GET /v1/workspaces/{ws}/keys?{query}` (`query` without `?`, may be empty).
    pub async fn list_keys(&self, ws: &str, query: &str) -> ApiResponse {
        self.json(
            Method::GET,
            &with_query(&format!("/v1/workspaces/{ws}/keys"), query),
            None,
            &[],
        )
        .await
    }

    /// `PATCH /v1/workspaces/{ws}/keys/{id}`, with `If-Match` when given.
    pub async fn update_key(
        &self,
        ws: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> ApiResponse {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("if-match", v)).into_iter().collect();
        self.json(
            Method::PATCH,
            &format!("/v1/workspaces/{ws}/keys/{id}"),
            Some(body),
            &headers,
        )
        .await
    }

    /// `DELETE /v1/workspaces/{ws}/keys/{id}`.
    pub async fn revoke_key(&self, ws: &str, id: &str) -> ApiResponse {
        self.json(
            Method::DELETE,
            &format!("/v1/workspaces/{ws}/keys/{id}"),
            None,
            &[],
        )
        .await
    }

    /// `POST /v1/workspaces/{ws}/keys/{id}/rotate`, with a body when given.
    pub async fn rotate_key(&self, ws: &str, id: &str, body: Option<&Value>) -> ApiResponse {
        self.json(
            Method::POST,
            &format!("/v1/workspaces/{ws}/keys/{id}/rotate"),
            body,
            &[],
        )
        .await
    }

    /// `GET /v1/workspaces/{ws}/audit?{query}`.
    pub async fn list_audit(&self, ws: &str, query: &str) -> ApiResponse {
        self.json(
            Method::GET,
            &with_query(&format!("/v1/workspaces/{ws}/audit"), query),
            None,
            &[],
        )
        .await
    }

    /// Any JSON call at `path` (under the base URL), for endpoints without a helper.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> ApiResponse {
        self.json(method, path, body, &[]).await
    }

    /// A JSON call with extra headers (`If-Match`, `Accept`, …).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let text = body.map(Value::to_string);
        if text.is_some() {
            all.push(("content-type", "application/json"));
        }
        self.send(method, path, &all, text.map(String::into_bytes))
            .await
            .unwrap_or_else(|err| panic!("calling the API: {err:#}"))
    }

    /// Any request, as a client could send it: for bad-input cases. Adds the caller's
    /// `Authorization` unless `headers` has one.
    ///
    /// # Errors
    /// When the request cannot be sent or the answer read.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<ApiResponse> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        let has_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let (Some(token), false) = (&self.token, has_auth) {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.context("reading the answer")?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(key) = body.get("key").and_then(Value::as_str) {
            self.secrets
                .lock()
                .expect("secrets lock")
                .push(key.to_owned());
        }
        // A webhook endpoint's signing secret, shown once like a key.
        if let Some(secret) = body.get("secret").and_then(Value::as_str) {
            self.secrets
                .lock()
                .expect("secrets lock")
                .push(secret.to_owned());
        }
        Ok(ApiResponse {
            status,
            headers,
            body,
            text,
        })
    }
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Checks a secret against DESIGN's format (`{prefix}_{32 base62}{6 base62 CRC32}`, checksum
/// included) and the record it came with: same prefix, matching display prefix. Returns the
/// parsed key.
///
/// # Panics
/// When the key or the record does not match.
#[track_caller]
pub fn assert_key_format(key: &str, prefix: &str, record: &Value) -> PresentedKey {
    let parsed = PresentedKey::parse(key)
        .unwrap_or_else(|err| panic!("the key does not match the DESIGN format: {err:?}"));
    assert_eq!(parsed.prefix(), prefix, "key prefix");
    assert_eq!(key.len(), prefix.len() + 1 + 32 + 6, "key length");
    let (_, body) = key.split_once('_').expect("separator");
    assert!(
        body.bytes().all(|b| b.is_ascii_alphanumeric()),
        "base62 body"
    );
    let want_checksum = keyward_common::key::checksum(&key[..key.len() - 6]);
    assert_eq!(&key[key.len() - 6..], want_checksum, "checksum");
    if !record.is_null() {
        assert_eq!(
            record["key_prefix"].as_str(),
            Some(parsed.display_prefix().as_str()),
            "display prefix"
        );
    }
    parsed
}

/// Panics when a read answer carries a secret or a hash anywhere.
#[track_caller]
pub fn assert_no_secret(response: &ApiResponse, secrets: &[String]) {
    for forbidden in ["key", "hash", "secret", "key_hash"] {
        assert!(
            !contains_field(&response.body, forbidden),
            "a read carries a `{forbidden}` field: {}",
            response.text
        );
    }
    for secret in secrets {
        assert!(
            !response.text.contains(secret.as_str()),
            "a read carries a secret"
        );
        let hash = keyward_common::key::KeyHash::of(secret);
        assert!(
            !response.text.contains(hash.as_str()),
            "a read carries a key hash"
        );
    }
}

fn contains_field(value: &Value, name: &str) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k == name || (k != "meta" && contains_field(v, name))),
        Value::Array(items) => items.iter().any(|v| contains_field(v, name)),
        _ => false,
    }
}
