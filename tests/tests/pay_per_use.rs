//! Pay-per-use through the whole local stack (moto, the functions under `cargo lambda watch`,
//! the stream poller and `sync`, the edge under `wrangler dev` with its Durable Objects): credits
//! admit exactly what was granted to many concurrent clients through the proxy and the verify
//! API together, credit operations made through the API reach the edge and compose with the
//! spending, owners share their credits across keys, route costs and several limits apply, and
//! the usage endpoints report exactly the requests that were made.
//!
//! Run: `cargo xtask build-edge`, then `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo
//! test -p keyward-tests --test pay_per_use`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keyward_tests::app::TestApp;
use keyward_tests::control_plane::{JwtSettings, random_hex};
use keyward_tests::edge::SendToEdge;
use keyward_tests::stack::{ADMIN_PERMISSIONS, Stack, StackOptions};
use reqwest::Method;
use serde_json::{Value, json};

/// How long a change may take to reach the edge (the contract says 2 s locally).
const REACH: Duration = Duration::from_secs(10);
/// Concurrent clients racing for credits.
const CLIENTS: usize = 16;

#[derive(Clone)]
struct World {
    app: TestApp,
    jwt: JwtSettings,
    http: reqwest::Client,
    edge: String,
}

type Scenario = keyward_tests::scenarios::Scenario<World>;

const SCENARIOS: &[(&str, Scenario)] = keyward_tests::scenarios![
    exactly_the_credits_granted_pass_and_an_increment_adds_exactly_its_value,
    an_owners_credits_are_shared_exactly_by_its_keys,
    a_route_cost_spends_credits_in_its_units,
    every_limit_applies_and_the_answer_shows_each,
    a_disabled_owner_turns_its_keys_off_at_the_edge,
    the_usage_endpoints_report_exactly_the_requests_made,
];

