//! Request-path normalisation (`normalize_path`), what every proxied path is matched and
//! forwarded on, and the route table's answer for it.
//!
//! Properties: a normalised path is a fixed point (normalising it again changes nothing); it
//! starts with `/` and holds no empty, `.` or `..` segment, no `\`, `;`, control character,
//! encoded `/`, `\`, `;`, `%` or unreserved character; spelling an unreserved character with
//! `%XX` changes nothing; and the bypass property of the local stack's rule
//! `* /admin/** => admin`: whenever an origin that percent-decodes once, resolves dot segments
//! and ignores case would serve something under `/admin`, the table asks for `admin`.
#![no_main]

use keyward_common::route::{Access, RouteDefault, RouteTable, normalize_path, parse_rules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalize_path(raw) else {
        return;
    };
    normal_form(path.as_str());
    assert_eq!(
        normalize_path(path.as_str()).as_ref(),
        Ok(&path),
        "normalising {raw:?} twice changed it"
    );
    if let Some(decoded) = decode_unreserved(raw) {
        assert_eq!(
            normalize_path(&decoded).as_ref(),
            Ok(&path),
            "{raw:?} and {decoded:?} are one path"
        );
    }
    admin_is_never_bypassed(raw, &path);
});

fn normal_form(p: &str) {
    assert!(p.starts_with('/'), "{p:?}");
    let inner = p.strip_suffix('/').unwrap_or(p);
    for seg in inner.split('/').skip(1) {
        assert!(
            !seg.is_empty() && seg != "." && seg != "..",
            "segment {seg:?} in {p:?}"
        );
    }
    let bytes = p.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        assert!(
            !matches!(b, b'\\' | b';' | b' ' | 0..=0x1f | 0x7f | 0x80..=0xff),
            "byte {b:#x} in {p:?}"
        );
        if b == b'%' {
            let hex = p.get(i + 1..i + 3).expect("a complete escape");
            let v = u8::from_str_radix(hex, 16).expect("hex digits");
            assert_eq!(hex, hex.to_ascii_uppercase(), "lower-case escape in {p:?}");
            assert!(
                !is_unreserved(v) && !matches!(v, b'/' | b'\\' | b';' | b'%' | 0..=0x1f | 0x7f),
                "%{hex} kept in {p:?}"
            );
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `raw` with every `%XX` of an unreserved character other than `.` decoded, if it had one.
fn decode_unreserved(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            && is_unreserved(v)
            && v != b'.'
        {
            out.push(v);
            changed = true;
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    changed.then(|| String::from_utf8(out).expect("only ASCII was replaced"))
}

/// How a lax origin reads `raw`: percent-decoded once, dot segments resolved, lower case.
fn origin_view(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match raw
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(v) if bytes[i] == b'%' => {
                decoded.push(v);
                i += 3;
            }
            _ => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

fn admin_is_never_bypassed(raw: &str, path: &keyward_common::route::NormalizedPath) {
    let table = RouteTable {
        rules: parse_rules("* /admin/** => admin").expect("the local stack's rule parses"),
        default: RouteDefault::AnyKey,
    };
    let view = origin_view(raw);
    if view == "/admin" || view.starts_with("/admin/") {
        for method in ["GET", "post", "DELETE"] {
            assert_eq!(
                table.access(method, path),
                Access::Rule {
                    query: &keyward_common::Query::name("admin"),
                    cost: None
                },
                "{raw:?} reaches {view:?} at the origin but was judged as {:?}",
                path.as_str()
            );
        }
    }
}
