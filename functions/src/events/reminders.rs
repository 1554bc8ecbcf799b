//! `key.expiring` reminders: 7 days and 1 day before a key's `expires_at`.
//!
//! When the stream shows an active key with a new expiry, each reminder that is already due
//! (and the key not yet expired) becomes an event at once — only the nearest one, so a key
//! created to expire in 12 hours gets the 1-day reminder, not both; each later one is kept as
//! an item `REMIND#{hour}` / `{due}#{ws}#{key}#{days}` in the hour it falls due. The schedule
//! reads the hours up to now, and for each reminder whose key is still active with the same
//! expiry writes its event (once: the event id names key, expiry and reminder) and deletes it.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use keyward_common::{KeyId, KeyStatus, Timestamp};
use serde_json::json;

use super::Event;
use super::plan::Expiry;
use crate::store::KeyStore as _;
use crate::store::dynamo::DynamoStore;
use crate::store::item::{ItemRead, PK, SK, TTL};

/// Days before expiry a reminder is sent, farthest first.
pub const REMIND_DAYS: [i64; 2] = [7, 1];
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// The schedule's bookmark: the first hour not yet fully read.
const CURSOR_PK: &str = "SCHEDULE";
const CURSOR_SK: &str = "REMINDERS";
/// How far back a schedule with no bookmark looks.
const FIRST_LOOK_BACK_H: i64 = 48;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn hour_pk(hour: i64) -> String {
    format!("REMIND#{hour:010}")
}

/// The `key.expiring` event of `key` `days` ahead of its expiry.
#[must_use]
pub fn expiring_event(
    key: &keyward_common::KeyRecord,
    expires_at: i64,
    days: i64,
    now: i64,
) -> Event {
    Event::new(
        &key.workspace,
        "key.expiring",
        now,
        json!({
            "key_id": key.id, "name": key.name, "owner_id": key.owner_id,
            "expires_at": Timestamp(expires_at), "days": days,
        }),
        &[
            &key.id.to_string(),
            &expires_at.to_string(),
            &days.to_string(),
        ],
    )
}

/// What to do about an expiry at `now`: the reminder due now, if any (`days`), and the later
/// ones to keep (`(due, days)`).
#[must_use]
pub fn schedule(expires_at: i64, now: i64) -> (Option<i64>, Vec<(i64, i64)>) {
    if expires_at <= now {
        return (None, Vec::new());
    }
    let mut due_now = None;
    let mut later = Vec::new();
    for days in REMIND_DAYS {
        let due = expires_at - days * DAY;
        if due <= now {
            due_now = Some(days); // the nearest one wins: days shrink along the list
        } else {
            later.push((due, days));
        }
    }
    (due_now, later)
}

impl DynamoStore {
    /// Acts on a new expiry: the due reminder becomes an event now, the later ones are kept.
    ///
    /// # Errors
    /// When DynamoDB fails.
    pub async fn remind(&self, expiry: &Expiry, now: i64) -> anyhow::Result<()> {
        let (due_now, later) = schedule(expiry.expires_at, now);
        if let Some(days) = due_now {
            self.fire(
                &expiry.workspace,
                &expiry.key_id,
                expiry.expires_at,
                days,
                now,
            )
            .await?;
        }
        for (due, days) in later {
            let item = HashMap::from([
                (PK.to_owned(), s(hour_pk(due - due.rem_euclid(HOUR)))),
                (
                    SK.to_owned(),
                    s(format!(
                        "{due:010}#{}#{}#{days}",
                        expiry.workspace, expiry.key_id
                    )),
                ),
                ("workspace".to_owned(), s(&expiry.workspace)),
                ("key_id".to_owned(), s(&expiry.key_id)),
                ("expires_at".to_owned(), n(expiry.expires_at)),
                ("days".to_owned(), n(days)),
                (TTL.to_owned(), n(expiry.expires_at + DAY)),
            ]);
            self.client()
                .put_item()
                .table_name(self.table())
                .set_item(Some(item))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .context("keeping an expiry reminder")?;
        }
        Ok(())
    }

