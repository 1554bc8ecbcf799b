//! The edge's per-request core, measured natively: parse + checksum, SHA-256, and the verdict,
//! for a valid key and a garbage key. Run with `cargo bench -p keyward-common --bench core`
//! (or `cargo xtask bench`, which runs this along with the edge and control-plane benchmarks).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_common::record::EDGE_SCHEMA;
use keyward_common::{
    EdgeEntry, KeyId, KeyStatus, PresentedKey, RateLimit, RequestContext, SecretKey, verify,
};

fn key() -> SecretKey {
    let mut n = 1u8;
    SecretKey::generate("kw", |buf: &mut [u8]| {
        for b in buf {
            n = n.wrapping_mul(73).wrapping_add(41);
            *b = n;
        }
    })
    .expect("valid prefix")
}

fn entry() -> EdgeEntry {
    EdgeEntry {
        schema: EDGE_SCHEMA,
        version: 3,
        key_id: KeyId::new(1_800_000_000_000, [9; 10]),
        workspace: "acme".into(),
        owner_id: Some("user_42".into()),
        prefix: "kw".into(),
        scopes: vec!["read".into(), "write".into(), "billing.*".into()],
        roles: Vec::new(),
        name: Some("bench key".into()),
        meta: None,
        status: KeyStatus::Active,
        expires_at: Some(1_900_000_000),
        retires_at: None,
        allowed_ips: vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "192.168.0.0/16".parse().expect("cidr"),
        ],
        rate_limit: Some(RateLimit {
            limit: 100,
            period_s: 60,
        }),
        rate_limits: Vec::new(),
        credited: false,
    }
}

fn benches(c: &mut Criterion) {
    let secret = key();
    let text = secret.expose().to_owned();
    let mut garbage = text.clone();
    garbage.replace_range(10..11, if &text[10..11] == "A" { "B" } else { "A" });
    let presented = PresentedKey::parse(&text).expect("valid key");
    let entry = entry();
    let ctx = RequestContext {
        client_ip: Some("10.1.2.3".parse().expect("ip")),
        required_scope: Some("billing.read".into()),
        ..RequestContext::default()
    };
    let now = 1_800_000_000;

    c.bench_function("parse_and_checksum/valid", |b| {
        b.iter(|| PresentedKey::parse(black_box(&text)).is_ok())
    });
    c.bench_function("parse_and_checksum/garbage", |b| {
        b.iter(|| PresentedKey::parse(black_box(&garbage)).is_err())
    });
    c.bench_function("sha256", |b| b.iter(|| black_box(&presented).hash()));
    c.bench_function("verdict/valid", |b| {
        b.iter(|| verify(black_box(&presented), Some(black_box(&entry)), &ctx, now))
    });
    c.bench_function("entry_json_decode", |b| {
        let json = serde_json::to_string(&entry).expect("json");
        b.iter(|| serde_json::from_str::<EdgeEntry>(black_box(&json)).is_ok());
    });
    c.bench_function("whole_path/valid", |b| {
        let json = serde_json::to_string(&entry).expect("json");
        b.iter(|| {
            let p = PresentedKey::parse(black_box(&text)).expect("valid");
            let _hash = p.hash();
            let e: EdgeEntry = serde_json::from_str(&json).expect("entry");
            verify(&p, Some(&e), &ctx, now)
        });
    });
    c.bench_function("whole_path/garbage", |b| {
        b.iter(|| PresentedKey::parse(black_box(&garbage)).map(|p| p.hash()))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
