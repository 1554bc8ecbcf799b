//! The typed client of Keyward's management API and the edge's verify API: one method per
//! operation, requests as `Serialize` structs, answers parsed into `keyward_common`'s types where
//! it has them (and into the wire types below where it does not yet).
//!
//! ```no_run
//! # async fn demo() -> Result<(), keyward_cli::client::ClientError> {
//! use keyward_cli::client::{Client, Connection, CreateKey};
//! let client = Client::new(Connection::from_env_or_dev_json(std::path::Path::new("."))?)?;
//! let created = client.create_key(&CreateKey::named("billing service"), None).await?;
//! println!("{} {}", created.value.record.id, created.value.key.expose());
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_common::{KeyRecord, KeyStatus, Problem, RateLimit, Timestamp, Verdict};
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where `cargo xtask dev` writes the local stack's connection, relative to the repository.
pub const DEV_JSON: &str = "target/keyward/dev.json";

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a replayable request is sent again after a transport error or a 5xx.
const RETRIES: u32 = 3;

/// Why a call did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with a problem (RFC 9457).
    #[error("{}", .0.detail)]
    Api(Box<ApiError>),
    /// The request could not be sent or its answer not read.
    #[error("calling {url}: {source}")]
    Http {
        /// What was called.
        url: String,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// A success status with a body that is not the documented shape.
    #[error("{url} answered {status} with a body that is not the expected JSON: {reason}")]
    Unexpected {
        /// What was called.
        url: String,
        /// Its status.
        status: u16,
        /// What did not parse.
        reason: String,
    },
    /// No connection settings were found.
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The API problem, when this is one.
    #[must_use]
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// An error answer of the API: the problem+json fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// What happened, written for the caller.
    pub detail: String,
    /// The request id to quote to support, when the API gave one.
    pub request_id: Option<String>,
    /// The whole problem (per-field errors included).
    pub problem: Problem,
}

impl ApiError {
    /// From an error answer's status and body: the problem when the body is one, else a
    /// problem made from the status and the start of the body.
    #[must_use]
    pub fn from_answer(status: u16, body: &str) -> Self {
        let problem = serde_json::from_str::<Problem>(body).unwrap_or_else(|_| {
            let text: String = body.chars().take(200).collect();
            let detail = if text.trim().is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {}", text.trim())
            };
            Problem::new(status, "http_error", detail)
        });
        Self {
            status,
            code: problem.code.clone(),
            detail: problem.detail.clone(),
            request_id: problem.request_id.clone(),
            problem,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.detail, self.code, self.status)
    }
}

/// A secret shown once by create and rotate: redacted in `Debug`, no `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShownSecret(String);

impl ShownSecret {
    /// The secret itself, to print once or hand to the caller.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ShownSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShownSecret(<redacted>)")
    }
}

/// Where the APIs are and who calls them.
#[derive(Clone)]
pub struct Connection {
    /// The control plane, e.g. `http://127.0.0.1:9000`.
    pub url: String,
    /// The edge, for `verify`.
    pub edge_url: Option<String>,
    /// A JWT or a root key.
    pub token: String,
    /// The workspace every management call addresses.
    pub workspace: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("edge_url", &self.edge_url)
            .field("token", &"<redacted>")
            .field("workspace", &self.workspace)
            .finish()
    }
}

/// The fields of `target/keyward/dev.json` the client reads.
#[derive(Deserialize)]
struct DevJson {
    control_plane_url: String,
    edge_url: Option<String>,
    workspace: String,
    admin_token: String,
}

impl Connection {
    /// `KEYWARD_URL`, `KEYWARD_EDGE_URL`, `KEYWARD_TOKEN`, `KEYWARD_WORKSPACE`; each one missing
    /// is taken from `{dir}/target/keyward/dev.json` (the running local stack).
    ///
    /// # Errors
    /// [`ClientError::Config`] when a setting is in neither place, or dev.json is unreadable.
    pub fn from_env_or_dev_json(dir: &Path) -> Result<Self, ClientError> {
        Self::resolve(|name| std::env::var(name).ok(), &dir.join(DEV_JSON))
    }

