//! The management API end to end: real moto, every function under `cargo lambda watch`, the
//! router at the production paths, driven over HTTP like a customer would.
//!
//! Run: `PATH=$PWD/.venv/bin:$PATH cargo test -p keyward-tests --test control_plane`
//! (`-- <words>` runs only the scenarios whose name contains one of them; `-- --list` lists them).
//!
//! One stack serves every scenario of this binary (starting it compiles and boots seven
//! functions), so this file has its own small harness: it starts the stack once, runs each
//! scenario as its own task (a panic fails that scenario only), prints libtest-style lines, and
//! stops the stack before exiting. Scenarios isolate themselves by workspace. The secret-leak
//! scenario runs last, over every secret the run created.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use keyward_common::PresentedKey;
use keyward_tests::app::{ApiResponse, TestApp, assert_key_format, assert_no_secret};
use keyward_tests::control_plane::{ControlPlane, ControlPlaneOptions, random_hex, unix_now};
use reqwest::Method;
use serde_json::{Value, json};

/// The per-deployment cap on active keys of this stack (small, so the cap is reachable).
const MAX_ACTIVE_KEYS: u64 = 12;

const ALL: &[&str] = &[
    "api.key.create",
    "api.key.view",
    "api.key.update",
    "api.key.delete",
    "api.role.create",
    "api.role.view",
    "api.role.update",
    "api.role.delete",
    "api.owner.view",
    "api.owner.update",
    "api.usage.view",
    "api.webhook.view",
    "api.webhook.manage",
];

/// What every scenario gets.
#[derive(Clone)]
struct World {
    app: TestApp,
    plane: std::sync::Arc<ControlPlane>,
}

impl World {
    /// A fresh workspace name, unique to this run.
    fn workspace(&self, label: &str) -> String {
        format!("{label}-{}", random_hex(4))
    }

    fn token(&self, workspace: &str, permissions: &[&str]) -> String {
        self.plane
            .token(workspace, permissions, "user_test")
            .expect("signing a token")
    }

    /// An app acting as a full admin of `workspace`.
    fn admin(&self, workspace: &str) -> TestApp {
        self.app.with_token(Some(self.token(workspace, ALL)))
    }
}

type Scenario = keyward_tests::scenarios::Scenario<World>;

const SCENARIOS: &[(&str, Scenario)] = keyward_tests::scenarios![
    the_whole_lifecycle_of_a_key_works_over_http,
    lists_page_newest_first_with_an_opaque_cursor,
    a_caller_of_another_workspace_gets_404_for_every_path_of_its_keys,
    a_cursor_of_one_workspace_is_rejected_in_another,
    a_view_only_caller_gets_403_on_every_mutation,
    bad_input_is_refused_with_problem_json_naming_the_cause,
    the_active_key_cap_answers_409_until_a_key_is_revoked,
    ten_concurrent_patches_with_the_same_if_match_let_exactly_one_through,
    a_root_key_manages_keys_of_its_own_workspace_only,
    roles_grant_permissions_to_keys_and_cannot_be_deleted_while_held,
    a_webhook_endpoint_receives_a_signed_test_event_over_http,
    owners_share_limits_and_credits_and_count_their_live_keys,
    // Last: it checks every secret the scenarios above created.
    no_secret_created_during_the_run_appears_in_a_function_log_line,
];

fn main() {
    keyward_tests::scenarios::main(SCENARIOS, |selected| async move { run(&selected).await });
}

async fn run(selected: &[&(&str, Scenario)]) -> usize {
    let started = Instant::now();
    let plane = ControlPlane::start(ControlPlaneOptions {
        max_active_keys: MAX_ACTIVE_KEYS,
        allowed_scopes: vec!["read".into(), "write".into(), "admin".into()],
        default_scopes: vec!["read".into()],
        // Several instances per function, so concurrent requests really race in DynamoDB.
        concurrency: 4,
        ..ControlPlaneOptions::default()
    })
    .await
    .expect("starting the control plane");
    println!(
        "control plane up in {:.1?}: {} (logs in {})",
        started.elapsed(),
        plane.url(),
        plane.log_dir().display()
    );
    let plane = std::sync::Arc::new(plane);
    let world = World {
        app: TestApp::new(&plane, None),
        plane: plane.clone(),
    };
    let failed = keyward_tests::scenarios::run_each(selected, &world).await;
    if failed > 0 {
        println!("logs: {}", plane.log_dir().display());
    }
    drop(world);
    drop(plane);
    failed
}

fn new_key(name: &str) -> Value {
    json!({ "name": name })
}

