//! What the edge proxy tells the origin: the identity headers, which client headers are dropped
//! so none can pass for ours, and the optional `X-Keyward-Signature` that proves a request came
//! through the edge.
//!
//! Signing (with `ORIGIN_SECRET` set): HMAC-SHA256 with the secret's UTF-8 bytes as the key over
//! the string to sign, lines joined by `\n` (no trailing newline):
//!
//! ```text
//! keyward-origin-v1
//! {X-Keyward-Timestamp: Unix seconds}
//! {METHOD, upper case}
//! {path as forwarded, with `?query` when there is one}
//! {X-Keyward-Key-Id}
//! {X-Keyward-Workspace}
//! {X-Keyward-Owner}
//! {X-Keyward-Scopes}
//! ```
//!
//! sent as `X-Keyward-Signature: v1={lower-case hex}`. Header values cannot hold a newline, so
//! the lines cannot be shifted into one another. An origin recomputes it from the request it
//! received, compares in constant time, and refuses a timestamp more than 300 s from its clock
//! ([`verify_request`] does all of it).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::sync::MAX_SKEW_S;

/// The key's id.
pub const KEY_ID_HEADER: &str = "X-Keyward-Key-Id";
/// The key's workspace.
pub const WORKSPACE_HEADER: &str = "X-Keyward-Workspace";
/// The key's owner, percent-encoded (see [`encode_header_value`]); empty when the key has none.
pub const OWNER_HEADER: &str = "X-Keyward-Owner";
/// The key's scopes, each percent-encoded, joined by `,`.
pub const SCOPES_HEADER: &str = "X-Keyward-Scopes";
/// Signing time of the origin signature (Unix seconds).
pub const TIMESTAMP_HEADER: &str = crate::sync::TIMESTAMP_HEADER;
/// The origin signature, `v1={hex}`.
pub const SIGNATURE_HEADER: &str = crate::sync::SIGNATURE_HEADER;
/// First line of the string to sign: names the scheme, so a sync signature never verifies here.
pub const SIGNING_SCHEME: &str = "keyward-origin-v1";

/// Whether a client header must not reach the origin because an origin could read it as one of
/// ours: any name that, lower-cased with `_` read as `-`, starts with `x-keyward-` (WSGI, Rack
/// and CGI origins turn `X_Keyward_Owner` and `X-Keyward-Owner` into the same variable).
#[must_use]
pub fn is_reserved_header(name: &str) -> bool {
    const PREFIX: &[u8] = b"x-keyward-";
    let name = name.as_bytes();
    name.len() >= PREFIX.len()
        && name[..PREFIX.len()].iter().zip(PREFIX).all(|(&b, &p)| {
            (if b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }) == p
        })
}

/// Makes any string a valid, unambiguous header value: `%`, `,`, space, control characters and
/// every byte of a non-ASCII character become `%XX` (upper-case hex of the UTF-8 bytes); other
/// visible ASCII is kept. Percent-decoding the value as UTF-8 gives the string back, and a value
/// of plain visible ASCII without `%` or `,` (such as `user_42`) is sent unchanged.
#[must_use]
pub fn encode_header_value(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b',' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// The identity headers' values, as forwarded (already encoded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `X-Keyward-Key-Id`.
    pub key_id: String,
    /// `X-Keyward-Workspace`.
    pub workspace: String,
    /// `X-Keyward-Owner`, empty when the key has no owner.
    pub owner: String,
    /// `X-Keyward-Scopes`.
    pub scopes: String,
}

