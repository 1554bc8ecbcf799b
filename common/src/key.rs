//! The secret key format `{prefix}_{random}{checksum}`, its parsing, hashing and display prefix.
//!
//! `random` is 32 base62 digits (about 190 bits); `checksum` is the CRC32 (IEEE) of
//! `{prefix}_{random}` in 6 base62 digits, so a mistyped or invented key is refused offline.
//!
//! Keys imported from another system keep their own format ([`is_foreign_key`]): those have no
//! checksum, so they can only be told apart by a lookup. A string in Keyward's format, or one
//! typo away from it ([`PresentedKey::parse_any`]), is never taken for one.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::base62;

/// The prefix used when neither the workspace nor the request names one.
pub const DEFAULT_PREFIX: &str = "kw";
/// Length of the random part.
pub const RANDOM_LEN: usize = 32;
/// Length of the checksum part.
pub const CHECKSUM_LEN: usize = 6;
/// Shortest and longest allowed prefix.
pub const PREFIX_LEN: std::ops::RangeInclusive<usize> = 2..=16;
/// Longest possible key: a 16-char prefix, `_`, 32 random digits and 6 checksum digits.
pub const MAX_KEY_LEN: usize = 16 + 1 + RANDOM_LEN + CHECKSUM_LEN;
/// How many characters of `random` a display prefix shows.
const DISPLAY_CHARS: usize = 8;
/// Shortest and longest key in another format (imported): 16–256 printable ASCII characters.
pub const FOREIGN_KEY_LEN: std::ops::RangeInclusive<usize> = 16..=256;
/// Longest text that can be a key of any format: what header parsing keeps at most.
pub const MAX_PRESENTED_LEN: usize = 256;
/// At most this many characters of a foreign key are shown in lists (and never over a quarter).
const FOREIGN_DISPLAY_CHARS: usize = 6;

/// Why a presented string is not a well-formed key. The messages never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Longer than any key can be, or not ASCII: refused before anything else looks at it.
    #[error("the key is too long or contains characters a key never has")]
    TooLongOrNotAscii,
    /// No `_` separating prefix and body.
    #[error("the key has no `_` after its prefix")]
    MissingSeparator,
    /// The prefix is not 2–16 characters of `a-z0-9`.
    #[error("the key prefix must be 2-16 lowercase letters or digits")]
    BadPrefix,
    /// The part after the prefix is not 38 base62 digits.
    #[error("the key body must be 38 letters or digits")]
    BadBody,
    /// The checksum does not match: a typo or an invented key.
    #[error("the key checksum does not match")]
    BadChecksum,
    /// Neither Keyward's format nor a key of another format (16-256 printable ASCII characters
    /// without spaces).
    #[error("the key is not 16-256 printable ASCII characters without spaces")]
    NotAKey,
}

/// Whether `text` may be a key of another format, as imported: 16–256 printable ASCII
/// characters, none of them a space. The one rule the import API and the edge share (a string
/// that also looks like a mistyped Keyward key is still refused: see
/// [`PresentedKey::parse_any`]).
#[must_use]
pub fn is_foreign_key(text: &str) -> bool {
    FOREIGN_KEY_LEN.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a key prefix: 2–16 characters of `a-z0-9`.
///
/// # Errors
/// [`KeyFormatError::BadPrefix`] otherwise.
pub fn validate_prefix(prefix: &str) -> Result<(), KeyFormatError> {
    let ok = PREFIX_LEN.contains(&prefix.len())
        && prefix
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(KeyFormatError::BadPrefix)
    }
}

/// The CRC32 (IEEE) of `{prefix}_{random}` as 6 base62 digits.
#[must_use]
pub fn checksum(prefix_and_random: &str) -> String {
    base62::encode_fixed(
        u128::from(crate::crc32::hash(prefix_and_random.as_bytes())),
        CHECKSUM_LEN,
    )
}

/// A full secret key. Shown once to its owner; never logged, displayed or compared in variable time.
///
/// `Debug` prints `SecretKey(<redacted>)`; there is deliberately no `Display`. The bytes are
/// zeroed when the value is dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(String);

