//! The authority matrix, generated from the operation table: every management operation × every
//! kind of caller, with the status each must get; then the no-escalation rules, tried the way an
//! attacker holding a low-privilege key or token would.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keyward_functions::operation::{Access, OPERATIONS, Row};
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use support::*;

const WS: &str = "acme";

/// A kind of caller and the credentials it sends.
struct CallerKind {
    name: String,
    token: Option<String>,
    /// What it gets on `row`, given the row's permission.
    expect: Box<dyn Fn(&Row) -> u16>,
}

fn permission_of(row: &Row) -> &'static str {
    match row.access {
        Access::Permission(p) => p.as_str(),
        Access::SignedBatch | Access::Public => unreachable!("not a management row"),
    }
}

/// The status a successful call of `row` answers.
fn success(row: &Row) -> u16 {
    let creates = (row.method == "POST"
        && !row.path.ends_with("/rotate")
        && !row.path.ends_with("/import")
        && !row.path.ends_with("/test")
        && !row.path.ends_with("/credits"))
        // A PUT of an owner that does not exist yet.
        || row.method == "PUT";
    if creates { 201 } else { 200 }
}

fn token(claims: &Value, alg: Algorithm, secret: &str) -> String {
    encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A JWT with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

async fn root_key(w: &World, ws: &str, scopes: &[&str]) -> String {
    let r = w
        .create(ws, json!({"name": "root", "scopes": scopes}))
        .await;
    r.body["key"].as_str().unwrap().to_owned()
}

async fn caller_kinds(w: &World) -> Vec<CallerKind> {
    let fixed = |name: &str, token: Option<String>, status: u16| CallerKind {
        name: name.to_owned(),
        token,
        expect: Box::new(move |_| status),
    };
    let base = claims(WS, &["api.*"]);
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let mut kinds = vec![
        fixed("no token", None, 401),
        fixed("garbage token", Some("not-a-token".into()), 401),
        fixed("expired", Some(hs(&with("exp", json!(now() - 3600)))), 401),
        fixed(
            "not yet valid (nbf)",
            Some(hs(&with("nbf", json!(now() + 3600)))),
            401,
        ),
        fixed("wrong aud", Some(hs(&with("aud", json!("other")))), 401),
        fixed(
            "wrong iss",
            Some(hs(&with("iss", json!("https://evil/")))),
            401,
        ),
        fixed("alg none", Some(unsigned(&base)), 401),
        fixed(
            "HS384 (not the configured algorithm)",
            Some(token(&base, Algorithm::HS384, SECRET)),
            401,
        ),
        fixed(
            "signed with another secret",
            Some(token(
                &base,
                Algorithm::HS256,
                "another-secret-of-at-least-32-bytes!",
            )),
            401,
        ),
        fixed(
            "other workspace",
            Some(hs(&claims("other", &["api.*"]))),
            404,
        ),
        fixed("JWT holding *", Some(hs(&claims(WS, &["*"]))), 403),
        fixed("JWT holding api.*", Some(hs(&claims(WS, &["api.*"]))), 0),
        CallerKind {
            name: "JWT holding api.key.*".to_owned(),
            token: Some(hs(&claims(WS, &["api.key.*"]))),
            expect: Box::new(|row| {
                if permission_of(row).starts_with("api.key.") {
                    0
                } else {
                    403
                }
            }),
        },
        fixed(
            "root key holding *",
            Some(root_key(w, WS, &["*"]).await),
            403,
        ),
        fixed(
            "root key holding api.*",
            Some(root_key(w, WS, &["api.*"]).await),
            0,
        ),
        fixed(
            "root key of another workspace",
            Some(root_key(w, "other", &["api.*"]).await),
            404,
        ),
        fixed(
            "product key (no management scope)",
            Some(root_key(w, WS, &["read", "admin"]).await),
            403,
        ),
    ];
    for single in ALL {
        kinds.push(CallerKind {
            name: format!("JWT holding only {single}"),
            token: Some(hs(&claims(WS, &[single]))),
            expect: Box::new(move |row| if permission_of(row) == single { 0 } else { 403 }),
        });
        let key = root_key(w, WS, &[single]).await;
        kinds.push(CallerKind {
            name: format!("root key holding only {single}"),
            token: Some(key),
            expect: Box::new(move |row| if permission_of(row) == single { 0 } else { 403 }),
        });
    }
    kinds
}

/// A request for `row` on a fresh target key and role (so revoke, rotate and delete always have
/// one).
async fn request_for(w: &World, row: &Row, n: usize) -> (String, Option<Value>) {
    let target = w
        .create(
            WS,
            json!({"name": "target", "scopes": ["read"], "credits": {"remaining": 10}}),
        )
        .await;
    let role = format!("role-{n}");
    let made = w
        .call(
            "POST",
            &format!("/v1/workspaces/{WS}/roles"),
            &admin(WS),
            Some(json!({"name": role, "permissions": ["read"]})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let hooks = row.path.contains("/webhooks");
    let target_id = if hooks {
        let made = w
            .call(
                "POST",
                &format!("/v1/workspaces/{WS}/webhooks"),
                &admin(WS),
                Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["key.created"]})),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
        made.body["id"].as_str().unwrap_or_default().to_owned()
    } else {
        id(&target)
    };
    let owner = format!("owner-{n}");
    let made = w
        .call(
            "PUT",
            &format!("/v1/workspaces/{WS}/owners/{owner}"),
            &admin(WS),
            Some(json!({"credits": {"remaining": 10}})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let path = row
        .path
        .replace("{workspace}", WS)
        .replace("{id}", &target_id)
        .replace("{name}", &role)
        .replace(
            "{owner_id}",
            &if row.method == "PUT" {
                format!("fresh-{n}")
            } else {
                owner
            },
        );
    if hooks {
        let body = match row.method {
            "POST" if !path.ends_with("/test") => {
                Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["key.revoked"]}))
            }
            "PATCH" => Some(json!({"description": "renamed"})),
            _ => None,
        };
        return (path, body);
    }
    let roles = row.path.contains("/roles");
    if path.ends_with("/credits") {
        return (path, Some(json!({"op": "increment", "value": 5})));
    }
    if row.method == "PUT" {
        return (path, Some(json!({"status": "active"})));
    }
    let body = match (row.method, path.ends_with("/rotate"), roles) {
        ("POST", false, false) if path.ends_with("/import") => Some(
            json!({"keys": [{"key": format!("legacy-key-{n:012}-abcdef"), "name": "imported"}]}),
        ),
        ("POST", false, false) => Some(json!({"name": "made", "scopes": ["read"]})),
        ("POST", false, true) => Some(json!({"name": format!("new-{n}"), "permissions": ["read"]})),
        ("PATCH", _, false) => Some(json!({"name": "renamed"})),
        ("PATCH", _, true) => Some(json!({"description": "renamed"})),
        _ => None,
    };
    (path, body)
}

