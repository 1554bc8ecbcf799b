//! Key IDs: `key_` + 22 base62 digits of a ULID-style value (48-bit milliseconds, 80 random bits).
//!
//! Public and safe to log; they sort by creation time and are never derived from the secret.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::base62;

const PREFIX: &str = "key_";
const DIGITS: usize = 22;

/// A key's public identifier.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, example = "key_0RPOb5kQWc1xQ3yWwfYc2T")
)]
pub struct KeyId(String);

impl KeyId {
    /// Builds an ID from the creation time in Unix milliseconds and 10 random bytes.
    #[must_use]
    pub fn new(unix_ms: u64, random: [u8; 10]) -> Self {
        let mut value = u128::from(unix_ms & 0xFFFF_FFFF_FFFF) << 80;
        for (i, b) in random.iter().enumerate() {
            value |= u128::from(*b) << (8 * (9 - i));
        }
        Self(format!("{PREFIX}{}", base62::encode_fixed(value, DIGITS)))
    }

    /// Parses an ID as found in a URL path.
    ///
    /// # Errors
    /// [`InvalidKeyId`] unless `s` is `key_` followed by 22 base62 digits.
    pub fn parse(s: &str) -> Result<Self, InvalidKeyId> {
        let digits = s.strip_prefix(PREFIX).ok_or(InvalidKeyId)?;
        if digits.len() == DIGITS && base62::decode(digits).is_some() {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidKeyId)
        }
    }

    /// The creation time embedded in the ID, in Unix milliseconds.
    #[must_use]
    pub fn unix_ms(&self) -> u64 {
        let value = base62::decode(&self.0[PREFIX.len()..]).unwrap_or(0);
        u64::try_from(value >> 80).unwrap_or(0)
    }

    /// The ID as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not a Keyward key ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a key id: `key_` followed by 22 letters or digits")]
pub struct InvalidKeyId;

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let earlier = KeyId::new(1_700_000_000_000, [0xFF; 10]);
        let later = KeyId::new(1_700_000_000_001, [0; 10]);
        assert!(earlier < later);
        assert!(earlier.as_str() < later.as_str());
    }

    #[test]
    fn ids_have_the_documented_shape_and_round_trip() {
        let id = KeyId::new(1_795_000_000_123, [7; 10]);
        assert!(id.as_str().starts_with("key_"));
        assert_eq!(id.as_str().len(), 26);
        assert_eq!(KeyId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.unix_ms(), 1_795_000_000_123);
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "key_",
            "key_abc",
            "kez_0000000000000000000000",
            "key_000000000000000000000!",
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }
}
