//! The usage items in DynamoDB: each (key, UTC hour) is counted twice, under
//! `USAGE#K#{key_id}#{hour}` (one key's history, read by `GET /keys/{id}/usage`) and under
//! `USAGE#H#{hour}#{key_id}` (every key by hour, read by `GET /usage` for billing), so each read
//! is one range query over exactly the items it needs.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use keyward_common::KeyId;
use keyward_common::sync::{OutcomeCounts, UsageReport};

use async_trait::async_trait;

use super::UsageHour;
use super::dynamo::DynamoStore;
use super::item::{self, PK, SK, usage};

/// What recording one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted now.
    Counted,
    /// This (batch, report) was counted before: a resent batch.
    Duplicate,
}

/// Where reports are written.
#[async_trait]
pub trait UsageStore: Send + Sync + std::fmt::Debug {
    /// Applies report `index` of batch `batch_id` at Unix time `now`: `last_used_at` only moves
    /// forward, and the count is added once per (batch, report) however often it is sent.
    async fn record(
        &self,
        batch_id: &str,
        index: usize,
        report: &UsageReport,
        now: i64,
    ) -> anyhow::Result<Recorded>;
    /// Takes a credit balance the edge reported as the key's or owner's `credits.remaining`
    /// when it is about the latest credit operation and newer than the stored one (see
    /// [`super::KeyStore::apply_balance`]); whether it was taken.
    async fn balance(&self, report: &keyward_common::sync::BalanceReport) -> anyhow::Result<bool>;
}

/// The two count updates of `report` (ADD, so concurrent reports add up), for a transaction.
///
/// # Errors
/// When an update cannot be built (a bug).
pub fn count_updates(table: &str, report: &UsageReport) -> anyhow::Result<[Update; 2]> {
    let build = |sk: String| -> anyhow::Result<Update> {
        let mut adds = Vec::new();
        let mut b = Update::builder()
            .table_name(table)
            .key(PK, AttributeValue::S(item::workspace_pk(&report.workspace)))
            .key(SK, AttributeValue::S(sk));
        for (i, (name, value)) in usage::COUNTS
            .iter()
            .zip(counts_of(&report.counts))
            .enumerate()
        {
            adds.push(format!("#c{i} :c{i}"));
            b = b
                .expression_attribute_names(format!("#c{i}"), *name)
                .expression_attribute_values(
                    format!(":c{i}"),
                    AttributeValue::N(value.to_string()),
                );
        }
        let mut set = vec!["#ws = :ws", "#k = :k", "#h = :h"];
        b = b
            .expression_attribute_names("#ws", usage::WORKSPACE)
            .expression_attribute_names("#k", usage::KEY_ID)
            .expression_attribute_names("#h", usage::HOUR)
            .expression_attribute_values(":ws", AttributeValue::S(report.workspace.clone()))
            .expression_attribute_values(":k", AttributeValue::S(report.key_id.to_string()))
            .expression_attribute_values(":h", AttributeValue::N(report.hour.to_string()));
        if let Some(owner) = &report.owner_id {
            set.push("#o = :o");
            b = b
                .expression_attribute_names("#o", usage::OWNER_ID)
                .expression_attribute_values(":o", AttributeValue::S(owner.clone()));
        }
        b.update_expression(format!("ADD {} SET {}", adds.join(", "), set.join(", ")))
            .build()
            .context("building a usage count update")
    };
    Ok([
        build(item::usage_key_hour_sk(&report.key_id, report.hour))?,
        build(item::usage_hour_key_sk(report.hour, &report.key_id))?,
    ])
}

/// The counts in [`usage::COUNTS`] order.
fn counts_of(c: &OutcomeCounts) -> [u64; 8] {
    [
        c.valid,
        c.rate_limited,
        c.usage_exceeded,
        c.forbidden,
        c.disabled,
        c.expired,
        c.revoked,
        c.credits_spent,
    ]
}

fn hour_item(item: &HashMap<String, AttributeValue>) -> anyhow::Result<UsageHour> {
    let num = |name: &str| -> u64 {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let key_id = text(usage::KEY_ID)
        .and_then(|k| KeyId::parse(&k).ok())
        .context("a usage item without a key id")?;
    let hour = item
        .get(usage::HOUR)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .context("a usage item without an hour")?;
    let [
        valid,
        rate_limited,
        usage_exceeded,
        forbidden,
        disabled,
        expired,
        revoked,
        spent,
    ] = usage::COUNTS.map(num);
    Ok(UsageHour {
        key_id,
        owner_id: text(usage::OWNER_ID),
        hour,
        counts: OutcomeCounts {
            valid,
            rate_limited,
            usage_exceeded,
            forbidden,
            disabled,
            expired,
            revoked,
            credits_spent: spent,
        },
    })
}

impl DynamoStore {
    /// The usage items of `workspace` whose sort keys lie in `[low, high]`, at most `max`
    /// (`None` beyond), in sort-key order.
    pub(super) async fn usage_range(
        &self,
        workspace: &str,
        low: String,
        high: String,
        max: usize,
    ) -> anyhow::Result<Option<Vec<UsageHour>>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(
                    ":pk",
                    AttributeValue::S(item::workspace_pk(workspace)),
                )
                .expression_attribute_values(":lo", AttributeValue::S(low.clone()))
                .expression_attribute_values(":hi", AttributeValue::S(high.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .context("reading usage")?;
            for i in page.items() {
                out.push(hour_item(i)?);
            }
            if out.len() > max {
                return Ok(None);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(Some(out)),
            }
        }
    }
}

/// The sort-key range of key `key_id`'s hours in `[from, to)`.
pub(super) fn key_range(key_id: &KeyId, from: i64, to: i64) -> (String, String) {
    (
        item::usage_key_hour_sk(key_id, from),
        item::usage_key_hour_sk(key_id, to - 1),
    )
}

/// The sort-key range of every key's hours in `[from, to)`: from the first key of `from` to
/// past the last key of `to - 1` (`~` sorts after every key id character).
pub(super) fn hour_range(from: i64, to: i64) -> (String, String) {
    (
        format!("{}H#{from:010}#", item::USAGE_SK_PREFIX),
        format!("{}H#{:010}#~", item::USAGE_SK_PREFIX, to - 1),
    )
}
