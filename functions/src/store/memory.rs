//! An in-memory [`KeyStore`] with the same semantics as DynamoDB's, for fast handler tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use keyward_common::sync::{OutcomeCounts, UsageReport};
use keyward_common::{KeyHash, KeyId, KeyRecord, RoleRecord, Timestamp};

use super::item::{self, SK};
use super::{
    AuditEvent, HashRef, IdemClaim, IdemRecord, KeyQuery, KeyStore, Page, Position, Replace,
    StoreError, StoredKey, StoredOwner, UsageHour, balance_applies, hash_changes, role_changes,
};
use keyward_common::KeyStatus;
use keyward_common::credits::CreditTarget;
use keyward_common::sync::BalanceReport;

#[derive(Debug, Default)]
struct State {
    keys: BTreeMap<(String, KeyId), StoredKey>,
    hashes: HashMap<KeyHash, HashRef>,
    audit: BTreeMap<(String, String), AuditEvent>,
    active: HashMap<String, u64>,
    /// Roles by (workspace, name), with the number of non-revoked keys holding each.
    roles: BTreeMap<(String, String), (RoleRecord, u64)>,
    /// Owners by (workspace, owner_id).
    owners: BTreeMap<(String, String), StoredOwner>,
    /// Idempotency slots by (workspace, slot), with their expiry.
    idem: HashMap<(String, String), (IdemRecord, i64)>,
    /// Usage by (workspace, hour, key id), with the (batch, report) markers counted.
    usage: BTreeMap<(String, i64, KeyId), UsageHour>,
    usage_marks: std::collections::HashSet<(String, usize)>,
}

impl State {
    /// Checks that every role `key` gains exists; nothing is changed on failure.
    fn check_roles(&self, before: Option<&StoredKey>, key: &StoredKey) -> Result<(), StoreError> {
        let ws = &key.record.workspace;
        let (gained, _) = role_changes(before, key);
        match gained
            .into_iter()
            .find(|r| !self.roles.contains_key(&(ws.clone(), r.clone())))
        {
            Some(missing) => Err(StoreError::UnknownRole(missing)),
            None => Ok(()),
        }
    }

