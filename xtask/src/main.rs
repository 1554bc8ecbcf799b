//! `cargo xtask bootstrap|dev|test|build-edge|package|backfill`: Keyward's own tooling.
//!
//! Run from anywhere in the repo: `cargo xtask <command>` (an alias in `.cargo/config.toml`).

mod backfill;
mod bench;
mod bench_report;
mod bootstrap;
mod dev;
mod edge;
mod fuzz;
mod iam;
mod package;
// The repository's one repo-root/tool-dir helper, shared with the test harness by source.
#[path = "../../tests/src/paths.rs"]
#[allow(
    dead_code,
    reason = "`repo_root` (KEYWARD_REPO) is for the test harness; xtask uses its own checkout"
)]
mod paths;
mod soak;
mod test;
mod util;
mod wasm_size;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
Usage: cargo xtask <command>

Commands:
  bootstrap    install the tools the project needs (idempotent; a second run takes seconds)
  dev          bootstrap, build, and run the local stack (Ctrl-C stops it)
  test         everything a change must pass: fmt, clippy (native + wasm32), edge build,
               template/config checks, all tests
  build-edge   build the edge Worker into edge/build/ with worker-build
  bench        benchmarks: core, edge (workerd), control plane, Lambda init → target/keyward/bench.json;
               `bench --readme` rewrites the README's tables from that file
  fuzz         [--seconds N] [TARGET]: run the fuzz targets in fuzz/ (default 300 s each)
  soak         [--seconds N]: the local stack under a steady mixed load (default 600 s) →
               target/keyward/soak.json (requests, errors, latencies, lags, memory)
  package      build deployable artifacts into target/keyward/package/
  backfill     push every key of the running dev stack's table to its edge (rebuilds KV)
  iam [--template FILE] LOG_DIR
               check each function's policy in the template against the AWS actions the
               end-to-end runs recorded in LOG_DIR (`cargo xtask test` runs it on its own runs)
  env          print the tool environment (`eval \"$(cargo xtask env)\"` in a shell)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let repo = util::repo_root();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => {
            println!("{USAGE}");
            return Ok(());
        }
    };
    if !matches!(command, "dev" | "fuzz" | "bench" | "iam" | "soak") && !rest.is_empty() {
        bail!("`{command}` takes no arguments\n\n{USAGE}");
    }
    match command {
        "bootstrap" => bootstrap::bootstrap(&repo),
        "dev" => dev::dev(
            &repo,
            rest.strip_prefix(&["--".to_string()]).unwrap_or(rest),
        ),
        "test" => test::test(&repo),
        "build-edge" => {
            let env = bootstrap::tool_env(&repo)?;
            edge::build_edge(&repo, &env).map(drop).context(
                "building the edge (run `cargo xtask bootstrap` first if a tool is missing)",
            )
        }
        "bench" => bench::bench_command(&repo, rest),
        "fuzz" => fuzz::fuzz_command(&repo, rest),
        "package" => package::package(&repo),
        "soak" => soak::soak(&repo, rest),
        "backfill" => backfill::backfill(&repo),
        "iam" => match rest {
            [flag, template, logs] if flag == "--template" => {
                iam::check(std::path::Path::new(template), std::path::Path::new(logs))
            }
            [logs] => iam::check(
                &repo.join("infra/template.yaml"),
                std::path::Path::new(logs),
            ),
            _ => bail!("usage: cargo xtask iam [--template FILE] LOG_DIR"),
        },
        "env" => {
            for (k, v) in bootstrap::tool_env(&repo)? {
                println!("export {k}='{}'", v.replace('\'', r"'\''"));
            }
            Ok(())
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
