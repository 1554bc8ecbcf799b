//! Where the project's things are: the workspace root, the checkout whose tools to use, and the
//! tool directory every clone shares.
//!
//! One file for the whole repository: `keyward-tests` has it as `paths`, and `xtask` compiles
//! the same file with `#[path]` (it must not depend on this crate, which would build the AWS SDK
//! into every `cargo xtask`). Only `std` and `anyhow`, which both crates have.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root (the directory holding the root `Cargo.toml`): the parent of the
/// compiling crate's manifest directory, which for every crate here is one level down.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("every crate lives one level below the workspace root")
        .to_path_buf()
}

/// The checkout whose `.venv`, `node_modules` and `target/keyward` the test harness uses:
/// `$KEYWARD_REPO` (set by `cargo xtask env`/`test`), else [`workspace_root`].
#[must_use]
pub fn repo_root() -> PathBuf {
    std::env::var_os("KEYWARD_REPO")
        .filter(|d| !d.is_empty())
        .map_or_else(workspace_root, PathBuf::from)
}

/// The tool directory shared by every clone: `$KEYWARD_TOOLS`, or `~/.cache/keyward/tools`.
///
/// # Errors
/// When neither `KEYWARD_TOOLS` nor `HOME` is set.
pub fn tools_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KEYWARD_TOOLS").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; set KEYWARD_TOOLS instead")?;
    Ok(PathBuf::from(home).join(".cache/keyward/tools"))
}

/// The variables cargo sets for the package it runs (`cargo run`, `cargo test`) that are present
/// in this process: `CARGO_PKG_*`, `CARGO_MANIFEST_*`, `CARGO_CRATE_NAME`, `OUT_DIR`, ...
///
/// A cargo started from inside a running package inherits them, and a build script that watches
/// one (`rerun-if-env-changed`; ring watched `CARGO_PKG_NAME` and `CARGO_MANIFEST_DIR`) reruns
/// whenever cargo is started from somewhere else, rebuilding everything above it. Every cargo
/// the project starts (`xtask`, the functions' build, `cargo lambda watch`) has them removed,
/// so one build serves whoever starts it.
#[must_use]
pub fn package_env_vars() -> Vec<OsString> {
    const EXACT: [&str; 6] = [
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_str().is_some_and(|n| {
                n.starts_with("CARGO_PKG_")
                    || n.starts_with("CARGO_MANIFEST_")
                    || EXACT.contains(&n)
            })
        })
        .collect()
}
