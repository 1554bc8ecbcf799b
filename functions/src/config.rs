//! Configuration from the environment, read once when a function starts.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::Algorithm;
use sha2::Sha256;

use crate::input::valid_scope;
pub use crate::jwt::JwtConfig;
use crate::jwt::{self, JwtKey};

pub use crate::error::ConfigError;

/// Everything a function needs besides its clients.
#[derive(Clone)]
pub struct Config {
    /// The DynamoDB table.
    pub table: String,
    /// JWT verification.
    pub jwt: JwtConfig,
    /// Scopes a key gets when create names none.
    pub default_scopes: Vec<String>,
    /// Scopes a key may have; `None` = any (the `api.key.*` permissions are always allowed).
    pub allowed_scopes: Option<Vec<String>>,
    /// Cap on a workspace's keys that are not revoked.
    pub max_active_keys: u64,
    /// Key prefix when create names none.
    pub default_prefix: String,
    /// HMAC key of list cursors.
    pub cursor_secret: Vec<u8>,
    /// Whether webhook endpoints may be plain `http` to a loopback address
    /// (`KEYWARD_WEBHOOK_ALLOW_LOOPBACK=true`: the local stack only).
    pub webhook_allow_loopback: bool,
    /// Cap on a workspace's webhook endpoints (`KEYWARD_MAX_WEBHOOKS`, default 20).
    pub max_webhooks: usize,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("jwt", &self.jwt)
            .field("default_scopes", &self.default_scopes)
            .field("allowed_scopes", &self.allowed_scopes)
            .field("max_active_keys", &self.max_active_keys)
            .field("default_prefix", &self.default_prefix)
            .field("cursor_secret", &"<redacted>")
            .field("webhook_allow_loopback", &self.webhook_allow_loopback)
            .field("max_webhooks", &self.max_webhooks)
            .finish()
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `name` from `get`, trimmed, or [`ConfigError::Missing`].
///
/// # Errors
/// When the variable is unset or blank.
pub fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or invalid.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let required = |k: &'static str| get(k).ok_or(ConfigError::Missing(k));
        let table = required("KEYWARD_TABLE")?;
        let algorithm = jwt::algorithm(&required("KEYWARD_JWT_ALG")?)?;
        // One key, or a key set (a JWKS document or a `[{kid, key}]` list) chosen by `kid`.
        let key_text = required("KEYWARD_JWT_KEY")?;
        let is_set = key_text.trim_start().starts_with(['{', '[']);
        let keys = if is_set {
            jwt::keys_from_json(algorithm, &key_text)?
        } else {
            vec![JwtKey {
                kid: None,
                key: jwt::key_from_text(algorithm, &key_text, "KEYWARD_JWT_KEY")?,
            }]
        };
        let issuer = required("KEYWARD_JWT_ISSUER")?;
        let audience = required("KEYWARD_JWT_AUDIENCE")?;
        let default_scopes = list(get("KEYWARD_DEFAULT_SCOPES"));
        let allowed = list(get("KEYWARD_ALLOWED_SCOPES"));
        let allowed_scopes = (!allowed.is_empty()).then_some(allowed);
        for s in default_scopes.iter().chain(allowed_scopes.iter().flatten()) {
            if !valid_scope(s) {
                return Err(ConfigError::Invalid {
                    name: "KEYWARD_DEFAULT_SCOPES/KEYWARD_ALLOWED_SCOPES",
                    why: "scopes are 1-64 characters of A-Z a-z 0-9 . _ : * -".into(),
                });
            }
        }
        if let Some(allowed) = &allowed_scopes
            && let Some(_bad) = default_scopes
                .iter()
                .find(|s| !crate::input::checks::scope_allowed(s, Some(allowed)))
        {
            return Err(ConfigError::Invalid {
                name: "KEYWARD_DEFAULT_SCOPES",
                why: "every default scope must be in KEYWARD_ALLOWED_SCOPES".into(),
            });
        }
        let max_active_keys =
            match get("KEYWARD_MAX_ACTIVE_KEYS") {
                None => 1000,
                Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n >= 1).ok_or(
                    ConfigError::Invalid {
                        name: "KEYWARD_MAX_ACTIVE_KEYS",
                        why: "must be a whole number of at least 1".into(),
                    },
                )?,
            };
        let default_prefix = get("KEYWARD_DEFAULT_PREFIX").unwrap_or_else(|| "kw".to_owned());
        keyward_common::key::validate_prefix(&default_prefix).map_err(|_| {
            ConfigError::Invalid {
                name: "KEYWARD_DEFAULT_PREFIX",
                why: "must be 2-16 characters of a-z 0-9".into(),
            }
        })?;
        let cursor_secret = match (get("KEYWARD_CURSOR_SECRET"), &key_text) {
            (Some(s), _) if s.len() >= jwt::MIN_HS256_SECRET => s.into_bytes(),
            (Some(_), _) => {
                return Err(ConfigError::Invalid {
                    name: "KEYWARD_CURSOR_SECRET",
                    why: "must be at least 32 bytes".into(),
                });
            }
            // Derived from the HS256 secret, which is secret too. Never from a public key: anyone
            // could forge cursors with it. Every instance must agree, so no random fallback.
            (None, hs) if algorithm == Algorithm::HS256 && !is_set => {
                let mut mac = Hmac::<Sha256>::new_from_slice(hs.as_bytes()).map_err(|_| {
                    ConfigError::Invalid {
                        name: "KEYWARD_JWT_KEY",
                        why: "cannot derive a cursor secret".into(),
                    }
                })?;
                mac.update(b"keyward list cursor v1");
                mac.finalize().into_bytes().to_vec()
            }
            (None, _) => return Err(ConfigError::Missing("KEYWARD_CURSOR_SECRET")),
        };
        let max_webhooks = match get("KEYWARD_MAX_WEBHOOKS") {
            None => crate::webhook::MAX_PER_WORKSPACE,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or(ConfigError::Invalid {
                    name: "KEYWARD_MAX_WEBHOOKS",
                    why: "must be a whole number from 1 to 100000".into(),
                })?,
        };
        let webhook_allow_loopback = match get("KEYWARD_WEBHOOK_ALLOW_LOOPBACK").as_deref() {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "KEYWARD_WEBHOOK_ALLOW_LOOPBACK",
                    why: "must be true or false".into(),
                });
            }
        };
        Ok(Self {
            table,
            jwt: JwtConfig {
                algorithm,
                keys,
                issuer,
                audience,
            },
            default_scopes,
            allowed_scopes,
            max_active_keys,
            default_prefix,
            cursor_secret,
            webhook_allow_loopback,
            max_webhooks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 5] = [
        ("KEYWARD_TABLE", "t"),
        ("KEYWARD_JWT_ALG", "HS256"),
        ("KEYWARD_JWT_KEY", "a-very-long-dev-secret-of-32-bytes"),
        ("KEYWARD_JWT_ISSUER", "iss"),
        ("KEYWARD_JWT_AUDIENCE", "aud"),
    ];

    #[test]
    fn defaults_apply_when_optional_variables_are_unset() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(c.max_active_keys, 1000);
        assert_eq!(c.default_prefix, "kw");
        assert!(c.default_scopes.is_empty());
        assert!(c.allowed_scopes.is_none());
        assert_eq!(c.cursor_secret.len(), 32);
    }

    #[test]
    fn a_missing_table_is_named_in_the_error() {
        let err = Config::from_lookup(lookup(&BASE[1..])).unwrap_err();
        assert_eq!(err.to_string(), "KEYWARD_TABLE must be set");
    }

    #[test]
    fn an_unknown_algorithm_is_refused_without_echoing_the_key() {
        let mut pairs = BASE.to_vec();
        pairs[1] = ("KEYWARD_JWT_ALG", "none");
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.contains("KEYWARD_JWT_ALG"));
        assert!(!err.contains("a-very-long-dev-secret-of-32-bytes"));
        pairs[1] = ("KEYWARD_JWT_ALG", "RS256");
        let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
        assert!(err.contains("KEYWARD_JWT_KEY"), "{err}");
        assert!(!err.contains("a-very-long-dev-secret-of-32-bytes"));
    }

    #[test]
    fn default_scopes_outside_the_allowed_set_are_refused() {
        let mut pairs = BASE.to_vec();
        pairs.push(("KEYWARD_DEFAULT_SCOPES", "read,write"));
        pairs.push(("KEYWARD_ALLOWED_SCOPES", "read"));
        assert!(Config::from_lookup(lookup(&pairs)).is_err());
    }
}
