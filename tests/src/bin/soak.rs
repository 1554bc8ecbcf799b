//! `soak`: the whole local stack under a steady mixed load, then its figures and invariants.
//!
//! Run: `cargo xtask soak [--seconds N]` (bootstraps and builds the edge first), or directly
//! `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo run -p keyward-tests --bin soak --
//! [--seconds N] [--out FILE]` (default 600 s, `target/keyward/soak.json`). Prints the tables
//! (requests and errors per kind, p50/p99, replication and revocation lag, resident memory of
//! every component at start and end) and exits 1 when an invariant broke (a revoked secret valid
//! again, a lost write) or a request failed in a way that is not an expected refusal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_tests::soak::{self, Rates};
use keyward_tests::stack::{Stack, StackOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let mut seconds = 600u64;
    let mut out = keyward_tests::paths::repo_root().join("target/keyward/soak.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a whole number of seconds")?;
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a file")?),
            other => bail!("unknown argument {other:?}; usage: soak [--seconds N] [--out FILE]"),
        }
    }
    let started = Instant::now();
    let mut opts = StackOptions::default();
    opts.control_plane.max_active_keys = 1_000_000;
    let stack = Stack::start(opts)
        .await
        .context("starting the local stack")?;
    eprintln!(
        "soak: stack up in {:.0} s; {seconds} s of mixed load on {} (logs in {})",
        started.elapsed().as_secs_f64(),
        stack.edge_url(),
        stack.dir().display()
    );
    let report = soak::run(&stack, Duration::from_secs(seconds), Rates::default()).await?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, soak::to_json(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{}", report.table());
    println!("soak: wrote {}", out.display());
    let violations = report.violations();
    for v in &violations {
        println!("soak: VIOLATION {v}");
    }
    if !violations.is_empty() || report.errors() > 0 {
        bail!(
            "{} invariant violations, {} unexpected errors",
            violations.len(),
            report.errors()
        );
    }
    Ok(())
}
