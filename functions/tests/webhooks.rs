//! Webhook endpoints through the handlers (in-memory store) with a real receiver on loopback:
//! the secret shown once and never again, addresses that are not public refused, a test event
//! signed as Standard Webhooks says, failures and redirects recorded, not followed.

mod support;

use keyward_functions::webhook::signature;
use keyward_tests::receiver::receiver;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use support::*;

const WS: &str = "acme";
const HOOKS: &str = "/v1/workspaces/acme/webhooks";

fn local_world() -> World {
    world_with(config(
        &[("KEYWARD_WEBHOOK_ALLOW_LOOPBACK", "true")],
        "HS256",
        SECRET,
    ))
}

async fn make(w: &World, url: &str) -> Value {
    let r = w
        .call("POST", HOOKS, &admin(WS), Some(json!({"url": url, "events": ["key.created", "key.revoked"], "description": "billing"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn the_secret_is_shown_once_and_a_test_event_is_signed_as_standard_webhooks_says() {
    let w = local_world();
    let (url, seen) = receiver("200 OK", "").await;
    let made = make(&w, &url).await;
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = made["id"].as_str().unwrap().to_owned();
    let path = format!("{HOOKS}/{id}");

    for r in [
        w.call("GET", &path, &admin(WS), None).await,
        w.call("GET", HOOKS, &admin(WS), None).await,
    ] {
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            !r.text.contains(&secret),
            "the secret is never read back: {}",
            r.text
        );
    }

    let t = w
        .call("POST", &format!("{path}/test"), &admin(WS), None)
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.text);
    assert_eq!(t.body["status"], "delivered", "{}", t.text);
    assert_eq!(t.body["response_code"], 200);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let msg = header(headers, "webhook-id");
    let ts: i64 = header(headers, "webhook-timestamp").parse().unwrap();
    assert!(msg.starts_with("msg_"));
    assert!((ts - now()).abs() < 60);
    let key = signature::key_of(&secret).unwrap();
    assert_eq!(
        header(headers, "webhook-signature"),
        signature::sign(&key, msg, ts, body)
    );
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "webhook.test");
    assert_eq!(event["data"]["webhook_id"], json!(id));
    assert!(!String::from_utf8_lossy(body).contains(&secret));

    let d = w
        .call("GET", &format!("{path}/deliveries"), &admin(WS), None)
        .await;
    assert_eq!(d.body["data"][0]["message_id"], json!(msg));
    assert_eq!(d.body["data"][0]["status"], "delivered");

    let audit = w
        .call("GET", "/v1/workspaces/acme/audit", &admin(WS), None)
        .await;
    assert!(audit.text.contains("webhook.create") && !audit.text.contains(&secret));
}

#[tokio::test]
async fn failures_and_redirects_are_recorded_and_redirects_never_followed() {
    let w = local_world();
    let (ok_url, ok_seen) = receiver("200 OK", "").await;
    let (url, _) = receiver(
        "302 Found",
        Box::leak(format!("location: {ok_url}\r\n").into_boxed_str()),
    )
    .await;
    let made = make(&w, &url).await;
    let path = format!("{HOOKS}/{}", made["id"].as_str().unwrap());
    let t = w
        .call("POST", &format!("{path}/test"), &admin(WS), None)
        .await;
    assert_eq!(t.body["status"], "failed", "{}", t.text);
    assert_eq!(t.body["response_code"], 302);
    assert!(
        ok_seen.lock().unwrap().is_empty(),
        "the redirect was not followed"
    );

    let (bad, _) = receiver("500 Internal Server Error", "").await;
    let r = w
        .call("PATCH", &path, &admin(WS), Some(json!({"url": bad})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t = w
        .call("POST", &format!("{path}/test"), &admin(WS), None)
        .await;
    assert_eq!(
        (t.body["status"].as_str(), t.body["response_code"].as_u64()),
        (Some("failed"), Some(500))
    );

    // Nobody listening: a connection error, recorded.
    let r = w
        .call(
            "PATCH",
            &path,
            &admin(WS),
            Some(json!({"url": "http://127.0.0.1:9/gone"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = w
        .call("POST", &format!("{path}/test"), &admin(WS), None)
        .await;
    assert_eq!(t.body["status"], "failed");
    assert!(t.body["response_code"].is_null());
    let d = w
        .call(
            "GET",
            &format!("{path}/deliveries?limit=2"),
            &admin(WS),
            None,
        )
        .await;
    assert_eq!(d.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(d.body["has_more"], true);
}

#[tokio::test]
async fn addresses_that_are_not_public_are_refused_naming_the_url() {
    let strict = world();
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://2130706433/hook",
        "http://127.0.0.1:9/hook",
        "http://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
        "ftp://hooks.example.com/",
    ] {
        let r = strict
            .call(
                "POST",
                HOOKS,
                &admin(WS),
                Some(json!({"url": url, "events": ["key.created"]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {}", r.text);
    }
    // The local stack's setting allows plain http to loopback, and nothing more.
    let local = local_world();
    let r = local
        .call(
            "POST",
            HOOKS,
            &admin(WS),
            Some(json!({"url": "http://10.0.0.1/hook", "events": ["key.created"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn endpoints_are_changed_with_if_match_deleted_and_kept_from_other_workspaces() {
    let w = local_world();
    let made = make(&w, "http://127.0.0.1:9/hook").await;
    let id = made["id"].as_str().unwrap().to_owned();
    let path = format!("{HOOKS}/{id}");
    let stale = w
        .call_with(
            "PATCH",
            &path,
            Some(&admin(WS)),
            Some(json!({"enabled": false})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let off = w
        .call_with(
            "PATCH",
            &path,
            Some(&admin(WS)),
            Some(json!({"enabled": false, "events": ["key.rotated"], "description": null})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.body["enabled"], false);
    assert_eq!(off.body["events"], json!(["key.rotated"]));
    assert!(off.body["description"].is_null());
    assert_eq!(off.headers["etag"], "\"2\"");
    for (method, p) in [
        ("GET", path.clone()),
        ("DELETE", path.clone()),
        ("POST", format!("{path}/test")),
    ] {
        let other = w
            .call(
                method,
                &p.replace("/acme/", "/other/"),
                &admin("other"),
                None,
            )
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{method} {p}");
    }
    let viewer = hs(&claims(WS, &["api.webhook.view"]));
    assert_eq!(
        w.call("DELETE", &path, &viewer, None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call("DELETE", &path, &admin(WS), None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        w.call("GET", &path, &admin(WS), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.call("GET", &format!("{HOOKS}/wh_nope"), &admin(WS), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
