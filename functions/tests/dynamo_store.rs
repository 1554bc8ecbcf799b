//! The DynamoDB store against a real moto server started by the test (its own port and table).
//!
//! Needs the project venv's moto (`cargo xtask bootstrap`; `KEYWARD_REPO` names another
//! checkout's venv), started by `keyward_tests::moto::Moto`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use keyward_common::credits::{CreditOp, CreditOpKind, CreditTarget, Credits};
use keyward_common::record::{NamedRateLimit, OwnerRecord, OwnerStatus};
use keyward_common::sync::BalanceReport;
use keyward_common::{KeyId, KeyRecord, KeyStatus, SecretKey, Timestamp};
use keyward_functions::store::dynamo::DynamoStore;
use keyward_functions::store::item::{self, GSI1, GSI1PK, GSI1SK, PK, SK};
use keyward_functions::store::{
    AuditEvent, CreditState, KeyQuery, KeyStore, Replace, StoreError, StoredKey, StoredOwner,
};
use keyward_tests::moto::Moto;
use keyward_tests::paths::repo_root;

/// moto, started by the end-to-end harness's launcher (the fixed `tests/moto_server.py`), with its
/// log under `target/keyward/runs/`.
fn start_moto() -> Moto {
    let log = repo_root().join(format!(
        "target/keyward/runs/dynamo-store-moto-{}.log",
        std::process::id()
    ));
    Moto::start(&log).expect("moto must start (run `cargo xtask bootstrap` for the venv)")
}

async fn store(moto: &Moto) -> DynamoStore {
    let client = moto.dynamodb();
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name("keyward-test")
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![attr(PK), attr(SK), attr(GSI1PK), attr(GSI1SK)]))
        .set_key_schema(Some(vec![key(PK, KeyType::Hash), key(SK, KeyType::Range)]))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI1)
                .set_key_schema(Some(vec![
                    key(GSI1PK, KeyType::Hash),
                    key(GSI1SK, KeyType::Range),
                ]))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    DynamoStore::new(client, "keyward-test")
}

fn secret() -> SecretKey {
    SecretKey::generate("kw", |b: &mut [u8]| getrandom::fill(b).unwrap()).unwrap()
}

