//! Handler tests through the same entry point Lambda calls, on the in-memory store.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keyward_common::PresentedKey;
use keyward_functions::Operation;
use lambda_http::Body;
use lambda_http::http::{self, StatusCode};
use serde_json::{Value, json};

mod support;

use support::*;

#[tokio::test]
async fn the_whole_lifecycle_works_and_every_step_is_audited() {
    let w = world();
    let t = admin("acme");
    let created = w
        .create(
            "acme",
            json!({"name": "ci", "scopes": ["read"], "owner_id": "u1", "expires_in": 3600}),
        )
        .await;
    let secret = created.body["key"].as_str().unwrap().to_owned();
    let parsed = PresentedKey::parse(&secret).expect("a well-formed key with a valid checksum");
    assert_eq!(parsed.prefix(), "kw");
    assert_eq!(created.body["key_prefix"], parsed.display_prefix());
    assert_eq!(
        created.body["warning"],
        "Store this key now: it will not be shown again."
    );
    assert_eq!(created.headers["etag"], "\"1\"");
    let kid = id(&created);
    assert_eq!(
        created.headers["location"],
        format!("/v1/workspaces/acme/keys/{kid}").as_str()
    );
    let path = format!("/v1/workspaces/acme/keys/{kid}");

    let got = w.call("GET", &path, &t, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["name"], "ci");
    assert!(got.body.get("key").is_none() && got.body.get("hash").is_none());
    assert!(!got.text.contains(&secret));

    let list = w.call("GET", "/v1/workspaces/acme/keys", &t, None).await;
    assert_eq!(list.body["data"][0]["id"], kid.as_str());
    assert_eq!(list.body["next_cursor"], Value::Null);
    assert_eq!(list.body["has_more"], false);

    let patched = w
        .call("PATCH", &path, &t, Some(json!({"name": "renamed"})))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["version"], 2);
    assert_eq!(patched.headers["etag"], "\"2\"");

    let rotated = w.call("POST", &format!("{path}/rotate"), &t, None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let second = rotated.body["key"].as_str().unwrap().to_owned();
    assert_ne!(second, secret);
    assert_eq!(rotated.body["id"], kid.as_str());
    assert_eq!(rotated.body["name"], "renamed");
    assert_eq!(w.store.hash_count(), 1, "no grace: the old hash is gone");

    let graced = w
        .call(
            "POST",
            &format!("{path}/rotate"),
            &t,
            Some(json!({"grace_period_s": 300})),
        )
        .await;
    assert_eq!(graced.status, StatusCode::OK);
    assert_eq!(w.store.hash_count(), 2, "grace: the old hash stays");
    let again = w
        .call(
            "POST",
            &format!("{path}/rotate"),
            &t,
            Some(json!({"grace_period_s": 300})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(w.store.hash_count(), 2, "an earlier grace hash is dropped");

    let revoked = w.call("DELETE", &path, &t, None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.body["status"], "revoked");
    let twice = w.call("DELETE", &path, &t, None).await;
    assert_eq!(twice.status, StatusCode::OK);
    assert_eq!(twice.body, revoked.body);
    assert_eq!(w.store.active_keys("acme"), 0);

    let late = w
        .call("PATCH", &path, &t, Some(json!({"status": "active"})))
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(code(&late), "key_revoked");
    let late = w.call("POST", &format!("{path}/rotate"), &t, None).await;
    assert_eq!(code(&late), "key_revoked");

    let audit = w.call("GET", "/v1/workspaces/acme/audit", &t, None).await;
    // Events of the same millisecond have no order among themselves: compare as a set.
    let mut actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "key.create",
            "key.revoke",
            "key.rotate",
            "key.rotate",
            "key.rotate",
            "key.update",
        ]
    );
    assert_eq!(audit.body["data"][0]["actor"], "jwt:admin");
    assert_eq!(audit.body["data"][0]["key_id"], kid.as_str());
    assert!(!audit.text.contains(&secret) && !audit.text.contains(&second));
}

