//! The `events` Lambda function: webhook events from the table's stream, expiry reminders from
//! the schedule.
//!
//! Run locally: part of `cargo xtask dev` (the stream poller, the queue poller and the
//! scheduler invoke it through `cargo lambda watch`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    keyward_functions::events::lambda::run("events").await
}
