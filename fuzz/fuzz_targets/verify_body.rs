//! The verify API's body (`POST /v1/keys/verify`, untrusted), read by the edge's hand-written
//! reader (`keyward_common::verify_api::read_fields`).
//!
//! Property: it reads exactly what the serde derive the edge used before read — the same fields
//! from a body serde accepted, a refusal (the 400 naming `body`) of one it refused; then
//! `verify_api::parse` never panics.
#![no_main]

use keyward_common::verify_api::{self, VerifyFields};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The body as the edge's serde derive read it.
#[derive(serde::Deserialize)]
struct VerifyBody {
    #[serde(default)]
    key: Value,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    permission: Option<Value>,
    #[serde(default)]
    cost: Option<Value>,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    ip: Option<String>,
}

/// What the edge used of a serde-read body (`Option<Value>` is `None` for `null` too).
fn used(body: VerifyBody) -> VerifyFields {
    VerifyFields {
        key: body.key.as_str().map(str::to_owned),
        scope: body.scope,
        permission: body.permission.map(|p| p.as_str().map(str::to_owned)),
        cost: body.cost.map(|c| c.as_u64()),
        workspace: body.workspace,
        ip: body.ip,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let serde = serde_json::from_str::<VerifyBody>(text).ok().map(used);
    assert_eq!(verify_api::read_fields(text).ok(), serde, "{text:?}");
    let _ = verify_api::parse(text);
});
