//! Pay-per-use request bodies and fields: several named rate limits, credits with their refill
//! rule, credit operations (`POST /keys/{id}/credits`, `/owners/{id}/credits`) and owners
//! (`PUT /owners/{owner_id}`).
//!
//! Fields arrive as raw JSON and are checked by hand, so every error names the innermost field
//! (`rate_limits[1].period_s`, `credits.refill.day`) rather than serde's first complaint.

use keyward_common::FieldError;
use keyward_common::RateLimit;
use keyward_common::credits::{CreditOpKind, Credits, Interval, MAX_CREDITS, Refill};
use keyward_common::record::{NamedRateLimit, OwnerStatus, valid_owner_id};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::checks::expected;
use super::{Errors, Field, from_object};

type Json = Map<String, Value>;

/// What a credits field must look like, for people.
pub const CREDITS_SHAPE: &str =
    "an object {remaining, refill?: {amount, interval: daily|monthly, day?}}";
/// What a rate-limit list must look like, for people.
pub const LIMITS_SHAPE: &str = "an array of objects {name, limit, period_s}";

/// A whole number within `0..=max`, or an error on `field`.
fn whole(f: &mut Errors, field: &str, v: &Value, min: u64, max: u64) -> Option<u64> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            f.add(field, format!("must be a whole number from {min} to {max}"));
            None
        }
    }
}

/// Reports fields of `obj` outside `known` under `field.`.
fn unknown(f: &mut Errors, field: &str, obj: &Json, known: &[&str]) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        f.add(&format!("{field}.{k}"), "is not a known field");
    }
}

impl Errors {
    /// A `rate_limits` list: at most [`NamedRateLimit::MAX_PER_TARGET`], each within its
    /// bounds, names unique.
    pub fn rate_limits(&mut self, field: &str, v: Value) -> Option<Vec<NamedRateLimit>> {
        let Value::Array(list) = v else {
            self.add(field, format!("must be {LIMITS_SHAPE}"));
            return None;
        };
        if list.len() > NamedRateLimit::MAX_PER_TARGET {
            self.add(
                field,
                format!(
                    "must hold at most {} limits",
                    NamedRateLimit::MAX_PER_TARGET
                ),
            );
            return None;
        }
        let before = self.0.len();
        let mut out: Vec<NamedRateLimit> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let Value::Object(obj) = item else {
                self.add(&at, "must be an object {name, limit, period_s}");
                continue;
            };
            unknown(self, &at, obj, &["name", "limit", "period_s"]);
            let name = match obj.get("name") {
                Some(Value::String(s)) => Some(s.clone()),
                _ => {
                    self.add(&format!("{at}.name"), "must be a string");
                    None
                }
            };
            let number = |f: &mut Self, key: &str| match obj.get(key) {
                Some(v) => whole(f, &format!("{at}.{key}"), v, 0, u64::from(u32::MAX))
                    .and_then(|n| u32::try_from(n).ok()),
                None => {
                    f.add(&format!("{at}.{key}"), "is required");
                    None
                }
            };
            let limit = number(self, "limit");
            let period_s = number(self, "period_s");
            let (Some(name), Some(limit), Some(period_s)) = (name, limit, period_s) else {
                continue;
            };
            let l = NamedRateLimit {
                name,
                limit,
                period_s,
            };
            if let Err((sub, msg)) = l.validate() {
                self.add(&format!("{at}.{sub}"), msg);
                continue;
            }
            if out.iter().any(|o| o.name == l.name) {
                self.add(&format!("{at}.name"), "must be unique among the limits");
                continue;
            }
            out.push(l);
        }
        (self.0.len() == before).then_some(out)
    }

    /// A `credits` object: `remaining` 0..=[`MAX_CREDITS`] and an optional `refill`.
    pub fn credits(&mut self, field: &str, v: Value) -> Option<Credits> {
        let Value::Object(obj) = v else {
            self.add(field, format!("must be {CREDITS_SHAPE}"));
            return None;
        };
        let before = self.0.len();
        unknown(self, field, &obj, &["remaining", "refill"]);
        let remaining = match obj.get("remaining") {
            Some(v) => whole(self, &format!("{field}.remaining"), v, 0, MAX_CREDITS),
            None => {
                self.add(&format!("{field}.remaining"), "is required");
                None
            }
        };
        let refill = match obj.get("refill") {
            None | Some(Value::Null) => None,
            Some(v) => self.refill(&format!("{field}.refill"), v),
        };
        if self.0.len() != before {
            return None;
        }
        Some(Credits {
            remaining: remaining?,
            refill,
        })
    }

    fn refill(&mut self, field: &str, v: &Value) -> Option<Refill> {
        let Value::Object(obj) = v else {
            self.add(
                field,
                "must be an object {amount, interval: daily|monthly, day?}",
            );
            return None;
        };
        let before = self.0.len();
        unknown(self, field, obj, &["amount", "interval", "day"]);
        let amount = match obj.get("amount") {
            Some(v) => whole(self, &format!("{field}.amount"), v, 0, MAX_CREDITS),
            None => {
                self.add(&format!("{field}.amount"), "is required");
                None
            }
        };
        let interval = match obj.get("interval").and_then(Value::as_str) {
            Some("daily") => Some(Interval::Daily),
            Some("monthly") => Some(Interval::Monthly),
            _ => {
                self.add(&format!("{field}.interval"), "must be daily or monthly");
                None
            }
        };
        let day = match obj.get("day") {
            None | Some(Value::Null) => None,
            Some(v) => whole(self, &format!("{field}.day"), v, 1, 31).map(|d| d as u8),
        };
        if self.0.len() != before {
            return None;
        }
        let r = Refill {
            amount: amount?,
            interval: interval?,
            day,
        };
        match r.validate() {
            Ok(()) => Some(r),
            Err((sub, msg)) => {
                self.add(&format!("{field}.{sub}"), msg);
                None
            }
        }
    }

    /// The `rate_limit` shorthand: one limit named `default`, within the bounds of named
    /// limits (31 days).
    pub fn rate_limit(&mut self, rl: RateLimit) -> Option<RateLimit> {
        let l = named_default(rl);
        match l.validate() {
            Ok(()) => Some(rl),
            Err((sub, msg)) => {
                self.add("rate_limit", format!("{sub} {msg}"));
                None
            }
        }
    }

    /// The limits a create (or a PATCH giving both) ends with: `rate_limits`, with the
    /// `rate_limit` shorthand as the limit named `default`; a `default` in both that differs is
    /// an error on `rate_limit`.
    pub fn merge_limits(
        &mut self,
        rate_limit: Option<RateLimit>,
        rate_limits: Option<Vec<NamedRateLimit>>,
    ) -> Option<Vec<NamedRateLimit>> {
        let mut out = rate_limits.unwrap_or_default();
        if let Some(rl) = rate_limit {
            let named = named_default(rl);
            match out.iter().find(|l| l.name == NamedRateLimit::DEFAULT_NAME) {
                Some(d) if *d != named => {
                    self.add(
                        "rate_limit",
                        "differs from the limit named default in rate_limits: give one of them",
                    );
                    return None;
                }
                Some(_) => {}
                None => out.insert(0, named),
            }
        }
        if out.len() > NamedRateLimit::MAX_PER_TARGET {
            self.add(
                "rate_limits",
                format!(
                    "must hold at most {} limits, rate_limit included",
                    NamedRateLimit::MAX_PER_TARGET
                ),
            );
            return None;
        }
        Some(out)
    }
}

