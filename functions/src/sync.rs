//! The `sync` function: DynamoDB stream records of key and role items become one signed batch of
//! edge entries for the edge's `/_keyward/sync` route, with Lambda's partial-batch failure report.
//!
//! Per role item record: the NEW image's role entry (`r:{workspace}:{name}` at the edge: version,
//! creation time, permissions), or for a deleted role a tombstone at the last version; a change
//! that leaves the entry as it was (the holder count the key writes keep) sends nothing. A role
//! change is one write at the edge whatever the number of keys holding the role.
//!
//! Per key item record: the NEW image's entries (current hash, and the previous hash with its
//! `retires_at` during a rotation grace period); every hash the OLD image had and the NEW one has
//! not becomes an entry retiring now at the new version, so a rotated-away secret stops; a
//! revoked key yields tombstones; a deleted key item yields tombstones of its hashes. Hash,
//! audit, usage and counter items, and key changes that only move `last_used_at`, send nothing.
//! The edge keeps only the newest version and never replaces a tombstone, so replays and
//! out-of-order deliveries are harmless.
//!
//! Per owner item record: the NEW image's owner entry (`o:{workspace}:{owner_id}`: version,
//! status, shared limits, whether it has credits) when its version moved (a balance report
//! changes no version and sends nothing); a deleted owner item (never by the API) becomes an
//! entry one version later with no settings.
//!
//! Credit operations: a key or owner item whose `credit_seq` advanced (NEW against OLD image)
//! sends the NEW image's `credit_op`, the operation that write recorded. Every write that
//! records an operation adds exactly 1 to `credit_seq` and the stream carries every write, so
//! the records of one target carry its operations one by one, in ascending `seq`; within a
//! batch they keep the stream's order. The edge applies each `seq` once, so a replay is harmless.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use keyward_common::credits::CreditOp;
use keyward_common::record::{OwnerEntry, OwnerStatus};
use keyward_common::sync::{
    MAX_BATCH_ITEMS, OwnerSyncItem, RoleSyncItem, SIGNATURE_HEADER, SyncBatch, SyncItem,
    SyncOutcome, SyncResponse, TIMESTAMP_HEADER, sign,
};
use keyward_common::{EdgeEntry, KeyStatus, RoleEntry};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_dynamo::AttributeValue as ImageValue;
use serde_json::Value;

use crate::config::{ConfigError, required};
use crate::runtime::{exit_on_config_error, unix_now};
use crate::store::item::{
    ItemError, ItemRead, KEY_SK_PREFIX, OWNER_SK_PREFIX, ROLE_SK_PREFIX, SK, owner_from_item, role,
    stored_key_from_item,
};
use crate::store::{CreditState, StoredKey, StoredOwner};

/// How sending a batch is retried inside one invocation: a few quick tries, so a blip does not
/// cost a whole Lambda retry, while an edge that stays down is left to Lambda's retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, at least 1.
    pub attempts: u32,
    /// Pause after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// Limit of one request.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 3 tries, 200 ms + 400 ms apart: about 0.6 s of waiting when the edge refuses
        // connections, bounded by the timeouts when it hangs.
        Self {
            attempts: 3,
            first_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(3),
        }
    }
}

/// Why a batch did not reach the edge.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer (connection refused, reset, timeout).
    #[error("the edge could not be reached: {0}")]
    Unreachable(String),
    /// The edge answered something other than 200.
    #[error("the edge answered HTTP {0}")]
    Status(u16),
    /// A 200 whose body is not a sync response for this batch.
    #[error("the edge's answer is not a sync response for this batch")]
    BadAnswer,
}

impl SendError {
    /// Whether trying again soon may help (no answer, 5xx, 429).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Status(s) => *s >= 500 || *s == 429,
            Self::BadAnswer => false,
        }
    }
}

/// A client of the edge's `/_keyward/sync` route that signs every batch.
#[derive(Clone)]
pub struct EdgeClient {
    http: reqwest::Client,
    sync_url: String,
    secret: Vec<u8>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for EdgeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeClient")
            .field("sync_url", &self.sync_url)
            .field("secret", &"<redacted>")
            .field("retry", &self.retry)
            .finish()
    }
}

