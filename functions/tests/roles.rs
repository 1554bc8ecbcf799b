//! Roles through the handlers (in-memory store): the API, keys holding roles, effective
//! permissions, `role_in_use`, and every way a role could be used to escalate.

mod support;

use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use support::*;

const WS: &str = "acme";
const ROLES: &str = "/v1/workspaces/acme/roles";
const KEYS: &str = "/v1/workspaces/acme/keys";

fn role_path(name: &str) -> String {
    format!("{ROLES}/{name}")
}

async fn make_role(w: &World, token: &str, name: &str, perms: &[&str]) -> Resp {
    w.call(
        "POST",
        ROLES,
        token,
        Some(json!({"name": name, "permissions": perms})),
    )
    .await
}

#[tokio::test]
async fn roles_are_created_read_listed_updated_and_deleted_with_an_audit_trail() {
    let w = world();
    let a = admin(WS);
    let r = w
        .call(
            "POST",
            ROLES,
            &a,
            Some(
                json!({"name": "sms-sender", "description": "sends", "permissions": ["sms.send"]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(
        r.headers["location"],
        "/v1/workspaces/acme/roles/sms-sender"
    );
    assert_eq!(r.body["permissions"], json!(["sms.send"]));

    let again = make_role(&w, &a, "sms-sender", &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(code(&again), "role_exists");

    for name in ["b-role", "a-role"] {
        assert_eq!(
            make_role(&w, &a, name, &["x"]).await.status,
            StatusCode::CREATED
        );
    }
    let page = w.call("GET", &format!("{ROLES}?limit=2"), &a, None).await;
    let names: Vec<&str> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-role", "b-role"], "by name");
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = w
        .call("GET", &format!("{ROLES}?limit=2&cursor={cursor}"), &a, None)
        .await;
    assert_eq!(rest.body["data"][0]["name"], "sms-sender");
    assert_eq!(rest.body["has_more"], false);

    let stale = w
        .call_with(
            "PATCH",
            &role_path("sms-sender"),
            Some(&a),
            Some(json!({"permissions": ["sms.send", "billing.read"]})),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let patched = w
        .call_with(
            "PATCH",
            &role_path("sms-sender"),
            Some(&a),
            Some(json!({"permissions": ["sms.send", "billing.read"], "description": null})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["version"], 2);
    assert_eq!(patched.body["description"], Value::Null);
    let got = w.call("GET", &role_path("sms-sender"), &a, None).await;
    assert_eq!(got.body["permissions"], json!(["sms.send", "billing.read"]));

    let gone = w.call("DELETE", &role_path("a-role"), &a, None).await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(
        w.call("GET", &role_path("a-role"), &a, None).await.status,
        StatusCode::NOT_FOUND
    );
    let audit = w
        .call("GET", "/v1/workspaces/acme/audit?limit=100", &a, None)
        .await;
    let actions: Vec<(&str, &str)> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for want in [
        ("role.create", "sms-sender"),
        ("role.update", "sms-sender"),
        ("role.delete", "a-role"),
    ] {
        assert!(actions.contains(&want), "{want:?} in {actions:?}");
    }
}

#[tokio::test]
async fn bad_role_bodies_and_names_are_refused_naming_the_field() {
    let w = world();
    let a = admin(WS);
    let r = w
        .call(
            "POST",
            ROLES,
            &a,
            Some(json!({"name": "Bad Name", "permissions": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "permissions"]);
    // A path name that cannot be a role is not found, never a server error.
    for path in [
        role_path("NOPE"),
        role_path("a%2Fb"),
        role_path(&"a".repeat(65)),
    ] {
        assert_eq!(
            w.call("GET", &path, &a, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn keys_hold_roles_and_show_their_effective_permissions() {
    let w = world();
    let a = admin(WS);
    make_role(&w, &a, "sms-sender", &["sms.send"]).await;
    make_role(&w, &a, "billing", &["billing.read", "sms.send"]).await;

    let unknown = w
        .call(
            "POST",
            KEYS,
            &a,
            Some(json!({"name": "k", "roles": ["sms-sender", "ghost"]})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.text.contains("ghost"), "{}", unknown.text);

    let too_many: Vec<String> = (0..11).map(|i| format!("r{i}")).collect();
    let r = w
        .call(
            "POST",
            KEYS,
            &a,
            Some(json!({"name": "k", "roles": too_many})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errors"][0]["field"], "roles");

    let key = w
        .create(
            WS,
            json!({"name": "k", "scopes": ["read"], "roles": ["sms-sender"]}),
        )
        .await;
    assert_eq!(key.body["roles"], json!(["sms-sender"]));
    assert_eq!(key.body["permissions"], json!(["read", "sms.send"]));
    let path = format!("{KEYS}/{}", id(&key));
    let patched = w
        .call(
            "PATCH",
            &path,
            &a,
            Some(json!({"roles": ["sms-sender", "billing"]})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        patched.body["permissions"],
        json!(["read", "sms.send", "billing.read"])
    );

    // A role change is every holder's change.
    w.call(
        "PATCH",
        &role_path("billing"),
        &a,
        Some(json!({"permissions": ["billing.write"]})),
    )
    .await;
    let got = w.call("GET", &path, &a, None).await;
    assert_eq!(
        got.body["permissions"],
        json!(["read", "sms.send", "billing.write"])
    );

    // Rotation copies the roles.
    let rotated = w.call("POST", &format!("{path}/rotate"), &a, None).await;
    assert_eq!(rotated.body["roles"], json!(["sms-sender", "billing"]));

    let other = w.create(WS, json!({"name": "plain"})).await;
    let listed = w
        .call("GET", &format!("{KEYS}?role=billing"), &a, None)
        .await;
    let ids: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id(&key)]);
    assert!(!ids.contains(&id(&other).as_str()));
    let bad = w
        .call("GET", &format!("{KEYS}?role=Not%20A%20Role"), &a, None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_role_in_use_cannot_be_deleted_until_its_holders_are_revoked_or_changed() {
    let w = world();
    let a = admin(WS);
    make_role(&w, &a, "sms-sender", &["sms.send"]).await;
    let k1 = w
        .create(WS, json!({"name": "k1", "roles": ["sms-sender"]}))
        .await;
    let k2 = w
        .create(WS, json!({"name": "k2", "roles": ["sms-sender"]}))
        .await;
    let del = w.call("DELETE", &role_path("sms-sender"), &a, None).await;
    assert_eq!(del.status, StatusCode::CONFLICT);
    assert_eq!(code(&del), "role_in_use");

    w.call("DELETE", &format!("{KEYS}/{}", id(&k1)), &a, None)
        .await;
    let still = w.call("DELETE", &role_path("sms-sender"), &a, None).await;
    assert_eq!(code(&still), "role_in_use", "k2 still holds it");
    w.call(
        "PATCH",
        &format!("{KEYS}/{}", id(&k2)),
        &a,
        Some(json!({"roles": null})),
    )
    .await;
    let del = w.call("DELETE", &role_path("sms-sender"), &a, None).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text);
    // A key can no longer be given the deleted role.
    let r = w
        .call(
            "POST",
            KEYS,
            &a,
            Some(json!({"name": "k3", "roles": ["sms-sender"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn no_caller_escalates_through_a_role() {
    let w = world();
    let a = admin(WS);
    let role_creator = hs(&claims(WS, &["api.role.create"]));
    let r = make_role(&w, &role_creator, "deleter", &["api.key.delete"]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&r), "permission_escalation");
    assert!(r.text.contains("api.key.delete"));
    let r = make_role(&w, &role_creator, "billing", &["billing.read", "*"]).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "product permissions are the manager's"
    );

    // Updating a role into (or out of) management power the caller lacks.
    let updater = hs(&claims(WS, &["api.role.update"]));
    let up = w
        .call(
            "PATCH",
            &role_path("billing"),
            &updater,
            Some(json!({"permissions": ["api.*"]})),
        )
        .await;
    assert_eq!(code(&up), "permission_escalation");
    make_role(&w, &a, "admin", &["api.*"]).await;
    let demote = w
        .call(
            "PATCH",
            &role_path("admin"),
            &updater,
            Some(json!({"permissions": []})),
        )
        .await;
    assert_eq!(code(&demote), "permission_escalation");

    // A key manager cannot hand out a powerful role, on create or on PATCH.
    let creator = hs(&claims(WS, &["api.key.create", "api.key.update"]));
    let r = w
        .call(
            "POST",
            KEYS,
            &creator,
            Some(json!({"name": "x", "roles": ["admin"]})),
        )
        .await;
    assert_eq!(code(&r), "permission_escalation");
    let plain = w
        .call(
            "POST",
            KEYS,
            &creator,
            Some(json!({"name": "x", "roles": ["billing"]})),
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED);
    let r = w
        .call(
            "PATCH",
            &format!("{KEYS}/{}", id(&plain)),
            &creator,
            Some(json!({"roles": ["billing", "admin"]})),
        )
        .await;
    assert_eq!(code(&r), "permission_escalation");
    // Nor rotate a key that is powerful through its role.
    let powerful = w.create(WS, json!({"name": "p", "roles": ["admin"]})).await;
    let r = w
        .call(
            "POST",
            &format!("{KEYS}/{}/rotate", id(&powerful)),
            &creator,
            None,
        )
        .await;
    assert_eq!(code(&r), "permission_escalation");
    // And a role raised above a key manager's power makes its holders untouchable to them.
    w.call(
        "PATCH",
        &role_path("billing"),
        &a,
        Some(json!({"permissions": ["api.key.delete"]})),
    )
    .await;
    let r = w
        .call(
            "PATCH",
            &format!("{KEYS}/{}", id(&plain)),
            &creator,
            Some(json!({"name": "y"})),
        )
        .await;
    assert_eq!(code(&r), "permission_escalation");
}

#[tokio::test]
async fn a_root_key_manages_the_workspace_with_its_roles_permissions() {
    let w = world();
    let a = admin(WS);
    make_role(&w, &a, "viewer", &["api.key.view"]).await;
    let root = w
        .create(WS, json!({"name": "root", "roles": ["viewer"]}))
        .await;
    let secret = root.body["key"].as_str().unwrap();
    let listed = w.call("GET", KEYS, secret, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let create = w
        .call("POST", KEYS, secret, Some(json!({"name": "x"})))
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    // Taking the permission off the role takes it off the key at once.
    w.call(
        "PATCH",
        &role_path("viewer"),
        &a,
        Some(json!({"permissions": []})),
    )
    .await;
    assert_eq!(
        w.call("GET", KEYS, secret, None).await.status,
        StatusCode::FORBIDDEN
    );
}