#[tokio::test]
async fn every_operation_answers_every_kind_of_caller_as_the_matrix_says() {
    let w = world_with(config(
        &[
            ("KEYWARD_MAX_ACTIVE_KEYS", "100000"),
            ("KEYWARD_WEBHOOK_ALLOW_LOOPBACK", "true"),
            ("KEYWARD_MAX_WEBHOOKS", "100000"),
        ],
        "HS256",
        SECRET,
    ));
    let kinds = caller_kinds(&w).await;
    let rows: Vec<&Row> = OPERATIONS
        .iter()
        .filter(|r| matches!(r.access, Access::Permission(_)))
        .collect();
    assert_eq!(rows.len(), 27, "every management row is in the matrix");
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for kind in &kinds {
            let (path, body) = request_for(&w, row, cells).await;
            let want = match (kind.expect)(row) {
                0 => success(row),
                s => s,
            };
            let r = w
                .call_with(row.method, &path, kind.token.as_deref(), body, &[])
                .await;
            cells += 1;
            if r.status.as_u16() != want {
                failures.push(format!(
                    "{} {} as {}: {} (want {want}) {}",
                    row.method, row.path, kind.name, r.status, r.text
                ));
            }
            if r.status.is_client_error() {
                assert_eq!(
                    r.headers["content-type"], "application/problem+json",
                    "{} as {}",
                    row.path, kind.name
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{cells} cells, failures:\n{}",
        failures.join("\n")
    );
}

async fn attempt(w: &World, token: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    w.call_with(method, path, Some(token), body, &[]).await
}

/// Creates a key named `x` with `scopes` in [`WS`] as the holder of `token`.
async fn create_with(w: &World, token: &str, scopes: &Value) -> Resp {
    let keys = format!("/v1/workspaces/{WS}/keys");
    let body = json!({"name": "x", "scopes": scopes});
    attempt(w, token, "POST", &keys, Some(body)).await
}

#[tokio::test]
async fn a_creator_cannot_mint_a_key_with_management_power_it_lacks() {
    let w = world();
    let creator = hs(&claims(WS, &["api.key.create"]));
    for scopes in [
        json!(["api.*"]),
        json!(["api.key.delete"]),
        json!(["api.key.*"]),
    ] {
        let r = create_with(&w, &creator, &scopes).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{scopes}: {}", r.text);
        assert_eq!(code(&r), "permission_escalation");
        let named = scopes[0].as_str().unwrap();
        assert!(
            r.body["detail"].as_str().unwrap().contains(named),
            "{}",
            r.text
        );
    }
    assert_eq!(w.store.active_keys(WS), 0, "nothing was written");
    // Product permissions, `*` included, and what it holds itself are its to hand out.
    for scopes in [
        json!(["*"]),
        json!(["sms.send", "admin"]),
        json!(["api.key.create"]),
    ] {
        let r = create_with(&w, &creator, &scopes).await;
        assert_eq!(r.status, StatusCode::CREATED, "{scopes}: {}", r.text);
    }
}

#[tokio::test]
async fn the_allowed_scopes_setting_does_not_open_a_way_to_management_power() {
    let w = world_with(config(
        &[("KEYWARD_ALLOWED_SCOPES", "read,write")],
        "HS256",
        SECRET,
    ));
    let creator = hs(&claims(WS, &["api.key.create"]));
    for scopes in [json!(["api.*"]), json!(["*"])] {
        let r = create_with(&w, &creator, &scopes).await;
        assert_eq!(r.status.as_u16() / 100, 4, "{scopes}: {}", r.text);
        assert_ne!(r.status, StatusCode::CREATED);
    }
}

#[tokio::test]
async fn an_updater_cannot_raise_its_own_key_or_take_over_a_stronger_one() {
    let w = world();
    let own = w
        .create(
            WS,
            json!({"name": "updater", "scopes": ["api.key.update", "api.key.view"]}),
        )
        .await;
    let secret = own.body["key"].as_str().unwrap().to_owned();
    let own_path = format!("/v1/workspaces/{WS}/keys/{}", id(&own));
    let r = attempt(
        &w,
        &secret,
        "PATCH",
        &own_path,
        Some(json!({"scopes": ["api.*"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(code(&r), "permission_escalation");

    let strong = w
        .create(WS, json!({"name": "admin", "scopes": ["api.*"]}))
        .await;
    let strong_path = format!("/v1/workspaces/{WS}/keys/{}", id(&strong));
    // Renaming, re-enabling, or rotating (which hands over a working secret) a stronger key.
    let r = attempt(
        &w,
        &secret,
        "PATCH",
        &strong_path,
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(code(&r), "permission_escalation", "{}", r.text);
    let r = attempt(&w, &secret, "POST", &format!("{strong_path}/rotate"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(code(&r), "permission_escalation");
    assert!(r.body.get("key").is_none(), "no secret handed over");
    // Its own product scopes stay its to change.
    let r = attempt(
        &w,
        &secret,
        "PATCH",
        &own_path,
        Some(json!({"scopes": ["api.key.update", "read"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn revoking_needs_only_the_delete_permission() {
    let w = world();
    let strong = w
        .create(WS, json!({"name": "admin", "scopes": ["api.*"]}))
        .await;
    let deleter = hs(&claims(WS, &["api.key.delete"]));
    let path = format!("/v1/workspaces/{WS}/keys/{}", id(&strong));
    let r = attempt(&w, &deleter, "DELETE", &path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "revoked");
}

#[tokio::test]
async fn verification_keys_are_chosen_by_kid_so_the_signing_key_can_rotate() {
    let old = "old-signing-secret-of-32-bytes-000000";
    let new = "new-signing-secret-of-32-bytes-111111";
    let keys = format!(r#"[{{"kid": "old", "key": "{old}"}}, {{"kid": "new", "key": "{new}"}}]"#);
    let cfg = keyward_functions::Config::from_lookup(|k| match k {
        "KEYWARD_TABLE" => Some("t".into()),
        "KEYWARD_JWT_ALG" => Some("HS256".into()),
        "KEYWARD_JWT_KEY" => Some(keys.clone()),
        "KEYWARD_JWT_ISSUER" => Some(ISS.into()),
        "KEYWARD_JWT_AUDIENCE" => Some(AUD.into()),
        "KEYWARD_CURSOR_SECRET" => Some("cursor-secret-of-at-least-32-bytes-x".into()),
        _ => None,
    })
    .unwrap();
    let w = world_with(cfg);
    let c = claims(WS, &["api.*"]);
    let signed = |kid: Option<&str>, secret: &str| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_owned);
        encode(&h, &c, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    let keys_path = format!("/v1/workspaces/{WS}/keys");
    for (kid, secret, want) in [
        (Some("old"), old, 200),
        (Some("new"), new, 200),
        (Some("new"), old, 401),
        (Some("gone"), old, 401),
        (None, old, 401),
    ] {
        let r = attempt(&w, &signed(kid, secret), "GET", &keys_path, None).await;
        assert_eq!(r.status.as_u16(), want, "kid {kid:?}: {}", r.text);
    }
}
