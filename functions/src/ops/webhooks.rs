//! Webhook endpoints: create (the secret shown once), list, get, PATCH, delete, their
//! deliveries, and a test event. Every change is audited; the secret is kept only sealed.

use keyward_common::{FieldError, Timestamp};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{Now, Target, audit_event, next_cursor, random_bytes, resume};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::webhook::{NewWebhook, WebhookPatch};
use crate::webhook::deliver::{self, Message};
use crate::webhook::signature::{self, SECRET_BYTES};
use crate::webhook::{Delivery, SecretBox, TEST_EVENT, WebhookRecord, target};

/// The create answer: the endpoint and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookRecord,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Store it now: it is never
    /// shown again.
    pub secret: String,
}

/// One page of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// The endpoints.
    pub data: Vec<WebhookRecord>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// One page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The attempts.
    pub data: Vec<Delivery>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Checks that `url` resolves only to addresses deliveries may go to.
async fn reachable(app: &App, url: &str) -> Result<(), ApiError> {
    let allow = app.config.webhook_allow_loopback;
    let parsed = target::parse(url, allow)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("url", e.to_string())]))?;
    target::resolve(&parsed, allow)
        .await
        .map(|_| ())
        .map_err(|e| ApiError::Validation(vec![FieldError::new("url", e.to_string())]))
}

