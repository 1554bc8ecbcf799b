//! Safe retries: `Idempotency-Key` on create, rotate and import. The first answer to a key is
//! kept for 24 hours, sealed with AES-256-GCM (it may hold a secret), and replayed to the same
//! caller sending the same request; another request with the key is a 422.
//!
//! The sealing key is derived from the deployment's cursor secret (a Secrets Manager secret in
//! production) with HMAC-SHA256 under its own label, so neither key can stand in for the other.

use keyward_common::FieldError;
use lambda_http::Request;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reply::Reply;
use crate::error::ApiError;
use crate::seal::Seal;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The answer header marking a replay.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long an answer is kept.
pub const KEEP_S: i64 = 86_400;
/// How long a request may hold its key before another attempt may take over (a function that
/// died mid-request must not block the key for a day).
pub const LEASE_S: i64 = 60;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The request's `Idempotency-Key`, if any.
///
/// # Errors
/// 400 naming the header when it is empty, over 255 characters, or not printable ASCII.
pub fn key_of(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            format!("must be 1-{MAX_KEY_LEN} printable ASCII characters"),
        )])
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

/// Where a caller's key is stored: a hash of who sent it and the key, so one caller can never
/// read another's answer.
#[must_use]
pub fn slot(actor: &str, key: &str) -> String {
    hex::encode(digest(&[actor.as_bytes(), key.as_bytes()]))
}

/// What makes two requests "the same": method, path and body bytes.
#[must_use]
pub fn fingerprint(req: &Request) -> String {
    hex::encode(digest(&[
        req.method().as_str().as_bytes(),
        req.uri().path().as_bytes(),
        req.body().as_ref(),
    ]))
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// An answer as kept for replay.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kept {
    /// Status code.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// `ETag` version.
    pub etag: Option<u64>,
    /// `Location`.
    pub location: Option<String>,
}

impl Kept {
    /// The answer to keep.
    #[must_use]
    pub fn of(reply: &Reply) -> Self {
        Self {
            status: reply.status.as_u16(),
            body: reply.body.clone(),
            etag: reply.etag,
            location: reply.location.clone(),
        }
    }

    /// The answer again.
    ///
    /// # Errors
    /// A stored status that is not one (a bug or tampering).
    pub fn into_reply(self) -> Result<Reply, ApiError> {
        Ok(Reply {
            status: lambda_http::http::StatusCode::from_u16(self.status)
                .map_err(|_| anyhow::anyhow!("a kept answer has status {}", self.status))?,
            body: self.body,
            etag: self.etag,
            location: self.location,
            replayed: true,
            content_type: super::reply::JSON,
        })
    }
}

/// Seals and opens kept answers.
pub struct Sealer {
    seal: Seal,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// The sealer derived from `root` (the cursor secret).
    #[must_use]
    pub fn derive(root: &[u8]) -> Self {
        Self {
            seal: Seal::derive(root, "keyward idempotency seal v1"),
        }
    }

    /// `kept` sealed for `slot` in `workspace`: a random nonce, then the ciphertext and tag.
    ///
    /// # Errors
    /// When the OS random source or the cipher fails.
    pub fn seal(&self, workspace: &str, slot: &str, kept: &Kept) -> Result<Vec<u8>, ApiError> {
        let data = compress(&serde_json::to_vec(kept).map_err(anyhow::Error::from)?)?;
        self.seal
            .seal(&aad(workspace, slot), &data)
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("sealing a kept answer failed")))
    }

    /// The answer sealed in `sealed` for `slot` in `workspace`.
    ///
    /// # Errors
    /// When it was not sealed by this key for this slot (tampered, moved, or the secret rotated).
    pub fn open(&self, workspace: &str, slot: &str, sealed: &[u8]) -> Result<Kept, ApiError> {
        let fail = || ApiError::Internal(anyhow::anyhow!("a kept answer does not open"));
        let plain = self
            .seal
            .open(&aad(workspace, slot), sealed)
            .map_err(|_| fail())?;
        // Answers kept before compression are JSON as they are (`{`); a zlib stream starts
        // with 0x78.
        let json = if plain.first() == Some(&b'{') {
            plain
        } else {
            decompress(&plain).map_err(|_| fail())?
        };
        serde_json::from_slice(&json).map_err(|_| fail())
    }
}

