//! The edge under the real `wrangler dev`: proxy, verify API, signed sync and exact rate limits.
//!
//! Run: `eval "$(cargo xtask env)" && cargo test -p keyward-tests --test edge` (needs
//! `cargo xtask bootstrap`; the test-hooks bundle is built on first use). One wrangler serves the
//! whole file; every test uses its own freshly generated keys, so tests stay independent.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use keyward_common::credits::{CreditOp, CreditOpKind, CreditTarget, Interval, Refill};
use keyward_common::json::JsonObject;
use keyward_common::origin::{Identity, verify_request};
use keyward_common::record::{EDGE_SCHEMA, NamedRateLimit, OwnerEntry, OwnerStatus};
use keyward_common::sync::{
    OwnerSyncItem, RoleSyncItem, SIGNATURE_HEADER, SyncBatch, SyncItem, SyncOutcome,
    TIMESTAMP_HEADER, UsageBatch, verify_signature,
};
use keyward_common::{EdgeEntry, KeyHash, KeyId, KeyStatus, RateLimit, RoleEntry, SecretKey};
use keyward_tests::edge::{EdgeBundle, EdgeOptions, EdgeServer, SendToEdge, unix_now};
use keyward_tests::origin::EchoOrigin;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "edge-test-sync-secret";
const USAGE_SECRET: &str = "edge-test-usage-secret";
const ORIGIN_SECRET: &str = "edge-test-origin-secret";

struct World {
    edge: EdgeServer,
    origin: EchoOrigin,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let origin = EchoOrigin::start().expect("echo origin starts");
        let edge = EdgeServer::start(EdgeOptions {
            bundle: EdgeBundle::TestHooks,
            origin_url: origin.url(),
            route_scopes:
                "GET /v1/admin/** => admin; * /v1/items/** => items.read; * /admin/** => admin"
                    .into(),
            sync_secret: SECRET.into(),
            usage_secret: USAGE_SECRET.into(),
            origin_secret: ORIGIN_SECRET.into(),
            // The echo origin doubles as the usage endpoint; it remembers what it got.
            usage_url: format!("{}/_usage", origin.url()),
            vars: vec![("USAGE_FLUSH_S".into(), "1".into())],
            ..EdgeOptions::default()
        })
        .expect("wrangler dev starts the edge");
        World { edge, origin }
    })
}

fn edge() -> &'static EdgeServer {
    &world().edge
}

fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf
}

fn new_key() -> SecretKey {
    SecretKey::generate("kw", |b| getrandom::fill(b).expect("OS random source")).unwrap()
}

/// An active entry with scope `items.read`, owner `user_1`, no limits, at `version`.
fn entry(version: u64) -> EdgeEntry {
    EdgeEntry {
        schema: EDGE_SCHEMA,
        version,
        key_id: KeyId::new(u64::try_from(unix_now()).unwrap() * 1000, random()),
        workspace: "acme".into(),
        owner_id: Some("user_1".into()),
        prefix: "kw".into(),
        scopes: vec!["items.read".into()],
        roles: Vec::new(),
        name: Some("test key".into()),
        meta: None,
        status: KeyStatus::Active,
        expires_at: None,
        retires_at: None,
        allowed_ips: Vec::new(),
        rate_limit: None,
        rate_limits: Vec::new(),
        credited: false,
    }
}

async fn put(key: &SecretKey, entry: &EdgeEntry) -> SyncOutcome {
    put_hash(key.hash(), entry).await
}

async fn put_hash(hash: KeyHash, entry: &EdgeEntry) -> SyncOutcome {
    let batch = SyncBatch {
        items: vec![SyncItem {
            hash,
            entry: entry.clone(),
        }],
        ..SyncBatch::default()
    };
    edge().sync(&batch).await.expect("sync succeeds").outcomes[0]
}

/// A new key stored with `entry`.
async fn stored(entry: &EdgeEntry) -> SecretKey {
    let key = new_key();
    assert_eq!(put(&key, entry).await, SyncOutcome::Applied);
    key
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_with_key(path: &str, key: &str) -> Response {
    client()
        .get(format!("{}{path}", edge().url()))
        .bearer_auth(key)
        .send_to_edge()
        .await
        .unwrap()
}

async fn verify(body: Value) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&body)
        .send_to_edge()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Problem+json with `code`, `status` and the headers that go with it.
async fn assert_refused(resp: Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let www = header(&resp, "www-authenticate");
    if status == 401 {
        assert_eq!(
            www.as_deref(),
            Some(r#"Bearer realm="keyward", error="invalid_token""#)
        );
    } else {
        assert_eq!(www, None);
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status);
}

/// Waits, if needed, so that a 60 s fixed window has at least 15 s left.
async fn fresh_minute() {
    let into = unix_now().rem_euclid(60);
    if into > 45 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - into).unwrap())).await;
    }
}

#[tokio::test]
async fn a_valid_key_is_proxied_with_identity_headers_and_without_the_key() {
    let key = stored(&entry(1)).await;
    let resp = client()
        .get(format!("{}/v1/items/42?color=red&n=1", edge().url()))
        .bearer_auth(key.expose())
        .header("x-custom", "kept")
        .header("x-keyward-owner", "forged")
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "x-ratelimit-limit"),
        None,
        "no limit, no headers"
    );
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/v1/items/42");
    assert_eq!(echo["query"], "color=red&n=1");
    let h = &echo["headers"];
    assert_eq!(h["x-keyward-workspace"], "acme");
    assert_eq!(h["x-keyward-owner"], "user_1");
    assert_eq!(h["x-keyward-scopes"], "items.read");
    assert!(h["x-keyward-key-id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(h["x-custom"], "kept");
    assert!(h.get("authorization").is_none(), "{h}");
    assert!(
        !echo.to_string().contains(key.expose()),
        "the key never reaches the origin"
    );
}

#[tokio::test]
async fn a_key_in_x_api_key_is_stripped_and_other_authorization_is_kept() {
    let key = stored(&entry(1)).await;
    let resp = client()
        .post(format!("{}/v1/items", edge().url()))
        .header("x-api-key", key.expose())
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body("hello origin")
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "hello origin");
    assert_eq!(echo["headers"]["authorization"], "Basic dXNlcjpwYXNz");
    assert!(echo["headers"].get("x-api-key").is_none());
    // The key's owner is not set here, and no caller can forge one.
    let mut no_owner = entry(1);
    no_owner.owner_id = None;
    let key = stored(&no_owner).await;
    let resp = client()
        .get(format!("{}/v1/items/1", edge().url()))
        .header("x-api-key", key.expose())
        .header("x-keyward-owner", "forged")
        .send_to_edge()
        .await
        .unwrap();
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-keyward-owner"], "",
        "set, and empty: {echo}"
    );
}

/// A stored entry (or none), the proxied path, a `CF-Connecting-IP`, extra verify-API fields,
/// and the expected code and status.
type Case = (
    Option<EdgeEntry>,
    &'static str,
    Option<&'static str>,
    Value,
    &'static str,
    u16,
);

#[tokio::test]
async fn each_failure_code_is_produced_by_the_proxy_and_the_verify_api() {
    let now = unix_now();
    let mut revoked = entry(2);
    revoked.status = KeyStatus::Revoked;
    let mut disabled = entry(2);
    disabled.status = KeyStatus::Disabled;
    let mut expired = entry(2);
    expired.expires_at = Some(now - 10);
    let mut ip_bound = entry(2);
    ip_bound.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];

    let cases: Vec<Case> = vec![
        (None, "/v1/items/1", None, json!({}), "NOT_FOUND", 401),
        (
            Some(revoked),
            "/v1/items/1",
            None,
            json!({}),
            "REVOKED",
            401,
        ),
        (
            Some(disabled),
            "/v1/items/1",
            None,
            json!({}),
            "DISABLED",
            401,
        ),
        (
            Some(expired),
            "/v1/items/1",
            None,
            json!({}),
            "EXPIRED",
            401,
        ),
        (
            Some(entry(2)),
            "/v1/admin/users",
            None,
            json!({"scope": "admin"}),
            "FORBIDDEN_SCOPE",
            403,
        ),
        (
            Some(ip_bound),
            "/v1/items/1",
            Some("192.0.2.1"),
            json!({"ip": "192.0.2.1"}),
            "FORBIDDEN_IP",
            403,
        ),
    ];
    for (entry, path, ip, extra, code, status) in cases {
        let key = match &entry {
            Some(e) => stored(e).await,
            None => new_key(),
        };
        let mut req = client()
            .get(format!("{}{path}", edge().url()))
            .bearer_auth(key.expose());
        if let Some(ip) = ip {
            req = req.header("cf-connecting-ip", ip);
        }
        assert_refused(req.send_to_edge().await.unwrap(), status, code).await;

        let mut body = extra.clone();
        body["key"] = json!(key.expose());
        let (http, verdict) = verify(body).await;
        assert_eq!(http, StatusCode::OK);
        assert_eq!(verdict["valid"], false, "{verdict}");
        assert_eq!(verdict["code"], code, "{verdict}");
        // A found but refused key still says whose it is; a revoked key's tombstone keeps no
        // owner (personal data).
        match &entry {
            Some(e) => {
                assert_eq!(verdict["key_id"], e.key_id.as_str());
                assert_eq!(verdict["workspace"], "acme");
                let owner = if code == "REVOKED" {
                    Value::Null
                } else {
                    json!("user_1")
                };
                assert_eq!(verdict["owner_id"], owner, "{verdict}");
            }
            None => assert_eq!(verdict["key_id"], Value::Null),
        }
    }
}

