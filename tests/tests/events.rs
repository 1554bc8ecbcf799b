//! Webhook events through the whole local stack (moto with the table's stream and the retry
//! queue, the functions under `cargo lambda watch`, the stream pollers feeding `sync` and
//! `events`, the queue poller feeding `webhook-retries`, the scheduler, the edge under
//! `wrangler dev`) with receivers the test starts: key changes arrive signed and in order,
//! failures are retried with one `webhook-id`, a receiver that hangs holds nobody up, refused
//! requests, expiries and balances make their events once, and an endpoint that fails for the
//! whole schedule is switched off and audited.
//!
//! Run: `cargo xtask build-edge`, then `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo
//! test -p keyward-tests --test events`.

use std::time::{Duration, Instant};

use keyward_functions::webhook::signature;
use keyward_tests::app::TestApp;
use keyward_tests::control_plane::{JwtSettings, random_hex, unix_now};
use keyward_tests::edge::SendToEdge;
use keyward_tests::receiver::{Seen, receiver, scripted};
use keyward_tests::stack::{ADMIN_PERMISSIONS, Stack, StackOptions};
use reqwest::Method;
use serde_json::{Value, json};

/// How long an event may take to arrive (stream poll, function, delivery) on a busy machine.
const ARRIVE: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct World {
    app: TestApp,
    jwt: JwtSettings,
    http: reqwest::Client,
    edge: String,
}

type Scenario = keyward_tests::scenarios::Scenario<World>;

const SCENARIOS: &[(&str, Scenario)] = keyward_tests::scenarios![
    a_keys_life_arrives_as_four_signed_events_in_order,
    a_receiver_failing_twice_gets_three_attempts_with_one_webhook_id,
    a_receiver_that_never_answers_holds_up_no_other_endpoint,
    refused_requests_past_the_threshold_make_one_auth_failures_event,
    a_key_expiring_within_a_week_makes_one_expiring_event_and_the_schedule_fires_later_ones,
    spending_makes_credits_low_then_credits_exhausted_once_each,
    an_endpoint_failing_for_the_whole_schedule_is_switched_off_and_audited,
    private_addresses_are_refused_naming_the_url,
];

fn main() {
    keyward_tests::scenarios::main(SCENARIOS, |selected| async move {
        let stack = Stack::start(StackOptions::default())
            .await
            .expect("starting the local stack");
        println!(
            "stack up: api {} edge {} (logs in {})",
            stack.control_plane_url(),
            stack.edge_url(),
            stack.dir().display()
        );
        let world = World {
            app: TestApp::new(stack.control_plane(), None),
            jwt: stack.control_plane().jwt().clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            edge: stack.edge_url(),
        };
        let failed = keyward_tests::scenarios::run_each(&selected, &world).await;
        drop(stack);
        failed
    });
}

/// One request a receiver got: headers and the parsed body.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    timestamp: i64,
    signature: String,
    raw: Vec<u8>,
    body: Value,
}

fn header(h: &[(String, String)], name: &str) -> String {
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn got(seen: &Seen) -> Vec<Got> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(h, b)| Got {
            id: header(h, "webhook-id"),
            timestamp: header(h, "webhook-timestamp").parse().unwrap_or(0),
            signature: header(h, "webhook-signature"),
            raw: b.clone(),
            body: serde_json::from_slice(b).unwrap_or(Value::Null),
        })
        .collect()
}

