//! `keyward-dev`: the whole local stack for a person to try, started by `cargo xtask dev`.
//!
//! Run: `cargo xtask dev` (bootstraps tools and builds the edge first), or directly
//! `PATH=$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH cargo run -p keyward-tests --bin keyward-dev
//! -- [--demo] [--exit]`. `--demo` walks create → call through the edge → revoke → rejected;
//! `--exit` stops after the demo. Ctrl-C (or SIGTERM) stops every process it started.
//!
//! Once every component answers it writes `target/keyward/dev.json` (`control_plane_url`,
//! `edge_url`, `origin_url`, `workspace`, `admin_token`, `jwt`, plus `lambda_url`,
//! `dynamodb_url`, `table`, `sync_secret` for tooling such as `cargo xtask backfill`, and
//! `console_url`, the web console signed in with the admin token), and
//! removes it on shutdown.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use keyward_tests::process::repo_root;
use keyward_tests::stack::{Stack, StackOptions};
use serde_json::{Value, json};

/// The workspace the dev stack's admin token manages.
const WORKSPACE: &str = "dev";
/// The admin token's lifetime: long enough for a working week.
const TOKEN_VALID_S: i64 = 7 * 24 * 3600;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: keyward-dev [--demo] [--exit]");
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(bad) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "--demo" | "--exit"))
    {
        eprintln!("keyward-dev: unknown argument {bad:?}; usage: keyward-dev [--demo] [--exit]");
        return std::process::ExitCode::from(2);
    }
    let demo = args.iter().any(|a| a == "--demo");
    let exit = args.iter().any(|a| a == "--exit");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyward-dev: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(demo, exit));
    // Launch steps still blocked (a port wait) hold process handles that stop on drop.
    runtime.shutdown_timeout(Duration::from_secs(15));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyward-dev: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn run(demo: bool, exit: bool) -> Result<()> {
    let root = repo_root();
    let dev_dir = root.join("target/keyward/dev");
    let dev_json = root.join("target/keyward/dev.json");
    // A fresh table every run, so the edge's state must start fresh too.
    let _ = std::fs::remove_file(&dev_json);
    let _ = std::fs::remove_dir_all(&dev_dir);
    let started = Instant::now();
    println!("keyward-dev: starting moto, the functions, the router, the edge and the origin");
    println!(
        "  (the first run compiles the functions; logs under {})",
        dev_dir.display()
    );
    let opts = StackOptions {
        dir: Some(dev_dir),
        ..StackOptions::default()
    };
    // Installed before starting, so Ctrl-C during start-up also stops what already runs.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let stack = tokio::select! {
        stack = Stack::start(opts) => stack.context("starting the local stack")?,
        () = &mut signal => {
            println!("\nkeyward-dev: interrupted during start-up; stopping");
            return Ok(());
        }
    };
    let token = stack.admin_token(WORKSPACE, "dev-admin", TOKEN_VALID_S)?;
    let jwt = stack.control_plane().jwt();
    let info = json!({
        "control_plane_url": stack.control_plane_url(),
        "edge_url": stack.edge_url(),
        "origin_url": stack.origin_url(),
        "workspace": WORKSPACE,
        "admin_token": token,
        "jwt": {
            "alg": "HS256",
            "secret": jwt.secret,
            "issuer": jwt.issuer,
            "audience": jwt.audience,
        },
        "lambda_url": stack.lambda_url(),
        "dynamodb_url": stack.moto_url(),
        "table": stack.table(),
        "sync_secret": stack.sync_secret(),
        "console_url": console_link(&stack.control_plane_url(), &token),
    });
    write_dev_json(&dev_json, &info)?;
    print_banner(&stack, &token, &dev_json, started.elapsed());

    let result = if demo {
        tokio::select! {
            r = run_demo(&stack, &token) => r,
            () = &mut signal => Ok(()),
        }
    } else {
        Ok(())
    };
    if let Err(e) = &result {
        eprintln!("keyward-dev: the demo failed: {e:#}");
    }
    if !(demo && exit) {
        println!("\nkeyward-dev: running; Ctrl-C stops everything");
        (&mut signal).await;
        println!("\nkeyward-dev: stopping");
    }
    let _ = std::fs::remove_file(&dev_json);
    drop(stack);
    println!("keyward-dev: stopped; {} removed", dev_json.display());
    result
}

