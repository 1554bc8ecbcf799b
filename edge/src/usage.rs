//! Per-key usage counted in the isolate and reported in signed batches, off the critical path.
//!
//! Each isolate counts requests per key and UTC day. At most once per `USAGE_FLUSH_S` a request
//! that finds counts pending hands them to `ctx.wait_until` as one signed [`UsageBatch`] POST;
//! the response never waits for it. A failed POST puts the counts back for the next flush.

use std::cell::RefCell;
use std::collections::HashMap;

use keyward_common::sync::{SIGNATURE_HEADER, TIMESTAMP_HEADER, UsageBatch, UsageReport, sign};
use keyward_common::time::unix_seconds;
use keyward_common::{KeyId, Secret, Timestamp};
use worker::{Context, Fetch, Headers, Method, Request, RequestInit};

/// Counts not yet reported, by (key id, day).
#[derive(Debug, Default)]
pub struct Pending {
    reports: HashMap<(String, String), UsageReport>,
    last_flush_ms: Option<u64>,
}

impl Pending {
    /// Counts one request of `key_id` at Unix second `now`.
    pub fn record(&mut self, key_id: &KeyId, workspace: &str, now: i64) {
        let day = Timestamp(now).day();
        let report = self
            .reports
            .entry((key_id.as_str().to_owned(), day.clone()))
            .or_insert_with(|| UsageReport {
                workspace: workspace.to_owned(),
                key_id: key_id.clone(),
                day,
                count: 0,
                last_used_at: now,
            });
        report.count += 1;
        report.last_used_at = report.last_used_at.max(now);
    }

    /// Takes the pending counts if the last flush is at least `interval_ms` ago.
    pub fn take_due(&mut self, now_ms: u64, interval_ms: u64) -> Option<UsageBatch> {
        if self.reports.is_empty()
            || self
                .last_flush_ms
                .is_some_and(|t| now_ms.saturating_sub(t) < interval_ms)
        {
            return None;
        }
        self.last_flush_ms = Some(now_ms);
        let reports = std::mem::take(&mut self.reports).into_values().collect();
        Some(UsageBatch { reports })
    }

    /// Puts back the counts of a batch that could not be delivered.
    pub fn restore(&mut self, batch: UsageBatch) {
        for r in batch.reports {
            let entry = self
                .reports
                .entry((r.key_id.as_str().to_owned(), r.day.clone()))
                .or_insert_with(|| UsageReport {
                    count: 0,
                    ..r.clone()
                });
            entry.count += r.count;
            entry.last_used_at = entry.last_used_at.max(r.last_used_at);
        }
    }
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Counts one request and, when a flush is due, sends the batch via `ctx.wait_until`.
pub fn record(
    ctx: &Context,
    url: Option<&str>,
    secret: Option<&Secret>,
    interval_ms: u64,
    (key_id, workspace): (&KeyId, &str),
    now_ms: u64,
) {
    let (Some(url), Some(secret)) = (url, secret) else {
        return;
    };
    let now = unix_seconds(now_ms);
    let due = PENDING.with_borrow_mut(|p| {
        p.record(key_id, workspace, now);
        p.take_due(now_ms, interval_ms)
    });
    if let Some(batch) = due {
        let (url, secret) = (url.to_owned(), secret.clone());
        ctx.wait_until(async move {
            if let Err(err) = send(&url, &secret, &batch, now).await {
                worker::console_error!("usage report to {url} failed: {err}");
                PENDING.with_borrow_mut(|p| p.restore(batch));
            }
        });
    }
}

async fn send(url: &str, secret: &Secret, batch: &UsageBatch, now: i64) -> worker::Result<()> {
    let body = serde_json::to_string(batch)?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set(TIMESTAMP_HEADER, &now.to_string())?;
    headers.set(
        SIGNATURE_HEADER,
        &sign(secret.expose(), now, body.as_bytes()),
    )?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let resp = Fetch::Request(Request::new_with_init(url, &init)?)
        .send()
        .await?;
    if (200..300).contains(&resp.status_code()) {
        Ok(())
    } else {
        Err(worker::Error::RustError(format!(
            "answered {}",
            resp.status_code()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> KeyId {
        KeyId::new(1, [2; 10])
    }

    #[test]
    fn counts_are_batched_and_flushed_at_most_once_per_interval() {
        let mut p = Pending::default();
        p.record(&id(), "acme", 1_800_000_000);
        let first = p.take_due(1_000, 5_000).unwrap();
        assert_eq!(first.reports[0].count, 1);
        p.record(&id(), "acme", 1_800_000_001);
        p.record(&id(), "acme", 1_800_000_002);
        assert!(p.take_due(3_000, 5_000).is_none());
        let second = p.take_due(6_000, 5_000).unwrap();
        assert_eq!(second.reports[0].count, 2);
        assert_eq!(second.reports[0].last_used_at, 1_800_000_002);
    }

    #[test]
    fn undelivered_counts_are_merged_back() {
        let mut p = Pending::default();
        p.record(&id(), "acme", 1_800_000_000);
        let batch = p.take_due(0, 5_000).unwrap();
        p.record(&id(), "acme", 1_800_000_005);
        p.restore(batch);
        let again = p.take_due(10_000, 5_000).unwrap();
        assert_eq!(again.reports[0].count, 2);
        assert_eq!(again.reports[0].last_used_at, 1_800_000_005);
    }
}
