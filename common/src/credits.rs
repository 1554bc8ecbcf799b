//! Credits and their refills: the rule a key's or an owner's `credits.refill` states, and when
//! the next refill falls — a pure function of the rule and a time, shared by the control plane
//! and the edge so both agree to the second.
//!
//! A daily refill happens at 00:00 UTC; a monthly one at 00:00 UTC on `day` (1–31) of each
//! month, or on the month's last day when it is shorter. A refill *sets* the remaining credits
//! to `amount`: missed periods do not add up.

use serde::{Deserialize, Serialize};

const DAY: i64 = 86_400;

/// How often credits are refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Every day at 00:00 UTC.
    Daily,
    /// Every month on `day` at 00:00 UTC.
    Monthly,
}

/// A refill rule: `remaining` becomes `amount` at each refill time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Refill {
    /// What `remaining` is set to.
    pub amount: u64,
    /// Daily or monthly.
    pub interval: Interval,
    /// Day of the month (1–31) for a monthly refill; the last day of shorter months. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u8>,
}

/// Most credits a key or an owner may hold or be refilled to.
pub const MAX_CREDITS: u64 = 1_000_000_000_000;

impl Refill {
    /// Checks the documented bounds: `(field, message)` of the first one broken.
    ///
    /// # Errors
    /// The field (relative to the refill object) and what is accepted.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if self.amount > MAX_CREDITS {
            return Err(("amount", "must be at most 1000000000000"));
        }
        match (self.interval, self.day) {
            (_, Some(d)) if !(1..=31).contains(&d) => Err(("day", "must be between 1 and 31")),
            (Interval::Daily, Some(_)) => Err(("day", "is only for a monthly refill")),
            _ => Ok(()),
        }
    }

    /// The first refill time strictly after `after` (Unix seconds, UTC).
    #[must_use]
    pub fn next_after(&self, after: i64) -> i64 {
        let today = after.div_euclid(DAY);
        match self.interval {
            Interval::Daily => (today + 1) * DAY,
            Interval::Monthly => {
                let day = u32::from(self.day.unwrap_or(1).clamp(1, 31));
                let (y, m, _) = civil_from_days(today);
                let this_month = refill_day(y, m, day) * DAY;
                if this_month > after {
                    this_month
                } else {
                    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                    refill_day(ny, nm, day) * DAY
                }
            }
        }
    }

    /// Whether a refill fell in `(last, now]`: the credits last refilled (or set) at `last` are
    /// due for `amount` again.
    #[must_use]
    pub fn due(&self, last: i64, now: i64) -> bool {
        self.next_after(last) <= now
    }
}

/// A key's or an owner's credits: what remains, and the refill rule if any.
///
/// On the control plane `remaining` is the last value the edge reported (or the value an
/// operation set); the edge's Durable Object is the authority that spends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Credits {
    /// Units left, 0..=[`MAX_CREDITS`].
    pub remaining: u64,
    /// When and to what `remaining` is set again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

/// What a credit operation does to `remaining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CreditOpKind {
    /// `remaining = value`.
    Set,
    /// `remaining += value` (capped at [`MAX_CREDITS`]).
    Increment,
    /// `remaining -= value` (floored at 0).
    Decrement,
    /// Only the refill rule changes; `value` is ignored.
    Configure,
    /// The target no longer has credits (unlimited); `value` is ignored.
    Remove,
}

impl CreditOpKind {
    /// `remaining` after this operation with `value`.
    #[must_use]
    pub fn apply(self, remaining: u64, value: u64) -> u64 {
        match self {
            Self::Set => value.min(MAX_CREDITS),
            Self::Increment => remaining.saturating_add(value).min(MAX_CREDITS),
            Self::Decrement => remaining.saturating_sub(value),
            Self::Configure | Self::Remove => remaining,
        }
    }
}

/// Whose credits an operation or a report is about: a key, or an owner of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CreditTarget {
    /// A key, by id (its Durable Object is `k:{key_id}`).
    Key {
        /// Owning workspace.
        workspace: String,
        /// The key.
        key_id: crate::KeyId,
    },
    /// An owner (its Durable Object is `o:{workspace}:{owner_id}`).
    Owner {
        /// Owning workspace.
        workspace: String,
        /// The owner's id.
        owner_id: String,
    },
}

impl CreditTarget {
    /// The name of the Durable Object that holds this target's allowance (credits and limits).
    #[must_use]
    pub fn object_name(&self) -> String {
        match self {
            Self::Key { key_id, .. } => format!("k:{}", key_id.as_str()),
            Self::Owner {
                workspace,
                owner_id,
            } => format!("o:{workspace}:{owner_id}"),
        }
    }
}