impl EdgeClient {
    /// A client for the edge at `edge_url` (its base URL) signing with `secret`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(edge_url: &str, secret: &[u8], retry: RetryPolicy) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(retry.timeout).build()?;
        Ok(Self {
            http,
            sync_url: format!("{}/_keyward/sync", edge_url.trim_end_matches('/')),
            secret: secret.to_vec(),
            retry,
        })
    }

    /// From `KEYWARD_EDGE_URL` and `KEYWARD_SYNC_SECRET`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing or invalid.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = required(&get, "KEYWARD_EDGE_URL")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "KEYWARD_EDGE_URL",
                why: "must be an http:// or https:// base URL".into(),
            });
        }
        let secret = required(&get, "KEYWARD_SYNC_SECRET")?;
        Self::new(&url, secret.as_bytes(), RetryPolicy::default()).map_err(|_| {
            ConfigError::Invalid {
                name: "KEYWARD_EDGE_URL",
                why: "no HTTP client could be built for it".into(),
            }
        })
    }

    /// Sends `batch` signed now, retrying transient failures per the [`RetryPolicy`].
    ///
    /// # Errors
    /// The last [`SendError`] when every try failed, or the first permanent one.
    pub async fn send(&self, batch: &SyncBatch) -> Result<SyncResponse, SendError> {
        let body = serde_json::to_vec(batch).map_err(|_| SendError::BadAnswer)?;
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            match self.try_send(&body, batch).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_transient() && attempt < self.retry.attempts.max(1) => {
                    tracing::warn!(attempt, error = %e, "sync batch not delivered; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_send(&self, body: &[u8], batch: &SyncBatch) -> Result<SyncResponse, SendError> {
        let now = unix_now();
        let resp = self
            .http
            .post(&self.sync_url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, sign(&self.secret, now, body))
            .body(body.to_vec())
            .send()
            .await
            // Without the URL's query or any header: the error text names the cause only.
            .map_err(|e| SendError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(SendError::Status(status));
        }
        let answer: SyncResponse = resp.json().await.map_err(|_| SendError::BadAnswer)?;
        if answer.answers(batch) {
            Ok(answer)
        } else {
            Err(SendError::BadAnswer)
        }
    }
}

/// Stream images (`serde_dynamo`'s attribute values) read like SDK items.
impl ItemRead for serde_dynamo::Item {
    fn string(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            ImageValue::S(s) => Some(s),
            _ => None,
        }
    }
    fn number(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            ImageValue::N(n) => Some(n),
            _ => None,
        }
    }
    fn string_list(&self, name: &str) -> Option<Vec<String>> {
        match self.get(name)? {
            ImageValue::L(items) => items
                .iter()
                .map(|v| match v {
                    ImageValue::S(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            ImageValue::Ss(items) => Some(items.clone()),
            _ => None,
        }
    }
    fn map_number(&self, name: &str, field: &str) -> Option<&str> {
        match self.get(name)? {
            ImageValue::M(m) => match m.get(field)? {
                ImageValue::N(n) => Some(n),
                _ => None,
            },
            _ => None,
        }
    }
    fn has(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| !matches!(v, ImageValue::Null(_)))
    }
}

/// A stream record that cannot be turned into edge entries.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not the JSON of a DynamoDB stream record.
    #[error("not a DynamoDB stream record: {0}")]
    Shape(String),
    /// A key or role item image without the documented layout.
    #[error(transparent)]
    Item(#[from] ItemError),
    /// A key or role item record with neither image (the stream must be NEW_AND_OLD_IMAGES).
    #[error(
        "a key or role item record carries no image; the stream view must be NEW_AND_OLD_IMAGES"
    )]
    NoImage,
}

pub(crate) fn image_key(image: &serde_dynamo::Item) -> Result<Option<StoredKey>, ItemError> {
    if image.is_empty() {
        Ok(None)
    } else {
        stored_key_from_item(image).map(Some)
    }
}

/// Reads a role item (from the SDK or a stream image) into its edge write.
///
/// # Errors
/// [`ItemError`] naming the first attribute that is missing or malformed.
pub fn role_sync_item(item: &impl ItemRead) -> Result<RoleSyncItem, ItemError> {
    let text = |name: &'static str| {
        item.string(name)
            .map(str::to_owned)
            .ok_or(ItemError { attribute: name })
    };
    let number = |name: &'static str| {
        item.number(name)
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or(ItemError { attribute: name })
    };
    let version = u64::try_from(number(role::VERSION)?).map_err(|_| ItemError {
        attribute: role::VERSION,
    })?;
    Ok(RoleSyncItem {
        workspace: text(role::WORKSPACE)?,
        name: text(role::NAME)?,
        entry: RoleEntry {
            version,
            created_at: number(role::CREATED_AT)?,
            permissions: item.string_list(role::PERMISSIONS).unwrap_or_default(),
            deleted: false,
        },
    })
}

fn image_role(image: &serde_dynamo::Item) -> Result<Option<RoleSyncItem>, ItemError> {
    if image.is_empty() {
        Ok(None)
    } else {
        role_sync_item(image).map(Some)
    }
}

