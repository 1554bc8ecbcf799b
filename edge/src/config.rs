//! The Worker's configuration, read from its vars and secrets once per isolate.
//!
//! Vars and secrets are fixed for a deployed version: changing one deploys a new version, which
//! runs in new isolates. So the first request of an isolate reads and parses them, and every
//! later one reuses the result (a configuration error is not cached: each request reports it,
//! and `/_keyward/health` answers 503 naming it, so a deployment or a local start fails loudly).

use std::cell::OnceCell;
use std::rc::Rc;

use keyward_common::Secret;
use keyward_common::route::{RouteDefault, RouteTable, parse_rules};
use worker::Env;

/// Positive cache TTL when `CACHE_TTL_S` is unset.
pub const DEFAULT_CACHE_TTL_S: u64 = 5;
/// Negative (unknown key) cache TTL when `NEGATIVE_CACHE_TTL_S` is unset.
pub const DEFAULT_NEGATIVE_CACHE_TTL_S: u64 = 2;
/// Usage flush interval when `USAGE_FLUSH_S` is unset.
pub const DEFAULT_USAGE_FLUSH_S: u64 = 5;
/// KV's own edge cache for `h:{hash}` reads; 60 s is the smallest value KV accepts.
pub const KV_CACHE_TTL_S: u32 = 60;

/// Binding names, as in `wrangler.toml`.
pub const KV_BINDING: &str = "KV";
/// The allowance Durable Object namespace binding (credits and rate limits, per key and owner).
pub const ALLOWANCE_BINDING: &str = "ALLOWANCE";
/// The KV writer Durable Object namespace binding (monotonic sync writes).
pub const KV_WRITER_BINDING: &str = "KV_WRITER";

/// Everything the handlers read from the environment. Secrets are [`Secret`]s: `{:?}` of a
/// `Config` never shows them.
#[derive(Debug)]
pub struct Config {
    /// Where good requests go (`ORIGIN_URL`), without a trailing `/`.
    pub origin_url: Option<String>,
    /// Route → permission query rules (`ROUTE_SCOPES`) and the default for unmatched paths
    /// (`ROUTE_DEFAULT`: `any_key` or `deny`).
    pub routes: RouteTable,
    /// The workspaces whose keys the proxy accepts (`ALLOWED_WORKSPACES`, comma-separated);
    /// empty means any. A key of another workspace is refused like an unknown key.
    pub allowed_workspaces: Vec<String>,
    /// Verifies sync batches from the control plane (`SYNC_SECRET`, a wrangler secret in
    /// production).
    pub sync_secret: Option<Secret>,
    /// Signs usage batches to the control plane (`USAGE_SECRET`, a wrangler secret in
    /// production): a different secret, so a leaked one cannot forge the other direction.
    pub usage_secret: Option<Secret>,
    /// Signs forwarded requests into `X-Keyward-Signature` when set (`ORIGIN_SECRET`).
    pub origin_secret: Option<Secret>,
    /// The control plane's usage endpoint (`USAGE_URL`); usage is not reported when unset.
    pub usage_url: Option<String>,
    /// How long a found entry stays fresh in the isolate cache.
    pub cache_ttl_ms: u64,
    /// How long an unknown key stays cached as unknown.
    pub negative_cache_ttl_ms: u64,
    /// Smallest interval between two usage flushes of one isolate.
    pub usage_flush_ms: u64,
    /// Seconds added to the clock of credits, windows and leases (`CLOCK_OFFSET_S`): for the
    /// local stack and tests to reach a refill without waiting; unset (0) in production, and no
    /// request can change it.
    pub clock_offset_s: i64,
}

/// A configuration value that cannot be used. Messages name the var (and the rule), never a
/// secret's value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A `ROUTE_SCOPES` rule does not parse.
    #[error("ROUTE_SCOPES: {0}")]
    Routes(#[from] keyward_common::route::RouteRuleError),
    /// `ROUTE_DEFAULT` is not `any_key` or `deny`.
    #[error("{0}")]
    RouteDefault(#[from] keyward_common::route::RouteDefaultError),
    /// A number var is not a number.
    #[error("{0} must be a whole number of seconds")]
    Seconds(&'static str),
    /// An `ALLOWED_WORKSPACES` entry is not a workspace id.
    #[error(
        "ALLOWED_WORKSPACES: {0:?} is not a workspace (1-64 characters A-Z a-z 0-9 _ -, separated by commas)"
    )]
    Workspace(String),
}

thread_local! {
    static CACHED: OnceCell<Rc<Config>> = const { OnceCell::new() };
}

/// This isolate's configuration, read from `env` on first use.
///
/// # Errors
/// A [`ConfigError`] naming the var that is wrong (tried again on the next request).
pub fn cached(env: &Env) -> Result<Rc<Config>, ConfigError> {
    if let Some(config) = CACHED.with(|c| c.get().cloned()) {
        return Ok(config);
    }
    let config = Rc::new(Config::from_env(env)?);
    CACHED.with(|c| c.get_or_init(|| Rc::clone(&config)).clone());
    Ok(config)
}

