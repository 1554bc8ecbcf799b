//! The import body (`POST /keys/import`): up to 1,000 existing keys, each a plaintext `key` or
//! its SHA-256 `hash` plus the create fields, validated one by one so a bad item refuses only
//! itself.

use keyward_common::key::KeyFormatError;
use keyward_common::{FieldError, KeyHash, PresentedKey};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ScopePolicy;
use super::key::{CreateKeyRequest, NewKey};

type Json = Map<String, Value>;

/// Most keys one import call takes.
pub const MAX_IMPORT: usize = 1000;

/// `POST /keys/import` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// 1 to 1,000 keys.
    pub keys: Vec<ImportItem>,
}

/// One key to import: `key` or `hash`, plus any create field except `prefix`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ImportItem {
    /// The key as your customers hold it (16-256 printable ASCII characters). Kept only as its
    /// SHA-256.
    #[schema(value_type = Option<String>)]
    pub key: Option<String>,
    /// Or the lowercase hex SHA-256 of the key, if you only stored hashes.
    #[schema(value_type = Option<String>)]
    pub hash: Option<String>,
    /// The create fields (`name` required; `scopes`, `roles`, `owner_id`, `meta`,
    /// `expires_at`/`expires_in`, `allowed_ips`, `rate_limit`, `rate_limits`, `credits`,
    /// `status`).
    #[serde(flatten)]
    #[schema(inline)]
    pub settings: CreateKeyRequest,
}

/// A validated import item.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImport {
    /// SHA-256 of the key.
    pub hash: KeyHash,
    /// What lists show of it: a Keyward key's display prefix, the first characters of another
    /// format, `…` when only the hash is known.
    pub display: String,
    /// The settings.
    pub key: NewKey,
}

