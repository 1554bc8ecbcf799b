//! Sending events to endpoints: first attempts in stream order per endpoint with the endpoints
//! side by side, failures to the retry queue, and the end of the schedule.
//!
//! A slow or dead receiver holds up nobody else: a first attempt waits at most
//! [`deliver::FIRST_ATTEMPT_TIMEOUT`], endpoints are served concurrently, and once an attempt
//! fails the endpoint is marked failing, so its later events go straight to the queue instead of
//! being tried in the stream's path. Retries are another function (`webhook-retries`, the
//! queue's consumer), so a receiver that hangs on every retry slows only its own retries.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use keyward_common::Timestamp;

use super::queue::{MAX_DELAY_S, Retry, RetryQueue};
use super::{Event, Settings};
use crate::metrics;
use crate::store::dynamo::DynamoStore;
use crate::store::webhook::WebhookStore as _;
use crate::store::{AuditEvent, StoreError};
use crate::webhook::deliver::{self, Message};
use crate::webhook::{Delivery, SecretBox, WebhookRecord, signature};

/// Everything an attempt needs.
#[derive(Debug)]
pub struct Dispatcher {
    /// Endpoints, deliveries, audit.
    pub store: Arc<DynamoStore>,
    /// Where failed attempts wait.
    pub queue: Arc<dyn RetryQueue>,
    /// Opens endpoint secrets.
    pub secrets: SecretBox,
    /// Loopback http allowed (the local stack only).
    pub allow_loopback: bool,
    /// Retry schedule and thresholds.
    pub settings: Settings,
}

/// Whether `hook` wants `kind`.
fn wants(hook: &WebhookRecord, kind: &str) -> bool {
    hook.enabled && hook.events.iter().any(|e| e == kind)
}