impl Identity {
    /// The headers for a key, each value encoded with [`encode_header_value`] (scopes one by
    /// one, then joined by `,`); absent values are empty strings.
    #[must_use]
    pub fn new(key_id: &str, workspace: &str, owner: Option<&str>, scopes: &[String]) -> Self {
        Self {
            key_id: encode_header_value(key_id),
            workspace: encode_header_value(workspace),
            owner: owner.map(encode_header_value).unwrap_or_default(),
            scopes: scopes
                .iter()
                .map(|s| encode_header_value(s))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// `(header name, value)` for all four identity headers.
    #[must_use]
    pub fn headers(&self) -> [(&'static str, &str); 4] {
        [
            (KEY_ID_HEADER, &self.key_id),
            (WORKSPACE_HEADER, &self.workspace),
            (OWNER_HEADER, &self.owner),
            (SCOPES_HEADER, &self.scopes),
        ]
    }
}

/// The exact string the signature covers (see the module docs).
#[must_use]
pub fn string_to_sign(timestamp: i64, method: &str, target: &str, identity: &Identity) -> String {
    [
        SIGNING_SCHEME,
        &timestamp.to_string(),
        &method.to_ascii_uppercase(),
        target,
        &identity.key_id,
        &identity.workspace,
        &identity.owner,
        &identity.scopes,
    ]
    .join("\n")
}

fn mac(secret: &[u8], text: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(text.as_bytes());
    mac
}

/// The `X-Keyward-Signature` value for a forwarded request.
#[must_use]
pub fn sign_request(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    target: &str,
    identity: &Identity,
) -> String {
    let text = string_to_sign(timestamp, method, target, identity);
    format!(
        "v1={}",
        hex::encode(mac(secret, &text).finalize().into_bytes())
    )
}

/// Why an origin refuses a request's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginSignatureError {
    /// No timestamp or no signature header.
    #[error("the request carries no Keyward signature")]
    Missing,
    /// The timestamp is not Unix seconds, or is more than 300 s away.
    #[error("the Keyward signature's timestamp is not within 300 s of the origin's clock")]
    Stale,
    /// The signature does not match.
    #[error("the Keyward signature does not match")]
    Mismatch,
}

/// Checks a request's signature at the origin at Unix time `now`: `timestamp` and `signature`
/// are the header values, `target` the path (and `?query`) the origin received.
///
/// # Errors
/// An [`OriginSignatureError`]; the comparison runs in constant time.
pub fn verify_request(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    method: &str,
    target: &str,
    identity: &Identity,
    now: i64,
) -> Result<(), OriginSignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(OriginSignatureError::Missing);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| OriginSignatureError::Stale)?;
    if now.abs_diff(ts) > MAX_SKEW_S.unsigned_abs() {
        return Err(OriginSignatureError::Stale);
    }
    let given = signature
        .trim()
        .strip_prefix("v1=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(OriginSignatureError::Mismatch)?;
    mac(secret, &string_to_sign(ts, method, target, identity))
        .verify_slice(&given)
        .map_err(|_| OriginSignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"origin-secret";
    const NOW: i64 = 1_800_000_000;

    fn identity() -> Identity {
        Identity::new(
            "key_1",
            "acme",
            Some("user 1"),
            &["a.read".into(), "b".into()],
        )
    }

    #[test]
    fn underscored_and_cased_spellings_of_our_headers_are_reserved() {
        for name in [
            "x-keyward-owner",
            "X_Keyward_Owner",
            "X-KEYWARD-KEY-ID",
            "x_keyward-scopes",
            "x-keyward-anything",
            "X_KEYWARD_SIGNATURE",
        ] {
            assert!(is_reserved_header(name), "{name}");
        }
        for name in [
            "x-keyward",
            "x-keywardowner",
            "x-custom",
            "keyward-owner",
            "",
        ] {
            assert!(!is_reserved_header(name), "{name}");
        }
    }

    #[test]
    fn header_values_are_encoded_reversibly_and_plain_ones_unchanged() {
        assert_eq!(encode_header_value("user_42"), "user_42");
        assert_eq!(encode_header_value("a b\r\nc"), "a%20b%0D%0Ac");
        assert_eq!(encode_header_value("é,%"), "%C3%A9%2C%25");
        assert_eq!(encode_header_value(""), "");
    }

    #[test]
    fn identity_headers_are_all_present_and_empty_when_absent() {
        let id = Identity::new("key_1", "acme", None, &[]);
        let headers = id.headers();
        assert_eq!(headers.len(), 4);
        assert_eq!(headers[2], (OWNER_HEADER, ""));
        assert_eq!(headers[3], (SCOPES_HEADER, ""));
        assert_eq!(identity().scopes, "a.read,b");
        assert_eq!(identity().owner, "user%201");
    }

    #[test]
    fn the_string_to_sign_is_the_documented_lines() {
        assert_eq!(
            string_to_sign(NOW, "get", "/a?b=c", &identity()),
            "keyward-origin-v1\n1800000000\nGET\n/a?b=c\nkey_1\nacme\nuser%201\na.read,b"
        );
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_is_refused() {
        let id = identity();
        let sig = sign_request(SECRET, NOW, "GET", "/a", &id);
        let ts = NOW.to_string();
        let check = |method: &str, target: &str, id: &Identity, now: i64| {
            verify_request(SECRET, Some(&ts), Some(&sig), method, target, id, now)
        };
        assert_eq!(check("GET", "/a", &id, NOW + 300), Ok(()));
        assert_eq!(
            check("POST", "/a", &id, NOW),
            Err(OriginSignatureError::Mismatch)
        );
        assert_eq!(
            check("GET", "/b", &id, NOW),
            Err(OriginSignatureError::Mismatch)
        );
        let mut other = id.clone();
        other.owner = "victim".into();
        assert_eq!(
            check("GET", "/a", &other, NOW),
            Err(OriginSignatureError::Mismatch)
        );
        assert_eq!(
            check("GET", "/a", &id, NOW + 301),
            Err(OriginSignatureError::Stale)
        );
        assert_eq!(
            verify_request(SECRET, None, Some(&sig), "GET", "/a", &id, NOW),
            Err(OriginSignatureError::Missing)
        );
        assert_eq!(
            verify_request(b"other", Some(&ts), Some(&sig), "GET", "/a", &id, NOW),
            Err(OriginSignatureError::Mismatch)
        );
    }

    #[test]
    fn an_extreme_timestamp_is_stale_not_an_overflow() {
        let id = identity();
        for ts in [i64::MIN, i64::MAX] {
            let sig = sign_request(SECRET, ts, "GET", "/", &id);
            assert_eq!(
                verify_request(
                    SECRET,
                    Some(&ts.to_string()),
                    Some(&sig),
                    "GET",
                    "/",
                    &id,
                    NOW
                ),
                Err(OriginSignatureError::Stale)
            );
        }
    }

    proptest! {
        #[test]
        fn encoded_values_are_valid_header_values(s in any::<String>()) {
            let e = encode_header_value(&s);
            prop_assert!(e.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','));
        }
    }
}
