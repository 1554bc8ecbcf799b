//! Webhook endpoints and their deliveries in the table: `WS#{ws}` / `HOOK#{id}` (the endpoint,
//! with its secret sealed) and `WS#{ws}` / `HOOKDLV#{id}#{at}#{message}#{attempt}` (one attempt,
//! kept 30 days). Every endpoint change is written with its audit event in one transaction.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use keyward_common::Timestamp;

use super::dynamo::DynamoStore;
use super::item::{self, ItemRead, PK, SK, TTL};
use super::memory::MemoryStore;
use super::{AuditEvent, Page, Position, StoreError};
use crate::webhook::{Delivery, WebhookRecord};

/// Sort-key prefix of endpoints.
pub const HOOK_SK_PREFIX: &str = "HOOK#";
/// Sort-key prefix of deliveries.
pub const DELIVERY_SK_PREFIX: &str = "HOOKDLV#";
/// Attribute of the workspace's counter item: how many endpoints it has.
const WEBHOOKS_COUNT: &str = "webhooks";
/// Attribute: since when an endpoint's deliveries fail (Unix seconds).
const FAILING_SINCE: &str = "failing_since";
/// How long deliveries are kept.
pub const DELIVERY_TTL_S: i64 = 30 * 86_400;

/// Where endpoints live.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Writes a new endpoint with its sealed secret and audit event.
    async fn create_webhook(
        &self,
        hook: &WebhookRecord,
        sealed_secret: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// One endpoint and its sealed secret.
    async fn get_webhook(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<(WebhookRecord, Vec<u8>)>, StoreError>;
    /// Endpoints by id.
    async fn list_webhooks(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<WebhookRecord>, StoreError>;
    /// Replaces an endpoint's settings if its stored version is still `expected`.
    async fn replace_webhook(
        &self,
        expected: u64,
        hook: &WebhookRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Deletes an endpoint if its stored version is still `hook.version`.
    async fn delete_webhook(
        &self,
        hook: &WebhookRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Marks endpoint `id` as failing since `since` (kept if already failing), or, with `None`,
    /// as answering again. Not a settings change: `version` stays.
    async fn set_webhook_failing(
        &self,
        workspace: &str,
        id: &str,
        since: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    /// Records one delivery attempt of endpoint `hook_id`.
    async fn record_delivery(
        &self,
        workspace: &str,
        hook_id: &str,
        delivery: &Delivery,
    ) -> Result<(), StoreError>;
    /// An endpoint's deliveries, newest first.
    async fn list_deliveries(
        &self,
        workspace: &str,
        hook_id: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<Delivery>, StoreError>;
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn hook_sk(id: &str) -> String {
    format!("{HOOK_SK_PREFIX}{id}")
}

fn delivery_sk(hook_id: &str, d: &Delivery) -> String {
    format!(
        "{DELIVERY_SK_PREFIX}{hook_id}#{:010}#{}#{:02}",
        d.at.unix(),
        d.message_id,
        d.attempt
    )
}

fn hook_item(h: &WebhookRecord, sealed: Option<&[u8]>) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(item::workspace_pk(&h.workspace))),
        (SK.to_owned(), s(hook_sk(&h.id))),
        ("id".to_owned(), s(&h.id)),
        ("workspace".to_owned(), s(&h.workspace)),
        ("url".to_owned(), s(&h.url)),
        (
            "events".to_owned(),
            AttributeValue::L(h.events.iter().map(s).collect()),
        ),
        ("enabled".to_owned(), AttributeValue::Bool(h.enabled)),
        ("created_at".to_owned(), n(h.created_at.unix())),
        ("updated_at".to_owned(), n(h.updated_at.unix())),
        ("version".to_owned(), n(h.version)),
    ]);
    if let Some(d) = &h.description {
        item.insert("description".to_owned(), s(d));
    }
    if let Some(t) = h.failing_since {
        item.insert(FAILING_SINCE.to_owned(), n(t.unix()));
    }
    if let Some(b) = sealed {
        item.insert(
            "secret".to_owned(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b)),
        );
    }
    item
}

fn hook_from(item: &HashMap<String, AttributeValue>) -> anyhow::Result<(WebhookRecord, Vec<u8>)> {
    let text = |k: &str| item.string(k).map(str::to_owned);
    let num = |k: &str| -> anyhow::Result<i64> {
        item.number(k)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("a webhook item without {k}"))
    };
    let record = WebhookRecord {
        id: text("id").context("a webhook item without id")?,
        workspace: text("workspace").context("a webhook item without workspace")?,
        url: text("url").context("a webhook item without url")?,
        description: text("description"),
        events: item.string_list("events").unwrap_or_default(),
        enabled: item
            .get("enabled")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        created_at: Timestamp(num("created_at")?),
        updated_at: Timestamp(num("updated_at")?),
        version: u64::try_from(num("version")?).unwrap_or(0),
        failing_since: num(FAILING_SINCE).ok().map(Timestamp),
    };
    let secret = item
        .get("secret")
        .and_then(|v| v.as_b().ok())
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    Ok((record, secret))
}

fn delivery_item(ws: &str, hook_id: &str, d: &Delivery) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (PK.to_owned(), s(item::workspace_pk(ws))),
        (SK.to_owned(), s(delivery_sk(hook_id, d))),
        ("message_id".to_owned(), s(&d.message_id)),
        ("event".to_owned(), s(&d.event)),
        ("attempt".to_owned(), n(d.attempt)),
        ("status".to_owned(), s(&d.status)),
        ("latency_ms".to_owned(), n(d.latency_ms)),
        ("at".to_owned(), n(d.at.unix())),
        (TTL.to_owned(), n(d.at.unix() + DELIVERY_TTL_S)),
    ]);
    if let Some(c) = d.response_code {
        item.insert("response_code".to_owned(), n(c));
    }
    if let Some(e) = &d.error {
        item.insert("error".to_owned(), s(e));
    }
    item
}

