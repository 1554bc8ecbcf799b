//! The identifiers and times callers put in URLs and bodies: `KeyId::parse`, `KeyHash::parse`,
//! `KeyStatus::parse`, `Timestamp` from RFC 3339 text or JSON (`expires_at`).
//!
//! Properties: whatever parses is exactly its input and serialises back to something that parses
//! to the same value; a timestamp always lies in the documented years 1970..=9999.
#![no_main]

use keyward_common::{KeyHash, KeyId, KeyStatus, Timestamp};
use libfuzzer_sys::fuzz_target;

/// 9999-12-31T23:59:59Z, the latest instant a `Timestamp` accepts.
const MAX_SECONDS: i64 = 253_402_300_799;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        key_id(text);
        key_hash(text);
        status(text);
        rfc3339(text);
    }
    json_timestamp(data);
});

fn key_id(text: &str) {
    let Ok(id) = KeyId::parse(text) else {
        return;
    };
    assert_eq!(id.as_str(), text);
    assert_eq!(id.to_string(), text);
    assert!(id.unix_ms() < 1 << 48, "the time part is 48 bits");
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
}

fn key_hash(text: &str) {
    let shaped = text.len() == 64
        && text
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let parsed = KeyHash::parse(text);
    assert_eq!(
        parsed.is_ok(),
        shaped,
        "a hash is exactly 64 lowercase hex digits"
    );
    if let Ok(hash) = parsed {
        assert_eq!(hash.as_str(), text);
        assert_eq!(hash.kv_key(), format!("h:{text}"));
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<KeyHash>(&json).unwrap(), hash);
    }
}

fn status(text: &str) {
    if let Some(status) = KeyStatus::parse(text) {
        assert_eq!(status.as_str(), text);
        let json = serde_json::to_value(status).unwrap();
        assert_eq!(json, text);
    }
}

fn rfc3339(text: &str) {
    let Ok(t) = Timestamp::parse_rfc3339(text) else {
        return;
    };
    in_range(t);
    let again = Timestamp::parse_rfc3339(&t.to_rfc3339()).expect("a shown time parses");
    assert_eq!(again, t);
}

fn json_timestamp(data: &[u8]) {
    let Ok(t) = serde_json::from_slice::<Timestamp>(data) else {
        return;
    };
    in_range(t);
    let json = serde_json::to_vec(&t).unwrap();
    assert_eq!(serde_json::from_slice::<Timestamp>(&json).unwrap(), t);
}

fn in_range(t: Timestamp) {
    assert!(
        (0..=MAX_SECONDS).contains(&t.unix()),
        "{} is outside 1970..=9999",
        t.unix()
    );
}
