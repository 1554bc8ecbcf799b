//! How bearer JWTs are checked: one algorithm fixed by configuration, and one or more
//! verification keys selected by the token's `kid`, so the signing key can rotate without
//! downtime (publish the new key beside the old one, switch the issuer, drop the old key).
//!
//! Configuration: `KEYWARD_JWT_KEY` (read from Secrets Manager in production) holds either
//! - one key: the HS256 secret (at least 32 bytes) or the RS256/ES256 public key in PEM. Tokens
//!   may carry any `kid` or none; or
//! - a key set: a JWKS document `{"keys": [{"kid": …, "kty": …, …}]}` (RSA and EC public keys,
//!   or `oct` secrets for HS256), or a list `[{"kid": "…", "key": "<secret or PEM>"}]`. A token
//!   must name one of the `kid`s.

use std::fmt;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::error::ConfigError;

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: a key of the hash's size).
pub const MIN_HS256_SECRET: usize = 32;

/// One verification key.
#[derive(Clone)]
pub struct JwtKey {
    /// The `kid` a token names to use it; `None` for the single `KEYWARD_JWT_KEY`.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// How bearer JWTs are checked.
#[derive(Clone)]
pub struct JwtConfig {
    /// The only algorithm accepted.
    pub algorithm: Algorithm,
    /// The verification keys.
    pub keys: Vec<JwtKey>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("-"))
            .collect();
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("kids", &kids)
            .field("keys", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtConfig {
    /// The key for a token whose header names `kid`: the key with that `kid`; without a `kid`,
    /// the only key. `None` when no key fits (the token is refused).
    #[must_use]
    pub fn key_for(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match (kid, self.keys.as_slice()) {
            (_, [only]) if only.kid.is_none() => Some(&only.key),
            (Some(kid), keys) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| &k.key),
            (None, [only]) => Some(&only.key),
            (None, _) => None,
        }
    }
}

/// Parses `KEYWARD_JWT_ALG`.
///
/// # Errors
/// Anything but HS256, RS256 or ES256.
pub fn algorithm(text: &str) -> Result<Algorithm, ConfigError> {
    match text.trim().to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        _ => Err(ConfigError::Invalid {
            name: "KEYWARD_JWT_ALG",
            why: "must be HS256, RS256 or ES256".into(),
        }),
    }
}

