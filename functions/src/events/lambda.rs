//! The `events` and `webhook-retries` Lambda functions: one handler, three triggers told apart
//! by the event's shape (the template gives `events` the stream and the schedule, and
//! `webhook-retries` the retry queue, so slow retries never queue up behind the stream):
//! - the table's stream (`aws:dynamodb` records): events from key and owner changes and from
//!   outbox items are delivered; new expiries are scheduled;
//! - the retry queue (`aws:sqs` records): each message is one pending attempt; a message that
//!   cannot be handled (the store or the queue failed) is reported for SQS to bring back, and
//!   after its receive limit it lands in the failure queue, which has an alarm;
//! - the schedule (`aws.events`): reminders that fell due become `key.expiring` events.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::EventRecord;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};

use super::Settings;
use super::dispatch::Dispatcher;
use super::plan::plan_record;
use super::queue::{Retry, SqsQueue};
use crate::config::required;
use crate::runtime::{exit_on_config_error, unix_now};
use crate::store::dynamo::DynamoStore;
use crate::webhook::SecretBox;

/// Handles one invocation.
///
/// # Errors
/// A stream batch that cannot be handled (Lambda retries it whole: deliveries already made
/// are made again with the same `webhook-id`), or an event of no known shape.
pub async fn handle(d: &Arc<Dispatcher>, payload: &Value, now: i64) -> anyhow::Result<Value> {
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let source = records
        .first()
        .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
        .and_then(Value::as_str);
    match source {
        Some("aws:dynamodb") => stream(d, records, now).await.map(|()| json!({})),
        Some("aws:sqs") => Ok(retries(d, records, now).await),
        _ if payload.get("source").and_then(Value::as_str) == Some("aws.events") => {
            let fired = d.store.fire_due_reminders(now).await?;
            tracing::info!(fired, "expiry reminders fired");
            Ok(json!({ "fired": fired }))
        }
        _ if records.is_empty() && payload.get("Records").is_some() => Ok(json!({})),
        _ => anyhow::bail!("an event of no known shape (stream, queue or schedule)"),
    }
}

async fn stream(d: &Arc<Dispatcher>, records: &[Value], now: i64) -> anyhow::Result<()> {
    let mut events = Vec::new();
    for raw in records {
        let record: EventRecord = serde_json::from_value(raw.clone())
            .map_err(|e| anyhow::anyhow!("not a DynamoDB stream record: {e}"))?;
        let planned = plan_record(&record, &d.settings, now)?;
        events.extend(planned.events);
        if let Some(expiry) = planned.expiry {
            d.store.remind(&expiry, now).await?;
        }
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    tracing::info!(records = records.len(), events = ?kinds, "stream batch read");
    if !events.is_empty() {
        d.dispatch(&events, now).await?;
    }
    Ok(())
}

async fn retries(d: &Arc<Dispatcher>, records: &[Value], now: i64) -> Value {
    let mut tasks = tokio::task::JoinSet::new();
    for r in records {
        let id = r
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let retry: Option<Retry> = r
            .get("body")
            .and_then(Value::as_str)
            .and_then(|b| serde_json::from_str(b).ok());
        let d = Arc::clone(d);
        tasks.spawn(async move {
            let Some(retry) = retry else {
                // Not ours: acknowledged (and logged), never retried forever.
                tracing::error!(
                    message_id = id,
                    "a retry-queue message that does not decode"
                );
                return (id, true);
            };
            match d.retry(&retry, now).await {
                Ok(()) => (id, true),
                Err(e) => {
                    tracing::error!(message_id = id, error = format!("{e:#}"), "a retry failed");
                    (id, false)
                }
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((id, false)) = done {
            failures.push(json!({ "itemIdentifier": id }));
        }
    }
    json!({ "batchItemFailures": failures })
}

/// The function named `function`: configuration from the environment, then the runtime loop.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run(function: &'static str) -> Result<(), lambda_runtime::Error> {
    crate::runtime::init_logging();
    let sdk = crate::runtime::sdk_config(function).await;
    let secrets = crate::runtime::load_secrets(&sdk, &[crate::runtime::CURSOR_SECRET])
        .await
        .unwrap_or_else(|e| exit_on_config_error(function, &e));
    let get = secrets.lookup();
    let config = (|| {
        Ok::<_, crate::config::ConfigError>((
            required(&get, "KEYWARD_TABLE")?,
            required(&get, "KEYWARD_WEBHOOK_QUEUE_URL")?,
            // As the management functions read it: the bytes as stored.
            get("KEYWARD_CURSOR_SECRET")
                .filter(|v| !v.is_empty())
                .ok_or(crate::config::ConfigError::Missing("KEYWARD_CURSOR_SECRET"))?,
            Settings::from_lookup(&get)?,
        ))
    })();
    let (table, queue_url, cursor_secret, settings) =
        config.unwrap_or_else(|e| exit_on_config_error(function, &e));
    let allow_loopback = get("KEYWARD_WEBHOOK_ALLOW_LOOPBACK").is_some_and(|v| v == "true");
    let dispatcher = Arc::new(Dispatcher {
        store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table)),
        queue: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url)),
        secrets: SecretBox::derive(cursor_secret.as_bytes()),
        allow_loopback,
        settings,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let d = Arc::clone(&dispatcher);
        async move {
            handle(&d, &event.payload, unix_now())
                .await
                .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
        }
    }))
    .await
}