/// Validates an import body: the list itself (400 when it is not 1 to 1,000 objects), then
/// each item on its own.
///
/// # Errors
/// Problems with the list as a whole.
pub fn import(
    mut body: Json,
    policy: ScopePolicy<'_>,
    default_prefix: &str,
    now: i64,
) -> Result<Vec<Result<NewImport, Vec<FieldError>>>, Vec<FieldError>> {
    let keys = body.remove("keys");
    let mut errors: Vec<FieldError> = body
        .keys()
        .map(|k| FieldError::new(k, "is not a known field"))
        .collect();
    let items = match keys {
        Some(Value::Array(items)) if (1..=MAX_IMPORT).contains(&items.len()) => items,
        Some(Value::Array(_)) => {
            errors.push(FieldError::new(
                "keys",
                format!("must hold 1 to {MAX_IMPORT} keys"),
            ));
            return Err(errors);
        }
        Some(_) => {
            errors.push(FieldError::new("keys", "must be an array of objects"));
            return Err(errors);
        }
        None => {
            errors.push(FieldError::new("keys", "is required"));
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(items
        .into_iter()
        .map(|item| match item {
            Value::Object(obj) => one(obj, policy, default_prefix, now),
            _ => Err(vec![FieldError::new("body", "must be a JSON object")]),
        })
        .collect())
}

fn one(
    mut obj: Json,
    policy: ScopePolicy<'_>,
    default_prefix: &str,
    now: i64,
) -> Result<NewImport, Vec<FieldError>> {
    let mut errors = Vec::new();
    if obj.remove("prefix").is_some() {
        errors.push(FieldError::new(
            "prefix",
            "an imported key keeps its own format; rotation gives it a Keyward one",
        ));
    }
    let key = obj.remove("key");
    let hash = obj.remove("hash");
    let secret = match (key, hash) {
        (Some(Value::String(k)), None) => plaintext(&k).map_err(|m| FieldError::new("key", m)),
        (None, Some(Value::String(h))) => KeyHash::parse(&h.to_ascii_lowercase())
            .map(|h| (h, "…".to_owned()))
            .map_err(|_| FieldError::new("hash", "must be 64 hexadecimal characters (SHA-256)")),
        (Some(_), Some(_)) => Err(FieldError::new("key", "give key or hash, not both")),
        (Some(_), None) => Err(FieldError::new("key", "must be a string")),
        (None, Some(_)) => Err(FieldError::new("hash", "must be a string")),
        (None, None) => Err(FieldError::new(
            "key",
            "give key (plaintext) or hash (SHA-256)",
        )),
    };
    let settings = super::key::create(obj, policy, default_prefix, now);
    match (secret, settings) {
        (Ok((hash, display)), Ok(key)) if errors.is_empty() => Ok(NewImport { hash, display, key }),
        (secret, settings) => {
            errors.extend(secret.err());
            errors.extend(settings.err().into_iter().flatten());
            Err(errors)
        }
    }
}

/// The hash and display prefix of a plaintext key, by the edge's own rule
/// ([`PresentedKey::parse_any`]): a string in Keyward's format, or one typo away from it, must
/// be a valid Keyward key (the edge refuses it without a lookup otherwise).
fn plaintext(key: &str) -> Result<(KeyHash, String), &'static str> {
    match PresentedKey::parse_any(key) {
        Ok(p) => Ok((p.hash(), p.display_prefix())),
        Err(KeyFormatError::NotAKey) => {
            Err("must be 16-256 printable ASCII characters without spaces")
        }
        Err(KeyFormatError::BadChecksum) => {
            Err("has Keyward's format but a wrong checksum: it could never verify")
        }
        Err(_) => Err(
            "is one character away from Keyward's format, so the edge takes it for a mistyped \
             Keyward key: it could never verify",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> ScopePolicy<'static> {
        ScopePolicy {
            defaults: &[],
            allowed: None,
        }
    }

    fn run(v: Value) -> Result<Vec<Result<NewImport, Vec<FieldError>>>, Vec<FieldError>> {
        import(
            v.as_object().unwrap().clone(),
            policy(),
            "kw",
            1_800_000_000,
        )
    }

    fn fields(r: &Result<NewImport, Vec<FieldError>>) -> Vec<&str> {
        r.as_ref()
            .unwrap_err()
            .iter()
            .map(|e| e.field.as_str())
            .collect()
    }

    #[test]
    fn each_item_is_checked_on_its_own() {
        let good = "sk_live_0123456789abcdefghijklmnop";
        let kw = keyward_common::SecretKey::generate("kw", |b: &mut [u8]| b.fill(7)).unwrap();
        let mut typo = kw.expose().to_owned();
        typo.pop();
        typo.push(if kw.expose().ends_with('A') { 'B' } else { 'A' });
        let items = run(json!({"keys": [
            {"key": good, "name": "a", "roles": ["r"]},
            {"hash": "AB".repeat(32), "name": "b"},
            {"key": kw.expose(), "name": "c"},
            {"key": typo, "name": "d"},
            {"key": "short", "name": "e"},
            {"key": good, "hash": "ab".repeat(32), "name": "f"},
            {"name": "g"},
            {"key": good, "name": "h", "prefix": "kw", "bogus": 1},
            {"key": good},
            "not an object",
        ]}))
        .unwrap();
        let a = items[0].as_ref().unwrap();
        assert_eq!(a.hash, KeyHash::of(good));
        assert_eq!(a.display, "sk_liv…");
        assert_eq!(a.key.roles, ["r"]);
        let b = items[1].as_ref().unwrap();
        assert_eq!(b.hash.as_str(), "ab".repeat(32));
        assert_eq!(b.display, "…");
        assert_eq!(items[2].as_ref().unwrap().hash, kw.hash());
        assert_eq!(fields(&items[3]), ["key"]);
        assert_eq!(fields(&items[4]), ["key"]);
        assert_eq!(fields(&items[5]), ["key"]);
        assert_eq!(fields(&items[6]), ["key"]);
        assert_eq!(fields(&items[7]), ["prefix", "bogus"]);
        assert_eq!(fields(&items[8]), ["name"]);
        assert_eq!(fields(&items[9]), ["body"]);
    }

    #[test]
    fn the_list_itself_must_hold_1_to_1000_objects() {
        for bad in [
            json!({}),
            json!({"keys": []}),
            json!({"keys": {}}),
            json!({"keys": [], "x": 1}),
        ] {
            assert!(run(bad.clone()).is_err(), "{bad}");
        }
        let many: Vec<Value> = (0..1001)
            .map(|_| json!({"hash": "ab".repeat(32), "name": "x"}))
            .collect();
        assert_eq!(run(json!({"keys": many})).unwrap_err()[0].field, "keys");
    }

    #[test]
    fn a_shown_part_of_a_foreign_key_is_never_more_than_a_quarter_of_it() {
        let (_, d) = plaintext("abcdefghijklmnop").unwrap();
        assert_eq!(d, "abcd…");
        assert!(plaintext("abc def ghijklmnopq").is_err());
        assert!(plaintext(&"x".repeat(257)).is_err());
    }

    #[test]
    fn a_key_one_typo_from_keywards_format_is_refused_as_the_edge_would() {
        let kw = keyward_common::SecretKey::generate("kw", |b: &mut [u8]| b.fill(3)).unwrap();
        let mut deleted = kw.expose().to_owned();
        deleted.remove(10);
        assert!(
            plaintext(&deleted)
                .unwrap_err()
                .contains("one character away")
        );
        let (hash, _) = plaintext("ghp_0123456789abcdefghijABCDEFGHIJ012345").unwrap();
        assert_eq!(
            hash,
            KeyHash::of("ghp_0123456789abcdefghijABCDEFGHIJ012345")
        );
    }
}
