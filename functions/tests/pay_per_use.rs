//! Pay-per-use on the control plane, through the handlers on the in-memory store: several named
//! limits and credits on keys, credit operations, owners with shared limits and credits, and the
//! balances the edge reports.

mod support;

use keyward_common::KeyId;
use keyward_common::credits::CreditTarget;
use keyward_common::sync::BalanceReport;
use lambda_http::Body;
use lambda_http::http::{self, StatusCode};
use serde_json::{Value, json};

use support::*;

const WS: &str = "acme";

fn keys() -> String {
    format!("/v1/workspaces/{WS}/keys")
}

fn owner(id: &str) -> String {
    format!("/v1/workspaces/{WS}/owners/{id}")
}

async fn patch(w: &World, key: &str, body: Value) -> Resp {
    w.call(
        "PATCH",
        &format!("{}/{key}", keys()),
        &admin(WS),
        Some(body),
    )
    .await
}

async fn credit(w: &World, path: &str, op: &str, value: Value) -> Resp {
    w.call(
        "POST",
        &format!("{path}/credits"),
        &admin(WS),
        Some(json!({"op": op, "value": value})),
    )
    .await
}

fn field(r: &Resp) -> &str {
    r.body["errors"][0]["field"].as_str().unwrap_or("")
}

#[tokio::test]
async fn keys_take_several_named_limits_and_the_shorthand_is_the_default_one() {
    let w = world();
    let k = w
        .create(
            WS,
            json!({"name": "k", "rate_limit": {"limit": 10, "period_s": 1},
                   "rate_limits": [{"name": "month", "limit": 100, "period_s": 2_678_400}]}),
        )
        .await;
    assert_eq!(
        k.body["rate_limits"],
        json!([{"name": "default", "limit": 10, "period_s": 1},
               {"name": "month", "limit": 100, "period_s": 2_678_400}])
    );
    assert_eq!(k.body["rate_limit"], json!({"limit": 10, "period_s": 1}));
    let key = id(&k);

    // The shorthand replaces only `default`; null removes it; the others stay.
    let r = patch(
        &w,
        &key,
        json!({"rate_limit": {"limit": 3, "period_s": 60}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["rate_limits"][0]["limit"], 3);
    assert_eq!(r.body["rate_limits"][1]["name"], "month");
    let r = patch(&w, &key, json!({"rate_limit": null})).await;
    assert_eq!(r.body["rate_limit"], Value::Null);
    assert_eq!(r.body["rate_limits"].as_array().unwrap().len(), 1);
    // Absent keeps, a list replaces, null clears.
    let r = patch(&w, &key, json!({"name": "renamed"})).await;
    assert_eq!(r.body["rate_limits"].as_array().unwrap().len(), 1);
    let r = patch(
        &w,
        &key,
        json!({"rate_limits": [{"name": "second", "limit": 2, "period_s": 1}]}),
    )
    .await;
    assert_eq!(
        r.body["rate_limits"],
        json!([{"name": "second", "limit": 2, "period_s": 1}])
    );
    let r = patch(&w, &key, json!({"rate_limits": null})).await;
    assert_eq!(r.body["rate_limits"], json!([]));

    // A rotation copies them.
    patch(
        &w,
        &key,
        json!({"rate_limits": [{"name": "a", "limit": 1, "period_s": 9}]}),
    )
    .await;
    let rotated = w
        .call(
            "POST",
            &format!("{}/{key}/rotate", keys()),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(rotated.body["rate_limits"][0]["name"], "a");
}

#[tokio::test]
async fn bad_limits_are_400s_naming_the_field() {
    let w = world();
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("l{i}"), "limit": 1, "period_s": 1}))
        .collect();
    for (body, want) in [
        (json!({"rate_limits": six}), "rate_limits"),
        (
            json!({"rate_limits": [{"name": "a", "limit": 1, "period_s": 2_678_401}]}),
            "rate_limits[0].period_s",
        ),
        (
            json!({"rate_limits": [{"name": "a", "limit": 1, "period_s": 1},
                                   {"name": "a", "limit": 1, "period_s": 2}]}),
            "rate_limits[1].name",
        ),
        (
            json!({"rate_limit": {"limit": 1, "period_s": 5},
                   "rate_limits": [{"name": "default", "limit": 2, "period_s": 5}]}),
            "rate_limit",
        ),
        (json!({"credits": {"remaining": -1}}), "credits.remaining"),
        (json!({"credits": {"remaining": 1.5}}), "credits.remaining"),
        (
            json!({"credits": {"remaining": 1, "refill": {"amount": 5, "interval": "monthly", "day": 32}}}),
            "credits.refill.day",
        ),
        (
            json!({"credits": {"remaining": 1, "refill": {"amount": 5, "interval": "monthly", "day": 0}}}),
            "credits.refill.day",
        ),
    ] {
        let mut body = body.clone();
        body["name"] = json!("k");
        let r = w
            .call("POST", &keys(), &admin(WS), Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(field(&r), want, "{body}");
    }
    // A PATCH that would take a key over 5 limits through the shorthand.
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("l{i}"), "limit": 1, "period_s": 1}))
        .collect();
    let k = w
        .create(WS, json!({"name": "k", "rate_limits": five}))
        .await;
    let r = patch(
        &w,
        &id(&k),
        json!({"rate_limit": {"limit": 1, "period_s": 1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(field(&r), "rate_limit");
}

#[tokio::test]
async fn key_credits_are_set_changed_by_operations_and_audited() {
    let w = world();
    let k = w
        .create(
            WS,
            json!({"name": "k", "credits": {"remaining": 50,
                   "refill": {"amount": 50, "interval": "monthly", "day": 31}}}),
        )
        .await;
    assert_eq!(k.body["credits"]["remaining"], 50);
    assert_eq!(k.body["credits"]["refill"]["day"], 31);
    let key = id(&k);
    let path = format!("{}/{key}", keys());

    let r = credit(&w, &path, "decrement", json!(20)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"remaining": 30}));
    assert_eq!(
        credit(&w, &path, "increment", json!(5)).await.body["remaining"],
        35
    );
    assert_eq!(
        credit(&w, &path, "decrement", json!(100)).await.body["remaining"],
        0
    );
    assert_eq!(
        credit(&w, &path, "set", json!(7)).await.body["remaining"],
        7
    );
    let got = w.call("GET", &path, &admin(WS), None).await;
    assert_eq!(got.body["credits"]["remaining"], 7);
    assert_eq!(
        got.body["credits"]["refill"]["amount"], 50,
        "operations keep the rule"
    );

    // The store recorded one operation per change, in order.
    let stored = w
        .app
        .store
        .get(WS, &KeyId::parse(&key).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.credit.seq, 5, "create + 4 operations");
    let op = stored.credit.op.unwrap();
    assert_eq!((op.seq, op.value), (5, 7));

    let audit = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/audit"),
            &admin(WS),
            None,
        )
        .await;
    let credit_events = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "key.credits" && e["key_id"] == key.as_str())
        .count();
    assert_eq!(credit_events, 4);

    // Bad operations name the field.
    for (op, value, want) in [
        ("add", json!(1), "op"),
        ("set", json!(-1), "value"),
        ("set", json!(1.5), "value"),
        ("set", json!(1_000_000_000_001u64), "value"),
    ] {
        let r = credit(&w, &path, op, value).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(field(&r), want);
    }
    // Not JSON: 415.
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{path}/credits"))
        .header("authorization", format!("Bearer {}", admin(WS)))
        .header("content-type", "text/plain")
        .body(Body::Text(r#"{"op":"set","value":1}"#.into()))
        .unwrap();
    assert_eq!(
        w.send("update-key", req).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    // PATCH: a different remaining sets, the same with a new rule only configures, null removes.
    let r = patch(
        &w,
        &key,
        json!({"credits": {"remaining": 7, "refill": null}}),
    )
    .await;
    assert_eq!(r.body["credits"], json!({"remaining": 7}));
    let stored = w
        .app
        .store
        .get(WS, &KeyId::parse(&key).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.credit.op.unwrap().op,
        keyward_common::credits::CreditOpKind::Configure
    );
    let r = patch(&w, &key, json!({"credits": null})).await;
    assert_eq!(r.body["credits"], Value::Null);
    let stored = w
        .app
        .store
        .get(WS, &KeyId::parse(&key).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.credit.op.unwrap().op,
        keyward_common::credits::CreditOpKind::Remove
    );
    assert_eq!(stored.credit.seq, 7);
}

#[tokio::test]
async fn a_credit_operation_needs_credits_a_live_key_and_the_callers_workspace() {
    let w = world();
    let k = w.create(WS, json!({"name": "k"})).await;
    let path = format!("{}/{}", keys(), id(&k));
    let r = credit(&w, &path, "increment", json!(1)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(field(&r), "op");
    // `set` gives credits to a key that had none.
    assert_eq!(
        credit(&w, &path, "set", json!(3)).await.body["remaining"],
        3
    );

    let other = w
        .call(
            "POST",
            &format!("/v1/workspaces/other/keys/{}/credits", id(&k)),
            &admin("other"),
            Some(json!({"op": "set", "value": 1})),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let viewer = hs(&claims(WS, &["api.key.view"]));
    let r = w
        .call(
            "POST",
            &format!("{path}/credits"),
            &viewer,
            Some(json!({"op": "set", "value": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    w.call("DELETE", &path, &admin(WS), None).await;
    let r = credit(&w, &path, "set", json!(1)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(code(&r), "key_revoked");
}

#[tokio::test]
async fn owners_are_put_read_listed_and_count_their_live_keys() {
    let w = world();
    let body = json!({"status": "active", "meta": {"plan": "pro"},
        "rate_limits": [{"name": "minute", "limit": 3, "period_s": 60}],
        "credits": {"remaining": 100, "refill": {"amount": 100, "interval": "daily"}}});
    let r = w
        .call("PUT", &owner("cus_1"), &admin(WS), Some(body.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(r.body["owner_id"], "cus_1");
    assert_eq!(r.body["credits"]["remaining"], 100);
    assert_eq!(r.body["key_count"], 0);
    // The same settings again change nothing; new ones replace them all.
    let r = w.call("PUT", &owner("cus_1"), &admin(WS), Some(body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 1);
    let r = w
        .call(
            "PUT",
            &owner("cus_1"),
            &admin(WS),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["status"], "disabled");
    assert_eq!(r.body["rate_limits"], json!([]));
    assert_eq!(r.body["credits"], Value::Null);
    assert_eq!(r.body["meta"], Value::Null);
    // If-Match.
    let r = w
        .call_with(
            "PUT",
            &owner("cus_1"),
            Some(&admin(WS)),
            Some(json!({})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = w
        .call_with(
            "PUT",
            &owner("cus_new"),
            Some(&admin(WS)),
            Some(json!({})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = w
        .call_with(
            "PUT",
            &owner("cus_1"),
            Some(&admin(WS)),
            Some(json!({})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 3);

    // key_count: keys naming it that are not revoked.
    let a = w
        .create(WS, json!({"name": "a", "owner_id": "cus_1"}))
        .await;
    w.create(WS, json!({"name": "b", "owner_id": "cus_1"}))
        .await;
    w.create(WS, json!({"name": "c", "owner_id": "cus_2"}))
        .await;
    w.call(
        "DELETE",
        &format!("{}/{}", keys(), id(&a)),
        &admin(WS),
        None,
    )
    .await;
    let got = w.call("GET", &owner("cus_1"), &admin(WS), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["key_count"], 1);
    assert_eq!(got.headers["etag"], "\"3\"");

    // An id with a slash and a space, percent-encoded in the path.
    let r = w
        .call("PUT", &owner("team%2F7%20b"), &admin(WS), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["owner_id"], "team/7 b");

    // The list, by id, paged.
    w.call("PUT", &owner("cus_3"), &admin(WS), Some(json!({})))
        .await;
    let page = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/owners?limit=2"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let ids: Vec<&str> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["cus_1", "cus_3"]);
    assert_eq!(page.body["data"][0]["key_count"], 1);
    assert_eq!(page.body["has_more"], true);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/owners?limit=2&cursor={cursor}"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(next.body["data"][0]["owner_id"], "team/7 b");
    assert_eq!(next.body["has_more"], false);
    let bad = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/owners?limit=101"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Audited with the owner as target.
    let audit = w
        .call(
            "GET",
            &format!("/v1/workspaces/{WS}/audit?limit=100"),
            &admin(WS),
            None,
        )
        .await;
    let owner_events: Vec<&Value> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["owner_id"] == "cus_1")
        .collect();
    let mut actions: Vec<&str> = owner_events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(actions, ["owner.create", "owner.update", "owner.update"]);
}

#[tokio::test]
async fn owner_input_ids_credits_and_workspaces_are_checked() {
    let w = world();
    for (path, body, want) in [
        (owner("cus_1"), json!({"status": "gone"}), "status"),
        (
            owner("cus_1"),
            json!({"credits": {"remaining": -5}}),
            "credits.remaining",
        ),
        (
            owner("cus_1"),
            json!({"credits": {"remaining": 5, "refill": {"amount": 1, "interval": "daily", "day": 2}}}),
            "credits.refill.day",
        ),
        (
            owner("cus_1"),
            json!({"rate_limits": [{"name": "m", "limit": 1, "period_s": 9_999_999}]}),
            "rate_limits[0].period_s",
        ),
        (owner("cus_1"), json!({"other": 1}), "other"),
        (owner("bad%0Aid"), json!({}), "owner_id"),
        (owner(&"x".repeat(129)), json!({}), "owner_id"),
    ] {
        let r = w.call("PUT", &path, &admin(WS), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(field(&r), want, "{body}");
    }
    assert_eq!(
        w.call("GET", &owner("nobody"), &admin(WS), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        credit(&w, &owner("nobody"), "set", json!(1)).await.status,
        StatusCode::NOT_FOUND
    );

    w.call(
        "PUT",
        &owner("cus_1"),
        &admin(WS),
        Some(json!({"credits": {"remaining": 10}})),
    )
    .await;
    let r = credit(&w, &owner("cus_1"), "decrement", json!(4)).await;
    assert_eq!(r.body, json!({"remaining": 6}));
    let got = w.call("GET", &owner("cus_1"), &admin(WS), None).await;
    assert_eq!(got.body["credits"]["remaining"], 6);
    assert_eq!(got.body["version"], 2);

    // Another workspace's caller sees nothing; a key manager without owner rights is refused.
    let other = w
        .call(
            "GET",
            "/v1/workspaces/other/owners/cus_1",
            &admin("other"),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let keys_only = hs(&claims(WS, &["api.key.*"]));
    assert_eq!(
        w.call("GET", &owner("cus_1"), &keys_only, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let viewer = hs(&claims(WS, &["api.owner.view"]));
    assert_eq!(
        w.call("GET", &owner("cus_1"), &viewer, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.call("PUT", &owner("cus_1"), &viewer, Some(json!({})))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_balance_report_counts_only_for_the_latest_operation_and_only_forward() {
    let w = world();
    let k = w
        .create(WS, json!({"name": "k", "credits": {"remaining": 50}}))
        .await;
    let key_id = KeyId::parse(&id(&k)).unwrap();
    let target = CreditTarget::Key {
        workspace: WS.into(),
        key_id: key_id.clone(),
    };
    let report = |remaining, seq, at_ms| BalanceReport {
        target: target.clone(),
        remaining,
        seq,
        at_ms,
    };
    let store = &w.app.store;
    assert!(store.apply_balance(&report(40, 1, 1_000)).await.unwrap());
    assert!(
        !store.apply_balance(&report(45, 1, 900)).await.unwrap(),
        "older"
    );
    assert!(
        !store.apply_balance(&report(45, 1, 1_000)).await.unwrap(),
        "same time"
    );
    assert!(
        !store.apply_balance(&report(45, 0, 2_000)).await.unwrap(),
        "an older operation"
    );
    let shown = w
        .call("GET", &format!("{}/{}", keys(), id(&k)), &admin(WS), None)
        .await;
    assert_eq!(shown.body["credits"]["remaining"], 40);
    // An operation answers from the reported balance; reports about earlier ones no longer count.
    let r = credit(
        &w,
        &format!("{}/{}", keys(), id(&k)),
        "increment",
        json!(10),
    )
    .await;
    assert_eq!(r.body["remaining"], 50);
    assert!(!store.apply_balance(&report(39, 1, 3_000)).await.unwrap());
    assert!(store.apply_balance(&report(48, 2, 3_000)).await.unwrap());
    // A PATCH of something else keeps the reported balance.
    patch(&w, &id(&k), json!({"name": "renamed"})).await;
    let shown = w
        .call("GET", &format!("{}/{}", keys(), id(&k)), &admin(WS), None)
        .await;
    assert_eq!(shown.body["credits"]["remaining"], 48);
    // Targets without credits, or unknown, take nothing.
    let plain = w.create(WS, json!({"name": "plain"})).await;
    let none = BalanceReport {
        target: CreditTarget::Key {
            workspace: WS.into(),
            key_id: KeyId::parse(&id(&plain)).unwrap(),
        },
        remaining: 1,
        seq: 0,
        at_ms: 5,
    };
    assert!(!store.apply_balance(&none).await.unwrap());
    let owner_report = BalanceReport {
        target: CreditTarget::Owner {
            workspace: WS.into(),
            owner_id: "cus_9".into(),
        },
        remaining: 1,
        seq: 1,
        at_ms: 5,
    };
    assert!(!store.apply_balance(&owner_report).await.unwrap());
    w.call(
        "PUT",
        &owner("cus_9"),
        &admin(WS),
        Some(json!({"credits": {"remaining": 9}})),
    )
    .await;
    assert!(store.apply_balance(&owner_report).await.unwrap());
    let got = w.call("GET", &owner("cus_9"), &admin(WS), None).await;
    assert_eq!(got.body["credits"]["remaining"], 1);
}

#[tokio::test]
async fn a_retried_credit_operation_with_an_idempotency_key_is_applied_once() {
    let w = world();
    let k = w
        .create(WS, json!({"name": "k", "credits": {"remaining": 10}}))
        .await;
    let path = format!("{}/{}/credits", keys(), id(&k));
    let send = |body: Value, key: &'static str| {
        let w = &w;
        let path = path.clone();
        async move {
            w.call_with(
                "POST",
                &path,
                Some(&admin(WS)),
                Some(body),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let inc = json!({"op": "increment", "value": 5});
    let first = send(inc.clone(), "grant-1").await;
    assert_eq!(first.body["remaining"], 15);
    let again = send(inc.clone(), "grant-1").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["remaining"], 15, "not applied twice");
    assert!(again.headers.contains_key("idempotent-replayed"));
    let other = send(json!({"op": "increment", "value": 6}), "grant-1").await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&other), "idempotency_key_reused");
    assert_eq!(send(inc, "grant-2").await.body["remaining"], 20);

    // A refused operation keeps nothing: the same key may be used again once it can succeed.
    w.call("PUT", &owner("cus_1"), &admin(WS), Some(json!({})))
        .await;
    let owner_path = format!("{}/credits", owner("cus_1"));
    let dec = json!({"op": "decrement", "value": 1});
    let refused = w
        .call_with(
            "POST",
            &owner_path,
            Some(&admin(WS)),
            Some(dec.clone()),
            &[("idempotency-key", "o-1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    w.call(
        "PUT",
        &owner("cus_1"),
        &admin(WS),
        Some(json!({"credits": {"remaining": 3}})),
    )
    .await;
    let ok = w
        .call_with(
            "POST",
            &owner_path,
            Some(&admin(WS)),
            Some(dec.clone()),
            &[("idempotency-key", "o-1")],
        )
        .await;
    assert_eq!(ok.body["remaining"], 2);
    let replay = w
        .call_with(
            "POST",
            &owner_path,
            Some(&admin(WS)),
            Some(dec),
            &[("idempotency-key", "o-1")],
        )
        .await;
    assert_eq!(replay.body["remaining"], 2);
}