/// `rl` as the limit named `default`.
#[must_use]
pub fn named_default(rl: RateLimit) -> NamedRateLimit {
    NamedRateLimit {
        name: NamedRateLimit::DEFAULT_NAME.to_owned(),
        limit: rl.limit,
        period_s: rl.period_s,
    }
}

/// `POST /keys/{id}/credits` and `POST /owners/{owner_id}/credits` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditOpRequest {
    /// `set` (remaining = value; gives credits to a key or owner without any), `increment`
    /// or `decrement` (floored at 0; refused with 400 on `op` when there are no credits).
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "increment")]
    pub op: Field<String>,
    /// 0 to 1000000000000.
    #[serde(default)]
    #[schema(value_type = u64, required = true, example = 10, maximum = 1_000_000_000_000_u64)]
    pub value: Field<Value>,
}

/// A validated credit operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditChange {
    /// Set, increment or decrement.
    pub op: CreditOpKind,
    /// The operand.
    pub value: u64,
}

/// Validates a credit operation body.
///
/// # Errors
/// Every invalid, missing or unknown field.
pub fn credit_op(body: Json) -> Result<CreditChange, Vec<FieldError>> {
    let (req, mut f) = from_object::<CreditOpRequest>(body)?;
    let op = match f.take("op", req.op, expected::STRING) {
        Some(Some(s)) => match s.as_str() {
            "set" => Some(CreditOpKind::Set),
            "increment" => Some(CreditOpKind::Increment),
            "decrement" => Some(CreditOpKind::Decrement),
            _ => {
                f.add("op", "must be set, increment or decrement");
                None
            }
        },
        Some(None) => {
            f.add("op", "must be set, increment or decrement");
            None
        }
        None => {
            if !f.has("op") {
                f.add("op", "is required");
            }
            None
        }
    };
    let value = match f.take("value", req.value, "a whole number") {
        Some(Some(v)) => whole(&mut f, "value", &v, 0, MAX_CREDITS),
        Some(None) => {
            f.add("value", "must be a whole number from 0 to 1000000000000");
            None
        }
        None => {
            if !f.has("value") {
                f.add("value", "is required");
            }
            None
        }
    };
    match (op, value) {
        (Some(op), Some(value)) => f.done(CreditChange { op, value }),
        _ => Err(f.0),
    }
}