fn ids(list: &ApiResponse) -> Vec<String> {
    list.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list has data: {}", list.text))
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The settings a rotation must copy.
fn settings(record: &Value) -> Value {
    json!({
        "id": record["id"], "workspace": record["workspace"], "name": record["name"],
        "scopes": record["scopes"], "owner_id": record["owner_id"], "meta": record["meta"],
        "status": record["status"], "expires_at": record["expires_at"],
        "allowed_ips": record["allowed_ips"], "rate_limit": record["rate_limit"],
        "created_at": record["created_at"],
    })
}

async fn the_whole_lifecycle_of_a_key_works_over_http(w: World) {
    let ws = w.workspace("life");
    let app = w.admin(&ws);
    let secrets = || app.secrets();

    // Create, with every setting.
    let created = app
        .create_key(
            &ws,
            &json!({
                "name": "billing service",
                "scopes": ["read", "write"],
                "owner_id": "cust_42",
                "meta": {"plan": "pro", "seats": 3},
                "expires_in": 86_400,
                "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"],
                "rate_limit": {"limit": 100, "period_s": 60},
            }),
        )
        .await;
    created.expect_status(201);
    assert!(created.content_type().starts_with("application/json"));
    let key = created.body["key"]
        .as_str()
        .expect("create shows the key")
        .to_owned();
    assert_key_format(&key, "kw", &created.body);
    assert!(
        created.body["warning"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "create warns the key is shown once: {}",
        created.text
    );
    assert!(
        created.body.get("hash").is_none(),
        "no hash in create: {}",
        created.text
    );
    let id = created.id().to_owned();
    assert!(id.starts_with("key_"), "{id}");
    keyward_common::KeyId::parse(&id).expect("a DESIGN key id");
    assert_eq!(created.body["workspace"], ws.as_str());
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["scopes"], json!(["read", "write"]));
    assert_eq!(created.body["owner_id"], "cust_42");
    assert_eq!(created.body["meta"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(
        created.body["rate_limit"],
        json!({"limit": 100, "period_s": 60})
    );
    assert_eq!(
        created.body["allowed_ips"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    assert!(created.body["expires_at"].is_string(), "{}", created.text);
    let etag = created.etag().expect("create answers an ETag").to_owned();

    // A second key with its own prefix and default scopes.
    let other = app
        .create_key(&ws, &json!({"name": "cli", "prefix": "sk"}))
        .await;
    other.expect_status(201);
    let other_key = other.body["key"].as_str().expect("key").to_owned();
    assert!(other_key.starts_with("sk_"));
    assert_key_format(&other_key, "sk", &other.body);
    assert_eq!(other.body["scopes"], json!(["read"]), "default scopes");

    // Get: the record, never the secret or its hash.
    let got = app.get_key(&ws, &id).await;
    got.expect_status(200);
    assert_no_secret(&got, &secrets());
    assert_eq!(settings(&got.body), settings(&created.body));
    assert_eq!(got.etag(), Some(etag.as_str()));

    // List: newest first, no secrets.
    let list = app.list_keys(&ws, "").await;
    list.expect_status(200);
    assert_no_secret(&list, &secrets());
    assert_eq!(ids(&list), [other.id(), id.as_str()]);
    assert_eq!(list.body["has_more"], false);
    assert!(list.body["next_cursor"].is_null(), "{}", list.text);

    // Patch: values set, null clears, absent keeps; ETag moves on.
    let patched = app
        .update_key(
            &ws,
            &id,
            &json!({"name": "billing v2", "owner_id": null, "status": "disabled",
                    "rate_limit": {"limit": 5, "period_s": 1}}),
            Some(&etag),
        )
        .await;
    patched.expect_status(200);
    assert_eq!(patched.body["name"], "billing v2");
    assert!(patched.body["owner_id"].is_null());
    assert_eq!(patched.body["status"], "disabled");
    assert_eq!(
        patched.body["rate_limit"],
        json!({"limit": 5, "period_s": 1})
    );
    assert_eq!(
        patched.body["scopes"], created.body["scopes"],
        "absent fields are kept"
    );
    assert_eq!(patched.body["meta"], created.body["meta"]);
    assert_ne!(patched.etag(), Some(etag.as_str()));
    assert_no_secret(&patched, &secrets());
    // The old ETag is stale now.
    app.update_key(&ws, &id, &json!({"name": "late"}), Some(&etag))
        .await
        .expect_problem(412, "precondition_failed");
    // Disabled is reversible; allowed_ips null clears to [].
    let active = app
        .update_key(
            &ws,
            &id,
            &json!({"status": "active", "allowed_ips": null}),
            None,
        )
        .await;
    active.expect_status(200);
    assert_eq!(active.body["status"], "active");
    assert_eq!(active.body["allowed_ips"], json!([]));

    // Rotate without grace: a new secret, the same id and settings.
    let rotated = app.rotate_key(&ws, &id, None).await;
    rotated.expect_status(200);
    let key2 = rotated.body["key"]
        .as_str()
        .expect("rotate shows the new key")
        .to_owned();
    assert_key_format(&key2, "kw", &rotated.body);
    assert_ne!(key2, key);
    assert_eq!(rotated.id(), id);
    assert_eq!(settings(&rotated.body), settings(&active.body));

    // Rotate with a grace period.
    let graced = app
        .rotate_key(&ws, &id, Some(&json!({"grace_period_s": 3600})))
        .await;
    graced.expect_status(200);
    let key3 = graced.body["key"].as_str().expect("key").to_owned();
    assert_key_format(&key3, "kw", &graced.body);
    assert!(key3 != key2 && key3 != key);
    assert_eq!(settings(&graced.body), settings(&active.body));

    // Revoke, then revoke again: 200 with the same revoked record.
    let revoked = app.revoke_key(&ws, &id).await;
    revoked.expect_status(200);
    assert_eq!(revoked.body["status"], "revoked");
    assert_no_secret(&revoked, &secrets());
    let again = app.revoke_key(&ws, &id).await;
    again.expect_status(200);
    assert_eq!(
        again.body, revoked.body,
        "a second revoke answers the same record"
    );
    // Revoked is final.
    app.update_key(&ws, &id, &json!({"status": "active"}), None)
        .await
        .expect_problem(409, "key_revoked");
    app.rotate_key(&ws, &id, None)
        .await
        .expect_problem(409, "key_revoked");
    assert_eq!(app.get_key(&ws, &id).await.body["status"], "revoked");

    // Filters.
    let revoked_only = app.list_keys(&ws, "status=revoked").await;
    revoked_only.expect_status(200);
    assert_eq!(ids(&revoked_only), [id.as_str()]);
    let active_only = app.list_keys(&ws, "status=active").await;
    assert_eq!(ids(&active_only), [other.id()]);
    let by_owner = app.list_keys(&ws, "owner_id=cust_42").await;
    by_owner.expect_status(200);
    assert!(
        ids(&by_owner).is_empty(),
        "owner_id was cleared: {}",
        by_owner.text
    );

    // Audit: every mutation, newest first, no secrets.
    let audit = app.list_audit(&ws, "limit=100").await;
    audit.expect_status(200);
    assert_no_secret(&audit, &secrets());
    let events = audit.body["data"].as_array().expect("audit data");
    let about_key = events
        .iter()
        .filter(|e| e.to_string().contains(&id))
        .count();
    // create, patch, patch, rotate, rotate, revoke (the idempotent second revoke may or may not
    // write an event).
    assert!(about_key >= 6, "audit events for the key: {}", audit.text);
}

async fn lists_page_newest_first_with_an_opaque_cursor(w: World) {
    let ws = w.workspace("pages");
    let app = w.admin(&ws);
    let mut created = Vec::new();
    for i in 0..5 {
        let r = app.create_key(&ws, &new_key(&format!("k{i}"))).await;
        r.expect_status(201);
        created.push(r.id().to_owned());
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    for page in 0.. {
        let r = app.list_keys(&ws, &query).await;
        r.expect_status(200);
        seen.extend(ids(&r));
        if r.body["has_more"] == false {
            assert!(r.body["next_cursor"].is_null(), "{}", r.text);
            break;
        }
        let cursor = r.body["next_cursor"]
            .as_str()
            .expect("a cursor when has_more");
        query = format!("limit=2&cursor={cursor}");
        assert!(page < 5, "paging does not end");
    }
    assert_eq!(seen, created, "every key once, newest first");
}

async fn a_caller_of_another_workspace_gets_404_for_every_path_of_its_keys(w: World) {
    let ws_a = w.workspace("iso-a");
    let ws_b = w.workspace("iso-b");
    let a = w.admin(&ws_a);
    let b = w.admin(&ws_b);
    let key = a.create_key(&ws_a, &new_key("a's key")).await;
    key.expect_status(201);
    let id = key.id();
    b.create_key(&ws_b, &new_key("b's key"))
        .await
        .expect_status(201);

    // B's credential on A's paths.
    b.get_key(&ws_a, id).await.expect_problem(404, "not_found");
    b.update_key(&ws_a, id, &json!({"name": "x"}), None)
        .await
        .expect_problem(404, "not_found");
    b.rotate_key(&ws_a, id, None)
        .await
        .expect_problem(404, "not_found");
    b.revoke_key(&ws_a, id)
        .await
        .expect_problem(404, "not_found");
    b.list_keys(&ws_a, "")
        .await
        .expect_problem(404, "not_found");
    b.list_audit(&ws_a, "")
        .await
        .expect_problem(404, "not_found");
    b.create_key(&ws_a, &new_key("x"))
        .await
        .expect_problem(404, "not_found");
    // A's key id under B's own workspace.
    b.get_key(&ws_b, id).await.expect_problem(404, "not_found");
    b.update_key(&ws_b, id, &json!({"name": "x"}), None)
        .await
        .expect_problem(404, "not_found");
    b.rotate_key(&ws_b, id, None)
        .await
        .expect_problem(404, "not_found");
    b.revoke_key(&ws_b, id)
        .await
        .expect_problem(404, "not_found");
    // B's lists and audit hold nothing of A.
    let list = b.list_keys(&ws_b, "limit=100").await;
    list.expect_status(200);
    assert!(!ids(&list).contains(&id.to_owned()));
    let audit = b.list_audit(&ws_b, "limit=100").await;
    audit.expect_status(200);
    assert!(!audit.text.contains(id), "B's audit mentions A's key");
    // And A's key is untouched.
    let got = a.get_key(&ws_a, id).await;
    got.expect_status(200);
    assert_eq!(got.body["name"], "a's key");
    assert_eq!(got.body["status"], "active");
}

async fn a_cursor_of_one_workspace_is_rejected_in_another(w: World) {
    let ws_a = w.workspace("cur-a");
    let ws_b = w.workspace("cur-b");
    let a = w.admin(&ws_a);
    let b = w.admin(&ws_b);
    for i in 0..3 {
        a.create_key(&ws_a, &new_key(&format!("a{i}")))
            .await
            .expect_status(201);
    }
    b.create_key(&ws_b, &new_key("b0")).await.expect_status(201);
    let page = a.list_keys(&ws_a, "limit=1").await;
    page.expect_status(200);
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    // The cursor works where it was made...
    a.list_keys(&ws_a, &format!("limit=1&cursor={cursor}"))
        .await
        .expect_status(200);
    // ...and nowhere else.
    b.list_keys(&ws_b, &format!("limit=1&cursor={cursor}"))
        .await
        .expect_problem(400, "invalid_cursor");
}

async fn a_view_only_caller_gets_403_on_every_mutation(w: World) {
    let ws = w.workspace("view");
    let admin = w.admin(&ws);
    let key = admin.create_key(&ws, &new_key("k")).await;
    key.expect_status(201);
    let id = key.id();
    let etag = key.etag().map(str::to_owned);
    let viewer = w.app.with_token(Some(w.token(&ws, &["api.key.view"])));

    viewer.get_key(&ws, id).await.expect_status(200);
    viewer.list_keys(&ws, "").await.expect_status(200);
    viewer
        .create_key(&ws, &new_key("x"))
        .await
        .expect_problem(403, "forbidden");
    viewer
        .update_key(&ws, id, &json!({"name": "x"}), etag.as_deref())
        .await
        .expect_problem(403, "forbidden");
    viewer
        .rotate_key(&ws, id, None)
        .await
        .expect_problem(403, "forbidden");
    viewer
        .revoke_key(&ws, id)
        .await
        .expect_problem(403, "forbidden");
    // A caller without view cannot read either.
    let creator = w.app.with_token(Some(w.token(&ws, &["api.key.create"])));
    creator
        .get_key(&ws, id)
        .await
        .expect_problem(403, "forbidden");

    let after = admin.get_key(&ws, id).await;
    after.expect_status(200);
    assert_eq!(
        settings(&after.body),
        settings(&key.body),
        "nothing changed"
    );
    assert_eq!(after.etag(), etag.as_deref());
}

/// One bad request and the answer it must get.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
    anonymous: bool,
}

fn case(what: &'static str, method: Method, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        status,
        code,
        anonymous: false,
    }
}

impl Case {
    fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.header("content-type", "application/json")
    }

    fn raw(mut self, content_type: &str, body: &[u8]) -> Self {
        self.body = Some(body.to_vec());
        self.header("content-type", content_type)
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn anonymous(mut self) -> Self {
        self.anonymous = true;
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

async fn bad_input_is_refused_with_problem_json_naming_the_cause(w: World) {
    let ws = w.workspace("bad");
    let app = w.admin(&ws);
    let key = app.create_key(&ws, &new_key("target")).await;
    key.expect_status(201);
    let id = key.id().to_owned();
    for i in 0..2 {
        app.create_key(&ws, &new_key(&format!("filler{i}")))
            .await
            .expect_status(201);
    }
    let page = app.list_keys(&ws, "limit=1").await;
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let tampered = {
        let mut chars: Vec<char> = cursor.chars().collect();
        let mid = chars.len() / 2;
        chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };

    let keys = format!("/v1/workspaces/{ws}/keys");
    let one = format!("{keys}/{id}");
    let rotate = format!("{one}/rotate");
    let now = unix_now();
    let jwt = w.plane.jwt();
    let mut expired = jwt.claims(&ws, ALL, "user_test");
    expired["exp"] = json!(now - 600);
    expired["iat"] = json!(now - 4000);
    let mut wrong_aud = jwt.claims(&ws, ALL, "user_test");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = jwt.claims(&ws, ALL, "user_test");
    wrong_iss["iss"] = json!("evil");
    let alg_none = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64.encode(jwt.claims(&ws, ALL, "user_test").to_string());
        format!("{header}.{claims}.")
    };
    let other_secret = {
        let forged = keyward_tests::control_plane::JwtSettings {
            secret: random_hex(32),
            ..jwt.clone()
        };
        forged
            .sign(&jwt.claims(&ws, ALL, "user_test"))
            .expect("sign")
    };

    let past = keyward_common::Timestamp(now - 3600).to_rfc3339();
    let cases = vec![
        case("invalid JSON", Method::POST, &keys, 400, "invalid_json")
            .raw("application/json", br#"{"name": "#),
        // Not UTF-8 at all: once answered 500 text/plain by the local stack.
        case(
            "a body that is not UTF-8",
            Method::POST,
            &keys,
            400,
            "invalid_json",
        )
        .raw("application/json", b"{\"name\": \"\xff\xfe\x80\"}"),
        case(
            "a PATCH body that is not UTF-8",
            Method::PATCH,
            &one,
            400,
            "invalid_json",
        )
        .raw("application/json", b"\xc3\x28\xa0\xa1"),
        case(
            "a JSON array body",
            Method::POST,
            &keys,
            400,
            "invalid_json",
        )
        .json(&json!(["name"])),
        case(
            "an unknown field",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "nmae": "y"})),
        case(
            "a missing name",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({})),
        case(
            "an empty name",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": ""})),
        case(
            "a 129-character name",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "n".repeat(129)})),
        case(
            "a name that is not a string",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": 7})),
        case(
            "a scope outside the allowed set",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "scopes": ["launch-missiles"]})),
        case(
            "a malformed scope",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "scopes": ["has space"]})),
        case(
            "expires_at in the past",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "expires_at": past})),
        case(
            "a negative expires_in",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "expires_in": -5})),
        case(
            "both expires_in and expires_at",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "expires_in": 60,
                          "expires_at": keyward_common::Timestamp(now + 3600).to_rfc3339()})),
        case("a bad CIDR", Method::POST, &keys, 400, "validation_failed")
            .json(&json!({"name": "x", "allowed_ips": ["10.0.0.0/33"]})),
        case(
            "meta over 4 KB",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "meta": {"blob": "m".repeat(5000)}})),
        case(
            "meta that is not an object",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "meta": [1, 2]})),
        case(
            "rate_limit.limit 0",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "rate_limit": {"limit": 0, "period_s": 60}})),
        case(
            "rate_limit.period_s 0",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "rate_limit": {"limit": 1, "period_s": 0}})),
        case(
            "rate_limit.period_s over 31 days",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "rate_limit": {"limit": 1, "period_s": 2_678_401}})),
        case(
            "six rate_limits",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "rate_limits": (0..6)
            .map(|i| json!({"name": format!("l{i}"), "limit": 1, "period_s": 1}))
            .collect::<Vec<_>>()})),
        case(
            "two rate_limits with one name",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "rate_limits": [
            {"name": "a", "limit": 1, "period_s": 1}, {"name": "a", "limit": 2, "period_s": 1}]})),
        case(
            "negative credits",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "credits": {"remaining": -1}})),
        case(
            "a refill on day 32",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "credits": {"remaining": 1,
            "refill": {"amount": 1, "interval": "monthly", "day": 32}}})),
        case(
            "a fractional credit operation",
            Method::POST,
            &format!("{one}/credits"),
            400,
            "validation_failed",
        )
        .json(&json!({"op": "set", "value": 1.5})),
        case(
            "a credit operation without JSON",
            Method::POST,
            &format!("{one}/credits"),
            415,
            "unsupported_media_type",
        )
        .raw("text/plain", b"op=set"),
        case(
            "an owner id with a control character",
            Method::PUT,
            &format!("/v1/workspaces/{ws}/owners/a%07b"),
            400,
            "validation_failed",
        )
        .json(&json!({})),
        case(
            "an upper-case prefix",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "prefix": "KW"})),
        case(
            "a 17-character prefix",
            Method::POST,
            &keys,
            400,
            "validation_failed",
        )
        .json(&json!({"name": "x", "prefix": "abcdefghijklmnopq"})),
        case(
            "a text/plain body",
            Method::POST,
            &keys,
            415,
            "unsupported_media_type",
        )
        .raw("text/plain", br#"{"name": "x"}"#),
        case(
            "a body over 64 KB",
            Method::POST,
            &keys,
            413,
            "payload_too_large",
        )
        .json(&json!({"name": "x", "meta": {"blob": "b".repeat(70 * 1024)}})),
        case(
            "an unknown route",
            Method::GET,
            &format!("/v1/workspaces/{ws}/widgets"),
            404,
            "not_found",
        ),
        case(
            "an unknown version",
            Method::GET,
            &format!("/v2/workspaces/{ws}/keys"),
            404,
            "not_found",
        ),
        case(
            "a wrong method on a key",
            Method::PUT,
            &one,
            405,
            "method_not_allowed",
        )
        .json(&json!({"name": "x"})),
        case(
            "a wrong method on the list",
            Method::DELETE,
            &keys,
            405,
            "method_not_allowed",
        ),
        case(
            "limit=0",
            Method::GET,
            &format!("{keys}?limit=0"),
            400,
            "validation_failed",
        ),
        case(
            "limit=101",
            Method::GET,
            &format!("{keys}?limit=101"),
            400,
            "validation_failed",
        ),
        case(
            "limit=abc",
            Method::GET,
            &format!("{keys}?limit=abc"),
            400,
            "validation_failed",
        ),
        case(
            "an unknown status filter",
            Method::GET,
            &format!("{keys}?status=deleted"),
            400,
            "validation_failed",
        ),
        case(
            "an unknown query parameter",
            Method::GET,
            &format!("{keys}?sort=asc"),
            400,
            "validation_failed",
        ),
        case(
            "a garbage cursor",
            Method::GET,
            &format!("{keys}?cursor=garbage"),
            400,
            "invalid_cursor",
        ),
        case(
            "a tampered cursor",
            Method::GET,
            &format!("{keys}?cursor={tampered}"),
            400,
            "invalid_cursor",
        ),
        case(
            "PATCH status revoked",
            Method::PATCH,
            &one,
            400,
            "validation_failed",
        )
        .json(&json!({"status": "revoked"})),
        case(
            "PATCH an unknown field",
            Method::PATCH,
            &one,
            400,
            "validation_failed",
        )
        .json(&json!({"hash": "00"})),
        case(
            "PATCH name null",
            Method::PATCH,
            &one,
            400,
            "validation_failed",
        )
        .json(&json!({"name": null})),
        case(
            "PATCH with a stale If-Match",
            Method::PATCH,
            &one,
            412,
            "precondition_failed",
        )
        .json(&json!({"name": "x"}))
        .header("if-match", "\"999\""),
        case(
            "rotate with a grace over 7 days",
            Method::POST,
            &rotate,
            400,
            "validation_failed",
        )
        .json(&json!({"grace_period_s": 7 * 86_400 + 1})),
        case(
            "rotate with a negative grace",
            Method::POST,
            &rotate,
            400,
            "validation_failed",
        )
        .json(&json!({"grace_period_s": -1})),
        case(
            "a malformed key id",
            Method::GET,
            &format!("{keys}/not-a-key"),
            404,
            "not_found",
        ),
        case(
            "an unknown key id",
            Method::GET,
            &format!("{keys}/key_0000000000000000000000"),
            404,
            "not_found",
        ),
        case("no credential", Method::GET, &keys, 401, "unauthorized").anonymous(),
        case("an empty bearer", Method::GET, &keys, 401, "unauthorized").bearer(""),
        case(
            "a non-bearer credential",
            Method::GET,
            &keys,
            401,
            "unauthorized",
        )
        .header("authorization", "Basic dXNlcjpwYXNz"),
        case("an expired JWT", Method::GET, &keys, 401, "unauthorized")
            .bearer(&jwt.sign(&expired).expect("sign")),
        case(
            "a JWT for another audience",
            Method::GET,
            &keys,
            401,
            "unauthorized",
        )
        .bearer(&jwt.sign(&wrong_aud).expect("sign")),
        case(
            "a JWT from another issuer",
            Method::GET,
            &keys,
            401,
            "unauthorized",
        )
        .bearer(&jwt.sign(&wrong_iss).expect("sign")),
        case(
            "a JWT with alg none",
            Method::GET,
            &keys,
            401,
            "unauthorized",
        )
        .bearer(&alg_none),
        case(
            "a JWT signed with another secret",
            Method::GET,
            &keys,
            401,
            "unauthorized",
        )
        .bearer(&other_secret),
        case("a garbage bearer", Method::GET, &keys, 401, "unauthorized").bearer("not.a.jwt"),
    ];
    assert!(cases.len() >= 25);

    let mut failures = Vec::new();
    for c in &cases {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let caller = if c.anonymous { &w.app } else { &app };
        let r = caller
            .send(c.method.clone(), &c.path, &headers, c.body.clone())
            .await
            .expect("sending");
        let problem_json = r.content_type().starts_with("application/problem+json");
        if r.status != c.status
            || r.code() != c.code
            || !problem_json
            || r.body["status"] != c.status
        {
            failures.push(format!(
                "{}: expected {} {}, got {} ({}) {}",
                c.what,
                c.status,
                c.code,
                r.status,
                r.content_type(),
                r.text
            ));
        }
    }
    // Nothing was half-written: the target key is as created, and only three keys exist.
    let list = app.list_keys(&ws, "limit=100").await;
    list.expect_status(200);
    assert_eq!(
        ids(&list).len(),
        3,
        "a refused create wrote a key: {}",
        list.text
    );
    let after = app.get_key(&ws, &id).await;
    assert_eq!(settings(&after.body), settings(&key.body));
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

