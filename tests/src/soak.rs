//! The soak driver: a steady mixed load on a running [`Stack`], its figures, and its invariants.
//!
//! Traffic, each kind at its own fixed rate (open loop, so a slow stack queues work rather than
//! slowing the driver): edge verifies and proxied requests (warm keys, cold keys, retired
//! secrets, well-formed unknown keys, garbage), creates, PATCHes, rotations and revocations. The
//! edge flushes usage to the control plane every second on its own. Every write is followed to
//! the edge: the time until the edge shows it is the replication lag (the revocation lag for a
//! revoke or a rotated-away secret).
//!
//! Invariants, checked by [`SoakReport::violations`]: no secret is ever VALID at the edge after
//! the edge refused it once (no resurrection), and at the end every write the API acknowledged
//! is in the table and at the edge (no lost write). Timings are reported, never asserted here.
//! Used by `cargo xtask soak` (`tests/src/bin/soak.rs`) and by the `soak` e2e test.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::edge::{DEV_PROXY_RETRIES, SendToEdge};
use crate::stack::Stack;

/// Requests per second of each kind.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// `POST /v1/keys/verify` at the edge.
    pub verify: f64,
    /// Proxied `GET`s through the edge.
    pub proxy: f64,
    /// `POST /keys`.
    pub create: f64,
    /// `PATCH /keys/{id}` (a new name).
    pub patch: f64,
    /// `POST /keys/{id}/rotate` without grace.
    pub rotate: f64,
    /// `DELETE /keys/{id}`.
    pub revoke: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            verify: 16.0,
            proxy: 8.0,
            create: 0.5,
            patch: 0.5,
            rotate: 0.2,
            revoke: 0.2,
        }
    }
}

/// Keys created before the load starts: the warm set most traffic uses.
const WARM_KEYS: usize = 8;
/// Most requests in flight at once (beyond it a tick waits: the load stays bounded).
const IN_FLIGHT: usize = 48;
/// How often a write's watcher asks the edge.
const WATCH_POLL: Duration = Duration::from_millis(50);
/// How long a write may take to reach the edge before it counts as lost.
const WATCH_LIMIT: Duration = Duration::from_secs(30);

/// Where a secret stands, as the driver knows it.
#[derive(Debug, Clone)]
struct Secret {
    key_id: String,
    /// Retired (revoked, or rotated away) since this moment.
    retired: Option<Instant>,
    /// When an answer refusing it after it was retired arrived: VALID to a request sent after
    /// that is a resurrection. (A request sent earlier may answer later: concurrent requests
    /// finish out of order, and one sent again after wrangler dev's 503 finishes late.)
    refused_since_retired: Option<Instant>,
    /// The edge said VALID at least once.
    seen_valid: bool,
}

impl Secret {
    fn new(key_id: &str) -> Self {
        Self {
            key_id: key_id.to_owned(),
            retired: None,
            refused_since_retired: None,
            seen_valid: false,
        }
    }
}

/// A key the API acknowledged, with what it should look like.
#[derive(Debug, Clone)]
struct Key {
    secret: String,
    name: String,
    revoked: bool,
}

/// Latencies and outcomes of one kind of request.
#[derive(Debug, Default)]
struct Kind {
    lat_ms: Vec<f64>,
    requests: u64,
    errors: u64,
    refusals: u64,
    first_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    secrets: HashMap<String, Secret>,
    keys: BTreeMap<String, Key>,
    warm: Vec<String>,
    kinds: BTreeMap<&'static str, Kind>,
    lag_ms: BTreeMap<&'static str, Vec<f64>>,
    resurrections: Vec<String>,
    lost: Vec<String>,
}

/// Figures of one request kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    /// Requests sent.
    pub requests: u64,
    /// Answers that were neither the expected success nor an expected refusal.
    pub errors: u64,
    /// Expected refusals (a retired secret refused, garbage refused, ...).
    pub refusals: u64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The first unexpected answer, for the log.
    pub first_error: Option<String>,
}