impl SecretKey {
    /// Generates a key with `prefix`, drawing randomness from `fill` (pass the OS CSPRNG, e.g.
    /// `getrandom::fill`). Bytes are mapped to base62 by rejection sampling, so every digit is
    /// equally likely.
    ///
    /// # Errors
    /// [`KeyFormatError::BadPrefix`] for an invalid prefix.
    pub fn generate(prefix: &str, mut fill: impl FnMut(&mut [u8])) -> Result<Self, KeyFormatError> {
        validate_prefix(prefix)?;
        let mut s = String::with_capacity(MAX_KEY_LEN);
        s.push_str(prefix);
        s.push('_');
        let mut produced = 0;
        let mut buf = [0u8; 64];
        while produced < RANDOM_LEN {
            fill(&mut buf);
            // 248 = 4 * 62: bytes at or above it would bias the low digits.
            for b in buf.iter().filter(|b| **b < 248).take(RANDOM_LEN - produced) {
                s.push(char::from(base62::ALPHABET[usize::from(*b % 62)]));
                produced += 1;
            }
        }
        buf.zeroize();
        let sum = checksum(&s);
        s.push_str(&sum);
        Ok(Self(s))
    }

    /// The key text, for the one response that shows it and for hashing.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the whole key, as stored.
    #[must_use]
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// Parses the key again (prefix and display prefix).
    #[must_use]
    pub fn presented(&self) -> PresentedKey {
        // A generated key is always well formed.
        PresentedKey::parse(&self.0).unwrap_or_else(|_| PresentedKey {
            secret: self.clone(),
            prefix_len: None,
        })
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SecretKey {}

impl serde::Serialize for SecretKey {
    /// Serialising is how the one create/rotate response shows the key; nothing else holds one.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A key as presented by a caller, already checked: in Keyward's format with a valid checksum,
/// or (from [`PresentedKey::parse_any`]) a key of another format that only a lookup can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedKey {
    secret: SecretKey,
    /// The prefix's length for a key in Keyward's format; `None` for another format.
    prefix_len: Option<usize>,
}

impl PresentedKey {
    /// Checks shape and checksum of a key in Keyward's format without any I/O: the edge's first,
    /// cheapest step.
    ///
    /// # Errors
    /// A [`KeyFormatError`] naming the first problem found; the input is never echoed.
    pub fn parse(input: &str) -> Result<Self, KeyFormatError> {
        let prefix_len = keyward_shape(input)?;
        let (head, sum) = input.split_at(input.len() - CHECKSUM_LEN);
        if checksum(head).as_bytes().ct_eq(sum.as_bytes()).into() {
            Ok(Self {
                secret: SecretKey(input.to_owned()),
                prefix_len: Some(prefix_len),
            })
        } else {
            Err(KeyFormatError::BadChecksum)
        }
    }

    /// [`parse`](Self::parse), or else a key of another format ([`is_foreign_key`]), which
    /// can only have been imported and only a lookup can confirm. A string in Keyward's format
    /// with a wrong checksum, or one typo (a character replaced, deleted, inserted, or two
    /// neighbours swapped) away from a Keyward key, is refused as Keyward's: no typo of an issued
    /// key ever costs a lookup, and the import API refuses such strings for the same reason.
    ///
    /// # Errors
    /// The Keyward [`KeyFormatError`] for a (mistyped) Keyward key; [`KeyFormatError::NotAKey`]
    /// for a string that is no key of any format.
    pub fn parse_any(input: &str) -> Result<Self, KeyFormatError> {
        match Self::parse(input) {
            Ok(key) => Ok(key),
            Err(err) if err == KeyFormatError::BadChecksum || near_keyward(input) => Err(err),
            Err(_) if is_foreign_key(input) => Ok(Self {
                secret: SecretKey(input.to_owned()),
                prefix_len: None,
            }),
            Err(_) => Err(KeyFormatError::NotAKey),
        }
    }

    /// Whether the key is in another format than Keyward's (an imported key's).
    #[must_use]
    pub fn is_foreign(&self) -> bool {
        self.prefix_len.is_none()
    }

    /// The prefix, e.g. `kw`; empty for a key in another format.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.secret.0[..self.prefix_len.unwrap_or(0)]
    }

    /// What lists show: `{prefix}_` + the first 8 random characters + `…`; for another format,
    /// its first characters (at most 6, never over a quarter of it) + `…`.
    #[must_use]
    pub fn display_prefix(&self) -> String {
        let text = &self.secret.0;
        let end = match self.prefix_len {
            Some(len) => len + 1 + DISPLAY_CHARS,
            None => (text.len() / 4).min(FOREIGN_DISPLAY_CHARS),
        };
        format!("{}…", &text[..end.min(text.len())])
    }

    /// SHA-256 of the whole key.
    #[must_use]
    pub fn hash(&self) -> KeyHash {
        self.secret.hash()
    }

    /// The secret itself.
    #[must_use]
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

/// Checks Keyward's shape (not the checksum) and returns the prefix's length.
fn keyward_shape(input: &str) -> Result<usize, KeyFormatError> {
    if input.len() > MAX_KEY_LEN || !input.is_ascii() {
        return Err(KeyFormatError::TooLongOrNotAscii);
    }
    let (prefix, body) = input
        .split_once('_')
        .ok_or(KeyFormatError::MissingSeparator)?;
    validate_prefix(prefix)?;
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(base62::is_digit) {
        return Err(KeyFormatError::BadBody);
    }
    Ok(prefix.len())
}

/// Whether `input`, not a valid Keyward key, is one edit away from one: such a string is a typo,
/// never a key of another format. Cheap: a few scans and at most four checksums.
///
/// A typo leaves either the prefix and separator intact (the body then has 37–39 characters, at
/// most one of them not a base62 digit), or the body intact (then the head before its `_` is 1–17
/// characters with at most one that a prefix never has), or it hits the separator itself
/// (replaced, deleted, or swapped with a neighbour): then the body and the checksum are intact,
/// so putting the separator back gives a key whose checksum matches.
fn near_keyward(input: &str) -> bool {
    const BODY: usize = RANDOM_LEN + CHECKSUM_LEN;
    let b = input.as_bytes();
    let is_prefix_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !input.is_ascii() || !(BODY + 2..=MAX_KEY_LEN + 1).contains(&b.len()) {
        return false;
    }
    // The prefix and separator intact, the body damaged.
    if let Some(sep) = b.iter().position(|&c| c == b'_')
        && PREFIX_LEN.contains(&sep)
        && b[..sep].iter().all(is_prefix_char)
    {
        let body = &b[sep + 1..];
        if (BODY - 1..=BODY + 1).contains(&body.len())
            && body.iter().filter(|c| !base62::is_digit(**c)).count() <= 1
        {
            return true;
        }
    }
    // The body intact, the prefix damaged.
    let (head, sep_and_body) = b.split_at(b.len() - BODY - 1);
    if sep_and_body[0] == b'_'
        && sep_and_body[1..].iter().all(|c| base62::is_digit(*c))
        && (1..=PREFIX_LEN.end() + 1).contains(&head.len())
        && head.iter().filter(|c| !is_prefix_char(c)).count() <= 1
    {
        return true;
    }
    // The separator damaged: repaired, the checksum tells.
    let at = b.len() - BODY - 1;
    let mut candidates: Vec<Vec<u8>> = Vec::with_capacity(4);
    let mut replaced = b.to_vec();
    replaced[at] = b'_';
    candidates.push(replaced);
    let mut inserted = b.to_vec();
    inserted.insert(at + 1, b'_');
    candidates.push(inserted);
    for i in [at - 1, at] {
        let mut swapped = b.to_vec();
        swapped.swap(i, i + 1);
        candidates.push(swapped);
    }
    candidates
        .iter()
        .filter_map(|c| std::str::from_utf8(c).ok())
        .any(|c| PresentedKey::parse(c).is_ok())
}

/// Lowercase hex SHA-256 of a whole key: what is stored and what KV is keyed by (`h:{hash}`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyHash(String);

impl KeyHash {
    /// Hashes a key's text.
    #[must_use]
    pub fn of(key: &str) -> Self {
        Self(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// Accepts 64 lowercase hex digits.
    ///
    /// # Errors
    /// [`InvalidHash`] otherwise.
    pub fn parse(s: &str) -> Result<Self, InvalidHash> {
        if s.len() == 64
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidHash)
        }
    }

    /// The hex text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Workers KV key of this hash's edge entry.
    #[must_use]
    pub fn kv_key(&self) -> String {
        format!("h:{}", self.0)
    }
}

/// Not a lowercase hex SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 64 lowercase hex digits")]
pub struct InvalidHash;

impl TryFrom<String> for KeyHash {
    type Error = InvalidHash;
    fn try_from(s: String) -> Result<Self, InvalidHash> {
        Self::parse(&s)
    }
}

impl From<KeyHash> for String {
    fn from(h: KeyHash) -> String {
        h.0
    }
}

impl fmt::Debug for KeyHash {
    // A hash is not a secret, but shortening it keeps logs readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.0[..12.min(self.0.len())])
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counter_rng(seed: u8) -> impl FnMut(&mut [u8]) {
        let mut n = seed;
        move |buf: &mut [u8]| {
            for b in buf {
                n = n.wrapping_mul(37).wrapping_add(11);
                *b = n;
            }
        }
    }

    fn key_from(seed_bytes: Vec<u8>, prefix: &str) -> SecretKey {
        let mut i = 0;
        SecretKey::generate(prefix, move |buf: &mut [u8]| {
            for b in buf {
                *b = seed_bytes[i % seed_bytes.len()] ^ (i as u8).wrapping_mul(31);
                i += 1;
            }
        })
        .unwrap()
    }

    #[test]
    fn checksum_matches_zlib_crc32_in_base62() {
        // python3: zlib.crc32(b"kw_" + b"a" * 32) == 0x03099c19, base62 "03RpOb"
        let head = format!("kw_{}", "a".repeat(32));
        assert_eq!(crc32fast::hash(head.as_bytes()), 0x0309_9c19);
        assert_eq!(checksum(&head), "03RpOb");
    }

    #[test]
    fn generated_key_has_the_documented_shape() {
        let key = SecretKey::generate("kw", counter_rng(1)).unwrap();
        let text = key.expose();
        assert_eq!(text.len(), 2 + 1 + 32 + 6);
        assert!(text.starts_with("kw_"));
        let parsed = PresentedKey::parse(text).unwrap();
        assert_eq!(parsed.prefix(), "kw");
        assert_eq!(parsed.display_prefix(), format!("{}…", &text[..11]));
        assert_eq!(parsed.hash().as_str().len(), 64);
    }

    #[test]
    fn debug_of_a_secret_never_shows_it() {
        let key = SecretKey::generate("kw", counter_rng(2)).unwrap();
        let shown = format!("{key:?} {:?}", key.presented());
        assert!(!shown.contains(&key.expose()[3..]), "{shown}");
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for p in ["", "k", "KW", "k_w", "abcdefghijklmnopq", "kw!"] {
            assert_eq!(
                SecretKey::generate(p, counter_rng(3)).unwrap_err(),
                KeyFormatError::BadPrefix
            );
        }
    }

    #[test]
    fn hash_is_sha256_hex_of_the_whole_key() {
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn overlong_or_non_ascii_input_is_refused_first() {
        assert_eq!(
            PresentedKey::parse(&"a".repeat(100)).unwrap_err(),
            KeyFormatError::TooLongOrNotAscii
        );
        assert_eq!(
            PresentedKey::parse("kw_é").unwrap_err(),
            KeyFormatError::TooLongOrNotAscii
        );
    }

    #[test]
    fn keys_of_other_formats_are_presented_as_foreign() {
        for text in [
            "sk_live_0123456789abcdefghijklmnop",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "0123456789abcdef0123456789abcdef01234567",
            "0123456789abcdef",
            &"x".repeat(256),
            "AKIA/with+symbols=and-dashes.too~",
        ] {
            let key = PresentedKey::parse_any(text).unwrap();
            assert!(key.is_foreign(), "{text}");
            assert_eq!(key.prefix(), "");
            assert_eq!(key.hash(), KeyHash::of(text));
            assert_eq!(key.secret().expose(), text);
            assert!(PresentedKey::parse(text).is_err());
        }
    }

    #[test]
    fn a_keyward_key_parses_the_same_either_way() {
        let key = SecretKey::generate("kw", counter_rng(4)).unwrap();
        let any = PresentedKey::parse_any(key.expose()).unwrap();
        assert!(!any.is_foreign());
        assert_eq!(any, PresentedKey::parse(key.expose()).unwrap());
    }

    #[test]
    fn a_keyward_key_with_a_wrong_checksum_is_never_foreign() {
        let key = SecretKey::generate("kw", counter_rng(5)).unwrap();
        let mut text = key.expose().to_owned();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            PresentedKey::parse_any(&text).unwrap_err(),
            KeyFormatError::BadChecksum
        );
    }

    #[test]
    fn what_no_format_allows_is_not_a_key() {
        for text in [
            "",
            "short",
            "fifteen_chars_x",
            &"x".repeat(257),
            "has a space in it, sixteen+",
            "tab\tseparated_key_text",
            "non-ascii-key-é-0123456789",
        ] {
            assert_eq!(
                PresentedKey::parse_any(text).unwrap_err(),
                KeyFormatError::NotAKey,
                "{text}"
            );
            assert!(!is_foreign_key(text), "{text}");
        }
    }

    #[test]
    fn a_foreign_key_shows_at_most_a_quarter_of_itself_and_debug_shows_none() {
        let key = PresentedKey::parse_any("abcdefghijklmnop").unwrap();
        assert_eq!(key.display_prefix(), "abcd…");
        let long = PresentedKey::parse_any("sk_live_0123456789abcdefghijklmnop").unwrap();
        assert_eq!(long.display_prefix(), "sk_liv…");
        let shown = format!("{key:?} {long:?}");
        assert!(
            !shown.contains("efgh") && !shown.contains("0123"),
            "{shown}"
        );
    }

    /// Every single-character edit of `key` (`edit` picks which): refused by `parse_any`, so the
    /// edge answers it without a KV read.
    fn typos(key: &str, pos: usize, c: char) -> Vec<String> {
        let chars: Vec<char> = key.chars().collect();
        let pos = pos % chars.len();
        let mut out = Vec::new();
        let mut replaced = chars.clone();
        replaced[pos] = c;
        out.push(replaced);
        let mut deleted = chars.clone();
        deleted.remove(pos);
        out.push(deleted);
        let mut inserted = chars.clone();
        inserted.insert(pos, c);
        out.push(inserted);
        let mut inserted_at_end = chars.clone();
        inserted_at_end.push(c);
        out.push(inserted_at_end);
        if pos + 1 < chars.len() {
            let mut swapped = chars.clone();
            swapped.swap(pos, pos + 1);
            out.push(swapped);
        }
        out.into_iter()
            .map(|v| v.into_iter().collect::<String>())
            .filter(|t| t != key)
            .collect()
    }

    #[test]
    fn every_typo_of_a_few_keys_is_refused_without_a_lookup_exhaustively() {
        for (prefix, seed) in [("kw", 6), ("ab", 7), ("0123456789abcdef", 8), ("x9y", 9)] {
            let key = SecretKey::generate(prefix, counter_rng(seed)).unwrap();
            for pos in 0..key.expose().len() {
                for c in '!'..='~' {
                    for typo in typos(key.expose(), pos, c) {
                        assert!(PresentedKey::parse_any(&typo).is_err(), "{typo} accepted");
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_single_character_typo_is_refused_without_a_lookup(
            seed in proptest::collection::vec(any::<u8>(), 1..32),
            prefix in "[a-z0-9]{2,16}", pos in 0usize..56, c in proptest::char::range('!', '~'),
        ) {
            let key = key_from(seed, &prefix);
            for typo in typos(key.expose(), pos, c) {
                prop_assert!(PresentedKey::parse_any(&typo).is_err(), "{} accepted", typo);
            }
        }

        #[test]
        fn every_typo_of_the_separator_is_refused_without_a_lookup(
            seed in proptest::collection::vec(any::<u8>(), 1..32),
            prefix in "[a-z0-9]{2,16}", c in proptest::char::range('!', '~'),
        ) {
            // The edits that damage the structure most, tried at the separator on purpose.
            let key = key_from(seed, &prefix);
            for pos in [prefix.len() - 1, prefix.len(), prefix.len() + 1] {
                for typo in typos(key.expose(), pos, c) {
                    prop_assert!(PresentedKey::parse_any(&typo).is_err(), "{} accepted", typo);
                }
            }
        }

        #[test]
        fn random_tokens_of_other_formats_are_foreign(text in "[A-Za-z0-9+/=.~-]{16,256}") {
            // No `_`: the only way to look like a Keyward key is a matching repaired checksum.
            let key = PresentedKey::parse_any(&text).unwrap();
            prop_assert!(key.is_foreign());
        }

        #[test]
        fn every_generated_key_parses(seed in proptest::collection::vec(any::<u8>(), 1..64),
                                      prefix in "[a-z0-9]{2,16}") {
            let key = key_from(seed, &prefix);
            let parsed = PresentedKey::parse(key.expose()).unwrap();
            prop_assert_eq!(parsed.prefix(), prefix.as_str());
            prop_assert_eq!(parsed.hash(), key.hash());
        }

        #[test]
        fn every_single_substitution_is_refused(seed in proptest::collection::vec(any::<u8>(), 1..32),
                                                pos in 0usize..41, c in proptest::char::range('!', '~')) {
            let key = key_from(seed, "kw");
            let mut chars: Vec<char> = key.expose().chars().collect();
            prop_assume!(chars[pos] != c);
            chars[pos] = c;
            let typo: String = chars.into_iter().collect();
            prop_assert!(PresentedKey::parse(&typo).is_err());
        }

        #[test]
        fn every_deletion_is_refused(seed in proptest::collection::vec(any::<u8>(), 1..32),
                                     prefix in "[a-z0-9]{2,16}", pos in 0usize..55) {
            let key = key_from(seed, &prefix);
            let mut text = key.expose().to_owned();
            let pos = pos % text.len();
            text.remove(pos);
            prop_assert!(PresentedKey::parse(&text).is_err());
        }

        #[test]
        fn every_insertion_is_refused(seed in proptest::collection::vec(any::<u8>(), 1..32),
                                      prefix in "[a-z0-9]{2,16}", pos in 0usize..56,
                                      c in proptest::char::range('!', '~')) {
            let key = key_from(seed, &prefix);
            let mut text = key.expose().to_owned();
            let pos = pos % (text.len() + 1);
            text.insert(pos, c);
            prop_assert!(PresentedKey::parse(&text).is_err());
        }

        #[test]
        fn every_adjacent_swap_is_refused(seed in proptest::collection::vec(any::<u8>(), 1..32),
                                          prefix in "[a-z0-9]{2,16}", pos in 0usize..54) {
            let key = key_from(seed, &prefix);
            let mut chars: Vec<char> = key.expose().chars().collect();
            let pos = pos % (chars.len() - 1);
            prop_assume!(chars[pos] != chars[pos + 1]);
            chars.swap(pos, pos + 1);
            let swapped: String = chars.into_iter().collect();
            prop_assert!(PresentedKey::parse(&swapped).is_err());
        }
    }
}
