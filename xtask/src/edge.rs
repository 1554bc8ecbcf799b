//! `cargo xtask build-edge`: builds the edge Worker to `edge/build/` with worker-build, no wrangler needed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, file_size, gzip_size, human_size, run};

/// The cargo profile for the Worker's WASM: `[profile.release-edge]` in the workspace
/// manifest, tuned for size (upload limit, cold start).
const EDGE_PROFILE: &str = "release-edge";

/// What `build-edge` produced.
#[derive(Debug)]
pub struct EdgeBuild {
    /// `edge/build`: the directory wrangler's `main = "build/worker/shim.mjs"` points into.
    pub dir: PathBuf,
    /// The Worker's WASM module(s).
    pub wasm: Vec<PathBuf>,
}

/// Runs worker-build for the edge crate and prints the WASM size, raw and gzipped.
pub fn build_edge(repo: &Path, env: &[(String, String)]) -> Result<EdgeBuild> {
    let edge = repo.join("edge");
    run(cmd("worker-build", &edge, env).args(["--profile", EDGE_PROFILE]))?;

    let dir = edge.join("build");
    let shim = dir.join("worker/shim.mjs");
    if !shim.is_file() {
        bail!(
            "worker-build finished but {} is missing; wrangler.toml's `main` points there",
            shim.display()
        );
    }
    let mut wasm = Vec::new();
    collect_wasm(&dir, &mut wasm)?;
    if wasm.is_empty() {
        bail!(
            "worker-build finished but left no .wasm under {}",
            dir.display()
        );
    }
    wasm.sort();
    for w in &wasm {
        println!(
            "edge wasm {}: {} raw, {} gzipped",
            w.strip_prefix(repo).unwrap_or(w).display(),
            human_size(file_size(w)?),
            human_size(gzip_size(w)?)
        );
    }
    Ok(EdgeBuild { dir, wasm })
}

fn collect_wasm(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_wasm(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "wasm") {
            out.push(path);
        }
    }
    Ok(())
}
