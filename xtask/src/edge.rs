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
    install_entry(&edge, &dir)?;
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

/// Writes `edge/js/entry.mjs` over worker-build's `worker/shim.mjs` in `out` (wrangler.toml's
/// `main`): a plain module worker around worker-build's handler (see that file). Refuses a
/// bundle without the init state the entry relies on (a worker-build other than the pinned one).
///
/// # Errors
/// When the bundle is not what the entry expects, or a file cannot be written.
pub fn install_entry(edge: &Path, out: &Path) -> Result<()> {
    let shim = out.join("worker/shim.mjs");
    let index = fs::read_to_string(out.join("index.js"))
        .with_context(|| format!("reading {}/index.js", out.display()))?;
    if !shim.is_file() || !index.contains("__worker_init_state") {
        bail!(
            "worker-build's output in {} is not the shape edge/js/entry.mjs expects \
             (worker/shim.mjs and __worker_init_state in index.js); is worker-build the pinned one?",
            out.display()
        );
    }
    fs::copy(edge.join("js/entry.mjs"), &shim)
        .with_context(|| format!("writing {}", shim.display()))?;
    Ok(())
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
