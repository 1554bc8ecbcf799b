//! `cargo xtask backfill`: rebuilds the running dev stack's edge cache from its table.
//!
//! Invokes the `backfill` Lambda function of the stack that `cargo xtask dev` runs (through
//! `cargo lambda watch`'s invoke API, URL from `target/keyward/dev.json`): the same function and
//! event as production's `aws lambda invoke --function-name <BackfillFunctionName> out.json`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub fn backfill(repo: &Path) -> Result<()> {
    let dev_json = repo.join("target/keyward/dev.json");
    let text = std::fs::read_to_string(&dev_json).with_context(|| {
        format!(
            "reading {} (is `cargo xtask dev` running?)",
            dev_json.display()
        )
    })?;
    let info: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", dev_json.display()))?;
    let lambda_url = info["lambda_url"]
        .as_str()
        .context("dev.json has no lambda_url; restart `cargo xtask dev`")?;
    let authority = lambda_url
        .strip_prefix("http://")
        .context("lambda_url must be http://host:port")?
        .trim_end_matches('/');
    println!(
        "==> backfill: invoking `backfill` at {lambda_url} (table {}, edge {})",
        info["table"].as_str().unwrap_or("?"),
        info["edge_url"].as_str().unwrap_or("?")
    );
    let started = Instant::now();
    let (status, body) = post(
        authority,
        "/2015-03-31/functions/backfill/invocations",
        "{}",
    )?;
    if status != 200 {
        bail!("backfill answered HTTP {status}: {body}");
    }
    let report: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
    if report.get("errorMessage").is_some() {
        bail!("backfill failed: {report}");
    }
    println!(
        "==> backfill done in {:.1} s: {report}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A plain HTTP/1.0 POST (no chunked answers), so xtask needs no HTTP client crate.
fn post(authority: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(900)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).context("reading the answer")?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("not an HTTP answer")?;
    Ok((status, rest.to_owned()))
}