#[tokio::test]
async fn the_verify_api_reports_a_valid_key_with_its_identity() {
    let mut e = entry(1);
    e.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()];
    e.expires_at = Some(unix_now() + 3600);
    let key = stored(&e).await;
    let (status, v) =
        verify(json!({"key": key.expose(), "scope": "items.read", "ip": "10.1.2.3"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["key_id"], e.key_id.as_str());
    assert_eq!(v["scopes"], json!(["items.read"]));
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(v.get("ratelimit").is_none());
}

#[tokio::test]
async fn malformed_keys_are_refused_at_the_proxy_and_the_verify_api() {
    let key = new_key();
    let mut typo = key.expose().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'A' { 'B' } else { 'A' });

    assert_refused(get_with_key("/v1/items/1", &typo).await, 401, "MALFORMED").await;
    let no_key = client()
        .get(format!("{}/v1/items/1", edge().url()))
        .send_to_edge()
        .await
        .unwrap();
    assert_refused(no_key, 401, "MALFORMED").await;
    let too_long = get_with_key("/v1/items/1", &"x".repeat(500)).await;
    assert_refused(too_long, 401, "MALFORMED").await;
    // Two different keys in the two headers.
    let other = stored(&entry(1)).await;
    let both = client()
        .get(format!("{}/v1/items/1", edge().url()))
        .bearer_auth(other.expose())
        .header("x-api-key", key.expose())
        .send_to_edge()
        .await
        .unwrap();
    assert_refused(both, 401, "MALFORMED").await;

    for body in [json!({"key": typo}), json!({}), json!({"key": 42})] {
        let (status, v) = verify(body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["code"], "MALFORMED");
        assert_eq!(v["valid"], false);
    }
    let not_json = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .body("{not json")
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        header(&not_json, "content-type").as_deref(),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn a_garbage_key_causes_no_kv_read() {
    let key = new_key();
    let mut typo = key.expose().to_owned();
    typo.replace_range(5..6, if &typo[5..6] == "a" { "b" } else { "a" });
    let kv_reads = |r: &Response| header(r, "x-keyward-kv-reads");

    let garbage = get_with_key("/v1/items/1", &typo).await;
    assert_eq!(kv_reads(&garbage).as_deref(), Some("0"));
    let verified = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&json!({"key": typo}))
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(kv_reads(&verified).as_deref(), Some("0"));

    // The counter does count: a well-formed unknown key costs one read, then is cached.
    let unknown = get_with_key("/v1/items/1", key.expose()).await;
    assert_eq!(kv_reads(&unknown).as_deref(), Some("1"));
    let again = get_with_key("/v1/items/1", key.expose()).await;
    assert_eq!(kv_reads(&again).as_deref(), Some("0"), "negative cache");
}

/// A key in another format than Keyward's, as an import keeps it (Stripe-like, 48 characters).
fn foreign_key() -> String {
    format!("sk_live_{}", hex_of(&random::<20>()))
}

#[tokio::test]
async fn an_imported_key_of_another_format_verifies_at_the_verify_api_and_the_proxy() {
    let key = foreign_key();
    // An imported key's entry has no prefix (`EdgeEntry::for_key`).
    let mut imported = entry(1);
    imported.prefix = String::new();
    assert_eq!(
        put_hash(KeyHash::of(&key), &imported).await,
        SyncOutcome::Applied
    );

    let (status, v) = verify(json!({"key": key, "scope": "items.read"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["code"], "VALID", "{v}");
    assert_eq!(v["key_id"], imported.key_id.as_str());

    let bearer = get_with_key("/v1/items/7", &key).await;
    assert_eq!(bearer.status(), StatusCode::OK);
    let echo: Value = bearer.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-keyward-key-id"],
        imported.key_id.as_str()
    );
    assert!(
        !echo.to_string().contains(&key),
        "the key never reaches the origin"
    );
    let api_key = client()
        .get(format!("{}/v1/items/7", edge().url()))
        .header("x-api-key", &key)
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(api_key.status(), StatusCode::OK);

    // A foreign key verifies only against an imported entry: one with Keyward's prefix under
    // its hash is not its entry.
    let other = foreign_key();
    assert_eq!(
        put_hash(KeyHash::of(&other), &entry(1)).await,
        SyncOutcome::Applied
    );
    let (_, v) = verify(json!({"key": other})).await;
    assert_eq!(v["code"], "NOT_FOUND", "{v}");
}

#[tokio::test]
async fn foreign_garbage_costs_one_kv_read_then_none_and_a_keyward_typo_none() {
    let kv_reads = |r: &Response| header(r, "x-keyward-kv-reads");
    let garbage = foreign_key();
    let first = get_with_key("/v1/items/1", &garbage).await;
    assert_eq!(kv_reads(&first).as_deref(), Some("1"));
    assert_refused(first, 401, "NOT_FOUND").await;
    let again = get_with_key("/v1/items/1", &garbage).await;
    assert_eq!(kv_reads(&again).as_deref(), Some("0"), "negative cache");
    let verified = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&json!({"key": garbage}))
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(kv_reads(&verified).as_deref(), Some("0"));
    let v: Value = verified.json().await.unwrap();
    assert_eq!(v["code"], "NOT_FOUND");

    // Keyward's format with a wrong checksum, and one typo away from it: no read, ever.
    let key = new_key();
    let mut bad_checksum = key.expose().to_owned();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let mut deleted = key.expose().to_owned();
    deleted.remove(10);
    for typo in [bad_checksum, deleted, key.expose().replacen('_', "-", 1)] {
        let resp = get_with_key("/v1/items/1", &typo).await;
        assert_eq!(kv_reads(&resp).as_deref(), Some("0"), "{typo}");
        assert_refused(resp, 401, "MALFORMED").await;
        let (_, v) = verify(json!({"key": typo})).await;
        assert_eq!(v["code"], "MALFORMED");
    }
    // Too short, or with a space: no key of any format.
    for text in ["short", "two words and more"] {
        let resp = get_with_key("/v1/items/1", text).await;
        assert_eq!(kv_reads(&resp).as_deref(), Some("0"), "{text}");
    }
}

#[tokio::test]
async fn sync_refuses_a_bad_signature_and_a_stale_timestamp_and_writes_nothing() {
    let key = new_key();
    let body = serde_json::to_vec(&SyncBatch {
        items: vec![SyncItem {
            hash: key.hash(),
            entry: entry(1),
        }],
        ..SyncBatch::default()
    })
    .unwrap();
    let bad_sig = edge()
        .post_sync(&body, unix_now(), b"not-the-secret")
        .await
        .unwrap();
    assert_eq!(bad_sig.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&bad_sig, "content-type").as_deref(),
        Some("application/problem+json")
    );
    let stale = edge()
        .post_sync(&body, unix_now() - 301, SECRET.as_bytes())
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let (_, v) = verify(json!({"key": key.expose()})).await;
    assert_eq!(v["code"], "NOT_FOUND", "nothing was written");
}