/// `PUT /owners/{owner_id}` body: the owner's settings, all replaced (an absent field is reset:
/// `active`, no meta, no limits, no credits).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOwnerRequest {
    /// `active` (default) or `disabled`: every key of a disabled owner answers `DISABLED`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "active")]
    pub status: Field<String>,
    /// A JSON object of at most 4 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>, nullable)]
    pub meta: Field<Json>,
    /// Up to 5 limits shared by all the owner's keys, names unique.
    #[serde(default)]
    #[schema(value_type = Option<Vec<NamedRateLimit>>, nullable)]
    pub rate_limits: Field<Value>,
    /// Credits shared by all the owner's keys; absent or `null`: none (unlimited).
    #[serde(default)]
    #[schema(value_type = Option<Credits>, nullable)]
    pub credits: Field<Value>,
}

/// Validated owner settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerSettings {
    /// Active or disabled.
    pub status: OwnerStatus,
    /// Metadata.
    pub meta: Option<Json>,
    /// Shared limits.
    pub rate_limits: Vec<NamedRateLimit>,
    /// Shared credits.
    pub credits: Option<Credits>,
}

/// Validates an owner PUT body.
///
/// # Errors
/// Every invalid or unknown field.
pub fn put_owner(body: Json) -> Result<OwnerSettings, Vec<FieldError>> {
    let (req, mut f) = from_object::<PutOwnerRequest>(body)?;
    let status = match f.take("status", req.status, expected::STRING).flatten() {
        None => OwnerStatus::Active,
        Some(s) if s == "active" => OwnerStatus::Active,
        Some(s) if s == "disabled" => OwnerStatus::Disabled,
        Some(_) => {
            f.add("status", "must be active or disabled");
            OwnerStatus::Active
        }
    };
    let meta = f
        .take("meta", req.meta, expected::OBJECT)
        .flatten()
        .and_then(|m| f.meta(m));
    let rate_limits = f
        .take("rate_limits", req.rate_limits, LIMITS_SHAPE)
        .flatten()
        .and_then(|v| f.rate_limits("rate_limits", v))
        .unwrap_or_default();
    let credits = f
        .take("credits", req.credits, CREDITS_SHAPE)
        .flatten()
        .and_then(|v| f.credits("credits", v));
    f.done(OwnerSettings {
        status,
        meta,
        rate_limits,
        credits,
    })
}

