//! `cargo xtask bench`: the core, the edge, the control plane and Lambda init, measured in one run.
//!
//! Writes `target/keyward/bench.json` (typed: `bench_report.rs`) and prints the tables the
//! README shows; `cargo xtask bench --readme` rewrites the README's marked block from it. Steps:
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

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::bench_report::{
    self, BenchReport, ControlRun, EdgeRun, HandlerRun, LambdaFigures, WasmSize, round,
};
use crate::util::{bin_targets, cmd, file_size, gzip_size, output, run, step, test_build_bin};
use crate::{bootstrap, edge};

/// What `cargo xtask bench` says up front: minutes on a warm 2-core machine, and what a first run
/// adds for its release builds (measured 2026-12-01: 11 min 43 s warm with five edge rounds, and
/// seven add about 2.5 minutes; the release functions 13 min 25 s and the handler bench about
/// 11 min cold).
const WARM_MINUTES: u32 = 15;
const COLD_EXTRA_MINUTES: u32 = 25;
/// Runs of each function binary for the init figure; the median is reported.
const INIT_RUNS: usize = 5;
/// Longest a function may take to ask for its first event.
const INIT_TIMEOUT: Duration = Duration::from_secs(20);

/// `cargo xtask bench [--readme|--edge|--lambda]`: `--readme` only rewrites the README's tables
/// from the last run's `target/keyward/bench.json`; `--edge` measures the edge alone and replaces
/// the edge figures of that file (or of the committed sample when there is none); `--lambda`
/// times Lambda init alone and prints it (writes nothing).
pub fn bench_command(repo: &Path, args: &[String]) -> Result<()> {
    match args {
        [] => bench(repo),
        [flag] if flag == "--readme" => readme(repo),
        [flag] if flag == "--edge" => bench_edge_only(repo),
        [flag] if flag == "--lambda" => {
            let env = bootstrap::tool_env(repo)?;
            let bins = function_bins(repo, &env)?;
            let lambda = lambda_init(repo, &bins)?;
            println!("{}", serde_json::to_string_pretty(&lambda)?);
            Ok(())
        }
        [other, ..] => {
            bail!("`bench` takes `--readme`, `--edge`, `--lambda` or nothing, not `{other}`")
        }
    }
}

/// The committed figures the README shows: the base an edge-only run updates when no full run
/// has written `target/keyward/bench.json` here.
pub const SAMPLE: &str = "xtask/testdata/bench.json";

/// Builds the edge and runs `bench/edge.mjs`: the raw run and the module's size.
fn measure_edge(repo: &Path, env: &[(String, String)]) -> Result<(EdgeRun, WasmSize)> {
    if !bootstrap::has_wrk() {
        bail!("wrk is not installed: `cargo xtask bootstrap` installs it (apt-get install -y wrk)");
    }
    let built = step("build edge (release-edge profile)", || {
        edge::build_edge(repo, env)
    })?;
    let out_dir = repo.join("target/keyward");
    std::fs::create_dir_all(&out_dir)?;
    let edge_json = out_dir.join("bench-edge.json");
    step("edge throughput (workerd via Miniflare, wrk)", || {
        run(cmd("node", repo, env)
            .arg(repo.join("bench/edge.mjs"))
            .arg("--out")
            .arg(&edge_json)
            .arg("--build")
            .arg(&built.dir))
    })?;
    let wasm = built
        .wasm
        .first()
        .context("the edge build has no .wasm")?
        .clone();
    Ok((
        read_typed(&edge_json)?,
        WasmSize {
            bytes: file_size(&wasm)?,
            gzip_bytes: gzip_size(&wasm)?,
            breakdown: built.breakdown,
        },
    ))
}

