//! The JSON of every shape the edge reads or writes, by hand ([`crate::json`]): the same text as
//! the serde derives the control plane uses (the tests below hold them to it), without serde's
//! code in the edge's WASM.
//!
//! Readers follow the derives' rules: a missing `Option` is `None`, `#[serde(default)]` fields
//! may be left out, a field given twice is refused, and unknown fields are skipped except in the
//! shapes marked `deny_unknown_fields`, which refuse them.

use ipnet::IpNet;

use crate::allowance::{
    Allowance, AllowanceRequest, Answer, Balance, CreditState, Lease, LeaseReturn, LimitScope,
    LimitState, Outcome, Refund, Refusal, Rules, Window,
};
use crate::credits::{CreditOp, CreditOpKind, CreditTarget, Interval, Refill};
use crate::json::{FromJson, JsonError, Reader, ToJson, Writer, need};
use crate::json_object;
use crate::problem::FieldError;
use crate::record::{NamedRateLimit, OwnerEntry, OwnerStatus};
use crate::sync::{
    BalanceReport, OutcomeCounts, OwnerSyncItem, RoleSyncItem, SyncBatch, SyncItem, SyncOutcome,
    SyncResponse, UsageBatch, UsageReport,
};
use crate::verify::{RateLimitState, VerdictCode};
use crate::{
    EdgeEntry, KeyHash, KeyId, KeyStatus, Problem, RateLimit, RoleEntry, Timestamp, Verdict,
};

/// Unit enums written as their serde name.
macro_rules! json_enum {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl ToJson for $ty {
            fn write(&self, w: &mut Writer) {
                w.string(match self { $(Self::$variant => $name),+ });
            }
        }

        impl FromJson for $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
                match &*r.str()? {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(r.type_error()),
                }
            }
        }
    };
}

json_enum!(KeyStatus { Active => "active", Disabled => "disabled", Revoked => "revoked" });
json_enum!(OwnerStatus { Active => "active", Disabled => "disabled" });
json_enum!(SyncOutcome { Applied => "applied", Stale => "stale" });
json_enum!(Interval { Daily => "daily", Monthly => "monthly" });
json_enum!(LimitScope { Key => "key", Owner => "owner" });
json_enum!(Refusal { RateLimited => "rate_limited", UsageExceeded => "usage_exceeded" });
json_enum!(CreditOpKind {
    Set => "set",
    Increment => "increment",
    Decrement => "decrement",
    Configure => "configure",
    Remove => "remove",
});

/// Ids written as their text and read with their `parse`.
macro_rules! json_id {
    ($($ty:ty),+) => {$(
        impl FromJson for $ty {
            fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
                let s = r.str()?;
                Self::parse(&s).map_err(|_| r.type_error())
            }
        }

        impl ToJson for $ty {
            fn write(&self, w: &mut Writer) {
                w.string(self.as_str());
            }
        }
    )+};
}

json_id!(KeyId, KeyHash);

impl FromJson for IpNet {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        let s = r.str()?;
        s.parse().map_err(|_| r.type_error())
    }
}

impl ToJson for IpNet {
    fn write(&self, w: &mut Writer) {
        w.string(&self.to_string());
    }
}

impl ToJson for Timestamp {
    fn write(&self, w: &mut Writer) {
        w.string(&self.to_rfc3339());
    }
}

json_object!(read_write RateLimit, deny { limit: req, period_s: req });
json_object!(read_write NamedRateLimit, deny { name: req, limit: req, period_s: req });

json_object!(read_write EdgeEntry, skip {
    schema: req,
    version: req,
    key_id: req,
    workspace: req,
    owner_id: opt,
    prefix: req,
    scopes: req,
    roles: skip_empty,
    name: skip_none,
    meta: skip_none,
    status: req,
    expires_at: opt,
    retires_at: opt,
    allowed_ips: req,
    rate_limit: opt,
    rate_limits: skip_empty,
    credited: skip_empty,
});

json_object!(read_write RoleEntry, skip {
    version: req,
    created_at: default,
    permissions: default,
    deleted: default,
});

json_object!(read_write OwnerEntry, skip {
    version: req,
    status: req,
    rate_limits: skip_empty,
    credited: skip_empty,
});

json_object!(read_write SyncItem, deny { hash: req, entry: req });
json_object!(read_write RoleSyncItem, deny { workspace: req, name: req, entry: req });
json_object!(read_write OwnerSyncItem, deny { workspace: req, owner_id: req, entry: req });