#[tokio::test]
async fn sync_refuses_a_lower_version() {
    let key = new_key();
    let mut v2 = entry(2);
    v2.scopes = vec!["items.read".into(), "v2".into()];
    assert_eq!(put(&key, &v2).await, SyncOutcome::Applied);
    let mut v1 = v2.clone();
    v1.version = 1;
    v1.scopes = vec!["v1".into()];
    assert_eq!(put(&key, &v1).await, SyncOutcome::Stale);
    let (_, v) = verify(json!({"key": key.expose()})).await;
    assert_eq!(v["scopes"], json!(["items.read", "v2"]));
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.scopes = vec!["v3".into()];
    assert_eq!(put(&key, &v3).await, SyncOutcome::Applied);
    let (_, v) = verify(json!({"key": key.expose()})).await;
    assert_eq!(
        v["scopes"],
        json!(["v3"]),
        "a newer version replaces the cached one"
    );
}

#[tokio::test]
async fn a_tombstone_survives_a_late_lower_version_upsert() {
    let key = new_key();
    let active = entry(1);
    assert_eq!(put(&key, &active).await, SyncOutcome::Applied);
    assert_eq!(
        get_with_key("/v1/items/1", key.expose()).await.status(),
        StatusCode::OK
    );
    let mut tombstone = active.clone();
    tombstone.version = 3;
    tombstone.status = KeyStatus::Revoked;
    assert_eq!(put(&key, &tombstone).await, SyncOutcome::Applied);
    let mut late = active.clone();
    late.version = 2;
    assert_eq!(put(&key, &late).await, SyncOutcome::Stale);
    let mut later = active.clone();
    later.version = 9;
    assert_eq!(
        put(&key, &later).await,
        SyncOutcome::Stale,
        "revoked is final"
    );
    assert_refused(
        get_with_key("/v1/items/1", key.expose()).await,
        401,
        "REVOKED",
    )
    .await;
}

fn limited() -> EdgeEntry {
    let mut e = entry(1);
    e.rate_limit = Some(RateLimit {
        limit: 5,
        period_s: 60,
    });
    e
}

