//! Backfill: scans the table and pushes every key's edge entries (live, disabled, revoked
//! tombstones, grace hashes) and every role's entry to the edge, rebuilding a new or wiped KV
//! namespace. (A deleted role has no item left: its tombstone is not rebuilt, and an empty
//! namespace simply has no entry for it, which grants nothing either.)
//!
//! Owners are pushed too, and for every key and owner with credit operations the latest one is
//! sent again as recorded: the edge applies each `seq` once, so it changes nothing where the
//! edge has it already, and only ever the latest operation is re-sent (never an older one, and
//! never a balance made up from the control plane's last report, which could undo spending).
//!
//! Safe to run at any time: the edge keeps the newest version of each entry and never replaces
//! a tombstone, so a backfill racing the stream cannot move anything back.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use keyward_common::sync::{SyncBatch, SyncItem};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigError;
use crate::config::required;
use crate::runtime::exit_on_config_error;
use crate::store::item::{
    KEY_SK_PREFIX, OWNER_SK_PREFIX, ROLE_SK_PREFIX, SK, owner_from_item, stored_key_from_item,
};
use crate::sync::{EdgeClient, owner_sync_item, role_sync_item};

/// Most entries per signed batch.
pub const BATCH_ENTRIES: usize = 500;

/// What a backfill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillReport {
    /// Key items pushed.
    pub keys: u64,
    /// Edge entries pushed (a key in a rotation grace period has two).
    pub entries: u64,
    /// Signed batches sent.
    pub batches: u64,
    /// Key and role items that do not decode (logged by sort key, never pushed).
    pub skipped: u64,
    /// Role items pushed.
    #[serde(default)]
    pub roles: u64,
    /// Owner items pushed.
    #[serde(default)]
    pub owners: u64,
    /// Latest credit operations re-sent.
    #[serde(default)]
    pub credit_ops: u64,
}

async fn flush(
    edge: &EdgeClient,
    pending: &mut SyncBatch,
    report: &mut BackfillReport,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(pending);
    edge.send(&batch)
        .await
        .with_context(|| format!("sending batch {} to the edge", report.batches + 1))?;
    report.batches += 1;
    Ok(())
}

/// Scans `table` (every key and role item, paginated) and sends their entries to the edge in
/// signed batches of at most [`BATCH_ENTRIES`].
///
/// # Errors
/// When the scan fails or a batch cannot be delivered (after the client's retries).
pub async fn backfill(
    client: &Client,
    table: &str,
    edge: &EdgeClient,
) -> anyhow::Result<BackfillReport> {
    let mut report = BackfillReport::default();
    let mut pending = SyncBatch::keys(Vec::new());
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression(
                "begins_with(#sk, :k) OR begins_with(#sk, :r) OR begins_with(#sk, :o)",
            )
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":k", AttributeValue::S(KEY_SK_PREFIX.to_owned()))
            .expression_attribute_values(":r", AttributeValue::S(ROLE_SK_PREFIX.to_owned()))
            .expression_attribute_values(":o", AttributeValue::S(OWNER_SK_PREFIX.to_owned()))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
            .with_context(|| format!("scanning table {table}"))?;
        for item in page.items() {
            let sk = item.get(SK).and_then(|v| v.as_s().ok());
            if sk.is_some_and(|sk| sk.starts_with(ROLE_SK_PREFIX)) {
                match role_sync_item(item) {
                    Ok(role) => {
                        if pending.len() + 1 > BATCH_ENTRIES {
                            flush(edge, &mut pending, &mut report).await?;
                        }
                        report.roles += 1;
                        pending.roles.push(role);
                    }
                    Err(e) => {
                        tracing::error!(sk, error = %e, "role item does not decode; skipped");
                        report.skipped += 1;
                    }
                }
                continue;
            }
            if sk.is_some_and(|sk| sk.starts_with(OWNER_SK_PREFIX)) {
                match owner_from_item(item) {
                    Ok(owner) => {
                        if pending.len() + 2 > BATCH_ENTRIES {
                            flush(edge, &mut pending, &mut report).await?;
                        }
                        report.owners += 1;
                        pending.owners.push(owner_sync_item(&owner));
                        if let Some(op) = owner.credit.op {
                            report.credit_ops += 1;
                            pending.credit_ops.push(op);
                        }
                    }
                    Err(e) => {
                        tracing::error!(sk, error = %e, "owner item does not decode; skipped");
                        report.skipped += 1;
                    }
                }
                continue;
            }
            let key = match stored_key_from_item(item) {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(sk, error = %e, "key item does not decode; skipped");
                    report.skipped += 1;
                    continue;
                }
            };
            let entries = key.edge_entries();
            if pending.len() + entries.len() + 1 > BATCH_ENTRIES {
                flush(edge, &mut pending, &mut report).await?;
            }
            if let Some(op) = key.credit.op.clone() {
                report.credit_ops += 1;
                pending.credit_ops.push(op);
            }
            report.keys += 1;
            report.entries += entries.len() as u64;
            pending.items.extend(
                entries
                    .into_iter()
                    .map(|(hash, entry)| SyncItem { hash, entry }),
            );
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    flush(edge, &mut pending, &mut report).await?;
    tracing::info!(
        keys = report.keys,
        roles = report.roles,
        owners = report.owners,
        credit_ops = report.credit_ops,
        entries = report.entries,
        batches = report.batches,
        skipped = report.skipped,
        "backfill done"
    );
    Ok(report)
}

/// The `backfill` Lambda function: any event (`{}`) runs one backfill and answers its
/// [`BackfillReport`]. Production: `aws lambda invoke --function-name <BackfillFunctionName>
/// out.json`.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::runtime::init_logging();
    let sdk = crate::runtime::sdk_config("backfill").await;
    let secrets = crate::runtime::load_secrets(&sdk, &[crate::runtime::SYNC_SECRET])
        .await
        .unwrap_or_else(|e| exit_on_config_error("backfill", &e));
    let get = secrets.lookup();
    let config: Result<(String, EdgeClient), ConfigError> = (|| {
        Ok((
            required(&get, "KEYWARD_TABLE")?,
            EdgeClient::from_lookup(get)?,
        ))
    })();
    let (table, edge) = config.unwrap_or_else(|e| exit_on_config_error("backfill", &e));
    let client = Client::new(&sdk);
    let shared = Arc::new((client, table, edge));
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| {
        let shared = Arc::clone(&shared);
        async move {
            let (client, table, edge) = &*shared;
            backfill(client, table, edge)
                .await
                .map_err(|e| lambda_runtime::Error::from(format!("{e:#}")))
        }
    }))
    .await
}