    /// [`Connection::from_env_or_dev_json`] with the environment as a function (for tests).
    ///
    /// # Errors
    /// As [`Connection::from_env_or_dev_json`].
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        dev_json: &Path,
    ) -> Result<Self, ClientError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let (url, edge_url, token, workspace) = (
            var("KEYWARD_URL"),
            var("KEYWARD_EDGE_URL"),
            var("KEYWARD_TOKEN"),
            var("KEYWARD_WORKSPACE"),
        );
        if let (Some(url), Some(token), Some(workspace)) = (&url, &token, &workspace) {
            return Ok(Self {
                url: trim_slash(url),
                edge_url: edge_url.as_deref().map(trim_slash),
                token: token.clone(),
                workspace: workspace.clone(),
            });
        }
        let dev = read_dev_json(dev_json)?;
        Ok(Self {
            url: trim_slash(&url.unwrap_or(dev.control_plane_url)),
            edge_url: edge_url.or(dev.edge_url).as_deref().map(trim_slash),
            token: token.unwrap_or(dev.admin_token),
            workspace: workspace.unwrap_or(dev.workspace),
        })
    }
}

fn read_dev_json(path: &Path) -> Result<DevJson, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ClientError::Config(format!(
            "no connection: set KEYWARD_URL, KEYWARD_TOKEN and KEYWARD_WORKSPACE, or start the \
             local stack with `cargo xtask dev` (reading {}: {e})",
            path.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Config(format!("reading {}: {e}", path.display())))
}

fn trim_slash(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// A rate limit with a name (`rate_limits` of DESIGN's "Credits, limits, cost").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRateLimit {
    /// Unique among the key's (or owner's) limits.
    pub name: String,
    /// Units allowed per window.
    pub limit: u32,
    /// Window length in seconds.
    pub period_s: u32,
}

/// Credits: a balance and an optional refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    /// Units left.
    pub remaining: u64,
    /// When and to what the balance is reset.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refill: Option<Refill>,
}

/// A credits refill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    /// The balance after a refill.
    pub amount: u64,
    /// `daily` or `monthly`.
    pub interval: String,
    /// Day of the month (monthly).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub day: Option<u8>,
}

/// `POST /keys` body. Empty lists and `None`s are left out, so the body has only what was set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateKey {
    /// Required.
    pub name: String,
    /// Default: the deployment's default set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Workspace roles by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The customer behind the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Free-form JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Lifetime in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Absolute expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// CIDRs; empty is any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// One limit (named `default`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Several named limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<NamedRateLimit>,
    /// A credits balance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<Credits>,
    /// `Some(Disabled)` creates the key switched off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<KeyStatus>,
    /// Key prefix; default the deployment's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl CreateKey {
    /// A key with only a name (every other setting at its default).
    #[must_use]
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// `PATCH /keys/{id}` body: `None` leaves a field as it is, `Some(None)` clears it (`null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateKey {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Replaces the scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Replaces the roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Owner; `Some(None)` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Option<String>>,
    /// Metadata; `Some(None)` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Option<Map<String, Value>>>,
    /// Expiry; `Some(None)` clears (never expires).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<Timestamp>>,
    /// Networks; `Some(None)` clears to any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Option<Vec<String>>>,
    /// One limit; `Some(None)` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Option<RateLimit>>,
    /// Several named limits (replaces them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<NamedRateLimit>>,
    /// Credits; `Some(None)` removes them (unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<Option<Credits>>,
    /// `Active` or `Disabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<KeyStatus>,
}

impl UpdateKey {
    /// Whether the patch changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `POST /keys/{id}/rotate` body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RotateKey {
    /// Seconds the old secret keeps working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period_s: Option<u32>,
}

