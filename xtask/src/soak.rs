//! `cargo xtask soak [--seconds N]`: the local stack under a steady mixed load (default ten
//! minutes), with its figures in `target/keyward/soak.json`. Not part of `cargo xtask test`,
//! which runs the same driver for a minute as the `soak` e2e test (correctness only).

use std::path::Path;

use anyhow::{Result, bail};

use crate::bootstrap::{bootstrap, tool_env};
use crate::edge::build_edge;
use crate::util::{cmd, run, step, test_build_bin};

pub fn soak(repo: &Path, args: &[String]) -> Result<()> {
    let seconds = match args {
        [] => "600".to_owned(),
        [flag, n] if flag == "--seconds" && n.parse::<u64>().is_ok() => n.clone(),
        _ => bail!("usage: cargo xtask soak [--seconds N]"),
    };
    step("bootstrap", || bootstrap(repo))?;
    let env = tool_env(repo)?;
    step("build-edge", || build_edge(repo, &env).map(drop))?;
    let driver = step("build (the workspace's test build)", || {
        test_build_bin(repo, &env, "soak")
    })?;
    step(&format!("soak ({seconds} s of mixed load)"), || {
        run(cmd(&driver, repo, &env).args(["--seconds", &seconds]))
    })
}
