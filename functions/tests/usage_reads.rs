//! Usage through the handlers (in-memory store): reports as the edge sends them, then one key's
//! usage and the workspace's usage as JSON pages and CSV, other workspaces kept out, bad
//! parameters named, retried reports counted once.

mod support;

use keyward_common::KeyId;
use keyward_common::sync::{OutcomeCounts, UsageReport};
use keyward_functions::usage::{Recorded, UsageStore};
use lambda_http::http::StatusCode;
use serde_json::json;

use support::*;

const WS: &str = "acme";
const DAY: i64 = 86_400;

fn report(key: &str, owner: Option<&str>, hour: i64, counts: OutcomeCounts) -> UsageReport {
    UsageReport {
        workspace: WS.into(),
        key_id: KeyId::parse(key).unwrap(),
        owner_id: owner.map(Into::into),
        hour,
        counts,
        last_used_at: (counts.valid > 0).then_some(hour + 10),
    }
}

fn valid(n: u64, spent: u64) -> OutcomeCounts {
    OutcomeCounts {
        valid: n,
        credits_spent: spent,
        ..OutcomeCounts::default()
    }
}

/// Today's 00:00 UTC, and a world with two keys of owner `cust_1` and one without.
async fn setup() -> (World, i64, Vec<String>) {
    let w = world();
    let mut ids = Vec::new();
    for (name, owner) in [("a", Some("cust_1")), ("b", Some("cust_1")), ("c", None)] {
        let mut body = json!({"name": name});
        if let Some(o) = owner {
            body["owner_id"] = json!(o);
        }
        let r = w.create(WS, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        ids.push(id(&r));
    }
    let today = now() - now().rem_euclid(DAY);
    (w, today, ids)
}

async fn record(w: &World, batch: &str, reports: &[UsageReport]) {
    for (i, r) in reports.iter().enumerate() {
        w.store.record(batch, i, r, now()).await.unwrap();
    }
}

#[tokio::test]
async fn a_keys_usage_has_every_day_zeros_included_and_sums_its_hours() {
    let (w, today, ids) = setup().await;
    let limited = OutcomeCounts {
        rate_limited: 2,
        usage_exceeded: 1,
        forbidden: 4,
        ..OutcomeCounts::default()
    };
    record(
        &w,
        "batch-0001",
        &[
            report(&ids[0], Some("cust_1"), today - DAY + 3600, valid(5, 10)),
            report(&ids[0], Some("cust_1"), today - DAY + 7200, valid(2, 4)),
            report(&ids[0], Some("cust_1"), today, limited),
            report(&ids[1], Some("cust_1"), today, valid(100, 100)),
        ],
    )
    .await;
    let path = format!("/v1/workspaces/{WS}/keys/{}/usage", ids[0]);
    let r = w.call("GET", &path, &admin(WS), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 30, "the last 30 days, one row each");
    assert_eq!(r.body["granularity"], "day");
    let yesterday = &data[28];
    assert_eq!(yesterday["valid"], 7);
    assert_eq!(yesterday["credits_spent"], 14);
    let last = &data[29];
    assert_eq!(
        (
            last["rate_limited"].as_u64(),
            last["usage_exceeded"].as_u64(),
            last["forbidden"].as_u64()
        ),
        (Some(2), Some(1), Some(4))
    );
    assert_eq!(data[0]["valid"], 0);

    let hourly = w
        .call(
            "GET",
            &format!("{path}?granularity=hour&from={}", ts(today - DAY)),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(hourly.status, StatusCode::OK, "{}", hourly.text);
    let hours = hourly.body["data"].as_array().unwrap();
    assert_eq!(hours[1]["valid"], 5);
    assert_eq!(hours[2]["valid"], 2);
}

#[tokio::test]
async fn the_workspace_usage_groups_by_key_or_owner_and_pages() {
    let (w, today, ids) = setup().await;
    record(
        &w,
        "batch-0002",
        &[
            report(&ids[0], Some("cust_1"), today, valid(5, 5)),
            report(&ids[1], Some("cust_1"), today + 3600, valid(7, 70)),
            report(&ids[2], None, today, valid(1, 0)),
        ],
    )
    .await;
    let base = format!("/v1/workspaces/{WS}/usage");
    let by_key = w.call("GET", &base, &admin(WS), None).await;
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.text);
    assert_eq!(by_key.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(by_key.body["has_more"], false);

    let by_owner = w
        .call("GET", &format!("{base}?group_by=owner"), &admin(WS), None)
        .await;
    let rows = by_owner.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", by_owner.text);
    let cust = rows.iter().find(|r| r["owner_id"] == "cust_1").unwrap();
    assert_eq!(
        (cust["valid"].as_u64(), cust["credits_spent"].as_u64()),
        (Some(12), Some(75))
    );
    assert!(
        rows.iter()
            .any(|r| r["owner_id"].is_null() && r["valid"] == 1)
    );
    let of_cust = w
        .call("GET", &format!("{base}?owner_id=cust_1"), &admin(WS), None)
        .await;
    assert_eq!(
        of_cust.body["data"].as_array().unwrap().len(),
        2,
        "{}",
        of_cust.text
    );

    // Pages of one row, bound to their query.
    let first = w
        .call("GET", &format!("{base}?limit=1"), &admin(WS), None)
        .await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 1);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = w
        .call(
            "GET",
            &format!("{base}?limit=1&cursor={cursor}"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_ne!(second.body["data"][0], first.body["data"][0]);
    let elsewhere = w
        .call(
            "GET",
            &format!("{base}?limit=1&group_by=owner&cursor={cursor}"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&elsewhere), "invalid_cursor");
}

#[tokio::test]
async fn csv_has_every_row_for_a_spreadsheet() {
    let (w, today, ids) = setup().await;
    record(
        &w,
        "batch-0003",
        &[
            report(&ids[0], Some("cust_1"), today, valid(5, 5)),
            report(&ids[2], None, today, valid(1, 0)),
        ],
    )
    .await;
    let r = w
        .call_with(
            "GET",
            &format!("/v1/workspaces/{WS}/usage?limit=1"),
            Some(&admin(WS)),
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = r.text.trim_end().split("\r\n").collect();
    assert_eq!(
        lines.len(),
        3,
        "header and both rows, whatever the limit: {}",
        r.text
    );
    assert!(lines[0].starts_with("start,key_id,owner_id,valid,"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&ids[0]) && l.contains(",cust_1,5,"))
    );
}

#[tokio::test]
async fn a_resent_batch_counts_once() {
    let (w, today, ids) = setup().await;
    let reports = [report(&ids[0], None, today, valid(3, 3))];
    record(&w, "batch-0004", &reports).await;
    let again = w
        .store
        .record("batch-0004", 0, &reports[0], now())
        .await
        .unwrap();
    assert_eq!(again, Recorded::Duplicate);
    let r = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/keys/{}/usage", ids[0]),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(r.body["data"][29]["valid"], 3);
}

#[tokio::test]
async fn other_workspaces_and_bad_parameters_are_refused() {
    let (w, today, ids) = setup().await;
    record(
        &w,
        "batch-0005",
        &[report(&ids[0], None, today, valid(3, 3))],
    )
    .await;
    let path = format!("/v1/workspaces/{WS}/keys/{}/usage", ids[0]);
    // Another workspace's caller sees no key and no usage.
    let other = w
        .call(
            "GET",
            &path.replace("/acme/", "/other/"),
            &admin("other"),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let theirs = w
        .call("GET", "/v1/workspaces/other/usage", &admin("other"), None)
        .await;
    assert_eq!(theirs.body["data"], json!([]));
    // A caller without api.usage.view.
    let viewer = hs(&claims(WS, &["api.key.view"]));
    assert_eq!(
        w.call("GET", &path, &viewer, None).await.status,
        StatusCode::FORBIDDEN
    );
    for (query, field) in [
        ("granularity=minute", "granularity"),
        ("from=2027-02-30", "from"),
        ("to=soon", "to"),
        ("from=2027-02-01&to=2027-01-01", "from"),
        ("granularity=hour&from=2026-01-01&to=2026-03-01", "from"),
        ("colour=blue", "colour"),
    ] {
        let r = w
            .call("GET", &format!("{path}?{query}"), &admin(WS), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.text);
    }
    let group = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/usage?group_by=plan"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(group.body["errors"][0]["field"], "group_by");
}

fn ts(t: i64) -> String {
    keyward_common::Timestamp(t).to_rfc3339()
}
