//! `cargo xtask package`: deployable artifacts in `target/keyward/package/`, with their sizes.
//!
//! - `functions/<name>.zip`: one arm64 Lambda zip per function binary (`cargo lambda build`).
//! - `edge/`: the Worker bundle from `build-edge` (`build/` plus `wrangler.toml` when present).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::bootstrap::{bootstrap, tool_env};
use crate::edge::build_edge;
use crate::util::{bin_targets, cmd, file_size, gzip_size, human_size, run, step};

const FUNCTIONS_PACKAGE: &str = "keyward-functions";

pub fn package(repo: &Path) -> Result<()> {
    step("bootstrap", || bootstrap(repo))?;
    let env = tool_env(repo)?;
    let out = repo.join("target/keyward/package");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }

    let mut artifacts = Vec::new();
    step("lambda zips (cargo lambda build --arm64)", || {
        let bins = bin_targets(repo, FUNCTIONS_PACKAGE)?;
        if bins.is_empty() {
            println!("{FUNCTIONS_PACKAGE} has no function binaries yet: no Lambda zips");
            return Ok(());
        }
        let lambda_dir = repo.join("target/lambda");
        run(cmd("cargo", repo, &env)
            .args(["lambda", "build", "--release", "--arm64"])
            .args(["--output-format", "zip", "--package", FUNCTIONS_PACKAGE])
            .arg("--lambda-dir")
            .arg(&lambda_dir))?;
        let dest = out.join("functions");
        fs::create_dir_all(&dest)?;
        for bin in &bins {
            let zip = lambda_dir.join(bin).join("bootstrap.zip");
            if !zip.is_file() {
                bail!("cargo lambda finished but {} is missing", zip.display());
            }
            let target = dest.join(format!("{bin}.zip"));
            fs::copy(&zip, &target)
                .with_context(|| format!("copying {} to {}", zip.display(), target.display()))?;
            artifacts.push(target);
        }
        Ok(())
    })?;

    step("edge bundle (build-edge)", || {
        let build = build_edge(repo, &env)?;
        let dest = out.join("edge");
        copy_tree(&build.dir, &dest.join("build"))?;
        let wrangler = repo.join("edge/wrangler.toml");
        if wrangler.is_file() {
            fs::copy(&wrangler, dest.join("wrangler.toml"))?;
        }
        // The wasm module, its JS glue and the shim wrangler's `main` names.
        for rel in ["index_bg.wasm", "index.js", "worker/shim.mjs"] {
            let file = dest.join("build").join(rel);
            if file.is_file() {
                artifacts.push(file);
            }
        }
        for wasm in &build.wasm {
            let file = dest
                .join("build")
                .join(wasm.strip_prefix(&build.dir).unwrap_or(wasm));
            if !artifacts.contains(&file) {
                artifacts.push(file);
            }
        }
        Ok(())
    })?;

    println!("artifacts in {}:", out.display());
    for a in &artifacts {
        let rel = a.strip_prefix(&out).unwrap_or(a);
        let gz = if a.extension().is_some_and(|e| e == "zip") {
            String::new()
        } else {
            format!(", {} gzipped", human_size(gzip_size(a)?))
        };
        println!("  {}: {}{gz}", rel.display(), human_size(file_size(a)?));
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}
