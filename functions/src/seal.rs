//! Sealing small secrets kept in the table (an idempotent answer holding a new key, a webhook
//! endpoint's signing secret) with AES-256-GCM under a key derived from the deployment's cursor
//! secret (a Secrets Manager secret in production), one key per purpose: HMAC-SHA256 of the root
//! under the purpose's label. The associated data binds each sealed value to where it is kept,
//! so a value copied to another item does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A sealing key for one purpose.
pub struct Seal {
    key: LessSafeKey,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(<redacted>)")
    }
}

/// Sealing or opening failed: the random source or the cipher failed, or the value was not
/// sealed by this key for this place (tampered, moved, or the root secret rotated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealed value could not be sealed or opened")]
pub struct SealError;

impl Seal {
    /// The key for `label` derived from `root`.
    ///
    /// # Panics
    /// Never: HMAC takes any key length and AES-256 any 32 bytes.
    #[must_use]
    pub fn derive(root: &[u8], label: &str) -> Self {
        #[allow(clippy::expect_used)]
        let mut mac = Hmac::<Sha256>::new_from_slice(root).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        let bytes = mac.finalize().into_bytes();
        #[allow(clippy::expect_used)]
        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// `plain` sealed for `aad`: a random nonce, then the ciphertext and tag.
    ///
    /// # Errors
    /// When the OS random source or the cipher fails.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut data,
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(out)
    }

    /// The plain bytes sealed in `sealed` for `aad`.
    ///
    /// # Errors
    /// When it was not sealed by this key for `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_place() {
        let s = Seal::derive(b"root", "purpose a");
        let sealed = s.seal(b"here", b"secret").unwrap();
        assert_eq!(s.open(b"here", &sealed).unwrap(), b"secret");
        assert_eq!(s.open(b"there", &sealed), Err(SealError));
        assert_eq!(
            Seal::derive(b"root", "purpose b").open(b"here", &sealed),
            Err(SealError)
        );
        assert_eq!(
            Seal::derive(b"other", "purpose a").open(b"here", &sealed),
            Err(SealError)
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(s.open(b"here", &flipped), Err(SealError));
        assert_eq!(s.open(b"here", &sealed[..5]), Err(SealError));
        assert!(!format!("{s:?}").contains("root"));
    }
}
