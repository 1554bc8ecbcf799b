//! What a stream record means for webhooks: the events it carries and the key expiries to
//! remind about. Pure: no I/O, the same answer however often the record is replayed (event ids
//! derive from the record's `eventID`).

use aws_lambda_events::event::dynamodb::EventRecord;
use keyward_common::KeyStatus;
use keyward_common::credits::Credits;
use serde_json::{Value, json};

use super::outbox::{EVENT_SK_PREFIX, event_from};
use super::{Event, Settings};
use crate::store::StoredKey;
use crate::store::item::{KEY_SK_PREFIX, OWNER_SK_PREFIX, SK};
use crate::sync::{RecordError, image_key, image_owner, only_usage_changed};

/// A key that expires, to be reminded about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// Its workspace.
    pub workspace: String,
    /// Its id.
    pub key_id: String,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

/// What one record asks for.
#[derive(Debug, Default, PartialEq)]
pub struct Planned {
    /// Events to deliver, in the order they happened.
    pub events: Vec<Event>,
    /// An active key with an expiry that is new (or newly active): reminders to keep.
    pub expiry: Option<Expiry>,
}

/// Reads one stream record.
///
/// # Errors
/// When a key, owner or event image does not decode.
pub fn plan_record(
    record: &EventRecord,
    settings: &Settings,
    now: i64,
) -> Result<Planned, RecordError> {
    let change = &record.change;
    let Some(sk) = [&change.keys, &change.new_image, &change.old_image]
        .into_iter()
        .find_map(|image| crate::store::item::ItemRead::string(image, SK).map(str::to_owned))
    else {
        return Ok(Planned::default());
    };
    let removed = record.event_name == "REMOVE";
    let cause = record.event_id.as_str();
    let mut planned = Planned::default();
    if sk.starts_with(EVENT_SK_PREFIX) {
        if record.event_name == "INSERT" {
            let event =
                event_from(&change.new_image).map_err(|e| RecordError::Shape(format!("{e:#}")))?;
            planned.events.push(event);
        }
    } else if sk.starts_with(KEY_SK_PREFIX) && !removed {
        let old = image_key(&change.old_image)?;
        let Some(new) = image_key(&change.new_image)? else {
            return Ok(planned);
        };
        planned.events = key_events(old.as_ref(), &new, cause, now, settings);
        let was_reminded = old.as_ref().is_some_and(|o| {
            o.record.status == KeyStatus::Active && o.record.expires_at == new.record.expires_at
        });
        if let (KeyStatus::Active, Some(at), false) =
            (new.record.status, new.record.expires_at, was_reminded)
        {
            planned.expiry = Some(Expiry {
                workspace: new.record.workspace.clone(),
                key_id: new.record.id.to_string(),
                expires_at: at.unix(),
            });
        }
    } else if sk.starts_with(OWNER_SK_PREFIX) && !removed {
        let old = image_owner(&change.old_image)?;
        if let Some(new) = image_owner(&change.new_image)? {
            let o = &new.record;
            let data = |remaining: u64, threshold: Option<u64>| json!({"owner_id": o.owner_id, "remaining": remaining, "threshold": threshold});
            planned.events.extend(credit_event(
                old.as_ref().and_then(|o| o.record.credits.as_ref()),
                o.credits.as_ref(),
                settings,
                &o.workspace,
                cause,
                now,
                data,
            ));
        }
    }
    Ok(planned)
}

fn key_events(
    old: Option<&StoredKey>,
    new: &StoredKey,
    cause: &str,
    now: i64,
    settings: &Settings,
) -> Vec<Event> {
    let r = &new.record;
    let ws = r.workspace.as_str();
    let key = serde_json::to_value(r).unwrap_or(Value::Null);
    let mut events = Vec::new();
    let Some(old) = old else {
        events.push(Event::new(
            ws,
            "key.created",
            now,
            json!({"key": key}),
            &[cause],
        ));
        return events;
    };
    if !only_usage_changed(old, new) {
        let kind = if r.status == KeyStatus::Revoked && old.record.status != KeyStatus::Revoked {
            "key.revoked"
        } else if new.hash != old.hash {
            "key.rotated"
        } else {
            "key.updated"
        };
        let mut data = json!({"key": key});
        match kind {
            "key.updated" => data["changed"] = json!(changed_fields(&old.record, r)),
            "key.rotated" => {
                data["previous_retires_at"] = json!(
                    new.previous
                        .as_ref()
                        .map(|(_, t)| keyward_common::Timestamp(*t))
                );
            }
            _ => {}
        }
        if kind != "key.updated" || !data["changed"].as_array().is_none_or(Vec::is_empty) {
            events.push(Event::new(ws, kind, now, data, &[cause]));
        }
    }
    let data = |remaining: u64, threshold: Option<u64>| {
        json!({"key_id": r.id, "name": r.name, "owner_id": r.owner_id,
               "remaining": remaining, "threshold": threshold})
    };
    events.extend(credit_event(
        old.record.credits.as_ref(),
        r.credits.as_ref(),
        settings,
        ws,
        cause,
        now,
        data,
    ));
    events
}

