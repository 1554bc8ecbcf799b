//! A webhook receiver that checks Keyward's signatures, as a receiver should: the Standard
//! Webhooks headers, a timestamp within 5 minutes (replays of old messages are refused), the
//! HMAC compared in constant time, and a reply only after the check. Standard library plus
//! `hmac`, `sha2` and `base64`: copy it into any service.
//!
//! Run: `cargo run -p keyward-functions --example verify_webhook -- whsec_… 127.0.0.1:8080`,
//! register `http://127.0.0.1:8080/` on a local stack (loopback http is allowed there), then
//! `POST /webhooks/{id}/test`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a message's timestamp may be from now.
const TOLERANCE_S: i64 = 300;

/// Why a message is refused.
#[derive(Debug)]
enum Refused {
    MissingHeader(&'static str),
    BadSecret,
    Stale,
    BadSignature,
}

/// Checks one message: `secret` is the endpoint's `whsec_…`, `id`, `timestamp` and
/// `signatures` the three headers, `body` the raw bytes (before any JSON parsing).
fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or(Refused::BadSecret)?)
        .map_err(|_| Refused::BadSecret)?;
    let t: i64 = timestamp.parse().map_err(|_| Refused::Stale)?;
    if (now - t).abs() > TOLERANCE_S {
        return Err(Refused::Stale);
    }
    // The header may list several signatures (during a secret rotation): any one will do.
    for candidate in signatures.split(' ') {
        let Some(sig) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = STANDARD.decode(sig) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| Refused::BadSecret)?;
        mac.update(format!("{id}.{t}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(Refused::BadSignature)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(secret), Some(addr)) = (args.next(), args.next()) else {
        eprintln!("usage: verify_webhook WHSEC_SECRET ADDRESS:PORT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&addr)?;
    println!("listening on http://{addr}/");
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut headers = Vec::new();
        let mut line = String::new();
        reader.read_line(&mut line)?; // the request line
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &'static str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or(Refused::MissingHeader(name))
        };
        let length: usize = header("content-length")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(1 << 20);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let checked = (|| {
            verify(
                &secret,
                &header("webhook-id")?,
                &header("webhook-timestamp")?,
                &header("webhook-signature")?,
                &body,
                now,
            )
        })();
        let status = match checked {
            Ok(()) => {
                // Deduplicate by webhook-id here: a message can arrive more than once.
                println!("verified: {}", String::from_utf8_lossy(&body));
                "204 No Content"
            }
            Err(why) => {
                match why {
                    Refused::MissingHeader(name) => println!("refused: no {name} header"),
                    Refused::BadSecret => println!("refused: the secret is not whsec_ + base64"),
                    Refused::Stale => println!("refused: the timestamp is over 5 minutes off"),
                    Refused::BadSignature => println!("refused: no signature matches"),
                }
                "401 Unauthorized"
            }
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const T: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specifications_example_verifies_and_tampering_does_not() {
        let now = 1_614_265_330;
        assert!(verify(SECRET, ID, T, SIG, BODY, now).is_ok());
        assert!(verify(SECRET, ID, T, &format!("v1,bm9wZQ== {SIG}"), BODY, now).is_ok());
        assert!(matches!(
            verify(SECRET, ID, T, SIG, br#"{"test": 1}"#, now),
            Err(Refused::BadSignature)
        ));
        assert!(matches!(
            verify(SECRET, "msg_other", T, SIG, BODY, now),
            Err(Refused::BadSignature)
        ));
        assert!(matches!(
            verify(SECRET, ID, T, SIG, BODY, now + 301),
            Err(Refused::Stale)
        ));
    }
}
