//! The HTTP side of every function: routing, request parsing, the operations, and responses.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use keyward_common::{KeyId, KeyRecord, KeyStatus, SecretKey, Timestamp};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::auth::{Caller, Permission, authenticate};
use crate::config::Config;
use crate::error::ApiError;
use crate::store::{AuditEvent, KeyQuery, KeyStore, Replace, StoredKey};
use crate::validate::{self, ScopePolicy};
use crate::{api, cursor};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Shown with every new secret.
pub const WARNING: &str = "Store this key now: it will not be shown again.";

/// What a function needs to serve requests: built once per process.
#[derive(Debug, Clone)]
pub struct App {
    /// Configuration.
    pub config: Arc<Config>,
    /// Storage.
    pub store: Arc<dyn KeyStore>,
}

/// The seven management operations, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/workspaces/{workspace}/keys`
    CreateKey,
    /// `GET /v1/workspaces/{workspace}/keys`
    ListKeys,
    /// `GET /v1/workspaces/{workspace}/keys/{id}`
    GetKey,
    /// `PATCH /v1/workspaces/{workspace}/keys/{id}`
    UpdateKey,
    /// `DELETE /v1/workspaces/{workspace}/keys/{id}`
    RevokeKey,
    /// `POST /v1/workspaces/{workspace}/keys/{id}/rotate`
    RotateKey,
    /// `GET /v1/workspaces/{workspace}/audit`
    ListAudit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Keys,
    Key,
    Rotate,
    Audit,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 7] = [
        Self::CreateKey,
        Self::ListKeys,
        Self::GetKey,
        Self::UpdateKey,
        Self::RevokeKey,
        Self::RotateKey,
        Self::ListAudit,
    ];

    /// The binary / function name, e.g. `create-key`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateKey => "create-key",
            Self::ListKeys => "list-keys",
            Self::GetKey => "get-key",
            Self::UpdateKey => "update-key",
            Self::RevokeKey => "revoke-key",
            Self::RotateKey => "rotate-key",
            Self::ListAudit => "list-audit",
        }
    }

    /// The HTTP method it answers.
    #[must_use]
    pub fn method(self) -> Method {
        match self {
            Self::CreateKey | Self::RotateKey => Method::POST,
            Self::ListKeys | Self::GetKey | Self::ListAudit => Method::GET,
            Self::UpdateKey => Method::PATCH,
            Self::RevokeKey => Method::DELETE,
        }
    }

    fn method_str(self) -> &'static str {
        match self {
            Self::CreateKey | Self::RotateKey => "POST",
            Self::ListKeys | Self::GetKey | Self::ListAudit => "GET",
            Self::UpdateKey => "PATCH",
            Self::RevokeKey => "DELETE",
        }
    }

    /// The production path template.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::CreateKey | Self::ListKeys => "/v1/workspaces/{workspace}/keys",
            Self::GetKey | Self::UpdateKey | Self::RevokeKey => {
                "/v1/workspaces/{workspace}/keys/{id}"
            }
            Self::RotateKey => "/v1/workspaces/{workspace}/keys/{id}/rotate",
            Self::ListAudit => "/v1/workspaces/{workspace}/audit",
        }
    }

    fn shape(self) -> Shape {
        match self {
            Self::CreateKey | Self::ListKeys => Shape::Keys,
            Self::GetKey | Self::UpdateKey | Self::RevokeKey => Shape::Key,
            Self::RotateKey => Shape::Rotate,
            Self::ListAudit => Shape::Audit,
        }
    }

    /// The permission it requires.
    #[must_use]
    pub fn permission(self) -> Permission {
        match self {
            Self::CreateKey => Permission::Create,
            Self::ListKeys | Self::GetKey | Self::ListAudit => Permission::View,
            Self::UpdateKey | Self::RotateKey => Permission::Update,
            Self::RevokeKey => Permission::Delete,
        }
    }
}