#[tokio::test]
async fn exactly_five_requests_pass_and_the_sixth_is_limited() {
    fresh_minute().await;
    let e = limited();
    let key = stored(&e).await;
    for remaining in (0..5).rev() {
        let resp = get_with_key("/v1/items/1", key.expose()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "x-ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            header(&resp, "x-ratelimit-remaining"),
            Some(remaining.to_string())
        );
    }
    let resp = get_with_key("/v1/items/1", key.expose()).await;
    let reset: i64 = header(&resp, "x-ratelimit-reset").unwrap().parse().unwrap();
    let retry: i64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert_eq!(header(&resp, "x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(header(&resp, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(reset % 60, 0, "the window is aligned to its period");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_refused(resp, 429, "RATE_LIMITED").await;

    // The verify API counts too, and names the limited key.
    let (status, v) = verify(json!({"key": key.expose()})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["code"], "RATE_LIMITED");
    assert_eq!(v["key_id"], e.key_id.as_str());
    assert_eq!(v["ratelimit"]["remaining"], 0);
    assert_eq!(v["ratelimit"]["limit"], 5);
}

#[tokio::test]
async fn the_limit_holds_across_concurrent_requests() {
    fresh_minute().await;
    let key = stored(&limited()).await;
    let requests = (0..20).map(|_| {
        let key = key.expose().to_owned();
        tokio::spawn(async move { get_with_key("/v1/items/1", &key).await.status() })
    });
    let mut passed = 0;
    let mut limited = 0;
    for r in requests.collect::<Vec<_>>() {
        match r.await.unwrap() {
            StatusCode::OK => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((passed, limited), (5, 15));
}

#[tokio::test]
async fn a_refused_request_does_not_use_up_the_allowance() {
    fresh_minute().await;
    let key = stored(&limited()).await;
    for _ in 0..3 {
        let forbidden = get_with_key("/v1/admin/x", key.expose()).await;
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        // Refused answers for a limited key still carry the window, unchanged.
        assert_eq!(
            header(&forbidden, "x-ratelimit-remaining").as_deref(),
            Some("5")
        );
    }
    let ok = get_with_key("/v1/items/1", key.expose()).await;
    assert_eq!(header(&ok, "x-ratelimit-remaining").as_deref(), Some("4"));
}

#[tokio::test]
async fn internal_routes_are_never_proxied() {
    let key = stored(&entry(1)).await;
    let health = client()
        .get(format!("{}/_keyward/health", edge().url()))
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let unknown = get_with_key("/_keyward/anything", key.expose()).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert!(
        body.get("method").is_none(),
        "the origin never saw it: {body}"
    );
    // A wrong method on a known route: 405 problem+json with Allow, never proxied.
    for (method, path, allow) in [
        (reqwest::Method::GET, "/v1/keys/verify", "POST"),
        (reqwest::Method::GET, "/_keyward/sync", "POST"),
        (reqwest::Method::POST, "/_keyward/health", "GET, HEAD"),
    ] {
        let resp = client()
            .request(method.clone(), format!("{}{path}", edge().url()))
            .bearer_auth(key.expose())
            .send_to_edge()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["code"], "method_not_allowed",
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn usage_is_reported_in_signed_batches() {
    let e = entry(1);
    let key = stored(&e).await;
    for _ in 0..3 {
        assert_eq!(
            get_with_key("/v1/items/1", key.expose()).await.status(),
            StatusCode::OK
        );
    }
    // Flushes ride on later requests (at most one per USAGE_FLUSH_S = 1 s): keep some coming.
    let mut counted = 0;
    let mut last_used = 0;
    for _ in 0..20 {
        for echo in world().origin.received() {
            if echo["path"] != "/_usage" {
                continue;
            }
            let body = echo["body"].as_str().unwrap();
            let headers = &echo["headers"];
            let header = |h: &str| headers[h.to_ascii_lowercase()].as_str().map(str::to_owned);
            verify_signature(
                USAGE_SECRET.as_bytes(),
                header(TIMESTAMP_HEADER).as_deref(),
                header(SIGNATURE_HEADER).as_deref(),
                body.as_bytes(),
                unix_now(),
            )
            .expect("usage batches are signed with the usage secret");
            assert!(
                verify_signature(
                    SECRET.as_bytes(),
                    header(TIMESTAMP_HEADER).as_deref(),
                    header(SIGNATURE_HEADER).as_deref(),
                    body.as_bytes(),
                    unix_now(),
                )
                .is_err(),
                "not with the sync secret"
            );
            let batch: UsageBatch = serde_json::from_str(body).unwrap();
            for r in batch.reports.iter().filter(|r| r.key_id == e.key_id) {
                assert_eq!(r.workspace, "acme");
                counted += r.counts.valid;
                last_used = last_used.max(r.last_used_at.unwrap_or_default());
            }
        }
        if counted >= 3 {
            break;
        }
        counted = 0;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = get_with_key("/v1/items/1", new_key().expose()).await;
        let _ = get_with_key("/v1/items/1", stored(&entry(1)).await.expose()).await;
    }
    assert_eq!(counted, 3, "every proxied request is counted once");
    assert!((unix_now() - last_used).abs() < 60);
}

/// A GET through the proxy of a raw path (sent exactly as written: reqwest keeps percent
/// encodings, case and `;`).
async fn get_raw(path: &str, key: &SecretKey) -> Response {
    get_with_key(path, key.expose()).await
}

#[tokio::test]
async fn encoded_and_cased_spellings_of_a_protected_path_need_its_scope() {
    // `* /admin/** => admin`; this key has only `items.read`.
    let key = stored(&entry(1)).await;
    for path in [
        "/%61dmin/x",
        "/ADMIN/x",
        "/Admin/%78",
        "//admin/x",
        "/x/../admin/x",
    ] {
        assert_refused(get_raw(path, &key).await, 403, "FORBIDDEN_SCOPE").await;
    }
    // A key that holds `admin` gets through, and the origin sees the normalised path.
    let mut admin = entry(1);
    admin.scopes = vec!["admin".into()];
    let admin = stored(&admin).await;
    let resp = get_raw("/%61dmin/x?q=%2F", &admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/admin/x");
    assert_eq!(echo["query"], "q=%2F", "the query is forwarded as sent");
}

#[tokio::test]
async fn ambiguous_paths_are_refused_with_400_before_any_origin_sees_them() {
    let mut admin = entry(1);
    admin.scopes = vec!["admin".into(), "items.read".into()];
    let key = stored(&admin).await;
    let before = world().origin.received().len();
    for path in [
        "/admin%2Fx",
        "/admin;x/y",
        "/admin%3Bx/y",
        "/v1/items/%2e%2e%2fadmin",
        "/admin%00",
        "/admin%5Cx",
        "/admin%252Fx",
    ] {
        let resp = get_raw(path, &key).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            Some("application/problem+json")
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "ambiguous_path", "{path}: {body}");
    }
    let forwarded = world().origin.received()[before..]
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("admin")))
        .count();
    assert_eq!(forwarded, 0, "none of them reached the origin");
}

#[tokio::test]
async fn client_headers_that_an_origin_could_read_as_ours_never_reach_it() {
    let mut no_owner = entry(1);
    no_owner.owner_id = None;
    let key = stored(&no_owner).await;
    let resp = client()
        .get(format!("{}/v1/items/1", edge().url()))
        .bearer_auth(key.expose())
        .header("X_Keyward_Owner", "victim")
        .header("x_keyward-workspace", "victim-ws")
        .header("X-KEYWARD-KEY-ID", "key_victim")
        .header("x-keyward-signature", "v1=forged")
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Value = resp.json().await.unwrap();
    let h = &echo["headers"];
    assert!(!echo.to_string().contains("victim"), "{echo}");
    assert_eq!(h["x-keyward-owner"], "", "{h}");
    assert_eq!(h["x-keyward-workspace"], "acme");
    assert_eq!(h["x-keyward-key-id"], no_owner.key_id.as_str());
    assert!(h.get("x_keyward_owner").is_none(), "{h}");
    assert_ne!(h["x-keyward-signature"], "v1=forged");
}

/// The identity the echo origin received, as its headers say.
fn echoed_identity(h: &Value) -> Identity {
    let get = |name: &str| h[name].as_str().unwrap_or_default().to_owned();
    Identity {
        key_id: get("x-keyward-key-id"),
        workspace: get("x-keyward-workspace"),
        owner: get("x-keyward-owner"),
        scopes: get("x-keyward-scopes"),
    }
}

#[tokio::test]
async fn forwarded_requests_carry_a_signature_the_origin_can_check() {
    let key = stored(&entry(1)).await;
    let resp = client()
        .post(format!("{}/v1/items/7?x=1", edge().url()))
        .bearer_auth(key.expose())
        .body("payload")
        .send_to_edge()
        .await
        .unwrap();
    let echo: Value = resp.json().await.unwrap();
    let h = &echo["headers"];
    let identity = echoed_identity(h);
    let target = format!(
        "{}?{}",
        echo["path"].as_str().unwrap(),
        echo["query"].as_str().unwrap()
    );
    let check = |method: &str, target: &str, identity: &Identity| {
        verify_request(
            ORIGIN_SECRET.as_bytes(),
            h["x-keyward-timestamp"].as_str(),
            h["x-keyward-signature"].as_str(),
            method,
            target,
            identity,
            unix_now(),
        )
    };
    assert_eq!(check("POST", &target, &identity), Ok(()), "{echo}");
    assert_eq!(identity.owner, "user_1");
    // What a forger would change is covered.
    let mut forged = identity.clone();
    forged.owner = "victim".into();
    assert!(check("POST", &target, &forged).is_err());
    assert!(check("GET", &target, &identity).is_err());
    assert!(check("POST", "/v1/items/8?x=1", &identity).is_err());
}

#[tokio::test]
async fn an_owner_id_that_is_not_a_header_value_is_forwarded_percent_encoded() {
    let mut odd = entry(1);
    odd.owner_id = Some("Zoë, Inc.\r\nX-Evil: 1".into());
    let key = stored(&odd).await;
    let resp = get_raw("/v1/items/1", &key).await;
    assert_eq!(resp.status(), StatusCode::OK, "the key still works");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(
        echo["headers"]["x-keyward-owner"],
        "Zo%C3%AB%2C%20Inc.%0D%0AX-Evil:%201"
    );
    assert!(echo["headers"].get("x-evil").is_none());
}

/// Sends `POST {path}` with a chunked body (no `Content-Length`) over a raw connection and
/// returns the status and the body of the answer.
async fn post_chunked(path: &str, headers: &[(&str, &str)], chunks: &[&[u8]]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", edge().port()))
        .await
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    for chunk in chunks {
        conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        conn.write_all(chunk).await.unwrap();
        conn.write_all(b"\r\n").await.unwrap();
    }
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The data of a chunked HTTP/1.1 body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_and_proxied_bodies_stream_through() {
    // The verify API: 8 KiB at most, declared or streamed.
    let big = json!({"key": "x".repeat(9 * 1024)}).to_string();
    let declared = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .body(big.clone())
        .send_to_edge()
        .await
        .unwrap();
    assert_refused(declared, 413, "payload_too_large").await;
    let (status, body) = post_chunked(
        "/v1/keys/verify",
        &[],
        &[&big.as_bytes()[..5000], &big.as_bytes()[5000..]],
    )
    .await;
    assert_eq!((status, &body["code"]), (413, &json!("payload_too_large")));
    // A body just under the limit is still read.
    let (status, v) = verify(json!({"key": "x".repeat(8000)})).await;
    assert_eq!((status, &v["code"]), (StatusCode::OK, &json!("MALFORMED")));

    // Sync: 1 MiB at most, refused before the signature is even checked.
    let huge = vec![b' '; 1024 * 1024 + 1];
    let resp = edge()
        .post_sync(&huge, unix_now(), SECRET.as_bytes())
        .await
        .unwrap();
    assert_refused(resp, 413, "payload_too_large").await;

    // A proxied body of 640 KiB sent in chunks arrives whole.
    let key = stored(&entry(1)).await;
    let part = "0123456789abcdef".repeat(4096);
    let auth = format!("Bearer {}", key.expose());
    let parts: Vec<&[u8]> = (0..10).map(|_| part.as_bytes()).collect();
    let (status, echo) = post_chunked("/v1/items", &[("authorization", &auth)], &parts).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["body"].as_str().unwrap().len(), part.len() * 10);
}

#[tokio::test]
async fn a_bad_route_rule_stops_the_edge_from_starting_naming_the_rule() {
    // `wrangler dev` itself sometimes exits at start-up on this busy machine (seen once, with
    // only its bindings in the log): that says nothing about the rule, so it is tried again.
    let mut err = String::new();
    for _ in 0..3 {
        err = format!(
            "{:#}",
            EdgeServer::start(EdgeOptions {
                bundle: EdgeBundle::TestHooks,
                route_scopes: "GET /ok/** => ok; GET /a/**/b => admin".into(),
                ..EdgeOptions::default()
            })
            .expect_err("a bad rule must not start")
        );
        if err.contains("route rule") || !err.contains("wrangler dev exited") {
            break;
        }
    }
    assert!(err.contains("route rule 2"), "{err}");
    assert!(err.contains("GET /a/**/b => admin"), "{err}");
}

#[tokio::test]
async fn a_revocation_racing_a_backfill_always_ends_revoked() {
    // Backfill-style batches (every key active, versions 1..=4) race one batch of tombstones
    // (version 5) per round; whatever the interleaving, every key must end revoked.
    const KEYS: usize = 24;
    const BACKFILLS: usize = 6;
    let keys: Vec<SecretKey> = (0..KEYS).map(|_| new_key()).collect();
    let active: Vec<EdgeEntry> = (0..KEYS).map(|_| entry(1)).collect();
    let batch = |version: u64, revoked: bool| SyncBatch {
        items: keys
            .iter()
            .zip(&active)
            .map(|(k, e)| {
                let mut e = e.clone();
                e.version = version;
                if revoked {
                    e.status = KeyStatus::Revoked;
                }
                SyncItem {
                    hash: k.hash(),
                    entry: e,
                }
            })
            .collect(),
        ..SyncBatch::default()
    };
    edge().sync(&batch(1, false)).await.unwrap();
    let mut racers = Vec::new();
    for i in 0..BACKFILLS {
        let b = batch(1 + (i as u64 % 4), false);
        racers.push(tokio::spawn(
            async move { edge().sync(&b).await.map(|_| ()) },
        ));
        if i == BACKFILLS / 2 {
            let t = batch(5, true);
            racers.push(tokio::spawn(
                async move { edge().sync(&t).await.map(|_| ()) },
            ));
        }
    }
    for r in racers {
        r.await
            .unwrap()
            .expect("every batch is applied or found stale");
    }
    // A backfill after the revocation, too.
    let late = edge().sync(&batch(4, false)).await.unwrap();
    assert!(late.outcomes.iter().all(|o| *o == SyncOutcome::Stale));
    for key in &keys {
        let (_, v) = verify(json!({"key": key.expose()})).await;
        assert_eq!(v["code"], "REVOKED", "{v}");
    }
}

// ---- Roles and permission queries -------------------------------------------------------------

/// A workspace of its own per test, so role names never collide between tests.
fn new_workspace() -> String {
    format!("ws-{}", hex_of(&random::<6>()))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn role_item(workspace: &str, name: &str, version: u64, permissions: &[&str]) -> RoleSyncItem {
    RoleSyncItem {
        workspace: workspace.into(),
        name: name.into(),
        entry: RoleEntry {
            version,
            created_at: 1_800_000_000,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            deleted: false,
        },
    }
}

async fn put_role(role: RoleSyncItem) -> SyncOutcome {
    let answer = edge()
        .sync(&SyncBatch {
            roles: vec![role],
            ..SyncBatch::default()
        })
        .await
        .expect("sync succeeds");
    assert!(answer.outcomes.is_empty());
    answer.role_outcomes[0]
}

/// A key of `workspace` holding `roles`, with no scope of its own.
async fn holder(workspace: &str, roles: &[&str]) -> SecretKey {
    let mut e = entry(1);
    e.workspace = workspace.into();
    e.scopes = Vec::new();
    e.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    stored(&e).await
}

async fn code_for(key: &SecretKey, permission: &str) -> String {
    let (status, v) = verify(json!({"key": key.expose(), "permission": permission})).await;
    assert_eq!(status, 200, "{v}");
    v["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_role_change_reaches_its_holders_verdict_within_two_seconds() {
    let ws = new_workspace();
    assert_eq!(
        put_role(role_item(&ws, "sms-sender", 1, &["sms.send"])).await,
        SyncOutcome::Applied
    );
    let key = holder(&ws, &["sms-sender"]).await;
    assert_eq!(code_for(&key, "sms.send").await, "VALID");
    assert_eq!(
        code_for(&key, "sms.send AND billing.read").await,
        "FORBIDDEN_SCOPE"
    );
    let (_, v) = verify(json!({"key": key.expose(), "permission": "sms.send"})).await;
    assert_eq!(v["roles"], json!(["sms-sender"]));
    assert_eq!(v["permissions"], json!(["sms.send"]));
    assert_eq!(v["name"], "test key");

    let changed = Instant::now();
    assert_eq!(
        put_role(role_item(
            &ws,
            "sms-sender",
            2,
            &["sms.send", "billing.read"]
        ))
        .await,
        SyncOutcome::Applied
    );
    loop {
        if code_for(&key, "sms.send AND billing.read").await == "VALID" {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "the role change did not reach the verdict within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("role change visible after {:?}", changed.elapsed());
}

#[tokio::test]
async fn a_stale_role_version_never_overwrites_a_newer_one_and_a_deleted_role_stays_deleted() {
    let ws = new_workspace();
    put_role(role_item(&ws, "ops", 3, &["ops.run"])).await;
    let key = holder(&ws, &["ops"]).await;
    assert_eq!(
        put_role(role_item(&ws, "ops", 2, &["ops.run", "admin"])).await,
        SyncOutcome::Stale
    );
    assert_eq!(code_for(&key, "admin").await, "FORBIDDEN_SCOPE");
    assert_eq!(code_for(&key, "ops.run").await, "VALID");

    let mut gone = role_item(&ws, "ops", 3, &[]);
    gone.entry.deleted = true;
    assert_eq!(put_role(gone).await, SyncOutcome::Applied);
    assert_eq!(code_for(&key, "ops.run").await, "FORBIDDEN_SCOPE");
    assert_eq!(
        put_role(role_item(&ws, "ops", 9, &["ops.run"])).await,
        SyncOutcome::Stale,
        "a late write of the deleted role cannot bring it back"
    );
    assert_eq!(code_for(&key, "ops.run").await, "FORBIDDEN_SCOPE");
    // A missing role grants nothing either, and the key's own scopes still count.
    let mut e = entry(1);
    e.workspace.clone_from(&ws);
    e.roles = vec!["never-created".into()];
    let own = stored(&e).await;
    assert_eq!(code_for(&own, "items.read").await, "VALID");
    assert_eq!(code_for(&own, "items.read AND x").await, "FORBIDDEN_SCOPE");
}

#[tokio::test]
async fn a_warm_key_with_roles_costs_no_kv_read_and_a_cold_one_one_per_uncached_role() {
    let ws = new_workspace();
    put_role(role_item(&ws, "a", 1, &["a.x"])).await;
    put_role(role_item(&ws, "b", 1, &["b.x"])).await;
    let key = holder(&ws, &["a", "b"]).await;
    let reads = |resp: &Response| header(resp, "x-keyward-kv-reads");
    let resp = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&json!({"key": key.expose(), "permission": "a.x AND b.x"}))
        .send_to_edge()
        .await
        .unwrap();
    // The sync that wrote the roles evicted them here; the key entry, its owner's entry (none
    // is stored: cached as absent) and both roles are read.
    assert_eq!(reads(&resp).as_deref(), Some("4"));
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "VALID");
    let warm = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&json!({"key": key.expose(), "permission": "a.x AND b.x"}))
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(reads(&warm).as_deref(), Some("0"));
    let proxied = get_with_key("/anything", key.expose()).await;
    assert_eq!(reads(&proxied).as_deref(), Some("0"));
    // Another holder of the same roles: one read for its own entry, the roles are shared.
    let other = holder(&ws, &["a", "b"]).await;
    let resp = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&json!({"key": other.expose(), "permission": "a.x"}))
        .send_to_edge()
        .await
        .unwrap();
    assert_eq!(reads(&resp).as_deref(), Some("1"));
}

#[tokio::test]
async fn a_bad_permission_query_is_a_400_naming_the_field() {
    let key = stored(&entry(1)).await;
    for permission in ["(items.read OR x", "items.read)", "a and b", ""] {
        let (status, v) = verify(json!({"key": key.expose(), "permission": permission})).await;
        if permission.is_empty() {
            assert_eq!(v["code"], "VALID", "an empty query asks nothing");
            continue;
        }
        assert_eq!(status, 400, "{permission}: {v}");
        assert_eq!(v["code"], "invalid_permission_query", "{v}");
        assert_eq!(v["errors"][0]["field"], "permission", "{v}");
    }
    let (status, v) = verify(json!({"key": key.expose(), "cost": 1001})).await;
    assert_eq!(
        (status.as_u16(), v["errors"][0]["field"].as_str()),
        (400, Some("cost"))
    );
}

#[tokio::test]
async fn a_key_verified_for_another_workspace_is_not_found() {
    let key = stored(&entry(1)).await;
    let (_, v) = verify(json!({"key": key.expose(), "workspace": "B"})).await;
    assert_eq!(v["code"], "NOT_FOUND", "{v}");
    assert_eq!(
        v["key_id"],
        Value::Null,
        "nothing about the key is told: {v}"
    );
    let (_, v) = verify(json!({"key": key.expose(), "workspace": "acme"})).await;
    assert_eq!(v["code"], "VALID", "{v}");
}

#[tokio::test]
async fn a_revoked_key_keeps_no_name_or_meta_at_the_edge() {
    let mut e = entry(1);
    e.meta = Some(JsonObject::from_map(&serde_json::Map::from_iter([(
        "email".into(),
        json!("a@example.com"),
    )])));
    let key = stored(&e).await;
    let (_, v) = verify(json!({"key": key.expose()})).await;
    assert_eq!(v["meta"]["email"], "a@example.com");
    e.version = 2;
    e.status = KeyStatus::Revoked;
    assert_eq!(put(&key, &e).await, SyncOutcome::Applied);
    let (_, v) = verify(json!({"key": key.expose()})).await;
    assert_eq!(v["code"], "REVOKED");
    assert_eq!(
        (v["name"].clone(), v["meta"].clone()),
        (Value::Null, Value::Null),
        "{v}"
    );
}

#[tokio::test]
async fn a_cost_counts_against_the_rate_limit() {
    fresh_minute().await;
    let key = stored(&limited()).await;
    let cost = |c: u32| {
        let key = key.expose().to_owned();
        async move { verify(json!({"key": key, "cost": c})).await.1 }
    };
    let v = cost(3).await;
    assert_eq!(
        (v["code"].as_str(), v["ratelimit"]["remaining"].as_u64()),
        (Some("VALID"), Some(2))
    );
    let v = cost(3).await;
    assert_eq!(v["code"], "RATE_LIMITED", "3 do not fit in the 2 left: {v}");
    let v = cost(0).await;
    assert_eq!(v["code"], "VALID", "a free request fits: {v}");
    let v = cost(2).await;
    assert_eq!(
        (v["code"].as_str(), v["ratelimit"]["remaining"].as_u64()),
        (Some("VALID"), Some(0))
    );
}

#[tokio::test]
async fn proxy_rules_take_queries_and_allowed_workspaces_bind_the_proxy() {
    let origin = EchoOrigin::start().expect("echo origin starts");
    let bound = EdgeServer::start(EdgeOptions {
        bundle: EdgeBundle::TestHooks,
        origin_url: origin.url(),
        route_scopes: "POST /v1/sms/** => sms.send AND (billing.read OR admin) cost 2".into(),
        sync_secret: SECRET.into(),
        vars: vec![("ALLOWED_WORKSPACES".into(), "acme".into())],
        ..EdgeOptions::default()
    })
    .expect("wrangler dev starts the bound edge");
    let ws_key = |ws: &str, scopes: &[&str]| {
        let mut e = entry(1);
        e.workspace = ws.into();
        e.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        e
    };
    let mut keys = Vec::new();
    let mut items = Vec::new();
    for e in [
        ws_key("acme", &["sms.send", "billing.read"]),
        ws_key("acme", &["sms.send"]),
        ws_key("other", &["sms.send", "billing.read"]),
    ] {
        let k = new_key();
        items.push(SyncItem {
            hash: k.hash(),
            entry: e,
        });
        keys.push(k);
    }
    bound
        .sync(&SyncBatch {
            items,
            ..SyncBatch::default()
        })
        .await
        .unwrap();
    let post = |k: &SecretKey| {
        client()
            .post(format!("{}/v1/sms/send", bound.url()))
            .bearer_auth(k.expose())
            .send_to_edge()
    };
    assert_eq!(post(&keys[0]).await.unwrap().status(), 200);
    assert_refused(post(&keys[1]).await.unwrap(), 403, "FORBIDDEN_SCOPE").await;
    assert_refused(post(&keys[2]).await.unwrap(), 401, "NOT_FOUND").await;
}

/// Measures how long a change to a role held by 10,000 keys takes to reach their verdicts. Not a
/// pass/fail test (it prints the figures); run it with
/// `cargo test -p keyward-tests --test edge -- --ignored --nocapture ten_thousand`.
#[tokio::test]
#[ignore = "a measurement: 10,000 keys take about a minute to sync"]
async fn ten_thousand_holders_see_a_role_change() {
    const HOLDERS: usize = 10_000;
    let ws = new_workspace();
    put_role(role_item(&ws, "bulk", 1, &["bulk.read"])).await;
    let keys: Vec<SecretKey> = (0..HOLDERS).map(|_| new_key()).collect();
    let started = Instant::now();
    for chunk in keys.chunks(1000) {
        let items = chunk
            .iter()
            .map(|k| {
                let mut e = entry(1);
                e.workspace.clone_from(&ws);
                e.scopes = Vec::new();
                e.roles = vec!["bulk".into()];
                SyncItem {
                    hash: k.hash(),
                    entry: e,
                }
            })
            .collect();
        edge()
            .sync(&SyncBatch {
                items,
                ..SyncBatch::default()
            })
            .await
            .unwrap();
    }
    println!("synced {HOLDERS} holders in {:?}", started.elapsed());
    let changed = Instant::now();
    put_role(role_item(&ws, "bulk", 2, &["bulk.read", "bulk.write"])).await;
    let synced = changed.elapsed();
    // Every holder's verdict, 32 requests in flight, until each one sees the new permission.
    let mut pending: Vec<String> = keys.iter().map(|k| k.expose().to_owned()).collect();
    let mut first_sweep = None;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for chunk in pending.chunks(32) {
            let mut set = tokio::task::JoinSet::new();
            for key in chunk {
                let key = key.clone();
                set.spawn(async move {
                    let (_, v) = verify(json!({"key": key, "permission": "bulk.write"})).await;
                    (key, v["code"] == "VALID")
                });
            }
            while let Some(done) = set.join_next().await {
                let (key, valid) = done.unwrap();
                if !valid {
                    still.push(key);
                }
            }
        }
        first_sweep.get_or_insert(changed.elapsed());
        pending = still;
    }
    println!(
        "role change with {HOLDERS} holders: 1 KV write, synced in {synced:?}; all {HOLDERS} verdicts checked VALID after {:?} (first sweep {:?})",
        changed.elapsed(),
        first_sweep.unwrap_or_default()
    );
}

// ---- Credits, several limits, cost and owners (the allowance objects and their leases) ----
//
// These run against their own edge: their exact counts rely on the leases an isolate holds, and
// the shared edge's isolate is sometimes restarted by workerd while another test streams a large
// body through it ("Your worker restarted mid-request"), which would strand a lease until its
// grace ends.

fn aw() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let origin = EchoOrigin::start().expect("echo origin starts");
        let edge = EdgeServer::start(EdgeOptions {
            bundle: EdgeBundle::TestHooks,
            origin_url: origin.url(),
            route_scopes: "* /v1/admin/** => admin; * /v1/items/** => items.read; \
                           * /v1/costly/** => items.read cost 5"
                .into(),
            sync_secret: SECRET.into(),
            usage_secret: USAGE_SECRET.into(),
            origin_secret: ORIGIN_SECRET.into(),
            usage_url: format!("{}/_usage", origin.url()),
            vars: vec![("USAGE_FLUSH_S".into(), "1".into())],
            ..EdgeOptions::default()
        })
        .expect("wrangler dev starts the edge");
        World { edge, origin }
    })
}

