//! What every function binary does at start: logging, configuration, clients, the runtime loop.

use std::convert::Infallible;
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
    let config = Config::from_env().unwrap_or_else(|e| exit_on_config_error(function, &e));
    let sdk = aws_config::load_from_env().await;
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
