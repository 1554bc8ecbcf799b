//! `cargo xtask bench`: the core, the edge, the control plane and Lambda init, measured in one run.
//!
//! Writes `target/keyward/bench.json` and prints a Markdown table. Steps:
//! - core: `cargo bench -p keyward-common --bench core` (criterion), medians from
//!   `target/criterion/**/new/estimates.json`;
//! - edge: `node bench/edge.mjs` (workerd via Miniflare, wrk; see that file);
//! - control plane: `tests/src/bin/bench_control.rs` against the local stack;
//! - Lambda init: each function binary started against a fake runtime API served here, timed
//!   until it asks for its first event;
//! - edge bundle and function binary sizes.
//!
//! Not part of `cargo xtask test`: it takes minutes and its figures depend on the machine.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::util::{bin_targets, cmd, file_size, gzip_size, output, run, step};
use crate::{bootstrap, edge};

/// Runs of each function binary for the init figure; the median is reported.
const INIT_RUNS: usize = 5;
/// Longest a function may take to ask for its first event.
const INIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs every benchmark and writes `target/keyward/bench.json`.
pub fn bench(repo: &Path) -> Result<()> {
    let started = Instant::now();
    step("bootstrap", || bootstrap::bootstrap(repo))?;
    let env = bootstrap::tool_env(repo)?;
    step("wrk", ensure_wrk)?;
    let built = step("build edge (release-edge profile)", || {
        edge::build_edge(repo, &env)
    })?;
    let out_dir = repo.join("target/keyward");
    std::fs::create_dir_all(&out_dir)?;

    let core = step("core (criterion)", || core(repo, &env))?;
    let edge_json = out_dir.join("bench-edge.json");
    step("edge throughput (workerd via Miniflare, wrk)", || {
        run(cmd("node", repo, &env)
            .arg(repo.join("bench/edge.mjs"))
            .arg("--out")
            .arg(&edge_json)
            .arg("--build")
            .arg(&built.dir))
    })?;
    let edge_raw = read_json(&edge_json)?;
    let control_json = out_dir.join("bench-control.json");
    step("control plane (local stack)", || {
        run(cmd("cargo", repo, &env).args([
            "build",
            "-p",
            "keyward-tests",
            "--bin",
            "bench_control",
        ]))?;
        // 200 per operation on a table without a stream (see bench_control.rs): moto copies
        // the whole table per transaction, so each write is a little slower than the last;
        // creates and bare transactions alternate, so both see the same table.
        run(cmd(repo.join("target/debug/bench_control"), repo, &env)
            .arg(&control_json)
            .arg("200"))
    })?;
    let control_raw = read_json(&control_json)?;
    let lambda = step("lambda init", || lambda_init(repo, &env))?;

    let wasm = built
        .wasm
        .first()
        .context("the edge build has no .wasm")?
        .clone();
    let report = assemble(
        &core,
        &edge_raw,
        &control_raw,
        &lambda,
        file_size(&wasm)?,
        gzip_size(&wasm)?,
    );
    let path = out_dir.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\n{}", table(&report));
    println!(
        "bench: wrote {} in {:.0}s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs `wrk` with apt when it is not on PATH (a system package; idempotent).
fn ensure_wrk() -> Result<()> {
    let found = |_: ()| {
        Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if found(()) {
        println!("wrk: found");
        return Ok(());
    }
    println!("wrk: installing with apt-get");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !(apt(&["install", "-y", "wrk"]) || (apt(&["update"]) && apt(&["install", "-y", "wrk"]))) {
        bail!(
            "could not install wrk with apt-get; install it (`apt-get install -y wrk`) and retry"
        );
    }
    Ok(())
}

/// Runs the criterion benchmark and returns `{name: median_ns}`.
fn core(repo: &Path, env: &[(String, String)]) -> Result<Map<String, Value>> {
    let criterion = repo.join("target/criterion");
    run(cmd("cargo", repo, env).args([
        "bench",
        "-p",
        "keyward-common",
        "--bench",
        "core",
        "--",
        "--warm-up-time",
        "1",
        "--measurement-time",
        "3",
    ]))?;
    let mut found = Vec::new();
    find_estimates(&criterion, &mut found)?;
    let mut out = Map::new();
    for file in found {
        // target/criterion/<group>/<bench>/new/estimates.json
        let Some(dir) = file.parent().and_then(Path::parent) else {
            continue;
        };
        let Ok(rel) = dir.strip_prefix(&criterion) else {
            continue;
        };
        let name = rel.to_string_lossy().replace(['/', '\\'], "_");
        let est = read_json(&file)?;
        if let Some(ns) = est["median"]["point_estimate"].as_f64() {
            out.insert(format!("{name}_ns"), json!(round(ns, 1)));
        }
    }
    if out.is_empty() {
        bail!("criterion left no estimates under {}", criterion.display());
    }
    Ok(out)
}

fn find_estimates(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "report") {
                continue;
            }
            find_estimates(&path, out)?;
        } else if path.ends_with("new/estimates.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Which build of the function binaries the init figures come from.
struct FunctionBins {
    dir: PathBuf,
    profile: &'static str,
}

/// The release binaries (`target/release`, native x86_64: what runs here), built first: cargo
/// does nothing when they are fresh; a cold build takes many minutes (fat LTO per binary).
/// `KEYWARD_BENCH_DEBUG_INIT=1` times the debug binaries instead, flagged as such.
fn function_bins(repo: &Path, env: &[(String, String)]) -> Result<FunctionBins> {
    if std::env::var("KEYWARD_BENCH_DEBUG_INIT").is_ok_and(|v| v == "1") {
        println!("lambda init: KEYWARD_BENCH_DEBUG_INIT=1, timing the debug binaries");
        run(cmd("cargo", repo, env).args(["build", "-p", "keyward-functions", "--bins"]))?;
        return Ok(FunctionBins {
            dir: repo.join("target/debug"),
            profile: "debug",
        });
    }
    println!("lambda init: building the release binaries (nothing to do when they are fresh)");
    run(cmd("cargo", repo, env).args(["build", "--release", "-p", "keyward-functions", "--bins"]))?;
    Ok(FunctionBins {
        dir: repo.join("target/release"),
        profile: "release",
    })
}

/// For every function binary: median time from spawn to its first `GET .../invocation/next`.
fn lambda_init(repo: &Path, env: &[(String, String)]) -> Result<Value> {
    let names = bin_targets(repo, "keyward-functions")?;
    if names.is_empty() {
        bail!("keyward-functions has no binaries");
    }
    let bins = function_bins(repo, env)?;
    let mut init = Map::new();
    let mut sizes = Map::new();
    let mut runs_out = Map::new();
    for name in &names {
        let bin = bins.dir.join(name);
        sizes.insert(name.clone(), json!(file_size(&bin)?));
        let mut runs = Vec::with_capacity(INIT_RUNS);
        for _ in 0..INIT_RUNS {
            runs.push(time_init(&bin, name).with_context(|| format!("timing init of {name}"))?);
        }
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "lambda init {name}: median {median:.2} ms over {INIT_RUNS} runs ({} build)",
            bins.profile
        );
        init.insert(name.clone(), json!(round(median, 2)));
        runs_out.insert(
            name.clone(),
            json!(runs.iter().map(|r| round(*r, 2)).collect::<Vec<_>>()),
        );
    }
    Ok(json!({
        "profile": bins.profile,
        "binaries": bins.dir.strip_prefix(repo).unwrap_or(&bins.dir).display().to_string(),
        "runs_per_function": INIT_RUNS,
        "init_ms": init,
        "init_runs_ms": runs_out,
        "binary_bytes": sizes,
    }))
}

/// Starts `bin` against a one-shot runtime API and returns ms until it asks for an event.
fn time_init(bin: &Path, name: &str) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?.to_string();
    let (tx, rx) = mpsc::channel();
    // Accept until the first request line arrives; report its path and when it arrived.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_ok() && !line.is_empty() {
                let _ = tx.send((Instant::now(), line.trim().to_owned()));
                // Keep the connection open (the function waits for its event) until killed.
                std::thread::sleep(INIT_TIMEOUT);
                return;
            }
        }
    });
    let mut command = Command::new(bin);
    command
        .env_clear()
        .envs(lambda_env(&api, name))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let got = rx.recv_timeout(INIT_TIMEOUT);
    let _ = child.kill();
    let out = child.wait_with_output()?;
    match got {
        Ok((at, line)) if line.starts_with("GET /2018-06-01/runtime/invocation/next") => {
            Ok(at.duration_since(start).as_secs_f64() * 1000.0)
        }
        Ok((_, line)) => bail!(
            "asked the runtime API `{line}` before its first event (an init error?); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => bail!(
            "never asked for an event within {INIT_TIMEOUT:?}; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// What Lambda sets, plus the configuration every function reads (dummy, local values).
fn lambda_env(api: &str, name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("_HANDLER", "bootstrap"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_SESSION_TOKEN", "bench"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("KEYWARD_TABLE", "keyward-bench"),
        ("KEYWARD_JWT_ALG", "HS256"),
        ("KEYWARD_JWT_KEY", "bench-jwt-secret-0123456789abcdef"),
        ("KEYWARD_JWT_ISSUER", "keyward-bench"),
        ("KEYWARD_JWT_AUDIENCE", "keyward"),
        ("KEYWARD_DEFAULT_SCOPES", "read"),
        ("KEYWARD_MAX_ACTIVE_KEYS", "1000"),
        ("KEYWARD_DEFAULT_PREFIX", "kw"),
        (
            "KEYWARD_CURSOR_SECRET",
            "bench-cursor-secret-0123456789abcdef",
        ),
        ("KEYWARD_EDGE_URL", "http://127.0.0.1:9"),
        ("KEYWARD_SYNC_SECRET", "bench-sync-secret"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// bench.json: the named fields at the top of each section, the raw figures beside them.
fn assemble(
    core: &Map<String, Value>,
    edge: &Value,
    control: &Value,
    lambda: &Value,
    wasm_bytes: u64,
    wasm_gzip_bytes: u64,
) -> Value {
    let v = &edge["variants"];
    let rps = |id: &str| v[id]["rps"].as_f64().unwrap_or(0.0);
    let p50 = |id: &str| v[id]["p50_ms"].as_f64().unwrap_or(0.0);
    let p99 = |id: &str| v[id]["p99_ms"].as_f64().unwrap_or(0.0);
    let ratio = |a: f64, b: f64| if b > 0.0 { round(a / b, 3) } else { 0.0 };
    let lat = |id: &str, q: &str| {
        edge["latency_one_connection"][id][q]
            .as_f64()
            .unwrap_or(0.0)
    };
    let kv = &edge["kv_reads_per_request"];
    let create_p50 = control["create"]["p50_ms"].as_f64().unwrap_or(0.0);
    json!({
        "date": today(),
        "machine": machine(),
        "core": core,
        "edge": {
            "warm_rps": round(rps("keyward_verify_warm"), 0),
            "noop_rps": round(rps("noop"), 0),
            "js_rps": round(rps("js_verify"), 0),
            "warm_vs_noop": ratio(rps("keyward_verify_warm"), rps("noop")),
            "warm_vs_js": ratio(rps("keyward_verify_warm"), rps("js_verify")),
            "body_floor_rps": round(rps("body_floor"), 0),
            "body_floor_vs_noop": ratio(rps("body_floor"), rps("noop")),
            "warm_vs_body_floor": ratio(rps("keyward_verify_warm"), rps("body_floor")),
            "proxy_warm_rps": round(rps("keyward_proxy_warm"), 0),
            "js_proxy_rps": round(rps("js_proxy"), 0),
            "proxy_vs_js_proxy": ratio(rps("keyward_proxy_warm"), rps("js_proxy")),
            // Latency from the one-request-at-a-time run (nothing queues); the loaded run's beside it.
            "p99_ms": round(lat("keyward_verify_warm", "p99_ms"), 3),
            "p50_ms": round(lat("keyward_verify_warm", "p50_ms"), 3),
            "p99_added_vs_noop_ms": round(
                lat("keyward_verify_warm", "p99_ms") - lat("noop", "p99_ms"),
                3
            ),
            "p50_added_vs_noop_ms": round(
                lat("keyward_verify_warm", "p50_ms") - lat("noop", "p50_ms"),
                3
            ),
            "p99_loaded_ms": round(p99("keyward_verify_warm"), 3),
            "p99_loaded_added_vs_noop_ms": round(p99("keyward_verify_warm") - p99("noop"), 3),
            "p50_loaded_added_vs_noop_ms": round(p50("keyward_verify_warm") - p50("noop"), 3),
            "latency_one_connection": edge["latency_one_connection"],
            "kv_reads_per_request": {
                "warm": kv["keyward"]["warm"],
                "garbage": kv["keyward"]["garbage"],
                "unknown": kv["keyward"]["unknown"],
                "unknown_repeated": kv["keyward"]["unknown_repeated"],
                "warm_proxy": kv["keyward"]["warm_proxy"],
                "garbage_proxy": kv["keyward"]["garbage_proxy"],
                "js_peer": kv["js_peer"],
            },
            "wasm_bytes": wasm_bytes,
            "wasm_gzip_bytes": wasm_gzip_bytes,
            "variants": v,
            "harness": edge["harness"],
        },
        "control": {
            "create_p50_ms": round(create_p50, 2),
            "create_p99_ms": round(control["create"]["p99_ms"].as_f64().unwrap_or(0.0), 2),
            "list_p50_ms": round(control["list"]["p50_ms"].as_f64().unwrap_or(0.0), 2),
            "revoke_p50_ms": round(control["revoke"]["p50_ms"].as_f64().unwrap_or(0.0), 2),
            "bare_txn_p50_ms": round(control["bare_txn"]["p50_ms"].as_f64().unwrap_or(0.0), 2),
            "create_vs_bare_txn": round(control["create_vs_bare_txn"].as_f64().unwrap_or(0.0), 2),
            "detail": control,
        },
        "lambda": lambda,
    })
}

/// The Markdown table for the terminal and the README.
fn table(r: &Value) -> String {
    let e = &r["edge"];
    let c = &r["control"]["detail"];
    let f = |v: &Value, d: usize| v.as_f64().map_or("–".into(), |x| format!("{x:.d$}"));
    let mut s = format!(
        "Keyward benchmarks, {} on {}\n\n",
        r["date"].as_str().unwrap_or("?"),
        r["machine"].as_str().unwrap_or("?")
    );
    s.push_str("| edge (workerd, wrk) | req/s | p50 ms | p99 ms | KV reads/req |\n|---|---:|---:|---:|---:|\n");
    let kv = &e["kv_reads_per_request"];
    let rows: [(&str, &str, &Value); 9] = [
        (
            "noop",
            "no-op worker (floor), same POST as verify",
            &Value::Null,
        ),
        (
            "body_floor",
            "JS body floor: reads the JSON body, fixed verdict",
            &Value::Null,
        ),
        (
            "keyward_verify_warm",
            "Keyward verify, warm valid key",
            &kv["warm"],
        ),
        (
            "keyward_proxy_warm",
            "Keyward proxy → origin, warm valid key",
            &kv["warm_proxy"],
        ),
        (
            "js_verify",
            "JS peer verify (digest + KV get + JSON.parse)",
            &kv["js_peer"]["warm"],
        ),
        ("js_proxy", "JS peer proxy → origin", &kv["js_peer"]["warm"]),
        (
            "keyward_verify_garbage",
            "Keyward verify, garbage key (bad checksum)",
            &kv["garbage"],
        ),
        (
            "keyward_proxy_garbage",
            "Keyward proxy, garbage key (401)",
            &kv["garbage_proxy"],
        ),
        (
            "keyward_verify_unknown",
            "Keyward verify, unknown key (repeated)",
            &kv["unknown_repeated"],
        ),
    ];
    for (id, label, reads) in rows {
        let v = &e["variants"][id];
        s.push_str(&format!(
            "| {label} | {} | {} | {} | {} |\n",
            f(&v["rps"], 0),
            f(&v["p50_ms"], 3),
            f(&v["p99_ms"], 3),
            if reads.is_null() {
                "–".into()
            } else {
                f(reads, 3)
            }
        ));
    }
    s.push_str(&format!(
        "\nwarm verify / no-op: **{}** (target ≥ 0.85) · warm verify / JS peer: **{}** (target ≥ 1.0) · \
         proxy / JS proxy: {} · p99 added vs no-op, one request at a time: **{} ms** (target ≤ 1; \
         under full load, where p99 is scheduler stalls: {} ms)\n\
         body floor / no-op: {} · warm verify / body floor: {}\n\
         KV reads per request: garbage **{}**, cold unknown key **{}** (each a new key), warm **{}** \
         (targets 0 / ≤ 1 / 0); JS peer: {} for every path\n\
         edge wasm: {} bytes raw, **{} bytes gzip** (target ≤ 300 KB)\n\n",
        f(&e["warm_vs_noop"], 3),
        f(&e["warm_vs_js"], 3),
        f(&e["proxy_vs_js_proxy"], 3),
        f(&e["p99_added_vs_noop_ms"], 3),
        f(&e["p99_loaded_added_vs_noop_ms"], 3),
        f(&e["body_floor_vs_noop"], 3),
        f(&e["warm_vs_body_floor"], 3),
        f(&kv["garbage"], 3),
        f(&kv["unknown"], 3),
        f(&kv["warm"], 3),
        f(&kv["js_peer"]["warm"], 0),
        e["wasm_bytes"],
        e["wasm_gzip_bytes"],
    ));
    s.push_str(
        "| edge latency, one request at a time (node client) | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|\n",
    );
    for (id, label) in [
        ("noop", "no-op worker"),
        ("body_floor", "JS body floor"),
        ("keyward_verify_warm", "Keyward verify, warm valid key"),
        ("js_verify", "JS peer verify"),
        (
            "keyward_proxy_warm",
            "Keyward proxy → origin, warm valid key",
        ),
    ] {
        let v = &e["latency_one_connection"][id];
        s.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            f(&v["p50_ms"], 3),
            f(&v["p99_ms"], 3),
            f(&v["mean_ms"], 3)
        ));
    }
    s.push('\n');
    s.push_str(&format!(
        "| control plane ({}) | p50 ms | p99 ms | req/s |\n|---|---:|---:|---:|\n",
        c["profile"].as_str().unwrap_or("?")
    ));
    for (id, label) in [
        ("create", "create (sequential)"),
        ("list", "list, limit 20 (sequential)"),
        ("revoke", "revoke (sequential)"),
        ("create_concurrent", "create, 4 clients"),
        ("bare_txn", "bare TransactWriteItems (sequential)"),
        ("bare_txn_concurrent", "bare TransactWriteItems, 4 clients"),
    ] {
        let v = &c[id];
        s.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            f(&v["p50_ms"], 2),
            f(&v["p99_ms"], 2),
            f(&v["rps"], 0)
        ));
    }
    s.push_str(&format!(
        "\ncreate p50 / bare transaction p50: **{}** (target ≤ 1.5)\n\n",
        f(&r["control"]["create_vs_bare_txn"], 2)
    ));
    let l = &r["lambda"];
    s.push_str(&format!(
        "| Lambda function ({} build, x86_64) | init ms (median of {}) | binary bytes |\n|---|---:|---:|\n",
        l["profile"].as_str().unwrap_or("?"),
        l["runs_per_function"]
    ));
    if let Some(init) = l["init_ms"].as_object() {
        for (name, ms) in init {
            s.push_str(&format!(
                "| {name} | {} | {} |\n",
                f(ms, 2),
                l["binary_bytes"][name]
            ));
        }
    }
    s.push_str("\n(target: init ≤ 20 ms)\n");
    let core = &r["core"];
    if let Some(map) = core.as_object() {
        s.push_str("\n| core (criterion, native) | median ns |\n|---|---:|\n");
        for (k, v) in map {
            s.push_str(&format!(
                "| {} | {} |\n",
                k.trim_end_matches("_ns"),
                f(v, 1)
            ));
        }
    }
    s
}

fn today() -> String {
    output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux")
}