#[tokio::test]
async fn patch_sets_clears_and_keeps_fields() {
    let w = world();
    let t = admin("acme");
    let created = w
        .create(
            "acme",
            json!({"name": "n", "owner_id": "u1", "meta": {"plan": "pro"},
                   "allowed_ips": ["10.0.0.1"], "rate_limit": {"limit": 5, "period_s": 60},
                   "expires_in": 600}),
        )
        .await;
    let path = format!("/v1/workspaces/acme/keys/{}", id(&created));
    let r = w
        .call(
            "PATCH",
            &path,
            &t,
            Some(json!({"owner_id": null, "meta": null, "allowed_ips": null,
                        "rate_limit": null, "expires_at": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["owner_id"], Value::Null);
    assert_eq!(r.body["meta"], Value::Null);
    assert_eq!(r.body["allowed_ips"], json!([]));
    assert_eq!(r.body["rate_limit"], Value::Null);
    assert_eq!(r.body["expires_at"], Value::Null);
    assert_eq!(r.body["name"], "n", "absent fields are kept");

    let r = w
        .call(
            "PATCH",
            &path,
            &t,
            Some(json!({"allowed_ips": ["192.0.2.0/24"], "status": "disabled"})),
        )
        .await;
    assert_eq!(r.body["allowed_ips"], json!(["192.0.2.0/24"]));
    assert_eq!(r.body["status"], "disabled");
    assert_eq!(r.body["version"], 3);

    let same = w.call("PATCH", &path, &t, Some(json!({}))).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.body["version"], 3, "an empty patch changes nothing");
}

#[tokio::test]
async fn if_match_must_name_the_current_version() {
    let w = world();
    let t = admin("acme");
    let created = w.create("acme", json!({"name": "n"})).await;
    let path = format!("/v1/workspaces/acme/keys/{}", id(&created));
    let ok = w
        .call_with(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"name": "a"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let stale = w
        .call_with(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"name": "b"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(code(&stale), "precondition_failed");
    let weak = w
        .call_with(
            "PATCH",
            &path,
            Some(&t),
            Some(json!({"name": "c"})),
            &[("if-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(weak.status, StatusCode::OK);
}

#[tokio::test]
async fn another_workspace_sees_nothing_of_a_workspaces_keys() {
    let w = world();
    for i in 0..3 {
        w.create("acme", json!({"name": format!("k{i}")})).await;
    }
    let kid = id(&w.create("acme", json!({"name": "target"})).await);
    let other = admin("globex");
    // Globex's token on acme's paths: 404, never 403.
    let path = format!("/v1/workspaces/acme/keys/{kid}");
    for (m, p) in [
        ("GET", path.clone()),
        ("PATCH", path.clone()),
        ("DELETE", path.clone()),
        ("POST", format!("{path}/rotate")),
        ("GET", "/v1/workspaces/acme/keys".to_owned()),
        ("GET", "/v1/workspaces/acme/audit".to_owned()),
        ("POST", "/v1/workspaces/acme/keys".to_owned()),
    ] {
        let body = (m == "PATCH" || m == "POST").then(|| json!({"name": "x"}));
        let r = w.call(m, &p, &other, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}");
        assert_eq!(code(&r), "not_found");
    }
    // Acme's key id under globex's own workspace: 404 too.
    let r = w
        .call(
            "GET",
            &format!("/v1/workspaces/globex/keys/{kid}"),
            &other,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let list = w
        .call("GET", "/v1/workspaces/globex/keys", &other, None)
        .await;
    assert_eq!(list.body["data"], json!([]));
    // Acme's cursor is refused in globex.
    let page = w
        .call(
            "GET",
            "/v1/workspaces/acme/keys?limit=2",
            &admin("acme"),
            None,
        )
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let r = w
        .call(
            "GET",
            &format!("/v1/workspaces/globex/keys?cursor={cursor}"),
            &other,
            None,
        )
        .await;
    assert_eq!(code(&r), "invalid_cursor");
}

#[tokio::test]
async fn lists_page_newest_first_and_filter_by_status_and_owner() {
    let w = world();
    let t = admin("acme");
    let mut ids = Vec::new();
    for i in 0..5 {
        let owner = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(id(&w
            .create("acme", json!({"name": format!("k{i}"), "owner_id": owner}))
            .await));
        // Key ids sort by millisecond; keep creations apart.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let mut seen = Vec::new();
    let mut url = "/v1/workspaces/acme/keys?limit=2".to_owned();
    loop {
        let r = w.call("GET", &url, &t, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        for k in r.body["data"].as_array().unwrap() {
            seen.push(k["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/workspaces/acme/keys?limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);

    let r = w
        .call("GET", "/v1/workspaces/acme/keys?owner_id=odd", &t, None)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    w.call(
        "DELETE",
        &format!("/v1/workspaces/acme/keys/{}", ids[0]),
        &t,
        None,
    )
    .await;
    let r = w
        .call("GET", "/v1/workspaces/acme/keys?status=revoked", &t, None)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    // A cursor is bound to its filters.
    let p = w
        .call(
            "GET",
            "/v1/workspaces/acme/keys?limit=1&status=active",
            &t,
            None,
        )
        .await;
    let c = p.body["next_cursor"].as_str().unwrap();
    let r = w
        .call(
            "GET",
            &format!("/v1/workspaces/acme/keys?cursor={c}"),
            &t,
            None,
        )
        .await;
    assert_eq!(code(&r), "invalid_cursor");
}

#[tokio::test]
async fn the_active_key_cap_refuses_creation_until_a_key_is_revoked() {
    let w = world_with(config(&[("KEYWARD_MAX_ACTIVE_KEYS", "2")], "HS256", SECRET));
    let t = admin("acme");
    let first = id(&w.create("acme", json!({"name": "a"})).await);
    w.create("acme", json!({"name": "b"})).await;
    let r = w
        .call(
            "POST",
            "/v1/workspaces/acme/keys",
            &t,
            Some(json!({"name": "c"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(code(&r), "key_limit_reached");
    w.call(
        "DELETE",
        &format!("/v1/workspaces/acme/keys/{first}"),
        &t,
        None,
    )
    .await;
    w.create("acme", json!({"name": "c"})).await;
}

#[tokio::test]
async fn bad_input_gets_the_documented_status_and_code() {
    let w = world();
    let t = admin("acme");
    let kid = id(&w.create("acme", json!({"name": "n"})).await);
    let key_path = format!("/v1/workspaces/acme/keys/{kid}");
    let keys = "/v1/workspaces/acme/keys";
    let json_ct = [("content-type", "application/json")];
    // (method, path, body, headers, status, code)
    type Case<'a> = (
        &'a str,
        String,
        Option<Body>,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            keys.into(),
            Some(Body::Text(r#"{"name":"a","bogus":1}"#.into())),
            json_ct.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "POST",
            keys.into(),
            Some(Body::Text("{not json".into())),
            json_ct.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            keys.into(),
            Some(Body::Text("[1]".into())),
            json_ct.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            keys.into(),
            Some(Body::Text(r#"{"name":"a"}"#.into())),
            vec![("content-type", "text/plain")],
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            keys.into(),
            Some(Body::Text(r#"{"name":"a"}"#.into())),
            vec![],
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            keys.into(),
            Some(Body::Text(format!(
                r#"{{"name":"{}"}}"#,
                "a".repeat(70_000)
            ))),
            json_ct.to_vec(),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            keys.into(),
            Some(Body::Text(r#"{"name":"a","scopes":["no spaces"]}"#.into())),
            json_ct.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "PATCH",
            key_path.clone(),
            Some(Body::Text(r#"{"status":"revoked"}"#.into())),
            json_ct.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "PATCH",
            key_path.clone(),
            Some(Body::Text(r#"{"id":"key_x"}"#.into())),
            json_ct.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "POST",
            format!("{key_path}/rotate"),
            Some(Body::Text(r#"{"grace_period_s":604801}"#.into())),
            json_ct.to_vec(),
            400,
            "validation_failed",
        ),
        (
            "GET",
            format!("{keys}?limit=0"),
            None,
            vec![],
            400,
            "validation_failed",
        ),
        (
            "GET",
            format!("{keys}?limit=101"),
            None,
            vec![],
            400,
            "validation_failed",
        ),
        (
            "GET",
            format!("{keys}?status=gone"),
            None,
            vec![],
            400,
            "validation_failed",
        ),
        (
            "GET",
            format!("{keys}?sort=asc"),
            None,
            vec![],
            400,
            "validation_failed",
        ),
        (
            "GET",
            format!("{keys}?cursor=abc.def"),
            None,
            vec![],
            400,
            "invalid_cursor",
        ),
        (
            "GET",
            "/v1/workspaces/acme/keys/key_nope".into(),
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/workspaces/acme/keys/key_0000000000000000000000".into(),
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/workspaces/acme/nothing".into(),
            None,
            vec![],
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/workspaces/bad%23ws/keys".into(),
            None,
            vec![],
            400,
            "validation_failed",
        ),
    ];
    for (m, p, body, headers, status, c) in cases {
        let mut b = http::Request::builder()
            .method(m)
            .uri(p.as_str())
            .header("authorization", format!("Bearer {t}"));
        for (k, v) in &headers {
            b = b.header(*k, *v);
        }
        let r = w
            .send(
                function_for(m, &p),
                b.body(body.unwrap_or(Body::Empty)).unwrap(),
            )
            .await;
        assert_eq!(r.status.as_u16(), status, "{m} {p}: {}", r.text);
        assert_eq!(code(&r), c, "{m} {p}");
        assert_eq!(
            r.headers["content-type"], "application/problem+json",
            "{m} {p}"
        );
        assert!(r.body["request_id"].is_string());
    }
}

#[tokio::test]
async fn a_method_the_function_does_not_serve_is_405_with_allow() {
    let w = world();
    let req = http::Request::builder()
        .method("PUT")
        .uri("/v1/workspaces/acme/keys/key_0000000000000000000000")
        .body(Body::Empty)
        .unwrap();
    let r = w.send(Operation::GetKey.function(), req).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET");
    assert_eq!(code(&r), "method_not_allowed");
}

#[tokio::test]
async fn every_answer_carries_the_request_id_in_body_and_header() {
    let w = world();
    let r = w
        .call_with("GET", "/v1/workspaces/acme/keys", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let id = r.body["request_id"].as_str().unwrap();
    assert_eq!(r.headers["x-request-id"], id);
}

#[tokio::test]
async fn bad_jwts_are_unauthorized() {
    let w = world();
    let path = "/v1/workspaces/acme/keys";
    let mut expired = claims("acme", &ALL);
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = claims("acme", &ALL);
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("acme", &ALL);
    wrong_iss["iss"] = json!("https://evil.example/");
    let mut no_exp = claims("acme", &ALL);
    no_exp.as_object_mut().unwrap().remove("exp");
    let wrong_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims("acme", &ALL),
        &EncodingKey::from_secret(b"another-secret-0123456789"),
    )
    .unwrap();
    // alg none: header {"alg":"none"}, any payload, empty signature.
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("acme", &ALL))
    );
    for token in [
        hs(&expired),
        hs(&wrong_aud),
        hs(&wrong_iss),
        hs(&no_exp),
        wrong_secret,
        none,
        "garbage".to_owned(),
    ] {
        let r = w.call("GET", path, &token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(code(&r), "unauthorized");
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rs256_public_key_is_refused() {
    let public = include_str!("fixtures/rsa_public.pem");
    let private = include_str!("fixtures/rsa_private.pem");
    let w = world_with(config(&[], "RS256", public));
    let path = "/v1/workspaces/acme/keys";
    let good = encode(
        &Header::new(Algorithm::RS256),
        &claims("acme", &ALL),
        &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        w.call("GET", path, &good, None).await.status,
        StatusCode::OK
    );
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("acme", &ALL),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        w.call("GET", path, &confused, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn es256_tokens_verify_with_a_p256_public_key() {
    let w = world_with(config(&[], "ES256", include_str!("fixtures/ec_public.pem")));
    let token = encode(
        &Header::new(Algorithm::ES256),
        &claims("acme", &["api.key.view"]),
        &EncodingKey::from_ec_pem(include_bytes!("fixtures/ec_private.pem")).unwrap(),
    )
    .unwrap();
    let r = w
        .call("GET", "/v1/workspaces/acme/keys", &token, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_view_only_caller_is_forbidden_every_mutation() {
    let w = world();
    let kid = id(&w.create("acme", json!({"name": "n"})).await);
    let viewer = hs(&claims("acme", &["api.key.view"]));
    let path = format!("/v1/workspaces/acme/keys/{kid}");
    assert_eq!(
        w.call("GET", &path, &viewer, None).await.status,
        StatusCode::OK
    );
    for (m, p, body) in [
        (
            "POST",
            "/v1/workspaces/acme/keys".to_owned(),
            Some(json!({"name": "x"})),
        ),
        ("PATCH", path.clone(), Some(json!({"name": "x"}))),
        ("DELETE", path.clone(), None),
        ("POST", format!("{path}/rotate"), None),
    ] {
        let r = w.call(m, &p, &viewer, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {p}");
        assert_eq!(code(&r), "forbidden");
    }
}

#[tokio::test]
async fn a_root_key_works_only_with_the_permission_in_its_own_workspace() {
    let w = world();
    let root = w
        .create(
            "acme",
            json!({"name": "root", "scopes": ["api.key.view", "api.key.create"]}),
        )
        .await;
    let root_key = root.body["key"].as_str().unwrap().to_owned();
    let root_id = id(&root);
    let made = w
        .call(
            "POST",
            "/v1/workspaces/acme/keys",
            &root_key,
            Some(json!({"name": "child"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let child = id(&made);
    let audit = w
        .call("GET", "/v1/workspaces/acme/audit", &root_key, None)
        .await;
    let event = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key_id"] == child.as_str())
        .unwrap()
        .clone();
    assert_eq!(event["actor"], format!("key:{root_id}"));
    let r = w
        .call(
            "DELETE",
            &format!("/v1/workspaces/acme/keys/{child}"),
            &root_key,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .call("GET", "/v1/workspaces/globex/keys", &root_key, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A well-formed key that was never issued.
    let unknown = keyward_common::SecretKey::generate("kw", |b: &mut [u8]| b.fill(1)).unwrap();
    let r = w
        .call("GET", "/v1/workspaces/acme/keys", unknown.expose(), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Disabled, then revoked: refused.
    let admin = admin("acme");
    let root_path = format!("/v1/workspaces/acme/keys/{root_id}");
    w.call(
        "PATCH",
        &root_path,
        &admin,
        Some(json!({"status": "disabled"})),
    )
    .await;
    let r = w
        .call("GET", "/v1/workspaces/acme/keys", &root_key, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    w.call("DELETE", &root_path, &admin, None).await;
    let r = w
        .call("GET", "/v1/workspaces/acme/keys", &root_key, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_rotated_root_key_keeps_working_only_during_its_grace_period() {
    let w = world();
    let admin = admin("acme");
    let root = w
        .create("acme", json!({"name": "root", "scopes": ["api.key.view"]}))
        .await;
    let old = root.body["key"].as_str().unwrap().to_owned();
    let path = format!("/v1/workspaces/acme/keys/{}", id(&root));
    let r = w
        .call(
            "POST",
            &format!("{path}/rotate"),
            &admin,
            Some(json!({"grace_period_s": 600})),
        )
        .await;
    let new = r.body["key"].as_str().unwrap().to_owned();
    for k in [&old, &new] {
        let r = w.call("GET", "/v1/workspaces/acme/keys", k, None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    w.call("POST", &format!("{path}/rotate"), &admin, None)
        .await;
    for k in [&old, &new] {
        let r = w.call("GET", "/v1/workspaces/acme/keys", k, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn default_and_allowed_scopes_come_from_configuration() {
    let w = world_with(config(
        &[
            ("KEYWARD_DEFAULT_SCOPES", "read"),
            ("KEYWARD_ALLOWED_SCOPES", "read,write"),
            ("KEYWARD_DEFAULT_PREFIX", "acme"),
        ],
        "HS256",
        SECRET,
    ));
    let r = w.create("acme", json!({"name": "n"})).await;
    assert_eq!(r.body["scopes"], json!(["read"]));
    assert!(r.body["key"].as_str().unwrap().starts_with("acme_"));
    let r = w
        .call(
            "POST",
            "/v1/workspaces/acme/keys",
            &admin("acme"),
            Some(json!({"name": "n", "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["field"], "scopes[0]");
}