/// Lag percentiles of one kind of write.
#[derive(Debug, Clone, Serialize)]
pub struct LagFigures {
    /// Writes followed to the edge.
    pub n: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// What a soak measured.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Length of the load, seconds.
    pub seconds: f64,
    /// Per request kind.
    pub kinds: BTreeMap<String, KindFigures>,
    /// Write → visible at the edge, per kind of write (`revoke`: the revocation lag).
    pub lag: BTreeMap<String, LagFigures>,
    /// Resident memory (KiB) per component at the start of the load.
    pub rss_start_kib: BTreeMap<String, u64>,
    /// Resident memory (KiB) per component at the end.
    pub rss_end_kib: BTreeMap<String, u64>,
    /// Resident memory (KiB) per component sampled during the load, a tenth of it apart.
    pub rss_samples: Vec<RssSample>,
    /// Secrets seen VALID after the edge had refused them once.
    pub resurrections: Vec<String>,
    /// Acknowledged writes missing from the table or the edge at the end.
    pub lost_writes: Vec<String>,
    /// Keys checked at the end.
    pub keys_checked: usize,
    /// Usage the control plane recorded for the warm keys (valid requests), after the flushes.
    pub usage_valid_counted: u64,
    /// Edge requests sent again because wrangler dev's own proxy answered its 503 "restarted
    /// mid-request" (cloudflare/workers-sdk#14641: the request never reached the Worker).
    pub dev_proxy_retries: u64,
}

/// Resident memory of every component at one moment of the load.
#[derive(Debug, Clone, Serialize)]
pub struct RssSample {
    /// Seconds since the load started.
    pub at_s: f64,
    /// KiB per component.
    pub kib: BTreeMap<String, u64>,
}

impl SoakReport {
    /// The sample taken once the load has warmed up: the first at or after a fifth of the run
    /// (caches, connection pools and the allocators' arenas are full by then; what grows after
    /// it grows with time). `None` for a run too short to sample.
    #[must_use]
    pub fn rss_warmed(&self) -> Option<&RssSample> {
        self.rss_samples
            .iter()
            .find(|s| s.at_s >= self.seconds / 5.0)
    }

    /// The broken invariants, one line each (empty when none).
    #[must_use]
    pub fn violations(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .resurrections
            .iter()
            .map(|r| format!("resurrection: {r}"))
            .collect();
        out.extend(self.lost_writes.iter().map(|l| format!("lost write: {l}")));
        if self.usage_valid_counted == 0 {
            out.push("no usage reached the control plane".into());
        }
        out
    }

    /// Errors that are not expected refusals, summed over every kind.
    #[must_use]
    pub fn errors(&self) -> u64 {
        self.kinds.values().map(|k| k.errors).sum()
    }