async fn astored(entry: &EdgeEntry) -> SecretKey {
    let key = new_key();
    let batch = SyncBatch {
        items: vec![SyncItem {
            hash: key.hash(),
            entry: entry.clone(),
        }],
        ..SyncBatch::default()
    };
    let outcome = aw()
        .edge
        .sync(&batch)
        .await
        .expect("sync succeeds")
        .outcomes[0];
    assert_eq!(outcome, SyncOutcome::Applied);
    key
}

async fn aget(path: &str, key: &str) -> Response {
    client()
        .get(format!("{}{path}", aw().edge.url()))
        .bearer_auth(key)
        .send_to_edge()
        .await
        .unwrap()
}

async fn averify(body: Value) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}/v1/keys/verify", aw().edge.url()))
        .json(&body)
        .send_to_edge()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}")),
    )
}

fn key_target(e: &EdgeEntry) -> CreditTarget {
    CreditTarget::Key {
        workspace: e.workspace.clone(),
        key_id: e.key_id.clone(),
    }
}

fn owner_target(workspace: &str, owner_id: &str) -> CreditTarget {
    CreditTarget::Owner {
        workspace: workspace.into(),
        owner_id: owner_id.into(),
    }
}

fn credit_op(target: &CreditTarget, seq: u64, op: CreditOpKind, value: u64) -> CreditOp {
    CreditOp {
        target: target.clone(),
        seq,
        op,
        value,
        refill: None,
        at: unix_now(),
    }
}

