//! `cargo xtask dev`: bootstraps, builds the edge, then hands over to the local stack launcher.
//!
//! The launcher is the `keyward-dev` binary of the `keyward-tests` crate, the same code the
//! end-to-end tests use to start their stack. It receives `tool_env` and any extra arguments.

use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::bootstrap::{bootstrap, tool_env};
use crate::edge::build_edge;
use crate::util::{bin_targets, cmd, step};

const LAUNCHER_PACKAGE: &str = "keyward-tests";
const LAUNCHER_BIN: &str = "keyward-dev";

pub fn dev(repo: &Path, args: &[String]) -> Result<()> {
    step("bootstrap", || bootstrap(repo))?;
    let env = tool_env(repo)?;
    step("build-edge", || build_edge(repo, &env).map(drop))?;

    if !launcher_exists(repo)? {
        bail!(
            "the local stack is not available yet: package `{LAUNCHER_PACKAGE}` has no \
             `{LAUNCHER_BIN}` binary (tests/src/bin/{LAUNCHER_BIN}.rs)"
        );
    }
    println!("==> starting the local stack (Ctrl-C stops it)");
    // Replace this process, so Ctrl-C and exit codes belong to the launcher alone.
    let err = cmd("cargo", repo, &env)
        .args([
            "run",
            "--quiet",
            "-p",
            LAUNCHER_PACKAGE,
            "--bin",
            LAUNCHER_BIN,
            "--",
        ])
        .args(args)
        .exec();
    Err(err).context("starting `cargo run -p keyward-tests --bin keyward-dev`")
}

fn launcher_exists(repo: &Path) -> Result<bool> {
    Ok(bin_targets(repo, LAUNCHER_PACKAGE)?
        .iter()
        .any(|b| b == LAUNCHER_BIN))
}
