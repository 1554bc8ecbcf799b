//! Control-plane benchmark: create, list and revoke through the local stack, next to a bare
//! `TransactWriteItems` of the same items on the same moto server (the store's floor).
//!
//! Run: `cargo xtask bench` (which runs this and folds its JSON into `target/keyward/bench.json`),
//! or by hand after `cargo xtask bootstrap`:
//! `eval "$(cargo xtask env)" && cargo run -p keyward-tests --bin bench_control -- OUT.json [N]`
//! (`N` sequential requests per operation, default 200).
//!
//! The functions run under `cargo lambda watch --release` (the profile deployed). Creates and
//! bare transactions are also timed on a table of 100 and of 10,000 keys (the rest written
//! straight to the table): the local DynamoDB's cost per transaction must not grow with it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use keyward_common::{KeyHash, KeyId};
use keyward_functions::store::item;
use keyward_tests::control_plane::{ControlPlane, ControlPlaneOptions};
use serde_json::{Value, json};

/// Concurrent clients in the small concurrency run (one workspace each).
const CLIENTS: usize = 4;
/// Instances per function under `cargo lambda watch` (two cores here).
const INSTANCES: u32 = 2;
const WS: &str = "bench";

type Item = HashMap<String, AttributeValue>;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().context("usage: bench_control OUT.json [N]")?;
    let n: usize = args.next().map_or(Ok(200), |s| s.parse())?;

    let started = Instant::now();
    let plane = ControlPlane::start(ControlPlaneOptions {
        concurrency: INSTANCES,
        max_active_keys: 1_000_000,
        release: true,
        // No stream: nothing here reads it, and the figures are the store's.
        stream: false,
        ..ControlPlaneOptions::default()
    })
    .await
    .context("starting the local control plane")?;
    eprintln!(
        "control bench: stack up in {:.1}s ({})",
        started.elapsed().as_secs_f64(),
        plane.url()
    );
    let token = plane.token(
        WS,
        &[
            "api.key.create",
            "api.key.view",
            "api.key.update",
            "api.key.delete",
        ],
        "bench",
    )?;
    let api = Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base: format!("{}/v1/workspaces/{WS}", plane.url()),
        token,
    };

    // Warm every path once (first invocations start the function processes).
    let (warm_id, warm_secret) = api.create(0).await?;
    api.list().await?;
    api.revoke(&warm_id).await?;

    // The floor: the same four writes create makes, straight to moto.
    let floor = BareTxn::copy_of_create(&plane, &warm_id, &warm_secret).await?;
    floor.write(&plane, u64::MAX).await?; // warm the client's connection

    // Sequential: one request at a time. Creates and bare transactions alternate, so both see
    // the same table.
    let mut ids = Vec::with_capacity(n);
    let mut create = Vec::with_capacity(n);
    let mut bare = Vec::with_capacity(n);
    let (mut create_wall, mut bare_wall) = (Duration::ZERO, Duration::ZERO);
    for i in 0..n {
        let s = Instant::now();
        ids.push(api.create(i + 1).await?.0);
        create.push(s.elapsed());
        create_wall += s.elapsed();
        let s = Instant::now();
        floor.write(&plane, i as u64).await?;
        bare.push(s.elapsed());
        bare_wall += s.elapsed();
    }
    // By the table's size: the first 50 creates and 50 bare transactions above saw at most 100
    // keys; then the table is filled to 10,000 keys and 100 more of each are timed.
    let by_size = |lat: &[Duration]| {
        let first = &lat[..lat.len().min(50)];
        stats(first, first.iter().sum())
    };
    let (create_100, bare_100) = (by_size(&create), by_size(&bare));
    fill(
        &plane,
        &floor,
        10_000_usize.saturating_sub(2 * ids.len() + 1),
    )
    .await?;
    let (mut create_10k, mut bare_10k) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let s = Instant::now();
        ids.push(api.create(200_000 + i).await?.0);
        create_10k.push(s.elapsed());
        let s = Instant::now();
        floor.write(&plane, 2_000_000 + i as u64).await?;
        bare_10k.push(s.elapsed());
    }
    let create_by_table_keys = json!({
        "100": create_100,
        "10000": stats(&create_10k, create_10k.iter().sum()),
    });
    let bare_txn_by_table_keys = json!({
        "100": bare_100,
        "10000": stats(&bare_10k, bare_10k.iter().sum()),
    });

    let mut list = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..n {
        let s = Instant::now();
        api.list().await?;
        list.push(s.elapsed());
    }
    let list_wall = t.elapsed();
    let mut revoke = Vec::with_capacity(n);
    let t = Instant::now();
    for id in &ids {
        let s = Instant::now();
        api.revoke(id).await?;
        revoke.push(s.elapsed());
    }
    let revoke_wall = t.elapsed();

    // Concurrent: CLIENTS clients creating n keys between them, each in its own workspace (one
    // workspace's key counter is a single item every create updates: concurrent creates there
    // contend on it). Failed requests are counted, not fatal.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let ws = format!("{WS}{c}");
        let api = Api {
            base: format!("{}/v1/workspaces/{ws}", plane.url()),
            token: plane.token(&ws, &["api.key.create"], "bench")?,
            ..api.clone()
        };
        let per = n / CLIENTS;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            let mut failed = Vec::new();
            for i in 0..per {
                let s = Instant::now();
                match api.create(100_000 + c * per + i).await {
                    Ok(_) => lat.push(s.elapsed()),
                    Err(err) => failed.push(format!("{err:#}")),
                }
            }
            (lat, failed)
        }));
    }
    let mut create_conc = Vec::new();
    let mut create_conc_failed = Vec::new();
    for task in tasks {
        let (lat, failed) = task.await?;
        create_conc.extend(lat);
        create_conc_failed.extend(failed);
    }
    let create_conc_wall = t.elapsed();
    if let Some(first) = create_conc_failed.first() {
        eprintln!(
            "control bench: {} concurrent creates failed; first: {first}",
            create_conc_failed.len()
        );
    }

    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let floor = floor.clone();
        let dynamodb = plane.dynamodb().clone();
        let per = n / CLIENTS;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            let mut failed = 0usize;
            for i in 0..per {
                let s = Instant::now();
                // moto answers some concurrent transactions with a 500 page: counted, not fatal.
                // moto can also hang on concurrent transactions: bounded, counted as failed.
                let write = floor.write_with(&dynamodb, (1_000_000 + c * per + i) as u64, c);
                match tokio::time::timeout(Duration::from_secs(10), write).await {
                    Ok(Ok(())) => lat.push(s.elapsed()),
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    let mut bare_conc = Vec::new();
    let mut bare_conc_failed = 0;
    for task in tasks {
        let (lat, failed) = task.await?;
        bare_conc.extend(lat);
        bare_conc_failed += failed;
    }
    let bare_conc_wall = t.elapsed();

    // A plain GetItem through the same client: tells the client's own per-request cost apart
    // from moto's cost of the transaction.
    let mut get = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..n {
        let s = Instant::now();
        plane
            .dynamodb()
            .get_item()
            .table_name(plane.table())
            .key(item::PK, AttributeValue::S(item::workspace_pk(WS)))
            .key(
                item::SK,
                AttributeValue::S(item::key_sk(&KeyId::parse(&warm_id)?)),
            )
            .send()
            .await
            .context("GetItem")?;
        get.push(s.elapsed());
    }
    let get_wall = t.elapsed();

    let create_s = stats(&create, create_wall);
    let bare_s = stats(&bare, bare_wall);
    let ratio =
        create_s["p50_ms"].as_f64().unwrap_or(0.0) / bare_s["p50_ms"].as_f64().unwrap_or(1.0);
    let report = json!({
        "profile": "release (cargo lambda watch --release)",
        "store": "moto (DynamoDB API) on 127.0.0.1",
        "requests_per_operation": n,
        "concurrent_clients": CLIENTS,
        "instances_per_function": INSTANCES,
        "create": create_s,
        "list": stats(&list, list_wall),
        "revoke": stats(&revoke, revoke_wall),
        "create_concurrent": stats(&create_conc, create_conc_wall),
        "create_concurrent_failed": create_conc_failed.len(),
        "create_concurrent_first_failure": create_conc_failed.first(),
        "bare_txn": bare_s,
        "bare_txn_concurrent": stats(&bare_conc, bare_conc_wall),
        "bare_txn_concurrent_failed": bare_conc_failed,
        "bare_get_item": stats(&get, get_wall),
        "create_vs_bare_txn": ratio,
        "create_by_table_keys": create_by_table_keys,
        "bare_txn_by_table_keys": bare_txn_by_table_keys,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {out}"))?;
    eprintln!("control bench: wrote {out}");
    Ok(())
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, req: reqwest::RequestBuilder, want: u16) -> Result<Value> {
        let resp = req.bearer_auth(&self.token).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if status != want {
            bail!("expected {want}, got {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a key; returns its id and secret.
    async fn create(&self, i: usize) -> Result<(String, String)> {
        let body = json!({ "name": format!("bench key {i}"), "scopes": ["read"], "owner_id": "user_bench" });
        let v = self
            .call(
                self.client.post(format!("{}/keys", self.base)).json(&body),
                201,
            )
            .await
            .context("create")?;
        Ok((
            v["id"]
                .as_str()
                .context("create returned no id")?
                .to_owned(),
            v["key"]
                .as_str()
                .context("create returned no key")?
                .to_owned(),
        ))
    }

    async fn list(&self) -> Result<()> {
        self.call(self.client.get(format!("{}/keys?limit=20", self.base)), 200)
            .await
            .context("list")
            .map(drop)
    }

    async fn revoke(&self, id: &str) -> Result<()> {
        let resp = self
            .client
            .delete(format!("{}/keys/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            bail!("revoke answered {status}: {}", resp.text().await?);
        }
        Ok(())
    }
}

/// The items one create wrote (read back from the table), re-keyed per write.
#[derive(Clone)]
struct BareTxn {
    table: String,
    key: Item,
    hash: Item,
    audit: Item,
}

impl BareTxn {
    async fn copy_of_create(plane: &ControlPlane, id: &str, secret: &str) -> Result<Self> {
        let db = plane.dynamodb();
        let table = plane.table().to_owned();
        let get = |pk: String, sk: String| {
            let table = table.clone();
            async move {
                db.get_item()
                    .table_name(table)
                    .key(item::PK, AttributeValue::S(pk.clone()))
                    .key(item::SK, AttributeValue::S(sk.clone()))
                    .send()
                    .await
                    .with_context(|| format!("reading {pk}/{sk}"))?
                    .item
                    .with_context(|| format!("no item {pk}/{sk}"))
            }
        };
        let key = get(item::workspace_pk(WS), item::key_sk(&KeyId::parse(id)?)).await?;
        let hash = get(
            item::hash_pk(&KeyHash::of(secret)),
            item::HASH_SK.to_owned(),
        )
        .await?;
        let audit = db
            .query()
            .table_name(&table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :a)")
            .expression_attribute_values(":pk", AttributeValue::S(item::workspace_pk(WS)))
            .expression_attribute_values(":a", AttributeValue::S(item::AUDIT_SK_PREFIX.into()))
            .limit(1)
            .send()
            .await
            .context("reading an audit item")?
            .items
            .and_then(|mut v| v.pop())
            .context("no audit item")?;
        Ok(Self {
            table,
            key,
            hash,
            audit,
        })
    }

    async fn write(&self, plane: &ControlPlane, n: u64) -> Result<()> {
        self.write_with(plane.dynamodb(), n, 0).await
    }

    /// Key + hash + audit puts (each `attribute_not_exists(PK)`) and the capped counter update:
    /// what the store's create sends, with fresh sort keys so every write succeeds.
    async fn write_with(
        &self,
        db: &aws_sdk_dynamodb::Client,
        n: u64,
        counter_ws: usize,
    ) -> Result<()> {
        let tag = format!("{n}-{}", std::process::id());
        let put = |item: Item| -> Result<TransactWriteItem> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(PK)")
                        .build()?,
                )
                .build())
        };
        let counter = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .key(
                        item::PK,
                        AttributeValue::S(item::workspace_pk(&format!("{WS}-bare{counter_ws}"))),
                    )
                    .key(item::SK, AttributeValue::S(item::COUNTER_SK.into()))
                    .update_expression("ADD #n :d")
                    .condition_expression("attribute_not_exists(#n) OR #n < :cap")
                    .expression_attribute_names("#n", "active_keys")
                    .expression_attribute_values(":d", AttributeValue::N("1".into()))
                    .expression_attribute_values(":cap", AttributeValue::N("100000000".into()))
                    .build()?,
            )
            .build();
        db.transact_write_items()
            .transact_items(put(rekey(&self.key, item::SK, &tag))?)
            .transact_items(put(rekey(&self.hash, item::PK, &tag))?)
            .transact_items(put(rekey(&self.audit, item::SK, &tag))?)
            .transact_items(counter)
            .send()
            .await
            .context("bare TransactWriteItems")?;
        Ok(())
    }
}

/// Writes `n` more keys (key and hash items, as a create leaves them) straight to the table in
/// batches of 25, so a table of thousands of keys takes seconds, not a create each.
async fn fill(plane: &ControlPlane, floor: &BareTxn, n: usize) -> Result<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let mut items = Vec::with_capacity(2 * n);
    for i in 0..n {
        let tag = format!("fill{i}");
        items.push(rekey(&floor.key, item::SK, &tag));
        items.push(rekey(&floor.hash, item::PK, &tag));
    }
    for chunk in items.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item.clone())).build()?)
                    .build())
            })
            .collect::<Result<_>>()?;
        while !pending.is_empty() {
            let out = plane
                .dynamodb()
                .batch_write_item()
                .request_items(plane.table(), pending)
                .send()
                .await
                .context("filling the table (BatchWriteItem)")?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(plane.table()))
                .unwrap_or_default();
        }
    }
    Ok(())
}

/// `item` with `suffix` appended to its string attribute `attr` (a fresh primary key).
fn rekey(item: &Item, attr: &str, suffix: &str) -> Item {
    let mut item = item.clone();
    if let Some(AttributeValue::S(v)) = item.get(attr).cloned() {
        item.insert(
            attr.to_owned(),
            AttributeValue::S(format!("{v}#bare{suffix}")),
        );
    }
    item
}

/// p50/p99/mean in ms and requests/s over the wall time.
fn stats(lat: &[Duration], wall: Duration) -> Value {
    let mut ms: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if ms.is_empty() {
            return 0.0;
        }
        let i = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[i]
    };
    json!({
        "n": ms.len(),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "mean_ms": ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        "rps": ms.len() as f64 / wall.as_secs_f64().max(1e-9),
    })
}