/// Splits a path into (workspace, id, shape). Anything before `/v1/workspaces/` is ignored, so
/// an API Gateway stage or a local router prefix does not matter.
fn parse_path(path: &str) -> Option<(String, Option<String>, Shape)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let start = segs
        .windows(2)
        .position(|w| w[0] == "v1" && w[1] == "workspaces")?;
    match &segs[start + 2..] {
        [ws, "keys"] => Some(((*ws).to_owned(), None, Shape::Keys)),
        [ws, "keys", id] => Some(((*ws).to_owned(), Some((*id).to_owned()), Shape::Key)),
        [ws, "keys", id, "rotate"] => {
            Some(((*ws).to_owned(), Some((*id).to_owned()), Shape::Rotate))
        }
        [ws, "audit"] => Some(((*ws).to_owned(), None, Shape::Audit)),
        _ => None,
    }
}

/// Per-request facts, gathered before anything can fail.
#[derive(Debug)]
struct Ctx {
    request_id: String,
    source_ip: Option<String>,
    now_ms: u64,
}

impl Ctx {
    fn now(&self) -> i64 {
        i64::try_from(self.now_ms / 1000).unwrap_or(i64::MAX)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
    Ok(b)
}

fn generated_request_id() -> String {
    let mut b = [0u8; 16];
    // A request id only needs to be unique; the clock is a fine fallback.
    if getrandom::fill(&mut b).is_err() {
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    hex::encode(b)
}

fn context(req: &Request) -> Ctx {
    let (gw_id, source_ip) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => (c.request_id.clone(), c.http.source_ip.clone()),
        _ => (None, None),
    };
    let request_id = gw_id
        .filter(|s| !s.is_empty())
        .or_else(|| {
            req.lambda_context_ref()
                .map(|c| c.request_id.clone())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(generated_request_id);
    Ctx {
        request_id,
        source_ip,
        now_ms: now_ms(),
    }
}

/// Serves one request for `op`: the whole function body behind `lambda_http`.
pub async fn handle(app: &App, op: Operation, req: Request) -> Response<Body> {
    let ctx = context(&req);
    let span = tracing::info_span!("request", request_id = %ctx.request_id, op = op.name());
    async {
        let started = Instant::now();
        let result = dispatch(app, op, &req, &ctx).await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                if let ApiError::Internal(cause) = &e {
                    tracing::error!(error = format!("{cause:#}"), "request failed");
                }
                problem_response(&e, &ctx.request_id)
            }
        };
        tracing::info!(
            method = %req.method(),
            path = req.uri().path(),
            raw_path = req.raw_http_path(),
            status = response.status().as_u16(),
            ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request handled"
        );
        response
    }
    .instrument(span)
    .await
}

fn problem_response(e: &ApiError, request_id: &str) -> Response<Body> {
    let problem = e.problem().with_request_id(request_id);
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, keyward_common::problem::CONTENT_TYPE)
        .header("x-request-id", request_id);
    match e {
        ApiError::Unauthorized(_) => b = b.header(header::WWW_AUTHENTICATE, "Bearer"),
        ApiError::MethodNotAllowed(allow) => b = b.header(header::ALLOW, *allow),
        _ => {}
    }
    b.body(Body::Text(problem.to_json()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

struct Reply {
    status: StatusCode,
    body: String,
    etag: Option<u64>,
    location: Option<String>,
}

fn reply<T: Serialize>(status: StatusCode, value: &T) -> Result<Reply, ApiError> {
    Ok(Reply {
        status,
        body: serde_json::to_string(value).context("serialising a response")?,
        etag: None,
        location: None,
    })
}

fn with_etag(mut r: Reply, version: u64) -> Reply {
    r.etag = Some(version);
    r
}

async fn dispatch(
    app: &App,
    op: Operation,
    req: &Request,
    ctx: &Ctx,
) -> Result<Response<Body>, ApiError> {
    let (mut workspace, mut id, shape) = parse_path(req.uri().path()).ok_or(ApiError::NotFound)?;
    if shape != op.shape() {
        return Err(ApiError::NotFound);
    }
    if req.method() != op.method() {
        return Err(ApiError::MethodNotAllowed(op.method_str()));
    }
    if let Some(params) = req.path_parameters_ref() {
        if let Some(ws) = params.first("workspace") {
            ws.clone_into(&mut workspace);
        }
        if let (Some(p), Some(_)) = (params.first("id"), &id) {
            id = Some(p.to_owned());
        }
    }
    if !validate::valid_workspace(&workspace) {
        return Err(ApiError::Validation(vec![keyward_common::FieldError::new(
            "workspace",
            "must be 1-64 characters of A-Z a-z 0-9 _ -",
        )]));
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client_ip = ctx
        .source_ip
        .as_deref()
        .and_then(|s| s.parse::<IpAddr>().ok());
    let caller = authenticate(
        app,
        authorization,
        &workspace,
        op.permission(),
        client_ip,
        ctx.now(),
    )
    .await?;
    let key_id = match &id {
        Some(i) => Some(KeyId::parse(i).map_err(|_| ApiError::NotFound)?),
        None => None,
    };
    let h = Handler {
        app,
        req,
        ctx,
        caller,
        workspace,
    };
    let out = match (op, key_id) {
        (Operation::CreateKey, _) => h.create().await?,
        (Operation::ListKeys, _) => h.list().await?,
        (Operation::ListAudit, _) => h.audit().await?,
        (Operation::GetKey, Some(id)) => h.get(&id).await?,
        (Operation::UpdateKey, Some(id)) => h.update(&id).await?,
        (Operation::RevokeKey, Some(id)) => h.revoke(&id).await?,
        (Operation::RotateKey, Some(id)) => h.rotate(&id).await?,
        _ => return Err(ApiError::NotFound),
    };
    let mut b = Response::builder()
        .status(out.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-request-id", ctx.request_id.as_str())
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(v) = out.etag {
        b = b.header(header::ETAG, format!("\"{v}\""));
    }
    if let Some(l) = out.location {
        b = b.header(header::LOCATION, l);
    }
    b.body(Body::Text(out.body))
        .context("building a response")
        .map_err(ApiError::Internal)
}

struct Handler<'a> {
    app: &'a App,
    req: &'a Request,
    ctx: &'a Ctx,
    caller: Caller,
    workspace: String,
}

/// Parses `If-Match`: `"3"`, `W/"3"`, `3` or `*` (`None` = any version).
fn if_match(value: Option<&HeaderValue>) -> Result<Option<Option<u64>>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    let text = v.to_str().map_err(|_| ApiError::PreconditionFailed)?.trim();
    if text == "*" {
        return Ok(Some(None));
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>()
        .map(|n| Some(Some(n)))
        .map_err(|_| ApiError::PreconditionFailed)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn query(req: &Request, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for pair in req.uri().query().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (percent_decode(k), percent_decode(v)) else {
            errors.push(keyward_common::FieldError::new(
                "query",
                "is not valid percent-encoded UTF-8",
            ));
            continue;
        };
        if !known.contains(&k.as_str()) {
            errors.push(keyward_common::FieldError::new(
                k,
                format!("is not a known parameter (known: {})", known.join(", ")),
            ));
        } else if out.iter().any(|(x, _)| *x == k) {
            errors.push(keyward_common::FieldError::new(
                k,
                "is given more than once",
            ));
        } else {
            out.push((k, v));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn param<'q>(q: &'q [(String, String)], name: &str) -> Option<&'q str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn limit(q: &[(String, String)]) -> Result<usize, ApiError> {
    match param(q, "limit") {
        None => Ok(20),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::Validation(vec![keyward_common::FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100",
                )])
            }),
    }
}

impl Handler<'_> {
    fn policy(&self) -> ScopePolicy<'_> {
        ScopePolicy {
            defaults: &self.app.config.default_scopes,
            allowed: self.app.config.allowed_scopes.as_deref(),
        }
    }

