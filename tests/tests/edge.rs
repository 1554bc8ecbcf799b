//! The edge under the real `wrangler dev`: proxy, verify API, signed sync and exact rate limits.
//!
//! Run: `eval "$(cargo xtask env)" && cargo test -p keyward-tests --test edge` (needs
//! `cargo xtask bootstrap`; the test-hooks bundle is built on first use). One wrangler serves the
//! whole file; every test uses its own freshly generated keys, so tests stay independent.

use std::sync::OnceLock;
use std::time::Duration;

use keyward_common::record::EDGE_SCHEMA;
use keyward_common::sync::{
    SIGNATURE_HEADER, SyncBatch, SyncItem, SyncOutcome, TIMESTAMP_HEADER, UsageBatch,
    verify_signature,
};
use keyward_common::{EdgeEntry, KeyId, KeyStatus, RateLimit, SecretKey};
use keyward_tests::edge::{EdgeBundle, EdgeOptions, EdgeServer, unix_now};
use keyward_tests::origin::EchoOrigin;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "edge-test-sync-secret";

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
            route_scopes: "GET /v1/admin/** => admin; * /v1/items/** => items.read".into(),
            sync_secret: SECRET.into(),
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
        status: KeyStatus::Active,
        expires_at: None,
        retires_at: None,
        allowed_ips: Vec::new(),
        rate_limit: None,
    }
}

async fn put(key: &SecretKey, entry: &EdgeEntry) -> SyncOutcome {
    let batch = SyncBatch {
        items: vec![SyncItem {
            hash: key.hash(),
            entry: entry.clone(),
        }],
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
        .send()
        .await
        .unwrap()
}

async fn verify(body: Value) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}/v1/keys/verify", edge().url()))
        .json(&body)
        .send()
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
        .send()
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
        .send()
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
        .send()
        .await
        .unwrap();
    let echo: Value = resp.json().await.unwrap();
    assert!(echo["headers"].get("x-keyward-owner").is_none(), "{echo}");
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
        assert_refused(req.send().await.unwrap(), status, code).await;

        let mut body = extra.clone();
        body["key"] = json!(key.expose());
        let (http, verdict) = verify(body).await;
        assert_eq!(http, StatusCode::OK);
        assert_eq!(verdict["valid"], false, "{verdict}");
        assert_eq!(verdict["code"], code, "{verdict}");
        // A found but refused key still says whose it is.
        match &entry {
            Some(e) => {
                assert_eq!(verdict["key_id"], e.key_id.as_str());
                assert_eq!(verdict["workspace"], "acme");
                assert_eq!(verdict["owner_id"], "user_1");
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
        .send()
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
        .send()
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
        .send()
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
        .send()
        .await
        .unwrap();
    assert_eq!(kv_reads(&verified).as_deref(), Some("0"));

    // The counter does count: a well-formed unknown key costs one read, then is cached.
    let unknown = get_with_key("/v1/items/1", key.expose()).await;
    assert_eq!(kv_reads(&unknown).as_deref(), Some("1"));
    let again = get_with_key("/v1/items/1", key.expose()).await;
    assert_eq!(kv_reads(&again).as_deref(), Some("0"), "negative cache");
}

#[tokio::test]
async fn sync_refuses_a_bad_signature_and_a_stale_timestamp_and_writes_nothing() {
    let key = new_key();
    let body = serde_json::to_vec(&SyncBatch {
        items: vec![SyncItem {
            hash: key.hash(),
            entry: entry(1),
        }],
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
        .send()
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
            .send()
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
                SECRET.as_bytes(),
                header(TIMESTAMP_HEADER).as_deref(),
                header(SIGNATURE_HEADER).as_deref(),
                body.as_bytes(),
                unix_now(),
            )
            .expect("usage batches are signed with the shared secret");
            let batch: UsageBatch = serde_json::from_str(body).unwrap();
            for r in batch.reports.iter().filter(|r| r.key_id == e.key_id) {
                assert_eq!(r.workspace, "acme");
                counted += r.count;
                last_used = last_used.max(r.last_used_at);
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