    /// A table for people.
    #[must_use]
    pub fn table(&self) -> String {
        let mut s = format!(
            "soak: {:.0} s\n| kind | requests | errors | expected refusals | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|\n",
            self.seconds
        );
        for (name, k) in &self.kinds {
            s += &format!(
                "| {name} | {} | {} | {} | {:.1} | {:.1} |\n",
                k.requests, k.errors, k.refusals, k.p50_ms, k.p99_ms
            );
        }
        for (name, k) in &self.kinds {
            if let Some(e) = &k.first_error {
                s += &format!("first unexpected answer of {name}: {e}\n");
            }
        }
        s += "\n| write → edge | n | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n";
        for (name, l) in &self.lag {
            s += &format!(
                "| {name} | {} | {:.0} | {:.0} | {:.0} |\n",
                l.n, l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        let warmed = self.rss_warmed();
        let at = warmed.map_or_else(|| "-".to_owned(), |w| format!("{:.0} s", w.at_s));
        s += &format!(
            "\n| component | RSS start MiB | RSS at {at} MiB | RSS end MiB | change since start | change since {at} |\n|---|---:|---:|---:|---:|---:|\n"
        );
        let change = |from: u64, to: u64| (to as f64 / from.max(1) as f64 - 1.0) * 100.0;
        for (name, start) in &self.rss_start_kib {
            let end = self.rss_end_kib.get(name).copied().unwrap_or(0);
            let mid = warmed.and_then(|w| w.kib.get(name).copied());
            s += &format!(
                "| {name} | {:.1} | {} | {:.1} | {:+.1}% | {} |\n",
                *start as f64 / 1024.0,
                mid.map_or_else(|| "-".to_owned(), |m| format!("{:.1}", m as f64 / 1024.0)),
                end as f64 / 1024.0,
                change(*start, end),
                mid.map_or_else(|| "-".to_owned(), |m| format!("{:+.1}%", change(m, end))),
            );
        }
        s += &format!(
            "\nresurrections: {}; lost writes: {} of {} keys checked; usage counted for the warm keys: {}\n",
            self.resurrections.len(),
            self.lost_writes.len(),
            self.keys_checked,
            self.usage_valid_counted
        );
        s += &format!(
            "edge requests sent again after wrangler dev's own 503 (its proxy lost the connection \
             to the Worker; cloudflare/workers-sdk#14641): {}\n",
            self.dev_proxy_retries
        );
        s
    }
}

/// The driver's shared context.
#[derive(Clone)]
struct Driver {
    http: reqwest::Client,
    api: String,
    edge: String,
    token: String,
    state: Arc<Mutex<State>>,
    seq: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
}

/// Runs the mixed load on `stack` for `length`, then checks every acknowledged write.
///
/// # Errors
/// When the warm keys cannot be created or a component is gone; broken invariants are in the
/// report, not errors.
pub async fn run(stack: &Stack, length: Duration, rates: Rates) -> Result<SoakReport> {
    let ws = format!("soak-{}", crate::control_plane::random_hex(4));
    let driver = Driver {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(IN_FLIGHT)
            .build()?,
        api: format!("{}/v1/workspaces/{ws}", stack.control_plane_url()),
        edge: stack.edge_url(),
        token: stack.admin_token(&ws, "user_soak", 24 * 3600)?,
        state: Arc::default(),
        seq: Arc::default(),
        slots: Arc::new(Semaphore::new(IN_FLIGHT)),
    };
    for _ in 0..WARM_KEYS {
        let (_, secret) = driver
            .create()
            .await
            .context("creating the warm keys")?
            .context("creating a warm key was refused")?;
        driver.watch_valid("create", secret.clone(), Instant::now());
        driver.lock().warm.push(secret);
    }
    // Let the warm keys reach the edge before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_start = rss(stack);
    let started = Instant::now();
    let deadline = started + length;
    let kinds: [(&'static str, f64); 6] = [
        ("verify", rates.verify),
        ("proxy", rates.proxy),
        ("create", rates.create),
        ("patch", rates.patch),
        ("rotate", rates.rotate),
        ("revoke", rates.revoke),
    ];
    let mut loops = Vec::new();
    for (kind, rate) in kinds {
        if rate <= 0.0 {
            continue;
        }
        let d = driver.clone();
        loops.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                tick.tick().await;
                let Ok(slot) = d.slots.clone().acquire_owned().await else {
                    return;
                };
                let d = d.clone();
                tokio::spawn(async move {
                    d.one(kind).await;
                    drop(slot);
                });
            }
        }));
    }
    // Sample every component's memory a tenth of the load apart while the loops run.
    let every = (length / 10).max(Duration::from_secs(5));
    let mut rss_samples = Vec::new();
    while Instant::now() + every < deadline {
        tokio::time::sleep(every).await;
        rss_samples.push(RssSample {
            at_s: started.elapsed().as_secs_f64(),
            kib: rss(stack),
        });
    }
    for l in loops {
        l.await?;
    }
    // Every request done: all slots back.
    drop(
        driver
            .slots
            .acquire_many(u32::try_from(IN_FLIGHT).unwrap_or(u32::MAX))
            .await?,
    );
    driver.drain_watchers().await;
    let seconds = started.elapsed().as_secs_f64();
    let rss_end = rss(stack);
    let keys_checked = driver.check_end().await;
    let usage = driver.usage_of_warm_keys().await;
    Ok(driver.report(
        seconds,
        [rss_start, rss_end],
        rss_samples,
        keys_checked,
        usage,
    ))
}