/// `cargo xtask bench --edge`: the edge alone (about 8 minutes), its figures written into
/// `target/keyward/bench.json` beside the other parts' last figures.
fn bench_edge_only(repo: &Path) -> Result<()> {
    let started = Instant::now();
    step("bootstrap", || bootstrap::bootstrap(repo))?;
    let env = bootstrap::tool_env(repo)?;
    let path = repo.join("target/keyward/bench.json");
    let base = if path.is_file() {
        path.clone()
    } else {
        repo.join(SAMPLE)
    };
    let (edge_raw, wasm) = measure_edge(repo, &env)?;
    // The base is read as plain JSON: only its other parts are kept, and an older edge part
    // (fewer fields) is replaced whole.
    let text =
        std::fs::read_to_string(&base).with_context(|| format!("reading {}", base.display()))?;
    let mut merged: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", base.display()))?;
    merged["edge"] = serde_json::to_value(bench_report::edge_figures(today(), &edge_raw, wasm))?;
    let report: BenchReport =
        bench_report::parse(&base.display().to_string(), &merged.to_string())?;
    write_report(&path, &report, started)
}

fn write_report(path: &Path, report: &BenchReport, started: Instant) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\n{}", bench_report::tables(report));
    for line in bench_report::targets(report) {
        println!("  {line}");
    }
    println!(
        "bench: wrote {} in {:.0}s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rewrites the README block between `<!-- bench:start -->` and `<!-- bench:end -->` from
/// `target/keyward/bench.json`.
fn readme(repo: &Path) -> Result<()> {
    let path = repo.join("target/keyward/bench.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run `cargo xtask bench` first)", path.display()))?;
    let report: BenchReport = bench_report::parse(&path.display().to_string(), &text)?;
    let readme_path = repo.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)?;
    let block = bench_report::readme_block(&report);
    if bench_report::current_block(&readme) == Some(block.as_str()) {
        println!(
            "bench: README.md already shows the run of {} (edge: {})",
            report.date, report.edge.fair.date
        );
        return Ok(());
    }
    let updated = bench_report::replace_block(&readme, &block)?;
    std::fs::write(&readme_path, updated)
        .with_context(|| format!("writing {}", readme_path.display()))?;
    println!(
        "bench: README.md tables now show the run of {} (edge: {}); commit them with \
         {SAMPLE} replaced by that bench.json",
        report.date, report.edge.fair.date
    );
    Ok(())
}

/// Runs every benchmark and writes `target/keyward/bench.json`.
pub fn bench(repo: &Path) -> Result<()> {
    let started = Instant::now();
    println!(
        "bench: about {WARM_MINUTES} minutes once its builds exist; a first run also builds the \
         functions (release, fat LTO) and the handler bench (no LTO): add about \
         {COLD_EXTRA_MINUTES} minutes on 2 cores"
    );
    step("bootstrap", || bootstrap::bootstrap(repo))?;
    let env = bootstrap::tool_env(repo)?;
    let out_dir = repo.join("target/keyward");
    std::fs::create_dir_all(&out_dir)?;
    let core = step("core (criterion)", || core(repo, &env))?;
    let (edge_raw, wasm) = measure_edge(repo, &env)?;
    let (control_raw, handlers, lambda) = control_plane_benches(repo, &env, &out_dir)?;
    let report = bench_report::assemble(
        today(),
        machine(),
        core,
        edge_raw,
        control_raw,
        lambda,
        handlers,
        wasm,
    );
    write_report(&out_dir.join("bench.json"), &report, started)
}

