//! The local stand-ins for the webhook retry queue's event source mapping and for the
//! schedule (EventBridge).
//!
//! [`QueuePoller`] polls an SQS queue on moto and invokes a function through
//! `cargo lambda watch` with the event Lambda's SQS mapping sends; messages the function
//! acknowledges are deleted, the ones it lists in `batchItemFailures` (or all, when it fails)
//! come back after their visibility timeout, as on AWS; moto's redrive policy moves a message
//! that keeps failing to the failure queue. Each batch is its own task, so one slow invocation
//! does not stop the polling. [`Scheduler`] invokes a function with a scheduled event at a fixed
//! interval. Dev and test only: production uses the template's mappings and schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// A queue on moto, created by [`create_queue`].
#[derive(Debug, Clone)]
pub struct Queue {
    /// Its URL (what `KEYWARD_WEBHOOK_QUEUE_URL` names).
    pub url: String,
    /// Its ARN.
    pub arn: String,
}

/// An SQS client for moto's JSON protocol (moto checks no signature).
#[derive(Debug, Clone)]
struct Sqs {
    http: reqwest::Client,
    endpoint: String,
}

impl Sqs {
    fn new(endpoint: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        })
    }

    async fn call(&self, action: &str, body: Value) -> Result<Value> {
        let response = self
            .http
            .post(&self.endpoint)
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", format!("AmazonSQS.{action}"))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .json(&body)
            .send()
            .await
            .with_context(|| format!("calling SQS {action}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("SQS {action} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, name: &str, attributes: Value) -> Result<Queue> {
        let created = self
            .call(
                "CreateQueue",
                json!({"QueueName": name, "Attributes": attributes}),
            )
            .await?;
        let url = created["QueueUrl"]
            .as_str()
            .context("CreateQueue answered no QueueUrl")?
            .to_owned();
        let attrs = self
            .call(
                "GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
            )
            .await?;
        let arn = attrs["Attributes"]["QueueArn"]
            .as_str()
            .context("GetQueueAttributes answered no QueueArn")?
            .to_owned();
        Ok(Queue { url, arn })
    }
}

/// Creates the retry queue `name` and its failure queue (`{name}-failures`, taking a message
/// after `max_receives` receives), as the template does.
///
/// # Errors
/// When moto refuses.
pub async fn create_queue(moto_url: &str, name: &str, max_receives: u32) -> Result<(Queue, Queue)> {
    let sqs = Sqs::new(moto_url)?;
    let failures = sqs.create(&format!("{name}-failures"), json!({})).await?;
    let redrive = json!({"deadLetterTargetArn": failures.arn, "maxReceiveCount": max_receives});
    let queue = sqs
        .create(name, json!({"RedrivePolicy": redrive.to_string()}))
        .await?;
    Ok((queue, failures))
}

/// How many messages a queue holds (visible, in flight and delayed).
///
/// # Errors
/// When moto refuses.
pub async fn queue_depth(moto_url: &str, queue: &Queue) -> Result<u64> {
    let attrs = Sqs::new(moto_url)?
        .call(
            "GetQueueAttributes",
            json!({"QueueUrl": queue.url, "AttributeNames": ["All"]}),
        )
        .await?;
    let n = |k: &str| {
        attrs["Attributes"][k]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(n("ApproximateNumberOfMessages")
        + n("ApproximateNumberOfMessagesNotVisible")
        + n("ApproximateNumberOfMessagesDelayed"))
}

/// Counters of a [`QueuePoller`].
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Messages the function acknowledged.
    pub handled: AtomicU64,
    /// Messages it reported as failed (or whose invocation failed).
    pub failed: AtomicU64,
}

/// A running queue poller; stops when dropped.
#[derive(Debug)]
pub struct QueuePoller {
    task: JoinHandle<()>,
    stats: Arc<QueueStats>,
}

impl QueuePoller {
    /// Polls `queue` on moto and invokes `function` at `lambda_url` with each batch.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn start(moto_url: &str, queue: Queue, lambda_url: &str, function: &str) -> Result<Self> {
        let sqs = Sqs::new(moto_url)?;
        let (invoke, http) = invoker(lambda_url, function)?;
        let stats = Arc::new(QueueStats::default());
        let task_stats = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            loop {
                let received = sqs
                    .call(
                        "ReceiveMessage",
                        json!({
                            "QueueUrl": queue.url, "MaxNumberOfMessages": 10,
                            // Short polls: moto serves one request at a time, and a long
                            // poll would hold every other caller (the table included) for
                            // its whole wait.
                            "WaitTimeSeconds": 0, "VisibilityTimeout": 60,
                            "AttributeNames": ["All"],
                        }),
                    )
                    .await;
                let messages = match received {
                    Ok(v) => v["Messages"].as_array().cloned().unwrap_or_default(),
                    Err(e) => {
                        eprintln!("queue poller: {e:#}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if messages.is_empty() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                let (sqs, http, invoke, queue, stats) = (
                    sqs.clone(),
                    http.clone(),
                    invoke.clone(),
                    queue.clone(),
                    Arc::clone(&task_stats),
                );
                tokio::spawn(async move {
                    deliver(&sqs, &http, &invoke, &queue, &messages, &stats).await;
                });
            }
        });
        Ok(Self { task, stats })
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }
}

