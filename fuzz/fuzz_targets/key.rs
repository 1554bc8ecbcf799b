//! Key parsing: `PresentedKey::parse` (Keyward's format) and `parse_any` (any format a key can be
//! imported in) on any text a caller can present, and on every one-character edit of well-formed
//! keys (from the input, and generated from the input's bytes).
//!
//! Properties: a parsed key is exactly its input (prefix, hash, checksum, display prefix all agree
//! with the text); `Debug` never shows its secret; `parse_any` accepts exactly `parse`'s keys plus
//! foreign ones (16-256 printable ASCII, no space), never a Keyward key with a wrong checksum,
//! and a foreign key has no prefix and shows at most a quarter of itself; a well-formed key with
//! any single byte replaced, deleted, inserted, or two neighbours swapped is refused by both
//! (the edge answers it without a KV read); `generate` succeeds exactly for valid prefixes and
//! what it generates parses back.
#![no_main]

use keyward_common::key::{
    self, CHECKSUM_LEN, KeyFormatError, MAX_KEY_LEN, RANDOM_LEN, is_foreign_key, validate_prefix,
};
use keyward_common::{KeyHash, PresentedKey, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = PresentedKey::parse(text) {
            check_well_formed(text, &parsed);
            check_every_edit_is_refused(text);
        }
        any_format(text);
    }
    generated(data);
});

/// `parse_any` against `parse` and the foreign-key rule.
fn any_format(text: &str) {
    let strict = PresentedKey::parse(text);
    match (PresentedKey::parse_any(text), strict) {
        (Ok(any), Ok(keyward)) => {
            assert!(!any.is_foreign());
            assert_eq!(any, keyward, "parse_any reads a Keyward key as parse does");
        }
        (Ok(foreign), Err(err)) => {
            assert!(foreign.is_foreign());
            assert!(
                is_foreign_key(text),
                "a foreign key outside the import rule"
            );
            assert_ne!(
                err,
                KeyFormatError::BadChecksum,
                "a wrong checksum taken for foreign"
            );
            assert_eq!(foreign.secret().expose(), text);
            assert_eq!(foreign.prefix(), "");
            assert_eq!(foreign.hash(), KeyHash::of(text));
            let shown = foreign.display_prefix();
            let shown = shown
                .strip_suffix('…')
                .expect("a display prefix ends with …");
            assert!(text.starts_with(shown) && shown.len() <= text.len() / 4);
            assert_eq!(
                format!("{foreign:?}"),
                "PresentedKey { secret: SecretKey(<redacted>), prefix_len: None }"
            );
        }
        (Err(KeyFormatError::NotAKey), Err(_)) => assert!(!is_foreign_key(text)),
        (Err(any), Err(strict)) => assert_eq!(any, strict, "the Keyward error is kept"),
        (Err(err), Ok(_)) => panic!("a valid Keyward key refused by parse_any: {err}"),
    }
}

/// What must hold of any text `parse` accepts.
fn check_well_formed(text: &str, key: &PresentedKey) {
    assert_eq!(key.secret().expose(), text, "a parsed key is its input");
    assert!(text.len() <= MAX_KEY_LEN);
    let (prefix, body) = text.split_once('_').expect("an accepted key has a `_`");
    assert_eq!(key.prefix(), prefix);
    assert!(validate_prefix(prefix).is_ok());
    assert_eq!(body.len(), RANDOM_LEN + CHECKSUM_LEN);
    assert!(body.bytes().all(|c| c.is_ascii_alphanumeric()));
    let (head, sum) = text.split_at(text.len() - CHECKSUM_LEN);
    assert_eq!(
        key::checksum(head),
        sum,
        "the checksum covers prefix and random part"
    );
    assert_eq!(key.hash(), KeyHash::of(text));
    assert_eq!(
        KeyHash::parse(key.hash().as_str()).as_ref(),
        Ok(&key.hash())
    );
    let shown_prefix = key.display_prefix();
    assert_eq!(shown_prefix, format!("{}…", &text[..prefix.len() + 1 + 8]));
    let debug = format!("{key:?} {:?}", key.secret());
    assert!(
        !debug.contains(&body[..RANDOM_LEN]),
        "Debug shows the secret"
    );
}

/// Every single-byte substitution, deletion and adjacent swap of an accepted key is refused.
fn check_every_edit_is_refused(text: &str) {
    let bytes = text.as_bytes();
    let refused = |edited: Vec<u8>, what: &str| {
        if let Ok(s) = String::from_utf8(edited)
            && s != text
        {
            assert!(PresentedKey::parse(&s).is_err(), "{what} accepted: {s}");
            assert!(
                PresentedKey::parse_any(&s).is_err(),
                "{what} taken for a foreign key (a KV read): {s}"
            );
        }
    };
    for i in 0..bytes.len() {
        for replacement in [
            b'0',
            b'a',
            b'Z',
            b'_',
            bytes[i] ^ 0x20,
            bytes[i].wrapping_add(1),
        ] {
            let mut edited = bytes.to_vec();
            edited[i] = replacement;
            refused(edited, "a substitution");
        }
        let mut deleted = bytes.to_vec();
        deleted.remove(i);
        refused(deleted, "a deletion");
        for inserted_byte in [b'0', b'a', b'Z', b'_', b'-', bytes[i]] {
            for at in [i, bytes.len()] {
                let mut inserted = bytes.to_vec();
                inserted.insert(at, inserted_byte);
                refused(inserted, "an insertion");
            }
        }
        if i + 1 < bytes.len() {
            let mut swapped = bytes.to_vec();
            swapped.swap(i, i + 1);
            refused(swapped, "a swap");
        }
    }
}

/// `data[0] % 17` bytes of prefix, the rest as the randomness: generation succeeds exactly for
/// valid prefixes, and the key parses back with the same prefix and hash.
fn generated(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len % 17).min(rest.len());
    let (prefix, seed) = rest.split_at(len);
    let (Ok(prefix), false) = (std::str::from_utf8(prefix), seed.is_empty()) else {
        return;
    };
    let mut i = 0;
    // Bytes >= 248 are rejected by the sampler; keep them below so a constant input terminates.
    let fill = |buf: &mut [u8]| {
        for b in buf {
            *b = seed[i % seed.len()].wrapping_add((i / seed.len()) as u8) % 248;
            i += 1;
        }
    };
    match SecretKey::generate(prefix, fill) {
        Ok(secret) => {
            assert!(validate_prefix(prefix).is_ok());
            let parsed = PresentedKey::parse(secret.expose()).expect("a generated key parses");
            assert_eq!(parsed.prefix(), prefix);
            assert_eq!(parsed.hash(), secret.hash());
            check_well_formed(secret.expose(), &parsed);
            check_every_edit_is_refused(secret.expose());
        }
        Err(err) => {
            assert_eq!(err, key::KeyFormatError::BadPrefix);
            assert!(validate_prefix(prefix).is_err());
        }
    }
}
