//! The benchmark figures as types: the harnesses' JSON in, `target/keyward/bench.json` out, and
//! the README's performance tables rendered from it.
//!
//! Every struct reads with serde: a field a harness renamed or dropped is an error naming it,
//! never a silent 0. Each target sits next to the figure it judges, as a named constant.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wasm_size::Breakdown;

/// Warm verify req/s divided by the no-op Worker's: at least this.
pub const TARGET_WARM_VS_NOOP: f64 = 0.85;
/// Warm verify req/s divided by the JS peer's: at least this.
pub const TARGET_WARM_VS_JS: f64 = 1.0;
/// p99 the warm verify adds to the no-op, one request at a time: at most this many ms.
pub const TARGET_P99_ADDED_MS: f64 = 1.0;
/// KV reads per request for a garbage key: exactly this.
pub const TARGET_KV_GARBAGE: f64 = 0.0;
/// KV reads per request for a cold unknown key: at most this.
pub const TARGET_KV_UNKNOWN: f64 = 1.0;
/// KV reads per request for a warm valid key: exactly this.
pub const TARGET_KV_WARM: f64 = 0.0;
/// The edge's WASM, gzip-compressed: at most this many KB (issue #18).
pub const TARGET_WASM_GZIP_KB: u64 = 200;
/// Warm verify req/s divided by the JS peer's with the same isolate cache policy: at least this.
pub const TARGET_WARM_VS_JS_CACHED: f64 = 1.0;
/// Warm verify req/s divided by the JS body floor's: at least this.
pub const TARGET_WARM_VS_BODY_FLOOR: f64 = 0.95;
/// Warm proxy req/s divided by the JS pass-through floor's: at least this.
pub const TARGET_PROXY_VS_PASSTHROUGH: f64 = 0.9;
/// A warm key with two limits and credits, req/s divided by the same key without them (verify
/// and proxy each): at least this.
pub const TARGET_LIMITED_VS_WARM: f64 = 0.8;
/// Durable Object calls per request of the limited key at steady load: at most this.
pub const TARGET_DO_CALLS_PER_REQUEST: f64 = 0.05;
/// Create p50 divided by a bare transaction of the same items: at most this.
pub const TARGET_CREATE_VS_BARE_TXN: f64 = 1.5;
/// A Lambda function's init, spawn to first event request: at most this many ms.
pub const TARGET_INIT_MS: f64 = 20.0;

/// The README's marked block that [`readme_block`] rewrites.
pub const README_START: &str = "<!-- bench:start -->";
/// End of the marked block.
pub const README_END: &str = "<!-- bench:end -->";

// ---- what `bench/edge.mjs` writes (bench-edge.json) ----

/// `bench/edge.mjs`'s whole output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeRun {
    pub harness: Harness,
    pub variants: Variants,
    pub latency_one_connection: Latencies,
    pub kv_reads_per_request: KvReads,
    pub do_calls_per_request: DoCalls,
    pub exactness: Exactness,
    pub usage_sink: UsageSink,
}

/// Durable Object calls of the limited key under wrk load, per path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoCalls {
    pub verify: DoCallRun,
    pub proxy: DoCallRun,
}

/// One wrk run against the counting twin: requests served, stub calls made, their ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoCallRun {
    pub requests: u64,
    pub do_calls: u64,
    pub per_request: f64,
    pub rps: f64,
}

/// The exactness phase: a key with `credits_granted` credits spent by concurrent clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exactness {
    pub requests: u64,
    pub clients: u64,
    pub credits_granted: u64,
    pub admitted: u64,
    pub usage_exceeded: u64,
    pub via_verify: u64,
    pub via_proxy: u64,
    /// Admitted beyond the credits (must be 0).
    pub over: u64,
    /// Credits left unspent although requests were refused (must be 0).
    pub under: u64,
}

/// What the usage sink accepted over the run (usage reporting was on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSink {
    pub batches: u64,
    pub refused: u64,
    pub reports: u64,
    pub balances: u64,
    pub valid: u64,
    pub usage_exceeded: u64,
    pub rate_limited: u64,
    pub credits_spent: u64,
}

/// How the edge was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Harness {
    pub runtime: String,
    pub miniflare: String,
    pub compatibility_date: String,
    pub load: String,
    pub origin: String,
    pub bundle: String,
    pub usage_reporting: String,
    /// How long `bench/edge.mjs` ran.
    pub seconds: u64,
}

/// One Worker under wrk load: medians over the rounds, and the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub label: String,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rounds: Vec<Value>,
}

/// Every variant `bench/edge.mjs` runs, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variants {
    pub noop: Variant,
    pub body_floor: Variant,
    pub keyward_verify_warm: Variant,
    pub keyward_proxy_warm: Variant,
    pub keyward_verify_limited: Variant,
    pub keyward_proxy_limited: Variant,
    pub passthrough: Variant,
    pub js_verify_cached: Variant,
    pub js_proxy_cached: Variant,
    pub js_verify: Variant,
    pub js_proxy: Variant,
    pub keyward_verify_garbage: Variant,
    pub keyward_proxy_garbage: Variant,
    pub keyward_verify_unknown: Variant,
}

/// One request at a time: medians over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub rounds: Vec<Value>,
}

/// The variants timed one request at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    pub noop: Latency,
    pub body_floor: Latency,
    pub keyward_verify_warm: Latency,
    pub js_verify: Latency,
    pub js_verify_cached: Latency,
    pub keyward_proxy_warm: Latency,
    pub passthrough: Latency,
}

