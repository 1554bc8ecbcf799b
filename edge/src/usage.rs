//! Per-key usage counted in the isolate and reported in signed batches, off the critical path.
//!
//! Each isolate counts requests of found keys per key and UTC hour, by outcome, with the credits
//! the admitted ones spent, and keeps the latest balance each allowance object reported. At most
//! once per `USAGE_FLUSH_S` a request that finds counts pending hands them to `ctx.wait_until`
//! as signed [`UsageBatch`] POSTs of at most [`MAX_USAGE_REPORTS`] reports, each with its own
//! `batch_id`; the response never waits. A request that finds a flush not yet due schedules one
//! at the interval's end (one at a time), so counts never wait for the isolate's next request.
//! A batch that is not confirmed (network error, 5xx, 408, 429) is sent again unchanged with the
//! same id at the next flush, and the control plane counts each (batch, report) once, so a retry
//! never counts twice. A batch refused with another 4xx is dropped and logged: resending it
//! would only be refused again.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use keyward_common::sync::{
    BalanceReport, MAX_USAGE_REPORTS, OutcomeCounts, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    UsageBatch, UsageReport, sign,
};
use keyward_common::time::unix_seconds;
use keyward_common::{KeyId, Secret, VerdictCode};

use crate::config::Config;
use crate::js;
use keyward_common::json;
use worker::{Context, web_sys};

/// Most batches kept for resending; beyond it the oldest is dropped, with an error log.
const MAX_UNSENT: usize = 64;

/// Counts not yet reported, by (key id, day), and batches sent but not confirmed.
#[derive(Debug, Default)]
pub struct Pending {
    reports: HashMap<(String, i64), UsageReport>,
    /// Batches to send again unchanged, with their ids: the control plane may have counted
    /// them already, and counts each (batch, report) once.
    unsent: VecDeque<UsageBatch>,
    last_flush_ms: Option<u64>,
    batches: u64,
}

impl Pending {
    /// Counts one request at Unix second `now` under its outcome.
    pub fn record(&mut self, c: &Counted<'_>, now: i64) {
        let hour = now - now.rem_euclid(3600);
        let report = self
            .reports
            .entry((c.key_id.as_str().to_owned(), hour))
            .or_insert_with(|| UsageReport {
                workspace: c.workspace.to_owned(),
                key_id: c.key_id.clone(),
                owner_id: None,
                hour,
                counts: OutcomeCounts::default(),
                last_used_at: None,
            });
        if let Some(owner) = c.owner_id {
            report.owner_id = Some(owner.to_owned());
        }
        let counts = &mut report.counts;
        let field = match c.code {
            VerdictCode::Valid => &mut counts.valid,
            VerdictCode::RateLimited => &mut counts.rate_limited,
            VerdictCode::UsageExceeded => &mut counts.usage_exceeded,
            VerdictCode::ForbiddenScope | VerdictCode::ForbiddenIp => &mut counts.forbidden,
            VerdictCode::Disabled => &mut counts.disabled,
            VerdictCode::Expired => &mut counts.expired,
            VerdictCode::Revoked => &mut counts.revoked,
            // No key was found: nothing to count it under.
            VerdictCode::Malformed | VerdictCode::NotFound => return,
        };
        *field += 1;
        counts.credits_spent += c.credits_spent;
        if c.code == VerdictCode::Valid {
            report.last_used_at = Some(report.last_used_at.map_or(now, |t| t.max(now)));
        }
    }

    /// When the last flush is at least `interval_ms` ago: the batches to send, resends first,
    /// then the new counts split into batches of at most [`MAX_USAGE_REPORTS`], each with a
    /// fresh id made from `now_ms`, a per-isolate sequence number and `random`.
    pub fn take_due(
        &mut self,
        now_ms: u64,
        interval_ms: u64,
        random: u64,
        balances: &mut dyn FnMut() -> Vec<BalanceReport>,
    ) -> Vec<UsageBatch> {
        if !self.is_due(now_ms, interval_ms) {
            return Vec::new();
        }
        self.last_flush_ms = Some(now_ms);
        let mut out: Vec<UsageBatch> = self.unsent.drain(..).collect();
        let mut reports: Vec<UsageReport> =
            std::mem::take(&mut self.reports).into_values().collect();
        let mut balances = balances();
        while !reports.is_empty() || !balances.is_empty() {
            let rest = reports.split_off(reports.len().min(MAX_USAGE_REPORTS));
            let more = balances.split_off(balances.len().min(MAX_USAGE_REPORTS));
            self.batches += 1;
            out.push(UsageBatch {
                batch_id: format!("{now_ms:x}-{:x}-{random:016x}", self.batches),
                reports,
                balances,
            });
            reports = rest;
            balances = more;
        }
        out
    }