/// Waits until `seen` holds what `done` wants; what it holds then.
async fn wait_for(seen: &Seen, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let start = Instant::now();
    loop {
        let now = got(seen);
        if done(&now) {
            return now;
        }
        assert!(
            start.elapsed() < ARRIVE,
            "waiting for {what}: got {:#?}",
            now.iter().map(|g| &g.body).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn of_type<'a>(all: &'a [Got], kind: &str) -> Vec<&'a Got> {
    all.iter().filter(|g| g.body["type"] == kind).collect()
}

impl World {
    fn admin(&self, label: &str) -> (String, TestApp) {
        let ws = format!("{label}-{}", random_hex(4));
        let claims = self.jwt.claims(&ws, &ADMIN_PERMISSIONS, "user_events");
        let app = self
            .app
            .with_token(Some(self.jwt.sign(&claims).expect("signing a token")));
        (ws, app)
    }

    async fn api(&self, app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
        let r = app.call(method.clone(), path, body.as_ref()).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        r.body
    }

    /// Registers an endpoint at `url` for `events`; its id and signing key.
    async fn endpoint(
        &self,
        app: &TestApp,
        ws: &str,
        url: &str,
        events: &[&str],
    ) -> (String, Vec<u8>) {
        let b = self
            .api(
                app,
                Method::POST,
                &format!("/v1/workspaces/{ws}/webhooks"),
                Some(json!({"url": url, "events": events})),
            )
            .await;
        let secret = b["secret"].as_str().expect("a secret");
        (
            b["id"].as_str().expect("an id").to_owned(),
            signature::key_of(secret).expect("a whsec_ secret"),
        )
    }

    async fn key(&self, app: &TestApp, ws: &str, body: Value) -> (String, String) {
        let b = self
            .api(
                app,
                Method::POST,
                &format!("/v1/workspaces/{ws}/keys"),
                Some(body),
            )
            .await;
        (
            b["id"].as_str().expect("an id").to_owned(),
            b["key"].as_str().expect("a secret").to_owned(),
        )
    }

    async fn verify(&self, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/v1/keys/verify", self.edge))
            .json(&body)
            .send_to_edge()
            .await
            .expect("calling the verify API");
        assert_eq!(r.status(), 200);
        r.json().await.expect("a verdict")
    }

    /// Verifies until the edge knows the key (VALID or the `want` code).
    async fn until_edge_knows(&self, key: &str, want: &str) {
        let start = Instant::now();
        loop {
            let v = self.verify(json!({"key": key})).await;
            if v["code"] == want {
                return;
            }
            assert!(start.elapsed() < ARRIVE, "the edge never said {want}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assert_signed(g: &Got, key: &[u8]) {
    assert_eq!(
        g.signature,
        signature::sign(key, &g.id, g.timestamp, &g.raw),
        "a valid Standard Webhooks signature on {}",
        g.body
    );
    assert!(g.id.starts_with("msg_"));
    assert!((g.timestamp - unix_now()).abs() < 300);
}

async fn a_keys_life_arrives_as_four_signed_events_in_order(w: World) {
    let (ws, app) = w.admin("ev-life");
    let (url, seen) = receiver("200 OK", "").await;
    let events = ["key.created", "key.updated", "key.rotated", "key.revoked"];
    let (_, signing) = w.endpoint(&app, &ws, &url, &events).await;
    let started = Instant::now();
    let (id, secret) = w.key(&app, &ws, json!({"name": "life"})).await;
    let path = format!("/v1/workspaces/{ws}/keys/{id}");
    w.api(&app, Method::PATCH, &path, Some(json!({"name": "life-2"})))
        .await;
    let rotated = w
        .api(
            &app,
            Method::POST,
            &format!("{path}/rotate"),
            Some(json!({})),
        )
        .await;
    w.api(&app, Method::DELETE, &path, None).await;
    let all = wait_for(&seen, "four events", |g| g.len() >= 4).await;
    println!(
        "four events arrived {:?} after the create",
        started.elapsed()
    );
    let kinds: Vec<&str> = all.iter().filter_map(|g| g.body["type"].as_str()).collect();
    assert_eq!(kinds, events, "in order");
    let new_secret = rotated["key"].as_str().unwrap_or_default();
    for g in &all {
        assert_signed(g, &signing);
        assert_eq!(g.body["data"]["key"]["id"], json!(id));
        let text = String::from_utf8_lossy(&g.raw);
        assert!(!text.contains(&secret) && (new_secret.is_empty() || !text.contains(new_secret)));
        assert!(!text.contains("\"hash\""), "no hash in {text}");
    }
    assert_eq!(all[1].body["data"]["changed"], json!(["name"]));
    let ids: std::collections::HashSet<&str> = all.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "one message id per event");
    // Nothing more comes (no duplicate from the outbox or a replay).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(got(&seen).len(), 4);
}

async fn a_receiver_failing_twice_gets_three_attempts_with_one_webhook_id(w: World) {
    let (ws, app) = w.admin("ev-retry");
    let (url, seen) = scripted(
        |n| {
            Some(if n < 2 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            })
        },
        "",
    )
    .await;
    let (hook, signing) = w.endpoint(&app, &ws, &url, &["key.created"]).await;
    w.key(&app, &ws, json!({"name": "retried"})).await;
    let all = wait_for(&seen, "three attempts", |g| g.len() >= 3).await;
    assert!(
        all.iter().all(|g| g.id == all[0].id),
        "one webhook-id: {all:?}"
    );
    for g in &all {
        assert_signed(g, &signing);
        assert_eq!(g.raw, all[0].raw, "the same body on every attempt");
    }
    assert!(all[1].timestamp >= all[0].timestamp && all[2].timestamp > all[0].timestamp);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(got(&seen).len(), 3, "delivered: no fourth attempt");
    let d = w
        .api(
            &app,
            Method::GET,
            &format!("/v1/workspaces/{ws}/webhooks/{hook}/deliveries"),
            None,
        )
        .await;
    let mut attempts: Vec<(u64, String)> = d["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["attempt"].as_u64().unwrap(),
                x["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [
            (1, "failed".into()),
            (2, "failed".into()),
            (3, "delivered".into())
        ]
    );
    let hook = w
        .api(
            &app,
            Method::GET,
            &format!("/v1/workspaces/{ws}/webhooks/{hook}"),
            None,
        )
        .await;
    assert!(
        hook.get("failing_since").is_none(),
        "answering again: {hook}"
    );
}

async fn a_receiver_that_never_answers_holds_up_no_other_endpoint(w: World) {
    let (ws, app) = w.admin("ev-hang");
    let (hang_url, hung) = scripted(|_| None, "").await;
    let (ok_url, seen) = receiver("200 OK", "").await;
    let (hanging, _) = w.endpoint(&app, &ws, &hang_url, &["key.created"]).await;
    w.endpoint(&app, &ws, &ok_url, &["key.created"]).await;
    let mut lags = Vec::new();
    for i in 0..4 {
        let made = Instant::now();
        w.key(&app, &ws, json!({"name": format!("k{i}")})).await;
        wait_for(&seen, "the answering endpoint's event", |g| g.len() > i).await;
        lags.push(made.elapsed());
    }
    println!("the answering endpoint's events arrived after {lags:?}");
    // The first event waits for nobody; later ones at most for the hanging endpoint's first
    // attempt (3 s), never for its retries.
    for lag in &lags {
        assert!(*lag < Duration::from_secs(8), "late: {lags:?}");
    }
    assert!(!got(&hung).is_empty(), "the hanging endpoint was tried");
    // Gone, its queued retries are dropped unattempted: the stack's one `webhook-retries`
    // instance (`cargo lambda watch --concurrency 1`) is not held 10 s per retry for the
    // scenarios that run after this one.
    w.api(
        &app,
        Method::DELETE,
        &format!("/v1/workspaces/{ws}/webhooks/{hanging}"),
        None,
    )
    .await;
}

async fn refused_requests_past_the_threshold_make_one_auth_failures_event(w: World) {
    let (ws, app) = w.admin("ev-auth");
    let (url, seen) = receiver("200 OK", "").await;
    w.endpoint(&app, &ws, &url, &["key.auth_failures"]).await;
    let (id, secret) = w
        .key(&app, &ws, json!({"name": "prober", "scopes": ["read"]}))
        .await;
    w.until_edge_knows(&secret, "VALID").await;
    // All 25 inside one 5-minute window (they take about a second).
    let into_window = unix_now().rem_euclid(300);
    if into_window > 280 {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(302 - into_window).unwrap_or(0),
        ))
        .await;
    }
    for _ in 0..25 {
        let v = w.verify(json!({"key": secret, "scope": "write"})).await;
        assert_eq!(v["code"], "FORBIDDEN_SCOPE");
    }
    let all = wait_for(&seen, "a key.auth_failures event", |g| !g.is_empty()).await;
    let e = &all[0].body;
    assert_eq!(e["type"], "key.auth_failures");
    assert_eq!(e["data"]["key_id"], json!(id));
    assert_eq!(e["data"]["name"], "prober");
    assert_eq!(e["data"]["threshold"], 20);
    assert!(e["data"]["count"].as_u64().unwrap() >= 20, "{e}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(got(&seen).len(), 1, "once per window");
}

async fn a_key_expiring_within_a_week_makes_one_expiring_event_and_the_schedule_fires_later_ones(
    w: World,
) {
    let (ws, app) = w.admin("ev-exp");
    let (url, seen) = receiver("200 OK", "").await;
    w.endpoint(&app, &ws, &url, &["key.expiring"]).await;
    let six_days = 6 * 86_400;
    let (soon, _) = w
        .key(&app, &ws, json!({"name": "soon", "expires_in": six_days}))
        .await;
    // Its 7-day reminder falls due in 4 s: the schedule (every second here) fires it.
    let (later, _) = w
        .key(
            &app,
            &ws,
            json!({"name": "later", "expires_in": 7 * 86_400 + 4}),
        )
        .await;
    let all = wait_for(&seen, "two key.expiring events", |g| g.len() >= 2).await;
    let by_key = |id: &str| {
        all.iter()
            .filter(|g| g.body["data"]["key_id"] == json!(id))
            .count()
    };
    assert_eq!(by_key(&soon), 1, "{all:?}");
    assert_eq!(by_key(&later), 1, "{all:?}");
    for g in &all {
        assert_eq!(g.body["data"]["days"], 7);
    }
    // A change that keeps the expiry reminds no one again.
    w.api(
        &app,
        Method::PATCH,
        &format!("/v1/workspaces/{ws}/keys/{soon}"),
        Some(json!({"name": "soon-2"})),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(got(&seen).len(), 2, "one event per key and reminder");
}

async fn spending_makes_credits_low_then_credits_exhausted_once_each(w: World) {
    let (ws, app) = w.admin("ev-credits");
    let (url, seen) = receiver("200 OK", "").await;
    w.endpoint(&app, &ws, &url, &["credits.low", "credits.exhausted"])
        .await;
    let (id, secret) = w
        .key(
            &app,
            &ws,
            json!({"name": "metered", "credits": {"remaining": 12}}),
        )
        .await;
    w.until_edge_knows(&secret, "VALID").await; // spends 1
    w.verify(json!({"key": secret})).await; // 10 left: low (the default threshold is 10)
    let low = wait_for(&seen, "credits.low", |g| {
        !of_type(g, "credits.low").is_empty()
    })
    .await;
    let low = of_type(&low, "credits.low")[0].body.clone();
    assert_eq!(low["data"]["key_id"], json!(id));
    assert!(low["data"]["remaining"].as_u64().unwrap() <= 10, "{low}");
    for _ in 0..12 {
        w.verify(json!({"key": secret})).await;
    }
    let all = wait_for(&seen, "credits.exhausted", |g| {
        !of_type(g, "credits.exhausted").is_empty()
    })
    .await;
    assert_eq!(
        of_type(&all, "credits.exhausted")[0].body["data"]["remaining"],
        0
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = got(&seen);
    assert_eq!(of_type(&all, "credits.low").len(), 1, "{all:?}");
    assert_eq!(of_type(&all, "credits.exhausted").len(), 1, "{all:?}");
}

async fn an_endpoint_failing_for_the_whole_schedule_is_switched_off_and_audited(w: World) {
    let (ws, app) = w.admin("ev-off");
    let (url, seen) = receiver("503 Service Unavailable", "").await;
    let (hook, _) = w.endpoint(&app, &ws, &url, &["key.created"]).await;
    w.key(&app, &ws, json!({"name": "unheard"})).await;
    // The local schedule: 1 + 5 retries over 1+2+4+8+16 s.
    let start = Instant::now();
    let path = format!("/v1/workspaces/{ws}/webhooks/{hook}");
    loop {
        let h = w.api(&app, Method::GET, &path, None).await;
        if h["enabled"] == false {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "still enabled after {} attempts: {h}",
            got(&seen).len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "switched off after {:?} and {} attempts",
        start.elapsed(),
        got(&seen).len()
    );
    assert_eq!(got(&seen).len(), 6);
    let audit = w
        .api(
            &app,
            Method::GET,
            &format!("/v1/workspaces/{ws}/audit"),
            None,
        )
        .await;
    let off: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "webhook.disabled")
        .collect();
    assert_eq!(off.len(), 1, "{audit}");
    assert_eq!(off[0]["webhook_id"], json!(hook));
    assert_eq!(off[0]["actor"], "keyward");
    // Switched off: a new event is not sent.
    w.key(&app, &ws, json!({"name": "unheard-2"})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(got(&seen).len(), 6);
}

async fn private_addresses_are_refused_naming_the_url(w: World) {
    let (ws, app) = w.admin("ev-ssrf");
    // Loopback http is allowed on this stack; these never are.
    for url in [
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "https://192.168.1.1/",
    ] {
        let r = app
            .call(
                Method::POST,
                &format!("/v1/workspaces/{ws}/webhooks"),
                Some(&json!({"url": url, "events": ["key.created"]})),
            )
            .await;
        assert_eq!(r.status, 400, "{url}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {}", r.body);
    }
}