/// KV reads per request, counted by the counting twins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvReads {
    pub keyward: KeywardKvReads,
    pub js_peer: PeerKvReads,
}

/// Keyward's KV reads per request, by path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywardKvReads {
    pub cold_valid: f64,
    pub warm: f64,
    pub warm_proxy: f64,
    pub garbage: f64,
    pub garbage_proxy: f64,
    pub unknown: f64,
    pub unknown_repeated: f64,
}

/// The JS peer's KV reads per request, by path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerKvReads {
    pub warm: f64,
    pub garbage: f64,
    pub unknown: f64,
}

// ---- what `tests/src/bin/bench_control.rs` writes (bench-control.json) ----

/// The control-plane bench's whole output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRun {
    pub profile: String,
    pub store: String,
    pub requests_per_operation: u64,
    pub concurrent_clients: u64,
    pub instances_per_function: u64,
    pub create: OpStats,
    pub list: OpStats,
    pub revoke: OpStats,
    pub create_concurrent: OpStats,
    pub create_concurrent_failed: u64,
    pub create_concurrent_first_failure: Option<Value>,
    pub bare_txn: OpStats,
    pub bare_txn_concurrent: OpStats,
    pub bare_txn_concurrent_failed: u64,
    pub bare_get_item: OpStats,
    pub create_vs_bare_txn: f64,
    /// Create (through the API) and the bare transaction, by the table's size in keys: flat
    /// when the local DynamoDB's cost does not grow with the table. Absent in older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_by_table_keys: Option<BTreeMap<String, OpStats>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bare_txn_by_table_keys: Option<BTreeMap<String, OpStats>>,
}

// ---- what `functions/benches/handlers.rs` writes (bench-handlers.json) ----

/// Each management operation through the whole handler: its own time on the in-memory store and
/// its DynamoDB round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerRun {
    pub profile: String,
    pub runs_per_operation: u64,
    pub handler_p50_us: BTreeMap<String, f64>,
    pub handler_p99_us: BTreeMap<String, f64>,
    pub dynamodb_round_trips: BTreeMap<String, u64>,
    /// The DynamoDB operation of each round trip, in order.
    pub dynamodb_requests: BTreeMap<String, Vec<String>>,
}

/// Latency and throughput of one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    pub n: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub rps: f64,
}

// ---- bench.json ----

/// `target/keyward/bench.json`: the named figures of each part, the raw figures beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub date: String,
    pub machine: String,
    /// Criterion medians, `{bench}_ns`.
    pub core: BTreeMap<String, f64>,
    pub edge: EdgeFigures,
    pub control: ControlFigures,
    pub lambda: LambdaFigures,
    /// Absent in runs before the handler bench.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handlers: Option<HandlerRun>,
}

/// The edge's named figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeFigures {
    pub warm_rps: f64,
    pub noop_rps: f64,
    pub js_rps: f64,
    /// Judged by [`TARGET_WARM_VS_NOOP`].
    pub warm_vs_noop: f64,
    /// Judged by [`TARGET_WARM_VS_JS`].
    pub warm_vs_js: f64,
    pub body_floor_rps: f64,
    pub body_floor_vs_noop: f64,
    pub warm_vs_body_floor: f64,
    pub proxy_warm_rps: f64,
    pub js_proxy_rps: f64,
    pub proxy_vs_js_proxy: f64,
    /// From the one-request-at-a-time pass (nothing queues).
    pub p99_ms: f64,
    pub p50_ms: f64,
    /// Judged by [`TARGET_P99_ADDED_MS`].
    pub p99_added_vs_noop_ms: f64,
    pub p50_added_vs_noop_ms: f64,
    /// From the wrk run, where p99 is mostly scheduler stalls.
    pub p99_loaded_ms: f64,
    pub p99_loaded_added_vs_noop_ms: f64,
    pub p50_loaded_added_vs_noop_ms: f64,
    pub latency_one_connection: Latencies,
    /// Judged by [`TARGET_KV_GARBAGE`], [`TARGET_KV_UNKNOWN`], [`TARGET_KV_WARM`].
    pub kv_reads_per_request: KvFigures,
    pub wasm_bytes: u64,
    /// Judged by [`TARGET_WASM_GZIP_KB`].
    pub wasm_gzip_bytes: u64,
    /// What the bytes are (sections; code by crate).
    pub wasm_breakdown: Breakdown,
    /// The fair floors, the limited key and usage reporting (issues #13 and #18).
    pub fair: FairFigures,
    pub variants: Variants,
    pub harness: Harness,
}

/// The comparisons of issues #13 and #18, each judged by its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairFigures {
    /// When the edge was measured (`cargo xtask bench --edge` measures the edge alone).
    pub date: String,
    pub js_cached_rps: f64,
    /// Judged by [`TARGET_WARM_VS_JS_CACHED`].
    pub warm_vs_js_cached: f64,
    pub proxy_vs_js_proxy_cached: f64,
    pub passthrough_rps: f64,
    /// Judged by [`TARGET_PROXY_VS_PASSTHROUGH`].
    pub proxy_vs_passthrough: f64,
    pub limited_verify_rps: f64,
    pub limited_proxy_rps: f64,
    /// Judged by [`TARGET_LIMITED_VS_WARM`], as is the proxy's.
    pub limited_vs_warm_verify: f64,
    pub limited_vs_warm_proxy: f64,
    /// The larger of the verify and proxy runs', judged by [`TARGET_DO_CALLS_PER_REQUEST`].
    pub do_calls_per_request: f64,
    pub do_calls: DoCalls,
    /// Admitted must equal the credits granted.
    pub exactness: Exactness,
    pub usage_sink: UsageSink,
}