fn delivery_from(item: &HashMap<String, AttributeValue>) -> anyhow::Result<Delivery> {
    let num = |k: &str| item.number(k).and_then(|v| v.parse::<i64>().ok());
    Ok(Delivery {
        message_id: item
            .string("message_id")
            .context("a delivery without id")?
            .to_owned(),
        event: item.string("event").unwrap_or_default().to_owned(),
        attempt: num("attempt")
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1),
        status: item.string("status").unwrap_or_default().to_owned(),
        response_code: num("response_code").and_then(|c| u16::try_from(c).ok()),
        latency_ms: num("latency_ms")
            .and_then(|l| u64::try_from(l).ok())
            .unwrap_or(0),
        error: item.string("error").map(str::to_owned),
        at: Timestamp(num("at").unwrap_or(0)),
    })
}

impl DynamoStore {
    /// Whether `workspace` has any endpoint: one read of its counter item, so a workspace
    /// without endpoints costs no query of its partition (on moto, a query reads the whole
    /// partition). Every endpoint write keeps the count in the same transaction.
    ///
    /// # Errors
    /// When DynamoDB fails.
    pub async fn has_webhooks(&self, workspace: &str) -> Result<bool, StoreError> {
        let got = self
            .client()
            .get_item()
            .table_name(self.table())
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(item::COUNTER_SK))
            .projection_expression("#w")
            .expression_attribute_names("#w", WEBHOOKS_COUNT)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("{}", DisplayErrorContext(&e)).context("reading the endpoint count")
            })?;
        Ok(got
            .item()
            .and_then(|i| i.number(WEBHOOKS_COUNT))
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|c| c > 0))
    }

    async fn hook_transaction(
        &self,
        write: TransactWriteItem,
        audit: &AuditEvent,
        count: Option<i64>,
    ) -> Result<(), StoreError> {
        let audit_put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item::audit_to_item(audit)))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .context("building the audit put")?;
        let mut txn = self
            .client()
            .transact_write_items()
            .transact_items(write)
            .transact_items(TransactWriteItem::builder().put(audit_put).build());
        if let Some(delta) = count {
            // The workspace's endpoint count, so event delivery can skip the endpoint query for
            // the many workspaces that have none.
            let counter = aws_sdk_dynamodb::types::Update::builder()
                .table_name(self.table())
                .key(PK, s(item::workspace_pk(&audit.workspace)))
                .key(SK, s(item::COUNTER_SK))
                .update_expression("ADD #w :d")
                .expression_attribute_names("#w", WEBHOOKS_COUNT)
                .expression_attribute_values(":d", n(delta))
                .build()
                .context("building the endpoint count update")?;
            txn = txn.transact_items(TransactWriteItem::builder().update(counter).build());
        }
        let sent = txn.send().await;
        match sent {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                Err(StoreError::VersionConflict)
            }
            Err(e) => Err(StoreError::Other(
                anyhow::anyhow!("{}", DisplayErrorContext(&e)).context("writing a webhook"),
            )),
        }
    }

    async fn query_prefix(
        &self,
        workspace: &str,
        prefix: &str,
        limit: usize,
        after: Option<&Position>,
        forward: bool,
    ) -> Result<(Vec<HashMap<String, AttributeValue>>, Option<Position>), StoreError> {
        let start = after.map(|p| p.iter().map(|(k, v)| (k.clone(), s(v))).collect());
        let page = self
            .client()
            .query()
            .table_name(self.table())
            .consistent_read(true)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(item::workspace_pk(workspace)))
            .expression_attribute_values(":p", s(prefix))
            .scan_index_forward(forward)
            .limit(i32::try_from(limit).unwrap_or(100))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("{}", DisplayErrorContext(&e)).context("listing webhooks")
            })?;
        let next = page
            .last_evaluated_key()
            .filter(|k| !k.is_empty())
            .map(|k| {
                k.iter()
                    .filter_map(|(name, v)| v.as_s().ok().map(|v| (name.clone(), v.clone())))
                    .collect::<Position>()
            });
        Ok((page.items().to_vec(), next))
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn create_webhook(
        &self,
        hook: &WebhookRecord,
        sealed_secret: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(hook_item(hook, Some(sealed_secret))))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .context("building the webhook put")?;
        self.hook_transaction(
            TransactWriteItem::builder().put(put).build(),
            audit,
            Some(1),
        )
        .await
    }

    async fn get_webhook(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<(WebhookRecord, Vec<u8>)>, StoreError> {
        let got = self
            .client()
            .get_item()
            .table_name(self.table())
            .consistent_read(true)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(hook_sk(id)))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("{}", DisplayErrorContext(&e)).context("reading a webhook")
            })?;
        Ok(got.item().map(hook_from).transpose()?)
    }

    async fn list_webhooks(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<WebhookRecord>, StoreError> {
        let (items, next) = self
            .query_prefix(workspace, HOOK_SK_PREFIX, limit, after, true)
            .await?;
        let items = items
            .iter()
            .map(|i| hook_from(i).map(|(h, _)| h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    async fn replace_webhook(
        &self,
        expected: u64,
        hook: &WebhookRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        // Every setting but the sealed secret, which stays as it is.
        let mut item = hook_item(hook, None);
        item.remove(PK);
        item.remove(SK);
        let mut update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(self.table())
            .key(PK, s(item::workspace_pk(&hook.workspace)))
            .key(SK, s(hook_sk(&hook.id)))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected));
        let mut sets = Vec::new();
        for (i, (k, v)) in item.into_iter().enumerate() {
            if k == "version" {
                sets.push("#version = :v".to_owned());
                update = update.expression_attribute_values(":v", v);
                continue;
            }
            sets.push(format!("#a{i} = :a{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), k)
                .expression_attribute_values(format!(":a{i}"), v);
        }
        let mut expr = format!("SET {}", sets.join(", "));
        let mut removes = Vec::new();
        if hook.description.is_none() {
            removes.push("#d");
            update = update.expression_attribute_names("#d", "description");
        }
        if hook.failing_since.is_none() {
            removes.push("#f");
            update = update.expression_attribute_names("#f", FAILING_SINCE);
        }
        if !removes.is_empty() {
            expr.push_str(" REMOVE ");
            expr.push_str(&removes.join(", "));
        }
        let update = update
            .update_expression(expr)
            .build()
            .context("building the webhook update")?;
        self.hook_transaction(
            TransactWriteItem::builder().update(update).build(),
            audit,
            None,
        )
        .await
    }

    async fn delete_webhook(
        &self,
        hook: &WebhookRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .key(PK, s(item::workspace_pk(&hook.workspace)))
            .key(SK, s(hook_sk(&hook.id)))
            .condition_expression("#version = :v")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":v", n(hook.version))
            .build()
            .context("building the webhook delete")?;
        self.hook_transaction(
            TransactWriteItem::builder().delete(delete).build(),
            audit,
            Some(-1),
        )
        .await
    }

    async fn set_webhook_failing(
        &self,
        workspace: &str,
        id: &str,
        since: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(hook_sk(id)))
            .expression_attribute_names("#f", FAILING_SINCE);
        let update = match since {
            Some(t) => update
                .update_expression("SET #f = :t")
                .condition_expression("attribute_exists(PK) AND attribute_not_exists(#f)")
                .expression_attribute_values(":t", n(t.unix())),
            None => update
                .update_expression("REMOVE #f")
                .condition_expression("attribute_exists(#f)"),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(StoreError::Other(
                anyhow::anyhow!("{}", DisplayErrorContext(&e)).context("marking a webhook"),
            )),
        }
    }

    async fn record_delivery(
        &self,
        workspace: &str,
        hook_id: &str,
        delivery: &Delivery,
    ) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(delivery_item(workspace, hook_id, delivery)))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("{}", DisplayErrorContext(&e)).context("recording a delivery")
            })?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        workspace: &str,
        hook_id: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<Delivery>, StoreError> {
        let prefix = format!("{DELIVERY_SK_PREFIX}{hook_id}#");
        let (items, next) = self
            .query_prefix(workspace, &prefix, limit, after, false)
            .await?;
        let items = items
            .iter()
            .map(delivery_from)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }
}

