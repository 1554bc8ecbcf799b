//! `cargo xtask test`: everything a change must pass, in order, failing fast with the step's name.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::bootstrap::{bootstrap, tool_env};
use crate::edge::build_edge;
use crate::fuzz;
use crate::util::{cmd, run, step};

/// How long schemathesis fuzzes the local control plane (its start-up not included).
const API_FUZZ_SECONDS: u64 = 120;

/// Formatting, clippy (native and wasm32), the edge build, template and config checks, every
/// fuzz target for a short budget, then every test, end-to-end ones included (they start their
/// own stack using `tool_env`).
pub fn test(repo: &Path) -> Result<()> {
    let start = Instant::now();
    step("bootstrap", || bootstrap(repo))?;
    let env = tool_env(repo)?;
    let cargo = |args: &[&str]| run(cmd("cargo", repo, &env).args(args));

    step("cargo fmt --check", || {
        cargo(&["fmt", "--all", "--check"])
            .and_then(|()| cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]))
            .context(
                "code is not formatted: run `cargo fmt --all` and \
                 `cargo fmt --manifest-path fuzz/Cargo.toml`",
            )
    })?;
    step("clippy (native)", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("clippy (wasm32: common, edge)", || {
        cargo(&[
            "clippy",
            "-p",
            "keyward-common",
            "-p",
            "keyward-edge",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    step("build-edge", || build_edge(repo, &env).map(drop))?;

    let template = repo.join("infra/template.yaml");
    if template.is_file() {
        step("cfn-lint infra/template.yaml", || {
            run(cmd("cfn-lint", repo, &env).arg(&template))
        })?;
    } else {
        println!("==> cfn-lint: skipped, infra/template.yaml does not exist yet");
    }

    let edge = repo.join("edge");
    if edge.join("wrangler.toml").is_file() {
        let outdir = repo.join("target/keyward/dry-run");
        step("wrangler deploy --dry-run", || {
            run(cmd("wrangler", &edge, &env)
                .args(["deploy", "--dry-run", "--outdir"])
                .arg(&outdir))
        })?;
    } else {
        println!("==> wrangler dry-run: skipped, edge/wrangler.toml does not exist yet");
    }

    let targets = fuzz::targets(repo)?;
    let seconds = fuzz::test_seconds(targets.len());
    step(
        &format!("fuzz ({} targets x {seconds}s, cargo-fuzz)", targets.len()),
        || fuzz::fuzz(repo, &env, &targets, seconds),
    )?;

    // The end-to-end runs record each function's AWS actions here (tests/moto_server.py).
    let iam_logs = repo.join("target/keyward/iam");
    if iam_logs.exists() {
        std::fs::remove_dir_all(&iam_logs)
            .with_context(|| format!("clearing {}", iam_logs.display()))?;
    }
    step("cargo test --workspace", || {
        run(cmd("cargo", repo, &env)
            .args(["test", "--workspace"])
            .env("KEYWARD_IAM_LOG_DIR", &iam_logs))
    })?;
    step("IAM policies against the actions the tests issued", || {
        crate::iam::check(&template, &iam_logs)
    })?;
    step(
        &format!("api fuzz (schemathesis from openapi.json, {API_FUZZ_SECONDS}s)"),
        || {
            // From the test build just made (`cargo run -p` would build another feature set).
            let api_fuzz = crate::util::test_build_bin(repo, &env, "api_fuzz")?;
            run(cmd(&api_fuzz, repo, &env).args(["--seconds", &API_FUZZ_SECONDS.to_string()]))
        },
    )?;
    println!(
        "test: all steps passed in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