    /// Whether [`Self::take_due`] would send anything now.
    #[must_use]
    pub fn is_due(&self, now_ms: u64, interval_ms: u64) -> bool {
        let something = !self.reports.is_empty() || !self.unsent.is_empty();
        let interval_over = self
            .last_flush_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= interval_ms);
        something && interval_over
    }

    /// Keeps a batch that could not be confirmed, to send again unchanged.
    pub fn resend(&mut self, batch: UsageBatch) {
        if self.unsent.len() >= MAX_UNSENT
            && let Some(dropped) = self.unsent.pop_front()
        {
            log_dropped(&dropped, "too many unconfirmed batches");
        }
        self.unsent.push_back(batch);
    }
}

fn log_dropped(batch: &UsageBatch, why: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_error!(
        "usage batch {} ({} reports) dropped: {why}",
        batch.batch_id,
        batch.reports.len()
    );
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (batch, why);
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
    /// Whether a flush at the end of the current interval is waiting.
    static FLUSH_SCHEDULED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How a send ended.
enum Sent {
    /// Counted (2xx).
    Confirmed,
    /// Refused for good (4xx): sending it again would be refused again.
    Refused(u16),
    /// Not confirmed (network, 5xx): send again unchanged.
    Unconfirmed(String),
}

/// One request to count.
#[derive(Debug)]
pub struct Counted<'a> {
    /// The key.
    pub key_id: &'a KeyId,
    /// Its workspace.
    pub workspace: &'a str,
    /// Its owner.
    pub owner_id: Option<&'a str>,
    /// The outcome.
    pub code: VerdictCode,
    /// Credits the request spent.
    pub credits_spent: u64,
}

/// Counts one request and, when a flush is due, sends the batches via `ctx.wait_until`.
pub fn record(ctx: &Context, cfg: &Config, counted: Counted<'_>, now_ms: u64) {
    let (Some(url), Some(secret)) = (cfg.usage_url.as_deref(), cfg.usage_secret.as_ref()) else {
        return;
    };
    let interval_ms = cfg.usage_flush_ms;
    let now = unix_seconds(now_ms);
    // Most requests only count: the batch id's random part, and the copies of the sink's
    // address and secret a flush needs, are made only when one is sent or scheduled.
    let due = PENDING.with_borrow_mut(|p| {
        p.record(&counted, now);
        if !p.is_due(now_ms, interval_ms) {
            return Vec::new();
        }
        p.take_due(
            now_ms,
            interval_ms,
            random(),
            &mut crate::allowance::take_balances,
        )
    });
    if due.is_empty() {
        // Not due yet: a flush at the end of the interval, so a burst followed by silence (the
        // refusals that make an auth-failure alert, the request that spent the last credit) is
        // still reported within the interval, not at the isolate's next request.
        if !FLUSH_SCHEDULED.replace(true) {
            let (url, secret) = (url.to_owned(), secret.clone());
            let random = random();
            ctx.wait_until(async move {
                worker::Delay::from(std::time::Duration::from_millis(interval_ms + 50)).await;
                FLUSH_SCHEDULED.set(false);
                let now_ms = crate::check::now_ms();
                let due = PENDING.with_borrow_mut(|p| {
                    p.take_due(
                        now_ms,
                        interval_ms,
                        random ^ 1,
                        &mut crate::allowance::take_balances,
                    )
                });
                send_all(&url, &secret, due, unix_seconds(now_ms)).await;
            });
        }
        return;
    }
    let (url, secret) = (url.to_owned(), secret.clone());
    ctx.wait_until(async move { send_all(&url, &secret, due, now).await });
}

/// A batch id's random part. Uniqueness only (batches are signed): with the clock and a
/// counter, 53 random bits.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn random() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}

async fn send_all(url: &str, secret: &Secret, due: Vec<UsageBatch>, now: i64) {
    for batch in due {
        match send(url, secret, &batch, now).await {
            Sent::Confirmed => {}
            Sent::Refused(status) => {
                log_dropped(&batch, &format!("the control plane answered {status}"));
            }
            Sent::Unconfirmed(err) => {
                worker::console_error!("usage report to {url} failed: {err}; will resend");
                PENDING.with_borrow_mut(|p| p.resend(batch));
            }
        }
    }
}

async fn send(url: &str, secret: &Secret, batch: &UsageBatch, now: i64) -> Sent {
    match try_send(url, secret, batch, now).await {
        Ok(status) if (200..300).contains(&status) => Sent::Confirmed,
        Ok(status) if (400..500).contains(&status) && status != 408 && status != 429 => {
            Sent::Refused(status)
        }
        Ok(status) => Sent::Unconfirmed(format!("answered {status}")),
        Err(err) => Sent::Unconfirmed(err.to_string()),
    }
}

