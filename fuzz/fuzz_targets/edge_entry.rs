//! Edge entries as the edge reads them from Workers KV (`h:{hash}` → JSON bytes), and the
//! verification decision taken on them.
//!
//! Properties: the edge's hand-written reader (`keyward_common::json`) reads an entry only when
//! serde does, to the same entry, and writes it as serde does; an entry that deserialises
//! serialises back to the same entry; `supersedes` is
//! never true both ways and never replaces a tombstone; `kv_expiration` is never before the
//! entry's own end; `verify` on the entry never admits a revoked, disabled or expired key, a key
//! of another prefix, a key of another format than Keyward's unless the entry has no prefix (an
//! imported key's), or a client outside `allowed_ips`; nothing panics.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use keyward_common::json::{self, JsonObject};
use keyward_common::{
    EdgeEntry, KeyStatus, PresentedKey, RequestContext, SecretKey, VerdictCode, verify,
};
use libfuzzer_sys::fuzz_target;

/// The clock the decision is taken at (2027-01-15).
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(ours) = json::from_str::<EdgeEntry>(text)
    {
        let serde = serde_json::from_str::<EdgeEntry>(text).ok();
        assert_eq!(serde, Some(canonical(ours)));
    }
    let Ok(entry) = serde_json::from_slice::<EdgeEntry>(data) else {
        return;
    };
    let json = serde_json::to_string(&entry).unwrap();
    assert_eq!(serde_json::from_str::<EdgeEntry>(&json).unwrap(), entry);
    assert_eq!(json::to_string(&entry), json, "written as serde writes it");
    assert_eq!(json::from_str::<EdgeEntry>(&json).as_ref(), Ok(&entry));
    ordering(&entry);
    expiration(&entry);
    decision(&entry);
});

/// The entry with its `meta` as serde writes it: the reader keeps the text as given (serde
/// sorts keys, keeps the last of a repeated one, and writes escapes its own way).
pub fn canonical(mut entry: EdgeEntry) -> EdgeEntry {
    entry.meta = entry.meta.map(|m| JsonObject::from_map(&m.to_map()));
    entry
}

fn ordering(entry: &EdgeEntry) {
    let mut newer = entry.clone();
    newer.version = entry.version.saturating_add(1);
    newer.status = KeyStatus::Active;
    if entry.is_tombstone() {
        assert!(
            !newer.supersedes(entry),
            "a newer active entry replaced a tombstone"
        );
    }
    for other in [&newer, entry] {
        assert!(
            !(other.supersedes(entry) && entry.supersedes(other)),
            "two entries supersede each other"
        );
    }
    assert!(!entry.supersedes(entry), "an entry supersedes itself");
}

fn expiration(entry: &EdgeEntry) {
    let earliest = entry.expires_at.into_iter().chain(entry.retires_at).min();
    let at = entry.kv_expiration();
    assert_eq!(
        at.is_some(),
        earliest.is_some(),
        "an entry without an end is kept for good"
    );
    if let (Some(at), Some(end)) = (at, earliest) {
        assert!(
            at > end,
            "KV would forget the entry at {at}, before its end {end}"
        );
    }
}

/// A key of another format than Keyward's (imported) is unknown to an entry with a prefix, and
/// decided like any other by an entry without one.
fn foreign(entry: &EdgeEntry) {
    let key = PresentedKey::parse_any("sk_live_0123456789abcdefghijklmnop").expect("a foreign key");
    assert!(key.is_foreign());
    let verdict = verify(&key, Some(entry), &RequestContext::default(), NOW);
    if entry.prefix.is_empty() {
        assert_eq!(verdict.key_id.as_deref(), Some(entry.key_id.as_str()));
        if entry.status != KeyStatus::Active {
            assert!(!verdict.valid);
        }
    } else {
        assert_eq!(verdict.code, VerdictCode::NotFound);
        assert_eq!(verdict.key_id, None);
    }
}

fn decision(entry: &EdgeEntry) {
    foreign(entry);
    let Some(key) = key_with_prefix(&entry.prefix) else {
        return;
    };
    let clients = [
        None,
        Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        Some("2001:db8::1".parse().unwrap()),
    ];
    let scopes = [None, Some("read".to_owned()), Some("admin".to_owned())];
    for client_ip in clients {
        for required_scope in scopes.clone() {
            let ctx = RequestContext {
                client_ip,
                required_scope,
                ..RequestContext::default()
            };
            let verdict = verify(&key, Some(entry), &ctx, NOW);
            assert_eq!(verdict.valid, verdict.code == VerdictCode::Valid);
            match entry.status {
                KeyStatus::Revoked => assert_eq!(verdict.code, VerdictCode::Revoked),
                KeyStatus::Disabled => assert_eq!(verdict.code, VerdictCode::Disabled),
                KeyStatus::Active => {}
            }
            if verdict.valid {
                assert!(entry.expires_at.is_none_or(|t| t > NOW));
                assert!(entry.retires_at.is_none_or(|t| t > NOW));
                assert!(
                    entry.allowed_ips.is_empty()
                        || client_ip
                            .is_some_and(|ip| entry.allowed_ips.iter().any(|n| n.contains(&ip)))
                );
            }
            assert_eq!(verdict.key_id.as_deref(), Some(entry.key_id.as_str()));
            // Bound to another workspace, the key is unknown and nothing about it is told.
            let elsewhere = RequestContext {
                workspaces: vec![format!("{}-other", entry.workspace)],
                ..ctx.clone()
            };
            let bound = verify(&key, Some(entry), &elsewhere, NOW);
            assert_eq!(bound.code, VerdictCode::NotFound);
            assert_eq!(bound.key_id, None);
            // What may be stored keeps no personal data on a tombstone.
            let stored = entry.clone().scrubbed();
            if stored.is_tombstone() {
                assert!(stored.name.is_none() && stored.meta.is_none());
            }
        }
    }
    // The same entry never admits a key of another prefix.
    if let Some(other) = key_with_prefix(if entry.prefix == "zz" { "yy" } else { "zz" }) {
        let verdict = verify(&other, Some(entry), &RequestContext::default(), NOW);
        assert_eq!(verdict.code, VerdictCode::NotFound);
        assert_eq!(verdict.key_id, None);
    }
}

fn key_with_prefix(prefix: &str) -> Option<PresentedKey> {
    let mut n = 0u8;
    let secret = SecretKey::generate(prefix, |buf: &mut [u8]| {
        for b in buf {
            n = n.wrapping_add(97) % 248;
            *b = n;
        }
    })
    .ok()?;
    Some(secret.presented())
}