/// The control plane's parts: the handlers in-process, the release functions on the local stack,
/// and Lambda init from the same release build (`cargo build --release -p keyward-functions
/// --bins`, which is also what `cargo lambda watch --release` runs: one build for both).
fn control_plane_benches(
    repo: &Path,
    env: &[(String, String)],
    out_dir: &Path,
) -> Result<(ControlRun, Option<HandlerRun>, LambdaFigures)> {
    let handlers_json = out_dir.join("bench-handlers.json");
    step(
        "handlers (in-process: µs per operation, DynamoDB round trips)",
        || {
            run(cmd("cargo", repo, env)
                .args([
                    "bench",
                    "--profile",
                    "bench-handlers",
                    "-p",
                    "keyward-functions",
                    "--bench",
                    "handlers",
                    "--",
                ])
                .arg(&handlers_json))
        },
    )?;
    let handlers: HandlerRun = read_typed(&handlers_json)?;
    // Built first: the control bench's `cargo lambda watch --release` and Lambda init use it.
    let bins = step(
        "release functions (once, for the stack and Lambda init)",
        || function_bins(repo, env),
    )?;
    // Lambda init first: a minute, and a function that cannot start fails the run early.
    let lambda = step("lambda init", || lambda_init(repo, &bins))?;
    let control_json = out_dir.join("bench-control.json");
    step("control plane (local stack, release functions)", || {
        let bench_control = test_build_bin(repo, env, "bench_control")?;
        run(cmd(bench_control, repo, env).arg(&control_json).arg("200"))
    })?;
    let control_raw: ControlRun = read_typed(&control_json)?;
    Ok((control_raw, Some(handlers), lambda))
}