/// One key from its text: an HS256 secret or a PEM public key.
///
/// # Errors
/// A short secret or a PEM that is not a key of the algorithm; never echoes the text.
pub fn key_from_text(
    algorithm: Algorithm,
    text: &str,
    name: &'static str,
) -> Result<DecodingKey, ConfigError> {
    let bad = |why: &str| ConfigError::Invalid {
        name,
        why: why.to_owned(),
    };
    match algorithm {
        Algorithm::HS256 => {
            if text.len() < MIN_HS256_SECRET {
                return Err(bad("an HS256 secret must be at least 32 bytes"));
            }
            Ok(DecodingKey::from_secret(text.as_bytes()))
        }
        Algorithm::RS256 => DecodingKey::from_rsa_pem(text.as_bytes())
            .map_err(|_| bad("must be an RSA public key in PEM")),
        _ => DecodingKey::from_ec_pem(text.as_bytes())
            .map_err(|_| bad("must be a P-256 public key in PEM")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedKey {
    kid: String,
    key: String,
}

/// The keys of a key set in `KEYWARD_JWT_KEY`: a JWKS document or a `[{kid, key}]` list.
///
/// # Errors
/// Malformed JSON, a key without `kid`, a duplicate `kid`, a key of another algorithm, a short
/// HS256 secret; never echoes key material.
pub fn keys_from_json(algorithm: Algorithm, text: &str) -> Result<Vec<JwtKey>, ConfigError> {
    const NAME: &str = "KEYWARD_JWT_KEY";
    let bad = |why: &str| ConfigError::Invalid {
        name: NAME,
        why: why.to_owned(),
    };
    let keys: Vec<JwtKey> = if text.trim_start().starts_with('[') {
        let listed: Vec<ListedKey> = serde_json::from_str(text)
            .map_err(|_| bad("must be a JWKS document or a JSON list of {kid, key}"))?;
        listed
            .into_iter()
            .map(|l| {
                Ok(JwtKey {
                    key: key_from_text(algorithm, &l.key, NAME)?,
                    kid: Some(l.kid),
                })
            })
            .collect::<Result<_, ConfigError>>()?
    } else {
        let set: JwkSet = serde_json::from_str(text)
            .map_err(|_| bad("must be a JWKS document or a JSON list of {kid, key}"))?;
        set.keys
            .iter()
            .map(|jwk| {
                let kid = jwk
                    .common
                    .key_id
                    .clone()
                    .ok_or_else(|| bad("every JWKS key needs a kid"))?;
                if let Some(alg) = jwk.common.key_algorithm
                    && format!("{alg:?}") != format!("{algorithm:?}")
                {
                    return Err(bad(
                        "a JWKS key names another algorithm than KEYWARD_JWT_ALG",
                    ));
                }
                if let jsonwebtoken::jwk::AlgorithmParameters::OctetKey(oct) = &jwk.algorithm {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(oct.value.trim_end_matches('='))
                        .map_err(|_| bad("an oct key is not base64url"))?;
                    if bytes.len() < MIN_HS256_SECRET {
                        return Err(bad("an HS256 secret must be at least 32 bytes"));
                    }
                }
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|_| bad("a JWKS key cannot be used for verification"))?;
                Ok(JwtKey {
                    kid: Some(kid),
                    key,
                })
            })
            .collect::<Result<_, ConfigError>>()?
    };
    if keys.is_empty() {
        return Err(bad("holds no key"));
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].iter().any(|o| o.kid == k.kid) {
            return Err(bad("two keys have the same kid"));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_short_hs256_secret_is_refused_without_echoing_it() {
        let err = key_from_text(Algorithm::HS256, "only-twenty-bytes-xx", "KEYWARD_JWT_KEY")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!err.contains("only-twenty"));
        assert!(key_from_text(Algorithm::HS256, SECRET, "KEYWARD_JWT_KEY").is_ok());
    }

    #[test]
    fn a_key_list_selects_by_kid_and_refuses_unknown_or_missing_kids() {
        let text = format!(
            r#"[{{"kid": "old", "key": "{SECRET}"}}, {{"kid": "new", "key": "{SECRET}XYZ"}}]"#
        );
        let cfg = JwtConfig {
            algorithm: Algorithm::HS256,
            keys: keys_from_json(Algorithm::HS256, &text).unwrap(),
            issuer: "i".into(),
            audience: "a".into(),
        };
        assert!(cfg.key_for(Some("old")).is_some());
        assert!(cfg.key_for(Some("new")).is_some());
        assert!(cfg.key_for(Some("other")).is_none());
        assert!(cfg.key_for(None).is_none());
        let debug = format!("{cfg:?}");
        assert!(!debug.contains(SECRET) && debug.contains("old"), "{debug}");
    }

    #[test]
    fn a_jwks_document_of_oct_keys_is_read_and_duplicate_kids_are_refused() {
        use base64::Engine as _;
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        let doc = format!(r#"{{"keys": [{{"kty": "oct", "kid": "a", "k": "{k}"}}]}}"#);
        assert_eq!(keys_from_json(Algorithm::HS256, &doc).unwrap().len(), 1);
        let dup = format!(
            r#"{{"keys": [{{"kty": "oct", "kid": "a", "k": "{k}"}}, {{"kty": "oct", "kid": "a", "k": "{k}"}}]}}"#
        );
        assert!(keys_from_json(Algorithm::HS256, &dup).is_err());
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("short");
        let weak = format!(r#"{{"keys": [{{"kty": "oct", "kid": "a", "k": "{short}"}}]}}"#);
        assert!(keys_from_json(Algorithm::HS256, &weak).is_err());
    }
}