/// A kept answer is compressed before it is sealed: an import's answer (up to 1,000 results,
/// each refusal a problem document) is repetitive, and it must fit in one DynamoDB item
/// (400 KB) with room to spare.
fn compress(data: &[u8]) -> Result<Vec<u8>, ApiError> {
    use std::io::Write as _;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(data)
        .and_then(|()| z.finish())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("compressing a kept answer: {e}")))
}

fn decompress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

fn aad(workspace: &str, slot: &str) -> Vec<u8> {
    format!("keyward idempotency v1\0{workspace}\0{slot}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> Kept {
        Kept {
            status: 201,
            body: r#"{"key":"kw_secret"}"#.into(),
            etag: Some(1),
            location: Some("/x".into()),
        }
    }

    #[test]
    fn a_sealed_answer_opens_only_for_its_slot_and_key() {
        let s = Sealer::derive(b"a-cursor-secret-of-at-least-32-bytes!");
        let sealed = s.seal("acme", "slot1", &kept()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("kw_secret"));
        assert_eq!(s.open("acme", "slot1", &sealed).unwrap(), kept());
        assert!(s.open("acme", "slot2", &sealed).is_err());
        assert!(s.open("other", "slot1", &sealed).is_err());
        let other = Sealer::derive(b"another-cursor-secret-of-32-bytes!!!");
        assert!(other.open("acme", "slot1", &sealed).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(s.open("acme", "slot1", &flipped).is_err());
        assert!(s.open("acme", "slot1", &sealed[..5]).is_err());
    }

    #[test]
    fn slots_separate_callers_and_keys() {
        assert_ne!(slot("jwt:a", "k"), slot("jwt:b", "k"));
        assert_ne!(slot("jwt:a", "k1"), slot("jwt:a", "k2"));
        // Length-prefixed parts: no two splits of the same bytes collide.
        assert_ne!(slot("ab", "c"), slot("a", "bc"));
    }

    #[test]
    fn an_answer_kept_before_compression_still_opens() {
        let s = Sealer::derive(b"a-cursor-secret-of-at-least-32-bytes!");
        let plain = serde_json::to_vec(&kept()).unwrap();
        let old = s.seal.seal(&aad("acme", "slot1"), &plain).unwrap();
        assert_eq!(s.open("acme", "slot1", &old).unwrap(), kept());
    }

    #[test]
    fn the_largest_import_answer_fits_one_item_with_room_to_spare() {
        // 1,000 refusals, each naming every field an import item has.
        let fields = [
            "key",
            "hash",
            "name",
            "meta",
            "scopes",
            "roles",
            "owner_id",
            "expires_in",
        ];
        let refusal = keyward_common::Problem::validation(
            fields
                .iter()
                .map(|f| FieldError::new(*f, format!("{f} is not valid here: see the docs")))
                .collect(),
        );
        let results: Vec<serde_json::Value> = (0..1000)
            .map(|i| serde_json::json!({"index": i, "error": refusal}))
            .collect();
        let body = serde_json::json!({"created": 0, "refused": 1000, "results": results});
        let answer = Kept {
            status: 200,
            body: body.to_string(),
            etag: None,
            location: None,
        };
        let s = Sealer::derive(b"a-cursor-secret-of-at-least-32-bytes!");
        let sealed = s.seal("acme", "slot1", &answer).unwrap();
        assert!(answer.body.len() > 400_000, "{}", answer.body.len());
        assert!(sealed.len() < 100_000, "sealed {} bytes", sealed.len());
        assert_eq!(s.open("acme", "slot1", &sealed).unwrap(), answer);
    }
}