/// The role write a role item record asks for, if any.
fn plan_role(record: &EventRecord) -> Result<Option<RoleSyncItem>, RecordError> {
    let old = image_role(&record.change.old_image)?;
    let new = if record.event_name == "REMOVE" {
        None
    } else {
        image_role(&record.change.new_image)?
    };
    match (old, new) {
        // Only what the edge does not keep changed (the holder count, the description).
        (Some(old), Some(new)) if old == new => Ok(None),
        (_, Some(new)) => Ok(Some(new)),
        (Some(old), None) => Ok(Some(RoleSyncItem {
            entry: RoleEntry::tombstone(old.entry.version, old.entry.created_at),
            ..old
        })),
        (None, None) => Err(RecordError::NoImage),
    }
}

/// The edge entry of an owner.
#[must_use]
pub fn owner_sync_item(owner: &StoredOwner) -> OwnerSyncItem {
    let r = &owner.record;
    OwnerSyncItem {
        workspace: r.workspace.clone(),
        owner_id: r.owner_id.clone(),
        entry: OwnerEntry {
            version: r.version,
            status: r.status,
            rate_limits: r.rate_limits.clone(),
            credited: r.credits.is_some(),
        },
    }
}

/// The credit operations a write from `old` to `new` recorded: the latest one when `seq`
/// advanced. (Each write records at most one; a gap would mean a lost stream record, logged.)
#[must_use]
pub fn credit_ops(old: Option<&CreditState>, new: &CreditState) -> Vec<CreditOp> {
    let before = old.map_or(0, |o| o.seq);
    if new.seq <= before {
        return Vec::new();
    }
    if new.seq > before + 1 {
        tracing::warn!(
            from = before,
            to = new.seq,
            "credit operations skipped in the stream; sending the latest"
        );
    }
    match &new.op {
        Some(op) if op.seq == new.seq => vec![op.clone()],
        _ => {
            tracing::error!(seq = new.seq, "credit_seq advanced without its credit_op");
            Vec::new()
        }
    }
}

pub(crate) fn image_owner(image: &serde_dynamo::Item) -> Result<Option<StoredOwner>, ItemError> {
    if image.is_empty() {
        Ok(None)
    } else {
        owner_from_item(image).map(Some)
    }
}

/// The owner write and credit operations an owner item record asks for.
fn plan_owner(record: &EventRecord) -> Result<SyncBatch, RecordError> {
    let old = image_owner(&record.change.old_image)?;
    let new = if record.event_name == "REMOVE" {
        None
    } else {
        image_owner(&record.change.new_image)?
    };
    let mut batch = SyncBatch::default();
    match (old, new) {
        (old, Some(new)) => {
            if old
                .as_ref()
                .is_none_or(|o| o.record.version != new.record.version)
            {
                batch.owners.push(owner_sync_item(&new));
            }
            batch.credit_ops = credit_ops(old.as_ref().map(|o| &o.credit), &new.credit);
        }
        (Some(old), None) => batch.owners.push(OwnerSyncItem {
            workspace: old.record.workspace.clone(),
            owner_id: old.record.owner_id.clone(),
            entry: OwnerEntry {
                version: old.record.version + 1,
                status: OwnerStatus::Active,
                rate_limits: Vec::new(),
                credited: false,
            },
        }),
        (None, None) => return Err(RecordError::NoImage),
    }
    Ok(batch)
}