async fn try_send(url: &str, secret: &Secret, batch: &UsageBatch, now: i64) -> worker::Result<u16> {
    let body = json::to_string(batch);
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "application/json")?;
    headers.set(TIMESTAMP_HEADER, &now.to_string())?;
    headers.set(
        SIGNATURE_HEADER,
        &sign(secret.expose(), now, body.as_bytes()),
    )?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&body.into());
    let resp = js::fetch(&web_sys::Request::new_with_str_and_init(url, &init)?).await?;
    Ok(resp.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> KeyId {
        KeyId::new(1, [2; 10])
    }

    fn valid(key_id: &KeyId) -> Counted<'_> {
        Counted {
            key_id,
            workspace: "acme",
            owner_id: None,
            code: VerdictCode::Valid,
            credits_spent: 0,
        }
    }

    fn none() -> Vec<BalanceReport> {
        Vec::new()
    }

    #[test]
    fn counts_are_batched_and_flushed_at_most_once_per_interval() {
        let mut p = Pending::default();
        p.record(&valid(&id()), 1_800_000_000);
        let first = p.take_due(1_000, 5_000, 7, &mut none);
        assert_eq!(first[0].reports[0].counts.valid, 1);
        p.record(&valid(&id()), 1_800_000_001);
        p.record(&valid(&id()), 1_800_000_002);
        assert!(p.take_due(3_000, 5_000, 7, &mut none).is_empty());
        let second = p.take_due(6_000, 5_000, 7, &mut none);
        assert_eq!(second[0].reports[0].counts.valid, 2);
        assert_eq!(second[0].reports[0].last_used_at, Some(1_800_000_002));
        assert_ne!(first[0].batch_id, second[0].batch_id);
        assert!(keyward_common::sync::valid_batch_id(&first[0].batch_id));
    }

    #[test]
    fn an_unconfirmed_batch_is_sent_again_unchanged_and_new_counts_go_in_a_new_batch() {
        let mut p = Pending::default();
        p.record(&valid(&id()), 1_800_000_000);
        let batch = p.take_due(0, 5_000, 1, &mut none).remove(0);
        p.record(&valid(&id()), 1_800_000_005);
        p.resend(batch.clone());
        let again = p.take_due(10_000, 5_000, 2, &mut none);
        assert_eq!(again.len(), 2);
        assert_eq!(again[0], batch, "same id, same reports");
        assert_eq!(again[1].reports[0].counts.valid, 1);
        assert_ne!(again[1].batch_id, batch.batch_id);
    }

    #[test]
    fn a_large_flush_is_split_to_the_control_planes_batch_limit() {
        let mut p = Pending::default();
        for i in 0..2_500u64 {
            p.record(&valid(&KeyId::new(i, [1; 10])), 1_800_000_000);
        }
        let batches = p.take_due(0, 5_000, 3, &mut none);
        let sizes: Vec<usize> = batches.iter().map(|b| b.reports.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let ids: std::collections::HashSet<&str> =
            batches.iter().map(|b| b.batch_id.as_str()).collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn requests_are_counted_by_outcome_per_hour_with_credits_and_the_latest_balances() {
        let mut p = Pending::default();
        let key = id();
        let mut c = valid(&key);
        c.owner_id = Some("cust_1");
        c.credits_spent = 5;
        p.record(&c, 1_800_000_000);
        for code in [
            VerdictCode::RateLimited,
            VerdictCode::UsageExceeded,
            VerdictCode::UsageExceeded,
            VerdictCode::ForbiddenIp,
            VerdictCode::Disabled,
            VerdictCode::NotFound,
        ] {
            p.record(
                &Counted {
                    code,
                    credits_spent: 0,
                    ..c
                },
                1_800_000_010,
            );
        }
        p.record(&c, 1_800_003_600);
        let balance = BalanceReport {
            target: keyward_common::credits::CreditTarget::Key {
                workspace: "acme".into(),
                key_id: key.clone(),
            },
            remaining: 7,
            seq: 3,
            at_ms: 1,
        };
        let batch = p
            .take_due(0, 5_000, 1, &mut || vec![balance.clone()])
            .remove(0);
        let mut reports = batch.reports;
        reports.sort_by_key(|r| r.hour);
        assert_eq!(reports.len(), 2, "one report per hour");
        let first = &reports[0];
        assert_eq!(first.owner_id.as_deref(), Some("cust_1"));
        assert_eq!(first.hour, 1_800_000_000);
        let want = OutcomeCounts {
            valid: 1,
            rate_limited: 1,
            usage_exceeded: 2,
            forbidden: 1,
            disabled: 1,
            credits_spent: 5,
            ..OutcomeCounts::default()
        };
        assert_eq!(first.counts, want);
        assert_eq!(
            first.last_used_at,
            Some(1_800_000_000),
            "only admitted requests"
        );
        assert_eq!(batch.balances, vec![balance]);
    }

    #[test]
    fn unconfirmed_batches_are_bounded() {
        let mut p = Pending::default();
        for i in 0..MAX_UNSENT + 10 {
            p.resend(UsageBatch {
                batch_id: format!("batch-{i:04}"),
                reports: Vec::new(),
                balances: Vec::new(),
            });
        }
        assert_eq!(p.unsent.len(), MAX_UNSENT);
        assert_eq!(p.unsent[0].batch_id, "batch-0010", "the oldest went first");
    }
}
