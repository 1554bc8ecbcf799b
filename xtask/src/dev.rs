//! `cargo xtask dev`: bootstraps, builds the edge, then hands over to the local stack launcher.
//!
//! The launcher is the `keyward-dev` binary of the `keyward-tests` crate, the same code the
//! end-to-end tests use to start their stack, taken from the same build `cargo xtask test`
//! makes (`util::test_build_bin`), so neither command rebuilds what the other built. It
//! receives `tool_env` and any extra arguments.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::bootstrap::{bootstrap, tool_env};
use crate::edge::build_edge;
use crate::util::{bin_targets, cmd, step, test_build_bin};

const LAUNCHER_PACKAGE: &str = "keyward-tests";
const LAUNCHER_BIN: &str = "keyward-dev";

pub fn dev(repo: &Path, args: &[String]) -> Result<()> {
    step("bootstrap", || bootstrap(repo))?;
    let env = tool_env(repo)?;
    if edge_build_is_fresh(repo) {
        println!("==> build-edge: edge/build/ is newer than everything it is built from");
    } else {
        step("build-edge", || build_edge(repo, &env).map(drop))?;
    }

    if !launcher_exists(repo)? {
        bail!(
            "the local stack is not available yet: package `{LAUNCHER_PACKAGE}` has no \
             `{LAUNCHER_BIN}` binary (tests/src/bin/{LAUNCHER_BIN}.rs)"
        );
    }
    let launcher = step("build (the workspace's test build)", || {
        test_build_bin(repo, &env, LAUNCHER_BIN)
    })?;
    println!("==> starting the local stack (Ctrl-C stops it)");
    // Replace this process, so Ctrl-C and exit codes belong to the launcher alone.
    let err = cmd(&launcher, repo, &env).args(args).exec();
    Err(err).with_context(|| format!("starting {}", launcher.display()))
}

fn launcher_exists(repo: &Path) -> Result<bool> {
    Ok(bin_targets(repo, LAUNCHER_PACKAGE)?
        .iter()
        .any(|b| b == LAUNCHER_BIN))
}

/// What `edge/build/` is built from: the edge and `common` crates, the workspace's manifest, lock,
/// toolchain and cargo configuration, and the build step itself.
const EDGE_INPUTS: [&str; 10] = [
    "edge/src",
    "edge/js",
    "edge/Cargo.toml",
    "common/src",
    "common/Cargo.toml",
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    ".cargo/config.toml",
    "xtask/src/edge.rs",
];

/// Whether `edge/build/` is newer than all of [`EDGE_INPUTS`]: then `dev` skips build-edge, whose
/// wasm-bindgen, wasm-opt and esbuild passes take half a minute even when cargo has nothing to
/// build. `KEYWARD_EDGE_NAMES` (a debugging build) always builds.
fn edge_build_is_fresh(repo: &Path) -> bool {
    if std::env::var_os("KEYWARD_EDGE_NAMES").is_some() {
        return false;
    }
    let outputs = ["edge/build/index_bg.wasm", "edge/build/worker/shim.mjs"];
    let Some(built) = outputs
        .iter()
        .map(|o| modified(&repo.join(o)))
        .min()
        .flatten()
    else {
        return false;
    };
    EDGE_INPUTS
        .iter()
        .all(|input| newest(&repo.join(input)).is_none_or(|t| t < built))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` and, for a directory, of everything below it.
fn newest(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| newest(&e.path()))
        .chain(own)
        .max()
}
