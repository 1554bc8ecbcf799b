//! Credentials from request headers (`Authorization: Bearer …`, `X-API-Key: …`): `extract` and
//! `bearer_token`, run on every request at the edge.
//!
//! Input: the `Authorization` value, a newline, the `X-API-Key` value (a leading `-` in either
//! part means the header is absent). Properties: the key comes from the bearer token when there is
//! one, else from `X-API-Key`; it is never longer than a key of any format can be plus one
//! character (a huge header is never copied around) and a clipped value never parses as a key of
//! any format (`parse_any`: an imported key may have up to 256 characters); `from_authorization` says
//! exactly whether the bearer token was used; two different keys are always `conflicting` and
//! equal ones never; another scheme (e.g. `Basic`) is never taken for a key; nothing panics.
#![no_main]

use keyward_common::PresentedKey;
use keyward_common::credentials::{MAX_CLIPPED_LEN, bearer_token, extract};
use keyward_common::key::MAX_PRESENTED_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (auth, api_key) = text.split_once('\n').unwrap_or((text, "-"));
    let header = |v: &'_ str| -> Option<String> { (!v.starts_with('-')).then(|| v.to_owned()) };
    let (auth, api_key) = (header(auth), header(api_key));

    if let Some(value) = auth.as_deref() {
        bearer(value);
    }
    let presented = extract(auth.as_deref(), api_key.as_deref());
    let token = auth.as_deref().and_then(bearer_token);
    let from_header = api_key.as_deref().map(str::trim);

    assert_eq!(presented.from_authorization, token.is_some());
    let expected = token.or(from_header);
    match (&presented.key, expected) {
        (None, None) => {}
        (Some(key), Some(full)) => {
            assert!(
                key.len() <= MAX_CLIPPED_LEN,
                "a {}-byte key was copied",
                key.len()
            );
            assert!(
                full.starts_with(key.as_str()),
                "the key is not its header's value"
            );
            if key.len() < full.len() {
                assert!(
                    PresentedKey::parse_any(key).is_err(),
                    "a clipped value parsed as a key"
                );
            }
        }
        (got, want) => panic!("key {got:?}, expected one from {want:?}"),
    }
    match (token, from_header) {
        (Some(a), Some(b)) if clipped(a) != clipped(b) => assert!(presented.conflicting),
        (Some(_), Some(_)) => assert!(!presented.conflicting),
        _ => assert!(!presented.conflicting, "one key cannot conflict"),
    }
});

fn clipped(v: &str) -> &str {
    let mut end = v.len().min(MAX_PRESENTED_LEN + 1);
    while !v.is_char_boundary(end) {
        end += 1;
    }
    &v[..end]
}

fn bearer(value: &str) {
    let Some(token) = bearer_token(value) else {
        return;
    };
    let (scheme, _) = value.trim().split_once(' ').expect("a scheme and a token");
    assert!(
        scheme.eq_ignore_ascii_case("bearer"),
        "scheme {scheme:?} taken for Bearer"
    );
    assert!(!token.is_empty());
    assert_eq!(token, token.trim());
    assert!(value.contains(token));
}
