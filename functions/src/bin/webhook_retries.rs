//! The `webhook-retries` Lambda function: the webhook retry queue's consumer (each message one
//! pending attempt). The same handler as `events`, a function of its own so that slow retries
//! never hold up the stream.
//!
//! Run locally: part of `cargo xtask dev` (the queue poller invokes it through
//! `cargo lambda watch`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    keyward_functions::events::lambda::run("webhook-retries").await
}