async fn load(app: &App, caller: &Caller, id: &str) -> Result<(WebhookRecord, Vec<u8>), ApiError> {
    app.store
        .get_webhook(&caller.workspace, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Creates an endpoint.
///
/// # Errors
/// 400 naming `url` when it does not resolve to public addresses; 409 when the workspace has
/// `KEYWARD_MAX_WEBHOOKS` endpoints (400 naming `url`); storage failures.
pub async fn create(
    app: &App,
    caller: &Caller,
    new: NewWebhook,
    now: Now,
) -> Result<WebhookWithSecret, ApiError> {
    reachable(app, &new.url).await?;
    let cap = app.config.max_webhooks;
    let existing = app
        .store
        .list_webhooks(&caller.workspace, cap, None)
        .await?;
    if existing.items.len() >= cap {
        return Err(ApiError::Validation(vec![FieldError::new(
            "url",
            format!("a workspace may have at most {cap} webhook endpoints: delete one first"),
        )]));
    }
    let id = format!("wh_{}", hex::encode(random_bytes::<12>()?));
    let secret = signature::new_secret(&random_bytes::<SECRET_BYTES>()?);
    let sealed = SecretBox::derive(&app.config.cursor_secret)
        .seal(&caller.workspace, &id, &secret)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let at = Timestamp(now.secs());
    let webhook = WebhookRecord {
        id: id.clone(),
        workspace: caller.workspace.clone(),
        url: new.url,
        description: new.description,
        events: new.events,
        enabled: true,
        created_at: at,
        updated_at: at,
        version: 1,
        failing_since: None,
    };
    let audit = audit_event(
        caller,
        "webhook.create",
        Target::Webhook(&id),
        vec!["url".into(), "events".into()],
        now,
    )?;
    app.store.create_webhook(&webhook, &sealed, &audit).await?;
    Ok(WebhookWithSecret { webhook, secret })
}

/// One endpoint.
///
/// # Errors
/// 404 for an endpoint the caller cannot see.
pub async fn get(app: &App, caller: &Caller, id: &str) -> Result<WebhookRecord, ApiError> {
    Ok(load(app, caller, id).await?.0)
}

/// One page of endpoints.
///
/// # Errors
/// 400 `invalid_cursor`; storage failures.
pub async fn list(
    app: &App,
    caller: &Caller,
    limit: usize,
    cursor: Option<String>,
) -> Result<WebhookList, ApiError> {
    let after = resume(app, caller, "webhooks", cursor.as_deref())?;
    let page = app
        .store
        .list_webhooks(&caller.workspace, limit, after.as_ref())
        .await?;
    let next_cursor = next_cursor(app, caller, "webhooks", page.next);
    Ok(WebhookList {
        has_more: next_cursor.is_some(),
        data: page.items,
        next_cursor,
    })
}

/// Applies `patch` if the endpoint is still at `expected` (when given).
///
/// # Errors
/// 404, 412, 400 naming `url` when a new URL is not reachable.
pub async fn update(
    app: &App,
    caller: &Caller,
    id: &str,
    patch: WebhookPatch,
    expected: Option<u64>,
    now: Now,
) -> Result<WebhookRecord, ApiError> {
    let (before, _) = load(app, caller, id).await?;
    if expected.is_some_and(|v| v != before.version) {
        return Err(ApiError::PreconditionFailed);
    }
    if let Some(u) = &patch.url {
        reachable(app, u).await?;
    }
    let mut after = before.clone();
    let mut changed = Vec::new();
    if let Some(u) = patch.url.filter(|u| *u != before.url) {
        after.url = u;
        changed.push("url".to_owned());
    }
    if let Some(e) = patch.events.filter(|e| *e != before.events) {
        after.events = e;
        changed.push("events".to_owned());
    }
    if let Some(d) = patch.description.filter(|d| *d != before.description) {
        after.description = d;
        changed.push("description".to_owned());
    }
    if let Some(e) = patch.enabled.filter(|e| *e != before.enabled) {
        after.enabled = e;
        // Switched on again: its next event is tried at once, not queued behind a failure.
        after.failing_since = None;
        changed.push("enabled".to_owned());
    }
    if changed.is_empty() {
        return Ok(before);
    }
    after.version += 1;
    after.updated_at = Timestamp(now.secs());
    let audit = audit_event(caller, "webhook.update", Target::Webhook(id), changed, now)?;
    app.store
        .replace_webhook(before.version, &after, &audit)
        .await?;
    Ok(after)
}

/// Deletes an endpoint (its deliveries expire on their own).
///
/// # Errors
/// 404, 412.
pub async fn delete(
    app: &App,
    caller: &Caller,
    id: &str,
    expected: Option<u64>,
    now: Now,
) -> Result<WebhookRecord, ApiError> {
    let (hook, _) = load(app, caller, id).await?;
    if expected.is_some_and(|v| v != hook.version) {
        return Err(ApiError::PreconditionFailed);
    }
    let audit = audit_event(caller, "webhook.delete", Target::Webhook(id), vec![], now)?;
    app.store.delete_webhook(&hook, &audit).await?;
    Ok(hook)
}

/// One page of an endpoint's deliveries.
///
/// # Errors
/// 404, 400 `invalid_cursor`.
pub async fn deliveries(
    app: &App,
    caller: &Caller,
    id: &str,
    limit: usize,
    cursor: Option<String>,
) -> Result<DeliveryList, ApiError> {
    load(app, caller, id).await?;
    let filters = format!("deliveries:{id}");
    let after = resume(app, caller, &filters, cursor.as_deref())?;
    let page = app
        .store
        .list_deliveries(&caller.workspace, id, limit, after.as_ref())
        .await?;
    let next_cursor = next_cursor(app, caller, &filters, page.next);
    Ok(DeliveryList {
        has_more: next_cursor.is_some(),
        data: page.items,
        next_cursor,
    })
}

/// Sends a `webhook.test` event to the endpoint now (whatever it subscribes to, enabled or
/// not) and records the attempt; the attempt is the answer.
///
/// # Errors
/// 404; storage failures. A failed delivery is an answer, not an error.
pub async fn test(app: &App, caller: &Caller, id: &str, now: Now) -> Result<Delivery, ApiError> {
    let (hook, sealed) = load(app, caller, id).await?;
    let secret = SecretBox::derive(&app.config.cursor_secret)
        .open(&caller.workspace, id, &sealed)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let key = signature::key_of(&secret).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("a stored webhook secret is malformed"))
    })?;
    let message_id = format!("msg_{}", hex::encode(random_bytes::<12>()?));
    let at = Timestamp(now.secs());
    let body = json!({
        "type": TEST_EVENT,
        "timestamp": at,
        "data": {"webhook_id": id, "workspace": caller.workspace},
    });
    let outcome = deliver::attempt(
        &hook.url,
        &key,
        &Message {
            id: &message_id,
            timestamp: at.unix(),
            body: &body,
        },
        app.config.webhook_allow_loopback,
        deliver::TIMEOUT,
    )
    .await;
    let delivery = Delivery::of(message_id, TEST_EVENT.to_owned(), 1, outcome, at);
    app.store
        .record_delivery(&caller.workspace, id, &delivery)
        .await?;
    Ok(delivery)
}