json_object!(read_write SyncBatch, deny {
    items: req,
    roles: skip_empty,
    owners: skip_empty,
    credit_ops: skip_empty,
});

json_object!(read_write SyncResponse, skip {
    outcomes: req,
    role_outcomes: skip_empty,
    owner_outcomes: skip_empty,
    credit_outcomes: skip_empty,
});

impl FromJson for CreditTarget {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        let (mut kind, mut workspace, mut key_id, mut owner_id) = (None, None, None, None);
        r.object(|r, key| match key {
            "kind" => r.take(&mut kind),
            "workspace" => r.take(&mut workspace),
            "key_id" => r.take(&mut key_id),
            "owner_id" => r.take(&mut owner_id),
            _ => Err(r.unknown()),
        })?;
        let workspace: String = need(workspace, "workspace")?;
        match need::<String>(kind, "kind")?.as_str() {
            "key" if owner_id.is_none() => Ok(Self::Key {
                workspace,
                key_id: need(key_id, "key_id")?,
            }),
            "owner" if key_id.is_none() => Ok(Self::Owner {
                workspace,
                owner_id: need(owner_id, "owner_id")?,
            }),
            _ => Err(r.type_error()),
        }
    }
}

impl ToJson for CreditTarget {
    fn write(&self, w: &mut Writer) {
        w.object(|w| match self {
            Self::Key { workspace, key_id } => {
                w.field("kind", "key");
                w.field("workspace", workspace);
                w.field("key_id", key_id);
            }
            Self::Owner {
                workspace,
                owner_id,
            } => {
                w.field("kind", "owner");
                w.field("workspace", workspace);
                w.field("owner_id", owner_id);
            }
        });
    }
}

json_object!(read_write Refill, deny { amount: req, interval: req, day: skip_none });

json_object!(read_write CreditOp, deny {
    target: req,
    seq: req,
    op: req,
    value: req,
    refill: skip_none,
    at: req,
});

json_object!(read_write OutcomeCounts, deny {
    valid: default,
    rate_limited: default,
    usage_exceeded: default,
    forbidden: default,
    disabled: default,
    expired: default,
    revoked: default,
    credits_spent: default,
});

json_object!(read_write UsageReport, deny {
    workspace: req,
    key_id: req,
    owner_id: skip_none,
    hour: req,
    counts: req,
    last_used_at: skip_none,
});

json_object!(read_write BalanceReport, deny { target: req, remaining: req, seq: req, at_ms: req });
json_object!(read_write UsageBatch, deny { batch_id: req, reports: req, balances: skip_empty });
json_object!(read_write Rules, deny { limits: default, credited: default });
json_object!(read_write LeaseReturn, deny { id: req, unused: req });
json_object!(read_write Refund, deny { units: req, at_s: req });

impl FromJson for AllowanceRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        let (mut tag, mut rules, mut cost, mut lease) = (None::<String>, None, None, None);
        let (mut returns, mut refunds, mut op) = (None, None, None);
        r.object(|r, key| match key {
            "do" => r.take(&mut tag),
            "rules" => r.take(&mut rules),
            "cost" => r.take(&mut cost),
            "lease" => r.take(&mut lease),
            "returns" => r.take(&mut returns),
            "refunds" => r.take(&mut refunds),
            "op" => r.take(&mut op),
            _ => Err(r.unknown()),
        })?;
        // Each variant refuses the others' fields, as `deny_unknown_fields` does.
        let only = |allowed: [bool; 6]| {
            let given = [
                rules.is_some(),
                cost.is_some(),
                lease.is_some(),
                returns.is_some(),
                refunds.is_some(),
                op.is_some(),
            ];
            given.iter().zip(allowed).all(|(g, a)| !g || a)
        };
        let request = match need(tag, "do")?.as_str() {
            "acquire" if only([true, true, true, true, false, false]) => Self::Acquire {
                rules: need(rules, "rules")?,
                cost: need(cost, "cost")?,
                lease: lease.unwrap_or_default(),
                returns: returns.unwrap_or_default(),
            },
            "peek" if only([true, false, false, false, false, false]) => Self::Peek {
                rules: need(rules, "rules")?,
            },
            "return" if only([false, false, false, true, true, false]) => Self::Return {
                returns: returns.unwrap_or_default(),
                refunds: refunds.unwrap_or_default(),
            },
            "credit" if only([false, false, false, false, false, true]) => Self::Credit {
                op: need(op, "op")?,
            },
            _ => return Err(r.type_error()),
        };
        Ok(request)
    }
}

