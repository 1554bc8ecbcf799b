//! Each management operation through the whole handler (routing, authentication, input, the
//! operation, the answer): its own time on the in-memory store, and its DynamoDB round trips.
//!
//! Run: `cargo bench -p keyward-functions --bench handlers -- OUT.json` (release settings: the
//! bench profile inherits `release`). `cargo xtask bench` runs it and folds OUT.json into
//! `target/keyward/bench.json`. The round trips are counted on a DynamoDB-compatible server
//! (the project's moto, `cargo xtask bootstrap`) by an SDK interceptor: every HTTP request the
//! store sends, per call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyward_functions::operation::{Resolution, resolve};
use keyward_functions::store::KeyStore;
use keyward_functions::store::dynamo::DynamoStore;
use keyward_functions::store::memory::MemoryStore;
use keyward_functions::{App, Config, handle};
use lambda_http::Body;
use lambda_http::http;
use serde_json::{Value, json};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";
const ISS: &str = "keyward-bench";
const AUD: &str = "keyward";
const WS: &str = "bench";
/// Timed calls per operation on the in-memory store (after as many warm-up calls).
const RUNS: usize = 2000;

/// The operations measured, in the README's order.
const OPS: [&str; 7] = [
    "create",
    "get",
    "list",
    "update",
    "revoke",
    "rotate",
    "get_as_root_key",
];

fn main() -> Result<()> {
    let out = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "target/keyward/bench-handlers.json".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let memory = handler_us().await?;
        let trips = round_trips().await?;
        let report = json!({
            "profile": "bench (release settings), one thread, in-process",
            "runs_per_operation": RUNS,
            "handler_p50_us": memory.iter().map(|(k, v)| (k.clone(), v[0])).collect::<BTreeMap<_, _>>(),
            "handler_p99_us": memory.iter().map(|(k, v)| (k.clone(), v[1])).collect::<BTreeMap<_, _>>(),
            "dynamodb_round_trips": trips.iter().map(|(k, v)| (k.clone(), v.0)).collect::<BTreeMap<_, _>>(),
            "dynamodb_requests": trips.iter().map(|(k, v)| (k.clone(), v.1.clone())).collect::<BTreeMap<_, _>>(),
        });
        if let Some(dir) = std::path::Path::new(&out).parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {out}"))?;
        for op in OPS {
            println!(
                "handler {op}: p50 {:.1} µs on the in-memory store, {} DynamoDB round trips",
                memory.get(op).map_or(0.0, |v| v[0]),
                trips.get(op).map_or(0, |v| v.0)
            );
        }
        println!("handlers: wrote {out}");
        Ok(())
    })
}

