//! The edge under `wrangler dev` (workerd, local KV, local Durable Objects) on free ports, with
//! an isolated state directory, plus a signed client for its `/_keyward/sync` route.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use keyward_tests::edge::{EdgeBundle, EdgeOptions, EdgeServer};
//! let edge = EdgeServer::start(EdgeOptions {
//!     bundle: EdgeBundle::TestHooks,
//!     origin_url: "http://127.0.0.1:9000".into(),
//!     ..EdgeOptions::default()
//! })?;
//! println!("edge at {}", edge.url());
//! # Ok(()) }
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use keyward_common::sync::{SIGNATURE_HEADER, SyncBatch, SyncResponse, TIMESTAMP_HEADER, sign};

use crate::paths::{repo_root, tools_dir};
use crate::process::{Managed, free_port, tail, wait_for_port};

/// Which build of the Worker to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdgeBundle {
    /// `edge/build/` from `cargo xtask build-edge`: what ships. Must be built beforehand.
    #[default]
    Release,
    /// `edge/build-test/`: the same code with the `test-hooks` feature (an
    /// `X-Keyward-Kv-Reads` response header), built here on demand by [`build_test_bundle`].
    TestHooks,
}

/// How to start the edge. Every value becomes a `--var` of `wrangler dev`.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Which build to run.
    pub bundle: EdgeBundle,
    /// Where verified requests are forwarded (`ORIGIN_URL`).
    pub origin_url: String,
    /// Route → scope rules (`ROUTE_SCOPES`), `;`-separated.
    pub route_scopes: String,
    /// What unmatched paths need (`ROUTE_DEFAULT`: `any_key` or `deny`).
    pub route_default: String,
    /// Signs forwarded requests when not empty (`ORIGIN_SECRET`).
    pub origin_secret: String,
    /// Secret of signed sync batches (`SYNC_SECRET`).
    pub sync_secret: String,
    /// Secret the edge signs usage batches with (`USAGE_SECRET`).
    pub usage_secret: String,
    /// The control plane's usage endpoint (`USAGE_URL`); empty turns reporting off.
    pub usage_url: String,
    /// Any other vars (`CACHE_TTL_S`, ...).
    pub vars: Vec<(String, String)>,
    /// Where state and the log go; a fresh `target/keyward/test-<unique>/edge` when `None`.
    pub state_dir: Option<PathBuf>,
    /// The port to serve on; a free one when `None`.
    pub port: Option<u16>,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            bundle: EdgeBundle::Release,
            origin_url: "http://127.0.0.1:9".into(),
            route_scopes: String::new(),
            route_default: "any_key".into(),
            origin_secret: String::new(),
            sync_secret: "local-sync-secret".into(),
            usage_secret: "local-usage-secret".into(),
            usage_url: String::new(),
            vars: Vec::new(),
            state_dir: None,
            port: None,
        }
    }
}

/// A running `wrangler dev` serving the edge; stopped (with workerd) when dropped, or when the
/// process that started it exits, whichever comes first.
#[derive(Debug)]
pub struct EdgeServer {
    process: Managed,
    port: u16,
    state_dir: PathBuf,
    sync_secret: String,
}