/// The KV writes one stream record asks for; `None` when it concerns no edge entry (not a key
/// or role item, a key change that only moved `last_used_at`, a role change the edge does not
/// see). `now` is when retired hashes stop.
///
/// # Errors
/// [`RecordError`] for a key or role item image that does not decode.
pub fn plan_record(record: &EventRecord, now: i64) -> Result<Option<SyncBatch>, RecordError> {
    let change = &record.change;
    let sk = [&change.keys, &change.new_image, &change.old_image]
        .into_iter()
        .find_map(|image| image.string(SK));
    if sk.is_some_and(|sk| sk.starts_with(ROLE_SK_PREFIX)) {
        return Ok(plan_role(record)?.map(|role| SyncBatch {
            roles: vec![role],
            ..SyncBatch::default()
        }));
    }
    if sk.is_some_and(|sk| sk.starts_with(OWNER_SK_PREFIX)) {
        return Ok(Some(plan_owner(record)?));
    }
    if !sk.is_some_and(|sk| sk.starts_with(KEY_SK_PREFIX)) {
        return Ok(None);
    }
    let old = image_key(&change.old_image)?;
    let new = if record.event_name == "REMOVE" {
        None
    } else {
        image_key(&change.new_image)?
    };
    let mut ops = Vec::new();
    let items = match (old, new) {
        (old, Some(new)) => {
            if let Some(old) = &old
                && only_usage_changed(old, &new)
            {
                return Ok(None);
            }
            ops = credit_ops(old.as_ref().map(|o| &o.credit), &new.credit);
            let mut items: Vec<SyncItem> = new
                .edge_entries()
                .into_iter()
                .map(|(hash, entry)| SyncItem { hash, entry })
                .collect();
            let kept: HashSet<_> = new.hashes().into_iter().map(|(h, _)| h).collect();
            for (hash, _) in old.iter().flat_map(StoredKey::hashes) {
                if !kept.contains(&hash) {
                    // Same version as the new entries, so it supersedes the old entry of that hash.
                    let entry = EdgeEntry::for_key(&new.record).retiring(now);
                    items.push(SyncItem { hash, entry });
                }
            }
            items
        }
        // The key item itself was deleted (never by the API): its secrets must stop for good.
        (Some(old), None) => {
            let mut record = old.record.clone();
            record.status = KeyStatus::Revoked;
            let gone = StoredKey { record, ..old };
            gone.edge_entries()
                .into_iter()
                .map(|(hash, entry)| SyncItem { hash, entry })
                .collect()
        }
        (None, None) => return Err(RecordError::NoImage),
    };
    Ok(Some(SyncBatch {
        credit_ops: ops,
        ..SyncBatch::keys(items)
    }))
}

/// Whether `new` differs from `old` in what the usage function writes at most: `last_used_at`,
/// and the credit balance the edge reported (same operation).
pub(crate) fn only_usage_changed(old: &StoredKey, new: &StoredKey) -> bool {
    let mut old = old.clone();
    old.record.last_used_at = new.record.last_used_at;
    if old.credit.seq == new.credit.seq {
        old.credit.balance_at_ms = new.credit.balance_at_ms;
        if let (Some(o), Some(n)) = (&mut old.record.credits, &new.record.credits) {
            o.remaining = n.remaining;
        }
    }
    old == *new
}

struct Planned {
    /// Index of the record in the event.
    index: usize,
    batch: SyncBatch,
}

fn failure(seq: &str) -> DynamoDbBatchItemFailure {
    let mut f = DynamoDbBatchItemFailure::default();
    f.item_identifier = Some(seq.to_owned());
    f
}

/// Handles one DynamoDB stream event (`{"Records": [...]}`): sends every key item's entries to
/// the edge and answers which records failed, by sequence number.
///
/// A record that does not decode is reported as failed (Lambda retries it a bounded number of
/// times, then hands it to the failure queue); when the edge cannot be reached, every record
/// from the first unsent one is reported, since Lambda retries from the lowest failed one.
pub async fn handle(edge: &EdgeClient, event: &Value, now: i64) -> DynamoDbEventResponse {
    let records: &[Value] = event
        .get("Records")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let seqs: Vec<Option<&str>> = records
        .iter()
        .map(|r| {
            r.pointer("/dynamodb/SequenceNumber")
                .and_then(Value::as_str)
        })
        .collect();
    let mut failed: Vec<usize> = Vec::new();
    let mut planned: Vec<Planned> = Vec::new();
    for (index, raw) in records.iter().enumerate() {
        let plan = serde_json::from_value::<EventRecord>(raw.clone())
            .map_err(|e| RecordError::Shape(e.to_string()))
            .and_then(|record| plan_record(&record, now));
        match plan {
            Ok(Some(batch)) if !batch.is_empty() => planned.push(Planned { index, batch }),
            Ok(_) => {}
            Err(e) => {
                // Item images hold hashes and settings, never secrets; the error names the cause.
                tracing::error!(
                    sequence_number = seqs[index].unwrap_or("?"),
                    error = %e,
                    "stream record cannot be synced"
                );
                failed.push(index);
            }
        }
    }

    let mut start = 0;
    let (mut applied, mut stale, mut batches) = (0usize, 0usize, 0usize);
    while start < planned.len() {
        let mut end = start;
        let mut count = 0;
        while end < planned.len()
            && (end == start || count + planned[end].batch.len() <= MAX_BATCH_ITEMS)
        {
            count += planned[end].batch.len();
            end += 1;
        }
        let batch = SyncBatch {
            items: planned[start..end]
                .iter()
                .flat_map(|p| p.batch.items.iter().cloned())
                .collect(),
            roles: planned[start..end]
                .iter()
                .flat_map(|p| p.batch.roles.iter().cloned())
                .collect(),
            owners: planned[start..end]
                .iter()
                .flat_map(|p| p.batch.owners.iter().cloned())
                .collect(),
            credit_ops: planned[start..end]
                .iter()
                .flat_map(|p| p.batch.credit_ops.iter().cloned())
                .collect(),
        };
        match edge.send(&batch).await {
            Ok(answer) => {
                batches += 1;
                for o in answer
                    .outcomes
                    .into_iter()
                    .chain(answer.role_outcomes)
                    .chain(answer.owner_outcomes)
                    .chain(answer.credit_outcomes)
                {
                    match o {
                        SyncOutcome::Applied => applied += 1,
                        SyncOutcome::Stale => stale += 1,
                    }
                }
            }
            Err(e) => {
                let first = planned[start].index;
                tracing::error!(
                    error = %e,
                    first_unsent = seqs[first].unwrap_or("?"),
                    "the edge did not take the batch; reporting the rest for Lambda to retry"
                );
                failed.extend(first..records.len());
                break;
            }
        }
        start = end;
    }
    failed.sort_unstable();
    failed.dedup();
    // The oldest record's wait (stream write to here): what the SyncLag alarm watches.
    let oldest = records
        .iter()
        .filter_map(|r| r.pointer("/dynamodb/ApproximateCreationDateTime")?.as_f64())
        .fold(f64::INFINITY, f64::min);
    if oldest.is_finite() {
        #[allow(clippy::cast_possible_truncation)] // seconds since 1970, in ms: far below 2^53
        crate::metrics::sync_lag(crate::metrics::now_ms_i64() - (oldest * 1000.0) as i64);
    }
    tracing::info!(
        records = records.len(),
        batches,
        applied,
        stale,
        failed = failed.len(),
        "stream batch handled"
    );
    let mut response = DynamoDbEventResponse::default();
    for index in failed {
        match seqs[index] {
            Some(seq) => response.batch_item_failures.push(failure(seq)),
            None => tracing::error!(index, "a failed record has no sequence number to report"),
        }
    }
    response
}

