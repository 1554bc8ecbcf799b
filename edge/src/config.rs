//! The Worker's configuration, read from its vars and secrets once per isolate.
//!
//! Vars and secrets are fixed for a deployed version: changing one deploys a new version, which
//! runs in new isolates. So the first request of an isolate reads and parses them, and every
//! later one reuses the result (a configuration error is not cached: each request reports it).

use std::cell::OnceCell;
use std::rc::Rc;

use keyward_common::route::{RouteRule, parse_rules};
use worker::Env;

/// Positive cache TTL when `CACHE_TTL_S` is unset.
pub const DEFAULT_CACHE_TTL_S: u64 = 5;
/// Negative (unknown key) cache TTL when `NEGATIVE_CACHE_TTL_S` is unset.
pub const DEFAULT_NEGATIVE_CACHE_TTL_S: u64 = 2;
/// Usage flush interval when `USAGE_FLUSH_S` is unset.
pub const DEFAULT_USAGE_FLUSH_S: u64 = 5;
/// KV's own edge cache for `h:{hash}` reads; 60 s is the smallest value KV accepts.
pub const KV_CACHE_TTL_S: u64 = 60;

/// Binding names, as in `wrangler.toml`.
pub const KV_BINDING: &str = "KV";
/// The rate limiter Durable Object namespace binding.
pub const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

/// Everything the handlers read from the environment.
#[derive(Debug)]
pub struct Config {
    /// Where good requests go (`ORIGIN_URL`), without a trailing `/`.
    pub origin_url: Option<String>,
    /// Route → scope rules (`ROUTE_SCOPES`).
    pub rules: Vec<RouteRule>,
    /// Shared secret of signed batches (`SYNC_SECRET`, a wrangler secret in production).
    pub sync_secret: Option<String>,
    /// The control plane's usage endpoint (`USAGE_URL`); usage is not reported when unset.
    pub usage_url: Option<String>,
    /// How long a found entry stays fresh in the isolate cache.
    pub cache_ttl_ms: u64,
    /// How long an unknown key stays cached as unknown.
    pub negative_cache_ttl_ms: u64,
    /// Smallest interval between two usage flushes of one isolate.
    pub usage_flush_ms: u64,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `ROUTE_SCOPES` does not parse.
    #[error("ROUTE_SCOPES is invalid: {0}")]
    Routes(#[from] keyward_common::route::RouteRuleError),
    /// A number var is not a number.
    #[error("{0} must be a whole number of seconds")]
    Seconds(&'static str),
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
        let seconds = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            text(name).map_or(Ok(default), |v| {
                v.parse::<u64>().map_err(|_| ConfigError::Seconds(name))
            })
        };
        Ok(Self {
            origin_url: text("ORIGIN_URL").map(|u| u.trim_end_matches('/').to_owned()),
            rules: parse_rules(&text("ROUTE_SCOPES").unwrap_or_default())?,
            sync_secret: text("SYNC_SECRET"),
            usage_url: text("USAGE_URL"),
            cache_ttl_ms: seconds("CACHE_TTL_S", DEFAULT_CACHE_TTL_S)? * 1000,
            negative_cache_ttl_ms: seconds("NEGATIVE_CACHE_TTL_S", DEFAULT_NEGATIVE_CACHE_TTL_S)?
                * 1000,
            usage_flush_ms: seconds("USAGE_FLUSH_S", DEFAULT_USAGE_FLUSH_S)? * 1000,
        })
    }
}