    /// Moves the holder counts of the roles a key write gains and loses.
    fn count_roles(&mut self, before: Option<&StoredKey>, key: &StoredKey) {
        let ws = &key.record.workspace;
        let (gained, lost) = role_changes(before, key);
        for r in gained {
            if let Some((_, n)) = self.roles.get_mut(&(ws.clone(), r)) {
                *n += 1;
            }
        }
        for r in lost {
            if let Some((_, n)) = self.roles.get_mut(&(ws.clone(), r)) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Keys, hashes, audit events and counters in a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    hooks: Mutex<super::webhook::MemoryHooks>,
    /// How many of the next `idem_complete` calls fail (a test's fault).
    failing_idem_completes: std::sync::atomic::AtomicU32,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` `idem_complete` calls fail, as a throttled or unreachable table
    /// would: what a test of the answer kept for an `Idempotency-Key` needs.
    pub fn fail_next_idem_completes(&self, n: u32) {
        self.failing_idem_completes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The webhook endpoints and deliveries.
    pub(super) fn hooks(&self) -> std::sync::MutexGuard<'_, super::webhook::MemoryHooks> {
        self.hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps an audit event written with a change outside the key state.
    pub(super) fn keep_audit(&self, audit: &AuditEvent) {
        self.lock()
            .audit
            .insert((audit.workspace.clone(), audit.id.clone()), audit.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The hash items currently stored (for tests).
    #[must_use]
    pub fn hash_count(&self) -> usize {
        self.lock().hashes.len()
    }

    /// The workspace's non-revoked key counter (for tests).
    #[must_use]
    pub fn active_keys(&self, workspace: &str) -> u64 {
        self.lock().active.get(workspace).copied().unwrap_or(0)
    }
}

fn hash_ref(key: &StoredKey, retires_at: Option<i64>) -> HashRef {
    HashRef {
        workspace: key.record.workspace.clone(),
        key_id: key.record.id.clone(),
        status: key.record.status,
        retires_at,
    }
}

fn pos(sk: &str) -> Position {
    Position::from([(SK.to_owned(), sk.to_owned())])
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn create(
        &self,
        key: &StoredKey,
        audit: &AuditEvent,
        cap: u64,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let ws = key.record.workspace.clone();
        let active = s.active.get(&ws).copied().unwrap_or(0);
        if active >= cap {
            return Err(StoreError::LimitReached);
        }
        let k = (ws.clone(), key.record.id.clone());
        if s.keys.contains_key(&k) || s.hashes.contains_key(&key.hash) {
            return Err(StoreError::Duplicate);
        }
        s.check_roles(None, key)?;
        s.count_roles(None, key);
        s.keys.insert(k, key.clone());
        s.hashes.insert(key.hash.clone(), hash_ref(key, None));
        s.audit
            .insert((ws.clone(), audit.id.clone()), audit.clone());
        s.active.insert(ws, active + 1);
        Ok(())
    }

    async fn idem_claim(
        &self,
        workspace: &str,
        slot: &str,
        fingerprint: &str,
        now: i64,
        lease_until: i64,
        expires_at: i64,
    ) -> Result<IdemClaim, StoreError> {
        let mut s = self.lock();
        let k = (workspace.to_owned(), slot.to_owned());
        if let Some((rec, exp)) = s.idem.get(&k)
            && *exp >= now
            && (rec.sealed.is_some() || rec.lease_until >= now)
        {
            return Ok(IdemClaim::Existing(rec.clone()));
        }
        let rec = IdemRecord {
            fingerprint: fingerprint.to_owned(),
            sealed: None,
            lease_until,
        };
        s.idem.insert(k, (rec, expires_at));
        Ok(IdemClaim::Claimed)
    }

    async fn idem_complete(
        &self,
        workspace: &str,
        slot: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if self
            .failing_idem_completes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the idempotency record could not be written (a test's fault)"
            )));
        }
        if let Some((rec, _)) = self
            .lock()
            .idem
            .get_mut(&(workspace.to_owned(), slot.to_owned()))
        {
            rec.sealed = Some(sealed.to_vec());
        }
        Ok(())
    }

    async fn idem_release(&self, workspace: &str, slot: &str) -> Result<(), StoreError> {
        let mut s = self.lock();
        let k = (workspace.to_owned(), slot.to_owned());
        if s.idem.get(&k).is_some_and(|(r, _)| r.sealed.is_none()) {
            s.idem.remove(&k);
        }
        Ok(())
    }

    async fn import(
        &self,
        keys: &[(StoredKey, AuditEvent)],
        call_audit: &AuditEvent,
        cap: u64,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for (key, audit) in keys {
            out.push(self.create(key, audit, cap).await);
        }
        self.lock().audit.insert(
            (call_audit.workspace.clone(), call_audit.id.clone()),
            call_audit.clone(),
        );
        Ok(out)
    }

    async fn get(&self, workspace: &str, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        Ok(self
            .lock()
            .keys
            .get(&(workspace.to_owned(), id.clone()))
            .cloned())
    }

    async fn replace(&self, change: Replace<'_>) -> Result<(), StoreError> {
        let mut s = self.lock();
        let r = &change.after.record;
        let k = (r.workspace.clone(), r.id.clone());
        match s.keys.get(&k) {
            Some(cur) if cur.record.version == change.before.record.version => {}
            _ => return Err(StoreError::VersionConflict),
        }
        let (writes, deletes) = hash_changes(&change);
        if writes
            .iter()
            .any(|w| w.new && s.hashes.contains_key(&w.hash))
        {
            return Err(StoreError::Duplicate);
        }
        s.check_roles(Some(change.before), change.after)?;
        s.count_roles(Some(change.before), change.after);
        for h in deletes {
            s.hashes.remove(&h);
        }
        for w in writes {
            s.hashes
                .insert(w.hash, hash_ref(change.after, w.retires_at));
        }
        let mut write = change.after.clone();
        if let Some(cur) = s.keys.get(&k)
            && write.credit.seq == cur.credit.seq
        {
            // The edge's balance reports move on between a read and this write.
            if let (Some(w), Some(c)) = (&mut write.record.credits, &cur.record.credits) {
                w.remaining = c.remaining;
            }
            write.credit.balance_at_ms = cur.credit.balance_at_ms;
        }
        s.keys.insert(k, write);
        s.audit.insert(
            (r.workspace.clone(), change.audit.id.clone()),
            change.audit.clone(),
        );
        let counter = s.active.entry(r.workspace.clone()).or_insert(0);
        *counter = counter.saturating_add_signed(change.active_delta);
        Ok(())
    }

    async fn find_hash(&self, hash: &KeyHash) -> Result<Option<HashRef>, StoreError> {
        Ok(self.lock().hashes.get(hash).cloned())
    }

    async fn list_keys(&self, q: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        let s = self.lock();
        let after = q.after.as_ref().and_then(|p| p.get(SK)).cloned();
        let mut matching = s
            .keys
            .iter()
            .rev()
            .filter(|((ws, _), _)| *ws == q.workspace)
            .map(|(_, k)| &k.record)
            .filter(|r| {
                after
                    .as_ref()
                    .is_none_or(|a| item::key_sk(&r.id).as_str() < a.as_str())
            })
            .filter(|r| q.status.is_none_or(|st| r.status == st))
            .filter(|r| {
                q.owner_id
                    .as_ref()
                    .is_none_or(|o| r.owner_id.as_ref() == Some(o))
            })
            .filter(|r| q.role.as_ref().is_none_or(|role| r.roles.contains(role)));
        let items: Vec<KeyRecord> = matching.by_ref().take(q.limit).cloned().collect();
        let next = if matching.next().is_some() {
            items.last().map(|r| pos(&item::key_sk(&r.id)))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn create_role(&self, role: &RoleRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut s = self.lock();
        let k = (role.workspace.clone(), role.name.clone());
        if s.roles.contains_key(&k) {
            return Err(StoreError::RoleExists(role.name.clone()));
        }
        s.roles.insert(k, (role.clone(), 0));
        s.audit
            .insert((role.workspace.clone(), audit.id.clone()), audit.clone());
        Ok(())
    }

    async fn get_role(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Option<RoleRecord>, StoreError> {
        Ok(self
            .lock()
            .roles
            .get(&(workspace.to_owned(), name.to_owned()))
            .map(|(r, _)| r.clone()))
    }

    async fn update_role(
        &self,
        before_version: u64,
        after: &RoleRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let k = (after.workspace.clone(), after.name.clone());
        match s.roles.get_mut(&k) {
            Some((cur, _)) if cur.version == before_version => *cur = after.clone(),
            _ => return Err(StoreError::VersionConflict),
        }
        s.audit
            .insert((after.workspace.clone(), audit.id.clone()), audit.clone());
        Ok(())
    }

    async fn delete_role(&self, role: &RoleRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut s = self.lock();
        let k = (role.workspace.clone(), role.name.clone());
        match s.roles.get(&k) {
            Some((cur, 0)) if cur.version == role.version => {}
            Some((cur, _)) if cur.version == role.version => {
                return Err(StoreError::RoleInUse(role.name.clone()));
            }
            _ => return Err(StoreError::VersionConflict),
        }
        s.roles.remove(&k);
        s.audit
            .insert((role.workspace.clone(), audit.id.clone()), audit.clone());
        Ok(())
    }

    async fn list_roles(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<RoleRecord>, StoreError> {
        let s = self.lock();
        let after = after.and_then(|p| p.get(SK)).cloned();
        let mut matching = s
            .roles
            .iter()
            .filter(|((ws, _), _)| ws == workspace)
            .filter(|((_, name), _)| {
                after
                    .as_ref()
                    .is_none_or(|a| item::role_sk(name).as_str() > a.as_str())
            })
            .map(|(_, (r, _))| r);
        let items: Vec<RoleRecord> = matching.by_ref().take(limit).cloned().collect();
        let next = if matching.next().is_some() {
            items.last().map(|r| pos(&item::role_sk(&r.name)))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn get_owner(
        &self,
        workspace: &str,
        owner_id: &str,
    ) -> Result<Option<StoredOwner>, StoreError> {
        Ok(self
            .lock()
            .owners
            .get(&(workspace.to_owned(), owner_id.to_owned()))
            .cloned())
    }

    async fn put_owner(
        &self,
        before: Option<&StoredOwner>,
        after: &StoredOwner,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let r = &after.record;
        let k = (r.workspace.clone(), r.owner_id.clone());
        let mut write = after.clone();
        match (s.owners.get(&k), before) {
            (None, None) => {}
            (Some(cur), Some(b)) if cur.record.version == b.record.version => {
                // The edge's balance reports move on between a read and this write.
                if after.credit.seq == cur.credit.seq {
                    if let (Some(w), Some(c)) = (&mut write.record.credits, &cur.record.credits) {
                        w.remaining = c.remaining;
                    }
                    write.credit.balance_at_ms = cur.credit.balance_at_ms;
                }
            }
            _ => return Err(StoreError::VersionConflict),
        }
        s.owners.insert(k, write);
        s.audit
            .insert((r.workspace.clone(), audit.id.clone()), audit.clone());
        Ok(())
    }

    async fn list_owners(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<StoredOwner>, StoreError> {
        let s = self.lock();
        let after = after.and_then(|p| p.get(SK)).cloned();
        let mut matching = s
            .owners
            .iter()
            .filter(|((ws, _), _)| ws == workspace)
            .filter(|((_, id), _)| {
                after
                    .as_ref()
                    .is_none_or(|a| item::owner_sk(id).as_str() > a.as_str())
            })
            .map(|(_, o)| o);
        let items: Vec<StoredOwner> = matching.by_ref().take(limit).cloned().collect();
        let next = if matching.next().is_some() {
            items
                .last()
                .map(|o| pos(&item::owner_sk(&o.record.owner_id)))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn count_owner_keys(&self, workspace: &str, owner_id: &str) -> Result<u64, StoreError> {
        let s = self.lock();
        Ok(s.keys
            .iter()
            .filter(|((ws, _), k)| {
                ws == workspace
                    && k.record.owner_id.as_deref() == Some(owner_id)
                    && k.record.status != KeyStatus::Revoked
            })
            .count() as u64)
    }

    async fn apply_balance(&self, report: &BalanceReport) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let (credits, credit) = match &report.target {
            CreditTarget::Key { workspace, key_id } => {
                match s.keys.get_mut(&(workspace.clone(), key_id.clone())) {
                    Some(k) => (&mut k.record.credits, &mut k.credit),
                    None => return Ok(false),
                }
            }
            CreditTarget::Owner {
                workspace,
                owner_id,
            } => match s.owners.get_mut(&(workspace.clone(), owner_id.clone())) {
                Some(o) => (&mut o.record.credits, &mut o.credit),
                None => return Ok(false),
            },
        };
        if !balance_applies(report, credits.is_some(), credit.seq, credit.balance_at_ms) {
            return Ok(false);
        }
        if let Some(c) = credits {
            c.remaining = report.remaining;
        }
        credit.balance_at_ms = Some(report.at_ms);
        Ok(true)
    }

    async fn list_audit(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let s = self.lock();
        let after = after.and_then(|p| p.get(SK)).cloned();
        let mut matching = s
            .audit
            .iter()
            .rev()
            .filter(|((ws, _), _)| ws == workspace)
            .filter(|((_, id), _)| {
                after
                    .as_ref()
                    .is_none_or(|a| item::audit_sk(id).as_str() < a.as_str())
            })
            .map(|(_, e)| e);
        let items: Vec<AuditEvent> = matching.by_ref().take(limit).cloned().collect();
        let next = if matching.next().is_some() {
            items.last().map(|e| pos(&item::audit_sk(&e.id)))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn key_usage(
        &self,
        workspace: &str,
        key_id: &KeyId,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageHour>, StoreError> {
        Ok(self
            .lock()
            .usage
            .range((workspace.to_owned(), from, KeyId::new(0, [0; 10]))..)
            .take_while(|((ws, hour, _), _)| ws == workspace && *hour < to)
            .filter(|((.., k), _)| k == key_id)
            .map(|(_, u)| u.clone())
            .collect())
    }

    async fn workspace_usage(
        &self,
        workspace: &str,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<Option<Vec<UsageHour>>, StoreError> {
        let state = self.lock();
        let found: Vec<UsageHour> = state
            .usage
            .range((workspace.to_owned(), from, KeyId::new(0, [0; 10]))..)
            .take_while(|((ws, hour, _), _)| ws == workspace && *hour < to)
            .map(|(_, u)| u.clone())
            .collect();
        Ok((found.len() <= max).then_some(found))
    }
}

#[async_trait]
impl super::usage::UsageStore for MemoryStore {
    async fn record(
        &self,
        batch_id: &str,
        index: usize,
        report: &UsageReport,
        _now: i64,
    ) -> anyhow::Result<super::usage::Recorded> {
        let mut state = self.lock();
        if !state.usage_marks.insert((batch_id.to_owned(), index)) {
            return Ok(super::usage::Recorded::Duplicate);
        }
        let slot = state
            .usage
            .entry((report.workspace.clone(), report.hour, report.key_id.clone()))
            .or_insert_with(|| UsageHour {
                key_id: report.key_id.clone(),
                owner_id: None,
                hour: report.hour,
                counts: OutcomeCounts::default(),
            });
        slot.counts.add(&report.counts);
        if report.owner_id.is_some() {
            slot.owner_id.clone_from(&report.owner_id);
        }
        if let Some(t) = report.last_used_at {
            let ws = report.workspace.clone();
            if let Some(key) = state.keys.get_mut(&(ws, report.key_id.clone())) {
                let last = key.record.last_used_at.map_or(i64::MIN, Timestamp::unix);
                if t > last {
                    key.record.last_used_at = Some(Timestamp(t));
                }
            }
        }
        Ok(super::usage::Recorded::Counted)
    }

    async fn balance(&self, report: &keyward_common::sync::BalanceReport) -> anyhow::Result<bool> {
        Ok(KeyStore::apply_balance(self, report).await?)
    }
}
