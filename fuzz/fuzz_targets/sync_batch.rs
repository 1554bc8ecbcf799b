//! The bodies of signed batches, once their signature is checked: a `SyncBatch` (control plane →
//! edge) and a `UsageBatch` (edge → control plane's usage function), as JSON.
//!
//! Properties: the edge's hand-written reader reads a `SyncBatch` only when serde does, to the
//! same batch, and it writes both batches as serde does; whatever deserialises serialises back
//! to JSON that deserialises to the same value;
//! every item's hash is a valid KV key; applying a batch's entries in any order keeps a tombstone
//! a tombstone (the replication rule "revoked stays revoked"), and a role tombstone is replaced
//! only by a later incarnation of the role; nothing panics.
#![no_main]

use keyward_common::json::{self, JsonObject};
use keyward_common::sync::{SyncBatch, UsageBatch};
use keyward_common::{EdgeEntry, KeyHash, RoleEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(mut ours) = json::from_str::<SyncBatch>(text)
    {
        // An entry's `meta` as serde writes it (the reader keeps the text as given).
        for item in &mut ours.items {
            item.entry.meta = item
                .entry
                .meta
                .take()
                .map(|m| JsonObject::from_map(&m.to_map()));
        }
        assert_eq!(serde_json::from_str::<SyncBatch>(text).ok(), Some(ours));
    }
    if let Ok(batch) = serde_json::from_slice::<SyncBatch>(data) {
        sync_batch(&batch);
        roles(&batch);
    }
    if let Ok(batch) = serde_json::from_slice::<UsageBatch>(data) {
        let json = serde_json::to_string(&batch).unwrap();
        assert_eq!(serde_json::from_str::<UsageBatch>(&json).unwrap(), batch);
        assert_eq!(json::to_string(&batch), json, "written as serde writes it");
    }
});

fn sync_batch(batch: &SyncBatch) {
    let json = serde_json::to_string(batch).unwrap();
    assert_eq!(&serde_json::from_str::<SyncBatch>(&json).unwrap(), batch);
    assert_eq!(json::to_string(batch), json, "written as serde writes it");
    assert_eq!(json::from_str::<SyncBatch>(&json).as_ref(), Ok(batch));
    for item in &batch.items {
        assert_eq!(KeyHash::parse(item.hash.as_str()).as_ref(), Ok(&item.hash));
        assert!(item.hash.kv_key().starts_with("h:"));
    }
    // The edge's rule for one KV name: write an entry only when it supersedes the stored one.
    // Applied forwards and backwards, once a tombstone is stored it stays.
    let entries: Vec<&EdgeEntry> = batch.items.iter().map(|i| &i.entry).collect();
    for order in [entries.clone(), entries.into_iter().rev().collect()] {
        let mut stored: Option<&EdgeEntry> = None;
        for entry in order {
            let was_tombstone = stored.is_some_and(EdgeEntry::is_tombstone);
            if stored.is_none_or(|s| entry.supersedes(s)) {
                assert!(!was_tombstone, "a tombstone was replaced");
                stored = Some(entry);
            }
        }
    }
}

/// The role rule: applied in any order, a stored role tombstone is only ever replaced by an
/// entry of a later incarnation (`created_at`), never by a write of its own.
pub fn roles(batch: &SyncBatch) {
    let entries: Vec<&RoleEntry> = batch.roles.iter().map(|r| &r.entry).collect();
    for order in [entries.clone(), entries.into_iter().rev().collect()] {
        let mut stored: Option<&RoleEntry> = None;
        for entry in order {
            if stored.is_none_or(|s| entry.supersedes(s)) {
                if let Some(s) = stored.filter(|s| s.deleted) {
                    assert!(
                        entry.created_at > s.created_at,
                        "a role tombstone was replaced"
                    );
                }
                stored = Some(entry);
            }
        }
    }
    for role in &batch.roles {
        if let Some(k) = role.kv_key() {
            assert!(k.starts_with("r:") && k.matches(':').count() == 2, "{k}");
        }
    }
}
