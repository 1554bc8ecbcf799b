//! The `usage` function: `POST /v1/usage`, the edge's HMAC-signed usage batches into DynamoDB.
//!
//! Per report: the key item's `last_used_at` becomes the max of stored and reported (a
//! conditional update, so an old or replayed report never moves it back; `version` is untouched,
//! as last use is not a settings change), and the key's counts of that UTC hour grow by the
//! report's (ADD on both usage items, `store::usage`), in one transaction with the (batch,
//! report) marker so a resent batch adds nothing. Signed with the usage secret
//! (`KEYWARD_USAGE_SECRET`, not the sync secret: each direction has its own), not a JWT: a missing or bad signature is a 401 and nothing is written.

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use keyward_common::sync::{
    SIGNATURE_HEADER, TIMESTAMP_HEADER, UsageBatch, UsageReport, valid_batch_id, verify_signature,
};
use keyward_common::{FieldError, Problem, ProblemCode, Timestamp};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response, service_fn};

use crate::config::ConfigError;
use crate::config::required;
use crate::runtime::{exit_on_config_error, unix_now};
use crate::store::item::{self, PK, SK};

/// Most reports one batch may carry.
pub const MAX_REPORTS: usize = keyward_common::sync::MAX_USAGE_REPORTS;
/// Largest body accepted (1000 reports fit comfortably).
pub const MAX_BODY: usize = 512 * 1024;

pub use crate::store::usage::{Recorded, UsageStore};

/// The DynamoDB [`UsageStore`].
#[derive(Debug, Clone)]
pub struct DynamoUsage {
    client: Client,
    table: String,
    alerts: AuthFailureAlerts,
}

/// When a key's refused requests make a `key.auth_failures` event: `threshold` of them
/// within one window of `window_s` seconds (windows start at multiples of `window_s`, in the
/// time the reports arrive). Defaults: 20 in 300 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailureAlerts {
    /// Refusals in one window that make the event.
    pub threshold: u64,
    /// The window's length.
    pub window_s: i64,
}

impl Default for AuthFailureAlerts {
    fn default() -> Self {
        Self {
            threshold: 20,
            window_s: 300,
        }
    }
}

impl AuthFailureAlerts {
    /// Reads `KEYWARD_AUTH_FAILURE_THRESHOLD` and `KEYWARD_AUTH_FAILURE_WINDOW_S` via `get`.
    ///
    /// # Errors
    /// The variable that is not a whole number in range.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut a = Self::default();
        let number = |name: &'static str, max: u64| -> Result<Option<u64>, ConfigError> {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or(ConfigError::Invalid {
                            name,
                            why: format!("must be a whole number from 1 to {max}"),
                        })
                })
                .transpose()
        };
        if let Some(t) = number("KEYWARD_AUTH_FAILURE_THRESHOLD", 1_000_000)? {
            a.threshold = t;
        }
        if let Some(w) = number("KEYWARD_AUTH_FAILURE_WINDOW_S", 86_400)? {
            a.window_s = i64::try_from(w).unwrap_or(300);
        }
        Ok(a)
    }
}

/// The refusals that count as failed authentication: wrong IP or missing permission,
/// disabled, expired, revoked (not rate limits or spent credits: those are the plan working).
#[must_use]
pub fn auth_failures(c: &keyward_common::sync::OutcomeCounts) -> u64 {
    c.forbidden + c.disabled + c.expired + c.revoked
}

