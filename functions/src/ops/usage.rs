//! Usage reads: one key's counts by period (`GET /keys/{id}/usage`, every period of the range,
//! zeros included, for charts), and the workspace's counts by period and key or owner
//! (`GET /usage`, only periods with requests, for billing: JSON pages or all rows as CSV).

use std::collections::BTreeMap;

use keyward_common::sync::OutcomeCounts;
use keyward_common::{FieldError, KeyId, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use super::{load, next_cursor, resume};
use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::input::usage::{GroupBy, UsageRange};
use crate::store::{Position, UsageHour};

/// Most hourly items one `GET /usage` reads; a longer range is refused (ask for less).
pub const MAX_ITEMS: usize = 100_000;

/// Requests by outcome and the credits the admitted ones spent, as the usage reads answer
/// them (the same fields as the edge's reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Outcomes {
    /// Admitted.
    pub valid: u64,
    /// Refused by a rate limit (the key's or its owner's).
    pub rate_limited: u64,
    /// Refused for lack of credits.
    pub usage_exceeded: u64,
    /// Refused for a missing permission or scope, or a client address not allowed.
    pub forbidden: u64,
    /// Refused because the key or its owner is disabled.
    pub disabled: u64,
    /// Refused because the key expired.
    pub expired: u64,
    /// Refused because the key is revoked.
    pub revoked: u64,
    /// Credits the admitted requests spent.
    pub credits_spent: u64,
}

impl From<OutcomeCounts> for Outcomes {
    fn from(c: OutcomeCounts) -> Self {
        Self {
            valid: c.valid,
            rate_limited: c.rate_limited,
            usage_exceeded: c.usage_exceeded,
            forbidden: c.forbidden,
            disabled: c.disabled,
            expired: c.expired,
            revoked: c.revoked,
            credits_spent: c.credits_spent,
        }
    }
}

/// One period's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsagePeriod {
    /// When the period (hour or day, UTC) starts.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// The counts by outcome, and the credits spent.
    #[serde(flatten)]
    pub counts: Outcomes,
}

/// `GET /keys/{id}/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    /// The key.
    #[schema(value_type = String)]
    pub key_id: KeyId,
    /// `hour` or `day`.
    pub granularity: &'static str,
    /// Start of the range (inclusive).
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    /// End of the range (exclusive).
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    /// Every period of the range, in order, zeros included.
    pub data: Vec<UsagePeriod>,
}

/// One row of the workspace's usage: a period and a key (with its owner) or an owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UsageRow {
    /// When the period starts.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// The key (`group_by=key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key_id: Option<KeyId>,
    /// The owner (`null` for keys without one).
    pub owner_id: Option<String>,
    /// The counts by outcome, and the credits spent.
    #[serde(flatten)]
    pub counts: Outcomes,
}

/// `GET /usage` as JSON: one page of rows, by period then key or owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageList {
    /// The rows.
    pub data: Vec<UsageRow>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Key `id`'s usage over `range`.
///
/// # Errors
/// 404 for a key the caller cannot see; storage failures.
pub async fn key_usage(
    app: &App,
    caller: &Caller,
    id: &KeyId,
    range: UsageRange,
) -> Result<KeyUsage, ApiError> {
    load(app, caller, id).await?;
    let hours = app
        .store
        .key_usage(&caller.workspace, id, range.from, range.to)
        .await?;
    let mut by_period: BTreeMap<i64, OutcomeCounts> = range
        .starts()
        .map(|s| (s, OutcomeCounts::default()))
        .collect();
    for h in &hours {
        if let Some(c) = by_period.get_mut(&range.period_of(h.hour)) {
            c.add(&h.counts);
        }
    }
    Ok(KeyUsage {
        key_id: id.clone(),
        granularity: range.granularity.as_str(),
        from: Timestamp(range.from),
        to: Timestamp(range.to),
        data: by_period
            .into_iter()
            .map(|(start, counts)| UsagePeriod {
                start: Timestamp(start),
                counts: counts.into(),
            })
            .collect(),
    })
}

/// Every row of the workspace's usage over `range`, grouped by `group`, only of keys of
/// `owner` when given.
///
/// # Errors
/// 400 naming `from` when the range holds more than [`MAX_ITEMS`] hourly items; storage
/// failures.
pub async fn workspace_rows(
    app: &App,
    caller: &Caller,
    range: UsageRange,
    group: GroupBy,
    owner: Option<&str>,
) -> Result<Vec<UsageRow>, ApiError> {
    let mut hours = app
        .store
        .workspace_usage(&caller.workspace, range.from, range.to, MAX_ITEMS)
        .await?
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                "from",
                format!(
                    "the range holds more than {MAX_ITEMS} key-hours of usage: ask for a shorter one"
                ),
            )])
        })?;
    if let Some(owner) = owner {
        hours.retain(|h| h.owner_id.as_deref() == Some(owner));
    }
    Ok(group_rows(&hours, range, group))
}

/// A row's place: its period, then the owner (by owner), then the key or owner id.
type RowKey = (i64, Option<String>, Option<String>);