/// The edge WASM's size as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmSize {
    pub bytes: u64,
    pub gzip_bytes: u64,
    pub breakdown: Breakdown,
}

/// KV reads per request, flattened for the named fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvFigures {
    pub warm: f64,
    pub garbage: f64,
    pub unknown: f64,
    pub unknown_repeated: f64,
    pub warm_proxy: f64,
    pub garbage_proxy: f64,
    pub js_peer: PeerKvReads,
}

/// The control plane's named figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlFigures {
    pub create_p50_ms: f64,
    pub create_p99_ms: f64,
    pub list_p50_ms: f64,
    pub revoke_p50_ms: f64,
    pub bare_txn_p50_ms: f64,
    /// Judged by [`TARGET_CREATE_VS_BARE_TXN`].
    pub create_vs_bare_txn: f64,
    pub detail: ControlRun,
}

/// Lambda init, per function binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaFigures {
    pub profile: String,
    pub binaries: String,
    pub runs_per_function: u64,
    /// Median ms per function, judged by [`TARGET_INIT_MS`].
    pub init_ms: BTreeMap<String, f64>,
    pub init_runs_ms: BTreeMap<String, Vec<f64>>,
    pub binary_bytes: BTreeMap<String, u64>,
}

/// Reads a harness's JSON into `T`, naming the file and the field at fault.
///
/// # Errors
/// When the text is not JSON of that shape (a missing or renamed field included).
pub fn parse<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).with_context(|| format!("reading {what}"))
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { round(a / b, 3) } else { 0.0 }
}

/// `a`'s throughput over `b`'s: the median of the per-round ratios when both ran the same rounds
/// (`bench/edge.mjs` runs compared variants back to back, so each round's pair saw the machine
/// in one state), else the ratio of the medians.
fn paired(a: &Variant, b: &Variant) -> f64 {
    let rps = |v: &Variant| -> Option<Vec<f64>> {
        v.rounds
            .iter()
            .map(|r| r.get("rps").and_then(Value::as_f64))
            .collect()
    };
    let (Some(ra), Some(rb)) = (rps(a), rps(b)) else {
        return ratio(a.rps, b.rps);
    };
    if ra.is_empty() || ra.len() != rb.len() || rb.iter().any(|x| *x <= 0.0) {
        return ratio(a.rps, b.rps);
    }
    let mut ratios: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x / y).collect();
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    let median = if ratios.len() % 2 == 1 {
        ratios[mid]
    } else {
        f64::midpoint(ratios[mid - 1], ratios[mid])
    };
    round(median, 3)
}

/// Everything measured, as `bench.json`.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    date: String,
    machine: String,
    core: BTreeMap<String, f64>,
    edge: EdgeRun,
    control: ControlRun,
    lambda: LambdaFigures,
    handlers: Option<HandlerRun>,
    wasm: WasmSize,
) -> BenchReport {
    BenchReport {
        edge: edge_figures(date.clone(), &edge, wasm),
        date,
        machine,
        core,
        control: ControlFigures {
            create_p50_ms: round(control.create.p50_ms, 2),
            create_p99_ms: round(control.create.p99_ms, 2),
            list_p50_ms: round(control.list.p50_ms, 2),
            revoke_p50_ms: round(control.revoke.p50_ms, 2),
            bare_txn_p50_ms: round(control.bare_txn.p50_ms, 2),
            create_vs_bare_txn: round(control.create_vs_bare_txn, 2),
            detail: control,
        },
        lambda,
        handlers,
    }
}

