//! JSON text as the edge's hand-written reader (`keyward_common::json`) checks it: a value it
//! skips (an unknown field), a value it keeps whole (an entry's `meta`), anything it reads.
//!
//! Properties: a value is accepted exactly when serde_json accepts it — skipped as serde_json
//! ignores one (`IgnoredAny`), kept as it reads a `serde_json::Value`; a kept object's compact
//! text reads back, in serde_json, to what the original text did; nothing panics.
#![no_main]

use keyward_common::json::{JsonObject, Reader};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for strict in [false, true] {
        let mut r = Reader::new(text);
        let ours = r.skip(strict).and_then(|()| r.end()).is_ok();
        let serde = if strict {
            serde_json::from_str::<Value>(text).is_ok()
        } else {
            serde_json::from_str::<IgnoredAny>(text).is_ok()
        };
        assert_eq!(ours, serde, "strict {strict}: {text:?}");
    }
    let serde = serde_json::from_str::<Map<String, Value>>(text).ok();
    let ours = JsonObject::parse(text).ok();
    assert_eq!(ours.is_some(), serde.is_some(), "{text:?}");
    if let (Some(ours), Some(serde)) = (ours, serde) {
        assert_eq!(
            serde_json::from_str::<Map<String, Value>>(ours.as_str()).ok(),
            Some(serde)
        );
    }
});