impl Config {
    /// Reads the configuration from the Worker's environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the var that is wrong.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let text = |name: &str| {
            env.var(name)
                .map(|v| v.to_string())
                .or_else(|_| env.secret(name).map(|v| v.to_string()))
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self::from_vars(text)
    }

    /// Builds the configuration from a lookup of trimmed, non-empty var values.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the var that is wrong.
    pub fn from_vars(text: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let seconds = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            text(name).map_or(Ok(default), |v| {
                v.parse::<u64>()
                    .ok()
                    .and_then(|s| s.checked_mul(1000))
                    .ok_or(ConfigError::Seconds(name))
            })
        };
        Ok(Self {
            origin_url: text("ORIGIN_URL").map(|u| u.trim_end_matches('/').to_owned()),
            routes: RouteTable {
                rules: parse_rules(&text("ROUTE_SCOPES").unwrap_or_default())?,
                default: RouteDefault::parse(&text("ROUTE_DEFAULT").unwrap_or_default())?,
            },
            allowed_workspaces: allowed_workspaces(
                &text("ALLOWED_WORKSPACES").unwrap_or_default(),
            )?,
            sync_secret: text("SYNC_SECRET").map(Secret::new),
            usage_secret: text("USAGE_SECRET").map(Secret::new),
            origin_secret: text("ORIGIN_SECRET").map(Secret::new),
            usage_url: text("USAGE_URL"),
            cache_ttl_ms: seconds("CACHE_TTL_S", DEFAULT_CACHE_TTL_S * 1000)?,
            negative_cache_ttl_ms: seconds(
                "NEGATIVE_CACHE_TTL_S",
                DEFAULT_NEGATIVE_CACHE_TTL_S * 1000,
            )?,
            usage_flush_ms: seconds("USAGE_FLUSH_S", DEFAULT_USAGE_FLUSH_S * 1000)?,
            clock_offset_s: text("CLOCK_OFFSET_S").map_or(Ok(0), |v| {
                v.parse::<i64>()
                    .map_err(|_| ConfigError::Seconds("CLOCK_OFFSET_S"))
            })?,
        })
    }
}

/// Parses `ALLOWED_WORKSPACES`: workspace ids separated by commas (blanks ignored).
fn allowed_workspaces(text: &str) -> Result<Vec<String>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            if keyward_common::record::valid_workspace(w) {
                Ok(w.to_owned())
            } else {
                Err(ConfigError::Workspace(w.to_owned()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn debug_of_the_config_never_prints_a_secret() {
        let c = config(&[
            ("SYNC_SECRET", "sync-hunter2"),
            ("USAGE_SECRET", "usage-hunter2"),
            ("ORIGIN_SECRET", "origin-hunter2"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(c.sync_secret.unwrap().expose(), b"sync-hunter2");
        assert_eq!(c.usage_secret.unwrap().expose(), b"usage-hunter2");
    }

    #[test]
    fn a_bad_rule_is_an_error_naming_the_rule() {
        let err = config(&[("ROUTE_SCOPES", "GET /ok => a; GET /a;b/** => admin")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ROUTE_SCOPES"), "{err}");
        assert!(err.contains("route rule 2"), "{err}");
        assert!(err.contains("GET /a"), "{err}");
        let err = config(&[("ROUTE_DEFAULT", "allow")]).unwrap_err();
        assert!(err.to_string().contains("ROUTE_DEFAULT"), "{err}");
    }

    #[test]
    fn a_rule_whose_query_does_not_parse_is_an_error_naming_the_rule_and_the_reason() {
        let err = config(&[(
            "ROUTE_SCOPES",
            "GET /ok => a; POST /sms => sms.send AND (x OR",
        )])
        .unwrap_err()
        .to_string();
        assert!(err.contains("route rule 2"), "{err}");
        assert!(err.contains("POST /sms => sms.send AND (x OR"), "{err}");
        assert!(err.contains("position"), "{err}");
    }

    #[test]
    fn allowed_workspaces_are_read_and_checked() {
        let c = config(&[("ALLOWED_WORKSPACES", "acme, beta ,")]).unwrap();
        assert_eq!(c.allowed_workspaces, ["acme", "beta"]);
        assert!(config(&[]).unwrap().allowed_workspaces.is_empty());
        let err = config(&[("ALLOWED_WORKSPACES", "acme,b:c")]).unwrap_err();
        assert!(err.to_string().contains("b:c"), "{err}");
    }

    #[test]
    fn the_route_default_is_read() {
        let c = config(&[("ROUTE_DEFAULT", "deny")]).unwrap();
        assert_eq!(c.routes.default, RouteDefault::Deny);
        assert_eq!(config(&[]).unwrap().routes.default, RouteDefault::AnyKey);
    }
}
