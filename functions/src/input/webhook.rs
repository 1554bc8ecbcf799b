//! Webhook endpoint bodies: `url` (checked by [`crate::webhook::target`]: https, public
//! address, no credentials), `events` (1–8 of [`crate::webhook::EVENTS`], no repeats),
//! `description`, and on PATCH `enabled`.

use keyward_common::FieldError;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::checks::{MAX_DESCRIPTION, expected};
use super::{Errors, Field, from_object};
use crate::webhook::{EVENTS, target};

type Json = Map<String, Value>;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https` URL of a public address (checked again before every delivery).
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "https://api.example.com/keyward-events")]
    pub url: Field<String>,
    /// Event types to receive: `key.created`, `key.updated`, `key.rotated`, `key.revoked`,
    /// `key.expiring`, `key.auth_failures`, `credits.low`, `credits.exhausted`.
    #[serde(default)]
    #[schema(value_type = Vec<String>, required = true)]
    pub events: Field<Vec<String>>,
    /// What it is for, up to 1024 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// A new URL.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub url: Field<String>,
    /// Replaces the event types.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Field<Vec<String>>,
    /// `null` clears.
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Field<String>,
    /// Switches deliveries on or off.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub enabled: Field<bool>,
}

/// A validated create body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// A validated PATCH: `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Checks a URL's form (its address is checked by the caller, which may resolve it).
fn url(f: &mut Errors, v: String, allow_loopback: bool) -> Option<String> {
    match target::parse(&v, allow_loopback) {
        Ok(u) => Some(u.to_string()),
        Err(e) => {
            f.add("url", e.to_string());
            None
        }
    }
}

fn events(f: &mut Errors, v: Vec<String>) -> Option<Vec<String>> {
    if v.is_empty() || v.len() > EVENTS.len() {
        f.add(
            "events",
            format!("must name 1-{} event types", EVENTS.len()),
        );
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in v.into_iter().enumerate() {
        if !EVENTS.contains(&e.as_str()) {
            f.add(
                &format!("events[{i}]"),
                format!("must be one of {}", EVENTS.join(", ")),
            );
        } else if out.contains(&e) {
            f.add(&format!("events[{i}]"), "is named twice");
        } else {
            out.push(e);
        }
    }
    Some(out)
}

/// Validates a create body.
///
/// # Errors
/// Every invalid, missing or unknown field.
pub fn create(body: Json, allow_loopback: bool) -> Result<NewWebhook, Vec<FieldError>> {
    let (req, mut f) = from_object::<CreateWebhookRequest>(body)?;
    let u = match f.take("url", req.url, expected::STRING) {
        Some(Some(v)) => url(&mut f, v, allow_loopback),
        _ if !f.has("url") => {
            f.add("url", "is required");
            None
        }
        _ => None,
    };
    let ev = match f.take("events", req.events, expected::STRINGS) {
        Some(Some(v)) => events(&mut f, v),
        _ if !f.has("events") => {
            f.add("events", "is required");
            None
        }
        _ => None,
    };
    let description = f
        .take("description", req.description, expected::STRING)
        .flatten()
        .and_then(|d| f.text("description", d, MAX_DESCRIPTION));
    f.done(NewWebhook {
        url: u.unwrap_or_default(),
        events: ev.unwrap_or_default(),
        description,
    })
}

/// Validates a PATCH body.
///
/// # Errors
/// Every invalid or unknown field.
pub fn patch(body: Json, allow_loopback: bool) -> Result<WebhookPatch, Vec<FieldError>> {
    let (req, mut f) = from_object::<UpdateWebhookRequest>(body)?;
    for (name, null) in [
        ("url", req.url == Field::Null),
        ("events", req.events == Field::Null),
        ("enabled", req.enabled == Field::Null),
    ] {
        if null {
            f.add(name, "cannot be null");
        }
    }
    let u = f
        .take("url", req.url, expected::STRING)
        .flatten()
        .and_then(|v| url(&mut f, v, allow_loopback));
    let ev = f
        .take("events", req.events, expected::STRINGS)
        .flatten()
        .and_then(|v| events(&mut f, v));
    let description = f.text_field("description", req.description, MAX_DESCRIPTION);
    let enabled = f.take("enabled", req.enabled, "true or false").flatten();
    f.done(WebhookPatch {
        url: u,
        events: ev,
        description,
        enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Json {
        v.as_object().unwrap().clone()
    }

    fn fields(r: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        let mut f: Vec<String> = r.unwrap_err().into_iter().map(|e| e.field).collect();
        f.sort();
        f
    }

    #[test]
    fn an_endpoint_needs_an_https_url_and_known_events() {
        let ok = create(
            obj(json!({"url": "https://hooks.example.com/k", "events": ["key.created", "key.revoked"]})),
            false,
        )
        .unwrap();
        assert_eq!(ok.events, ["key.created", "key.revoked"]);
        assert_eq!(fields(create(obj(json!({})), false)), ["events", "url"]);
        assert_eq!(
            fields(create(
                obj(
                    json!({"url": "http://hooks.example.com/", "events": ["key.created", "key.created", "key.eaten"], "x": 1})
                ),
                false
            )),
            ["events[1]", "events[2]", "url", "x"]
        );
        assert_eq!(
            fields(create(
                obj(json!({"url": "https://a.example/", "events": []})),
                false
            )),
            ["events"]
        );
    }

    #[test]
    fn a_patch_has_three_states_where_it_makes_sense() {
        let p = patch(obj(json!({"description": null, "enabled": false})), false).unwrap();
        assert_eq!(
            (p.description, p.enabled, p.url),
            (Some(None), Some(false), None)
        );
        assert_eq!(
            fields(patch(
                obj(json!({"url": null, "events": null, "enabled": "yes"})),
                false
            )),
            ["enabled", "events", "url"]
        );
    }
}