async fn send_op(op: CreditOp) -> SyncOutcome {
    let batch = SyncBatch {
        credit_ops: vec![op],
        ..SyncBatch::default()
    };
    aw().edge
        .sync(&batch)
        .await
        .expect("sync succeeds")
        .credit_outcomes[0]
}

/// A new key whose entry says it has credits, with `remaining` set by operation 1.
async fn credited_key(remaining: u64) -> (SecretKey, EdgeEntry) {
    let mut e = entry(1);
    e.owner_id = None;
    e.credited = true;
    let op = credit_op(&key_target(&e), 1, CreditOpKind::Set, remaining);
    assert_eq!(send_op(op).await, SyncOutcome::Applied);
    (astored(&e).await, e)
}

async fn put_owner(workspace: &str, owner_id: &str, entry: OwnerEntry) -> SyncOutcome {
    let batch = SyncBatch {
        owners: vec![OwnerSyncItem {
            workspace: workspace.into(),
            owner_id: owner_id.into(),
            entry,
        }],
        ..SyncBatch::default()
    };
    aw().edge
        .sync(&batch)
        .await
        .expect("sync succeeds")
        .owner_outcomes[0]
}

fn new_owner_id() -> String {
    format!("cust_{}", hex_of(&random::<6>()))
}

/// `n` requests at once, alternately through the proxy and the verify API: the codes.
async fn burst(keys: &[String], n: usize) -> Vec<String> {
    let calls = (0..n).map(|i| {
        let key = keys[i % keys.len()].clone();
        tokio::spawn(async move {
            if i % 2 == 0 {
                averify(json!({"key": key})).await.1["code"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                let resp = aget("/v1/items/1", &key).await;
                if resp.status() == StatusCode::OK {
                    "VALID".to_owned()
                } else {
                    let body: Value = resp.json().await.unwrap();
                    body["code"].as_str().unwrap().to_owned()
                }
            }
        })
    });
    let mut codes = Vec::new();
    for c in calls.collect::<Vec<_>>() {
        codes.push(c.await.unwrap());
    }
    codes
}

fn count(codes: &[String], code: &str) -> usize {
    codes.iter().filter(|c| *c == code).count()
}

#[tokio::test]
async fn exactly_the_credits_are_admitted_under_concurrency_and_an_increment_admits_exactly_that_many_more()
 {
    let (key, e) = credited_key(50).await;
    let keys = [key.expose().to_owned()];
    let codes = burst(&keys, 200).await;
    assert_eq!(
        (count(&codes, "VALID"), count(&codes, "USAGE_EXCEEDED")),
        (50, 150),
        "{codes:?}"
    );
    let op = credit_op(&key_target(&e), 2, CreditOpKind::Increment, 10);
    assert_eq!(send_op(op.clone()).await, SyncOutcome::Applied);
    assert_eq!(
        send_op(op).await,
        SyncOutcome::Stale,
        "a replayed operation"
    );
    let codes = burst(&keys, 60).await;
    assert_eq!(count(&codes, "VALID"), 10, "{codes:?}");
    let (_, v) = averify(json!({"key": key.expose()})).await;
    assert_eq!(v["code"], "USAGE_EXCEEDED");
    assert_eq!(v["valid"], false);
    assert_eq!(v["credits"]["remaining"], 0);
}

#[tokio::test]
async fn an_increment_racing_concurrent_spending_is_never_lost() {
    let (key, e) = credited_key(100).await;
    let keys = [key.expose().to_owned()];
    let spending = tokio::spawn({
        let keys = keys.clone();
        async move { burst(&keys, 120).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let op = credit_op(&key_target(&e), 2, CreditOpKind::Increment, 30);
    assert_eq!(send_op(op).await, SyncOutcome::Applied);
    let mut valid = count(&spending.await.unwrap(), "VALID");
    // Whatever of the 130 the race left over is still there.
    valid += count(&burst(&keys, 60).await, "VALID");
    assert_eq!(valid, 130);
}

#[tokio::test]
async fn a_disabled_owner_refuses_its_keys_and_spends_nothing() {
    let owner_id = new_owner_id();
    let mut e = entry(1);
    e.owner_id = Some(owner_id.clone());
    let key = astored(&e).await;
    let active = |version| OwnerEntry {
        version,
        status: OwnerStatus::Active,
        rate_limits: vec![NamedRateLimit {
            name: "minute".into(),
            limit: 100,
            period_s: 60,
        }],
        credited: false,
    };
    fresh_minute().await;
    assert_eq!(
        put_owner("acme", &owner_id, active(1)).await,
        SyncOutcome::Applied
    );
    let (_, v) = averify(json!({"key": key.expose()})).await;
    assert_eq!(v["code"], "VALID");
    let disabled = OwnerEntry {
        status: OwnerStatus::Disabled,
        ..active(2)
    };
    assert_eq!(
        put_owner("acme", &owner_id, disabled).await,
        SyncOutcome::Applied
    );
    assert_eq!(
        put_owner("acme", &owner_id, active(1)).await,
        SyncOutcome::Stale,
        "an older version never comes back"
    );
    let started = Instant::now();
    loop {
        let (_, v) = averify(json!({"key": key.expose()})).await;
        if v["code"] == "DISABLED" {
            assert_eq!(v["valid"], false);
            assert_eq!(v["ratelimits"][0]["scope"], "owner");
            assert_eq!(v["ratelimits"][0]["remaining"], 99, "nothing spent: {v}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_refused(aget("/v1/items/1", key.expose()).await, 401, "DISABLED").await;
}

#[tokio::test]
async fn an_owners_credits_are_shared_exactly_by_its_keys() {
    let owner_id = new_owner_id();
    let target = owner_target("acme", &owner_id);
    assert_eq!(
        send_op(credit_op(&target, 1, CreditOpKind::Set, 30)).await,
        SyncOutcome::Applied
    );
    let owner = OwnerEntry {
        version: 1,
        status: OwnerStatus::Active,
        rate_limits: Vec::new(),
        credited: true,
    };
    assert_eq!(
        put_owner("acme", &owner_id, owner).await,
        SyncOutcome::Applied
    );
    let mut keys = Vec::new();
    for _ in 0..3 {
        let mut e = entry(1);
        e.owner_id = Some(owner_id.clone());
        keys.push(astored(&e).await.expose().to_owned());
    }
    let codes = burst(&keys, 90).await;
    assert_eq!(
        (count(&codes, "VALID"), count(&codes, "USAGE_EXCEEDED")),
        (30, 60),
        "{codes:?}"
    );
    let (_, v) = averify(json!({"key": keys[0]})).await;
    assert_eq!(v["credits"]["scope"], "owner");
    assert_eq!(v["credits"]["remaining"], 0);
}

#[tokio::test]
async fn every_limit_of_a_key_and_its_owner_applies_and_the_headers_report_the_tightest() {
    fresh_minute().await;
    let owner_id = new_owner_id();
    let owner = OwnerEntry {
        version: 1,
        status: OwnerStatus::Active,
        rate_limits: vec![NamedRateLimit {
            name: "hour".into(),
            limit: 50,
            period_s: 3600,
        }],
        credited: false,
    };
    assert_eq!(
        put_owner("acme", &owner_id, owner).await,
        SyncOutcome::Applied
    );
    let mut e = entry(1);
    e.owner_id = Some(owner_id);
    e.rate_limits = vec![
        NamedRateLimit {
            name: "minute".into(),
            limit: 3,
            period_s: 60,
        },
        NamedRateLimit {
            name: "month".into(),
            limit: 100,
            period_s: 2_592_000,
        },
    ];
    let key = astored(&e).await;
    for left in (0..3).rev() {
        let resp = aget("/v1/items/1", key.expose()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&resp, "x-ratelimit-remaining"),
            Some(left.to_string())
        );
    }
    let resp = aget("/v1/items/1", key.expose()).await;
    assert!(header(&resp, "retry-after").is_some());
    assert_refused(resp, 429, "RATE_LIMITED").await;
    let (_, v) = averify(json!({"key": key.expose()})).await;
    assert_eq!(v["code"], "RATE_LIMITED");
    let limits = v["ratelimits"].as_array().unwrap();
    let by_name = |n: &str| limits.iter().find(|l| l["name"] == n).unwrap().clone();
    assert_eq!(limits.len(), 3, "{v}");
    assert_eq!(
        (
            by_name("minute")["remaining"].as_u64(),
            by_name("minute")["scope"].as_str()
        ),
        (Some(0), Some("key"))
    );
    assert_eq!(
        by_name("month")["remaining"],
        97,
        "a refused request spends nothing"
    );
    assert_eq!(by_name("month")["limit"], 100);
    assert_eq!(
        (
            by_name("hour")["remaining"].as_u64(),
            by_name("hour")["scope"].as_str()
        ),
        (Some(47), Some("owner"))
    );
    assert_eq!(
        v["ratelimit"]["limit"], 3,
        "the singular form is the tightest"
    );
}

#[tokio::test]
async fn a_cost_spends_credits_on_a_route_rule_and_in_the_verify_body() {
    let (key, _) = credited_key(12).await;
    for _ in 0..2 {
        let resp = aget("/v1/costly/x", key.expose()).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let resp = aget("/v1/costly/x", key.expose()).await;
    assert_eq!(header(&resp, "retry-after"), None, "no refill is due");
    assert_refused(resp, 429, "USAGE_EXCEEDED").await;
    let (_, v) = averify(json!({"key": key.expose(), "cost": 3})).await;
    assert_eq!(v["code"], "USAGE_EXCEEDED");
    assert_eq!(
        v["credits"]["remaining"], 2,
        "5 + 5 spent, the refusals nothing"
    );
    let (_, v) = averify(json!({"key": key.expose(), "cost": 2})).await;
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["credits"]["remaining"], 0);
    // Refused for its scope: spends nothing, still reports the credits.
    let (key, _) = credited_key(1).await;
    let resp = aget("/v1/admin/x", key.expose()).await;
    assert_refused(resp, 403, "FORBIDDEN_SCOPE").await;
    let (_, v) = averify(json!({"key": key.expose()})).await;
    assert_eq!(
        (v["code"].as_str(), v["credits"]["remaining"].as_u64()),
        (Some("VALID"), Some(0))
    );
}

#[tokio::test]
async fn out_of_credits_with_a_refill_due_the_proxy_says_when_to_retry() {
    let mut e = entry(1);
    e.credited = true;
    let daily = Refill {
        amount: 5,
        interval: Interval::Daily,
        day: None,
    };
    let mut op = credit_op(&key_target(&e), 1, CreditOpKind::Set, 1);
    op.refill = Some(daily);
    assert_eq!(send_op(op).await, SyncOutcome::Applied);
    let key = astored(&e).await;
    assert_eq!(
        aget("/v1/items/1", key.expose()).await.status(),
        StatusCode::OK
    );
    let resp = aget("/v1/items/1", key.expose()).await;
    let retry: i64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    let midnight = daily.next_after(unix_now());
    assert!(
        (retry - (midnight - unix_now())).abs() <= 2,
        "retry-after {retry}"
    );
    assert_refused(resp, 429, "USAGE_EXCEEDED").await;
    let (_, v) = averify(json!({"key": key.expose()})).await;
    assert_eq!(v["credits"]["refill_at"], midnight);
}

#[tokio::test]
async fn usage_batches_count_each_outcome_per_hour_with_the_credits_spent_and_the_balance() {
    let (key, e) = credited_key(2).await;
    for _ in 0..3 {
        let _ = aget("/v1/items/1", key.expose()).await;
    }
    let _ = aget("/v1/admin/x", key.expose()).await;
    let mut counts = keyward_common::sync::OutcomeCounts::default();
    let mut balance = None;
    for _ in 0..20 {
        counts = keyward_common::sync::OutcomeCounts::default();
        for echo in aw().origin.received() {
            if echo["path"] != "/_usage" {
                continue;
            }
            let batch: UsageBatch = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
            for r in batch.reports.iter().filter(|r| r.key_id == e.key_id) {
                assert_eq!(r.hour % 3600, 0);
                counts.add(&r.counts);
            }
            for b in batch.balances.iter().filter(|b| b.target == key_target(&e)) {
                balance = Some((b.remaining, b.seq));
            }
        }
        if counts.requests() >= 4 && balance.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = aget("/v1/items/1", astored(&entry(1)).await.expose()).await;
    }
    let want = keyward_common::sync::OutcomeCounts {
        valid: 2,
        usage_exceeded: 1,
        forbidden: 1,
        credits_spent: 2,
        ..Default::default()
    };
    assert_eq!(counts, want);
    assert_eq!(balance, Some((0, 1)));
}

#[tokio::test]
async fn a_hot_key_with_credits_and_two_limits_rarely_calls_its_object() {
    fresh_minute().await;
    let mut e = entry(1);
    e.owner_id = None;
    e.credited = true;
    e.rate_limits = vec![
        NamedRateLimit {
            name: "minute".into(),
            limit: 100_000,
            period_s: 60,
        },
        NamedRateLimit {
            name: "month".into(),
            limit: 10_000_000,
            period_s: 2_592_000,
        },
    ];
    let op = credit_op(&key_target(&e), 1, CreditOpKind::Set, 1_000_000);
    assert_eq!(send_op(op).await, SyncOutcome::Applied);
    let key = astored(&e).await;
    let calls = |resp: &Response| -> u64 {
        header(resp, "x-keyward-allowance-calls")
            .unwrap()
            .parse()
            .unwrap()
    };
    let verify_raw = || {
        client()
            .post(format!("{}/v1/keys/verify", aw().edge.url()))
            .json(&json!({"key": key.expose()}))
            .send_to_edge()
    };
    let first = verify_raw().await.unwrap();
    let before = calls(&first);
    const N: u64 = 400;
    // Steady load: 8 clients at a time.
    for _ in 0..N / 8 {
        let answers: Vec<_> = (0..8)
            .map(|_| {
                let (url, key) = (aw().edge.url(), key.expose().to_owned());
                tokio::spawn(async move {
                    client()
                        .post(format!("{url}/v1/keys/verify"))
                        .json(&json!({ "key": key }))
                        .send_to_edge()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for a in answers {
            assert_eq!(a.await.unwrap(), StatusCode::OK);
        }
    }
    let last = verify_raw().await.unwrap();
    let made = calls(&last) - before;
    let v: Value = last.json().await.unwrap();
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["ratelimits"].as_array().unwrap().len(), 2);
    eprintln!("{made} allowance object calls for {N} warm requests");
    // 64-unit leases: about one call per 64 requests, plus renewals when a lease's 2 s end.
    assert!(
        made * 20 <= N,
        "{made} object calls for {N} requests (> 0.05 per request)"
    );
}

#[tokio::test]
async fn a_daily_refill_key_that_spent_its_credits_verifies_again_after_midnight_utc() {
    // An edge whose allowance clock stands 30 s before the next midnight UTC (time to start).
    let midnight = (unix_now().div_euclid(86_400) + 1) * 86_400;
    let offset = midnight - 30 - unix_now();
    let origin = EchoOrigin::start().expect("echo origin starts");
    let clocked = EdgeServer::start(EdgeOptions {
        bundle: EdgeBundle::TestHooks,
        origin_url: origin.url(),
        sync_secret: SECRET.into(),
        vars: vec![("CLOCK_OFFSET_S".into(), offset.to_string())],
        ..EdgeOptions::default()
    })
    .expect("wrangler dev starts the edge");
    let mut e = entry(1);
    e.credited = true;
    let mut op = credit_op(&key_target(&e), 1, CreditOpKind::Set, 1);
    op.refill = Some(Refill {
        amount: 3,
        interval: Interval::Daily,
        day: None,
    });
    op.at = unix_now() + offset;
    let key = new_key();
    let batch = SyncBatch {
        items: vec![SyncItem {
            hash: key.hash(),
            entry: e.clone(),
        }],
        credit_ops: vec![op],
        ..SyncBatch::default()
    };
    let answer = clocked.sync(&batch).await.unwrap();
    assert_eq!(answer.credit_outcomes, vec![SyncOutcome::Applied]);
    let code = || async {
        let v: Value = client()
            .post(format!("{}/v1/keys/verify", clocked.url()))
            .json(&json!({"key": key.expose()}))
            .send_to_edge()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["code"].as_str().unwrap().to_owned(), v["credits"].clone())
    };
    assert_eq!(code().await.0, "VALID");
    let (refused, credits) = code().await;
    assert_eq!(refused, "USAGE_EXCEEDED");
    assert_eq!(credits["refill_at"], midnight);
    let until_midnight = midnight + 1 - (unix_now() + offset);
    assert!(
        until_midnight > 1,
        "the set fell before midnight on the edge's clock"
    );
    tokio::time::sleep(Duration::from_secs(u64::try_from(until_midnight).unwrap())).await;
    let (after, credits) = code().await;
    assert_eq!(after, "VALID", "refilled at midnight: {credits}");
    assert_eq!(credits["remaining"], 2);
}