impl EdgeServer {
    /// Starts `wrangler dev --local` in `edge/` and waits until `/_keyward/health` answers.
    ///
    /// # Errors
    /// When the bundle is missing (or fails to build), wrangler fails to start, or the edge does
    /// not become healthy within two minutes.
    pub fn start(opts: EdgeOptions) -> Result<Self> {
        let repo = repo_root();
        let edge_dir = repo.join("edge");
        let script = match opts.bundle {
            EdgeBundle::Release => {
                let shim = edge_dir.join("build/worker/shim.mjs");
                if !shim.is_file() {
                    bail!(
                        "{} is missing: run `cargo xtask build-edge` first",
                        shim.display()
                    );
                }
                shim
            }
            EdgeBundle::TestHooks => build_test_bundle()?,
        };
        let state_dir = match opts.state_dir {
            Some(d) => d,
            None => unique_dir(&repo)?.join("edge"),
        };
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let port = match opts.port {
            Some(p) => p,
            None => free_port()?,
        };
        let inspector = free_port()?;

        let mut vars = vec![
            ("ORIGIN_URL".to_owned(), opts.origin_url),
            ("ROUTE_SCOPES".to_owned(), opts.route_scopes),
            ("ROUTE_DEFAULT".to_owned(), opts.route_default),
            ("ORIGIN_SECRET".to_owned(), opts.origin_secret),
            ("SYNC_SECRET".to_owned(), opts.sync_secret.clone()),
            ("USAGE_SECRET".to_owned(), opts.usage_secret.clone()),
            ("USAGE_URL".to_owned(), opts.usage_url),
        ];
        vars.extend(opts.vars);

        let wrangler = repo.join("node_modules/.bin/wrangler");
        // The watchdog ends the whole process group (wrangler and its workerd) once the process
        // that started it is gone, even if that process never runs destructors (a test binary's
        // statics are never dropped).
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(
                r#"parent=$1; shift
(while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM 0) &
exec "$@""#,
            )
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&wrangler)
            .arg("dev")
            .arg(&script)
            .args([
                "--local",
                "--ip",
                "127.0.0.1",
                "--show-interactive-dev-session=false",
            ])
            .args(["--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--persist-to")
            .arg(state_dir.join("state"))
            .current_dir(&edge_dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("WRANGLER_LOG_PATH", state_dir.join("wrangler-logs"))
            // Each edge its own dev registry: in the shared one, every `wrangler dev` of the
            // same worker name sees each new one start and restarts its workerd ("Your worker
            // restarted mid-request"), losing its isolates' state (leases of allowance).
            .env("WRANGLER_REGISTRY_PATH", state_dir.join("registry"));
        for (k, v) in &vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        let mut process = Managed::spawn("wrangler dev", cmd, &state_dir.join("wrangler.log"))?;
        wait_for_port(&mut process, port, Duration::from_secs(120))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match http_get(port, "/_keyward/health") {
                Ok((200, _)) => break,
                // A misconfigured edge names its problem (a var, a route rule) and never starts.
                Ok((503, body)) => bail!("the edge refused to start: {body}"),
                _ => {}
            }
            process.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "the edge on port {port} never became healthy; last log lines:\n{}",
                    tail(process.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(Self {
            process,
            port,
            state_dir,
            sync_secret: opts.sync_secret,
        })
    }

    /// The edge's base URL, `http://127.0.0.1:{port}`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it serves on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process group of `wrangler dev` and its workerd.
    #[must_use]
    pub fn process_group(&self) -> u32 {
        self.process.pid()
    }

    /// Where its KV and Durable Object state and its log live.
    #[must_use]
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// wrangler's output.
    #[must_use]
    pub fn log(&self) -> &Path {
        self.process.log()
    }

    /// Sends `batch` to `/_keyward/sync`, signed now with the edge's secret.
    ///
    /// # Errors
    /// When the request fails or the edge does not answer 200 with a [`SyncResponse`].
    pub async fn sync(&self, batch: &SyncBatch) -> Result<SyncResponse> {
        let body = serde_json::to_vec(batch)?;
        // Like the `sync` function's client, retry what the runtime reports as transient: the
        // local workerd sometimes answers 503 "Your worker restarted mid-request" while another
        // test streams a large body through the same isolate. Sync writes are idempotent.
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = self
                .post_sync(&body, unix_now(), self.sync_secret.as_bytes())
                .await?;
            let status = resp.status();
            let text = resp.text().await?;
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && text.contains("restarted mid-request")
                && tries < 3
            {
                eprintln!("edge: sync answered {status} ({text}); retrying");
                continue;
            }
            if status != reqwest::StatusCode::OK {
                bail!("sync answered {status}: {text}");
            }
            return serde_json::from_str(&text).with_context(|| format!("sync answered {text}"));
        }
    }

    /// Posts `body` to `/_keyward/sync` signed with `secret` at `timestamp`: for tests of what
    /// the edge refuses.
    ///
    /// # Errors
    /// When the request cannot be sent.
    pub async fn post_sync(
        &self,
        body: &[u8],
        timestamp: i64,
        secret: &[u8],
    ) -> Result<reqwest::Response> {
        reqwest::Client::new()
            .post(format!("{}/_keyward/sync", self.url()))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(secret, timestamp, body))
            .body(body.to_vec())
            .send()
            .await
            .context("posting to /_keyward/sync")
    }
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A fresh directory `target/keyward/test-<pid>-<nanos>` for one test run's state.
///
/// # Errors
/// When it cannot be created.
pub fn unique_dir(repo: &Path) -> Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = repo
        .join("target/keyward")
        .join(format!("test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Builds the `test-hooks` Worker into `edge/build-test/` and returns its `shim.mjs`.
///
/// A debug build without wasm-opt (fast to build; size does not matter in tests) in its own
/// target directory, `target/keyward/edge-test-target`, so it never waits on, or invalidates,
/// the release build. Uses `WASM_BINDGEN_BIN`/`ESBUILD_BIN` from the environment when set
/// (`cargo xtask env`), else the pinned tools under `KEYWARD_TOOLS` and `node_modules/.bin`.
///
/// # Errors
/// When a tool is missing or the build fails.
pub fn build_test_bundle() -> Result<PathBuf> {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(shim) = built.as_ref() {
        return Ok(shim.clone());
    }
    let repo = repo_root();
    let tools = tools_dir()?;
    let worker_build = find_tool(&tools, "worker-build-", "worker-build")?;
    let bindgen = match std::env::var_os("WASM_BINDGEN_BIN") {
        Some(p) => PathBuf::from(p),
        None => find_tool(&tools, "wasm-bindgen-cli-", "wasm-bindgen")?,
    };
    let esbuild = std::env::var_os("ESBUILD_BIN")
        .map_or_else(|| repo.join("node_modules/.bin/esbuild"), PathBuf::from);
    let log = repo.join("target/keyward/edge-test-build.log");
    let mut cmd = Command::new(&worker_build);
    cmd.args([
        "--dev",
        "--no-opt",
        "--out-dir",
        "build-test",
        "--features",
        "test-hooks",
    ])
    .current_dir(repo.join("edge"))
    .env("WASM_BINDGEN_BIN", bindgen)
    .env("ESBUILD_BIN", esbuild)
    .env(
        "CARGO_TARGET_DIR",
        repo.join("target/keyward/edge-test-target"),
    );
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = cmd
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("starting {}", worker_build.display()))?;
    let shim = repo.join("edge/build-test/worker/shim.mjs");
    if !status.success() || !shim.is_file() {
        bail!(
            "building the test-hooks edge bundle failed ({status}); last log lines:\n{}",
            tail(&log, 30)
        );
    }
    // The same entry `cargo xtask build-edge` installs over worker-build's shim.
    std::fs::copy(repo.join("edge/js/entry.mjs"), &shim)
        .with_context(|| format!("writing {}", shim.display()))?;
    *built = Some(shim.clone());
    Ok(shim)
}

// `{tools}/{prefix}{version}/bin/{bin}`, the newest version found.
fn find_tool(tools: &Path, prefix: &str, bin: &str) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(tools)
        .with_context(|| format!("listing {} (run `cargo xtask bootstrap`)", tools.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|p| p.join("bin").join(bin))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no {bin} under {} (run `cargo xtask bootstrap`)",
            tools.display()
        )
    })
}