impl ToJson for AllowanceRequest {
    fn write(&self, w: &mut Writer) {
        w.object(|w| match self {
            Self::Acquire {
                rules,
                cost,
                lease,
                returns,
            } => {
                w.field("do", "acquire");
                w.field("rules", rules);
                w.field("cost", cost);
                w.field("lease", lease);
                w.field("returns", returns);
            }
            Self::Peek { rules } => {
                w.field("do", "peek");
                w.field("rules", rules);
            }
            Self::Return { returns, refunds } => {
                w.field("do", "return");
                w.field("returns", returns);
                w.field("refunds", refunds);
            }
            Self::Credit { op } => {
                w.field("do", "credit");
                w.field("op", op);
            }
        });
    }
}

json_object!(read_write Lease, skip { id: req, units: req, expires_ms: req, granted_s: req });

json_object!(read_write LimitState, skip {
    name: req,
    scope: default,
    limit: req,
    remaining: req,
    reset: req,
});

json_object!(read_write CreditState, skip { remaining: req, refill_at: skip_none, scope: default });

impl FromJson for Answer {
    fn read(r: &mut Reader<'_>) -> Result<Self, JsonError> {
        let (mut outcome, mut retry_ms, mut refusal) = (None::<String>, None, None);
        let (mut lease, mut limits, mut credits, mut seq) = (None, None, None, None);
        r.object(|r, key| match key {
            "outcome" => r.take(&mut outcome),
            "retry_ms" => r.take(&mut retry_ms),
            "refusal" => r.take(&mut refusal),
            "lease" => r.take(&mut lease),
            "limits" => r.take(&mut limits),
            "credits" => r.take(&mut credits),
            "seq" => r.take(&mut seq),
            _ => Ok(false),
        })?;
        let outcome = match need(outcome, "outcome")?.as_str() {
            "admitted" => Outcome::Admitted,
            "rate_limited" => Outcome::RateLimited,
            "usage_exceeded" => Outcome::UsageExceeded,
            "wait" => Outcome::Wait {
                retry_ms: need(retry_ms, "retry_ms")?,
                refusal: need(refusal, "refusal")?,
            },
            _ => return Err(r.type_error()),
        };
        Ok(Self {
            outcome,
            lease: lease.flatten(),
            limits: need(limits, "limits")?,
            credits: credits.flatten(),
            seq: need(seq, "seq")?,
        })
    }
}

impl ToJson for Answer {
    fn write(&self, w: &mut Writer) {
        w.object(|w| {
            match self.outcome {
                Outcome::Admitted => w.field("outcome", "admitted"),
                Outcome::RateLimited => w.field("outcome", "rate_limited"),
                Outcome::UsageExceeded => w.field("outcome", "usage_exceeded"),
                Outcome::Wait { retry_ms, refusal } => {
                    w.field("outcome", "wait");
                    w.field("retry_ms", &retry_ms);
                    w.field("refusal", &refusal);
                }
            }
            if let Some(lease) = &self.lease {
                w.field("lease", lease);
            }
            w.field("limits", &self.limits);
            if let Some(credits) = &self.credits {
                w.field("credits", credits);
            }
            w.field("seq", &self.seq);
        });
    }
}

json_object!(read_write Balance, skip { free: req, refill: opt, last_refill: req });
json_object!(read_write Window, skip { name: req, period_s: req, start: req, used: req });

json_object!(read_write Allowance, skip {
    seq: default,
    credits: default,
    windows: default,
    leases: default,
    next_lease: default,
});

json_object!(write RateLimitState { limit: req, remaining: req, reset: req });

impl ToJson for VerdictCode {
    fn write(&self, w: &mut Writer) {
        w.string(self.as_str());
    }
}

json_object!(write Verdict {
    valid: req,
    code: req,
    key_id: opt,
    workspace: opt,
    owner_id: opt,
    name: opt,
    meta: opt,
    scopes: req,
    roles: req,
    permissions: req,
    expires_at: opt,
    ratelimit: skip_none,
    ratelimits: skip_empty,
    credits: skip_none,
});

json_object!(write FieldError { field: req, message: req });