    /// The JSON object body; `required` = false allows an empty body.
    fn body(&self, required: bool) -> Result<Map<String, Value>, ApiError> {
        let bytes: &[u8] = self.req.body().as_ref();
        if bytes.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        let empty = bytes.iter().all(u8::is_ascii_whitespace);
        if empty && !required {
            return Ok(Map::new());
        }
        let content_type = self
            .req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" {
            return Err(ApiError::UnsupportedMediaType);
        }
        if empty {
            return Err(ApiError::InvalidJson(
                "The request needs a JSON object body.".into(),
            ));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(ApiError::InvalidJson(
                "The body must be a JSON object.".into(),
            )),
            Err(e) => Err(ApiError::InvalidJson(format!(
                "The body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ))),
        }
    }

    /// Writes `after` over `before`: its version bumped and `updated_at` set to `now`, with an
    /// audit event of `action` naming the `changed` fields, in one store transaction.
    async fn commit(
        &self,
        before: &StoredKey,
        after: &mut StoredKey,
        action: &str,
        changed: Vec<String>,
        active_delta: i64,
        now: i64,
    ) -> Result<(), ApiError> {
        after.record.version += 1;
        after.record.updated_at = Timestamp(now);
        let audit = self.audit_event(action, &after.record.id, changed)?;
        self.app
            .store
            .replace(Replace {
                before,
                after,
                audit: &audit,
                active_delta,
            })
            .await?;
        Ok(())
    }

    fn audit_event(
        &self,
        action: &str,
        key_id: &KeyId,
        changed: Vec<String>,
    ) -> Result<AuditEvent, ApiError> {
        let rand = random_bytes::<8>()?;
        Ok(AuditEvent {
            id: format!("{:013}#{}", self.ctx.now_ms, hex::encode(rand)),
            workspace: self.workspace.clone(),
            at: Timestamp(self.ctx.now()),
            actor: self.caller.actor.clone(),
            action: action.to_owned(),
            key_id: key_id.to_string(),
            changed,
            request_id: self.ctx.request_id.clone(),
            source_ip: self.ctx.source_ip.clone(),
        })
    }

    fn new_secret(prefix: &str) -> Result<SecretKey, ApiError> {
        let mut failed = false;
        let secret = SecretKey::generate(prefix, |buf: &mut [u8]| {
            if getrandom::fill(buf).is_err() {
                failed = true;
            }
        })
        .map_err(|e| anyhow::anyhow!("generating a key: {e}"))?;
        if failed {
            return Err(anyhow::anyhow!("OS random source failed").into());
        }
        Ok(secret)
    }

    async fn load(&self, id: &KeyId) -> Result<StoredKey, ApiError> {
        self.app
            .store
            .get(&self.workspace, id)
            .await?
            .ok_or(ApiError::NotFound)
    }

    fn check_if_match(&self, current: u64) -> Result<(), ApiError> {
        match if_match(self.req.headers().get(header::IF_MATCH))? {
            Some(Some(v)) if v != current => Err(ApiError::PreconditionFailed),
            _ => Ok(()),
        }
    }

    async fn create(&self) -> Result<Reply, ApiError> {
        let body = self.body(true)?;
        let now = self.ctx.now();
        let new = validate::create(body, self.policy(), &self.app.config.default_prefix, now)
            .map_err(ApiError::Validation)?;
        let secret = Self::new_secret(&new.prefix)?;
        let id = KeyId::new(self.ctx.now_ms, random_bytes::<10>()?);
        let record = KeyRecord {
            id: id.clone(),
            workspace: self.workspace.clone(),
            name: new.name,
            key_prefix: secret.presented().display_prefix(),
            scopes: new.scopes,
            owner_id: new.owner_id,
            meta: new.meta,
            status: KeyStatus::Active,
            created_at: Timestamp(now),
            updated_at: Timestamp(now),
            expires_at: new.expires_at,
            last_used_at: None,
            allowed_ips: new.allowed_ips,
            rate_limit: new.rate_limit,
            version: 1,
        };
        let stored = StoredKey {
            record,
            hash: secret.hash(),
            previous: None,
        };
        let audit = self.audit_event("key.create", &id, vec![])?;
        let cap = self.app.config.max_active_keys;
        self.app
            .store
            .create(&stored, &audit, cap)
            .await
            .map_err(|e| match ApiError::from(e) {
                ApiError::KeyLimitReached(_) => ApiError::KeyLimitReached(cap),
                other => other,
            })?;
        tracing::info!(key_id = %id, "key created");
        let mut r = reply(
            StatusCode::CREATED,
            &api::KeyWithSecret {
                record: stored.record,
                key: secret,
                warning: WARNING,
            },
        )?;
        r.location = Some(format!("/v1/workspaces/{}/keys/{id}", self.workspace));
        Ok(with_etag(r, 1))
    }

    async fn get(&self, id: &KeyId) -> Result<Reply, ApiError> {
        let key = self.load(id).await?;
        let v = key.record.version;
        Ok(with_etag(reply(StatusCode::OK, &key.record)?, v))
    }

    async fn update(&self, id: &KeyId) -> Result<Reply, ApiError> {
        let body = self.body(true)?;
        let patch =
            validate::patch(body, self.policy(), self.ctx.now()).map_err(ApiError::Validation)?;
        let before = self.load(id).await?;
        if before.record.status == KeyStatus::Revoked {
            return Err(ApiError::KeyRevoked);
        }
        self.check_if_match(before.record.version)?;
        let mut after = before.clone();
        let r = &mut after.record;
        let mut changed: Vec<String> = Vec::new();
        macro_rules! set {
            ($field:ident, $value:expr) => {
                if let Some(v) = $value {
                    if r.$field != v {
                        r.$field = v;
                        changed.push(stringify!($field).to_owned());
                    }
                }
            };
        }
        set!(name, patch.name);
        set!(scopes, patch.scopes);
        set!(owner_id, patch.owner_id);
        set!(meta, patch.meta);
        set!(expires_at, patch.expires_at);
        set!(allowed_ips, patch.allowed_ips);
        set!(rate_limit, patch.rate_limit);
        set!(status, patch.status);
        if changed.is_empty() {
            let v = before.record.version;
            return Ok(with_etag(reply(StatusCode::OK, &before.record)?, v));
        }
        self.commit(
            &before,
            &mut after,
            "key.update",
            changed,
            0,
            self.ctx.now(),
        )
        .await?;
        let v = after.record.version;
        Ok(with_etag(reply(StatusCode::OK, &after.record)?, v))
    }

    async fn revoke(&self, id: &KeyId) -> Result<Reply, ApiError> {
        let before = self.load(id).await?;
        if before.record.status == KeyStatus::Revoked {
            // Idempotent: the same revoked record, nothing written.
            let v = before.record.version;
            return Ok(with_etag(reply(StatusCode::OK, &before.record)?, v));
        }
        self.check_if_match(before.record.version)?;
        let mut after = before.clone();
        after.record.status = KeyStatus::Revoked;
        let changed = vec!["status".into()];
        self.commit(
            &before,
            &mut after,
            "key.revoke",
            changed,
            -1,
            self.ctx.now(),
        )
        .await?;
        tracing::info!(key_id = %id, "key revoked");
        let v = after.record.version;
        Ok(with_etag(reply(StatusCode::OK, &after.record)?, v))
    }

    async fn rotate(&self, id: &KeyId) -> Result<Reply, ApiError> {
        let grace = validate::rotate(self.body(false)?).map_err(ApiError::Validation)?;
        let before = self.load(id).await?;
        if before.record.status == KeyStatus::Revoked {
            return Err(ApiError::KeyRevoked);
        }
        self.check_if_match(before.record.version)?;
        let secret = Self::new_secret(before.record.prefix())?;
        let now = self.ctx.now();
        let mut after = before.clone();
        after.record.key_prefix = secret.presented().display_prefix();
        after.hash = secret.hash();
        // Any earlier grace secret is dropped: only the secret just replaced may linger.
        after.previous = (grace > 0).then(|| (before.hash.clone(), now + grace));
        let changed = vec!["key_prefix".into(), "secret".into()];
        self.commit(&before, &mut after, "key.rotate", changed, 0, now)
            .await?;
        tracing::info!(key_id = %id, grace_period_s = grace, "key rotated");
        let v = after.record.version;
        Ok(with_etag(
            reply(
                StatusCode::OK,
                &api::KeyWithSecret {
                    record: after.record,
                    key: secret,
                    warning: WARNING,
                },
            )?,
            v,
        ))
    }

    async fn list(&self) -> Result<Reply, ApiError> {
        let q = query(self.req, &["limit", "cursor", "status", "owner_id"])?;
        let limit = limit(&q)?;
        let mut errors = Vec::new();
        let status = match param(&q, "status") {
            None => None,
            Some(s) => KeyStatus::parse(s).or_else(|| {
                errors.push(keyward_common::FieldError::new(
                    "status",
                    "must be active, disabled or revoked",
                ));
                None
            }),
        };
        let owner_id = match param(&q, "owner_id") {
            Some(o) if o.is_empty() || o.chars().count() > validate::MAX_NAME => {
                errors.push(keyward_common::FieldError::new(
                    "owner_id",
                    "must be 1-128 characters",
                ));
                None
            }
            o => o.map(str::to_owned),
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let filters = format!(
            "status={}&owner_id={}",
            status.map_or("", KeyStatus::as_str),
            owner_id.as_deref().unwrap_or("")
        );
        let secret = &self.app.config.cursor_secret;
        let after = match param(&q, "cursor") {
            None | Some("") => None,
            Some(c) => Some(
                cursor::decode(secret, &self.workspace, &filters, c)
                    .map_err(|()| ApiError::InvalidCursor)?,
            ),
        };
        let page = self
            .app
            .store
            .list_keys(&KeyQuery {
                workspace: self.workspace.clone(),
                status,
                owner_id,
                limit,
                after,
            })
            .await?;
        let next_cursor = page
            .next
            .map(|p| cursor::encode(secret, &self.workspace, &filters, &p));
        reply(
            StatusCode::OK,
            &api::KeyList {
                has_more: next_cursor.is_some(),
                data: page.items,
                next_cursor,
            },
        )
    }

    async fn audit(&self) -> Result<Reply, ApiError> {
        let q = query(self.req, &["limit", "cursor"])?;
        let limit = limit(&q)?;
        let secret = &self.app.config.cursor_secret;
        let filters = "audit";
        let after = match param(&q, "cursor") {
            None | Some("") => None,
            Some(c) => Some(
                cursor::decode(secret, &self.workspace, filters, c)
                    .map_err(|()| ApiError::InvalidCursor)?,
            ),
        };
        let page = self
            .app
            .store
            .list_audit(&self.workspace, limit, after.as_ref())
            .await?;
        let next_cursor = page
            .next
            .map(|p| cursor::encode(secret, &self.workspace, filters, &p));
        reply(
            StatusCode::OK,
            &api::AuditList {
                has_more: next_cursor.is_some(),
                data: page.items,
                next_cursor,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_behind_any_prefix() {
        assert_eq!(
            parse_path("/lambda-url/get-key/v1/workspaces/acme/keys/key_1"),
            Some(("acme".into(), Some("key_1".into()), Shape::Key))
        );
        assert_eq!(
            parse_path("/prod/v1/workspaces/acme/keys/"),
            Some(("acme".into(), None, Shape::Keys))
        );
        assert_eq!(parse_path("/v1/workspaces/acme/other"), None);
        assert_eq!(parse_path("/"), None);
    }

    #[test]
    fn if_match_accepts_strong_weak_and_bare_versions() {
        let v = |s: &str| if_match(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(v("\"3\"").unwrap(), Some(Some(3)));
        assert_eq!(v("W/\"3\"").unwrap(), Some(Some(3)));
        assert_eq!(v("3").unwrap(), Some(Some(3)));
        assert_eq!(v("*").unwrap(), Some(None));
        assert!(v("\"x\"").is_err());
    }

    #[test]
    fn percent_decoding_handles_escapes_and_plus() {
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
    }
}