async fn the_active_key_cap_answers_409_until_a_key_is_revoked(w: World) {
    let ws = w.workspace("cap");
    let app = w.admin(&ws);
    let (mut first, mut second) = (None, None);
    for i in 0..MAX_ACTIVE_KEYS {
        let r = app.create_key(&ws, &new_key(&format!("k{i}"))).await;
        r.expect_status(201);
        if i == 1 {
            second = Some(r.id().to_owned());
        }
        first.get_or_insert_with(|| r.id().to_owned());
    }
    app.create_key(&ws, &new_key("one too many"))
        .await
        .expect_problem(409, "key_limit_reached");
    // Another workspace is not affected.
    let other = w.workspace("cap-other");
    w.admin(&other)
        .create_key(&other, &new_key("fine"))
        .await
        .expect_status(201);
    // A revoked key frees its place.
    let first = first.expect("created keys");
    app.revoke_key(&ws, &first).await.expect_status(200);
    app.create_key(&ws, &new_key("replacement"))
        .await
        .expect_status(201);
    app.create_key(&ws, &new_key("one too many again"))
        .await
        .expect_problem(409, "key_limit_reached");
    // An import writes exactly as many as fit, and refuses the rest item by item.
    app.revoke_key(&ws, &second.expect("created keys"))
        .await
        .expect_status(200);
    let items: Vec<Value> = (0..4)
        .map(|i| json!({"key": format!("legacy_cap_{i}_{}", "7".repeat(32)), "name": "imported"}))
        .collect();
    let r = app
        .call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/keys/import"),
            Some(&json!({ "keys": items })),
        )
        .await;
    r.expect_status(200);
    assert_eq!(
        (r.body["created"].as_u64(), r.body["refused"].as_u64()),
        (Some(1), Some(3)),
        "{}",
        r.text
    );
    let codes: Vec<&str> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| x["error"]["code"].as_str().unwrap_or("created"))
        .collect();
    assert_eq!(
        codes,
        [
            "created",
            "key_limit_reached",
            "key_limit_reached",
            "key_limit_reached"
        ]
    );
}