fn new_key(ws: &str, ms: u64, n: u8, owner: Option<&str>) -> (StoredKey, SecretKey) {
    let s = secret();
    let key = StoredKey {
        record: KeyRecord {
            id: KeyId::new(ms, [n; 10]),
            workspace: ws.into(),
            name: format!("key {n}"),
            key_prefix: s.presented().display_prefix(),
            scopes: vec!["read".into()],
            roles: vec![],
            permissions: vec![],
            owner_id: owner.map(Into::into),
            meta: Some(serde_json::from_str(r#"{"plan":"pro"}"#).unwrap()),
            status: KeyStatus::Active,
            created_at: Timestamp(1_795_000_000),
            updated_at: Timestamp(1_795_000_000),
            expires_at: None,
            last_used_at: None,
            allowed_ips: vec!["10.0.0.0/8".parse().unwrap()],
            rate_limit: None,
            rate_limits: Vec::new(),
            credits: None,
            version: 1,
            imported: false,
        },
        hash: s.hash(),
        previous: None,
        credit: Default::default(),
    };
    (key, s)
}

fn audit(ws: &str, id: &KeyId, action: &str, ms: u64) -> AuditEvent {
    AuditEvent {
        id: format!("{ms:013}#{action}"),
        workspace: ws.into(),
        at: Timestamp(i64::try_from(ms / 1000).unwrap()),
        actor: "jwt:test".into(),
        action: action.into(),
        key_id: Some(id.to_string()),
        role: None,
        webhook_id: None,
        owner_id: None,
        changed: vec![],
        request_id: "req".into(),
        source_ip: None,
    }
}

async fn raw(store: &DynamoStore, pk: &str, sk: &str) -> Option<HashMap<String, AttributeValue>> {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key(PK, AttributeValue::S(pk.into()))
        .key(SK, AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap()
        .item
}

async fn counter(store: &DynamoStore, ws: &str) -> String {
    raw(store, &item::workspace_pk(ws), item::COUNTER_SK)
        .await
        .unwrap()[item::ACTIVE_KEYS]
        .as_n()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_dynamodb_store_keeps_keys_hashes_audit_and_counter_consistent() {
    let moto = start_moto();
    let store = store(&moto).await;
    let ws = "acme";

    // create
    let (k1, s1) = new_key(ws, 1_795_000_000_001, 1, Some("u1"));
    store
        .create(&k1, &audit(ws, &k1.record.id, "key.create", 1), 2)
        .await
        .unwrap();
    let (k2, _) = new_key(ws, 1_795_000_000_002, 2, None);
    store
        .create(&k2, &audit(ws, &k2.record.id, "key.create", 2), 2)
        .await
        .unwrap();
    assert_eq!(counter(&store, ws).await, "2");
    let (k3, _) = new_key(ws, 1_795_000_000_003, 3, None);
    assert!(matches!(
        store
            .create(&k3, &audit(ws, &k3.record.id, "key.create", 3), 2)
            .await,
        Err(StoreError::LimitReached)
    ));
    assert!(
        store.get(ws, &k3.record.id).await.unwrap().is_none(),
        "nothing half-written"
    );
    // The same secret twice: the hash item's condition refuses it.
    let mut dup = k3.clone();
    dup.hash = k1.hash.clone();
    assert!(matches!(
        store
            .create(&dup, &audit(ws, &dup.record.id, "key.create", 4), 10)
            .await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(counter(&store, ws).await, "2");
    assert!(
        store.get(ws, &dup.record.id).await.unwrap().is_none(),
        "nothing half-written"
    );

    // get + hash lookup
    assert_eq!(
        store.get(ws, &k1.record.id).await.unwrap(),
        Some(k1.clone())
    );
    let href = store.find_hash(&s1.hash()).await.unwrap().unwrap();
    assert_eq!(href.key_id, k1.record.id);
    assert_eq!(href.status, KeyStatus::Active);
    assert!(store.get("globex", &k1.record.id).await.unwrap().is_none());

    // list: newest first, pages, owner index, status filter
    let q = |limit, after, owner: Option<&str>, status| KeyQuery {
        workspace: ws.into(),
        status,
        owner_id: owner.map(Into::into),
        role: None,
        limit,
        after,
    };
    let page = store.list_keys(&q(1, None, None, None)).await.unwrap();
    assert_eq!(page.items[0].id, k2.record.id);
    let next = page.next.clone().expect("a second page");
    let page2 = store
        .list_keys(&q(1, Some(next), None, None))
        .await
        .unwrap();
    assert_eq!(page2.items[0].id, k1.record.id);
    assert!(page2.next.is_none());
    let owned = store
        .list_keys(&q(10, None, Some("u1"), None))
        .await
        .unwrap();
    assert_eq!(owned.items.len(), 1);
    assert_eq!(owned.items[0].id, k1.record.id);

    // update: conditional on the version read
    let mut v2 = k1.clone();
    v2.record.name = "renamed".into();
    v2.record.status = KeyStatus::Disabled;
    v2.record.version = 2;
    let replace = async |before, after, action: &str, ms, active_delta| {
        let audit = audit(ws, &k1.record.id, action, ms);
        store
            .replace(Replace {
                before,
                after,
                audit: &audit,
                active_delta,
            })
            .await
    };
    // The usage function moves last_used_at forward between the read and the write.
    let (pk, sk) = (item::workspace_pk(ws), item::key_sk(&k1.record.id));
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key(PK, AttributeValue::S(pk.clone()))
        .key(SK, AttributeValue::S(sk.clone()))
        .update_expression("SET last_used_at = :t")
        .expression_attribute_values(":t", AttributeValue::N("1900000000".into()))
        .send()
        .await
        .unwrap();
    replace(&k1, &v2, "key.update", 10, 0).await.unwrap();
    let stored = raw(&store, &pk, &sk).await.unwrap();
    assert_eq!(
        stored.get("last_used_at"),
        Some(&AttributeValue::N("1900000000".into())),
        "a mutation never moves last_used_at back"
    );
    assert_eq!(
        stored.get("name"),
        Some(&AttributeValue::S("renamed".into()))
    );
    assert!(matches!(
        replace(&k1, &v2, "key.update", 11, 0).await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(
        store.find_hash(&k1.hash).await.unwrap().unwrap().status,
        KeyStatus::Disabled,
        "the hash item follows the status"
    );
    let disabled = store
        .list_keys(&q(10, None, None, Some(KeyStatus::Disabled)))
        .await
        .unwrap();
    assert_eq!(disabled.items.len(), 1);

    // rotate with grace: a new hash item, the old one retiring with a TTL
    let s4 = secret();
    let mut v3 = v2.clone();
    v3.record.version = 3;
    v3.hash = s4.hash();
    v3.previous = Some((k1.hash.clone(), 1_795_000_600));
    replace(&v2, &v3, "key.rotate", 20, 0).await.unwrap();
    let old = raw(&store, &item::hash_pk(&k1.hash), item::HASH_SK)
        .await
        .unwrap();
    assert_eq!(old[item::TTL].as_n().unwrap(), "1795087000");
    assert_eq!(
        store.find_hash(&k1.hash).await.unwrap().unwrap().retires_at,
        Some(1_795_000_600)
    );
    let mut expected = v3.clone();
    expected.record.last_used_at = Some(Timestamp(1_900_000_000));
    assert_eq!(store.get(ws, &k1.record.id).await.unwrap(), Some(expected));

    // rotate again without grace: both earlier hashes go
    let s5 = secret();
    let mut v4 = v3.clone();
    v4.record.version = 4;
    v4.hash = s5.hash();
    v4.previous = None;
    replace(&v3, &v4, "key.rotate", 30, 0).await.unwrap();
    assert!(store.find_hash(&k1.hash).await.unwrap().is_none());
    assert!(store.find_hash(&s4.hash()).await.unwrap().is_none());
    assert!(store.find_hash(&s5.hash()).await.unwrap().is_some());

    // revoke: counter down, hash item marked
    let mut v5 = v4.clone();
    v5.record.version = 5;
    v5.record.status = KeyStatus::Revoked;
    replace(&v4, &v5, "key.revoke", 40, -1).await.unwrap();
    assert_eq!(counter(&store, ws).await, "1");
    assert_eq!(
        store.find_hash(&s5.hash()).await.unwrap().unwrap().status,
        KeyStatus::Revoked
    );
    // ...which frees a slot under the cap.
    store
        .create(&k3, &audit(ws, &k3.record.id, "key.create", 50), 2)
        .await
        .unwrap();

    // audit: newest first, paged
    let page = store.list_audit(ws, 3, None).await.unwrap();
    let actions: Vec<&str> = page.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["key.create", "key.revoke", "key.rotate"]);
    let rest = store.list_audit(ws, 10, page.next.as_ref()).await.unwrap();
    assert_eq!(rest.items.len(), 4);
    assert!(rest.next.is_none());
}

fn role(ws: &str, name: &str, perms: &[&str], version: u64) -> keyward_common::RoleRecord {
    keyward_common::RoleRecord {
        workspace: ws.into(),
        name: name.into(),
        description: Some("d".into()),
        permissions: perms.iter().map(|p| (*p).to_owned()).collect(),
        created_at: Timestamp(1_795_000_000),
        updated_at: Timestamp(1_795_000_000),
        version,
    }
}

fn role_audit(ws: &str, name: &str, ms: u64) -> AuditEvent {
    AuditEvent {
        id: format!("{ms:013}#role"),
        workspace: ws.into(),
        at: Timestamp(1_795_000_000),
        actor: "jwt:test".into(),
        action: "role.test".into(),
        key_id: None,
        role: Some(name.into()),
        webhook_id: None,
        owner_id: None,
        changed: vec![],
        request_id: "req".into(),
        source_ip: None,
    }
}

/// The role conditions are DynamoDB expressions: a key cannot name a missing role, a held role
/// cannot be deleted, and the holder count follows creates, role changes and revocations.
#[tokio::test]
async fn the_dynamodb_store_counts_role_holders_in_the_key_transactions() {
    let moto = start_moto();
    let store = store(&moto).await;
    let ws = "acme";
    let holders = |store: &DynamoStore| {
        let store = store.clone();
        async move {
            raw(&store, &item::workspace_pk(ws), &item::role_sk("sender"))
                .await
                .unwrap()
                .get(item::role::HOLDERS)
                .map_or("0".to_owned(), |v| v.as_n().unwrap().clone())
        }
    };
    let sender = role(ws, "sender", &["sms.send"], 1);
    store
        .create_role(&sender, &role_audit(ws, "sender", 1))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_role(&sender, &role_audit(ws, "sender", 2))
            .await,
        Err(StoreError::RoleExists(_))
    ));

    let (mut k1, _) = new_key(ws, 1_795_000_000_001, 1, None);
    k1.record.roles = vec!["sender".into(), "ghost".into()];
    assert!(matches!(
        store.create(&k1, &audit(ws, &k1.record.id, "key.create", 10), 10).await,
        Err(StoreError::UnknownRole(r)) if r == "ghost"
    ));
    assert!(
        store.get(ws, &k1.record.id).await.unwrap().is_none(),
        "nothing half-written"
    );
    k1.record.roles = vec!["sender".into()];
    store
        .create(&k1, &audit(ws, &k1.record.id, "key.create", 11), 10)
        .await
        .unwrap();
    assert_eq!(holders(&store).await, "1");
    assert!(matches!(
        store
            .delete_role(&sender, &role_audit(ws, "sender", 12))
            .await,
        Err(StoreError::RoleInUse(_))
    ));

    // Updating the role keeps its holder count; a stale version is refused.
    let mut updated = role(ws, "sender", &["sms.send", "billing.read"], 2);
    updated.description = None;
    store
        .update_role(1, &updated, &role_audit(ws, "sender", 13))
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_role(1, &updated, &role_audit(ws, "sender", 14))
            .await,
        Err(StoreError::VersionConflict)
    ));
    let read = store.get_role(ws, "sender").await.unwrap().unwrap();
    assert_eq!(read, updated);
    assert_eq!(holders(&store).await, "1");

    // Revoking the holder frees the role.
    let mut revoked = k1.clone();
    revoked.record.status = KeyStatus::Revoked;
    revoked.record.version = 2;
    store
        .replace(Replace {
            before: &k1,
            after: &revoked,
            audit: &audit(ws, &k1.record.id, "key.revoke", 15),
            active_delta: -1,
        })
        .await
        .unwrap();
    assert_eq!(holders(&store).await, "0");
    assert!(matches!(
        store
            .delete_role(&sender, &role_audit(ws, "sender", 16))
            .await,
        Err(StoreError::VersionConflict)
    ));
    store
        .delete_role(&updated, &role_audit(ws, "sender", 17))
        .await
        .unwrap();
    assert!(store.get_role(ws, "sender").await.unwrap().is_none());

    // Listing is by name, paged.
    for (i, n) in ["c", "a", "b"].into_iter().enumerate() {
        store
            .create_role(&role(ws, n, &[], 1), &role_audit(ws, n, 20 + i as u64))
            .await
            .unwrap();
    }
    let page = store.list_roles(ws, 2, None).await.unwrap();
    let names: Vec<_> = page.items.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let rest = store.list_roles(ws, 2, page.next.as_ref()).await.unwrap();
    assert_eq!(rest.items[0].name, "c");
    assert!(rest.next.is_none());
}

/// Import writes keys 25 to a transaction; a duplicate, a missing role or the cap refuses only
/// the keys concerned, and the counter ends exactly at the cap.
#[tokio::test]
async fn the_dynamodb_store_imports_in_chunks_and_refuses_only_the_bad_keys() {
    let moto = start_moto();
    let store = store(&moto).await;
    let ws = "acme";
    store
        .create_role(
            &role(ws, "sender", &["sms.send"], 1),
            &role_audit(ws, "sender", 1),
        )
        .await
        .unwrap();
    let (existing, _) = new_key(ws, 1_795_000_000_000, 200, None);
    store
        .create(
            &existing,
            &audit(ws, &existing.record.id, "key.create", 2),
            60,
        )
        .await
        .unwrap();
    let mut keys = Vec::new();
    for i in 0..60u8 {
        let (mut k, _) = new_key(ws, 1_795_000_001_000 + u64::from(i), i, None);
        k.record.imported = true;
        match i {
            7 => k.hash = existing.hash.clone(),
            30 => k.record.roles = vec!["ghost".into()],
            _ if i % 2 == 0 => k.record.roles = vec!["sender".into()],
            _ => {}
        }
        let a = audit(ws, &k.record.id, "key.import", 1000 + u64::from(i));
        keys.push((k, a));
    }
    let call = role_audit(ws, "", 5000);
    // Cap 59: the existing key and the 58 good imports fit exactly.
    let out = store.import(&keys, &call, 59).await.unwrap();
    assert!(matches!(out[7], Err(StoreError::Duplicate)));
    assert!(matches!(&out[30], Err(StoreError::UnknownRole(r)) if r == "ghost"));
    let written = out.iter().filter(|o| o.is_ok()).count();
    let over = out
        .iter()
        .filter(|o| matches!(o, Err(StoreError::LimitReached)))
        .count();
    assert_eq!((written, over), (58, 0), "{out:?}");
    assert_eq!(counter(&store, ws).await, "59");
    let sender_holders = raw(&store, &item::workspace_pk(ws), &item::role_sk("sender"))
        .await
        .unwrap()[item::role::HOLDERS]
        .as_n()
        .unwrap()
        .clone();
    assert_eq!(
        sender_holders, "29",
        "30 even keys minus the one refused for its other role"
    );
    let read = store.get(ws, &keys[1].0.record.id).await.unwrap().unwrap();
    assert!(read.record.imported);
    // Nothing more fits.
    let (more, _) = new_key(ws, 1_795_000_002_000, 250, None);
    let a = audit(ws, &more.record.id, "key.import", 9000);
    let out = store
        .import(&[(more, a)], &role_audit(ws, "", 9001), 59)
        .await
        .unwrap();
    assert!(matches!(out[0], Err(StoreError::LimitReached)));
}

#[tokio::test]
async fn usage_is_counted_per_hour_once_per_report_and_read_by_key_and_by_range() {
    use keyward_common::sync::{OutcomeCounts, UsageReport};
    use keyward_functions::usage::{DynamoUsage, Recorded, UsageStore};
    let moto = start_moto();
    let store = store(&moto).await;
    let usage = DynamoUsage::new(moto.dynamodb(), "keyward-test");
    let hour = 1_800_000_000;
    let (a, b) = (KeyId::new(1, [1; 10]), KeyId::new(2, [2; 10]));
    let report = |key: &KeyId, owner: Option<&str>, at: i64, counts: OutcomeCounts| UsageReport {
        workspace: "acme".into(),
        key_id: key.clone(),
        owner_id: owner.map(Into::into),
        hour: at,
        counts,
        last_used_at: None,
    };
    let some = OutcomeCounts {
        valid: 4,
        rate_limited: 1,
        usage_exceeded: 2,
        credits_spent: 40,
        ..OutcomeCounts::default()
    };
    let reports = [
        report(&a, Some("cust"), hour, some),
        report(&a, Some("cust"), hour + 3600, some),
        report(&b, None, hour, some),
    ];
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(
            usage.record("batch-0001", i, r, hour).await.unwrap(),
            Recorded::Counted
        );
    }
    // A resent batch adds nothing; another batch with the same hour adds up.
    assert_eq!(
        usage
            .record("batch-0001", 0, &reports[0], hour)
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    usage
        .record("batch-0002", 0, &reports[0], hour)
        .await
        .unwrap();

    let of_a = store
        .key_usage("acme", &a, hour, hour + 7200)
        .await
        .unwrap();
    assert_eq!(of_a.len(), 2);
    assert_eq!(of_a[0].counts.valid, 8, "two batches of 4");
    assert_eq!(of_a[0].counts.credits_spent, 80);
    assert_eq!(of_a[0].owner_id.as_deref(), Some("cust"));
    assert_eq!(of_a[1].counts, some);
    let first_hour = store
        .key_usage("acme", &a, hour, hour + 3600)
        .await
        .unwrap();
    assert_eq!(first_hour.len(), 1, "the range's end is exclusive");

    let all = store
        .workspace_usage("acme", hour, hour + 7200, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].hour <= w[1].hour), "by hour");
    assert!(
        store
            .workspace_usage("acme", hour, hour + 7200, 2)
            .await
            .unwrap()
            .is_none(),
        "more than the cap is refused, not cut"
    );
    assert!(
        store
            .workspace_usage("other", hour, hour + 7200, 100)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
}

fn owner_audit(ws: &str, owner: &str, ms: u64) -> AuditEvent {
    AuditEvent {
        owner_id: Some(owner.into()),
        key_id: None,
        action: "owner.test".into(),
        ..audit(ws, &KeyId::new(ms, [0; 10]), "owner", ms)
    }
}

fn credit_op(target: CreditTarget, seq: u64, op: CreditOpKind, value: u64) -> CreditOp {
    CreditOp {
        target,
        seq,
        op,
        value,
        refill: None,
        at: 1_795_000_000,
    }
}

#[tokio::test]
async fn the_dynamodb_store_keeps_owners_credit_operations_and_edge_balances() {
    let moto = start_moto();
    let store = store(&moto).await;
    let ws = "acme";
    let target = CreditTarget::Owner {
        workspace: ws.into(),
        owner_id: "cus/1 é".into(),
    };
    let mut owner = StoredOwner {
        record: OwnerRecord {
            workspace: ws.into(),
            owner_id: "cus/1 é".into(),
            status: OwnerStatus::Active,
            meta: Some(serde_json::from_str(r#"{"plan":"pro"}"#).unwrap()),
            rate_limits: vec![NamedRateLimit {
                name: "minute".into(),
                limit: 3,
                period_s: 60,
            }],
            credits: Some(Credits {
                remaining: 50,
                refill: None,
            }),
            key_count: 0,
            created_at: Timestamp(1_795_000_000),
            updated_at: Timestamp(1_795_000_000),
            version: 1,
        },
        credit: CreditState {
            seq: 1,
            op: Some(credit_op(target.clone(), 1, CreditOpKind::Set, 50)),
            balance_at_ms: None,
        },
    };
    store
        .put_owner(None, &owner, &owner_audit(ws, "cus/1 é", 1))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_owner(None, &owner, &owner_audit(ws, "cus/1 é", 2))
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(
        store.get_owner(ws, "cus/1 é").await.unwrap().unwrap(),
        owner
    );

    // Balances: only for the latest operation, only forward.
    let report = |remaining, seq, at_ms| BalanceReport {
        target: target.clone(),
        remaining,
        seq,
        at_ms,
    };
    assert!(store.apply_balance(&report(40, 1, 1_000)).await.unwrap());
    assert!(!store.apply_balance(&report(30, 1, 999)).await.unwrap());
    assert!(!store.apply_balance(&report(30, 2, 2_000)).await.unwrap());
    let read = store.get_owner(ws, "cus/1 é").await.unwrap().unwrap();
    assert_eq!(read.record.credits.unwrap().remaining, 40);
    assert_eq!(read.credit.balance_at_ms, Some(1_000));

    // A replacement that records no operation keeps the reported balance (it read 50 before).
    let before = owner.clone();
    owner.record.status = OwnerStatus::Disabled;
    owner.record.version = 2;
    store
        .put_owner(Some(&before), &owner, &owner_audit(ws, "cus/1 é", 3))
        .await
        .unwrap();
    let read = store.get_owner(ws, "cus/1 é").await.unwrap().unwrap();
    assert_eq!(read.record.status, OwnerStatus::Disabled);
    assert_eq!(read.record.credits.unwrap().remaining, 40);
    // A stale version is refused.
    assert!(matches!(
        store
            .put_owner(Some(&before), &owner, &owner_audit(ws, "cus/1 é", 4))
            .await,
        Err(StoreError::VersionConflict)
    ));
    // One that records an operation writes its balance and seq.
    let before = read;
    let mut after = before.clone();
    after.record.version = 3;
    after.record.credits = Some(Credits {
        remaining: 45,
        refill: None,
    });
    after.credit.seq = 2;
    after.credit.op = Some(credit_op(target.clone(), 2, CreditOpKind::Increment, 5));
    store
        .put_owner(Some(&before), &after, &owner_audit(ws, "cus/1 é", 5))
        .await
        .unwrap();
    let read = store.get_owner(ws, "cus/1 é").await.unwrap().unwrap();
    assert_eq!(read.record.credits.unwrap().remaining, 45);
    assert_eq!(read.credit.seq, 2);
    assert!(store.apply_balance(&report(44, 2, 1_500)).await.unwrap());

    // key_count: keys naming the owner that are not revoked, from the owner index.
    let (k1, _) = new_key(ws, 1_795_000_000_101, 101, Some("cus/1 é"));
    let (k2, _) = new_key(ws, 1_795_000_000_102, 102, Some("cus/1 é"));
    let (k3, _) = new_key(ws, 1_795_000_000_103, 103, Some("other"));
    for (i, k) in [&k1, &k2, &k3].into_iter().enumerate() {
        store
            .create(
                k,
                &audit(ws, &k.record.id, "key.create", 10 + i as u64),
                100,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.count_owner_keys(ws, "cus/1 é").await.unwrap(), 2);
    let mut revoked = k1.clone();
    revoked.record.status = KeyStatus::Revoked;
    revoked.record.version += 1;
    store
        .replace(Replace {
            before: &k1,
            after: &revoked,
            audit: &audit(ws, &k1.record.id, "key.revoke", 20),
            active_delta: -1,
        })
        .await
        .unwrap();
    assert_eq!(store.count_owner_keys(ws, "cus/1 é").await.unwrap(), 1);
    assert_eq!(store.count_owner_keys(ws, "nobody").await.unwrap(), 0);

    // A key's credits: a balance report, then a PATCH-like replacement keeps it.
    let (mut k4, _) = new_key(ws, 1_795_000_000_104, 104, None);
    let key_target = CreditTarget::Key {
        workspace: ws.into(),
        key_id: k4.record.id.clone(),
    };
    k4.record.credits = Some(Credits {
        remaining: 9,
        refill: None,
    });
    k4.credit = CreditState {
        seq: 1,
        op: Some(credit_op(key_target.clone(), 1, CreditOpKind::Set, 9)),
        balance_at_ms: None,
    };
    store
        .create(&k4, &audit(ws, &k4.record.id, "key.create", 30), 100)
        .await
        .unwrap();
    let key_report = BalanceReport {
        target: key_target,
        remaining: 2,
        seq: 1,
        at_ms: 7,
    };
    assert!(store.apply_balance(&key_report).await.unwrap());
    let mut renamed = k4.clone();
    renamed.record.name = "renamed".into();
    renamed.record.version += 1;
    store
        .replace(Replace {
            before: &k4,
            after: &renamed,
            audit: &audit(ws, &k4.record.id, "key.update", 31),
            active_delta: 0,
        })
        .await
        .unwrap();
    let read = store.get(ws, &k4.record.id).await.unwrap().unwrap();
    assert_eq!(read.record.name, "renamed");
    assert_eq!(read.record.credits.unwrap().remaining, 2);
    assert_eq!(read.credit.seq, 1);
    // A key without credits takes no report.
    let none = BalanceReport {
        target: CreditTarget::Key {
            workspace: ws.into(),
            key_id: k2.record.id.clone(),
        },
        remaining: 1,
        seq: 0,
        at_ms: 1,
    };
    assert!(!store.apply_balance(&none).await.unwrap());

    // Owners list by id, paged.
    for (i, id) in ["a", "b"].into_iter().enumerate() {
        let mut o = owner.clone();
        o.record.owner_id = id.into();
        o.record.version = 1;
        o.credit = CreditState::default();
        store
            .put_owner(None, &o, &owner_audit(ws, id, 40 + i as u64))
            .await
            .unwrap();
    }
    let page = store.list_owners(ws, 2, None).await.unwrap();
    let ids: Vec<&str> = page
        .items
        .iter()
        .map(|o| o.record.owner_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let rest = store.list_owners(ws, 2, page.next.as_ref()).await.unwrap();
    assert_eq!(rest.items[0].record.owner_id, "cus/1 é");
    assert!(rest.next.is_none());
}
