//! The bounded in-isolate cache of KV lookups (key entries and role entries): fresh for a few
//! seconds, shorter for unknown keys and roles.
//!
//! Every isolate keeps its own copy; it only saves KV reads for hot keys. A sync that replaces an
//! entry evicts it here, and the short TTLs bound how long another isolate can serve an old entry.

use std::collections::HashMap;

/// Most entries one isolate keeps (a few MB at most).
pub const CAPACITY: usize = 10_000;

/// A cache of KV lookups by KV key (`h:{hash}` or `r:{workspace}:{name}`). `None` values
/// remember that KV had nothing (negative caching).
#[derive(Debug)]
pub struct LookupCache<V> {
    entries: HashMap<String, Cached<V>>,
    capacity: usize,
}

#[derive(Debug)]
struct Cached<V> {
    entry: Option<V>,
    fresh_until_ms: u64,
}

impl<V: Clone> LookupCache<V> {
    /// An empty cache holding at most `capacity` entries.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The cached lookup for `hash` if still fresh at `now_ms`: `Some(None)` is a cached miss.
    #[must_use]
    pub fn get(&mut self, hash: &str, now_ms: u64) -> Option<Option<V>> {
        match self.entries.get(hash) {
            Some(c) if c.fresh_until_ms > now_ms => Some(c.entry.clone()),
            Some(_) => {
                self.entries.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Remembers a lookup until `now_ms + ttl_ms`. A zero TTL caches nothing.
    pub fn insert(&mut self, hash: &str, entry: Option<V>, now_ms: u64, ttl_ms: u64) {
        if ttl_ms == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(hash) {
            self.make_room(now_ms);
        }
        self.entries.insert(
            hash.to_owned(),
            Cached {
                entry,
                fresh_until_ms: now_ms + ttl_ms,
            },
        );
    }

    /// Forgets `hash` (a sync replaced its entry).
    pub fn evict(&mut self, hash: &str) {
        self.entries.remove(hash);
    }

    /// How many entries are held.
    #[cfg(test)]
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    #[cfg(test)]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    // Drops everything stale; if the cache is still full, drops the entry closest to going stale
    // (all entries share one of two TTLs, so that is roughly the least recently loaded).
    fn make_room(&mut self, now_ms: u64) {
        self.entries.retain(|_, c| c.fresh_until_ms > now_ms);
        if self.entries.len() >= self.capacity
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, c)| c.fresh_until_ms)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_miss_is_remembered_until_its_ttl() {
        let mut c = LookupCache::<u8>::new(10);
        c.insert("a", None, 1_000, 2_000);
        assert_eq!(c.get("a", 2_999), Some(None));
        assert_eq!(c.get("a", 3_000), None);
        assert!(c.is_empty());
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let mut c = LookupCache::<u8>::new(3);
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            c.insert(k, None, 0, 100 + i as u64);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("a", 0), None, "the stalest entry went first");
        assert_eq!(c.get("e", 0), Some(None));
    }

    #[test]
    fn eviction_forgets_an_entry() {
        let mut c = LookupCache::<u8>::new(3);
        c.insert("a", None, 0, 100);
        c.evict("a");
        assert_eq!(c.get("a", 0), None);
    }
}
