//! Configuration secrets (shared HMAC secrets, signing keys) as a type that never prints itself.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// A secret read from configuration. Its `Debug` is redacted and it has no `Display`, so a
/// `{:?}` of a configuration struct cannot leak it; equality runs in constant time; the bytes
/// are wiped when it is dropped. Read it only where it is used, with [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's bytes, for the one place that signs or verifies with it.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-sync-secret");
        let printed = format!("{s:?} {:?}", Some(&s));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(s.expose(), b"hunter2-sync-secret");
        assert_eq!(s, Secret::new("hunter2-sync-secret"));
        assert_ne!(s, Secret::new("other"));
    }
}
