//! The retry queue: a failed delivery waits here (SQS, with a delay) for its next attempt.
//! A wait longer than SQS's 15-minute delay is made of several hops: a message that arrives
//! before its `due_at` is sent on again.

use anyhow::Context as _;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One pending attempt. Carries no secret: the endpoint's is read when the attempt is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// The endpoint's workspace.
    pub workspace: String,
    /// The endpoint.
    pub webhook_id: String,
    /// `webhook-id`: the same on every attempt.
    pub message_id: String,
    /// The event type.
    pub event: String,
    /// The body, exactly as first sent.
    pub body: Value,
    /// The attempt to make (1 for the first).
    pub attempt: u32,
    /// When it is due (Unix seconds).
    pub due_at: i64,
}

/// SQS's longest delay.
pub const MAX_DELAY_S: i64 = 900;

/// Where pending attempts wait.
#[async_trait]
pub trait RetryQueue: Send + Sync + std::fmt::Debug {
    /// Queues `retry` to come back in `delay_s` seconds (at most [`MAX_DELAY_S`]).
    async fn send(&self, retry: &Retry, delay_s: i64) -> anyhow::Result<()>;
}

/// The SQS queue at `url`.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// The queue at `url` through `client`.
    #[must_use]
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl RetryQueue for SqsQueue {
    async fn send(&self, retry: &Retry, delay_s: i64) -> anyhow::Result<()> {
        let delay = i32::try_from(delay_s.clamp(0, MAX_DELAY_S)).unwrap_or(0);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(serde_json::to_string(retry)?)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
            .with_context(|| {
                format!("queueing attempt {} of {}", retry.attempt, retry.message_id)
            })?;
        Ok(())
    }
}

/// A queue in memory (tests): what was sent, with its delay.
#[derive(Debug, Default)]
pub struct MemoryQueue(pub std::sync::Mutex<Vec<(Retry, i64)>>);

#[async_trait]
impl RetryQueue for MemoryQueue {
    async fn send(&self, retry: &Retry, delay_s: i64) -> anyhow::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((retry.clone(), delay_s.clamp(0, MAX_DELAY_S)));
        Ok(())
    }
}