fn write_dev_json(path: &Path, info: &Value) -> Result<()> {
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(info)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn print_banner(stack: &Stack, token: &str, dev_json: &Path, took: Duration) {
    let cp = stack.control_plane_url();
    println!(
        "\nKeyward is running (started in {:.1} s):",
        took.as_secs_f64()
    );
    println!("  control plane  {cp}/v1/workspaces/{WORKSPACE}/keys");
    println!("  web console    {}", console_link(&cp, token));
    println!("  edge           {}", stack.edge_url());
    println!("  echo origin    {}", stack.origin_url());
    println!("  workspace      {WORKSPACE}");
    println!("  admin token    {token}");
    println!("  details        {}", dev_json.display());
    println!("\nTry it:");
    println!("  export TOKEN='{token}'");
    println!(
        "  curl -s -X POST {cp}/v1/workspaces/{WORKSPACE}/keys -H \"Authorization: Bearer $TOKEN\" \\\n       -H 'content-type: application/json' -d '{{\"name\": \"my first key\"}}'"
    );
    println!(
        "  curl -s {}/hello -H \"Authorization: Bearer <the key from above>\"",
        stack.edge_url()
    );
}

/// The console, signed in: the token rides in the URL fragment, which the browser never sends
/// to a server; the page moves it to `sessionStorage` and clears it from the address bar.
fn console_link(control_plane: &str, token: &str) -> String {
    format!("{control_plane}/console/#token={token}&workspace={WORKSPACE}")
}

/// Prints one demo step with the time since the demo began.
fn step(t0: Instant, text: &str) {
    println!("[{:>6.2} s] {text}", t0.elapsed().as_secs_f64());
}

async fn run_demo(stack: &Stack, token: &str) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let cp = stack.control_plane_url();
    let edge = stack.edge_url();
    println!("\n--- demo: create → call through the edge → revoke → rejected ---");
    let t0 = Instant::now();
    step(t0, &format!("POST {cp}/v1/workspaces/{WORKSPACE}/keys"));
    let created: Value = http
        .post(format!("{cp}/v1/workspaces/{WORKSPACE}/keys"))
        .bearer_auth(token)
        .json(&json!({"name": "demo key", "scopes": ["read"], "owner_id": "customer_42"}))
        .send()
        .await?
        .json()
        .await?;
    let (Some(id), Some(key)) = (created["id"].as_str(), created["key"].as_str()) else {
        bail!("create answered {created}");
    };
    step(
        t0,
        &format!(
            "created {id} (display prefix {}); the secret is shown once: {key}",
            created["key_prefix"]
        ),
    );

    step(
        t0,
        &format!("GET {edge}/hello with the key, until the edge knows it"),
    );
    let t_create = Instant::now();
    let echoed = loop {
        let resp = http
            .get(format!("{edge}/hello?from=demo"))
            .bearer_auth(key)
            .send()
            .await?;
        if resp.status() == 200 {
            break resp.json::<Value>().await?;
        }
        if t_create.elapsed() > Duration::from_secs(15) {
            bail!("the edge still answers {} after 15 s", resp.status());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    step(
        t0,
        &format!(
            "200 after {} ms: the origin saw {} {} with identity headers:",
            t_create.elapsed().as_millis(),
            echoed["method"].as_str().unwrap_or("?"),
            echoed["path"].as_str().unwrap_or("?"),
        ),
    );
    if let Some(headers) = echoed["headers"].as_object() {
        for (k, v) in headers.iter().filter(|(k, _)| k.starts_with("x-keyward-")) {
            println!("             {k}: {}", v.as_str().unwrap_or_default());
        }
        let leaked = headers
            .values()
            .any(|v| v.as_str().is_some_and(|v| v.contains(key)));
        println!(
            "             (the key itself {} forwarded)",
            if leaked { "WAS" } else { "was not" }
        );
    }

    step(
        t0,
        &format!("DELETE {cp}/v1/workspaces/{WORKSPACE}/keys/{id}"),
    );
    let revoked = http
        .delete(format!("{cp}/v1/workspaces/{WORKSPACE}/keys/{id}"))
        .bearer_auth(token)
        .send()
        .await?;
    step(t0, &format!("revoke answered {}", revoked.status()));
    let t_revoke = Instant::now();
    let refused = loop {
        let resp = http
            .get(format!("{edge}/hello"))
            .bearer_auth(key)
            .send()
            .await?;
        if resp.status() == 401 {
            break resp.json::<Value>().await.unwrap_or(Value::Null);
        }
        if t_revoke.elapsed() > Duration::from_secs(15) {
            bail!("the edge still answers {} after 15 s", resp.status());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    step(
        t0,
        &format!(
            "401 after {} ms: {} ({})",
            t_revoke.elapsed().as_millis(),
            refused["code"].as_str().unwrap_or("?"),
            refused["detail"].as_str().unwrap_or(""),
        ),
    );
    println!("--- demo done ---");
    Ok(())
}