/// Filters and paging of `GET /keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListKeys {
    /// Page size, 1–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only keys with this status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<KeyStatus>,
    /// Only this owner's keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Only holders of this role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Paging of the other lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Paging {
    /// Page size, 1–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One page of a list: `{data, has_more, next_cursor}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub data: Vec<T>,
    /// Whether another page follows.
    pub has_more: bool,
    /// The `cursor` of the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Create and rotate answer: the record plus the secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyWithSecret {
    /// The key.
    #[serde(flatten)]
    pub record: KeyRecord,
    /// The secret. Never shown again.
    pub key: ShownSecret,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Sorts by time.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// `jwt:{sub}` or `key:{key_id}`.
    pub actor: String,
    /// `key.create`, `key.update`, …
    pub action: String,
    /// The key acted on.
    #[serde(default)]
    pub key_id: String,
    /// Names of the fields that changed.
    #[serde(default)]
    pub changed: Vec<String>,
    /// The request that did it.
    #[serde(default)]
    pub request_id: String,
    /// The caller's address, when known.
    #[serde(default)]
    pub source_ip: Option<String>,
}

/// A workspace role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// `[a-z0-9][a-z0-9._-]{0,63}`.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// What every holder gets.
    pub permissions: Vec<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// Optimistic-concurrency version.
    #[serde(default)]
    pub version: Option<u64>,
}

/// `POST /roles` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateRole {
    /// The role's name.
    pub name: String,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its permissions.
    pub permissions: Vec<String>,
}

/// `PATCH /roles/{name}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateRole {
    /// `Some(None)` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    /// Replaces the permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// An owner: the customer behind keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// The owner's id in the product's system.
    #[serde(alias = "id")]
    pub owner_id: String,
    /// `active` or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
    /// Limits shared by the owner's keys.
    #[serde(default)]
    pub rate_limits: Vec<NamedRateLimit>,
    /// Credits shared by the owner's keys.
    #[serde(default)]
    pub credits: Option<Credits>,
    /// How many keys name this owner (GET one).
    #[serde(default)]
    pub key_count: Option<u64>,
}

/// `PUT /owners/{id}` body (replaces the owner's settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PutOwner {
    /// `active` or `disabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Shared limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<NamedRateLimit>>,
    /// Shared credits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<Credits>,
}

/// How `POST /keys/{id}/credits` changes the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreditsOp {
    /// To `value`.
    Set,
    /// By `value`.
    Increment,
    /// By `value`.
    Decrement,
}

/// `POST /keys/{id}/credits` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChangeCredits {
    /// What to do.
    pub op: CreditsOp,
    /// By or to how much.
    pub value: u64,
}

/// `POST /keys/{id}/credits` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remaining {
    /// The balance after the change.
    pub remaining: u64,
}

/// The window and buckets of a usage read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageQuery {
    /// RFC 3339 or `YYYY-MM-DD`, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Exclusive end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `hour` or `day`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    /// `key` or `owner` (the report only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Only this owner's keys (the report only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Rows per page (the report as JSON only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (the report as JSON only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A usage answer: rows of counts by outcome. Rows are kept as JSON objects so that outcomes
/// added later are shown too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// The buckets (`start`, `valid`, `rate_limited`, …, `credits_spent`).
    pub data: Vec<Map<String, Value>>,
    /// The report's next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One key of an import: plaintext `key` or SHA-256 `hash`, plus create fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportKey {
    /// The plaintext secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<ShownSecret>,
    /// Its SHA-256, lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Name.
    pub name: String,
    /// Scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Roles.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl ShownSecret {
    /// A secret read from the user (an import file).
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }
}

/// `POST /keys/import` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportKeys {
    /// At most [`IMPORT_BATCH`] keys.
    pub keys: Vec<ImportKey>,
}

/// The most keys one import call takes.
pub const IMPORT_BATCH: usize = 1000;

/// `POST /keys/import` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    /// How many keys were created.
    pub created: u64,
    /// How many were refused.
    pub refused: u64,
    /// One per key sent, by index.
    pub results: Vec<ImportResult>,
}

/// The fate of one imported key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportResult {
    /// Position in the request's `keys`.
    pub index: usize,
    /// The new key's id, when created.
    #[serde(default)]
    pub id: Option<String>,
    /// Why it was refused.
    #[serde(default)]
    pub error: Option<Problem>,
}