async fn ten_concurrent_patches_with_the_same_if_match_let_exactly_one_through(w: World) {
    let ws = w.workspace("race");
    let app = w.admin(&ws);
    let key = app.create_key(&ws, &new_key("contended")).await;
    key.expect_status(201);
    let id = key.id().to_owned();
    let etag = key.etag().expect("etag").to_owned();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (app, ws, id, etag) = (app.clone(), ws.clone(), id.clone(), etag.clone());
            tokio::spawn(async move {
                let r = app
                    .update_key(
                        &ws,
                        &id,
                        &json!({"name": format!("writer {i}")}),
                        Some(&etag),
                    )
                    .await;
                (i, r)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (i, r) = task.await.expect("patch task");
        match r.status {
            200 => winners.push(i),
            412 => {
                r.expect_problem(412, "precondition_failed");
                refused += 1;
            }
            other => panic!("a concurrent PATCH answered {other}: {}", r.text),
        }
    }
    assert_eq!((winners.len(), refused), (1, 9), "winners {winners:?}");
    let after = app.get_key(&ws, &id).await;
    assert_eq!(after.body["name"], format!("writer {}", winners[0]));
    assert_eq!(
        after.body["version"].as_u64(),
        key.body["version"].as_u64().map(|v| v + 1),
        "one write, one version step"
    );
}

async fn a_root_key_manages_keys_of_its_own_workspace_only(w: World) {
    let ws = w.workspace("root");
    let elsewhere = w.workspace("root-other");
    let admin = w.admin(&ws);
    let root = admin
        .create_key(
            &ws,
            &json!({"name": "root", "scopes": ["api.key.create", "api.key.view"]}),
        )
        .await;
    root.expect_status(201);
    let root_secret = root.body["key"].as_str().expect("key").to_owned();
    PresentedKey::parse(&root_secret).expect("a well-formed root key");
    let as_root = w.app.with_token(Some(root_secret.clone()));

    let made = as_root.create_key(&ws, &new_key("made by root")).await;
    made.expect_status(201);
    as_root.get_key(&ws, made.id()).await.expect_status(200);
    as_root.list_keys(&ws, "").await.expect_status(200);
    // list-audit reads nothing but its query otherwise: this is its only root-key lookup
    // (`cargo xtask iam` checks that its GetItem grant is used).
    as_root.list_audit(&ws, "").await.expect_status(200);
    // Scopes it lacks are refused; other workspaces do not exist for it.
    as_root
        .revoke_key(&ws, made.id())
        .await
        .expect_problem(403, "forbidden");
    as_root
        .create_key(&elsewhere, &new_key("x"))
        .await
        .expect_problem(404, "not_found");
    as_root
        .list_keys(&elsewhere, "")
        .await
        .expect_problem(404, "not_found");
    // A key without api.key.* scopes is no root key.
    let plain = admin.create_key(&ws, &new_key("plain")).await;
    plain.expect_status(201);
    let as_plain = w
        .app
        .with_token(Some(plain.body["key"].as_str().expect("key").to_owned()));
    let r = as_plain.create_key(&ws, &new_key("x")).await;
    assert!(
        matches!(
            (r.status, r.code()),
            (403, "forbidden") | (401, "unauthorized")
        ),
        "a plain key created a key: {}",
        r.text
    );
    // A mistyped root key is refused as a credential (its checksum fails).
    let mut typo = root_secret.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    w.app
        .with_token(Some(String::from_utf8(typo).expect("ascii")))
        .list_keys(&ws, "")
        .await
        .expect_problem(401, "unauthorized");
    // Revoked, it stops at once.
    admin.revoke_key(&ws, root.id()).await.expect_status(200);
    as_root
        .list_keys(&ws, "")
        .await
        .expect_problem(401, "unauthorized");
}

async fn roles_grant_permissions_to_keys_and_cannot_be_deleted_while_held(w: World) {
    let ws = w.workspace("roles");
    let admin = w.admin(&ws);
    let roles = format!("/v1/workspaces/{ws}/roles");
    let role = format!("{roles}/sms-sender");
    admin
        .call(
            Method::POST,
            &roles,
            Some(&json!({"name": "sms-sender", "permissions": ["read"]})),
        )
        .await
        .expect_status(201);
    admin
        .call(
            Method::POST,
            &roles,
            Some(&json!({"name": "viewer", "permissions": ["api.key.view", "api.role.view"]})),
        )
        .await
        .expect_status(201);
    let listed = admin
        .call(Method::GET, &format!("{roles}?limit=1"), None)
        .await;
    listed.expect_status(200);
    assert_eq!(listed.body["data"][0]["name"], "sms-sender");
    assert_eq!(listed.body["has_more"], true);

    let key = admin
        .create_key(&ws, &json!({"name": "k", "roles": ["sms-sender"]}))
        .await;
    key.expect_status(201);
    assert_eq!(key.body["permissions"], json!(["read"]));
    admin
        .create_key(&ws, &json!({"name": "k", "roles": ["ghost"]}))
        .await
        .expect_problem(400, "validation_failed");
    admin
        .call(
            Method::PATCH,
            &role,
            Some(&json!({"permissions": ["read", "write"]})),
        )
        .await
        .expect_status(200);
    let got = admin.get_key(&ws, key.id()).await;
    assert_eq!(got.body["permissions"], json!(["read", "write"]));
    admin
        .call(Method::DELETE, &role, None)
        .await
        .expect_problem(409, "role_in_use");
    admin.revoke_key(&ws, key.id()).await.expect_status(200);
    admin
        .call(Method::DELETE, &role, None)
        .await
        .expect_status(200);
    admin
        .call(Method::GET, &role, None)
        .await
        .expect_problem(404, "not_found");

    // A root key whose role grants the permission manages the workspace with it.
    let root = admin
        .create_key(&ws, &json!({"name": "root", "roles": ["viewer"]}))
        .await;
    root.expect_status(201);
    let as_root = w
        .app
        .with_token(Some(root.body["key"].as_str().expect("key").to_owned()));
    as_root.list_keys(&ws, "").await.expect_status(200);
    as_root
        .call(Method::GET, &roles, None)
        .await
        .expect_status(200);
    as_root
        .call(
            Method::POST,
            &roles,
            Some(&json!({"name": "x", "permissions": []})),
        )
        .await
        .expect_problem(403, "forbidden");
}

async fn a_webhook_endpoint_receives_a_signed_test_event_over_http(w: World) {
    use keyward_functions::webhook::signature;
    let ws = w.workspace("hooks");
    let admin = w.admin(&ws);
    let hooks = format!("/v1/workspaces/{ws}/webhooks");
    let (url, seen) = keyward_tests::receiver::receiver("204 No Content", "").await;
    // The metadata service is refused, naming the field.
    let refused = admin
        .call(
            Method::POST,
            &hooks,
            Some(&json!({"url": "https://169.254.169.254/latest/", "events": ["key.created"]})),
        )
        .await;
    refused.expect_problem(400, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "url");
    let made = admin
        .call(
            Method::POST,
            &hooks,
            Some(&json!({"url": url, "events": ["key.created", "key.revoked"]})),
        )
        .await;
    made.expect_status(201);
    let id = made.body["id"].as_str().expect("an id").to_owned();
    let secret = made.body["secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    let hook = format!("{hooks}/{id}");
    let got = admin.call(Method::GET, &hook, None).await;
    got.expect_status(200);
    assert!(got.body.get("secret").is_none(), "{}", got.body);
    let list = admin.call(Method::GET, &hooks, None).await;
    list.expect_status(200);
    assert_eq!(list.body["data"][0]["id"], json!(id));
    let etag = got.etag().expect("an ETag").to_owned();
    let changed = admin
        .json(
            Method::PATCH,
            &hook,
            Some(&json!({"description": "billing system"})),
            &[("if-match", etag.as_str())],
        )
        .await;
    changed.expect_status(200);

    let t = admin
        .call(Method::POST, &format!("{hook}/test"), None)
        .await;
    t.expect_status(200);
    assert_eq!(t.body["status"], "delivered", "{}", t.body);
    assert_eq!(t.body["response_code"], 204);
    let (headers, body) = seen
        .lock()
        .expect("the receiver")
        .first()
        .cloned()
        .expect("a delivery");
    let h = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let key = signature::key_of(&secret).expect("a whsec_ secret");
    let ts: i64 = h("webhook-timestamp").parse().expect("a timestamp");
    assert_eq!(
        h("webhook-signature"),
        signature::sign(&key, &h("webhook-id"), ts, &body),
        "Standard Webhooks signature"
    );
    let deliveries = admin
        .call(Method::GET, &format!("{hook}/deliveries"), None)
        .await;
    deliveries.expect_status(200);
    assert_eq!(
        deliveries.body["data"][0]["message_id"],
        json!(h("webhook-id"))
    );
    admin
        .call(Method::DELETE, &hook, None)
        .await
        .expect_status(200);
    admin
        .call(Method::GET, &hook, None)
        .await
        .expect_status(404);
}

async fn owners_share_limits_and_credits_and_count_their_live_keys(w: World) {
    let ws = w.workspace("owners");
    let admin = w.admin(&ws);
    let owners = format!("/v1/workspaces/{ws}/owners");
    // An id with a slash and a space travels percent-encoded.
    let owner = format!("{owners}/cus%2F1%20a");
    let created = admin
        .call(
            Method::PUT,
            &owner,
            Some(&json!({"meta": {"plan": "pro"},
                "rate_limits": [{"name": "minute", "limit": 3, "period_s": 60},
                                {"name": "month", "limit": 1000, "period_s": 2_678_400}],
                "credits": {"remaining": 100,
                            "refill": {"amount": 100, "interval": "monthly", "day": 31}}})),
        )
        .await;
    created.expect_status(201);
    assert_eq!(created.body["owner_id"], "cus/1 a");
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["credits"]["refill"]["day"], 31);
    assert_eq!(created.body["key_count"], 0);

    // Keys name it; a revoked one no longer counts.
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let k = admin
            .create_key(
                &ws,
                &json!({"name": name, "owner_id": "cus/1 a",
                        "rate_limits": [{"name": "second", "limit": 5, "period_s": 1}],
                        "credits": {"remaining": 10}}),
            )
            .await;
        k.expect_status(201);
        assert_eq!(k.body["credits"], json!({"remaining": 10}));
        assert_eq!(k.body["rate_limits"][0]["name"], "second");
        ids.push(k.id().to_owned());
    }
    admin.revoke_key(&ws, &ids[0]).await.expect_status(200);
    let got = admin.call(Method::GET, &owner, None).await;
    got.expect_status(200);
    assert_eq!(got.body["key_count"], 2);
    assert_eq!(got.body["rate_limits"][1]["period_s"], 2_678_400);

    // Credit operations on the owner and on a key.
    let spent = admin
        .call(
            Method::POST,
            &format!("{owner}/credits"),
            Some(&json!({"op": "decrement", "value": 30})),
        )
        .await;
    spent.expect_status(200);
    assert_eq!(spent.body, json!({"remaining": 70}));
    let key_credits = format!("/v1/workspaces/{ws}/keys/{}/credits", ids[1]);
    let r = admin
        .call(
            Method::POST,
            &key_credits,
            Some(&json!({"op": "increment", "value": 5})),
        )
        .await;
    r.expect_status(200);
    assert_eq!(r.body["remaining"], 15);
    assert_eq!(
        admin.get_key(&ws, &ids[1]).await.body["credits"]["remaining"],
        15
    );
    // With an Idempotency-Key a retried grant is applied once; a refused one keeps nothing.
    let grant = |key: &'static str, body: Value| {
        let admin = admin.clone();
        let path = key_credits.clone();
        async move {
            admin
                .send(
                    Method::POST,
                    &path,
                    &[
                        ("content-type", "application/json"),
                        ("idempotency-key", key),
                    ],
                    Some(body.to_string().into_bytes()),
                )
                .await
                .expect("sending a grant")
        }
    };
    let inc = json!({"op": "increment", "value": 10});
    assert_eq!(grant("grant-1", inc.clone()).await.body["remaining"], 25);
    let again = grant("grant-1", inc).await;
    again.expect_status(200);
    assert_eq!(again.body["remaining"], 25, "applied once");
    grant("grant-2", json!({"op": "add", "value": 1}))
        .await
        .expect_problem(400, "validation_failed");
    let owner_grant = admin
        .send(
            Method::POST,
            &format!("{owner}/credits"),
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "owner-grant-1"),
            ],
            Some(
                json!({"op": "increment", "value": 5})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .expect("sending an owner grant");
    owner_grant.expect_status(200);
    assert_eq!(owner_grant.body["remaining"], 75);
    let refused = admin
        .send(
            Method::POST,
            &format!("{owners}/nobody/credits"),
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "owner-grant-2"),
            ],
            Some(json!({"op": "set", "value": 5}).to_string().into_bytes()),
        )
        .await
        .expect("sending an owner grant");
    refused.expect_problem(404, "not_found");

    admin
        .call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/keys/{}/credits", ids[0]),
            Some(&json!({"op": "set", "value": 1})),
        )
        .await
        .expect_problem(409, "key_revoked");
    admin
        .call(
            Method::POST,
            &key_credits,
            Some(&json!({"op": "increment", "value": -1})),
        )
        .await
        .expect_problem(400, "validation_failed");

    // Replaced as a whole: what the PUT leaves out is reset.
    let replaced = admin
        .call(Method::PUT, &owner, Some(&json!({"status": "disabled"})))
        .await;
    replaced.expect_status(200);
    assert_eq!(replaced.body["status"], "disabled");
    assert_eq!(replaced.body["credits"], Value::Null);
    assert_eq!(
        replaced.body["version"], 4,
        "create, two credit operations, this"
    );
    admin
        .call(
            Method::POST,
            &format!("{owner}/credits"),
            Some(&json!({"op": "increment", "value": 1})),
        )
        .await
        .expect_problem(400, "validation_failed");
    admin
        .call(
            Method::PUT,
            &owner,
            Some(&json!({"credits": {"remaining": 1, "refill": {"amount": 1, "interval": "monthly", "day": 32}}})),
        )
        .await
        .expect_problem(400, "validation_failed");

    // The list, paged by id.
    admin
        .call(Method::PUT, &format!("{owners}/cus_2"), Some(&json!({})))
        .await
        .expect_status(201);
    let page = admin
        .call(Method::GET, &format!("{owners}?limit=1"), None)
        .await;
    page.expect_status(200);
    assert_eq!(page.body["data"][0]["owner_id"], "cus/1 a");
    assert_eq!(page.body["has_more"], true);
    let next = admin
        .call(
            Method::GET,
            &format!(
                "{owners}?limit=1&cursor={}",
                page.body["next_cursor"].as_str().expect("cursor")
            ),
            None,
        )
        .await;
    assert_eq!(next.body["data"][0]["owner_id"], "cus_2");

    // Who may: a key manager without owner rights, a viewer, another workspace.
    let keys_only = w
        .app
        .with_token(Some(w.token(&ws, &["api.key.create", "api.key.view"])));
    keys_only
        .call(Method::GET, &owner, None)
        .await
        .expect_problem(403, "forbidden");
    let viewer = w.app.with_token(Some(w.token(&ws, &["api.owner.view"])));
    viewer
        .call(Method::GET, &owner, None)
        .await
        .expect_status(200);
    viewer
        .call(Method::PUT, &owner, Some(&json!({})))
        .await
        .expect_problem(403, "forbidden");
    let stranger = w.admin("elsewhere");
    stranger
        .call(Method::GET, &owner, None)
        .await
        .expect_problem(404, "not_found");
}

async fn no_secret_created_during_the_run_appears_in_a_function_log_line(w: World) {
    // Let the functions flush what they print about the last requests.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let secrets: HashSet<String> = w.app.secrets().into_iter().collect();
    assert!(
        !secrets.is_empty(),
        "the run created no secrets to look for (run the other scenarios too)"
    );
    let log = std::fs::read_to_string(w.plane.functions_log()).expect("reading the functions log");
    assert!(
        log.lines().count() > 10,
        "the functions log is nearly empty; is it the right file? {}",
        w.plane.functions_log().display()
    );
    let leaks: Vec<usize> = log
        .lines()
        .enumerate()
        .filter(|(_, line)| secrets.iter().any(|s| line.contains(s.as_str())))
        .map(|(n, _)| n + 1)
        .collect();
    assert!(
        leaks.is_empty(),
        "{} log lines of {} carry a secret (lines {leaks:?})",
        leaks.len(),
        w.plane.functions_log().display()
    );
    // The random part alone must not leak either (e.g. a log that drops the prefix).
    for secret in &secrets {
        let random = &secret[secret.find('_').map_or(0, |i| i + 1)..secret.len() - 6];
        assert!(
            !log.contains(random),
            "a secret's random part is in the functions log"
        );
    }
}