/// One credit operation as the control plane ordered it, sent to the edge in a signed sync
/// batch. `seq` counts the target's operations from 1 (the control plane increments it in the
/// same write that records the operation); the edge applies each `seq` once, in order, so a
/// replayed batch changes nothing and an increment is never lost to a concurrent spend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditOp {
    /// Whose credits.
    pub target: CreditTarget,
    /// The target's operation number, from 1.
    pub seq: u64,
    /// What it does.
    pub op: CreditOpKind,
    /// The operand (0..=[`MAX_CREDITS`]).
    pub value: u64,
    /// The refill rule in force after this operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
    /// When the control plane recorded it (Unix seconds): a `set` counts as a refill at that
    /// time, so the next refill is the first one after it.
    pub at: i64,
}

/// Days since the epoch of `day` (clamped to the month's length) in month `m` of year `y`.
fn refill_day(y: i64, m: u32, day: u32) -> i64 {
    days_from_civil(y, m, day.min(days_in_month(y, m)))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms (public domain), proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `(year, month, day)` of `z` days since the Unix epoch.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(y: i64, m: u32, d: u32, secs: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + secs
    }

    fn monthly(day: u8) -> Refill {
        Refill {
            amount: 10,
            interval: Interval::Monthly,
            day: Some(day),
        }
    }

    const DAILY: Refill = Refill {
        amount: 10,
        interval: Interval::Daily,
        day: None,
    };

    #[test]
    fn a_daily_refill_is_the_next_midnight_utc() {
        assert_eq!(DAILY.next_after(at(2026, 11, 30, 0)), at(2026, 12, 1, 0));
        assert_eq!(
            DAILY.next_after(at(2026, 11, 30, 86_399)),
            at(2026, 12, 1, 0)
        );
        assert_eq!(DAILY.next_after(at(2026, 12, 31, 5)), at(2027, 1, 1, 0));
        assert!(DAILY.due(at(2026, 11, 30, 100), at(2026, 12, 1, 0)));
        assert!(!DAILY.due(at(2026, 11, 30, 100), at(2026, 11, 30, 86_399)));
    }

    #[test]
    fn a_monthly_refill_falls_on_its_day_or_the_months_last() {
        let r = monthly(31);
        assert_eq!(
            r.next_after(at(2027, 1, 31, 0)),
            at(2027, 2, 28, 0),
            "not a leap year"
        );
        assert_eq!(
            r.next_after(at(2028, 1, 31, 0)),
            at(2028, 2, 29, 0),
            "a leap year"
        );
        assert_eq!(r.next_after(at(2028, 2, 29, 0)), at(2028, 3, 31, 0));
        assert_eq!(r.next_after(at(2028, 4, 1, 0)), at(2028, 4, 30, 0));
        assert_eq!(
            monthly(29).next_after(at(2100, 2, 1, 0)),
            at(2100, 2, 28, 0),
            "2100 is not leap"
        );
        assert_eq!(
            monthly(29).next_after(at(2000, 2, 1, 0)),
            at(2000, 2, 29, 0),
            "2000 is"
        );
        assert_eq!(
            monthly(1).next_after(at(2026, 12, 15, 0)),
            at(2027, 1, 1, 0)
        );
        assert_eq!(
            monthly(15).next_after(at(2026, 12, 14, 86_399)),
            at(2026, 12, 15, 0)
        );
    }

    #[test]
    fn refill_bounds_are_checked() {
        assert!(monthly(0).validate().is_err());
        assert!(monthly(32).validate().is_err());
        assert!(monthly(31).validate().is_ok());
        let mut d = DAILY;
        d.day = Some(3);
        assert_eq!(d.validate().unwrap_err().0, "day");
    }

    proptest! {
        #[test]
        fn the_civil_calendar_round_trips(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m));
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn the_next_refill_is_a_later_midnight_within_one_period(
            after in 0i64..8_000_000_000,
            day in 1u8..=31,
            daily in any::<bool>(),
        ) {
            let r = if daily { DAILY } else { monthly(day) };
            let next = r.next_after(after);
            prop_assert!(next > after);
            prop_assert_eq!(next.rem_euclid(DAY), 0, "at 00:00 UTC");
            let most = if daily { DAY } else { 31 * DAY };
            prop_assert!(next - after <= most);
            if !daily {
                let (y, m, d) = civil_from_days(next / DAY);
                prop_assert_eq!(d, u32::from(day).min(days_in_month(y, m)));
            }
            // Every instant before the next refill has the same next refill (no refill skipped,
            // none doubled), and missed periods count once: `due` is only "at least one".
            prop_assert_eq!(r.next_after(next - 1), next);
            prop_assert!(r.due(after, next));
            prop_assert!(!r.due(after, next - 1));
            prop_assert!(r.due(after, next + 400 * DAY));
        }
    }
}
