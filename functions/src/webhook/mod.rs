//! Webhook endpoints: where a workspace wants events sent, the Standard Webhooks signature, the
//! checks that keep deliveries off private networks, and one delivery attempt.

pub mod deliver;
pub mod signature;
pub mod target;

use keyward_common::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::seal::{Seal, SealError};

/// Every event type an endpoint may subscribe to.
pub const EVENTS: &[&str] = &[
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "key.expiring",
    "key.auth_failures",
    "credits.low",
    "credits.exhausted",
];

/// The event `POST /webhooks/{id}/test` sends, whatever the endpoint subscribes to.
pub const TEST_EVENT: &str = "webhook.test";

/// Most endpoints per workspace.
pub const MAX_PER_WORKSPACE: usize = 20;

/// A webhook endpoint as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookRecord {
    /// `wh_…`.
    pub id: String,
    /// Owning workspace.
    pub workspace: String,
    /// Where events go: `https` to a public address.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Whether deliveries are made. An endpoint failing for about a day is switched off.
    pub enabled: bool,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version (also the `ETag`).
    pub version: u64,
    /// Since when its deliveries fail (absent while it answers). New events for a failing
    /// endpoint wait in the retry queue instead of holding up the others; a success clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<Timestamp>,
}

/// One delivery attempt, as `GET /webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// The message id (`webhook-id`), the same on every attempt of one event.
    pub message_id: String,
    /// The event type.
    pub event: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `delivered` (a 2xx answer) or `failed`.
    pub status: String,
    /// The receiver's HTTP status, when it answered.
    pub response_code: Option<u16>,
    /// How long the attempt took.
    pub latency_ms: u64,
    /// Why it failed, when it did (never the receiver's body).
    pub error: Option<String>,
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

impl Delivery {
    /// The record of attempt `attempt` of message `message_id` (`event`), made at `at`.
    #[must_use]
    pub fn of(
        message_id: String,
        event: String,
        attempt: u32,
        outcome: deliver::Outcome,
        at: Timestamp,
    ) -> Self {
        Self {
            message_id,
            event,
            attempt,
            status: if outcome.delivered {
                "delivered"
            } else {
                "failed"
            }
            .to_owned(),
            response_code: outcome.response_code,
            latency_ms: outcome.latency_ms,
            error: outcome.error,
            at,
        }
    }
}

/// Seals and opens endpoint secrets (`whsec_…`), bound to their endpoint.
#[derive(Debug)]
pub struct SecretBox(Seal);

impl SecretBox {
    /// The box derived from the deployment's cursor secret.
    #[must_use]
    pub fn derive(root: &[u8]) -> Self {
        Self(Seal::derive(root, "keyward webhook secret v1"))
    }

    /// `secret` sealed for endpoint `id` of `workspace`.
    ///
    /// # Errors
    /// When the random source or the cipher fails.
    pub fn seal(&self, workspace: &str, id: &str, secret: &str) -> Result<Vec<u8>, SealError> {
        self.0.seal(&aad(workspace, id), secret.as_bytes())
    }

    /// The secret sealed in `sealed` for endpoint `id` of `workspace`.
    ///
    /// # Errors
    /// When it was not sealed for that endpoint by this deployment.
    pub fn open(&self, workspace: &str, id: &str, sealed: &[u8]) -> Result<String, SealError> {
        String::from_utf8(self.0.open(&aad(workspace, id), sealed)?).map_err(|_| SealError)
    }
}

fn aad(workspace: &str, id: &str) -> Vec<u8> {
    format!("keyward webhook v1\0{workspace}\0{id}").into_bytes()
}
