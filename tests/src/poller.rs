//! The local stand-in for Lambda's DynamoDB Streams event source mapping.
//!
//! It reads the local table's stream (DescribeStream, GetShardIterator, GetRecords on moto),
//! invokes the `sync` function through `cargo lambda watch` with the event JSON Lambda sends,
//! and, like the real mapping with `ReportBatchItemFailures`, checkpoints per shard and retries
//! from the first item the function reports as failed (at-least-once delivery). Dev and test
//! only: production uses the mapping in `infra/template.yaml`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Where to read and whom to invoke.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// moto's endpoint, e.g. `http://127.0.0.1:5000`.
    pub dynamodb_url: String,
    /// The table whose stream is read.
    pub table: String,
    /// `cargo lambda watch`'s base URL, e.g. `http://127.0.0.1:9000`.
    pub lambda_url: String,
    /// The function to invoke (`sync`).
    pub function: String,
    /// Most records per invocation (Lambda's `BatchSize`).
    pub batch_size: u32,
    /// Pause between polls of an idle shard.
    pub idle_wait: Duration,
    /// Retries of a failing record before it goes to the failure queue (`MaximumRetryAttempts`).
    pub max_retry_attempts: u32,
    /// The function the failure queue triggers (`backfill`, as the template's SQS event source
    /// on the sync failure queue does), retried until it succeeds; `None`: give up silently.
    pub failure_function: Option<String>,
}

/// Counters the tests and `cargo xtask dev` can read.
#[derive(Debug, Default)]
pub struct PollerStats {
    /// Successful invocations (including partial successes).
    pub invocations: AtomicU64,
    /// Invocations that failed as a whole (function error or unreachable), then retried.
    pub failed_invocations: AtomicU64,
    /// Records the function reported as failed, then retried.
    pub retried_records: AtomicU64,
    /// Records delivered and acknowledged.
    pub delivered_records: AtomicU64,
    /// Records given up on after `max_retry_attempts` (sent to the failure queue).
    pub failed_over_records: AtomicU64,
    /// Failure-queue messages the failure function handled successfully.
    pub replays: AtomicU64,
}

/// A running poller; stops when dropped.
#[derive(Debug)]
pub struct Poller {
    task: JoinHandle<()>,
    stats: Arc<PollerStats>,
}