/// The top-level fields of a key that differ, bookkeeping (`version`, `updated_at`, last use,
/// the balance the edge reports) aside.
fn changed_fields(old: &keyward_common::KeyRecord, new: &keyward_common::KeyRecord) -> Vec<String> {
    let (Ok(Value::Object(o)), Ok(Value::Object(n))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let skip = ["version", "updated_at", "last_used_at"];
    let mut names: Vec<String> = o
        .keys()
        .chain(n.keys())
        .filter(|k| !skip.contains(&k.as_str()) && o.get(*k) != n.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    // A balance change alone is the edge's report, not a settings change.
    if names == ["credits"]
        && old.credits.as_ref().map(|c| c.refill) == new.credits.as_ref().map(|c| c.refill)
    {
        return Vec::new();
    }
    names
}

/// The `credits.low` threshold of `credits`: a tenth of its refill, else the deployment's.
#[must_use]
pub fn low_threshold(credits: &Credits, settings: &Settings) -> u64 {
    credits
        .refill
        .map_or(settings.credits_low, |r| (r.amount / 10).max(1))
}

/// `credits.exhausted` when the balance reached 0, `credits.low` when it fell to or below its
/// threshold; nothing when it was already there or rose.
fn credit_event(
    old: Option<&Credits>,
    new: Option<&Credits>,
    settings: &Settings,
    workspace: &str,
    cause: &str,
    now: i64,
    data: impl Fn(u64, Option<u64>) -> Value,
) -> Option<Event> {
    let (old, new) = (old?, new?);
    let low = low_threshold(new, settings);
    let (kind, threshold) = if new.remaining == 0 && old.remaining > 0 {
        ("credits.exhausted", None)
    } else if new.remaining <= low && old.remaining > low {
        ("credits.low", Some(low))
    } else {
        return None;
    };
    Some(Event::new(
        workspace,
        kind,
        now,
        data(new.remaining, threshold),
        &[cause],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn key_image(version: u64, status: &str, hash: &str, extra: Value) -> Value {
        let mut img = json!({
            "PK": {"S": "WS#acme"}, "SK": {"S": "KEY#key_0000000000000000000001"},
            "id": {"S": "key_0000000000000000000001"}, "workspace": {"S": "acme"},
            "name": {"S": "billing"}, "key_prefix": {"S": "kw_live_abcd"},
            "scopes": {"L": []}, "status": {"S": status},
            "created_at": {"N": "1700000000"}, "updated_at": {"N": "1700000000"},
            "version": {"N": version.to_string()}, "hash": {"S": hash},
        });
        if let (Value::Object(i), Value::Object(e)) = (&mut img, extra) {
            i.extend(e);
        }
        img
    }

    fn record(id: &str, name: &str, old: Option<Value>, new: Option<Value>) -> EventRecord {
        let mut dynamodb = json!({
            "Keys": {"PK": {"S": "WS#acme"}, "SK": {"S": "KEY#key_0000000000000000000001"}},
            "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(o) = old {
            dynamodb["OldImage"] = o;
        }
        if let Some(n) = new {
            dynamodb["NewImage"] = n;
        }
        serde_json::from_value(json!({
            "eventID": id, "eventName": name, "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": dynamodb,
        }))
        .unwrap()
    }

    fn kinds(p: &Planned) -> Vec<&str> {
        p.events.iter().map(|e| e.kind.as_str()).collect()
    }

    fn hash(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn a_keys_life_is_created_updated_rotated_revoked() {
        let s = Settings::default();
        let v1 = key_image(1, "active", &hash('a'), json!({}));
        let mut v2 = key_image(2, "active", &hash('a'), json!({}));
        v2["name"] = json!({"S": "billing-2"});
        let mut v3 = key_image(3, "active", &hash('b'), json!({}));
        v3["name"] = json!({"S": "billing-2"});
        let mut v4 = key_image(4, "revoked", &hash('b'), json!({}));
        v4["name"] = json!({"S": "billing-2"});
        let steps = [
            record("e1", "INSERT", None, Some(v1.clone())),
            record("e2", "MODIFY", Some(v1), Some(v2.clone())),
            record("e3", "MODIFY", Some(v2), Some(v3.clone())),
            record("e4", "MODIFY", Some(v3), Some(v4)),
        ];
        let planned: Vec<Planned> = steps
            .iter()
            .map(|r| plan_record(r, &s, NOW).unwrap())
            .collect();
        let all: Vec<&str> = planned.iter().flat_map(kinds).collect();
        assert_eq!(
            all,
            ["key.created", "key.updated", "key.rotated", "key.revoked"]
        );
        assert_eq!(planned[1].events[0].data["changed"], json!(["name"]));
        let body = planned[0].events[0].body().to_string();
        assert!(!body.contains(&hash('a')), "no hash in an event: {body}");
        // A replayed record is the same event.
        assert_eq!(
            plan_record(&steps[0], &s, NOW + 9).unwrap().events[0].id,
            planned[0].events[0].id
        );
    }

    #[test]
    fn last_use_alone_is_no_event_and_an_event_item_is_its_event() {
        let s = Settings::default();
        let v1 = key_image(1, "active", &hash('a'), json!({}));
        let used = key_image(
            1,
            "active",
            &hash('a'),
            json!({"last_used_at": {"N": "1800000000"}}),
        );
        let p = plan_record(&record("e", "MODIFY", Some(v1), Some(used)), &s, NOW).unwrap();
        assert!(p.events.is_empty());
        let event = Event::new(
            "acme",
            "key.auth_failures",
            NOW,
            json!({"count": 20}),
            &["w"],
        );
        let item = crate::events::outbox::event_item(&event);
        let image: serde_json::Map<String, Value> = item
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    aws_sdk_dynamodb::types::AttributeValue::S(s) => json!({"S": s}),
                    aws_sdk_dynamodb::types::AttributeValue::N(n) => json!({"N": n}),
                    _ => Value::Null,
                };
                (k.clone(), v)
            })
            .collect();
        let image = Value::Object(image);
        let mut r = record("e9", "INSERT", None, Some(image));
        r.change.keys = r.change.new_image.clone();
        let p = plan_record(&r, &s, NOW).unwrap();
        assert_eq!(p.events, vec![event]);
    }

    #[test]
    fn balances_crossing_thresholds_are_low_then_exhausted_once() {
        let s = Settings::default();
        let with = |v: u64, rem: u64| {
            key_image(
                v,
                "active",
                &hash('a'),
                json!({"credits_remaining": {"N": rem.to_string()}}),
            )
        };
        let step = |a: u64, b: u64| {
            let p = plan_record(
                &record("e", "MODIFY", Some(with(1, a)), Some(with(1, b))),
                &s,
                NOW,
            )
            .unwrap();
            kinds(&p).into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(step(50, 11), Vec::<String>::new());
        assert_eq!(step(11, 10), ["credits.low"]);
        assert_eq!(step(10, 3), Vec::<String>::new());
        assert_eq!(step(3, 0), ["credits.exhausted"]);
        assert_eq!(step(50, 0), ["credits.exhausted"]);
        assert_eq!(step(0, 0), Vec::<String>::new());
        assert_eq!(step(0, 100), Vec::<String>::new());
    }

    #[test]
    fn an_active_key_with_a_new_expiry_is_to_be_reminded_once() {
        let s = Settings::default();
        let exp = json!({"expires_at": {"N": (NOW + 6 * 86_400).to_string()}});
        let v1 = key_image(1, "active", &hash('a'), exp.clone());
        let p = plan_record(&record("e", "INSERT", None, Some(v1.clone())), &s, NOW).unwrap();
        assert_eq!(p.expiry.unwrap().expires_at, NOW + 6 * 86_400);
        let mut v2 = key_image(2, "active", &hash('a'), exp.clone());
        v2["name"] = json!({"S": "other"});
        let p = plan_record(&record("e2", "MODIFY", Some(v1), Some(v2.clone())), &s, NOW).unwrap();
        assert_eq!(p.expiry, None, "same expiry, already reminded");
        let v3 = key_image(3, "disabled", &hash('a'), exp);
        let p = plan_record(&record("e3", "MODIFY", Some(v2), Some(v3)), &s, NOW).unwrap();
        assert_eq!(p.expiry, None);
    }
}