/// The in-memory endpoints, deliveries and audit events of a [`MemoryStore`].
#[derive(Debug, Default)]
pub struct MemoryHooks {
    hooks: BTreeMap<(String, String), (WebhookRecord, Vec<u8>)>,
    deliveries: BTreeMap<(String, String), Delivery>,
}

fn page_of<T: Clone>(items: Vec<(String, T)>, limit: usize, after: Option<&Position>) -> Page<T> {
    let from = after.and_then(|p| p.get(SK)).cloned();
    let mut rest = items
        .into_iter()
        .filter(|(sk, _)| from.as_ref().is_none_or(|f| sk > f))
        .peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < limit {
        let Some((sk, v)) = rest.next() else { break };
        last = Some(sk);
        out.push(v);
    }
    let next = rest
        .peek()
        .and(last)
        .map(|sk| Position::from([(SK.to_owned(), sk)]));
    Page { items: out, next }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_webhook(
        &self,
        hook: &WebhookRecord,
        sealed_secret: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut h = self.hooks();
        let k = (hook.workspace.clone(), hook.id.clone());
        if h.hooks.contains_key(&k) {
            return Err(StoreError::VersionConflict);
        }
        h.hooks.insert(k, (hook.clone(), sealed_secret.to_vec()));
        drop(h);
        self.keep_audit(audit);
        Ok(())
    }

    async fn get_webhook(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<(WebhookRecord, Vec<u8>)>, StoreError> {
        Ok(self
            .hooks()
            .hooks
            .get(&(workspace.to_owned(), id.to_owned()))
            .cloned())
    }

    async fn list_webhooks(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<WebhookRecord>, StoreError> {
        let items = self
            .hooks()
            .hooks
            .iter()
            .filter(|((ws, _), _)| ws == workspace)
            .map(|((_, id), (h, _))| (hook_sk(id), h.clone()))
            .collect();
        Ok(page_of(items, limit, after))
    }

    async fn replace_webhook(
        &self,
        expected: u64,
        hook: &WebhookRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut h = self.hooks();
        match h.hooks.get_mut(&(hook.workspace.clone(), hook.id.clone())) {
            Some((stored, _)) if stored.version == expected => *stored = hook.clone(),
            _ => return Err(StoreError::VersionConflict),
        }
        drop(h);
        self.keep_audit(audit);
        Ok(())
    }

    async fn delete_webhook(
        &self,
        hook: &WebhookRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut h = self.hooks();
        let k = (hook.workspace.clone(), hook.id.clone());
        match h.hooks.get(&k) {
            Some((stored, _)) if stored.version == hook.version => {
                h.hooks.remove(&k);
            }
            _ => return Err(StoreError::VersionConflict),
        }
        drop(h);
        self.keep_audit(audit);
        Ok(())
    }

    async fn set_webhook_failing(
        &self,
        workspace: &str,
        id: &str,
        since: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        if let Some((h, _)) = self
            .hooks()
            .hooks
            .get_mut(&(workspace.to_owned(), id.to_owned()))
        {
            h.failing_since = since.map(|t| h.failing_since.unwrap_or(t));
        }
        Ok(())
    }

    async fn record_delivery(
        &self,
        workspace: &str,
        hook_id: &str,
        delivery: &Delivery,
    ) -> Result<(), StoreError> {
        self.hooks().deliveries.insert(
            (workspace.to_owned(), delivery_sk(hook_id, delivery)),
            delivery.clone(),
        );
        Ok(())
    }

    async fn list_deliveries(
        &self,
        workspace: &str,
        hook_id: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<Delivery>, StoreError> {
        let prefix = format!("{DELIVERY_SK_PREFIX}{hook_id}#");
        let mut items: Vec<(String, Delivery)> = self
            .hooks()
            .deliveries
            .iter()
            .filter(|((ws, sk), _)| ws == workspace && sk.starts_with(&prefix))
            .map(|((_, sk), d)| (sk.clone(), d.clone()))
            .collect();
        // Newest first, as DynamoDB answers: the cursor is "before" in that order.
        items.reverse();
        let from = after.and_then(|p| p.get(SK)).cloned();
        let items: Vec<(String, Delivery)> = items
            .into_iter()
            .filter(|(sk, _)| from.as_ref().is_none_or(|f| sk < f))
            .collect();
        Ok(page_of(items, limit, None))
    }
}