json_object!(write Problem {
    type_uri as "type": req,
    title: req,
    status: req,
    detail: req,
    code: req,
    request_id: skip_none,
    errors: skip_empty,
});

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::allowance::LEASE_TTL_MS;
    use crate::json::{self, JsonObject};

    /// The hand-written JSON is serde's, and each reads what the other wrote to the same value.
    fn same_json<T>(value: &T) -> Result<(), TestCaseError>
    where
        T: ToJson + FromJson + Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let ours = json::to_string(value);
        prop_assert_eq!(&ours, &serde_json::to_string(value).unwrap());
        prop_assert_eq!(&json::from_str::<T>(&ours).unwrap(), value);
        prop_assert_eq!(&serde_json::from_str::<T>(&ours).unwrap(), value);
        // Pretty-printed, as serde reads it too.
        let pretty = serde_json::to_string_pretty(value).unwrap();
        prop_assert_eq!(&json::from_str::<T>(&pretty).unwrap(), value);
        Ok(())
    }

    /// Writes only (the edge writes them; the control plane reads them with serde).
    fn same_text<T: ToJson + Serialize>(value: &T) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            json::to_string(value),
            serde_json::to_string(value).unwrap()
        );
        Ok(())
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9._-]{1,12}",
            any::<String>(),
            Just("quote\" back\\ nl\n tab\t bell\u{7} é ✓ 𝄞".to_owned()),
        ]
    }

    fn key_id() -> impl Strategy<Value = KeyId> {
        (0u64..1 << 48, any::<[u8; 10]>()).prop_map(|(ms, r)| KeyId::new(ms, r))
    }

    fn hash() -> impl Strategy<Value = KeyHash> {
        any::<String>().prop_map(|s| KeyHash::of(&s))
    }

    fn net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, p)| IpNet::new(a.into(), p).unwrap()),
            (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, p)| IpNet::new(a.into(), p).unwrap()),
        ]
    }

    fn named_limit() -> impl Strategy<Value = NamedRateLimit> {
        (text(), any::<u32>(), any::<u32>()).prop_map(|(name, limit, period_s)| NamedRateLimit {
            name,
            limit,
            period_s,
        })
    }

    fn meta() -> impl Strategy<Value = JsonObject> {
        prop::collection::btree_map(
            text(),
            prop_oneof![
                any::<i64>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                text().prop_map(serde_json::Value::from),
                Just(serde_json::json!({"nested": [1, 2.5, null, {"x": "y"}]})),
            ],
            0..4,
        )
        .prop_map(|m| JsonObject::from_map(&m.into_iter().collect()))
    }

    fn status() -> impl Strategy<Value = KeyStatus> {
        prop_oneof![
            Just(KeyStatus::Active),
            Just(KeyStatus::Disabled),
            Just(KeyStatus::Revoked)
        ]
    }

    prop_compose! {
        fn edge_entry()(
            (schema, version, key_id, workspace, owner_id, prefix) in (
                any::<u8>(), any::<u64>(), key_id(), text(), prop::option::of(text()), text(),
            ),
            (scopes, roles, name, meta, status) in (
                prop::collection::vec(text(), 0..3),
                prop::collection::vec(text(), 0..3),
                prop::option::of(text()),
                prop::option::of(meta()),
                status(),
            ),
            (expires_at, retires_at, allowed_ips, rate_limit, rate_limits, credited) in (
                prop::option::of(any::<i64>()),
                prop::option::of(any::<i64>()),
                prop::collection::vec(net(), 0..3),
                prop::option::of((any::<u32>(), any::<u32>())
                    .prop_map(|(limit, period_s)| RateLimit { limit, period_s })),
                prop::collection::vec(named_limit(), 0..3),
                any::<bool>(),
            ),
        ) -> EdgeEntry {
            EdgeEntry {
                schema, version, key_id, workspace, owner_id, prefix, scopes, roles, name, meta,
                status, expires_at, retires_at, allowed_ips, rate_limit, rate_limits, credited,
            }
        }
    }

    fn role_entry() -> impl Strategy<Value = RoleEntry> {
        (
            any::<u64>(),
            any::<i64>(),
            prop::collection::vec(text(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(version, created_at, permissions, deleted)| RoleEntry {
                version,
                created_at,
                permissions,
                deleted,
            })
    }

    fn owner_entry() -> impl Strategy<Value = OwnerEntry> {
        (
            any::<u64>(),
            any::<bool>(),
            prop::collection::vec(named_limit(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(version, disabled, rate_limits, credited)| OwnerEntry {
                version,
                status: if disabled {
                    OwnerStatus::Disabled
                } else {
                    OwnerStatus::Active
                },
                rate_limits,
                credited,
            })
    }

    fn target() -> impl Strategy<Value = CreditTarget> {
        prop_oneof![
            (text(), key_id())
                .prop_map(|(workspace, key_id)| CreditTarget::Key { workspace, key_id }),
            (text(), text()).prop_map(|(workspace, owner_id)| CreditTarget::Owner {
                workspace,
                owner_id
            }),
        ]
    }

    fn refill() -> impl Strategy<Value = Refill> {
        (any::<u64>(), any::<bool>(), prop::option::of(any::<u8>())).prop_map(
            |(amount, daily, day)| Refill {
                amount,
                interval: if daily {
                    Interval::Daily
                } else {
                    Interval::Monthly
                },
                day,
            },
        )
    }

    fn credit_op() -> impl Strategy<Value = CreditOp> {
        (
            target(),
            any::<u64>(),
            0..5usize,
            any::<u64>(),
            prop::option::of(refill()),
            any::<i64>(),
        )
            .prop_map(|(target, seq, op, value, refill, at)| CreditOp {
                target,
                seq,
                op: [
                    CreditOpKind::Set,
                    CreditOpKind::Increment,
                    CreditOpKind::Decrement,
                    CreditOpKind::Configure,
                    CreditOpKind::Remove,
                ][op],
                value,
                refill,
                at,
            })
    }

    fn rules() -> impl Strategy<Value = Rules> {
        (prop::collection::vec(named_limit(), 0..3), any::<bool>())
            .prop_map(|(limits, credited)| Rules { limits, credited })
    }

    fn returns() -> impl Strategy<Value = Vec<LeaseReturn>> {
        prop::collection::vec(
            (any::<u64>(), any::<u64>()).prop_map(|(id, unused)| LeaseReturn { id, unused }),
            0..3,
        )
    }

    fn request() -> impl Strategy<Value = AllowanceRequest> {
        prop_oneof![
            (rules(), any::<u32>(), any::<bool>(), returns()).prop_map(
                |(rules, cost, lease, returns)| AllowanceRequest::Acquire {
                    rules,
                    cost,
                    lease,
                    returns
                }
            ),
            rules().prop_map(|rules| AllowanceRequest::Peek { rules }),
            (
                returns(),
                prop::collection::vec(
                    (any::<u64>(), any::<i64>()).prop_map(|(units, at_s)| Refund { units, at_s }),
                    0..3
                )
            )
                .prop_map(|(returns, refunds)| AllowanceRequest::Return { returns, refunds }),
            credit_op().prop_map(|op| AllowanceRequest::Credit { op }),
        ]
    }

    fn scope() -> impl Strategy<Value = LimitScope> {
        prop_oneof![Just(LimitScope::Key), Just(LimitScope::Owner)]
    }

    fn limit_state() -> impl Strategy<Value = LimitState> {
        (text(), scope(), any::<u32>(), any::<u32>(), any::<i64>()).prop_map(
            |(name, scope, limit, remaining, reset)| LimitState {
                name,
                scope,
                limit,
                remaining,
                reset,
            },
        )
    }

    fn credit_state() -> impl Strategy<Value = CreditState> {
        (any::<u64>(), prop::option::of(any::<i64>()), scope()).prop_map(
            |(remaining, refill_at, scope)| CreditState {
                remaining,
                refill_at,
                scope,
            },
        )
    }

    fn lease() -> impl Strategy<Value = Lease> {
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
            |(id, units, expires_ms, granted_s)| Lease {
                id,
                units,
                expires_ms,
                granted_s,
            },
        )
    }

    fn refusal() -> impl Strategy<Value = Refusal> {
        prop_oneof![Just(Refusal::RateLimited), Just(Refusal::UsageExceeded)]
    }

    fn answer() -> impl Strategy<Value = Answer> {
        (
            prop_oneof![
                Just(Outcome::Admitted),
                Just(Outcome::RateLimited),
                Just(Outcome::UsageExceeded),
                (any::<u64>(), refusal())
                    .prop_map(|(retry_ms, refusal)| Outcome::Wait { retry_ms, refusal }),
            ],
            prop::option::of(lease()),
            prop::collection::vec(limit_state(), 0..3),
            prop::option::of(credit_state()),
            any::<u64>(),
        )
            .prop_map(|(outcome, lease, limits, credits, seq)| Answer {
                outcome,
                lease,
                limits,
                credits,
                seq,
            })
    }

    fn allowance() -> impl Strategy<Value = Allowance> {
        (
            any::<u64>(),
            prop::option::of(
                (any::<i64>(), prop::option::of(refill()), any::<i64>()).prop_map(
                    |(free, refill, last_refill)| Balance {
                        free,
                        refill,
                        last_refill,
                    },
                ),
            ),
            prop::collection::vec(
                (text(), any::<u32>(), any::<i64>(), any::<u64>()).prop_map(
                    |(name, period_s, start, used)| Window {
                        name,
                        period_s,
                        start,
                        used,
                    },
                ),
                0..3,
            ),
            prop::collection::vec(lease(), 0..3),
            any::<u64>(),
        )
            .prop_map(|(seq, credits, windows, leases, next_lease)| Allowance {
                seq,
                credits,
                windows,
                leases,
                next_lease,
            })
    }

    fn verdict() -> impl Strategy<Value = Verdict> {
        (
            edge_entry(),
            prop::collection::vec(text(), 0..3),
            0..10usize,
            prop::option::of(any::<i64>()),
            prop::collection::vec(limit_state(), 0..3),
            prop::option::of(credit_state()),
            any::<bool>(),
        )
            .prop_map(
                |(entry, permissions, code, expires, limits, credits, anonymous)| {
                    let codes = [
                        VerdictCode::Valid,
                        VerdictCode::Malformed,
                        VerdictCode::NotFound,
                        VerdictCode::Revoked,
                        VerdictCode::Disabled,
                        VerdictCode::Expired,
                        VerdictCode::ForbiddenScope,
                        VerdictCode::ForbiddenIp,
                        VerdictCode::RateLimited,
                        VerdictCode::UsageExceeded,
                    ];
                    let mut v = if anonymous {
                        Verdict::anonymous(codes[code])
                    } else {
                        Verdict {
                            valid: code == 0,
                            code: codes[code],
                            key_id: Some(entry.key_id.as_str().to_owned()),
                            workspace: Some(entry.workspace),
                            owner_id: entry.owner_id,
                            name: entry.name,
                            meta: entry.meta,
                            scopes: entry.scopes,
                            roles: entry.roles,
                            permissions,
                            expires_at: expires.map(|t| Timestamp(t.rem_euclid(253_402_300_800))),
                            ratelimit: None,
                            ratelimits: Vec::new(),
                            credits: None,
                        }
                    };
                    if !limits.is_empty() || credits.is_some() {
                        v = v.with_allowance(None, limits, credits);
                    }
                    v
                },
            )
    }

    proptest! {
        #[test]
        fn kv_entries_are_serdes_json(e in edge_entry(), r in role_entry(), o in owner_entry()) {
            same_json(&e)?;
            same_json(&r)?;
            same_json(&o)?;
        }

        #[test]
        fn sync_batches_read_as_serde_reads_them(
            items in prop::collection::vec((hash(), edge_entry()), 0..3),
            roles in prop::collection::vec((text(), text(), role_entry()), 0..3),
            owners in prop::collection::vec((text(), text(), owner_entry()), 0..3),
            credit_ops in prop::collection::vec(credit_op(), 0..3),
        ) {
            let batch = SyncBatch {
                items: items.into_iter().map(|(hash, entry)| SyncItem { hash, entry }).collect(),
                roles: roles
                    .into_iter()
                    .map(|(workspace, name, entry)| RoleSyncItem { workspace, name, entry })
                    .collect(),
                owners: owners
                    .into_iter()
                    .map(|(workspace, owner_id, entry)| OwnerSyncItem { workspace, owner_id, entry })
                    .collect(),
                credit_ops,
            };
            let text = serde_json::to_string(&batch).unwrap();
            prop_assert_eq!(json::from_str::<SyncBatch>(&text).unwrap(), batch.clone());
            for item in &batch.items {
                same_json(item)?;
            }
            for role in &batch.roles {
                same_json(role)?;
            }
            for owner in &batch.owners {
                same_json(owner)?;
            }
            for op in &batch.credit_ops {
                same_json(op)?;
            }
        }

        #[test]
        fn allowance_requests_answers_and_state_are_serdes_json(
            request in request(),
            answer in answer(),
            state in allowance(),
        ) {
            same_json(&request)?;
            same_json(&answer)?;
            same_json(&state)?;
        }

        #[test]
        fn answers_and_reports_are_written_as_serde_writes_them(
            verdict in verdict(),
            outcomes in prop::collection::vec(prop_oneof![Just(SyncOutcome::Applied), Just(SyncOutcome::Stale)], 0..4),
            counts in any::<[u64; 8]>(),
            owner_id in prop::option::of(text()),
            last_used_at in prop::option::of(any::<i64>()),
            target in target(),
            detail in text(),
        ) {
            same_text(&verdict)?;
            same_json(&outcomes)?;
            same_text(&SyncResponse {
                outcomes: outcomes.clone(),
                role_outcomes: outcomes.clone(),
                owner_outcomes: Vec::new(),
                credit_outcomes: outcomes,
            })?;
            let [valid, rate_limited, usage_exceeded, forbidden, disabled, expired, revoked, credits_spent] = counts;
            same_text(&UsageBatch {
                batch_id: "abcdefgh".into(),
                reports: vec![UsageReport {
                    workspace: "acme".into(),
                    key_id: KeyId::new(1, [2; 10]),
                    owner_id,
                    hour: 3600,
                    counts: OutcomeCounts {
                        valid, rate_limited, usage_exceeded, forbidden, disabled, expired, revoked, credits_spent,
                    },
                    last_used_at,
                }],
                balances: vec![BalanceReport { target, remaining: 1, seq: 2, at_ms: 3 }],
            })?;
            let mut problem = Problem::of(crate::ProblemCode::ValidationFailed, detail.clone());
            same_text(&problem)?;
            problem.errors = vec![FieldError::new("cost", detail)];
            problem.request_id = Some("req-1".into());
            same_text(&problem)?;
        }
    }

    #[test]
    fn unknown_fields_are_refused_where_serde_refuses_them() {
        let op = r#"{"target":{"kind":"key","workspace":"a","key_id":"KEY"},"seq":1,"op":"set","value":5,"at":1}"#
            .replace("KEY", KeyId::new(1, [0; 10]).as_str());
        assert!(json::from_str::<CreditOp>(&op).is_ok());
        for bad in [
            op.replace(r#""at":1"#, r#""at":1,"x":2"#),
            op.replace(r#""kind":"key""#, r#""kind":"key","owner_id":"o""#),
            op.replace(r#""kind":"key""#, r#""kind":"robot""#),
            op.replace(r#""seq":1"#, r#""seq":1,"seq":2"#),
            op.replace(r#""value":5"#, r#""value":5.0"#),
        ] {
            assert!(json::from_str::<CreditOp>(&bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<CreditOp>(&bad).is_err(), "{bad}");
        }
        let peek = r#"{"do":"peek","rules":{"limits":[],"credited":false}}"#;
        assert!(json::from_str::<AllowanceRequest>(peek).is_ok());
        let with_cost = peek.replace(r#""do":"peek""#, r#""do":"peek","cost":1"#);
        assert!(json::from_str::<AllowanceRequest>(&with_cost).is_err());
        assert!(serde_json::from_str::<AllowanceRequest>(&with_cost).is_err());
        // Entries skip what a newer control plane may add.
        let role = r#"{"version":1,"permissions":["a"],"future":{"x":[1]}}"#;
        assert_eq!(
            json::from_str::<RoleEntry>(role).unwrap(),
            serde_json::from_str::<RoleEntry>(role).unwrap()
        );
    }

    #[test]
    fn a_lease_answer_reads_back() {
        let answer = Answer {
            outcome: Outcome::Wait {
                retry_ms: 5,
                refusal: Refusal::UsageExceeded,
            },
            lease: Some(Lease {
                id: 1,
                units: 2,
                expires_ms: LEASE_TTL_MS,
                granted_s: 4,
            }),
            limits: Vec::new(),
            credits: None,
            seq: 9,
        };
        let text = json::to_string(&answer);
        assert_eq!(
            text,
            r#"{"outcome":"wait","retry_ms":5,"refusal":"usage_exceeded","lease":{"id":1,"units":2,"expires_ms":2000,"granted_s":4},"limits":[],"seq":9}"#
        );
        assert_eq!(json::from_str::<Answer>(&text).unwrap(), answer);
    }
}