/// The edge's `POST /v1/keys/verify` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyKey {
    /// The key to check.
    pub key: String,
    /// A one-name permission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A permission query (`a AND (b OR c)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// Only keys of this workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Units to spend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// An answer together with its raw JSON, for `--json` output.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The typed answer.
    pub value: T,
    /// The body as the API sent it (parsed).
    pub json: Value,
}

/// A client of one workspace's management API (and of the edge's verify API).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    connection: Connection,
}

impl Client {
    /// A client for `connection`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(connection: Connection) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("keyward-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Http {
                url: connection.url.clone(),
                source,
            })?;
        Ok(Self { http, connection })
    }

    /// The connection it uses.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The same client acting in another workspace with another credential.
    #[must_use]
    pub fn with_credentials(&self, workspace: &str, token: &str) -> Self {
        let mut c = self.clone();
        c.connection.workspace = workspace.to_owned();
        c.connection.token = token.to_owned();
        c
    }

    /// `{url}/v1/workspaces/{workspace}{path}`.
    fn url(&self, path: &str) -> String {
        format!(
            "{}/v1/workspaces/{}{path}",
            self.connection.url, self.connection.workspace
        )
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.connection.token)
    }

    /// `POST /keys`: a new key and its secret.
    ///
    /// # Errors
    /// [`ClientError::Api`] for the API's refusals (validation, escalation, key limit, …),
    /// [`ClientError::Http`] when it cannot be reached.
    pub async fn create_key(
        &self,
        body: &CreateKey,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<KeyWithSecret>, ClientError> {
        let mut req = self.request(Method::POST, "/keys").json(body);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        self.send(req).await
    }

    /// `GET /keys`: one page.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn list_keys(
        &self,
        query: &ListKeys,
    ) -> Result<Answer<Page<KeyRecord>>, ClientError> {
        self.send(self.request(Method::GET, "/keys").query(query))
            .await
    }

    /// `GET /keys/{id}`.
    ///
    /// # Errors
    /// As [`Client::create_key`]; 404 `not_found` for an unknown id.
    pub async fn get_key(&self, id: &str) -> Result<Answer<KeyRecord>, ClientError> {
        self.send(self.request(Method::GET, &format!("/keys/{}", segment(id))))
            .await
    }

    /// `PATCH /keys/{id}`, with `If-Match` naming `version` when given.
    ///
    /// # Errors
    /// As [`Client::create_key`]; 412 when the key changed since `version`.
    pub async fn update_key(
        &self,
        id: &str,
        patch: &UpdateKey,
        version: Option<u64>,
    ) -> Result<Answer<KeyRecord>, ClientError> {
        let mut req = self
            .request(Method::PATCH, &format!("/keys/{}", segment(id)))
            .json(patch);
        if let Some(v) = version {
            req = req.header(header::IF_MATCH, format!("\"{v}\""));
        }
        self.send(req).await
    }

    /// `DELETE /keys/{id}`: revoke (idempotent).
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn revoke_key(&self, id: &str) -> Result<Answer<KeyRecord>, ClientError> {
        self.send(self.request(Method::DELETE, &format!("/keys/{}", segment(id))))
            .await
    }

    /// `POST /keys/{id}/rotate`: a new secret for the same key.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn rotate_key(
        &self,
        id: &str,
        body: &RotateKey,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<KeyWithSecret>, ClientError> {
        let mut req = self
            .request(Method::POST, &format!("/keys/{}/rotate", segment(id)))
            .json(body);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        self.send(req).await
    }

    /// `POST /keys/import`: up to [`IMPORT_BATCH`] existing keys.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn import_keys(
        &self,
        body: &ImportKeys,
        idempotency_key: &str,
    ) -> Result<Answer<Imported>, ClientError> {
        let req = self
            .request(Method::POST, "/keys/import")
            .header("idempotency-key", idempotency_key)
            .json(body);
        self.send(req).await
    }

    /// `POST /keys/{id}/credits`.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn change_credits(
        &self,
        id: &str,
        change: &ChangeCredits,
    ) -> Result<Answer<Remaining>, ClientError> {
        let req = self
            .request(Method::POST, &format!("/keys/{}/credits", segment(id)))
            .json(change);
        self.send(req).await
    }

    /// `POST /owners/{id}/credits`: the balance all the owner's keys share.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn change_owner_credits(
        &self,
        id: &str,
        change: &ChangeCredits,
    ) -> Result<Answer<Remaining>, ClientError> {
        let req = self
            .request(Method::POST, &format!("/owners/{}/credits", segment(id)))
            .json(change);
        self.send(req).await
    }

    /// `GET /keys/{id}/usage`.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn key_usage(
        &self,
        id: &str,
        query: &UsageQuery,
    ) -> Result<Answer<Usage>, ClientError> {
        let req = self
            .request(Method::GET, &format!("/keys/{}/usage", segment(id)))
            .query(query);
        self.send(req).await
    }

    /// `GET /usage` as JSON.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn usage_report(&self, query: &UsageQuery) -> Result<Answer<Usage>, ClientError> {
        self.send(self.request(Method::GET, "/usage").query(query))
            .await
    }

    /// `GET /usage` as CSV (`Accept: text/csv`), for billing.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn usage_report_csv(&self, query: &UsageQuery) -> Result<String, ClientError> {
        let req = self
            .request(Method::GET, "/usage")
            .query(query)
            .header(header::ACCEPT, "text/csv");
        let (_, text) = self.call(req).await?;
        Ok(text)
    }

    /// `GET /audit`: one page.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn list_audit(
        &self,
        paging: &Paging,
    ) -> Result<Answer<Page<AuditEvent>>, ClientError> {
        self.send(self.request(Method::GET, "/audit").query(paging))
            .await
    }

    /// `GET /roles`: one page.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn list_roles(&self, paging: &Paging) -> Result<Answer<Page<Role>>, ClientError> {
        self.send(self.request(Method::GET, "/roles").query(paging))
            .await
    }

    /// `GET /roles/{name}`.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn get_role(&self, name: &str) -> Result<Answer<Role>, ClientError> {
        self.send(self.request(Method::GET, &format!("/roles/{}", segment(name))))
            .await
    }

    /// `POST /roles`.
    ///
    /// # Errors
    /// As [`Client::create_key`]; 409 when the name is taken.
    pub async fn create_role(&self, body: &CreateRole) -> Result<Answer<Role>, ClientError> {
        self.send(self.request(Method::POST, "/roles").json(body))
            .await
    }

    /// `PATCH /roles/{name}`.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn update_role(
        &self,
        name: &str,
        patch: &UpdateRole,
    ) -> Result<Answer<Role>, ClientError> {
        let req = self
            .request(Method::PATCH, &format!("/roles/{}", segment(name)))
            .json(patch);
        self.send(req).await
    }

    /// `DELETE /roles/{name}`.
    ///
    /// # Errors
    /// As [`Client::create_key`]; 409 `role_in_use` while a key holds it.
    pub async fn delete_role(&self, name: &str) -> Result<Value, ClientError> {
        let req = self.request(Method::DELETE, &format!("/roles/{}", segment(name)));
        let (_, text) = self.call(req).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `PUT /owners/{id}`: create or replace an owner's settings.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn put_owner(&self, id: &str, body: &PutOwner) -> Result<Answer<Owner>, ClientError> {
        let req = self
            .request(Method::PUT, &format!("/owners/{}", segment(id)))
            .json(body);
        self.send(req).await
    }

    /// `GET /owners/{id}`.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn get_owner(&self, id: &str) -> Result<Answer<Owner>, ClientError> {
        self.send(self.request(Method::GET, &format!("/owners/{}", segment(id))))
            .await
    }

    /// `GET /owners`: one page.
    ///
    /// # Errors
    /// As [`Client::create_key`].
    pub async fn list_owners(&self, paging: &Paging) -> Result<Answer<Page<Owner>>, ClientError> {
        self.send(self.request(Method::GET, "/owners").query(paging))
            .await
    }

    /// The edge's `POST /v1/keys/verify` (no credential: the key is what is checked).
    ///
    /// # Errors
    /// [`ClientError::Config`] without an edge URL; otherwise as [`Client::create_key`].
    pub async fn verify(&self, body: &VerifyKey) -> Result<Answer<Verdict>, ClientError> {
        let edge = self.connection.edge_url.as_deref().ok_or_else(|| {
            ClientError::Config(
                "no edge URL: set KEYWARD_EDGE_URL (or run the local stack)".to_owned(),
            )
        })?;
        let req = self.http.post(format!("{edge}/v1/keys/verify")).json(body);
        self.send(req).await
    }

    /// Sends `req` and parses a success answer as `T`.
    async fn send<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<Answer<T>, ClientError> {
        let (url, text) = self.call(req).await?;
        let json: Value = serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
            url: url.clone(),
            status: 200,
            reason: e.to_string(),
        })?;
        let value = T::deserialize(&json).map_err(|e| ClientError::Unexpected {
            url,
            status: 200,
            reason: e.to_string(),
        })?;
        Ok(Answer { value, json })
    }

    /// Sends `req`; a success answer's URL and body, or the API's problem.
    async fn call(&self, req: RequestBuilder) -> Result<(String, String), ClientError> {
        let mut req = req.build().map_err(|source| ClientError::Http {
            url: self.connection.url.clone(),
            source,
        })?;
        // The path only: a query can hold a cursor, never worth showing in an error.
        let url = format!(
            "{} {}",
            req.method(),
            req.url().as_str().split('?').next().unwrap_or_default()
        );
        // A request the API answers the same however often it arrives (a read, or a write with
        // an `Idempotency-Key`, whose replay returns the first answer) is sent again after a
        // transport error, a 5xx or a 409 `idempotency_in_progress`, as Stripe's clients do.
        let replayable =
            req.method() == Method::GET || req.headers().contains_key("idempotency-key");
        let mut attempt = 0u32;
        let (status, text) = loop {
            let again = req.try_clone().filter(|_| replayable && attempt < RETRIES);
            let outcome = match self.http.execute(req).await {
                Ok(response) => {
                    let status = response.status();
                    response.text().await.map(|text| (status, text))
                }
                Err(e) => Err(e),
            };
            let retry = match &outcome {
                Err(_) => true,
                Ok((status, text)) => {
                    status.is_server_error()
                        || (*status == StatusCode::CONFLICT
                            && text.contains("idempotency_in_progress"))
                }
            };
            match again {
                Some(next) if retry => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    req = next;
                }
                _ => {
                    break outcome.map_err(|source| ClientError::Http {
                        url: url.clone(),
                        source,
                    })?;
                }
            }
        };
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            Ok((url, text))
        } else {
            Err(ClientError::Api(Box::new(ApiError::from_answer(
                status.as_u16(),
                &text,
            ))))
        }
    }
}

