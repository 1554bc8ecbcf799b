//! Events: what happened in a workspace that its webhook endpoints may want to hear, and how it
//! reaches them.
//!
//! - Key changes (`key.created|updated|rotated|revoked`) and balances crossing a threshold
//!   (`credits.low`, `credits.exhausted`) are read off the table's stream ([`plan`]).
//! - Events found elsewhere — a key's refused requests crossing a threshold (the `usage`
//!   function), an expiry reminder falling due (the schedule) — are written to the table as
//!   outbox items (`WS#{ws}` / `EVENT#{id}`, [`outbox`]) with a conditional put, so each is
//!   written once however often its producer retries; the stream then brings them here too.
//! - [`dispatch`] sends each event to every enabled endpoint that subscribes to it, in stream
//!   order per endpoint, endpoints side by side; a failed attempt goes to the retry queue
//!   ([`queue`]) with exponential backoff over about a day, the same `webhook-id` every time;
//!   an endpoint still failing at the end is switched off, and that is audited.
//! - [`reminders`] keeps `key.expiring` reminders (7 days and 1 day before `expires_at`) and
//!   fires them from the schedule.

pub mod dispatch;
pub mod lambda;
pub mod outbox;
pub mod plan;
pub mod queue;
pub mod reminders;

use keyward_common::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One event for a workspace's endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_…`: derived from what caused it, so a retried source yields the same id.
    pub id: String,
    /// The workspace whose endpoints hear it.
    pub workspace: String,
    /// `key.created`, `credits.low`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (Unix seconds).
    pub at: i64,
    /// Ids, names, counts: never a secret or a hash.
    pub data: Value,
}

impl Event {
    /// An event whose id is derived from `parts` (the cause, in words that identify it).
    #[must_use]
    pub fn new(workspace: &str, kind: &str, at: i64, data: Value, parts: &[&str]) -> Self {
        Self {
            id: format!("evt_{}", digest(&[&[kind, workspace], parts].concat())),
            workspace: workspace.to_owned(),
            kind: kind.to_owned(),
            at,
            data,
        }
    }

    /// The body every endpoint receives: `{type, timestamp, data}`.
    #[must_use]
    pub fn body(&self) -> Value {
        json!({"type": self.kind, "timestamp": Timestamp(self.at), "data": self.data})
    }

    /// The `webhook-id` of this event at endpoint `webhook_id`: the same on every attempt.
    #[must_use]
    pub fn message_id(&self, webhook_id: &str) -> String {
        format!("msg_{}", digest(&[&self.id, webhook_id]))
    }
}

/// 24 hex digits of SHA-256 over `parts` (NUL-separated).
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// Deployment settings of events (environment, with documented defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Waits before attempts 2, 3, …: after the last, the endpoint is switched off.
    pub retry_delays_s: Vec<u64>,
    /// `credits.low` for a balance without a refill: at or below this many credits. With a
    /// refill: at or below a tenth of its amount.
    pub credits_low: u64,
}

/// Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 hours).
pub const RETRY_DELAYS_S: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
/// Default `credits.low` threshold of a balance without a refill.
pub const CREDITS_LOW: u64 = 10;

impl Default for Settings {
    fn default() -> Self {
        Self {
            retry_delays_s: RETRY_DELAYS_S.to_vec(),
            credits_low: CREDITS_LOW,
        }
    }
}

impl Settings {
    /// Reads `KEYWARD_WEBHOOK_RETRY_DELAYS_S` (comma-separated seconds, 1–12 of them, each
    /// 1–43200) and `KEYWARD_CREDITS_LOW_THRESHOLD` through `get`.
    ///
    /// # Errors
    /// The variable that is malformed, never its value.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut s = Self::default();
        if let Some(v) = get("KEYWARD_WEBHOOK_RETRY_DELAYS_S").filter(|v| !v.trim().is_empty()) {
            let delays: Option<Vec<u64>> = v
                .split(',')
                .map(|d| {
                    d.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|d| (1..=43_200).contains(d))
                })
                .collect();
            s.retry_delays_s = delays.filter(|d| (1..=12).contains(&d.len())).ok_or(
                crate::config::ConfigError::Invalid {
                    name: "KEYWARD_WEBHOOK_RETRY_DELAYS_S",
                    why: "must be 1 to 12 comma-separated whole seconds, each 1 to 43200".into(),
                },
            )?;
        }
        if let Some(v) = get("KEYWARD_CREDITS_LOW_THRESHOLD").filter(|v| !v.trim().is_empty()) {
            s.credits_low = v
                .trim()
                .parse()
                .map_err(|_| crate::config::ConfigError::Invalid {
                    name: "KEYWARD_CREDITS_LOW_THRESHOLD",
                    why: "must be a whole number".into(),
                })?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_differ_by_cause_and_endpoint() {
        let a = Event::new("acme", "key.created", 1, json!({}), &["r1"]);
        let b = Event::new("acme", "key.created", 2, json!({}), &["r1"]);
        let c = Event::new("acme", "key.created", 1, json!({}), &["r2"]);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(a.message_id("wh_1"), b.message_id("wh_1"));
        assert_ne!(a.message_id("wh_1"), a.message_id("wh_2"));
        assert!(a.id.starts_with("evt_") && a.id.len() == 28);
    }

    #[test]
    fn the_body_is_type_timestamp_and_data() {
        let e = Event::new("acme", "key.revoked", 0, json!({"key_id": "k"}), &[]);
        assert_eq!(
            e.body(),
            json!({"type": "key.revoked", "timestamp": "1970-01-01T00:00:00Z", "data": {"key_id": "k"}})
        );
    }

    #[test]
    fn settings_read_their_variables_and_refuse_nonsense() {
        let s = Settings::from_lookup(|k| match k {
            "KEYWARD_WEBHOOK_RETRY_DELAYS_S" => Some("1, 2,3".into()),
            "KEYWARD_CREDITS_LOW_THRESHOLD" => Some("50".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.retry_delays_s, vec![1, 2, 3]);
        assert_eq!(s.credits_low, 50);
        assert_eq!(
            Settings::from_lookup(|_| None).unwrap(),
            Settings::default()
        );
        for bad in ["", "0", "1,,2", "x", "50000", "1,1,1,1,1,1,1,1,1,1,1,1,1"] {
            let r = Settings::from_lookup(|k| {
                (k == "KEYWARD_WEBHOOK_RETRY_DELAYS_S").then(|| bad.to_owned())
            });
            assert_eq!(r.is_err(), !bad.is_empty(), "{bad:?}");
        }
    }
}
