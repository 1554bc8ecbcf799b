//! Standard Webhooks signatures: `webhook-signature: v1,{base64(HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}"))}`, where the key is the base64-decoded part of the endpoint's
//! `whsec_…` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of an endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 32;

/// A new secret from `random`: `whsec_` + base64 of [`SECRET_BYTES`] bytes.
#[must_use]
pub fn new_secret(random: &[u8; SECRET_BYTES]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
}

/// The HMAC key of a `whsec_…` secret, or `None` when it is not one.
#[must_use]
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX)?)
        .ok()
        .filter(|k| (24..=64).contains(&k.len()))
}

/// The `webhook-signature` value for message `id` sent at `timestamp` with `body`.
#[must_use]
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn the_specifications_example_signs_the_same() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_have_the_prefix_and_decode_to_their_bytes() {
        let s = new_secret(&[7; SECRET_BYTES]);
        assert!(s.starts_with("whsec_"));
        assert_eq!(key_of(&s).unwrap(), vec![7; SECRET_BYTES]);
        assert_eq!(key_of("whsec_c2hvcnQ="), None, "too short a key");
        assert_eq!(key_of("sk_abc"), None);
    }
}