impl Drop for QueuePoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn deliver(
    sqs: &Sqs,
    http: &reqwest::Client,
    invoke: &str,
    queue: &Queue,
    messages: &[Value],
    stats: &QueueStats,
) {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"], "attributes": m["Attributes"], "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
                "eventSourceARN": queue.arn, "awsRegion": "us-east-1",
            })
        })
        .collect();
    let answer = http
        .post(invoke)
        .json(&json!({ "Records": records }))
        .send()
        .await;
    let failed: Vec<String> = match answer {
        Ok(r) if r.status().is_success() => {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if body.get("errorType").is_some() || body.get("errorMessage").is_some() {
                eprintln!("queue poller: the function failed: {body}");
                messages
                    .iter()
                    .filter_map(|m| m["MessageId"].as_str().map(str::to_owned))
                    .collect()
            } else {
                body["batchItemFailures"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            }
        }
        Ok(r) => {
            eprintln!("queue poller: invoking answered {}", r.status());
            messages
                .iter()
                .filter_map(|m| m["MessageId"].as_str().map(str::to_owned))
                .collect()
        }
        Err(e) => {
            eprintln!("queue poller: invoking: {e}");
            messages
                .iter()
                .filter_map(|m| m["MessageId"].as_str().map(str::to_owned))
                .collect()
        }
    };
    for m in messages {
        let id = m["MessageId"].as_str().unwrap_or_default();
        if failed.iter().any(|f| f == id) {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            // Back soon, as Lambda's mapping makes a failed message visible again.
            let _ = sqs
                .call(
                    "ChangeMessageVisibility",
                    json!({"QueueUrl": queue.url, "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 2}),
                )
                .await;
            continue;
        }
        stats.handled.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = sqs
            .call(
                "DeleteMessage",
                json!({"QueueUrl": queue.url, "ReceiptHandle": m["ReceiptHandle"]}),
            )
            .await
        {
            eprintln!("queue poller: deleting a handled message: {e:#}");
        }
    }
}

/// The invocation URL of `function` under `cargo lambda watch` at `lambda_url`, and a client.
fn invoker(lambda_url: &str, function: &str) -> Result<(String, reqwest::Client)> {
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        lambda_url.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    Ok((url, http))
}

/// Invokes a function with a scheduled event at a fixed interval; stops when dropped.
#[derive(Debug)]
pub struct Scheduler {
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Invokes `function` at `lambda_url` every `every`, as an EventBridge rule would.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn start(lambda_url: &str, function: &str, every: Duration) -> Result<Self> {
        let (invoke, http) = invoker(lambda_url, function)?;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let event = json!({
                    "version": "0", "id": crate::control_plane::random_hex(8),
                    "detail-type": "Scheduled Event", "source": "aws.events",
                    "account": "123456789012", "region": "us-east-1",
                    "time": keyward_common::Timestamp(crate::control_plane::unix_now()),
                    "resources": [], "detail": {},
                });
                match http.post(&invoke).json(&event).send().await {
                    Ok(r) => {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if body.get("errorType").is_some() {
                            eprintln!("scheduler: the function failed: {body}");
                        }
                    }
                    Err(e) => eprintln!("scheduler: invoking: {e}"),
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