    /// Writes the `key.expiring` event if the key is still active with that expiry; whether
    /// an event was written now.
    async fn fire(
        &self,
        workspace: &str,
        key_id: &str,
        expires_at: i64,
        days: i64,
        now: i64,
    ) -> anyhow::Result<bool> {
        let Ok(id) = KeyId::parse(key_id) else {
            return Ok(false);
        };
        let Some(key) = self.get(workspace, &id).await? else {
            return Ok(false);
        };
        let r = &key.record;
        if r.status != KeyStatus::Active
            || r.expires_at.map(Timestamp::unix) != Some(expires_at)
            || expires_at <= now
        {
            return Ok(false);
        }
        let event = expiring_event(r, expires_at, days, now);
        super::outbox::put(self.client(), self.table(), &event).await
    }

    /// The schedule: fires every reminder due by `now`; how many events it wrote.
    ///
    /// # Errors
    /// When DynamoDB fails (the bookmark stays, so the next run reads the same hours again).
    pub async fn fire_due_reminders(&self, now: i64) -> anyhow::Result<usize> {
        let this_hour = now - now.rem_euclid(HOUR);
        let cursor = self
            .client()
            .get_item()
            .table_name(self.table())
            .consistent_read(true)
            .key(PK, s(CURSOR_PK))
            .key(SK, s(CURSOR_SK))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .context("reading the reminder bookmark")?;
        let from = cursor
            .item()
            .and_then(|i| i.number("hour"))
            .and_then(|h| h.parse::<i64>().ok())
            .unwrap_or(this_hour - FIRST_LOOK_BACK_H * HOUR)
            .max(this_hour - 30 * DAY);
        let mut fired = 0;
        let mut hour = from;
        while hour <= this_hour {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let page = self
                    .client()
                    .query()
                    .table_name(self.table())
                    .consistent_read(true)
                    .key_condition_expression("#pk = :pk AND #sk <= :upto")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":pk", s(hour_pk(hour)))
                    .expression_attribute_values(":upto", s(format!("{now:010}~")))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                    .context("reading due reminders")?;
                for item in page.items() {
                    let num = |k: &str| item.number(k).and_then(|v| v.parse::<i64>().ok());
                    if let (Some(ws), Some(key), Some(exp), Some(days)) = (
                        item.string("workspace"),
                        item.string("key_id"),
                        num("expires_at"),
                        num("days"),
                    ) && self.fire(ws, key, exp, days, now).await?
                    {
                        fired += 1;
                    }
                    if let (Some(pk), Some(sk)) = (item.string(PK), item.string(SK)) {
                        self.client()
                            .delete_item()
                            .table_name(self.table())
                            .key(PK, s(pk))
                            .key(SK, s(sk))
                            .send()
                            .await
                            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                            .context("deleting a fired reminder")?;
                    }
                }
                match page.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => break,
                }
            }
            hour += HOUR;
        }
        if from != this_hour {
            self.client()
                .put_item()
                .table_name(self.table())
                .item(PK, s(CURSOR_PK))
                .item(SK, s(CURSOR_SK))
                .item("hour", n(this_hour))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                .context("moving the reminder bookmark")?;
        }
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_nearest_due_reminder_fires_now_and_later_ones_wait() {
        assert_eq!(
            schedule(NOW + 6 * DAY, NOW),
            (Some(7), vec![(NOW + 5 * DAY, 1)])
        );
        assert_eq!(
            schedule(NOW + 30 * DAY, NOW),
            (None, vec![(NOW + 23 * DAY, 7), (NOW + 29 * DAY, 1)])
        );
        assert_eq!(schedule(NOW + 3_600, NOW), (Some(1), vec![]));
        assert_eq!(schedule(NOW - 1, NOW), (None, vec![]));
        assert_eq!(
            schedule(NOW + 7 * DAY, NOW),
            (Some(7), vec![(NOW + 6 * DAY, 1)])
        );
    }
}
