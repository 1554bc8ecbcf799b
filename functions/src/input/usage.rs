//! The usage reads' query: `from`, `to` (RFC 3339 or `YYYY-MM-DD`, UTC, `to` exclusive),
//! `granularity` (`hour` or `day`, default `day`) and, for the workspace's usage, `group_by`
//! (`key` or `owner`, default `key`).
//!
//! The range is widened to whole periods (`from` down to its hour or day, `to` up), defaults
//! to the last 30 days up to the end of the current period, and is at most 31 days by the hour
//! (744 rows per key) or 366 days by the day.

use keyward_common::{FieldError, Timestamp};

use super::query::Query;
use crate::error::ApiError;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// The default range: 30 days.
pub const DEFAULT_SPAN_S: i64 = 30 * DAY;
/// Longest range by the hour.
pub const MAX_HOURLY_SPAN_S: i64 = 31 * DAY;
/// Longest range by the day.
pub const MAX_DAILY_SPAN_S: i64 = 366 * DAY;

/// How rows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One row per UTC hour.
    Hour,
    /// One row per UTC day.
    Day,
}

impl Granularity {
    /// Seconds per row.
    #[must_use]
    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => HOUR,
            Self::Day => DAY,
        }
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

/// What the workspace's usage rows are per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per key and period.
    Key,
    /// One row per owner and period (keys without an owner together, `owner_id: null`).
    Owner,
}

impl GroupBy {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Owner => "owner",
        }
    }
}

/// A validated time range: `from <= t < to`, whole periods of `granularity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// Row size.
    pub granularity: Granularity,
}

impl UsageRange {
    /// The start of every period of the range, in order.
    pub fn starts(&self) -> impl Iterator<Item = i64> + '_ {
        let step = self.granularity.seconds();
        (0..)
            .map(move |i| self.from + i * step)
            .take_while(|t| *t < self.to)
    }

    /// The start of the period `t` falls in.
    #[must_use]
    pub fn period_of(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.granularity.seconds())
    }
}

/// Parses `from`, `to` and `granularity` of `q` at time `now`.
///
/// # Errors
/// 400 naming each bad parameter.
pub fn range(q: &Query, now: i64) -> Result<UsageRange, ApiError> {
    let mut errors = Vec::new();
    let granularity = match q.get("granularity") {
        None | Some("day") => Granularity::Day,
        Some("hour") => Granularity::Hour,
        Some(_) => {
            errors.push(FieldError::new("granularity", "must be hour or day"));
            Granularity::Day
        }
    };
    let step = granularity.seconds();
    let mut time = |name: &'static str| match q.get(name) {
        None => None,
        Some(v) => {
            let parsed = parse_time(v);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    name,
                    "must be an RFC 3339 time (2027-01-15T10:00:00Z) or a UTC day (2027-01-15)",
                ));
            }
            parsed
        }
    };
    let from = time("from");
    let to = time("to");
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let ceil = |t: i64| {
        t.div_euclid(step)
            .saturating_add(i64::from(t.rem_euclid(step) != 0))
            * step
    };
    let to = ceil(to.unwrap_or(now.saturating_add(1)));
    let from = from.map_or(to - DEFAULT_SPAN_S, |f| f - f.rem_euclid(step));
    let max = match granularity {
        Granularity::Hour => MAX_HOURLY_SPAN_S,
        Granularity::Day => MAX_DAILY_SPAN_S,
    };
    if from >= to {
        return Err(ApiError::Validation(vec![FieldError::new(
            "from",
            "must be before to",
        )]));
    }
    if to - from > max {
        return Err(ApiError::Validation(vec![FieldError::new(
            "from",
            format!(
                "the range may span at most {} days with granularity={}",
                max / DAY,
                granularity.as_str()
            ),
        )]));
    }
    Ok(UsageRange {
        from,
        to,
        granularity,
    })
}

/// Parses `group_by` of `q`.
///
/// # Errors
/// 400 naming `group_by`.
pub fn group_by(q: &Query) -> Result<GroupBy, ApiError> {
    match q.get("group_by") {
        None | Some("key") => Ok(GroupBy::Key),
        Some("owner") => Ok(GroupBy::Owner),
        Some(_) => Err(ApiError::Validation(vec![FieldError::new(
            "group_by",
            "must be key or owner",
        )])),
    }
}

/// The `owner_id` filter of `q`: 1–128 characters.
///
/// # Errors
/// 400 naming `owner_id`.
pub fn owner_filter(q: &Query) -> Result<Option<&str>, ApiError> {
    match q.get("owner_id") {
        Some(o) if !keyward_common::record::valid_owner_id(o) => {
            Err(ApiError::Validation(vec![FieldError::new(
                "owner_id",
                "must be 1-128 characters without control characters",
            )]))
        }
        other => Ok(other),
    }
}

/// RFC 3339, or `YYYY-MM-DD` as that day's 00:00 UTC; within years 1970–9999.
fn parse_time(v: &str) -> Option<i64> {
    let t = if v.len() == 10 {
        Timestamp::parse_rfc3339(&format!("{v}T00:00:00Z"))
            .ok()
            .filter(|t| t.day() == v)?
    } else {
        Timestamp::parse_rfc3339(v).ok()?
    };
    Some(t.unix()).filter(|s| (0..253_402_300_800).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_003_700; // 2027-01-15T09:01:40Z

    fn q(raw: &str) -> Query {
        Query::parse_str(raw, &["from", "to", "granularity", "group_by"]).unwrap()
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn the_default_is_the_last_30_days_by_day_to_the_end_of_today() {
        let r = range(&q(""), NOW).unwrap();
        assert_eq!(r.granularity, Granularity::Day);
        assert_eq!(r.to % DAY, 0);
        assert!(r.to > NOW && r.to - NOW <= DAY);
        assert_eq!(r.to - r.from, 30 * DAY);
        assert_eq!(r.starts().count(), 30);
    }

    #[test]
    fn days_and_times_are_widened_to_whole_periods() {
        let r = range(
            &q("from=2027-01-15T09:30:00Z&to=2027-01-15T11:00:01Z&granularity=hour"),
            NOW,
        )
        .unwrap();
        assert_eq!(r.from % HOUR, 0);
        assert_eq!(r.to - r.from, 3 * HOUR);
        let d = range(&q("from=2027-01-01&to=2027-02-01"), NOW).unwrap();
        assert_eq!((d.to - d.from) / DAY, 31);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(
            fields(range(&q("granularity=minute"), NOW).unwrap_err()),
            ["granularity"]
        );
        assert_eq!(
            fields(range(&q("from=yesterday&to=2027-13-01"), NOW).unwrap_err()),
            ["from", "to"]
        );
        assert_eq!(
            fields(range(&q("from=2027-02-01&to=2027-01-01"), NOW).unwrap_err()),
            ["from"]
        );
        assert_eq!(
            fields(range(&q("from=2026-01-01&to=2027-01-01&granularity=hour"), NOW).unwrap_err()),
            ["from"]
        );
        assert_eq!(
            fields(group_by(&q("group_by=plan")).unwrap_err()),
            ["group_by"]
        );
        assert_eq!(
            fields(range(&q("from=-0001-01-01"), NOW).unwrap_err()),
            ["from"]
        );
    }

    #[test]
    fn a_year_by_the_day_is_accepted_and_a_month_by_the_hour() {
        assert!(range(&q("from=2026-01-15&to=2027-01-15"), NOW).is_ok());
        assert!(range(&q("from=2026-12-15&to=2027-01-15&granularity=hour"), NOW).is_ok());
    }
}
