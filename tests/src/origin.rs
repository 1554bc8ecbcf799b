//! The echo origin behind the edge: answers every request with JSON `{method, path, query,
//! headers, body}`, so tests (and `cargo xtask dev` users) can see exactly what the edge forwarded.
//!
//! A deliberately tiny HTTP/1.1 server on `std::net`, one thread per connection, one request per
//! connection (`Connection: close`): no runtime, so it outlives any one test's tokio runtime.
//! It also remembers what it received ([`EchoOrigin::received`]), so it can stand in for the
//! control plane's usage endpoint in edge tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

/// Longest request body echoed back; longer bodies are read and cut.
const MAX_BODY: usize = 1 << 20;
/// Most requests remembered for [`EchoOrigin::received`]; older ones are forgotten.
const MAX_REMEMBERED: usize = 10_000;

type Log = Arc<Mutex<Vec<serde_json::Value>>>;

/// A running echo origin on `127.0.0.1`; stops accepting when dropped.
#[derive(Debug)]
pub struct EchoOrigin {
    port: u16,
    stop: Arc<AtomicBool>,
    log: Log,
}

impl EchoOrigin {
    /// Starts the origin on an OS-chosen port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start() -> Result<Self> {
        Self::start_on(0)
    }

    /// Starts the origin on `port` (0 lets the OS choose).
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub fn start_on(port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding the echo origin to port {port}"))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let log: Log = Arc::default();
        let conn_log = Arc::clone(&log);
        thread::Builder::new()
            .name(format!("echo-origin-{port}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(stream) = conn {
                        let log = Arc::clone(&conn_log);
                        thread::spawn(move || {
                            let _ = serve(stream, &log);
                        });
                    }
                }
            })?;
        Ok(Self { port, stop, log })
    }

    /// The echo of every request received so far, oldest first (the last 10 000).
    #[must_use]
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its base URL, `http://127.0.0.1:{port}`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for EchoOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, log: &Log) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let (path, query) = target
        .split_once('?')
        .map_or((target.clone(), String::new()), |(p, q)| {
            (p.to_owned(), q.to_owned())
        });

    // Header names are case-insensitive: echo them lowercased; repeated headers are joined.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = h.trim_end().split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_owned();
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
    }
    let body = read_body(&mut reader, &headers)?;

    let echo = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let payload = echo.to_string();
    {
        let mut log = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() >= MAX_REMEMBERED {
            log.remove(0);
        }
        log.push(echo);
    }
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    )?;
    out.flush()?;
    Ok(())
}

fn read_body(reader: &mut impl BufRead, headers: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        reader.take(len as u64).read_to_end(&mut body)?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2]; // data + CRLF
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    body.truncate(MAX_BODY);
    Ok(body)
}