impl DynamoUsage {
    /// A store on `table` through `client`, with the default alert thresholds.
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            alerts: AuthFailureAlerts::default(),
        }
    }

    /// The same with `alerts`.
    #[must_use]
    pub fn with_alerts(self, alerts: AuthFailureAlerts) -> Self {
        Self { alerts, ..self }
    }

    /// Adds `failures` to the key's count of this window; the report that takes the count
    /// across the threshold writes the window's `key.auth_failures` event (once: its id names
    /// the window).
    async fn count_failures(&self, r: &UsageReport, failures: u64, now: i64) -> anyhow::Result<()> {
        let window = now - now.rem_euclid(self.alerts.window_s);
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(item::workspace_pk(&r.workspace)))
            .key(
                SK,
                AttributeValue::S(format!("AUTHFAIL#{}#{window:010}", r.key_id)),
            )
            .update_expression("ADD #c :n SET #ttl = :ttl")
            .expression_attribute_names("#c", "count")
            .expression_attribute_names("#ttl", item::TTL)
            .expression_attribute_values(":n", AttributeValue::N(failures.to_string()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((window + self.alerts.window_s + 86_400).to_string()),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .context("counting refused requests")?;
        let count: u64 = counted
            .attributes()
            .and_then(|a| a.get("count"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let t = self.alerts.threshold;
        if count < t || count - failures >= t {
            return Ok(());
        }
        let key = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(item::workspace_pk(&r.workspace)))
            .key(SK, AttributeValue::S(item::key_sk(&r.key_id)))
            .projection_expression("#n, #o")
            .expression_attribute_names("#n", item::key::NAME)
            .expression_attribute_names("#o", item::key::OWNER_ID)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .context("reading the key's name")?;
        let field = |k: &str| {
            key.item()
                .and_then(|i| i.get(k))
                .and_then(|v| v.as_s().ok())
                .cloned()
        };
        let event = crate::events::Event::new(
            &r.workspace,
            "key.auth_failures",
            now,
            serde_json::json!({
                "key_id": r.key_id, "name": field(item::key::NAME),
                "owner_id": field(item::key::OWNER_ID), "count": count, "threshold": t,
                "window_start": Timestamp(window), "window_s": self.alerts.window_s,
            }),
            &[&r.key_id.to_string(), &window.to_string()],
        );
        crate::events::outbox::put(&self.client, &self.table, &event).await?;
        Ok(())
    }
}

#[async_trait]
impl UsageStore for DynamoUsage {
    async fn record(
        &self,
        batch_id: &str,
        index: usize,
        r: &UsageReport,
        now: i64,
    ) -> anyhow::Result<Recorded> {
        if let Some(last_used_at) = r.last_used_at {
            self.touch(r, last_used_at).await?;
        }
        // The count and the (batch, report) marker in one transaction: a resent batch finds its
        // markers and adds nothing, so a retried flush never counts twice.
        let marker = Put::builder()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(item::usage_batch_pk(batch_id)))
            .item(SK, AttributeValue::S(item::usage_report_sk(index)))
            .item(
                item::TTL,
                AttributeValue::N((now + item::USAGE_BATCH_TTL_S).to_string()),
            )
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .context("building the usage batch marker")?;
        let [by_key, by_hour] = crate::store::usage::count_updates(&self.table, r)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().update(by_key).build())
            .transact_items(TransactWriteItem::builder().update(by_hour).build())
            .send()
            .await;
        match written {
            Ok(_) => {
                let failures = auth_failures(&r.counts);
                if failures > 0 {
                    // An alert, not a bill: a failure here is logged, never retried (the
                    // batch's markers already stand).
                    if let Err(e) = self.count_failures(r, failures, now).await {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "counting refused requests failed"
                        );
                    }
                }
                Ok(Recorded::Counted)
            }
            Err(SdkError::ServiceError(e))
                if e.err().is_transaction_canceled_exception() && marker_exists(e.err()) =>
            {
                Ok(Recorded::Duplicate)
            }
            Err(e) => Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .with_context(|| format!("counting usage of key {} at {}", r.key_id, r.hour)),
        }
    }

    async fn balance(&self, report: &keyward_common::sync::BalanceReport) -> anyhow::Result<bool> {
        use crate::store::KeyStore as _;
        let store = crate::store::dynamo::DynamoStore::new(self.client.clone(), self.table.clone());
        Ok(store.apply_balance(report).await?)
    }
}

