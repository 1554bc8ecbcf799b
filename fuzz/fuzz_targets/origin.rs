//! What the edge tells the origin: which client header names are dropped as ours
//! (`is_reserved_header`), the encoding of identity values (`encode_header_value`, owner ids
//! come from API users), and the origin signature over method, path and identity.
//!
//! Properties: a header name is reserved exactly when, lower-cased with `_` read as `-`, it
//! starts with `x-keyward-`; an encoded value is visible ASCII without `,` and decodes back to
//! the input (so two owners never share a header value); a signed request verifies at the
//! origin, and with another method, path, identity field or secret it never does.
#![no_main]

use arbitrary::Arbitrary;
use keyward_common::origin::{
    Identity, encode_header_value, is_reserved_header, sign_request, verify_request,
};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    header_name: &'a str,
    value: &'a str,
    secret: &'a [u8],
    method: &'a str,
    target: &'a str,
    key_id: &'a str,
    workspace: &'a str,
    owner: Option<&'a str>,
    scopes: Vec<String>,
    skew: i16,
}

fuzz_target!(|input: Input<'_>| {
    let naive = input
        .header_name
        .to_ascii_lowercase()
        .replace('_', "-")
        .starts_with("x-keyward-");
    assert_eq!(
        is_reserved_header(input.header_name),
        naive,
        "{:?}",
        input.header_name
    );

    let encoded = encode_header_value(input.value);
    assert!(
        encoded
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b','),
        "{encoded:?}"
    );
    assert_eq!(
        percent_decode(&encoded).as_deref(),
        Some(input.value),
        "not reversible"
    );

    signature(&input);
});

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn signature(input: &Input<'_>) {
    let identity = Identity::new(input.key_id, input.workspace, input.owner, &input.scopes);
    for (_, value) in identity.headers() {
        assert!(
            value.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "header value {value:?}"
        );
    }
    let signed_at = NOW + i64::from(input.skew);
    let sig = sign_request(
        input.secret,
        signed_at,
        input.method,
        input.target,
        &identity,
    );
    let ts = signed_at.to_string();
    let check = |secret: &[u8], method: &str, target: &str, identity: &Identity| {
        verify_request(secret, Some(&ts), Some(&sig), method, target, identity, NOW)
    };
    let fresh = i64::from(input.skew).abs() <= 300;
    assert_eq!(
        check(input.secret, input.method, input.target, &identity).is_ok(),
        fresh
    );
    if !fresh {
        return;
    }
    let other_method = format!("{}X", input.method);
    assert!(check(input.secret, &other_method, input.target, &identity).is_err());
    let other_target = format!("{}/x", input.target);
    assert!(check(input.secret, input.method, &other_target, &identity).is_err());
    let other_owner = Identity::new(
        input.key_id,
        input.workspace,
        Some(&format!("{}x", input.owner.unwrap_or_default())),
        &input.scopes,
    );
    assert!(check(input.secret, input.method, input.target, &other_owner).is_err());
    let mut other_secret = input.secret.to_vec();
    match other_secret.first_mut() {
        Some(b) => *b ^= 1,
        None => other_secret.push(1),
    }
    assert!(check(&other_secret, input.method, input.target, &identity).is_err());
}
