//! Small helpers every subcommand uses: the repo root, running commands, timing steps.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The workspace root: the checkout `cargo xtask` was built from (never `KEYWARD_REPO`).
pub use crate::paths::workspace_root as repo_root;

/// A command with `env` applied, run in `dir`, without the variables cargo set for xtask itself
/// (`crate::paths::package_env_vars`: a cargo started with them would rebuild what a cargo
/// started from a shell built).
pub fn cmd<S: AsRef<OsStr>>(program: S, dir: &Path, env: &[(String, String)]) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir);
    for name in crate::paths::package_env_vars() {
        c.env_remove(name);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs `c` with inherited stdio and fails with the command line if it exits non-zero.
pub fn run(c: &mut Command) -> Result<()> {
    let line = describe(c);
    println!("  $ {line}");
    let status = c
        .status()
        .with_context(|| format!("starting `{line}` (is the program installed and on PATH?)"))?;
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

/// Runs `c` quietly and returns its stdout, failing with its stderr if it exits non-zero.
pub fn output(c: &mut Command) -> Result<String> {
    let line = describe(c);
    let out = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(c: &Command) -> String {
    let mut parts = vec![c.get_program().to_string_lossy().into_owned()];
    parts.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs one named step, printing a header and a timing line, and names the step on failure.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("==> {name}");
    let start = Instant::now();
    let result = f();
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(v) => {
            println!("<== {name}: ok in {secs:.1}s");
            Ok(v)
        }
        Err(err) => {
            println!("<== {name}: FAILED after {secs:.1}s");
            Err(err.context(format!("step `{name}` failed")))
        }
    }
}

/// A byte count for humans: `1234567` → `1.18 MiB (1234567 B)`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.2} MiB ({bytes} B)", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB ({bytes} B)", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// The gzip-compressed size of a file at the default level: what an upload limit counts.
pub fn gzip_size(path: &Path) -> Result<u64> {
    use std::io::Write;
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&data)?;
    Ok(enc.finish()?.len() as u64)
}

/// Size of a file in bytes.
pub fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading metadata of {}", path.display()))?
        .len())
}

/// The names of `package`'s binary targets, from `cargo metadata` (empty if it has none).
pub fn bin_targets(repo: &Path, package: &str) -> Result<Vec<String>> {
    let meta =
        output(cmd("cargo", repo, &[]).args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    Ok(packages
        .iter()
        .filter(|p| p["name"] == package)
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect())
}

/// Builds the workspace's test build (`cargo test --workspace --no-run`: every test binary, and
/// every binary of `keyward-tests` beside them) and returns the path of that package's binary
/// `bin` in it.
///
/// `cargo xtask dev`, `soak` and `bench` start their launchers from this build rather than with
/// `cargo run -p keyward-tests`: cargo resolves features per command, so `-p keyward-tests`
/// would compile the async stack a second time with other features, beside what `cargo xtask
/// test` compiled. One build serves all of them; when it is fresh this takes seconds.
pub fn test_build_bin(repo: &Path, env: &[(String, String)], bin: &str) -> Result<PathBuf> {
    run(cmd("cargo", repo, env).args(["test", "--workspace", "--no-run", "--quiet"]))?;
    let meta =
        output(cmd("cargo", repo, env).args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let meta: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    let target = meta["target_directory"]
        .as_str()
        .context("cargo metadata names no target_directory")?;
    let path = Path::new(target).join("debug").join(bin);
    if !path.is_file() {
        bail!(
            "`cargo test --workspace --no-run` left no {}",
            path.display()
        );
    }
    Ok(path)
}