impl DynamoUsage {
    /// Moves the key's `last_used_at` forward to `t` (never back; nothing when the key is gone).
    async fn touch(&self, r: &UsageReport, t: i64) -> anyhow::Result<()> {
        let key_update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(item::workspace_pk(&r.workspace)))
            .key(SK, AttributeValue::S(item::key_sk(&r.key_id)))
            .update_expression("SET #lu = :t")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(#lu) OR #lu < :t)",
            )
            .expression_attribute_names("#lu", item::key::LAST_USED_AT)
            .expression_attribute_values(":t", AttributeValue::N(t.to_string()))
            .send()
            .await;
        match key_update {
            Ok(_) => {}
            // Already as recent (or the key is gone): monotonic, nothing to do.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
            Err(e) => {
                return Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                    .with_context(|| format!("setting last_used_at of key {}", r.key_id));
            }
        }
        Ok(())
    }
}

/// Whether a cancelled usage transaction failed only because its marker exists (a resend).
fn marker_exists(e: &TransactWriteItemsError) -> bool {
    match e {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            c.cancellation_reasons().first().and_then(|r| r.code())
                == Some("ConditionalCheckFailed")
        }
        _ => false,
    }
}

/// What the function needs: built once per process.
#[derive(Clone)]
pub struct UsageApp {
    /// Where reports go.
    pub store: Arc<dyn UsageStore>,
    /// The usage secret the edge signs with.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for UsageApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageApp")
            .field("store", &self.store)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn problem(p: Problem, request_id: &str) -> Response<Body> {
    let p = p.with_request_id(request_id);
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, keyward_common::problem::CONTENT_TYPE)
        .header("x-request-id", request_id)
        .body(Body::Text(p.to_json()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The field errors of `batch`, empty when it is acceptable.
#[must_use]
pub fn validate(batch: &UsageBatch) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !valid_batch_id(&batch.batch_id) {
        errors.push(FieldError::new(
            "batch_id",
            "must be 8-64 characters of A-Z a-z 0-9 _ -",
        ));
    }
    if batch.balances.len() > MAX_REPORTS {
        errors.push(FieldError::new(
            "balances",
            format!("at most {MAX_REPORTS} balances per batch"),
        ));
    }
    for (i, b) in batch.balances.iter().enumerate() {
        if b.remaining > keyward_common::credits::MAX_CREDITS {
            errors.push(FieldError::new(
                format!("balances[{i}].remaining"),
                "must be at most 1000000000000",
            ));
        }
    }
    if batch.reports.len() > MAX_REPORTS {
        errors.push(FieldError::new(
            "reports",
            format!("at most {MAX_REPORTS} reports per batch"),
        ));
        return errors;
    }
    for (i, r) in batch.reports.iter().enumerate() {
        if r.counts.requests() == 0 {
            errors.push(FieldError::new(
                format!("reports[{i}].counts"),
                "must count at least one request",
            ));
        }
        if r.hour.rem_euclid(3600) != 0 || Timestamp::from_unix(r.hour).is_err() {
            errors.push(FieldError::new(
                format!("reports[{i}].hour"),
                "must be the Unix second an UTC hour starts",
            ));
        }
        if r.workspace.is_empty() || r.workspace.len() > 128 {
            errors.push(FieldError::new(
                format!("reports[{i}].workspace"),
                "must be 1-128 characters",
            ));
        }
        if r.last_used_at
            .is_some_and(|t| Timestamp::from_unix(t).is_err())
        {
            errors.push(FieldError::new(
                format!("reports[{i}].last_used_at"),
                "must be Unix seconds",
            ));
        }
    }
    errors
}

/// Handles one request at time `now`: signature, body, writes, `200 {"accepted": n}`.
pub async fn handle(app: &UsageApp, req: Request, now: i64) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    if req.method() != Method::POST {
        return problem(
            Problem::of(
                ProblemCode::MethodNotAllowed,
                "This path answers POST only.",
            ),
            &request_id,
        );
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY {
        return problem(
            Problem::of(
                ProblemCode::PayloadTooLarge,
                "The body is larger than 512 KiB.",
            ),
            &request_id,
        );
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = verify_signature(
        &app.secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        body,
        now,
    ) {
        tracing::warn!(error = %e, "usage batch refused");
        return problem(
            Problem::of(
                ProblemCode::Unauthorized,
                format!("Usage batches must be signed with the usage secret: {e}."),
            ),
            &request_id,
        );
    }
    let batch: UsageBatch = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return problem(
                Problem::of(
                    ProblemCode::InvalidJson,
                    format!("The body is not a usage batch: {e}."),
                ),
                &request_id,
            );
        }
    };
    let errors = validate(&batch);
    if !errors.is_empty() {
        return problem(Problem::validation(errors), &request_id);
    }
    let mut duplicates = 0;
    let mut counted = keyward_common::sync::OutcomeCounts::default();
    for (index, report) in batch.reports.iter().enumerate() {
        match app.store.record(&batch.batch_id, index, report, now).await {
            Ok(Recorded::Counted) => counted.add(&report.counts),
            Ok(Recorded::Duplicate) => duplicates += 1,
            Err(e) => {
                tracing::error!(request_id, error = format!("{e:#}"), "writing usage failed");
                return problem(
                    Problem::of(
                        ProblemCode::Internal,
                        "Something went wrong on our side; quote the request id to support.",
                    ),
                    &request_id,
                );
            }
        }
    }
    // Balances after the counts: a failure here is logged and the batch still confirmed, as
    // the next report carries a newer balance anyway.
    let mut balances = 0;
    for b in &batch.balances {
        match app.store.balance(b).await {
            Ok(true) => balances += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(
                    request_id,
                    error = format!("{e:#}"),
                    "storing a balance failed"
                );
            }
        }
    }
    for (outcome, count) in [
        ("VALID", counted.valid),
        ("RATE_LIMITED", counted.rate_limited),
        ("USAGE_EXCEEDED", counted.usage_exceeded),
        ("FORBIDDEN", counted.forbidden),
        ("DISABLED", counted.disabled),
        ("EXPIRED", counted.expired),
        ("REVOKED", counted.revoked),
    ] {
        if count > 0 {
            crate::metrics::verifications(outcome, count);
        }
    }
    tracing::info!(
        request_id,
        batch_id = batch.batch_id,
        reports = batch.reports.len(),
        duplicates,
        balances,
        "usage recorded"
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(
            serde_json::json!({ "accepted": batch.reports.len() }).to_string(),
        ))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The `usage` Lambda function: configuration, a DynamoDB client, then the runtime loop.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run() -> Result<(), lambda_http::Error> {
    crate::runtime::init_logging();
    let sdk = crate::runtime::sdk_config("usage").await;
    let secrets = crate::runtime::load_secrets(&sdk, &[crate::runtime::USAGE_SECRET])
        .await
        .unwrap_or_else(|e| exit_on_config_error("usage", &e));
    let get = secrets.lookup();
    let config: Result<(String, String, AuthFailureAlerts), ConfigError> = (|| {
        Ok((
            required(&get, "KEYWARD_TABLE")?,
            required(&get, "KEYWARD_USAGE_SECRET")?,
            AuthFailureAlerts::from_lookup(&get)?,
        ))
    })();
    let (table, secret, alerts) = config.unwrap_or_else(|e| exit_on_config_error("usage", &e));
    let app = Arc::new(UsageApp {
        store: Arc::new(DynamoUsage::new(Client::new(&sdk), table).with_alerts(alerts)),
        secret: secret.into_bytes(),
    });
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(handle(&app, req, unix_now()).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_common::KeyId;
    use keyward_common::sync::sign;
    use std::sync::Mutex;

    /// Counts like the DynamoDB store: once per (batch, report).
    #[derive(Debug, Default)]
    struct Counted(Mutex<Vec<(String, usize, UsageReport)>>);

    #[async_trait]
    impl UsageStore for Counted {
        async fn record(
            &self,
            batch_id: &str,
            index: usize,
            report: &UsageReport,
            _now: i64,
        ) -> anyhow::Result<Recorded> {
            let mut seen = self.0.lock().unwrap();
            if seen.iter().any(|(b, i, _)| b == batch_id && *i == index) {
                return Ok(Recorded::Duplicate);
            }
            seen.push((batch_id.to_owned(), index, report.clone()));
            Ok(Recorded::Counted)
        }

        async fn balance(&self, _: &keyward_common::sync::BalanceReport) -> anyhow::Result<bool> {
            Ok(false)
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn batch(count: u64) -> Vec<u8> {
        serde_json::to_vec(&UsageBatch {
            batch_id: "batch-0001".into(),
            reports: vec![UsageReport {
                workspace: "acme".into(),
                key_id: KeyId::new(1, [3; 10]),
                owner_id: None,
                hour: 1_800_000_000, // a whole UTC hour
                counts: keyward_common::sync::OutcomeCounts {
                    valid: count,
                    ..Default::default()
                },
                last_used_at: Some(NOW),
            }],
            balances: vec![],
        })
        .unwrap()
    }

    fn request(body: Vec<u8>, secret: &[u8]) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/v1/usage")
            .header(TIMESTAMP_HEADER, NOW.to_string())
            .header(SIGNATURE_HEADER, sign(secret, NOW, &body))
            .body(Body::Binary(body))
            .unwrap()
    }

    fn app() -> (UsageApp, Arc<Counted>) {
        let store = Arc::new(Counted::default());
        let app = UsageApp {
            store: store.clone(),
            secret: b"sync-secret".to_vec(),
        };
        (app, store)
    }

    #[tokio::test]
    async fn a_signed_batch_is_recorded_and_counted() {
        let (app, store) = app();
        let resp = handle(&app, request(batch(3), b"sync-secret"), NOW).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body().as_ref(), br#"{"accepted":1}"#);
        assert_eq!(store.0.lock().unwrap()[0].2.counts.valid, 3);
    }

    #[tokio::test]
    async fn a_bad_signature_is_401_and_writes_nothing() {
        let (app, store) = app();
        let resp = handle(&app, request(batch(3), b"other"), NOW).await;
        assert_eq!(resp.status(), 401);
        assert!(
            resp.body()
                .as_ref()
                .windows(12)
                .any(|w| w == b"unauthorized")
        );
        let mut unsigned = request(batch(3), b"sync-secret");
        unsigned.headers_mut().remove(SIGNATURE_HEADER);
        assert_eq!(handle(&app, unsigned, NOW).await.status(), 401);
        assert!(store.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_zero_count_or_a_bad_hour_is_400() {
        let (app, store) = app();
        let resp = handle(&app, request(batch(0), b"sync-secret"), NOW).await;
        assert_eq!(resp.status(), 400);
        let text = String::from_utf8(batch(1))
            .unwrap()
            .replace("\"hour\":1800000000", "\"hour\":1800000001");
        let resp = handle(&app, request(text.into_bytes(), b"sync-secret"), NOW).await;
        assert_eq!(resp.status(), 400);
        assert!(store.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_resent_batch_is_accepted_and_counted_once() {
        let (app, store) = app();
        for _ in 0..3 {
            let resp = handle(&app, request(batch(3), b"sync-secret"), NOW).await;
            assert_eq!(resp.status(), 200);
        }
        assert_eq!(store.0.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_batch_without_a_usable_id_is_400() {
        let (app, store) = app();
        for id in ["", "short", "has space in it", &"x".repeat(65)] {
            let text = String::from_utf8(batch(1))
                .unwrap()
                .replace("batch-0001", id);
            let resp = handle(&app, request(text.into_bytes(), b"sync-secret"), NOW).await;
            assert_eq!(resp.status(), 400, "{id:?}");
        }
        assert!(store.0.lock().unwrap().is_empty());
    }
}
