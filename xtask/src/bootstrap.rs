//! `cargo xtask bootstrap`: installs every tool the project needs, idempotently, and says what it found.
//!
//! What goes where:
//! - Rust targets for the edge (wasm32) and the Lambda functions (aarch64), through rustup.
//! - A Python venv at `<repo>/.venv` with cargo-lambda, ziglang, moto, cfn-lint and schemathesis
//!   (API fuzzing from `openapi.json`), pinned.
//! - npm packages pinned by `package-lock.json` (wrangler, binaryen, axe-core for the console's
//!   accessibility check) in `<repo>/node_modules`.
//! - `wasm-bindgen-cli` and `worker-build` at the versions `Cargo.lock` resolves, each in its
//!   own versioned root under the tool directory (`$KEYWARD_TOOLS`, default
//!   `~/.cache/keyward/tools`), outside the clone so that every clone shares them; cargo-fuzz
//!   (pinned here) the same way, run on the nightly toolchain when rustup has one; geckodriver
//!   (pinned here, Firefox's WebDriver, not packaged by Debian) too.
//! - `wrk` (for `cargo xtask bench`), with apt-get when it is not on PATH.
//! - Debian's `chromium`, `chromium-driver` and `firefox-esr` (the console's browser test), the
//!   same way.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{cmd, output, run};

/// Rust targets: wasm32 for the edge Worker, aarch64 for the arm64 Lambda functions.
const TARGETS: &[&str] = &["wasm32-unknown-unknown", "aarch64-unknown-linux-gnu"];

/// The Python tools, pinned. Changing this list reinstalls them on the next bootstrap.
const PYTHON_PINS: &[&str] = &[
    "cargo-lambda==1.9.2",
    "ziglang==0.17.1",
    "moto[server]==5.2.5",
    "cfn-lint==1.58.0",
    "schemathesis==4.32.5",
];

/// cargo-fuzz for `fuzz/` (`cargo xtask fuzz`, and a short run inside `cargo xtask test`).
const CARGO_FUZZ_VERSION: &str = "0.13.1";
/// The release line to fall back to when [`CARGO_FUZZ_VERSION`] cannot be installed.
const CARGO_FUZZ_LINE: &str = "0.13";
/// geckodriver, the console's browser test's driver for Firefox (Debian does not package it;
/// crates.io has it).
const GECKODRIVER_VERSION: &str = "0.37.1";

/// Written into the venv once the pins above are installed.
const VENV_STAMP: &str = "keyward-pins.txt";
/// Written into node_modules after `npm ci`: a hash of the package-lock.json it installed.
const NPM_STAMP: &str = ".keyward-npm-stamp";

/// A Rust tool installed with `cargo install` into a root named after its crate and version.
#[derive(Debug, Clone)]
struct CargoTool {
    krate: &'static str,
    bin: &'static str,
    version: String,
    /// The minor-version range to fall back to when `version` is not on crates.io.
    fallback: Option<String>,
}

impl CargoTool {
    /// The tools whose versions follow `Cargo.lock`.
    fn all(repo: &Path) -> Result<Vec<CargoTool>> {
        let bindgen = lock_version(repo, "wasm-bindgen")?;
        let worker = lock_version(repo, "worker")?;
        let worker_minor = worker.rsplit_once('.').map(|(mm, _)| mm.to_string());
        Ok(vec![
            CargoTool {
                krate: "wasm-bindgen-cli",
                bin: "wasm-bindgen",
                version: bindgen,
                fallback: None,
            },
            // worker-build is released in step with the `worker` crate.
            CargoTool {
                krate: "worker-build",
                bin: "worker-build",
                version: worker,
                fallback: worker_minor,
            },
            CargoTool {
                krate: "cargo-fuzz",
                bin: "cargo-fuzz",
                version: CARGO_FUZZ_VERSION.to_owned(),
                fallback: Some(CARGO_FUZZ_LINE.to_owned()),
            },
            CargoTool {
                krate: "geckodriver",
                bin: "geckodriver",
                version: GECKODRIVER_VERSION.to_owned(),
                fallback: Some("0.37".to_owned()),
            },
        ])
    }

    fn exact_root(&self, tools: &Path) -> PathBuf {
        tools.join(format!("{}-{}", self.krate, self.version))
    }

