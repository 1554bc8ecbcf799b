//! `cargo xtask build-edge`: builds the edge Worker to `edge/build/` with worker-build, no wrangler needed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::{cmd, file_size, gzip_size, human_size, run};
use crate::wasm_size::{self, Breakdown};

/// The cargo profile for the Worker's WASM: `[profile.release-edge]` in the workspace
/// manifest, tuned for size (upload limit, cold start).
const EDGE_PROFILE: &str = "release-edge";

/// Set (to anything) to keep the WASM name section: stack frames then name their functions.
const KEEP_NAMES_VAR: &str = "KEYWARD_EDGE_NAMES";

/// What `build-edge` produced.
#[derive(Debug)]
pub struct EdgeBuild {
    /// `edge/build`: the directory wrangler's `main = "build/worker/shim.mjs"` points into.
    pub dir: PathBuf,
    /// The Worker's WASM module(s).
    pub wasm: Vec<PathBuf>,
    /// What the first module's bytes are, measured while it still had its names.
    pub breakdown: Breakdown,
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
    let breakdown = wasm_size::breakdown(
        &fs::read(&wasm[0]).with_context(|| format!("reading {}", wasm[0].display()))?,
    )?;
    if std::env::var_os(KEEP_NAMES_VAR).is_none() {
        for w in &wasm {
            strip_names(w)?;
        }
    }
    for w in &wasm {
        println!(
            "edge wasm {}: {} raw, {} gzipped",
            w.strip_prefix(repo).unwrap_or(w).display(),
            human_size(file_size(w)?),
            human_size(gzip_size(w)?)
        );
    }
    Ok(EdgeBuild {
        dir,
        wasm,
        breakdown,
    })
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

/// Drops the `name` custom section from the module at `path`. worker-build always asks wasm-opt
/// to keep it (`--debuginfo`); it was about 47 KB of the gzipped module. Panics still log their
/// message and source location; only WASM stack frames lose function names
/// (`KEYWARD_EDGE_NAMES=1 cargo xtask build-edge` keeps them for debugging).
fn strip_names(path: &Path) -> Result<()> {
    let module = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let stripped = without_custom_section(&module, "name")
        .with_context(|| format!("{} is not a WASM module", path.display()))?;
    fs::write(path, stripped).with_context(|| format!("writing {}", path.display()))
}

/// `module` without its custom sections called `name`.
fn without_custom_section(module: &[u8], name: &str) -> Result<Vec<u8>> {
    use wasm_size::len as leb;
    if module.get(..4) != Some(b"\0asm".as_slice()) || module.len() < 8 {
        bail!("no WASM header");
    }
    let mut out = module[..8].to_vec();
    let mut at = 8;
    while at < module.len() {
        let start = at;
        let id = module[at];
        at += 1;
        let size = leb(module, &mut at)?;
        let body = module
            .get(at..at + size)
            .context("a section runs past the end")?;
        at += size;
        let dropped = id == 0 && {
            let mut i = 0;
            let len = leb(body, &mut i)?;
            body.get(i..i + len) == Some(name.as_bytes())
        };
        if !dropped {
            out.extend_from_slice(&module[start..at]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_custom_section_is_dropped() {
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        let type_section = [1u8, 1, 0];
        let name_section = [0u8, 6, 4, b'n', b'a', b'm', b'e', 9];
        let other_custom = [0u8, 3, 2, b'x', b'y'];
        for s in [&type_section[..], &name_section, &other_custom] {
            module.extend_from_slice(s);
        }
        let out = without_custom_section(&module, "name").unwrap();
        let mut expected = b"\0asm\x01\0\0\0".to_vec();
        expected.extend_from_slice(&type_section);
        expected.extend_from_slice(&other_custom);
        assert_eq!(out, expected);
        assert!(without_custom_section(b"nope", "name").is_err());
    }
}