/// Sums hourly items into rows of `range`'s periods per key or per owner, ordered by period
/// then key id or owner id (keys without an owner first).
#[must_use]
pub fn group_rows(hours: &[UsageHour], range: UsageRange, group: GroupBy) -> Vec<UsageRow> {
    let mut rows: BTreeMap<RowKey, (UsageRow, OutcomeCounts)> = BTreeMap::new();
    for h in hours {
        let start = range.period_of(h.hour);
        let (key, id) = match group {
            GroupBy::Key => (Some(h.key_id.clone()), Some(h.key_id.as_str().to_owned())),
            GroupBy::Owner => (None, h.owner_id.clone()),
        };
        let sort_owner = if group == GroupBy::Owner {
            h.owner_id.clone()
        } else {
            None
        };
        let row = rows.entry((start, sort_owner, id)).or_insert_with(|| {
            (
                UsageRow {
                    start: Timestamp(start),
                    key_id: key,
                    owner_id: h.owner_id.clone(),
                    counts: Outcomes::default(),
                },
                OutcomeCounts::default(),
            )
        });
        row.1.add(&h.counts);
    }
    rows.into_values()
        .filter(|(_, c)| c.requests() > 0 || c.credits_spent > 0)
        .map(|(mut r, c)| {
            r.counts = c.into();
            r
        })
        .collect()
}

/// One page of `rows` after the caller's `cursor`, bound to the query it came from.
///
/// # Errors
/// 400 `invalid_cursor` for a cursor of another query, workspace or deployment.
pub fn page(
    app: &App,
    caller: &Caller,
    rows: Vec<UsageRow>,
    filters: &str,
    limit: usize,
    cursor: Option<&str>,
) -> Result<UsageList, ApiError> {
    let offset = match resume(app, caller, filters, cursor)? {
        None => 0,
        Some(p) => p
            .get("offset")
            .and_then(|o| o.parse::<usize>().ok())
            .ok_or(ApiError::InvalidCursor)?,
    };
    let end = offset.saturating_add(limit).min(rows.len());
    let more = end < rows.len();
    let data = rows.into_iter().skip(offset).take(limit).collect();
    let next = more.then(|| Position::from([("offset".to_owned(), end.to_string())]));
    let next_cursor = next_cursor(app, caller, filters, next);
    Ok(UsageList {
        data,
        has_more: next_cursor.is_some(),
        next_cursor,
    })
}

/// The CSV header.
pub const CSV_HEADER: &str = "start,key_id,owner_id,valid,rate_limited,usage_exceeded,forbidden,disabled,expired,revoked,credits_spent\r\n";

/// `rows` as CSV (RFC 4180, CRLF lines) with [`CSV_HEADER`]. A text cell that a spreadsheet
/// would take for a formula (starting with `=`, `+`, `-`, `@`, tab or CR) is prefixed with `'`:
/// owner ids come from API callers.
#[must_use]
pub fn csv(rows: &[UsageRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    for r in rows {
        let c = &r.counts;
        let key = r.key_id.as_ref().map_or("", KeyId::as_str);
        let owner = r.owner_id.as_deref().unwrap_or("");
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\r\n",
            r.start.to_rfc3339(),
            cell(key),
            cell(owner),
            c.valid,
            c.rate_limited,
            c.usage_exceeded,
            c.forbidden,
            c.disabled,
            c.expired,
            c.revoked,
            c.credits_spent
        ));
    }
    out
}

fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::usage::Granularity;

    fn hour(key: u8, owner: Option<&str>, at: i64, valid: u64) -> UsageHour {
        UsageHour {
            key_id: KeyId::new(1, [key; 10]),
            owner_id: owner.map(Into::into),
            hour: at,
            counts: OutcomeCounts {
                valid,
                credits_spent: valid * 2,
                ..OutcomeCounts::default()
            },
        }
    }

    const DAY: i64 = 86_400;
    const T: i64 = 1_800_000_000 - 1_800_000_000 % DAY;

    fn days(n: i64) -> UsageRange {
        UsageRange {
            from: T,
            to: T + n * DAY,
            granularity: Granularity::Day,
        }
    }

    #[test]
    fn hours_sum_into_days_per_key_and_per_owner() {
        let hours = [
            hour(1, Some("acme"), T, 3),
            hour(1, Some("acme"), T + 3600, 4),
            hour(2, Some("acme"), T, 5),
            hour(3, None, T + DAY, 1),
        ];
        let by_key = group_rows(&hours, days(2), GroupBy::Key);
        assert_eq!(by_key.len(), 3);
        assert_eq!(by_key[0].counts.valid, 7);
        assert_eq!(by_key[0].counts.credits_spent, 14);
        let by_owner = group_rows(&hours, days(2), GroupBy::Owner);
        assert_eq!(by_owner.len(), 2);
        assert_eq!(
            (by_owner[0].owner_id.as_deref(), by_owner[0].counts.valid),
            (Some("acme"), 12)
        );
        assert_eq!(
            (by_owner[1].owner_id.as_deref(), by_owner[1].key_id.as_ref()),
            (None, None)
        );
    }

    #[test]
    fn csv_quotes_and_defuses_what_a_spreadsheet_would_run() {
        let mut rows = group_rows(
            &[hour(1, Some("=HYPERLINK(\"x\")"), T, 1)],
            days(1),
            GroupBy::Key,
        );
        rows.extend(group_rows(
            &[hour(2, Some("a,b"), T, 1)],
            days(1),
            GroupBy::Key,
        ));
        let text = csv(&rows);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER.trim_end());
        assert!(
            lines[1].contains(",\"'=HYPERLINK(\"\"x\"\")\","),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains(",\"a,b\","), "{}", lines[2]);
        assert!(lines[1].ends_with(",1,0,0,0,0,0,0,2"));
    }
}