/// The edge's named figures from one `bench/edge.mjs` run measured at `date`.
#[must_use]
pub fn edge_figures(date: String, edge: &EdgeRun, wasm: WasmSize) -> EdgeFigures {
    let v = &edge.variants;
    let lat = &edge.latency_one_connection;
    let kv = &edge.kv_reads_per_request;
    let warm = v.keyward_verify_warm.rps;
    let fair = FairFigures {
        date,
        js_cached_rps: round(v.js_verify_cached.rps, 0),
        warm_vs_js_cached: paired(&v.keyward_verify_warm, &v.js_verify_cached),
        proxy_vs_js_proxy_cached: paired(&v.keyward_proxy_warm, &v.js_proxy_cached),
        passthrough_rps: round(v.passthrough.rps, 0),
        proxy_vs_passthrough: paired(&v.keyward_proxy_warm, &v.passthrough),
        limited_verify_rps: round(v.keyward_verify_limited.rps, 0),
        limited_proxy_rps: round(v.keyward_proxy_limited.rps, 0),
        limited_vs_warm_verify: paired(&v.keyward_verify_limited, &v.keyward_verify_warm),
        limited_vs_warm_proxy: paired(&v.keyward_proxy_limited, &v.keyward_proxy_warm),
        do_calls_per_request: round(
            edge.do_calls_per_request
                .verify
                .per_request
                .max(edge.do_calls_per_request.proxy.per_request),
            4,
        ),
        do_calls: edge.do_calls_per_request.clone(),
        exactness: edge.exactness.clone(),
        usage_sink: edge.usage_sink.clone(),
    };
    EdgeFigures {
        warm_rps: round(warm, 0),
        noop_rps: round(v.noop.rps, 0),
        js_rps: round(v.js_verify.rps, 0),
        warm_vs_noop: paired(&v.keyward_verify_warm, &v.noop),
        warm_vs_js: paired(&v.keyward_verify_warm, &v.js_verify),
        body_floor_rps: round(v.body_floor.rps, 0),
        body_floor_vs_noop: paired(&v.body_floor, &v.noop),
        warm_vs_body_floor: paired(&v.keyward_verify_warm, &v.body_floor),
        proxy_warm_rps: round(v.keyward_proxy_warm.rps, 0),
        js_proxy_rps: round(v.js_proxy.rps, 0),
        proxy_vs_js_proxy: paired(&v.keyward_proxy_warm, &v.js_proxy),
        p99_ms: round(lat.keyward_verify_warm.p99_ms, 3),
        p50_ms: round(lat.keyward_verify_warm.p50_ms, 3),
        p99_added_vs_noop_ms: round(lat.keyward_verify_warm.p99_ms - lat.noop.p99_ms, 3),
        p50_added_vs_noop_ms: round(lat.keyward_verify_warm.p50_ms - lat.noop.p50_ms, 3),
        p99_loaded_ms: round(v.keyward_verify_warm.p99_ms, 3),
        p99_loaded_added_vs_noop_ms: round(v.keyward_verify_warm.p99_ms - v.noop.p99_ms, 3),
        p50_loaded_added_vs_noop_ms: round(v.keyward_verify_warm.p50_ms - v.noop.p50_ms, 3),
        latency_one_connection: lat.clone(),
        kv_reads_per_request: KvFigures {
            warm: kv.keyward.warm,
            garbage: kv.keyward.garbage,
            unknown: kv.keyward.unknown,
            unknown_repeated: kv.keyward.unknown_repeated,
            warm_proxy: kv.keyward.warm_proxy,
            garbage_proxy: kv.keyward.garbage_proxy,
            js_peer: kv.js_peer.clone(),
        },
        wasm_bytes: wasm.bytes,
        wasm_gzip_bytes: wasm.gzip_bytes,
        wasm_breakdown: wasm.breakdown,
        fair,
        variants: edge.variants.clone(),
        harness: edge.harness.clone(),
    }
}