    /// Where the newest release of the fallback range goes, e.g. `worker-build-0.8.x`.
    fn fallback_root(&self, tools: &Path) -> Option<PathBuf> {
        self.fallback
            .as_ref()
            .map(|mm| tools.join(format!("{}-{mm}.x", self.krate)))
    }

    /// The root holding an installed binary, preferring the exact version.
    fn installed_root(&self, tools: &Path) -> Option<PathBuf> {
        std::iter::once(self.exact_root(tools))
            .chain(self.fallback_root(tools))
            .find(|root| root.join("bin").join(self.bin).is_file())
    }

    /// The root to use in the environment: the installed one, or where it will be installed.
    fn root(&self, tools: &Path) -> PathBuf {
        self.installed_root(tools)
            .unwrap_or_else(|| self.exact_root(tools))
    }
}

pub use crate::paths::tools_dir;

/// The environment every later step needs: tools on PATH, tool paths for worker-build,
/// telemetry off, and the repo root for the test harness.
pub fn tool_env(repo: &Path) -> Result<Vec<(String, String)>> {
    let tools = tools_dir()?;
    let venv = repo.join(".venv");
    let node_bin = repo.join("node_modules/.bin");
    let cargo_tools = CargoTool::all(repo)?;

    let mut path: Vec<PathBuf> = vec![venv.join("bin"), node_bin.clone()];
    path.extend(cargo_tools.iter().map(|t| t.root(&tools).join("bin")));
    if let Some(old) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&old));
    }
    let path = std::env::join_paths(path).context("building PATH")?;

    let bindgen = cargo_tools
        .iter()
        .find(|t| t.krate == "wasm-bindgen-cli")
        .expect("wasm-bindgen-cli is one of the cargo tools");
    let show = |p: PathBuf| p.to_string_lossy().into_owned();
    let pairs = [
        ("PATH", path.to_string_lossy().into_owned()),
        ("VIRTUAL_ENV", show(venv)),
        (
            "WASM_BINDGEN_BIN",
            show(bindgen.root(&tools).join("bin/wasm-bindgen")),
        ),
        ("WASM_OPT_BIN", show(node_bin.join("wasm-opt"))),
        ("ESBUILD_BIN", show(node_bin.join("esbuild"))),
        ("WRANGLER_SEND_METRICS", "false".into()),
        ("CLOUDFLARE_CF_FETCH_ENABLED", "false".into()),
        ("WRANGLER_HIDE_BANNER", "true".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("KEYWARD_REPO", show(repo.to_path_buf())),
        ("KEYWARD_TOOLS", show(tools)),
    ];
    Ok(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Installs or confirms everything, printing one line per thing.
pub fn bootstrap(repo: &Path) -> Result<()> {
    let start = Instant::now();
    rust_targets(repo).context("adding Rust targets with rustup")?;
    python_venv(repo).context("setting up the Python venv at .venv")?;
    npm_packages(repo).context("installing npm packages with `npm ci`")?;
    let tools = tools_dir()?;
    for tool in CargoTool::all(repo)? {
        cargo_tool(&tools, &tool)
            .with_context(|| format!("installing {} {}", tool.krate, tool.version))?;
    }
    nightly(repo)?;
    wrk();
    chromium();
    firefox();
    println!(
        "bootstrap: everything in place ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reports the toolchain the fuzz targets build with: nightly if rustup has one, else the pinned
/// toolchain with `RUSTC_BOOTSTRAP=1` (no download: rustup's servers may be out of reach).
fn nightly(repo: &Path) -> Result<()> {
    if crate::fuzz::has_nightly(repo)? {
        println!("fuzz toolchain: found nightly");
    } else {
        println!(
            "fuzz toolchain: no nightly, fuzzing uses the pinned toolchain with RUSTC_BOOTSTRAP=1"
        );
    }
    Ok(())
}

/// Installs `wrk` (only `cargo xtask bench` uses it) with apt-get when it is not on PATH. Not
/// fatal: without root or apt the rest still works, and the bench says what is missing.
fn wrk() {
    apt_tool("wrk", &["wrk"], has_wrk, "`cargo xtask bench` needs it");
}

/// Installs Debian's `chromium` and `chromium-driver` (the console's browser test drives them
/// through WebDriver) with apt-get when either is missing. Not fatal, like [`wrk`]: the browser
/// test says what is missing.
fn chromium() {
    apt_tool(
        "chromium",
        &["chromium", "chromium-driver"],
        has_chromium,
        "the console's browser test (tests/tests/console.rs) needs them",
    );
}

/// Installs Debian's `firefox-esr` (the console's browser test runs in it too, through the
/// geckodriver above) with apt-get when it is missing. Not fatal, like [`chromium`].
fn firefox() {
    apt_tool(
        "firefox",
        &["firefox-esr"],
        has_firefox,
        "the console's browser test (tests/tests/console.rs) needs it",
    );
}

/// Whether `firefox-esr` runs.
pub fn has_firefox() -> bool {
    std::process::Command::new("firefox-esr")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `chromium` and `chromedriver` both run.
pub fn has_chromium() -> bool {
    ["chromium", "chromedriver"].iter().all(|program| {
        std::process::Command::new(program)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `apt-get install -y packages` (after `apt-get update` if the first try fails) unless
/// `present()` already holds; prints what it found or did, and a warning naming `why` on failure.
fn apt_tool(label: &str, packages: &[&str], present: fn() -> bool, why: &str) {
    if present() {
        println!("{label}: found");
        return;
    }
    println!("{label}: installing {} with apt-get", packages.join(" "));
    let apt = |args: &[&str]| {
        std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install: Vec<&str> = ["install", "-y"].iter().chain(packages).copied().collect();
    let installed = apt(&install) || (apt(&["update"]) && apt(&install));
    if installed && present() {
        println!("{label}: installed");
    } else {
        println!(
            "{label}: WARNING could not install it with apt-get; {why} (`apt-get install -y {}`)",
            packages.join(" ")
        );
    }
}

/// Whether `wrk` runs.
pub fn has_wrk() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

fn rust_targets(repo: &Path) -> Result<()> {
    // Run in the repo so rustup applies rust-toolchain.toml's channel.
    let installed = output(cmd("rustup", repo, &[]).args(["target", "list", "--installed"]))?;
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        println!("rust targets: found {}", TARGETS.join(", "));
        return Ok(());
    }
    println!("rust targets: adding {}", missing.join(", "));
    run(cmd("rustup", repo, &[])
        .args(["target", "add"])
        .args(&missing))
}

fn python_venv(repo: &Path) -> Result<()> {
    let venv = repo.join(".venv");
    let python = venv.join("bin/python");
    let pins = PYTHON_PINS.join("\n") + "\n";
    let stamp = venv.join(VENV_STAMP);

    if !python.is_file() {
        let base = ["python3.11", "python3"]
            .into_iter()
            .find(|p| {
                cmd(p, repo, &[])
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .context("no python3.11 or python3 on PATH: install Python 3.11 with venv")?;
        println!("python venv: creating .venv with {base}");
        run(cmd(base, repo, &[]).args(["-m", "venv"]).arg(&venv))?;
    }

    if fs::read_to_string(&stamp).is_ok_and(|s| s == pins) {
        println!("python venv: found .venv with {}", PYTHON_PINS.join(" "));
        return Ok(());
    }

    // No stamp (or different pins): accept what is there if it already matches the pins.
    let freeze = output(cmd(&python, repo, &[]).args(["-m", "pip", "freeze"]))?;
    let installed: Vec<String> = freeze.lines().map(normalize_requirement).collect();
    let missing: Vec<&str> = PYTHON_PINS
        .iter()
        .copied()
        .filter(|pin| !installed.contains(&normalize_requirement(pin)))
        .collect();
    if missing.is_empty() {
        println!(
            "python venv: found .venv with {} (pip freeze)",
            PYTHON_PINS.join(" ")
        );
    } else {
        println!("python venv: installing {}", missing.join(" "));
        run(cmd(&python, repo, &[])
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(PYTHON_PINS))?;
    }
    fs::write(&stamp, pins).with_context(|| format!("writing {}", stamp.display()))
}

/// `Moto[server]==5.2.5` and `moto==5.2.5` both become `moto==5.2.5`.
fn normalize_requirement(req: &str) -> String {
    let (name, version) = req.split_once("==").unwrap_or((req, ""));
    let name = name.split('[').next().unwrap_or(name);
    format!(
        "{}=={}",
        name.trim().to_lowercase().replace(['_', '.'], "-"),
        version.trim()
    )
}

fn npm_packages(repo: &Path) -> Result<()> {
    let lock = repo.join("package-lock.json");
    let lock_text = fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let want = format!("{:016x}\n", fnv1a(&lock_text));
    let modules = repo.join("node_modules");
    let stamp = modules.join(NPM_STAMP);
    let complete = modules.join(".bin/wrangler").exists()
        && modules.join(".bin/wasm-opt").exists()
        && modules.join("axe-core/axe.min.js").exists();

    let up_to_date = complete
        && match fs::read_to_string(&stamp) {
            Ok(have) => have == want,
            // No stamp yet: trust an install npm recorded after the lockfile last changed.
            Err(_) => is_newer(&modules.join(".package-lock.json"), &lock),
        };
    if !up_to_date {
        println!("npm: running npm ci (node_modules missing or package-lock.json changed)");
        run(cmd("npm", repo, &[]).args(["ci", "--no-audit", "--no-fund"]))?;
    }
    fs::write(&stamp, want).with_context(|| format!("writing {}", stamp.display()))?;
    println!(
        "npm: found wrangler {}, binaryen {}, axe-core {} in node_modules",
        npm_version(repo, "wrangler"),
        npm_version(repo, "binaryen"),
        npm_version(repo, "axe-core")
    );
    Ok(())
}

fn is_newer(a: &Path, b: &Path) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((mtime(a), mtime(b)), (Some(a), Some(b)) if a >= b)
}

fn npm_version(repo: &Path, package: &str) -> String {
    let manifest = repo.join("node_modules").join(package).join("package.json");
    fs::read_to_string(manifest)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// FNV-1a: a stable content hash for the stamp, with no extra dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cargo_tool(tools: &Path, tool: &CargoTool) -> Result<()> {
    if let Some(root) = tool.installed_root(tools) {
        println!(
            "{}: found {} in {}",
            tool.krate,
            tool.version,
            root.display()
        );
        return Ok(());
    }
    fs::create_dir_all(tools).with_context(|| format!("creating {}", tools.display()))?;

    // One install per tool version at a time, across clones and concurrent bootstraps.
    let lock_path = tools.join(format!(".{}-{}.lock", tool.krate, tool.version));
    let lock = fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        println!(
            "{}: another bootstrap is installing {}, waiting for it",
            tool.krate, tool.version
        );
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
    }
    if let Some(root) = tool.installed_root(tools) {
        println!(
            "{}: found {} in {}",
            tool.krate,
            tool.version,
            root.display()
        );
        return Ok(());
    }

    let root = tool.exact_root(tools);
    println!(
        "{}: installing {} into {} (a few minutes, once per version)",
        tool.krate,
        tool.version,
        root.display()
    );
    // Outside the repo, so the workspace's .cargo/config.toml does not apply.
    let exact = run(cmd("cargo", tools, &[])
        .args(["install", tool.krate, "--version", &tool.version, "--root"])
        .arg(&root));
    match (exact, tool.fallback_root(tools), &tool.fallback) {
        (Ok(()), _, _) => Ok(()),
        (Err(err), Some(fallback_root), Some(range)) => {
            println!(
                "{}: {} could not be installed ({err:#}); trying the newest {range}.x",
                tool.krate, tool.version
            );
            run(cmd("cargo", tools, &[])
                .args(["install", tool.krate, "--version", &format!("~{range}")])
                .arg("--root")
                .arg(&fallback_root))
        }
        (Err(err), _, _) => Err(err),
    }
}

/// The version `Cargo.lock` resolves for `package` (the first entry if there are several).
fn lock_version(repo: &Path, package: &str) -> Result<String> {
    let path = repo.join("Cargo.lock");
    let lock = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_string());
        }
    }
    bail!("Cargo.lock has no `{package}` package: is the edge crate in the workspace?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_compare_without_extras_or_case() {
        assert_eq!(
            normalize_requirement("moto[server]==5.2.5"),
            normalize_requirement("moto==5.2.5")
        );
        assert_eq!(
            normalize_requirement("cfn_lint==1.58.0"),
            "cfn-lint==1.58.0"
        );
        assert_ne!(
            normalize_requirement("cfn-lint==1.58.1"),
            normalize_requirement("cfn-lint==1.58.0")
        );
    }

    #[test]
    fn the_lockfile_resolves_the_edge_tool_versions() {
        let repo = crate::util::repo_root();
        assert!(lock_version(&repo, "wasm-bindgen").is_ok());
        assert!(lock_version(&repo, "worker").is_ok());
        assert!(lock_version(&repo, "no-such-package-here").is_err());
    }
}