impl Poller {
    /// Starts polling on the current tokio runtime.
    ///
    /// # Errors
    /// When the table has no stream.
    pub async fn start(config: PollerConfig) -> Result<Self> {
        let client = StreamsClient::new(&config.dynamodb_url)?;
        let stream_arn = client.stream_arn(&config.table).await?;
        let stats = Arc::new(PollerStats::default());
        let task_stats = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let mut mapping = Mapping {
                client,
                config,
                stream_arn,
                stats: task_stats,
                shards: HashMap::new(),
                attempts: HashMap::new(),
            };
            mapping.run().await;
        });
        Ok(Self { task, stats })
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> &PollerStats {
        &self.stats
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Per-shard position: where the next read starts.
#[derive(Debug)]
enum Checkpoint {
    /// An iterator to read from.
    Iterator(String),
    /// The shard is closed and fully delivered.
    Done,
}

struct Mapping {
    client: StreamsClient,
    config: PollerConfig,
    stream_arn: String,
    stats: Arc<PollerStats>,
    shards: HashMap<String, Checkpoint>,
    /// Per shard: the record that failed last and how often in a row.
    attempts: HashMap<String, (String, u32)>,
}

/// Retries of a failing record before it goes to the failure queue on a dev stack (the
/// template's `MaximumRetryAttempts` is 5; higher here, since a stopped local edge is a normal
/// state of a dev stack).
pub const DEV_MAX_RETRY_ATTEMPTS: u32 = 50;

impl Mapping {
    async fn run(&mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.poll_once().await {
                Ok(true) => backoff = Duration::from_millis(100),
                Ok(false) => tokio::time::sleep(self.config.idle_wait).await,
                Err(err) => {
                    eprintln!("stream poller: {err:#}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One pass over every shard; `Ok(true)` when records were delivered.
    async fn poll_once(&mut self) -> Result<bool> {
        for shard in self.client.shards(&self.stream_arn).await? {
            if !self.shards.contains_key(&shard) {
                let it = self
                    .client
                    .iterator(&self.stream_arn, &shard, "TRIM_HORIZON", None)
                    .await?;
                self.shards.insert(shard, Checkpoint::Iterator(it));
            }
        }
        let mut delivered = false;
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for shard in ids {
            let Some(Checkpoint::Iterator(iterator)) = self.shards.get(&shard) else {
                continue;
            };
            let (records, next) = self
                .client
                .records(iterator, self.config.batch_size)
                .await?;
            if records.is_empty() {
                self.shards
                    .insert(shard, next.map_or(Checkpoint::Done, Checkpoint::Iterator));
                continue;
            }
            delivered = true;
            match self.deliver(&records).await? {
                None => {
                    self.attempts.remove(&shard);
                    self.stats
                        .delivered_records
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    self.shards
                        .insert(shard, next.map_or(Checkpoint::Done, Checkpoint::Iterator));
                }
                Some(first_failed) => {
                    // Like `MaximumRetryAttempts` of the real mapping: a record that keeps
                    // failing is given up on (Lambda would send it to the failure queue), so a
                    // poison record cannot block the shard forever.
                    let tries = match self.attempts.get(&shard) {
                        Some((seq, n)) if *seq == first_failed => n + 1,
                        _ => 1,
                    };
                    if tries > self.config.max_retry_attempts {
                        eprintln!(
                            "stream poller: giving up on record {first_failed} after {tries} \
                             attempts: to the failure queue"
                        );
                        self.attempts.remove(&shard);
                        self.stats
                            .failed_over_records
                            .fetch_add(1, Ordering::Relaxed);
                        self.fail_over(&shard, &first_failed);
                        let it = self
                            .client
                            .iterator(
                                &self.stream_arn,
                                &shard,
                                "AFTER_SEQUENCE_NUMBER",
                                Some(&first_failed),
                            )
                            .await?;
                        self.shards.insert(shard, Checkpoint::Iterator(it));
                        continue;
                    }
                    self.attempts
                        .insert(shard.clone(), (first_failed.clone(), tries));
                    // Checkpoint just before the first failed record and read again from there.
                    let ok = records
                        .iter()
                        .take_while(|r| seq(r) != Some(first_failed.as_str()))
                        .count();
                    self.stats
                        .delivered_records
                        .fetch_add(ok as u64, Ordering::Relaxed);
                    self.stats
                        .retried_records
                        .fetch_add((records.len() - ok) as u64, Ordering::Relaxed);
                    let it = self
                        .client
                        .iterator(
                            &self.stream_arn,
                            &shard,
                            "AT_SEQUENCE_NUMBER",
                            Some(&first_failed),
                        )
                        .await?;
                    self.shards.insert(shard, Checkpoint::Iterator(it));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        Ok(delivered)
    }

    /// Invokes the function; `Ok(None)` when everything succeeded, `Ok(Some(seq))` with the
    /// lowest failed sequence number otherwise. A whole-invocation failure is an `Err` after
    /// retries, which leaves the checkpoint where it was.
    /// Puts a given-up record on the failure queue, whose consumer (the failure function) is
    /// invoked with the SQS event Lambda would send, until it succeeds: a revocation the sync
    /// function could not deliver is never silently lost.
    fn fail_over(&self, shard: &str, sequence: &str) {
        let Some(function) = self.config.failure_function.clone() else {
            return;
        };
        // What Lambda's on-failure destination writes: the batch's place in the stream.
        let message = json!({
            "requestContext": {"condition": "RetryAttemptsExhausted"},
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": sequence,
                "endSequenceNumber": sequence,
                "streamArn": self.stream_arn,
            },
        });
        let event = json!({"Records": [{
            "eventSource": "aws:sqs",
            "messageId": format!("failover-{shard}-{sequence}"),
            "body": message.to_string(),
        }]});
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.config.lambda_url
        );
        let http = self.client.http.clone();
        let stats = Arc::clone(&self.stats);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match http.post(&url).json(&event).send().await {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if body.get("errorType").is_none() && body.get("errorMessage").is_none() {
                            stats.replays.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        eprintln!("failure queue: {function} failed: {body}; retrying");
                    }
                    Ok(r) => eprintln!("failure queue: {function} answered {}", r.status()),
                    Err(err) => eprintln!("failure queue: invoking {function}: {err}"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    async fn deliver(&self, records: &[Value]) -> Result<Option<String>> {
        let event = json!({
            "Records": records.iter().map(|r| {
                let mut r = r.clone();
                r["eventSourceARN"] = json!(self.stream_arn);
                r
            }).collect::<Vec<_>>()
        });
        let url = format!(
            "{}/2015-03-31/functions/{}/invocations",
            self.config.lambda_url, self.config.function
        );
        let response = self.client.http.post(&url).json(&event).send().await;
        let body: Value = match response {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            Ok(r) => {
                self.stats
                    .failed_invocations
                    .fetch_add(1, Ordering::Relaxed);
                let status = r.status();
                bail!(
                    "{} answered {status}: {}",
                    self.config.function,
                    r.text().await.unwrap_or_default()
                );
            }
            Err(err) => {
                self.stats
                    .failed_invocations
                    .fetch_add(1, Ordering::Relaxed);
                return Err(anyhow!(err).context(format!("invoking {}", self.config.function)));
            }
        };
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        if body.get("errorType").is_some() || body.get("errorMessage").is_some() {
            self.stats
                .failed_invocations
                .fetch_add(1, Ordering::Relaxed);
            bail!("{} failed: {body}", self.config.function);
        }
        let failed: Vec<&str> = body["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        // The first failed record in stream order, as Lambda does.
        Ok(records
            .iter()
            .filter_map(seq)
            .find(|s| failed.contains(s))
            .map(str::to_owned))
    }
}

fn seq(record: &Value) -> Option<&str> {
    record["dynamodb"]["SequenceNumber"].as_str()
}

/// The DynamoDB and DynamoDB Streams JSON APIs, spoken directly so that records arrive in
/// exactly the wire JSON (`{"S": "..."}` attribute values) that Lambda puts into its events.
struct StreamsClient {
    http: reqwest::Client,
    url: String,
}

impl StreamsClient {
    fn new(url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    async fn call(&self, target: &str, body: Value) -> Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", target)
            // moto does not check signatures; the header only has to look like SigV4.
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .json(&body)
            .send()
            .await
            .with_context(|| format!("calling {target}"))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .with_context(|| format!("reading {target}"))?;
        if !status.is_success() {
            bail!("{target} answered {status}: {value}");
        }
        Ok(value)
    }

    async fn stream_arn(&self, table: &str) -> Result<String> {
        let d = self
            .call(
                "DynamoDB_20120810.DescribeTable",
                json!({ "TableName": table }),
            )
            .await?;
        d["Table"]["LatestStreamArn"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("table {table} has no stream"))
    }

    async fn shards(&self, stream_arn: &str) -> Result<Vec<String>> {
        let d = self
            .call(
                "DynamoDBStreams_20120810.DescribeStream",
                json!({ "StreamArn": stream_arn }),
            )
            .await?;
        Ok(d["StreamDescription"]["Shards"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["ShardId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn iterator(
        &self,
        stream_arn: &str,
        shard: &str,
        kind: &str,
        at: Option<&str>,
    ) -> Result<String> {
        let mut req =
            json!({ "StreamArn": stream_arn, "ShardId": shard, "ShardIteratorType": kind });
        if let Some(seq) = at {
            req["SequenceNumber"] = json!(seq);
        }
        let d = self
            .call("DynamoDBStreams_20120810.GetShardIterator", req)
            .await?;
        d["ShardIterator"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no shard iterator"))
    }

    async fn records(&self, iterator: &str, limit: u32) -> Result<(Vec<Value>, Option<String>)> {
        let d = self
            .call(
                "DynamoDBStreams_20120810.GetRecords",
                json!({ "ShardIterator": iterator, "Limit": limit }),
            )
            .await?;
        let records = d["Records"].as_array().cloned().unwrap_or_default();
        Ok((records, d["NextShardIterator"].as_str().map(str::to_owned)))
    }
}