fn num(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

/// `met` or `**missed**`, for the targets line.
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// The Markdown tables for the terminal and the README.
#[must_use]
pub fn tables(r: &BenchReport) -> String {
    let e = &r.edge;
    let v = &e.variants;
    let kv = &e.kv_reads_per_request;
    let mut s = String::from(
        "| edge (workerd, wrk) | req/s | p50 ms | p99 ms | KV reads/req |\n|---|---:|---:|---:|---:|\n",
    );
    let rows: [(&Variant, &str, Option<f64>); 14] = [
        (&v.noop, "no-op worker (floor), same POST as verify", None),
        (
            &v.body_floor,
            "JS body floor: reads the JSON body, fixed verdict",
            None,
        ),
        (
            &v.keyward_verify_warm,
            "Keyward verify, warm valid key",
            Some(kv.warm),
        ),
        (
            &v.keyward_proxy_warm,
            "Keyward proxy → origin, warm valid key",
            Some(kv.warm_proxy),
        ),
        (
            &v.keyward_verify_limited,
            "Keyward verify, warm key with two limits and credits",
            None,
        ),
        (
            &v.keyward_proxy_limited,
            "Keyward proxy → origin, warm key with two limits and credits",
            None,
        ),
        (
            &v.passthrough,
            "JS pass-through floor → origin (strips one header)",
            None,
        ),
        (
            &v.js_verify_cached,
            "JS peer verify, isolate cache (found 5 s, unknown 2 s)",
            None,
        ),
        (
            &v.js_proxy_cached,
            "JS peer proxy → origin, isolate cache",
            None,
        ),
        (
            &v.js_verify,
            "JS peer verify, no cache (digest + KV get + JSON.parse)",
            Some(kv.js_peer.warm),
        ),
        (
            &v.js_proxy,
            "JS peer proxy → origin, no cache",
            Some(kv.js_peer.warm),
        ),
        (
            &v.keyward_verify_garbage,
            "Keyward verify, garbage key (bad checksum)",
            Some(kv.garbage),
        ),
        (
            &v.keyward_proxy_garbage,
            "Keyward proxy, garbage key (401)",
            Some(kv.garbage_proxy),
        ),
        (
            &v.keyward_verify_unknown,
            "Keyward verify, unknown key (repeated)",
            Some(kv.unknown_repeated),
        ),
    ];
    for (variant, label, reads) in rows {
        s.push_str(&format!(
            "| {label} | {} | {} | {} | {} |\n",
            num(variant.rps, 0),
            num(variant.p50_ms, 3),
            num(variant.p99_ms, 3),
            reads.map_or("–".into(), |x| num(x, 3)),
        ));
    }
    s.push_str(&format!(
        "\nwarm verify / no-op: **{}** (target ≥ {TARGET_WARM_VS_NOOP}) · warm verify / JS peer: **{}** (target ≥ {TARGET_WARM_VS_JS:.1}) · \
         proxy / JS proxy: {} · p99 added vs no-op, one request at a time: **{} ms** (target ≤ {TARGET_P99_ADDED_MS}; \
         under full load, where p99 is scheduler stalls: {} ms)\n\
         body floor / no-op: {} · warm verify / body floor: {}\n\
         KV reads per request: garbage **{}**, cold unknown key **{}** (each a new key), warm **{}** \
         (targets {TARGET_KV_GARBAGE} / ≤ {TARGET_KV_UNKNOWN} / {TARGET_KV_WARM}); JS peer: {} for every path\n\
         edge wasm: {} bytes raw, **{} bytes gzip** (target ≤ {TARGET_WASM_GZIP_KB} KB)\n\n",
        num(e.warm_vs_noop, 3),
        num(e.warm_vs_js, 3),
        num(e.proxy_vs_js_proxy, 3),
        num(e.p99_added_vs_noop_ms, 3),
        num(e.p99_loaded_added_vs_noop_ms, 3),
        num(e.body_floor_vs_noop, 3),
        num(e.warm_vs_body_floor, 3),
        num(kv.garbage, 3),
        num(kv.unknown, 3),
        num(kv.warm, 3),
        num(kv.js_peer.warm, 0),
        e.wasm_bytes,
        e.wasm_gzip_bytes,
    ));
    s.push_str(&fair_lines(e));
    s.push_str(
        "| edge latency, one request at a time (node client) | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|\n",
    );
    let lat = &e.latency_one_connection;
    for (l, label) in [
        (&lat.noop, "no-op worker"),
        (&lat.body_floor, "JS body floor"),
        (&lat.keyward_verify_warm, "Keyward verify, warm valid key"),
        (&lat.js_verify, "JS peer verify, no cache"),
        (&lat.js_verify_cached, "JS peer verify, isolate cache"),
        (
            &lat.keyward_proxy_warm,
            "Keyward proxy → origin, warm valid key",
        ),
        (&lat.passthrough, "JS pass-through floor → origin"),
    ] {
        s.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            num(l.p50_ms, 3),
            num(l.p99_ms, 3),
            num(l.mean_ms, 3)
        ));
    }
    s.push_str(&wasm_tables(e));
    let c = &r.control.detail;
    s.push_str(&format!(
        "\n| control plane ({}) | p50 ms | p99 ms | req/s |\n|---|---:|---:|---:|\n",
        c.profile
    ));
    for (op, label) in [
        (&c.create, "create (sequential)"),
        (&c.list, "list, limit 20 (sequential)"),
        (&c.revoke, "revoke (sequential)"),
        (&c.create_concurrent, "create, 4 clients"),
        (&c.bare_txn, "bare TransactWriteItems (sequential)"),
        (&c.bare_txn_concurrent, "bare TransactWriteItems, 4 clients"),
    ] {
        s.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            num(op.p50_ms, 2),
            num(op.p99_ms, 2),
            num(op.rps, 0)
        ));
    }
    s.push_str(&format!(
        "\ncreate p50 / bare transaction p50: **{}** (target ≤ {TARGET_CREATE_VS_BARE_TXN})\n\n",
        num(r.control.create_vs_bare_txn, 2)
    ));
    s.push_str(&control_by_table_size(&r.control.detail));
    if let Some(h) = &r.handlers {
        s.push_str(&handler_table(h));
    }
    let l = &r.lambda;
    s.push_str(&format!(
        "| Lambda function ({} build, x86_64) | init ms (median of {}) | binary bytes |\n|---|---:|---:|\n",
        l.profile, l.runs_per_function
    ));
    for (name, ms) in &l.init_ms {
        let bytes = l.binary_bytes.get(name).map_or("–".into(), u64::to_string);
        s.push_str(&format!("| {name} | {} | {bytes} |\n", num(*ms, 2)));
    }
    s.push_str(&format!("\n(target: init ≤ {TARGET_INIT_MS} ms)\n"));
    s.push_str("\n| core (criterion, native) | median ns |\n|---|---:|\n");
    for (name, ns) in &r.core {
        s.push_str(&format!(
            "| {} | {} |\n",
            name.trim_end_matches("_ns"),
            num(*ns, 1)
        ));
    }
    s
}

/// The fair comparisons, the limited key, exactness and usage reporting, as Markdown lines.
fn fair_lines(e: &EdgeFigures) -> String {
    let f = &e.fair;
    let x = &f.exactness;
    let u = &f.usage_sink;
    format!(
        "Fair floors (issue #18): warm verify / JS peer with the same isolate cache: **{}** (target ≥ {TARGET_WARM_VS_JS_CACHED:.1}) · \
         warm verify / JS body floor: **{}** (target ≥ {TARGET_WARM_VS_BODY_FLOOR}) · \
         proxy / JS pass-through floor: **{}** (target ≥ {TARGET_PROXY_VS_PASSTHROUGH}) · proxy / cached JS peer proxy: {}\n\
         A warm key with two limits and credits (issue #13): verify **{}** and proxy **{}** of the same key without them \
         (target ≥ {TARGET_LIMITED_VS_WARM}) · Durable Object calls per request at steady load: **{:.4}** \
         (verify {} calls / {} requests, proxy {} / {}; target ≤ {TARGET_DO_CALLS_PER_REQUEST})\n\
         Exactness: {} credits, {} requests from {} clients (verify API and proxy alternated): **{} admitted**, \
         {} refused `USAGE_EXCEEDED`, {} over, {} under\n\
         Usage reporting on for every Keyward variant: the sink accepted {} signed batches ({} reports, {} refused), \
         counting {} valid requests and {} credits spent\n\n",
        num(f.warm_vs_js_cached, 3),
        num(e.warm_vs_body_floor, 3),
        num(f.proxy_vs_passthrough, 3),
        num(f.proxy_vs_js_proxy_cached, 3),
        num(f.limited_vs_warm_verify, 3),
        num(f.limited_vs_warm_proxy, 3),
        f.do_calls_per_request,
        f.do_calls.verify.do_calls,
        f.do_calls.verify.requests,
        f.do_calls.proxy.do_calls,
        f.do_calls.proxy.requests,
        x.credits_granted,
        x.requests,
        x.clients,
        x.admitted,
        x.usage_exceeded,
        x.over,
        x.under,
        u.batches,
        u.reports,
        u.refused,
        u.valid,
        u.credits_spent,
    )
}

