//! Adoption and safe retries through the handlers (in-memory store): import, `Idempotency-Key`,
//! keys born disabled, erasure.

mod support;

use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use support::*;

const WS: &str = "acme";
const KEYS: &str = "/v1/workspaces/acme/keys";

async fn create_idem(w: &World, token: &str, key: &str, body: Value) -> Resp {
    w.call_with(
        "POST",
        KEYS,
        Some(token),
        Some(body),
        &[("idempotency-key", key)],
    )
    .await
}

#[tokio::test]
async fn an_applied_create_whose_answer_cannot_be_kept_still_answers_it() {
    let w = world();
    let a = admin(WS);
    let body = json!({"name": "ci"});
    // The first attempt to keep the answer fails, the second succeeds: a retry replays it.
    w.store.fail_next_idem_completes(1);
    let first = create_idem(&w, &a, "keep-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = create_idem(&w, &a, "keep-1", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body["key"], first.body["key"], "the kept answer");
    assert_eq!(again.headers["idempotent-replayed"], "true");

    // Both attempts fail: the key was created, so the caller gets it, not a 500 that invites a
    // retry.
    w.store.fail_next_idem_completes(2);
    let lost = create_idem(&w, &a, "keep-2", body).await;
    assert_eq!(lost.status, StatusCode::CREATED, "{}", lost.text);
    assert!(
        lost.body["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("kw_"))
    );
    let listed = w.call("GET", KEYS, &a, None).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        2,
        "two keys, each once"
    );
}

#[tokio::test]
async fn a_retried_create_gets_the_first_answer_and_another_body_a_422() {
    let w = world();
    let a = admin(WS);
    let body = json!({"name": "ci", "scopes": ["read"]});
    let first = create_idem(&w, &a, "retry-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    for _ in 0..2 {
        let again = create_idem(&w, &a, "retry-1", body.clone()).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body["id"], first.body["id"]);
        assert_eq!(again.body["key"], first.body["key"], "the same secret");
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(again.headers["etag"], first.headers["etag"]);
    }
    let listed = w.call("GET", KEYS, &a, None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1, "one key");

    let other = create_idem(&w, &a, "retry-1", json!({"name": "other"})).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&other), "idempotency_key_reused");

    // Another caller with the same key is another slot: never someone else's secret.
    let mut bob_claims = claims(WS, &["api.*"]);
    bob_claims["sub"] = json!("bob");
    let bob = create_idem(&w, &hs(&bob_claims), "retry-1", body.clone()).await;
    assert_eq!(bob.status, StatusCode::CREATED, "{}", bob.text);
    assert_ne!(bob.body["key"], first.body["key"]);

    let long = "k".repeat(256);
    let r = create_idem(&w, &a, &long, body.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(
        create_idem(&w, &a, &"k".repeat(255), body).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_failed_request_keeps_nothing_and_can_be_retried() {
    let w = world();
    let a = admin(WS);
    let bad = create_idem(&w, &a, "fix-me", json!({"name": ""})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let fixed = create_idem(&w, &a, "fix-me", json!({"name": "fixed"})).await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.text);
    // Rotation too: the same retry answers the same new secret.
    let path = format!("{KEYS}/{}/rotate", id(&fixed));
    let r1 = w
        .call_with(
            "POST",
            &path,
            Some(&a),
            None,
            &[("idempotency-key", "rot-1")],
        )
        .await;
    let r2 = w
        .call_with(
            "POST",
            &path,
            Some(&a),
            None,
            &[("idempotency-key", "rot-1")],
        )
        .await;
    assert_eq!(r1.status, StatusCode::OK);
    assert_eq!(r1.body["key"], r2.body["key"]);
    assert_eq!(r1.body["version"], 2, "rotated once");
    let got = w
        .call("GET", &format!("{KEYS}/{}", id(&fixed)), &a, None)
        .await;
    assert_eq!(got.body["version"], 2);
}

#[tokio::test]
async fn a_key_can_be_created_disabled() {
    let w = world();
    let k = w
        .create(WS, json!({"name": "off", "status": "disabled"}))
        .await;
    assert_eq!(k.body["status"], "disabled");
    let r = w
        .call(
            "POST",
            KEYS,
            &admin(WS),
            Some(json!({"name": "x", "status": "revoked"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["field"], "status");
}

#[tokio::test]
async fn import_reports_each_item_and_never_duplicates_a_key() {
    let w = world();
    let a = admin(WS);
    let existing = w.create(WS, json!({"name": "issued"})).await;
    let issued = existing.body["key"].as_str().unwrap();
    let body = json!({"keys": [
        {"key": "legacy_0123456789abcdefghij", "name": "a", "meta": {"plan": "pro"}},
        {"hash": "ab".repeat(32), "name": "b", "status": "disabled"},
        {"key": "legacy_0123456789abcdefghij", "name": "dup in call"},
        {"key": issued, "name": "already a key"},
        {"key": "legacy_zzzzzzzzzzzzzzzzzzzz", "name": "", "scopes": ["api.*"]},
        {"key": "legacy_yyyyyyyyyyyyyyyyyyyy", "name": "power", "scopes": ["api.key.create"]},
    ]});
    let creator = hs(&claims(WS, &["api.key.create", "api.key.view"]));
    let r = w
        .call(
            "POST",
            &format!("{KEYS}/import"),
            &creator,
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["created"].as_u64(), r.body["refused"].as_u64()),
        (Some(3), Some(3))
    );
    let results = r.body["results"].as_array().unwrap();
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("created"))
        .collect();
    assert_eq!(
        codes,
        [
            "created",
            "created",
            "duplicate_key",
            "duplicate_key",
            "validation_failed",
            "created"
        ]
    );
    assert_eq!(results[4]["error"]["errors"][0]["field"], "name");
    let first = w
        .call(
            "GET",
            &format!("{KEYS}/{}", results[0]["id"].as_str().unwrap()),
            &a,
            None,
        )
        .await;
    assert_eq!(first.body["imported"], true);
    assert_eq!(first.body["key_prefix"], "legacy…");
    assert!(
        first.body.get("key").is_none(),
        "no secret is ever shown for an import"
    );
    // Importing the same file again reports every key as a duplicate.
    let again = w
        .call("POST", &format!("{KEYS}/import"), &a, Some(body))
        .await;
    assert_eq!(again.body["created"], 0);
    // One audit event per call and one per key.
    let audit = w
        .call("GET", "/v1/workspaces/acme/audit?limit=100", &a, None)
        .await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "keys.import").count(), 2);
    assert_eq!(actions.iter().filter(|a| **a == "key.import").count(), 3);
    // A management permission the importer lacks is refused per item.
    let power = w
        .call(
            "POST",
            &format!("{KEYS}/import"),
            &creator,
            Some(json!({"keys": [{"key": "legacy_xxxxxxxxxxxxxxxxxxxx", "name": "p", "scopes": ["api.key.delete"]}]})),
        )
        .await;
    assert_eq!(
        power.body["results"][0]["error"]["code"],
        "permission_escalation"
    );
    // The list itself must be 1 to 1000 objects.
    let none = w
        .call(
            "POST",
            &format!("{KEYS}/import"),
            &a,
            Some(json!({"keys": []})),
        )
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_imported_key_gets_keywards_format_when_rotated() {
    let w = world();
    let a = admin(WS);
    let r = w
        .call(
            "POST",
            &format!("{KEYS}/import"),
            &a,
            Some(json!({"keys": [{"hash": "cd".repeat(32), "name": "legacy"}]})),
        )
        .await;
    let id = r.body["results"][0]["id"].as_str().unwrap().to_owned();
    let rotated = w
        .call("POST", &format!("{KEYS}/{id}/rotate"), &a, None)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert!(rotated.body["key"].as_str().unwrap().starts_with("kw_"));
    assert!(rotated.body.get("imported").is_none());
}

#[tokio::test]
async fn erasure_removes_personal_data_from_every_read() {
    let w = world();
    let a = admin(WS);
    let k = w
        .create(
            WS,
            json!({"name": "Jane Doe's laptop", "owner_id": "jane@example.com",
                   "meta": {"email": "jane@example.com"}, "allowed_ips": ["192.0.2.7"]}),
        )
        .await;
    let path = format!("{KEYS}/{}", id(&k));
    let bad = w
        .call("DELETE", &format!("{path}?erase=yes"), &a, None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Revoked first, erased later: a privacy request can come after revocation.
    w.call("DELETE", &path, &a, None).await;
    let erased = w
        .call("DELETE", &format!("{path}?erase=true"), &a, None)
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    assert_eq!(erased.body["status"], "revoked");
    let again = w
        .call("DELETE", &format!("{path}?erase=true"), &a, None)
        .await;
    assert_eq!(
        again.body["version"], erased.body["version"],
        "erasing twice writes once"
    );
    for read in [
        w.call("GET", &path, &a, None).await,
        w.call("GET", KEYS, &a, None).await,
        w.call("GET", "/v1/workspaces/acme/audit?limit=100", &a, None)
            .await,
    ] {
        for secret in ["Jane", "jane@example.com", "192.0.2.7"] {
            assert!(!read.text.contains(secret), "{secret} in {}", read.text);
        }
    }
    let audit = w.call("GET", "/v1/workspaces/acme/audit", &a, None).await;
    assert!(audit.text.contains("\"key.erased\""), "{}", audit.text);
    let owners = w
        .call(
            "GET",
            &format!("{KEYS}?owner_id=jane@example.com"),
            &a,
            None,
        )
        .await;
    assert_eq!(owners.body["data"], json!([]));
}