impl Driver {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn record(&self, kind: &'static str, took: Duration, outcome: Outcome) {
        let mut st = self.lock();
        let k = st.kinds.entry(kind).or_default();
        k.requests += 1;
        k.lat_ms.push(took.as_secs_f64() * 1000.0);
        match outcome {
            Outcome::Ok => {}
            Outcome::Refused => k.refusals += 1,
            Outcome::Error(e) => {
                k.errors += 1;
                k.first_error.get_or_insert(e);
            }
        }
    }

    async fn one(&self, kind: &'static str) {
        match kind {
            "verify" | "proxy" => self.edge_request(kind).await,
            "create" => {
                let t = Instant::now();
                match self.create().await {
                    Ok(Some((_, secret))) => {
                        self.record(kind, t.elapsed(), Outcome::Ok);
                        self.watch_valid("create", secret, Instant::now());
                    }
                    Ok(None) => self.record(kind, t.elapsed(), Outcome::Refused),
                    Err(e) => self.record(kind, t.elapsed(), Outcome::Error(format!("{e:#}"))),
                }
            }
            "patch" => self.patch().await,
            "rotate" => self.rotate().await,
            "revoke" => self.revoke().await,
            _ => {}
        }
    }

    /// Sends a management request as the soak's admin; how long it took, and the answer.
    async fn timed(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (Duration, reqwest::Result<reqwest::Response>) {
        let t = Instant::now();
        let r = req.bearer_auth(&self.token).send().await;
        (t.elapsed(), r)
    }

    /// Creates a key; `None` when the API refused (counted by the caller).
    async fn create(&self) -> Result<Option<(String, String)>> {
        let name = format!("soak {}", self.next());
        let r = self
            .http
            .post(format!("{}/keys", self.api))
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "scopes": ["read"]}))
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 201 {
            anyhow::bail!("create answered {status}: {body}");
        }
        let id = body["id"].as_str().context("no id")?.to_owned();
        let secret = body["key"].as_str().context("no key")?.to_owned();
        let mut st = self.lock();
        st.secrets.insert(secret.clone(), Secret::new(&id));
        st.keys.insert(
            id.clone(),
            Key {
                secret: secret.clone(),
                name,
                revoked: false,
            },
        );
        Ok(Some((id, secret)))
    }

    /// A live key that is not one of the warm set (those stay for the whole run).
    fn pick_live(&self, n: u64) -> Option<(String, Key)> {
        let st = self.lock();
        let live: Vec<(&String, &Key)> = st
            .keys
            .iter()
            .filter(|(_, k)| !k.revoked && !st.warm.contains(&k.secret))
            .collect();
        if live.is_empty() {
            return None;
        }
        let (id, key) = live[(n as usize) % live.len()];
        Some((id.clone(), key.clone()))
    }

    async fn patch(&self) {
        let n = self.next();
        let Some((id, _)) = self.pick_live(n) else {
            return;
        };
        let name = format!("soak patched {n}");
        let (took, r) = self
            .timed(
                self.http
                    .patch(format!("{}/keys/{id}", self.api))
                    .json(&json!({"name": name})),
            )
            .await;
        match r.map(|r| r.status().as_u16()) {
            Ok(200) => {
                self.record("patch", took, Outcome::Ok);
                let secret = {
                    let mut st = self.lock();
                    let Some(key) = st.keys.get_mut(&id) else {
                        return;
                    };
                    key.name.clone_from(&name);
                    key.secret.clone()
                };
                self.watch_name(secret, name, Instant::now());
            }
            // The key was revoked or rotated meanwhile: an expected refusal.
            Ok(404 | 409 | 412) => self.record("patch", took, Outcome::Refused),
            Ok(s) => self.record("patch", took, Outcome::Error(format!("PATCH answered {s}"))),
            Err(e) => self.record("patch", took, Outcome::Error(e.to_string())),
        }
    }

    async fn rotate(&self) {
        let n = self.next();
        let Some((id, key)) = self.pick_live(n) else {
            return;
        };
        self.retire(&key.secret);
        let (took, r) = self
            .timed(self.http.post(format!("{}/keys/{id}/rotate", self.api)))
            .await;
        let Ok(r) = r else {
            self.record("rotate", took, Outcome::Error("rotate: no answer".into()));
            return;
        };
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match (status, body["key"].as_str()) {
            (200 | 201, Some(new)) => {
                self.record("rotate", took, Outcome::Ok);
                let written = Instant::now();
                {
                    let mut st = self.lock();
                    st.secrets.insert(new.to_owned(), Secret::new(&id));
                    if let Some(k) = st.keys.get_mut(&id) {
                        k.secret = new.to_owned();
                    }
                }
                self.watch_valid("rotate", new.to_owned(), written);
                self.watch_refused("rotate_old_secret", key.secret, written);
            }
            (404 | 409 | 412, _) => self.record("rotate", took, Outcome::Refused),
            _ => self.record(
                "rotate",
                took,
                Outcome::Error(format!("rotate answered {status}: {body}")),
            ),
        }
    }

    async fn revoke(&self) {
        let n = self.next();
        let Some((id, key)) = self.pick_live(n) else {
            return;
        };
        self.retire(&key.secret);
        let (took, r) = self
            .timed(self.http.delete(format!("{}/keys/{id}", self.api)))
            .await;
        match r.map(|r| r.status().as_u16()) {
            Ok(200 | 204) => {
                self.record("revoke", took, Outcome::Ok);
                let secret = {
                    let mut st = self.lock();
                    if let Some(k) = st.keys.get_mut(&id) {
                        k.revoked = true;
                    }
                    st.keys.get(&id).map(|k| k.secret.clone())
                };
                if let Some(secret) = secret {
                    self.retire(&secret);
                    self.watch_refused("revoke", secret, Instant::now());
                }
            }
            Ok(s) => self.record(
                "revoke",
                took,
                Outcome::Error(format!("revoke answered {s}")),
            ),
            Err(e) => self.record("revoke", took, Outcome::Error(e.to_string())),
        }
    }

    /// Marks a secret retired before the write that retires it is sent: from then on VALID is
    /// allowed only until the edge refuses it once.
    fn retire(&self, secret: &str) {
        if let Some(s) = self.lock().secrets.get_mut(secret) {
            s.retired.get_or_insert_with(Instant::now);
        }
    }

    /// Picks what to present: mostly warm keys, some cold (any other key), retired secrets,
    /// well-formed unknown keys and garbage.
    fn pick_presented(&self, n: u64) -> Presented {
        let st = self.lock();
        match n % 20 {
            0 => Presented::Garbage(format!("kw_not-a-key-{n}")),
            1 => Presented::Unknown(unknown_key()),
            2..=4 => {
                let others: Vec<&String> = st.secrets.keys().collect();
                if others.is_empty() {
                    Presented::Garbage("garbage".into())
                } else {
                    Presented::Known(others[(n as usize / 20) % others.len()].clone())
                }
            }
            _ => {
                if st.warm.is_empty() {
                    Presented::Garbage("garbage".into())
                } else {
                    Presented::Known(st.warm[n as usize % st.warm.len()].clone())
                }
            }
        }
    }

    async fn edge_request(&self, kind: &'static str) {
        let n = self.next();
        let presented = self.pick_presented(n);
        let t = Instant::now();
        let valid = match kind {
            "verify" => self
                .verify_code(presented.text())
                .await
                .map(|c| c == "VALID"),
            _ => self.proxy(presented.text(), n).await,
        };
        let took = t.elapsed();
        let outcome = match (valid, &presented) {
            (Err(e), _) => Outcome::Error(format!("{e:#}")),
            (Ok(false), Presented::Garbage(_) | Presented::Unknown(_)) => Outcome::Refused,
            (Ok(true), Presented::Garbage(s) | Presented::Unknown(s)) => {
                Outcome::Error(format!("{s} was accepted"))
            }
            (Ok(valid), Presented::Known(secret)) => self.judge(secret, valid, t),
        };
        self.record(kind, took, outcome);
    }

    /// Records what the edge said of a known secret, asked at `sent`, and judges it.
    fn judge(&self, secret: &str, valid: bool, sent: Instant) -> Outcome {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(s) = st.secrets.get_mut(secret) else {
            return Outcome::Error("an unknown secret".into());
        };
        let key_id = s.key_id.clone();
        match (valid, s.retired.is_some()) {
            (true, true)
                if s.refused_since_retired
                    .is_some_and(|refused| sent > refused) =>
            {
                st.resurrections.push(format!(
                    "a retired secret of {key_id} was VALID after the edge refused it"
                ));
                Outcome::Error("resurrection".into())
            }
            (true, _) => {
                s.seen_valid = true;
                Outcome::Ok
            }
            (false, true) => {
                // Only once it had reached the edge: before that a refusal says nothing about
                // the retirement (the create may still be on its way, then retired).
                if s.seen_valid {
                    s.refused_since_retired.get_or_insert_with(Instant::now);
                }
                Outcome::Refused
            }
            // Not yet replicated: refused until it first reaches the edge.
            (false, false) if !s.seen_valid => Outcome::Refused,
            (false, false) => Outcome::Error(format!("live key {key_id} refused")),
        }
    }

    async fn verify(&self, key: &str) -> Result<Value> {
        let r = self
            .http
            .post(format!("{}/v1/keys/verify", self.edge))
            .json(&json!({"key": key}))
            .send_to_edge()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        // A body that is not JSON (workerd's own error pages) is quoted as it came.
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| Value::String(text.chars().take(300).collect()));
        anyhow::ensure!(status == 200, "verify answered {status}: {body}");
        Ok(body)
    }

    async fn verify_code(&self, key: &str) -> Result<String> {
        Ok(self.verify(key).await?["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// A proxied GET; `true` when the origin answered through the edge.
    async fn proxy(&self, key: &str, n: u64) -> Result<bool> {
        let r = self
            .http
            .get(format!("{}/soak/{n}", self.edge))
            .bearer_auth(key)
            .send_to_edge()
            .await?;
        match r.status().as_u16() {
            200 => Ok(true),
            401 | 403 => Ok(false),
            s => anyhow::bail!("proxy answered {s}"),
        }
    }

    /// Follows a new secret until the edge says VALID; its lag goes under `kind`.
    fn watch_valid(&self, kind: &'static str, secret: String, written: Instant) {
        self.watch(kind, written, move |d: Driver| {
            let secret = secret.clone();
            async move {
                let sent = Instant::now();
                let valid = d.verify_code(&secret).await.is_ok_and(|c| c == "VALID");
                if valid {
                    d.judge(&secret, true, sent);
                }
                Some(valid)
            }
        });
    }

    /// Follows a PATCH until the edge shows the new name.
    fn watch_name(&self, secret: String, name: String, written: Instant) {
        self.watch("patch", written, move |d: Driver| {
            let (secret, name) = (secret.clone(), name.clone());
            async move {
                let v = d.verify(&secret).await.ok()?;
                // Rotated or revoked meanwhile: nothing more to follow.
                if v["code"] != "VALID" && d.is_retired(&secret) {
                    return None;
                }
                Some(v["name"] == name.as_str())
            }
        });
    }

    /// Follows a retired secret until the edge refuses it (the revocation lag).
    fn watch_refused(&self, kind: &'static str, secret: String, written: Instant) {
        self.watch(kind, written, move |d: Driver| {
            let secret = secret.clone();
            async move {
                let sent = Instant::now();
                let valid = d.verify_code(&secret).await.ok()? == "VALID";
                d.judge(&secret, valid, sent);
                Some(!valid)
            }
        });
    }

    fn is_retired(&self, secret: &str) -> bool {
        self.lock()
            .secrets
            .get(secret)
            .is_some_and(|s| s.retired.is_some())
    }

    /// Polls `done` until it says `Some(true)` (lag recorded under `kind`), `None` (nothing to
    /// follow any more) or [`WATCH_LIMIT`] passes (a lost write).
    fn watch<F, Fut>(&self, kind: &'static str, written: Instant, done: F)
    where
        F: Fn(Driver) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<bool>> + Send,
    {
        let d = self.clone();
        WATCHERS.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            loop {
                match done(d.clone()).await {
                    Some(true) => {
                        let lag = written.elapsed().as_secs_f64() * 1000.0;
                        d.lock().lag_ms.entry(kind).or_default().push(lag);
                        break;
                    }
                    None => break,
                    Some(false) if written.elapsed() > WATCH_LIMIT => {
                        d.lock().lost.push(format!(
                            "{kind}: not visible at the edge after {WATCH_LIMIT:?}"
                        ));
                        break;
                    }
                    Some(false) => tokio::time::sleep(WATCH_POLL).await,
                }
            }
            WATCHERS.fetch_sub(1, Ordering::SeqCst);
        });
    }

    async fn drain_watchers(&self) {
        let until = Instant::now() + WATCH_LIMIT + Duration::from_secs(5);
        while WATCHERS.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every acknowledged write, in the table (through the API) and at the edge.
    async fn check_end(&self) -> usize {
        let keys: Vec<(String, Key)> = self
            .lock()
            .keys
            .iter()
            .map(|(id, k)| (id.clone(), k.clone()))
            .collect();
        for (id, key) in &keys {
            let lost = match self.check_key(id, key).await {
                Ok(()) => continue,
                Err(e) => format!("{id}: {e:#}"),
            };
            self.lock().lost.push(lost);
        }
        keys.len()
    }

    async fn check_key(&self, id: &str, key: &Key) -> Result<()> {
        let r = self
            .http
            .get(format!("{}/keys/{id}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == 200, "GET answered {status}");
        let want_status = if key.revoked { "revoked" } else { "active" };
        anyhow::ensure!(
            body["status"] == want_status,
            "the table says {} instead of {want_status}",
            body["status"]
        );
        anyhow::ensure!(
            body["name"] == key.name.as_str(),
            "the table says name {} instead of {:?}",
            body["name"],
            key.name
        );
        let v = self.verify(&key.secret).await?;
        let want = if key.revoked { "REVOKED" } else { "VALID" };
        anyhow::ensure!(v["code"] == want, "the edge says {} not {want}", v["code"]);
        if !key.revoked {
            anyhow::ensure!(
                v["name"] == key.name.as_str(),
                "the edge says name {} instead of {:?}",
                v["name"],
                key.name
            );
        }
        Ok(())
    }

    /// `valid` requests the control plane counted for the warm keys (usage flushed by the edge).
    async fn usage_of_warm_keys(&self) -> u64 {
        // The edge flushes every second: two flush periods are enough.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let ids: Vec<String> = {
            let st = self.lock();
            st.warm
                .iter()
                .filter_map(|s| st.secrets.get(s).map(|s| s.key_id.clone()))
                .collect()
        };
        let mut total = 0;
        for id in ids {
            let Ok(r) = self
                .http
                .get(format!("{}/keys/{id}/usage?granularity=day", self.api))
                .bearer_auth(&self.token)
                .send()
                .await
            else {
                continue;
            };
            let body: Value = r.json().await.unwrap_or(Value::Null);
            total += body["data"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r["valid"].as_u64()).sum::<u64>())
                .unwrap_or(0);
        }
        total
    }

    fn report(
        &self,
        seconds: f64,
        [rss_start, rss_end]: [BTreeMap<String, u64>; 2],
        rss_samples: Vec<RssSample>,
        keys_checked: usize,
        usage_valid_counted: u64,
    ) -> SoakReport {
        let mut st = self.lock();
        let kinds = st
            .kinds
            .iter_mut()
            .map(|(name, k)| {
                k.lat_ms.sort_by(f64::total_cmp);
                (
                    (*name).to_owned(),
                    KindFigures {
                        requests: k.requests,
                        errors: k.errors,
                        refusals: k.refusals,
                        p50_ms: percentile(&k.lat_ms, 0.50),
                        p99_ms: percentile(&k.lat_ms, 0.99),
                        first_error: k.first_error.clone(),
                    },
                )
            })
            .collect();
        let lag = st
            .lag_ms
            .iter_mut()
            .map(|(name, l)| {
                l.sort_by(f64::total_cmp);
                (
                    (*name).to_owned(),
                    LagFigures {
                        n: l.len(),
                        p50_ms: percentile(l, 0.50),
                        p99_ms: percentile(l, 0.99),
                        max_ms: l.last().copied().unwrap_or(0.0),
                    },
                )
            })
            .collect();
        SoakReport {
            seconds,
            kinds,
            lag,
            rss_start_kib: rss_start,
            rss_end_kib: rss_end,
            rss_samples,
            resurrections: st.resurrections.clone(),
            lost_writes: st.lost.clone(),
            keys_checked,
            usage_valid_counted,
            dev_proxy_retries: DEV_PROXY_RETRIES.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Watchers still following a write.
static WATCHERS: AtomicU64 = AtomicU64::new(0);

enum Outcome {
    Ok,
    Refused,
    Error(String),
}

enum Presented {
    Known(String),
    Unknown(String),
    Garbage(String),
}

impl Presented {
    fn text(&self) -> &str {
        match self {
            Self::Known(s) | Self::Unknown(s) | Self::Garbage(s) => s,
        }
    }
}

/// A well-formed key (valid checksum) that no one issued: the edge must look it up to refuse it.
fn unknown_key() -> String {
    keyward_common::SecretKey::generate("kw", |buf| {
        getrandom::fill(buf).expect("the OS random source is available");
    })
    .map(|k| k.expose().to_owned())
    .unwrap_or_default()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[i] * 10.0).round() / 10.0
}

/// Resident memory (KiB) of each component: every process in its process group, summed; the
/// driver itself (stream poller and echo origin run in it) as `driver`. The edge is also split
/// by program (`edge/node`: wrangler dev and its proxy; `edge/workerd`: the runtime), so growth
/// can be told apart.
fn rss(stack: &Stack) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (name, group) in stack.process_groups() {
        let members = group_members(group);
        if name == "edge" {
            for &pid in &members {
                let program = program_of(pid).unwrap_or_else(|| "other".into());
                *out.entry(format!("edge/{program}")).or_default() += group_rss_kib_of_pid(pid);
            }
        }
        out.insert(
            name.to_owned(),
            members.into_iter().map(group_rss_kib_of_pid).sum(),
        );
    }
    out.insert("driver".into(), group_rss_kib_of_pid(std::process::id()));
    out
}

/// Every process of the process group `group` and all their descendants (`cargo lambda watch`
/// starts each function in a process group of its own).
fn group_members(group: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let procs: Vec<(u32, u32, u32)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (parent, pgid) = parent_and_group(pid)?;
            Some((pid, parent, pgid))
        })
        .collect();
    let mut members: Vec<u32> = procs
        .iter()
        .filter(|(_, _, pgid)| *pgid == group)
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for (pid, _, _) in procs.iter().filter(|(_, ppid, _)| *ppid == parent) {
            if !members.contains(pid) {
                members.push(*pid);
            }
        }
        i += 1;
    }
    members
}

/// The program `pid` runs (`/proc/{pid}/comm`: `node`, `workerd`, ...).
fn program_of(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim().to_owned()).filter(|c| !c.is_empty())
}

/// The parent and the process group of `pid`, from `/proc/{pid}/stat` (fields 4 and 5).
fn parent_and_group(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its closing parenthesis.
    let mut rest = stat[stat.rfind(')')? + 2..].split_whitespace();
    let parent = rest.nth(1)?.parse().ok()?;
    let group = rest.next()?.parse().ok()?;
    Some((parent, group))
}

fn group_rss_kib_of_pid(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// The report as JSON.
///
/// # Errors
/// Never in practice.
pub fn to_json(report: &SoakReport) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}