/// What the edge WASM's bytes are: its shipped sections, then its code by crate.
fn wasm_tables(e: &EdgeFigures) -> String {
    let b = &e.wasm_breakdown;
    let mut s = String::from(
        "\n| edge wasm section (shipped) | raw bytes | gzip bytes (alone) |\n|---|---:|---:|\n",
    );
    for sec in b.sections.iter().filter(|s| s.name != "custom: name") {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            sec.name, sec.raw_bytes, sec.gzip_bytes
        ));
    }
    let code: u64 = b.code_by_crate.iter().map(|c| c.code_bytes).sum();
    if code > 0 {
        s.push_str("\n| edge wasm code by crate (function bodies, named from the name section) | raw bytes | share of code |\n|---|---:|---:|\n");
        #[allow(clippy::cast_precision_loss)]
        for c in b.code_by_crate.iter().take(16) {
            s.push_str(&format!(
                "| {} | {} | {:.1} % |\n",
                c.krate,
                c.code_bytes,
                100.0 * c.code_bytes as f64 / code as f64
            ));
        }
    }
    s
}

/// A target line for a ratio that must be at least `target`.
fn at_least(what: &str, figure: f64, target: f64) -> String {
    format!(
        "{what} {figure:.3} (≥ {target}): {}",
        verdict(figure >= target)
    )
}

/// Create and the bare transaction by the table's size (empty for runs without them).
fn control_by_table_size(c: &ControlRun) -> String {
    let (Some(create), Some(bare)) = (&c.create_by_table_keys, &c.bare_txn_by_table_keys) else {
        return String::new();
    };
    let mut sizes: Vec<&String> = create.keys().collect();
    sizes.sort_by_key(|k| k.parse::<u64>().unwrap_or(u64::MAX));
    let mut s = String::from(
        "| keys in the table | create p50 ms | bare transaction p50 ms |\n|---:|---:|---:|\n",
    );
    for size in sizes {
        let bare = bare.get(size).map_or("–".into(), |b| num(b.p50_ms, 2));
        s.push_str(&format!(
            "| {size} | {} | {bare} |\n",
            num(create[size].p50_ms, 2)
        ));
    }
    s.push('\n');
    s
}

/// The handler's own time and DynamoDB round trips per operation.
fn handler_table(h: &HandlerRun) -> String {
    let mut s = format!(
        "| operation, whole handler ({}) | p50 µs (in-memory store) | p99 µs | DynamoDB round trips | requests |\n|---|---:|---:|---:|---|\n",
        h.profile
    );
    for (op, p50) in &h.handler_p50_us {
        let p99 = h.handler_p99_us.get(op).copied().unwrap_or(0.0);
        let trips = h
            .dynamodb_round_trips
            .get(op)
            .map_or("–".into(), u64::to_string);
        let requests = h
            .dynamodb_requests
            .get(op)
            .map(|r| r.join(", "))
            .unwrap_or_default();
        s.push_str(&format!(
            "| {} | {} | {} | {trips} | {requests} |\n",
            op.replace('_', " "),
            num(*p50, 1),
            num(p99, 1)
        ));
    }
    s.push('\n');
    s
}