/// The `sync` Lambda function: configuration from the environment, then the runtime loop.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::runtime::init_logging();
    let sdk = crate::runtime::sdk_config("sync").await;
    let secrets = crate::runtime::load_secrets(&sdk, &[crate::runtime::SYNC_SECRET])
        .await
        .unwrap_or_else(|e| exit_on_config_error("sync", &e));
    let edge = EdgeClient::from_lookup(secrets.lookup())
        .unwrap_or_else(|e| exit_on_config_error("sync", &e));
    let edge = Arc::new(edge);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let edge = Arc::clone(&edge);
        async move {
            Ok::<_, lambda_runtime::Error>(handle(&edge, &event.payload, unix_now()).await)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_common::credits::CreditOpKind;
    use serde_json::json;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn image(version: u64, status: &str, hash: &str, previous: Option<(&str, i64)>) -> Value {
        let id = keyward_common::KeyId::new(1, [0; 10]).to_string();
        let mut img = json!({
            "PK": {"S": "WS#acme"}, "SK": {"S": format!("KEY#{id}")},
            "id": {"S": id}, "workspace": {"S": "acme"},
            "name": {"S": "n"}, "key_prefix": {"S": "kw_AbCdEf12…"},
            "scopes": {"L": [{"S": "read"}]}, "status": {"S": status},
            "created_at": {"N": "1800000000"}, "updated_at": {"N": "1800000000"},
            "allowed_ips": {"L": []}, "version": {"N": version.to_string()},
            "hash": {"S": hash},
        });
        if let Some((h, at)) = previous {
            img["previous_hash"] = json!({"S": h});
            img["previous_retires_at"] = json!({"N": at.to_string()});
        }
        img
    }

    fn record(name: &str, old: Option<Value>, new: Option<Value>) -> EventRecord {
        let mut dynamodb = json!({
            "Keys": {"PK": {"S": "WS#acme"}, "SK": {"S": "KEY#key_x"}},
            "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES",
            "ApproximateCreationDateTime": 1_800_000_000.0,
        });
        if let Some(o) = old {
            dynamodb["OldImage"] = o;
        }
        if let Some(n) = new {
            dynamodb["NewImage"] = n;
        }
        serde_json::from_value(json!({
            "eventID": "1", "eventName": name, "eventSource": "aws:dynamodb",
            "eventVersion": "1.1", "awsRegion": "us-east-1", "dynamodb": dynamodb,
        }))
        .unwrap()
    }

    fn plan(r: &EventRecord) -> Vec<SyncItem> {
        plan_record(r, 1_800_000_100).unwrap().unwrap().items
    }

    fn role_image(version: u64, permissions: &[&str], holders: u64) -> Value {
        json!({
            "PK": {"S": "WS#acme"}, "SK": {"S": "ROLE#sms-sender"},
            "workspace": {"S": "acme"}, "name": {"S": "sms-sender"},
            "description": {"S": "sends"},
            "permissions": {"L": permissions.iter().map(|p| json!({"S": p})).collect::<Vec<_>>()},
            "created_at": {"N": "1800000000"}, "updated_at": {"N": "1800000000"},
            "version": {"N": version.to_string()}, "holders": {"N": holders.to_string()},
        })
    }

    fn role_plan(r: &EventRecord) -> Option<RoleSyncItem> {
        let mut r = r.clone();
        r.change.keys =
            serde_json::from_value(json!({"PK": {"S": "WS#acme"}, "SK": {"S": "ROLE#sms-sender"}}))
                .unwrap();
        plan_record(&r, 0).unwrap().map(|b| {
            assert!(b.items.is_empty());
            assert_eq!(b.roles.len(), 1);
            b.roles[0].clone()
        })
    }

    #[test]
    fn a_role_change_is_one_role_write_and_a_holder_count_change_is_none() {
        let created = role_plan(&record(
            "INSERT",
            None,
            Some(role_image(1, &["sms.send"], 0)),
        ))
        .unwrap();
        assert_eq!(created.kv_key().as_deref(), Some("r:acme:sms-sender"));
        assert_eq!(created.entry.permissions, ["sms.send"]);
        assert_eq!(
            (created.entry.version, created.entry.created_at),
            (1, 1_800_000_000)
        );
        let updated = role_plan(&record(
            "MODIFY",
            Some(role_image(1, &["sms.send"], 3)),
            Some(role_image(2, &["sms.send", "billing.read"], 3)),
        ))
        .unwrap();
        assert_eq!(updated.entry.version, 2);
        assert_eq!(updated.entry.permissions.len(), 2);
        let holders_only = record(
            "MODIFY",
            Some(role_image(2, &["sms.send"], 3)),
            Some(role_image(2, &["sms.send"], 4)),
        );
        assert_eq!(role_plan(&holders_only), None);
    }

    #[test]
    fn a_deleted_role_becomes_a_tombstone_at_its_last_version() {
        let gone = role_plan(&record(
            "REMOVE",
            Some(role_image(4, &["sms.send"], 0)),
            None,
        ))
        .unwrap();
        assert!(gone.entry.deleted);
        assert!(gone.entry.permissions.is_empty());
        assert_eq!(
            (gone.entry.version, gone.entry.created_at),
            (4, 1_800_000_000)
        );
    }

    #[test]
    fn a_key_entry_carries_its_roles_name_and_meta_but_a_tombstone_no_name_or_meta() {
        let mut img = image(1, "active", H1, None);
        img["roles"] = json!({"L": [{"S": "sms-sender"}]});
        img["meta"] = json!({"S": "{\"plan\":\"pro\"}"});
        let items = plan(&record("INSERT", None, Some(img.clone())));
        assert_eq!(items[0].entry.roles, ["sms-sender"]);
        assert_eq!(items[0].entry.name.as_deref(), Some("n"));
        assert!(items[0].entry.meta.is_some());
        let mut revoked = img;
        revoked["status"] = json!({"S": "revoked"});
        revoked["version"] = json!({"N": "2"});
        let items = plan(&record("MODIFY", None, Some(revoked)));
        assert!(items[0].entry.is_tombstone());
        assert_eq!(
            (items[0].entry.name.clone(), items[0].entry.meta.clone()),
            (None, None)
        );
        assert_eq!(items[0].entry.roles, ["sms-sender"]);
    }

    #[test]
    fn a_new_key_yields_its_current_entry() {
        let items = plan(&record("INSERT", None, Some(image(1, "active", H1, None))));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].hash.as_str(), H1);
        assert_eq!(items[0].entry.version, 1);
        assert_eq!(items[0].entry.status, KeyStatus::Active);
    }

    #[test]
    fn a_rotation_with_grace_keeps_the_old_hash_until_its_end() {
        let items = plan(&record(
            "MODIFY",
            Some(image(1, "active", H1, None)),
            Some(image(2, "active", H2, Some((H1, 1_800_000_500)))),
        ));
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].hash.as_str(), H2);
        assert_eq!(items[1].hash.as_str(), H1);
        assert_eq!(items[1].entry.retires_at, Some(1_800_000_500));
    }

    #[test]
    fn a_hash_that_disappears_retires_now_at_the_new_version() {
        let items = plan(&record(
            "MODIFY",
            Some(image(1, "active", H1, None)),
            Some(image(2, "active", H2, None)),
        ));
        let old = items.iter().find(|i| i.hash.as_str() == H1).unwrap();
        assert_eq!(old.entry.retires_at, Some(1_800_000_100));
        assert_eq!(old.entry.version, 2);
    }

    #[test]
    fn revocation_and_deletion_yield_tombstones() {
        let items = plan(&record(
            "MODIFY",
            Some(image(1, "active", H1, None)),
            Some(image(2, "revoked", H1, None)),
        ));
        assert!(items.iter().all(|i| i.entry.is_tombstone()));
        let items = plan(&record("REMOVE", Some(image(3, "active", H1, None)), None));
        assert!(items[0].entry.is_tombstone());
        assert_eq!(items[0].entry.version, 3);
    }

    #[test]
    fn a_last_used_at_update_and_other_items_send_nothing() {
        let mut used = image(1, "active", H1, None);
        used["last_used_at"] = json!({"N": "1800000050"});
        let r = record("MODIFY", Some(image(1, "active", H1, None)), Some(used));
        assert!(plan_record(&r, 0).unwrap().is_none());
        let mut other = record(
            "INSERT",
            None,
            Some(json!({"PK": {"S": "HASH#x"}, "SK": {"S": "HASH"}})),
        );
        other.change.keys =
            serde_json::from_value(json!({"PK": {"S": "HASH#x"}, "SK": {"S": "HASH"}})).unwrap();
        assert!(plan_record(&other, 0).unwrap().is_none());
    }

    /// `img` with credits (`remaining`, at operation `seq` of kind `op`) and a balance time.
    fn credited(mut img: Value, remaining: u64, seq: u64, op: &str, balance_at_ms: i64) -> Value {
        let id = keyward_common::KeyId::new(1, [0; 10]).to_string();
        let target = if img["SK"]["S"].as_str().unwrap().starts_with("OWNER#") {
            json!({"kind": "owner", "workspace": "acme", "owner_id": "cus_1"})
        } else {
            json!({"kind": "key", "workspace": "acme", "key_id": id})
        };
        let op = json!({"target": target, "seq": seq, "op": op, "value": remaining,
                        "refill": {"amount": 100, "interval": "daily"}, "at": 1_800_000_000});
        img["credits_remaining"] = json!({"N": remaining.to_string()});
        img["credits_refill"] = json!({"S": r#"{"amount":100,"interval":"daily"}"#});
        img["credit_seq"] = json!({"N": seq.to_string()});
        img["credit_op"] = json!({"S": op.to_string()});
        img["balance_at_ms"] = json!({"N": balance_at_ms.to_string()});
        img
    }

    fn owner_image(version: u64, status: &str) -> Value {
        json!({
            "PK": {"S": "WS#acme"}, "SK": {"S": "OWNER#cus_1"},
            "workspace": {"S": "acme"}, "owner_id": {"S": "cus_1"}, "status": {"S": status},
            "rate_limits": {"S": r#"[{"name":"minute","limit":3,"period_s":60}]"#},
            "created_at": {"N": "1800000000"}, "updated_at": {"N": "1800000000"},
            "version": {"N": version.to_string()},
        })
    }

    fn owner_record(name: &str, old: Option<Value>, new: Option<Value>) -> EventRecord {
        let mut r = record(name, old, new);
        r.change.keys =
            serde_json::from_value(json!({"PK": {"S": "WS#acme"}, "SK": {"S": "OWNER#cus_1"}}))
                .unwrap();
        r
    }

    #[test]
    fn a_key_created_with_credits_sends_its_set_operation_and_a_credited_entry() {
        let new = credited(image(1, "active", H1, None), 50, 1, "set", 0);
        let batch = plan_record(&record("INSERT", None, Some(new)), 0)
            .unwrap()
            .unwrap();
        assert!(batch.items[0].entry.credited);
        assert_eq!(batch.credit_ops.len(), 1);
        let op = &batch.credit_ops[0];
        assert_eq!((op.seq, op.op, op.value), (1, CreditOpKind::Set, 50));
        assert_eq!(
            op.target.object_name(),
            format!("k:{}", keyward_common::KeyId::new(1, [0; 10]))
        );
        assert_eq!(op.refill.unwrap().amount, 100);
    }

    #[test]
    fn a_credit_operation_is_sent_once_and_a_balance_report_sends_nothing() {
        let old = credited(image(1, "active", H1, None), 50, 1, "set", 0);
        let new = credited(image(2, "active", H1, None), 10, 2, "increment", 0);
        let batch = plan_record(&record("MODIFY", Some(old), Some(new.clone())), 0)
            .unwrap()
            .unwrap();
        assert_eq!(batch.credit_ops.len(), 1);
        assert_eq!(batch.credit_ops[0].seq, 2);
        assert_eq!(batch.credit_ops[0].op, CreditOpKind::Increment);
        // The usage function's write: a newer balance at the same operation.
        let mut reported = new.clone();
        reported["credits_remaining"] = json!({"N": "7"});
        reported["balance_at_ms"] = json!({"N": "1800000000500"});
        let r = record("MODIFY", Some(new.clone()), Some(reported));
        assert!(plan_record(&r, 0).unwrap().is_none());
        // A settings change that records no operation sends no operation.
        let mut renamed = new.clone();
        renamed["name"] = json!({"S": "renamed"});
        renamed["version"] = json!({"N": "3"});
        let batch = plan_record(&record("MODIFY", Some(new), Some(renamed)), 0)
            .unwrap()
            .unwrap();
        assert!(batch.credit_ops.is_empty());
        assert_eq!(batch.items.len(), 1);
    }

    #[test]
    fn an_owner_write_sends_its_entry_and_operation_but_a_balance_report_nothing() {
        let new = credited(owner_image(1, "disabled"), 20, 1, "set", 0);
        let batch = plan_record(&owner_record("INSERT", None, Some(new.clone())), 0)
            .unwrap()
            .unwrap();
        assert!(batch.items.is_empty());
        assert_eq!(batch.owners.len(), 1);
        let o = &batch.owners[0];
        assert_eq!(o.kv_key().unwrap(), "o:acme:cus_1");
        assert_eq!(o.entry.version, 1);
        assert_eq!(o.entry.status, OwnerStatus::Disabled);
        assert_eq!(o.entry.rate_limits[0].name, "minute");
        assert!(o.entry.credited);
        assert_eq!(batch.credit_ops.len(), 1);
        assert_eq!(batch.credit_ops[0].target.object_name(), "o:acme:cus_1");

        let mut reported = new.clone();
        reported["credits_remaining"] = json!({"N": "3"});
        reported["balance_at_ms"] = json!({"N": "1800000000500"});
        let r = owner_record("MODIFY", Some(new.clone()), Some(reported));
        assert!(plan_record(&r, 0).unwrap().unwrap().is_empty());

        let decremented = credited(owner_image(2, "disabled"), 15, 2, "decrement", 0);
        let batch = plan_record(
            &owner_record("MODIFY", Some(new.clone()), Some(decremented)),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(batch.owners[0].entry.version, 2);
        assert_eq!(batch.credit_ops[0].seq, 2);

        let gone = plan_record(&owner_record("REMOVE", Some(new), None), 0)
            .unwrap()
            .unwrap();
        assert_eq!(gone.owners[0].entry.version, 2);
        assert_eq!(gone.owners[0].entry.status, OwnerStatus::Active);
        assert!(!gone.owners[0].entry.credited);
    }

    #[test]
    fn a_key_image_without_its_hash_is_an_error() {
        let mut bad = image(1, "active", H1, None);
        bad.as_object_mut().unwrap().remove("hash");
        assert!(plan_record(&record("INSERT", None, Some(bad)), 0).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_edge_fails_every_record_from_the_first_unsent_one() {
        let edge = EdgeClient::new(
            "http://127.0.0.1:9",
            b"secret",
            RetryPolicy {
                attempts: 2,
                first_delay: Duration::from_millis(1),
                timeout: Duration::from_secs(1),
            },
        )
        .unwrap();
        let mut skipped = serde_json::to_value(record("INSERT", None, None)).unwrap();
        skipped["dynamodb"]["Keys"]["SK"] = json!({"S": "AUDIT#1"});
        skipped["dynamodb"]["SequenceNumber"] = json!("1");
        let mut key =
            serde_json::to_value(record("INSERT", None, Some(image(1, "active", H1, None))))
                .unwrap();
        key["dynamodb"]["SequenceNumber"] = json!("2");
        let mut poison = key.clone();
        poison["dynamodb"]["NewImage"]["hash"] = json!({"S": "nope"});
        poison["dynamodb"]["SequenceNumber"] = json!("3");
        let event = json!({"Records": [skipped, key, poison]});
        let resp = handle(&edge, &event, 0).await;
        let ids: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(ids, ["2", "3"]);
        let text = serde_json::to_string(&resp).unwrap();
        assert!(
            text.contains("\"batchItemFailures\":[{\"itemIdentifier\":\"2\"}"),
            "{text}"
        );
    }
}
