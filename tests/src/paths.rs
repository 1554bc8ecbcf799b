//! Where the project's things are: the workspace root, the checkout whose tools to use, and the
//! tool directory every clone shares.
//!
//! One file for the whole repository: `keyward-tests` has it as `paths`, and `xtask` compiles
//! the same file with `#[path]` (it must not depend on this crate, which would build the AWS SDK
//! into every `cargo xtask`). Only `std` and `anyhow`, which both crates have.

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