/// One line per target: the figure, the target, met or missed.
#[must_use]
pub fn targets(r: &BenchReport) -> Vec<String> {
    let e = &r.edge;
    let kv = &e.kv_reads_per_request;
    let worst_init = r.lambda.init_ms.values().copied().fold(0.0, f64::max);
    vec![
        format!(
            "warm verify / no-op {:.3} (≥ {TARGET_WARM_VS_NOOP}): {}",
            e.warm_vs_noop,
            verdict(e.warm_vs_noop >= TARGET_WARM_VS_NOOP)
        ),
        format!(
            "warm verify / JS peer {:.3} (≥ {TARGET_WARM_VS_JS}): {}",
            e.warm_vs_js,
            verdict(e.warm_vs_js >= TARGET_WARM_VS_JS)
        ),
        at_least(
            "warm verify / cached JS peer",
            e.fair.warm_vs_js_cached,
            TARGET_WARM_VS_JS_CACHED,
        ),
        at_least(
            "warm verify / JS body floor",
            e.warm_vs_body_floor,
            TARGET_WARM_VS_BODY_FLOOR,
        ),
        at_least(
            "proxy / JS pass-through floor",
            e.fair.proxy_vs_passthrough,
            TARGET_PROXY_VS_PASSTHROUGH,
        ),
        format!(
            "limited key / same key without limits: verify {:.3}, proxy {:.3} (≥ {TARGET_LIMITED_VS_WARM}): {}",
            e.fair.limited_vs_warm_verify,
            e.fair.limited_vs_warm_proxy,
            verdict(
                e.fair.limited_vs_warm_verify >= TARGET_LIMITED_VS_WARM
                    && e.fair.limited_vs_warm_proxy >= TARGET_LIMITED_VS_WARM
            )
        ),
        format!(
            "Durable Object calls per request {:.4} (≤ {TARGET_DO_CALLS_PER_REQUEST}): {}",
            e.fair.do_calls_per_request,
            verdict(e.fair.do_calls_per_request <= TARGET_DO_CALLS_PER_REQUEST)
        ),
        format!(
            "exactness: {} admitted of {} credits (= credits, 0 over): {}",
            e.fair.exactness.admitted,
            e.fair.exactness.credits_granted,
            verdict(e.fair.exactness.admitted == e.fair.exactness.credits_granted)
        ),
        format!(
            "p99 added {:.3} ms (≤ {TARGET_P99_ADDED_MS}): {}",
            e.p99_added_vs_noop_ms,
            verdict(e.p99_added_vs_noop_ms <= TARGET_P99_ADDED_MS)
        ),
        format!(
            "KV reads garbage {:.3} / unknown {:.3} / warm {:.3} (= {TARGET_KV_GARBAGE} / ≤ {TARGET_KV_UNKNOWN} / = {TARGET_KV_WARM}): {}",
            kv.garbage,
            kv.unknown,
            kv.warm,
            verdict(
                kv.garbage <= TARGET_KV_GARBAGE
                    && kv.unknown <= TARGET_KV_UNKNOWN
                    && kv.warm <= TARGET_KV_WARM
            )
        ),
        format!(
            "wasm gzip {} bytes (≤ {TARGET_WASM_GZIP_KB} KB): {}",
            e.wasm_gzip_bytes,
            verdict(e.wasm_gzip_bytes <= TARGET_WASM_GZIP_KB * 1000)
        ),
        format!(
            "create / bare transaction {:.2} (≤ {TARGET_CREATE_VS_BARE_TXN}): {}",
            r.control.create_vs_bare_txn,
            verdict(r.control.create_vs_bare_txn <= TARGET_CREATE_VS_BARE_TXN)
        ),
        format!(
            "slowest Lambda init {worst_init:.2} ms (≤ {TARGET_INIT_MS}): {}",
            verdict(worst_init <= TARGET_INIT_MS)
        ),
    ]
}

/// The README block: when and where, then the tables.
#[must_use]
pub fn readme_block(r: &BenchReport) -> String {
    let when = if r.edge.fair.date == r.date {
        format!("Figures from {}", r.date)
    } else {
        format!(
            "Edge figures from {} (`cargo xtask bench --edge`), the others from {}",
            r.edge.fair.date, r.date
        )
    };
    format!(
        "{README_START}\n{when}, {}. wrk and workerd share\nthe cores, and other work on the \
         machine may have too, so read the edge figures as ratios\nbetween variants measured side \
         by side, not as capacity. The edge part took {} s.\n\n{}{README_END}",
        r.machine,
        r.edge.harness.seconds,
        tables(r)
    )
}

/// Where each line equal to `marker` starts in `text`.
fn marker_lines(text: &str, marker: &str) -> Vec<usize> {
    let mut at = 0;
    let mut found = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == marker {
            found.push(at);
        }
        at += line.len();
    }
    found
}

/// The marked block's byte range in `readme`: from its start marker line to the end of its end
/// marker (markers count only as whole lines, so prose may quote them).
///
/// # Errors
/// When the markers are missing, repeated or out of order.
fn block_range(readme: &str) -> Result<std::ops::Range<usize>> {
    match (
        marker_lines(readme, README_START).as_slice(),
        marker_lines(readme, README_END).as_slice(),
    ) {
        ([start], [end]) if start < end => Ok(*start..end + README_END.len()),
        _ => bail!(
            "README.md must hold exactly one line `{README_START}` followed by one line `{README_END}`"
        ),
    }
}

/// `readme` with its marked block replaced by `block`.
///
/// # Errors
/// When the markers are missing, repeated or out of order.
pub fn replace_block(readme: &str, block: &str) -> Result<String> {
    let range = block_range(readme)?;
    Ok(format!(
        "{}{block}{}",
        &readme[..range.start],
        &readme[range.end..]
    ))
}

