//! What every function binary does at start: logging, configuration, clients, the runtime loop.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{Request, service_fn};

use crate::config::Config;
use crate::http::{App, Operation, handle};
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

/// Runs `op` as a Lambda function until the runtime stops it. A configuration error is printed
/// (naming the variable, never its value) and the process exits with status 2.
///
/// # Errors
/// When the Lambda runtime fails.
pub async fn run(op: Operation) -> Result<(), lambda_http::Error> {
    init_logging();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            eprintln!("keyward {}: configuration error: {e}", op.name());
            std::process::exit(2);
        }
    };
    let sdk = aws_config::load_from_env().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone());
    let app = Arc::new(App {
        config: Arc::new(config),
        store: Arc::new(store),
    });
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(handle(&app, op, req).await) }
    }))
    .await
}