/// A path segment, percent-encoded so an id cannot change the path it is put in.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Labels of the outcomes a usage row counts, in display order.
pub const OUTCOMES: &[&str] = &[
    "valid",
    "rate_limited",
    "usage_exceeded",
    "forbidden",
    "disabled",
    "expired",
    "revoked",
    "credits_spent",
];

/// The directory `dev.json` is looked for under: the current directory.
#[must_use]
pub fn default_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_problem_answer_becomes_an_api_error_with_its_fields() {
        let body = r#"{"type":"https://keyward.dev/problems/not-found","title":"Not Found",
            "status":404,"detail":"No key key_x in this workspace.","code":"not_found",
            "request_id":"req-1"}"#;
        let e = ApiError::from_answer(404, body);
        assert_eq!(
            (e.status, e.code.as_str(), e.request_id.as_deref()),
            (404, "not_found", Some("req-1"))
        );
        assert_eq!(e.detail, "No key key_x in this workspace.");
    }

    #[test]
    fn a_non_problem_error_answer_still_gives_a_detail() {
        let e = ApiError::from_answer(502, "Bad gateway\n");
        assert_eq!(e.code, "http_error");
        assert_eq!(e.detail, "HTTP 502: Bad gateway");
        assert_eq!(ApiError::from_answer(500, "").detail, "HTTP 500");
    }

    #[test]
    fn create_bodies_hold_only_what_was_set() {
        let body = serde_json::to_value(CreateKey::named("ci")).unwrap();
        assert_eq!(body, json!({"name": "ci"}));
        let body = serde_json::to_value(CreateKey {
            status: Some(KeyStatus::Disabled),
            rate_limit: Some(RateLimit {
                limit: 5,
                period_s: 60,
            }),
            ..CreateKey::named("ci")
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"name": "ci", "status": "disabled", "rate_limit": {"limit": 5, "period_s": 60}})
        );
    }

    #[test]
    fn patches_tell_absent_from_null() {
        let patch = UpdateKey {
            owner_id: Some(None),
            name: Some("n".into()),
            ..UpdateKey::default()
        };
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"name": "n", "owner_id": null})
        );
        assert!(UpdateKey::default().is_empty());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = ShownSecret::new("kw_secret".into());
        assert_eq!(format!("{s:?}"), "ShownSecret(<redacted>)");
        assert!(
            !format!(
                "{:?}",
                ImportKey {
                    key: Some(s),
                    ..ImportKey::default()
                }
            )
            .contains("kw_secret")
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("key_AbC-1.x~"), "key_AbC-1.x~");
        assert_eq!(segment("../a b/c"), "..%2Fa%20b%2Fc");
    }

    fn dev_json(dir: &Path) -> PathBuf {
        let path = dir.join("dev.json");
        std::fs::write(
            &path,
            r#"{"control_plane_url": "http://127.0.0.1:1/", "edge_url": "http://127.0.0.1:2",
               "origin_url": "http://127.0.0.1:3", "workspace": "dev", "admin_token": "s3cr3t-dev-token",
               "jwt": {"alg": "HS256", "secret": "s", "issuer": "i", "audience": "a"}}"#,
        )
        .unwrap();
        path
    }

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyward-cli-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn dev_json_fills_in_what_the_environment_does_not_set() {
        let dir = temp_dir("devjson");
        let path = dev_json(&dir);
        let c = Connection::resolve(|_| None, &path).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:1");
        assert_eq!(c.edge_url.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(
            (c.token.as_str(), c.workspace.as_str()),
            ("s3cr3t-dev-token", "dev")
        );
        let c = Connection::resolve(
            |n| (n == "KEYWARD_WORKSPACE").then(|| "acme".to_owned()),
            &path,
        )
        .unwrap();
        assert_eq!(
            (c.workspace.as_str(), c.token.as_str()),
            ("acme", "s3cr3t-dev-token")
        );
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "the token is redacted"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_environment_alone_is_enough_and_a_missing_dev_json_is_explained() {
        let env = |n: &str| match n {
            "KEYWARD_URL" => Some("https://api.example/".to_owned()),
            "KEYWARD_TOKEN" => Some("t".to_owned()),
            "KEYWARD_WORKSPACE" => Some("w".to_owned()),
            _ => None,
        };
        let missing = Path::new("/nonexistent/dev.json");
        let c = Connection::resolve(env, missing).unwrap();
        assert_eq!((c.url.as_str(), c.edge_url), ("https://api.example", None));
        let err = Connection::resolve(|_| None, missing).unwrap_err();
        assert!(err.to_string().contains("KEYWARD_URL"), "{err}");
    }

    #[test]
    fn create_and_rotate_answers_parse_into_the_record_and_the_secret() {
        let answer = json!({
            "id": "key_0000000000000000000000", "workspace": "dev", "name": "n",
            "key_prefix": "kw_abcdefgh…", "scopes": ["read"], "roles": [], "owner_id": null,
            "meta": null, "status": "active", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "expires_at": null, "last_used_at": null,
            "allowed_ips": [], "rate_limit": null, "version": 1,
            "key": "kw_secret", "warning": "Store this key now"
        });
        let k: KeyWithSecret = serde_json::from_value(answer).unwrap();
        assert_eq!(k.key.expose(), "kw_secret");
        assert_eq!(k.record.name, "n");
    }
}
