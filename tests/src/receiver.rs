//! A tiny HTTP receiver for webhook tests: accepts connections on loopback, keeps each
//! request's headers (lowercase names) and body, and answers a fixed status.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the receiver got: headers (lowercase names) and body.
pub type Seen = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// Starts a one-connection-at-a-time HTTP receiver; its URL (`http://127.0.0.1:{port}/hook`)
/// and what it has seen. It answers `status` (and `extra` headers).
pub async fn receiver(status: &'static str, extra: &'static str) -> (String, Seen) {
    scripted(move |_| Some(status), extra).await
}

/// A receiver that answers the n-th request (from 0) with `script(n)`, or never when `None`
/// (it keeps the connection open and reads nothing more: a hanging receiver).
pub async fn scripted(
    script: impl Fn(usize) -> Option<&'static str> + Send + 'static,
    extra: &'static str,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("the receiver's address")
    );
    let seen: Seen = Arc::default();
    let keep = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (None, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    break (Some(i + 4), len);
                }
            };
            let Some(start) = head_end else { continue };
            while buf.len() < start + len {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..start]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let n = {
                let mut seen = keep
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                seen.push((headers, buf[start..].to_vec()));
                seen.len() - 1
            };
            let Some(status) = script(n) else {
                // Hang: hold the connection for a minute without a byte of answer.
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    drop(sock);
                });
                continue;
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = sock.write_all(answer.as_bytes()).await;
        }
    });
    (url, seen)
}