/// The marked block as it stands in `readme`.
#[must_use]
pub fn current_block(readme: &str) -> Option<&str> {
    block_range(readme).ok().map(|r| &readme[r])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures behind the README's tables (run of 2026-11-23), as `bench.json`. Reconstructed
    /// from those tables: fields the README does not show (per-round samples, means of the
    /// control plane, GetItem timings) are empty or zero.
    const SAMPLE: &str = include_str!("../testdata/bench.json");

    fn sample() -> BenchReport {
        parse("the sample bench.json", SAMPLE).unwrap()
    }

    #[test]
    fn the_readme_block_is_generated_from_the_committed_figures() {
        let readme = std::fs::read_to_string(crate::util::repo_root().join("README.md")).unwrap();
        let block = current_block(&readme).expect("README.md has the bench block");
        assert_eq!(
            block,
            readme_block(&sample()),
            "README.md's performance tables differ from xtask/testdata/bench.json: \
             run `cargo xtask bench --readme` after a bench run"
        );
    }

    #[test]
    fn a_renamed_or_missing_field_is_an_error_naming_it() {
        let renamed = SAMPLE.replacen("\"warm_vs_noop\"", "\"warm_over_noop\"", 1);
        let err = format!(
            "{:#}",
            parse::<BenchReport>("bench.json", &renamed).unwrap_err()
        );
        assert!(err.contains("warm_vs_noop"), "{err}");

        let mut edge: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        edge["edge"]["variants"]["noop"]
            .as_object_mut()
            .unwrap()
            .remove("rps");
        let err = format!(
            "{:#}",
            parse::<BenchReport>("bench.json", &edge.to_string()).unwrap_err()
        );
        assert!(err.contains("rps"), "{err}");
    }

    #[test]
    fn assembling_the_raw_runs_gives_the_named_figures() {
        let r = sample();
        let again = assemble(
            r.date.clone(),
            r.machine.clone(),
            r.core.clone(),
            EdgeRun {
                harness: r.edge.harness.clone(),
                variants: r.edge.variants.clone(),
                latency_one_connection: r.edge.latency_one_connection.clone(),
                kv_reads_per_request: KvReads {
                    keyward: KeywardKvReads {
                        cold_valid: 1.0,
                        warm: r.edge.kv_reads_per_request.warm,
                        warm_proxy: r.edge.kv_reads_per_request.warm_proxy,
                        garbage: r.edge.kv_reads_per_request.garbage,
                        garbage_proxy: r.edge.kv_reads_per_request.garbage_proxy,
                        unknown: r.edge.kv_reads_per_request.unknown,
                        unknown_repeated: r.edge.kv_reads_per_request.unknown_repeated,
                    },
                    js_peer: r.edge.kv_reads_per_request.js_peer.clone(),
                },
                do_calls_per_request: r.edge.fair.do_calls.clone(),
                exactness: r.edge.fair.exactness.clone(),
                usage_sink: r.edge.fair.usage_sink.clone(),
            },
            r.control.detail.clone(),
            r.lambda.clone(),
            r.handlers.clone(),
            WasmSize {
                bytes: r.edge.wasm_bytes,
                gzip_bytes: r.edge.wasm_gzip_bytes,
                breakdown: r.edge.wasm_breakdown.clone(),
            },
        );
        // The sample's edge was measured alone (`bench --edge`), on its own date.
        let mut want = r.edge.clone();
        want.fair.date.clone_from(&r.date);
        assert_eq!(again.edge, want);
        assert_eq!(again.control, r.control);
    }

    #[test]
    fn a_pair_is_compared_round_by_round() {
        let variant = |rounds: &[f64]| Variant {
            label: String::new(),
            rps: rounds.iter().copied().fold(0.0, f64::max),
            p50_ms: 0.0,
            p99_ms: 0.0,
            rounds: rounds
                .iter()
                .map(|r| serde_json::json!({ "rps": r }))
                .collect(),
        };
        // The machine slowed in round 2; the pair's ratio did not change.
        let a = variant(&[900.0, 450.0, 880.0]);
        let b = variant(&[1000.0, 500.0, 1000.0]);
        assert!((paired(&a, &b) - 0.9).abs() < 1e-9);
        // An even count: the mean of the middle two.
        let a = variant(&[1.0, 2.0, 3.0, 4.0]);
        let b = variant(&[1.0, 1.0, 1.0, 1.0]);
        assert!((paired(&a, &b) - 2.5).abs() < 1e-9);
        // Rounds that do not pair up: the ratio of the medians.
        let a = variant(&[900.0]);
        assert!((paired(&a, &b) - ratio(a.rps, b.rps)).abs() < 1e-9);
    }

    #[test]
    fn targets_say_met_or_missed() {
        let r = sample();
        let lines = targets(&r);
        let first = format!("warm verify / no-op {:.3} (≥ 0.85): ", r.edge.warm_vs_noop);
        assert!(lines[0].starts_with(&first), "{}", lines[0]);
        assert_eq!(
            lines[0].ends_with(": met"),
            r.edge.warm_vs_noop >= TARGET_WARM_VS_NOOP
        );
        assert!(
            lines
                .iter()
                .all(|l| l.ends_with(": met") || l.ends_with(": **missed**")),
            "{lines:#?}"
        );
        let exact = lines.iter().find(|l| l.starts_with("exactness")).unwrap();
        assert!(exact.ends_with(": met"), "{exact}");
    }

    #[test]
    fn the_block_is_replaced_between_its_markers_only() {
        let readme = format!("intro\n{README_START}\nold\n{README_END}\noutro\n");
        let out = replace_block(&readme, &format!("{README_START}\nnew\n{README_END}")).unwrap();
        assert_eq!(
            out,
            format!("intro\n{README_START}\nnew\n{README_END}\noutro\n")
        );
        assert!(replace_block("no markers", "x").is_err());
        assert!(replace_block(&format!("{README_END}\n{README_START}\n"), "x").is_err());
        let quoted = format!("see `{README_START}`\n{readme}");
        assert_eq!(
            current_block(&quoted),
            Some(format!("{README_START}\nold\n{README_END}").as_str())
        );
    }
}
