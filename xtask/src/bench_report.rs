//! The benchmark figures as types: the harnesses' JSON in, `target/keyward/bench.json` out, and
//! the README's performance tables rendered from it.
//!
//! Every struct reads with serde: a field a harness renamed or dropped is an error naming it,
//! never a silent 0. Each target sits next to the figure it judges, as a named constant.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
/// The edge's WASM, gzip-compressed: at most this many KB (the Workers upload limit's share).
pub const TARGET_WASM_GZIP_KB: u64 = 300;
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
    pub keyward_proxy_warm: Latency,
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
    pub variants: Variants,
    pub harness: Harness,
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
    wasm_bytes: u64,
    wasm_gzip_bytes: u64,
) -> BenchReport {
    let v = &edge.variants;
    let lat = &edge.latency_one_connection;
    let kv = &edge.kv_reads_per_request;
    let warm = v.keyward_verify_warm.rps;
    BenchReport {
        date,
        machine,
        core,
        edge: EdgeFigures {
            warm_rps: round(warm, 0),
            noop_rps: round(v.noop.rps, 0),
            js_rps: round(v.js_verify.rps, 0),
            warm_vs_noop: ratio(warm, v.noop.rps),
            warm_vs_js: ratio(warm, v.js_verify.rps),
            body_floor_rps: round(v.body_floor.rps, 0),
            body_floor_vs_noop: ratio(v.body_floor.rps, v.noop.rps),
            warm_vs_body_floor: ratio(warm, v.body_floor.rps),
            proxy_warm_rps: round(v.keyward_proxy_warm.rps, 0),
            js_proxy_rps: round(v.js_proxy.rps, 0),
            proxy_vs_js_proxy: ratio(v.keyward_proxy_warm.rps, v.js_proxy.rps),
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
            wasm_bytes,
            wasm_gzip_bytes,
            variants: edge.variants.clone(),
            harness: edge.harness.clone(),
        },
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
    let rows: [(&Variant, &str, Option<f64>); 9] = [
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
            &v.js_verify,
            "JS peer verify (digest + KV get + JSON.parse)",
            Some(kv.js_peer.warm),
        ),
        (&v.js_proxy, "JS peer proxy → origin", Some(kv.js_peer.warm)),
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
    s.push_str(
        "| edge latency, one request at a time (node client) | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|\n",
    );
    let lat = &e.latency_one_connection;
    for (l, label) in [
        (&lat.noop, "no-op worker"),
        (&lat.body_floor, "JS body floor"),
        (&lat.keyward_verify_warm, "Keyward verify, warm valid key"),
        (&lat.js_verify, "JS peer verify"),
        (
            &lat.keyward_proxy_warm,
            "Keyward proxy → origin, warm valid key",
        ),
    ] {
        s.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            num(l.p50_ms, 3),
            num(l.p99_ms, 3),
            num(l.mean_ms, 3)
        ));
    }
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
    format!(
        "{README_START}\nFigures from {}, {}. Nothing else was\nrunning, but wrk and workerd share the \
         cores, so read the edge figures as ratios between\nvariants measured side by side, not as \
         capacity.\n\n{}{README_END}",
        r.date,
        r.machine,
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
    const SAMPLE: &str = include_str!("../testdata/bench-2026-11-23.json");

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
            "README.md's performance tables differ from bench-2026-11-23.json: \
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
            },
            r.control.detail.clone(),
            r.lambda.clone(),
            r.handlers.clone(),
            r.edge.wasm_bytes,
            r.edge.wasm_gzip_bytes,
        );
        assert_eq!(again.edge.warm_vs_noop, 0.701);
        assert_eq!(again.edge.warm_vs_js, 5.628);
        assert_eq!(again.edge.p99_added_vs_noop_ms, 0.083);
        assert_eq!(again.control.create_vs_bare_txn, 1.16);
        assert_eq!(again.edge.kv_reads_per_request, r.edge.kv_reads_per_request);
        assert_eq!(again.control.detail, r.control.detail);
    }

    #[test]
    fn targets_say_met_or_missed() {
        let lines = targets(&sample());
        assert!(
            lines[0].starts_with("warm verify / no-op 0.701 (≥ 0.85): **missed**"),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(": met"), "{}", lines[1]);
        assert!(
            lines.iter().skip(1).all(|l| l.ends_with(": met")),
            "{lines:#?}"
        );
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
