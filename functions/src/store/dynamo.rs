//! The DynamoDB [`KeyStore`]: one `TransactWriteItems` per mutation, strongly consistent reads.
//!
//! The item layout (attribute names, `meta` stored as a JSON string, timestamps as Number Unix
//! seconds) is documented in [`super::item`].

use std::collections::HashMap;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use keyward_common::{KeyHash, KeyId, KeyRecord, RoleRecord};

use super::item::{
    self, ACTIVE_KEYS, AUDIT_SK_PREFIX, COUNTER_SK, GSI1, GSI1PK, GSI1SK, HASH_SK, IDEM_SK_PREFIX,
    KEY_SK_PREFIX, OWNER_SK_PREFIX, PK, ROLE_SK_PREFIX, SK, TTL,
};
use super::{
    AuditEvent, HashRef, IdemClaim, IdemRecord, KeyQuery, KeyStore, Page, Position, Replace,
    StoreError, StoredKey, StoredOwner, UsageHour, hash_changes, role_changes,
};
use keyward_common::credits::CreditTarget;
use keyward_common::sync::BalanceReport;

/// A [`KeyStore`] on one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    /// A store on `table` through `client`.
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The SDK client (for the later sync/usage functions and tests).
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: Option<&str>,
    ) -> anyhow::Result<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(c) = condition {
            put = put.condition_expression(c);
        }
        Ok(TransactWriteItem::builder().put(put.build()?).build())
    }

    /// The key item's write in a mutation: an update conditional on the version that was read.
    ///
    /// It sets every attribute of `after` and removes those `before` had and `after` lacks, but
    /// never touches `last_used_at`: the `usage` function moves that forward concurrently, and a
    /// whole-item put would move it back. The same holds for the credit balance the edge
    /// reports, unless the write records a credit operation.
    fn key_update(
        &self,
        before: &StoredKey,
        after: &StoredKey,
    ) -> anyhow::Result<TransactWriteItem> {
        self.item_update(
            item::key_to_item(before),
            item::key_to_item(after),
            before.record.version,
            before.credit.seq == after.credit.seq,
            &[item::key::LAST_USED_AT],
        )
    }

    /// A whole-item update of a key or owner item conditional on `version` (see
    /// [`Self::key_update`]): `keep` names attributes left alone, and with `keep_balance` the
    /// reported credit balance is left alone too.
    fn item_update(
        &self,
        before_item: HashMap<String, AttributeValue>,
        after_item: HashMap<String, AttributeValue>,
        version: u64,
        keep_balance: bool,
        keep: &[&str],
    ) -> anyhow::Result<TransactWriteItem> {
        let skip = |k: &str| {
            k == PK
                || k == SK
                || keep.contains(&k)
                || (keep_balance
                    && (k == item::credit::REMAINING || k == item::credit::BALANCE_AT_MS))
        };
        let pk = after_item.get(PK).cloned().context("item without PK")?;
        let sk = after_item.get(SK).cloned().context("item without SK")?;
        let gone: Vec<String> = before_item
            .into_keys()
            .filter(|k| !skip(k) && !after_item.contains_key(k))
            .collect();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, pk)
            .key(SK, sk)
            .condition_expression("#expected_version = :expected_version")
            .expression_attribute_names("#expected_version", item::key::VERSION)
            .expression_attribute_values(":expected_version", n(version));
        let mut sets = Vec::new();
        for (i, (name, value)) in after_item.into_iter().filter(|(k, _)| !skip(k)).enumerate() {
            sets.push(format!("#s{i} = :s{i}"));
            update = update
                .expression_attribute_names(format!("#s{i}"), name)
                .expression_attribute_values(format!(":s{i}"), value);
        }
        let mut removes = Vec::new();
        for (i, name) in gone.into_iter().enumerate() {
            removes.push(format!("#r{i}"));
            update = update.expression_attribute_names(format!("#r{i}"), name);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .context("building item update")?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn counter(
        &self,
        workspace: &str,
        delta: i64,
        cap: Option<u64>,
    ) -> anyhow::Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(COUNTER_SK))
            .update_expression("ADD #n :d")
            .expression_attribute_names("#n", ACTIVE_KEYS)
            .expression_attribute_values(":d", n(delta));
        if let Some(cap) = cap {
            update = update
                .condition_expression("attribute_not_exists(#n) OR #n < :cap")
                .expression_attribute_values(":cap", n(cap));
        }
        Ok(TransactWriteItem::builder().update(update.build()?).build())
    }

    /// One import transaction for the keys `chunk` indexes: each key's item, hash item and
    /// audit event, the counter raised by the chunk's size within `cap`, and each role's holder
    /// count raised by its holders in the chunk.
    async fn import_transaction(
        &self,
        keys: &[(StoredKey, AuditEvent)],
        chunk: &[usize],
        cap: u64,
    ) -> Result<ChunkOutcome, StoreError> {
        let Some(first) = chunk.first() else {
            return Ok(ChunkOutcome::Written);
        };
        let ws = &keys[*first].0.record.workspace;
        let mut items = Vec::new();
        for i in chunk {
            let (key, audit) = &keys[*i];
            items.push(self.put(item::key_to_item(key), Some("attribute_not_exists(PK)"))?);
            items.push(self.put(
                item::hash_to_item(key, &key.hash, None),
                Some("attribute_not_exists(PK)"),
            )?);
            items.push(self.put(item::audit_to_item(audit), Some("attribute_not_exists(PK)"))?);
        }
        let size = chunk.len() as u64;
        let counter_at = items.len();
        let counter = Update::builder()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(ws)))
            .key(SK, s(COUNTER_SK))
            .update_expression("ADD #n :d")
            .condition_expression("attribute_not_exists(#n) OR #n <= :room")
            .expression_attribute_names("#n", ACTIVE_KEYS)
            .expression_attribute_values(":d", n(chunk.len()))
            .expression_attribute_values(":room", n(cap.saturating_sub(size)))
            .build()
            .context("building the import counter")?;
        if size > cap {
            return Ok(ChunkOutcome::OverCap);
        }
        items.push(TransactWriteItem::builder().update(counter).build());
        let roles = chunk_roles(keys, chunk);
        let roles_at = items.len();
        for (role, holders) in &roles {
            let update = Update::builder()
                .table_name(&self.table)
                .key(PK, s(item::workspace_pk(ws)))
                .key(SK, s(item::role_sk(role)))
                .update_expression("ADD #h :d")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_names("#h", item::role::HOLDERS)
                .expression_attribute_values(":d", n(holders))
                .build()
                .context("building a role holder count")?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let audit = &keys[*first].1;
        let Err(r) = self.transact_retrying(items, audit).await else {
            return Ok(ChunkOutcome::Written);
        };
        let mut refused = Vec::new();
        for (pos, i) in chunk.iter().enumerate() {
            if failed(&r, 3 * pos) || failed(&r, 3 * pos + 1) {
                refused.push((*i, StoreError::Duplicate));
            }
        }
        for (k, (role, _)) in roles.iter().enumerate() {
            if failed(&r, roles_at + k) {
                for i in chunk {
                    if keys[*i].0.record.roles.contains(role)
                        && !refused.iter().any(|(x, _)| x == i)
                    {
                        refused.push((*i, StoreError::UnknownRole(role.clone())));
                    }
                }
            }
        }
        if !refused.is_empty() {
            return Ok(ChunkOutcome::Refused(refused));
        }
        if failed(&r, counter_at) {
            return Ok(ChunkOutcome::OverCap);
        }
        Err(other(&r))
    }

    /// The role-item updates of a key write: `+1` holder on each role gained (which must
    /// exist), `-1` on each role lost. Returned with the role name of each item, in order.
    fn role_counts(
        &self,
        before: Option<&StoredKey>,
        after: &StoredKey,
    ) -> anyhow::Result<Vec<(String, TransactWriteItem)>> {
        let (gained, lost) = role_changes(before, after);
        let ws = &after.record.workspace;
        gained
            .into_iter()
            .map(|r| (r, 1))
            .chain(lost.into_iter().map(|r| (r, -1)))
            .map(|(role, delta)| {
                let update = Update::builder()
                    .table_name(&self.table)
                    .key(PK, s(item::workspace_pk(ws)))
                    .key(SK, s(item::role_sk(&role)))
                    .update_expression("ADD #h :d")
                    .condition_expression("attribute_exists(PK)")
                    .expression_attribute_names("#h", item::role::HOLDERS)
                    .expression_attribute_values(":d", n(delta))
                    .build()
                    .context("building a role holder count")?;
                Ok((role, TransactWriteItem::builder().update(update).build()))
            })
            .collect()
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: String,
    ) -> Result<(), Vec<Option<String>>> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => match e.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => Err(c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect()),
                other => {
                    tracing::error!(error = %other, "DynamoDB transaction failed");
                    Err(vec![Some(format!("error: {other}"))])
                }
            },
            Err(e) => {
                tracing::error!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "DynamoDB transaction failed");
                Err(vec![Some("error".to_owned())])
            }
        }
    }

    /// Runs the transaction that records `audit`, retrying a few times when it only collided
    /// with a concurrent one: safe, because every item's condition is checked again on each
    /// attempt. Each attempt carries its [`transaction_token`].
    async fn transact_retrying(
        &self,
        items: Vec<TransactWriteItem>,
        audit: &AuditEvent,
    ) -> Result<(), Vec<Option<String>>> {
        let mut attempt = 0u64;
        loop {
            match self
                .transact(items.clone(), transaction_token(audit, attempt))
                .await
            {
                Err(r)
                    if conflicted(&r)
                        && !r
                            .iter()
                            .any(|c| c.as_deref() == Some("ConditionalCheckFailed"))
                        && attempt < 4 =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(15 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// One page of the workspace's items whose sort key starts with `prefix`, unfiltered.
    async fn workspace_page(
        &self,
        workspace: &str,
        prefix: &str,
        want: usize,
        start: Option<&Position>,
        forward: bool,
    ) -> anyhow::Result<(Vec<Item>, Option<Position>)> {
        let values = HashMap::from([
            (":pk".to_owned(), s(item::workspace_pk(workspace))),
            (":sk".to_owned(), s(prefix)),
        ]);
        self.query_page(QuerySpec {
            index: None,
            key_condition: "PK = :pk AND begins_with(SK, :sk)",
            values,
            filter: None,
            start,
            want,
            key_attrs: &[PK, SK],
            forward,
        })
        .await
    }

    async fn query_page(
        &self,
        spec: QuerySpec<'_>,
    ) -> anyhow::Result<(Vec<Item>, Option<Position>)> {
        let QuerySpec {
            index,
            key_condition,
            mut values,
            filter,
            start,
            want,
            key_attrs,
            forward,
        } = spec;
        let mut names = HashMap::new();
        let filter_expr = filter.map(|f| {
            values.extend(f.values);
            names.extend(f.names);
            f.expression
        });
        let mut exclusive = start.map(|p| {
            p.iter()
                .map(|(k, v)| (k.clone(), s(v)))
                .collect::<HashMap<_, _>>()
        });
        let mut out = Vec::new();
        // Fetch one more than wanted so `next` is only set when something really follows.
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(key_condition)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(forward)
                .limit(i32::try_from(want + 1 - out.len()).unwrap_or(101))
                .set_exclusive_start_key(exclusive.clone());
            if let Some(i) = index {
                q = q.index_name(i);
            } else {
                q = q.consistent_read(true);
            }
            if let Some(f) = &filter_expr {
                q = q.filter_expression(*f);
            }
            if !names.is_empty() {
                q = q.set_expression_attribute_names(Some(names.clone()));
            }
            let resp = q.send().await.context("querying DynamoDB")?;
            out.extend(resp.items().iter().cloned());
            exclusive = resp.last_evaluated_key().cloned();
            if out.len() > want || exclusive.is_none() {
                break;
            }
        }
        let next = if out.len() > want {
            out.truncate(want);
            out.last().map(|it| {
                key_attrs
                    .iter()
                    .filter_map(|a| {
                        it.get(*a)
                            .and_then(|v| v.as_s().ok())
                            .map(|v| ((*a).to_owned(), v.clone()))
                    })
                    .collect()
            })
        } else {
            None
        };
        Ok((out, next))
    }
}

type Item = HashMap<String, AttributeValue>;

/// The `ClientRequestToken` of attempt `attempt` of the transaction that records `audit`.
///
/// Every mutation writes exactly one audit event, unique to it (its id is the time and random
/// bytes) and naming its request, so the token is derived from those: the SDK's own retries of
/// one attempt (a timeout, a lost answer, a 5xx) resend the same token, and DynamoDB applies a
/// committed transaction once, instead of committing a second create that leaves an orphan key
/// counted against the cap. A new attempt after a cancellation gets a new token, so it is
/// really tried again. 32 hex characters (DynamoDB accepts 1 to 36).
#[must_use]
pub fn transaction_token(audit: &AuditEvent, attempt: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        "keyward transaction v1",
        &audit.workspace,
        &audit.request_id,
        &audit.id,
    ] {
        h.update(part.len().to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(attempt.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A filter applied after the key condition.
struct Filter {
    expression: &'static str,
    values: Item,
    names: HashMap<String, String>,
}

/// One paged, newest-first query.
struct QuerySpec<'a> {
    index: Option<&'a str>,
    key_condition: &'a str,
    values: Item,
    filter: Option<Filter>,
    start: Option<&'a Position>,
    want: usize,
    /// The attributes that make up a position (table keys, plus index keys on an index).
    key_attrs: &'a [&'a str],
    /// Ascending sort-key order (names) instead of newest first.
    forward: bool,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Most keys one import transaction writes: 3 items each plus the counter and role counts
/// stay within DynamoDB's 100 items per transaction.
const IMPORT_CHUNK: usize = 25;

/// What became of one import transaction.
enum ChunkOutcome {
    /// Every key of the chunk was written.
    Written,
    /// Nothing was written; these keys are refused, the rest can be tried again.
    Refused(Vec<(usize, StoreError)>),
    /// Nothing was written: the chunk does not fit under the cap.
    OverCap,
}

/// The next keys of `pending` to write together: at most [`IMPORT_CHUNK`], and few enough
/// distinct roles that the transaction stays within 100 items.
fn import_chunk(keys: &[(StoredKey, AuditEvent)], pending: &[usize]) -> Vec<usize> {
    let mut chunk = Vec::new();
    let mut roles: Vec<&String> = Vec::new();
    for i in pending {
        let new_roles = keys[*i]
            .0
            .record
            .roles
            .iter()
            .filter(|r| !roles.contains(r))
            .count();
        let items = 3 * (chunk.len() + 1) + 1 + roles.len() + new_roles;
        if !chunk.is_empty() && (chunk.len() == IMPORT_CHUNK || items > 100) {
            break;
        }
        for r in &keys[*i].0.record.roles {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
        chunk.push(*i);
    }
    chunk
}

/// The roles the keys of `chunk` hold, with how many of them hold each.
fn chunk_roles(keys: &[(StoredKey, AuditEvent)], chunk: &[usize]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for i in chunk {
        for r in super::held_roles(&keys[*i].0) {
            match out.iter_mut().find(|(name, _)| name == r) {
                Some((_, n)) => *n += 1,
                None => out.push((r.clone(), 1)),
            }
        }
    }
    out
}

/// The list filter of `q`: status and role, both optional.
fn key_filter(q: &KeyQuery) -> Option<Filter> {
    let mut parts = Vec::new();
    let mut values = Item::new();
    let mut names = HashMap::new();
    if let Some(st) = q.status {
        parts.push("#st = :st");
        values.insert(":st".to_owned(), s(st.as_str()));
        names.insert("#st".to_owned(), item::key::STATUS.to_owned());
    }
    if let Some(role) = &q.role {
        parts.push("contains(#roles, :role)");
        values.insert(":role".to_owned(), s(role));
        names.insert("#roles".to_owned(), item::key::ROLES.to_owned());
    }
    let expression = match parts.as_slice() {
        [] => return None,
        [one] => *one,
        _ => "#st = :st AND contains(#roles, :role)",
    };
    Some(Filter {
        expression,
        values,
        names,
    })
}

/// Whether the transaction's item `index` failed its condition.
fn failed(reasons: &[Option<String>], index: usize) -> bool {
    reasons.get(index).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
}

/// Whether another transaction touched the same items at the same moment (e.g. two creates in
/// one workspace both updating its counter).
fn conflicted(reasons: &[Option<String>]) -> bool {
    reasons
        .iter()
        .any(|c| c.as_deref() == Some("TransactionConflict"))
}

fn other(reasons: &[Option<String>]) -> StoreError {
    StoreError::Other(anyhow::anyhow!(
        "DynamoDB transaction cancelled: {reasons:?}"
    ))
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn create(
        &self,
        key: &StoredKey,
        audit: &AuditEvent,
        cap: u64,
    ) -> Result<(), StoreError> {
        let ws = &key.record.workspace;
        let mut items = vec![
            self.put(item::key_to_item(key), Some("attribute_not_exists(PK)"))?,
            self.put(
                item::hash_to_item(key, &key.hash, None),
                Some("attribute_not_exists(PK)"),
            )?,
            self.put(item::audit_to_item(audit), Some("attribute_not_exists(PK)"))?,
            self.counter(ws, 1, Some(cap))?,
        ];
        let (roles, role_items): (Vec<_>, Vec<_>) =
            self.role_counts(None, key)?.into_iter().unzip();
        items.extend(role_items);
        match self.transact_retrying(items, audit).await {
            Ok(()) => Ok(()),
            Err(r) if let Some(role) = (0..roles.len()).find(|i| failed(&r, 4 + i)) => {
                Err(StoreError::UnknownRole(roles[role].clone()))
            }
            Err(r) if failed(&r, 3) => Err(StoreError::LimitReached),
            Err(r) if failed(&r, 0) || failed(&r, 1) || failed(&r, 2) => Err(StoreError::Duplicate),
            Err(r) => Err(other(&r)),
        }
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
        use item::idem::{FINGERPRINT, LEASE_UNTIL, SEALED};
        let sk = format!("{IDEM_SK_PREFIX}{slot}");
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(item::workspace_pk(workspace)))
            .item(SK, s(&sk))
            .item(FINGERPRINT, s(fingerprint))
            .item(LEASE_UNTIL, n(lease_until))
            .item(TTL, n(expires_at))
            .condition_expression(
                "attribute_not_exists(PK) OR #ttl < :now OR \
                 (attribute_not_exists(#sealed) AND #lease < :now)",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#sealed", SEALED)
            .expression_attribute_names("#lease", LEASE_UNTIL)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(IdemClaim::Claimed),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
            Err(e) => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "claiming an idempotency key: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )));
            }
        }
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(&sk))
            .consistent_read(true)
            .send()
            .await
            .context("reading an idempotency key")?;
        let Some(it) = resp.item() else {
            // Released between the two calls: a retry will claim it.
            return Ok(IdemClaim::Existing(IdemRecord {
                fingerprint: fingerprint.to_owned(),
                sealed: None,
                lease_until: now,
            }));
        };
        let field = |name: &str| it.get(name);
        Ok(IdemClaim::Existing(IdemRecord {
            fingerprint: field(FINGERPRINT)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            sealed: field(SEALED)
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec()),
            lease_until: field(LEASE_UNTIL)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }))
    }

    async fn idem_complete(
        &self,
        workspace: &str,
        slot: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(format!("{IDEM_SK_PREFIX}{slot}")))
            .update_expression("SET #sealed = :sealed")
            .expression_attribute_names("#sealed", item::idem::SEALED)
            .expression_attribute_values(
                ":sealed",
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(sealed.to_vec())),
            )
            .send()
            .await
            .context("keeping an idempotent answer")?;
        Ok(())
    }

    async fn idem_release(&self, workspace: &str, slot: &str) -> Result<(), StoreError> {
        let resp = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(format!("{IDEM_SK_PREFIX}{slot}")))
            .condition_expression("attribute_not_exists(#sealed)")
            .expression_attribute_names("#sealed", item::idem::SEALED)
            .send()
            .await;
        match resp {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(StoreError::Other(anyhow::anyhow!(
                "releasing an idempotency key: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            ))),
        }
    }

    async fn import(
        &self,
        keys: &[(StoredKey, AuditEvent)],
        call_audit: &AuditEvent,
        cap: u64,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut out: Vec<Option<Result<(), StoreError>>> = keys.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        while !pending.is_empty() {
            let chunk = import_chunk(keys, &pending);
            match self.import_transaction(keys, &chunk, cap).await? {
                ChunkOutcome::Written => {
                    for i in &chunk {
                        out[*i] = Some(Ok(()));
                    }
                }
                ChunkOutcome::Refused(refused) => {
                    for (i, e) in refused {
                        out[i] = Some(Err(e));
                    }
                }
                ChunkOutcome::OverCap => {
                    // Near the cap: one by one, so exactly as many as fit are written. Once
                    // one is refused for the cap, the workspace is full: the rest of the call
                    // is refused without a write each (a 1,000-key import into a full
                    // workspace took over two minutes of refused transactions locally).
                    for i in &chunk {
                        let (key, audit) = &keys[*i];
                        let outcome = self.create(key, audit, cap).await;
                        let full = matches!(outcome, Err(StoreError::LimitReached));
                        out[*i] = Some(outcome);
                        if full {
                            for rest in &pending {
                                out[*rest].get_or_insert(Err(StoreError::LimitReached));
                            }
                            break;
                        }
                    }
                }
            }
            pending.retain(|i| out[*i].is_none());
        }
        let audit = vec![self.put(
            item::audit_to_item(call_audit),
            Some("attribute_not_exists(PK)"),
        )?];
        self.transact_retrying(audit, call_audit)
            .await
            .map_err(|r| other(&r))?;
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(StoreError::Other(anyhow::anyhow!("not attempted")))))
            .collect())
    }

    async fn get(&self, workspace: &str, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(item::key_sk(id)))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading key {id} from DynamoDB"))?;
        match resp.item() {
            Some(it) => Ok(Some(
                item::stored_key_from_item(it).with_context(|| format!("decoding key {id}"))?,
            )),
            None => Ok(None),
        }
    }

    async fn replace(&self, change: Replace<'_>) -> Result<(), StoreError> {
        let r = &change.after.record;
        let mut items = vec![
            self.key_update(change.before, change.after)?,
            self.put(
                item::audit_to_item(change.audit),
                Some("attribute_not_exists(PK)"),
            )?,
        ];
        let (writes, deletes) = hash_changes(&change);
        for w in writes {
            let cond = w.new.then_some("attribute_not_exists(PK)");
            items.push(self.put(
                item::hash_to_item(change.after, &w.hash, w.retires_at),
                cond,
            )?);
        }
        for h in deletes {
            let del = Delete::builder()
                .table_name(&self.table)
                .key(PK, s(item::hash_pk(&h)))
                .key(SK, s(HASH_SK))
                .build()
                .context("building hash delete")?;
            items.push(TransactWriteItem::builder().delete(del).build());
        }
        if change.active_delta != 0 {
            items.push(self.counter(&r.workspace, change.active_delta, None)?);
        }
        let first_role = items.len();
        let (roles, role_items): (Vec<_>, Vec<_>) = self
            .role_counts(Some(change.before), change.after)?
            .into_iter()
            .unzip();
        items.extend(role_items);
        match self.transact_retrying(items, change.audit).await {
            Ok(()) => Ok(()),
            Err(r) if let Some(i) = (0..roles.len()).find(|i| failed(&r, first_role + i)) => {
                Err(StoreError::UnknownRole(roles[i].clone()))
            }
            // A version mismatch, or still another transaction on the same items after retries.
            Err(r) if failed(&r, 0) || conflicted(&r) => Err(StoreError::VersionConflict),
            Err(r) if r.len() > 2 && (2..first_role).any(|i| failed(&r, i)) => {
                Err(StoreError::Duplicate)
            }
            Err(r) => Err(other(&r)),
        }
    }

    async fn find_hash(&self, hash: &KeyHash) -> Result<Option<HashRef>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(item::hash_pk(hash)))
            .key(SK, s(HASH_SK))
            .consistent_read(true)
            .send()
            .await
            .context("reading a hash item from DynamoDB")?;
        match resp.item() {
            Some(it) => Ok(Some(
                item::hash_ref_from_item(it).context("decoding a hash item")?,
            )),
            None => Ok(None),
        }
    }

    async fn list_keys(&self, q: &KeyQuery) -> Result<Page<KeyRecord>, StoreError> {
        let filter = key_filter(q);
        let (items, next) = match &q.owner_id {
            Some(owner) => {
                let values = HashMap::from([
                    (":pk".to_owned(), s(item::owner_pk(&q.workspace, owner))),
                    (":sk".to_owned(), s(KEY_SK_PREFIX)),
                ]);
                self.query_page(QuerySpec {
                    index: Some(GSI1),
                    key_condition: "GSI1PK = :pk AND begins_with(GSI1SK, :sk)",
                    values,
                    filter,
                    start: q.after.as_ref(),
                    want: q.limit,
                    key_attrs: &[PK, SK, GSI1PK, GSI1SK],
                    forward: false,
                })
                .await?
            }
            None => {
                let values = HashMap::from([
                    (":pk".to_owned(), s(item::workspace_pk(&q.workspace))),
                    (":sk".to_owned(), s(KEY_SK_PREFIX)),
                ]);
                self.query_page(QuerySpec {
                    index: None,
                    key_condition: "PK = :pk AND begins_with(SK, :sk)",
                    values,
                    filter,
                    start: q.after.as_ref(),
                    want: q.limit,
                    key_attrs: &[PK, SK],
                    forward: false,
                })
                .await?
            }
        };
        let items = items
            .iter()
            .map(|it| item::stored_key_from_item(it).map(|k| k.record))
            .collect::<Result<Vec<_>, _>>()
            .context("decoding listed keys")?;
        Ok(Page { items, next })
    }

    async fn create_role(&self, role: &RoleRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let items = vec![
            self.put(item::role_to_item(role), Some("attribute_not_exists(PK)"))?,
            self.put(item::audit_to_item(audit), Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact_retrying(items, audit).await {
            Ok(()) => Ok(()),
            Err(r) if failed(&r, 0) => Err(StoreError::RoleExists(role.name.clone())),
            Err(r) if conflicted(&r) => Err(StoreError::VersionConflict),
            Err(r) => Err(other(&r)),
        }
    }

    async fn get_role(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<Option<RoleRecord>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(item::role_sk(name)))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading role {name} from DynamoDB"))?;
        match resp.item() {
            Some(it) => Ok(Some(
                item::role_from_item(it).with_context(|| format!("decoding role {name}"))?,
            )),
            None => Ok(None),
        }
    }

    async fn update_role(
        &self,
        before_version: u64,
        after: &RoleRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        use item::role::{DESCRIPTION, PERMISSIONS, UPDATED_AT, VERSION};
        let description = after.description.as_ref().map(s);
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(&after.workspace)))
            .key(SK, s(item::role_sk(&after.name)))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#p", PERMISSIONS)
            .expression_attribute_names("#u", UPDATED_AT)
            .expression_attribute_names("#d", DESCRIPTION)
            .expression_attribute_values(":expected", n(before_version))
            .expression_attribute_values(":v", n(after.version))
            .expression_attribute_values(
                ":p",
                AttributeValue::L(after.permissions.iter().map(s).collect()),
            )
            .expression_attribute_values(":u", n(after.updated_at.unix()));
        update = match description {
            Some(d) => update
                .update_expression("SET #v = :v, #p = :p, #u = :u, #d = :d")
                .expression_attribute_values(":d", d),
            None => update.update_expression("SET #v = :v, #p = :p, #u = :u REMOVE #d"),
        };
        let items = vec![
            TransactWriteItem::builder()
                .update(update.build().context("building role update")?)
                .build(),
            self.put(item::audit_to_item(audit), Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact_retrying(items, audit).await {
            Ok(()) => Ok(()),
            Err(r) if failed(&r, 0) || conflicted(&r) => Err(StoreError::VersionConflict),
            Err(r) => Err(other(&r)),
        }
    }

    async fn delete_role(&self, role: &RoleRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let del = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(&role.workspace)))
            .key(SK, s(item::role_sk(&role.name)))
            .condition_expression("#v = :v AND (attribute_not_exists(#h) OR #h = :zero)")
            .expression_attribute_names("#v", item::role::VERSION)
            .expression_attribute_names("#h", item::role::HOLDERS)
            .expression_attribute_values(":v", n(role.version))
            .expression_attribute_values(":zero", n(0))
            .build()
            .context("building role delete")?;
        let items = vec![
            TransactWriteItem::builder().delete(del).build(),
            self.put(item::audit_to_item(audit), Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact_retrying(items, audit).await {
            Ok(()) => Ok(()),
            Err(r) if failed(&r, 0) => {
                // Either it is held or it changed: tell which, from a fresh read.
                match self.get_role(&role.workspace, &role.name).await? {
                    Some(cur) if cur.version == role.version => {
                        Err(StoreError::RoleInUse(role.name.clone()))
                    }
                    _ => Err(StoreError::VersionConflict),
                }
            }
            Err(r) if conflicted(&r) => Err(StoreError::VersionConflict),
            Err(r) => Err(other(&r)),
        }
    }

    async fn list_roles(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<RoleRecord>, StoreError> {
        let (items, next) = self
            .workspace_page(workspace, ROLE_SK_PREFIX, limit, after, true)
            .await?;
        let items = items
            .iter()
            .map(item::role_from_item)
            .collect::<Result<Vec<_>, _>>()
            .context("decoding roles")?;
        Ok(Page { items, next })
    }

    async fn get_owner(
        &self,
        workspace: &str,
        owner_id: &str,
    ) -> Result<Option<StoredOwner>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(item::workspace_pk(workspace)))
            .key(SK, s(item::owner_sk(owner_id)))
            .consistent_read(true)
            .send()
            .await
            .context("reading an owner from DynamoDB")?;
        match resp.item() {
            Some(it) => Ok(Some(
                item::owner_from_item(it).context("decoding an owner item")?,
            )),
            None => Ok(None),
        }
    }

    async fn put_owner(
        &self,
        before: Option<&StoredOwner>,
        after: &StoredOwner,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let write = match before {
            None => self.put(item::owner_to_item(after), Some("attribute_not_exists(PK)"))?,
            Some(b) => self.item_update(
                item::owner_to_item(b),
                item::owner_to_item(after),
                b.record.version,
                b.credit.seq == after.credit.seq,
                &[],
            )?,
        };
        let items = vec![
            write,
            self.put(item::audit_to_item(audit), Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact_retrying(items, audit).await {
            Ok(()) => Ok(()),
            Err(r) if failed(&r, 0) || conflicted(&r) => Err(StoreError::VersionConflict),
            Err(r) => Err(other(&r)),
        }
    }

    async fn list_owners(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<StoredOwner>, StoreError> {
        let (items, next) = self
            .workspace_page(workspace, OWNER_SK_PREFIX, limit, after, true)
            .await?;
        let items = items
            .iter()
            .map(item::owner_from_item)
            .collect::<Result<Vec<_>, _>>()
            .context("decoding owners")?;
        Ok(Page { items, next })
    }

    async fn count_owner_keys(&self, workspace: &str, owner_id: &str) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("GSI1PK = :pk AND begins_with(GSI1SK, :sk)")
                .filter_expression("#st <> :revoked")
                .expression_attribute_names("#st", item::key::STATUS)
                .expression_attribute_values(":pk", s(item::owner_pk(workspace, owner_id)))
                .expression_attribute_values(":sk", s(KEY_SK_PREFIX))
                .expression_attribute_values(":revoked", s("revoked"))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .context("counting an owner's keys")?;
            count += u64::try_from(resp.count()).unwrap_or(0);
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(count),
            }
        }
    }

    async fn apply_balance(&self, report: &BalanceReport) -> Result<bool, StoreError> {
        let (pk, sk) = match &report.target {
            CreditTarget::Key { workspace, key_id } => {
                (item::workspace_pk(workspace), item::key_sk(key_id))
            }
            CreditTarget::Owner {
                workspace,
                owner_id,
            } => (item::workspace_pk(workspace), item::owner_sk(owner_id)),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .update_expression("SET #r = :r, #at = :at")
            .condition_expression(
                "attribute_exists(#r) AND #seq = :seq AND (attribute_not_exists(#at) OR #at < :at)",
            )
            .expression_attribute_names("#r", item::credit::REMAINING)
            .expression_attribute_names("#at", item::credit::BALANCE_AT_MS)
            .expression_attribute_names("#seq", item::credit::SEQ)
            .expression_attribute_values(":r", n(report.remaining))
            .expression_attribute_values(":at", n(report.at_ms))
            .expression_attribute_values(":seq", n(report.seq))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(StoreError::Other(
                anyhow::anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e))
                    .context("applying a balance report"),
            )),
        }
    }

    async fn list_audit(
        &self,
        workspace: &str,
        limit: usize,
        after: Option<&Position>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let (items, next) = self
            .workspace_page(workspace, AUDIT_SK_PREFIX, limit, after, false)
            .await?;
        let items = items
            .iter()
            .map(|it| item::audit_from_item(it, workspace))
            .collect::<Result<Vec<_>, _>>()
            .context("decoding audit events")?;
        Ok(Page { items, next })
    }

    async fn key_usage(
        &self,
        workspace: &str,
        key_id: &KeyId,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageHour>, StoreError> {
        let (low, high) = super::usage::key_range(key_id, from, to);
        // One key has at most one item per hour of the range: the range bounds the read.
        let max = usize::try_from((to - from).max(0) / 3600 + 1).unwrap_or(usize::MAX);
        Ok(self
            .usage_range(workspace, low, high, max)
            .await?
            .unwrap_or_default())
    }

    async fn workspace_usage(
        &self,
        workspace: &str,
        from: i64,
        to: i64,
        max: usize,
    ) -> Result<Option<Vec<UsageHour>>, StoreError> {
        let (low, high) = super::usage::hour_range(from, to);
        Ok(self.usage_range(workspace, low, high, max).await?)
    }
}