// A plain blocking GET (status and body), so waiting for health needs no async runtime.
fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("not an HTTP response")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// Whether `resp` is wrangler dev's own 503 "Your worker restarted mid-request" (sent with
/// `Retry-After: 0`; the Worker never answers 503 with it): its proxy's hop to the Worker lost a
/// kept-alive connection, and the request never reached the Worker
/// (cloudflare/workers-sdk#14641, about 5 s keep-alive timeouts meeting a steady request
/// cadence). Only GET and HEAD are retried by wrangler itself.
#[must_use]
pub fn is_dev_proxy_restart(resp: &reqwest::Response) -> bool {
    resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
        && resp
            .headers()
            .get("retry-after")
            .is_some_and(|v| v.as_bytes() == b"0")
        && !resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// Requests [`SendToEdge::send_to_edge`] sent again after wrangler dev's own 503, in this
/// process: the soak reports it.
pub static DEV_PROXY_RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `send` for requests to the local edge: sent again (up to 4 times in all) when wrangler dev's
/// proxy answers its own 503 ([`is_dev_proxy_restart`]) — a fault of the local dev server, not
/// of the Worker, which a test must not read as the Worker's answer. A request whose body
/// cannot be cloned (a stream) is sent once.
pub trait SendToEdge {
    /// Sends the request, again after wrangler dev's own 503.
    fn send_to_edge(self) -> impl Future<Output = reqwest::Result<reqwest::Response>> + Send;
}

impl SendToEdge for reqwest::RequestBuilder {
    async fn send_to_edge(self) -> reqwest::Result<reqwest::Response> {
        let mut tries = 0;
        loop {
            tries += 1;
            let Some(attempt) = self.try_clone() else {
                return self.send().await;
            };
            let resp = attempt.send().await?;
            if tries < 4 && is_dev_proxy_restart(&resp) {
                DEV_PROXY_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                eprintln!(
                    "edge: wrangler dev's proxy lost its connection to the Worker (its 503 \
                     \"restarted mid-request\"); sending again"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            return Ok(resp);
        }
    }
}