fn main() {
    keyward_tests::scenarios::main(SCENARIOS, |selected| async move {
        let stack = Stack::start(StackOptions {
            route_scopes: "POST /v1/sms/** => sms.send cost 5".to_owned(),
            ..StackOptions::default()
        })
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

impl World {
    /// A fresh workspace and an admin client for it.
    fn admin(&self, label: &str) -> (String, TestApp) {
        let ws = format!("{label}-{}", random_hex(4));
        let claims = self.jwt.claims(&ws, &ADMIN_PERMISSIONS, "user_ppu");
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

    /// Creates a key; its id and secret.
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
        assert_eq!(r.status(), 200, "the verify API always answers 200");
        r.json().await.expect("a verdict")
    }

    /// A proxied request; its status and headers.
    async fn proxy(
        &self,
        method: Method,
        path: &str,
        key: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.edge))
            .bearer_auth(key)
            .send_to_edge()
            .await
            .expect("calling the edge");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// Asks the verify API (spending nothing) until `done(verdict)`; the last verdict.
    async fn until(&self, key: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let v = self.verify(json!({"key": key, "cost": 0})).await;
            if done(&v) {
                return v;
            }
            assert!(
                t.elapsed() < REACH,
                "waited {REACH:?} for {what}; last verdict {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `CLIENTS` clients, half through the proxy and half through the verify API, each
    /// spending 1 with one of `keys` until refused; how many requests were admitted.
    async fn race(&self, keys: &[String]) -> u64 {
        let admitted = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let w = self.clone();
            let key = keys[c % keys.len()].clone();
            let admitted = Arc::clone(&admitted);
            tasks.push(tokio::spawn(async move {
                for _ in 0..500 {
                    let ok = if c % 2 == 0 {
                        let v = w.verify(json!({"key": key})).await;
                        match v["code"].as_str() {
                            Some("VALID") => true,
                            Some("USAGE_EXCEEDED") => false,
                            other => panic!("unexpected verdict {other:?}: {v}"),
                        }
                    } else {
                        let (status, _, body) = w.proxy(Method::GET, "/orders/7", &key).await;
                        match status {
                            200 => true,
                            429 => {
                                assert_eq!(body["code"], "USAGE_EXCEEDED", "{body}");
                                false
                            }
                            s => panic!("unexpected status {s}: {body}"),
                        }
                    };
                    if !ok {
                        return;
                    }
                    admitted.fetch_add(1, Ordering::SeqCst);
                }
                panic!("a client was never refused");
            }));
        }
        for t in tasks {
            t.await.expect("a client");
        }
        admitted.load(Ordering::SeqCst)
    }
}

fn remaining(v: &Value) -> Option<u64> {
    v["credits"]["remaining"].as_u64()
}

async fn exactly_the_credits_granted_pass_and_an_increment_adds_exactly_its_value(w: World) {
    let (ws, app) = w.admin("ppu-key");
    let (id, key) = w
        .key(
            &app,
            &ws,
            json!({"name": "metered", "credits": {"remaining": 50}}),
        )
        .await;
    w.until(&key, "50 credits at the edge", |v| remaining(v) == Some(50))
        .await;
    let t = Instant::now();
    let first = w.race(std::slice::from_ref(&key)).await;
    println!(
        "    {CLIENTS} clients admitted {first} of 50 credits in {:.1?}",
        t.elapsed()
    );
    assert_eq!(first, 50, "exactly the credits granted pass");

    let changed = w
        .api(
            &app,
            Method::POST,
            &format!("/v1/workspaces/{ws}/keys/{id}/credits"),
            Some(json!({"op": "increment", "value": 10})),
        )
        .await;
    assert!(changed["remaining"].is_u64(), "{changed}");
    let t = Instant::now();
    w.until(&key, "the increment at the edge", |v| {
        remaining(v) == Some(10)
    })
    .await;
    println!("    increment 10 reached the edge in {:.0?}", t.elapsed());
    assert_eq!(
        w.race(std::slice::from_ref(&key)).await,
        10,
        "exactly 10 more"
    );
}

async fn an_owners_credits_are_shared_exactly_by_its_keys(w: World) {
    let (ws, app) = w.admin("ppu-owner");
    w.api(
        &app,
        Method::PUT,
        &format!("/v1/workspaces/{ws}/owners/cust_42"),
        Some(json!({"credits": {"remaining": 50}})),
    )
    .await;
    let mut keys = Vec::new();
    for i in 0..3 {
        let (_, key) = w
            .key(
                &app,
                &ws,
                json!({"name": format!("k{i}"), "owner_id": "cust_42"}),
            )
            .await;
        keys.push(key);
    }
    for key in &keys {
        w.until(key, "the owner's credits at the edge", |v| {
            remaining(v) == Some(50)
        })
        .await;
    }
    assert_eq!(
        w.race(&keys).await,
        50,
        "the owner's 50, across its three keys"
    );
    let owner = w
        .api(
            &app,
            Method::GET,
            &format!("/v1/workspaces/{ws}/owners/cust_42"),
            None,
        )
        .await;
    assert_eq!(owner["key_count"], 3, "{owner}");
    w.api(
        &app,
        Method::POST,
        &format!("/v1/workspaces/{ws}/owners/cust_42/credits"),
        Some(json!({"op": "increment", "value": 10})),
    )
    .await;
    w.until(&keys[0], "the owner's increment", |v| {
        remaining(v) == Some(10)
    })
    .await;
    assert_eq!(w.race(&keys).await, 10);
}

async fn a_route_cost_spends_credits_in_its_units(w: World) {
    let (ws, app) = w.admin("ppu-cost");
    let (_, key) = w
        .key(
            &app,
            &ws,
            json!({"name": "sms", "scopes": ["sms.send"], "credits": {"remaining": 12}}),
        )
        .await;
    w.until(&key, "12 credits", |v| remaining(v) == Some(12))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(w.proxy(Method::POST, "/v1/sms/send", &key).await.0);
    }
    assert_eq!(
        statuses,
        [200, 200, 429],
        "cost 5 with 12 credits: two pass"
    );
    let v = w
        .until(&key, "2 credits left", |v| remaining(v) == Some(2))
        .await;
    assert_eq!(v["code"], "VALID", "a free check still passes: {v}");
}

async fn every_limit_applies_and_the_answer_shows_each(w: World) {
    let (ws, app) = w.admin("ppu-limits");
    let (_, key) = w
        .key(
            &app,
            &ws,
            json!({"name": "two limits", "rate_limits": [
                {"name": "minute", "limit": 3, "period_s": 60},
                {"name": "month", "limit": 100, "period_s": 2_592_000},
            ]}),
        )
        .await;
    w.until(&key, "the limits at the edge", |v| {
        v["ratelimits"].as_array().is_some_and(|l| l.len() == 2)
    })
    .await;
    let mut codes = Vec::new();
    let mut last = Value::Null;
    for _ in 0..4 {
        last = w.verify(json!({"key": key})).await;
        codes.push(last["code"].as_str().unwrap_or_default().to_owned());
    }
    // The minute window may roll over between two checks: then the 4th passes and a 5th must not.
    if codes[3] == "VALID" {
        last = w.verify(json!({"key": key})).await;
        codes.push(last["code"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        codes.last().map(String::as_str),
        Some("RATE_LIMITED"),
        "{codes:?}"
    );
    let limits = last["ratelimits"].as_array().expect("ratelimits");
    let by_name = |n: &str| {
        limits
            .iter()
            .find(|l| l["name"].as_str().is_some_and(|x| x.ends_with(n)))
            .unwrap_or_else(|| panic!("no {n} limit in {last}"))
            .clone()
    };
    assert_eq!(by_name("minute")["remaining"], 0, "{last}");
    assert_eq!(by_name("minute")["limit"], 3);
    assert_eq!(by_name("month")["limit"], 100);
    assert!(
        by_name("month")["remaining"]
            .as_u64()
            .is_some_and(|r| r >= 96),
        "{last}"
    );
    let (status, headers, _) = w.proxy(Method::GET, "/orders/1", &key).await;
    assert_eq!(status, 429);
    assert_eq!(
        headers["x-ratelimit-limit"], "3",
        "the tightest limit in the headers"
    );
    assert!(headers.contains_key("retry-after"));
}

async fn a_disabled_owner_turns_its_keys_off_at_the_edge(w: World) {
    let (ws, app) = w.admin("ppu-disable");
    let path = format!("/v1/workspaces/{ws}/owners/acme-corp");
    w.api(&app, Method::PUT, &path, Some(json!({"status": "active"})))
        .await;
    let (_, key) = w
        .key(
            &app,
            &ws,
            json!({"name": "theirs", "owner_id": "acme-corp"}),
        )
        .await;
    w.until(&key, "the key at the edge", |v| v["code"] == "VALID")
        .await;
    let t = Instant::now();
    w.api(
        &app,
        Method::PUT,
        &path,
        Some(json!({"status": "disabled"})),
    )
    .await;
    w.until(&key, "DISABLED", |v| v["code"] == "DISABLED").await;
    println!("    owner disabled reached the edge in {:.0?}", t.elapsed());
    w.api(&app, Method::PUT, &path, Some(json!({"status": "active"})))
        .await;
    w.until(&key, "VALID again", |v| v["code"] == "VALID").await;
}

async fn the_usage_endpoints_report_exactly_the_requests_made(w: World) {
    let (ws, app) = w.admin("ppu-usage");
    let (metered, metered_key) = w
        .key(
            &app,
            &ws,
            json!({"name": "metered", "credits": {"remaining": 4}}),
        )
        .await;
    let (limited, limited_key) = w
        .key(
            &app,
            &ws,
            json!({"name": "limited", "rate_limits": [{"name": "burst", "limit": 2, "period_s": 3600}]}),
        )
        .await;
    // Checking the measured keys would count too: a key made after them reaching the edge says
    // they have (the stream is applied in order).
    let (_, pinger) = w.key(&app, &ws, json!({"name": "pinger"})).await;
    w.until(&pinger, "the keys at the edge", |v| v["code"] == "VALID")
        .await;
    let mut codes = Vec::new();
    for key in [&metered_key; 6].into_iter().chain([&limited_key; 3]) {
        let v = w.verify(json!({"key": key})).await;
        codes.push(v["code"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        codes,
        [
            "VALID",
            "VALID",
            "VALID",
            "VALID",
            "USAGE_EXCEEDED",
            "USAGE_EXCEEDED",
            "VALID",
            "VALID",
            "RATE_LIMITED"
        ]
    );
    let expect = [
        (
            &metered,
            json!({"valid": 4, "usage_exceeded": 2, "rate_limited": 0, "credits_spent": 4}),
        ),
        (
            &limited,
            json!({"valid": 2, "usage_exceeded": 0, "rate_limited": 1, "credits_spent": 0}),
        ),
    ];
    for (id, want) in &expect {
        let usage_path = format!("/v1/workspaces/{ws}/keys/{id}/usage");
        let t = Instant::now();
        let day = loop {
            // The isolate reports at most once a second, with a later request.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            w.verify(json!({"key": pinger, "cost": 0})).await;
            let body = w.api(&app, Method::GET, &usage_path, None).await;
            let today = body["data"]
                .as_array()
                .and_then(|d| d.last())
                .cloned()
                .unwrap_or(Value::Null);
            let seen = today["valid"].as_u64().unwrap_or(0)
                + today["usage_exceeded"].as_u64().unwrap_or(0)
                + today["rate_limited"].as_u64().unwrap_or(0);
            if seen >= 3 || t.elapsed() > Duration::from_secs(20) {
                break today;
            }
        };
        for (k, v) in want.as_object().expect("an object") {
            assert_eq!(&day[k], v, "{k} of key {id} today: {day}");
        }
        let from = day["start"].as_str().unwrap_or_default()[..10].to_owned();
        let hourly = w
            .api(
                &app,
                Method::GET,
                &format!("{usage_path}?granularity=hour&from={from}"),
                None,
            )
            .await;
        for (k, v) in want.as_object().expect("an object") {
            let sum: u64 = hourly["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r[k].as_u64())
                .sum();
            assert_eq!(Some(sum), v.as_u64(), "{k} of key {id} summed by the hour");
        }
    }
    let csv = app
        .send(
            Method::GET,
            &format!("/v1/workspaces/{ws}/usage"),
            &[("accept", "text/csv")],
            None,
        )
        .await
        .expect("the CSV");
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.text.trim_end().split("\r\n").collect();
    assert_eq!(
        lines.len(),
        4,
        "a header and a row per key (metered, limited, the pinger) for the one day: {}",
        csv.text
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(metered.as_str()) && l.contains(",4,0,2,")),
        "{}",
        csv.text
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(limited.as_str()) && l.contains(",2,1,0,")),
        "{}",
        csv.text
    );
}