/// criterion's `estimates.json`, the part read here.
#[derive(Debug, Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Debug, Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Runs the criterion benchmark and returns `{name_ns: median_ns}`.
fn core(repo: &Path, env: &[(String, String)]) -> Result<BTreeMap<String, f64>> {
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
    let mut out = BTreeMap::new();
    for file in found {
        // target/criterion/<group>/<bench>/new/estimates.json
        let Some(dir) = file.parent().and_then(Path::parent) else {
            continue;
        };
        let Ok(rel) = dir.strip_prefix(&criterion) else {
            continue;
        };
        let name = rel.to_string_lossy().replace(['/', '\\'], "_");
        let est: Estimates = read_typed(&file)?;
        out.insert(format!("{name}_ns"), round(est.median.point_estimate, 1));
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

/// For every function binary of `bins`: median time from spawn to its first
/// `GET .../invocation/next`.
fn lambda_init(repo: &Path, bins: &FunctionBins) -> Result<LambdaFigures> {
    let names = bin_targets(repo, "keyward-functions")?;
    if names.is_empty() {
        bail!("keyward-functions has no binaries");
    }
    // The functions read their secrets from Secrets Manager at start-up, as in production, so
    // the figure includes that read (from a local moto).
    let secrets = SecretsServer::start(repo)?;
    let mut init = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    let mut runs_out = BTreeMap::new();
    for name in &names {
        let bin = bins.dir.join(name);
        sizes.insert(name.clone(), file_size(&bin)?);
        let mut runs = Vec::with_capacity(INIT_RUNS);
        for _ in 0..INIT_RUNS {
            runs.push(
                time_init(&bin, name, secrets.url())
                    .with_context(|| format!("timing init of {name}"))?,
            );
        }
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "lambda init {name}: median {median:.2} ms over {INIT_RUNS} runs ({} build)",
            bins.profile
        );
        init.insert(name.clone(), round(median, 2));
        runs_out.insert(name.clone(), runs.iter().map(|r| round(*r, 2)).collect());
    }
    Ok(LambdaFigures {
        profile: bins.profile.to_owned(),
        binaries: bins
            .dir
            .strip_prefix(repo)
            .unwrap_or(&bins.dir)
            .display()
            .to_string(),
        runs_per_function: INIT_RUNS as u64,
        init_ms: init,
        init_runs_ms: runs_out,
        binary_bytes: sizes,
    })
}

/// Starts `bin` against a one-shot runtime API and returns ms until it asks for an event.
fn time_init(bin: &Path, name: &str, secrets_url: &str) -> Result<f64> {
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
        .envs(lambda_env(&api, name, secrets_url))
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
fn lambda_env(api: &str, name: &str, secrets_url: &str) -> Vec<(String, String)> {
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
        ("AWS_ENDPOINT_URL", secrets_url),
        ("KEYWARD_TABLE", "keyward-bench"),
        ("KEYWARD_JWT_ALG", "HS256"),
        ("KEYWARD_JWT_ISSUER", "keyward-bench"),
        ("KEYWARD_JWT_AUDIENCE", "keyward"),
        ("KEYWARD_DEFAULT_SCOPES", "read"),
        ("KEYWARD_MAX_ACTIVE_KEYS", "1000"),
        ("KEYWARD_DEFAULT_PREFIX", "kw"),
        ("KEYWARD_EDGE_URL", "http://127.0.0.1:9"),
        (
            "KEYWARD_WEBHOOK_QUEUE_URL",
            "http://127.0.0.1:9/000000000000/keyward-bench-webhooks",
        ),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(
        BENCH_SECRETS
            .iter()
            .map(|(name, _)| (secret_id_variable(name), format!("bench/{name}"))),
    )
    .collect()
}

/// The variable that names secret `name`'s Secrets Manager id (`functions/src/runtime.rs`):
/// `KEYWARD_JWT_KEY` → `KEYWARD_JWT_KEY_SECRET_ID`, `KEYWARD_SYNC_SECRET` →
/// `KEYWARD_SYNC_SECRET_ID`.
fn secret_id_variable(name: &str) -> String {
    format!("{}_SECRET_ID", name.strip_suffix("_SECRET").unwrap_or(name))
}

/// The secrets every function may read at start-up, with dummy values.
const BENCH_SECRETS: [(&str, &str); 4] = [
    ("KEYWARD_JWT_KEY", "bench-jwt-secret-0123456789abcdef"),
    (
        "KEYWARD_CURSOR_SECRET",
        "bench-cursor-secret-0123456789abcdef",
    ),
    ("KEYWARD_SYNC_SECRET", "bench-sync-secret-0123456789abcdef"),
    (
        "KEYWARD_USAGE_SECRET",
        "bench-usage-secret-0123456789abcdef",
    ),
];

/// moto (the project's `tests/moto_server.py`) holding [`BENCH_SECRETS`] as `bench/{name}`;
/// stopped when dropped.
struct SecretsServer {
    child: std::process::Child,
    url: String,
}

impl SecretsServer {
    fn start(repo: &Path) -> Result<Self> {
        let python = repo.join(".venv/bin/python");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&python)
            .arg(repo.join("tests/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting moto with {}", python.display()))?;
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto did not listen on port {port} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let script = "import boto3, json, sys; \
            c = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1', \
            aws_access_key_id='bench', aws_secret_access_key='bench'); \
            [c.create_secret(Name='bench/' + n, SecretString=v) for n, v in json.loads(sys.argv[2])]";
        let secrets = serde_json::to_string(&BENCH_SECRETS)?;
        run(Command::new(&python).args(["-c", script, &server.url, &secrets]))
            .context("storing the bench secrets in moto")?;
        Ok(server)
    }

    fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for SecretsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a JSON file into `T`: a missing or renamed field is an error naming it and the file.
fn read_typed<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    bench_report::parse(&path.display().to_string(), &text)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bench_secret_is_named_by_the_variable_the_functions_read() {
        let variables: Vec<String> = BENCH_SECRETS
            .iter()
            .map(|(name, _)| secret_id_variable(name))
            .collect();
        assert_eq!(
            variables,
            [
                "KEYWARD_JWT_KEY_SECRET_ID",
                "KEYWARD_CURSOR_SECRET_ID",
                "KEYWARD_SYNC_SECRET_ID",
                "KEYWARD_USAGE_SECRET_ID"
            ]
        );
        let runtime = include_str!("../../functions/src/runtime.rs");
        for variable in &variables {
            assert!(
                runtime.contains(&format!("id_variable: \"{variable}\"")),
                "functions/src/runtime.rs reads no {variable}"
            );
        }
    }
}