/// An owner id from a path segment: percent-decoded (UTF-8), then checked.
///
/// # Errors
/// A field error on `owner_id`.
pub fn owner_id(segment: &str, decode: bool) -> Result<String, FieldError> {
    let bad = || {
        FieldError::new(
            "owner_id",
            "must be 1-128 characters without control characters",
        )
    };
    let id = if decode {
        percent_decode(segment).ok_or_else(bad)?
    } else {
        segment.to_owned()
    };
    if valid_owner_id(&id) {
        Ok(id)
    } else {
        Err(bad())
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Json {
        v.as_object().unwrap().clone()
    }

    fn fields<T: std::fmt::Debug>(r: Result<T, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn limits_name_the_bad_field_of_the_bad_limit() {
        let mut f = Errors::default();
        let ok = f.rate_limits(
            "rate_limits",
            json!([{"name": "minute", "limit": 3, "period_s": 60},
                   {"name": "month", "limit": 100, "period_s": 2_678_400}]),
        );
        assert_eq!(ok.unwrap().len(), 2);
        for (v, field) in [
            (
                json!([{"name": "a", "limit": 1, "period_s": 2_678_401}]),
                "rate_limits[0].period_s",
            ),
            (
                json!([{"name": "a", "limit": 0, "period_s": 1}]),
                "rate_limits[0].limit",
            ),
            (
                json!([{"name": "A", "limit": 1, "period_s": 1}]),
                "rate_limits[0].name",
            ),
            (
                json!([{"name": "a", "limit": 1, "period_s": 1},
                    {"name": "a", "limit": 2, "period_s": 2}]),
                "rate_limits[1].name",
            ),
            (
                json!([{"name": "a", "limit": -1, "period_s": 1}]),
                "rate_limits[0].limit",
            ),
            (
                json!([{"name": "a", "limit": 1.5, "period_s": 1}]),
                "rate_limits[0].limit",
            ),
            (
                json!([{"name": "a", "limit": 1, "period_s": 1, "x": 1}]),
                "rate_limits[0].x",
            ),
            (
                json!([{"name": "a", "limit": 1}]),
                "rate_limits[0].period_s",
            ),
            (json!({"name": "a"}), "rate_limits"),
            (
                json!(
                    (0..6)
                        .map(|i| json!({"name": format!("l{i}"), "limit": 1, "period_s": 1}))
                        .collect::<Vec<_>>()
                ),
                "rate_limits",
            ),
        ] {
            let mut f = Errors::default();
            assert!(f.rate_limits("rate_limits", v.clone()).is_none(), "{v}");
            assert_eq!(f.0[0].field, field, "{v}");
        }
    }

    #[test]
    fn credits_name_the_bad_field() {
        let mut f = Errors::default();
        let c = f
            .credits(
                "credits",
                json!({"remaining": 5, "refill": {"amount": 10, "interval": "monthly", "day": 31}}),
            )
            .unwrap();
        assert_eq!(c.refill.unwrap().day, Some(31));
        for (v, field) in [
            (json!({"remaining": -1}), "credits.remaining"),
            (json!({"remaining": 1.5}), "credits.remaining"),
            (
                json!({"remaining": 1_000_000_000_001u64}),
                "credits.remaining",
            ),
            (json!({}), "credits.remaining"),
            (
                json!({"remaining": 1, "refill": {"amount": 1, "interval": "monthly", "day": 0}}),
                "credits.refill.day",
            ),
            (
                json!({"remaining": 1, "refill": {"amount": 1, "interval": "monthly", "day": 32}}),
                "credits.refill.day",
            ),
            (
                json!({"remaining": 1, "refill": {"amount": 1, "interval": "daily", "day": 3}}),
                "credits.refill.day",
            ),
            (
                json!({"remaining": 1, "refill": {"amount": 1, "interval": "weekly"}}),
                "credits.refill.interval",
            ),
            (
                json!({"remaining": 1, "refill": {"interval": "daily"}}),
                "credits.refill.amount",
            ),
            (json!({"remaining": 1, "other": 2}), "credits.other"),
            (json!(5), "credits"),
        ] {
            let mut f = Errors::default();
            assert!(f.credits("credits", v.clone()).is_none(), "{v}");
            assert_eq!(f.0[0].field, field, "{v}");
        }
    }

    #[test]
    fn the_shorthand_is_the_default_limit_and_may_not_contradict_it() {
        let rl = RateLimit {
            limit: 5,
            period_s: 60,
        };
        let mut f = Errors::default();
        let l = f.merge_limits(Some(rl), None).unwrap();
        assert_eq!(l, [named_default(rl)]);
        let same = vec![named_default(rl)];
        assert_eq!(f.merge_limits(Some(rl), Some(same.clone())).unwrap(), same);
        let other = vec![named_default(RateLimit {
            limit: 6,
            period_s: 60,
        })];
        assert!(f.merge_limits(Some(rl), Some(other)).is_none());
        assert_eq!(f.0[0].field, "rate_limit");
    }

    #[test]
    fn credit_ops_check_op_and_value() {
        assert_eq!(
            credit_op(obj(json!({"op": "increment", "value": 10}))).unwrap(),
            CreditChange {
                op: CreditOpKind::Increment,
                value: 10
            }
        );
        assert_eq!(
            fields(credit_op(obj(json!({"op": "add", "value": 1})))),
            ["op"]
        );
        assert_eq!(
            fields(credit_op(obj(json!({"op": "set", "value": -1})))),
            ["value"]
        );
        assert_eq!(
            fields(credit_op(obj(json!({"op": "set", "value": 2.5})))),
            ["value"]
        );
        assert_eq!(
            fields(credit_op(obj(json!({"op": "set", "value": "3"})))),
            ["value"]
        );
        assert_eq!(fields(credit_op(obj(json!({})))), ["op", "value"]);
        assert_eq!(
            fields(credit_op(obj(json!({"op": "set", "value": 1, "x": 1})))),
            ["x"]
        );
    }

    #[test]
    fn owner_bodies_and_ids_are_checked() {
        let s = put_owner(obj(
            json!({"status": "disabled", "credits": {"remaining": 3}}),
        ))
        .unwrap();
        assert_eq!(s.status, OwnerStatus::Disabled);
        assert_eq!(s.credits.unwrap().remaining, 3);
        assert_eq!(
            put_owner(obj(json!({}))).unwrap().status,
            OwnerStatus::Active
        );
        assert_eq!(
            fields(put_owner(obj(json!({"status": "gone"})))),
            ["status"]
        );
        assert_eq!(
            fields(put_owner(obj(json!({"credits": {"remaining": -2}})))),
            ["credits.remaining"]
        );
        assert_eq!(owner_id("cus%2F42%20%C3%A9", true).unwrap(), "cus/42 é");
        assert!(owner_id("%0A", true).is_err());
        assert!(owner_id("%zz", true).is_err());
        assert!(owner_id(&"a".repeat(129), true).is_err());
    }
}
