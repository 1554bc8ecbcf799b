//! Outbox items: an event written to the table (`WS#{ws}` / `EVENT#{id}`) by whoever found it,
//! once (a conditional put on its id), and read back off the stream by the `events` function.
//! They expire after a week.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use super::Event;
use crate::store::item::{self, ItemRead, PK, SK, TTL};

/// Sort-key prefix of outbox items.
pub const EVENT_SK_PREFIX: &str = "EVENT#";
/// How long an outbox item is kept.
pub const EVENT_TTL_S: i64 = 7 * 86_400;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The item of `event`.
#[must_use]
pub fn event_item(event: &Event) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (PK.to_owned(), s(item::workspace_pk(&event.workspace))),
        (SK.to_owned(), s(format!("{EVENT_SK_PREFIX}{}", event.id))),
        ("id".to_owned(), s(&event.id)),
        ("workspace".to_owned(), s(&event.workspace)),
        ("event_type".to_owned(), s(&event.kind)),
        ("at".to_owned(), AttributeValue::N(event.at.to_string())),
        ("data".to_owned(), s(event.data.to_string())),
        (
            TTL.to_owned(),
            AttributeValue::N((event.at + EVENT_TTL_S).to_string()),
        ),
    ])
}

/// The event an outbox item (an SDK item or a stream image) holds.
///
/// # Errors
/// When an attribute is missing or malformed.
pub fn event_from(image: &impl ItemRead) -> anyhow::Result<Event> {
    let text = |k: &str| {
        image
            .string(k)
            .map(str::to_owned)
            .with_context(|| format!("an event item without {k}"))
    };
    Ok(Event {
        id: text("id")?,
        workspace: text("workspace")?,
        kind: text("event_type")?,
        at: image
            .number("at")
            .and_then(|n| n.parse().ok())
            .context("an event item without at")?,
        data: serde_json::from_str(&text("data")?).context("an event item's data")?,
    })
}

/// Writes `event` unless an event with its id exists; whether it was new.
///
/// # Errors
/// When DynamoDB fails.
pub async fn put(client: &Client, table: &str, event: &Event) -> anyhow::Result<bool> {
    let sent = client
        .put_item()
        .table_name(table)
        .set_item(Some(event_item(event)))
        .condition_expression("attribute_not_exists(PK)")
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(false)
        }
        Err(e) => Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("writing event {}", event.id)),
    }
}
