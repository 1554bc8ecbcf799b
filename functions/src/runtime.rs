//! What every function binary does at start: logging, configuration, clients, the runtime loop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use keyward_common::time::{unix_millis, unix_seconds};
use lambda_http::{Request, service_fn};

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::http::handle;
use crate::store::dynamo::DynamoStore;

/// JSON logs to stdout; `RUST_LOG` filters (default `info`). The request id comes from the
/// span every handler opens, so it is on every line of a request.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

/// Seconds since the Unix epoch (adapters read the clock; `common` never does).
#[must_use]
pub fn unix_now() -> i64 {
    unix_seconds(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, unix_millis),
    )
}

/// Prints a configuration error (naming the variable, never a value) and exits with status 2.
pub fn exit_on_config_error(function: &str, e: &ConfigError) -> ! {
    tracing::error!(error = %e, "configuration error");
    eprintln!("keyward {function}: configuration error: {e}");
    std::process::exit(2);
}

/// Runs the management function `function` (its rows of [`crate::operation::OPERATIONS`]) until
/// the runtime stops it. A configuration error is printed (naming the variable, never its value)
/// and the process exits with status 2.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run(function: &'static str) -> Result<(), lambda_http::Error> {
    init_logging();
    let sdk = sdk_config(function).await;
    let config = load_secrets(&sdk, &MANAGEMENT_SECRETS)
        .await
        .and_then(|secrets| Config::from_lookup(secrets.lookup()))
        .unwrap_or_else(|e| exit_on_config_error(function, &e));
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone());
    let app = Arc::new(App {
        config: Arc::new(config),
        store: Arc::new(store),
    });
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(handle(&app, function, req).await) }
    }))
    .await
}

/// The AWS SDK configuration of the function named `function`: the environment's, with
/// `app/{function}` in the user agent of every request its clients send. The local stack's moto
/// records from it which function issued which action, and `cargo xtask test` checks each
/// function's policy in `infra/template.yaml` against those records (`xtask/src/iam.rs`).
pub async fn sdk_config(function: &'static str) -> aws_config::SdkConfig {
    let loader = aws_config::from_env();
    let loader = match aws_config::AppName::new(function) {
        Ok(name) => loader.app_name(name),
        Err(_) => loader,
    };
    loader.load().await
}

/// A secret a function reads at start-up: the configuration value `name` is the
/// `SecretString` of the Secrets Manager secret that the variable `id_variable` names (its ARN
/// or name). A plaintext `name` variable is never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVar {
    /// The configuration name the value is looked up by (`KEYWARD_JWT_KEY`).
    pub name: &'static str,
    /// The environment variable holding the secret's ARN or name.
    pub id_variable: &'static str,
}

/// The JWT verification key (HS256 secret or public key PEM).
pub const JWT_KEY: SecretVar = SecretVar {
    name: "KEYWARD_JWT_KEY",
    id_variable: "KEYWARD_JWT_KEY_SECRET_ID",
};
/// The HMAC key of list cursors.
pub const CURSOR_SECRET: SecretVar = SecretVar {
    name: "KEYWARD_CURSOR_SECRET",
    id_variable: "KEYWARD_CURSOR_SECRET_ID",
};
/// Signs sync batches, control plane to edge (`sync`, `backfill`).
pub const SYNC_SECRET: SecretVar = SecretVar {
    name: "KEYWARD_SYNC_SECRET",
    id_variable: "KEYWARD_SYNC_SECRET_ID",
};
/// Signs usage batches, edge to control plane (`usage`).
pub const USAGE_SECRET: SecretVar = SecretVar {
    name: "KEYWARD_USAGE_SECRET",
    id_variable: "KEYWARD_USAGE_SECRET_ID",
};
/// What every management function reads.
pub const MANAGEMENT_SECRETS: [SecretVar; 2] = [JWT_KEY, CURSOR_SECRET];
const ALL_SECRETS: [SecretVar; 4] = [JWT_KEY, CURSOR_SECRET, SYNC_SECRET, USAGE_SECRET];

/// Secret values read at start-up; `Debug` names them, never prints them.
#[derive(Clone)]
pub struct Secrets(HashMap<&'static str, String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// Secrets given directly (tests).
    #[must_use]
    pub fn from_values(values: impl IntoIterator<Item = (SecretVar, String)>) -> Self {
        Self(values.into_iter().map(|(s, v)| (s.name, v)).collect())
    }

    /// A configuration lookup: the secrets read, and the process environment for every other
    /// name (never for a secret's name, so a plaintext secret variable is ignored).
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| match self.0.get(k) {
            Some(v) => Some(v.clone()),
            None if ALL_SECRETS.iter().any(|s| s.name == k) => None,
            None => std::env::var(k).ok(),
        }
    }
}

/// Reads `wanted` from AWS Secrets Manager (the endpoint of `sdk`: moto in the local stack).
///
/// # Errors
/// [`ConfigError`] naming the `*_SECRET_ID` variable that is unset, or whose secret cannot be
/// read or holds no `SecretString` (never a value).
pub async fn load_secrets(
    sdk: &aws_config::SdkConfig,
    wanted: &[SecretVar],
) -> Result<Secrets, ConfigError> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let mut values = HashMap::new();
    for secret in wanted {
        let id = std::env::var(secret.id_variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(secret.id_variable))?;
        let read = client
            .get_secret_value()
            .secret_id(id.trim())
            .send()
            .await
            .map_err(|e| ConfigError::Invalid {
                name: secret.id_variable,
                why: format!(
                    "its secret cannot be read from Secrets Manager: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                ),
            })?;
        let value = read
            .secret_string()
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Invalid {
                name: secret.id_variable,
                why: "its secret has no SecretString".into(),
            })?;
        values.insert(secret.name, value.to_owned());
    }
    Ok(Secrets(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_answer_their_names_and_never_fall_back_to_a_plaintext_variable() {
        let secrets = Secrets::from_values([(SYNC_SECRET, "s3cr3t-value".to_owned())]);
        let get = secrets.lookup();
        assert_eq!(get("KEYWARD_SYNC_SECRET").as_deref(), Some("s3cr3t-value"));
        // A secret that was not read is absent, whatever the environment holds.
        for s in [JWT_KEY, CURSOR_SECRET, USAGE_SECRET] {
            assert_eq!(get(s.name), None, "{}", s.name);
        }
        // Other names come from the environment.
        assert_eq!(get("PATH"), std::env::var("PATH").ok());
    }

    #[test]
    fn debug_names_the_secrets_without_their_values() {
        let secrets = Secrets::from_values([(USAGE_SECRET, "s3cr3t-value".to_owned())]);
        let text = format!("{secrets:?}");
        assert!(text.contains("KEYWARD_USAGE_SECRET"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn every_secret_has_its_own_id_variable() {
        let ids: std::collections::HashSet<_> = ALL_SECRETS.iter().map(|s| s.id_variable).collect();
        assert_eq!(ids.len(), ALL_SECRETS.len());
        assert!(
            ALL_SECRETS
                .iter()
                .all(|s| s.id_variable.ends_with("_SECRET_ID"))
        );
    }
}