impl Dispatcher {
    /// Delivers `events` (in order) to every endpoint that wants them.
    ///
    /// # Errors
    /// When the store or the queue fails; the caller retries the whole batch, and the
    /// endpoints that already had an event get it again with the same `webhook-id`.
    pub async fn dispatch(self: &Arc<Self>, events: &[Event], now: i64) -> anyhow::Result<()> {
        let mut endpoints: BTreeMap<String, Vec<WebhookRecord>> = BTreeMap::new();
        for e in events {
            if !endpoints.contains_key(&e.workspace) {
                let hooks = self.all_endpoints(&e.workspace).await?;
                endpoints.insert(e.workspace.clone(), hooks);
            }
        }
        // Each endpoint on its own task: one that hangs delays no other.
        let mut tasks = tokio::task::JoinSet::new();
        for hook in endpoints.into_values().flatten() {
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| e.workspace == hook.workspace && wants(&hook, &e.kind))
                .cloned()
                .collect();
            if !mine.is_empty() {
                let this = Arc::clone(self);
                tasks.spawn(async move { this.serve(&hook, &mine, now).await });
            }
        }
        let mut result = Ok(());
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(anyhow::anyhow!("a delivery task failed: {e}")),
            }
        }
        result
    }

    async fn all_endpoints(&self, workspace: &str) -> anyhow::Result<Vec<WebhookRecord>> {
        let mut out = Vec::new();
        if !self
            .store
            .has_webhooks(workspace)
            .await
            .map_err(store_error)?
        {
            return Ok(out);
        }
        let mut after = None;
        loop {
            let page = self
                .store
                .list_webhooks(workspace, 100, after.as_ref())
                .await
                .map_err(store_error)?;
            out.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// One endpoint's share, in order: tried while it answers, queued once it does not.
    async fn serve(&self, hook: &WebhookRecord, events: &[Event], now: i64) -> anyhow::Result<()> {
        let mut answering = hook.failing_since.is_none();
        for e in events {
            let retry = Retry {
                workspace: hook.workspace.clone(),
                webhook_id: hook.id.clone(),
                message_id: e.message_id(&hook.id),
                event: e.kind.clone(),
                body: e.body(),
                attempt: 1,
                due_at: now,
            };
            if answering {
                answering = self.attempt(hook, &retry, now).await?;
            } else {
                self.queue.send(&retry, 0).await?;
            }
        }
        Ok(())
    }

    /// A message from the retry queue: re-queued when not yet due, dropped when its endpoint
    /// is gone or switched off, else attempted.
    ///
    /// # Errors
    /// When the store or the queue fails (the message comes back).
    pub async fn retry(&self, retry: &Retry, now: i64) -> anyhow::Result<()> {
        if retry.due_at > now {
            return self
                .queue
                .send(retry, (retry.due_at - now).min(MAX_DELAY_S))
                .await;
        }
        let Some((hook, _)) = self
            .store
            .get_webhook(&retry.workspace, &retry.webhook_id)
            .await
            .map_err(store_error)?
        else {
            return Ok(());
        };
        if !hook.enabled {
            return Ok(());
        }
        self.attempt(&hook, retry, now).await.map(|_| ())
    }

    /// Makes attempt `retry.attempt` and records it; a failure queues the next attempt or, at
    /// the end of the schedule, switches the endpoint off. Whether it was delivered.
    async fn attempt(&self, hook: &WebhookRecord, retry: &Retry, now: i64) -> anyhow::Result<bool> {
        let Some((_, sealed)) = self
            .store
            .get_webhook(&hook.workspace, &hook.id)
            .await
            .map_err(store_error)?
        else {
            return Ok(true); // deleted meanwhile: nothing left to deliver to
        };
        let key = self
            .secrets
            .open(&hook.workspace, &hook.id, &sealed)
            .ok()
            .and_then(|secret| signature::key_of(&secret))
            .context("a stored webhook secret does not open")?;
        let outcome = deliver::attempt(
            &hook.url,
            &key,
            &Message {
                id: &retry.message_id,
                timestamp: now,
                body: &retry.body,
            },
            self.allow_loopback,
            if retry.attempt == 1 {
                deliver::FIRST_ATTEMPT_TIMEOUT
            } else {
                deliver::TIMEOUT
            },
        )
        .await;
        let delivered = outcome.delivered;
        let latency_ms = outcome.latency_ms;
        let delivery = Delivery::of(
            retry.message_id.clone(),
            retry.event.clone(),
            retry.attempt,
            outcome,
            Timestamp(now),
        );
        self.store
            .record_delivery(&hook.workspace, &hook.id, &delivery)
            .await
            .map_err(store_error)?;
        metrics::webhook_attempt(delivered, latency_ms);
        if delivered {
            if hook.failing_since.is_some() {
                self.store
                    .set_webhook_failing(&hook.workspace, &hook.id, None)
                    .await
                    .map_err(store_error)?;
            }
            return Ok(true);
        }
        self.store
            .set_webhook_failing(&hook.workspace, &hook.id, Some(Timestamp(now)))
            .await
            .map_err(store_error)?;
        let index = usize::try_from(retry.attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.settings.retry_delays_s.get(index) {
            Some(&delay) => {
                let delay = i64::try_from(delay).unwrap_or(MAX_DELAY_S);
                let next = Retry {
                    attempt: retry.attempt + 1,
                    due_at: now + delay,
                    ..retry.clone()
                };
                self.queue.send(&next, delay.min(MAX_DELAY_S)).await?;
            }
            None => self.switch_off(hook, now).await?,
        }
        Ok(false)
    }

    /// The schedule ran out: the endpoint is switched off (audited, actor `keyward`).
    async fn switch_off(&self, hook: &WebhookRecord, now: i64) -> anyhow::Result<()> {
        for _ in 0..3 {
            let Some((current, _)) = self
                .store
                .get_webhook(&hook.workspace, &hook.id)
                .await
                .map_err(store_error)?
            else {
                return Ok(());
            };
            if !current.enabled {
                return Ok(());
            }
            let after = WebhookRecord {
                enabled: false,
                updated_at: Timestamp(now),
                version: current.version + 1,
                ..current.clone()
            };
            let mut rand = [0u8; 8];
            getrandom::fill(&mut rand).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
            let audit = AuditEvent {
                id: format!("{:013}#{}", now.saturating_mul(1000), hex::encode(rand)),
                workspace: hook.workspace.clone(),
                at: Timestamp(now),
                actor: "keyward".to_owned(),
                action: "webhook.disabled".to_owned(),
                key_id: None,
                role: None,
                webhook_id: Some(hook.id.clone()),
                owner_id: None,
                changed: vec!["enabled".to_owned()],
                request_id: format!("events-{}", hex::encode(rand)),
                source_ip: None,
            };
            match self
                .store
                .replace_webhook(current.version, &after, &audit)
                .await
            {
                Ok(()) => {
                    tracing::warn!(
                        workspace = hook.workspace,
                        webhook_id = hook.id,
                        "webhook endpoint switched off: its deliveries failed for the whole retry schedule"
                    );
                    metrics::webhook_disabled();
                    return Ok(());
                }
                Err(StoreError::VersionConflict) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        anyhow::bail!("switching webhook {} off kept conflicting", hook.id)
    }
}

fn store_error(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}