/// p50 and p99 (µs) of each operation through `handle` on the in-memory store, each on a store
/// of its own holding only the keys it needs.
async fn handler_us() -> Result<BTreeMap<String, [f64; 2]>> {
    let mut out = BTreeMap::new();
    for op in OPS {
        let bench = Bench::new(Arc::new(MemoryStore::new()));
        // Revoke uses a key up; the others reuse a few.
        let keys = match op {
            "create" => Vec::new(),
            "revoke" => bench.keys(2 * RUNS).await?,
            _ => bench.keys(20).await?,
        };
        let mut lat = Vec::with_capacity(RUNS);
        for i in 0..2 * RUNS {
            let id = keys.get(i % keys.len().max(1)).map_or("", |k| k.0.as_str());
            let t = Instant::now();
            bench.op(op, id, i).await?;
            if i >= RUNS {
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        lat.sort_by(f64::total_cmp);
        out.insert(op.to_owned(), [pick(&lat, 0.5), pick(&lat, 0.99)]);
    }
    Ok(out)
}

/// DynamoDB requests of one call of each operation, on moto, with their targets.
async fn round_trips() -> Result<BTreeMap<String, (u64, Vec<String>)>> {
    let log = std::env::temp_dir().join(format!("keyward-bench-moto-{}.log", std::process::id()));
    let moto =
        tokio::task::spawn_blocking(move || keyward_tests::moto::Moto::start(&log)).await??;
    let counter = Counter::default();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(moto.url())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = "keyward-bench-handlers";
    let definition = keyward_tests::table::load_table_definition()?;
    keyward_tests::table::create_table_with(&client, table, &definition, false).await?;
    let bench = Bench::new(Arc::new(DynamoStore::new(client, table)));
    let mut out = BTreeMap::new();
    for op in OPS {
        let keys = bench.keys(2).await?;
        // The second call: anything a first call does once per process is not counted.
        bench.op(op, &keys[0].0, 0).await?;
        counter.reset();
        bench.op(op, &keys[1].0, 1).await?;
        let (n, targets) = counter.take();
        out.insert(op.to_owned(), (n, targets));
    }
    drop(moto);
    Ok(out)
}

struct Bench {
    app: App,
    admin: String,
    root: tokio::sync::OnceCell<String>,
    seq: AtomicU64,
}

impl Bench {
    fn new(store: Arc<dyn KeyStore>) -> Self {
        let pairs = [
            ("KEYWARD_TABLE", "bench"),
            ("KEYWARD_JWT_ALG", "HS256"),
            ("KEYWARD_JWT_KEY", SECRET),
            ("KEYWARD_JWT_ISSUER", ISS),
            ("KEYWARD_JWT_AUDIENCE", AUD),
            ("KEYWARD_MAX_ACTIVE_KEYS", "100000000"),
            ("KEYWARD_DEFAULT_SCOPES", "read"),
        ];
        let config = Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect("a valid bench configuration");
        let claims = json!({"sub": "bench", "workspace": WS, "permissions": ["api.*"],
            "iss": ISS, "aud": AUD, "exp": 4_000_000_000_u64});
        let admin = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signing the bench token");
        Self {
            app: App {
                config: Arc::new(config),
                store,
            },
            admin,
            root: tokio::sync::OnceCell::new(),
            seq: AtomicU64::new(0),
        }
    }

    /// Sends one request through the handler; fails unless it answers `want`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: &[u16],
    ) -> Result<Value> {
        let function = match resolve(method, path.split('?').next().unwrap_or(path), |_| true) {
            Resolution::Found(row, _) => row.function,
            _ => bail!("no function serves {method} {path}"),
        };
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b.body(body.map_or(Body::Empty, |v| Body::Text(v.to_string())))?;
        let resp = handle(&self.app, function, req).await;
        let status = resp.status().as_u16();
        let text = match resp.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        if !want.contains(&status) {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self) -> Result<(String, String)> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let v = self
            .call(
                "POST",
                &format!("/v1/workspaces/{WS}/keys"),
                &self.admin,
                Some(json!({"name": format!("bench {n}"), "scopes": ["read"]})),
                &[201],
            )
            .await?;
        Ok((
            v["id"].as_str().context("no id")?.to_owned(),
            v["key"].as_str().context("no key")?.to_owned(),
        ))
    }

    /// `n` fresh keys (id, secret).
    async fn keys(&self, n: usize) -> Result<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.create().await?);
        }
        Ok(out)
    }

    async fn op(&self, op: &str, id: &str, i: usize) -> Result<()> {
        let key = format!("/v1/workspaces/{WS}/keys/{id}");
        match op {
            "create" => self.create().await.map(drop),
            "get" => self
                .call("GET", &key, &self.admin, None, &[200])
                .await
                .map(drop),
            "list" => self
                .call(
                    "GET",
                    &format!("/v1/workspaces/{WS}/keys?limit=20"),
                    &self.admin,
                    None,
                    &[200],
                )
                .await
                .map(drop),
            "update" => self
                .call(
                    "PATCH",
                    &key,
                    &self.admin,
                    Some(json!({"name": format!("renamed {i}")})),
                    &[200],
                )
                .await
                .map(drop),
            "revoke" => self
                .call("DELETE", &key, &self.admin, None, &[200, 204])
                .await
                .map(drop),
            "rotate" => self
                .call(
                    "POST",
                    &format!("{key}/rotate"),
                    &self.admin,
                    None,
                    &[200, 201],
                )
                .await
                .map(drop),
            "get_as_root_key" => {
                let root = self.root_key().await?;
                self.call("GET", &key, root, None, &[200]).await.map(drop)
            }
            other => bail!("unknown operation {other}"),
        }
    }

    /// A key holding `api.*`: the caller of `get_as_root_key` (created once per store).
    async fn root_key(&self) -> Result<&str> {
        self.root
            .get_or_try_init(|| async {
                let v = self
                    .call(
                        "POST",
                        &format!("/v1/workspaces/{WS}/keys"),
                        &self.admin,
                        Some(json!({"name": "bench root", "scopes": ["api.*"]})),
                        &[201],
                    )
                    .await?;
                Ok::<_, anyhow::Error>(v["key"].as_str().context("no key")?.to_owned())
            })
            .await
            .map(String::as_str)
    }
}

/// Counts the HTTP requests a DynamoDB client sends (every attempt), with their targets.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<Vec<String>>>);

impl Counter {
    fn reset(&self) {
        self.0.lock().expect("counter lock").clear();
    }

    fn take(&self) -> (u64, Vec<String>) {
        let seen = std::mem::take(&mut *self.0.lock().expect("counter lock"));
        (seen.len() as u64, seen)
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "RoundTripCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .map_or("?", |t| t.rsplit('.').next().unwrap_or(t))
            .to_owned();
        self.0.lock().expect("counter lock").push(target);
        Ok(())
    }
}

fn pick(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[i] * 10.0).round() / 10.0
}
